//! Where batches go. Every sink stores a batch as one immutable object whose
//! name derives from the batch, so re-writing the same batch is recognised.

mod gcs;
mod local;
mod memory;
mod stdout;

use std::time::SystemTime;

pub use gcs::GcsSink;
pub use local::LocalDirSink;
pub use memory::{Discard, MemoryCheckpoint};
pub use stdout::StdoutSink;

use sha2::{Digest, Sha256};

/// Facts about a batch that sinks put in names and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMeta {
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
    /// A Google Cloud Storage call failed.
    #[error(transparent)]
    Gcs(#[from] crate::gcs::GcsError),
}

/// Stores batches durably.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// The name the batch will be stored under, derived from the batch alone;
    /// `None` for a stream, which has no objects.
    fn object_name(&self, meta: &BatchMeta, lines: &[u8]) -> Option<String>;

    /// Stores `lines` (NDJSON) under `name` and returns once they are durable.
    async fn write(
        &self,
        name: Option<&str>,
        meta: &BatchMeta,
        lines: &[u8],
    ) -> Result<Written, SinkError>;

    /// Whether an object of that name exists.
    async fn exists(&self, name: &str) -> Result<bool, SinkError>;

    /// Where the data goes, for the summary line.
    fn location(&self) -> String;
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
}

/// `<prefix>/YYYY/MM/DD/harness-audit-YYYYMMDD-HHMMSS-<hash>.jsonl`, the
/// recipe's layout. Date and time are those of the batch's first event and the
/// hash is of its content, so the name depends only on the batch: the same
/// events written again after a crash land on the same name and are recognised.
pub fn object_name(prefix: &str, first_event_ms: u64, lines: &[u8]) -> String {
    let (y, mo, d, h, mi, s) = utc(first_event_ms / 1000);
    let digest = Sha256::digest(lines);
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{prefix}/{y:04}/{mo:02}/{d:02}/harness-audit-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{hash}.jsonl"
    )
}

/// Civil UTC date and time of a Unix timestamp (proleptic Gregorian).
pub fn utc(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = i64::try_from(secs / 86_400).expect("u64 seconds / 86400 fits in i64");
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// The wall clock in epoch milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// RFC 3339 UTC with milliseconds, for logs and summaries.
pub fn rfc3339_ms(epoch_ms: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(epoch_ms / 1000);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        epoch_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_matches_known_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc(1_749_564_191), (2025, 6, 10, 14, 3, 11));
        assert_eq!(utc(4_102_444_799), (2099, 12, 31, 23, 59, 59));
        assert_eq!(rfc3339_ms(1_749_564_191_482), "2025-06-10T14:03:11.482Z");
    }

    #[test]
    fn object_names_follow_the_recipe_layout_and_depend_on_content() {
        let at = 1_749_564_191_482;
        let a = object_name("harness/audit", at, b"{\"a\":1}\n");
        assert!(
            a.starts_with("harness/audit/2025/06/10/harness-audit-20250610-140311-"),
            "{a}"
        );
        assert!(
            a.ends_with(".jsonl")
                && a.len()
                    == "harness/audit/2025/06/10/harness-audit-20250610-140311-".len() + 16 + 6
        );
        assert_eq!(a, object_name("harness/audit", at, b"{\"a\":1}\n"));
        assert_ne!(a, object_name("harness/audit", at, b"{\"a\":2}\n"));
    }
}
