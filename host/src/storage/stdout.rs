//! NDJSON on standard output, for log shippers' exec and subprocess inputs.
//! A stream cannot be checked after a crash, so delivery here is at least once.

use std::io::Write;

use super::{BatchMeta, Sink, SinkError, Written};

/// Writes each batch to stdout and flushes before the checkpoint is stored.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

#[async_trait::async_trait]
impl Sink for StdoutSink {
    fn object_name(&self, _meta: &BatchMeta) -> Option<String> {
        None
    }

    async fn exists(&self, _name: &str) -> Result<bool, SinkError> {
        Ok(false)
    }

    async fn write(
        &self,
        _name: Option<&str>,
        _meta: &BatchMeta,
        lines: &[u8],
    ) -> Result<Written, SinkError> {
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
}
