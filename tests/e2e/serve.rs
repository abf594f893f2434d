//! `serve` with 50 tenants in one process, each against its own mock account:
//! the good ones (some filtered) collect exactly their events; a wrong key, a
//! key without the audit permission, an API that only answers 500 and a
//! component that never returns each fail alone, visibly in logs, metrics and
//! `/healthz`; SIGTERM stops the process cleanly.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness_tests::{Fault, make_key};

use crate::support::{ACCOUNT, Env, sorted};

const GOOD: usize = 46;
/// A key without an embedded account, for the fixture tenant whose account id picks its behaviour.
const FIXTURE_KEY: &str = "pat.FixtureToken0000000.s3cr3tV4lu3xs3cr3tV4";

struct Served {
    child: Child,
    stderr: Arc<Mutex<String>>,
    metrics: String,
}

impl Served {
    /// Starts `serve` on `tenants` with `keys` as its only environment, and waits for its HTTP endpoint.
    fn start(tenants: &std::path::Path, keys: &[(String, String)]) -> Self {
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_harness-audit"))
            .args([
                "serve",
                "--config",
                tenants.to_str().unwrap(),
                "--max-concurrent",
                "8",
            ])
            .args([
                "--metrics-addr",
                &metrics,
                "--health-intervals",
                "2",
                "--shutdown-grace-secs",
                "30",
            ])
            .env_clear()
            .envs(keys.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let (mut pipe, stderr) = (child.stderr.take().unwrap(), stderr.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let start = Instant::now();
        while std::net::TcpStream::connect(&metrics).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "metrics never came up:\n{}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            stderr,
            metrics,
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([name, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGTERM; asserts a clean exit within 40 s and returns the log.
    fn terminate(mut self) -> String {
        self.signal("-TERM");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(200));
        let log = self.stderr.lock().unwrap().clone();
        assert_eq!(status.code(), Some(0), "{log}");
        assert!(log.contains("stopped"), "{log}");
        log
    }

    /// A plain HTTP/1.1 GET with `Connection: close`.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(&self.metrics)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.stderr.lock().unwrap()));
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    /// Polls until `done` holds for the metrics text, at most `limit`.
    fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let (_, text) = self.get("/metrics");
            if done(&text) {
                return text;
            }
            assert!(
                start.elapsed() < limit,
                "{what} not reached within {limit:?}:\n{text}\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn metric(text: &str, name: &str, tenant: &str) -> Option<u64> {
    let prefix = format!("{name}{{tenant=\"{tenant}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[test]
fn fifty_tenants_collect_side_by_side_and_bad_ones_fail_alone() {
    let envs: Vec<Env> = (0..GOOD + 4).map(|_| Env::new(150)).collect();
    let (wrong_key, no_permission, broken_api, spinning) = (GOOD, GOOD + 1, GOOD + 2, GOOD + 3);
    envs[broken_api]
        .mock
        .set_persistent_fault(Some(Fault::Respond {
            status: 500,
            content_type: "application/json",
            body: r#"{"status":"ERROR","code":"UNKNOWN_ERROR","message":"boom"}"#.into(),
        }));

    let mut file = String::from(
        "[defaults]\ninterval_secs = 2\njitter_secs = 0\nretry_base_ms = 1\nmax_retries = 1\n\
         settle_lag_secs = 0\nmax_requests_per_minute = 0\n",
    );
    let mut keys = Vec::new();
    for (i, env) in envs.iter().enumerate() {
        let (id, account, key) = match i {
            _ if i == wrong_key => (
                "bad-key".to_owned(),
                ACCOUNT,
                make_key(ACCOUNT, "NotAKeyAtAll0000000000"),
            ),
            _ if i == no_permission => (
                "no-permission".to_owned(),
                ACCOUNT,
                make_key(ACCOUNT, "NoAuditView00000000000"),
            ),
            _ if i == broken_api => ("broken-api".to_owned(), ACCOUNT, env.key.clone()),
            _ if i == spinning => ("spinning".to_owned(), "spin", FIXTURE_KEY.to_owned()),
            _ => (format!("good-{i:02}"), ACCOUNT, env.key.clone()),
        };
        let var = format!("TENANT_KEY_{i}");
        file.push_str(&format!(
            "\n[[tenant]]\nid = \"{id}\"\naccount_id = \"{account}\"\napi_base = \"{}\"\napi_key_env = \"{var}\"\n\
             output_dir = \"{}\"\n",
            env.mock.base_url(),
            env.out().display()
        ));
        if i % 5 == 0 && i < GOOD {
            file.push_str("modules = [\"PMS\", \"CORE\"]\n");
        }
        if i == spinning {
            file.push_str(&format!(
                "component = \"{}\"\npoll_timeout_secs = 1\n",
                harness_tests::GUEST_MISBEHAVE
            ));
        }
        keys.push((var, key));
    }
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(&tenants, file).unwrap();

    let served = Served::start(&tenants, &keys);

    let ids: Vec<String> = (0..GOOD).map(|i| format!("good-{i:02}")).collect();
    let text = served.wait_for(
        Duration::from_secs(90),
        "a pass of every tenant, two of each bad one",
        |t| {
            ids.iter()
                .all(|id| metric(t, "harness_audit_passes_total", id).is_some_and(|n| n >= 1))
                && ["bad-key", "no-permission", "broken-api", "spinning"]
                    .iter()
                    .all(|id| {
                        metric(t, "harness_audit_consecutive_failures", id).is_some_and(|n| n >= 2)
                    })
        },
    );

    for (i, env) in envs.iter().take(GOOD).enumerate() {
        let expected = if i % 5 == 0 {
            env.mock
                .events_json_where(|e| ["PMS", "CORE"].contains(&e.module.as_str()))
        } else {
            env.mock.events_json()
        };
        assert_eq!(env.sorted_lines(), sorted(expected), "tenant good-{i:02}");
    }
    for (id, kind) in [
        ("bad-key", "unauthorized"),
        ("no-permission", "forbidden"),
        ("broken-api", "unavailable"),
        ("spinning", "limit"),
    ] {
        let line = format!("harness_audit_errors_total{{tenant=\"{id}\",kind=\"{kind}\"}} ");
        assert!(text.contains(&line), "{line}\n{text}");
        assert_eq!(
            metric(&text, "harness_audit_events_written_total", id),
            Some(0)
        );
    }
    assert!(envs[wrong_key].objects().is_empty() && envs[no_permission].objects().is_empty());

    let (status, health) = served.get("/healthz");
    assert_eq!(status, 503, "{health}");
    for id in &ids {
        assert!(health.contains(&format!("{id}: ok")), "{health}");
    }
    for id in ["bad-key", "no-permission", "broken-api", "spinning"] {
        assert!(health.contains(&format!("{id}: failing")), "{health}");
    }

    let log = served.terminate();
    for (tenant, message) in [
        ("bad-key", "Harness rejected the API key"),
        ("no-permission", "core_audit_view"),
        ("broken-api", "Harness was unavailable"),
        ("spinning", "ran longer than POLL_TIMEOUT_SECS (1 s)"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("tenant{{tenant={tenant}}}")) && l.contains(message)),
            "{tenant}: {message}\n{log}"
        );
    }
    for (_, key) in &keys {
        let secret = key.rsplit('.').next().unwrap();
        assert!(!log.contains(secret), "a key leaked into the log");
    }
}

fn tenant_entry(id: &str, env: &Env, var: &str, extra: &str) -> String {
    format!(
        "\n[[tenant]]\nid = \"{id}\"\naccount_id = \"{ACCOUNT}\"\napi_base = \"{}\"\napi_key_env = \"{var}\"\n\
         output_dir = \"{}\"\n{extra}",
        env.mock.base_url(),
        env.out().display()
    )
}

/// SIGHUP applies an edited tenant file: a removed tenant stops and leaves
/// the metrics, a new one starts, a changed one restarts with its new
/// settings, and a broken file is refused while everything keeps running.
#[test]
fn sighup_reloads_the_tenant_file_without_dropping_the_others() {
    let envs: Vec<Env> = (0..3).map(|_| Env::new(120)).collect();
    let keys: Vec<(String, String)> = envs
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("KEY_{i}"), e.key.clone()))
        .collect();
    let defaults = "[defaults]\ninterval_secs = 1\njitter_secs = 0\nsettle_lag_secs = 0\nmax_requests_per_minute = 0\n";
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "{defaults}{}{}",
            tenant_entry("alpha", &envs[0], "KEY_0", ""),
            tenant_entry("beta", &envs[1], "KEY_1", "")
        ),
    )
    .unwrap();
    let served = Served::start(&tenants, &keys);
    served.wait_for(Duration::from_secs(60), "alpha and beta ran", |t| {
        ["alpha", "beta"]
            .iter()
            .all(|id| metric(t, "harness_audit_passes_total", id).is_some_and(|n| n >= 1))
    });

    std::fs::write(&tenants, "[[tenant]]\nid = 1\n").unwrap();
    served.signal("-HUP");
    let start = Instant::now();
    while !served.stderr.lock().unwrap().contains("reload refused") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the broken file was not refused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(
        &tenants,
        format!(
            "{defaults}{}{}",
            tenant_entry("beta", &envs[1], "KEY_1", "page_size = 10\n"),
            tenant_entry("gamma", &envs[2], "KEY_2", "")
        ),
    )
    .unwrap();
    served.signal("-HUP");
    let text = served.wait_for(Duration::from_secs(60), "gamma ran and alpha left", |t| {
        metric(t, "harness_audit_passes_total", "gamma").is_some_and(|n| n >= 1)
            && metric(t, "harness_audit_passes_total", "alpha").is_none()
    });
    assert!(metric(&text, "harness_audit_passes_total", "beta").is_some());
    assert_eq!(envs[2].sorted_lines(), sorted(envs[2].mock.events_json()));
    let beta_after = envs[1].mock.requests().len();
    served.wait_for(Duration::from_secs(30), "beta ran again", |_| {
        envs[1].mock.requests().len() > beta_after
    });
    assert!(
        envs[1]
            .mock
            .requests()
            .last()
            .and_then(|r| r.param("pageSize").map(str::to_owned))
            .as_deref()
            == Some("10"),
        "beta restarted with its new page size"
    );
    let log = served.terminate();
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("tenant file reloaded"), "{log}");
}

