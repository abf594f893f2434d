#!/usr/bin/env bash
# Copies the WASI 0.2 WIT that the reference host implements (wasmtime-wasi-http,
# pinned in Cargo.lock) into wit/deps, so guest and host bind the same version.
# CI runs it and fails on any diff: never edit wit/deps by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=$(cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasmtime-wasi-http"))')
src="$(dirname "$manifest")/wit/deps"
rm -rf wit/deps
mkdir -p wit/deps
for pkg in cli clocks filesystem http io random sockets; do
  mkdir -p "wit/deps/$pkg"
  cp "$src/$pkg.wit" "wit/deps/$pkg/$pkg.wit"
done
