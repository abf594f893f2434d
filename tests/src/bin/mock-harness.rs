//! Serves the mock Harness audit API on 127.0.0.1 with generated events, for
//! the demo and benchmarks. Prints one JSON line with the base URL, account
//! and key, then serves until killed or until `--exit-after-secs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use harness_tests::{KeyGrant, MockHarness, SeedSpec, generate, make_key};

/// Mock Harness audit API on loopback.
#[derive(Parser, Debug)]
struct Args {
    /// Events to generate.
    #[arg(long, default_value_t = 3000)]
    events: usize,
    /// Spread them over this many minutes...
    #[arg(long, default_value_t = 50)]
    minutes: u64,
    /// ...ending this many seconds ago (the default lies beyond the collector's 120 s settle lag).
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
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    mock.insert(generate(&SeedSpec {
        account_id: args.account.clone(),
        count: args.events,
        start_ms: now - args.settled_secs * 1000 - args.minutes * 60_000,
        end_ms: now - args.settled_secs * 1000,
        seed: args.seed,
    }));
    println!(
        "{}",
        serde_json::json!({"base_url": mock.base_url(), "account_id": args.account, "api_key": key, "events": args.events})
    );
    std::thread::sleep(Duration::from_secs(args.exit_after_secs));
    Ok(())
}
