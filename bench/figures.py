#!/usr/bin/env python3
"""Every figure the benchmarks page (docs/src/design/benchmarks.md) reports, from one run on this machine.

Run through bench/run.sh, which builds the release binaries, runs the
criterion benchmark (`cargo bench --bench guest`) and starts the GCS emulator.
This script reads criterion's medians, then measures, with the real binaries
on 127.0.0.1: cold start (process start to first request, with and without
the compiled-code cache), the end-to-end drain of a 20,000 and a 200,000
event backlog to the local sink and to the emulator (events/s, peak RSS), and
the 1,000-tenant round (bench/tenants.sh), and the CPU of 4 cron-style runs
over a 10,000-event backlog, each a fresh process without `--cache-dir`. Medians of several runs; ratios
against a baseline measured in the same run. Prints a Markdown report and
writes it to target/bench-figures.md.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("BENCH_BIN", ROOT / "target/release/harness-audit"))
MOCK = ROOT / "target/release/mock-harness"
CRITERION = ROOT / "target/criterion/pages"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "15"))
TIMEOUT_S = 600


def criterion_median_ns(name):
    """Median time of one criterion benchmark (ns) and the bytes it processes."""
    runs = list((CRITERION / name).glob("*/new"))
    if len(runs) != 1:
        sys.exit(f"expected one criterion result under {CRITERION / name}: run `cargo bench --bench guest`")
    estimates = json.loads((runs[0] / "estimates.json").read_text())
    benchmark = json.loads((runs[0] / "benchmark.json").read_text())
    return estimates["median"]["point_estimate"], benchmark["throughput"]["Bytes"]


def start_mock(events, minutes):
    """The mock Harness with `events` settled events over `minutes`; returns (process, info)."""
    mock = subprocess.Popen(
        [MOCK, "--events", str(events), "--minutes", str(minutes), "--exit-after-secs", "1800"],
        stdout=subprocess.PIPE,
        text=True,
    )
    info = json.loads(mock.stdout.readline())
    return mock, info


def measured_pass(env):
    """One `harness-audit run` with its own wall time and peak RSS (MiB)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen([BIN, "run"], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if status != 0:
        sys.exit(f"harness-audit run failed (status {status}): {stderr}")
    return wall, usage.ru_maxrss / 1024, stdout


def base_env(info, extra):
    env = {
        "PATH": os.environ["PATH"],
        "HARNESS_API_BASE": info["base_url"],
        "HARNESS_ACCOUNT_ID": info["account_id"],
        "HARNESS_API_KEY": info["api_key"],
        "MAX_REQUESTS_PER_MINUTE": "0",
        "PAGE_SIZE": "100",
        "START_MINUTES_BACK": "1500",
        "RUST_LOG": "warn",
    }
    if "STORAGE_EMULATOR_HOST" in os.environ:
        env["STORAGE_EMULATOR_HOST"] = os.environ["STORAGE_EMULATOR_HOST"]
    env.update(extra)
    return env


def drain(events, sink, info, work):
    """Median events/s and median peak RSS of RUNS full drains of the backlog."""
    rates, rss = [], []
    for run in range(RUNS):
        tag = f"{sink}-{events}-{run}"
        if sink == "local":
            extra = {"OUTPUT_DIR": str(work / tag)}
        else:
            extra = {
                "GCS_BUCKET": "harness-audit-demo",
                "GCS_PREFIX": f"bench/{tag}",
                "STATE_KEY": f"bench-state/{tag}.json",
            }
        wall, peak, stdout = measured_pass(base_env(info, extra))
        expected = f"collected {events} events in "
        if not stdout.startswith(expected):
            sys.exit(f"the {tag} drain did not collect {events} events: {stdout}")
        rates.append(events / wall)
        rss.append(peak)
    return statistics.median(rates), statistics.median(rss)


def first_request_ms(extra_args, work, tag):
    """Milliseconds from spawning `harness-audit run` to its first connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        env = {
            "PATH": os.environ["PATH"],
            "HARNESS_API_BASE": f"http://127.0.0.1:{port}",
            "HARNESS_ACCOUNT_ID": "Xy3kQ9mTR0aWb1cD2eF4gH",
            "HARNESS_API_KEY": "pat.Xy3kQ9mTR0aWb1cD2eF4gH.ColdStart000000000000.notasecret",
            "OUTPUT_DIR": str(work / tag),
            "MAX_RETRIES": "0",
        }
        started = time.perf_counter()
        child = subprocess.Popen(
            [BIN, *extra_args, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        listener.settimeout(60)
        connection, _ = listener.accept()
        elapsed = (time.perf_counter() - started) * 1000
        connection.close()
        child.kill()
        child.wait()
        return elapsed


def cron_cpu_seconds(work, runs=4, events=10_000):
    """CPU-seconds (user + system) of `runs` fresh `harness-audit run` processes, without
    `--cache-dir`, over one store: the first drains a backlog of `events`, the rest find
    what a scheduled job finds between two runs."""
    mock, info = start_mock(events, 60)
    total, collected = 0.0, 0
    try:
        env = base_env(info, {"OUTPUT_DIR": str(work / "cron")})
        for _ in range(runs):
            with tempfile.TemporaryFile() as out:
                child = subprocess.Popen([BIN, "run"], env=env, stdout=out, stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(child.pid, 0)
                out.seek(0)
                stdout = out.read().decode()
            if status != 0:
                sys.exit(f"a cron-style run failed (status {status})")
            total += usage.ru_utime + usage.ru_stime
            collected += int(stdout.split()[1])
    finally:
        mock.kill()
        mock.wait()
    if collected != events:
        sys.exit(f"the cron-style runs collected {collected} events, not {events}")
    return total


def cold_start(work):
    cache = work / "cache"
    cache.mkdir(mode=0o700)
    first_request_ms(["--cache-dir", str(cache)], work, "warm-up")
    without = [first_request_ms([], work, f"cold-{i}") for i in range(COLD_RUNS)]
    with_cache = [first_request_ms(["--cache-dir", str(cache)], work, f"cached-{i}") for i in range(COLD_RUNS)]
    return statistics.median(without), statistics.median(with_cache)


def main():
    report = []

    def say(line):
        report.append(line)
        print(line, flush=True)

    parse_ns, page_bytes = criterion_median_ns("parse_limit")
    native_ns, _ = criterion_median_ns("core_native")
    wasm_ns, _ = criterion_median_ns("core_wasm")
    mb_s = lambda ns: page_bytes / (ns / 1e9) / 1e6
    ratio = wasm_ns / native_ns
    share = parse_ns / native_ns
    say("| Figure | Measured | Target |")
    say("|---|---|---|")
    say(f"| Guest overhead: wasm / native time, 2,000 events in 20 pages of 100 | **{ratio:.2f}** "
        f"(native {native_ns / 1e6:.2f} ms, wasm {wasm_ns / 1e6:.2f} ms) | ≤ 1.5 (aim 1.3) |")
    say(f"| Parse limit: serde_json into RawValues | {mb_s(parse_ns):.0f} MB/s | – |")
    say(f"| Native core throughput, share of the parse limit | {mb_s(native_ns):.0f} MB/s, "
        f"**{share:.0%}** | ≥ 50% |")
    say(f"| Core inside wasmtime | {mb_s(wasm_ns):.0f} MB/s | – |")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        without, cached = cold_start(work)
        say(f"| Cold start to first request, no cache | {without:.0f} ms | – |")
        say(f"| Cold start to first request, `--cache-dir` warm | {cached:.0f} ms | – |")
        cron = statistics.median(cron_cpu_seconds(work / f"cron-{i}") for i in range(RUNS))
        say(f"| 4 cron-style runs over a 10,000-event backlog, no `--cache-dir` | **{cron:.2f} CPU-seconds** | ≤ 0.4 |")

        sinks = ["local"] + (["gcs"] if "STORAGE_EMULATOR_HOST" in os.environ else [])
        peaks = {}
        for events in (20_000, 200_000):
            mock, info = start_mock(events, 1440)
            try:
                for sink in sinks:
                    rate, peak = drain(events, sink, info, work)
                    peaks[(sink, events)] = peak
                    target = "≥ 20,000 events/s, RSS ≤ 64 MiB" if sink == "local" else "RSS ≤ 64 MiB"
                    say(f"| Drain {events:,} events to {sink} | **{rate:,.0f} events/s**, "
                        f"peak RSS **{peak:.1f} MiB** | {target} |")
            finally:
                mock.kill()
                mock.wait()
        for sink in sinks:
            small, large = peaks[(sink, 20_000)], peaks[(sink, 200_000)]
            say(f"| Peak RSS growth 20,000 → 200,000 events, {sink} | **{(large / small - 1):+.1%}** | within 10% |")

    text = "\n".join(report) + "\n"
    if os.environ.get("BENCH_TENANTS", "1") == "1":
        tenants = subprocess.run([ROOT / "bench/tenants.sh"], capture_output=True, text=True, timeout=TIMEOUT_S)
        if tenants.returncode != 0:
            sys.exit(f"bench/tenants.sh failed: {tenants.stderr}")
        text += "\n1,000-tenant round (bench/tenants.sh):\n\n```\n" + tenants.stdout.strip() + "\n```\n"
        print(tenants.stdout)
    (ROOT / "target/bench-figures.md").write_text(text)


if __name__ == "__main__":
    main()
