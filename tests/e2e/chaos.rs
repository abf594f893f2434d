use harness_tests::chaos::{self, ChaosSpec};
use harness_tests::{FaultRates, Freedoms};

/// 20,000 events with a 1,000-event and two 150-event millisecond bursts,
/// every fault kind, every freedom of the API (ties in a new order on each
/// request, short pages, 1% counted and never returned, counts two seconds
/// off), 10% of events visible up to 40 s late (past the 2 s settle lag and
/// the 10 s overlap, so reconciliation must find them), live inserts, at
/// least ten SIGKILLs at random instants: the output equals every event the
/// mock can return, 0 lost and 0 duplicated, by `auditId` and byte for
/// byte, the ledger's gap equals the events counted and never returned, and
/// the key appears in no object, state file or run's output.
#[test]
fn survives_faults_freedoms_late_events_live_inserts_and_sigkills_exactly() {
    let spec = ChaosSpec {
        preload: 20_000,
        preload_span_ms: 120_000,
        bursts: vec![1_000, 150, 150],
        freedoms: Freedoms {
            late_fraction: 0.10,
            max_late_ms: 40_000,
            ..Freedoms::ALL
        },
        live_per_second: 40,
        live_ms: 25_000,
        kills: 10,
        kill_within_ms: 600,
        faults: FaultRates {
            rate_limited: 0.03,
            server_error: 0.03,
            gateway: 0.03,
            truncated: 0.03,
            reset: 0.03,
            max_latency_ms: 20,
        },
        page_size: 100,
        settle_lag_secs: 2,
        overlap_secs: 10,
        reconcile_interval_secs: 1,
        seed: 20_261_124,
        max_settle_runs: 60,
    };
    let (dir, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let report = chaos::run(
        &spec,
        std::path::Path::new(env!("CARGO_BIN_EXE_harness-audit")),
        dir.path(),
        logs.path(),
    );
    eprintln!("{report:?}");
    assert!(report.kills >= 10, "{report:?}");
    assert_eq!(report.lost, Vec::<String>::new(), "lost events");
    assert_eq!(report.duplicated, Vec::<String>::new(), "duplicated events");
    assert!(report.hidden > 100, "{report:?}");
    assert_eq!(
        report.key_leaks,
        Vec::<std::path::PathBuf>::new(),
        "the key leaked"
    );
    assert_eq!(
        report.reported_gap,
        Some(report.hidden as u64),
        "the reported gap"
    );
    assert!(report.exact(), "{report:?}");
}
