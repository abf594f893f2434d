use super::*;

const E1: &str = r#"{"auditId":"68483b21f99472ce88e5d355","resourceScope":{"accountIdentifier":"Xy3kQ9mTR0aWb1cD2eF4gH","orgIdentifier":"default","projectIdentifier":"payments"},"timestamp":1749564191482,"module":"PMS","resource":{"type":"PIPELINE","identifier":"deploy_payments","labels":{"resourceName":"Déploiement 支払い"}},"action":"CREATE"}"#;

const AT: RequestAt = RequestAt {
    start_ms: 0,
    end_ms: u64::MAX,
    page_index: 0,
    page_size: 50,
};

fn success(content: &str) -> Vec<u8> {
    format!(
        r#"{{"status":"SUCCESS","data":{{"totalPages":1,"totalItems":1,"pageItemCount":1,"pageSize":50,"content":[{content}],"pageIndex":0,"empty":false,"pageToken":null}},"metaData":null,"correlationId":"c1"}}"#
    )
    .into_bytes()
}

fn ok(status: u16, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse::json(status, body)
}

fn parse_body(status: u16, body: &[u8]) -> Result<Page, SourceError> {
    parse(&ok(status, body), &AT)
}

fn unusable(result: Result<Page, SourceError>) -> Unusable {
    match result {
        Err(SourceError::Unusable(u)) => *u,
        other => panic!("not unusable: {other:?}"),
    }
}

fn quarantined(event: &Event) -> &Quarantined {
    match &event.content {
        Content::Quarantined(q) => q,
        Content::Json(raw) => panic!("readable: {}", raw.get()),
    }
}

#[test]
fn keeps_each_event_byte_for_byte() {
    let spaced = E1.replace(",\"module\"", " ,  \"module\"");
    let page = parse_body(200, &success(&spaced)).unwrap();
    assert_eq!(page.events.len(), 1);
    let Content::Json(raw) = &page.events[0].content else {
        panic!()
    };
    assert_eq!(raw.get(), spaced);
    assert_eq!(page.events[0].key, "68483b21f99472ce88e5d355");
    assert_eq!(page.events[0].at_ms, 1_749_564_191_482);
    assert_eq!(page.total_items, Some(1));
}

#[test]
fn empty_page_is_a_page() {
    let page = parse_body(200, &success("")).unwrap();
    assert!(page.events.is_empty());
}

#[test]
fn error_statuses_map_to_typed_errors_with_harness_message() {
    let body = br#"{"status":"ERROR","code":"INVALID_TOKEN","message":"Token is not valid.","correlationId":"abc","detailedMessage":null,"responseMessages":[],"metadata":null}"#;
    let err = parse_body(401, body).unwrap_err();
    let SourceError::Unauthorized(f) = err else {
        panic!("{err:?}")
    };
    assert_eq!(f.message, "Token is not valid.");
    assert_eq!(f.code.as_deref(), Some("INVALID_TOKEN"));
    assert_eq!(f.correlation_id.as_deref(), Some("abc"));

    assert!(matches!(
        parse_body(403, body),
        Err(SourceError::Forbidden(_))
    ));
    assert!(matches!(
        parse_body(500, body),
        Err(SourceError::ServerError(_))
    ));
    let failure = br#"{"status":"FAILURE","code":"INVALID_REQUEST","message":"pageSize: must be less than or equal to 100","correlationId":"x","errors":[]}"#;
    let Err(SourceError::BadRequest(f)) = parse_body(400, failure) else {
        panic!()
    };
    assert_eq!(f.message, "pageSize: must be less than or equal to 100");
}

