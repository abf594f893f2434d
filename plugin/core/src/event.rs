//! Reads one event: its `auditId` and `timestamp`, or why it cannot be read.
//!
//! An event is written in the configured shape only when it is a JSON object
//! holding exactly one `auditId`, a non-empty string of valid text, and
//! exactly one `timestamp` in epoch milliseconds. Anything else is kept byte
//! for byte in the quarantine with its [`Reason`], so that no event, however
//! odd, stops collection.
//!
//! One leniency is taken, because it is safe: a `timestamp` sent as a string
//! of digits (`"1749564191482"`, what a schema change to a string type would
//! send) is that number. The raw shape keeps the string as Harness sent it;
//! the streaming shape writes the number and keeps the string under
//! `harnessAuditUnmapped`.
//!
//! The members are found by a scan that steps over values without decoding
//! them (see [`crate::scan`]): parsing each event in full only to find two
//! members that Harness writes near the front cost as much as splitting the
//! whole page. Once both are found, the scan goes on only when the rest of
//! the event could name either again, so a key given twice is seen wherever
//! it is, and an event without such text is not scanned to its end.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use sha2::{Digest as _, Sha256};

use crate::scan;

/// Why an event is kept in the quarantine rather than written in the
/// configured shape. The names are those of the WIT `quarantine-reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not JSON text: a syntax error, a raw control character in a string,
    /// bytes that are not UTF-8.
    NotJson,
    /// JSON, but not an object.
    NotAnObject,
    /// `auditId` missing, given twice, empty, not a string, or not valid text.
    AuditId,
    /// `timestamp` missing, given twice, or neither a whole number of
    /// milliseconds nor a string of digits that fits 64 bits.
    Timestamp,
    /// The streaming shape cannot hold it: a member it maps appears twice,
    /// or two values would land at one path of `harnessAuditUnmapped`.
    Unmappable,
}

impl Reason {
    /// Every reason, in a fixed order.
    pub const ALL: [Self; 5] = [
        Self::NotJson,
        Self::NotAnObject,
        Self::AuditId,
        Self::Timestamp,
        Self::Unmappable,
    ];

    /// The reason's name, as in the WIT and the metric label.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotJson => "not-json",
            Self::NotAnObject => "not-an-object",
            Self::AuditId => "audit-id",
            Self::Timestamp => "timestamp",
            Self::Unmappable => "unmappable",
        }
    }
}

/// What reading an event's members found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `auditId`, or what is wrong with it.
    pub audit_id: Result<String, String>,
    /// `timestamp` in epoch ms, or what is wrong with it.
    pub timestamp: Result<u64, String>,
}

impl Keys {
    /// The first problem, with its reason.
    pub fn problem(&self) -> Option<(Reason, String)> {
        if let Err(detail) = &self.audit_id {
            return Some((Reason::AuditId, detail.clone()));
        }
        if let Err(detail) = &self.timestamp {
            return Some((Reason::Timestamp, detail.clone()));
        }
        None
    }
}

/// Longest excerpt of a value quoted in a problem, in characters.
const EXCERPT_CHARS: usize = 40;

