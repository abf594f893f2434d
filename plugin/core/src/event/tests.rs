use super::*;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Full {
    audit_id: String,
    timestamp: u64,
}

/// What a strict parse says, for comparison.
fn full(raw: &str) -> Option<(String, u64)> {
    serde_json::from_str::<Full>(raw)
        .ok()
        .map(|f| (f.audit_id, f.timestamp))
}

fn keys(raw: &str) -> (Result<String, String>, Result<u64, String>) {
    let k = read(raw).unwrap();
    (k.audit_id, k.timestamp)
}

const HARNESS: &str = r#"{"auditId":"68483b21f99472ce88e5d355","insertId":"a\"b","resourceScope":{"accountIdentifier":"Xy3kQ9mTR0aWb1cD2eF4gH","labels":{"k":[1,2.5e3,{"x":"}]"}],"n":null}},"timestamp":1749564191482,"module":"PMS","action":"CREATE"}"#;

#[test]
fn agrees_with_a_strict_parse_on_what_both_read() {
    for raw in [
        HARNESS,
        r#"{"timestamp":5,"auditId":"a"}"#,
        " {\n\t\"auditId\" :\r\n \"a\" , \"x\" : [ ] , \"timestamp\" : 0 } ",
        r#"{"x":{},"y":[[],[{}]],"z":-1.5e-3,"w":"\\","auditId":"a","timestamp":9999999999999999999}"#,
        r#"{"auditId":"é支","timestamp":18446744073709551615}"#,
        r#"{"audit\u0049d":"a\u0062","timestamp":1}"#,
        r#"{"auditId":"a","timestamp":1,"x":{"auditId":"b","timestamp":2},"y":"timestamp"}"#,
    ] {
        let (id, ms) = keys(raw);
        assert_eq!(full(raw), Some((id.unwrap(), ms.unwrap())), "{raw}");
    }
}

#[test]
fn a_timestamp_written_as_a_string_of_digits_is_that_number() {
    assert_eq!(
        keys(r#"{"auditId":"a","timestamp":"1749564191482"}"#).1,
        Ok(1_749_564_191_482)
    );
    assert_eq!(keys(r#"{"auditId":"a","timestamp":"007"}"#).1, Ok(7));
    assert_eq!(keys(r#"{"auditId":"a","timestamp":"000"}"#).1, Ok(0));
    assert_eq!(
        keys(r#"{"auditId":"a","timestamp":"0018446744073709551615"}"#).1,
        Ok(u64::MAX)
    );
}

#[test]
fn each_unreadable_key_is_named() {
    let cases = [
        (r#"{"timestamp":1}"#, "`auditId` is missing"),
        (
            r#"{"auditId":"a","auditId":"b","timestamp":1}"#,
            "appears twice",
        ),
        (
            r#"{"auditId":"a","timestamp":1,"note":"x","auditId":"b"}"#,
            "appears twice",
        ),
        (
            r#"{"timestamp":1,"auditId":"a","s":"\u00e9","audit\u0049d":"b"}"#,
            "appears twice",
        ),
        (r#"{"auditId":7,"timestamp":1}"#, "is a number"),
        (r#"{"auditId":null,"timestamp":1}"#, "is null"),
        (r#"{"auditId":"","timestamp":1}"#, "is empty"),
        (r#"{"auditId":"a\ud800","timestamp":1}"#, "no character"),
    ];
    for (raw, said) in cases {
        let problem = read(raw).unwrap().problem().unwrap();
        assert_eq!(problem.0, Reason::AuditId, "{raw}");
        assert!(problem.1.contains(said), "{raw}: {}", problem.1);
    }
    for raw in [
        r#"{"auditId":"a"}"#,
        r#"{"auditId":"a","timestamp":1,"timestamp":1}"#,
        r#"{"auditId":"a","timestamp":1,"x":[{"timestamp":2}],"time\u0073tamp":1}"#,
        r#"{"auditId":"a","timestamp":1.0}"#,
        r#"{"auditId":"a","timestamp":1e3}"#,
        r#"{"auditId":"a","timestamp":-1}"#,
        r#"{"auditId":"a","timestamp":18446744073709551616}"#,
        r#"{"auditId":"a","timestamp":123456789012345678901}"#,
        r#"{"auditId":"a","timestamp":"2025-06-10T14:03:11Z"}"#,
        r#"{"auditId":"a","timestamp":""}"#,
        r#"{"auditId":"a","timestamp":null}"#,
        r#"{"auditId":"a","timestamp":{"$date":1}}"#,
    ] {
        let problem = read(raw).unwrap().problem().unwrap();
        assert_eq!(problem.0, Reason::Timestamp, "{raw}");
        assert!(problem.1.starts_with("`timestamp` "), "{}", problem.1);
        assert_eq!(full(raw), None, "{raw}");
    }
    for raw in ["null", "[1]", "\"x\"", "12", "true"] {
        assert!(read(raw).unwrap_err().contains("not an object"), "{raw}");
    }
}

#[test]
fn a_key_read_whole_keeps_the_first_problem_and_the_other_key() {
    let k = read(r#"{"timestamp":"x","auditId":"a"}"#).unwrap();
    assert_eq!(k.audit_id, Ok("a".into()));
    assert_eq!(k.problem().unwrap().0, Reason::Timestamp);
    let k = read(r#"{"timestamp":5}"#).unwrap();
    assert_eq!(k.timestamp, Ok(5));
    assert_eq!(k.problem().unwrap().0, Reason::AuditId);
}

#[test]
fn a_stored_line_s_time_is_read_as_the_component_reads_it() {
    let line = |l: &str| line_time(l, "timestamp");
    assert_eq!(line(r#"{"timestamp":100,"s":"\ud800"}"#), Ok(Some(100)));
    assert_eq!(line(r#" {"x":[[[]]],"timestamp":"100"} "#), Ok(Some(100)));
    assert_eq!(line(r#"{"time\u0073tamp":7}"#), Ok(Some(7)));
    assert_eq!(line(r#"{"auditEventTime":7}"#), Ok(None));
    assert!(
        line(r#"{"timestamp":1,"timestamp":1}"#)
            .unwrap_err()
            .contains("twice")
    );
    assert!(
        line(r#"{"timestamp":1.5}"#)
            .unwrap_err()
            .contains("not a whole number")
    );
    assert!(line(r#"{"timestamp":1} {}"#).is_err());
    assert!(
        line(r#"[{"timestamp":1}]"#)
            .unwrap_err()
            .contains("not an object")
    );
    assert!(line("{\"timestamp\":1,\"s\":\"tab\there\"}").is_err());
    assert!(
        line_time(r#"{"auditEventTime":"x"}"#, "auditEventTime")
            .unwrap_err()
            .contains("`auditEventTime` is a string")
    );
    let deep = format!(
        r#"{{"timestamp":5,"d":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(line(&deep), Ok(Some(5)), "no depth limit");
}

#[test]
fn content_keys_are_the_sha256_of_the_bytes() {
    assert_eq!(
        content_key(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_ne!(content_key(b"null"), content_key(b"null "));
}
