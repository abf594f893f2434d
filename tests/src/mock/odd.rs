//! Odd but legal content (API doc, section 9 item 11): what a Java service
//! behind an edge sends, and what its schema changes send, that a client
//! must survive without stopping. Behind [`OddContent`], off by default, the
//! mock sends a share of events oddly and answers a share of list requests
//! with something that is not a page.

use serde_json::Value;

use super::Fault;
use crate::seed::{AuditEvent, Rng};

/// How an event is sent oddly. Each kind's bytes hold the event's `auditId`
/// (or its timestamp and id as text), so no two events send the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OddKind {
    /// A lone surrogate escape in a label (`"\ud800"`), as Jackson writes
    /// broken UTF-16.
    LoneSurrogate,
    /// NUL and other control characters escaped, a character outside the
    /// BMP raw and as an escaped pair.
    Controls,
    /// A large member, as a pipeline's YAML diff.
    Big,
    /// `null` where objects usually are.
    Nulls,
    /// An integer wider than 64 bits and a decimal longer than a double.
    WideNumbers,
    /// A value nested 150 levels deep.
    Deep,
    /// `timestamp` sent as a string of digits.
    DigitTimestamp,
    /// Whitespace and line breaks between tokens.
    Pretty,
    /// A member given twice (`module`).
    DuplicateMember,
    /// No `auditId`.
    NoAuditId,
    /// `auditId` as a number.
    NumericAuditId,
    /// No `timestamp`.
    NoTimestamp,
    /// `timestamp` as an ISO 8601 string.
    IsoTimestamp,
    /// An array, not an object.
    NotAnObject,
    /// A raw tab inside a string: not JSON.
    RawControl,
    /// Bytes that are not UTF-8 inside a string: not JSON.
    NotUtf8,
}

impl OddKind {
    /// Every kind.
    pub const ALL: [Self; 16] = [
        Self::LoneSurrogate,
        Self::Controls,
        Self::Big,
        Self::Nulls,
        Self::WideNumbers,
        Self::Deep,
        Self::DigitTimestamp,
        Self::Pretty,
        Self::DuplicateMember,
        Self::NoAuditId,
        Self::NumericAuditId,
        Self::NoTimestamp,
        Self::IsoTimestamp,
        Self::NotAnObject,
        Self::RawControl,
        Self::NotUtf8,
    ];

    /// Whether a collector cannot write it in `shape` (`raw` or
    /// `streaming`) and must keep it byte for byte instead.
    pub fn quarantined(self, streaming: bool) -> bool {
        match self {
            Self::DuplicateMember => streaming,
            Self::NoAuditId
            | Self::NumericAuditId
            | Self::NoTimestamp
            | Self::IsoTimestamp
            | Self::NotAnObject
            | Self::RawControl
            | Self::NotUtf8 => true,
            _ => false,
        }
    }

