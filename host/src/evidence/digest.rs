//! The digest object. Each lists objects the collector stored since the one
//! before it, with their SHA-256, and carries the SHA-256 of the digest
//! before it, so a changed, removed or inserted digest breaks the chain.
//!
//! A digest is one or two lines: the body (compact JSON), then, when a key
//! signs it, the Ed25519 signature of the body line's bytes. Signing the
//! line as stored, not a re-serialised form, lets anyone check it with
//! stock tools (`openssl pkeyutl -verify -rawin`).
//!
//! Digests of the state at `<dir>/<file>` live at
//! `<dir>/digests/<file>/<sequence>.json`: beside the state, outside the data
//! prefix, so a SIEM feed reading the prefix never ingests one. Each state
//! (the live one, each backfill's) keeps its own chain.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::signing::SigningKey;

/// Format tag of the body.
pub const FORMAT: &str = "harness-audit-digest/1";
/// The one signature algorithm.
pub const ED25519: &str = "ed25519";
/// Folder of the chains, beside the states.
const DIGESTS: &str = "digests";
/// Digits of the sequence in a digest's name, so names sort in chain order.
const SEQUENCE_DIGITS: usize = 10;

/// What an object listed in a digest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A batch of events.
    Batch,
    /// Events the component could not read or shape, as Harness sent them.
    Quarantine,
    /// An empty object that keeps a stalled writer from creating the
    /// object of a batch that is read again; it holds no events.
    Fence,
}

/// One stored object, as a digest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ObjectEntry {
    /// The object's name in the store.
    pub name: String,
    /// A batch or a fence.
    pub kind: EntryKind,
    /// Hex SHA-256 of the content: the NDJSON, before any gzip.
    pub sha256: String,
    /// Size of the content in bytes.
    pub bytes: u64,
    /// Events (lines) in it.
    pub events: u32,
    /// First event's time (RFC 3339); none for a fence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event: Option<String>,
    /// Last event's time (RFC 3339); none for a fence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    /// Start of the query window the batch was read in (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<String>,
    /// End of that window (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<String>,
    /// A quarantine's events by reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: BTreeMap<String, u64>,
    /// Where each line of a quarantine sits (epoch ms), in order: what
    /// `verify --completeness` counts, since the lines may not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_ms: Vec<u64>,
}

impl ObjectEntry {
    /// The entry of an object known only by its `content`, not by the
    /// metadata of its writing: its events are its lines, and its times are
    /// unknown.
    pub fn of_content(name: &str, kind: EntryKind, content: &[u8]) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            sha256: sha256_hex(content),
            bytes: content.len() as u64,
            events: u32::try_from(content.iter().filter(|b| **b == b'\n').count())
                .unwrap_or(u32::MAX),
            first_event: None,
            last_event: None,
            window_start: None,
            window_end: None,
            reasons: BTreeMap::new(),
            at_ms: Vec::new(),
        }
    }

    /// The entry of a fence at `name`: an empty object.
    pub fn fence(name: &str) -> Self {
        Self::of_content(name, EntryKind::Fence, b"")
    }
}

/// The newest digest of a chain, as the state records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    /// Its sequence number; 0 before the first digest.
    pub sequence: u64,
    /// Hex SHA-256 of its bytes; none before the first digest.
    pub sha256: Option<String>,
}

impl ChainHead {
    /// Whether no digest was written yet.
    pub fn is_empty(&self) -> bool {
        self.sequence == 0
    }
}

/// The first line of a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DigestBody {
    /// Always [`FORMAT`].
    pub format: String,
    /// The data prefix the objects live under.
    pub prefix: String,
    /// 1 for the chain's first digest, then one more each.
    pub sequence: u64,
    /// Hex SHA-256 of the previous digest's bytes; none for the first.
    pub previous: Option<String>,
    /// Earliest window start of the objects listed (RFC 3339).
    pub window_start: Option<String>,
    /// Latest window end of the objects listed (RFC 3339).
    pub window_end: Option<String>,
    /// Fingerprint of the key that signed it; none when unsigned.
    pub signer: Option<String>,
    /// The objects, in the order they were committed.
    pub objects: Vec<ObjectEntry>,
}

