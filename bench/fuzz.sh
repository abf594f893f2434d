#!/usr/bin/env bash
# Every fuzz target of fuzz/ at length, under libFuzzer with AddressSanitizer
# (cargo fuzz on nightly, both installed here if missing): the long pass that
# CI's short one (fuzz/tests/smoke.rs, a few seconds a target) stands for.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 600 s for each of page event pass checkpoint state batch config
# tenants. Each target keeps its corpus in fuzz/libfuzzer/corpus/<target>
# (so a later run goes on from it) and its log in fuzz/libfuzzer/logs; a
# crash, hang (over 10 s) or an input using over 2 GiB stops it, with the
# input saved in fuzz/libfuzzer/artifacts/<target>. The summary line of each
# log gives the inputs tried.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(page event pass checkpoint state batch config tenants)
fi
rustup toolchain install nightly --profile minimal >/dev/null
# host/build.rs builds the guest with the toolchain that builds the host.
rustup target add --toolchain nightly wasm32-wasip2 >/dev/null
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz@0.13.2
fi
cd fuzz/libfuzzer
mkdir -p logs
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "== $target: ${seconds} s"
  if ! cargo +nightly fuzz run --fuzz-dir . "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      > "logs/$target.log" 2>&1; then
    status=1
    echo "$target FAILED: see fuzz/libfuzzer/logs/$target.log and artifacts/$target"
  fi
  grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs|^#[0-9]+ +DONE' "logs/$target.log" | tail -2 || true
done
exit $status
