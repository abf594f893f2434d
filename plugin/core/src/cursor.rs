//! The resume state: the pass window, where the next request starts inside
//! it, and which events a later request may return again.
//!
//! A pass reads a settled window `[start, end]`: `end` is `now - settle lag`,
//! fixed when the pass begins and kept here, so a pass resumed after a crash
//! reads the same window. The next window starts `overlap` before the previous
//! end, to pick up events Harness made visible late.
//!
//! Inside a window the cursor moves `startTime` forward to the newest
//! timestamp read, instead of walking offsets across the window: offsets shift
//! when Harness inserts events while we page, timestamps do not. Offsets are
//! used only to step past events that share the cursor's millisecond.
//!
//! Size bound: `seen_at_cursor` holds the ids of one millisecond, `recent` the
//! ids emitted in the last `overlap` of the window (about 30 bytes per event:
//! 1 event/s with a 900 s overlap is about 27 KB).

use serde::{Deserialize, Serialize};

use crate::page::Event;

/// Version of the serialized checkpoint; bumped on incompatible changes.
pub const VERSION: u32 = 2;

/// An inclusive time window, epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// `startTime`.
    pub start_ms: u64,
    /// `endTime`.
    pub end_ms: u64,
}

/// Serialized resume state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version, [`VERSION`].
    pub version: u32,
    /// The account this state belongs to, so a misplaced state file is refused.
    pub account_id: String,
    /// Start of the very first window (used while no pass has completed).
    pub initial_start_ms: u64,
    /// End of the last completed pass.
    pub last_end_ms: Option<u64>,
    /// The pass in progress.
    pub window: Option<Window>,
    /// `startTime` of the next request inside `window`.
    pub cursor_ms: u64,
    /// `auditId`s at `cursor_ms` already read in this pass.
    pub seen_at_cursor: Vec<String>,
    /// `(timestamp, auditId)` of emitted events that a later window may return
    /// again, sorted.
    pub recent: Vec<(u64, String)>,
    /// Newest `timestamp` emitted so far.
    pub watermark_ms: Option<u64>,
    /// `listV2` only: the token for the next page of a request body.
    #[serde(default)]
    pub chain: Option<Chain>,
}

/// A `listV2` page token and the body it belongs to. A token is sent only
/// with that exact body, inside the same window; anything else starts a new
/// chain at the cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    /// `startTime` of the chain's body.
    pub start_ms: u64,
    /// [`crate::request::body_hash`] of that body.
    pub body_hash: u64,
    /// The token for the next page.
    pub token: String,
}

impl Checkpoint {
    /// State for an account with no history: the first window starts at `start_ms`.
    pub fn fresh(account_id: &str, start_ms: u64) -> Self {
        Self {
            version: VERSION,
            account_id: account_id.to_owned(),
            initial_start_ms: start_ms,
            last_end_ms: None,
            window: None,
            cursor_ms: start_ms,
            seen_at_cursor: Vec::new(),
            recent: Vec::new(),
            watermark_ms: None,
            chain: None,
        }
    }

    /// Parses and checks a stored checkpoint against the configured account.
    pub fn load(bytes: &[u8], account_id: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Versioned {
            version: Option<u32>,
        }
        let version = serde_json::from_slice::<Versioned>(bytes)
            .map_err(|e| format!("checkpoint is not valid harness-audit state: {e}"))?
            .version;
        if version != Some(VERSION) {
            return Err(format!(
                "checkpoint version {version:?} is not supported (expected {VERSION}); \
                 use --reset-checkpoint to start over"
            ));
        }
        let cp: Self = serde_json::from_slice(bytes)
            .map_err(|e| format!("checkpoint is not valid harness-audit state: {e}"))?;
        if cp.account_id != account_id {
            return Err(format!(
                "checkpoint belongs to account `{}`, not `{account_id}`: use a separate state location per account",
                cp.account_id
            ));
        }
        if cp.recent.windows(2).any(|w| w[0] > w[1]) {
            return Err("checkpoint is corrupt: `recent` is not sorted".into());
        }
        Ok(cp)
    }