/// `/metrics` reports, per tenant, the events Harness counted and never
/// returned: the gap of one tenant is its own, the other's is 0.
#[test]
fn each_tenant_s_unreconciled_events_are_a_metric() {
    let gap = Env::with_freedoms(
        400,
        harness_tests::Freedoms {
            hidden_fraction: 0.05,
            ..harness_tests::Freedoms::default()
        },
    );
    let whole = Env::new(100);
    let hidden = gap.mock.hidden_count() as u64;
    assert!(hidden > 5, "{hidden}");
    let keys = [
        ("KEY_GAP".to_owned(), gap.key.clone()),
        ("KEY_WHOLE".to_owned(), whole.key.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "[defaults]\ninterval_secs = 60\nsettle_lag_secs = 0\nmax_requests_per_minute = 0\n{}{}",
            tenant_entry("gap", &gap, "KEY_GAP", ""),
            tenant_entry("whole", &whole, "KEY_WHOLE", "")
        ),
    )
    .unwrap();
    let served = Served::start(&tenants, &keys);
    let text = served.wait_for(Duration::from_secs(60), "both tenants ran", |t| {
        ["gap", "whole"]
            .iter()
            .all(|id| metric(t, "harness_audit_passes_total", id).is_some_and(|n| n >= 1))
    });
    assert_eq!(
        metric(&text, "harness_audit_unreconciled_events", "gap"),
        Some(hidden),
        "{text}"
    );
    assert_eq!(
        metric(&text, "harness_audit_unreconciled_events", "whole"),
        Some(0)
    );
    assert_eq!(gap.sorted_lines(), sorted(gap.mock.returnable_json()));
    served.terminate();
}

