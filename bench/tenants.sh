#!/usr/bin/env bash
# The multi-tenant round: `serve` with N tenants (default 1,000), one page of
# events each, against the mock Harness on 127.0.0.1, release build. Reports
# the wall time of the round, instantiation p50/p99 (from /metrics), peak RSS,
# RSS per concurrently running tenant (peak RSS at --max-concurrent 8 minus
# peak RSS at 1, divided by 7), and the process CPU per idle pass: each
# tenant's second pass, over an empty window, measured from /proc between the
# round where every tenant ran once and the one where every tenant ran twice.
# Usage: bench/tenants.sh [TENANTS]
set -euo pipefail
cd "$(dirname "$0")/.."
tenants="${1:-1000}"
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked -p harness-audit -p harness-tests --bin harness-audit --bin mock-harness

work=$(mktemp -d)
info="$work/mock.json"
./target/release/mock-harness --events 50 --minutes 30 --exit-after-secs 1800 >"$info" &
mock=$!
serve_pid=""
trap 'kill $mock $serve_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$info" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$info" "$1"; }
base=$(field base_url); account=$(field account_id); export BENCH_KEY=$(field api_key)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A quantile of the instantiation histogram: the upper bound of the first bucket
# holding it (buckets grow by 1.5x, so within 50% above the true value).
quantile() {
  curl -fsS "http://$1/metrics" | python3 -c '
import sys
q = float(sys.argv[1])
buckets = []
for line in sys.stdin:
    if line.startswith("harness_audit_instantiate_seconds_bucket{le="):
        le = line.split("\"")[1]
        buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
total = buckets[-1][1]
print(next(le for le, n in buckets if n >= q * total))
' "$2"
}

# One round at the given concurrency; prints "wall_s peak_rss_kib p50_s p99_s".
round() {
  local concurrent=$1 dir="$work/c$1" addr
  mkdir -p "$dir"
  {
    printf '[defaults]\napi_base = "%s"\naccount_id = "%s"\napi_key_env = "BENCH_KEY"\n' "$base" "$account"
    printf 'interval_secs = 86400\njitter_secs = 0\npage_size = 100\nsettle_lag_secs = 0\nmax_requests_per_minute = 0\nmax_memory_mib = 64\n'
    for i in $(seq -w 0 $((tenants - 1))); do
      printf '\n[[tenant]]\nid = "t%s"\noutput_dir = "%s/t%s"\n' "$i" "$dir" "$i"
    done
  } >"$dir/tenants.toml"
  addr="127.0.0.1:$(port)"
  local start=$(date +%s.%N)
  RUST_LOG=warn ./target/release/harness-audit serve --config "$dir/tenants.toml" \
    --max-concurrent "$concurrent" --metrics-addr "$addr" 2>"$dir/serve.log" &
  serve_pid=$!
  local done=0
  for _ in $(seq 6000); do
    # Until serve has compiled the component and listens, curl fails: not an error.
    done=$({ curl -fsS "http://$addr/metrics" 2>/dev/null || true; } | awk '$1 ~ /^harness_audit_passes_total/ && $2 >= 1 { n++ } END { print n + 0 }')
    [ "$done" -ge "$tenants" ] && break
    sleep 0.05
  done
  local end=$(date +%s.%N)
  [ "$done" -ge "$tenants" ] || { echo "only $done of $tenants tenants ran" >&2; cat "$dir/serve.log" >&2; exit 1; }
  local p50 p99 hwm failed
  p50=$(quantile "$addr" 0.5)
  p99=$(quantile "$addr" 0.99)
  failed=$(curl -fsS "http://$addr/metrics" | awk '$1 ~ /^harness_audit_errors_total/ { n += $2 } END { print n + 0 }')
  hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$serve_pid/status")
  kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=""
  [ "$failed" -eq 0 ] || { echo "$failed passes failed" >&2; cat "$dir/serve.log" >&2; exit 1; }
  echo "$(python3 -c "print(f'{$end - $start:.2f}')") $hwm $p50 $p99"
}

