//! NDJSON on standard output, for log shippers' exec and subprocess inputs.
//! A stream cannot be checked after a crash, so delivery here is at least once.
//! A quarantine is no NDJSON a shipper can parse: it goes to the local
//! directory that holds the checkpoint, as objects, exactly once.

use std::io::Write;

use super::{BatchMeta, LocalDirSink, ObjectKind, Sink, SinkError, Written};

/// Writes each batch to stdout and flushes before the checkpoint is stored;
/// quarantines go to `quarantine`, beside the checkpoint.
#[derive(Debug, Clone)]
pub struct StdoutSink {
    quarantine: LocalDirSink,
}

impl StdoutSink {
    /// Batches to stdout, quarantines to `quarantine`.
    pub fn new(quarantine: LocalDirSink) -> Self {
        Self { quarantine }
    }
}

#[async_trait::async_trait]
impl Sink for StdoutSink {
    fn object_name(&self, meta: &BatchMeta) -> Option<String> {
        match meta.kind {
            ObjectKind::Batch => None,
            ObjectKind::Quarantine { .. } => self.quarantine.object_name(meta),
        }
    }

    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        // Only a quarantine has a name, and so an intent to settle.
        self.quarantine.exists(name).await
    }

    async fn write(
        &self,
        name: Option<&str>,
        meta: &BatchMeta,
        lines: &[u8],
    ) -> Result<Written, SinkError> {
        if let ObjectKind::Quarantine { .. } = meta.kind {
            return self.quarantine.write(name, meta, lines).await;
        }
        let mut out = std::io::stdout().lock();
        out.write_all(lines)
            .and_then(|()| out.flush())
            .map_err(|source| SinkError::Io {
                action: "writing to",
                path: "stdout".into(),
                source,
            })?;
        Ok(Written::Streamed)
    }

    fn location(&self) -> String {
        "stdout".into()
    }

    fn quarantine_location(&self) -> Option<String> {
        self.quarantine.quarantine_location()
    }
}
