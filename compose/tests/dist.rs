//! `scripts/dist.sh` (the `dist` binary): the set it writes, and its sums.

use std::process::Command;

use sha2::{Digest, Sha256};

#[test]
fn dist_writes_the_embedded_source_its_composition_and_their_sums() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_dist"))
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "dist failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |name: &str| std::fs::read(out.path().join(name)).unwrap();

    let source = read("harness-audit-source.wasm");
    assert!(
        source == harness_audit::engine::EMBEDDED_COMPONENT,
        "dist's source is not the component the host embeds"
    );
    for composition in ["harness-audit-command.wasm", "harness-audit-proxy.wasm"] {
        assert!(
            read(composition).windows(source.len()).any(|w| w == source),
            "{composition} does not hold the source byte for byte"
        );
    }

    let sums = String::from_utf8(read("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .map(|line| {
            let (digest, name) = line.split_once("  ").expect("`<sha256>  <file>` lines");
            assert_eq!(
                digest,
                format!("{:x}", Sha256::digest(read(name))),
                "SHA256SUMS is wrong for {name}"
            );
            name
        })
        .collect();
    assert_eq!(
        listed,
        [
            "harness-audit-source.wasm",
            "harness-audit-command.wasm",
            "harness-audit-proxy.wasm"
        ]
    );
}
