#!/usr/bin/env bash
# The large no-loss run: 200,000 events (two milliseconds of 1,000 events and
# three of 150), every fault kind at 3% each, every freedom of the API
# (Freedoms::ALL: ties in a new order on each request, short pages, 1% counted
# and never returned, counts that disagree with pages), odd content (3% of
# events sent oddly, of every kind, 2% of answers not a page), 10% of events visible
# up to 60 s late (past the overlap: reconciliation finds them), 100 live
# inserts a second for a minute, and at least 50 SIGKILLs at random instants
# while the collector pages and writes. Exits non-zero unless every event the
# mock can return is stored exactly once, in the data or byte for byte in the
# quarantine, and the reported gap equals the events it counted and never
# returned.
# Extra arguments go to the driver, e.g. `bench/chaos.sh --events 20000 --kills 10
# --shape streaming`.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked -p harness-audit -p harness-tests --bin harness-audit --bin chaos
exec ./target/release/chaos --binary ./target/release/harness-audit "$@"