#[test]
fn rate_limit_with_non_json_body_keeps_retry_after() {
    let resp = HttpResponse {
        retry_after_secs: Some(7),
        ..ok(429, b"Too Many Requests")
    };
    let err = parse(&resp, &AT).unwrap_err();
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
    let err = parse_body(502, b"<html><body>Bad Gateway</body></html>").unwrap_err();
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
        parse_body(200, body),
        Err(SourceError::Forbidden(_))
    ));
    let weird = unusable(parse_body(200, br#"{"status":"WEIRD"}"#));
    assert_eq!(weird.kind, UnusableKind::NotAPage);
    assert!(weird.detail.contains("`WEIRD`"), "{}", weird.detail);
    // An ERROR envelope serde refuses (its message is no string) keeps its meaning.
    let odd = br#"{"status":"ERROR","code":"INVALID_TOKEN","message":{"text":"no"}}"#;
    assert!(matches!(
        parse_body(200, odd),
        Err(SourceError::Unauthorized(_))
    ));
}

/// Each whole answer that is not a page is named as what it is, with what
/// Harness sent, and the request it answered.
#[test]
fn whole_answers_that_are_not_a_page_say_what_they_are() {
    let html = HttpResponse {
        content_type: Some("text/html; charset=utf-8".into()),
        ..ok(
            200,
            b"<!DOCTYPE html><html><title>Harness is under maintenance</title></html>",
        )
    };
    let u = unusable(parse(&html, &AT));
    assert_eq!(u.kind, UnusableKind::NotAPage);
    assert_eq!(u.request, Some(AT));
    let said = u.to_string();
    for part in [
        "HTTP 200",
        "text/html; charset=utf-8",
        "71 bytes",
        "starting `<!DOCTYPE html><html><title>Harness is under maintenance",
        "not a Harness envelope",
    ] {
        assert!(said.contains(part), "{part} in {said}");
    }
    for (body, detail) in [
        (&br#"{"status":"SUCCESS"}"#[..], "without `data`"),
        (br#"{"status":"SUCCESS","data":null}"#, "without `data`"),
        (
            br#"{"status":"SUCCESS","data":{}}"#,
            "without `data.content`",
        ),
        (
            br#"{"status":"SUCCESS","data":{"content":null,"totalItems":3}}"#,
            "without `data.content`",
        ),
        (br#"{}"#, "has no status"),
    ] {
        let u = unusable(parse_body(200, body));
        assert_eq!(u.kind, UnusableKind::NotAPage, "{detail}");
        assert!(u.detail.contains(detail), "{}: {}", u.detail, detail);
        assert!(SourceError::Unusable(Box::new(u)).is_retryable());
    }
    let full = success(E1);
    let cut = unusable(parse_body(200, &full[..full.len() / 2]));
    assert_eq!(cut.kind, UnusableKind::CutShort);
    assert!(
        cut.detail.contains("ends before its JSON does"),
        "{}",
        cut.detail
    );
}

#[test]
fn a_content_encoding_is_undone_or_named() {
    use std::io::Write as _;
    let page = success(E1);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&page).unwrap();
    let gzipped = HttpResponse {
        content_encoding: Some("gzip".into()),
        ..ok(200, gzip.finish().unwrap())
    };
    assert_eq!(parse(&gzipped, &AT).unwrap().events.len(), 1);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zlib.write_all(&page).unwrap();
    let deflated = HttpResponse {
        content_encoding: Some("Deflate".into()),
        ..ok(200, zlib.finish().unwrap())
    };
    assert_eq!(parse(&deflated, &AT).unwrap().events.len(), 1);

    let brotli = HttpResponse {
        content_encoding: Some("br".into()),
        ..ok(200, b"\x0b\x02\x80".to_vec())
    };
    let u = unusable(parse(&brotli, &AT));
    assert_eq!(u.kind, UnusableKind::UnsupportedEncoding);
    assert!(u.to_string().contains("content-encoding br"), "{u}");
    assert!(
        !SourceError::Unusable(Box::new(u)).is_retryable(),
        "the same request meets the same encoding"
    );
    let broken = HttpResponse {
        content_encoding: Some("gzip".into()),
        ..ok(200, b"\x1f\x8b\x08\x00 not gzip".to_vec())
    };
    assert_eq!(unusable(parse(&broken, &AT)).kind, UnusableKind::CutShort);
}

#[test]
fn a_gzip_body_that_decodes_past_the_bound_is_too_large() {
    use std::io::Write as _;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&vec![b' '; MAX_BODY_BYTES + 1]).unwrap();
    let bomb = HttpResponse {
        content_encoding: Some("gzip".into()),
        ..ok(200, gzip.finish().unwrap())
    };
    let u = unusable(parse(&bomb, &AT));
    assert_eq!(u.kind, UnusableKind::TooLarge);
    assert_eq!(
        u.bytes,
        MAX_BODY_BYTES as u64 + 1,
        "read no further than the bound"
    );
}

#[test]
fn client_errors_are_not_retryable() {
    let body = br#"{"status":"ERROR","code":"INVALID_REQUEST","message":"bad"}"#;
    for status in [400, 401, 403] {
        assert!(!parse_body(status, body).unwrap_err().is_retryable());
    }
}

#[test]
fn long_bodies_are_excerpted() {
    let long = "x".repeat(1000);
    let Err(SourceError::ServerError(f)) = parse_body(503, long.as_bytes()) else {
        panic!()
    };
    assert!(
        f.message.starts_with("1000 bytes") && f.message.ends_with("…`"),
        "{}",
        f.message
    );
}

/// Odd but legal content (what Java's JSON writers emit, and what a schema
/// change sends) is read, or quarantined on its own, and never costs the
/// rest of the page.
#[test]
fn odd_events_are_read_or_quarantined_and_the_page_goes_on() {
    let deep = format!("{}1{}", "[".repeat(150), "]".repeat(150));
    let events = [
        // Readable, whatever they hold.
        r#"{"auditId":"a1","timestamp":10,"x":"lone \ud800 surrogate"}"#.to_owned(),
        r#"{"auditId":"a2","timestamp":11,"x":"\u0000\u0001\u001f nul and controls"}"#.to_owned(),
        r#"{"auditId":"a3","timestamp":12,"resource":null,"authenticationInfo":null}"#.to_owned(),
        r#"{"auditId":"a4","timestamp":13,"runSequence":1180591620717411303424,"cost":0.1000000000000000055511151231257827}"#.to_owned(),
        format!(r#"{{"auditId":"a5","timestamp":14,"deep":{deep}}}"#),
        r#"{"auditId":"a6","timestamp":"15"}"#.to_owned(),
        // Quarantined, each with its reason.
        r#"{"timestamp":16,"action":"LOGIN"}"#.to_owned(),
        r#"{"auditId":"a8","action":"LOGIN"}"#.to_owned(),
        "null".to_owned(),
        r#"{"auditId":9,"timestamp":18}"#.to_owned(),
    ];
    let page = parse_body(200, &success(&events.join(","))).unwrap();
    let readable: Vec<&str> = page
        .events
        .iter()
        .filter(|e| e.readable())
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(readable, ["a1", "a2", "a3", "a4", "a5", "a6"]);
    let reasons: Vec<Reason> = page.events[6..]
        .iter()
        .map(|e| quarantined(e).reason)
        .collect();
    assert_eq!(
        reasons,
        [
            Reason::AuditId,
            Reason::Timestamp,
            Reason::NotAnObject,
            Reason::AuditId
        ]
    );
    for (event, raw) in page.events.iter().zip(&events).skip(6) {
        assert_eq!(&*quarantined(event).bytes, raw.as_bytes(), "byte for byte");
    }
    assert_eq!(
        page.events[5].at_ms, 15,
        "a timestamp of digits is that number"
    );
    assert_eq!(
        page.events[6].at_ms, 16,
        "an event without id keeps its time"
    );
    assert!(page.events[6].key.starts_with("sha256:"));
    assert_eq!(page.events[7].key, "a8");
    assert_eq!(
        page.events[7].at_ms, 16,
        "an event without time sits where the one before it does"
    );
}

/// An event that is not JSON makes serde refuse the whole envelope; the
/// lenient scan splits the page, so only that event is quarantined.
#[test]
fn an_event_that_is_not_json_is_quarantined_alone() {
    let mut body = success(
        "{\"auditId\":\"a\",\"timestamp\":1},{\"auditId\":\"b\",\"timestamp\":2,\"x\":\"tab\there\"},\
         {\"auditId\":\"c\",\"timestamp\":3,\"x\":\"\\q\"},{\"auditId\":\"d\",\"timestamp\":4,\"x\":\"XX\"},\
         {\"auditId\":\"e\",\"timestamp\":5}",
    );
    let at = body.windows(2).position(|w| w == b"XX").unwrap();
    body.splice(at..at + 2, [0xff]);
    body.extend_from_slice(b"  ");
    let page = parse_body(200, &body).unwrap();
    let keys: Vec<(bool, u64)> = page
        .events
        .iter()
        .map(|e| (e.readable(), e.at_ms))
        .collect();
    assert_eq!(
        keys,
        [(true, 1), (false, 1), (false, 1), (false, 1), (true, 5)],
        "unreadable events sit where the readable one before them does"
    );
    for event in &page.events[1..4] {
        let q = quarantined(event);
        assert_eq!(q.reason, Reason::NotJson);
        assert!(event.key.starts_with("sha256:"));
    }
    assert_eq!(
        &*quarantined(&page.events[1]).bytes,
        b"{\"auditId\":\"b\",\"timestamp\":2,\"x\":\"tab\there\"}"
    );
    assert!(quarantined(&page.events[3]).detail.contains("not UTF-8"));
    assert_eq!(page.total_items, Some(1));
}

#[test]
fn keys_the_scan_cannot_read_plainly_are_decoded() {
    let page = parse_body(
        200,
        &success(r#"{"auditId":"a\u0062","timestamp":7},{"auditId":"c","timestamp":8}"#),
    )
    .unwrap();
    let keys: Vec<_> = page
        .events
        .iter()
        .map(|e| (e.key.as_str(), e.at_ms))
        .collect();
    assert_eq!(keys, [("ab", 7), ("c", 8)]);
    let page = parse_body(200, &success(r#"{"auditId":"a","timestamp":1.5}"#)).unwrap();
    assert_eq!(quarantined(&page.events[0]).reason, Reason::Timestamp);
}

#[test]
fn readable_events_out_of_order_or_range_fail_the_page() {
    let at = RequestAt {
        start_ms: 10,
        end_ms: 20,
        page_index: 0,
        page_size: 50,
    };
    for content in [
        r#"{"auditId":"a","timestamp":12},{"auditId":"b","timestamp":11}"#,
        r#"{"auditId":"a","timestamp":9}"#,
        r#"{"auditId":"a","timestamp":21}"#,
    ] {
        let u = unusable(parse(&ok(200, success(content)), &at));
        assert_eq!(u.kind, UnusableKind::NotAPage);
        assert!(u.detail.contains("out of ascending order"), "{}", u.detail);
    }
    // A quarantined event whose time does not fit sits where its page puts it.
    let page = parse(
        &ok(
            200,
            success(
                r#"{"auditId":"a","timestamp":12},{"timestamp":5},{"auditId":"b","timestamp":13}"#,
            ),
        ),
        &at,
    )
    .unwrap();
    let placed: Vec<u64> = page.events.iter().map(|e| e.at_ms).collect();
    assert_eq!(placed, [12, 12, 13]);
}
