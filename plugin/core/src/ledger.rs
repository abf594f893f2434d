//! The completeness ledger: for each hour of the audit trail, the exact ids
//! of the events stored and the count Harness gave for it at the last check.
//!
//! The ids make a re-read exact: an event is written only if its id is not in
//! its hour's set, whichever pass, window or re-read returns it. The counts
//! make completeness visible: the gap of an hour is what Harness counted there
//! and never returned. Both live in the checkpoint, so they are committed
//! together with the batches they describe.
//!
//! An event kept in the quarantine is stored too: it is in its hour's ids
//! (by `auditId`, or by the SHA-256 of its bytes when it has none), and the
//! hour counts it among its quarantined events. Its hour is that of its
//! `timestamp`, or, when that cannot be read, of where its page placed it
//! ([`crate::page::Event::at_ms`]); such an event is looked up in every hour.
//!
//! Size: an ObjectId (the form of every Harness `auditId`) takes 16 bytes of
//! base64; any other id is kept as its JSON string. An hour costs about 100
//! bytes besides its ids. The ledger keeps the hours from
//! [`Ledger::from_ms`] on, which the pass moves forward as windows advance.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Width of a ledger slice: one UTC hour, in ms.
pub const SLICE_MS: u64 = 3_600_000;

/// Start of the slice holding `ms`.
pub fn slice_start(ms: u64) -> u64 {
    ms - ms % SLICE_MS
}

/// Harness's count for the covered part of a slice, at one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    /// `totalItems` for `[slice start, through_ms]`.
    pub events: u64,
    /// Last millisecond counted (inclusive).
    pub through_ms: u64,
    /// When the count was taken (epoch ms).
    pub at_ms: u64,
    /// Events stored with a timestamp in the counted range, kept current as
    /// later passes store more of them.
    pub stored: u64,
}

impl Count {
    /// Events Harness counted that are not stored.
    pub fn gap(&self) -> u64 {
        self.events.saturating_sub(self.stored)
    }
}

/// One hour of the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    /// Ids of the events stored with a timestamp in this hour.
    #[serde(default, skip_serializing_if = "IdSet::is_empty")]
    pub ids: IdSet,
    /// The last count, if the slice was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
    /// The gap the last re-read could not close. The slice is re-read again
    /// only when its gap grows past it, or once `retry_ms` has passed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub settled_gap: u64,
    /// When a gap that has not grown may be re-read again (epoch ms).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_ms: u64,
    /// Re-reads in a row that found nothing: each doubles the wait.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fruitless: u32,
    /// Of the events stored in this hour, those kept in the quarantine.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub quarantined: u64,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Slice {
    /// Records Harness's count of `events` up to `through_ms`, taken at
    /// `at_ms`, against the `stored` events up to it; the count it replaces.
    pub fn set_count(
        &mut self,
        events: u64,
        through_ms: u64,
        at_ms: u64,
        stored: u64,
    ) -> Option<Count> {
        self.count.replace(Count {
            events,
            through_ms,
            at_ms,
            stored,
        })
    }

    /// Events stored in this hour.
    pub fn stored(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Events counted at the last check and not stored.
    pub fn gap(&self) -> u64 {
        self.count.map_or(0, |c| c.gap())
    }
}

/// The ledger: slices by their start, for every hour from `from_ms` on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// Every event stored with a timestamp at or after this is in the ledger;
    /// nothing before it is, so nothing before it is ever re-read.
    pub from_ms: u64,
    /// Slices by start, only those with ids or a count.
    #[serde(default)]
    pub slices: BTreeMap<u64, Slice>,
    /// Where the next window will start reading again, once the window in
    /// progress (if any) is done: only what lies before it is reconciled,
    /// since a count taken across it would take events still arriving for a
    /// gap. `None` (a checkpoint from before it was kept): counts run up to
    /// the last window's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_from_ms: Option<u64>,
    /// The timestamps of the events stored at or after `tail_from_ms`,
    /// ascending: what the ids of a slice hold past the part a count covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<u64>,
}

impl Ledger {
    /// An empty ledger covering `from_ms` on.
    pub fn new(from_ms: u64) -> Self {
        Self {
            from_ms,
            slices: BTreeMap::new(),
            tail_from_ms: None,
            tail: Vec::new(),
        }
    }

    /// Moves the tail's start to `ms` (never backwards), forgetting the
    /// timestamps before it.
    pub fn set_tail_from(&mut self, ms: u64) {
        let from = self.tail_from_ms.map_or(ms, |from| from.max(ms));
        self.tail_from_ms = Some(from);
        let before = self.tail.partition_point(|ts| *ts < from);
        self.tail.drain(..before);
    }

