//! What a pass did, and the one line it is summed up in.

use std::time::Duration;

use crate::storage::pipeline::PipelineStats;
use crate::time::rfc3339_ms;

/// What a successful pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassSummary {
    /// What reached storage.
    pub stored: PipelineStats,
    /// Successful page responses.
    pub pages: u64,
    /// Retried requests.
    pub retries: u64,
    /// Events the API returned.
    pub events_read: u64,
    /// Events dropped as already emitted.
    pub duplicates_dropped: u64,
    /// Newest event time written so far (epoch ms).
    pub watermark_ms: Option<u64>,
    /// The window read (epoch ms, inclusive); none when nothing new had settled.
    pub window: Option<(u64, u64)>,
    /// The pass was asked to stop (shutdown) before it caught up.
    pub stopped_early: bool,
    /// Time to instantiate the component for this pass.
    pub instantiate: Duration,
    /// CPU time the pass used: the component and the host's work for it.
    pub cpu: Duration,
    /// Count requests (hours checked against Harness's count).
    pub count_requests: u64,
    /// Hours read again because Harness counted more than was stored.
    pub slices_reread: u64,
    /// Events those re-reads wrote: events that became visible after their window was read.
    pub late_events: u64,
    /// Events Harness counts (at each hour's last check) that were never returned.
    pub unreconciled_events: u64,
}

impl PassSummary {
    /// The one-line summary printed at exit; `now_ms` gives how far behind the newest event is.
    pub fn line(
        &self,
        data: &str,
        quarantine: Option<&str>,
        checkpoint: &str,
        now_ms: u64,
    ) -> String {
        let window = self.window.map_or_else(
            || "none (nothing new has settled)".to_owned(),
            |(s, e)| format!("{}..{}", rfc3339_ms(s), rfc3339_ms(e)),
        );
        let newest = self.watermark_ms.map_or_else(
            || "none yet".to_owned(),
            |w| {
                format!(
                    "{} ({} s behind now)",
                    rfc3339_ms(w),
                    now_ms.saturating_sub(w) / 1000
                )
            },
        );
        let stopped = if self.stopped_early {
            " (stopped early for shutdown; the next pass continues)"
        } else {
            ""
        };
        let gap = if self.unreconciled_events > 0 {
            format!(
                "; {} events counted by Harness were never returned (see `harness-audit ledger`)",
                self.unreconciled_events
            )
        } else {
            String::new()
        };
        let quarantined: u64 = self.stored.quarantined.values().sum();
        let kept = if quarantined > 0 {
            let reasons: Vec<String> = self
                .stored
                .quarantined
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            format!(
                ", and kept {quarantined} events it could not read or shape byte for byte in the quarantine \
                 ({}) in {} new objects at {}",
                reasons.join(", "),
                self.stored.quarantine_objects,
                quarantine.unwrap_or("the quarantine")
            )
        } else {
            String::new()
        };
        format!(
            "collected {} events in {} pages into {} new objects at {data}{kept} (read {}, {} duplicates dropped, \
             {} retries); window {window}; checked {} hours against Harness's counts, re-read {} and found {} late \
             events; checkpoint {checkpoint}; newest event {newest}{gap}{stopped}",
            self.stored.events,
            self.pages,
            self.stored.objects,
            self.events_read,
            self.duplicates_dropped,
            self.retries,
            self.count_requests,
            self.slices_reread,
            self.late_events
        )
    }
}
