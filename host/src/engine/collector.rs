//! Runs collection passes: one engine and pre-instantiated component, a fresh
//! sandboxed instance per pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};

use crate::config::{Config, LimitsConfig, OutputShape, Settings as CoreSettings};
use crate::engine::batch_rules::BatchRules;
use crate::engine::bindings::harness::audit::types as wit;
use crate::engine::bindings::{AuditSourcePre, Budget, Settings, SourceError, harness::audit};
use crate::engine::error::{HarnessError, RunError, STUCK_AFTER_PASSES, SandboxError, Stuck};
use crate::engine::host_state::HostState;
use crate::engine::limits::{CpuMeter, EpochTicker, Metered, PassGuard, PassThread, Stopped};
use crate::engine::pacing::KeyPaces;
use crate::engine::policy::EgressPolicy;
use crate::engine::source_errors::{source_failure, stall_key};
use crate::engine::summary::PassSummary;
use crate::engine::{compiler_settings, precompiled};
use crate::evidence::SigningKey;
use crate::storage::pipeline::{ChainSpec, Pipeline};
use crate::storage::{CheckpointStore, Discard, MemoryCheckpoint, Sink};
use crate::time::{now_ms, rfc3339_ms};

/// List requests (pages and counts) one `poll` call may make before control returns to the host.
pub const PAGES_PER_POLL: u32 = 20;
/// Upper bound on `poll` calls in one pass, so a misbehaving API cannot keep a run alive forever
/// (at 100 events a page, this is 200 million events).
pub const MAX_POLLS_PER_PASS: u32 = 100_000;

/// Size of the pooling allocator's instance pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    /// Instances alive at once (passes running at once).
    pub instances: u32,
    /// The largest memory ceiling any of them has.
    pub max_memory_bytes: usize,
}

/// One engine for every component and tenant, with the epoch ticker that
/// drives call deadlines, and the pace of each API key its passes use.
/// Cheap to clone.
#[derive(Clone)]
pub struct SharedEngine {
    engine: Engine,
    _ticker: Arc<EpochTicker>,
    paces: Arc<KeyPaces>,
}

impl std::fmt::Debug for SharedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedEngine").finish_non_exhaustive()
    }
}

impl SharedEngine {
    /// An engine with on-demand allocation, or with a pool of pre-reserved
    /// instance slots (instantiation then costs microseconds).
    pub fn new(pool: Option<PoolSize>) -> wasmtime::Result<Self> {
        super::policy::install_tls_provider();
        let mut config = compiler_settings::engine_config();
        if let Some(pool) = pool {
            // A std-Rust component holds a few core instances, memories and tables.
            let n = pool.instances.max(1);
            let mut pooling = PoolingAllocationConfig::default();
            pooling
                .total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n * 4)
                .total_tables(n * 8)
                .total_stacks(n)
                .max_memory_size(pool.max_memory_bytes);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        }
        let engine = Engine::new(&config)?;
        let ticker = EpochTicker::start(&engine)?;
        Ok(Self {
            engine,
            _ticker: Arc::new(ticker),
            paces: Arc::default(),
        })
    }

    /// The engine, for embedders that link their own store state (the benchmarks).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// A compiled source component, ready to instantiate.
pub struct Collector {
    engine: Engine,
    pre: AuditSourcePre<HostState>,
    shared: SharedEngine,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

impl Collector {
    /// Compiles `component` (a `.wasm` component binary) and links it against
    /// WASI p2, wasi:http and `emit`. Fails if it does not match the world.
    pub fn new(component: &[u8]) -> wasmtime::Result<Self> {
        Self::with_engine(&SharedEngine::new(None)?, component, None)
    }

    /// Like [`Collector::new`], on a shared engine, through the compiled-code
    /// cache in `cache_dir` when given.
    pub fn with_engine(
        shared: &SharedEngine,
        component: &[u8],
        cache_dir: Option<&std::path::Path>,
    ) -> wasmtime::Result<Self> {
        let component = precompiled::load(&shared.engine, component, cache_dir)?;
        Self::link(shared, &component)
    }

