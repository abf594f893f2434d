//! Host bindings for the `harness:audit` world, generated from `wit/`.
//!
//! WASI interfaces map onto wasmtime-wasi's own bindings, which the linker
//! already provides; only `harness:audit` is generated here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "audit-source",
    imports: { default: async },
    exports: { default: async },
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
