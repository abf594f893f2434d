//! `serve`: many tenants in one process. One engine; each component compiled
//! once; every pass in its own store (own memory ceiling, deadline, CPU
//! budget, quotas, egress policy and key), on a pass thread apart from the
//! runtime that schedules and serves `/metrics`. A scheduler runs each tenant
//! at start and then on its interval, at most `max_concurrent` at a time,
//! backing off after failures.
//! SIGTERM/SIGINT stop new passes and end running ones at their next batch
//! boundary; SIGHUP reloads the tenant file without touching unchanged tenants.
//! With `--once`, each tenant of the shard runs one pass and the process
//! exits: the shape of a Cloud Run job or a Kubernetes Indexed Job.

mod shard;
mod threads;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::metrics::Metrics;
use super::run;
use crate::config::tenants::{self, TenantSpec};
use crate::engine::error::{RunError, SandboxError};
use crate::engine::{Collector, PassThread, PoolSize, SharedEngine, load_component};

pub use shard::{Resolved, Shard, ShardError, ShardSpec, resolve as resolve_shard};
use threads::PassThreads;

/// First wait after a failed pass; it doubles per failure, up to the tenant's interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The tenant file.
    pub tenants_file: PathBuf,
    /// Passes running at once, across tenants.
    pub max_concurrent: usize,
    /// Where `/metrics` and `/healthz` are served.
    pub metrics_addr: Option<SocketAddr>,
    /// `/healthz` fails for a tenant without a success in this many intervals.
    pub health_intervals: u32,
    /// Serve only this shard's tenants.
    pub shard: Option<Shard>,
    /// Run each tenant's pass once, then exit.
    pub once: bool,
    /// Longest wait for running passes at shutdown.
    pub shutdown_grace: Duration,
    /// Component for tenants that name none (the embedded one when `None`).
    pub default_component: Option<PathBuf>,
    /// Where compiled components are cached.
    pub cache_dir: Option<PathBuf>,
}

/// Components compiled so far on the one engine, by path (`None`: the embedded one).
struct Components {
    engine: SharedEngine,
    cache_dir: Option<PathBuf>,
    compiled: BTreeMap<Option<PathBuf>, Arc<Collector>>,
}

impl Components {
    fn new(options: &ServeOptions) -> anyhow::Result<Self> {
        let max_memory_mib = harness_audit_settings::MAX_MEMORY_MIB
            .range()
            .map_or(0, |r| usize::try_from(*r.end()).expect("fits"));
        let engine = SharedEngine::new(Some(PoolSize {
            instances: u32::try_from(options.max_concurrent).unwrap_or(u32::MAX),
            max_memory_bytes: max_memory_mib << 20,
        }))
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .context("creating the engine")?;
        Ok(Self {
            engine,
            cache_dir: options.cache_dir.clone(),
            compiled: BTreeMap::new(),
        })
    }

    fn get(&mut self, path: Option<&Path>) -> anyhow::Result<Arc<Collector>> {
        let key = path.map(Path::to_path_buf);
        if let Some(c) = self.compiled.get(&key) {
            return Ok(c.clone());
        }
        let collector = Arc::new(load_component(
            &self.engine,
            path,
            self.cache_dir.as_deref(),
        )?);
        self.compiled.insert(key, collector.clone());
        Ok(collector)
    }
}

struct Running {
    spec: TenantSpec,
    stop: watch::Sender<bool>,
    /// Ends with the error of the tenant's last pass if it failed.
    task: JoinHandle<Option<RunError>>,
}

/// Reads the tenant file and keeps this replica's shard.
fn load(options: &ServeOptions) -> anyhow::Result<Vec<TenantSpec>> {
    // The message already holds its causes: `{:#}` of a chain would repeat them.
    let all = tenants::load(&options.tenants_file, |name| std::env::var(name).ok())
        .map_err(|e| anyhow::Error::msg(e.to_string()))?;
    Ok(match options.shard {
        None => all,
        Some(shard) => all.into_iter().filter(|t| shard.serves(&t.id)).collect(),
    })
}

