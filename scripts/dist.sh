#!/usr/bin/env bash
# The release step: builds the dist/ set (or the directory given) with the
# dist binary (compose/src/main.rs): the source the host embeds, its
# compositions into standard worlds (wac-graph, no rebuild of the source), and
# SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo run --locked --quiet -p harness-audit-compose --bin dist -- "${1:-dist}"
