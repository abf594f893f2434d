# Sourced by scripts/test.sh and .ci/run: `stage NAME CMD...` runs CMD and
# records its wall time; `print_stage_times TITLE` prints them all.
# `beside NAME LOG CMD...` starts CMD in the background, in a process group of
# its own that is stopped if the script ends first, with its output in LOG;
# `await` waits for it, records its wall time and the part of it spent
# waiting, and prints LOG if it failed. One such job at a time.
stage_times=()
stage() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  stage_times+=("$(printf '%-48s %5d s' "$name" $((SECONDS - start)))")
}
print_stage_times() {
  printf '%s:\n' "$1"
  printf '  %s\n' "${stage_times[@]}"
}
beside() {
  beside_name=$1 beside_log=$2 beside_start=$SECONDS
  shift 2
  setsid "$@" >"$beside_log" 2>&1 &
  beside_pid=$!
  trap 'kill -- -"$beside_pid" 2>/dev/null || true' EXIT
}
await() {
  local waited=$SECONDS status=0
  wait "$beside_pid" || status=$?
  trap - EXIT
  stage_times+=("$(printf '%-48s %5d s (%d s waited for)' "$beside_name, beside" \
    $((SECONDS - beside_start)) $((SECONDS - waited)))")
  if [ "$status" -ne 0 ]; then
    echo "$beside_name failed (exit $status); its output, $beside_log:" >&2
    cat "$beside_log" >&2
    return "$status"
  fi
}
