//! Batches as objects in a GCS bucket, the recipe's layout, and the
//! checkpoint beside them, replaced only by compare-and-swap.

use std::collections::BTreeMap;
use std::io::{Read as _, Write};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::{GcsClient, GcsError, Upload};
use crate::config::Retention;
use crate::evidence::digest::sha256_hex;
use crate::pause_points::Step;
use crate::storage::{
    BatchMeta, CheckpointStore, Fence, ObjectKind, ObjectStore, Sink, SinkError, Written,
    object_name,
};
use crate::time::{now_ms, rfc3339_ms};

/// `content-type` of data objects, as SIEM feeds expect.
pub const NDJSON: &str = "application/x-ndjson";
/// The `source` metadata value.
const SOURCE: &str = "harness-audit";
/// Metadata key holding the SHA-256 of the uncompressed content, which
/// recognises a re-sent batch or our own retried write.
const CONTENT_SHA256: &str = "content-sha256";
/// Metadata key naming the process that wrote a checkpoint.
const WRITER: &str = "writer";
/// Metadata key of a fence: an empty object at the name of an interrupted
/// write, naming the process that took the batch over.
const FENCED_BY: &str = "fenced-by";
/// Metadata key of a quarantine object: its events by reason, as
/// `not-json=2,timestamp=1`.
const QUARANTINE_REASONS: &str = "quarantine-reasons";
/// Attempts at replacing a fence another writer is replacing too.
const FENCE_ROUNDS: usize = 3;

/// A bucket prefix for data, and a checkpoint object outside it.
#[derive(Debug)]
pub struct GcsSink {
    client: Arc<GcsClient>,
    prefix: String,
    state_key: String,
    gzip: bool,
    writer: String,
    /// Retention set on data objects and digests, never on what is replaced
    /// (the checkpoint, the lease, a fence).
    retention: Option<Retention>,
    /// Generation of the checkpoint last read or written; 0 while there is none.
    generation: Mutex<i64>,
}

impl GcsSink {
    /// Data under `prefix`, the checkpoint at `state_key`; `writer` identifies
    /// this process in the checkpoint's metadata.
    pub fn new(
        client: Arc<GcsClient>,
        prefix: &str,
        state_key: &str,
        gzip: bool,
        writer: &str,
    ) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            state_key: state_key.to_owned(),
            gzip,
            writer: writer.to_owned(),
            retention: None,
            generation: Mutex::new(0),
        }
    }

    /// Sets `retention` on every data object and digest written.
    #[must_use]
    pub fn with_retention(mut self, retention: Option<Retention>) -> Self {
        self.retention = retention;
        self
    }

    fn generation(&self) -> i64 {
        *self
            .generation
            .lock()
            .expect("no panic while holding the lock")
    }

    fn set_generation(&self, generation: i64) {
        *self
            .generation
            .lock()
            .expect("no panic while holding the lock") = generation;
    }

    /// The generation of `object` if it holds content with this SHA-256 (and,
    /// when given, was written by `writer`); `None` otherwise.
    async fn written_by(
        &self,
        object: &str,
        sha: &str,
        writer: Option<&str>,
    ) -> Result<Option<i64>, GcsError> {
        let Some(info) = self.client.info(object).await? else {
            return Ok(None);
        };
        let same_content = info.metadata.get(CONTENT_SHA256).map(String::as_str) == Some(sha);
        let same_writer =
            writer.is_none_or(|w| info.metadata.get(WRITER).map(String::as_str) == Some(w));
        Ok((same_content && same_writer).then_some(info.generation))
    }
}

/// Deterministic gzip (no timestamp in the header), so a re-sent batch yields the same bytes.
fn gzip(lines: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(lines.len() / 4), Compression::default());
    encoder
        .write_all(lines)
        .expect("writing to a Vec does not fail");
    encoder.finish().expect("writing to a Vec does not fail")
}

#[async_trait::async_trait]
impl Sink for GcsSink {
    fn object_name(&self, meta: &BatchMeta) -> Option<String> {
        let name = object_name(&self.prefix, meta);
        Some(if self.gzip { name + ".gz" } else { name })
    }

