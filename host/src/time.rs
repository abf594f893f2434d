//! Time, in one place: the wall clock, and UTC instants as RFC 3339 text,
//! calendar days and object-name stamps, through `chrono`.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

const DAY_MS: u64 = 86_400_000;

/// The wall clock in epoch milliseconds.
pub fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

/// The UTC date and time of an instant; instants past chrono's last year
/// (262143) are shown as its last instant.
pub fn utc(epoch_ms: u64) -> DateTime<Utc> {
    i64::try_from(epoch_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// RFC 3339 UTC with milliseconds, for logs, summaries and metadata.
pub fn rfc3339_ms(epoch_ms: u64) -> String {
    utc(epoch_ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// RFC 3339 text in UTC (`Z` or `+00:00`) as epoch milliseconds; other
/// offsets and instants before 1970 are refused.
pub fn parse_rfc3339_utc(text: &str) -> Option<u64> {
    let at = DateTime::parse_from_rfc3339(text.trim()).ok()?;
    if at.offset().local_minus_utc() != 0 {
        return None;
    }
    u64::try_from(at.timestamp_millis()).ok()
}

/// A time range given on the command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// A bound is neither a day nor an instant.
    #[error(
        "{flag} `{text}` is not a date (2025-01-31) or an RFC 3339 UTC time (2025-01-31T12:00:00Z)"
    )]
    NotATime {
        /// `--from` or `--to`.
        flag: &'static str,
        /// What was given.
        text: String,
    },
    /// The start is after the end.
    #[error("--from {from} is after --to {to}")]
    Reversed {
        /// `--from` as given.
        from: String,
        /// `--to` as given.
        to: String,
    },
    /// The start has not happened yet.
    #[error("--from {from} is in the future")]
    Future {
        /// `--from` as given.
        from: String,
    },
}

/// A day (`2025-01-31`: its first millisecond, or with `end_of_day` its
/// last) or an RFC 3339 UTC instant; the error names `flag` and both forms.
pub fn parse_day_or_instant(
    flag: &'static str,
    text: &str,
    end_of_day: bool,
) -> Result<u64, RangeError> {
    let text = text.trim();
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|d| u64::try_from(d.and_utc().timestamp_millis()).ok());
    match day {
        Some(start) if end_of_day => Ok(start + DAY_MS - 1),
        Some(start) => Ok(start),
        None => parse_rfc3339_utc(text).ok_or_else(|| RangeError::NotATime {
            flag,
            text: text.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_print_as_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_749_564_191_482), "2025-06-10T14:03:11.482Z");
        assert_eq!(rfc3339_ms(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn parsing_inverts_printing_and_refuses_other_offsets() {
        for ms in [0, 951_782_400_000, 1_749_564_191_482] {
            assert_eq!(parse_rfc3339_utc(&rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_utc("2025-06-10T14:03:11.482+00:00"),
            Some(1_749_564_191_482)
        );
        assert_eq!(parse_rfc3339_utc("2025-06-10T16:03:11+02:00"), None);
        assert_eq!(parse_rfc3339_utc("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn days_cover_their_whole_span_and_impossible_dates_are_refused() {
        assert_eq!(
            parse_day_or_instant("--from", "2024-02-29", false).map(rfc3339_ms),
            Ok("2024-02-29T00:00:00.000Z".to_owned())
        );
        assert_eq!(
            parse_day_or_instant("--to", "2024-02-29", true).map(rfc3339_ms),
            Ok("2024-02-29T23:59:59.999Z".to_owned())
        );
        assert_eq!(
            parse_day_or_instant("--to", "2025-02-29", true).map_err(|e| e.to_string()),
            Err("--to `2025-02-29` is not a date (2025-01-31) or an RFC 3339 UTC time (2025-01-31T12:00:00Z)".to_owned())
        );
    }
}
