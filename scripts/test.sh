#!/usr/bin/env bash
# Runs every check and test. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stage-times.sh
rustup target add wasm32-wasip2 >/dev/null
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Clippy lints the workspace's crates while `cargo test` below builds them (lints in every target
# that `cargo clippy --all-targets` would lint but the benches, which .ci/run builds the same way):
# a `cargo clippy` of its own checked every dependency again, about 300 s of CI.
export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/lint-while-building.sh"
./scripts/vendor-wit.sh
git diff --exit-code -- wit/deps || { echo "wit/deps differs from the host's WASI WIT: commit the output of scripts/vendor-wit.sh" >&2; exit 1; }
stage "format" cargo fmt --all -- --check
# In the guests' profile and target directory (build-support/guest.rs): the proc-macros and build
# scripts of the wasm32 crates are then built once, for this and for the guest builds.
stage "clippy (wasm32-wasip2)" cargo clippy --locked -p harness-audit-plugin -p harness-audit-sink -p harness-audit-runner \
  -p harness-audit-command -p harness-audit-proxy -p guest-probe -p guest-misbehave \
  --target wasm32-wasip2 --profile guest --target-dir "${CARGO_TARGET_DIR:-target}/wasm-guests" -- -D warnings
# The second runtime and the stock runtimes of the compositions: jco in Node.js (pinned by
# examples/jco/package-lock.json) and the wasmtime CLI of the release the host embeds (`run` for
# the command, `serve` for the proxy), kept under target/tools. cargo install builds it only when
# its own record there (.crates2.json) lacks this version with these features, so later runs skip
# the build; its crate is not ours to lint. (The CLI has no `--help` without clap's default
# features: a check that asked for it failed every time, and every run built the CLI again.)
stage "jco (npm ci)" npm ci --prefix examples/jco --no-audit --no-fund --loglevel=error
stage "wasmtime CLI 48.0.8 (cargo install)" env -u RUSTC_WORKSPACE_WRAPPER cargo install --locked --quiet wasmtime-cli@48.0.8 \
  --no-default-features --features run,serve,cranelift,component-model,component-model-async,wasi-http,pooling-allocator,parallel-compilation \
  --root target/tools --target-dir target/tools-build
# The binary is kept; its 1.2 GB build is not needed again.
rm -rf target/tools-build
# End-to-end tests write to fake-gcs-server, started on 127.0.0.1 for the run and stopped after it.
stage "cargo test (build and run)" ./scripts/with-gcs-emulator.sh cargo test --locked --workspace
print_stage_times "test.sh stage times"
