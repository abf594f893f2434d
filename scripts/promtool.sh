#!/usr/bin/env bash
# Puts Prometheus's promtool at target/tools/bin/promtool, from the Debian
# package `prometheus` (downloaded and unpacked, not installed: no root
# needed), for tests/e2e/monitoring.rs. Prints its path. Kept across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=target/tools/bin/promtool
if ! "$tool" --version >/dev/null 2>&1; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download prometheus >/dev/null 2>&1) || {
    echo "cannot download the Debian package prometheus (for promtool): is apt configured?" >&2
    exit 1
  }
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  mkdir -p target/tools/bin
  # A rename, so that a test running promtool meanwhile never sees half a file.
  cp "$work/x/usr/bin/promtool" "$tool.$$"
  mv -f "$tool.$$" "$tool"
fi
"$tool" --version 2>&1 | head -1 | grep -q '^promtool, version 2\.' || {
  echo "$tool is not promtool 2.x" >&2
  exit 1
}
echo "$PWD/$tool"
