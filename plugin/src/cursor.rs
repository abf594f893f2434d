//! The resume state: where the next request starts and which events at that
//! exact millisecond were already emitted.
//!
//! The cursor moves `startTime` forward to the newest emitted `timestamp`
//! instead of walking offsets across the whole window: offsets shift when
//! Harness inserts events while we page, timestamps do not. Offsets are used
//! only to step past events that share the cursor's millisecond.

use serde::{Deserialize, Serialize};

use crate::page::Event;

/// Version of the serialized checkpoint; bumped on incompatible changes.
pub const VERSION: u32 = 1;

/// Serialized resume state. Its size is bounded by the number of events that
/// share one millisecond, since only those ids are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version, [`VERSION`].
    pub version: u32,
    /// The account this state belongs to, so a misplaced state file is refused.
    pub account_id: String,
    /// `startTime` of the next request (epoch ms, inclusive).
    pub cursor_ms: u64,
    /// `auditId`s with `timestamp == cursor_ms` already emitted.
    pub seen_at_cursor: Vec<String>,
    /// End of the pass in progress; `None` between passes.
    pub window_end_ms: Option<u64>,
    /// Newest `timestamp` emitted so far.
    pub watermark_ms: Option<u64>,
}

impl Checkpoint {
    /// State for an account with no history: start `start_ms`.
    pub fn fresh(account_id: &str, start_ms: u64) -> Self {
        Self {
            version: VERSION,
            account_id: account_id.to_owned(),
            cursor_ms: start_ms,
            seen_at_cursor: Vec::new(),
            window_end_ms: None,
            watermark_ms: None,
        }
    }

    /// Parses and checks a stored checkpoint against the configured account.
    pub fn load(bytes: &[u8], account_id: &str) -> Result<Self, String> {
        let cp: Self = serde_json::from_slice(bytes)
            .map_err(|e| format!("checkpoint is not valid harness-audit state: {e}"))?;
        if cp.version != VERSION {
            return Err(format!(
                "checkpoint version {} is not supported (expected {VERSION})",
                cp.version
            ));
        }
        if cp.account_id != account_id {
            return Err(format!(
                "checkpoint belongs to account `{}`, not `{account_id}`: use a separate state location per account",
                cp.account_id
            ));
        }
        Ok(cp)
    }

    /// JSON bytes, as stored by the host.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("checkpoint fields always serialize")
    }

    /// `pageIndex` for the next request: skips whole pages of events already
    /// seen at the cursor's millisecond.
    pub fn page_index(&self, page_size: u32) -> u32 {
        u32::try_from(self.seen_at_cursor.len() / page_size as usize).unwrap_or(u32::MAX)
    }

    /// Whether `event` was emitted before.
    pub fn has_seen(&self, event: &Event) -> bool {
        event.timestamp_ms == self.cursor_ms && self.seen_at_cursor.contains(&event.audit_id)
    }

    /// The state after `emitted` (new events in ascending time order) is durable.
    pub fn advanced(&self, emitted: &[&Event]) -> Self {
        let mut next = self.clone();
        let Some(last) = emitted.last() else {
            return next;
        };
        if last.timestamp_ms != next.cursor_ms {
            next.cursor_ms = last.timestamp_ms;
            next.seen_at_cursor.clear();
        }
        next.seen_at_cursor.extend(
            emitted
                .iter()
                .filter(|e| e.timestamp_ms == next.cursor_ms)
                .map(|e| e.audit_id.clone()),
        );
        next.watermark_ms = Some(
            next.watermark_ms
                .map_or(last.timestamp_ms, |w| w.max(last.timestamp_ms)),
        );
        next
    }
}

#[cfg(test)]
pub(crate) fn event(id: &str, ts: u64) -> Event {
    Event {
        raw: serde_json::value::RawValue::from_string(format!(
            r#"{{"auditId":"{id}","timestamp":{ts}}}"#
        ))
        .unwrap(),
        audit_id: id.into(),
        timestamp_ms: ts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_account_and_version() {
        let cp = Checkpoint {
            seen_at_cursor: vec!["a".into()],
            window_end_ms: Some(9),
            ..Checkpoint::fresh("acct", 5)
        };
        assert_eq!(Checkpoint::load(&cp.to_bytes(), "acct").unwrap(), cp);
        assert!(
            Checkpoint::load(&cp.to_bytes(), "other")
                .unwrap_err()
                .contains("belongs to account `acct`")
        );
        let v2 = String::from_utf8(cp.to_bytes())
            .unwrap()
            .replace("\"version\":1", "\"version\":2");
        assert!(
            Checkpoint::load(v2.as_bytes(), "acct")
                .unwrap_err()
                .contains("version 2")
        );
        assert!(Checkpoint::load(b"{\"since\":1}", "acct").is_err());
    }

    #[test]
    fn advancing_moves_cursor_to_newest_and_keeps_only_its_ids() {
        let (a, b, c) = (event("a", 10), event("b", 20), event("c", 20));
        let next = Checkpoint::fresh("x", 5).advanced(&[&a, &b, &c]);
        assert_eq!(next.cursor_ms, 20);
        assert_eq!(next.seen_at_cursor, ["b", "c"]);
        assert_eq!(next.watermark_ms, Some(20));
        assert!(next.has_seen(&b) && !next.has_seen(&a));
        assert!(!next.has_seen(&event("d", 20)));
    }

    #[test]
    fn advancing_within_the_same_millisecond_accumulates_ids() {
        let cp = Checkpoint {
            cursor_ms: 20,
            seen_at_cursor: vec!["b".into()],
            ..Checkpoint::fresh("x", 0)
        };
        let next = cp.advanced(&[&event("c", 20)]);
        assert_eq!(next.seen_at_cursor, ["b", "c"]);
        assert_eq!(cp.advanced(&[]), cp);
    }

    #[test]
    fn page_index_skips_only_whole_pages_of_seen_ids() {
        let mut cp = Checkpoint::fresh("x", 0);
        cp.seen_at_cursor = (0..249).map(|i| i.to_string()).collect();
        assert_eq!(cp.page_index(100), 2);
        assert_eq!(cp.page_index(50), 4);
        cp.seen_at_cursor.truncate(99);
        assert_eq!(cp.page_index(100), 0);
    }
}
