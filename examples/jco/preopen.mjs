// `jco run --jco-import examples/jco/preopen.mjs harness-audit-command.wasm --state-dir /state`:
// jco run grants no directory by default; this grants one, HARNESS_AUDIT_STATE_DIR (default
// ./state), as /state, for the command composition's checkpoint. Nothing else is preopened.
import { _setPreopens } from '@bytecodealliance/preview2-shim/filesystem';

_setPreopens({ '/state': process.env.HARNESS_AUDIT_STATE_DIR ?? 'state' });
