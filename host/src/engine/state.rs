//! The per-instance store state: WASI with nothing granted, wasi:http behind
//! the egress policy, memory limits, and the pipeline that `emit` feeds.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::bindings::harness::audit::types as wit_types;
use crate::engine::bindings::harness::audit::{emit, types};
use crate::engine::bindings::{Batch, EmitError, Quarantine};
use crate::engine::limits::{PassGuard, SandboxLimits, Stopped};
use crate::engine::policy::EgressPolicy;
use crate::error::RunError;
use crate::evidence::digest::{ChainHead, chain_dir, digest_key, sequence_of, sha256_hex};
use crate::evidence::{Digest, EntryKind, ObjectEntry, SigningKey};
use crate::pause_points::{self, Step};
use crate::storage::journal::{Evidence, Pending, Stall, StateFile};
use crate::storage::recipe;
use crate::storage::{
    BatchMeta, CheckpointStore, Fence, ObjectKind, Sink, SinkError, Written, content_sha256,
};
use crate::time::{now_ms, rfc3339_ms};
use harness_audit_core::event::{Reason, line_time};

/// Largest batch accepted from a component.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Largest checkpoint accepted from a component.
pub const MAX_CHECKPOINT_BYTES: usize = 32 * 1024 * 1024;
/// How far past this host's clock an event may lie: the component reads the
/// same clock, so only a clock stepped back during a pass comes near it.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Guest stderr kept for error reports (panic messages).
const GUEST_STDERR_BYTES: usize = 64 * 1024;

/// Totals of what the pipeline stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Events stored in the configured shape.
    pub events: u64,
    /// New data objects created.
    pub objects: u64,
    /// Events stored in the quarantine, by reason.
    pub quarantined: BTreeMap<&'static str, u64>,
    /// New quarantine objects created.
    pub quarantine_objects: u64,
    /// Batches that were already stored (re-sent after a crash).
    pub already_present: u64,
    /// Digests written.
    pub digests: u64,
}

/// Objects committed since the last digest past which a digest is written
/// mid-pass: the state lists them and is rewritten twice per batch, so this
/// bounds its size on a long backfill.
pub const SEAL_EVERY_OBJECTS: usize = 50;

/// Where a pipeline's digests go and what signs them.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// The data prefix, recorded in each digest.
    pub prefix: String,
    /// The state whose chain it is.
    pub state_key: String,
    /// Signs each digest when set.
    pub signer: Option<Arc<SigningKey>>,
}

/// Where `emit` sends batches and checkpoints.
pub struct Pipeline {
    sink: Arc<dyn Sink>,
    checkpoints: Arc<dyn CheckpointStore>,
    /// Digests, for a store that keeps objects.
    chain: Option<ChainSpec>,
    /// The newest digest.
    head: ChainHead,
    /// Objects committed since it.
    unsealed: Vec<ObjectEntry>,
    /// The committed checkpoint (the component's JSON).
    pub committed: Option<String>,
    /// Totals so far.
    pub stats: PipelineStats,
    /// Set when no checkpoint of ours exists but the Cloud Run recipe's does:
    /// the first pass starts at its `since`.
    pub takeover: Option<Takeover>,
    /// Set when a write found the checkpoint advanced by another instance.
    pub superseded: Option<SinkError>,
    /// The stored state records a write intent that no settled save has cleared yet.
    intent_open: bool,
    /// A digest was written that the stored state does not record yet: the
    /// next save records it (until then, a restart adopts it).
    head_unrecorded: bool,
    /// The unusable answer earlier passes failed on, as the state recorded it.
    stall: Option<Stall>,
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
    /// The newest digest.
    head: ChainHead,
    /// Objects committed since it.
    unsealed: Vec<ObjectEntry>,
    /// The unusable answer earlier passes failed on.
    stall: Option<Stall>,
}

