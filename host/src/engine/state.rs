//! The per-instance store state: WASI with nothing granted, wasi:http behind
//! the egress policy, memory limits, and the pipeline that `emit` feeds.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::bindings::harness::audit::{emit, types};
use crate::engine::bindings::{Batch, EmitError};
use crate::engine::limits::SandboxLimits;
use crate::engine::policy::EgressPolicy;
use crate::error::RunError;
use crate::storage::journal::{Pending, StateFile};
use crate::storage::recipe;
use crate::storage::{BatchMeta, CheckpointStore, Sink, SinkError, Written};
use crate::time::rfc3339_ms;

/// Largest batch accepted from a component.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Largest checkpoint accepted from a component.
pub const MAX_CHECKPOINT_BYTES: usize = 32 * 1024 * 1024;
/// Guest stderr kept for error reports (panic messages).
const GUEST_STDERR_BYTES: usize = 64 * 1024;

/// Totals of what the pipeline stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Events stored.
    pub events: u64,
    /// New objects created.
    pub objects: u64,
    /// Batches that were already stored (re-sent after a crash).
    pub already_present: u64,
}

/// Where `emit` sends batches and checkpoints.
pub struct Pipeline {
    sink: Arc<dyn Sink>,
    checkpoints: Arc<dyn CheckpointStore>,
    /// The committed checkpoint (the component's JSON).
    pub committed: Option<String>,
    /// Totals so far.
    pub stats: PipelineStats,
    /// Set when no checkpoint of ours exists but the Cloud Run recipe's does:
    /// the first pass starts at its `since`.
    pub takeover: Option<Takeover>,
    /// Set when a write found the checkpoint advanced by another instance.
    pub superseded: Option<SinkError>,
}

/// Where collection resumes when taking over from the Cloud Run recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// The recipe's state object.
    pub from: String,
    /// Its `since`, in epoch milliseconds.
    pub since_ms: u64,
}

/// Why the stored state could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] SinkError),
    /// The state object is not ours or is damaged; it is left untouched.
    #[error(
        "the checkpoint at {location} is unusable: {reason}. It was left untouched; fix or remove it, or run with --reset-checkpoint"
    )]
    Corrupt {
        /// Where it is.
        location: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<StateError> for RunError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Storage(e) => e.into(),
            StateError::Corrupt { location, reason } => Self::CorruptState { location, reason },
        }
    }
}

/// The stored state as read, before anything is written back.
struct Loaded {
    /// The checkpoint in force: the committed one, or a settled intent's.
    checkpoint: Option<String>,
    /// The Cloud Run recipe's `since`, when there is no checkpoint of ours.
    takeover: Option<Takeover>,
    /// An intent left by an interrupted run, and whether its object exists.
    settled: Option<(Pending<'static>, bool)>,
}

/// Reads the state at `checkpoints` and settles, in memory only, a write a
/// previous run left in flight: its checkpoint counts if its object exists.
async fn load(sink: &dyn Sink, checkpoints: &dyn CheckpointStore) -> Result<Loaded, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        location: checkpoints.checkpoint_location(),
        reason,
    };
    let Some(bytes) = checkpoints.load().await? else {
        let takeover = match checkpoints.recipe_state().await? {
            None => None,
            Some((from, bytes)) => {
                let since_ms =
                    recipe::parse_since(&bytes).map_err(|reason| StateError::Corrupt {
                        location: from.clone(),
                        reason: format!(
                            "the Cloud Run recipe's state cannot be taken over: {reason}"
                        ),
                    })?;
                Some(Takeover { from, since_ms })
            }
        };
        return Ok(Loaded {
            checkpoint: None,
            takeover,
            settled: None,
        });
    };
    let state = match StateFile::parse(&bytes) {
        Ok(state) => state,
        // STATE_KEY kept at the recipe's own state object: take it over in place.
        Err(reason) => {
            let since_ms = recipe::parse_since(&bytes).map_err(|_| corrupt(reason.to_string()))?;
            return Ok(Loaded {
                checkpoint: None,
                takeover: Some(Takeover {
                    from: checkpoints.checkpoint_location(),
                    since_ms,
                }),
                settled: None,
            });
        }
    };
    Ok(match state.pending {
        None => Loaded {
            checkpoint: state.checkpoint.map(Cow::into_owned),
            takeover: None,
            settled: None,
        },
        Some(pending) => {
            let written = sink.exists(&pending.object).await?;
            Loaded {
                checkpoint: if written {
                    Some(pending.checkpoint.clone().into_owned())
                } else {
                    state.checkpoint.map(Cow::into_owned)
                },
                takeover: None,
                settled: Some((pending, written)),
            }
        }
    })
}

