//! Builds the source component from `plugin/` and places it in OUT_DIR for
//! `include_bytes!`, so the binary is self-contained, beside its native code
//! compiled with the host's own engine settings, so that a start loads that
//! code instead of compiling (the host compiles only if its engine differs).

#[path = "src/engine/compiler_settings.rs"]
mod compiler_settings;
#[path = "../build-support/guest.rs"]
mod guest;

fn main() {
    let wasm = guest::build_guest("harness-audit-plugin");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::copy(&wasm, out.join("harness_audit_plugin.wasm"))
        .expect("copying the built component into OUT_DIR");
    println!("cargo:rerun-if-changed=src/engine/compiler_settings.rs");
    // Native code runs only on the machine it was compiled for: a cross
    // build embeds none, and the host compiles at start.
    let native = if std::env::var("TARGET") == std::env::var("HOST") {
        let engine = wasmtime::Engine::new(&compiler_settings::engine_config())
            .expect("the host's engine settings are valid");
        let bytes = std::fs::read(&wasm).expect("reading the built component");
        engine
            .precompile_component(&bytes)
            .expect("the built component compiles")
    } else {
        Vec::new()
    };
    std::fs::write(out.join("harness_audit_plugin.cwasm"), native)
        .expect("writing the native code into OUT_DIR");
}
