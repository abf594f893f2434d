//! Builds the fixture guests from source, makes the `dist/` set as
//! `scripts/dist.sh` does, and exposes the paths of the guests and the
//! compositions as constants.

#[path = "../build-support/guest.rs"]
mod guest;

use harness_audit_compose::{ComposeError, dist_set};

fn main() {
    let probe = guest::build_guest("guest-probe");
    let misbehave = guest::build_guest("guest-misbehave");
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let set = dist_set(|package| -> Result<Vec<u8>, ComposeError> {
        let path = guest::build_guest(package);
        Ok(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let written = |file: &str| {
        let (_, bytes) = set.iter().find(|(name, _)| *name == file).unwrap();
        let path = out_dir.join(file);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    };
    let command = written("harness-audit-command.wasm");
    let proxy = written("harness-audit-proxy.wasm");
    let code = format!(
        "/// The sandbox-probe fixture component (`tests/fixtures/guest-probe`).\npub const GUEST_PROBE: &str = {:?};\n\
         /// The limit-breaking fixture component (`tests/fixtures/guest-misbehave`).\npub const GUEST_MISBEHAVE: &str = {:?};\n\
         /// The command composition (`dist/harness-audit-command.wasm`), a `wasi:cli/command`.\npub const COMMAND_WASM: &str = {:?};\n\
         /// The proxy composition (`dist/harness-audit-proxy.wasm`), a `wasi:http/proxy`.\npub const PROXY_WASM: &str = {:?};\n",
        probe.display().to_string(),
        misbehave.display().to_string(),
        command.display().to_string(),
        proxy.display().to_string()
    );
    std::fs::write(out_dir.join("guests.rs"), code).expect("writing guests.rs");
}
