//! Storage: where batches and the checkpoint go (a local directory, stdout,
//! a GCS bucket), the commit protocol that orders them ([`pipeline`]), the
//! intent journal, the GCS lease and the takeover of the Cloud Run recipe's
//! checkpoint. Every sink stores a batch as one immutable
//! object whose name derives from the batch, so re-writing the same batch is
//! recognised. A batch's quarantine (the events the component could not read,
//! as Harness sent them) is an object of its own beside the data, under
//! [`quarantine_prefix`], where a SIEM feed on the data prefix never reads it. Stores that keep objects also give access to them by name
//! ([`ObjectStore`]), which digests are created with and `verify` reads.
//! Nothing outside this module knows GCS exists.

mod error;
pub mod gcs;
pub mod journal;
pub mod lease;
mod local;
mod memory;
mod open;
pub mod pipeline;
pub mod recipe;
mod stdout;

use std::collections::BTreeMap;
use std::time::SystemTime;

pub use error::StorageError;
pub use gcs::GcsSink;
pub use local::LocalDirSink;
pub use memory::{Discard, MemoryCheckpoint};
pub use open::{Storage, open, probe};
pub use pipeline::{Pipeline, StoreError};
pub use stdout::StdoutSink;

use sha2::{Digest, Sha256};

use crate::time;

/// What an object holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// Events in the configured shape, under the data prefix.
    Batch,
    /// Events the component could not read or shape, as Harness sent them,
    /// under the quarantine prefix.
    Quarantine {
        /// Where each line's event sits (epoch ms), in order: its
        /// `timestamp`, or where its page placed it.
        at_ms: Vec<u64>,
        /// Events by reason.
        reasons: BTreeMap<&'static str, u64>,
    },
}

/// Facts about a batch that sinks put in names and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMeta {
    /// What the object holds.
    pub kind: ObjectKind,
    /// Lines in the batch.
    pub event_count: u32,
    /// First event's `timestamp` (epoch ms).
    pub first_event_ms: u64,
    /// Last event's `timestamp` (epoch ms).
    pub last_event_ms: u64,
    /// Query window start (epoch ms).
    pub window_start_ms: u64,
    /// Query window end (epoch ms).
    pub window_end_ms: u64,
    /// When the host received the batch.
    pub collected_at: SystemTime,
    /// SHA-256 of the lines, computed once for the name, the metadata and the digest.
    pub content_sha256: [u8; 32],
}

/// The SHA-256 of a batch's lines.
pub fn content_sha256(lines: &[u8]) -> [u8; 32] {
    Sha256::digest(lines).into()
}

/// The outcome of a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A new object was created.
    Created(String),
    /// An identical object already existed (a re-sent batch); nothing was written.
    AlreadyPresent(String),
    /// The batch was streamed; there is no object.
    Streamed,
}

/// What [`Sink::fence`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// The store has a single writer: nothing was done.
    NotNeeded,
    /// An empty object now stands at the name (placed now or before).
    Placed,
    /// The object was written after all, just before the fence.
    ObjectWritten,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Filesystem or stream I/O failed.
    #[error("{action} `{path}`: {source}. Fix: check that the location is writable and has space")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or stream.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An object with this name but other content exists.
    #[error("object `{0}` already exists with different content; refusing to overwrite it")]
    Conflict(String),
    /// Another instance replaced the checkpoint after this one read it.
    #[error(
        "another instance advanced the checkpoint at {0} after this run read it; this run stopped without \
         writing anything more (the other instance continues from its own checkpoint)"
    )]
    Superseded(String),
    /// No usable Google credentials were found.
    #[error("{0}")]
    Credentials(#[source] gcs::GcsError),
    /// A Google Cloud Storage call failed.
    #[error(transparent)]
    Gcs(#[from] gcs::GcsError),
}

/// Stores batches durably.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// The name the batch will be stored under, derived from the batch alone;
    /// `None` for a stream, which has no objects.
    fn object_name(&self, meta: &BatchMeta) -> Option<String>;

    /// Stores `lines` (NDJSON) under `name` and returns once they are durable.
    async fn write(
        &self,
        name: Option<&str>,
        meta: &BatchMeta,
        lines: &[u8],
    ) -> Result<Written, SinkError>;

    /// Whether an object of that name exists (a fence does not count).
    async fn exists(&self, name: &str) -> Result<bool, SinkError>;

    /// Stops the writer of an interrupted intent for `name`, whose object is
    /// absent, from ever creating it: that writer may only be stalled (a
    /// frozen VM, a lease that lapsed), and an object it wrote late would
    /// repeat events the batch's next reading stores again. A store with a
    /// single writer and no compare-and-swap (a local directory) needs no
    /// fence.
    async fn fence(&self, name: &str) -> Result<Fence, SinkError> {
        let _ = name;
        Ok(Fence::NotNeeded)
    }

    /// Where the data goes, for the summary line.
    fn location(&self) -> String;

    /// Where quarantines go, for the summary line; none for a store that
    /// keeps no objects.
    fn quarantine_location(&self) -> Option<String> {
        None
    }
}

