//! Builds the fixture guests from source, composes the command and the proxy
//! as `scripts/dist.sh` does, and exposes their paths as constants.

#[path = "../build-support/guest.rs"]
mod guest;

use harness_audit_compose::{Parts, compose};

fn main() {
    let probe = guest::build_guest("guest-probe");
    let misbehave = guest::build_guest("guest-misbehave");
    let read = |package: &str| {
        let path = guest::build_guest(package);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    };
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let (source, sink) = (read("harness-audit-plugin"), read("harness-audit-sink"));
    let composed = |runner: &str| {
        let path = out_dir.join(format!("{runner}.wasm"));
        let bytes = compose(Parts {
            source: &source,
            sink: &sink,
            runner: &read(runner),
        })
        .unwrap_or_else(|e| panic!("composing {runner}: {e}"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    };
    let command = composed("harness-audit-command");
    let proxy = composed("harness-audit-proxy");
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
