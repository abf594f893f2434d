//! Sandbox limits, quotas and batch rules, each tested from both sides with a
//! fixture component (`tests/fixtures/guest-misbehave`) whose account id
//! picks the breach: just under the limit the run succeeds, just over it is
//! stopped with an error naming the setting, the quota or the rule.

use std::time::{Duration, Instant};

use crate::support::{Env, Run};

/// A key without an embedded account, so the account id is free to choose the behaviour.
const KEY: &str = "pat.FixtureToken0000000.s3cr3tV4lu3xs3cr3tV4";

fn run_fixture(behaviour: &str, extra: &[(&str, &str)]) -> Run {
    run_fixture_with(&["run"], behaviour, extra)
}

fn run_fixture_with(command: &[&str], behaviour: &str, extra: &[(&str, &str)]) -> Run {
    let env = Env::new(0);
    let mut vars = vec![("HARNESS_ACCOUNT_ID", behaviour), ("HARNESS_API_KEY", KEY)];
    vars.extend_from_slice(extra);
    let mut args = vec!["--component", harness_tests::GUEST_MISBEHAVE];
    args.extend_from_slice(command);
    env.run_with(&args, &vars)
}

fn assert_refused(run: &Run, message: &str) {
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "harness-audit: error: the source component failed: the host refused a batch: {message}"
        )),
        "{}",
        run.stderr
    );
}

fn assert_stopped(run: &Run, message: &str) {
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "harness-audit: error: the source component hit a limit: {message}"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn deadline_obeyed() {
    let run = run_fixture("busy-300", &[("POLL_TIMEOUT_SECS", "2")]);
    run.assert_collected(0);
}

/// Stopped at the deadline, not before it and not long after: the spinning
/// call never returns by itself, so the whole run's time bounds the stop
/// (its start-up, compiling the fixture included, is the margin).
#[test]
fn deadline_violated() {
    let started = Instant::now();
    let run = run_fixture("spin", &[("POLL_TIMEOUT_SECS", "3")]);
    let elapsed = started.elapsed();
    assert_stopped(
        &run,
        "a call into the component ran longer than POLL_TIMEOUT_SECS (3 s) and was stopped",
    );
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(3 + 6),
        "stopped after {elapsed:?}, POLL_TIMEOUT_SECS is 3 s"
    );
}

#[test]
fn memory_limit_obeyed() {
    let run = run_fixture("alloc-24", &[("MAX_MEMORY_MIB", "32")]);
    run.assert_collected(0);
}

#[test]
fn memory_limit_violated() {
    let run = run_fixture("alloc-40", &[("MAX_MEMORY_MIB", "32")]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("over MAX_MEMORY_MIB (32 MiB), and was stopped"),
        "{}",
        run.stderr
    );
}

#[test]
fn batch_size_obeyed() {
    let run = run_fixture("batch-50", &[("BATCH_MAX_EVENTS", "50")]);
    run.assert_collected(50);
}

#[test]
fn batch_size_violated() {
    let run = run_fixture("batch-51", &[("BATCH_MAX_EVENTS", "50")]);
    assert_refused(
        &run,
        "rule `max-events`: the batch holds 51 events, over BATCH_MAX_EVENTS (50)",
    );
}

#[test]
fn an_empty_checkpoint_is_rejected() {
    let run = run_fixture("empty-checkpoint", &[]);
    assert_refused(
        &run,
        "rule `checkpoint`: the checkpoint is 0 bytes; it must hold 1 to",
    );
}

/// A backfill range the fixture reads back from its settings.
const RANGE: [&str; 4] = ["backfill", "--from", "2026-01-01T00:00:00Z", "--to"];
const RANGE_END: &str = "2026-01-01T01:00:00Z";

fn run_rule(rule: &str, side: &str) -> Run {
    let behaviour = format!("rule-{rule}-{side}");
    if rule == "pass-window" {
        let mut command = RANGE.to_vec();
        command.push(RANGE_END);
        run_fixture_with(&command, &behaviour, &[])
    } else {
        run_fixture(&behaviour, &[])
    }
}

