//! Builds the source component from `plugin/` and places it in OUT_DIR for
//! `include_bytes!`, so the binary is self-contained.

#[path = "../build-support/guest.rs"]
mod guest;

fn main() {
    let wasm = guest::build_guest("harness-audit-plugin");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap())
        .join("harness_audit_plugin.wasm");
    std::fs::copy(&wasm, &out).expect("copying the built component into OUT_DIR");
}
