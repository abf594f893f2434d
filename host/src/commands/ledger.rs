//! `ledger`: what the checkpoint knows about completeness, hour by hour:
//! Harness's count at the last check, the events stored, and the gap
//! between them. It reads the committed checkpoint and asks the component
//! to read its ledger; nothing is requested from Harness or written.

use harness_audit_core::ledger::{SLICE_MS, slice_start};
use serde::Serialize;

use crate::config::Config;
use crate::engine::Collector;
use crate::engine::bindings::harness::audit::types as wit;
use crate::engine::error::RunError;
use crate::storage;
use crate::storage::pipeline::committed_checkpoint;
use crate::time::{RangeError, parse_day_or_instant, rfc3339_ms};

/// The hours asked for: `--from` and `--to`, dates (whole UTC days, `--to`
/// inclusive) or RFC 3339 UTC times; open ends take the ledger's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerRange {
    /// First millisecond shown.
    pub from_ms: Option<u64>,
    /// Last millisecond shown.
    pub to_ms: Option<u64>,
}

impl LedgerRange {
    /// Parses the flags; the error names the flag and the accepted forms.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, RangeError> {
        let time = |flag: &'static str, value: Option<&str>, end_of_day: bool| {
            value
                .map(|v| parse_day_or_instant(flag, v, end_of_day))
                .transpose()
        };
        let range = Self {
            from_ms: time("--from", from, false)?,
            to_ms: time("--to", to, true)?,
        };
        if let (Some(f), Some(t)) = (range.from_ms, range.to_ms)
            && f > t
        {
            return Err(RangeError::Reversed {
                from: from.unwrap_or_default().to_owned(),
                to: to.unwrap_or_default().to_owned(),
            });
        }
        Ok(range)
    }
}

/// One hour of the ledger, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hour {
    /// First millisecond of the hour the ledger covers (RFC 3339).
    pub start: String,
    /// Last millisecond of the hour (RFC 3339).
    pub end: String,
    /// Events stored with a timestamp in the hour, in the data or the quarantine.
    pub stored: u64,
    /// Of those, the events kept in the quarantine.
    pub quarantined: u64,
    /// Harness's count at the last check, if the hour was checked.
    pub counted: Option<u64>,
    /// The last millisecond that count covers (RFC 3339).
    pub counted_through: Option<String>,
    /// When the count was taken (RFC 3339).
    pub checked_at: Option<String>,
    /// Counted but not stored, as of that check.
    pub gap: Option<u64>,
}

/// The ledger for a range, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerView {
    /// The account.
    pub account: String,
    /// Where the checkpoint was read.
    pub checkpoint: String,
    /// The ledger covers events from this time on (RFC 3339)...
    pub covers_from: Option<String>,
    /// ...up to the end of the last window read (RFC 3339).
    pub covers_through: Option<String>,
    /// Hours of the range inside the ledger, oldest first.
    pub hours: Vec<Hour>,
    /// Sum of the hours' gaps.
    pub unreconciled_events: u64,
    /// Sum of the hours' quarantined events.
    pub quarantined_events: u64,
}

/// Reads the ledger of `config`'s checkpoint for `range`.
pub async fn read(
    config: &Config,
    collector: &Collector,
    range: LedgerRange,
) -> Result<LedgerView, RunError> {
    let storage = storage::open(config, "harness-audit ledger").await?;
    let location = storage.checkpoints.checkpoint_location();
    let checkpoint =
        committed_checkpoint(storage.sink.as_ref(), storage.checkpoints.as_ref()).await?;
    let report = match &checkpoint {
        Some(text) => Some(collector.ledger(config, Some(text)).await?),
        None => None,
    };
    Ok(view(
        &config.source.query.account_id,
        location,
        report.as_ref(),
        range,
    ))
}

/// Every hour of `range` the ledger covers: hours it does not hold had no
/// event stored and were not checked.
pub fn view(
    account: &str,
    checkpoint: String,
    report: Option<&wit::LedgerReport>,
    range: LedgerRange,
) -> LedgerView {
    let mut hours = Vec::new();
    if let Some(report) = report {
        let last = report
            .through_ms
            .into_iter()
            .chain(report.slices.last().map(|s| s.end_ms))
            .max();
        let from = range.from_ms.unwrap_or(0).max(report.from_ms);
        let to = range.to_ms.unwrap_or(u64::MAX).min(last.unwrap_or(0));
        let mut held = report.slices.iter().peekable();
        let mut hour = slice_start(from);
        while last.is_some() && hour <= to {
            while held.next_if(|s| s.end_ms < hour).is_some() {}
            let slice = held.next_if(|s| s.start_ms < hour + SLICE_MS);
            let count = slice.and_then(|s| s.count);
            hours.push(Hour {
                start: rfc3339_ms(hour.max(report.from_ms)),
                end: rfc3339_ms(hour + SLICE_MS - 1),
                stored: slice.map_or(0, |s| s.stored),
                quarantined: slice.map_or(0, |s| s.quarantined),
                counted: count.map(|c| c.events),
                counted_through: count.map(|c| rfc3339_ms(c.through_ms)),
                checked_at: count.map(|c| rfc3339_ms(c.checked_at_ms)),
                gap: count.map(|c| c.events.saturating_sub(c.stored)),
            });
            hour += SLICE_MS;
        }
    }
    LedgerView {
        account: account.to_owned(),
        checkpoint,
        covers_from: report.map(|r| rfc3339_ms(r.from_ms)),
        covers_through: report.and_then(|r| r.through_ms).map(rfc3339_ms),
        unreconciled_events: hours.iter().filter_map(|h| h.gap).sum(),
        quarantined_events: hours.iter().map(|h| h.quarantined).sum(),
        hours,
    }
}

