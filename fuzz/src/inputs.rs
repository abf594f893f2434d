//! Structured inputs, drawn from raw bytes: real Harness events and files,
//! edited member by member and byte by byte, so that most inputs are nearly
//! valid and reach the code behind the first syntax check.

use arbitrary::{Arbitrary, Result, Unstructured};

/// Realistic list items (API doc, section 8), as members in Harness's order.
const EVENTS: [&[(&str, &str)]; 4] = [
    &[
        ("auditId", r#""68483b21f99472ce88e5d355""#),
        (
            "resourceScope",
            r#"{"accountIdentifier":"Xy3kQ9mTR0aWb1cD2eF4gH","orgIdentifier":"default","projectIdentifier":"payments"}"#,
        ),
        ("httpRequestInfo", r#"{"requestMethod":"POST"}"#),
        ("requestMetadata", r#"{"clientIP":"203.0.113.24"}"#),
        ("timestamp", "1749564191482"),
        (
            "authenticationInfo",
            r#"{"principal":{"type":"USER","identifier":"jane.doe@example.com"},"labels":{"userId":"pR7sT2uVwX9yZ0aB1cD3eF","username":"Jane Doe"}}"#,
        ),
        ("module", r#""PMS""#),
        (
            "resource",
            r#"{"type":"PIPELINE","identifier":"deploy_payments","labels":{"resourceName":"Deploy Payments"}}"#,
        ),
        ("action", r#""CREATE""#),
    ],
    &[
        ("auditId", r#""6848422d4647856834e372f7""#),
        (
            "resourceScope",
            r#"{"accountIdentifier":"Xy3kQ9mTR0aWb1cD2eF4gH","orgIdentifier":"platform"}"#,
        ),
        ("timestamp", "1749565991630"),
        (
            "authenticationInfo",
            r#"{"principal":{"type":"SERVICE_ACCOUNT","identifier":"terraform_sa"}}"#,
        ),
        ("module", r#""CORE""#),
        (
            "resource",
            r#"{"type":"SECRET","identifier":"old_github_pat","labels":{"resourceName":"old-github-pat"}}"#,
        ),
        ("action", r#""DELETE""#),
    ],
    &[
        ("auditId", r#""6848448698570c55a8bad551""#),
        ("timestamp", "1749566591667"),
        (
            "authenticationInfo",
            r#"{"principal":{"type":"SYSTEM","identifier":"SYSTEM"}}"#,
        ),
        ("module", r#""PMS""#),
        (
            "auditEventData",
            r#"{"type":"PipelineExecutionEventData","runSequence":42,"stageIdentifier":null,"triggeredBy":{"type":"MANUAL","extraInfo":{"email":"jane.doe@example.com"}},"startTs":1749566591410,"endTs":0}"#,
        ),
        ("action", r#""START""#),
    ],
    &[
        ("auditId", r#""68483da40dbc370731e00882""#),
        ("timestamp", "1749564831593"),
        (
            "authenticationInfo",
            r#"{"principal":{"type":"USER","identifier":"mallory@example.org"},"labels":{"userId":"Zz9yXw8vUt7sRq6pOn5mLk","username":"mallory"}}"#,
        ),
        ("module", r#""CORE""#),
        ("action", r#""UNSUCCESSFUL_LOGIN""#),
    ],
];

/// Keys an edit may touch: the ones the readers care about, and others.
const KEYS: [&str; 12] = [
    "auditId",
    "timestamp",
    r"audit\u0049d",
    r"time\u0073tamp",
    "action",
    "module",
    "resource",
    "resourceScope",
    "authenticationInfo",
    "httpRequestInfo",
    "harnessAuditUnmapped",
    "resource.labels",
];

/// Odd but legal values (and a few that are not JSON).
const VALUES: [&str; 18] = [
    "null",
    r#""\ud800""#,
    r#""a\u0000\u001fb""#,
    "1180591620717411303424",
    "0.1000000000000000055511151231257827",
    r#""1749564191482""#,
    r#""2025-06-10T14:03:11.482Z""#,
    "-1",
    "1.5e3",
    r#"{"":1}"#,
    "[1,2]",
    r#"{"type":"X","type":"Y"}"#,
    r#"{"principal":"x","labels":[1]}"#,
    r#""😀 \ud83d\ude00""#,
    "{\n\"a\" :\r\n 1 }",
    "\"a\tb\"",
    "\"\u{ff}\"",
    "tru",
];

/// Tokens spliced in by byte edits.
const TOKENS: [&[u8]; 12] = [
    b"null", b"\"", b"{", b"}", b"[", b"]", b",", b":", b"\\u", b"\\ud800", b"\n", b"\xff",
];

/// A few edits of bytes: flips, inserted tokens, removed spans.
fn edit_bytes(u: &mut Unstructured<'_>, bytes: &mut Vec<u8>) -> Result<()> {
    for _ in 0..u.int_in_range(0..=3)? {
        let at = if bytes.is_empty() {
            0
        } else {
            u.choose_index(bytes.len() + 1)?
        };
        match u.int_in_range(0..=2)? {
            0 if at < bytes.len() => bytes[at] ^= u8::arbitrary(u)?,
            1 => {
                let token = u.choose(&TOKENS)?;
                bytes.splice(at..at, token.iter().copied());
            }
            _ => {
                let end = (at + usize::from(u.int_in_range(0..=8u8)?)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
        }
    }
    Ok(())
}

/// One event: a template, edited member by member, then perhaps byte by byte.
#[derive(Debug, Clone)]
pub struct EventInput {
    members: Vec<(String, String)>,
    /// Raw bytes in place of the members, sometimes.
    raw: Option<Vec<u8>>,
    edits: Vec<u8>,
    seed: Vec<u8>,
}

impl EventInput {
    /// An event drawn from `u`.
    pub fn draw(u: &mut Unstructured<'_>) -> Result<Self> {
        let template = u.choose(&EVENTS)?;
        let mut members: Vec<(String, String)> = template
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for _ in 0..u.int_in_range(0..=3)? {
            let key = (*u.choose(&KEYS)?).to_owned();
            match u.int_in_range(0..=3)? {
                0 => members.retain(|(k, _)| *k != key),
                1 => {
                    let value = match u.int_in_range(0..=3)? {
                        0 => {
                            let depth = usize::from(u.int_in_range(0..=255u8)?) * 2;
                            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
                        }
                        1 => serde_json::Value::String(String::arbitrary(u)?).to_string(),
                        _ => (*u.choose(&VALUES)?).to_owned(),
                    };
                    match members.iter_mut().find(|(k, _)| *k == key) {
                        Some(member) => member.1 = value,
                        None => members.push((key, value)),
                    }
                }
                2 => {
                    // Repeated as it was, or with another value, anywhere.
                    let value = match members.iter().find(|(k, _)| *k == key) {
                        Some((_, v)) if u.arbitrary()? => v.clone(),
                        _ => (*u.choose(&VALUES)?).to_owned(),
                    };
                    let at = u.int_in_range(0..=members.len())?;
                    members.insert(at, (key, value));
                }
                _ => {}
            }
        }
        let raw = if u.ratio(1, 16)? {
            Some(Vec::arbitrary(u)?)
        } else {
            None
        };
        let edits = if u.ratio(1, 4)? {
            Vec::arbitrary(u)?
        } else {
            Vec::new()
        };
        Ok(Self {
            members,
            raw,
            edits,
            seed: Vec::new(),
        })
    }

    /// Sets its `timestamp` member, where it has one that is a number.
    pub fn at(mut self, ms: u64) -> Self {
        if let Some(member) = self
            .members
            .iter_mut()
            .find(|(k, v)| k == "timestamp" && v.bytes().all(|b| b.is_ascii_digit()))
        {
            member.1 = ms.to_string();
        }
        self
    }

    /// Gives it an `auditId` of its own (events on one page differ).
    pub fn numbered(mut self, n: usize) -> Self {
        if let Some(member) = self
            .members
            .iter_mut()
            .find(|(k, v)| k == "auditId" && v.len() == 26)
        {
            member.1 = format!("\"{n:024x}\"");
        }
        self.seed = n.to_le_bytes().to_vec();
        self
    }

    /// The event's bytes.
    pub fn render(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let body: Vec<String> = self
            .members
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let mut bytes = format!("{{{}}}", body.join(",")).into_bytes();
        if !self.edits.is_empty() {
            let mut data = self.edits.clone();
            data.extend_from_slice(&self.seed);
            let _ = edit_bytes(&mut Unstructured::new(&data), &mut bytes);
        }
        bytes
    }
}

/// What `data` holds in an envelope.
#[derive(Debug, Clone, Copy)]
enum Data {
    Events,
    Null,
    Missing,
    ContentNull,
    ContentNotArray,
}

/// A whole answer to a list request.
#[derive(Debug, Clone)]
pub struct PageInput {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// How the body is encoded: 0 none, 1 gzip, 2 deflate, 3 `br`, 4 bad gzip.
    pub encoding: u8,
    /// The request it answers: start, end, page index and size.
    pub request: (u64, u64, u32, u32),
    envelope_status: Option<&'static str>,
    data: Data,
    total: Option<u64>,
    events: Vec<EventInput>,
    /// Raw bytes in place of the envelope, sometimes.
    raw: Option<Vec<u8>>,
    /// Where the body is cut, if it is.
    cut: Option<usize>,
}

impl PageInput {
    /// An answer drawn from `u`.
    pub fn draw(u: &mut Unstructured<'_>) -> Result<Self> {
        let start = u.int_in_range(1_749_000_000_000..=1_749_600_000_000u64)?;
        let end = start + u64::from(u.int_in_range(0..=7_200_000u32)?);
        let (index, size) = (u.int_in_range(0..=3)?, u.int_in_range(1..=100)?);
        let mut input = Self::answering(u, (start, end, index, size))?;
        if u.ratio(1, 8)? {
            input.status = *u.choose(&[400, 401, 403, 429, 500, 502, 503, 204])?;
        }
        Ok(input)
    }

    /// An answer to the request `(start, end, page index, page size)`.
    pub fn answering(u: &mut Unstructured<'_>, request: (u64, u64, u32, u32)) -> Result<Self> {
        let (start, end, _, _) = request;
        let count = usize::from(u.int_in_range(0..=8u8)?);
        let mut offsets: Vec<u64> = (0..count)
            .map(|_| u.int_in_range(0..=end - start))
            .collect::<Result<_>>()?;
        offsets.sort_unstable();
        let events = offsets
            .into_iter()
            .enumerate()
            .map(|(n, offset)| Ok(EventInput::draw(u)?.at(start + offset).numbered(n)))
            .collect::<Result<_>>()?;
        Ok(Self {
            status: 200,
            content_type: u
                .choose(&[Some("application/json"), Some("text/html"), None])?
                .map(str::to_owned),
            encoding: if u.ratio(1, 6)? {
                u.int_in_range(1..=4)?
            } else {
                0
            },
            request,
            envelope_status: *u.choose(&[
                Some("SUCCESS"),
                Some("SUCCESS"),
                Some("SUCCESS"),
                Some("ERROR"),
                Some("FAILURE"),
                Some("IN_PROGRESS"),
                None,
            ])?,
            data: if u.ratio(7, 8)? {
                Data::Events
            } else {
                *u.choose(&[
                    Data::Null,
                    Data::Missing,
                    Data::ContentNull,
                    Data::ContentNotArray,
                ])?
            },
            total: if u.ratio(7, 8)? {
                Some(u64::from(u.int_in_range(0..=20u8)?))
            } else {
                None
            },
            events,
            raw: if u.ratio(1, 16)? {
                Some(Vec::arbitrary(u)?)
            } else {
                None
            },
            cut: if u.ratio(1, 16)? {
                Some(usize::arbitrary(u)?)
            } else {
                None
            },
        })
    }

    /// The body, before any encoding.
    pub fn body(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut body = b"{".to_vec();
        if let Some(status) = self.envelope_status {
            body.extend_from_slice(format!("\"status\":\"{status}\",").as_bytes());
        }
        let total = self
            .total
            .map_or_else(|| "null".to_owned(), |t| t.to_string());
        match self.data {
            Data::Events => {
                body.extend_from_slice(
                    format!("\"data\":{{\"totalItems\":{total},\"pageToken\":null,\"content\":[")
                        .as_bytes(),
                );
                for (i, event) in self.events.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(&event.render());
                }
                body.extend_from_slice(b"]}");
            }
            Data::Null => body.extend_from_slice(b"\"data\":null"),
            Data::Missing => {
                body.extend_from_slice(b"\"code\":\"INVALID_TOKEN\",\"message\":\"no\"")
            }
            Data::ContentNull => body.extend_from_slice(b"\"data\":{\"content\":null}"),
            Data::ContentNotArray => body.extend_from_slice(b"\"data\":{\"content\":{}}"),
        }
        body.extend_from_slice(b",\"metaData\":null,\"correlationId\":\"c\"}");
        if let Some(cut) = self.cut {
            body.truncate(cut % (body.len() + 1));
        }
        body
    }

    /// The `Content-Encoding` label and the body as sent.
    pub fn encoded(&self) -> (Option<&'static str>, Vec<u8>) {
        use std::io::Write as _;
        let body = self.body();
        match self.encoding {
            1 => {
                let mut gzip =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gzip.write_all(&body).expect("writing to a Vec");
                (Some("gzip"), gzip.finish().expect("writing to a Vec"))
            }
            2 => {
                let mut zlib =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                zlib.write_all(&body).expect("writing to a Vec");
                (Some("deflate"), zlib.finish().expect("writing to a Vec"))
            }
            3 => (Some("br"), body),
            4 => (Some("gzip"), body),
            _ => (None, body),
        }
    }
}

/// A pass's settings and the answers Harness gives it, in turn.
#[derive(Debug, Clone)]
pub struct PassInput {
    /// `PAGE_SIZE`.
    pub page_size: u32,
    /// `BATCH_MAX_EVENTS`.
    pub batch_max_events: u32,
    /// `OUTPUT_SHAPE=streaming`.
    pub streaming: bool,
    /// The answers: each a page of events (timestamps set to fit the
    /// request it answers), or odd.
    pub answers: Vec<Vec<u8>>,
}

impl PassInput {
    /// A pass drawn from `u`.
    pub fn draw(u: &mut Unstructured<'_>) -> Result<Self> {
        let count = u.int_in_range(1..=12)?;
        let answers = (0..count)
            .map(|_| {
                let len = u.int_in_range(0..=256)?;
                Ok(u.bytes(len)?.to_vec())
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            page_size: u.int_in_range(1..=6)?,
            batch_max_events: u.int_in_range(6..=12)?,
            streaming: bool::arbitrary(u)?,
            answers,
        })
    }
}

/// A batch's quarantine as a component might emit it.
#[derive(Debug, Clone)]
pub struct QuarantineInput {
    /// Each event: bytes, reason (any `u8`, taken modulo the reasons), place.
    pub events: Vec<(Vec<u8>, u8, u64)>,
    /// Its checkpoint.
    pub checkpoint: String,
}

/// A batch as a component might emit it.
#[derive(Debug, Clone)]
pub struct BatchInput {
    /// NDJSON lines.
    pub lines: Vec<u8>,
    /// What `event-count` says.
    pub event_count: u32,
    /// `first-event-ms`, `last-event-ms`, `window-start-ms`, `window-end-ms`.
    pub times: [u64; 4],
    /// The checkpoint.
    pub checkpoint: String,
    /// Quarantined events and their checkpoint.
    pub quarantine: Option<QuarantineInput>,
    /// The host's clock.
    pub now_ms: u64,
    /// `time_field` is `auditEventTime`.
    pub streaming: bool,
}

impl BatchInput {
    /// A batch drawn from `u`: real events around a base time, and odd ones.
    pub fn draw(u: &mut Unstructured<'_>) -> Result<Self> {
        let base = u.int_in_range(1_000..=2_000_000_000_000u64)?;
        let mut lines = Vec::new();
        let count = u.int_in_range(0..=6u32)?;
        for n in 0..count {
            let at = base + u64::from(u.int_in_range(0..=1000u16)?);
            lines.extend_from_slice(&EventInput::draw(u)?.at(at).numbered(n as usize).render());
            lines.push(b'\n');
        }
        let skew = |u: &mut Unstructured<'_>| -> Result<u64> {
            Ok(base.saturating_add_signed(i64::from(u.int_in_range(-50..=1050i16)?)))
        };
        let times = [skew(u)?, skew(u)?, skew(u)?, skew(u)?];
        let quarantine = if u.ratio(1, 2)? {
            let events = (0..u.int_in_range(0..=4)?)
                .map(|_| Ok((Vec::arbitrary(u)?, u.int_in_range(0..=4)?, skew(u)?)))
                .collect::<Result<_>>()?;
            Some(QuarantineInput {
                events,
                checkpoint: String::arbitrary(u)?,
            })
        } else {
            None
        };
        Ok(Self {
            lines,
            event_count: if u.ratio(7, 8)? {
                count
            } else {
                u32::arbitrary(u)?
            },
            times,
            checkpoint: if u.ratio(7, 8)? {
                "{}".into()
            } else {
                String::arbitrary(u)?
            },
            quarantine,
            now_ms: base.saturating_add(u64::from(u.int_in_range(0..=600_000u32)?)),
            streaming: bool::arbitrary(u)?,
        })
    }
}

/// A text file: a seed, edited line by line and byte by byte.
#[derive(Debug, Clone)]
pub struct TextInput {
    /// The text.
    pub text: String,
}

impl TextInput {
    /// A text drawn from `u`, starting from one of `seeds`.
    pub fn draw(u: &mut Unstructured<'_>, seeds: &[&str]) -> Result<Self> {
        let mut lines: Vec<String> = u.choose(seeds)?.lines().map(str::to_owned).collect();
        for _ in 0..u.int_in_range(0..=4)? {
            let at = u.choose_index(lines.len() + 1)?;
            match u.int_in_range(0..=3)? {
                0 if at < lines.len() => {
                    lines.remove(at);
                }
                1 => {
                    let line = u.choose(&lines.clone()).cloned().unwrap_or_default();
                    lines.insert(at, line);
                }
                2 => lines.insert(at, String::arbitrary(u)?),
                _ => {}
            }
        }
        let mut bytes = lines.join("\n").into_bytes();
        edit_bytes(u, &mut bytes)?;
        Ok(Self {
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

/// Configuration files the operator writes: the examples and the golden
/// cases of `tests/ui`.
pub const CONFIG_SEEDS: &[&str] = &[
    include_str!("../../examples/minimal.toml"),
    include_str!("../../examples/advanced.toml"),
    include_str!("../../tests/ui/file_list_of_numbers.toml"),
    include_str!("../../tests/ui/file_unknown_table.toml"),
    include_str!("../../tests/ui/file_wrong_type.toml"),
];

/// Tenant files.
pub const TENANT_SEEDS: &[&str] = &[
    include_str!("../../examples/tenants.toml"),
    include_str!("../../examples/shippers/stdout-tenant.toml"),
];

/// A checkpoint: one the core wrote, edited, or raw bytes.
pub fn checkpoint_bytes(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    if u.ratio(1, 8)? {
        return Vec::arbitrary(u);
    }
    let hour = 3_600_000u64;
    let from = u.int_in_range(0..=500_000u64)? * hour;
    let slice = from + u64::from(u.int_in_range(0..=3u8)?) * hour;
    let mut value = serde_json::json!({
        "version": *u.choose(&[3u32, 3, 3, 2, 4])?,
        "account_id": "acct",
        "initial_start_ms": from,
        "last_end_ms": from + hour,
        "walk": {
            "purpose": *u.choose(&["window", "reread"])?,
            "range": {"start_ms": from, "end_ms": from + hour},
            "cursor_ms": from + u64::from(u.int_in_range(0..=1000u16)?),
            "seen_at_cursor": ["a", "b"],
            "read": u32::arbitrary(u)?,
            "written": u32::arbitrary(u)?,
            "offset": u8::arbitrary(u)?,
            "hourly": bool::arbitrary(u)?,
        },
        "watermark_ms": from,
        "ledger": {
            "from_ms": from,
            "slices": {
                slice.to_string(): {
                    "ids": {"oids": "aEg7IfmUcs6I5dNV", "other": ["x", "sha256:00"]},
                    "count": {"events": u8::arbitrary(u)?, "through_ms": slice + 10, "at_ms": 1, "stored": u8::arbitrary(u)?},
                    "quarantined": u8::arbitrary(u)?,
                }
            }
        },
        "to_check": [slice],
    });
    if u.ratio(1, 4)? {
        value["walk"]["tie"] =
            serde_json::json!({"requests": u8::arbitrary(u)?, "next_page": u8::arbitrary(u)?});
    }
    let mut bytes = value.to_string().into_bytes();
    edit_bytes(u, &mut bytes)?;
    Ok(bytes)
}

/// A state object, a digest or the Cloud Run recipe's state: real ones,
/// edited, or raw bytes.
pub fn state_bytes(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let entry = serde_json::json!({
        "name": "harness/audit-quarantine/2025/06/10/harness-audit-20250610-140311-0011223344556677.jsonl",
        "kind": *u.choose(&["batch", "quarantine", "fence"])?,
        "sha256": "00", "bytes": 1, "events": 1,
        "reasons": {"not-json": 1}, "at-ms": [1_749_564_191_482u64],
    });
    let mut bytes = match u.int_in_range(0..=3)? {
        0 => serde_json::json!({
            "format": *u.choose(&["harness-audit-state/2", "harness-audit-state/1", "x/9"])?,
            "checkpoint": "{}",
            "pending": {"object": "a/b.jsonl", "checkpoint": "{}", "entry": entry},
            "chain": {"sequence": u8::arbitrary(u)?, "sha256": "ab"},
            "unsealed": [entry],
            "stall": {"answer": "NotAPage HTTP 200", "passes": u8::arbitrary(u)?, "since": "2025-06-10T14:03:11.482Z"},
        })
        .to_string()
        .into_bytes(),
        1 => {
            let body = serde_json::json!({
                "format": "harness-audit-digest/1", "prefix": "harness/audit", "sequence": 1,
                "previous": null, "window-start": null, "window-end": null, "signer": null,
                "objects": [entry],
            });
            format!("{body}\n{{\"algorithm\":\"ed25519\",\"signer\":\"s\",\"signature\":\"AA==\"}}\n").into_bytes()
        }
        2 => format!(
            "{{\"since\": {}}}",
            u.choose(&["1749564191", "1749564191482.5", "\"2025-06-10T14:03:11Z\"", "-1", "1e308"])?
        )
        .into_bytes(),
        _ => Vec::arbitrary(u)?,
    };
    edit_bytes(u, &mut bytes)?;
    Ok(bytes)
}