/// Stores the checkpoint.
#[async_trait::async_trait]
pub trait CheckpointStore: Send + Sync {
    /// The stored checkpoint, if any.
    async fn load(&self) -> Result<Option<Vec<u8>>, SinkError>;
    /// Replaces the checkpoint atomically.
    async fn save(&self, checkpoint: &[u8]) -> Result<(), SinkError>;
    /// Moves the stored checkpoint aside (never deletes it); returns where it went.
    async fn set_aside(&self) -> Result<Option<String>, SinkError>;
    /// Where it lives, for messages.
    fn checkpoint_location(&self) -> String;
    /// The checkpoint of the Cloud Run recipe this collector replaces (its
    /// location and content), looked for when there is no checkpoint of ours.
    async fn recipe_state(&self) -> Result<Option<(String, Vec<u8>)>, SinkError> {
        Ok(None)
    }
    /// The store's objects by name, for digests beside the checkpoint; none
    /// for a store that keeps only a checkpoint (in memory).
    fn objects(&self) -> Option<&dyn ObjectStore> {
        None
    }
}

/// Objects by name, whatever they hold: digests are created with it, and
/// `verify` reads the store through it.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// Creates `name` holding `bytes` unless an object of that name exists,
    /// whose content is then returned instead: nothing is ever overwritten.
    async fn create(&self, name: &str, bytes: &[u8]) -> Result<Option<Vec<u8>>, SinkError>;
    /// An object's content (gzip undone), or `None` when it does not exist.
    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, SinkError>;
    /// Names of the objects under `prefix` (a folder, ending with `/`),
    /// sorted, leaving out the temporary files of writes in flight.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError>;
    /// How to name an object in messages.
    fn url(&self, name: &str) -> String;
}

/// The quarantine's prefix beside the data prefix `prefix`: a sibling
/// (`harness/audit-quarantine` beside `harness/audit`), so a SIEM feed on
/// the data prefix, whose path ends with `/`, never reads it.
pub fn quarantine_prefix(prefix: &str) -> String {
    format!("{prefix}-quarantine")
}

/// `<prefix>/YYYY/MM/DD/harness-audit-YYYYMMDD-HHMMSS-<hash>.jsonl`, the
/// recipe's layout, under the data prefix or, for a quarantine, under
/// [`quarantine_prefix`]. Date and time are those of the batch's first event
/// and the hash is of its content (`content_sha256`), so the name depends
/// only on the batch: the same events written again after a crash land on
/// the same name and are recognised.
pub fn object_name(prefix: &str, meta: &BatchMeta) -> String {
    let at = time::utc(meta.first_event_ms);
    let hash = hex::encode(&meta.content_sha256[..8]);
    let prefix = match meta.kind {
        ObjectKind::Batch => prefix.to_owned(),
        ObjectKind::Quarantine { .. } => quarantine_prefix(prefix),
    };
    format!(
        "{prefix}/{}/harness-audit-{}-{hash}.jsonl",
        at.format("%Y/%m/%d"),
        at.format("%Y%m%d-%H%M%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: ObjectKind, lines: &[u8]) -> BatchMeta {
        BatchMeta {
            kind,
            event_count: 1,
            first_event_ms: 1_749_564_191_482,
            last_event_ms: 1_749_564_191_482,
            window_start_ms: 0,
            window_end_ms: 1_749_564_191_482,
            collected_at: SystemTime::UNIX_EPOCH,
            content_sha256: content_sha256(lines),
        }
    }

    #[test]
    fn object_names_follow_the_recipe_layout_and_depend_on_content() {
        let a = object_name("harness/audit", &meta(ObjectKind::Batch, b"{\"a\":1}\n"));
        assert!(
            a.starts_with("harness/audit/2025/06/10/harness-audit-20250610-140311-"),
            "{a}"
        );
        assert!(
            a.ends_with(".jsonl")
                && a.len()
                    == "harness/audit/2025/06/10/harness-audit-20250610-140311-".len() + 16 + 6
        );
        assert_eq!(
            a,
            object_name("harness/audit", &meta(ObjectKind::Batch, b"{\"a\":1}\n"))
        );
        assert_ne!(
            a,
            object_name("harness/audit", &meta(ObjectKind::Batch, b"{\"a\":2}\n"))
        );
    }

    #[test]
    fn a_quarantine_lies_beside_the_data_and_outside_its_prefix() {
        let kind = ObjectKind::Quarantine {
            at_ms: vec![1_749_564_191_482],
            reasons: BTreeMap::from([("not-json", 1)]),
        };
        let q = object_name("harness/audit", &meta(kind, b"nul\n"));
        assert!(
            q.starts_with("harness/audit-quarantine/2025/06/10/harness-audit-20250610-140311-"),
            "{q}"
        );
        assert!(
            !q.starts_with("harness/audit/"),
            "a feed on the data prefix never reads it"
        );
    }
}