/// The second line of a signed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureLine {
    /// Always [`ED25519`].
    pub algorithm: String,
    /// Fingerprint of the signing key.
    pub signer: String,
    /// The signature of the first line's bytes (without its newline), base64.
    pub signature: String,
}

/// A parsed digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// What it lists.
    pub body: DigestBody,
    /// The first line's bytes, which the signature covers.
    pub signed: Vec<u8>,
    /// The signature, when signed.
    pub signature: Option<SignatureLine>,
}

/// Why stored bytes are not a digest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// Not the expected lines.
    #[error("a digest is a body line and an optional signature line; this holds {0} lines")]
    Lines(usize),
    /// A line is not the expected JSON.
    #[error("its {line} is not valid: {source}")]
    Json {
        /// Which line.
        line: &'static str,
        /// The parser's words.
        source: serde_json::Error,
    },
    /// Another format.
    #[error("format `{0}` is not supported (expected `{FORMAT}`)")]
    Format(String),
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Digest {
    /// The bytes of digest `sequence` of the chain whose previous digest
    /// hashes to `previous`, listing `objects`, signed with `key` if given.
    /// The same arguments always give the same bytes (Ed25519 is
    /// deterministic), so a digest written again after a crash is recognised.
    pub fn seal(
        prefix: &str,
        sequence: u64,
        previous: Option<&str>,
        objects: &[ObjectEntry],
        key: Option<&SigningKey>,
    ) -> Vec<u8> {
        let body = DigestBody {
            format: FORMAT.to_owned(),
            prefix: prefix.to_owned(),
            sequence,
            previous: previous.map(str::to_owned),
            window_start: objects.iter().filter_map(|o| o.window_start.clone()).min(),
            window_end: objects.iter().filter_map(|o| o.window_end.clone()).max(),
            signer: key.map(|k| k.fingerprint().to_owned()),
            objects: objects.to_vec(),
        };
        let mut bytes = serde_json::to_vec(&body).expect("digest fields always serialize");
        if let Some(key) = key {
            let line = SignatureLine {
                algorithm: ED25519.to_owned(),
                signer: key.fingerprint().to_owned(),
                signature: base64::engine::general_purpose::STANDARD.encode(key.sign(&bytes)),
            };
            bytes.push(b'\n');
            serde_json::to_writer(&mut bytes, &line).expect("signature fields always serialize");
        }
        bytes.push(b'\n');
        bytes
    }

    /// Parses stored bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, DigestError> {
        let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        if !(1..=2).contains(&lines.len()) {
            return Err(DigestError::Lines(lines.len()));
        }
        let body: DigestBody =
            serde_json::from_slice(lines[0]).map_err(|source| DigestError::Json {
                line: "body",
                source,
            })?;
        if body.format != FORMAT {
            return Err(DigestError::Format(body.format));
        }
        let signature = lines
            .get(1)
            .map(|line| serde_json::from_slice(line))
            .transpose()
            .map_err(|source| DigestError::Json {
                line: "signature",
                source,
            })?;
        Ok(Self {
            body,
            signed: lines[0].to_vec(),
            signature,
        })
    }

    /// The signature's bytes, if it is base64 of the right length.
    pub fn signature_bytes(&self) -> Option<Vec<u8>> {
        let line = self.signature.as_ref()?;
        base64::engine::general_purpose::STANDARD
            .decode(&line.signature)
            .ok()
            .filter(|b| b.len() == 64)
    }
}

/// `<dir>/digests/`: where the chains of the states in `<dir>` live.
pub fn digests_root(state_key: &str) -> String {
    match state_key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{DIGESTS}/"),
        None => format!("{DIGESTS}/"),
    }
}

/// `<dir>/digests/<file>/`: the chain of the state at `state_key`.
pub fn chain_dir(state_key: &str) -> String {
    let file = state_key.rsplit_once('/').map_or(state_key, |(_, f)| f);
    format!("{}{file}/", digests_root(state_key))
}

