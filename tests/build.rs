//! Builds the fixture guests from source and exposes their paths as constants.

#[path = "../build-support/guest.rs"]
mod guest;

fn main() {
    let probe = guest::build_guest("guest-probe");
    let misbehave = guest::build_guest("guest-misbehave");
    let command = guest::build_guest("harness-audit-command");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("guests.rs");
    let code = format!(
        "/// The sandbox-probe fixture component (`tests/fixtures/guest-probe`).\npub const GUEST_PROBE: &str = {:?};\n\
         /// The limit-breaking fixture component (`tests/fixtures/guest-misbehave`).\npub const GUEST_MISBEHAVE: &str = {:?};\n\
         /// The command variant (`plugin/command`), a `wasi:cli/command`.\npub const COMMAND_WASM: &str = {:?};\n",
        probe.display().to_string(),
        misbehave.display().to_string(),
        command.display().to_string()
    );
    std::fs::write(out, code).expect("writing guests.rs");
}