    /// The embedded component: its native code from the build, when this
    /// engine can run it, otherwise compiled like any other.
    pub fn embedded(
        shared: &SharedEngine,
        cache_dir: Option<&std::path::Path>,
    ) -> wasmtime::Result<Self> {
        let component = precompiled::load_embedded(&shared.engine, cache_dir)?;
        Self::link(shared, &component)
    }

    fn link(shared: &SharedEngine, component: &Component) -> wasmtime::Result<Self> {
        let engine = shared.engine.clone();
        let mut linker = Linker::<HostState>::new(&engine);
        // A std-Rust component imports wasi:cli and friends even when unused;
        // they are linked with nothing granted (see `HostState::new`).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        audit::types::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        audit::emit::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
        let pre = AuditSourcePre::new(linker.instantiate_pre(component)?)?;
        Ok(Self {
            engine,
            pre,
            shared: shared.clone(),
        })
    }

    /// One pass: resume from the stored checkpoint, poll until caught up,
    /// store the final checkpoint. It runs on `thread`, and ends early once
    /// `stop` turns true.
    pub async fn run_pass(
        &self,
        config: &Config,
        sink: Arc<dyn Sink>,
        checkpoints: Arc<dyn CheckpointStore>,
        (thread, stop): (PassThread, Option<watch::Receiver<bool>>),
        progress: Option<&(dyn Fn(&PassSummary) + Sync)>,
    ) -> Result<PassSummary, RunError> {
        let guard = |meter| PassGuard::new(config.limits, meter, thread, stop);
        self.pass(config, sink, checkpoints, guard, None, progress)
            .await
    }

    /// One poll of at most `pages` pages, for diagnostics: what the component
    /// reads goes to `sink` and `checkpoints`, and no final checkpoint is stored.
    pub async fn probe(
        &self,
        config: &Config,
        sink: Arc<dyn Sink>,
        checkpoints: Arc<dyn CheckpointStore>,
        pages: u32,
    ) -> Result<PassSummary, RunError> {
        let guard = |meter| PassGuard::new(config.limits, meter, PassThread::Shared, None);
        self.pass(config, sink, checkpoints, guard, Some(pages), None)
            .await
    }

