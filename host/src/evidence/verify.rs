//! The checks `verify` makes, fed by whoever reads the store: the digests
//! of each chain, the head each state records, the content of each listed
//! object and the names found under the data prefix. Nothing here does I/O,
//! so each finding is tested on bytes alone.

use std::collections::BTreeMap;

use serde::Serialize;

use super::digest::{ChainHead, Digest, EntryKind, ObjectEntry, sha256_hex};
use super::signing::PublicKey;
use crate::time::rfc3339_ms;

/// What `verify` found wrong. Each names the object or digest and what it
/// means; the chain is named by the state it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Problem {
    /// Content differs from what the digest lists.
    #[error("modified: {object} has SHA-256 {found}, but digest {digest} lists {listed}")]
    Modified {
        /// The object.
        object: String,
        /// The digest that lists it.
        digest: String,
        /// The listed hash.
        listed: String,
        /// The stored content's hash.
        found: String,
    },
    /// A listed object is gone.
    #[error("deleted: {object}, listed in digest {digest}, is not in the store")]
    Deleted {
        /// The object.
        object: String,
        /// The digest that lists it.
        digest: String,
    },
    /// An object under the prefix that no digest or state lists.
    #[error("added: {object} is in the store but no digest lists it")]
    Unlisted {
        /// The object.
        object: String,
    },
    /// Two digests list one name with different content.
    #[error("listed twice: {object} is listed by {first} and {second} with different SHA-256")]
    ListedTwice {
        /// The object.
        object: String,
        /// One digest.
        first: String,
        /// The other.
        second: String,
    },
    /// A sequence number with no digest.
    #[error("missing digest: {digest} is absent; the objects it listed cannot be proven")]
    DigestMissing {
        /// Where it should be.
        digest: String,
    },
    /// A digest that does not parse.
    #[error("unreadable digest: {digest}: {reason}")]
    DigestUnreadable {
        /// The digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// A digest whose link does not match its predecessor.
    #[error(
        "broken link: {digest} names a previous digest with SHA-256 {linked}, but {previous} as stored has \
         {found}; one of the two was changed"
    )]
    BrokenLink {
        /// The digest.
        digest: String,
        /// Its predecessor.
        previous: String,
        /// The hash it links to.
        linked: String,
        /// The predecessor's hash.
        found: String,
    },
    /// The newest digest is not the one the state recorded.
    #[error(
        "changed digest: {digest} has SHA-256 {found}, but the checkpoint recorded {recorded} when it was \
         written"
    )]
    HeadMismatch {
        /// The digest.
        digest: String,
        /// The state's record.
        recorded: String,
        /// Its hash as stored.
        found: String,
    },
    /// A digest whose body names another sequence or prefix than its place.
    #[error("misplaced digest: {digest} says {says}")]
    Misplaced {
        /// The digest.
        digest: String,
        /// What its body says.
        says: String,
    },
    /// A digest that the public key does not prove.
    #[error("bad signature: {digest}: {reason}")]
    BadSignature {
        /// The digest.
        digest: String,
        /// Unsigned, another key, or a signature that does not check.
        reason: String,
    },
}

/// One chain's digests and its state's record of them.
#[derive(Debug, Default)]
struct Chain {
    /// Sequence to (digest name, stored bytes' hash, parsed digest).
    digests: BTreeMap<u64, (String, String, Option<Digest>)>,
    /// Names of digests in the chain folder whose name is no sequence.
    strays: Vec<String>,
    /// The state's head, when its state was read.
    head: Option<ChainHead>,
}

/// Where an object is listed.
#[derive(Debug, Clone)]
struct Listed {
    entry: ObjectEntry,
    /// The digest naming it, or the state whose next digest will.
    by: String,
    /// Listed by a state, awaiting its digest.
    pending: bool,
}

/// A chain's figures, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// The state the chain belongs to.
    pub state: String,
    /// Digests found.
    pub digests: u64,
    /// The state's newest sequence (0 before the first digest).
    pub head: Option<u64>,
    /// Objects its state lists as awaiting the next digest.
    pub pending: u64,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The data prefix checked.
    pub prefix: String,
    /// Objects from this time on were checked (RFC 3339), when limited.
    pub from: Option<String>,
    /// Objects up to this time were checked (RFC 3339), when limited.
    pub to: Option<String>,
    /// The key signatures were checked with; none when they were not checked.
    pub public_key: Option<String>,
    /// Each chain.
    pub chains: Vec<ChainSummary>,
    /// Listed objects whose content was checked.
    pub objects_checked: u64,
    /// Events in them.
    pub events: u64,
    /// Checked objects that a state lists as awaiting their digest: their
    /// hashes match the state, which is not signed.
    pub objects_pending: u64,
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
}

