use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness_tests::{Freedoms, KeyGrant, MockHarness, SeedSpec, generate, make_key};

pub const ACCOUNT: &str = "Xy3kQ9mTR0aWb1cD2eF4gH";
/// The default data prefix.
pub const PREFIX: &str = "harness/audit/";
/// The default `STATE_KEY`.
pub const CHECKPOINT: &str = "harness-audit-state/checkpoint.json";
/// No single run may take longer; a hung run is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A mock with seeded events, a key for it, and an output directory.
pub struct Env {
    pub mock: MockHarness,
    pub key: String,
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts a successful pass that collected exactly `events` events.
    pub fn assert_collected(&self, events: usize) {
        assert_eq!(self.code, 0, "{}", self.stderr);
        let expected = format!("collected {events} events in ");
        assert!(self.stdout.starts_with(&expected), "{}", self.stdout);
    }
}

impl Env {
    /// `events` events spread over the 50 minutes before now.
    pub fn new(events: usize) -> Self {
        Self::with_freedoms(events, Freedoms::default())
    }

    /// Like [`Env::new`], with the API's `freedoms` granted before the events are inserted.
    pub fn with_freedoms(events: usize, freedoms: Freedoms) -> Self {
        Self::account(events, freedoms, ACCOUNT, "E2eToken00000000000000", 11)
    }

