# Sourced by scripts/test.sh and .ci/run: `stage NAME CMD...` runs CMD and
# records its wall time; `print_stage_times TITLE` prints them all.
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