/// SIGTERM in the middle of a long pass: the pass stops at a batch boundary,
/// the process exits 0, and the next run continues so that every event is
/// stored exactly once.
#[test]
fn sigterm_mid_pass_stops_at_a_batch_boundary_losing_and_repeating_nothing() {
    let env = Env::new(3000);
    env.mock.set_fault_rates(Some(harness_tests::FaultRates {
        max_latency_ms: 20,
        ..harness_tests::FaultRates::default()
    }));
    let keys = vec![("KEY_0".to_owned(), env.key.clone())];
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "[defaults]\nsettle_lag_secs = 0\nmax_requests_per_minute = 0\npage_size = 50\nbatch_max_events = 100\n{}",
            tenant_entry("long", &env, "KEY_0", "")
        ),
    )
    .unwrap();
    let served = Served::start(&tenants, &keys);
    let start = Instant::now();
    while !served.stderr.lock().unwrap().contains("batch stored") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no batch was stored"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = served.terminate();
    assert!(
        log.contains("stopped early for shutdown"),
        "the pass was cut short at a batch boundary: {log}"
    );
    let stored = env.sorted_lines().len();
    assert!(stored > 0 && stored < 3000, "{stored}");

    env.mock.set_fault_rates(None);
    let run = env.run(&[("PAGE_SIZE", "50")]);
    run.assert_collected(3000 - stored);
    assert_eq!(env.sorted_lines(), sorted(env.mock.events_json()));
}
