//! Reads an event's `auditId` and `timestamp` straight from its JSON text.
//!
//! When the keys are needed, the event is already valid JSON (a `RawValue`
//! cut from the page). Parsing it in full a second time, only to find two
//! members that Harness writes near the front, cost as much as splitting the
//! whole page. The scan here stops as soon as both are found and steps over
//! the members before them without decoding. It answers only the plain case:
//! escapes in a key or in the id, a timestamp that is not a plain integer, a
//! member seen twice before the scan ends, or text that is not an object all
//! give `None`, and the caller then parses in full, so such events get
//! exactly the result or error they always got. One difference is deliberate:
//! a member repeated after both were found is never reached, so the first
//! occurrence counts where a full parse would reject the event.

/// The event's `auditId` and `timestamp`, or `None` when only a full parse
/// can say.
pub fn scan(raw: &str) -> Option<(&str, u64)> {
    let mut scanner = Scanner { text: raw, at: 0 };
    scanner.expect(b'{')?;
    let mut audit_id = None;
    let mut timestamp = None;
    loop {
        let key = scanner.plain_string()?;
        scanner.expect(b':')?;
        match key {
            "auditId" if audit_id.is_none() => audit_id = Some(scanner.plain_string()?),
            "timestamp" if timestamp.is_none() => timestamp = Some(scanner.integer()?),
            "auditId" | "timestamp" => return None,
            _ => scanner.skip_value()?,
        }
        if let (Some(id), Some(ms)) = (audit_id, timestamp) {
            return Some((id, ms));
        }
        scanner.expect(b',')?;
    }
}