/// Reads the state at `checkpoints` and settles, in memory only, a write a
/// previous run left in flight: its checkpoint counts if its object exists.
async fn load(sink: &dyn Sink, checkpoints: &dyn CheckpointStore) -> Result<Loaded, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        location: checkpoints.checkpoint_location(),
        reason,
    };
    let fresh = |takeover| Loaded {
        checkpoint: None,
        takeover,
        settled: None,
        head: ChainHead::default(),
        unsealed: Vec::new(),
        stall: None,
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
        return Ok(fresh(takeover));
    };
    let state = match StateFile::parse(&bytes) {
        Ok(state) => state,
        // STATE_KEY kept at the recipe's own state object: take it over in place.
        Err(reason) => {
            let since_ms = recipe::parse_since(&bytes).map_err(|_| corrupt(reason.to_string()))?;
            return Ok(fresh(Some(Takeover {
                from: checkpoints.checkpoint_location(),
                since_ms,
            })));
        }
    };
    let head = state.chain.into_owned();
    let unsealed = state.unsealed.into_owned();
    let stall = state.stall;
    Ok(match state.pending {
        None => Loaded {
            checkpoint: state.checkpoint.map(Cow::into_owned),
            takeover: None,
            settled: None,
            head,
            unsealed,
            stall,
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
                head,
                unsealed,
                stall,
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

/// The entry of an object that a state of format 1 left in flight, which
/// recorded none: read back from the store.
async fn entry_of_written(
    checkpoints: &dyn CheckpointStore,
    pending: &Pending<'_>,
) -> Result<Option<ObjectEntry>, SinkError> {
    if let Some(entry) = &pending.entry {
        return Ok(Some(entry.clone().into_owned()));
    }
    let Some(objects) = checkpoints.objects() else {
        return Ok(None);
    };
    Ok(objects
        .read(&pending.object)
        .await?
        .map(|content| ObjectEntry {
            name: pending.object.clone().into_owned(),
            kind: EntryKind::Batch,
            sha256: sha256_hex(&content),
            bytes: content.len() as u64,
            events: u32::try_from(content.iter().filter(|b| **b == b'\n').count())
                .unwrap_or(u32::MAX),
            first_event: None,
            last_event: None,
            window_start: None,
            window_end: None,
            reasons: BTreeMap::new(),
            at_ms: Vec::new(),
        }))
}

impl Pipeline {
    /// Loads the stored state, settles a write that a previous run left in
    /// flight (committed if its object exists, dropped otherwise), and seals
    /// into a digest what an earlier pass committed but did not seal.
    pub async fn open(
        sink: Arc<dyn Sink>,
        checkpoints: Arc<dyn CheckpointStore>,
        chain: Option<ChainSpec>,
    ) -> Result<Self, StateError> {
        let mut loaded = load(sink.as_ref(), checkpoints.as_ref()).await?;
        let settled = loaded.settled.take();
        let mut pipeline = Self {
            sink,
            checkpoints,
            chain,
            head: loaded.head,
            unsealed: loaded.unsealed,
            committed: loaded.checkpoint,
            stats: PipelineStats::default(),
            takeover: loaded.takeover,
            superseded: None,
            intent_open: false,
            head_unrecorded: false,
            stall: loaded.stall,
        };
        pipeline.find_head().await?;
        if let Some((pending, written)) = settled {
            pipeline.settle(pending, written).await?;
        }
        pipeline.finish(None).await?;
        Ok(pipeline)
    }

    /// A state that records no digest may be new, or may have replaced one
    /// that did (lost, reset, or of format 1): the chain then continues from
    /// its newest digest, so its sequence has no gap and no name is reused.
    async fn find_head(&mut self) -> Result<(), SinkError> {
        let (Some(chain), Some(objects)) = (&self.chain, self.checkpoints.objects()) else {
            return Ok(());
        };
        if !self.head.is_empty() {
            return Ok(());
        }
        let newest = objects
            .list(&chain_dir(&chain.state_key))
            .await?
            .iter()
            .filter_map(|name| {
                let file = name.rsplit('/').next()?;
                Some((sequence_of(file)?, name.clone()))
            })
            .max();
        let Some((sequence, name)) = newest else {
            return Ok(());
        };
        let bytes = objects.read(&name).await?.unwrap_or_default();
        // The chain's first digest, written by a run killed before its state
        // recorded it: sealing adopts it.
        if Digest::parse(&bytes).is_ok_and(|d| self.continued_by(&d)) {
            return Ok(());
        }
        tracing::warn!(
            stage = "evidence",
            digest = %objects.url(&name),
            "the checkpoint records no digest but its chain has some: the chain continues from the newest"
        );
        self.head = ChainHead {
            sequence,
            sha256: Some(sha256_hex(&bytes)),
        };
        Ok(())
    }

    async fn settle(
        &mut self,
        pending: Pending<'static>,
        mut written: bool,
    ) -> Result<(), SinkError> {
        if !written {
            // The intent's writer may be stalled, not dead. Rewriting the
            // state first tells it so when it meets the fence; the fence
            // then keeps its object from landing after the batch is read
            // again, or finds that it landed just now.
            let claim = StateFile {
                pending: Some(pending.clone()),
                ..StateFile::settled(self.committed.as_deref(), self.evidence())
            };
            self.checkpoints.save(&claim.to_bytes()).await?;
            match self.sink.fence(&pending.object).await? {
                Fence::NotNeeded => {}
                Fence::Placed => self.unsealed.push(ObjectEntry::fence(&pending.object)),
                Fence::ObjectWritten => written = true,
            }
        }
        if written {
            self.committed = Some(pending.checkpoint.clone().into_owned());
            if let Some(entry) = entry_of_written(self.checkpoints.as_ref(), &pending).await? {
                self.unsealed.push(entry);
            }
        }
        tracing::warn!(
            stage = "recovery",
            object = %pending.object,
            written,
            "settled a batch left in flight by an interrupted run: {}",
            if written { "its object exists, so its checkpoint is now committed" }
            else { "its object was never written, so it will be read again" }
        );
        let cleaned = StateFile::settled(self.committed.as_deref(), self.evidence());
        self.checkpoints.save(&cleaned.to_bytes()).await
    }

    fn evidence(&self) -> Evidence<'_> {
        Evidence {
            head: &self.head,
            unsealed: &self.unsealed,
        }
    }

    /// Records that this pass failed on `answer` (a kind, a status and a
    /// request), counting the passes in a row that did: what the error then
    /// says. The state keeps the count until the next commit clears it.
    pub async fn stalled(&mut self, answer: String) -> Result<Stall, SinkError> {
        let stall = match self.stall.take() {
            Some(before) if before.answer == answer => Stall {
                passes: before.passes.saturating_add(1),
                ..before
            },
            _ => Stall {
                answer,
                passes: 1,
                since: rfc3339_ms(now_ms()),
            },
        };
        // A write in flight must keep its intent: leave the state to settle it.
        if !self.intent_open {
            let state = StateFile {
                stall: Some(stall.clone()),
                ..StateFile::settled(self.committed.as_deref(), self.evidence())
            };
            self.checkpoints.save(&state.to_bytes()).await?;
            self.head_unrecorded = false;
        }
        self.stall = Some(stall.clone());
        Ok(stall)
    }

    /// Commits `checkpoint`. The save is skipped only when nothing would
    /// change: the same checkpoint is committed and no intent is left open,
    /// so a batch that repeats the committed checkpoint still clears its intent.
    pub async fn save_checkpoint(&mut self, checkpoint: String) -> Result<(), SinkError> {
        self.commit(checkpoint, None).await
    }

    /// Commits `checkpoint` and, in the same write, lists `stored` for the next digest.
    async fn commit(
        &mut self,
        checkpoint: String,
        stored: Option<ObjectEntry>,
    ) -> Result<(), SinkError> {
        let listing = stored.is_some();
        if !listing
            && !self.intent_open
            && !self.head_unrecorded
            && self.stall.is_none()
            && self.committed.as_ref() == Some(&checkpoint)
        {
            return Ok(());
        }
        self.unsealed.extend(stored);
        let saved = self
            .checkpoints
            .save(&StateFile::settled(Some(&checkpoint), self.evidence()).to_bytes())
            .await;
        if let Err(e) = saved {
            if listing {
                self.unsealed.pop();
            }
            return Err(e);
        }
        self.committed = Some(checkpoint);
        self.intent_open = false;
        self.head_unrecorded = false;
        self.stall = None;
        Ok(())
    }

    /// Ends a pass, or the recovery that opens one: seals what was committed
    /// into a digest, and commits `checkpoint` (when given) in the write that
    /// records the digest as the chain's head.
    pub async fn finish(&mut self, checkpoint: Option<String>) -> Result<(), SinkError> {
        self.seal().await?;
        let checkpoint = checkpoint.or_else(|| {
            self.head_unrecorded
                .then(|| self.committed.clone())
                .flatten()
        });
        match checkpoint {
            Some(checkpoint) => self.commit(checkpoint, None).await,
            None => Ok(()),
        }
    }

    /// Whether `digest` is the chain's next and lists the first of the
    /// objects awaiting one: written by a run killed before its state
    /// recorded it, or by a stalled writer this one took over from.
    fn continued_by(&self, digest: &Digest) -> bool {
        let body = &digest.body;
        body.sequence == self.head.sequence + 1
            && body.previous == self.head.sha256
            && !body.objects.is_empty()
            && self.unsealed.starts_with(&body.objects)
    }

    /// Writes a digest of the objects committed since the last one, if any;
    /// the state records it with its next save, which a batch makes anyway.
    /// A digest found at its name is adopted if it continues the chain (see
    /// [`Self::continued_by`]), and refused otherwise.
    async fn seal(&mut self) -> Result<(), SinkError> {
        let (Some(chain), Some(objects)) = (&self.chain, self.checkpoints.objects()) else {
            return Ok(());
        };
        while !self.unsealed.is_empty() {
            let sequence = self.head.sequence + 1;
            let name = digest_key(&chain.state_key, sequence);
            let bytes = Digest::seal(
                &chain.prefix,
                sequence,
                self.head.sha256.as_deref(),
                &self.unsealed,
                chain.signer.as_deref(),
            );
            let (stored, listed) = match objects.create(&name, &bytes).await? {
                None => (bytes, self.unsealed.len()),
                Some(existing) => match Digest::parse(&existing) {
                    Ok(d) if self.continued_by(&d) => {
                        let listed = d.body.objects.len();
                        (existing, listed)
                    }
                    _ => return Err(SinkError::Conflict(objects.url(&name))),
                },
            };
            self.head = ChainHead {
                sequence,
                sha256: Some(sha256_hex(&stored)),
            };
            self.unsealed.drain(..listed);
            self.head_unrecorded = true;
            pause_points::reached(Step::AfterDigest);
            self.stats.digests += 1;
            tracing::info!(stage = "evidence", digest = %objects.url(&name), objects = listed, "digest written");
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
        let (kind, reasons, at_ms) = match &meta.kind {
            ObjectKind::Batch => (EntryKind::Batch, BTreeMap::new(), Vec::new()),
            ObjectKind::Quarantine { at_ms, reasons } => (
                EntryKind::Quarantine,
                reasons.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect(),
                at_ms.clone(),
            ),
        };
        let entry = self.sink.object_name(meta).map(|name| ObjectEntry {
            name,
            kind,
            sha256: hex::encode(meta.content_sha256),
            bytes: lines.len() as u64,
            events: meta.event_count,
            first_event: Some(rfc3339_ms(meta.first_event_ms)),
            last_event: Some(rfc3339_ms(meta.last_event_ms)),
            window_start: Some(rfc3339_ms(meta.window_start_ms)),
            window_end: Some(rfc3339_ms(meta.window_end_ms)),
            reasons,
            at_ms,
        });
        if let Some(entry) = &entry {
            let intent = StateFile::intent(
                self.committed.as_deref(),
                entry,
                &checkpoint,
                self.evidence(),
            );
            self.checkpoints
                .save(&intent.to_bytes())
                .await
                .map_err(|e| self.failed("recording the write intent", e))?;
            self.intent_open = true;
            pause_points::reached(Step::AfterIntent);
        }
        let written = self
            .sink
            .write(entry.as_ref().map(|e| e.name.as_str()), meta, lines)
            .await
            .map_err(|e| self.failed("writing the batch", e))?;
        pause_points::reached(Step::AfterObject);
        self.commit(checkpoint, entry)
            .await
            .map_err(|e| self.failed("the batch was stored but its checkpoint was not", e))?;
        pause_points::reached(Step::AfterCommit);
        if self.unsealed.len() >= SEAL_EVERY_OBJECTS {
            self.seal()
                .await
                .map_err(|e| self.failed("the batch was stored but its digest was not", e))?;
        }
        Ok(written)
    }

    /// Describes a storage failure for the component, keeping a lost
    /// compare-and-swap aside so the run can report it as such.
    pub fn failed(&mut self, what: &str, e: SinkError) -> String {
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
    /// Time, CPU and storage limits of the pass.
    pub guard: PassGuard,
    /// What every batch is checked against.
    rules: BatchRules,
    /// Receives emitted batches.
    pub pipeline: Pipeline,
    /// Why a batch was refused, kept so the pass fails with it even if the
    /// component ignores the refusal; nothing is committed after it.
    pub refused: Option<RunError>,
    stderr: MemoryOutputPipe,
}

impl HostState {
    /// A sandbox that grants no environment, arguments, files or sockets.
    pub fn new(
        policy: EgressPolicy,
        pipeline: Pipeline,
        max_memory_bytes: usize,
        rules: BatchRules,
        guard: PassGuard,
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
            guard,
            rules,
            pipeline,
            refused: None,
            stderr,
        }
    }

    /// What the guest wrote to stderr (panic messages), lossily decoded.
    pub fn guest_stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_owned()
    }

    /// Refuses the batch: the pass fails with `error` whatever the component does next.
    fn refuse(&mut self, error: RunError) -> EmitError {
        let message = error.to_string();
        self.refused.get_or_insert(error);
        EmitError::Rejected(message)
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
        if self.guard.stop_requested() {
            self.guard.stopped = Some(Stopped::Shutdown);
            return Err(EmitError::Unavailable(
                "the host is shutting down; this batch is read again by the next pass".into(),
            ));
        }
        if let Err(refusal) = check_batch(&batch, &self.rules, now_ms()) {
            return Err(self.refuse(RunError::breach(format!(
                "the host refused a batch: {refusal}"
            ))));
        }
        let quarantine = batch.quarantine.as_ref().map(QuarantineObject::of);
        let bytes = batch.lines.len() + quarantine.as_ref().map_or(0, |q| q.lines.len());
        if let Err(over) = self.guard.admit(bytes) {
            return Err(self.refuse(over));
        }
        let window = (batch.window_start_ms, batch.window_end_ms);
        // The quarantine first, with the checkpoint that records it alone:
        // a crash before the lines are durable reads them again, not it.
        if let (Some(q), Some(object)) = (&batch.quarantine, quarantine) {
            let meta = object.meta(window);
            let checkpoint = q.checkpoint.clone();
            let written = self.store(&meta, &object.lines, checkpoint).await?;
            self.quarantined(&object, q, written);
        }
        if batch.event_count == 0 {
            return self
                .pipeline
                .save_checkpoint(batch.checkpoint)
                .await
                .map_err(|e| unstored(self.pipeline.failed("committing the checkpoint", e)));
        }
        let meta = BatchMeta {
            kind: ObjectKind::Batch,
            content_sha256: content_sha256(&batch.lines),
            event_count: batch.event_count,
            first_event_ms: batch.first_event_ms,
            last_event_ms: batch.last_event_ms,
            window_start_ms: window.0,
            window_end_ms: window.1,
            collected_at: SystemTime::now(),
        };
        let written = self.store(&meta, &batch.lines, batch.checkpoint).await?;
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

impl HostState {
    /// Stores an object and commits `checkpoint` after it.
    async fn store(
        &mut self,
        meta: &BatchMeta,
        lines: &[u8],
        checkpoint: String,
    ) -> Result<Written, EmitError> {
        self.pipeline
            .store(meta, lines, checkpoint)
            .await
            .map_err(unstored)
    }

    /// Counts a stored quarantine and says where it went and why, once per reason.
    fn quarantined(&mut self, object: &QuarantineObject, q: &Quarantine, written: Written) {
        let stats = &mut self.pipeline.stats;
        let name = match written {
            Written::Created(name) => {
                stats.quarantine_objects += 1;
                name
            }
            Written::AlreadyPresent(name) => {
                stats.already_present += 1;
                name
            }
            Written::Streamed => unreachable!("a quarantine is always an object"),
        };
        for (reason, count) in &object.reasons {
            *stats.quarantined.entry(reason).or_default() += count;
            let detail = q
                .events
                .iter()
                .find(|e| quarantine_reason(e.reason).name() == *reason)
                .map_or("", |e| e.detail.as_str());
            tracing::warn!(
                stage = "quarantine",
                object = %name,
                reason = *reason,
                events = count,
                detail,
                "events the component could not read or shape were kept byte for byte in the quarantine, \
                 beside the data (the first one's problem is in `detail`)"
            );
        }
    }
}

/// A storage failure, logged, as the component receives it.
fn unstored(error: String) -> EmitError {
    tracing::error!(stage = "sink", error_kind = "store_failed", error = %error, "batch not committed");
    EmitError::Unavailable(error)
}

/// A quarantine's object: its lines (each event as Harness sent it, one a
/// line), where each sits, and its events by reason.
struct QuarantineObject {
    lines: Vec<u8>,
    at_ms: Vec<u64>,
    reasons: BTreeMap<&'static str, u64>,
}

impl QuarantineObject {
    fn of(q: &Quarantine) -> Self {
        let mut lines = Vec::with_capacity(q.events.iter().map(|e| e.bytes.len() + 1).sum());
        let mut reasons = BTreeMap::new();
        for event in &q.events {
            lines.extend_from_slice(&event.bytes);
            lines.push(b'\n');
            *reasons
                .entry(quarantine_reason(event.reason).name())
                .or_default() += 1;
        }
        Self {
            lines,
            at_ms: q.events.iter().map(|e| e.at_ms).collect(),
            reasons,
        }
    }

    fn meta(&self, (window_start_ms, window_end_ms): (u64, u64)) -> BatchMeta {
        let first = self.at_ms.iter().min().copied().unwrap_or(window_start_ms);
        let last = self.at_ms.iter().max().copied().unwrap_or(window_start_ms);
        BatchMeta {
            kind: ObjectKind::Quarantine {
                at_ms: self.at_ms.clone(),
                reasons: self.reasons.clone(),
            },
            content_sha256: content_sha256(&self.lines),
            event_count: u32::try_from(self.at_ms.len()).expect("checked against BATCH_MAX_EVENTS"),
            first_event_ms: first,
            last_event_ms: last,
            window_start_ms,
            window_end_ms,
            collected_at: SystemTime::now(),
        }
    }
}

/// The core's reason for a WIT quarantine reason.
pub fn quarantine_reason(reason: wit_types::QuarantineReason) -> Reason {
    harness_audit_core::reason_from_wit!(wit_types, reason)
}

/// What the host checks every batch against before anything is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRules {
    /// Events a batch may hold at most (`BATCH_MAX_EVENTS`).
    pub max_events: u32,
    /// The top-level field holding each event's time in epoch ms: `timestamp`,
    /// or `auditEventTime` in the streaming shape.
    pub time_field: &'static str,
    /// First millisecond the pass may read: a backfill's `--from`, 0 otherwise.
    pub pass_from_ms: u64,
    /// Last millisecond the pass may read: a backfill's `--to`; otherwise now
    /// plus [`MAX_CLOCK_SKEW_MS`].
    pub pass_to_ms: Option<u64>,
}

/// Why the host refused a batch. Each names the rule it broke; resending the
/// batch unchanged fails again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchRefusal {
    /// More events than `BATCH_MAX_EVENTS`.
    #[error("rule `max-events`: the batch holds {count} events, over BATCH_MAX_EVENTS ({max})")]
    TooManyEvents {
        /// Its event count.
        count: u32,
        /// The setting's value.
        max: u32,
    },
    /// Over the byte limit.
    #[error("rule `max-bytes`: the batch is {bytes} bytes, over the {MAX_BATCH_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// An empty or oversized checkpoint.
    #[error(
        "rule `checkpoint`: the checkpoint is {bytes} bytes; it must hold 1 to {MAX_CHECKPOINT_BYTES}"
    )]
    Checkpoint {
        /// Its size.
        bytes: usize,
    },
    /// No event at all, lines without their last newline, or lines with an
    /// `event-count` of 0.
    #[error(
        "rule `ndjson`: a batch holds at least one line or quarantined event, and its lines end with a newline"
    )]
    NotNdjson,
    /// A quarantined event that is empty or spans lines.
    #[error("rule `quarantine`: quarantined event {event} {problem}")]
    Quarantine {
        /// 1-based.
        event: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Bytes that are not UTF-8, strings included.
    #[error("rule `utf-8`: line {line} is not valid UTF-8")]
    NotUtf8 {
        /// 1-based.
        line: usize,
    },
    /// A line that is not one JSON object, or whose time is not a time.
    #[error("rule `json-object`: line {line} is not one JSON object with a time ({detail})")]
    NotJsonObject {
        /// 1-based.
        line: usize,
        /// The parser's words.
        detail: String,
    },
    /// `event-count` differs from the lines.
    #[error("rule `event-count`: event-count is {count} but the batch holds {lines} lines")]
    CountMismatch {
        /// What the batch says.
        count: u32,
        /// What it holds.
        lines: u32,
    },
    /// `first-event-ms` after `last-event-ms`, or a window that ends before it starts.
    #[error("rule `ordered`: {what} {start} is after {end}")]
    Inverted {
        /// Which pair.
        what: &'static str,
        /// The start.
        start: u64,
        /// The end.
        end: u64,
    },
    /// An event without its time.
    #[error("rule `event-time`: line {line} has no top-level `{field}`")]
    TimeMissing {
        /// 1-based.
        line: usize,
        /// The field looked for.
        field: &'static str,
    },
    /// An event outside `[first-event-ms, last-event-ms]`.
    #[error(
        "rule `event-time`: {what} {line} is at {at}, outside first-event-ms..last-event-ms {first}..{last}"
    )]
    EventOutsideBatch {
        /// `line`, or `quarantined event`.
        what: &'static str,
        /// 1-based.
        line: usize,
        /// Its time.
        at: u64,
        /// `first-event-ms`.
        first: u64,
        /// `last-event-ms`.
        last: u64,
    },
    /// Events outside the batch's own window.
    #[error(
        "rule `batch-window`: events {first}..{last} lie outside the batch's window {start}..{end}"
    )]
    OutsideBatchWindow {
        /// `first-event-ms`.
        first: u64,
        /// `last-event-ms`.
        last: u64,
        /// `window-start-ms`.
        start: u64,
        /// `window-end-ms`.
        end: u64,
    },
    /// A batch window outside the pass's window.
    #[error(
        "rule `pass-window`: the batch's window {start}..{end} lies outside the pass's window {from}..{to}"
    )]
    OutsidePassWindow {
        /// `window-start-ms`.
        start: u64,
        /// `window-end-ms`.
        end: u64,
        /// The pass's first millisecond.
        from: u64,
        /// The pass's last millisecond.
        to: u64,
    },
    /// Something later than now plus the allowed clock skew.
    #[error(
        "rule `not-future`: the batch's window ends at {end}, later than now ({now}) plus the {MAX_CLOCK_SKEW_MS} ms clock skew allowed"
    )]
    Future {
        /// `window-end-ms`.
        end: u64,
        /// This host's clock.
        now: u64,
    },
}

