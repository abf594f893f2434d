//! Serves the mock Harness audit API on 127.0.0.1 with generated events, for
//! the demo and benchmarks. Prints one JSON line with the base URL, account
//! and key, then serves until killed or until `--exit-after-secs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use harness_tests::{
    EdgeLimit, FaultRates, Freedoms, KeyGrant, LiveInserts, MockHarness, SeedSpec, generate,
    make_key,
};

/// Mock Harness audit API on loopback.
#[derive(Parser, Debug)]
struct Args {
    /// Events to generate.
    #[arg(long, default_value_t = 3000)]
    events: usize,
    /// Spread them over this many minutes...
    #[arg(long, default_value_t = 50)]
    minutes: u64,
    /// ...ending this many seconds ago.
    #[arg(long, default_value_t = 300)]
    settled_secs: u64,
    /// Account identifier.
    #[arg(long, default_value = "Xy3kQ9mTR0aWb1cD2eF4gH")]
    account: String,
    /// Stop after this many seconds (the demo's safety net).
    #[arg(long, default_value_t = 3600)]
    exit_after_secs: u64,
    /// Seed for the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Probability of each fault kind (429, 500, 502/503, truncated, reset) per request.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Most latency added to each request, in ms.
    #[arg(long, default_value_t = 0)]
    max_latency_ms: u64,
    /// Share of events that become visible late [default: 0, or 0.05 with --freedoms]...
    #[arg(long)]
    late_fraction: Option<f64>,
    /// ...up to this long after their timestamp, in ms [default: 0, or 60000 with --freedoms].
    #[arg(long)]
    max_delay_ms: Option<u64>,
    /// Also serve the unverified `/audits/listV2`.
    #[arg(long)]
    list_v2: bool,
    /// Use every freedom the API has (`Freedoms::ALL`): ties in a new order on
    /// each request, short pages, events counted and never returned, counts
    /// that disagree with pages for a while, events visible late.
    #[arg(long)]
    freedoms: bool,
    /// Harness's edge: admit this many requests per key in any minute, and
    /// answer 429 with no `Retry-After` past it (0: no limit). Harness's is 400.
    #[arg(long, default_value_t = 0)]
    edge_limit_per_minute: u32,
    /// Events Harness writes while the mock runs: this many a second...
    #[arg(long, default_value_t = 0.0)]
    live_per_sec: f64,
    /// ...for this many seconds...
    #[arg(long, default_value_t = 0)]
    live_secs: u64,
    /// ...a share of them written late...
    #[arg(long, default_value_t = 0.0)]
    live_late_fraction: f64,
    /// ...by up to this many ms. `/__mock/visibility` tells when each became visible.
    #[arg(long, default_value_t = 0)]
    live_max_late_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let key = make_key(&args.account, "DemoToken0000000000000");
    let mock = MockHarness::start(
        &args.account,
        vec![KeyGrant {
            key: key.clone(),
            can_view: true,
        }],
    )?;
    let freedoms = if args.freedoms {
        Freedoms::ALL
    } else {
        Freedoms::default()
    };
    mock.set_freedoms(Freedoms {
        late_fraction: args.late_fraction.unwrap_or(freedoms.late_fraction),
        max_late_ms: args.max_delay_ms.unwrap_or(freedoms.max_late_ms),
        edge_limit: (args.edge_limit_per_minute > 0).then_some(EdgeLimit {
            requests: args.edge_limit_per_minute,
            window: Duration::from_secs(60),
        }),
        ..freedoms
    });
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let events = generate(&SeedSpec {
        account_id: args.account.clone(),
        count: args.events,
        start_ms: now - args.settled_secs * 1000 - args.minutes * 60_000,
        end_ms: now - args.settled_secs * 1000,
        seed: args.seed,
    });
    mock.insert(events);
    let rate = args.fault_rate;
    mock.set_fault_rates(Some(FaultRates {
        rate_limited: rate,
        server_error: rate,
        gateway: rate,
        truncated: rate,
        reset: rate,
        max_latency_ms: args.max_latency_ms,
    }));
    mock.enable_list_v2(args.list_v2);
    if args.live_per_sec > 0.0 && args.live_secs > 0 {
        mock.insert_live(LiveInserts {
            per_sec: args.live_per_sec,
            secs: args.live_secs,
            late_fraction: args.live_late_fraction,
            max_late_ms: args.live_max_late_ms,
            seed: args.seed,
        });
    }
    println!(
        "{}",
        serde_json::json!({
            "base_url": mock.base_url(),
            "account_id": args.account,
            "api_key": key,
            "events": args.events,
            "hidden": mock.hidden_count(),
            "ground_truth": format!("{}/__mock/ground-truth", mock.base_url()),
            "edge": format!("{}/__mock/edge", mock.base_url()),
            "visibility": format!("{}/__mock/visibility", mock.base_url()),
        })
    );
    std::thread::sleep(Duration::from_secs(args.exit_after_secs));
    Ok(())
}