/// Why `serve` ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The tenant file, a component or the metrics address is unusable at start.
    #[error("{0:#}")]
    Startup(anyhow::Error),
    /// Running passes outlived the shutdown grace.
    #[error(
        "passes still running after the {0} s shutdown grace were abandoned; their committed progress stands \
         and the next start resumes from it"
    )]
    ShutdownGrace(u64),
    /// With `--once`: tenants whose pass failed, with each one's error.
    #[error("{} of the shard's tenants failed their pass: {}; the log says why", .0.len(), describe_failed(.0))]
    TenantsFailed(Vec<(String, RunError)>),
}

fn describe_failed(failed: &[(String, RunError)]) -> String {
    failed
        .iter()
        .map(|(id, e)| format!("{id} ({})", e.kind()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs until SIGTERM or SIGINT, or with `--once` until each tenant ran once.
/// Fails only on an unusable tenant file, component or metrics address at
/// start, a shutdown that outlived its grace, or with `--once` a failed pass.
pub async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let (http, begun) = begin(&options).await.map_err(ServeError::Startup)?;
    let Begun {
        metrics,
        pass_threads,
        mut components,
        shutdown,
        mut running,
        mut signals,
    } = begun;
    if options.once {
        return once(&options, http, shutdown, running, signals).await;
    }
    // Tasks of tenants removed by a reload, still finishing their pass.
    let mut retired = Vec::new();
    loop {
        tokio::select! {
            _ = signals.terminate.recv() => break,
            _ = signals.interrupt.recv() => break,
            _ = signals.hangup.recv() => {
                retired.retain(|t: &JoinHandle<Option<RunError>>| !t.is_finished());
                retired.extend(reload(&options, &mut running, &mut components, &pass_threads, &metrics));
            }
        }
    }
    // The last passes' failures are logged and in the metrics; the shutdown itself succeeded.
    stop_all(&options, ending(running, retired), http, shutdown)
        .await
        .map(drop)
}

/// `--once`: waits for every tenant's one pass, or for SIGTERM/SIGINT, which
/// ends the passes at their next batch boundary.
async fn once(
    options: &ServeOptions,
    http: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    running: BTreeMap<String, Running>,
    mut signals: Signals,
) -> Result<(), ServeError> {
    let mut ending = ending(running, Vec::new());
    let finished = tokio::select! {
        done = &mut ending.all => Some(done.unwrap_or_default()),
        _ = signals.terminate.recv() => None,
        _ = signals.interrupt.recv() => None,
    };
    let failed = match finished {
        Some(failed) => {
            close(http, shutdown).await;
            tracing::info!("stopped");
            failed
        }
        None => stop_all(options, ending, http, shutdown).await?,
    };
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ServeError::TenantsFailed(failed))
    }
}

/// The running passes: how to stop each, and one task that ends when all
/// have, with the tenants whose last pass failed and its exit code.
struct Ending {
    stops: Vec<watch::Sender<bool>>,
    all: JoinHandle<Vec<(String, RunError)>>,
}

/// `running`'s tasks and `retired` ones (tenants a reload removed).
fn ending(
    running: BTreeMap<String, Running>,
    retired: Vec<JoinHandle<Option<RunError>>>,
) -> Ending {
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for (id, r) in running {
        stops.push(r.stop);
        tasks.push((id, r.task));
    }
    tasks.extend(retired.into_iter().map(|task| (String::new(), task)));
    let all = tokio::spawn(async move {
        let mut failed = Vec::new();
        for (id, task) in tasks {
            match task.await {
                Ok(None) => {}
                Ok(Some(code)) => failed.push((id, code)),
                Err(_) => failed.push((
                    id,
                    SandboxError::Panicked {
                        reason: "the tenant's task panicked; see the log".into(),
                    }
                    .into(),
                )),
            }
        }
        failed
    });
    Ending { stops, all }
}

/// No new passes; running ones stop at their next batch boundary within the
/// grace; then the HTTP endpoint closes.
async fn stop_all(
    options: &ServeOptions,
    mut ending: Ending,
    http: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
) -> Result<Vec<(String, RunError)>, ServeError> {
    tracing::info!(
        "shutting down: no new passes; running passes stop at their next batch boundary"
    );
    let _ = shutdown.send(true);
    for stop in &ending.stops {
        let _ = stop.send(true);
    }
    let drained = tokio::time::timeout(options.shutdown_grace, &mut ending.all).await;
    close(http, shutdown).await;
    match drained {
        Ok(done) => {
            tracing::info!("stopped");
            Ok(done.unwrap_or_default())
        }
        Err(_) => Err(ServeError::ShutdownGrace(options.shutdown_grace.as_secs())),
    }
}

