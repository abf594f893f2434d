//! The engine settings compiled code depends on, in one place: the host's
//! engine is built from them, and so is the build script's, which
//! precompiles the embedded component so that a start loads native code
//! instead of compiling. This file depends on wasmtime alone, so that
//! `build.rs` can include it.

/// The settings every engine of this host starts from (the pooling
/// allocator of `serve` is added on top, and does not change compiled code).
pub fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    // Stops a component that never returns: each call gets a deadline.
    config.epoch_interruption(true);
    config
}
