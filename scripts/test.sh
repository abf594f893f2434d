#!/usr/bin/env bash
# Runs every check and test. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stage-times.sh
rustup target add wasm32-wasip2 >/dev/null
rustup component add rustfmt clippy >/dev/null 2>&1 || true

./scripts/vendor-wit.sh
git diff --exit-code -- wit/deps || { echo "wit/deps differs from the host's WASI WIT: commit the output of scripts/vendor-wit.sh" >&2; exit 1; }
stage "format" cargo fmt --all -- --check
stage "clippy (native)" cargo clippy --locked --workspace --all-targets -- -D warnings
# In the guests' profile and target directory (build-support/guest.rs): the proc-macros and build
# scripts of the wasm32 crates are then built once, for this and for the guest builds.
stage "clippy (wasm32-wasip2)" cargo clippy --locked -p harness-audit-plugin -p harness-audit-sink -p harness-audit-runner \
  -p harness-audit-command -p harness-audit-proxy -p guest-probe -p guest-misbehave \
  --target wasm32-wasip2 --profile guest --target-dir "${CARGO_TARGET_DIR:-target}/wasm-guests" -- -D warnings
# The second runtime and the stock runtimes of the compositions: jco in Node.js (pinned by
# examples/jco/package-lock.json) and the wasmtime CLI of the release the host embeds (`run` for
# the command, `serve` for the proxy), kept under target/ so that later runs skip the build.
stage "jco (npm ci)" npm ci --prefix examples/jco --no-audit --no-fund --loglevel=error
if ! { target/tools/bin/wasmtime --version 2>/dev/null | grep -q '^wasmtime 48\.0\.8' &&
       target/tools/bin/wasmtime serve --help >/dev/null 2>&1; }; then
  stage "wasmtime CLI 48.0.8 (cargo install)" cargo install --locked --quiet --force wasmtime-cli@48.0.8 \
    --no-default-features --features run,serve,cranelift,component-model,component-model-async,wasi-http,pooling-allocator,parallel-compilation \
    --root target/tools --target-dir target/tools-build
  # The binary is kept under target/tools; its 1.2 GB build is not needed again.
  rm -rf target/tools-build
fi
# End-to-end tests write to fake-gcs-server, started on 127.0.0.1 for the run and stopped after it.
stage "cargo test (build and run)" ./scripts/with-gcs-emulator.sh cargo test --locked --workspace
print_stage_times "test.sh stage times"