/// The contract a batch must meet before it reaches storage: what lands in a
/// SIEM bucket is exactly `event-count` JSON objects, one per line, each at a
/// time the batch and the pass could have read.
pub fn check_batch(batch: &Batch, rules: &BatchRules, now_ms: u64) -> Result<(), BatchRefusal> {
    let quarantined = batch.quarantine.as_ref().map_or(&[][..], |q| &q.events[..]);
    for count in [
        batch.event_count,
        u32::try_from(quarantined.len()).unwrap_or(u32::MAX),
    ] {
        if count > rules.max_events {
            return Err(BatchRefusal::TooManyEvents {
                count,
                max: rules.max_events,
            });
        }
    }
    let bytes = batch.lines.len() + quarantined.iter().map(|e| e.bytes.len() + 1).sum::<usize>();
    if bytes > MAX_BATCH_BYTES {
        return Err(BatchRefusal::TooLarge { bytes });
    }
    let checkpoints =
        std::iter::once(&batch.checkpoint).chain(batch.quarantine.as_ref().map(|q| &q.checkpoint));
    for checkpoint in checkpoints {
        if checkpoint.is_empty() || checkpoint.len() > MAX_CHECKPOINT_BYTES {
            return Err(BatchRefusal::Checkpoint {
                bytes: checkpoint.len(),
            });
        }
    }
    let lines_whole = match batch.event_count {
        0 => batch.lines.is_empty() && !quarantined.is_empty(),
        _ => batch.lines.last() == Some(&b'\n'),
    };
    if !lines_whole {
        return Err(BatchRefusal::NotNdjson);
    }
    for (i, event) in quarantined.iter().enumerate() {
        let problem = if event.bytes.is_empty() {
            "is empty"
        } else if event.bytes.iter().any(|b| *b == b'\n' || *b == b'\r') {
            "holds a line break"
        } else {
            continue;
        };
        return Err(BatchRefusal::Quarantine {
            event: i + 1,
            problem,
        });
    }
    let (first, last) = (batch.first_event_ms, batch.last_event_ms);
    let (start, end) = (batch.window_start_ms, batch.window_end_ms);
    for (what, a, b) in [
        ("first-event-ms", first, last),
        ("window-start-ms", start, end),
    ] {
        if a > b {
            return Err(BatchRefusal::Inverted {
                what,
                start: a,
                end: b,
            });
        }
    }
    if first < start || last > end {
        return Err(BatchRefusal::OutsideBatchWindow {
            first,
            last,
            start,
            end,
        });
    }
    let latest = now_ms.saturating_add(MAX_CLOCK_SKEW_MS);
    if end > latest {
        return Err(BatchRefusal::Future { end, now: now_ms });
    }
    let to = rules.pass_to_ms.unwrap_or(latest);
    if start < rules.pass_from_ms || end > to {
        return Err(BatchRefusal::OutsidePassWindow {
            start,
            end,
            from: rules.pass_from_ms,
            to,
        });
    }
    for (i, event) in quarantined.iter().enumerate() {
        if event.at_ms < first || event.at_ms > last {
            return Err(BatchRefusal::EventOutsideBatch {
                what: "quarantined event",
                line: i + 1,
                at: event.at_ms,
                first,
                last,
            });
        }
    }
    if batch.event_count == 0 {
        return Ok(());
    }
    let text = std::str::from_utf8(&batch.lines).map_err(|e| BatchRefusal::NotUtf8 {
        line: 1 + batch.lines[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    let mut lines = 0u32;
    for (i, line) in text[..text.len() - 1].split('\n').enumerate() {
        lines += 1;
        let line_no = i + 1;
        let at =
            line_time(line, rules.time_field).map_err(|detail| BatchRefusal::NotJsonObject {
                line: line_no,
                detail,
            })?;
        let at = at.ok_or(BatchRefusal::TimeMissing {
            line: line_no,
            field: rules.time_field,
        })?;
        if at < first || at > last {
            return Err(BatchRefusal::EventOutsideBatch {
                what: "line",
                line: line_no,
                at,
                first,
                last,
            });
        }
    }
    if lines != batch.event_count {
        return Err(BatchRefusal::CountMismatch {
            count: batch.event_count,
            lines,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn rules() -> BatchRules {
        BatchRules {
            max_events: 5,
            time_field: "timestamp",
            pass_from_ms: 0,
            pass_to_ms: None,
        }
    }

    /// Two events at 100 and 200, read from the window 50..=250.
    fn valid() -> Batch {
        Batch {
            lines: b"{\"timestamp\":100,\"s\":\"\xc3\xa9\\n\"}\n{\"x\":[1,{}],\"timestamp\":200}\n"
                .to_vec(),
            event_count: 2,
            first_event_ms: 100,
            last_event_ms: 200,
            window_start_ms: 50,
            window_end_ms: 250,
            checkpoint: "{}".to_owned(),
            quarantine: None,
        }
    }

    fn lines(lines: &[&[u8]]) -> Batch {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        Batch {
            lines: bytes,
            event_count: u32::try_from(lines.len()).unwrap(),
            ..valid()
        }
    }

    fn rule_of(batch: &Batch, rules: &BatchRules, now: u64) -> Option<String> {
        check_batch(batch, rules, now).err().map(|e| {
            let text = e.to_string();
            text["rule `".len()..text.find("`:").unwrap()].to_owned()
        })
    }

    /// Each rule from both sides: the batch just inside it is stored, the one
    /// just outside is refused, and the refusal names the rule.
    #[test]
    fn each_batch_rule_accepts_just_valid_and_refuses_just_invalid() {
        let backfill = |from, to| BatchRules {
            pass_from_ms: from,
            pass_to_ms: Some(to),
            ..rules()
        };
        let future = NOW + MAX_CLOCK_SKEW_MS;
        let cases: Vec<(&str, Batch, BatchRules, u64, Batch, BatchRules, u64)> = vec![
            (
                "max-events",
                lines(&[&b"{\"timestamp\":100}"[..]; 5]),
                rules(),
                NOW,
                lines(&[&b"{\"timestamp\":100}"[..]; 6]),
                rules(),
                NOW,
            ),
            (
                "utf-8",
                lines(&[b"{\"timestamp\":100,\"s\":\"\xf4\x8f\xbf\xbf\"}"]),
                rules(),
                NOW,
                lines(&[
                    b"{\"timestamp\":100}",
                    b"{\"timestamp\":100,\"s\":\"\xf4\x90\x80\x80\"}",
                ]),
                rules(),
                NOW,
            ),
            (
                "json-object",
                lines(&[b" {\"timestamp\":100} "]),
                rules(),
                NOW,
                lines(&[b"{\"timestamp\":100} {}"]),
                rules(),
                NOW,
            ),
            (
                "json-object",
                lines(&[b"{\"timestamp\":100}"]),
                rules(),
                NOW,
                lines(&[b"[{\"timestamp\":100}]"]),
                rules(),
                NOW,
            ),
            (
                "event-count",
                valid(),
                rules(),
                NOW,
                Batch {
                    event_count: 3,
                    ..valid()
                },
                rules(),
                NOW,
            ),
            (
                "ordered",
                Batch {
                    first_event_ms: 200,
                    ..lines(&[b"{\"timestamp\":200}"])
                },
                rules(),
                NOW,
                Batch {
                    first_event_ms: 201,
                    ..lines(&[b"{\"timestamp\":200}"])
                },
                rules(),
                NOW,
            ),
            (
                "batch-window",
                Batch {
                    window_start_ms: 100,
                    window_end_ms: 200,
                    ..valid()
                },
                rules(),
                NOW,
                Batch {
                    window_start_ms: 101,
                    ..valid()
                },
                rules(),
                NOW,
            ),
            (
                "event-time",
                lines(&[b"{\"timestamp\":100}", b"{\"timestamp\":200}"]),
                rules(),
                NOW,
                lines(&[b"{\"timestamp\":100}", b"{\"timestamp\":201}"]),
                rules(),
                NOW,
            ),
            (
                "event-time",
                lines(&[b"{\"timestamp\":100}"]),
                rules(),
                NOW,
                lines(&[b"{\"auditEventTime\":100}"]),
                rules(),
                NOW,
            ),
            (
                "pass-window",
                valid(),
                backfill(50, 250),
                NOW,
                valid(),
                backfill(51, 250),
                NOW,
            ),
            (
                "pass-window",
                valid(),
                backfill(50, 250),
                NOW,
                valid(),
                backfill(50, 249),
                NOW,
            ),
            (
                "not-future",
                Batch {
                    window_end_ms: future,
                    ..valid()
                },
                rules(),
                NOW,
                Batch {
                    window_end_ms: future + 1,
                    ..valid()
                },
                rules(),
                NOW,
            ),
            (
                "checkpoint",
                valid(),
                rules(),
                NOW,
                Batch {
                    checkpoint: String::new(),
                    ..valid()
                },
                rules(),
                NOW,
            ),
            (
                "ndjson",
                valid(),
                rules(),
                NOW,
                Batch {
                    lines: b"{\"timestamp\":100}".to_vec(),
                    event_count: 1,
                    ..valid()
                },
                rules(),
                NOW,
            ),
        ];
        for (rule, good, good_rules, good_now, bad, bad_rules, bad_now) in cases {
            assert_eq!(
                rule_of(&good, &good_rules, good_now),
                None,
                "{rule}: the valid side"
            );
            assert_eq!(
                rule_of(&bad, &bad_rules, bad_now).as_deref(),
                Some(rule),
                "{rule}: the invalid side"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_line_and_the_streaming_shape_s_time_field() {
        let streaming = BatchRules {
            time_field: "auditEventTime",
            ..rules()
        };
        let batch = lines(&[b"{\"auditEventTime\":100}", b"{\"timestamp\":100}"]);
        assert_eq!(
            check_batch(&batch, &streaming, NOW)
                .unwrap_err()
                .to_string(),
            "rule `event-time`: line 2 has no top-level `auditEventTime`"
        );
        let bad = lines(&[
            b"{\"timestamp\":100}",
            b"{\"timestamp\":100,\"s\":\"\xff\"}",
        ]);
        assert_eq!(
            check_batch(&bad, &rules(), NOW).unwrap_err(),
            BatchRefusal::NotUtf8 { line: 2 }
        );
        let twice = lines(&[b"{\"timestamp\":100,\"timestamp\":9}"]);
        assert_eq!(
            rule_of(&twice, &rules(), NOW).as_deref(),
            Some("json-object")
        );
        check_batch(&valid(), &rules(), NOW).unwrap();
    }

    fn meta(first_event_ms: u64, lines: &[u8]) -> BatchMeta {
        BatchMeta {
            kind: ObjectKind::Batch,
            content_sha256: content_sha256(lines),
            event_count: 1,
            first_event_ms,
            last_event_ms: first_event_ms,
            window_start_ms: 0,
            window_end_ms: first_event_ms,
            collected_at: SystemTime::now(),
        }
    }

    /// Two batches in a row carrying one checkpoint (a component may resend
    /// its resume state unchanged) must leave no write intent behind.
    #[tokio::test]
    async fn a_batch_that_repeats_the_committed_checkpoint_clears_its_intent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::storage::LocalDirSink::new(
            dir.path(),
            "audit",
            "state.json",
        ));
        let mut pipeline = Pipeline::open(store.clone(), store.clone(), None)
            .await
            .unwrap();
        for (at, line) in [(1_000, "{\"a\":1}\n"), (2_000, "{\"b\":2}\n")] {
            pipeline
                .store(
                    &meta(at, line.as_bytes()),
                    line.as_bytes(),
                    "{\"same\":1}".to_owned(),
                )
                .await
                .unwrap();
        }
        let saved = store.load().await.unwrap().unwrap();
        let state = StateFile::parse(&saved).unwrap();
        assert_eq!(state.pending, None, "{}", String::from_utf8_lossy(&saved));
        assert_eq!(state.checkpoint.as_deref(), Some("{\"same\":1}"));
    }

    fn chain() -> ChainSpec {
        ChainSpec {
            prefix: "audit".into(),
            state_key: "st/state.json".into(),
            signer: None,
        }
    }

    /// A local store in `dir` and a pipeline on it that keeps digests.
    async fn open_chained(dir: &std::path::Path) -> (Arc<crate::storage::LocalDirSink>, Pipeline) {
        let store = Arc::new(crate::storage::LocalDirSink::new(
            dir,
            "audit",
            "st/state.json",
        ));
        let pipeline = Pipeline::open(store.clone(), store.clone(), Some(chain()))
            .await
            .unwrap();
        (store, pipeline)
    }

    /// Stores batch `n` of one line.
    async fn store_batch(pipeline: &mut Pipeline, n: u64) {
        let line = format!("{{\"n\":{n}}}\n");
        pipeline
            .store(
                &meta(1_000 * n, line.as_bytes()),
                line.as_bytes(),
                format!("{{\"v\":{n}}}"),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn every_committed_object_reaches_a_digest_once_and_a_rewritten_digest_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut pipeline) = open_chained(dir.path()).await;
        for n in 1..=3 {
            store_batch(&mut pipeline, n).await;
        }
        let state = StateFile::parse(&store.load().await.unwrap().unwrap()).unwrap();
        assert_eq!(
            state.unsealed.len(),
            3,
            "committed objects await their digest in the state"
        );
        pipeline.finish(None).await.unwrap();
        let first = std::fs::read(dir.path().join(digest_key("st/state.json", 1))).unwrap();
        let digest = Digest::parse(&first).unwrap();
        assert_eq!(digest.body.objects.len(), 3);
        assert_eq!(digest.body.previous, None);
        let state = StateFile::parse(&store.load().await.unwrap().unwrap()).unwrap();
        assert!(state.unsealed.is_empty());
        assert_eq!(
            state.chain.sha256.as_deref(),
            Some(sha256_hex(&first).as_str())
        );

        // A crash after the second digest was written but before the state
        // recorded it: the next open writes the same bytes and adopts them.
        store_batch(&mut pipeline, 4).await;
        let unsealed = pipeline.unsealed.clone();
        let second = Digest::seal("audit", 2, Some(&sha256_hex(&first)), &unsealed[..1], None);
        let second_path = dir.path().join(digest_key("st/state.json", 2));
        std::fs::write(&second_path, &second).unwrap();
        drop(pipeline);
        let mut reopened = Pipeline::open(store.clone(), store.clone(), Some(chain()))
            .await
            .unwrap();
        assert_eq!(reopened.head.sequence, 2);
        assert_eq!(reopened.head.sha256, Some(sha256_hex(&second)));
        assert!(reopened.unsealed.is_empty());
        assert_eq!(
            std::fs::read(&second_path).unwrap(),
            second,
            "adopted, not rewritten"
        );

        // A digest at the next name that does not continue this chain is refused.
        store_batch(&mut reopened, 5).await;
        std::fs::write(dir.path().join(digest_key("st/state.json", 3)), b"{}\n").unwrap();
        assert!(matches!(
            reopened.finish(None).await,
            Err(SinkError::Conflict(_))
        ));

        // Past SEAL_EVERY_OBJECTS, a digest is written mid-pass.
        let dir = tempfile::tempdir().unwrap();
        let (_, mut pipeline) = open_chained(dir.path()).await;
        for n in 1..=SEAL_EVERY_OBJECTS as u64 + 1 {
            store_batch(&mut pipeline, n).await;
        }
        assert_eq!(pipeline.head.sequence, 1);
        assert_eq!(pipeline.unsealed.len(), 1);
    }
}
