//! Parses a list response: the HTTP status, the `ResponseDTO` envelope and
//! the events, each kept as the exact bytes the API sent.
//!
//! Two things are told apart. A whole answer that is not a page (an HTML
//! page behind a 200, another `status`, `data` or `content` missing, a body
//! cut short or in an encoding that cannot be undone) is an [`Unusable`]
//! error: nothing of it is stored, and the request is made again where that
//! can help. One event that cannot be read (not JSON, not an object, no
//! usable `auditId` or `timestamp`) is not an error at all: it becomes a
//! quarantined [`Event`], its bytes kept as they came, and the page goes on.
//! So a page whose envelope serde refuses because of one event is split by a
//! lenient scan ([`crate::scan`]) into its events, each judged on its own.

use std::borrow::Cow;
use std::io::Read as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{ApiFailure, RequestAt, SourceError, Unusable, UnusableKind};
use crate::event::{self, Reason};
use crate::scan;

/// Largest response body read, after any `Content-Encoding` is undone. A
/// page over it is asked for again in smaller pages.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Longest excerpt of an unexpected body quoted in an error.
const EXCERPT_CHARS: usize = 200;

/// A raw HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Whole body, as received.
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when present and numeric.
    pub retry_after_secs: Option<u32>,
    /// `Content-Type`, when sent.
    pub content_type: Option<String>,
    /// `Content-Encoding`, when sent.
    pub content_encoding: Option<String>,
}

impl HttpResponse {
    /// A JSON answer with `status` and `body`.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
            content_type: Some("application/json".into()),
            ..Self::default()
        }
    }

    /// What is wrong with this answer, as an [`Unusable`] error; `body` is
    /// the body as read (decoded, when it was).
    pub fn unusable(&self, body: &[u8], kind: UnusableKind, detail: String) -> Unusable {
        Unusable {
            kind,
            status: self.status,
            content_type: self.content_type.clone(),
            content_encoding: self.content_encoding.clone(),
            bytes: body.len() as u64,
            excerpt: excerpt(body),
            detail,
            request: None,
        }
    }
}

/// An event the component cannot write in the configured shape, kept byte
/// for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The bytes Harness sent for the event, inside the page.
    pub bytes: Box<[u8]>,
    /// Why.
    pub reason: Reason,
    /// What is wrong, in words.
    pub detail: String,
}

/// What an event holds.
#[derive(Debug, Clone)]
pub enum Content {
    /// An object with a usable `auditId` and `timestamp`, as the API sent it.
    Json(Box<RawValue>),
    /// Anything else.
    Quarantined(Quarantined),
}

/// One event of a page.
#[derive(Debug, Clone)]
pub struct Event {
    /// `auditId`, or the SHA-256 of the event's bytes when it has none that
    /// can be read ([`event::content_key`]).
    pub key: String,
    /// `timestamp`, when it can be read.
    pub time_ms: Option<u64>,
    /// Where the event sits for the walk and the ledger: its `timestamp`, or
    /// where one that cannot be used would be, the time of the event before
    /// it on its page (the request's `startTime` for the first).
    pub at_ms: u64,
    /// The event.
    pub content: Content,
}

impl Event {
    /// An event from its JSON text.
    pub fn from_json(raw: Box<RawValue>) -> Self {
        let keys = match event::read(raw.get()) {
            Ok(keys) => keys,
            Err(detail) => {
                return Self::quarantined(raw.get().as_bytes(), Reason::NotAnObject, detail);
            }
        };
        let time_ms = keys.timestamp.as_ref().ok().copied();
        match keys.problem() {
            None => Self {
                key: keys.audit_id.expect("no problem with the id"),
                time_ms,
                at_ms: time_ms.unwrap_or(0),
                content: Content::Json(raw),
            },
            Some((reason, detail)) => Self {
                key: keys
                    .audit_id
                    .unwrap_or_else(|_| event::content_key(raw.get().as_bytes())),
                time_ms,
                at_ms: time_ms.unwrap_or(0),
                content: Content::Quarantined(Quarantined {
                    bytes: raw.get().as_bytes().into(),
                    reason,
                    detail,
                }),
            },
        }
    }

