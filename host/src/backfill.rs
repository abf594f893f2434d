//! `backfill`: a historical range read with its own checkpoint, never the
//! live one, so it can be interrupted and resumed, and re-running a finished
//! one writes nothing.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::collector::PassSummary;
use crate::recipe::{days_from_civil, parse_rfc3339_utc};
use crate::sink::{rfc3339_ms, utc};

/// How far back Harness keeps audit events.
const RETENTION_MS: u64 = 2 * 366 * 86_400_000;
const DAY_MS: u64 = 86_400_000;

/// An inclusive range of event times, in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillRange {
    /// First millisecond read.
    pub from_ms: u64,
    /// Last millisecond read.
    pub to_ms: u64,
}

/// `YYYY-MM-DD` (the day's start, or with `end_of_day` its last millisecond) or RFC 3339 UTC.
pub(crate) fn parse_time(text: &str, end_of_day: bool) -> Option<u64> {
    let text = text.trim();
    if text.len() == 10 {
        let mut parts = text.splitn(3, '-').map(str::parse::<u32>);
        let (y, m, d) = (
            parts.next()?.ok()?,
            parts.next()?.ok()?,
            parts.next()?.ok()?,
        );
        if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        let start = u64::try_from(days_from_civil(i64::from(y), m, d)).ok()? * DAY_MS;
        return Some(if end_of_day {
            start + DAY_MS - 1
        } else {
            start
        });
    }
    parse_rfc3339_utc(text)
}

impl BackfillRange {
    /// `--from` and `--to`: dates are whole days (`--to` inclusive), or RFC 3339 UTC times.
    pub fn parse(from: &str, to: &str, now_ms: u64) -> Result<Self, String> {
        let bad = |flag: &str, v: &str| {
            format!(
                "{flag} `{v}` is not a date (2025-01-31) or an RFC 3339 UTC time (2025-01-31T12:00:00Z)"
            )
        };
        let from_ms = parse_time(from, false).ok_or_else(|| bad("--from", from))?;
        let to_ms = parse_time(to, true).ok_or_else(|| bad("--to", to))?;
        if from_ms > to_ms {
            return Err(format!("--from {from} is after --to {to}"));
        }
        if from_ms > now_ms {
            return Err(format!("--from {from} is in the future"));
        }
        if now_ms.saturating_sub(from_ms) > RETENTION_MS {
            tracing::warn!(from = %rfc3339_ms(from_ms), "Harness keeps about two years of audit events; the start of this range is older");
        }
        Ok(Self {
            from_ms,
            to_ms: to_ms.min(now_ms),
        })
    }

    /// The backfill's own checkpoint, beside the live one and named by the range.
    pub fn state_key(&self, live_state_key: &str) -> String {
        let stamp = |ms: u64| {
            let (y, mo, d, h, mi, s) = utc(ms / 1000);
            format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
        };
        let name = format!(
            "backfill-{}-{}.json",
            stamp(self.from_ms),
            stamp(self.to_ms)
        );
        match live_state_key.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{name}"),
            None => name,
        }
    }
}

/// Progress on stderr: a bar redrawn in place on a terminal, a plain line
/// every few seconds otherwise (for log files).
#[derive(Debug)]
pub struct Progress {
    range: BackfillRange,
    started: Instant,
    terminal: bool,
    last_line: Mutex<Option<Instant>>,
}

/// Seconds between plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// Progress over `range`.
    pub fn new(range: BackfillRange) -> Self {
        Self {
            range,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            last_line: Mutex::new(None),
        }
    }

    /// Reports the pass so far; `done` forces a final line.
    pub fn report(&self, summary: &PassSummary, done: bool) {
        let mut last = self
            .last_line
            .lock()
            .expect("no panic while holding the lock");
        if !self.terminal && !done && last.is_some_and(|t| t.elapsed() < LINE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let span = (self.range.to_ms - self.range.from_ms).max(1) as f64;
        let reached = summary.watermark_ms.unwrap_or(self.range.from_ms);
        let fraction = if done {
            1.0
        } else {
            ((reached.saturating_sub(self.range.from_ms)) as f64 / span).clamp(0.0, 1.0)
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = summary.stored.events as f64 / elapsed.max(0.001);
        let eta = if fraction > 0.0 && fraction < 1.0 {
            format!("{:.0} s", elapsed * (1.0 - fraction) / fraction)
        } else {
            "-".into()
        };
        let text = format!(
            "{:5.1}% of {}..{}: {} events, {} pages, {rate:.0} events/s, ETA {eta}",
            fraction * 100.0,
            rfc3339_ms(self.range.from_ms),
            rfc3339_ms(self.range.to_ms),
            summary.stored.events,
            summary.pages
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let filled = (fraction * 30.0).round() as usize;
            let _ = write!(
                err,
                "\r[{}{}] {text}",
                "#".repeat(filled),
                "-".repeat(30 - filled)
            );
            if done {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "backfill progress: {text}");
        }
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn dates_cover_whole_days_and_times_are_exact() {
        let r = BackfillRange::parse("2025-01-01", "2025-06-30", NOW).unwrap();
        assert_eq!(rfc3339_ms(r.from_ms), "2025-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(r.to_ms), "2025-06-30T23:59:59.999Z");
        let r =
            BackfillRange::parse("2025-01-01T06:00:00Z", "2025-01-01T07:00:00.5Z", NOW).unwrap();
        assert_eq!(r.to_ms - r.from_ms, 3_600_500);
        assert_eq!(
            r.state_key("harness-audit-state/checkpoint.json"),
            "harness-audit-state/backfill-20250101T060000Z-20250101T070000Z.json"
        );
        assert_eq!(
            BackfillRange::parse("2025-12-01", "2027-01-01", NOW)
                .unwrap()
                .to_ms,
            NOW,
            "the end is capped at now"
        );
    }

    #[test]
    fn bad_ranges_say_why() {
        assert!(
            BackfillRange::parse("yesterday", "2025-01-01", NOW)
                .unwrap_err()
                .contains("--from `yesterday` is not a date")
        );
        assert!(
            BackfillRange::parse("2025-02-01", "2025-01-01", NOW)
                .unwrap_err()
                .contains("is after --to")
        );
        assert!(
            BackfillRange::parse("2026-02-01", "2026-03-01", NOW)
                .unwrap_err()
                .contains("in the future")
        );
    }
}
