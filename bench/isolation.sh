#!/usr/bin/env bash
# What components that never return cost everyone else in one `serve`
# process: normal tenants (each its own mock account, answering with up to
# 40 ms of latency, as a remote API does) alone, then beside as many spinning
# components as CPUs with --max-concurrent above that; their pass times,
# /metrics and /healthz response times, and the time SIGTERM takes to end it
# all. Release build. Extra arguments go to the driver, e.g.
# `bench/isolation.sh --normal 4 --events 5000 --runs 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked -p harness-audit -p harness-tests --bin harness-audit --bin isolation
exec ./target/release/isolation --binary ./target/release/harness-audit "$@"