/// The checks, fed step by step.
#[derive(Debug)]
pub struct Verifier {
    prefix: String,
    key: Option<PublicKey>,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
    chains: BTreeMap<String, Chain>,
    listed: BTreeMap<String, Listed>,
    report: Report,
}

/// The time an object's name gives (its first event's second), if it has
/// the collector's layout.
fn name_time_ms(name: &str) -> Option<u64> {
    let file = name.rsplit('/').next()?;
    let stamp = file.strip_prefix("harness-audit-")?.get(..15)?;
    let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok()?;
    u64::try_from(at.and_utc().timestamp_millis()).ok()
}

impl Verifier {
    /// Checks objects under `prefix` whose names fall in `from_ms..=to_ms`
    /// (open ends when none), and signatures with `key` when given.
    pub fn new(
        prefix: &str,
        key: Option<PublicKey>,
        from_ms: Option<u64>,
        to_ms: Option<u64>,
    ) -> Self {
        Self {
            prefix: prefix.to_owned(),
            report: Report {
                prefix: prefix.to_owned(),
                from: from_ms.map(rfc3339_ms),
                to: to_ms.map(rfc3339_ms),
                public_key: key.as_ref().map(|k| k.fingerprint().to_owned()),
                chains: vec![],
                objects_checked: 0,
                events: 0,
                objects_pending: 0,
                problems: vec![],
            },
            key,
            from_ms,
            to_ms,
            chains: BTreeMap::new(),
            listed: BTreeMap::new(),
        }
    }

    fn in_range(&self, name: &str) -> bool {
        // An object whose name has no time could be anyone's: always checked.
        name_time_ms(name).is_none_or(|at| {
            // Names hold whole seconds: the second of `from` is in range.
            self.from_ms.is_none_or(|from| at >= from - from % 1000)
                && self.to_ms.is_none_or(|to| at <= to)
        })
    }

    fn problem(&mut self, problem: Problem) {
        self.report.problems.push(problem);
    }

