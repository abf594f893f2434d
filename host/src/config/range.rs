//! The fixed range of a `backfill`: read once, with its own checkpoint.

use crate::time::{RangeError, parse_day_or_instant, rfc3339_ms, utc};

/// How far back Harness keeps audit events.
const RETENTION_MS: u64 = 2 * 366 * 86_400_000;

/// An inclusive range of event times, in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillRange {
    /// First millisecond read.
    pub from_ms: u64,
    /// Last millisecond read.
    pub to_ms: u64,
}

impl BackfillRange {
    /// `--from` and `--to`: dates are whole days (`--to` inclusive), or RFC 3339 UTC times.
    pub fn parse(from: &str, to: &str, now_ms: u64) -> Result<Self, RangeError> {
        let from_ms = parse_day_or_instant("--from", from, false)?;
        let to_ms = parse_day_or_instant("--to", to, true)?;
        if from_ms > to_ms {
            return Err(RangeError::Reversed {
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
        if from_ms > now_ms {
            return Err(RangeError::Future {
                from: from.to_owned(),
            });
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
        let stamp = |ms: u64| utc(ms).format("%Y%m%dT%H%M%SZ").to_string();
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
                .to_string()
                .contains("--from `yesterday` is not a date")
        );
        assert!(
            BackfillRange::parse("2025-02-01", "2025-01-01", NOW)
                .unwrap_err()
                .to_string()
                .contains("is after --to")
        );
        assert!(
            BackfillRange::parse("2026-02-01", "2026-03-01", NOW)
                .unwrap_err()
                .to_string()
                .contains("in the future")
        );
    }
}
