//! Pacing by key against the mock's edge (Harness's per-key budget, 429
//! with no `Retry-After` past it): passes sharing a key in one process
//! share its pace, and a 429 cuts the pace of every pass on the key.
//! How the pace settles beside other processes is measured by
//! `bench/pacing.py`, over minutes.

use std::time::Duration;

use harness_audit::time::rfc3339_ms;
use harness_tests::{EdgeAnswer, EdgeLimit, Fault, Freedoms};

use crate::support::{ACCOUNT, Env, PREFIX, assert_no_secret_in_files, now_ms, serve_once, sorted};

/// A sliding budget of 45 requests in any 10 s: a live tenant and a backfill
/// paced together at 240 a minute send 40 in 10 s and pass; each at its own
/// 240 a minute they send 80 and are refused within 6 s.
const EDGE: EdgeLimit = EdgeLimit {
    requests: 45,
    window: Duration::from_secs(10),
};

fn refusals(answers: &[EdgeAnswer]) -> usize {
    answers.iter().filter(|a| a.refused).count()
}

#[test]
fn a_live_tenant_and_a_backfill_on_one_key_in_serve_share_its_pace() {
    let env = Env::with_freedoms(
        900,
        Freedoms {
            edge_limit: Some(EDGE),
            ..Freedoms::default()
        },
    );
    let now = now_ms();
    // The live tenant reads the last 25 minutes, the backfill the 25 before,
    // with a minute's overlap: about 45 pages each, read at the same time.
    let (from, to) = (now - 51 * 60_000, now - 24 * 60_000);
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.toml");
    let entry = |id: &str, extra: &str| {
        format!(
            "[[tenant]]\nid = \"{id}\"\naccount_id = \"{ACCOUNT}\"\napi_base = \"{}\"\napi_key_env = \"KEY\"\n\
             output_dir = \"{}\"\n{extra}\n",
            env.mock.base_url(),
            env.out().display()
        )
    };
    std::fs::write(
        &tenants,
        format!(
            "[defaults]\njitter_secs = 0\nsettle_lag_secs = 0\npage_size = 10\nmax_requests_per_minute = 240\n\
             retry_base_ms = 10\n\n{}{}",
            entry("live", "start_minutes_back = 25"),
            entry(
                "history",
                &format!(
                    "gcs_prefix = \"backfill\"\nbackfill_from = \"{}\"\nbackfill_to = \"{}\"",
                    rfc3339_ms(from),
                    rfc3339_ms(to)
                )
            ),
        ),
    )
    .unwrap();
    let (code, log) = serve_once(
        &tenants,
        &["--max-concurrent", "2"],
        &[("KEY", &env.key), ("RUST_LOG", "info")],
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains(&env.key), "the key leaked into the log");
    assert_no_secret_in_files(env.out(), &env.key);

    let answers = env.mock.edge_answers();
    assert!(answers.len() > 80, "{} requests", answers.len());
    assert_eq!(
        refusals(&answers),
        0,
        "two passes on one key went past its budget:\n{log}"
    );
    assert!(!log.contains("Harness refused a request"), "{log}");

    let backfill = env.sorted_lines_under("backfill");
    let in_range = env
        .mock
        .events_json_where(|e| e.timestamp >= from && e.timestamp <= to);
    assert_eq!(backfill, sorted(in_range));
    let mut both = env.sorted_lines_under(PREFIX);
    both.extend(backfill);
    both.sort_unstable();
    both.dedup();
    assert_eq!(both, sorted(env.mock.events_json()));
}

#[test]
fn a_lone_429_halves_the_pace_of_the_key() {
    // An edge far above the pace only times the requests.
    let env = Env::with_freedoms(
        400,
        Freedoms {
            edge_limit: Some(EdgeLimit {
                requests: 100_000,
                window: Duration::from_secs(60),
            }),
            ..Freedoms::default()
        },
    );
    let vars = [("PAGE_SIZE", "10"), ("MAX_REQUESTS_PER_MINUTE", "600")];
    env.mock.push_fault(Fault::rate_limited());
    let run = env.run(&vars);
    run.assert_collected(400);
    assert_eq!(
        run.stderr
            .matches("Harness refused a request (429): every pass on this key now paces")
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("requests_per_minute=300 "),
        "{}",
        run.stderr
    );

    let at: Vec<u64> = env.mock.edge_answers().iter().map(|a| a.at_ms).collect();
    assert!(at.len() > 40, "{} requests", at.len());
    // 600 a minute is 100 ms apart; halved, 200 ms (less the arrival's
    // jitter). The retry of the refused request had its slot before the cut.
    let gaps: Vec<u64> = at[1..].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|gap| *gap >= 180), "{gaps:?}");
}
