//! Host bindings for the `harness:audit` world, generated from `wit/`.
//!
//! WASI interfaces map onto wasmtime-wasi's own bindings, which the linker
//! already provides; only `harness:audit` is generated here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "audit-source",
    // `emit` may end the component's call with a trap that carries the
    // host's typed error (see engine::host_state and engine::error::EmitFailure).
    imports: { "harness:audit/emit.emit": async | trappable, default: async },
    exports: { default: async },
    trappable_error_type: {
        "harness:audit/types.emit-error" => crate::engine::error::EmitFailure,
    },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
    },
});

pub use harness::audit::types::{
    ApiFailure, ApiFlavor, Batch, Budget, EmitError, PollReport, Quarantine, RateLimit, Settings,
    SourceError,
};
