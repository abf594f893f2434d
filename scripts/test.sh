#!/usr/bin/env bash
# Runs every check and test. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
rustup component add rustfmt clippy >/dev/null 2>&1 || true

./scripts/vendor-wit.sh
git diff --exit-code -- wit/deps || { echo "wit/deps differs from the host's WASI WIT: commit the output of scripts/vendor-wit.sh" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked -p harness-audit-plugin -p guest-probe -p guest-misbehave --target wasm32-wasip2 -- -D warnings
# End-to-end tests write to fake-gcs-server, started on 127.0.0.1 for the run and stopped after it.
./scripts/with-gcs-emulator.sh cargo test --locked --workspace
