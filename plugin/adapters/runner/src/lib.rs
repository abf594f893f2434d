//! What the runners of the `dist/` compositions (`plugin/adapters/command`,
//! `plugin/adapters/proxy`) share: their settings, from the Cloud Run recipe's
//! environment variables, and one pass of the source they import, whose
//! batches the sink writes (`plugin/adapters/wit/adapter.wit`).

pub mod environment;
#[cfg(target_arch = "wasm32")]
pub mod pass;

/// The imports of a runner: the source, and the sink's `output`. The
/// runners' own bindings map `wasi:io` here, so that a stream they open is
/// the one the sink takes.
#[cfg(target_arch = "wasm32")]
pub mod bindings {
    wit_bindgen::generate!({
        path: ["../../../wit", "../wit"],
        world: "harness:adapter/runner",
        generate_all,
    });
}
