// Shared by the build scripts that compile guest components (`host/build.rs`,
// `tests/build.rs`), included with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds workspace package `package` for wasm32-wasip2 (release) and returns
/// the component's path. The nested cargo uses its own target directory under
/// the outer one, so it never waits on the outer build's lock, and it is shared
/// by every profile and build script that builds guests.
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
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--package",
            package,
            // Guests are small: whole-program optimisation costs seconds and
            // makes the source's hot loop (parse, dedupe, copy) markedly faster.
            "--config",
            "profile.release.lto=true",
            "--config",
            "profile.release.codegen-units=1",
            // 128-bit SIMD (every WASI 0.2 runtime has it, V8 included) lets
            // JSON scanning and copies work on more than four bytes at a time.
            "--config",
            "target.wasm32-wasip2.rustflags=[\"-Ctarget-feature=+simd128\"]",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running cargo to build a guest component");
    assert!(
        status.success(),
        "building guest `{package}` failed; is the target installed? run `rustup target add wasm32-wasip2`"
    );
    // A library component is named after its crate, a command after its binary.
    let release = target_dir.join("wasm32-wasip2/release");
    let artifact = [package.replace('-', "_"), package.to_owned()]
        .iter()
        .map(|name| release.join(format!("{name}.wasm")))
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "cargo built `{package}` but left no component in {}",
                release.display()
            )
        });
    emit_rerun_from_depfile(&artifact.with_extension("d"));
    for path in ["wit", "Cargo.lock", "build-support"] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    artifact
}

fn emit_rerun_from_depfile(depfile: &Path) {
    let deps = std::fs::read_to_string(depfile).unwrap_or_default();
    let Some((_, inputs)) = deps.split_once(": ") else {
        return;
    };
    for input in inputs.split_whitespace() {
        println!("cargo:rerun-if-changed={input}");
    }
}
