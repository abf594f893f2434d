//! Measures what components that never return cost the other tenants of one
//! `serve` process (`harness_tests::isolation`), on a built binary: each
//! normal tenant's pass time alone and beside as many spinners as CPUs, and
//! `/metrics` and `/healthz` response times meanwhile. `bench/isolation.sh`
//! drives it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use harness_tests::isolation::{self, RoundSpec, percentile};

/// Tenants beside spinning components.
#[derive(Parser, Debug)]
struct Args {
    /// The harness-audit binary to measure.
    #[arg(long)]
    binary: PathBuf,
    /// Normal tenants.
    #[arg(long, default_value_t = 3)]
    normal: usize,
    /// Events per normal tenant.
    #[arg(long, default_value_t = 3_000)]
    events: usize,
    /// Most latency per request of the normal tenants' API.
    #[arg(long, default_value_t = 40)]
    latency_ms: u64,
    /// Rounds of each kind.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args = Args::parse();
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    let spec = |spinners| RoundSpec {
        normal: args.normal,
        spinners,
        events: args.events,
        max_latency_ms: args.latency_ms,
    };
    let misbehave = PathBuf::from(harness_tests::GUEST_MISBEHAVE);
    let (mut alone, mut beside, mut control, mut stops) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        alone.extend(isolation::round(&args.binary, &misbehave, spec(0)).pass_times);
        let round = isolation::round(&args.binary, &misbehave, spec(cpus));
        beside.extend(round.pass_times);
        control.extend(round.control_latencies);
        stops.push(round.stop_time);
    }
    let median = |v: &[Duration]| percentile(v, 0.5);
    println!(
        "{} normal tenants of {} events (API latency up to {} ms), {} spinners on {cpus} CPUs, {} rounds each",
        args.normal, args.events, args.latency_ms, cpus, args.runs
    );
    println!(
        "pass time: alone median {} (max {}), beside spinners median {} (max {}): {:.2}x",
        ms(median(&alone)),
        ms(percentile(&alone, 1.0)),
        ms(median(&beside)),
        ms(percentile(&beside, 1.0)),
        median(&beside).as_secs_f64() / median(&alone).as_secs_f64()
    );
    println!(
        "/metrics and /healthz beside spinners: p50 {}, p99 {}, max {} over {} requests",
        ms(median(&control)),
        ms(percentile(&control, 0.99)),
        ms(percentile(&control, 1.0)),
        control.len()
    );
    println!(
        "SIGTERM to exit with spinners running: max {}",
        ms(percentile(&stops, 1.0))
    );
}
