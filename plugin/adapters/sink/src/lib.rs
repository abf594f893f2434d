//! The sink of the `dist/` compositions (`plugin/adapters/wit/adapter.wit`):
//! it provides the source's `emit` and writes each batch's lines to the
//! stream the runner attached (stdout for the command, the response body for
//! the proxy). It keeps the batch's checkpoint for the runner, which stores
//! it or hands it back to the caller: the sink itself holds no storage.

#[cfg(target_arch = "wasm32")]
#[expect(
    unsafe_code,
    reason = "wit-bindgen's generated ABI glue exports functions by name"
)]
mod sink;