impl LedgerView {
    /// A table for people, one line per hour, and a total.
    pub fn text(&self) -> String {
        let mut out = format!("ledger of account {} ({}): ", self.account, self.checkpoint);
        match (&self.covers_from, &self.covers_through) {
            (None, _) => {
                out.push_str("no checkpoint yet: run `harness-audit run` first\n");
                return out;
            }
            (Some(from), through) => out.push_str(&format!(
                "covers events from {from} to {}\n",
                through.as_deref().unwrap_or("(no window finished yet)")
            )),
        }
        out.push_str(&format!(
            "{:<24} {:>9} {:>9} {:>11} {:>7}  {}\n",
            "hour (UTC)", "counted", "stored", "quarantined", "gap", "checked"
        ));
        for h in &self.hours {
            let dash = || "-".to_owned();
            let checked = match (&h.checked_at, &h.counted_through) {
                (Some(at), Some(through)) if *through < h.end => {
                    format!("at {at}, through {through}")
                }
                (Some(at), _) => format!("at {at}"),
                _ => "not yet".to_owned(),
            };
            out.push_str(&format!(
                "{:<24} {:>9} {:>9} {:>11} {:>7}  {checked}\n",
                h.start,
                h.counted.map_or_else(dash, |c| c.to_string()),
                h.stored,
                h.quarantined,
                h.gap.map_or_else(dash, |g| g.to_string()),
            ));
        }
        let stored: u64 = self.hours.iter().map(|h| h.stored).sum();
        out.push_str(&format!(
            "{} hours, {stored} events stored ({} of them in the quarantine), {} counted by Harness and never \
             returned\n",
            self.hours.len(),
            self.quarantined_events,
            self.unreconciled_events
        ));
        out
    }

    /// The same as one JSON document.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the view always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = SLICE_MS;

    fn report() -> wit::LedgerReport {
        wit::LedgerReport {
            from_ms: 10 * H + 600_000,
            through_ms: Some(13 * H + 1_000),
            slices: vec![
                wit::LedgerSlice {
                    start_ms: 10 * H + 600_000,
                    end_ms: 11 * H - 1,
                    stored: 40,
                    quarantined: 2,
                    count: Some(wit::SliceCount {
                        events: 43,
                        through_ms: 11 * H - 1,
                        checked_at_ms: 14 * H,
                        stored: 40,
                    }),
                },
                wit::LedgerSlice {
                    start_ms: 13 * H,
                    end_ms: 14 * H - 1,
                    stored: 5,
                    quarantined: 0,
                    count: Some(wit::SliceCount {
                        events: 5,
                        through_ms: 13 * H + 1_000,
                        checked_at_ms: 14 * H,
                        stored: 5,
                    }),
                },
            ],
        }
    }

    #[test]
    fn every_hour_of_the_range_is_shown_with_its_gap() {
        let view = view(
            "acct",
            "here".into(),
            Some(&report()),
            LedgerRange::default(),
        );
        let stored: Vec<u64> = view.hours.iter().map(|h| h.stored).collect();
        assert_eq!(
            stored,
            [40, 0, 0, 5],
            "hours the ledger does not hold had nothing"
        );
        assert_eq!(view.hours[0].start, rfc3339_ms(10 * H + 600_000));
        assert_eq!(
            view.hours.iter().map(|h| h.gap).collect::<Vec<_>>(),
            [Some(3), None, None, Some(0)]
        );
        assert_eq!(view.unreconciled_events, 3);
        let text = view.text();
        assert!(
            text.contains(
                "4 hours, 45 events stored (2 of them in the quarantine), 3 counted by Harness and never returned"
            ),
            "{text}"
        );
        assert!(text.contains("not yet"), "{text}");
        assert!(
            text.contains(&format!("through {}", rfc3339_ms(13 * H + 1_000))),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&view.json()).unwrap();
        assert_eq!(json["hours"][0]["gap"], 3);
        assert_eq!(json["hours"][1]["counted"], serde_json::Value::Null);
        assert_eq!(json["unreconciled_events"], 3);
        assert_eq!(json["hours"][0]["quarantined"], 2);
        assert_eq!(json["quarantined_events"], 2);
    }

    #[test]
    fn a_range_selects_hours_and_never_reaches_outside_the_ledger() {
        let range =
            LedgerRange::parse(Some("1970-01-01T11:30:00Z"), Some("1970-01-01T13:10:00Z")).unwrap();
        let view = view("acct", "here".into(), Some(&report()), range);
        assert_eq!(view.hours.len(), 3);
        assert_eq!(view.hours[0].start, rfc3339_ms(11 * H));
        assert_eq!(view.unreconciled_events, 0);
        let before = LedgerRange::parse(Some("1970-01-01"), Some("1970-01-01T09:00:00Z")).unwrap();
        assert!(view_of(before).hours.is_empty());
    }

    fn view_of(range: LedgerRange) -> LedgerView {
        view("acct", "here".into(), Some(&report()), range)
    }

    #[test]
    fn no_checkpoint_and_bad_ranges_are_said_plainly() {
        let empty = view("acct", "here".into(), None, LedgerRange::default());
        assert!(
            empty.text().contains("no checkpoint yet"),
            "{}",
            empty.text()
        );
        assert!(empty.hours.is_empty());
        assert_eq!(
            LedgerRange::parse(Some("yesterday"), None),
            Err(RangeError::NotATime {
                flag: "--from",
                text: "yesterday".into()
            })
        );
        assert_eq!(
            LedgerRange::parse(Some("2025-02-01"), Some("2025-01-01")),
            Err(RangeError::Reversed {
                from: "2025-02-01".into(),
                to: "2025-01-01".into()
            })
        );
    }
}