/// The checkpoint in force at `checkpoints`, read without writing anything:
/// for commands that inspect the state while a run may hold it.
pub async fn committed_checkpoint(
    sink: &dyn Sink,
    checkpoints: &dyn CheckpointStore,
) -> Result<Option<String>, StateError> {
    Ok(load(sink, checkpoints).await?.checkpoint)
}

impl Pipeline {
    /// Loads the stored state and settles a write that a previous run left
    /// in flight: committed if its object exists, dropped otherwise.
    pub async fn open(
        sink: Arc<dyn Sink>,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> Result<Self, StateError> {
        let loaded = load(sink.as_ref(), checkpoints.as_ref()).await?;
        if let Some((pending, written)) = &loaded.settled {
            tracing::warn!(
                stage = "recovery",
                object = %pending.object,
                written,
                "settled a batch left in flight by an interrupted run: {}",
                if *written { "its object exists, so its checkpoint is now committed" }
                else { "its object was never written, so it will be read again" }
            );
            let cleaned = StateFile::settled(loaded.checkpoint.as_deref());
            checkpoints.save(&cleaned.to_bytes()).await?;
        }
        Ok(Self {
            sink,
            checkpoints,
            committed: loaded.checkpoint,
            stats: PipelineStats::default(),
            takeover: loaded.takeover,
            superseded: None,
        })
    }

    /// Commits `checkpoint` unless it is the one already committed.
    pub async fn save_checkpoint(&mut self, checkpoint: String) -> Result<(), SinkError> {
        if self.committed.as_ref() != Some(&checkpoint) {
            self.checkpoints
                .save(&StateFile::settled(Some(&checkpoint)).to_bytes())
                .await?;
            self.committed = Some(checkpoint);
        }
        Ok(())
    }

    /// Intent, object, commit: the order that makes a crash at any instant harmless.
    async fn store(
        &mut self,
        meta: &BatchMeta,
        lines: &[u8],
        checkpoint: String,
    ) -> Result<Written, String> {
        let name = self.sink.object_name(meta, lines);
        if let Some(object) = &name {
            let intent = StateFile::intent(self.committed.as_deref(), object, &checkpoint);
            self.checkpoints
                .save(&intent.to_bytes())
                .await
                .map_err(|e| self.failed("recording the write intent", e))?;
        }
        let written = self
            .sink
            .write(name.as_deref(), meta, lines)
            .await
            .map_err(|e| self.failed("writing the batch", e))?;
        self.save_checkpoint(checkpoint)
            .await
            .map_err(|e| self.failed("the batch was stored but its checkpoint was not", e))?;
        Ok(written)
    }

    /// Describes a storage failure for the component, keeping a lost
    /// compare-and-swap aside so the run can report it as such.
    fn failed(&mut self, what: &str, e: SinkError) -> String {
        let message = format!("{what}: {e}");
        if matches!(e, SinkError::Superseded(_)) {
            self.superseded = Some(e);
        }
        message
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("sink", &self.sink.location())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("policy", &self.policy)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

/// State of one component instance.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    policy: EgressPolicy,
    /// Memory and instance limits.
    pub limits: SandboxLimits,
    /// Events a batch may hold at most.
    max_batch_events: u32,
    /// Receives emitted batches.
    pub pipeline: Pipeline,
    stderr: MemoryOutputPipe,
}

impl HostState {
    /// A sandbox that grants no environment, arguments, files or sockets.
    pub fn new(
        policy: EgressPolicy,
        pipeline: Pipeline,
        max_memory_bytes: usize,
        max_batch_events: u32,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            policy,
            limits: SandboxLimits::new(max_memory_bytes),
            max_batch_events,
            pipeline,
            stderr,
        }
    }

    /// What the guest wrote to stderr (panic messages), lossily decoded.
    pub fn guest_stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_owned()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.policy,
        }
    }
}

impl types::Host for HostState {}