    /// A store for one instance: the sandbox around `policy` and
    /// `pipeline`, with the memory ceiling armed and the time limits watched
    /// at every epoch tick, where a running guest also yields its thread.
    fn sandbox(
        &self,
        config: &Config,
        policy: EgressPolicy,
        pipeline: Pipeline,
        guard: PassGuard,
    ) -> Store<HostState> {
        let max_memory_bytes =
            usize::try_from(config.limits.max_memory_mib).expect("u32 fits in usize") << 20;
        let (pass_from_ms, pass_to_ms) = config
            .backfill
            .map_or((0, None), |r| (r.from_ms, Some(r.to_ms)));
        let rules = BatchRules {
            max_events: config.source.output.batch_max_events,
            time_field: match config.source.output.output_shape {
                OutputShape::Raw => "timestamp",
                OutputShape::Streaming => "auditEventTime",
            },
            pass_from_ms,
            pass_to_ms,
        };
        let mut store = Store::new(
            &self.engine,
            HostState::new(policy, pipeline, max_memory_bytes, rules, guard),
        );
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|mut context| match context.data_mut().guard.check() {
            Some(_) => Err(Trap::Interrupt.into()),
            None => Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            )),
        });
        store
    }

    /// Arms the limits of the next call into the guest.
    fn arm(store: &mut Store<HostState>) {
        store.data_mut().guard.arm();
        store.set_epoch_deadline(1);
    }

    /// The completeness ledger of `checkpoint`, as the component reads it.
    /// Nothing is requested or stored: the instance may reach no host and
    /// its storage keeps nothing.
    pub async fn ledger(
        &self,
        config: &Config,
        checkpoint: Option<&str>,
    ) -> Result<wit::LedgerReport, RunError> {
        let pipeline = Pipeline::open(
            Arc::new(Discard),
            Arc::new(MemoryCheckpoint::default()),
            None,
        )
        .await?;
        let limits = config.limits;
        let guard = PassGuard::new(
            limits,
            Arc::new(CpuMeter::default()),
            PassThread::Shared,
            None,
        );
        let mut store = self.sandbox(config, EgressPolicy::deny_all(), pipeline, guard);
        Self::arm(&mut store);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| trapped(&store, e, limits))?;
        let source = instance.harness_audit_source();
        Self::arm(&mut store);
        let configured = source
            // No key: the egress policy adds it, so the component never holds it.
            .call_configure(&mut store, &settings(config), checkpoint, None)
            .await
            .map_err(|e| trapped(&store, e, limits))?;
        configured.map_err(|e| {
            source_failure(e, &config.source.query.account_id, "the stored checkpoint")
        })?;
        Self::arm(&mut store);
        source
            .call_ledger(&mut store)
            .await
            .map_err(|e| trapped(&store, e, limits))
    }

    async fn pass(
        &self,
        config: &Config,
        sink: Arc<dyn Sink>,
        checkpoints: Arc<dyn CheckpointStore>,
        guard: impl FnOnce(Arc<CpuMeter>) -> PassGuard,
        probe_pages: Option<u32>,
        progress: Option<&(dyn Fn(&PassSummary) + Sync)>,
    ) -> Result<PassSummary, RunError> {
        let meter = Arc::new(CpuMeter::default());
        let mut pass = Metered::new(
            meter.clone(),
            self.metered_pass(
                config,
                sink,
                checkpoints,
                guard(meter.clone()),
                probe_pages,
                progress,
            ),
        )
        .await;
        if let Ok(summary) = &mut pass {
            summary.cpu = meter.spent();
        }
        pass
    }

    async fn metered_pass(
        &self,
        config: &Config,
        sink: Arc<dyn Sink>,
        checkpoints: Arc<dyn CheckpointStore>,
        guard: PassGuard,
        probe_pages: Option<u32>,
        progress: Option<&(dyn Fn(&PassSummary) + Sync)>,
    ) -> Result<PassSummary, RunError> {
        let harness = &config.harness;
        let state_location = checkpoints.checkpoint_location();
        let source_error = |e| source_failure(e, &config.source.query.account_id, &state_location);
        let pace = self.shared.paces.pace(
            &harness.api_base,
            harness.api_key.expose(),
            config.source.retries.max_requests_per_minute,
        );
        let policy = EgressPolicy::new(
            &harness.api_base,
            harness.api_key.expose(),
            Duration::from_secs(u64::from(harness.http_timeout_secs)),
            pace,
        )?;
        let output = &config.output;
        let signer = output
            .signing_key_file
            .as_deref()
            .map(SigningKey::from_file)
            .transpose()?
            .map(Arc::new);
        let chain = ChainSpec {
            prefix: output.prefix.clone(),
            state_key: output.state_key.clone(),
            signer,
        };
        let pipeline = Pipeline::open(sink, checkpoints, Some(chain)).await?;
        let loaded = pipeline.committed.clone();
        let limits = config.limits;
        let mut store = self.sandbox(config, policy, pipeline, guard);
        let trapped = |store: &Store<HostState>, e| trapped(store, e, limits);
        let instantiating = Instant::now();
        Self::arm(&mut store);
        let instance = match self.pre.instantiate_async(&mut store).await {
            Ok(i) => i,
            Err(e) => return Err(trapped(&store, e)),
        };
        let instantiate = instantiating.elapsed();
        let source = instance.harness_audit_source();
        // A backfill has its own range and checkpoint: it never takes over the recipe's.
        let takeover = match config.backfill {
            Some(_) => None,
            None => store.data().pipeline.takeover.clone(),
        };
        let mut settings = settings(config);
        if let Some(takeover) = &takeover {
            // A `since` ahead of this host's clock (skew between hosts) starts now:
            // there is nothing later than now to skip.
            settings.window.start_at_ms = Some(takeover.since_ms.min(now_ms()));
        }
        Self::arm(&mut store);
        match source
            .call_configure(&mut store, &settings, loaded.as_deref(), None)
            .await
        {
            Ok(result) => result.map_err(source_error)?,
            Err(e) => return Err(trapped(&store, e)),
        }
        if let Some(takeover) = takeover {
            // Recorded before any read, so the takeover happens once even if this pass fails.
            Self::arm(&mut store);
            let checkpoint = match source.call_checkpoint(&mut store).await {
                Ok(c) => c,
                Err(e) => return Err(trapped(&store, e)),
            };
            store
                .data_mut()
                .pipeline
                .save_checkpoint(checkpoint)
                .await?;
            tracing::warn!(
                stage = "takeover",
                recipe_state = %takeover.from,
                since = %rfc3339_ms(takeover.since_ms),
                checkpoint = %state_location,
                "took over the Cloud Run recipe's checkpoint: collection continues from its `since`, so nothing \
                 is read twice or skipped. The recipe's object was left untouched; delete it once you no longer \
                 need to roll back"
            );
        }

        let mut summary = PassSummary {
            instantiate,
            ..PassSummary::default()
        };
        let mut caught_up = false;
        for _ in 0..MAX_POLLS_PER_PASS {
            if store.data().guard.stop_requested() {
                // Every emitted batch is committed; what was read since is read again next time.
                summary.stopped_early = true;
                let pipeline = &mut store.data_mut().pipeline;
                pipeline.finish(None).await?;
                summary.stored = pipeline.stats.clone();
                return Ok(summary);
            }
            let max_pages = probe_pages.unwrap_or(PAGES_PER_POLL);
            store.data_mut().guard.arm_poll(max_pages);
            store.set_epoch_deadline(1);
            let polled = source.call_poll(&mut store, Budget { max_pages }).await;
            let data = store.data_mut();
            if data.guard.stopped == Some(Stopped::Shutdown) {
                summary.stopped_early = true;
                data.pipeline.finish(None).await?;
                summary.stored = data.pipeline.stats.clone();
                return Ok(summary);
            }
            let report = match polled {
                Ok(Ok(report)) => report,
                Ok(Err(e)) => {
                    let stall = match &e {
                        SourceError::UnusableResponse(u) => Some((
                            stall_key(u, loaded.is_none()),
                            u.request.map(|r| rfc3339_ms(r.start_ms)),
                        )),
                        _ => None,
                    };
                    let mut error = source_error(e);
                    if let (
                        Some((key, from)),
                        RunError::Harness(HarnessError::UnusableResponse { stuck, .. }),
                    ) = (stall, &mut error)
                    {
                        *stuck = stuck_at(&mut data.pipeline, key, from).await;
                    }
                    return Err(error);
                }
                Err(e) => return Err(trapped(&store, e)),
            };
            summary.pages += u64::from(report.pages);
            summary.retries += u64::from(report.retries);
            summary.duplicates_dropped += report.duplicates_dropped;
            summary.events_read += report.events_read;
            summary.watermark_ms = report.watermark_ms;
            summary.count_requests += u64::from(report.count_requests);
            summary.slices_reread += u64::from(report.slices_reread);
            summary.late_events += report.late_events;
            summary.unreconciled_events = report.unreconciled_events;
            if let (Some(start), Some(end)) = (report.window_start_ms, report.window_end_ms) {
                summary.window = Some(
                    summary
                        .window
                        .map_or((start, end), |(s, e)| (s.min(start), e.max(end))),
                );
            }
            for finding in &report.findings {
                log_finding(finding);
            }
            tracing::debug!(
                stage = "poll",
                pages = report.pages,
                count_requests = report.count_requests,
                events = report.events_emitted,
                "poll finished"
            );
            summary.stored = store.data().pipeline.stats.clone();
            summary.cpu = store.data().guard.cpu_spent();
            if let Some(progress) = progress {
                progress(&summary);
            }
            if probe_pages.is_some() {
                return Ok(summary);
            }
            if report.caught_up {
                caught_up = true;
                break;
            }
            if report.pages == 0 && report.count_requests == 0 {
                return Err(RunError::breach(
                    "poll made no progress and is not caught up",
                ));
            }
        }
        if !caught_up {
            return Err(RunError::breach(format!(
                "not caught up after {MAX_POLLS_PER_PASS} polls; progress so far is committed, run again"
            )));
        }
        Self::arm(&mut store);
        let checkpoint = match source.call_checkpoint(&mut store).await {
            Ok(c) => c,
            Err(e) => return Err(trapped(&store, e)),
        };
        let pipeline = &mut store.data_mut().pipeline;
        pipeline.finish(Some(checkpoint)).await?;
        summary.stored = pipeline.stats.clone();
        Ok(summary)
    }
}