    /// A digest found at `name` in chain folder `chain`, with its bytes.
    pub fn digest(&mut self, chain: &str, name: &str, bytes: &[u8]) {
        let file = name.rsplit('/').next().unwrap_or(name);
        let walk = self.chains.entry(chain.to_owned()).or_default();
        let Some(sequence) = super::digest::sequence_of(file) else {
            walk.strays.push(name.to_owned());
            return;
        };
        let parsed = Digest::parse(bytes);
        let hash = sha256_hex(bytes);
        match parsed {
            Ok(d) => {
                walk.digests
                    .insert(sequence, (name.to_owned(), hash, Some(d)));
            }
            Err(e) => {
                walk.digests.insert(sequence, (name.to_owned(), hash, None));
                self.problem(Problem::DigestUnreadable {
                    digest: name.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }

    /// What the state of chain folder `chain` records: the newest digest and
    /// the objects awaiting the next.
    pub fn state(&mut self, chain: &str, head: ChainHead, pending: Vec<ObjectEntry>) {
        self.chains.entry(chain.to_owned()).or_default().head = Some(head);
        for entry in pending {
            self.list(entry, chain.to_owned(), true);
        }
    }

    fn list(&mut self, entry: ObjectEntry, by: String, pending: bool) {
        if let Some(seen) = self.listed.get(&entry.name) {
            let filled = seen.entry.kind == EntryKind::Fence || entry.kind == EntryKind::Fence;
            if seen.entry.sha256 != entry.sha256 && !filled {
                let problem = Problem::ListedTwice {
                    object: entry.name.clone(),
                    first: seen.by.clone(),
                    second: by,
                };
                self.problem(problem);
                return;
            }
            // A fence later filled by its batch: the batch is what is stored.
            if entry.kind == EntryKind::Fence {
                return;
            }
        }
        self.listed
            .insert(entry.name.clone(), Listed { entry, by, pending });
    }

    /// Walks each chain: sequences without gaps, each link, each signature,
    /// and the newest digest against the state's record. Returns the
    /// objects to read, in range.
    pub fn walk_chains(&mut self) -> Vec<String> {
        let chains = std::mem::take(&mut self.chains);
        for (dir, chain) in &chains {
            // A chain whose digests name another prefix belongs to another
            // collector sharing the state folder: not this one's evidence.
            let foreign = chain
                .digests
                .values()
                .filter_map(|(_, _, d)| d.as_ref())
                .next()
                .is_some_and(|d| d.body.prefix != self.prefix);
            if foreign {
                continue;
            }
            self.walk(dir, chain);
        }
        self.chains = chains;
        self.listed
            .iter()
            .filter(|(name, _)| self.in_range(name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn walk(&mut self, dir: &str, chain: &Chain) {
        let state = super::digest::state_key_of(dir).unwrap_or_else(|| dir.to_owned());
        let newest_found = chain.digests.keys().next_back().copied().unwrap_or(0);
        let head = chain.head.as_ref().map(|h| h.sequence);
        let last = newest_found.max(head.unwrap_or(0));
        self.report.chains.push(ChainSummary {
            state: state.clone(),
            digests: chain.digests.len() as u64,
            head,
            pending: 0,
        });
        for stray in &chain.strays {
            self.problem(Problem::Misplaced {
                digest: stray.clone(),
                says: "nothing: its name is not a sequence number".into(),
            });
        }
        for sequence in 1..=last {
            let Some((name, hash, digest)) = chain.digests.get(&sequence) else {
                self.problem(Problem::DigestMissing {
                    digest: super::digest::in_chain(dir, sequence),
                });
                continue;
            };
            let Some(digest) = digest else { continue };
            let body = &digest.body;
            if body.sequence != sequence || body.prefix != self.prefix {
                self.problem(Problem::Misplaced {
                    digest: name.clone(),
                    says: format!("sequence {} of prefix `{}`", body.sequence, body.prefix),
                });
            }
            let previous = (sequence > 1)
                .then(|| chain.digests.get(&(sequence - 1)))
                .flatten();
            match (previous, &body.previous) {
                (Some((previous, found, _)), linked) if linked.as_ref() != Some(found) => {
                    let problem = Problem::BrokenLink {
                        digest: name.clone(),
                        previous: previous.clone(),
                        linked: linked.clone().unwrap_or_else(|| "none".into()),
                        found: found.clone(),
                    };
                    self.problem(problem);
                }
                (None, Some(linked)) if sequence == 1 => {
                    let problem = Problem::Misplaced {
                        digest: name.clone(),
                        says: format!(
                            "it follows a digest with SHA-256 {linked}, but it is the first"
                        ),
                    };
                    self.problem(problem);
                }
                _ => {}
            }
            if let Some(head) = &chain.head
                && head.sequence == sequence
                && head.sha256.as_ref() != Some(hash)
            {
                let problem = Problem::HeadMismatch {
                    digest: name.clone(),
                    recorded: head.sha256.clone().unwrap_or_else(|| "none".into()),
                    found: hash.clone(),
                };
                self.problem(problem);
            }
            self.check_signature(name, digest);
            for entry in &body.objects {
                self.list(entry.clone(), name.clone(), false);
            }
        }
    }

    fn check_signature(&mut self, name: &str, digest: &Digest) {
        let Some(key) = &self.key else { return };
        let reason = match (&digest.signature, digest.signature_bytes()) {
            (None, _) => Some("it is not signed".to_owned()),
            (Some(line), _) if line.signer != key.fingerprint() => Some(format!(
                "it is signed by key {}, not by the public key given ({})",
                line.signer,
                key.fingerprint()
            )),
            (Some(line), _) if digest.body.signer.as_deref() != Some(line.signer.as_str()) => {
                Some("its body names another signer than its signature".to_owned())
            }
            (Some(_), Some(signature)) if key.verifies(&digest.signed, &signature) => None,
            (Some(_), _) => Some(format!(
                "its signature does not check with {}: the digest was changed after signing",
                key.fingerprint()
            )),
        };
        if let Some(reason) = reason {
            self.problem(Problem::BadSignature {
                digest: name.to_owned(),
                reason,
            });
        }
    }

    /// The content of listed object `name`, or `None` when it is absent.
    /// Returns whether the content is the listed one.
    pub fn object(&mut self, name: &str, content: Option<&[u8]>) -> bool {
        let Some(listed) = self.listed.get(name).cloned() else {
            return false;
        };
        let Some(content) = content else {
            self.problem(Problem::Deleted {
                object: name.to_owned(),
                digest: listed.by,
            });
            return false;
        };
        let found = sha256_hex(content);
        if found != listed.entry.sha256 {
            self.problem(Problem::Modified {
                object: name.to_owned(),
                digest: listed.by,
                listed: listed.entry.sha256,
                found,
            });
            return false;
        }
        self.report.objects_checked += 1;
        self.report.events += u64::from(listed.entry.events);
        if listed.pending {
            self.report.objects_pending += 1;
            if let Some(chain) = self
                .report
                .chains
                .iter_mut()
                .find(|c| super::digest::chain_dir(&c.state) == listed.by)
            {
                chain.pending += 1;
            }
        }
        true
    }

    /// Where each line of listed quarantine `name` sits (epoch ms), as its
    /// digest entry says; `None` for any other object.
    pub fn quarantine_times(&self, name: &str) -> Option<&[u64]> {
        self.listed
            .get(name)
            .filter(|l| l.entry.kind == EntryKind::Quarantine)
            .map(|l| &l.entry.at_ms[..])
    }

    /// The names found under the data prefix: any in range that nothing lists was added.
    pub fn found(&mut self, names: impl IntoIterator<Item = String>) {
        for name in names {
            if !self.listed.contains_key(&name) && self.in_range(&name) {
                self.problem(Problem::Unlisted { object: name });
            }
        }
    }

    /// The findings.
    pub fn finish(self) -> Report {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::digest::digest_key;
    use crate::evidence::signing::tests::keys;
    use crate::time::parse_rfc3339_utc;

    const STATE: &str = "st/cp.json";

    fn entry(name: &str, content: &[u8]) -> ObjectEntry {
        ObjectEntry {
            name: name.into(),
            kind: EntryKind::Batch,
            sha256: sha256_hex(content),
            bytes: content.len() as u64,
            events: 1,
            first_event: Some("2025-01-01T00:00:00.000Z".into()),
            last_event: Some("2025-01-01T00:00:00.000Z".into()),
            window_start: Some("2025-01-01T00:00:00.000Z".into()),
            window_end: Some("2025-01-01T00:01:00.000Z".into()),
            reasons: std::collections::BTreeMap::new(),
            at_ms: Vec::new(),
        }
    }

    /// A store: digests, the state's head, objects.
    struct Store {
        digests: BTreeMap<String, Vec<u8>>,
        head: ChainHead,
        objects: BTreeMap<String, Vec<u8>>,
    }

    /// Three digests of two objects each, signed with `key` if given.
    fn store(key: Option<&crate::evidence::SigningKey>) -> Store {
        let mut digests = BTreeMap::new();
        let mut objects = BTreeMap::new();
        let mut previous: Option<String> = None;
        for sequence in 1..=3u64 {
            let listed: Vec<ObjectEntry> = (0..2)
                .map(|i| {
                    let name =
                        format!("p/2025/01/01/harness-audit-20250101-00000{sequence}-{i}.jsonl");
                    let content = format!("{{\"n\":{sequence}{i}}}\n").into_bytes();
                    let e = entry(&name, &content);
                    objects.insert(name, content);
                    e
                })
                .collect();
            let bytes = Digest::seal("p", sequence, previous.as_deref(), &listed, key);
            previous = Some(sha256_hex(&bytes));
            digests.insert(digest_key(STATE, sequence), bytes);
        }
        Store {
            digests,
            head: ChainHead {
                sequence: 3,
                sha256: previous,
            },
            objects,
        }
    }

    fn verify(store: &Store, key: Option<PublicKey>) -> Vec<Problem> {
        let mut v = Verifier::new("p", key, None, None);
        let chain = crate::evidence::digest::chain_dir(STATE);
        for (name, bytes) in &store.digests {
            v.digest(&chain, name, bytes);
        }
        v.state(&chain, store.head.clone(), vec![]);
        for name in v.walk_chains() {
            let _ = v.object(&name, store.objects.get(&name).map(Vec::as_slice));
        }
        v.found(store.objects.keys().cloned());
        v.finish().problems
    }

    #[test]
    fn an_untouched_store_is_proven_and_each_tampering_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (signing, public) = keys(dir.path(), 1);
        let clean = store(Some(&signing));
        assert_eq!(verify(&clean, Some(public.clone())), []);
        assert_eq!(verify(&store(None), None), []);

        let object = "p/2025/01/01/harness-audit-20250101-000002-1.jsonl";
        let mut s = store(Some(&signing));
        s.objects.get_mut(object).unwrap()[2] ^= 1;
        assert!(
            matches!(&verify(&s, Some(public.clone()))[..], [Problem::Modified { object: o, .. }] if o == object)
        );

        let mut s = store(Some(&signing));
        s.objects.remove(object);
        assert!(
            matches!(&verify(&s, Some(public.clone()))[..], [Problem::Deleted { object: o, .. }] if o == object)
        );

        let mut s = store(Some(&signing));
        s.objects.insert(
            "p/2025/01/01/harness-audit-20250101-000009-x.jsonl".into(),
            b"{}\n".to_vec(),
        );
        assert!(matches!(
            &verify(&s, Some(public.clone()))[..],
            [Problem::Unlisted { .. }]
        ));

        let second = digest_key(STATE, 2);
        let mut s = store(Some(&signing));
        let changed = String::from_utf8(s.digests[&second].clone())
            .unwrap()
            .replace("\"events\":1", "\"events\":2");
        s.digests.insert(second.clone(), changed.into_bytes());
        let found = verify(&s, Some(public.clone()));
        assert!(
            matches!(&found[..], [Problem::BadSignature { digest, .. }, Problem::BrokenLink { digest: next, .. }]
            if *digest == second && *next == digest_key(STATE, 3)),
            "{found:?}"
        );
        assert!(
            matches!(&verify(&s, None)[..], [Problem::BrokenLink { .. }]),
            "the chain alone sees it"
        );

        let mut s = store(Some(&signing));
        s.digests.remove(&second);
        let found = verify(&s, Some(public.clone()));
        assert!(
            found.contains(&Problem::DigestMissing {
                digest: second.clone()
            }),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .all(|p| matches!(p, Problem::DigestMissing { .. } | Problem::Unlisted { .. })),
            "{found:?}"
        );

        let mut s = store(Some(&signing));
        s.digests.remove(&digest_key(STATE, 3));
        assert!(
            matches!(
                &verify(&s, Some(public.clone()))[..],
                [Problem::DigestMissing { .. }, ..]
            ),
            "the newest, against the state's record"
        );

        let (other, _) = keys(dir.path(), 2);
        let s = store(Some(&other));
        let found = verify(&s, Some(public.clone()));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|p| matches!(p, Problem::BadSignature { reason, .. } if reason.contains("signed by key"))));

        let mut s = store(Some(&signing));
        let newest = digest_key(STATE, 3);
        let changed = String::from_utf8(s.digests[&newest].clone())
            .unwrap()
            .replace("\"events\":1", "\"events\":3");
        s.digests.insert(newest.clone(), changed.into_bytes());
        let found = verify(&s, None);
        assert!(
            matches!(&found[..], [Problem::HeadMismatch { digest, .. }] if *digest == newest),
            "{found:?}"
        );
    }

    #[test]
    fn only_objects_named_in_the_range_are_read_and_judged() {
        let s = store(None);
        let mut v = Verifier::new(
            "p",
            None,
            Some(parse_rfc3339_utc("2025-01-01T00:00:02.500Z").unwrap()),
            Some(parse_rfc3339_utc("2025-01-01T00:00:02.999Z").unwrap()),
        );
        let chain = crate::evidence::digest::chain_dir(STATE);
        for (name, bytes) in &s.digests {
            v.digest(&chain, name, bytes);
        }
        let read = v.walk_chains();
        assert_eq!(read.len(), 2, "{read:?}");
        assert!(read.iter().all(|n| n.contains("-000002-")));
        v.found([
            "p/2025/01/01/harness-audit-20250101-000005-z.jsonl".to_owned(),
            "p/odd.jsonl".to_owned(),
        ]);
        assert!(
            matches!(&v.finish().problems[..], [Problem::Unlisted { object }] if object == "p/odd.jsonl")
        );
    }
}
