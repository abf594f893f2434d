//! Parses a list response: the HTTP status, the `ResponseDTO` envelope and the
//! events, which are kept as the exact JSON text the API sent.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{ApiFailure, SourceError};
use crate::keys;

/// Longest excerpt of an unexpected body quoted in an error.
const EXCERPT_CHARS: usize = 200;

/// One audit event: its raw JSON and the two fields the cursor needs.
#[derive(Debug)]
pub struct Event {
    /// The event exactly as the API returned it.
    pub raw: Box<RawValue>,
    /// `auditId`.
    pub audit_id: String,
    /// `timestamp`, epoch ms.
    pub timestamp_ms: u64,
}

/// A successful page.
#[derive(Debug)]
pub struct Page {
    /// Events in response order.
    pub events: Vec<Event>,
    /// `totalItems` as reported (informational: it moves while events arrive).
    pub total_items: Option<u64>,
    /// `hasNext` (`listV2` only).
    pub has_next: Option<bool>,
    /// `pageToken` for the next page (`listV2` only; `/list` sends null).
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<D> {
    status: Option<String>,
    data: Option<D>,
    code: Option<String>,
    message: Option<String>,
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageData {
    content: Option<Vec<Box<RawValue>>>,
    total_items: Option<u64>,
    has_next: Option<bool>,
    page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventKeys {
    audit_id: String,
    timestamp: u64,
}

/// A configuration change's YAML before and after (`YamlDiffRecordDTO`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct YamlDiff {
    /// YAML before the change; absent for a creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_yaml: Option<String>,
    /// YAML after the change; absent for a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_yaml: Option<String>,
}

/// Turns an `auditYaml` response into the diff or the matching typed error.
pub fn parse_yaml(
    status: u16,
    body: &[u8],
    retry_after_secs: Option<u32>,
) -> Result<YamlDiff, SourceError> {
    open(status, body, retry_after_secs)
}

/// Turns an HTTP response into a page or the matching typed error.
pub fn parse(status: u16, body: &[u8], retry_after_secs: Option<u32>) -> Result<Page, SourceError> {
    let data: PageData = open(status, body, retry_after_secs)?;
    let content = data
        .content
        .ok_or_else(|| SourceError::MalformedResponse("page without `data.content`".into()))?;
    let events = content
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let (audit_id, timestamp_ms) = match keys::scan(raw.get()) {
                Some((id, ms)) => (id.to_owned(), ms),
                None => {
                    let full: EventKeys = serde_json::from_str(raw.get()).map_err(|e| {
                        SourceError::MalformedResponse(format!(
                            "event {i} of the page lacks a string `auditId` or an integer `timestamp`: {e}"
                        ))
                    })?;
                    (full.audit_id, full.timestamp)
                }
            };
            Ok(Event {
                raw,
                audit_id,
                timestamp_ms,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Page {
        events,
        total_items: data.total_items,
        has_next: data.has_next,
        next_token: data.page_token,
    })
}

/// Checks the status and the `ResponseDTO` envelope and returns its `data`.
fn open<D: serde::de::DeserializeOwned>(
    status: u16,
    body: &[u8],
    retry_after_secs: Option<u32>,
) -> Result<D, SourceError> {
    let envelope = serde_json::from_slice::<Envelope<D>>(body);
    if status != 200 {
        let failure = match envelope {
            Ok(env) => ApiFailure {
                status,
                code: env.code,
                message: env.message.unwrap_or_else(|| describe(body)),
                correlation_id: env.correlation_id,
            },
            Err(_) => ApiFailure {
                status,
                code: None,
                message: describe(body),
                correlation_id: None,
            },
        };
        return Err(match status {
            400 => SourceError::BadRequest(failure),
            401 => SourceError::Unauthorized(failure),
            403 => SourceError::Forbidden(failure),
            429 => SourceError::RateLimited {
                retry_after_secs,
                message: failure.message,
            },
            _ => SourceError::ServerError(failure),
        });
    }
    let env = envelope.map_err(|e| {
        SourceError::MalformedResponse(format!(
            "HTTP 200 body is not a Harness envelope ({e}): {}",
            describe(body)
        ))
    })?;
    match env.status.as_deref() {
        Some("SUCCESS") => {}
        Some(other @ ("ERROR" | "FAILURE")) => {
            let failure = ApiFailure {
                status,
                code: env.code.clone(),
                message: env
                    .message
                    .unwrap_or_else(|| format!("status {other} without a message")),
                correlation_id: env.correlation_id,
            };
            return Err(match env.code.as_deref() {
                Some("INVALID_TOKEN") => SourceError::Unauthorized(failure),
                Some("ACCESS_DENIED") => SourceError::Forbidden(failure),
                Some("INVALID_REQUEST") => SourceError::BadRequest(failure),
                _ => SourceError::ServerError(failure),
            });
        }
        other => {
            return Err(SourceError::MalformedResponse(format!(
                "envelope status is {other:?}, expected SUCCESS, ERROR or FAILURE"
            )));
        }
    }
    env.data
        .ok_or_else(|| SourceError::MalformedResponse("SUCCESS envelope without `data`".into()))
}

fn describe(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty body".into();
    }
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let ellipsis = if text.chars().count() > EXCERPT_CHARS {
        "…"
    } else {
        ""
    };
    format!(
        "{} bytes, starting `{}{ellipsis}`",
        body.len(),
        excerpt.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1: &str = r#"{"auditId":"68483b21f99472ce88e5d355","resourceScope":{"accountIdentifier":"Xy3kQ9mTR0aWb1cD2eF4gH","orgIdentifier":"default","projectIdentifier":"payments"},"timestamp":1749564191482,"module":"PMS","resource":{"type":"PIPELINE","identifier":"deploy_payments","labels":{"resourceName":"Déploiement 支払い"}},"action":"CREATE"}"#;

    fn success(content: &str) -> Vec<u8> {
        format!(
            r#"{{"status":"SUCCESS","data":{{"totalPages":1,"totalItems":1,"pageItemCount":1,"pageSize":50,"content":[{content}],"pageIndex":0,"empty":false,"pageToken":null}},"metaData":null,"correlationId":"c1"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn keeps_each_event_byte_for_byte() {
        let spaced = E1.replace(",\"module\"", " ,  \"module\"");
        let page = parse(200, &success(&spaced), None).unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].raw.get(), spaced);
        assert_eq!(page.events[0].audit_id, "68483b21f99472ce88e5d355");
        assert_eq!(page.events[0].timestamp_ms, 1_749_564_191_482);
        assert_eq!(page.total_items, Some(1));
    }

    #[test]
    fn empty_page_is_a_page() {
        let page = parse(200, &success(""), None).unwrap();
        assert!(page.events.is_empty());
    }

    #[test]
    fn error_statuses_map_to_typed_errors_with_harness_message() {
        let body = br#"{"status":"ERROR","code":"INVALID_TOKEN","message":"Token is not valid.","correlationId":"abc","detailedMessage":null,"responseMessages":[],"metadata":null}"#;
        let err = parse(401, body, None).unwrap_err();
        let SourceError::Unauthorized(f) = err else {
            panic!("{err:?}")
        };
        assert_eq!(f.message, "Token is not valid.");
        assert_eq!(f.code.as_deref(), Some("INVALID_TOKEN"));
        assert_eq!(f.correlation_id.as_deref(), Some("abc"));

        assert!(matches!(
            parse(403, body, None),
            Err(SourceError::Forbidden(_))
        ));
        assert!(matches!(
            parse(500, body, None),
            Err(SourceError::ServerError(_))
        ));
        let failure = br#"{"status":"FAILURE","code":"INVALID_REQUEST","message":"pageSize: must be less than or equal to 100","correlationId":"x","errors":[]}"#;
        let Err(SourceError::BadRequest(f)) = parse(400, failure, None) else {
            panic!()
        };
        assert_eq!(f.message, "pageSize: must be less than or equal to 100");
    }

    #[test]
    fn rate_limit_with_non_json_body_keeps_retry_after() {
        let err = parse(429, b"Too Many Requests", Some(7)).unwrap_err();
        assert_eq!(
            err,
            SourceError::RateLimited {
                retry_after_secs: Some(7),
                message: "17 bytes, starting `Too Many Requests`".into()
            }
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn html_gateway_error_is_a_server_error_quoting_the_body() {
        let err = parse(502, b"<html><body>Bad Gateway</body></html>", None).unwrap_err();
        let SourceError::ServerError(f) = &err else {
            panic!("{err:?}")
        };
        assert!(
            f.message.contains("<html><body>Bad Gateway"),
            "{}",
            f.message
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn status_field_is_checked_even_on_http_200() {
        let body = br#"{"status":"ERROR","code":"ACCESS_DENIED","message":"User not authorized: no","correlationId":null}"#;
        assert!(matches!(
            parse(200, body, None),
            Err(SourceError::Forbidden(_))
        ));
        let body = br#"{"status":"WEIRD"}"#;
        assert!(matches!(
            parse(200, body, None),
            Err(SourceError::MalformedResponse(_))
        ));
    }

    #[test]
    fn truncated_and_html_200_bodies_are_malformed() {
        let full = success(E1);
        let err = parse(200, &full[..full.len() / 2], None).unwrap_err();
        assert!(matches!(err, SourceError::MalformedResponse(_)), "{err:?}");
        assert!(matches!(
            parse(200, b"<html>login</html>", None),
            Err(SourceError::MalformedResponse(_))
        ));
        assert!(err.is_retryable());
    }

    #[test]
    fn event_without_keys_is_malformed() {
        let err = parse(200, &success(r#"{"auditId":"a"}"#), None).unwrap_err();
        let SourceError::MalformedResponse(m) = err else {
            panic!()
        };
        assert!(m.contains("event 0"), "{m}");
    }

    #[test]
    fn keys_the_scan_cannot_read_plainly_are_parsed_in_full() {
        let page = parse(
            200,
            &success(r#"{"auditId":"a\u0062","timestamp":7},{"auditId":"c","timestamp":8}"#),
            None,
        )
        .unwrap();
        let keys: Vec<_> = page
            .events
            .iter()
            .map(|e| (e.audit_id.as_str(), e.timestamp_ms))
            .collect();
        assert_eq!(keys, [("ab", 7), ("c", 8)]);
        let err = parse(200, &success(r#"{"auditId":"a","timestamp":1.5}"#), None).unwrap_err();
        assert!(matches!(err, SourceError::MalformedResponse(_)), "{err:?}");
    }

    #[test]
    fn client_errors_are_not_retryable() {
        let body = br#"{"status":"ERROR","code":"INVALID_REQUEST","message":"bad"}"#;
        for status in [400, 401, 403] {
            assert!(!parse(status, body, None).unwrap_err().is_retryable());
        }
    }

    #[test]
    fn long_bodies_are_excerpted() {
        let long = "x".repeat(1000);
        let Err(SourceError::ServerError(f)) = parse(503, long.as_bytes(), None) else {
            panic!()
        };
        assert!(
            f.message.starts_with("1000 bytes") && f.message.ends_with("…`"),
            "{}",
            f.message
        );
    }
}
