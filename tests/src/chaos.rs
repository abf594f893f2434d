//! The no-loss proof: the real binary against a mock that injects every fault,
//! uses every freedom the API has (ties in a new order on each request, short
//! pages, events counted and never returned, counts that disagree with pages
//! for a while), sends odd but legal content (events and whole answers),
//! makes some events visible long after their window was read, inserts
//! events while it pages, and is SIGKILLed at random instants. Afterwards
//! every event the mock can return must be stored exactly once, in the data
//! (by `auditId`, and in the raw shape byte for byte) or, when it cannot be
//! read or shaped, byte for byte in the quarantine; and the gap the
//! collector reports must equal the events it counted and never returned. Runs against a local directory or the GCS emulator, where
//! a killed run's lease is let lapse before the next starts, as its lifetime
//! passing would. Used by the end-to-end tests (small) and by
//! `bench/chaos.sh` (large).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::gcs::Emulator;
use crate::mock::{FaultRates, Freedoms, KeyGrant, MockHarness, make_key};
use crate::seed::{self, Rng, SeedSpec, now_ms};
use crate::stored;

const ACCOUNT: &str = "ChaosAccount0000000000";
/// Bound on one settling run; a run that takes longer is a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// What to throw at the collector.
#[derive(Debug, Clone)]
pub struct ChaosSpec {
    /// Events present before the first run.
    pub preload: usize,
    /// They span this long before the start, in ms.
    pub preload_span_ms: u64,
    /// Events inserted per second while the collector runs.
    pub live_per_second: u64,
    /// For how long live inserts go on, in ms.
    pub live_ms: u64,
    /// Millisecond bursts: for each size, that many preloaded events share one millisecond.
    pub bursts: Vec<usize>,
    /// The API's freedoms granted to the mock, late events included: their
    /// share and delay apply to the preload and the live inserts alike.
    pub freedoms: Freedoms,
    /// SIGKILLs to deliver.
    pub kills: usize,
    /// A run is killed at a uniformly random instant after its first request
    /// reaches the mock (so kills land while it pages and writes, not during
    /// start-up), within this many ms at first and afterwards within the
    /// active time of the last run that finished, so kills keep landing
    /// mid-pass as runs get shorter.
    pub kill_within_ms: u64,
    /// Injected HTTP faults.
    pub faults: FaultRates,
    /// `PAGE_SIZE`.
    pub page_size: u32,
    /// `SETTLE_LAG_SECONDS`.
    pub settle_lag_secs: u64,
    /// `OVERLAP_SECONDS`; delays past it are left to reconciliation.
    pub overlap_secs: u64,
    /// `RECONCILE_INTERVAL_SECONDS`.
    pub reconcile_interval_secs: u64,
    /// Seed for events, delays, faults and kill instants.
    pub seed: u64,
    /// Settling runs allowed after the kills.
    pub max_settle_runs: usize,
    /// Where the runs store.
    pub store: ChaosStore,
    /// `OUTPUT_SHAPE`: `raw` or `streaming`.
    pub shape: &'static str,
}

/// Where a chaos exercise's runs store their objects and checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ChaosStore {
    /// The local sink, under the output directory.
    #[default]
    Local,
    /// A bucket of the emulator named by `STORAGE_EMULATOR_HOST`.
    Gcs {
        /// The bucket, which must exist.
        bucket: String,
    },
}

/// The data prefix, its quarantine, and the checkpoint of the default settings.
const PREFIX: &str = "harness/audit/";
const QUARANTINE: &str = "harness/audit-quarantine/";
const STATE_KEY: &str = "harness-audit-state/checkpoint.json";

