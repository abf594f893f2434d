//! The Cloud Run recipe's checkpoint, `{"since": ...}`, read once when this
//! collector takes over, so the switch re-reads nothing and skips nothing.

use crate::time::parse_rfc3339_utc;

/// Epoch seconds below this are seconds; at or above, milliseconds (the
/// boundary is in the year 5138 as seconds and 1973 as milliseconds).
const MS_THRESHOLD: f64 = 1e11;

/// Why an object is not a recipe checkpoint this collector can continue from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinceError {
    /// Not JSON.
    #[error("not JSON (line {line}, column {column})")]
    NotJson {
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// JSON without `since`.
    #[error("it has no `since` field, so it is not the Cloud Run recipe's state")]
    NoSince,
    /// `since` is neither a time nor a positive number.
    #[error("`since` is {0}, not epoch seconds or RFC 3339 UTC time")]
    NotATime(String),
}

/// The recipe's `since` as epoch milliseconds. Accepts epoch seconds or
/// milliseconds (integer or fractional) and RFC 3339 UTC text.
pub fn parse_since(bytes: &[u8]) -> Result<u64, SinceError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| SinceError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
    let since = value.get("since").ok_or(SinceError::NoSince)?;
    if let Some(n) = since.as_f64().filter(|n| n.is_finite() && *n > 0.0) {
        // Rounded: 1749564191.482 s is 1749564191481.9998 ms in binary floating point.
        let ms = if n < MS_THRESHOLD { n * 1000.0 } else { n }.round();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "positive, finite, whole and far below 2^64"
        )]
        return Ok(ms as u64);
    }
    if let Some(text) = since.as_str() {
        return parse_rfc3339_utc(text).ok_or_else(|| SinceError::NotATime(format!("`{text}`")));
    }
    Err(SinceError::NotATime(since.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::rfc3339_ms;

    #[test]
    fn seconds_milliseconds_and_text_all_mean_the_same_instant() {
        let ms = 1_749_564_191_482;
        for state in [
            r#"{"since": 1749564191.482}"#,
            r#"{"since": 1749564191482}"#,
            r#"{"since": "2025-06-10T14:03:11.482Z"}"#,
            r#"{"since": "2025-06-10T14:03:11.482+00:00", "other": 1}"#,
        ] {
            assert_eq!(parse_since(state.as_bytes()).ok(), Some(ms), "{state}");
        }
        assert_eq!(
            parse_since(br#"{"since": 1749564191}"#).ok(),
            Some(1_749_564_191_000)
        );
    }

    #[test]
    fn text_parsing_inverts_the_formatter() {
        for ms in [0, 951_782_400_000, 1_749_564_191_482, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339_utc(&rfc3339_ms(ms)), Some(ms));
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"{\"format\":\"harness-audit-state/1\"}",
                "no `since` field",
            ),
            (b"not json", "not JSON"),
            (br#"{"since": "yesterday"}"#, "`since` is `yesterday`"),
            (br#"{"since": "2025-06-10T14:03:11+02:00"}"#, "RFC 3339 UTC"),
            (br#"{"since": -5}"#, "`since` is -5"),
        ];
        for (bytes, expected) in cases {
            let err = parse_since(bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
