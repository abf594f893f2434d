//! Kills aimed at the commit window, and writers that overlap without the
//! lease. The binary's test hook (`HARNESS_AUDIT_TEST_PAUSE_AT`, see
//! `host/src/pause_points.rs`) stops the process at a named step; the test
//! looks at what is stored at that instant, then SIGKILLs it there, or lets it
//! carry on late, and requires exact output after the next run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness_tests::process::{KillOnDrop, exit_within, spawn_logged};
use harness_tests::{Emulator, FaultProxy, FaultRates, Freedoms, ProxyFaults, Recorded};
use serde_json::Value;

use crate::support::{ACCOUNT, CHECKPOINT, Env, PREFIX, Run, assert_exact, run_gcs};

const STEPS: [&str; 5] = [
    "after-intent",
    "mid-upload",
    "after-object",
    "after-commit",
    "after-digest",
];

/// Where to stop: at the second batch, or at the pass's one digest.
fn pause_at(step: &str) -> String {
    let occurrence = if step == "after-digest" { 1 } else { 2 };
    format!("{step}@{occurrence}")
}
/// Several batches per run, so a kill at the second leaves the first committed.
const BATCHES: [(&str, &str); 2] = [("PAGE_SIZE", "50"), ("BATCH_MAX_EVENTS", "100")];

/// Ties in any order and short pages: what the API allows, as the chaos test has it.
fn free() -> Freedoms {
    Freedoms {
        shuffle_ties: true,
        short_page_rate: 0.1,
        short_page_drop: 0.33,
        ..Freedoms::default()
    }
}

/// A run the test hook stopped at a step.
struct Paused {
    child: KillOnDrop,
    log: Arc<Mutex<String>>,
}

impl Paused {
    /// Starts `harness-audit run` and waits until it stops at `step` (`<step>@<n>`).
    fn start(env: &Env, step: &str, extra: &[(&str, &str)]) -> Self {
        let mut vars = extra.to_vec();
        vars.push(("HARNESS_AUDIT_TEST_PAUSE_AT", step));
        let (command, _) = env.command(&["run"], &vars);
        let (child, log) = spawn_logged(command);
        let started = Instant::now();
        while !log.lock().unwrap().contains("test hook: paused at") {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "never paused at {step}:\n{}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let stat = format!("/proc/{}/stat", child.id());
        let stopped = (0..500).any(|_| {
            let state = std::fs::read_to_string(&stat).unwrap_or_default();
            let stopped = state
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('T'));
            if !stopped {
                std::thread::sleep(Duration::from_millis(10));
            }
            stopped
        });
        assert!(stopped, "the process did not stop at {step}");
        Self { child, log }
    }

    /// SIGKILL, as a crash at this step.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGCONT: the stalled process carries on; its exit code and log.
    fn resume(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let code = exit_within(&mut self.child, Duration::from_secs(120), &self.log);
        // The reader thread ends with the pipe; give it the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (code, self.log.lock().unwrap().clone())
    }
}

/// Events a run reports as collected.
fn collected(stdout: &str) -> usize {
    stdout
        .strip_prefix("collected ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary: {stdout}"))
}

/// What a kill at `step` must have left, and the stderr the restart must print.
fn assert_left_at(step: &str, state: &Value, object_exists: bool) {
    if step == "after-digest" {
        assert!(state.get("pending").is_none(), "{state}");
        // Every batch of the pass is in the digest, which the state does not record yet.
        let unsealed = state["unsealed"].as_array().map_or(0, Vec::len);
        assert!(
            unsealed >= 3,
            "the digest is written, not recorded: {state}"
        );
        return;
    }
    if step == "after-commit" {
        assert!(state.get("pending").is_none(), "{state}");
        return;
    }
    assert_ne!(
        state["pending"]["checkpoint"], state["checkpoint"],
        "the batch in flight carries a checkpoint of its own"
    );
    assert_eq!(object_exists, step == "after-object", "at {step}: {state}");
}

/// The restart after a kill at `step` settles what the kill left, collects
/// exactly the events not `stored` before it, leaves `lines` exact, and
/// leaves a chain of digests that `verify` (run with `store`'s settings) proves.
fn assert_restart(
    step: &str,
    run: &Run,
    stored: usize,
    lines: Vec<String>,
    env: &Env,
    store: &[(&str, &str)],
) {
    assert_eq!(run.code, 0, "{}", run.stderr);
    let verified = env.run_with(&["verify"], store);
    assert_eq!(
        verified.code, 0,
        "{step}: {}{}",
        verified.stdout, verified.stderr
    );
    assert!(
        verified.stdout.contains("problems: none")
            && verified.stdout.ends_with("verdict: proven\n"),
        "{step}: {}",
        verified.stdout
    );
    let note = match step {
        "after-object" => Some("its object exists, so its checkpoint is now committed"),
        "after-commit" | "after-digest" => None,
        _ => Some("its object was never written, so it will be read again"),
    };
    assert!(
        note.is_none_or(|n| run.stderr.contains(n)),
        "{step}: {}",
        run.stderr
    );
    assert_eq!(
        collected(&run.stdout),
        300 - stored,
        "{step}: {}",
        run.stdout
    );
    assert_exact(lines, env.mock.events_json(), step);
}

