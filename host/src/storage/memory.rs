//! Storage that keeps nothing: for commands that run the component without
//! collecting (`check`, `ledger`).

use std::sync::Mutex;

use super::{BatchMeta, CheckpointStore, Sink, SinkError, Written};

/// Discards batches.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

#[async_trait::async_trait]
impl Sink for Discard {
    fn object_name(&self, _meta: &BatchMeta) -> Option<String> {
        None
    }

    async fn write(
        &self,
        _name: Option<&str>,
        _meta: &BatchMeta,
        _lines: &[u8],
    ) -> Result<Written, SinkError> {
        Ok(Written::Streamed)
    }

    async fn exists(&self, _name: &str) -> Result<bool, SinkError> {
        Ok(false)
    }

    fn location(&self) -> String {
        "nowhere".into()
    }
}

/// A checkpoint that lives only as long as the command.
#[derive(Debug, Default)]
pub struct MemoryCheckpoint(Mutex<Option<Vec<u8>>>);

#[async_trait::async_trait]
impl CheckpointStore for MemoryCheckpoint {
    async fn load(&self) -> Result<Option<Vec<u8>>, SinkError> {
        Ok(self
            .0
            .lock()
            .expect("no panic while holding the lock")
            .clone())
    }

    async fn save(&self, checkpoint: &[u8]) -> Result<(), SinkError> {
        *self.0.lock().expect("no panic while holding the lock") = Some(checkpoint.to_vec());
        Ok(())
    }

    async fn set_aside(&self) -> Result<Option<String>, SinkError> {
        Ok(None)
    }

    fn checkpoint_location(&self) -> String {
        "memory".into()
    }
}