    async fn write(
        &self,
        name: Option<&str>,
        meta: &BatchMeta,
        lines: &[u8],
    ) -> Result<Written, SinkError> {
        let name = name.map_or_else(
            || {
                self.object_name(meta)
                    .expect("GCS objects always have names")
            },
            str::to_owned,
        );
        let sha = hex::encode(meta.content_sha256);
        let collected_ms = meta
            .collected_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut metadata = BTreeMap::from([
            ("event-count".to_owned(), meta.event_count.to_string()),
            ("source".to_owned(), SOURCE.to_owned()),
            ("collection-time".to_owned(), rfc3339_ms(collected_ms)),
            (
                "first-event-time".to_owned(),
                rfc3339_ms(meta.first_event_ms),
            ),
            ("last-event-time".to_owned(), rfc3339_ms(meta.last_event_ms)),
            ("window-start".to_owned(), rfc3339_ms(meta.window_start_ms)),
            ("window-end".to_owned(), rfc3339_ms(meta.window_end_ms)),
            (CONTENT_SHA256.to_owned(), sha.clone()),
        ]);
        if let ObjectKind::Quarantine { reasons, .. } = &meta.kind {
            let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r}={n}")).collect();
            metadata.insert(QUARANTINE_REASONS.to_owned(), reasons.join(","));
        }
        let compressed;
        let body = if self.gzip {
            compressed = gzip(lines);
            &compressed
        } else {
            lines
        };
        let upload = Upload {
            body,
            content_type: NDJSON,
            content_encoding: self.gzip.then_some("gzip"),
            metadata: &metadata,
            midway: Some(Step::MidUpload),
            retention: self.retention,
        };
        let mut generation = 0;
        for _ in 0..FENCE_ROUNDS {
            match self.client.insert(&name, upload, generation).await {
                Ok(_) => return Ok(Written::Created(name)),
                Err(GcsError::PreconditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(info) = self.client.info(&name).await? else {
                generation = 0;
                continue;
            };
            // A batch is named by its content: the same content means an earlier
            // attempt (maybe one whose response was lost) already stored it.
            if info.metadata.get(CONTENT_SHA256) == Some(&sha) {
                return Ok(Written::AlreadyPresent(name));
            }
            if !info.metadata.contains_key(FENCED_BY) {
                return Err(SinkError::Conflict(self.client.url(&name)));
            }
            // Only the writer whose intent for this name is the state's
            // current one may fill a fence; the stalled writer it fenced
            // out finds the state changed.
            let current = self.client.info(&self.state_key).await?;
            if current.map(|c| c.generation) != Some(self.generation()) {
                return Err(SinkError::Superseded(self.checkpoint_location()));
            }
            generation = info.generation;
        }
        Err(SinkError::Superseded(self.checkpoint_location()))
    }

    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        Ok(self
            .client
            .info(name)
            .await?
            .is_some_and(|info| !info.metadata.contains_key(FENCED_BY)))
    }

    async fn fence(&self, name: &str) -> Result<Fence, SinkError> {
        let metadata = BTreeMap::from([
            ("event-count".to_owned(), "0".to_owned()),
            ("source".to_owned(), SOURCE.to_owned()),
            (FENCED_BY.to_owned(), self.writer.clone()),
        ]);
        let upload = Upload {
            body: b"",
            content_type: NDJSON,
            content_encoding: None,
            metadata: &metadata,
            midway: None,
            retention: None,
        };
        match self.client.insert(name, upload, 0).await {
            Ok(_) => Ok(Fence::Placed),
            Err(GcsError::PreconditionFailed { .. }) if self.exists(name).await? => {
                Ok(Fence::ObjectWritten)
            }
            // A fence stands there already: placed by an earlier recovery
            // that died before recording it.
            Err(GcsError::PreconditionFailed { .. }) => Ok(Fence::Placed),
            Err(e) => Err(e.into()),
        }
    }

    fn location(&self) -> String {
        self.client.url(&format!("{}/", self.prefix))
    }

    fn quarantine_location(&self) -> Option<String> {
        let prefix = crate::storage::quarantine_prefix(&self.prefix);
        Some(self.client.url(&format!("{prefix}/")))
    }
}

