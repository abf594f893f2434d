//! Tenants beside components that never return, in one `serve` process:
//! each normal tenant (its own account, key and mock, answering as a remote
//! API does) collects while spinning components hold as many threads as
//! there are CPUs. Reports each normal tenant's pass time and the response
//! times of `/metrics` and `/healthz` meanwhile, and checks that every normal
//! tenant's output is exact. The e2e test asserts the bounds; `bench/isolation.sh`
//! measures them on a release build.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::mock::{FaultRates, KeyGrant, MockHarness, make_key};
use crate::process::spawn_logged;
use crate::seed::{SeedSpec, generate};

/// The shape of one round.
#[derive(Debug, Clone, Copy)]
pub struct RoundSpec {
    /// Tenants that collect.
    pub normal: usize,
    /// Tenants whose component never returns.
    pub spinners: usize,
    /// Events per normal tenant.
    pub events: usize,
    /// Up to this much latency on each request of the normal tenants' mocks.
    pub max_latency_ms: u64,
}

/// What one round measured.
#[derive(Debug, Clone)]
pub struct Round {
    /// Each normal tenant's first pass, wall clock, from its `pass finished` log line.
    pub pass_times: Vec<Duration>,
    /// Response times of `/metrics` and `/healthz`, alternately, while the normal tenants ran.
    pub control_latencies: Vec<Duration>,
    /// How long SIGTERM took to end the process, spinners included.
    pub stop_time: Duration,
    /// The process log.
    pub log: String,
}

/// The `p` quantile (0 to 1) of `samples`, by rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut samples = samples.to_vec();
    samples.sort();
    let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// A plain HTTP/1.1 GET with `Connection: close`; the status code.
fn get(addr: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("serve's HTTP endpoint");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .expect("sending a request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("reading a response");
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

fn pass_time(log: &str, tenant: &str) -> Option<Duration> {
    log.lines()
        .filter(|l| {
            l.contains(&format!("tenant{{tenant={tenant}}}")) && l.contains("pass finished")
        })
        .find_map(|l| {
            let ms = l.split("duration_ms=").nth(1)?.split_whitespace().next()?;
            Some(Duration::from_millis(ms.parse().ok()?))
        })
}

fn lines_under(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            lines_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path).expect("an object is UTF-8");
            out.extend(text.lines().map(str::to_owned));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn kill(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill {signal} failed");
}

/// Runs one round of `binary serve`, spinners running `misbehave`.
pub fn round(binary: &Path, misbehave: &Path, spec: RoundSpec) -> Round {
    let work = tempfile::tempdir().expect("a work directory");
    let now = crate::seed::now_ms();
    let mut mocks = Vec::new();
    let mut file = String::from(
        "[defaults]\ninterval_secs = 3600\njitter_secs = 0\nretry_base_ms = 1\nsettle_lag_secs = 0\n\
         max_requests_per_minute = 0\npage_size = 100\n",
    );
    let mut keys = Vec::new();
    for i in 0..spec.normal {
        let account = format!("PaceAccount{i:02}");
        let key = make_key(&account, &format!("PaceToken{i:02}0000000000000"));
        let mock = MockHarness::start(
            &account,
            vec![KeyGrant {
                key: key.clone(),
                can_view: true,
            }],
        )
        .expect("starting a mock");
        mock.insert(generate(&SeedSpec {
            account_id: account.clone(),
            count: spec.events,
            start_ms: now - 50 * 60_000,
            end_ms: now - 2_000,
            seed: 100 + i as u64,
        }));
        // Harness is across a network: each request takes its time.
        mock.set_fault_rates(Some(FaultRates {
            max_latency_ms: spec.max_latency_ms,
            ..FaultRates::default()
        }));
        file.push_str(&format!(
            "\n[[tenant]]\nid = \"normal-{i}\"\naccount_id = \"{account}\"\napi_base = \"{}\"\n\
             api_key_env = \"KEY_{i}\"\noutput_dir = \"{}/normal-{i}\"\n",
            mock.base_url(),
            work.path().display()
        ));
        keys.push((format!("KEY_{i}"), key));
        mocks.push(mock);
    }
    for i in 0..spec.spinners {
        file.push_str(&format!(
            "\n[[tenant]]\nid = \"spinner-{i}\"\naccount_id = \"spin\"\napi_base = \"http://127.0.0.1:9\"\n\
             api_key_env = \"SPIN_KEY\"\noutput_dir = \"{}/spinner-{i}\"\ncomponent = \"{}\"\n\
             poll_timeout_secs = 600\n",
            work.path().display(),
            misbehave.display()
        ));
    }
    keys.push((
        "SPIN_KEY".to_owned(),
        "pat.FixtureToken0000000.s3cr3tV4lu3xs3cr3tV4".to_owned(),
    ));
    let tenants = work.path().join("tenants.toml");
    std::fs::write(&tenants, file).expect("writing the tenant file");

    let addr = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(binary);
    command
        .args(["serve", "--config", tenants.to_str().expect("a UTF-8 path")])
        .args([
            "--max-concurrent",
            &(spec.normal + spec.spinners + 1).to_string(),
        ])
        .args(["--metrics-addr", &addr, "--shutdown-grace-secs", "30"])
        .envs(keys);
    let (mut child, log) = spawn_logged(command);
    let started = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut control_latencies = Vec::new();
    loop {
        for path in ["/metrics", "/healthz"] {
            let asked = Instant::now();
            get(&addr, path);
            control_latencies.push(asked.elapsed());
        }
        let text = log.lock().expect("log").clone();
        if control_latencies.len() >= 100
            && (0..spec.normal).all(|i| pass_time(&text, &format!("normal-{i}")).is_some())
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the normal tenants did not finish:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled = Instant::now();
    kill(&child, "-TERM");
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting on serve") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(60),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let stop_time = signalled.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let log = log.lock().expect("log").clone();
    assert_eq!(status.code(), Some(0), "{log}");
    if spec.spinners > 0 {
        assert!(
            !log.contains("spinner-0}: pass finished"),
            "the spinners stopped before the normal tenants were done:\n{log}"
        );
    }
    for (i, mock) in mocks.iter().enumerate() {
        let mut written = Vec::new();
        lines_under(&work.path().join(format!("normal-{i}")), &mut written);
        written.sort();
        let mut expected = mock.events_json();
        expected.sort();
        assert!(
            written == expected,
            "normal-{i}: the output differs from its account's events"
        );
    }
    let pass_times = (0..spec.normal)
        .map(|i| pass_time(&log, &format!("normal-{i}")).expect("a finished pass"))
        .collect();
    Round {
        pass_times,
        control_latencies,
        stop_time,
        log,
    }
}