/// What happened, and whether the output matched.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    /// Events the mock can return (its ground truth, less the hidden ones).
    pub expected: usize,
    /// Events the mock counts and never returns.
    pub hidden: usize,
    /// The gap the collector's ledger reports at the end.
    pub reported_gap: Option<u64>,
    /// Lines written across all objects, data and quarantine.
    pub written_lines: usize,
    /// Of them, the events kept in the quarantine.
    pub quarantined: usize,
    /// `auditId`s in the ground truth stored nowhere.
    pub lost: Vec<String>,
    /// `auditId`s stored more than once.
    pub duplicated: Vec<String>,
    /// Whether every stored event is as the mock sent it: in the raw shape
    /// each data line byte for byte, in either shape each quarantined event.
    pub bytes_equal: bool,
    /// SIGKILLs delivered.
    pub kills: usize,
    /// Runs started, killed ones included.
    pub runs: usize,
    /// Runs that exited non-zero (all retries spent on faults).
    pub failed_runs: usize,
    /// Wall time of the whole exercise.
    pub elapsed: Duration,
    /// Objects, state files and run logs that contain the API key's secret.
    pub key_leaks: Vec<PathBuf>,
    /// `harness-audit verify`'s verdict on the digests after the last run,
    /// and the problems it named.
    pub verified: Option<(String, Vec<String>)>,
}

impl ChaosReport {
    /// True when nothing was lost or duplicated, the bytes match, the
    /// reported gap is exactly the events counted and never returned, and the
    /// key is in no output.
    pub fn exact(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.bytes_equal
            && self.written_lines == self.expected
            && self.reported_gap == Some(self.hidden as u64)
            && self.key_leaks.is_empty()
            && self
                .verified
                .as_ref()
                .is_some_and(|(verdict, _)| verdict == "proven")
    }
}

struct Runner<'a> {
    binary: &'a Path,
    env: Vec<(&'static str, String)>,
    /// Where each run's stderr (and stdout, when not captured) is kept, to be searched for the key.
    logs: PathBuf,
    started: std::cell::Cell<usize>,
}

impl Runner<'_> {
    fn spawn(&self, args: &[&str], capture: bool) -> Child {
        let n = self.started.get();
        self.started.set(n + 1);
        let log = |stream: &str| {
            Stdio::from(
                std::fs::File::create(self.logs.join(format!("run-{n:04}.{stream}")))
                    .expect("creating a run's log file"),
            )
        };
        Command::new(self.binary)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(if capture { Stdio::piped() } else { log("out") })
            .stderr(log("err"))
            .spawn()
            .expect("starting harness-audit")
    }
}