/// The name of digest `sequence` of the state at `state_key`.
pub fn digest_key(state_key: &str, sequence: u64) -> String {
    in_chain(&chain_dir(state_key), sequence)
}

/// The name of digest `sequence` in chain folder `chain_dir`.
pub fn in_chain(chain_dir: &str, sequence: u64) -> String {
    format!(
        "{chain_dir}{sequence:0width$}.json",
        width = SEQUENCE_DIGITS
    )
}

/// The sequence a digest's name gives, if it is a digest's name.
pub fn sequence_of(file: &str) -> Option<u64> {
    let digits = file.strip_suffix(".json")?;
    (digits.len() == SEQUENCE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The state key whose chain lives in `chain_dir` (which ends with `/`).
pub fn state_key_of(chain_dir: &str) -> Option<String> {
    let inner = chain_dir.strip_suffix('/')?;
    let (root, file) = inner.rsplit_once('/')?;
    let dir = root.strip_suffix(DIGESTS)?;
    Some(format!("{dir}{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, start: &str, end: &str) -> ObjectEntry {
        ObjectEntry {
            name: name.into(),
            kind: EntryKind::Batch,
            sha256: sha256_hex(name.as_bytes()),
            bytes: 10,
            events: 1,
            first_event: Some(start.into()),
            last_event: Some(start.into()),
            window_start: Some(start.into()),
            window_end: Some(end.into()),
            reasons: BTreeMap::new(),
            at_ms: Vec::new(),
        }
    }

    #[test]
    fn names_sit_beside_the_state_and_map_back_to_it() {
        let key = digest_key("harness-audit-state/checkpoint.json", 3);
        assert_eq!(
            key,
            "harness-audit-state/digests/checkpoint.json/0000000003.json"
        );
        assert_eq!(digest_key("cp.json", 12), "digests/cp.json/0000000012.json");
        assert_eq!(
            state_key_of(&chain_dir("harness-audit-state/backfill-x.json")).as_deref(),
            Some("harness-audit-state/backfill-x.json")
        );
        assert_eq!(
            state_key_of(&chain_dir("cp.json")).as_deref(),
            Some("cp.json")
        );
        assert_eq!(sequence_of("0000000003.json"), Some(3));
        assert_eq!(sequence_of("3.json"), None);
        assert_eq!(sequence_of("000000000x.json"), None);
    }

    #[test]
    fn an_unsigned_digest_is_one_line_and_round_trips() {
        let objects = [
            entry(
                "p/a.jsonl",
                "2025-01-01T00:00:00.000Z",
                "2025-01-01T00:10:00.000Z",
            ),
            ObjectEntry::fence("p/b.jsonl"),
            entry(
                "p/c.jsonl",
                "2024-12-31T23:00:00.000Z",
                "2025-01-01T00:05:00.000Z",
            ),
        ];
        let bytes = Digest::seal("p", 2, Some("ab"), &objects, None);
        assert_eq!(bytes, Digest::seal("p", 2, Some("ab"), &objects, None));
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1);
        let digest = Digest::parse(&bytes).unwrap();
        assert_eq!(digest.body.objects, objects);
        assert_eq!(
            digest.body.window_start.as_deref(),
            Some("2024-12-31T23:00:00.000Z")
        );
        assert_eq!(
            digest.body.window_end.as_deref(),
            Some("2025-01-01T00:10:00.000Z")
        );
        assert_eq!(digest.body.previous.as_deref(), Some("ab"));
        assert!(digest.signature.is_none() && digest.body.signer.is_none());
        assert!(matches!(
            Digest::parse(b"{}\n"),
            Err(DigestError::Json { line: "body", .. })
        ));
        assert!(matches!(
            Digest::parse(b"a\nb\nc\n"),
            Err(DigestError::Lines(3))
        ));
        let other = String::from_utf8(bytes)
            .unwrap()
            .replace(FORMAT, "harness-audit-digest/9");
        assert!(
            matches!(Digest::parse(other.as_bytes()), Err(DigestError::Format(f)) if f.ends_with("/9"))
        );
    }
}
