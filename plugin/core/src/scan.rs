//! Finds where JSON values begin and end without decoding them.
//!
//! Three readers need the extent of values rather than their meaning: the
//! page reader, which must split a page that serde refuses (one event that is
//! not JSON must not cost the others their place), the event reader, which
//! finds `auditId` and `timestamp` among an event's members, and the
//! streaming transform, which copies values as Harness wrote them.
//!
//! The scan is lenient: a string ends at the first quote that no backslash
//! escapes, whatever it holds, and a scalar runs to the next delimiter. On
//! valid JSON that is the grammar exactly; on anything else it still ends,
//! and answers `None` where the structure itself breaks (a bracket closed by
//! the other kind, a missing comma, the end of the text). Nesting is tracked
//! on a heap stack, not by recursion, so no depth overflows it.

use std::ops::Range;

/// A position in JSON bytes.
#[derive(Debug)]
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The closers of the containers a value has opened, kept between
    /// values so that scanning an event's members allocates it once.
    open: Vec<u8>,
}

/// One member of an object: the range of its key's text between the quotes
/// (escapes left as they are) and the range of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            open: Vec::new(),
        }
    }

    /// Where the scan stands: everything before it has been read.
    pub fn position(&self) -> usize {
        self.at
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    /// Consumes `byte` after optional whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string at the next quote; the range of its text between the quotes.
    fn string(&mut self) -> Option<Range<usize>> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            let rest = self.bytes.get(self.at..)?;
            let found = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[found] == b'"' {
                self.at += found + 1;
                return Some(start..self.at - 1);
            }
            // An escape: whatever byte follows the backslash, it cannot close the string.
            self.at += found + 2;
            if self.at > self.bytes.len() {
                return None;
            }
        }
    }

    /// One value, whatever it holds; its range.
    pub fn value(&mut self) -> Option<Range<usize>> {
        self.skip_whitespace();
        let start = self.at;
        self.open.clear();
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b @ (b'{' | b'[') => {
                    self.open.push(if b == b'{' { b'}' } else { b']' });
                    self.at += 1;
                }
                b @ (b'}' | b']') => {
                    if self.open.pop()? != b {
                        return None;
                    }
                    self.at += 1;
                }
                b',' | b':' if !self.open.is_empty() => self.at += 1,
                b',' | b':' => return None,
                _ => {
                    let rest = &self.bytes[self.at..];
                    self.at += rest
                        .iter()
                        .position(|b| {
                            matches!(
                                b,
                                b',' | b':'
                                    | b'{'
                                    | b'}'
                                    | b'['
                                    | b']'
                                    | b'"'
                                    | b' '
                                    | b'\t'
                                    | b'\n'
                                    | b'\r'
                            )
                        })
                        .unwrap_or(rest.len());
                }
            }
            if self.open.is_empty() {
                return Some(start..self.at);
            }
        }
    }

    /// The members of the object that comes next, one at a time.
    pub fn members(self) -> Members<'a> {
        Members {
            scanner: self,
            state: Place::Before,
        }
    }

    /// The elements of the array that comes next.
    pub fn array(&mut self) -> Option<Vec<Range<usize>>> {
        self.eat(b'[')?;
        let mut elements = Vec::new();
        if self.eat(b']').is_some() {
            return Some(elements);
        }
        loop {
            elements.push(self.value()?);
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(elements);
                }
                _ => return None,
            }
        }
    }
}

/// The structure broke where the scan stood: what came next was not what
/// an object allows there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Broken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Before,
    Inside,
    Done,
}

/// The members of an object, read as they are asked for, so that a reader
/// looking for two members need not step over the rest. The object's end is
/// checked too: after the last member comes `Err(Broken)` when the object
/// does not close, or anything but whitespace follows it.
#[derive(Debug)]
pub(crate) struct Members<'a> {
    scanner: Scanner<'a>,
    state: Place,
}

impl Members<'_> {
    /// Where the scan stands: the members before it have been read.
    pub fn position(&self) -> usize {
        self.scanner.position()
    }

    fn step(&mut self) -> Result<Option<Member>, Broken> {
        let s = &mut self.scanner;
        match self.state {
            Place::Done => return Ok(None),
            Place::Before => {
                s.eat(b'{').ok_or(Broken)?;
                if s.eat(b'}').is_some() {
                    return s.at_end().then_some(None).ok_or(Broken);
                }
            }
            Place::Inside => match s.peek().ok_or(Broken)? {
                b',' => s.at += 1,
                b'}' => {
                    s.at += 1;
                    return s.at_end().then_some(None).ok_or(Broken);
                }
                _ => return Err(Broken),
            },
        }
        let key = s.string().ok_or(Broken)?;
        s.eat(b':').ok_or(Broken)?;
        let value = s.value().ok_or(Broken)?;
        Ok(Some(Member { key, value }))
    }
}

impl Iterator for Members<'_> {
    type Item = Result<Member, Broken>;

    fn next(&mut self) -> Option<Self::Item> {
        let step = self.step();
        self.state = match step {
            Ok(Some(_)) => Place::Inside,
            Ok(None) | Err(Broken) => Place::Done,
        };
        step.transpose()
    }
}

/// The members of `text` when it is an object (and nothing after it).
pub(crate) fn object(text: &[u8]) -> Option<Vec<Member>> {
    Scanner::new(text).members().collect::<Result<_, _>>().ok()
}

/// A string's text between its quotes, decoded. A lone surrogate escape
/// (valid JSON, which Java writes for broken UTF-16, yet no character)
/// becomes U+FFFD; `lossless` says whether that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub text: String,
    pub lossless: bool,
}

