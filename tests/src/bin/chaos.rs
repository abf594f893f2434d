//! Runs the chaos exercise (`harness_tests::chaos`) at any size against a
//! built `harness-audit` binary, prints the report, and exits 1 unless the
//! output equals the ground truth exactly. `bench/chaos.sh` drives it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use harness_tests::chaos::{self, ChaosSpec, ChaosStore};
use harness_tests::{FaultRates, Freedoms, OddContent};

/// Chaos run: faults, every freedom of the API, odd content, late events,
/// live inserts and SIGKILLs.
#[derive(Parser, Debug)]
struct Args {
    /// The harness-audit binary to test.
    #[arg(long)]
    binary: PathBuf,
    /// Events present before the first run.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// SIGKILLs to deliver, at least.
    #[arg(long, default_value_t = 50)]
    kills: usize,
    /// Seconds of live inserts.
    #[arg(long, default_value_t = 60)]
    live_secs: u64,
    /// Live inserts per second.
    #[arg(long, default_value_t = 100)]
    live_per_second: u64,
    /// Probability of each fault kind per request.
    #[arg(long, default_value_t = 0.03)]
    fault_rate: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// `OUTPUT_SHAPE`: raw or streaming.
    #[arg(long, default_value = "raw", value_parser = ["raw", "streaming"])]
    shape: String,
    /// Share of events sent oddly (0 for none).
    #[arg(long, default_value_t = OddContent::CHAOS.events)]
    odd_events: f64,
    /// Share of answers that are not a page (0 for none).
    #[arg(long, default_value_t = OddContent::CHAOS.answers)]
    odd_answers: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rate = args.fault_rate;
    let spec = ChaosSpec {
        preload: args.events,
        preload_span_ms: 30 * 60_000,
        bursts: vec![1_000, 1_000, 150, 150, 150],
        freedoms: Freedoms {
            late_fraction: 0.10,
            max_late_ms: 60_000,
            odd: Some(OddContent {
                events: args.odd_events,
                answers: args.odd_answers,
                ..OddContent::CHAOS
            }),
            ..Freedoms::ALL
        },
        live_per_second: args.live_per_second,
        live_ms: args.live_secs * 1000,
        kills: args.kills,
        kill_within_ms: 1_500,
        faults: FaultRates {
            rate_limited: rate,
            server_error: rate,
            gateway: rate,
            truncated: rate,
            reset: rate,
            max_latency_ms: 20,
        },
        page_size: 100,
        settle_lag_secs: 2,
        overlap_secs: 10,
        reconcile_interval_secs: 1,
        seed: args.seed,
        max_settle_runs: 120,
        store: ChaosStore::Local,
        shape: if args.shape == "streaming" {
            "streaming"
        } else {
            "raw"
        },
    };
    let dir = tempfile::tempdir().expect("temporary output directory");
    let logs = tempfile::tempdir().expect("temporary log directory");
    let report = chaos::run(&spec, &args.binary, dir.path(), logs.path());
    println!(
        "events {} | written {} | quarantined {} | lost {} | duplicated {} | bytes equal {} | hidden {} | reported gap {:?} | kills {} | runs {} | failed runs {} | key leaks {} | {:.1} s",
        report.expected,
        report.written_lines,
        report.quarantined,
        report.lost.len(),
        report.duplicated.len(),
        report.bytes_equal,
        report.hidden,
        report.reported_gap,
        report.kills,
        report.runs,
        report.failed_runs,
        report.key_leaks.len(),
        report.elapsed.as_secs_f64()
    );
    if report.exact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