/// Records this pass's failure on an unusable answer in the state, and says
/// whether collection is stuck on it.
async fn stuck_at(pipeline: &mut Pipeline, key: String, from: Option<String>) -> Option<Stuck> {
    match pipeline.stalled(key).await {
        Ok(stall) if stall.passes >= STUCK_AFTER_PASSES => Some(Stuck {
            passes: stall.passes,
            since: stall.since,
            from: from.unwrap_or_else(|| "this request".to_owned()),
        }),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(stage = "storage", error = %e, "the failed pass could not be recorded in the state");
            None
        }
    }
}

/// Why a call into the component failed: the host's own error when `emit`
/// ended it with one, or the limit it hit, or the trap.
fn trapped(store: &Store<HostState>, e: wasmtime::Error, limits: LimitsConfig) -> RunError {
    let e = match e.downcast::<RunError>() {
        Ok(ended) => return ended,
        Err(e) => e,
    };
    if let Some(desired) = store.data().limits.memory_refused {
        return RunError::limit(
            harness_audit_settings::MAX_MEMORY_MIB.env,
            format!(
                "the component asked for {} MiB of memory, over MAX_MEMORY_MIB ({} MiB), and was stopped",
                desired.div_ceil(1 << 20),
                limits.max_memory_mib
            ),
        );
    }
    match store.data().guard.stopped {
        Some(Stopped::PollTimeout) => {
            return RunError::limit(
                harness_audit_settings::POLL_TIMEOUT_SECS.env,
                format!(
                    "a call into the component ran longer than POLL_TIMEOUT_SECS ({} s) and was stopped",
                    limits.poll_timeout_secs
                ),
            );
        }
        Some(Stopped::CpuBudget) => {
            return RunError::limit(
                harness_audit_settings::MAX_PASS_CPU_SECS.env,
                format!(
                    "the pass used more than MAX_PASS_CPU_SECS ({} s) of CPU and was stopped; its committed \
                     progress stands",
                    limits.max_pass_cpu_secs
                ),
            );
        }
        Some(Stopped::Shutdown) => {
            return RunError::Interrupted;
        }
        None => {}
    }
    let stderr = store.data().guest_stderr();
    SandboxError::Trap {
        trap: e,
        stderr: if stderr.is_empty() {
            String::new()
        } else {
            format!("; component stderr: {stderr}")
        },
    }
    .into()
}

