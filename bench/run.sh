#!/usr/bin/env bash
# Every figure of the benchmarks page (docs/src/design/benchmarks.md), side by side in one run: the criterion
# benchmark (guest overhead and the parse limit), then cold start, the
# end-to-end drains (local sink and the GCS emulator) and the 1,000-tenant
# round, all against the mock Harness on 127.0.0.1. The report is printed and
# written to target/bench-figures.md. BENCH_RUNS (default 3) and
# BENCH_COLD_RUNS (default 15) set the repetitions behind each median.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked -p harness-audit -p harness-tests --bin harness-audit --bin mock-harness
cargo bench --locked --bench guest
./scripts/with-gcs-emulator.sh python3 bench/figures.py
