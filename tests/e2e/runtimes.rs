//! The same source under other runtimes: the component under jco in Node.js
//! (`examples/jco/host.mjs`), and the command composition
//! (`dist/harness-audit-command.wasm`, composed by `tests/build.rs` as
//! `scripts/dist.sh` does) under `jco run` and the `wasmtime` CLI, and the
//! proxy composition under `wasmtime serve`. Each must write exactly the
//! lines the Rust host writes from the same mock, and nothing on a second
//! pass; and, from a mock with every freedom of the API, every event it can
//! return exactly once over a few passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::{ACCOUNT, Env, output_within, sorted};

const EVENTS: usize = 700;
/// No runtime may take longer for one pass over `EVENTS` events.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn jco_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jco")
}

fn node_tool(name: &str) -> PathBuf {
    let tool = jco_dir().join("node_modules/.bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run `npm ci --prefix examples/jco` (scripts/test.sh does)",
        tool.display()
    );
    tool
}

/// The wasmtime CLI that scripts/test.sh installs under target/tools, or one on PATH.
fn wasmtime_cli() -> PathBuf {
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/wasmtime");
    if installed.exists() {
        return installed;
    }
    let on_path = Command::new("wasmtime").arg("--version").output();
    assert!(
        on_path.is_ok_and(|o| o.status.success()),
        "the wasmtime CLI is missing: run `cargo install --locked wasmtime-cli@48.0.8 --root target/tools` \
         (scripts/test.sh does)"
    );
    PathBuf::from("wasmtime")
}