/// SIGKILL at each step of the commit protocol on the local sink: the next
/// run collects exactly the events not yet stored, and the store ends exact.
#[test]
fn a_kill_at_each_commit_step_on_the_local_sink_loses_and_repeats_nothing() {
    for step in STEPS {
        let env = Env::with_freedoms(300, free());
        let paused = Paused::start(&env, &pause_at(step), &BATCHES);
        let state: Value = serde_json::from_slice(&env.checkpoint().unwrap()).unwrap();
        let object = state["pending"]["object"].as_str().unwrap_or_default();
        assert_left_at(step, &state, env.out().join(object).is_file());
        if step == "mid-upload" {
            let dir = env.out().join(object).parent().unwrap().to_owned();
            let partial = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .any(|n| n.starts_with('.') && n.contains(".tmp-"));
            assert!(
                partial,
                "half the object is on disk, under a temporary name"
            );
        }
        let stored = env.sorted_lines().len();
        paused.kill();
        let run = env.run(&BATCHES);
        assert_restart(step, &run, stored, env.sorted_lines(), &env, &[]);
    }
}

fn gcs_state(gcs: &Emulator, bucket: &str) -> Value {
    serde_json::from_slice(&gcs.download(bucket, CHECKPOINT).unwrap()).unwrap()
}

/// The same on the GCS emulator, where mid-upload means half the request body
/// sent, and where the killed run also leaves its lease: the restart stops
/// (exit 7) until it lapses, then settles exactly.
#[test]
fn a_kill_at_each_commit_step_on_gcs_loses_and_repeats_nothing() {
    let gcs = Emulator::from_env();
    for step in STEPS {
        let env = Env::with_freedoms(300, free());
        let bucket = gcs.fresh_bucket("kill");
        let mut vars = vec![
            ("GCS_BUCKET", bucket.as_str()),
            ("STORAGE_EMULATOR_HOST", gcs.base_url()),
        ];
        vars.extend_from_slice(&BATCHES);
        let paused = Paused::start(&env, &pause_at(step), &vars);
        let state = gcs_state(&gcs, &bucket);
        let object = state["pending"]["object"].as_str().unwrap_or_default();
        assert_left_at(step, &state, gcs.download(&bucket, object).is_some());
        let stored = gcs.lines(&bucket, PREFIX).len();
        paused.kill();
        let blocked = run_gcs(&env, gcs.base_url(), &bucket, &BATCHES);
        assert_eq!(
            blocked.code, 7,
            "the killed run's lease still stands: {}",
            blocked.stderr
        );
        gcs.let_lease_lapse(&bucket, CHECKPOINT);
        let run = run_gcs(&env, gcs.base_url(), &bucket, &BATCHES);
        assert_restart(
            step,
            &run,
            stored,
            gcs.lines(&bucket, PREFIX),
            &env,
            &vars[..2],
        );
    }
}

fn uploads(recorded: &[Recorded]) -> Vec<Instant> {
    recorded
        .iter()
        .filter(|r| r.request.starts_with("POST /upload/"))
        .map(|r| r.at)
        .collect()
}

