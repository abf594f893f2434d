//! The Harness audit-trail source.
//!
//! The modules below are plain Rust, tested natively; the `component` module
//! is the only WebAssembly-specific code: it binds them to the
//! `harness:audit` world (`wit/world.wit`).

pub mod cursor;
pub mod error;
pub mod pacing;
pub mod page;
pub mod pass;
pub mod request;
pub mod retry;
pub mod settings;
pub mod shape;

#[cfg(target_arch = "wasm32")]
#[expect(
    unsafe_code,
    reason = "wit-bindgen's generated ABI glue exports functions by name"
)]
mod component;