    /// JSON bytes, as stored by the host.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("checkpoint fields always serialize")
    }

    /// The window of the pass in progress, starting one if none is. `None`
    /// when nothing new has settled since the last pass.
    pub fn begin_pass(
        &mut self,
        now_ms: u64,
        settle_lag_ms: u64,
        overlap_ms: u64,
    ) -> Option<Window> {
        if let Some(window) = self.window {
            return Some(window);
        }
        let end_ms = now_ms.saturating_sub(settle_lag_ms);
        let start_ms = match self.last_end_ms {
            Some(last) if end_ms <= last => return None,
            Some(last) => last.saturating_sub(overlap_ms),
            None if end_ms < self.initial_start_ms => return None,
            None => self.initial_start_ms,
        };
        let window = Window { start_ms, end_ms };
        self.window = Some(window);
        self.cursor_ms = start_ms;
        self.seen_at_cursor.clear();
        self.chain = None;
        self.recent.retain(|(ts, _)| *ts >= start_ms);
        Some(window)
    }

    /// `pageIndex` for the next request: skips whole pages of events already
    /// read at the cursor's millisecond.
    pub fn page_index(&self, page_size: u32) -> u32 {
        u32::try_from(self.seen_at_cursor.len() / page_size as usize).unwrap_or(u32::MAX)
    }

    /// Whether `event` was read before in this pass, at the cursor's millisecond.
    pub fn read_at_cursor(&self, event: &Event) -> bool {
        event.timestamp_ms == self.cursor_ms && self.seen_at_cursor.contains(&event.audit_id)
    }

    /// Whether `event` was emitted before (this pass or an earlier one).
    pub fn has_seen(&self, event: &Event) -> bool {
        self.read_at_cursor(event)
            || self
                .recent
                .binary_search_by(|(ts, id)| {
                    (*ts, id.as_str()).cmp(&(event.timestamp_ms, event.audit_id.as_str()))
                })
                .is_ok()
    }

    /// Records that `page` (every event of a page, ascending) was read and
    /// that `emitted` (its new events) will be emitted. In place, because the
    /// state can be large (`recent`) and changes with every page.
    pub fn advance(&mut self, page: &[Event], emitted: &[&Event], overlap_ms: u64) {
        if let Some(last) = page.last() {
            if last.timestamp_ms != self.cursor_ms {
                self.cursor_ms = last.timestamp_ms;
                self.seen_at_cursor.clear();
            }
            for event in page.iter().filter(|e| e.timestamp_ms == self.cursor_ms) {
                if !self.seen_at_cursor.contains(&event.audit_id) {
                    self.seen_at_cursor.push(event.audit_id.clone());
                }
            }
        }
        let keep_from = self
            .window
            .map_or(0, |w| w.end_ms.saturating_sub(overlap_ms));
        for event in emitted.iter().filter(|e| e.timestamp_ms >= keep_from) {
            let key = (event.timestamp_ms, event.audit_id.clone());
            if let Err(at) = self.recent.binary_search(&key) {
                self.recent.insert(at, key);
            }
        }
        if let Some(last) = emitted.last() {
            self.watermark_ms = Some(
                self.watermark_ms
                    .map_or(last.timestamp_ms, |w| w.max(last.timestamp_ms)),
            );
        }
    }

    /// Closes the pass in progress: the next window starts `overlap_ms` before its end.
    pub fn finish_pass(&mut self, overlap_ms: u64) {
        if let Some(window) = self.window.take() {
            self.last_end_ms = Some(window.end_ms);
            let keep_from = window.end_ms.saturating_sub(overlap_ms);
            self.recent.retain(|(ts, _)| *ts >= keep_from);
            self.seen_at_cursor.clear();
            self.cursor_ms = keep_from;
            self.chain = None;
        }
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
mod tests;
