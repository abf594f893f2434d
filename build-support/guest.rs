// Shared by the build scripts that compile guest components (`host/build.rs`,
// `tests/build.rs`) and by the dist binary (`compose/src/main.rs`), included
// with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Cargo profile guests are built with (declared in the workspace's Cargo.toml).
const GUEST_PROFILE: &str = "guest";

/// Builds workspace package `package` for wasm32-wasip2 (profile `guest`) and
/// returns the component's path. The nested cargo uses its own target directory
/// under the outer one, so it never waits on the outer build's lock. It is
/// shared by every profile and build script that builds guests, and by the
/// wasm32 clippy in scripts/test.sh, so their proc-macros are built once.
#[allow(
    dead_code,
    reason = "the dist binary includes this file but builds with build_guest_in"
)]
pub fn build_guest(package: &str) -> PathBuf {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("wasm-guests");
    let artifact = build_guest_in(workspace, &target_dir, package);
    emit_rerun_from_depfile(&artifact.with_extension("d"));
    for path in ["wit", "Cargo.lock", "build-support"] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    artifact
}

/// Builds `package` of `workspace` for wasm32-wasip2 (profile `guest`) in
/// `target_dir`, and returns the component's path.
pub fn build_guest_in(workspace: &Path, target_dir: &Path, package: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--profile",
            GUEST_PROFILE,
            "--target",
            "wasm32-wasip2",
            "--package",
            package,
            "--target-dir",
        ])
        .arg(target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        // Under `cargo clippy` the build script inherits clippy-driver as the
        // workspace's compiler; guests compiled by it get other symbol hashes
        // and are compiled again by `cargo test`, and the host would embed
        // other bytes than `dist/` holds.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("running cargo to build a guest component");
    assert!(
        status.success(),
        "building guest `{package}` failed; is the target installed? run `rustup target add wasm32-wasip2`"
    );
    // A library component is named after its crate, a command after its binary.
    let built = target_dir.join("wasm32-wasip2").join(GUEST_PROFILE);
    [package.replace('-', "_"), package.to_owned()]
        .iter()
        .map(|name| built.join(format!("{name}.wasm")))
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "cargo built `{package}` but left no component in {}",
                built.display()
            )
        })
}

#[allow(
    dead_code,
    reason = "the dist binary includes this file but builds with build_guest_in"
)]
fn emit_rerun_from_depfile(depfile: &Path) {
    let deps = std::fs::read_to_string(depfile).unwrap_or_default();
    let Some((_, inputs)) = deps.split_once(": ") else {
        return;
    };
    for input in inputs.split_whitespace() {
        println!("cargo:rerun-if-changed={input}");
    }
}