fn excerpt(value: &str) -> String {
    match value.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// What JSON value `raw` is, in words.
pub fn kind_of(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

/// Reads `auditId` and `timestamp` from an event's text, which is valid
/// JSON. `Err` when it is not an object, naming what it is.
pub fn read(text: &str) -> Result<Keys, String> {
    let not_an_object = || format!("the event is {}, not an object", kind_of(text));
    let mut members = scan::Scanner::new(text.as_bytes()).members();
    let mut audit_id = None;
    let mut timestamp = None;
    while let Some(member) = members.next() {
        let member = member.map_err(|scan::Broken| not_an_object())?;
        let value = &text[member.value.clone()];
        let slot = match plain_or_decoded(&text[member.key.clone()]).as_ref() {
            "auditId" => &mut audit_id,
            "timestamp" => &mut timestamp,
            _ => continue,
        };
        *slot = Some(match slot {
            None => Ok(value),
            Some(_) => Err(()),
        });
        if audit_id.is_some()
            && timestamp.is_some()
            && !may_name_a_key(&text.as_bytes()[members.position()..])
        {
            break;
        }
    }
    let audit_id = match audit_id {
        None => Err("`auditId` is missing".to_owned()),
        Some(Err(())) => Err("`auditId` appears twice".to_owned()),
        Some(Ok(value)) => read_id(value),
    };
    let timestamp = match timestamp {
        None => Err("`timestamp` is missing".to_owned()),
        Some(Err(())) => Err("`timestamp` appears twice".to_owned()),
        Some(Ok(value)) => read_time(value).map_err(|what| format!("`timestamp` {what}")),
    };
    Ok(Keys {
        audit_id,
        timestamp,
    })
}

/// The time field `field` of a stored line (`timestamp`, or `auditEventTime`
/// in the streaming shape): `Ok(None)` when the line lacks it, `Err` when the
/// line is not exactly one JSON object or the field is given twice or holds
/// no time. The host checks every line of a batch with it, and `verify`
/// reads stored lines with it, so both read times as the component does.
pub fn line_time(line: &str, field: &str) -> Result<Option<u64>, String> {
    // serde judges the syntax (any depth, and lone surrogates, which are
    // valid JSON); the scan then finds the member without decoding the rest.
    serde_json::from_str::<serde::de::IgnoredAny>(line).map_err(|e| e.to_string())?;
    let mut found = None;
    for member in scan::Scanner::new(line.as_bytes()).members() {
        let member = member
            .map_err(|scan::Broken| format!("the line is {}, not an object", kind_of(line)))?;
        if plain_or_decoded(&line[member.key.clone()]) != field {
            continue;
        }
        if found.is_some() {
            return Err(format!("`{field}` appears twice"));
        }
        found = Some(&line[member.value]);
    }
    found
        .map(|value| read_time(value).map_err(|what| format!("`{field}` {what}")))
        .transpose()
}

/// Whether `rest` of an event could give `auditId` or `timestamp` again:
/// it holds either name in quotes, or a `\u` escape that could spell one.
/// Text the event holds after both keys rarely does, so most events end
/// their scan there; the text is valid JSON, so what is skipped cannot break
/// the object.
fn may_name_a_key(rest: &[u8]) -> bool {
    static NAMES: LazyLock<[Finder<'static>; 3]> = LazyLock::new(|| {
        [
            Finder::new(br#""auditId""#),
            Finder::new(br#""timestamp""#),
            Finder::new(br"\u"),
        ]
    });
    NAMES.iter().any(|name| name.find(rest).is_some())
}

/// A key's text: as it is when it holds no escape, decoded otherwise.
fn plain_or_decoded(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains('\\') {
        scan::decode(key).text.into()
    } else {
        key.into()
    }
}

fn read_id(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Err(format!(
            "`auditId` is {} (`{}`), not a string",
            kind_of(value),
            excerpt(value)
        ));
    };
    let decoded = scan::decode(inner);
    if !decoded.lossless {
        return Err(format!(
            "`auditId` (`{}`) holds an escape that is no character",
            excerpt(inner)
        ));
    }
    if decoded.text.is_empty() {
        return Err("`auditId` is empty".into());
    }
    Ok(decoded.text)
}

/// `u64::MAX`, the largest time that fits, in digits.
const MAX_TIME: &str = "18446744073709551615";

/// A whole number of epoch milliseconds: an integer, or a string of digits
/// (in which leading zeros are only text). `Err` says what the value is,
/// to follow the field's name.
fn read_time(value: &str) -> Result<u64, String> {
    let digits = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(text) if text.len() > 1 => {
            let trimmed = text.trim_start_matches('0');
            if trimmed.is_empty() { "0" } else { trimmed }
        }
        Some(text) => text,
        None => value,
    };
    let is_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let fits =
        digits.len() < MAX_TIME.len() || (digits.len() == MAX_TIME.len() && digits <= MAX_TIME);
    if !is_digits || !fits {
        return Err(format!(
            "is {} (`{}`), not a whole number of epoch milliseconds",
            kind_of(value),
            excerpt(value)
        ));
    }
    // At most 20 digits that fit: no step overflows. wrapping_mul is one
    // wasm instruction, where checked arithmetic on u64 is not.
    Ok(digits
        .bytes()
        .fold(0u64, |n, d| n.wrapping_mul(10) + u64::from(d - b'0')))
}

/// The key an event without a readable `auditId` is known by: the SHA-256
/// of its bytes, so that reading it again finds it.
pub fn content_key(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::from("sha256:"), |mut key, b| {
            let _ = write!(key, "{b:02x}");
            key
        })
}

#[cfg(test)]
mod tests;