/// A writer frozen between its intent and its object for longer than its
/// lease: a second writer takes the lease and the batch over and collects
/// everything; when the first wakes and stores its object late, it meets the
/// fence the second left, stops with exit 7, and nothing is stored twice.
#[test]
fn a_writer_frozen_past_its_lease_is_fenced_out_and_stops_with_exit_7() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("frozen");
    let env = Env::with_freedoms(600, free());
    let first = FaultProxy::start(gcs.base_url(), ProxyFaults::default()).unwrap();
    let second = FaultProxy::start(gcs.base_url(), ProxyFaults::default()).unwrap();
    let (first_url, second_url) = (first.base_url(), second.base_url());
    let via = |url| {
        [
            ("GCS_BUCKET", bucket.as_str()),
            ("STORAGE_EMULATOR_HOST", url),
            BATCHES[0],
            BATCHES[1],
        ]
    };
    let first_vars = via(first_url.as_str());
    let paused = Paused::start(&env, "after-intent@3", &first_vars);
    let frozen_at = Instant::now();
    let object = gcs_state(&gcs, &bucket)["pending"]["object"]
        .as_str()
        .unwrap()
        .to_owned();
    // An event that shows up late inside the frozen batch's time: the second
    // writer's reading of that batch differs, so its object has another name
    // and only the fence keeps the first's late object out.
    let mut stamps: Vec<u64> = env.mock.events().iter().map(|e| e.timestamp).collect();
    stamps.sort_unstable();
    let inside = stamps[gcs.lines(&bucket, PREFIX).len() + 50];
    env.mock
        .insert(harness_tests::generate(&harness_tests::SeedSpec {
            account_id: ACCOUNT.into(),
            count: 1,
            start_ms: inside,
            end_ms: inside + 1,
            seed: 77,
        }));
    gcs.let_lease_lapse(&bucket, CHECKPOINT);
    let run = env.run(&via(second_url.as_str()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("it will be read again"),
        "{}",
        run.stderr
    );
    let second_done = Instant::now();
    let (code, log) = paused.resume();
    assert_eq!(code, 7, "{log}");
    assert!(
        log.contains("another instance advanced the checkpoint"),
        "{log}"
    );
    // The two lived at once: the first stored before the second started and
    // tried to store its batch after the second had finished.
    let first_uploads = uploads(&first.recorded());
    assert!(first_uploads.iter().any(|t| *t < frozen_at));
    assert!(
        first_uploads.iter().any(|t| *t > second_done),
        "the frozen writer tried to store after waking"
    );
    assert!(!uploads(&second.recorded()).is_empty());
    assert_exact(
        gcs.lines(&bucket, PREFIX),
        env.mock.events_json(),
        "frozen writer",
    );
    let fence = gcs
        .list(&bucket, PREFIX)
        .into_iter()
        .find(|o| o.name == object);
    assert!(
        fence.is_none_or(|o| o.metadata.contains_key("fenced-by")
            || gcs
                .download(&bucket, &o.name)
                .is_some_and(|b| !b.is_empty())),
        "the late object never landed"
    );
    run_gcs(&env, gcs.base_url(), &bucket, &[]).assert_collected(0);
}

/// Two writers at once on one checkpoint, the lease lapsed under the first:
/// both page Harness and store at the same time, exactly one commit wins each
/// round, the loser stops with exit 7, and every event is stored once.
#[test]
fn two_writers_without_the_lease_overlap_and_one_commit_wins_each_round() {
    let gcs = Emulator::from_env();
    for round in 0..3 {
        let bucket = gcs.fresh_bucket("overlap");
        let env = Env::with_freedoms(2000, free());
        env.mock.set_fault_rates(Some(FaultRates {
            max_latency_ms: 20,
            ..FaultRates::default()
        }));
        let proxies = [
            FaultProxy::start(gcs.base_url(), ProxyFaults::default()).unwrap(),
            FaultProxy::start(gcs.base_url(), ProxyFaults::default()).unwrap(),
        ];
        let urls = proxies.each_ref().map(FaultProxy::base_url);
        let vars = urls.each_ref().map(|url| {
            [
                ("GCS_BUCKET", bucket.as_str()),
                ("STORAGE_EMULATOR_HOST", url.as_str()),
                ("PAGE_SIZE", "20"),
                ("BATCH_MAX_EVENTS", "100"),
            ]
        });
        let codes: Vec<i32> = std::thread::scope(|scope| {
            let first = scope.spawn(|| env.run(&vars[0]));
            // Once the first has committed a few batches, its lease lapses and the second starts.
            let deadline = Instant::now() + Duration::from_secs(60);
            while uploads(&proxies[0].recorded()).len() < 6 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            gcs.let_lease_lapse(&bucket, CHECKPOINT);
            let second = scope.spawn(|| env.run(&vars[1]));
            [first, second]
                .into_iter()
                .map(|h| {
                    let run = h.join().unwrap();
                    assert!(run.code == 0 || run.code == 7, "{}", run.stderr);
                    if run.code == 7 {
                        assert!(
                            run.stderr
                                .contains("another instance advanced the checkpoint"),
                            "{}",
                            run.stderr
                        );
                    }
                    run.code
                })
                .collect()
        });
        let (a, b) = (
            uploads(&proxies[0].recorded()),
            uploads(&proxies[1].recorded()),
        );
        assert!(
            b.first().unwrap() < a.last().unwrap() && a.first().unwrap() < b.last().unwrap(),
            "round {round}: the two writers stored at the same time"
        );
        let mut codes = codes;
        codes.sort_unstable();
        assert_eq!(
            codes,
            vec![0, 7],
            "round {round}: one commit wins, the other writer stops"
        );
        assert_exact(
            gcs.lines(&bucket, PREFIX),
            env.mock.events_json(),
            &format!("round {round}"),
        );
    }
}