/// The settings a pass configures the component with: the source's, and a
/// backfill's fixed range.
fn settings(config: &Config) -> Settings {
    let mut settings = wit_settings(&config.source);
    if let Some(range) = config.backfill {
        settings.window.start_at_ms = Some(range.from_ms);
        settings.window.end_at_ms = Some(range.to_ms);
    }
    settings
}

/// The core's settings, as the WIT record.
pub fn wit_settings(s: &CoreSettings) -> Settings {
    harness_audit_core::wit_settings!(wit, s)
}

/// Logs a completeness finding of the component, with its range in UTC.
fn log_finding(f: &wit::Finding) {
    let (from, to) = (rfc3339_ms(f.start_ms), rfc3339_ms(f.end_ms));
    let (counted, collected, detail) = (f.counted, f.collected, f.detail.as_str());
    match f.kind {
        wit::FindingKind::WindowShort => tracing::warn!(
            stage = "completeness", kind = "window-short", from = %from, to = %to, counted, read = collected,
            "a window returned fewer events than Harness counted for it; its hours are checked and re-read where short"
        ),
        wit::FindingKind::LateCollected => tracing::info!(
            stage = "completeness", kind = "late-collected", from = %from, to = %to, counted, written = collected,
            "re-reading an hour found events that became visible after their window was read; they were written"
        ),
        wit::FindingKind::GapRemains => tracing::warn!(
            stage = "completeness", kind = "gap-remains", from = %from, to = %to, counted, stored = collected,
            gap = counted.saturating_sub(collected),
            "Harness counts events in this hour that it does not return, even when read again; they are reported \
             in the ledger and the metric, and the hour is re-read when its gap grows"
        ),
        wit::FindingKind::TieIncomplete => tracing::warn!(
            stage = "completeness", kind = "tie-incomplete", at = %from, counted, read = collected,
            "a millisecond holding more events than a page was not read to its count within the re-read bound; \
             reconciliation checks its hour again"
        ),
        wit::FindingKind::CountDecreased => tracing::warn!(
            stage = "completeness", kind = "count-decreased", from = %from, to = %to, counted, stored = collected,
            detail, "Harness's count for this hour went down; nothing was changed"
        ),
        wit::FindingKind::CountBelowStored => tracing::warn!(
            stage = "completeness", kind = "count-below-stored", from = %from, to = %to, counted, stored = collected,
            "Harness counts fewer events in this hour than were stored (retention, or a lagging count); nothing was changed"
        ),
        wit::FindingKind::CountFailed => tracing::warn!(
            stage = "completeness", kind = "count-failed", from = %from, to = %to, error = detail,
            "a count request failed after its retries; the hour is checked again at the next interval"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The contract (`wit/world.wit`): `emit` and stable WASI 0.2 only, with
    /// the `wasi:cli` interfaces every std-Rust program imports. A second
    /// runtime supplies exactly these; an import beyond them (say a random
    /// seed for a hash map) would keep the component from loading there.
    #[test]
    fn the_embedded_component_imports_only_the_contract() {
        let engine = super::SharedEngine::new(None).unwrap();
        let component =
            wasmtime::component::Component::new(engine.engine(), crate::engine::EMBEDDED_COMPONENT)
                .unwrap();
        let imports: BTreeSet<String> = component
            .component_type()
            .imports(engine.engine())
            .map(|(name, _)| name.split('@').next().unwrap().to_owned())
            .collect();
        let allowed = [
            "harness:audit/types",
            "harness:audit/emit",
            "wasi:http/types",
            "wasi:http/outgoing-handler",
            "wasi:io/error",
            "wasi:io/poll",
            "wasi:io/streams",
            "wasi:clocks/wall-clock",
            "wasi:clocks/monotonic-clock",
            "wasi:random/random",
        ];
        let extra: Vec<&String> = imports
            .iter()
            .filter(|i| !allowed.contains(&i.as_str()) && !i.starts_with("wasi:cli/"))
            .collect();
        assert!(extra.is_empty(), "imports beyond the contract: {extra:?}");
        for needed in ["harness:audit/emit", "wasi:http/outgoing-handler"] {
            assert!(
                imports.contains(needed),
                "{needed} missing from {imports:?}"
            );
        }
    }
}
