//! The state object's envelope. Besides the committed checkpoint it records
//! the one batch being written (its object name and the checkpoint it
//! carries), so a run that died between writing an object and committing its
//! checkpoint is settled on restart without loss or duplicate: if the object
//! exists its checkpoint is committed, otherwise the intent is dropped and the
//! batch is read again.
//!
//! It also carries the evidence chain's place: the newest digest, and the
//! objects committed since, which the next digest lists. An object is
//! recorded here in the same write that commits its checkpoint, so none is
//! ever committed without being on its way into a digest.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::evidence::ObjectEntry;
use crate::evidence::digest::ChainHead;

/// Format tag of the envelope.
pub const FORMAT: &str = "harness-audit-state/2";
/// The format before digests, read and upgraded in place by the next write.
const FORMAT_1: &str = "harness-audit-state/1";

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
    /// The newest digest of this state's chain.
    #[serde(default, skip_serializing_if = "ChainHead::is_empty")]
    pub chain: Cow<'a, ChainHead>,
    /// Objects committed since that digest, oldest first.
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub unsealed: Cow<'a, [ObjectEntry]>,
    /// The unusable answer the last passes met at one request, when they
    /// failed on it; cleared by the next commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<Stall>,
}

/// Passes in a row that met the same unusable answer at the same request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    /// The answer's kind and status, and the request: equal in two passes
    /// when they failed the same way at the same place.
    pub answer: String,
    /// Passes in a row.
    pub passes: u32,
    /// When the first of them failed (RFC 3339).
    pub since: String,
}

/// The evidence side of a state: the newest digest and what awaits the next.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The newest digest.
    pub head: &'a ChainHead,
    /// Objects committed since it.
    pub unsealed: &'a [ObjectEntry],
}

/// An object write in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending<'a> {
    /// Name of the object being written.
    pub object: Cow<'a, str>,
    /// Checkpoint that becomes committed once the object exists.
    pub checkpoint: Cow<'a, str>,
    /// What the next digest lists for the object once it is committed;
    /// absent only in states of format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Cow<'a, ObjectEntry>>,
}

impl<'a> StateFile<'a> {
    /// A state with `checkpoint` in force (none before the first commit)
    /// and nothing in flight.
    pub fn settled(checkpoint: Option<&'a str>, evidence: Evidence<'a>) -> Self {
        Self {
            format: FORMAT.into(),
            checkpoint: checkpoint.map(Cow::Borrowed),
            pending: None,
            chain: Cow::Borrowed(evidence.head),
            unsealed: Cow::Borrowed(evidence.unsealed),
            stall: None,
        }
    }

    /// `committed` in force, and the write of `entry`'s object carrying
    /// `checkpoint` in flight.
    pub fn intent(
        committed: Option<&'a str>,
        entry: &'a ObjectEntry,
        checkpoint: &'a str,
        evidence: Evidence<'a>,
    ) -> Self {
        Self {
            pending: Some(Pending {
                object: entry.name.as_str().into(),
                checkpoint: checkpoint.into(),
                entry: Some(Cow::Borrowed(entry)),
            }),
            ..Self::settled(committed, evidence)
        }
    }

    /// The evidence side.
    pub fn evidence(&self) -> Evidence<'_> {
        Evidence {
            head: &self.chain,
            unsealed: &self.unsealed,
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
        if state.format != FORMAT && state.format != FORMAT_1 {
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
        serde_json::to_vec(self).expect("state fields always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Evidence<'static> = Evidence {
        head: &ChainHead {
            sequence: 0,
            sha256: None,
        },
        unsealed: &[],
    };

    fn entry(name: &str) -> ObjectEntry {
        ObjectEntry {
            events: 2,
            ..ObjectEntry::fence(name)
        }
    }

    #[test]
    fn round_trips_with_and_without_a_pending_write() {
        let state = StateFile::settled(Some("{\"v\":1}"), NONE);
        assert_eq!(StateFile::parse(&state.to_bytes()).unwrap(), state);
        assert!(
            !String::from_utf8(state.to_bytes())
                .unwrap()
                .contains("pending")
        );
        let entry = entry("a/b.jsonl");
        let intent = StateFile::intent(Some("{\"v\":1}"), &entry, "{\"v\":2}", NONE);
        assert_eq!(StateFile::parse(&intent.to_bytes()).unwrap(), intent);
        let first = StateFile::intent(None, &entry, "{\"v\":2}", NONE);
        assert_eq!(
            StateFile::parse(&first.to_bytes()).unwrap(),
            first,
            "an intent before the first commit"
        );
    }

    #[test]
    fn the_chain_s_place_round_trips_and_format_1_is_read_as_an_empty_chain() {
        let head = ChainHead {
            sequence: 4,
            sha256: Some("ab".into()),
        };
        let unsealed = [entry("a/c.jsonl")];
        let evidence = Evidence {
            head: &head,
            unsealed: &unsealed,
        };
        let state = StateFile::settled(Some("{}"), evidence);
        let parsed = StateFile::parse(&state.to_bytes()).unwrap();
        assert_eq!(*parsed.chain, head);
        assert_eq!(&*parsed.unsealed, &unsealed);
        let v1 = br#"{"format":"harness-audit-state/1","checkpoint":"{}","pending":{"object":"a/d.jsonl","checkpoint":"{\"v\":2}"}}"#;
        let old = StateFile::parse(v1).unwrap();
        assert!(old.chain.is_empty() && old.unsealed.is_empty());
        assert_eq!(old.pending.unwrap().entry, None);
        let rewritten = StateFile::settled(old.checkpoint.as_deref(), NONE).to_bytes();
        assert!(
            String::from_utf8(rewritten).unwrap().contains(FORMAT),
            "the next write upgrades it"
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
