#!/usr/bin/env bash
# Builds everything, starts the mock Harness with a few thousand events on
# 127.0.0.1, collects them into ./harness-audit-data with the real binary,
# and prints where they are and how many.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
# The debug build that ./scripts/test.sh makes (CI runs the demo right after it), so the demo
# compiles nothing again: the same self-contained binary, with the component inside. `--tests`
# resolves features as the test build does (with dev-dependencies); `--bins` alone resolves them
# without, and would build gcloud-auth, chrono and the host a second time.
cargo build --locked --workspace --bins --tests

out="${OUTPUT_DIR:-./harness-audit-data}"
info=$(mktemp)
./target/debug/mock-harness --events "${DEMO_EVENTS:-3000}" --exit-after-secs 600 >"$info" &
mock=$!
trap 'kill $mock 2>/dev/null || true; rm -f "$info"' EXIT
for _ in $(seq 100); do [ -s "$info" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$info" "$1"; }

HARNESS_API_BASE=$(field base_url) HARNESS_ACCOUNT_ID=$(field account_id) HARNESS_API_KEY=$(field api_key) \
  OUTPUT_DIR="$out" ./target/debug/harness-audit run

objects=$(find "$out" -name '*.jsonl' | wc -l)
events=$(find "$out" -name '*.jsonl' -exec cat {} + | wc -l)
echo "demo: $events events in $objects objects under $out/harness/audit (checkpoint: $out/harness-audit-state/checkpoint.json)"

# Under scripts/with-gcs-emulator.sh, the same events go to the emulator's bucket too.
if [ -n "${STORAGE_EMULATOR_HOST:-}" ]; then
  HARNESS_API_BASE=$(field base_url) HARNESS_ACCOUNT_ID=$(field account_id) HARNESS_API_KEY=$(field api_key) \
    GCS_BUCKET=harness-audit-demo GZIP=true ./target/debug/harness-audit run
  gcs_objects=$(curl -fsS "$STORAGE_EMULATOR_HOST/storage/v1/b/harness-audit-demo/o?prefix=harness/audit/" \
    | python3 -c "import json,sys; print(len(json.load(sys.stdin).get('items', [])))")
  echo "demo: $gcs_objects gzip objects in gs://harness-audit-demo/harness/audit/ (emulator at $STORAGE_EMULATOR_HOST)"
fi