/// Closes the HTTP endpoint and waits for it.
async fn close(http: Option<JoinHandle<()>>, shutdown: watch::Sender<bool>) {
    let _ = shutdown.send(true);
    if let Some(http) = http {
        let _ = http.await;
    }
}

struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

struct Begun {
    metrics: Arc<Metrics>,
    pass_threads: Arc<PassThreads>,
    components: Components,
    shutdown: watch::Sender<bool>,
    running: BTreeMap<String, Running>,
    signals: Signals,
}

/// Loads the tenants, compiles their components, starts the HTTP endpoint and every schedule.
async fn begin(options: &ServeOptions) -> anyhow::Result<(Option<JoinHandle<()>>, Begun)> {
    // Signals are hooked first, so one sent during start-up is not lost.
    let signals = Signals {
        terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
        hangup: signal(SignalKind::hangup()).context("listening for SIGHUP")?,
    };
    let specs = load(options)?;
    let metrics = Arc::new(Metrics::default());
    let pass_threads =
        Arc::new(PassThreads::start(options.max_concurrent).context("starting the pass threads")?);
    let mut components = Components::new(options)?;
    let (shutdown, shutdown_seen) = watch::channel(false);
    let http = match options.metrics_addr {
        Some(addr) => Some(
            start_http(
                addr,
                metrics.clone(),
                options.health_intervals,
                shutdown_seen,
            )
            .await?,
        ),
        None => None,
    };
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    for spec in specs {
        let collector = components.get(
            spec.component
                .as_deref()
                .or(options.default_component.as_deref()),
        )?;
        running.insert(
            spec.id.clone(),
            start(spec, collector, &pass_threads, &metrics, None, options.once),
        );
    }
    tracing::info!(
        tenants = running.len(),
        max_concurrent = options.max_concurrent,
        "serving"
    );
    Ok((
        http,
        Begun {
            metrics,
            pass_threads,
            components,
            shutdown,
            running,
            signals,
        },
    ))
}

/// Applies a changed tenant file: new tenants start, removed ones stop after
/// their running pass, changed ones restart once the old task has ended.
/// Returns the tasks of removed tenants, which may still be finishing a pass.
fn reload(
    options: &ServeOptions,
    running: &mut BTreeMap<String, Running>,
    components: &mut Components,
    pass_threads: &Arc<PassThreads>,
    metrics: &Arc<Metrics>,
) -> Vec<JoinHandle<Option<RunError>>> {
    let specs = match load(options) {
        Ok(specs) => specs,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload refused; the running tenants continue unchanged");
            return Vec::new();
        }
    };
    let mut next: BTreeMap<String, Running> = BTreeMap::new();
    let (mut added, mut changed, mut kept) = (0, 0, 0);
    for spec in specs {
        let collector = match components.get(
            spec.component
                .as_deref()
                .or(options.default_component.as_deref()),
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(tenant = %spec.id, error = %format!("{e:#}"), "component unusable; tenant not (re)started");
                if let Some(old) = running.remove(&spec.id) {
                    next.insert(spec.id.clone(), old);
                }
                continue;
            }
        };
        match running.remove(&spec.id) {
            Some(old) if old.spec == spec => {
                kept += 1;
                next.insert(spec.id.clone(), old);
            }
            Some(old) => {
                changed += 1;
                let _ = old.stop.send(true);
                next.insert(
                    spec.id.clone(),
                    start(
                        spec,
                        collector,
                        pass_threads,
                        metrics,
                        Some(old.task),
                        false,
                    ),
                );
            }
            None => {
                added += 1;
                next.insert(
                    spec.id.clone(),
                    start(spec, collector, pass_threads, metrics, None, false),
                );
            }
        }
    }
    let removed: Vec<JoinHandle<Option<RunError>>> = std::mem::take(running)
        .into_iter()
        .map(|(id, old)| {
            let _ = old.stop.send(true);
            metrics.remove(&id);
            old.task
        })
        .collect();
    *running = next;
    tracing::info!(
        added,
        changed,
        removed = removed.len(),
        kept,
        "tenant file reloaded"
    );
    removed
}

