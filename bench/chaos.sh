#!/usr/bin/env bash
# The large no-loss run: 200,000 events, every fault kind at 3% each, 10% of
# events visible up to 8 s late, 100 live inserts a second for a minute, and at
# least 50 SIGKILLs at random instants while the collector pages and writes.
# Exits non-zero unless the output equals the mock's ground truth exactly.
# Extra arguments go to the driver, e.g. `bench/chaos.sh --events 20000 --kills 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked -p harness-audit -p harness-tests --bin harness-audit --bin chaos
exec ./target/release/chaos --binary ./target/release/harness-audit "$@"
