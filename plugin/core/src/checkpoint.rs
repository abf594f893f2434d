//! The resume state: how far the pass has read, the read in progress, the
//! ledger of what was stored and counted, and the slices awaiting a check.
//!
//! A pass reads settled windows `[start, end]`: `end` is `now - settle lag`,
//! fixed when the pass begins, and a window in progress is kept here, so a
//! pass resumed after a crash reads the same one. The next window starts
//! `overlap` before the previous end, to pick up events Harness made visible
//! late; later ones are found by reconciliation against the ledger.
//!
//! Size: the ledger dominates (see [`crate::ledger`]); the walk adds the ids
//! of one millisecond.

use serde::{Deserialize, Serialize};

use crate::ledger::{Ledger, SLICE_MS};
use crate::walk::{Chain, Purpose, Walk, Window};

/// Version of the serialized checkpoint; bumped on incompatible changes.
pub const VERSION: u32 = 3;

/// Longest span one window covers besides its overlap: a backlog is read as
/// a run of windows, so the ids a window must keep stay bounded.
pub const MAX_WINDOW_MS: u64 = 24 * SLICE_MS;

/// Serialized resume state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version, [`VERSION`].
    pub version: u32,
    /// The account this state belongs to, so a misplaced state file is refused.
    pub account_id: String,
    /// Start of the very first window (used while no window has completed).
    pub initial_start_ms: u64,
    /// End of the last completed window.
    pub last_end_ms: Option<u64>,
    /// The read in progress: a window, or a slice read again.
    pub walk: Option<Walk>,
    /// Newest `timestamp` emitted so far.
    pub watermark_ms: Option<u64>,
    /// What was stored and counted, hour by hour.
    pub ledger: Ledger,
    /// Starts of the slices whose count is to be checked, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_check: Vec<u64>,
    /// When the next periodic reconciliation is due (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reconcile_ms: Option<u64>,
    /// When the next check of the recent hours is due (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_recent_check_ms: Option<u64>,
}

/// Version 2, read once and converted: it had no ledger, only the ids
/// emitted in the last overlap (`recent`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointV2 {
    account_id: String,
    initial_start_ms: u64,
    last_end_ms: Option<u64>,
    window: Option<Window>,
    cursor_ms: u64,
    seen_at_cursor: Vec<String>,
    recent: Vec<(u64, String)>,
    watermark_ms: Option<u64>,
    #[serde(default)]
    chain: Option<Chain>,
    #[expect(dead_code, reason = "read to refuse unknown fields; always 2")]
    version: u32,
}

impl CheckpointV2 {
    /// Version 3 with the same progress. `recent` held every id emitted at or
    /// after the end of the last window minus the overlap (and at or after
    /// the window in progress's start), so the ledger starts there.
    fn upgrade(self, overlap_ms: u64) -> Checkpoint {
        let from_ms = match (self.window, self.last_end_ms) {
            (Some(w), _) => w.end_ms.saturating_sub(overlap_ms).max(w.start_ms),
            (None, Some(last)) => last.saturating_sub(overlap_ms),
            (None, None) => self.initial_start_ms,
        };
        let from_ms = from_ms.max(self.initial_start_ms);
        let mut ledger = Ledger::new(from_ms);
        for (ts, id) in self.recent.iter().filter(|(ts, _)| *ts >= from_ms) {
            ledger.insert(*ts, id);
        }
        let walk = self.window.map(|range| Walk {
            cursor_ms: self.cursor_ms,
            seen_at_cursor: self.seen_at_cursor,
            chain: self.chain,
            ..Walk::new(Purpose::Window, range)
        });
        Checkpoint {
            version: VERSION,
            account_id: self.account_id,
            initial_start_ms: self.initial_start_ms,
            last_end_ms: self.last_end_ms,
            walk,
            watermark_ms: self.watermark_ms,
            ledger,
            to_check: Vec::new(),
            next_reconcile_ms: None,
            next_recent_check_ms: None,
        }
    }
}

