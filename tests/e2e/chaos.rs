use harness_tests::FaultRates;
use harness_tests::chaos::{self, ChaosSpec};

/// 20,000 events, every fault kind, 10% late events, live inserts, at least
/// ten SIGKILLs at random instants: the output equals the ground truth,
/// 0 lost and 0 duplicated, by `auditId` and byte for byte.
#[test]
fn survives_faults_late_events_live_inserts_and_sigkills_exactly() {
    let spec = ChaosSpec {
        preload: 20_000,
        preload_span_ms: 120_000,
        live_per_second: 40,
        live_ms: 25_000,
        late_fraction: 0.10,
        max_delay_ms: 8_000,
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
        overlap_secs: 30,
        seed: 20_261_124,
        max_settle_runs: 20,
    };
    let dir = tempfile::tempdir().unwrap();
    let report = chaos::run(
        &spec,
        std::path::Path::new(env!("CARGO_BIN_EXE_harness-audit")),
        dir.path(),
    );
    eprintln!("{report:?}");
    assert!(report.kills >= 10, "{report:?}");
    assert_eq!(report.lost, Vec::<String>::new(), "lost events");
    assert_eq!(report.duplicated, Vec::<String>::new(), "duplicated events");
    assert!(report.exact(), "{report:?}");
}
