//! Completeness against an API as free as Harness's: ties in a new order on
//! every request, short pages, events counted and never returned, events
//! visible long after their window, and the ledger that reports what could
//! not be collected.

use harness_tests::{Freedoms, SeedSpec};
use serde_json::Value;

use crate::support::{ACCOUNT, Env, now_ms, sorted};

fn ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["auditId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A bulk operation of 1,000 events in one millisecond, with `PAGE_SIZE=100`,
/// returned in a new order on every request: every event arrives once, and a
/// second run writes nothing.
#[test]
fn a_thousand_events_in_one_millisecond_arrive_once_each() {
    let env = Env::with_freedoms(
        0,
        Freedoms {
            shuffle_ties: true,
            ..Freedoms::default()
        },
    );
    let now = now_ms();
    let mut events = harness_tests::generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 1_300,
        start_ms: now - 600_000,
        end_ms: now - 2_000,
        seed: 14,
    });
    let burst = events[150].timestamp;
    for e in &mut events[150..1_150] {
        e.timestamp = burst;
    }
    env.mock.insert(events);
    let run = env.run(&[("PAGE_SIZE", "100")]);
    run.assert_collected(1_300);
    let lines = env.sorted_lines();
    let mut unique = ids(&lines);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1_300, "no duplicate");
    assert_eq!(lines, sorted(env.mock.events_json()));
    let one_ms = env
        .mock
        .requests()
        .iter()
        .filter(|r| {
            let body = r.body.as_ref().unwrap();
            body["startTime"] == burst && body["endTime"] == burst
        })
        .count();
    assert!(
        one_ms >= 10,
        "the millisecond is read on its own: {one_ms} requests"
    );
    env.run(&[("PAGE_SIZE", "100")]).assert_collected(0);
}

/// Harness counts events it never returns (filtered after paging) and
/// answers some pages short. The run still finishes (exit 0), writes every
/// event it can get, once, and reports the gap: in its summary, on a log
/// line, and in `harness-audit ledger` (text and JSON, without the key).
#[test]
fn events_counted_and_never_returned_are_reported_not_waited_for() {
    let env = Env::with_freedoms(
        2_000,
        Freedoms {
            hidden_fraction: 0.05,
            short_page_rate: 0.2,
            short_page_drop: 0.3,
            shuffle_ties: true,
            ..Freedoms::default()
        },
    );
    let hidden = env.mock.hidden_count();
    assert!(hidden > 50, "{hidden}");
    // No overlap, so that the counts reach the newest event.
    let run = env.run(&[("PAGE_SIZE", "100"), ("OVERLAP_SECONDS", "0")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let collected = 2_000 - hidden;
    run.assert_collected(collected);
    assert!(
        run.stdout.contains(&format!(
            "; {hidden} events counted by Harness were never returned (see `harness-audit ledger`)"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("kind=\"gap-remains\""),
        "{}",
        run.stderr
    );
    assert_eq!(env.sorted_lines(), sorted(env.mock.returnable_json()));

    let json = env.run_with(&["ledger", "--format", "json"], &[("HARNESS_API_KEY", "")]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let ledger: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(ledger["unreconciled_events"], hidden);
    let hours = ledger["hours"].as_array().unwrap();
    let stored: u64 = hours.iter().map(|h| h["stored"].as_u64().unwrap()).sum();
    assert_eq!(stored, collected as u64);
    assert!(
        hours.iter().all(|h| h["counted"].is_u64()),
        "every hour was checked"
    );
    let text = env.run_with(&["ledger"], &[("HARNESS_API_KEY", "")]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains(&format!(
            "{collected} events stored (0 of them in the quarantine), {hidden} counted by Harness and never returned"
        )),
        "{}",
        text.stdout
    );

    // `verify` proves the store intact and, against the ledger's counts,
    // incomplete by exactly the events never returned: exit 9.
    let verified = env.run_with(
        &["verify", "--completeness", "--format", "json"],
        &[("HARNESS_API_KEY", "")],
    );
    assert_eq!(verified.code, 9, "{}{}", verified.stdout, verified.stderr);
    let report: Value = serde_json::from_str(&verified.stdout).unwrap();
    assert_eq!(report["verdict"], "completeness-gap");
    assert_eq!(report["problems"], serde_json::json!([]));
    let hours = report["completeness"].as_array().unwrap();
    let gap: u64 = hours.iter().map(|h| h["gap"].as_u64().unwrap()).sum();
    assert_eq!(gap, hidden as u64);
    let found: u64 = hours.iter().map(|h| h["found"].as_u64().unwrap()).sum();
    assert_eq!(found, collected as u64);
    let intact = env.run_with(&["verify"], &[("HARNESS_API_KEY", "")]);
    assert_eq!(
        intact.code, 0,
        "without --completeness only integrity counts: {}",
        intact.stdout
    );

    // The gap stays reported until Harness returns those events.
    let again = env.run(&[("PAGE_SIZE", "100")]);
    again.assert_collected(0);
    assert!(
        again.stdout.contains(&format!(
            "; {hidden} events counted by Harness were never returned"
        )),
        "{}",
        again.stdout
    );
}

/// Events that become visible half an hour after their timestamp, long
/// after the window holding them was read (past `SETTLE_LAG_SECONDS` and
/// `OVERLAP_SECONDS`), are found by the next reconciliation and written
/// once, and reconciliation with nothing missing writes nothing.
#[test]
fn events_visible_long_after_their_window_are_collected_by_reconciliation() {
    let env = Env::new(500);
    let settings = [
        ("OVERLAP_SECONDS", "60"),
        ("RECONCILE_INTERVAL_SECONDS", "1"),
    ];
    env.run(&settings).assert_collected(500);
    let now = now_ms();
    let late = harness_tests::generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 7,
        start_ms: now - 40 * 60_000,
        end_ms: now - 30 * 60_000,
        seed: 31,
    });
    env.mock.insert(late);
    // The next reconciliation is due one interval after the first pass.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let run = env.run(&settings);
    run.assert_collected(7);
    assert!(run.stdout.contains("found 7 late events"), "{}", run.stdout);
    assert!(
        run.stderr.contains("kind=\"late-collected\""),
        "{}",
        run.stderr
    );
    assert_eq!(env.sorted_lines(), sorted(env.mock.events_json()));
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let quiet = env.run(&settings);
    quiet.assert_collected(0);
    assert!(
        quiet.stdout.contains("re-read 0 and found 0 late events"),
        "{}",
        quiet.stdout
    );
}