/// Decodes the text of a JSON string (between its quotes). Only what the
/// scan could not judge is repaired: an unknown escape keeps its character,
/// and a lone surrogate becomes U+FFFD.
pub(crate) fn decode(raw: &str) -> Decoded {
    if !raw.contains('\\') {
        return Decoded {
            text: raw.to_owned(),
            lossless: true,
        };
    }
    let mut text = String::with_capacity(raw.len());
    let mut lossless = true;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        let escaped = match chars.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('u') => {
                let unit = hex4(&mut chars);
                match unit {
                    Some(high @ 0xd800..=0xdbff) => {
                        let mut lookahead = chars.clone();
                        let low = (lookahead.next() == Some('\\') && lookahead.next() == Some('u'))
                            .then(|| hex4(&mut lookahead))
                            .flatten()
                            .filter(|low| (0xdc00..=0xdfff).contains(low));
                        match low {
                            Some(low) => {
                                chars = lookahead;
                                let code = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                                char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
                            }
                            None => {
                                lossless = false;
                                char::REPLACEMENT_CHARACTER
                            }
                        }
                    }
                    Some(unit) => char::from_u32(unit).unwrap_or_else(|| {
                        lossless = false;
                        char::REPLACEMENT_CHARACTER
                    }),
                    None => {
                        lossless = false;
                        char::REPLACEMENT_CHARACTER
                    }
                }
            }
            Some(other) => other,
            None => {
                lossless = false;
                char::REPLACEMENT_CHARACTER
            }
        };
        text.push(escaped);
    }
    Decoded { text, lossless }
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut unit = 0;
    for _ in 0..4 {
        unit = unit << 4 | chars.next()?.to_digit(16)?;
    }
    Some(unit)
}

/// `text` as a JSON string literal, quotes included: what must be escaped
/// is, everything else is kept as it is.
pub(crate) fn quote(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<'a>(bytes: &'a [u8], range: &Range<usize>) -> &'a str {
        std::str::from_utf8(&bytes[range.clone()]).unwrap()
    }

    #[test]
    fn members_are_found_whatever_their_values_hold() {
        let raw = br#" { "a" : [1, {"x":"}]"}, "b\"c"] , "d":"\"" ,"e":-1.5e3,"f":null } "#;
        let members = object(raw).unwrap();
        let pairs: Vec<(&str, &str)> = members
            .iter()
            .map(|m| (text(raw, &m.key), text(raw, &m.value)))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a", r#"[1, {"x":"}]"}, "b\"c"]"#),
                ("d", r#""\"""#),
                ("e", "-1.5e3"),
                ("f", "null"),
            ]
        );
    }

    #[test]
    fn deep_nesting_is_scanned_without_recursion() {
        let depth = 100_000;
        let raw = format!(r#"{{"a":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let members = object(raw.as_bytes()).unwrap();
        assert_eq!(members[0].value.len(), 2 * depth + 1);
    }

    #[test]
    fn broken_structure_is_none_and_never_panics() {
        for broken in [
            &b"{"[..],
            b"{\"a\":",
            b"{\"a\":1",
            b"{\"a\":[1}",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\"}",
            b"{\"a\":\"\\",
            b"{,}",
            b"{\"a\":1}x",
            b"",
            b"\"",
        ] {
            assert_eq!(object(broken), None, "{}", String::from_utf8_lossy(broken));
        }
        let raw = br#"{"a":"x","b":[1,2]}"#;
        for end in 0..raw.len() {
            assert_eq!(object(&raw[..end]), None);
        }
    }

    #[test]
    fn arrays_split_into_elements_even_when_an_element_is_not_json() {
        let raw = b"[{\"a\":1}, nul, \"x\ty\" ,{\"b\":\"\xff\"}]";
        let elements = Scanner::new(raw).array().unwrap();
        let got: Vec<&[u8]> = elements.iter().map(|r| &raw[r.clone()]).collect();
        assert_eq!(
            got,
            [&b"{\"a\":1}"[..], b"nul", b"\"x\ty\"", b"{\"b\":\"\xff\"}"]
        );
        assert_eq!(Scanner::new(b"[1,2").array(), None);
        assert_eq!(Scanner::new(b"[1 2]").array(), None);
        assert_eq!(Scanner::new(b" [ ] ").array(), Some(vec![]));
    }

    #[test]
    fn strings_decode_with_lone_surrogates_replaced_and_said_so() {
        assert_eq!(
            decode(r"plain é"),
            Decoded {
                text: "plain é".into(),
                lossless: true
            }
        );
        assert_eq!(
            decode(r#"a\"b\\c\/d\n\u00e9\ud83d\ude00"#),
            Decoded {
                text: "a\"b\\c/d\né😀".into(),
                lossless: true
            }
        );
        for lone in [r"x\ud800y", r"\udc00", r"\ud800\u0041", r"\ud800"] {
            let d = decode(lone);
            assert!(!d.lossless, "{lone}");
            assert!(d.text.contains('\u{fffd}'), "{lone}");
        }
        assert_eq!(decode(r"\ud800\u0041").text, "\u{fffd}A");
    }

    #[test]
    fn quoting_escapes_only_what_json_requires() {
        let mut out = String::new();
        quote("a\"b\\c\n\u{1}é😀/", &mut out);
        assert_eq!(out, r#""a\"b\\c\n\u0001é😀/""#);
        assert_eq!(
            serde_json::from_str::<String>(&out).unwrap(),
            "a\"b\\c\n\u{1}é😀/"
        );
    }
}
