//! Sandbox limits, each tested from both sides with a fixture component
//! (`tests/fixtures/guest-misbehave`) whose account id picks the breach:
//! just under the limit the run succeeds, just over it is stopped with an
//! error naming the setting.

use crate::support::{Env, Run};

/// A key without an embedded account, so the account id is free to choose the behaviour.
const KEY: &str = "pat.FixtureToken0000000.s3cr3tV4lu3xs3cr3tV4";

fn run_fixture(behaviour: &str, extra: &[(&str, &str)]) -> Run {
    let env = Env::new(0);
    let mut vars = vec![("HARNESS_ACCOUNT_ID", behaviour), ("HARNESS_API_KEY", KEY)];
    vars.extend_from_slice(extra);
    env.run_with(
        &["--component", harness_tests::GUEST_MISBEHAVE, "run"],
        &vars,
    )
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

#[test]
fn deadline_violated() {
    let run = run_fixture("spin", &[("POLL_TIMEOUT_SECS", "1")]);
    assert_stopped(
        &run,
        "a call into the component ran longer than POLL_TIMEOUT_SECS (1 s) and was stopped",
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
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "the source component failed: the host rejected a batch: batch of 51 events exceeds BATCH_MAX_EVENTS (50)"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn an_empty_checkpoint_is_rejected() {
    let run = run_fixture("empty-checkpoint", &[]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the host rejected a batch: checkpoint of 0 bytes is empty"),
        "{}",
        run.stderr
    );
}
