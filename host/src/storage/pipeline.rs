//! The commit protocol: a batch's object and the checkpoint that covers it
//! reach storage in an order that makes a crash at any instant harmless
//! (intent, object, commit), and what was committed is sealed into chained
//! digests. [`Pipeline`] is its one door; [`StoreError`] says which step
//! failed and keeps the store's error.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::evidence::digest::{ChainHead, chain_dir, digest_key, sequence_of, sha256_hex};
use crate::evidence::{Digest, EntryKind, ObjectEntry, SigningKey};
use crate::pause_points::{self, Step};
use crate::storage::journal::{Evidence, Pending, Stall, StateFile};
use crate::storage::recipe;
use crate::storage::{
    BatchMeta, CheckpointStore, Fence, ObjectKind, Sink, SinkError, StorageError, Written,
};
use crate::time::{now_ms, rfc3339_ms};

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

/// The step of the commit protocol at which a store failed, which says what
/// was durable when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStep {
    /// Recording the write intent: nothing of the batch was written.
    Intent,
    /// Writing the object: its intent stands, and the next open settles it.
    Object,
    /// Committing the checkpoint after the object was stored.
    Commit,
    /// Sealing committed objects into a digest: they and their checkpoint stand.
    Seal,
    /// Committing a checkpoint that came without events.
    Checkpoint,
}

impl std::fmt::Display for StoreStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Intent => "recording the write intent",
            Self::Object => "writing the batch",
            Self::Commit => "the batch was stored but its checkpoint was not",
            Self::Seal => "the batch was stored but its digest was not",
            Self::Checkpoint => "committing the checkpoint",
        })
    }
}

/// A batch or checkpoint that did not reach storage: at which step, and the store's error.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct StoreError {
    /// Where the protocol stopped.
    pub step: StoreStep,
    /// What the store said.
    pub source: SinkError,
}

impl StoreError {
    /// Another instance advanced the checkpoint since this one read it: this
    /// one must stop, and the other carries on.
    pub fn is_superseded(&self) -> bool {
        matches!(self.source, SinkError::Superseded(_))
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
async fn load(sink: &dyn Sink, checkpoints: &dyn CheckpointStore) -> Result<Loaded, StorageError> {
    let corrupt = |reason: String| StorageError::CorruptState {
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
                    recipe::parse_since(&bytes).map_err(|reason| StorageError::CorruptState {
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
) -> Result<Option<String>, StorageError> {
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
        .map(|content| ObjectEntry::of_content(&pending.object, EntryKind::Batch, &content)))
}

impl Pipeline {
    /// Loads the stored state, settles a write that a previous run left in
    /// flight (committed if its object exists, dropped otherwise), and seals
    /// into a digest what an earlier pass committed but did not seal.
    pub async fn open(
        sink: Arc<dyn Sink>,
        checkpoints: Arc<dyn CheckpointStore>,
        chain: Option<ChainSpec>,
    ) -> Result<Self, StorageError> {
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
    pub async fn save_checkpoint(&mut self, checkpoint: String) -> Result<(), StoreError> {
        self.commit(checkpoint, None)
            .await
            .map_err(|source| StoreError {
                step: StoreStep::Checkpoint,
                source,
            })
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

    /// Stores `lines` as one object and commits `checkpoint` after it:
    /// intent, object, commit, the order that makes a crash at any instant harmless.
    pub async fn store(
        &mut self,
        meta: &BatchMeta,
        lines: &[u8],
        checkpoint: String,
    ) -> Result<Written, StoreError> {
        let failed = |step| move |source| StoreError { step, source };
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
                .map_err(failed(StoreStep::Intent))?;
            self.intent_open = true;
            pause_points::reached(Step::AfterIntent);
        }
        let written = self
            .sink
            .write(entry.as_ref().map(|e| e.name.as_str()), meta, lines)
            .await
            .map_err(failed(StoreStep::Object))?;
        pause_points::reached(Step::AfterObject);
        self.commit(checkpoint, entry)
            .await
            .map_err(failed(StoreStep::Commit))?;
        pause_points::reached(Step::AfterCommit);
        if self.unsealed.len() >= SEAL_EVERY_OBJECTS {
            self.seal().await.map_err(failed(StoreStep::Seal))?;
        }
        Ok(written)
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

#[cfg(test)]
mod tests;
