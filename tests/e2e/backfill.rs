//! `backfill`: a past range, interrupted by failures and resumed, stored
//! exactly once, with the live checkpoint untouched; a finished backfill run
//! again writes nothing.

use std::path::Path;

use harness_audit::time::rfc3339_ms;
use harness_tests::FaultRates;

use crate::support::{Env, now_ms, sorted};

#[test]
fn an_interrupted_backfill_resumes_and_stores_its_range_exactly_once() {
    let env = Env::new(1500);
    env.run(&[]).assert_collected(1500);
    let live = env.checkpoint().unwrap();

    let now = now_ms();
    let (from, to) = (now - 40 * 60_000, now - 10 * 60_000);
    let (from_text, to_text) = (rfc3339_ms(from), rfc3339_ms(to));
    let expected = env
        .mock
        .events_json_where(|e| e.timestamp >= from && e.timestamp <= to);
    assert!(expected.len() > 500 && expected.len() < 1500);

    env.mock.set_fault_rates(Some(FaultRates {
        server_error: 0.3,
        ..FaultRates::default()
    }));
    let args = ["backfill", "--from", &from_text, "--to", &to_text];
    let vars = [
        ("GCS_PREFIX", "backfill"),
        ("PAGE_SIZE", "20"),
        ("BATCH_MAX_EVENTS", "20"),
        ("MAX_RETRIES", "0"),
    ];
    let mut interrupted = 0;
    let mut finished = None;
    for _ in 0..60 {
        let run = env.run_with(&args, &vars);
        if run.code == 0 {
            finished = Some(run);
            break;
        }
        assert_eq!(run.code, 4, "{}", run.stderr);
        interrupted += 1;
    }
    let finished = finished.expect("the backfill finished within 60 runs");
    assert!(interrupted > 0, "the faults interrupted it at least once");
    assert!(
        finished.stderr.contains("backfill progress: 100.0% of"),
        "{}",
        finished.stderr
    );
    assert_eq!(env.sorted_lines_under("backfill"), sorted(expected));
    assert_eq!(
        env.checkpoint().unwrap(),
        live,
        "the live checkpoint is untouched"
    );
    let state = env.out().join("harness-audit-state");
    let backfill_state = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("backfill-"))
        .expect("the backfill has its own checkpoint");
    assert!(backfill_state.ends_with(".json") && Path::new(&state).join(&backfill_state).is_file());

    env.mock.set_fault_rates(None);
    let before = env.objects().len();
    env.run_with(&args, &vars).assert_collected(0);
    assert_eq!(
        env.objects().len(),
        before,
        "a finished backfill writes nothing"
    );
}

#[test]
fn bad_ranges_are_refused_before_any_request() {
    let env = Env::new(5);
    let run = env.run_with(
        &["backfill", "--from", "2025-06-30", "--to", "2025-01-01"],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--from 2025-06-30 is after --to 2025-01-01"),
        "{}",
        run.stderr
    );
    assert_eq!(env.mock.request_count(), 0);
}
