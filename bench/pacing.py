#!/usr/bin/env python3
"""The backfill's share of the allowed rate: a 2-day backfill beside a live
collector on one key, against the mock Harness with its edge on (400
requests a minute per key, 429 with no Retry-After past it). Two layouts:

- `serve`: a live tenant and a backfill tenant in one process, which share
  the key's pace;
- `processes`: a live `serve` and a `backfill` in two processes, which
  know nothing of each other and adapt to the 429s.

The mock logs every answer of its edge; from it this script reports, per
layout, the 429s in the first minute and after it, and the admitted rate
after the first minute against the 400 allowed. Each layout runs
BENCH_PACING_SECS (default 240) seconds on default pacing settings;
BENCH_LAYOUTS (default `serve,processes`) picks the layouts, so a build
without backfill tenants can be measured on `processes` alone. Prints
a Markdown table and writes it to target/bench-pacing.md. The rate is bound
by the edge, not the CPU, so BENCH_BIN and BENCH_MOCK may name debug builds.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("BENCH_BIN", ROOT / "target/release/harness-audit"))
MOCK = Path(os.environ.get("BENCH_MOCK", ROOT / "target/release/mock-harness"))
SECONDS = int(os.environ.get("BENCH_PACING_SECS", "240"))
LIMIT = 400
# Two days of events, more than the backfill can read in the run: it never runs dry.
EVENTS, MINUTES = 200_000, 2 * 24 * 60


def rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def tenant(tid, info, out, extra=""):
    return (
        f'[[tenant]]\nid = "{tid}"\naccount_id = "{info["account_id"]}"\napi_base = "{info["base_url"]}"\n'
        f'api_key_env = "KEY"\noutput_dir = "{out}"\npage_size = 100\ninterval_secs = 15\njitter_secs = 0\n{extra}\n'
    )


def backfill_range():
    now = datetime.now(timezone.utc)
    return rfc3339(now - timedelta(days=2)), rfc3339(now - timedelta(hours=1))


def spawn(args, info, log, extra=None):
    env = {"PATH": os.environ["PATH"], "KEY": info["api_key"], "RUST_LOG": "warn", **(extra or {})}
    return subprocess.Popen([BIN, *args], env=env, stdout=subprocess.DEVNULL, stderr=log)


def one_process(info, work, log):
    start, end = backfill_range()
    tenants = work / "serve.toml"
    tenants.write_text(
        tenant("live", info, work / "live")
        + tenant("history", info, work / "history", f'backfill_from = "{start}"\nbackfill_to = "{end}"')
    )
    return [spawn(["serve", "--config", str(tenants), "--max-concurrent", "2"], info, log)]


def two_processes(info, work, log):
    start, end = backfill_range()
    tenants = work / "live.toml"
    tenants.write_text(tenant("live", info, work / "live"))
    backfill = spawn(
        ["backfill", "--from", start, "--to", end],
        info,
        log,
        {
            "HARNESS_API_BASE": info["base_url"],
            "HARNESS_ACCOUNT_ID": info["account_id"],
            "HARNESS_API_KEY": info["api_key"],
            "OUTPUT_DIR": str(work / "history"),
            "PAGE_SIZE": "100",
        },
    )
    return [spawn(["serve", "--config", str(tenants)], info, log), backfill]


def measure(layout, start):
    mock = subprocess.Popen(
        [MOCK, "--events", str(EVENTS), "--minutes", str(MINUTES), "--edge-limit-per-minute", str(LIMIT),
         "--exit-after-secs", str(SECONDS + 600)],
        stdout=subprocess.PIPE,
        text=True,
    )
    info = json.loads(mock.stdout.readline())
    try:
        with tempfile.TemporaryDirectory() as work, open(Path(work) / "log", "w+") as log:
            children = start(info, Path(work), log)
            time.sleep(SECONDS)
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                child.wait(timeout=120)
            log.seek(0)
            text = log.read()
        answers = json.load(urllib.request.urlopen(info["edge"]))
    finally:
        mock.kill()
        mock.wait()
    if not answers:
        sys.exit(f"{layout}: no request reached the mock:\n{text}")
    first = answers[0]["at_ms"]
    end = first + SECONDS * 1000
    early = [a for a in answers if a["at_ms"] < first + 60_000]
    late = [a for a in answers if first + 60_000 <= a["at_ms"] < end]
    admitted = sum(not a["refused"] for a in late)
    minutes = (end - first - 60_000) / 60_000
    return {
        "layout": layout,
        "refused_first_minute": sum(a["refused"] for a in early),
        "refused_after": sum(a["refused"] for a in late),
        "per_minute": admitted / minutes,
        "share": admitted / minutes / LIMIT,
    }


def main():
    layouts = {
        "serve": ("one `serve`: live and backfill tenants", one_process),
        "processes": ("two processes: `serve` (live) and `backfill`", two_processes),
    }
    chosen = os.environ.get("BENCH_LAYOUTS", "serve,processes").split(",")
    rows = [measure(*layouts[name]) for name in chosen]
    lines = [
        f"Edge: {LIMIT} requests a minute per key (sliding), 429 with no Retry-After; {SECONDS} s per layout, "
        "default pacing settings.",
        "",
        "| Layout | 429s in the first minute | 429s after it | Admitted a minute after it | Share of 400 |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layout']} | {r['refused_first_minute']} | {r['refused_after']} | {r['per_minute']:.0f} | "
            f"{r['share']:.1%} |"
        )
    report = "\n".join(lines)
    print(report)
    (ROOT / "target").mkdir(exist_ok=True)
    (ROOT / "target/bench-pacing.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
