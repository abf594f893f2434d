//! `dist`: builds the released set into a directory (default `dist/`):
//! the source the host embeds, its compositions, and `SHA256SUMS`.
//! Run it with `scripts/dist.sh`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use harness_audit_compose::dist_set;
use sha2::{Digest, Sha256};

#[path = "../../build-support/guest.rs"]
mod guest;

fn main() -> Result<()> {
    let out = match std::env::args_os().skip(1).collect::<Vec<_>>().as_slice() {
        [] => PathBuf::from("dist"),
        [dir] => PathBuf::from(dir),
        _ => bail!("usage: dist [OUT_DIR]  (default: dist)"),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the compose crate sits in the workspace")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from)
        .join("wasm-guests");
    let set = dist_set(|package| -> Result<Vec<u8>> {
        let path = guest::build_guest_in(workspace, &target, package);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    })?;

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut sums = String::new();
    for (name, bytes) in &set {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        sums.push_str(&format!("{:x}  {name}\n", Sha256::digest(bytes)));
    }
    let path = out.join("SHA256SUMS");
    std::fs::write(&path, &sums).with_context(|| format!("writing {}", path.display()))?;
    eprint!("dist: wrote to {}:\n{sums}", out.display());
    Ok(())
}
