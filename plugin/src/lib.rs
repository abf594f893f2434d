//! The Harness audit-trail source component: binds the core
//! (`harness-audit-core`, in `plugin/core`) to the `harness:audit` world
//! (`wit/world.wit`). `cargo build --release --target wasm32-wasip2` here
//! produces the component that the host embeds.

#[cfg(target_arch = "wasm32")]
#[expect(
    unsafe_code,
    reason = "wit-bindgen's generated ABI glue exports functions by name"
)]
mod component;
