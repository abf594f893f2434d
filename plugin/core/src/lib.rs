//! The Harness audit-trail source's core: everything but the bindings.
//!
//! The modules are plain Rust, tested natively, except `wasi`, which performs
//! the core's effects through WASI 0.2. `plugin/` binds the core to the
//! `harness:audit` world (`wit/world.wit`); stock runtimes run that same
//! component, composed with the adapters in `plugin/adapters`.

pub mod checkpoint;
pub mod error;
pub mod event;
pub mod ledger;
pub mod pacing;
pub mod page;
pub mod pass;
pub mod report;
pub mod request;
pub mod retry;
mod scan;
pub mod settings;
pub mod shape;
pub mod vocabulary;
pub mod walk;

#[cfg(target_arch = "wasm32")]
pub mod wasi;