/// Runs the exercise; `out_dir` receives the objects and the checkpoint, and
/// `logs_dir` every run's output.
pub fn run(spec: &ChaosSpec, binary: &Path, out_dir: &Path, logs_dir: &Path) -> ChaosReport {
    let started = Instant::now();
    let mut rng = Rng::new(spec.seed);
    let key = make_key(ACCOUNT, "ChaosToken000000000000");
    let mock = MockHarness::start(
        ACCOUNT,
        vec![KeyGrant {
            key: key.clone(),
            can_view: true,
        }],
    )
    .expect("mock starts");
    mock.set_freedoms(spec.freedoms);
    let streaming = spec.shape == "streaming";
    let start = now_ms();
    let mut preload = seed::generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: spec.preload,
        start_ms: start - spec.preload_span_ms,
        end_ms: start - 1,
        seed: spec.seed,
    });
    for &size in &spec.bursts {
        let at = rng.below((preload.len().saturating_sub(size) + 1) as u64) as usize;
        let burst = preload[at].timestamp;
        for event in preload.iter_mut().skip(at).take(size) {
            event.timestamp = burst;
        }
    }
    mock.insert(preload);
    mock.set_fault_rates(Some(spec.faults));

    let gcs = match &spec.store {
        ChaosStore::Local => None,
        ChaosStore::Gcs { bucket } => Some((Emulator::from_env(), bucket.clone())),
    };
    let runner = Runner {
        binary,
        env: vec![
            ("HARNESS_API_BASE", mock.base_url()),
            ("HARNESS_ACCOUNT_ID", ACCOUNT.into()),
            ("HARNESS_API_KEY", key.clone()),
            ("OUTPUT_DIR", out_dir.display().to_string()),
            ("PAGE_SIZE", spec.page_size.to_string()),
            (
                "START_MINUTES_BACK",
                (spec.preload_span_ms / 60_000 + 2).to_string(),
            ),
            ("SETTLE_LAG_SECONDS", spec.settle_lag_secs.to_string()),
            ("OVERLAP_SECONDS", spec.overlap_secs.to_string()),
            (
                "RECONCILE_INTERVAL_SECONDS",
                spec.reconcile_interval_secs.to_string(),
            ),
            ("RECONCILE_HOURS", "2".into()),
            ("OUTPUT_SHAPE", spec.shape.into()),
            ("MAX_RETRIES", "12".into()),
            ("RETRY_BASE_MS", "5".into()),
            ("RETRY_BUDGET_SECONDS", "120".into()),
            // Under the edge of `Freedoms::ALL` (50 a second), as the default is under
            // Harness's: its 429s come when a killed run's requests and the next run's meet.
            ("MAX_REQUESTS_PER_MINUTE", "2400".into()),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .chain(gcs.iter().flat_map(|(gcs, bucket)| {
            [
                ("GCS_BUCKET", bucket.clone()),
                ("STORAGE_EMULATOR_HOST", gcs.base_url().to_owned()),
            ]
        }))
        .collect(),
        logs: logs_dir.to_path_buf(),
        started: std::cell::Cell::new(0),
    };
    let mut report = ChaosReport::default();
    let live_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut rng = Rng::new(spec.seed ^ 0x11fe);
            let until = Instant::now() + Duration::from_millis(spec.live_ms);
            let mut batch = 0u64;
            while Instant::now() < until {
                let now = now_ms();
                let count = (spec.live_per_second / 10).max(1) as usize;
                let events = seed::generate(&SeedSpec {
                    account_id: ACCOUNT.into(),
                    count,
                    start_ms: now.saturating_sub(2_000),
                    end_ms: now,
                    seed: spec.seed.wrapping_add(1_000 + batch),
                });
                // Ids must stay unique across batches: generated ids restart their counter.
                mock.insert(events.into_iter().enumerate().map(|(i, mut e)| {
                    e.audit_id =
                        seed::object_id(&mut rng, e.timestamp, (batch + 1) << 24 | i as u64);
                    e
                }));
                batch += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            live_done.store(true, Ordering::SeqCst);
        });

        // Runs back to back while events arrive: two in three are killed at a
        // random instant, the others complete their pass, and the required
        // number of kills is always reached.
        let mut attempts = 0;
        let mut active_ms = spec.kill_within_ms;
        while (report.kills < spec.kills || !live_done.load(Ordering::SeqCst))
            && attempts < spec.kills * 10 + 200
        {
            attempts += 1;
            let kill_this_one = rng.below(3) != 0;
            let requests_before = mock.request_count();
            let mut child = runner.spawn(&["run"], false);
            report.runs += 1;
            let delay = Duration::from_millis(rng.below(active_ms + 1));
            let mut first_request: Option<Instant> = None;
            loop {
                if let Some(status) = child.try_wait().expect("waiting on harness-audit") {
                    report.failed_runs += usize::from(!status.success());
                    if let Some(at) = first_request {
                        active_ms = (at.elapsed().as_millis() as u64).max(1);
                    }
                    break;
                }
                if first_request.is_none() && mock.request_count() > requests_before {
                    first_request = Some(Instant::now());
                }
                if kill_this_one && first_request.is_some_and(|at| at.elapsed() >= delay) {
                    child.kill().expect("SIGKILL");
                    child.wait().expect("reaping harness-audit");
                    report.kills += 1;
                    if let Some((gcs, bucket)) = &gcs {
                        gcs.let_lease_lapse(bucket, STATE_KEY);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });

    // Settle: wait until every event is visible and older than the settle lag,
    // then run until a pass finds nothing new and the ledger's gap has stopped
    // moving (re-reads of an hour whose gap did not grow wait out a backoff).
    let last_visible = mock.events_visible_by();
    let settled_at = last_visible.max(now_ms()) + spec.settle_lag_secs * 1000 + 1_000;
    while now_ms() < settled_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    report.hidden = mock.hidden_count();
    for _ in 0..spec.max_settle_runs {
        report.runs += 1;
        let Some(stdout) = finish(runner.spawn(&["run"], true)) else {
            report.failed_runs += 1;
            continue;
        };
        report.reported_gap = reported_gap(&runner);
        if stdout.starts_with("collected 0 events")
            && !stdout.contains("in the quarantine")
            && report.reported_gap == Some(report.hidden as u64)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(spec.reconcile_interval_secs * 1000));
    }

    let expected = mock.returnable();
    report.expected = expected.len();
    let (written, kept) = match &gcs {
        None => (
            collect_lines(&out_dir.join(PREFIX)),
            collect_lines(&out_dir.join(QUARANTINE)),
        ),
        Some((gcs, bucket)) => (
            gcs.line_bytes(bucket, PREFIX),
            gcs.line_bytes(bucket, QUARANTINE),
        ),
    };
    report.written_lines = written.len() + kept.len();
    report.quarantined = kept.len();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut data_lines: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for line in &written {
        let id = stored::id_of(line);
        *counts.entry(id.clone()).or_default() += 1;
        data_lines.insert(id, line.clone());
    }
    let mut kept_counts: BTreeMap<&[u8], usize> = BTreeMap::new();
    for line in &kept {
        *kept_counts.entry(line.as_slice()).or_default() += 1;
    }
    report.bytes_equal = true;
    for event in &expected {
        let stored = if event.odd.is_some_and(|odd| odd.quarantined(streaming)) {
            kept_counts
                .get(event.bytes.as_slice())
                .copied()
                .unwrap_or(0)
        } else {
            if !streaming
                && data_lines
                    .get(&event.audit_id)
                    .is_some_and(|line| *line != stored::data_line(&event.bytes))
            {
                report.bytes_equal = false;
            }
            counts.get(&event.audit_id).copied().unwrap_or(0)
        };
        match stored {
            0 => report.lost.push(event.audit_id.clone()),
            1 => {}
            _ => report.duplicated.push(event.audit_id.clone()),
        }
    }
    let secret = crate::secrets::secret_of(&key);
    report.key_leaks = [out_dir, logs_dir]
        .into_iter()
        .flat_map(|dir| crate::secrets::files_containing(dir, secret))
        .collect();
    if let Some((gcs, bucket)) = &gcs {
        let leaked = gcs
            .list(bucket, "")
            .into_iter()
            .filter(|o| {
                gcs.download(bucket, &o.name)
                    .is_some_and(|b| crate::secrets::contains(&b, secret))
            })
            .map(|o| PathBuf::from(format!("gs://{bucket}/{}", o.name)));
        report.key_leaks.extend(leaked);
    }
    report.verified = verified(&runner);
    report.elapsed = started.elapsed();
    report
}