#[async_trait::async_trait]
impl CheckpointStore for GcsSink {
    async fn load(&self) -> Result<Option<Vec<u8>>, SinkError> {
        match self.client.read(&self.state_key).await? {
            Some((bytes, generation)) => {
                self.set_generation(generation);
                Ok(Some(bytes))
            }
            None => {
                self.set_generation(0);
                Ok(None)
            }
        }
    }

    async fn save(&self, checkpoint: &[u8]) -> Result<(), SinkError> {
        let sha = sha256_hex(checkpoint);
        let metadata = BTreeMap::from([
            (CONTENT_SHA256.to_owned(), sha.clone()),
            (WRITER.to_owned(), self.writer.clone()),
        ]);
        let upload = Upload::json(checkpoint, &metadata);
        match self
            .client
            .insert(&self.state_key, upload, self.generation())
            .await
        {
            Ok(generation) => {
                self.set_generation(generation);
                Ok(())
            }
            Err(GcsError::PreconditionFailed { .. }) => {
                // A retried write whose first attempt succeeded unseen finds
                // its own content in place: that is success, not a rival.
                match self
                    .written_by(&self.state_key, &sha, Some(&self.writer))
                    .await?
                {
                    Some(generation) => {
                        self.set_generation(generation);
                        Ok(())
                    }
                    None => Err(SinkError::Superseded(self.checkpoint_location())),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn set_aside(&self) -> Result<Option<String>, SinkError> {
        let Some((bytes, generation)) = self.client.read(&self.state_key).await? else {
            return Ok(None);
        };
        let aside = format!("{}.reset-{}", self.state_key, now_ms() / 1000);
        let metadata = BTreeMap::new();
        let upload = Upload::json(&bytes, &metadata);
        self.client.insert(&aside, upload, 0).await?;
        self.client
            .delete(&self.state_key, generation)
            .await
            .map_err(|e| match e {
                GcsError::PreconditionFailed { .. } => {
                    SinkError::Superseded(self.checkpoint_location())
                }
                other => other.into(),
            })?;
        self.set_generation(0);
        Ok(Some(self.client.url(&aside)))
    }

    fn checkpoint_location(&self) -> String {
        self.client.url(&self.state_key)
    }

    async fn recipe_state(&self) -> Result<Option<(String, Vec<u8>)>, SinkError> {
        let key = format!("{}/state.json", self.prefix);
        Ok(self
            .client
            .read(&key)
            .await?
            .map(|(bytes, _)| (self.client.url(&key), bytes)))
    }

    fn objects(&self) -> Option<&dyn ObjectStore> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl ObjectStore for GcsSink {
    async fn create(&self, name: &str, bytes: &[u8]) -> Result<Option<Vec<u8>>, SinkError> {
        let metadata = BTreeMap::from([
            ("source".to_owned(), SOURCE.to_owned()),
            (WRITER.to_owned(), self.writer.clone()),
        ]);
        let upload = Upload {
            retention: self.retention,
            ..Upload::json(bytes, &metadata)
        };
        match self.client.insert(name, upload, 0).await {
            Ok(_) => Ok(None),
            Err(GcsError::PreconditionFailed { .. }) => {
                Ok(Some(self.read(name).await?.unwrap_or_default()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let Some((bytes, _)) = self.client.read(name).await? else {
            return Ok(None);
        };
        // GCS undoes gzip unless asked not to, and an emulator may not. Only
        // objects named `.gz` were stored gzipped: a quarantined event's
        // bytes may start like gzip without being it.
        if name.ends_with(".gz") && bytes.starts_with(&[0x1f, 0x8b]) {
            let mut content = Vec::with_capacity(bytes.len() * 4);
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut content)
                .map_err(|source| SinkError::Io {
                    action: "decompressing",
                    path: self.client.url(name),
                    source,
                })?;
            return Ok(Some(content));
        }
        Ok(Some(bytes))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let mut names = self.client.list(prefix).await?;
        names.sort();
        Ok(names)
    }

    fn url(&self, name: &str) -> String {
        self.client.url(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_deterministic_and_round_trips() {
        let lines = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
        let packed = gzip(&lines);
        assert_eq!(packed, gzip(&lines), "same batch, same bytes");
        assert_eq!(&packed[..2], &[0x1f, 0x8b]);
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, lines);
    }
}