/// Runs `command` to completion with a deadline, and checks that the key
/// reached none of its output.
fn finish(mut command: Command, key: &str) -> Output {
    // Stdout goes to a file, as the README runs these (`> events.jsonl`): `jco run`
    // ends with `process.exit`, which drops what Node still holds for a pipe.
    let out = tempfile::NamedTempFile::new().unwrap();
    let child = command
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = output_within(child, RUN_TIMEOUT, &format!("{command:?}"));
    output.stdout = std::fs::read(out.path()).unwrap();
    let secret = key.rsplit('.').next().unwrap();
    for stream in [&output.stdout, &output.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(secret),
            "the API key leaked:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

fn lines(bytes: &[u8]) -> Vec<String> {
    sorted(
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

/// What the Rust host writes from `env`'s mock; the reference for every runtime.
fn rust_host_lines(env: &Env) -> Vec<String> {
    env.run(&[]).assert_collected(EVENTS);
    let lines = env.sorted_lines();
    assert_eq!(lines, sorted(env.mock.events_json()));
    lines
}

/// The jco host writes the lines the Rust host writes, and keeps what the
/// component cannot read in its quarantine file, byte for byte, once.
#[test]
fn the_component_under_jco_writes_what_the_rust_host_writes() {
    let (env, kept) = odd_env();
    let expected = rust_host_data(&env);

    let work = tempfile::tempdir().unwrap();
    let component = work.path().join("harness_audit_plugin.wasm");
    std::fs::write(&component, harness_audit::engine::EMBEDDED_COMPONENT).unwrap();
    let generated = work.path().join("generated");
    let transpile = finish(
        {
            let mut c = Command::new(node_tool("jco"));
            c.arg("transpile")
                .arg(&component)
                .args([
                    "--instantiation",
                    "async",
                    "--name",
                    "source",
                    "--quiet",
                    "-o",
                ])
                .arg(&generated);
            c
        },
        &env.key,
    );
    assert!(
        transpile.status.success(),
        "jco transpile failed: {}",
        String::from_utf8_lossy(&transpile.stderr)
    );

    let output = work.path().join("out/events.jsonl");
    let quarantine = work.path().join("out/quarantine.jsonl");
    let run = serde_json::json!({
        "settings": {
            "query": {
                "apiBase": env.mock.base_url(),
                "accountId": ACCOUNT,
                "apiFlavor": "list",
                "pageSize": 50,
                "modules": [], "actions": [], "principals": [], "scopes": [], "resources": [],
                "environments": [],
            },
            "window": {
                "startMinutesBack": 60,
                "settleLagSecs": 0,
                "overlapSecs": 900,
                "reconcileIntervalSecs": 3600,
                "reconcileHours": 48,
                "reconcileRecentIntervalSecs": 300,
                "reconcileRecentHours": 3,
            },
            "retries": {
                "maxRetries": 5,
                "retryBaseMs": 1,
                "retryBudgetSecs": 300,
                "maxRequestsPerMinute": 0,
            },
            "output": { "outputShape": "raw", "enrichYamlDiff": false, "batchMaxEvents": 1000 },
        },
        "stateDir": work.path().join("state"),
        "output": output,
        "quarantine": quarantine,
    });
    let run_file = work.path().join("run.json");
    std::fs::write(&run_file, run.to_string()).unwrap();
    let pass = || {
        let mut node = Command::new("node");
        node.arg(jco_dir().join("host.mjs"))
            .arg(generated.join("source.js"))
            .arg(&run_file)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HARNESS_API_KEY", &env.key);
        finish(node, &env.key)
    };

    let first = pass();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "the jco host failed: {stderr}");
    assert!(
        stderr.contains(&format!("wrote {} events in ", expected.len()))
            && stderr.contains(&format!("and kept {} it could not read", kept.len())),
        "{stderr}"
    );
    let written = std::fs::read(&output).unwrap();
    assert_eq!(lines(&written), expected);
    let quarantined = std::fs::read(&quarantine).unwrap();
    let mut events = harness_tests::stored::lines(&quarantined);
    events.sort();
    assert_eq!(events, kept);

    let second = pass();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "the jco host failed: {stderr}");
    assert!(stderr.contains("wrote 0 events"), "{stderr}");
    assert_eq!(
        (
            std::fs::read(&output).unwrap(),
            std::fs::read(&quarantine).unwrap()
        ),
        (written, quarantined),
        "a second pass wrote again"
    );
}

#[test]
fn the_command_composition_holds_the_embedded_source_byte_for_byte() {
    let composed = std::fs::read(harness_tests::COMMAND_WASM).unwrap();
    let source = harness_audit::engine::EMBEDDED_COMPONENT;
    assert!(
        composed.windows(source.len()).any(|w| w == source),
        "the command composition ({} bytes) does not hold the {}-byte source the host embeds",
        composed.len(),
        source.len()
    );
}

/// `wasmtime run` of the command composition, as the README shows it, with
/// `state` preopened as `/state`. The wasmtime CLI passes on only the
/// variables given with `--env`.
fn wasmtime_run(state: &Path, vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(wasmtime_cli());
    command
        .args(["run", "-S", "http", "--dir"])
        .arg(format!("{}::/state", state.display()));
    for (name, value) in vars {
        command.arg("--env").arg(format!("{name}={value}"));
    }
    command
        .arg(harness_tests::COMMAND_WASM)
        .args(["--state-dir", "/state"]);
    command
}

/// The variables a composition gets to collect from `env`'s mock at once.
fn composition_vars(env: &Env) -> [(&'static str, String); 6] {
    [
        ("HARNESS_API_BASE", env.mock.base_url()),
        ("HARNESS_ACCOUNT_ID", ACCOUNT.to_owned()),
        ("HARNESS_API_KEY", env.key.clone()),
        ("RETRY_BASE_MS", "1".to_owned()),
        ("SETTLE_LAG_SECONDS", "0".to_owned()),
        ("MAX_REQUESTS_PER_MINUTE", "0".to_owned()),
    ]
}

/// Runs the command composition once under `runtime` with `vars`, the state
/// directory `state`, and `key` searched for in its output.
fn command_pass(runtime: &str, vars: &[(&str, String)], state: &Path, key: &str) -> Output {
    let wasm = harness_tests::COMMAND_WASM;
    let command = match runtime {
        // The invocations the README shows.
        "jco" => {
            let mut c = Command::new(node_tool("jco"));
            c.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .arg("run")
                .arg("--jco-import")
                .arg(jco_dir().join("preopen.mjs"))
                .arg(wasm)
                .args(["--state-dir", "/state"])
                .envs(vars.iter().map(|(k, v)| (k, v)))
                .env("HARNESS_AUDIT_STATE_DIR", state);
            c
        }
        "wasmtime" => wasmtime_run(state, vars),
        other => unreachable!("no runtime {other}"),
    };
    finish(command, key)
}

fn the_command_writes_what_the_rust_host_writes(runtime: &str) {
    let env = Env::new(EVENTS);
    let expected = rust_host_lines(&env);
    let state = tempfile::tempdir().unwrap();
    let vars = composition_vars(&env);

    let first = command_pass(runtime, &vars, state.path(), &env.key);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{runtime}: {stderr}");
    assert!(
        stderr.contains(&format!("wrote {EVENTS} events")),
        "{stderr}"
    );
    assert_eq!(lines(&first.stdout), expected, "{runtime}");
    assert!(state.path().join("checkpoint.json").exists());

    let second = command_pass(runtime, &vars, state.path(), &env.key);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{runtime}: {stderr}");
    assert!(stderr.contains("wrote 0 events"), "{stderr}");
    assert!(second.stdout.is_empty(), "{runtime} wrote again");
}

#[test]
fn the_command_under_jco_run_writes_what_the_rust_host_writes() {
    the_command_writes_what_the_rust_host_writes("jco");
}

#[test]
fn the_command_under_the_wasmtime_cli_writes_what_the_rust_host_writes() {
    the_command_writes_what_the_rust_host_writes("wasmtime");
}

#[test]
fn the_command_refuses_what_it_cannot_honour_and_names_a_bad_key() {
    let env = Env::new(10);
    let state = tempfile::tempdir().unwrap();
    let command = wasmtime_run(
        state.path(),
        &[
            ("HARNESS_ACCOUNT_ID", "acct".to_owned()),
            ("HARNESS_API_KEY", env.key.clone()),
            ("FILTER_PRINCIPALS", "SYSTEM".to_owned()),
        ],
    );
    // WASI 0.2's exit carries success or failure only: the message says which failure.
    let refused = finish(command, &env.key);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("FILTER_PRINCIPALS is a setting of the harness-audit host"),
        "{stderr}"
    );

    let wrong_key = harness_tests::make_key(ACCOUNT, "WrongToken000000000000");
    let command = wasmtime_run(
        state.path(),
        &[
            ("HARNESS_API_BASE", env.mock.base_url()),
            ("HARNESS_ACCOUNT_ID", ACCOUNT.to_owned()),
            ("HARNESS_API_KEY", wrong_key.clone()),
        ],
    );
    let unauthorized = finish(command, &wrong_key);
    assert!(!unauthorized.status.success());
    let stderr = String::from_utf8_lossy(&unauthorized.stderr);
    assert!(stderr.contains("Harness refused the API key"), "{stderr}");
    assert!(unauthorized.stdout.is_empty());
    assert!(!state.path().join("checkpoint.json").exists());
}

#[test]
fn the_command_names_the_setting_to_lower_when_every_retry_is_rate_limited() {
    let env = Env::new(10);
    env.mock
        .set_persistent_fault(Some(harness_tests::Fault::rate_limited()));
    let state = tempfile::tempdir().unwrap();
    let limited = finish(
        wasmtime_run(state.path(), &composition_vars(&env)),
        &env.key,
    );
    assert!(!limited.status.success());
    let stderr = String::from_utf8_lossy(&limited.stderr);
    for part in [
        "Harness rate-limited every retry (it sent no Retry-After): ",
        "Too Many Requests",
        "; lower MAX_REQUESTS_PER_MINUTE so that everything using this key stays under its budget",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
    assert!(limited.stdout.is_empty());
}

/// `wasmtime serve` of the proxy composition, as the README shows it, on a
/// free port of 127.0.0.1; stopped when dropped. Every response it gives is
/// searched for the key it was given.
struct Served {
    child: std::process::Child,
    url: String,
    log: tempfile::NamedTempFile,
    secret: String,
}

impl Served {
    fn start(vars: &[(&str, String)]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new(wasmtime_cli());
        command.args(["serve", "-S", "cli", "--addr", "127.0.0.1:0"]);
        for (name, value) in vars {
            command.arg("--env").arg(format!("{name}={value}"));
        }
        let child = command
            .arg(harness_tests::PROXY_WASM)
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let (_, key) = vars
            .iter()
            .find(|(name, _)| *name == "HARNESS_API_KEY")
            .expect("a key to search for");
        let mut served = Self {
            child,
            url: String::new(),
            log,
            secret: key.rsplit('.').next().unwrap().to_owned(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while served.url.is_empty() {
            let text = served.log_text();
            if let Some(rest) = text.split("Serving HTTP on ").nth(1) {
                served.url = rest.split_whitespace().next().unwrap().to_owned();
            } else {
                assert!(
                    std::time::Instant::now() < deadline
                        && served.child.try_wait().unwrap().is_none(),
                    "wasmtime serve did not start: {text}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        served
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    fn assert_no_key_in_log(&self) {
        assert!(
            !self.log_text().contains(&self.secret),
            "the API key leaked"
        );
    }

    /// POSTs `body`; returns the status and the body's lines.
    fn post(&self, body: String) -> (u16, Vec<String>) {
        // reqwest is built without a TLS provider of its own; plain HTTP needs none, but
        // building a client does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::blocking::Client::builder()
            .timeout(RUN_TIMEOUT)
            .build()
            .unwrap()
            .post(&self.url)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        assert!(!text.contains(&self.secret), "the API key leaked: {text}");
        (status, text.lines().map(str::to_owned).collect())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits a proxy response into its events and its last line, which must be
/// a checkpoint line without an error.
fn events_and_checkpoint(mut lines: Vec<String>) -> (Vec<String>, String) {
    let last = lines
        .pop()
        .expect("a response ends with its checkpoint line");
    let parsed: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert!(
        parsed["harnessAuditCheckpoint"].is_object() && parsed.get("harnessAuditError").is_none(),
        "not a checkpoint line of a whole pass: {last}"
    );
    (sorted(lines), last)
}

#[test]
fn the_proxy_under_wasmtime_serve_writes_what_the_rust_host_writes_then_only_new_events() {
    let env = Env::new(EVENTS);
    let expected = rust_host_lines(&env);
    let served = Served::start(&composition_vars(&env));

    let (status, lines) = served.post(String::new());
    assert_eq!(status, 200, "{}", served.log_text());
    let (events, checkpoint) = events_and_checkpoint(lines);
    assert_eq!(events, expected);

    let now = crate::support::now_ms();
    let fresh = events_between(120, now - 500, now, 99);
    let fresh_json = sorted(fresh.iter().map(|e| e.to_json()).collect());
    env.mock.insert(fresh);
    let (status, lines) = served.post(checkpoint.clone());
    assert_eq!(status, 200);
    let (events, next) = events_and_checkpoint(lines);
    assert_eq!(
        events, fresh_json,
        "the second request returns only the new events"
    );

    let (_, lines) = served.post(next);
    assert_eq!(events_and_checkpoint(lines).0, Vec::<String>::new());

    let refused = reqwest::blocking::get(&served.url).unwrap();
    assert_eq!(refused.status().as_u16(), 405);
    for wrong in [expected[0].clone(), "not json".to_owned()] {
        let (status, lines) = served.post(wrong);
        assert_eq!(status, 400, "{lines:?}");
        assert!(
            lines[0].contains("not the checkpoint line of a previous response"),
            "{lines:?}"
        );
    }

    served.assert_no_key_in_log();
}

#[test]
fn the_proxy_ends_a_failed_pass_with_its_error_and_the_checkpoint_it_was_sent() {
    let env = Env::new(10);
    let wrong_key = harness_tests::make_key(ACCOUNT, "WrongToken000000000000");
    let served = Served::start(&[
        ("HARNESS_API_BASE", env.mock.base_url()),
        ("HARNESS_ACCOUNT_ID", ACCOUNT.to_owned()),
        ("HARNESS_API_KEY", wrong_key.clone()),
        ("MAX_REQUESTS_PER_MINUTE", "0".to_owned()),
    ]);
    let sent = "{\"harnessAuditCheckpoint\":null}";
    let (status, lines) = served.post(sent.to_owned());
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 1, "no events, only the last line: {lines:?}");
    let last: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(last["harnessAuditCheckpoint"].is_null(), "{last}");
    assert!(
        last["harnessAuditError"]
            .as_str()
            .unwrap()
            .contains("Harness refused the API key"),
        "{last}"
    );
    served.assert_no_key_in_log();

    let misconfigured = Served::start(&[("HARNESS_API_KEY", wrong_key)]);
    let (status, lines) = misconfigured.post(String::new());
    assert_eq!(status, 500);
    assert!(
        lines[0].contains("HARNESS_ACCOUNT_ID is not set"),
        "{lines:?}"
    );
    misconfigured.assert_no_key_in_log();
}

/// The API's freedoms for the compositions: all of them, with late events
/// made late by hand (inserted after the pass that read their window) rather
/// than by a random delay a test would have to wait out.
const FREE: harness_tests::Freedoms = harness_tests::Freedoms {
    late_fraction: 0.0,
    ..harness_tests::Freedoms::ALL
};

/// Settings for a mock with [`FREE`]: paced under its edge of 50 requests a
/// second (a stock host has only the component's fixed pacing), pages of
/// 100, an overlap of 10 s (so events later than that are found only by
/// reconciliation, as the chaos run sets it), and every hour recounted on
/// each pass.
fn free_vars(env: &Env) -> Vec<(&'static str, String)> {
    let mut vars: Vec<_> = composition_vars(env)
        .into_iter()
        .filter(|(name, _)| *name != "MAX_REQUESTS_PER_MINUTE")
        .collect();
    vars.extend([
        ("MAX_REQUESTS_PER_MINUTE", "2400".to_owned()),
        ("PAGE_SIZE", "100".to_owned()),
        ("OVERLAP_SECONDS", "10".to_owned()),
        ("RECONCILE_INTERVAL_SECONDS", "1".to_owned()),
    ]);
    vars
}

/// A composition run pass after pass, its checkpoint kept where its world keeps it.
enum Passes {
    /// The command under `runtime`, with its state directory.
    Command {
        runtime: &'static str,
        vars: Vec<(&'static str, String)>,
        key: String,
        state: tempfile::TempDir,
    },
    /// The proxy under `wasmtime serve`, with the last line of its last response.
    Proxy { served: Served, checkpoint: String },
}

impl Passes {
    fn start(runtime: &'static str, env: &Env) -> Self {
        let vars = free_vars(env);
        match runtime {
            "serve" => Self::Proxy {
                served: Served::start(&vars),
                checkpoint: String::new(),
            },
            _ => Self::Command {
                runtime,
                vars,
                key: env.key.clone(),
                state: tempfile::tempdir().unwrap(),
            },
        }
    }

    /// One pass; the event lines it wrote.
    fn pass(&mut self) -> Vec<String> {
        match self {
            Self::Command {
                runtime,
                vars,
                key,
                state,
            } => {
                let output = command_pass(runtime, vars, state.path(), key);
                assert!(
                    output.status.success(),
                    "{runtime}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                lines(&output.stdout)
            }
            Self::Proxy { served, checkpoint } => {
                let (status, lines) = served.post(std::mem::take(checkpoint));
                assert_eq!(status, 200, "{}", served.log_text());
                let (events, next) = events_and_checkpoint(lines);
                *checkpoint = next;
                events
            }
        }
    }
}

/// Events of `count` from `seed`, between `from_ms` and `to_ms`.
fn events_between(
    count: usize,
    from_ms: u64,
    to_ms: u64,
    seed: u64,
) -> Vec<harness_tests::AuditEvent> {
    harness_tests::generate(&harness_tests::SeedSpec {
        account_id: ACCOUNT.into(),
        count,
        start_ms: from_ms,
        end_ms: to_ms,
        seed,
    })
}

/// Under `runtime`, against a mock with every freedom of the API: ties in a
/// new order on each request (with 250 events in one millisecond, over two
/// pages), short pages, events counted and never returned, counts off by
/// seconds, Harness's edge, and events that show up after the pass that read
/// their window. Pass after pass, the composition writes every event the
/// mock can return exactly once; then nothing.
fn a_composition_writes_every_returnable_event_once_from_a_free_mock(runtime: &'static str) {
    let env = Env::with_freedoms(EVENTS, FREE);
    let now = crate::support::now_ms();
    let mut burst = events_between(250, now - 20 * 60_000, now - 20 * 60_000, 41);
    let tie = burst[0].timestamp;
    for event in &mut burst {
        event.timestamp = tie;
    }
    env.mock.insert(burst);
    let mut passes = Passes::start(runtime, &env);

    let mut written = passes.pass();

    // Late: their hours were read by the first pass, and they appear only now.
    env.mock
        .insert(events_between(40, now - 40 * 60_000, now - 60_000, 42));
    let now = crate::support::now_ms();
    env.mock.insert(events_between(60, now - 1_000, now, 43));
    let returnable = sorted(env.mock.returnable_json());

    for _ in 0..10 {
        // Past the reconcile interval, so the next pass recounts every hour.
        std::thread::sleep(Duration::from_millis(1_100));
        written.extend(passes.pass());
        if sorted(written.clone()) == returnable {
            break;
        }
    }
    crate::support::assert_exact(written, returnable, runtime);
    assert_eq!(passes.pass(), Vec::<String>::new(), "{runtime} wrote again");
    let answers = env.mock.edge_answers();
    assert_eq!(
        answers.iter().filter(|a| a.refused).count(),
        0,
        "{runtime}: the component's own pacing went past the edge in {} requests",
        answers.len()
    );
    assert!(
        env.mock.hidden_count() > 0,
        "some events were counted and never returned"
    );
}

#[test]
fn the_command_under_the_wasmtime_cli_writes_every_returnable_event_once_from_a_free_mock() {
    a_composition_writes_every_returnable_event_once_from_a_free_mock("wasmtime");
}

#[test]
fn the_command_under_jco_run_writes_every_returnable_event_once_from_a_free_mock() {
    a_composition_writes_every_returnable_event_once_from_a_free_mock("jco");
}

#[test]
fn the_proxy_under_wasmtime_serve_writes_every_returnable_event_once_from_a_free_mock() {
    a_composition_writes_every_returnable_event_once_from_a_free_mock("serve");
}

/// A mock that sends half of its events oddly, and what the quarantine of
/// the raw shape must then hold, sorted.
fn odd_env() -> (Env, Vec<Vec<u8>>) {
    let env = Env::with_freedoms(
        120,
        harness_tests::Freedoms {
            odd: Some(harness_tests::OddContent {
                events: 0.5,
                answers: 0.0,
                big_bytes: 10_000,
            }),
            ..harness_tests::Freedoms::default()
        },
    );
    let mut kept: Vec<Vec<u8>> = env
        .mock
        .returnable()
        .into_iter()
        .filter(|r| r.odd.is_some_and(|kind| kind.quarantined(false)))
        .map(|r| r.bytes)
        .collect();
    kept.sort();
    assert!(!kept.is_empty());
    (env, kept)
}

/// What the Rust host writes in the data from an odd mock.
fn rust_host_data(env: &Env) -> Vec<String> {
    let run = env.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    env.sorted_lines()
}

/// Under a stock runtime the command adds what it cannot read to
/// `quarantine.jsonl` in its state directory, byte for byte, once.
#[test]
fn the_command_keeps_what_it_cannot_read_in_the_state_directory() {
    let (env, kept) = odd_env();
    let expected = rust_host_data(&env);
    let state = tempfile::tempdir().unwrap();
    let vars = composition_vars(&env);
    let quarantine = || {
        let bytes = std::fs::read(state.path().join("quarantine.jsonl")).unwrap_or_default();
        let mut lines = harness_tests::stored::lines(&bytes);
        lines.sort();
        lines
    };
    for pass in 0..2 {
        let run = command_pass("wasmtime", &vars, state.path(), &env.key);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert_eq!(
            stderr.contains("into /state/quarantine.jsonl"),
            pass == 0,
            "{stderr}"
        );
        if pass == 0 {
            assert_eq!(lines(&run.stdout), expected);
        } else {
            assert!(run.stdout.is_empty(), "nothing again");
        }
        assert_eq!(quarantine(), kept, "pass {pass}");
    }
}

/// Under `wasmtime serve` the proxy's last line carries what it cannot
/// read, in base64, and the next request takes that line back.
#[test]
fn the_proxy_carries_what_it_cannot_read_in_its_last_line() {
    use base64::Engine as _;
    let (env, kept) = odd_env();
    let expected = rust_host_data(&env);
    let served = Served::start(&composition_vars(&env));
    let (status, lines) = served.post(String::new());
    assert_eq!(status, 200, "{}", served.log_text());
    let (events, last) = events_and_checkpoint(lines);
    assert_eq!(events, expected);
    let parsed: serde_json::Value = serde_json::from_str(&last).unwrap();
    let mut carried: Vec<Vec<u8>> = parsed["harnessAuditQuarantine"]
        .as_array()
        .expect("the quarantine in the last line")
        .iter()
        .map(|e| {
            assert!(e["reason"].is_string() && e["atMs"].is_u64(), "{e}");
            base64::engine::general_purpose::STANDARD
                .decode(e["base64"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    carried.sort();
    assert_eq!(carried, kept);
    let (status, lines) = served.post(last);
    assert_eq!(status, 200);
    let (events, next) = events_and_checkpoint(lines);
    assert!(events.is_empty(), "{events:?}");
    assert!(!next.contains("harnessAuditQuarantine"), "{next}");
    served.assert_no_key_in_log();
}