impl emit::Host for HostState {
    async fn emit(&mut self, batch: Batch) -> Result<(), EmitError> {
        check_batch(&batch, self.max_batch_events).map_err(EmitError::Rejected)?;
        let meta = BatchMeta {
            event_count: batch.event_count,
            first_event_ms: batch.first_event_ms,
            last_event_ms: batch.last_event_ms,
            window_start_ms: batch.window_start_ms,
            window_end_ms: batch.window_end_ms,
            collected_at: SystemTime::now(),
        };
        let written = self.pipeline.store(&meta, &batch.lines, batch.checkpoint).await.map_err(|e| {
            tracing::error!(stage = "sink", error_kind = "store_failed", error = %e, "batch not committed");
            EmitError::Unavailable(e)
        })?;
        let stats = &mut self.pipeline.stats;
        stats.events += u64::from(batch.event_count);
        let object = match written {
            Written::Created(name) => {
                stats.objects += 1;
                name
            }
            Written::AlreadyPresent(name) => {
                stats.already_present += 1;
                tracing::warn!(stage = "sink", object = %name, "batch was already stored; not written again");
                name
            }
            Written::Streamed => "stdout".into(),
        };
        tracing::info!(
            stage = "sink",
            object = %object,
            events = batch.event_count,
            first_event = %rfc3339_ms(batch.first_event_ms),
            last_event = %rfc3339_ms(batch.last_event_ms),
            "batch stored"
        );
        Ok(())
    }
}

/// The contract a batch must meet before it reaches storage: what lands in a
/// SIEM bucket is exactly `event_count` JSON objects, one per line.
fn check_batch(batch: &Batch, max_events: u32) -> Result<(), String> {
    if batch.event_count > max_events {
        return Err(format!(
            "batch of {} events exceeds BATCH_MAX_EVENTS ({max_events})",
            batch.event_count
        ));
    }
    if batch.lines.len() > MAX_BATCH_BYTES {
        return Err(format!(
            "batch of {} bytes exceeds the {MAX_BATCH_BYTES}-byte limit",
            batch.lines.len()
        ));
    }
    if batch.checkpoint.is_empty() || batch.checkpoint.len() > MAX_CHECKPOINT_BYTES {
        return Err(format!(
            "checkpoint of {} bytes is empty or over {MAX_CHECKPOINT_BYTES} bytes",
            batch.checkpoint.len()
        ));
    }
    if batch.event_count == 0 || batch.lines.last() != Some(&b'\n') {
        return Err("a batch needs at least one event and must end with a newline".into());
    }
    if batch.first_event_ms > batch.last_event_ms {
        return Err(format!(
            "first-event-ms {} is after last-event-ms {}",
            batch.first_event_ms, batch.last_event_ms
        ));
    }
    let mut lines = 0u32;
    for (i, line) in batch.lines[..batch.lines.len() - 1]
        .split(|&b| b == b'\n')
        .enumerate()
    {
        lines += 1;
        if line.first() != Some(&b'{')
            || serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err()
        {
            return Err(format!("line {} is not a JSON object", i + 1));
        }
    }
    if lines != batch.event_count {
        return Err(format!(
            "event-count is {} but the batch holds {lines} lines",
            batch.event_count
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lines: &str, count: u32) -> Batch {
        Batch {
            lines: lines.as_bytes().to_vec(),
            event_count: count,
            first_event_ms: 1,
            last_event_ms: 2,
            window_start_ms: 0,
            window_end_ms: 3,
            checkpoint: "{}".to_owned(),
        }
    }

    #[test]
    fn accepts_well_formed_batches() {
        check_batch(&batch("{\"a\":1}\n{\"b\":\"x\\ny\"}\n", 2), 2).unwrap();
    }

    #[test]
    fn rejects_each_contract_breach() {
        let cases = [
            (
                batch("{\"a\":1}\n", 2),
                "event-count is 2 but the batch holds 1 lines",
            ),
            (batch("{\"a\":1}", 1), "must end with a newline"),
            (
                batch(&"{}\n".repeat(6), 6),
                "batch of 6 events exceeds BATCH_MAX_EVENTS (5)",
            ),
            (batch("", 0), "at least one event"),
            (batch("{\"a\":1}\n[1]\n", 2), "line 2 is not a JSON object"),
            (batch("{\"a\":\n", 1), "line 1 is not a JSON object"),
            (
                Batch {
                    checkpoint: String::new(),
                    ..batch("{}\n", 1)
                },
                "checkpoint of 0 bytes",
            ),
            (
                Batch {
                    first_event_ms: 9,
                    ..batch("{}\n", 1)
                },
                "is after last-event-ms",
            ),
        ];
        for (b, expected) in cases {
            let err = check_batch(&b, 5).unwrap_err();
            assert!(err.contains(expected), "{err} / {expected}");
        }
    }
}
