//! Builds the fixture guests from source and exposes their paths as constants.

#[path = "../build-support/guest.rs"]
mod guest;

fn main() {
    let probe = guest::build_guest("guest-probe");
    let misbehave = guest::build_guest("guest-misbehave");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("guests.rs");
    let code = format!(
        "/// The sandbox-probe fixture component (`tests/fixtures/guest-probe`).\npub const GUEST_PROBE: &str = {:?};\n\
         /// The limit-breaking fixture component (`tests/fixtures/guest-misbehave`).\npub const GUEST_MISBEHAVE: &str = {:?};\n",
        probe.display().to_string(),
        misbehave.display().to_string()
    );
    std::fs::write(out, code).expect("writing guests.rs");
}
