//! Why the host refuses a batch, and the limits the refusals name: apart
//! from the checks (`batch_rules`), so that the pass's error can hold a
//! refusal without depending on the component's bindings.

/// Largest batch accepted from a component.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Largest checkpoint accepted from a component.
pub const MAX_CHECKPOINT_BYTES: usize = 32 * 1024 * 1024;
/// How far past this host's clock an event may lie: the component reads the
/// same clock, so only a clock stepped back during a pass comes near it.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Why the host refused a batch. Each names the rule it broke; resending the
/// batch unchanged fails again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchRefusal {
    /// More events than `BATCH_MAX_EVENTS`.
    #[error("rule `max-events`: the batch holds {count} events, over BATCH_MAX_EVENTS ({max})")]
    TooManyEvents {
        /// Its event count.
        count: u32,
        /// The setting's value.
        max: u32,
    },
    /// Over the byte limit.
    #[error("rule `max-bytes`: the batch is {bytes} bytes, over the {MAX_BATCH_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// An empty or oversized checkpoint.
    #[error(
        "rule `checkpoint`: the checkpoint is {bytes} bytes; it must hold 1 to {MAX_CHECKPOINT_BYTES}"
    )]
    Checkpoint {
        /// Its size.
        bytes: usize,
    },
    /// No event at all, lines without their last newline, or lines with an
    /// `event-count` of 0.
    #[error(
        "rule `ndjson`: a batch holds at least one line or quarantined event, and its lines end with a newline"
    )]
    NotNdjson,
    /// A quarantined event that is empty or spans lines.
    #[error("rule `quarantine`: quarantined event {event} {problem}")]
    Quarantine {
        /// 1-based.
        event: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Bytes that are not UTF-8, strings included.
    #[error("rule `utf-8`: line {line} is not valid UTF-8")]
    NotUtf8 {
        /// 1-based.
        line: usize,
    },
    /// A line that is not one JSON object, or whose time is not a time.
    #[error("rule `json-object`: line {line} is not one JSON object with a time ({detail})")]
    NotJsonObject {
        /// 1-based.
        line: usize,
        /// The parser's words.
        detail: String,
    },
    /// `event-count` differs from the lines.
    #[error("rule `event-count`: event-count is {count} but the batch holds {lines} lines")]
    CountMismatch {
        /// What the batch says.
        count: u32,
        /// What it holds.
        lines: u32,
    },
    /// `first-event-ms` after `last-event-ms`, or a window that ends before it starts.
    #[error("rule `ordered`: {what} {start} is after {end}")]
    Inverted {
        /// Which pair.
        what: &'static str,
        /// The start.
        start: u64,
        /// The end.
        end: u64,
    },
    /// An event without its time.
    #[error("rule `event-time`: line {line} has no top-level `{field}`")]
    TimeMissing {
        /// 1-based.
        line: usize,
        /// The field looked for.
        field: &'static str,
    },
    /// An event outside `[first-event-ms, last-event-ms]`.
    #[error(
        "rule `event-time`: {what} {line} is at {at}, outside first-event-ms..last-event-ms {first}..{last}"
    )]
    EventOutsideBatch {
        /// `line`, or `quarantined event`.
        what: &'static str,
        /// 1-based.
        line: usize,
        /// Its time.
        at: u64,
        /// `first-event-ms`.
        first: u64,
        /// `last-event-ms`.
        last: u64,
    },
    /// Events outside the batch's own window.
    #[error(
        "rule `batch-window`: events {first}..{last} lie outside the batch's window {start}..{end}"
    )]
    OutsideBatchWindow {
        /// `first-event-ms`.
        first: u64,
        /// `last-event-ms`.
        last: u64,
        /// `window-start-ms`.
        start: u64,
        /// `window-end-ms`.
        end: u64,
    },
    /// A batch window outside the pass's window.
    #[error(
        "rule `pass-window`: the batch's window {start}..{end} lies outside the pass's window {from}..{to}"
    )]
    OutsidePassWindow {
        /// `window-start-ms`.
        start: u64,
        /// `window-end-ms`.
        end: u64,
        /// The pass's first millisecond.
        from: u64,
        /// The pass's last millisecond.
        to: u64,
    },
    /// Something later than now plus the allowed clock skew.
    #[error(
        "rule `not-future`: the batch's window ends at {end}, later than now ({now}) plus the {MAX_CLOCK_SKEW_MS} ms clock skew allowed"
    )]
    Future {
        /// `window-end-ms`.
        end: u64,
        /// This host's clock.
        now: u64,
    },
}
