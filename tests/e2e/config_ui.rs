//! Golden tests of configuration errors, as Spin keeps its manifest errors:
//! each case under `tests/ui/` is a `NAME.env` (one `VARIABLE=value` per
//! line) and/or a `NAME.toml` config file, beside `NAME.err`, the exact
//! message `harness-audit` gives. `HARNESS_AUDIT_BLESS=1` rewrites the
//! `.err` files from the current messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness_audit::config::{RawConfig, Validate as _};

/// The secret part of every key the cases use: no message may show it.
const SECRET: &str = "secretsecretsecret";

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui")
}

fn message(dir: &Path, name: &str) -> String {
    let env: BTreeMap<String, String> = std::fs::read_to_string(dir.join(format!("{name}.env")))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{name}.env: `{l}`"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let env = RawConfig::from_env_with(|name| env.get(name).cloned());
    let toml = dir.join(format!("{name}.toml"));
    let file = if toml.exists() {
        match RawConfig::from_toml_file(&toml) {
            Ok(file) => file,
            Err(e) => {
                return e
                    .to_string()
                    .replace(&dir.display().to_string(), "tests/ui");
            }
        }
    } else {
        RawConfig::default()
    };
    match env.over(file).validate() {
        Ok(_) => "(accepted)".to_owned(),
        Err(e) => e.to_string(),
    }
}

/// Every case gives exactly its recorded message, which names what to fix and never the key.
#[test]
fn config_errors_match_their_golden_files() {
    let dir = ui_dir();
    let bless = std::env::var_os("HARNESS_AUDIT_BLESS").is_some();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let ext = path.extension()?.to_str()?;
            matches!(ext, "env" | "toml").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(
        names.len() >= 20,
        "only {} cases under tests/ui",
        names.len()
    );
    let mut mismatches = Vec::new();
    for name in &names {
        let actual = message(&dir, name).trim_end().to_owned();
        assert!(
            !actual.contains(SECRET),
            "{name}: the message shows the key: {actual}"
        );
        let golden = dir.join(format!("{name}.err"));
        if bless {
            std::fs::write(&golden, format!("{actual}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write it with HARNESS_AUDIT_BLESS=1",
                golden.display()
            )
        });
        if expected.trim_end() != actual {
            mismatches.push(format!(
                "{name}:\n  expected: {}\n  actual:   {actual}",
                expected.trim_end()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(HARNESS_AUDIT_BLESS=1 rewrites the .err files)",
        mismatches.join("\n")
    );
}

/// One reader and one validation: for every case whose variables a
/// composition runner reads too, the runner refuses it with the host's very
/// message. (The runners take any key as it is and refuse the host's own
/// settings outright, so cases about the key or a host-only setting differ by
/// design and are left out; so does a base URL that does not parse, which the
/// host reads into a URL for its egress policy before the core sees it.)
#[test]
fn the_composition_runners_give_the_host_s_message_for_the_same_variables() {
    let dir = ui_dir();
    let runner_reads: Vec<&str> = harness_audit_runner::environment::reads()
        .map(|s| s.env)
        .collect();
    let mut compared = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("env")
            || path.with_extension("toml").exists()
        {
            continue;
        }
        let env: BTreeMap<String, String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let golden = std::fs::read_to_string(path.with_extension("err")).unwrap();
        let golden = golden.trim_end();
        if !env
            .keys()
            .all(|k| runner_reads.contains(&k.as_str()) || k.starts_with("HARNESS_API_KEY"))
            || golden.contains("HARNESS_API_KEY")
            || golden.contains("is not a URL")
        {
            continue;
        }
        let runner = harness_audit_runner::environment::parse(|name| env.get(name).cloned())
            .map(|_| "(accepted)".to_owned())
            .unwrap_or_else(|e| e);
        assert_eq!(runner, golden, "{}", path.display());
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} cases compared");
}