/// Digits of the longest integer that always fits `u64` (`u64::MAX` has 20).
const MAX_DIGITS: usize = 19;

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_whitespace(&mut self) {
        while matches!(
            self.bytes().get(self.at),
            Some(b' ' | b'\t' | b'\n' | b'\r')
        ) {
            self.at += 1;
        }
    }

    /// Consumes `byte` after optional whitespace.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (*self.bytes().get(self.at)? == byte).then(|| self.at += 1)
    }

    /// A string without escapes, as the text between its quotes.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let end = start + memchr::memchr2(b'"', b'\\', self.bytes().get(start..)?)?;
        if self.bytes()[end] == b'\\' {
            return None;
        }
        self.at = end + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..end)
    }

    /// A non-negative integer that fits `u64` and ends its member: anything
    /// else after the digits (a fraction, an exponent) is for serde to judge.
    fn integer(&mut self) -> Option<u64> {
        self.skip_whitespace();
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.bytes().get(self.at) {
            value = value * 10 + u64::from(digit - b'0');
            self.at += 1;
            // Nineteen digits cannot overflow; stopping here, rather than
            // checking each step, keeps wasm32 off 128-bit multiplication.
            if self.at - start == MAX_DIGITS {
                break;
            }
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && self.bytes()[start] == b'0';
        self.skip_whitespace();
        // A twentieth digit lands here and sends the event to serde.
        let ends_member = matches!(self.bytes().get(self.at), Some(b',' | b'}'));
        (digits > 0 && !leading_zero && ends_member).then_some(value)
    }

    /// Steps over one value of valid JSON: strings by searching for their
    /// closing quote, containers by counting brackets outside strings.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            self.skip_whitespace();
            match *self.bytes().get(self.at)? {
                b'"' => self.skip_string()?,
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.at += 1;
                }
                b',' | b':' if depth > 0 => self.at += 1,
                b',' | b':' => return None,
                _ => {
                    let rest = &self.bytes()[self.at..];
                    self.at += rest
                        .iter()
                        .position(|b| {
                            matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                        })
                        .unwrap_or(rest.len());
                }
            }
            if depth == 0 {
                return Some(());
            }
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            let rest = self.bytes().get(self.at..)?;
            let found = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[found] == b'"' {
                self.at += found + 1;
                return Some(());
            }
            // An escape: the byte after the backslash cannot close the string.
            self.at += found + 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Full {
        audit_id: String,
        timestamp: u64,
    }

    /// What a full parse says, for comparison with the scan.
    fn full(raw: &str) -> Option<(String, u64)> {
        serde_json::from_str::<Full>(raw)
            .ok()
            .map(|f| (f.audit_id, f.timestamp))
    }

    const HARNESS: &str = r#"{"auditId":"68483b21f99472ce88e5d355","insertId":"a\"b","resourceScope":{"accountIdentifier":"Xy3kQ9mTR0aWb1cD2eF4gH","orgIdentifier":"default","labels":{"k":[1,2.5e3,{"x":"}]"}],"n":null,"t":true}},"httpRequestInfo":{"requestMethod":"POST"},"timestamp":1749564191482,"module":"PMS","resource":{"type":"PIPELINE","labels":{"resourceName":"Déploiement 支払い"}},"action":"CREATE"}"#;

    #[test]
    fn finds_both_members_past_nested_values_and_escaped_strings() {
        assert_eq!(
            scan(HARNESS),
            Some(("68483b21f99472ce88e5d355", 1_749_564_191_482))
        );
        assert_eq!(
            full(HARNESS),
            Some(("68483b21f99472ce88e5d355".into(), 1_749_564_191_482))
        );
    }

    #[test]
    fn agrees_with_a_full_parse_whatever_the_member_order_and_spacing() {
        let events = [
            r#"{"timestamp":5,"auditId":"a"}"#,
            " {\n\t\"auditId\" :\r\n \"a\" , \"x\" : [ ] , \"timestamp\" : 0 } ",
            r#"{"x":{},"y":[[],[{}]],"z":-1.5e-3,"w":"\\","auditId":"a","timestamp":9999999999999999999}"#,
            r#"{"auditId":"é支","timestamp":1}"#,
        ];
        for raw in events {
            let (id, ms) = scan(raw).unwrap_or_else(|| panic!("{raw}"));
            assert_eq!(full(raw), Some((id.to_owned(), ms)), "{raw}");
        }
    }

    #[test]
    fn leaves_to_the_full_parse_what_it_does_not_read_plainly() {
        for raw in [
            r#"{"audit\u0049d":"a","timestamp":1}"#,
            r#"{"auditId":"a\"b","timestamp":1}"#,
            r#"{"auditId":"a","timestamp":1.0}"#,
            r#"{"auditId":"a","timestamp":1e3}"#,
            r#"{"auditId":"a","timestamp":-1}"#,
            r#"{"auditId":"a","timestamp":01}"#,
            r#"{"auditId":"a","timestamp":18446744073709551615}"#,
            r#"{"auditId":"a","timestamp":99999999999999999999}"#,
            r#"{"auditId":"a","timestamp":"1"}"#,
            r#"{"auditId":7,"timestamp":1}"#,
            r#"{"auditId":"a","auditId":"b","timestamp":1}"#,
            r#"{"auditId":"a"}"#,
            r#"{}"#,
            r#"["auditId","a"]"#,
        ] {
            assert_eq!(scan(raw), None, "{raw}");
        }
    }

    #[test]
    fn the_first_occurrence_counts_once_both_are_found() {
        let raw = r#"{"auditId":"a","timestamp":1,"auditId":"b"}"#;
        assert_eq!(scan(raw), Some(("a", 1)));
        assert_eq!(full(raw), None);
    }

    #[test]
    fn never_panics_or_misreads_on_cut_or_broken_text() {
        for end in 0..HARNESS.len() {
            let Some(cut) = HARNESS.get(..end) else {
                continue;
            };
            if let Some(found) = scan(cut) {
                assert_eq!(
                    found,
                    ("68483b21f99472ce88e5d355", 1_749_564_191_482),
                    "{cut}"
                );
            }
        }
        for broken in [
            r#"{"x":}"#,
            r#"{"x":]]}"#,
            r#"{"x" "auditId"}"#,
            "{\"x\":\"\\",
            "{,",
        ] {
            assert_eq!(scan(broken), None, "{broken}");
        }
    }
}