    /// A mock of its own for `account`, whose key has `token` as its id, with
    /// `events` events generated from `seed`.
    pub fn account(
        events: usize,
        freedoms: Freedoms,
        account: &str,
        token: &str,
        seed: u64,
    ) -> Self {
        let key = make_key(account, token);
        let grants = vec![
            KeyGrant {
                key: key.clone(),
                can_view: true,
            },
            KeyGrant {
                key: make_key(account, "NoAuditView00000000000"),
                can_view: false,
            },
        ];
        let mock = MockHarness::start(account, grants).unwrap();
        mock.set_freedoms(freedoms);
        let now = now_ms();
        mock.insert(generate(&SeedSpec {
            account_id: account.into(),
            count: events,
            start_ms: now - 50 * 60_000,
            end_ms: now - 2_000,
            seed,
        }));
        Self {
            mock,
            key,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn out(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `harness-audit run` with the recipe's variables plus `extra`.
    pub fn run(&self, extra: &[(&str, &str)]) -> Run {
        self.run_with(&["run"], extra)
    }

    pub fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let (mut command, vars) = self.command(args, extra);
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let Output {
            status,
            stdout,
            stderr,
        } = output_within(child, RUN_TIMEOUT, "harness-audit");
        let run = Run {
            code: status.code().expect("exited, not killed"),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        };
        for key in [self.key.as_str(), vars["HARNESS_API_KEY"].as_str()]
            .into_iter()
            .filter(|k| !k.is_empty())
        {
            let secret = key.rsplit('.').next().unwrap();
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "the API key leaked:\n{}",
                run.stderr
            );
            assert_no_secret_in_files(self.out(), secret);
        }
        run
    }

    /// `harness-audit <args>` with the recipe's variables plus `extra`, and
    /// nothing else from the test's environment; stdin closed.
    pub fn command(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> (Command, BTreeMap<String, String>) {
        let mut vars: BTreeMap<&str, &str> = BTreeMap::from([
            ("HARNESS_API_BASE", ""),
            ("HARNESS_ACCOUNT_ID", ACCOUNT),
            ("HARNESS_API_KEY", self.key.as_str()),
            ("OUTPUT_DIR", self.out().to_str().unwrap()),
            ("RETRY_BASE_MS", "1"),
            ("SETTLE_LAG_SECONDS", "0"),
            ("MAX_REQUESTS_PER_MINUTE", "0"),
        ]);
        let base = self.mock.base_url();
        vars.insert("HARNESS_API_BASE", &base);
        vars.extend(extra.iter().copied());
        let mut command = Command::new(env!("CARGO_BIN_EXE_harness-audit"));
        command
            .args(args)
            .env_clear()
            .envs(vars.iter().filter(|(_, v)| !v.is_empty()))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        (command, vars)
    }

    /// Every file under the output directory with its content.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(self.out(), &mut files);
        files
    }

    /// The data objects (`.jsonl` under the prefix).
    pub fn objects(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.snapshot()
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "jsonl"))
            .collect()
    }

    /// Every stored line under the default data prefix, sorted (object
    /// names are not time-ordered within a second).
    pub fn sorted_lines(&self) -> Vec<String> {
        self.sorted_lines_under(PREFIX)
    }

    /// Every stored line of the objects under `prefix` (relative to the output directory), sorted.
    pub fn sorted_lines_under(&self, prefix: &str) -> Vec<String> {
        let root = self.out().join(prefix);
        let mut lines: Vec<String> = self
            .objects()
            .into_iter()
            .filter(|(path, _)| path.starts_with(&root))
            .flat_map(|(_, bytes)| {
                String::from_utf8(bytes)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        lines
    }

    pub fn checkpoint(&self) -> Option<Vec<u8>> {
        std::fs::read(self.out().join(CHECKPOINT)).ok()
    }

    /// The committed checkpoint inside the state file, without the state's
    /// other records.
    pub fn committed(&self) -> Option<serde_json::Value> {
        let state: serde_json::Value = serde_json::from_slice(&self.checkpoint()?).ok()?;
        Some(state["checkpoint"].clone())
    }

    /// The events of every quarantine object, byte for byte, sorted.
    pub fn quarantined(&self) -> Vec<Vec<u8>> {
        let root = self.out().join("harness/audit-quarantine");
        let mut events: Vec<Vec<u8>> = self
            .objects()
            .into_iter()
            .filter(|(path, _)| path.starts_with(&root))
            .flat_map(|(_, bytes)| harness_tests::stored::lines(&bytes))
            .collect();
        events.sort();
        events
    }
}

/// `harness-audit run` into `bucket` of the emulator (or a proxy) at `host`, plus `extra`.
pub fn run_gcs(env: &Env, host: &str, bucket: &str, extra: &[(&str, &str)]) -> Run {
    let mut vars = vec![("GCS_BUCKET", bucket), ("STORAGE_EMULATOR_HOST", host)];
    vars.extend_from_slice(extra);
    env.run(&vars)
}

/// `serve --once` on `tenants` with `args` and only `envs` as its
/// environment, within `timeout`: its exit code and stderr.
pub fn serve_once(
    tenants: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> (i32, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_harness-audit"))
        .args(["serve", "--config", tenants.to_str().unwrap(), "--once"])
        .args(args)
        .env_clear()
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = output_within(child, timeout, "serve --once");
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Waits for `child` and collects its output, killing it and failing the test
/// after `timeout`. Output is collected on another thread so a full pipe can
/// never stall the child.
pub fn output_within(child: std::process::Child, timeout: Duration, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(timeout) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{what} did not finish within {timeout:?}");
        }
    }
}

/// Fails if `secret` appears in any file under `dir`: objects, state files, logs.
pub fn assert_no_secret_in_files(dir: &Path, secret: &str) {
    let found = harness_tests::secrets::files_containing(dir, secret);
    assert!(found.is_empty(), "a key leaked into {found:?}");
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every `.rs` file under `dir`, at any depth; none when `dir` does not exist.
pub fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Fails unless `stored` holds each of `expected`'s lines exactly once,
/// naming how many are missing and repeated rather than printing them all.
pub fn assert_exact(stored: Vec<String>, expected: Vec<String>, context: &str) {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for line in &stored {
        *seen.entry(line.as_str()).or_default() += 1;
    }
    let repeated = seen.values().filter(|n| **n > 1).count();
    let missing = expected
        .iter()
        .filter(|l| !seen.contains_key(l.as_str()))
        .count();
    let unexpected = stored.len() + missing - repeated_total(&seen) - expected.len();
    assert!(
        repeated == 0 && missing == 0 && unexpected == 0,
        "{context}: {} lines stored for {} events: {missing} missing, {repeated} stored more than once, \
         {unexpected} not from the API",
        stored.len(),
        expected.len()
    );
}

fn repeated_total(seen: &std::collections::BTreeMap<&str, usize>) -> usize {
    seen.values().map(|n| n - 1).sum()
}