/// What `harness-audit verify --format json` says of the chain every
/// killed and settling run left: its verdict and problems.
fn verified(runner: &Runner<'_>) -> Option<(String, Vec<String>)> {
    let output = runner
        .spawn(&["verify", "--format", "json"], true)
        .wait_with_output()
        .ok()?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let problems = report["problems"]
        .as_array()?
        .iter()
        .map(serde_json::Value::to_string)
        .collect();
    Some((report["verdict"].as_str()?.to_owned(), problems))
}

/// Waits for a run; its stdout if it succeeded, `None` if it failed.
fn finish(child: Child) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(Ok(output)) = rx.recv_timeout(RUN_TIMEOUT) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("a settling run did not finish within {RUN_TIMEOUT:?}");
    };
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The collector's own account of what Harness counted and never returned:
/// `harness-audit ledger --format json`.
fn reported_gap(runner: &Runner<'_>) -> Option<u64> {
    let json = finish(runner.spawn(&["ledger", "--format", "json"], true))?;
    serde_json::from_str::<serde_json::Value>(&json).ok()?["unreconciled_events"].as_u64()
}

/// Every line of every object under `dir`, as bytes.
fn collect_lines(dir: &Path) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            lines.extend(collect_lines(&path));
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            lines.extend(stored::lines(&std::fs::read(&path).expect("an object")));
        }
    }
    lines
}
