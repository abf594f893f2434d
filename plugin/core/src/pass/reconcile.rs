//! Reconciliation: each slice's count from Harness against the events stored
//! for it, and a re-read of the slices that fall short.
//!
//! Checks are queued when a window comes back short of its count, for every
//! slice of the last `reconcile_hours` once per interval, and for the slices
//! of the last `reconcile_recent_hours` once per recent interval. A check is
//! one request (`pageSize=1`, for its `totalItems`) and counts a slice only
//! up to where the next window starts reading again: what lies after is
//! still arriving, and is that window's to read. A slice is read again
//! when its gap is new or has grown since the last re-read; a gap that a
//! re-read could not close (events Harness counts but never returns) is
//! re-read only after a wait that doubles each time nothing new turns up, so
//! it costs a bounded number of re-reads and is reported in the meantime.

use super::{
    Clock, Effects, Finding, FindingKind, Pipeline, PollReport, Source, SourceError, Transport,
    describe,
};
use crate::ledger::{SLICE_MS, slice_start};
use crate::page;
use crate::request::{self, ListRequest};
use crate::settings::ApiFlavor;
use crate::walk::{Purpose, Walk, Window};

/// Doublings of the wait before a gap that did not grow is re-read again:
/// at most 64 intervals.
const MAX_BACKOFF_DOUBLINGS: u32 = 6;

impl Source {
    /// How far back periodic reconciliation looks, in ms; `None` when it is
    /// off: `reconcile_hours` is 0, the range is fixed (a backfill reads
    /// settled history), or the API gives no counts (`list-v2`).
    pub(super) fn reconcile_span_ms(&self) -> Option<u64> {
        let on = self.settings.query.api_flavor == ApiFlavor::List
            && self.settings.window.end_at_ms.is_none()
            && self.settings.window.reconcile_hours > 0;
        on.then(|| u64::from(self.settings.window.reconcile_hours) * SLICE_MS)
    }

    fn interval_ms(&self) -> u64 {
        u64::from(self.settings.window.reconcile_interval_secs) * 1000
    }

    /// How far back the recent tier looks, in ms; `None` when it is off.
    fn recent_span_ms(&self) -> Option<u64> {
        let hours = self
            .settings
            .window
            .reconcile_recent_hours
            .min(self.settings.window.reconcile_hours);
        self.reconcile_span_ms()
            .filter(|_| hours > 0)
            .map(|_| u64::from(hours) * SLICE_MS)
    }

    /// Queues slices for a check in tiers: every slice of the look-back span
    /// once per `reconcile_interval_secs`, and those of the recent span once
    /// per `reconcile_recent_interval_secs` between; true if it queued any.
    pub(super) fn queue_reconciliation(&mut self, now_ms: u64) -> bool {
        let Some(span_ms) = self.reconcile_span_ms() else {
            return false;
        };
        let Some(last_end) = self.checkpoint.last_end_ms else {
            return false;
        };
        let recent = self.recent_span_ms().map(|recent_ms| {
            let interval_ms = u64::from(self.settings.window.reconcile_recent_interval_secs) * 1000;
            (recent_ms, now_ms.saturating_add(interval_ms))
        });
        let next = now_ms.saturating_add(self.interval_ms());
        let cp = &mut self.checkpoint;
        // A first pass has just read everything: the first checks are an interval later.
        if cp.next_reconcile_ms.is_none() {
            cp.next_reconcile_ms = Some(next);
            cp.next_recent_check_ms = recent.map(|(_, next)| next);
            return false;
        }
        if cp.next_reconcile_ms.is_some_and(|due| now_ms >= due) {
            cp.next_reconcile_ms = Some(next);
            cp.next_recent_check_ms = recent.map(|(_, next)| next);
            cp.queue_checks(now_ms.saturating_sub(span_ms), last_end);
            return true;
        }
        let Some((recent_ms, next_recent)) = recent else {
            return false;
        };
        match cp.next_recent_check_ms {
            Some(due) if now_ms < due => false,
            // The tier was just turned on: its first check is an interval later.
            None => {
                cp.next_recent_check_ms = Some(next_recent);
                false
            }
            Some(_) => {
                cp.next_recent_check_ms = Some(next_recent);
                cp.queue_checks(now_ms.saturating_sub(recent_ms), last_end);
                true
            }
        }
    }

