//! The Harness audit-trail source's core: everything but the bindings.
//!
//! The modules are plain Rust, tested natively, except `wasi`, which performs
//! the core's effects through WASI 0.2. Two thin wrappers bind the core to a
//! world: `plugin/` exports the `harness:audit` source (`wit/world.wit`), and
//! `plugin/command` is a `wasi:cli/command` for stock runtimes.

pub mod cursor;
pub mod error;
mod keys;
pub mod pacing;
pub mod page;
pub mod pass;
pub mod request;
pub mod retry;
pub mod settings;
pub mod shape;

#[cfg(target_arch = "wasm32")]
pub mod wasi;