    /// The bytes the API sends for `event` (whose JSON is `json`); `big` is
    /// the size of [`OddKind::Big`]'s member.
    pub fn render(self, event: &AuditEvent, json: &str, big: usize) -> Vec<u8> {
        let Value::Object(mut object) =
            serde_json::from_str::<Value>(json).expect("events are JSON")
        else {
            unreachable!("events are objects")
        };
        let (id, ts) = (&event.audit_id, event.timestamp);
        let body = |object: &serde_json::Map<String, Value>| {
            serde_json::to_string(object).expect("a map serializes")
        };
        // Splices raw text in before the closing brace of `json`.
        let with =
            |member: &str| format!("{},{member}}}", json.strip_suffix('}').expect("an object"));
        match self {
            Self::LoneSurrogate => with(r#""note":"broken \ud800 utf-16""#).into_bytes(),
            Self::Controls => {
                with(r#""note":"\u0000\u0001\u001f tab\tline\n 😀 \ud83d\ude00""#).into_bytes()
            }
            Self::Big => {
                let line = "    - step:\n        name: build\n        spec: {}\n";
                let yaml = line.repeat(big / line.len() + 1);
                let yaml = Value::String(yaml[..big].to_owned()).to_string();
                with(&format!(r#""yamlDiff":{{"oldYaml":"","newYaml":{yaml}}}"#)).into_bytes()
            }
            Self::Nulls => {
                for key in ["resource", "authenticationInfo", "resourceScope"] {
                    object.insert(key.into(), Value::Null);
                }
                body(&object).into_bytes()
            }
            Self::WideNumbers => with(
                r#""runSequence":1180591620717411303424,"cost":0.1000000000000000055511151231257827"#,
            )
            .into_bytes(),
            Self::Deep => with(&format!(
                r#""nested":{}"{id}"{}"#,
                "[".repeat(150),
                "]".repeat(150)
            ))
            .into_bytes(),
            Self::DigitTimestamp => {
                object.insert("timestamp".into(), Value::String(ts.to_string()));
                body(&object).into_bytes()
            }
            Self::Pretty => serde_json::to_string_pretty(&object)
                .expect("a map serializes")
                .replace('\n', "\r\n")
                .into_bytes(),
            Self::DuplicateMember => with(r#""module":"CORE""#).into_bytes(),
            Self::NoAuditId => {
                object.remove("auditId");
                object.insert("insertId".into(), Value::String(id.clone()));
                body(&object).into_bytes()
            }
            Self::NumericAuditId => {
                object.insert("auditId".into(), Value::from(ts));
                object.insert("insertId".into(), Value::String(id.clone()));
                body(&object).into_bytes()
            }
            Self::NoTimestamp => {
                object.remove("timestamp");
                body(&object).into_bytes()
            }
            Self::IsoTimestamp => {
                let at = format!("{}.{:03}Z", ts / 1000, ts % 1000);
                object.insert("timestamp".into(), Value::String(at));
                body(&object).into_bytes()
            }
            Self::NotAnObject => format!(r#"["{id}",{ts}]"#).into_bytes(),
            Self::RawControl => with("\"note\":\"a raw\ttab\"").into_bytes(),
            Self::NotUtf8 => {
                let mut bytes = with(r#""note":"latin-1 XX""#).into_bytes();
                let at = bytes
                    .windows(2)
                    .position(|w| w == b"XX")
                    .expect("the marker");
                bytes.splice(at..at + 2, [0xe9]);
                bytes
            }
        }
    }
}

/// Odd content, off unless set (see [`crate::mock::Freedoms::odd`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OddContent {
    /// Share (0.0 to 1.0) of events inserted while set that are sent oddly,
    /// each of a kind drawn from [`OddKind::ALL`].
    pub events: f64,
    /// Share of list requests answered with something that is not a page
    /// ([`OddAnswer`]); the next request is answered as usual.
    pub answers: f64,
    /// Bytes of [`OddKind::Big`]'s member.
    pub big_bytes: usize,
}

impl OddContent {
    /// What the chaos runs send: 3% of events odd, 2% of answers odd, and
    /// the large member 1.5 MB.
    pub const CHAOS: Self = Self {
        events: 0.03,
        answers: 0.02,
        big_bytes: 1_500_000,
    };
}

/// A whole answer that is not a page, or a page sent oddly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OddAnswer {
    /// A 200 whose body is an HTML maintenance page.
    MaintenancePage,
    /// An envelope whose `status` is neither SUCCESS, ERROR nor FAILURE.
    OtherStatus,
    /// A SUCCESS envelope whose `data` is null.
    NullData,
    /// A SUCCESS envelope whose `data.content` is null.
    NullContent,
    /// The page itself, gzip-encoded with `Content-Encoding: gzip`.
    Gzip,
}

impl OddAnswer {
    /// Every odd answer.
    pub const ALL: [Self; 5] = [
        Self::MaintenancePage,
        Self::OtherStatus,
        Self::NullData,
        Self::NullContent,
        Self::Gzip,
    ];

    /// One, drawn.
    pub fn pick(rng: &mut Rng) -> Self {
        Self::ALL[rng.below(Self::ALL.len() as u64) as usize]
    }

    /// The answer, as the fault the mock serves in place of the page.
    pub fn fault(self, rng: &mut Rng) -> Fault {
        let correlation = format!("{:016x}", rng.next_u64());
        let json = |body: String| Fault::Respond {
            status: 200,
            content_type: "application/json",
            body,
        };
        match self {
            Self::MaintenancePage => Fault::Respond {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body:
                    "<!DOCTYPE html><html><head><title>Harness is under maintenance</title></head>\
                       <body><h1>We'll be back shortly</h1></body></html>"
                        .into(),
            },
            Self::OtherStatus => json(format!(
                r#"{{"status":"IN_PROGRESS","data":null,"metaData":null,"correlationId":"{correlation}"}}"#
            )),
            Self::NullData => json(format!(
                r#"{{"status":"SUCCESS","data":null,"metaData":null,"correlationId":"{correlation}"}}"#
            )),
            Self::NullContent => json(format!(
                r#"{{"status":"SUCCESS","data":{{"totalPages":1,"totalItems":3,"content":null,"pageIndex":0,"empty":false,"pageToken":null}},"metaData":null,"correlationId":"{correlation}"}}"#
            )),
            Self::Gzip => Fault::Gzip,
        }
    }
}
