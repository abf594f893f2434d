//! The state object's envelope. Besides the committed checkpoint it records
//! the one batch being written (its object name and the checkpoint it
//! carries), so a run that died between writing an object and committing its
//! checkpoint is settled on restart without loss or duplicate: if the object
//! exists its checkpoint is committed, otherwise the intent is dropped and the
//! batch is read again.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Format tag of the envelope.
pub const FORMAT: &str = "harness-audit-state/1";

/// What is stored at `STATE_KEY`. Its text borrows where it can: a
/// checkpoint (the ledger in it) can run to megabytes, and it is written
/// twice per batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile<'a> {
    /// Always [`FORMAT`].
    pub format: Cow<'a, str>,
    /// The component's last committed checkpoint (its own JSON, as text);
    /// `None` before the first commit.
    pub checkpoint: Option<Cow<'a, str>>,
    /// A batch whose object may or may not have been written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending<'a>>,
}

/// An object write in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending<'a> {
    /// Name of the object being written.
    pub object: Cow<'a, str>,
    /// Checkpoint that becomes committed once the object exists.
    pub checkpoint: Cow<'a, str>,
}

impl<'a> StateFile<'a> {
    /// A state with `checkpoint` in force (none before the first commit)
    /// and nothing in flight.
    pub fn settled(checkpoint: Option<&'a str>) -> Self {
        Self {
            format: FORMAT.into(),
            checkpoint: checkpoint.map(Cow::Borrowed),
            pending: None,
        }
    }

    /// `committed` in force, and the write of `object` carrying `checkpoint` in flight.
    pub fn intent(committed: Option<&'a str>, object: &'a str, checkpoint: &'a str) -> Self {
        Self {
            format: FORMAT.into(),
            checkpoint: committed.map(Cow::Borrowed),
            pending: Some(Pending {
                object: object.into(),
                checkpoint: checkpoint.into(),
            }),
        }
    }
}

/// Why stored bytes are not a state object of this version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// The bytes are not our JSON.
    #[error("not harness-audit state ({0})")]
    NotState(#[from] serde_json::Error),
    /// Another version of the format.
    #[error("state format `{found}` is not supported (expected `{FORMAT}`)")]
    Format {
        /// The format the object names.
        found: String,
    },
}

impl StateFile<'static> {
    /// Parses stored bytes; the error says what is wrong, never what to overwrite.
    pub fn parse(bytes: &[u8]) -> Result<Self, StateFileError> {
        let state: Self = serde_json::from_slice(bytes)?;
        if state.format != FORMAT {
            return Err(StateFileError::Format {
                found: state.format.into_owned(),
            });
        }
        Ok(state)
    }
}

impl StateFile<'_> {
    /// JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("state fields always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_a_pending_write() {
        let state = StateFile::settled(Some("{\"v\":1}"));
        assert_eq!(StateFile::parse(&state.to_bytes()).unwrap(), state);
        assert!(
            !String::from_utf8(state.to_bytes())
                .unwrap()
                .contains("pending")
        );
        let intent = StateFile::intent(Some("{\"v\":1}"), "a/b.jsonl", "{\"v\":2}");
        assert_eq!(StateFile::parse(&intent.to_bytes()).unwrap(), intent);
        let first = StateFile::intent(None, "a/b.jsonl", "{\"v\":2}");
        assert_eq!(
            StateFile::parse(&first.to_bytes()).unwrap(),
            first,
            "an intent before the first commit"
        );
    }

    #[test]
    fn foreign_or_corrupt_state_is_refused() {
        assert!(matches!(
            StateFile::parse(b"{\"since\": 1700000000}"),
            Err(StateFileError::NotState(_))
        ));
        assert!(matches!(
            StateFile::parse(b"{\"format\":\"other/9\",\"checkpoint\":\"\"}"),
            Err(StateFileError::Format { found }) if found == "other/9"
        ));
        assert!(StateFile::parse(b"\x00\x01").is_err());
    }
}