/// Starts a tenant's schedule, after `after` (its previous task) has ended.
fn start(
    spec: TenantSpec,
    collector: Arc<Collector>,
    pass_threads: &Arc<PassThreads>,
    metrics: &Arc<Metrics>,
    after: Option<JoinHandle<Option<RunError>>>,
    once: bool,
) -> Running {
    let (stop, stopped) = watch::channel(false);
    metrics.register(&spec.id, spec.interval);
    let span = tracing::info_span!("tenant", tenant = %spec.id);
    let task = tokio::spawn(
        schedule(
            spec.clone(),
            collector,
            pass_threads.clone(),
            metrics.clone(),
            stopped,
            (after, once),
        )
        .instrument(span),
    );
    Running { spec, stop, task }
}

async fn schedule(
    spec: TenantSpec,
    collector: Arc<Collector>,
    pass_threads: Arc<PassThreads>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    (after, once): (Option<JoinHandle<Option<RunError>>>, bool),
) -> Option<RunError> {
    if let Some(previous) = after {
        let _ = previous.await;
    }
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            return None;
        }
        let permit = tokio::select! {
            p = pass_threads.permit() => p,
            _ = stop.changed() => return None,
        };
        metrics.pass_started(&spec.id);
        let started = std::time::Instant::now();
        let result = run_on_pass_thread(&pass_threads, &spec, &collector, &stop).await;
        drop(permit);
        let wait = match result {
            Ok(outcome) => {
                failures = 0;
                metrics.pass_succeeded(&spec.id, &outcome.summary);
                tracing::info!(
                    summary = %outcome.line(),
                    duration_ms = started.elapsed().as_millis(),
                    cpu_ms = outcome.summary.cpu.as_millis(),
                    "pass finished"
                );
                if once {
                    return None;
                }
                spec.interval + crate::random::up_to(spec.jitter)
            }
            Err(e) => {
                failures += 1;
                let backoff = if once {
                    Duration::ZERO
                } else {
                    FIRST_BACKOFF
                        .saturating_mul(1 << (failures - 1).min(16))
                        .min(spec.interval)
                };
                metrics.pass_failed(&spec.id, &e, backoff);
                tracing::error!(
                    error_kind = e.kind(),
                    error = %e,
                    failures,
                    retry_in_secs = backoff.as_secs(),
                    "pass failed"
                );
                if once {
                    return Some(e);
                }
                backoff
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return None,
        }
    }
}

/// Runs one pass on one of `threads` (see [`threads`]). The guest also
/// yields at every epoch tick, so the thread's runtime keeps serving the
/// pass's own I/O. A panic fails this pass only.
async fn run_on_pass_thread(
    threads: &PassThreads,
    spec: &TenantSpec,
    collector: &Arc<Collector>,
    stop: &watch::Receiver<bool>,
) -> Result<run::RunOutcome, RunError> {
    let (config, collector, stop) = (spec.config.clone(), collector.clone(), stop.clone());
    let span = tracing::Span::current();
    let (done, outcome) = tokio::sync::oneshot::channel();
    let sent = threads.run(Box::new(move |runtime| {
        let result = runtime.block_on(
            run::run_once(
                &config,
                false,
                &collector,
                (PassThread::Own, Some(stop)),
                None,
            )
            .instrument(span),
        );
        let _ = done.send(result);
    }));
    if !sent {
        return Err(SandboxError::Panicked {
            reason: "no pass thread is left to run the pass; see the log".into(),
        }
        .into());
    }
    // The sender is dropped unsent only when the pass panicked.
    outcome.await.unwrap_or_else(|_| {
        Err(SandboxError::Panicked {
            reason: "the pass panicked; see the log".into(),
        }
        .into())
    })
}

async fn start_http(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health_intervals: u32,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr}"))?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving /metrics and /healthz");
    let for_metrics = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = for_metrics.render();
                async move { ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], body) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let health = metrics.health(health_intervals);
                let status = if health.healthy {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                async move { (status, health.report) }
            }),
        );
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics server failed");
        }
    }))
}
