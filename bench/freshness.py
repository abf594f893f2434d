#!/usr/bin/env python3
"""Freshness: how long after Harness shows an event it is in an object.

The mock Harness (edge on: 400 requests a minute per key) writes events while
one `serve` tenant collects them to the local sink: BENCH_LIVE_PER_SEC (2) a
second for BENCH_LIVE_SECS (240) seconds, BENCH_LATE_FRACTION (0.1) of them
written late, up to BENCH_MAX_LATE_MS (60000) before they become visible. The
tenant sets nothing but its account, key and directory, plus
BENCH_TENANT_EXTRA (TOML lines, for the settings of an earlier build), so it
runs on the defaults of the binary measured.

The objects are read every 100 ms; an event's delay is the time from its
becoming visible (the mock's `/__mock/visibility`) to its first sight in an
object. Prints p50, p95 and p99 of the delay, the events stored within the
run and those stored twice, and the requests a minute the edge saw, as a Markdown row, and writes
it to target/bench-freshness.md. The delay is bound by the schedule, not the
CPU, so BENCH_BIN and BENCH_MOCK may name debug builds.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("BENCH_BIN", ROOT / "target/release/harness-audit"))
MOCK = Path(os.environ.get("BENCH_MOCK", ROOT / "target/release/mock-harness"))
PER_SEC = float(os.environ.get("BENCH_LIVE_PER_SEC", "2"))
LIVE_SECS = int(os.environ.get("BENCH_LIVE_SECS", "240"))
LATE_FRACTION = float(os.environ.get("BENCH_LATE_FRACTION", "0.1"))
MAX_LATE_MS = int(os.environ.get("BENCH_MAX_LATE_MS", "60000"))
EXTRA = os.environ.get("BENCH_TENANT_EXTRA", "")
LABEL = os.environ.get("BENCH_LABEL", str(BIN))
# After the last insert, the run waits this long for the last events.
DRAIN_SECS = int(os.environ.get("BENCH_DRAIN_SECS", "90"))


def percentile(sorted_values, share):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


def read_new_objects(root, seen_files, first_seen, copies):
    now = time.time() * 1000
    for path in root.rglob("*.jsonl"):
        if path in seen_files:
            continue
        seen_files.add(path)
        for line in path.read_text().splitlines():
            audit_id = json.loads(line)["auditId"]
            first_seen.setdefault(audit_id, now)
            copies[audit_id] = copies.get(audit_id, 0) + 1


def main():
    mock = subprocess.Popen(
        [MOCK, "--events", "0", "--live-per-sec", str(PER_SEC), "--live-secs", str(LIVE_SECS),
         "--live-late-fraction", str(LATE_FRACTION), "--live-max-late-ms", str(MAX_LATE_MS),
         "--edge-limit-per-minute", "400", "--exit-after-secs", str(LIVE_SECS + DRAIN_SECS + 600)],
        stdout=subprocess.PIPE,
        text=True,
    )
    info = json.loads(mock.stdout.readline())
    first_seen, copies, seen_files = {}, {}, set()
    try:
        with tempfile.TemporaryDirectory() as work, open(Path(work) / "log", "w+") as log:
            out = Path(work) / "out"
            tenants = Path(work) / "tenants.toml"
            tenants.write_text(
                f'[[tenant]]\nid = "fresh"\naccount_id = "{info["account_id"]}"\napi_base = "{info["base_url"]}"\n'
                f'api_key_env = "KEY"\noutput_dir = "{out}"\n{EXTRA}\n'
            )
            env = {"PATH": os.environ["PATH"], "KEY": info["api_key"], "RUST_LOG": "warn"}
            serve = subprocess.Popen([BIN, "serve", "--config", str(tenants)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=log)
            start = time.time()
            deadline = start + LIVE_SECS + DRAIN_SECS
            expected = round(PER_SEC * LIVE_SECS)
            while time.time() < deadline:
                read_new_objects(out, seen_files, first_seen, copies)
                if time.time() > start + LIVE_SECS and len(first_seen) >= expected:
                    break
                time.sleep(0.1)
            ran_secs = time.time() - start
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=120)
            read_new_objects(out, seen_files, first_seen, copies)
        visibility = [json.loads(line) for line in urllib.request.urlopen(info["visibility"]).read().splitlines()]
        answers = json.load(urllib.request.urlopen(info["edge"]))
    finally:
        mock.kill()
        mock.wait()
    if not visibility:
        sys.exit("the mock wrote no event")
    delays = sorted(first_seen[v["auditId"]] - v["visible_at_ms"] for v in visibility if v["auditId"] in first_seen)
    twice = sum(n - 1 for n in copies.values() if n > 1)
    per_minute = len(answers) / (ran_secs / 60)
    refused = sum(a["refused"] for a in answers)
    late = sum(v["visible_at_ms"] - v["timestamp_ms"] > 0 for v in visibility)
    cell = lambda share: f"{percentile(delays, share) / 1000:.1f} s" if delays else "–"
    row = (
        f"| {LABEL} | {cell(0.5)} | {cell(0.95)} | {cell(0.99)} | {len(delays)} of {len(visibility)} | "
        f"{twice} | {per_minute:.1f} ({refused} refused) |"
    )
    lines = [
        f"{PER_SEC:g} events a second for {LIVE_SECS} s, {late} of {len(visibility)} written late by up to "
        f"{MAX_LATE_MS / 1000:g} s; the run waited up to {DRAIN_SECS} s more (it ran {ran_secs:.0f} s).",
        "",
        "| Build and settings | p50 | p95 | p99 | Stored within the run | Stored twice | Requests a minute |",
        "|---|---|---|---|---|---|---|",
        row,
    ]
    report = "\n".join(lines)
    print(report)
    (ROOT / "target").mkdir(exist_ok=True)
    with open(ROOT / "target/bench-freshness.md", "a") as f:
        f.write(report + "\n\n")


if __name__ == "__main__":
    main()