const RULES: [(&str, &str); 11] = [
    ("utf8", "rule `utf-8`: line 2 is not valid UTF-8"),
    (
        "json",
        "rule `json-object`: line 2 is not one JSON object with a time (trailing characters",
    ),
    (
        "count",
        "rule `event-count`: event-count is 3 but the batch holds 2 lines",
    ),
    (
        "ordered",
        "rule `ordered`: first-event-ms 2001 is after 2000",
    ),
    (
        "event-time",
        "rule `event-time`: line 2 is at 2001, outside first-event-ms..last-event-ms 1000..2000",
    ),
    (
        "batch-window",
        "rule `batch-window`: events 1000..2000 lie outside the batch's window 1001..2500",
    ),
    ("future", "rule `not-future`: the batch's window ends at "),
    (
        "pass-window",
        "rule `pass-window`: the batch's window 1767225600000..1767229200001 lies outside the pass's window 1767225600000..1767229200000",
    ),
    (
        "quarantine",
        "rule `quarantine`: quarantined event 1 holds a line break",
    ),
    (
        "quarantine-time",
        "rule `event-time`: quarantined event 1 is at 2001, outside first-event-ms..last-event-ms 1000..2000",
    ),
    (
        "quarantine-only",
        "rule `ndjson`: a batch holds at least one line or quarantined event",
    ),
];

#[test]
fn batches_just_inside_every_rule_are_stored() {
    for (rule, _) in RULES {
        let run = run_rule(rule, "ok");
        assert_eq!(run.code, 0, "{rule}: {}", run.stderr);
        assert!(run.stdout.contains("collected "), "{rule}: {}", run.stdout);
    }
}

#[test]
fn batches_just_outside_each_rule_are_refused_naming_it_and_nothing_is_stored() {
    for (rule, message) in RULES {
        let run = run_rule(rule, "bad");
        assert_refused(&run, message);
        assert!(!run.stdout.contains("collected"), "{rule}: {}", run.stdout);
    }
}

fn assert_quota(run: &Run, limit: &str) {
    assert_stopped(run, "");
    assert!(run.stderr.contains(limit), "{limit}: {}", run.stderr);
}

#[test]
fn emits_per_poll_obey_the_budget() {
    run_fixture("flood-20", &[]).assert_collected(20);
}

#[test]
fn emits_per_poll_over_the_budget_are_refused() {
    let run = run_fixture("flood-21", &[]);
    assert_quota(
        &run,
        "the component called emit more than 20 times in one poll, over its budget's max-pages",
    );
}

#[test]
fn batches_per_pass_obey_the_quota() {
    run_fixture("polls-3", &[("MAX_PASS_BATCHES", "3")]).assert_collected(3);
}

#[test]
fn batches_per_pass_over_the_quota_are_refused() {
    let run = run_fixture("polls-4", &[("MAX_PASS_BATCHES", "3")]);
    assert_quota(
        &run,
        "the pass stored 3 batches, MAX_PASS_BATCHES; the next was refused",
    );
}

#[test]
fn bytes_per_pass_obey_the_quota() {
    run_fixture("bytes-1048576", &[("MAX_PASS_MIB", "1")]).assert_collected(1);
}

#[test]
fn bytes_per_pass_over_the_quota_are_refused() {
    let run = run_fixture("bytes-1048577", &[("MAX_PASS_MIB", "1")]);
    assert_quota(
        &run,
        "a batch of 1048577 bytes would take the pass past MAX_PASS_MIB (1 MiB, 0 stored so far)",
    );
}

/// CPU is counted apart from the wall clock: 0.3 s of work under a 1 s budget passes.
#[test]
fn cpu_budget_obeyed() {
    run_fixture("busy-300", &[("MAX_PASS_CPU_SECS", "1")]).assert_collected(0);
}

/// 20 s of work under a 1 s budget stops after about 1 s, however long the deadline.
#[test]
fn cpu_budget_violated() {
    let started = Instant::now();
    let run = run_fixture("busy-20000", &[("MAX_PASS_CPU_SECS", "1")]);
    assert_stopped(
        &run,
        "the pass used more than MAX_PASS_CPU_SECS (1 s) of CPU and was stopped",
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// SIGTERM reaches a poll that never returns at the guest's next epoch tick:
/// the run ends at once, not at the deadline.
#[test]
fn sigterm_interrupts_a_poll_that_never_returns() {
    use std::process::{Command, Stdio};
    let env = Env::new(0);
    let child = Command::new(env!("CARGO_BIN_EXE_harness-audit"))
        .args(["--component", harness_tests::GUEST_MISBEHAVE, "run"])
        .env_clear()
        .envs([
            ("HARNESS_API_BASE", env.mock.base_url().as_str()),
            ("HARNESS_ACCOUNT_ID", "spin"),
            ("HARNESS_API_KEY", KEY),
            ("OUTPUT_DIR", env.out().to_str().unwrap()),
            ("POLL_TIMEOUT_SECS", "600"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = crate::support::output_within(child, Duration::from_secs(30), "run");
    let stopped_in = signalled.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("stopped early for shutdown"), "{stdout}");
    assert!(
        stopped_in < Duration::from_secs(2),
        "stopped {stopped_in:?} after SIGTERM"
    );
}