    /// Events stored in `slice` with a timestamp up to `through_ms`, which
    /// must not lie before the tail's start less one.
    pub fn stored_through(&self, slice: u64, through_ms: u64) -> u64 {
        let Some(entry) = self.slices.get(&slice) else {
            return 0;
        };
        // The slice's ids past `through_ms` are all in the tail.
        let past = self.tail.partition_point(|ts| *ts < slice + SLICE_MS)
            - self.tail.partition_point(|ts| *ts <= through_ms);
        entry.stored().saturating_sub(past as u64)
    }

    /// The last millisecond a count may cover: the last window's end, and
    /// never the part the next window reads again.
    pub fn countable_through(&self, last_end_ms: u64) -> u64 {
        self.tail_from_ms
            .map_or(last_end_ms, |from| last_end_ms.min(from.saturating_sub(1)))
    }

    /// Whether the event was stored.
    pub fn contains(&self, ts: u64, id: &str) -> bool {
        self.slices
            .get(&slice_start(ts))
            .is_some_and(|s| s.ids.contains(id))
    }

    /// Whether an event with this key was stored in any hour: for an event
    /// whose hour is only where its page placed it.
    pub fn contains_anywhere(&self, id: &str) -> bool {
        self.slices.values().any(|s| s.ids.contains(id))
    }

    /// Records a stored event; false if it was already recorded.
    pub fn insert(&mut self, ts: u64, id: &str) -> bool {
        let slice = self.slices.entry(slice_start(ts)).or_default();
        let added = slice.ids.insert(id);
        if !added {
            return false;
        }
        if let Some(count) = slice.count.as_mut().filter(|c| ts <= c.through_ms) {
            count.stored += 1;
        }
        if self.tail_from_ms.is_some_and(|from| ts >= from) {
            let at = self.tail.partition_point(|t| *t <= ts);
            self.tail.insert(at, ts);
        }
        true
    }

    /// Records a stored event kept in the quarantine; false if it was already recorded.
    pub fn insert_quarantined(&mut self, ts: u64, id: &str) -> bool {
        let added = self.insert(ts, id);
        if added {
            self.slices
                .get_mut(&slice_start(ts))
                .expect("inserted above")
                .quarantined += 1;
        }
        added
    }

    /// The first millisecond of `slice` the ledger covers.
    pub fn covered_start(&self, slice: u64) -> u64 {
        slice.max(self.from_ms)
    }

    /// Forgets the slices before the one holding `ms`; never moves backwards.
    pub fn forget_before(&mut self, ms: u64) {
        let from = slice_start(ms);
        if from <= self.from_ms {
            return;
        }
        self.slices = self.slices.split_off(&from);
        self.from_ms = from;
    }

    /// Sum of the gaps of every slice.
    pub fn total_gap(&self) -> u64 {
        self.slices.values().map(Slice::gap).sum()
    }

    /// Ids held, across slices.
    pub fn ids_held(&self) -> usize {
        self.slices.values().map(|s| s.ids.len()).sum()
    }
}

/// A set of event ids, compact for ObjectIds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet {
    oids: BTreeSet<[u8; 12]>,
    other: BTreeSet<String>,
}

/// An id of exactly 24 lower-case hex digits as its 12 bytes: such an id
/// round-trips exactly; any other spelling is kept as text.
fn object_id(id: &str) -> Option<[u8; 12]> {
    let bytes = id.as_bytes();
    if bytes.len() != 24 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 12];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

impl IdSet {
    /// Whether `id` is in the set.
    pub fn contains(&self, id: &str) -> bool {
        match object_id(id) {
            Some(oid) => self.oids.contains(&oid),
            None => self.other.contains(id),
        }
    }