    /// An event known only by its bytes.
    pub fn quarantined(bytes: &[u8], reason: Reason, detail: String) -> Self {
        Self {
            key: event::content_key(bytes),
            time_ms: None,
            at_ms: 0,
            content: Content::Quarantined(Quarantined {
                bytes: bytes.into(),
                reason,
                detail,
            }),
        }
    }

    /// Whether it is written in the configured shape.
    pub fn readable(&self) -> bool {
        matches!(self.content, Content::Json(_))
    }
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
pub fn parse_yaml(resp: &HttpResponse) -> Result<YamlDiff, SourceError> {
    let body = decoded(resp)?;
    let envelope = strict_envelope(resp, &body)?;
    let failure =
        |kind, detail| SourceError::Unusable(Box::new(resp.unusable(&body, kind, detail)));
    let envelope = envelope.map_err(|e| failure(kind_of_error(&e), not_envelope(&e)))?;
    check_status(resp, &body, envelope.status.as_deref(), &envelope)?;
    envelope.data.ok_or_else(|| {
        failure(
            UnusableKind::NotAPage,
            "a SUCCESS envelope without `data`".into(),
        )
    })
}

/// Turns a list response to `at` into a page, each event placed
/// ([`Event::at_ms`]), or the matching typed error.
pub fn parse(resp: &HttpResponse, at: &RequestAt) -> Result<Page, SourceError> {
    let body = decoded(resp)?;
    let unusable = |kind, detail| {
        let mut u = resp.unusable(&body, kind, detail);
        u.request = Some(*at);
        SourceError::Unusable(Box::new(u))
    };
    let mut page = match strict_envelope::<PageData>(resp, &body)? {
        Ok(envelope) => {
            check_status(resp, &body, envelope.status.as_deref(), &envelope)?;
            let data = envelope.data.ok_or_else(|| {
                unusable(
                    UnusableKind::NotAPage,
                    "a SUCCESS envelope without `data`".into(),
                )
            })?;
            let content = data.content.ok_or_else(|| {
                unusable(
                    UnusableKind::NotAPage,
                    "a page without `data.content`".into(),
                )
            })?;
            Page {
                events: content.into_iter().map(Event::from_json).collect(),
                total_items: data.total_items,
                has_next: data.has_next,
                next_token: data.page_token,
            }
        }
        Err(strict) => lenient(resp, &body, &strict, &unusable)?,
    };
    place(&mut page, at).map_err(|detail| unusable(UnusableKind::NotAPage, detail))?;
    Ok(page)
}

/// The body with any `Content-Encoding` undone, at most [`MAX_BODY_BYTES`].
fn decoded(resp: &HttpResponse) -> Result<Cow<'_, [u8]>, SourceError> {
    let encoding = resp
        .content_encoding
        .as_deref()
        .map(|e| e.trim().to_ascii_lowercase());
    let mut out = Vec::new();
    let limit = MAX_BODY_BYTES as u64 + 1;
    let read = match encoding.as_deref() {
        None | Some("" | "identity") => return Ok(Cow::Borrowed(&resp.body)),
        Some("gzip" | "x-gzip") => flate2::read::MultiGzDecoder::new(&resp.body[..])
            .take(limit)
            .read_to_end(&mut out),
        Some("deflate") => flate2::read::ZlibDecoder::new(&resp.body[..])
            .take(limit)
            .read_to_end(&mut out),
        Some(other) => {
            return Err(SourceError::Unusable(Box::new(resp.unusable(
                &resp.body,
                UnusableKind::UnsupportedEncoding,
                format!(
                    "the body is encoded as `{other}`, which the component cannot undo (it reads gzip and deflate)"
                ),
            ))));
        }
    };
    let failed = |kind, detail| SourceError::Unusable(Box::new(resp.unusable(&out, kind, detail)));
    if let Err(e) = read {
        return Err(failed(
            UnusableKind::CutShort,
            format!(
                "its {} body cannot be decoded: {e}",
                encoding.unwrap_or_default()
            ),
        ));
    }
    if out.len() > MAX_BODY_BYTES {
        return Err(failed(
            UnusableKind::TooLarge,
            format!("decoded, the body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(Cow::Owned(out))
}

/// The envelope as serde reads it; the outer error is an HTTP failure
/// (any status but 200), the inner one serde's.
fn strict_envelope<D: serde::de::DeserializeOwned>(
    resp: &HttpResponse,
    body: &[u8],
) -> Result<Result<Envelope<D>, serde_json::Error>, SourceError> {
    let envelope = serde_json::from_slice::<Envelope<D>>(body);
    if resp.status == 200 {
        return Ok(envelope);
    }
    let failure = match envelope {
        Ok(env) => ApiFailure {
            status: resp.status,
            code: env.code,
            message: env.message.unwrap_or_else(|| describe(body)),
            correlation_id: env.correlation_id,
        },
        Err(_) => ApiFailure {
            status: resp.status,
            code: None,
            message: describe(body),
            correlation_id: None,
        },
    };
    Err(match resp.status {
        400 => SourceError::BadRequest(failure),
        401 => SourceError::Unauthorized(failure),
        403 => SourceError::Forbidden(failure),
        429 => SourceError::RateLimited {
            retry_after_secs: resp.retry_after_secs,
            message: failure.message,
        },
        _ => SourceError::ServerError(failure),
    })
}

fn kind_of_error(e: &serde_json::Error) -> UnusableKind {
    if e.is_eof() {
        UnusableKind::CutShort
    } else {
        UnusableKind::NotAPage
    }
}

fn not_envelope(e: &serde_json::Error) -> String {
    if e.is_eof() {
        format!("the body ends before its JSON does ({e})")
    } else {
        format!("the body is not a Harness envelope ({e})")
    }
}

/// `status` must be `SUCCESS`; `ERROR` and `FAILURE` carry Harness's words.
fn check_status<D>(
    resp: &HttpResponse,
    body: &[u8],
    status: Option<&str>,
    envelope: &Envelope<D>,
) -> Result<(), SourceError> {
    match status {
        Some("SUCCESS") => Ok(()),
        Some(other @ ("ERROR" | "FAILURE")) => {
            let failure = ApiFailure {
                status: resp.status,
                code: envelope.code.clone(),
                message: envelope
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("status {other} without a message")),
                correlation_id: envelope.correlation_id.clone(),
            };
            Err(match envelope.code.as_deref() {
                Some("INVALID_TOKEN") => SourceError::Unauthorized(failure),
                Some("ACCESS_DENIED") => SourceError::Forbidden(failure),
                Some("INVALID_REQUEST") => SourceError::BadRequest(failure),
                _ => SourceError::ServerError(failure),
            })
        }
        other => Err(SourceError::Unusable(Box::new(resp.unusable(
            body,
            UnusableKind::NotAPage,
            match other {
                Some(status) => {
                    format!("the envelope's status is `{status}`, not SUCCESS, ERROR or FAILURE")
                }
                None => "the envelope has no status".to_owned(),
            },
        )))),
    }
}

/// Reads a page whose envelope serde refused, splitting `data.content` by a
/// lenient scan so that an event that is not JSON is kept on its own.
fn lenient(
    resp: &HttpResponse,
    body: &[u8],
    strict: &serde_json::Error,
    unusable: &dyn Fn(UnusableKind, String) -> SourceError,
) -> Result<Page, SourceError> {
    let refused = || unusable(kind_of_error(strict), not_envelope(strict));
    let top = scan::object(body).ok_or_else(refused)?;
    let field = |members: &[scan::Member], name: &str| {
        members
            .iter()
            .find(|m| &body[m.key.clone()] == name.as_bytes())
            .map(|m| &body[m.value.clone()])
    };
    // A member of another type than expected reads as absent: the checks
    // below then say what is missing.
    fn value<T: serde::de::DeserializeOwned>(raw: Option<&[u8]>) -> Option<T> {
        raw.and_then(|r| serde_json::from_slice::<Option<T>>(r).ok().flatten())
    }
    let envelope: Envelope<()> = Envelope {
        status: value(field(&top, "status")),
        data: None,
        code: value(field(&top, "code")),
        message: value(field(&top, "message")),
        correlation_id: value(field(&top, "correlationId")),
    };
    check_status(resp, body, envelope.status.as_deref(), &envelope).map_err(|e| match e {
        SourceError::Unusable(u) => unusable(u.kind, u.detail),
        other => other,
    })?;
    let not_a_page = |detail: &str| unusable(UnusableKind::NotAPage, detail.to_owned());
    let data = field(&top, "data")
        .filter(|d| *d != b"null")
        .ok_or_else(|| not_a_page("a SUCCESS envelope without `data`"))?;
    let data = scan::object(data).ok_or_else(|| not_a_page("`data` is not an object"))?;
    let data_bytes = field(&top, "data").expect("found above");
    let data_field = |name: &str| {
        data.iter()
            .find(|m| &data_bytes[m.key.clone()] == name.as_bytes())
            .map(|m| &data_bytes[m.value.clone()])
    };
    let content = data_field("content")
        .filter(|c| *c != b"null")
        .ok_or_else(|| not_a_page("a page without `data.content`"))?;
    let elements = scan::Scanner::new(content)
        .array()
        .ok_or_else(|| not_a_page("`data.content` is not an array"))?;
    let events = elements
        .into_iter()
        .map(|range| {
            let bytes = &content[range];
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    let detail = format!("bytes that are not UTF-8 at offset {}", e.valid_up_to());
                    return Event::quarantined(bytes, Reason::NotJson, detail);
                }
            };
            match serde_json::from_str::<&RawValue>(text) {
                Ok(raw) => Event::from_json(raw.to_owned()),
                Err(e) => Event::quarantined(bytes, Reason::NotJson, e.to_string()),
            }
        })
        .collect();
    Ok(Page {
        events,
        total_items: value(data_field("totalItems")),
        has_next: value(data_field("hasNext")),
        next_token: value(data_field("pageToken")),
    })
}

/// Sets each event's [`Event::at_ms`]. The walk is sound only if readable
/// events come oldest first inside the range asked for, so anything else
/// fails the page; an event whose time cannot be read or does not fit sits
/// where the event before it does.
fn place(page: &mut Page, at: &RequestAt) -> Result<(), String> {
    let mut previous = at.start_ms;
    for (i, event) in page.events.iter_mut().enumerate() {
        let fits = event.time_ms.filter(|t| (previous..=at.end_ms).contains(t));
        match fits {
            Some(t) => {
                event.at_ms = t;
                previous = t;
            }
            None if event.readable() => {
                return Err(format!(
                    "event {i} (`{}`, timestamp {}) is out of ascending order or outside the window [{}, {}]",
                    event.key,
                    event.time_ms.unwrap_or_default(),
                    at.start_ms,
                    at.end_ms
                ));
            }
            None => event.at_ms = previous,
        }
    }
    Ok(())
}

/// A body's first characters, control characters blanked.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_CHARS * 4)]);
    let excerpt: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let more = if excerpt.len() < body.len() {
        "…"
    } else {
        ""
    };
    format!("{}{more}", excerpt.trim())
}

/// A body described for an error message: its size and first characters.
fn describe(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty body".into();
    }
    format!("{} bytes, starting `{}`", body.len(), excerpt(body))
}

#[cfg(test)]
mod tests;
