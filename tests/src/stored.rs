//! Reading what the collector stored, whatever the events hold: objects as
//! lines of bytes (a quarantined event may not be UTF-8), and data lines'
//! ids (a data line may hold a lone surrogate, which serde's `Value` refuses).

/// The lines of an object's content, without their newlines.
pub fn lines(content: &[u8]) -> Vec<Vec<u8>> {
    content
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// A data line's `auditId` (raw shape) or `auditEventId` (streaming shape).
/// Members it does not name are skipped undecoded.
pub fn id_of(line: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Ids {
        #[serde(rename = "auditId")]
        raw: Option<String>,
        #[serde(rename = "auditEventId")]
        streaming: Option<String>,
    }
    let ids: Ids = serde_json::from_slice(line).unwrap_or_else(|e| {
        panic!(
            "a data line is a JSON object ({e}): {}",
            String::from_utf8_lossy(line)
        )
    });
    ids.raw.or(ids.streaming).expect("each data line has an id")
}

/// The line an event sent as `bytes` makes in the raw shape's data: JSON
/// holds line breaks only between tokens, and the collector writes one
/// event a line.
pub fn data_line(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| if matches!(b, b'\n' | b'\r') { b' ' } else { *b })
        .collect()
}
