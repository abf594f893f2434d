use harness_tests::chaos::{self, ChaosReport, ChaosSpec, ChaosStore};
use harness_tests::{Emulator, FaultRates, Freedoms, OddContent};

/// Every fault kind, every freedom of the API (ties in a new order on each
/// request, short pages, 1% counted and never returned, counts two seconds
/// off, an edge that answers 429 past 50 requests a second), odd content (3%
/// of events sent oddly, of every kind, and 2% of answers not a page), 10% of
/// events visible up to 40 s late (past the 2 s settle lag and the 10 s
/// overlap, so reconciliation must find them), live inserts, and SIGKILLs at
/// random instants.
fn spec(
    preload: usize,
    bursts: Vec<usize>,
    live_ms: u64,
    store: ChaosStore,
    shape: &'static str,
) -> ChaosSpec {
    ChaosSpec {
        preload,
        preload_span_ms: 120_000,
        bursts,
        freedoms: Freedoms {
            late_fraction: 0.10,
            max_late_ms: 40_000,
            odd: Some(OddContent::CHAOS),
            ..Freedoms::ALL
        },
        live_per_second: 40,
        live_ms,
        kills: 10,
        kill_within_ms: 600,
        // Its 429s come from the mock's edge, as Harness's do.
        faults: FaultRates {
            rate_limited: 0.0,
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
        store,
        shape,
    }
}

/// Every event the mock can return is stored once, 0 lost and 0
/// duplicated: in the data by `auditId` (in the raw shape byte for byte), or
/// byte for byte in the quarantine; the ledger's gap equals the events
/// counted and never returned, and the key appears in no object, state file
/// or run's output.
fn assert_exact(report: &ChaosReport) {
    eprintln!("{report:?}");
    assert!(report.kills >= 10, "{report:?}");
    assert!(report.quarantined > 10, "odd content was sent: {report:?}");
    assert_eq!(report.lost, Vec::<String>::new(), "lost events");
    assert_eq!(report.duplicated, Vec::<String>::new(), "duplicated events");
    assert!(report.hidden > 10, "{report:?}");
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

fn run(spec: &ChaosSpec) -> ChaosReport {
    let (dir, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    chaos::run(
        spec,
        std::path::Path::new(env!("CARGO_BIN_EXE_harness-audit")),
        dir.path(),
        logs.path(),
    )
}

/// 20,000 events with a 1,000-event and two 150-event millisecond bursts and
/// at least ten SIGKILLs, on the local sink, in the raw shape.
#[test]
fn survives_faults_freedoms_late_events_live_inserts_and_sigkills_exactly() {
    let report = run(&spec(
        20_000,
        vec![1_000, 150, 150],
        25_000,
        ChaosStore::Local,
        "raw",
    ));
    assert!(report.hidden > 100, "{report:?}");
    assert_exact(&report);
}

/// The same on the GCS emulator, smaller, in the streaming shape: 5,000
/// events with a 500-event burst and at least ten SIGKILLs, each killed
/// run's lease let lapse.
#[test]
fn survives_the_same_on_gcs_exactly() {
    let bucket = Emulator::from_env().fresh_bucket("chaos");
    assert_exact(&run(&spec(
        5_000,
        vec![500, 150],
        10_000,
        ChaosStore::Gcs { bucket },
        "streaming",
    )));
}
