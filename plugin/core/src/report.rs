//! What a poll tells its host: counters, completeness findings, and the ledger.

use crate::ledger::Count;
use crate::walk::Window;

/// Counters for one `poll` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Events the API returned.
    pub events_read: u64,
    /// Events emitted in the configured shape.
    pub events_emitted: u64,
    /// Events emitted to the quarantine.
    pub events_quarantined: u64,
    /// Events dropped as already read or emitted.
    pub duplicates_dropped: u64,
    /// Successful page responses.
    pub pages: u32,
    /// Batches emitted.
    pub batches: u32,
    /// Retried requests.
    pub retries: u32,
    /// The pass reached the end of its last window and has nothing left to check.
    pub caught_up: bool,
    /// Newest emitted `timestamp`.
    pub watermark_ms: Option<u64>,
    /// The span of the windows this call read, if any.
    pub window: Option<Window>,
    /// Count requests (one per slice checked).
    pub count_requests: u32,
    /// Slices read again because Harness counted more than was stored.
    pub slices_reread: u32,
    /// Events written by those re-reads: events that arrived after their window was read.
    pub late_events: u64,
    /// Events Harness counted at the last check of each slice and that are not stored.
    pub unreconciled_events: u64,
    /// Completeness findings, for the host's log.
    pub findings: Vec<Finding>,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// A window returned fewer events than Harness counted for it; its
    /// slices are checked and, where short, read again.
    WindowShort,
    /// Re-reading a slice found events that arrived after their window was read.
    LateCollected,
    /// After a re-read, Harness still counts events in a slice that it does
    /// not return; they are reported, not collected.
    GapRemains,
    /// A millisecond held more events than could be read within the bound.
    TieIncomplete,
    /// A slice's count is lower than at its previous check.
    CountDecreased,
    /// Harness counts fewer events in a slice than were stored (retention, or a lagging count).
    CountBelowStored,
    /// A count request failed after its retries; the slice is checked at the next interval.
    CountFailed,
}

/// One completeness finding about a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// The range (epoch ms, inclusive).
    pub range: Window,
    /// Harness's count for the range (0 when the count failed).
    pub counted: u64,
    /// Events read (a window, a millisecond) or stored (a slice) for the range.
    pub collected: u64,
    /// The previous count, the failed request's error, or nothing.
    pub detail: String,
}

/// One slice of the ledger, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerSlice {
    /// First millisecond the ledger covers in the hour.
    pub start_ms: u64,
    /// Last millisecond of the hour.
    pub end_ms: u64,
    /// Events stored with a timestamp in `[start_ms, end_ms]`.
    pub stored: u64,
    /// Of those, the events kept in the quarantine.
    pub quarantined: u64,
    /// Harness's count at the last check, if any.
    pub count: Option<Count>,
}

/// The ledger as reported: the slices with events or a count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    /// The ledger covers events from this millisecond on.
    pub from_ms: u64,
    /// ...up to the end of the last completed window.
    pub through_ms: Option<u64>,
    /// Slices, oldest first; an hour that is absent had no events stored and no check.
    pub slices: Vec<LedgerSlice>,
}
