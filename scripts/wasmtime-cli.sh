#!/usr/bin/env bash
# Installs the wasmtime CLI of the release the host embeds under target/tools, unless it is there:
# the second runtime of tests/e2e/runtimes.rs, and the stock runtime of the compositions (`run`
# for the command, `serve` for the proxy). Its build takes about six minutes, much of it on one
# core, so .ci/run and scripts/test.sh start this in the background beside the checks and wait for
# it before the tests. Callers take turns on a lock: the second finds the binary and returns.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/tools
exec 9>target/tools/wasmtime-cli.lock
flock 9
if target/tools/bin/wasmtime --version 2>/dev/null | grep -q '^wasmtime 48\.0\.8' &&
   target/tools/bin/wasmtime serve --help >/dev/null 2>&1; then
  exit 0
fi
start=$SECONDS
# A build directory of its own, so that it never waits for the tools' cargo install in .ci/run.
cargo install --locked --quiet --force wasmtime-cli@48.0.8 \
  --no-default-features --features run,serve,cranelift,component-model,component-model-async,wasi-http,pooling-allocator,parallel-compilation \
  --root target/tools --target-dir target/wasmtime-cli-build
# The binary is kept; its 1.2 GB build is not needed again.
rm -rf target/wasmtime-cli-build
echo "wasmtime CLI 48.0.8 built in $((SECONDS - start)) s"