# CPU of the serve process (user + system), in seconds.
cpu_of() {
  python3 -c 'import os,sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$1"
}
passes_at_least() {
  { curl -fsS "http://$1/metrics" 2>/dev/null || true; } | awk -v k="$2" '$1 ~ /^harness_audit_passes_total/ && $2 >= k { n++ } END { print n + 0 }'
}

# Second passes over an empty window (no overlap, nothing new, no reconciliation
# due) at --max-concurrent 2; prints the process CPU per idle pass in ms. /metrics is
# read once a second here: rendering 10,000 tenants' figures costs CPU of its own.
idle() {
  local dir="$work/idle" addr interval=$((tenants / 100 + 20))
  mkdir -p "$dir"
  {
    printf '[defaults]\napi_base = "%s"\naccount_id = "%s"\napi_key_env = "BENCH_KEY"\n' "$base" "$account"
    printf 'interval_secs = %s\njitter_secs = 0\npage_size = 100\nsettle_lag_secs = 0\noverlap_secs = 0\n' "$interval"
    printf 'max_requests_per_minute = 0\nmax_memory_mib = 64\n'
    for i in $(seq -w 0 $((tenants - 1))); do
      printf '\n[[tenant]]\nid = "t%s"\noutput_dir = "%s/t%s"\n' "$i" "$dir" "$i"
    done
  } >"$dir/tenants.toml"
  addr="127.0.0.1:$(port)"
  RUST_LOG=warn ./target/release/harness-audit serve --config "$dir/tenants.toml" \
    --max-concurrent 2 --metrics-addr "$addr" 2>"$dir/serve.log" &
  serve_pid=$!
  local k cpu1 cpu2
  for k in 1 2; do
    for _ in $(seq 900); do
      [ "$(passes_at_least "$addr" "$k")" -ge "$tenants" ] && break
      sleep 1
    done
    [ "$(passes_at_least "$addr" "$k")" -ge "$tenants" ] || { echo "pass $k did not finish" >&2; cat "$dir/serve.log" >&2; exit 1; }
    if [ "$k" = 1 ]; then cpu1=$(cpu_of "$serve_pid"); else cpu2=$(cpu_of "$serve_pid"); fi
  done
  kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=""
  python3 -c "print(f'{($cpu2 - $cpu1) * 1000 / $tenants:.3f}')"
}

read -r wall1 hwm1 _ _ < <(round 1)
read -r wall8 hwm8 p50 p99 < <(round 8)
read -r wall2 hwm2 p50_2 p99_2 < <(round 2)
read -r idle_cpu_ms < <(idle)
python3 - "$tenants" "$wall1" "$hwm1" "$wall8" "$hwm8" "$p50" "$p99" "$wall2" "$hwm2" "$p50_2" "$p99_2" "$idle_cpu_ms" <<'PY'
import sys
n, wall1, hwm1, wall8, hwm8, p50, p99, wall2, hwm2, p50_2, p99_2, idle_cpu_ms = sys.argv[1:]
print(f"tenants: {n}, one page each, release build, {__import__('os').cpu_count()} cores")
print(f"round wall time: {float(wall2):.2f} s at --max-concurrent 2 ({float(wall1):.2f} s at 1, {float(wall8):.2f} s at 8)")
print(f"instantiate (histogram bucket bounds): p50 {float(p50_2)*1e6:.0f} us, p99 {float(p99_2)*1e6:.0f} us (at 8: p50 {float(p50)*1e6:.0f} us, p99 {float(p99)*1e6:.0f} us)")
print(f"peak RSS: {int(hwm1)/1024:.1f} MiB at 1 running, {int(hwm2)/1024:.1f} MiB at 2, {int(hwm8)/1024:.1f} MiB at 8")
print(f"RSS per concurrently running tenant: {(int(hwm8)-int(hwm1))/7/1024:.2f} MiB")
print(f"CPU per idle pass (an empty window, process total): {float(idle_cpu_ms):.2f} ms")
PY