    /// Counts the next queued slice and starts re-reading it if it falls short.
    pub(super) fn check_next_slice<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
    ) -> Result<(), SourceError> {
        let slice = self.checkpoint.to_check.remove(0);
        let Some(last_end) = self.checkpoint.last_end_ms else {
            return Ok(());
        };
        let ledger = &self.checkpoint.ledger;
        let range = Window {
            start_ms: ledger.covered_start(slice),
            end_ms: (slice + SLICE_MS - 1).min(ledger.countable_through(last_end)),
        };
        if range.start_ms > range.end_ms {
            return Ok(());
        }
        let req = ListRequest {
            start_ms: range.start_ms,
            end_ms: range.end_ms,
            page_index: 0,
            page_size: 1,
            page_token: None,
        };
        let body = request::body(&self.settings, &req);
        let url = request::url(&self.settings, &req);
        let at = req.at();
        let result = self.call(
            report,
            fx,
            |t| t.post_json(&url, &body),
            |r| page::parse(r, &at),
        );
        report.count_requests += 1;
        let stored = self.checkpoint.ledger.stored_through(slice, range.end_ms);
        let failed = |detail: String| Finding {
            kind: FindingKind::CountFailed,
            range,
            counted: 0,
            collected: stored,
            detail,
        };
        let counted = match result {
            Ok(page) => page.total_items,
            // A failed check changes nothing: the slice is checked again next
            // interval. Only a refusal, which no later interval changes, fails the pass.
            Err(e) if e.is_retryable() || matches!(e, SourceError::Unusable(_)) => {
                report.findings.push(failed(describe(&e)));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(counted) = counted else {
            report
                .findings
                .push(failed("the response carried no totalItems".into()));
            return Ok(());
        };
        let now_ms = fx.clock.now_ms();
        let entry = self.checkpoint.ledger.slices.entry(slice).or_default();
        let finding = |kind, detail: String| Finding {
            kind,
            range,
            counted,
            collected: stored,
            detail,
        };
        let previous = entry.set_count(counted, range.end_ms, now_ms, stored);
        if let Some(previous) = previous.filter(|c| counted < c.events) {
            report.findings.push(finding(
                FindingKind::CountDecreased,
                format!("it was {} at the previous check", previous.events),
            ));
        }
        if counted < stored {
            report
                .findings
                .push(finding(FindingKind::CountBelowStored, String::new()));
        }
        let gap = counted.saturating_sub(stored);
        if gap == 0 {
            entry.settled_gap = 0;
            entry.retry_ms = 0;
            entry.fruitless = 0;
            return Ok(());
        }
        entry.settled_gap = entry.settled_gap.min(gap);
        if gap > entry.settled_gap || now_ms >= entry.retry_ms {
            self.checkpoint.walk = Some(Walk::new(Purpose::Reread, range));
            report.slices_reread += 1;
        }
        Ok(())
    }

    /// Records what re-reading a slice found: its fresh count, the gap left,
    /// and when a gap that does not grow may be re-read again.
    pub(super) fn settle_reread(&mut self, walk: &Walk, report: &mut PollReport, now_ms: u64) {
        let interval_ms = self.interval_ms();
        let slice = slice_start(walk.range.start_ms);
        let stored = self
            .checkpoint
            .ledger
            .stored_through(slice, walk.range.end_ms);
        let entry = self.checkpoint.ledger.slices.entry(slice).or_default();
        if let Some(counted) = walk.counted {
            entry.set_count(counted, walk.range.end_ms, now_ms, stored);
        }
        let counted = entry.count.map_or(0, |c| c.events);
        report.late_events += walk.written;
        if walk.written > 0 {
            entry.fruitless = 0;
            entry.retry_ms = now_ms;
            report.findings.push(Finding {
                kind: FindingKind::LateCollected,
                range: walk.range,
                counted,
                collected: walk.written,
                detail: String::new(),
            });
        } else {
            entry.fruitless = entry.fruitless.saturating_add(1);
            let doublings = entry.fruitless.min(MAX_BACKOFF_DOUBLINGS);
            entry.retry_ms = now_ms.saturating_add(interval_ms.saturating_mul(1 << doublings));
        }
        entry.settled_gap = entry.gap();
        if entry.settled_gap > 0 {
            report.findings.push(Finding {
                kind: FindingKind::GapRemains,
                range: walk.range,
                counted,
                collected: stored,
                detail: String::new(),
            });
        }
    }
}
