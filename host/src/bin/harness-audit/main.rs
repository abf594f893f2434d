//! `harness-audit`: collects the Harness audit trail into a local directory or
//! stdout through the sandboxed source component.

mod exit;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use harness_audit::commands::backfill::Progress;
use harness_audit::commands::ledger::LedgerRange;
use harness_audit::commands::run;
use harness_audit::commands::serve::{self, ServeOptions, ShardSpec};
use harness_audit::commands::verify::{self, VerifyRequest};
use harness_audit::config::{
    BackfillRange, Config, KeyUse, RawConfig, SettingFlags, SinkKind, Validate as _,
};
use harness_audit::engine::RunError;
use harness_audit::engine::{Collector, PassSummary, PassThread, SharedEngine, load_component};
use harness_audit::evidence::PublicKey;
use harness_audit::time::now_ms;

/// Variables read besides the settings, which `run --help` lists as flags.
const ENVIRONMENT_HELP: &str = "Environment besides the settings: GOOGLE_APPLICATION_CREDENTIALS, \
GCE_METADATA_HOST and STORAGE_EMULATOR_HOST choose the Google Cloud Storage credentials or \
emulator; RUST_LOG filters the logs.";

/// Collects the Harness audit trail (who did what, when, where) for a SIEM.
///
/// Settings come from the recipe's environment variables (HARNESS_ACCOUNT_ID,
/// HARNESS_API_KEY, ...), an optional TOML file, and flags; flags win over the
/// environment, which wins over the file.
#[derive(Parser, Debug)]
#[command(version, about, long_about, after_help = ENVIRONMENT_HELP)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "LOG_FORMAT")]
    log_format: LogFormat,
    /// Load this source component instead of the embedded one.
    #[arg(long, value_name = "PATH", global = true)]
    component: Option<PathBuf>,
    /// Cache compiled components in this directory (created private to this user), so starts
    /// skip compilation.
    #[arg(
        long,
        value_name = "DIR",
        global = true,
        env = "HARNESS_AUDIT_CACHE_DIR"
    )]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one collection pass until caught up, then exit.
    Run(Box<RunArgs>),
    /// Collect many tenants on schedules until SIGTERM (SIGHUP reloads the tenant file).
    Serve(ServeArgs),
    /// Read a historical range into fresh objects, with its own resumable checkpoint
    /// (the live one is untouched). Takes the same settings as run.
    Backfill(Box<BackfillArgs>),
    /// Check a configuration without collecting: settings, storage credentials and write
    /// access, and one authenticated request to Harness. Takes the same settings as run.
    Check(Box<RunArgs>),
    /// Print the completeness ledger: for each hour, Harness's count at the last check, the
    /// events stored, and the gap. Reads the checkpoint only (no request to Harness, nothing
    /// written). Takes the same settings as run; the API key is not needed.
    Ledger(Box<LedgerArgs>),
    /// Prove the store: walk the digest chains, check every object's SHA-256, find objects no
    /// digest lists, and check signatures with --public-key. Reads only. Exit 0: proven; 8:
    /// integrity broken; 9: completeness gap (--completeness). Takes the same settings as run;
    /// the API key is not needed.
    Verify(Box<VerifyArgs>),
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Check objects named from this day (2025-01-01) or instant (2025-01-01T06:00:00Z, UTC)
    /// [default: all]. The digests are always walked whole.
    #[arg(long)]
    from: Option<String>,
    /// Check objects named up to this day, inclusive, or instant [default: all].
    #[arg(long)]
    to: Option<String>,
    /// PEM Ed25519 public key that must have signed every digest.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Also compare, hour by hour, the events in the proven objects with the counts of Harness
    /// that the ledger recorded during collection.
    #[arg(long)]
    completeness: bool,
    /// text (a report) or json.
    #[arg(long, value_enum, default_value_t = LedgerFormat::Text)]
    format: LedgerFormat,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct LedgerArgs {
    /// First hour shown: a day (2025-01-01) or an instant (2025-01-01T06:00:00Z, UTC)
    /// [default: the ledger's start].
    #[arg(long)]
    from: Option<String>,
    /// Last hour shown: a day, inclusive, or an instant [default: the last window read].
    #[arg(long)]
    to: Option<String>,
    /// text (a table) or json.
    #[arg(long, value_enum, default_value_t = LedgerFormat::Text)]
    format: LedgerFormat,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LedgerFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
struct BackfillArgs {
    /// First day (2025-01-01) or instant (2025-01-01T06:00:00Z, UTC) to read.
    #[arg(long)]
    from: String,
    /// Last day, inclusive (2025-06-30), or instant to read; at most now.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Tenant file: a [defaults] table and [[tenant]] entries (see examples/tenants.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Passes running at once, across tenants.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent: u16,
    /// Serve Prometheus /metrics and /healthz on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// /healthz fails for a tenant without a successful pass in this many of its intervals.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    health_intervals: u32,
    /// Serve only shard I of N (tenants by a stable hash of their id), e.g. 0/3; or `auto`: the
    /// replica's index from CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT (Cloud Run jobs),
    /// JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or the StatefulSet ordinal ending HOSTNAME.
    #[arg(long, value_name = "I/N|auto")]
    shard: Option<ShardSpec>,
    /// Replicas in all, for `--shard auto` where the engine does not say: the Indexed Job's
    /// completions or the StatefulSet's replicas.
    #[arg(long, value_name = "N", env = "SHARD_COUNT", value_parser = clap::value_parser!(u32).range(1..))]
    shard_count: Option<u32>,
    /// Run one pass of each tenant, then exit: 0 when all succeeded, otherwise the first failed
    /// tenant's exit code. For Cloud Run jobs and Kubernetes Jobs.
    #[arg(long)]
    once: bool,
    /// Seconds to wait at shutdown for running passes to reach a batch boundary.
    #[arg(long, default_value_t = 120)]
    shutdown_grace_secs: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// TOML file with [harness], [filters], [output] and [limits] tables.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Move the stored checkpoint aside (it is kept, renamed) and start over
    /// START_MINUTES_BACK minutes ago; events already written since then are written again.
    #[arg(long)]
    reset_checkpoint: bool,
    #[command(flatten)]
    settings: SettingFlags,
}

impl RunArgs {
    fn config(&self) -> Result<Config, RunError> {
        self.config_for(KeyUse::Required)
    }

    fn config_for(&self, key_use: KeyUse) -> Result<Config, RunError> {
        let file = match &self.config {
            Some(path) => RawConfig::from_toml_file(path)?,
            None => RawConfig::default(),
        };
        Ok(self
            .settings
            .layer()
            .over(RawConfig::from_env().over(file))
            .validate_for(key_use)?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let (args, range) = match &cli.command {
        Command::Run(args) => (args.as_ref(), None),
        Command::Backfill(b) => (&b.run, Some((b.from.as_str(), b.to.as_str()))),
        Command::Serve(args) => return serve(args, cli.component, cli.cache_dir),
        Command::Check(args) => {
            return check(args, cli.component.as_deref(), cli.cache_dir.as_deref());
        }
        Command::Ledger(args) => {
            return ledger(args, cli.component.as_deref(), cli.cache_dir.as_deref());
        }
        Command::Verify(args) => {
            return verify(args, cli.component.as_deref(), cli.cache_dir.as_deref());
        }
    };
    let mut config = match args.config() {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string(), exit::CONFIG),
    };
    if let Some((from, to)) = range {
        let range = match BackfillRange::parse(from, to, now_ms()) {
            Ok(r) => r,
            Err(e) => return fail(&e.to_string(), exit::CONFIG),
        };
        config.set_backfill(range);
    }
    if config.output.state_inside_prefix() {
        tracing::warn!(
            state_key = %config.output.state_key,
            prefix = %config.output.prefix,
            "STATE_KEY is inside GCS_PREFIX: a SIEM feed reading the prefix will ingest the checkpoint, and its \
             delete option would remove it; move STATE_KEY outside the prefix"
        );
    }
    let (runtime, collector) =
        match runtime_and_collector(cli.component.as_deref(), cli.cache_dir.as_deref()) {
            Ok(both) => both,
            Err(code) => return code,
        };
    let progress = config.backfill.map(Progress::new);
    let report = |summary: &PassSummary| {
        if let Some(p) = &progress {
            p.report(summary, false);
        }
    };
    let stop = match runtime.block_on(async { run::stop_on_signals(exit::INTERRUPTED) }) {
        Ok(stop) => stop,
        Err(e) => {
            return fail(
                &format!("listening for SIGTERM and SIGINT: {e}"),
                exit::COMPONENT,
            );
        }
    };
    match runtime.block_on(run::run_once(
        &config,
        args.reset_checkpoint,
        &collector,
        (PassThread::Shared, Some(stop)),
        Some(&report),
    )) {
        Ok(outcome) => {
            if let Some(p) = &progress {
                p.report(&outcome.summary, true);
            }
            let line = outcome.line();
            if config.output.sink == SinkKind::Stdout {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string(), exit::of(&e)),
    }
}

fn check(
    args: &RunArgs,
    component: Option<&std::path::Path>,
    cache_dir: Option<&std::path::Path>,
) -> ExitCode {
    if args.reset_checkpoint {
        return fail(
            "check changes nothing; --reset-checkpoint belongs to run",
            exit::CONFIG,
        );
    }
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            println!("configuration: FAILED: {e}");
            return ExitCode::from(exit::of(&e));
        }
    };
    println!(
        "configuration: ok (account {}, API {}, key from {}, sink {:?}, prefix {}, checkpoint {})",
        config.source.query.account_id,
        config.harness.api_base,
        config.harness.api_key_source,
        config.output.sink,
        config.output.prefix,
        config.output.state_key
    );
    let (runtime, collector) = match runtime_and_collector(component, cache_dir) {
        Ok(both) => both,
        Err(code) => return code,
    };
    let mut code = 0;
    for finding in runtime.block_on(harness_audit::commands::check::check(&config, &collector)) {
        match finding.outcome {
            Ok(what) => println!("{}: ok, {what}", finding.what),
            Err(e) => {
                println!("{}: FAILED: {e}", finding.what);
                if code == 0 {
                    code = exit::of(&e);
                }
            }
        }
    }
    if code == 0 {
        println!("all checks passed");
    }
    ExitCode::from(code)
}

/// What a command that reads the store without writing needs: its range
/// (`--from`, `--to`), the configuration (the API key optional), the runtime
/// and the component; or the exit code after saying why not.
fn read_only(
    command: &str,
    run: &RunArgs,
    (from, to): (Option<&str>, Option<&str>),
    component: Option<&std::path::Path>,
    cache_dir: Option<&std::path::Path>,
) -> Result<(LedgerRange, Config, tokio::runtime::Runtime, Collector), ExitCode> {
    if run.reset_checkpoint {
        return Err(fail(
            &format!("{command} changes nothing; --reset-checkpoint belongs to run"),
            exit::CONFIG,
        ));
    }
    let range = LedgerRange::parse(from, to).map_err(|e| fail(&e.to_string(), exit::CONFIG))?;
    let config = run
        .config_for(KeyUse::NotNeeded)
        .map_err(|e| fail(&e.to_string(), exit::of(&e)))?;
    let (runtime, collector) = runtime_and_collector(component, cache_dir)?;
    Ok((range, config, runtime, collector))
}

fn ledger(
    args: &LedgerArgs,
    component: Option<&std::path::Path>,
    cache_dir: Option<&std::path::Path>,
) -> ExitCode {
    let bounds = (args.from.as_deref(), args.to.as_deref());
    let (range, config, runtime, collector) =
        match read_only("ledger", &args.run, bounds, component, cache_dir) {
            Ok(all) => all,
            Err(code) => return code,
        };
    match runtime.block_on(harness_audit::commands::ledger::read(
        &config, &collector, range,
    )) {
        Ok(view) => {
            match args.format {
                LedgerFormat::Text => print!("{}", view.text()),
                LedgerFormat::Json => println!("{}", view.json()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string(), exit::of(&e)),
    }
}

fn verify(
    args: &VerifyArgs,
    component: Option<&std::path::Path>,
    cache_dir: Option<&std::path::Path>,
) -> ExitCode {
    let public_key = match args
        .public_key
        .as_deref()
        .map(PublicKey::from_file)
        .transpose()
    {
        Ok(key) => key,
        Err(e) => return fail(&e.to_string(), exit::CONFIG),
    };
    let bounds = (args.from.as_deref(), args.to.as_deref());
    let (range, config, runtime, collector) =
        match read_only("verify", &args.run, bounds, component, cache_dir) {
            Ok(all) => all,
            Err(code) => return code,
        };
    let request = VerifyRequest {
        from_ms: range.from_ms,
        to_ms: range.to_ms,
        public_key,
        completeness: args.completeness,
    };
    match runtime.block_on(verify::verify(&config, &collector, request)) {
        Ok(outcome) => {
            match args.format {
                LedgerFormat::Text => print!("{}", outcome.text()),
                LedgerFormat::Json => println!("{}", outcome.json()),
            }
            ExitCode::from(exit::of_verdict(outcome.verdict))
        }
        Err(e) => fail(&e.to_string(), exit::of(&e)),
    }
}

fn serve(args: &ServeArgs, component: Option<PathBuf>, cache_dir: Option<PathBuf>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("starting the async runtime: {e}"), exit::COMPONENT),
    };
    let shard = match args.shard {
        None => None,
        Some(spec) => {
            match serve::resolve_shard(spec, args.shard_count, |name| std::env::var(name).ok()) {
                Ok(resolved) => {
                    tracing::info!(shard = %resolved.shard, from = resolved.from, "serving one shard of the tenants");
                    Some(resolved.shard)
                }
                Err(e) => return fail(&e.to_string(), exit::CONFIG),
            }
        }
    };
    let options = ServeOptions {
        tenants_file: args.config.clone(),
        max_concurrent: usize::from(args.max_concurrent),
        metrics_addr: args.metrics_addr,
        health_intervals: args.health_intervals,
        shard,
        once: args.once,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        default_component: component,
        cache_dir,
    };
    let served = runtime.block_on(serve::serve(options));
    // Passes that outlived the shutdown grace run on threads of their own:
    // the process ends without waiting for them.
    runtime.shutdown_background();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string(), exit::of_serve(&e)),
    }
}

/// The async runtime and the loaded component, or the exit code after saying why not.
fn runtime_and_collector(
    component: Option<&std::path::Path>,
    cache_dir: Option<&std::path::Path>,
) -> Result<(tokio::runtime::Runtime, Collector), ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(&format!("starting the async runtime: {e}"), exit::COMPONENT))?;
    let collector = load_collector(component, cache_dir)
        .map_err(|e| fail(&format!("{e:#}"), exit::COMPONENT))?;
    Ok((runtime, collector))
}

fn load_collector(
    path: Option<&std::path::Path>,
    cache_dir: Option<&std::path::Path>,
) -> anyhow::Result<Collector> {
    let engine = SharedEngine::new(None).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    load_component(&engine, path, cache_dir)
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("harness-audit: error: {message}");
    ExitCode::from(code)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a terminal: in files and log shippers they break searches.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
