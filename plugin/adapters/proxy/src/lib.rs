//! `harness-audit-proxy`: the runner of `dist/harness-audit-proxy.wasm`, the
//! source composed into `wasi:http/proxy` (`wasmtime serve`, Spin,
//! wasmCloud). It holds no Harness logic: `scripts/dist.sh` composes it with
//! the embedded source and the sink (`plugin/adapters/wit/adapter.wit`).
//!
//! A proxy host keeps nothing between requests, so the checkpoint travels
//! with them. A `POST` carries the last line of the previous response (or
//! nothing, the first time); the answer streams the new events as NDJSON,
//! and its last line is `{"harnessAuditCheckpoint":...}`, the checkpoint
//! covering every line before it, with `"harnessAuditError"` when the pass
//! failed part way. Settings and the key come from the environment, as the
//! command reads them.

#[cfg(target_arch = "wasm32")]
#[expect(
    unsafe_code,
    reason = "wit-bindgen's generated ABI glue exports functions by name"
)]
mod proxy;