impl Checkpoint {
    /// State for an account with no history: the first window starts at `start_ms`.
    pub fn fresh(account_id: &str, start_ms: u64) -> Self {
        Self {
            version: VERSION,
            account_id: account_id.to_owned(),
            initial_start_ms: start_ms,
            last_end_ms: None,
            walk: None,
            watermark_ms: None,
            ledger: Ledger::new(start_ms),
            to_check: Vec::new(),
            next_reconcile_ms: None,
            next_recent_check_ms: None,
        }
    }

    /// Parses and checks a stored checkpoint against the configured account.
    /// A version 2 checkpoint is converted; `overlap_ms` tells how far back
    /// its ids reach.
    pub fn load(bytes: &[u8], account_id: &str, overlap_ms: u64) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Versioned {
            version: Option<u32>,
        }
        let invalid =
            |e: serde_json::Error| format!("checkpoint is not valid harness-audit state: {e}");
        let cp = match serde_json::from_slice::<Versioned>(bytes)
            .map_err(invalid)?
            .version
        {
            Some(VERSION) => serde_json::from_slice::<Self>(bytes).map_err(invalid)?,
            Some(2) => serde_json::from_slice::<CheckpointV2>(bytes)
                .map_err(invalid)?
                .upgrade(overlap_ms),
            version => {
                return Err(format!(
                    "checkpoint version {version:?} is not supported (expected {VERSION}); \
                     use --reset-checkpoint to start over"
                ));
            }
        };
        if cp.account_id != account_id {
            return Err(format!(
                "checkpoint belongs to account `{}`, not `{account_id}`: use a separate state location per account",
                cp.account_id
            ));
        }
        if let Some((&first, _)) = cp.ledger.slices.first_key_value()
            && first + SLICE_MS <= cp.ledger.from_ms
        {
            return Err("checkpoint is corrupt: the ledger holds a slice before its start".into());
        }
        Ok(cp)
    }

    /// JSON bytes, as stored by the host.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Sized up front: the ledger makes this megabytes, and growing by
        // doubling would leave that much again behind in linear memory.
        let ids = self.ledger.ids_held() * 17;
        let mut bytes = Vec::with_capacity(ids + 1024 + self.ledger.slices.len() * 160);
        serde_json::to_writer(&mut bytes, self).expect("checkpoint fields always serialize");
        bytes
    }

    /// The next window up to `target_end_ms`, or `None` when everything up
    /// to it has been read. It starts `overlap_ms` before the last window's
    /// end and spans at most [`MAX_WINDOW_MS`] beyond that.
    pub fn next_window(&self, target_end_ms: u64, overlap_ms: u64) -> Option<Window> {
        let start_ms = match self.last_end_ms {
            Some(last) if target_end_ms <= last => return None,
            Some(last) => last.saturating_sub(overlap_ms),
            None if target_end_ms < self.initial_start_ms => return None,
            None => self.initial_start_ms,
        };
        let end_ms = target_end_ms.min(
            start_ms
                .saturating_add(overlap_ms)
                .saturating_add(MAX_WINDOW_MS),
        );
        Some(Window { start_ms, end_ms })
    }

    /// Queues the slices from `from_ms` to `to_ms` (inclusive) for a count
    /// check, each once, never before the ledger's start.
    pub fn queue_checks(&mut self, from_ms: u64, to_ms: u64) {
        let mut slice = crate::ledger::slice_start(from_ms.max(self.ledger.from_ms));
        while slice <= to_ms {
            if !self.to_check.contains(&slice) {
                self.to_check.push(slice);
            }
            slice += SLICE_MS;
        }
    }

    /// Records an event to be emitted in the ledger and the watermark;
    /// false, recording nothing, if the ledger holds it already.
    pub fn record(&mut self, ts: u64, id: &str) -> bool {
        if !self.ledger.insert(ts, id) {
            return false;
        }
        self.watermark_ms = Some(self.watermark_ms.map_or(ts, |w| w.max(ts)));
        true
    }

    /// Records an event to be kept in the quarantine, in the ledger only:
    /// the watermark follows the events written in the configured shape.
    /// False, recording nothing, if the ledger holds it already.
    pub fn record_quarantined(&mut self, ts: u64, id: &str) -> bool {
        self.ledger.insert_quarantined(ts, id)
    }
}

#[cfg(test)]
mod tests;