    /// Adds `id`; false if it was there.
    pub fn insert(&mut self, id: &str) -> bool {
        match object_id(id) {
            Some(oid) => self.oids.insert(oid),
            None => self.other.insert(id.to_owned()),
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.oids.len() + self.other.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Serialized form: ObjectIds concatenated as base64 (16 characters each),
/// other ids as strings.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdSetText {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    oids: String,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    other: BTreeSet<String>,
}

/// Base64 characters of one ObjectId: 12 bytes need no padding, so the
/// encodings of the ids laid end to end are the encoding of their concatenation.
const OID_CHARS: usize = 16;

impl Serialize for IdSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut oids = String::with_capacity(self.oids.len() * OID_CHARS);
        for oid in &self.oids {
            STANDARD_NO_PAD.encode_string(oid, &mut oids);
        }
        IdSetText {
            oids,
            other: self.other.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for IdSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = IdSetText::deserialize(deserializer)?;
        if text.oids.len() % OID_CHARS != 0 {
            return Err(D::Error::custom(
                "ledger ids are not a whole number of 12-byte ObjectIds",
            ));
        }
        let oids = text
            .oids
            .as_bytes()
            .chunks_exact(OID_CHARS)
            .map(|chunk| {
                let mut oid = [0u8; 12];
                STANDARD_NO_PAD
                    .decode_slice(chunk, &mut oid)
                    .ok()
                    .filter(|n| *n == 12)
                    .map(|_| oid)
                    .ok_or_else(|| D::Error::custom("ledger ids are not base64 ObjectIds"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            oids,
            other: text.other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "68483b21f99472ce88e5d355";

    #[test]
    fn a_count_stops_before_the_tail_and_compares_only_what_it_covers() {
        let mut ledger = Ledger::new(0);
        assert_eq!(
            ledger.countable_through(5_000),
            5_000,
            "no tail: up to the end"
        );
        ledger.insert(1_000, "a");
        ledger.set_tail_from(2_000);
        for (ts, id) in [(1_500, "b"), (2_000, "c"), (2_500, "d"), (2_500, "d")] {
            ledger.insert(ts, id);
        }
        assert_eq!(
            ledger.tail,
            [2_000, 2_500],
            "only the events from its start, once"
        );
        assert_eq!(ledger.countable_through(5_000), 1_999);
        assert_eq!(ledger.stored_through(0, 1_999), 2);
        assert_eq!(ledger.stored_through(0, 2_000), 3);
        assert_eq!(ledger.stored_through(SLICE_MS, SLICE_MS + 5), 0);
        ledger.set_tail_from(2_200);
        assert_eq!(ledger.tail, [2_500], "the times before it are forgotten");
        ledger.set_tail_from(100);
        assert_eq!(ledger.tail_from_ms, Some(2_200), "never backwards");
        let back: Ledger = serde_json::from_slice(&serde_json::to_vec(&ledger).unwrap()).unwrap();
        assert_eq!(back, ledger);
    }

    #[test]
    fn object_ids_are_stored_as_bytes_and_anything_else_as_text() {
        let mut set = IdSet::default();
        assert!(set.insert(OID));
        assert!(!set.insert(OID), "a second insert is refused");
        for other in [
            "68483B21F99472CE88E5D355",
            "id00001",
            "68483b21f99472ce88e5d35",
            "",
        ] {
            assert!(!set.contains(other), "{other}");
            assert!(set.insert(other));
        }
        assert!(set.contains(OID) && set.contains("id00001"));
        assert_eq!(set.len(), 5);
        let json = serde_json::to_string(&set).unwrap();
        assert!(json.contains("\"oids\":\"aEg7IfmUcs6I5dNV\""), "{json}");
        let back: IdSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
    }

    #[test]
    fn damaged_id_text_is_refused() {
        for bad in [
            r#"{"oids":"!!"}"#,
            r#"{"oids":"aEg7IfmUcs6I5dN"}"#,
            r#"{"x":1}"#,
        ] {
            assert!(serde_json::from_str::<IdSet>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_follow_events_stored_inside_the_counted_range() {
        let mut ledger = Ledger::new(0);
        let hour = 5 * SLICE_MS;
        ledger.insert(hour + 10, "a");
        ledger.slices.get_mut(&hour).unwrap().count = Some(Count {
            events: 4,
            through_ms: hour + 100,
            at_ms: 1,
            stored: 1,
        });
        assert_eq!(ledger.total_gap(), 3);
        ledger.insert(hour + 50, "b");
        ledger.insert(hour + 50, "b");
        ledger.insert(hour + 101, "c");
        let slice = &ledger.slices[&hour];
        assert_eq!((slice.stored(), slice.gap()), (3, 2), "only b was counted");
        assert!(ledger.contains(hour + 101, "c"));
        assert!(
            !ledger.contains(hour + SLICE_MS + 50, "b"),
            "ids are looked up in the hour of their timestamp"
        );
        assert_eq!(ledger.ids_held(), 3);
    }

    #[test]
    fn forgetting_keeps_the_slice_of_the_boundary_and_never_goes_back() {
        let mut ledger = Ledger::new(0);
        for h in 0..4 {
            ledger.insert(h * SLICE_MS + 1, &format!("e{h}"));
        }
        ledger.forget_before(2 * SLICE_MS + 7);
        assert_eq!(ledger.from_ms, 2 * SLICE_MS);
        assert_eq!(
            ledger.slices.keys().copied().collect::<Vec<_>>(),
            [2 * SLICE_MS, 3 * SLICE_MS]
        );
        ledger.forget_before(0);
        assert_eq!(ledger.from_ms, 2 * SLICE_MS);
        assert_eq!(ledger.covered_start(SLICE_MS), 2 * SLICE_MS);
    }
}
