//! `serve`: many tenants in one process. One engine; each component compiled
//! once; every pass in its own store (own memory ceiling, deadline, egress
//! policy and key). A scheduler runs each tenant at start and then on its
//! interval, at most `max_concurrent` at a time, backing off after failures.
//! SIGTERM/SIGINT stop new passes and end running ones at their next batch
//! boundary; SIGHUP reloads the tenant file without touching unchanged tenants.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::metrics::Metrics;
use super::run;
use crate::config::tenants::{self, TenantSpec};
use crate::engine::{Collector, PoolSize, SharedEngine, load_component};
use crate::error::RunError;

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
    /// Serve only tenants whose id hashes to shard `.0` of `.1`.
    pub shard: Option<(u32, u32)>,
    /// Longest wait for running passes at shutdown.
    pub shutdown_grace: Duration,
    /// Component for tenants that name none (the embedded one when `None`).
    pub default_component: Option<PathBuf>,
    /// Where compiled components are cached.
    pub cache_dir: Option<PathBuf>,
}

/// A stable hash (FNV-1a), so every replica assigns the same shard to a tenant.
fn shard_of(id: &str, shards: u32) -> u32 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    u32::try_from(hash % u64::from(shards)).expect("below a u32")
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
    task: JoinHandle<()>,
}

/// Reads the tenant file and keeps this replica's shard.
fn load(options: &ServeOptions) -> anyhow::Result<Vec<TenantSpec>> {
    // The message already holds its causes: `{:#}` of a chain would repeat them.
    let all = tenants::load(&options.tenants_file, |name| std::env::var(name).ok())
        .map_err(|e| anyhow::Error::msg(e.to_string()))?;
    Ok(match options.shard {
        None => all,
        Some((index, count)) => all
            .into_iter()
            .filter(|t| shard_of(&t.id, count) == index)
            .collect(),
    })
}

/// Why `serve` ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
}

impl ServeError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Startup(_) => crate::error::EXIT_CONFIG,
            Self::ShutdownGrace(_) => 1,
        }
    }
}

/// Runs until SIGTERM or SIGINT. Fails only on an unusable tenant file,
/// component or metrics address at start, or a shutdown that outlived its grace.
pub async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let (http, begun) = begin(&options).await.map_err(ServeError::Startup)?;
    let Begun {
        metrics,
        permits,
        mut components,
        shutdown,
        mut running,
        mut signals,
    } = begun;
    // Tasks of tenants removed by a reload, still finishing their pass.
    let mut retired = Vec::new();
    loop {
        tokio::select! {
            _ = signals.terminate.recv() => break,
            _ = signals.interrupt.recv() => break,
            _ = signals.hangup.recv() => {
                retired.retain(|t: &JoinHandle<()>| !t.is_finished());
                retired.extend(reload(&options, &mut running, &mut components, &permits, &metrics));
            }
        }
    }
    tracing::info!(
        "shutting down: no new passes; running passes stop at their next batch boundary"
    );
    let _ = shutdown.send(true);
    for r in running.values() {
        let _ = r.stop.send(true);
    }
    let tasks = running.into_values().map(|r| r.task).chain(retired);
    let drained = tokio::time::timeout(options.shutdown_grace, join_all(tasks)).await;
    if let Some(http) = http {
        let _ = http.await;
    }
    match drained {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(())
        }
        Err(_) => Err(ServeError::ShutdownGrace(options.shutdown_grace.as_secs())),
    }
}

struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

struct Begun {
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
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
    let permits = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
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
            start(spec, collector, &permits, &metrics, None),
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
            permits,
            components,
            shutdown,
            running,
            signals,
        },
    ))
}

async fn join_all(tasks: impl Iterator<Item = JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Applies a changed tenant file: new tenants start, removed ones stop after
/// their running pass, changed ones restart once the old task has ended.
/// Returns the tasks of removed tenants, which may still be finishing a pass.
fn reload(
    options: &ServeOptions,
    running: &mut BTreeMap<String, Running>,
    components: &mut Components,
    permits: &Arc<Semaphore>,
    metrics: &Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
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
                    start(spec, collector, permits, metrics, Some(old.task)),
                );
            }
            None => {
                added += 1;
                next.insert(
                    spec.id.clone(),
                    start(spec, collector, permits, metrics, None),
                );
            }
        }
    }
    let removed: Vec<JoinHandle<()>> = std::mem::take(running)
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
    permits: &Arc<Semaphore>,
    metrics: &Arc<Metrics>,
    after: Option<JoinHandle<()>>,
) -> Running {
    let (stop, stopped) = watch::channel(false);
    metrics.register(&spec.id, spec.interval);
    let span = tracing::info_span!("tenant", tenant = %spec.id);
    let task = tokio::spawn(
        schedule(
            spec.clone(),
            collector,
            permits.clone(),
            metrics.clone(),
            stopped,
            after,
        )
        .instrument(span),
    );
    Running { spec, stop, task }
}

async fn schedule(
    spec: TenantSpec,
    collector: Arc<Collector>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    after: Option<JoinHandle<()>>,
) {
    if let Some(previous) = after {
        let _ = previous.await;
    }
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => return,
        };
        metrics.pass_started(&spec.id);
        // A pass runs as its own task so a panic in it fails this pass only.
        let pass = {
            let (config, collector, stop) = (spec.config.clone(), collector.clone(), stop.clone());
            tokio::spawn(
                async move { run::run_once(&config, false, &collector, Some(stop), None).await }
                    .in_current_span(),
            )
        };
        let result = match pass.await {
            Ok(result) => result,
            Err(e) => Err(RunError::Panicked {
                reason: e.to_string(),
            }),
        };
        drop(permit);
        let wait = match result {
            Ok(outcome) => {
                failures = 0;
                metrics.pass_succeeded(&spec.id, &outcome.summary);
                tracing::info!(summary = %outcome.line(), "pass finished");
                spec.interval + crate::random::up_to(spec.jitter)
            }
            Err(e) => {
                failures += 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(spec.interval);
                metrics.pass_failed(&spec.id, &e, backoff);
                tracing::error!(
                    error_kind = e.kind(),
                    error = %e,
                    failures,
                    retry_in_secs = backoff.as_secs(),
                    "pass failed"
                );
                backoff
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_cover_every_tenant_once() {
        let ids: Vec<String> = (0..300).map(|i| format!("tenant-{i}")).collect();
        let mut counts = [0u32; 3];
        for id in &ids {
            let shard = shard_of(id, 3);
            assert_eq!(shard, shard_of(id, 3));
            counts[shard as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<u32>(), 300);
        assert!(counts.iter().all(|&c| c > 60), "{counts:?}");
        assert_eq!(shard_of("payments", 1), 0);
    }
}
