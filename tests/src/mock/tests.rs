use std::io::{Read, Write};

use super::*;
use crate::seed::{SeedSpec, generate};

const ACCOUNT: &str = "Xy3kQ9mTR0aWb1cD2eF4gH";

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A minimal HTTP/1.1 client: the mock is the system under test here.
fn post(mock: &MockHarness, path_query: &str, key: Option<&str>, body: &str) -> Reply {
    let mut stream = std::net::TcpStream::connect(mock.addr()).unwrap();
    let key_header = key
        .map(|k| format!("x-api-key: {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path_query} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n{key_header}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        mock.addr(),
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        body: body.to_owned(),
    }
}

fn mock_with(count: usize) -> (MockHarness, String) {
    let key = make_key(ACCOUNT, "tok");
    let grants = vec![
        KeyGrant {
            key: key.clone(),
            can_view: true,
        },
        KeyGrant {
            key: make_key(ACCOUNT, "viewless"),
            can_view: false,
        },
    ];
    let mock = MockHarness::start(ACCOUNT, grants).unwrap();
    mock.insert(generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count,
        start_ms: 1_000_000,
        end_ms: 2_000_000,
        seed: 3,
    }));
    (mock, key)
}

fn list_path(index: u32, size: u32, sort: &str) -> String {
    format!(
        "/audit/api/audits/list?accountIdentifier={ACCOUNT}&pageIndex={index}&pageSize={size}{sort}"
    )
}

const ASC: &str = "&sortOrders=timestamp,ASC";
const BODY: &str = r#"{"filterType":"Audit","startTime":0,"endTime":9999999999999}"#;

fn content(r: &Reply) -> Vec<Value> {
    r.json()["data"]["content"].as_array().unwrap().clone()
}

#[test]
fn auth_outcomes_follow_the_real_filter() {
    let (mock, key) = mock_with(5);
    let path = list_path(0, 10, ASC);
    let cases = [
        (None, 401, "INVALID_TOKEN", "Invalid token".to_owned()),
        (
            Some("pat.only-two".to_owned()),
            401,
            "INVALID_TOKEN",
            "Invalid API Token: Token length not matching for API token".into(),
        ),
        (
            Some(make_key("OtherAccount", "tok")),
            401,
            "INVALID_TOKEN",
            format!(
                "Invalid call: Invalid token or token expired. Account id for API called: {ACCOUNT}"
            ),
        ),
        (
            Some(make_key(ACCOUNT, "viewless")),
            403,
            "ACCESS_DENIED",
            format!(
                "User not authorized: You need core_audit_view permission on ACCOUNT with identifier: \
                 {ACCOUNT} to perform this action"
            ),
        ),
    ];
    for (key, status, code, message) in cases {
        let r = post(&mock, &path, key.as_deref(), BODY);
        assert_eq!(
            (r.status, r.json()["code"].as_str().unwrap()),
            (status, code),
            "{}",
            r.body
        );
        assert_eq!(r.json()["message"], message);
        assert_eq!(r.json()["status"], "ERROR");
    }
    let r = post(
        &mock,
        "/audit/api/audits/list?pageSize=10",
        Some(&key),
        BODY,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Invalid request: Account detail is not present in the request"
    );
}

#[test]
fn offset_pages_carry_totals_and_both_prefixes_work() {
    let (mock, key) = mock_with(25);
    let all = mock.events_json();
    let mut seen = vec![];
    for index in 0..4 {
        let prefix = if index % 2 == 0 { "" } else { "/gateway" };
        let r = post(
            &mock,
            &format!("{prefix}{}", list_path(index, 10, ASC)),
            Some(&key),
            BODY,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let json = r.json();
        let data = &json["data"];
        assert_eq!(
            (data["totalItems"].as_u64(), data["totalPages"].as_u64()),
            (Some(25), Some(3))
        );
        assert_eq!(data["pageIndex"].as_u64(), Some(u64::from(index)));
        assert!(data["pageToken"].is_null() && data.get("hasNext").is_none());
        let page = content(&r);
        assert_eq!(data["pageItemCount"].as_u64(), Some(page.len() as u64));
        assert_eq!(data["empty"].as_bool(), Some(page.is_empty()));
        // Compare raw text: find each event's exact JSON in the body.
        seen.extend(all.iter().filter(|e| r.body.contains(e.as_str())).cloned());
        assert_eq!(seen.len(), (index as usize * 10 + 10).min(25));
    }
    assert_eq!(
        seen, all,
        "ascending pages concatenate to every event, byte for byte"
    );
}

#[test]
fn sort_defaults_to_newest_first_and_only_a_single_timestamp_order_counts() {
    let (mock, key) = mock_with(30);
    let stamps = |sort: &str| {
        let r = post(&mock, &list_path(0, 100, sort), Some(&key), BODY);
        content(&r)
            .iter()
            .map(|e| e["timestamp"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    let asc = stamps(ASC);
    assert!(asc.windows(2).all(|w| w[0] <= w[1]) && asc.first() < asc.last());
    for sort in [
        "",
        "&sortOrders=timestamp,DESC",
        "&sortOrders=auditId,ASC",
        "&sortOrders=timestamp,ASC&sortOrders=module,ASC",
    ] {
        let ts = stamps(sort);
        assert!(ts.windows(2).all(|w| w[0] >= w[1]), "{sort}");
    }
}

#[test]
fn time_bounds_are_inclusive_and_body_filters_combine() {
    let (mock, key) = mock_with(300);
    let events = mock.events_json();
    let pick: Value = serde_json::from_str(&events[100]).unwrap();
    let ts = pick["timestamp"].as_u64().unwrap();
    let body = format!(r#"{{"filterType":"Audit","startTime":{ts},"endTime":{ts}}}"#);
    let page = content(&post(&mock, &list_path(0, 100, ASC), Some(&key), &body));
    assert!(!page.is_empty() && page.iter().all(|e| e["timestamp"] == ts));

    let body = r#"{"filterType":"Audit","modules":["pms"],"actions":["START","END"],"staticFilter":"EXCLUDE_SYSTEM_EVENTS","someFutureField":1}"#;
    let r = post(&mock, &list_path(0, 100, ASC), Some(&key), body);
    let expected =
        mock.events_json_where(|e| e.module == "PMS" && (e.action == "START" || e.action == "END"));
    assert_eq!(content(&r).len(), expected.len());
    assert!(expected.iter().all(|e| r.body.contains(e.as_str())));

    let body = r#"{"filterType":"Audit","staticFilter":"EXCLUDE_LOGIN_EVENTS","principals":[{"type":"SERVICE_ACCOUNT","identifier":"terraform_sa"}],"scopes":[{"accountIdentifier":"Xy3kQ9mTR0aWb1cD2eF4gH","orgIdentifier":"default"}]}"#;
    let got = content(&post(&mock, &list_path(0, 100, ASC), Some(&key), body)).len();
    let expected = mock.events_json_where(|e| {
        e.authentication_info.principal.identifier == "terraform_sa"
            && e.resource_scope.org_identifier.as_deref() == Some("default")
    });
    assert!(got > 0);
    assert_eq!(got, expected.len());

    let body = r#"{"filterType":"Audit","resources":[{"type":"USER"}],"environments":[{"type":"Production"}]}"#;
    let r = post(&mock, &list_path(0, 100, ASC), Some(&key), body);
    assert_eq!(
        r.json()["data"]["totalItems"],
        0,
        "resource and environment filters are AND-ed"
    );
}

#[test]
fn validation_messages_are_verbatim() {
    let (mock, key) = mock_with(1);
    let cases = [
        (
            r#"{"filterType":"Audit","startTime":5,"endTime":4}"#,
            "Invalid request: Invalid time filter with start time 5 after end time 4.",
        ),
        (
            r#"{"filterType":"Audit","startTime":-1}"#,
            "Invalid request: Invalid time filter with start time -1 less than zero.",
        ),
        (
            r#"{"filterType":"Audit","scopes":[{"accountIdentifier":"other"}]}"#,
            "Invalid request: Invalid resource scope filter with accountIdentifier other.",
        ),
        (
            r#"{"filterType":"Audit","scopes":[{"accountIdentifier":"Xy3kQ9mTR0aWb1cD2eF4gH","projectIdentifier":"p"}]}"#,
            "Invalid request: Invalid resource scope filter with projectIdentifier p but missing orgIdentifier.",
        ),
        (
            r#"{"filterType":"Audit","resources":[{"identifier":"x"}]}"#,
            "Invalid request: Invalid resource filter with missing resource type.",
        ),
        (
            r#"{"filterType":"Audit","principals":[{"type":"USER"}]}"#,
            "Invalid request: Invalid principal filter with missing principal identifier.",
        ),
        (
            r#"{"filterType":"Audit","environments":[{}]}"#,
            "Invalid request: Invalid environment filter with missing both type and identifier.",
        ),
    ];
    for (body, message) in cases {
        let r = post(&mock, &list_path(0, 10, ASC), Some(&key), body);
        assert_eq!(
            (r.status, r.json()["message"].as_str().unwrap()),
            (400, message)
        );
    }
    for body in [
        r#"{"filterType":"Audit","modules":["NOPE"]}"#,
        r#"{"filterType":"Audit","actions":["create"]}"#,
        "{not json",
    ] {
        let r = post(&mock, &list_path(0, 10, ASC), Some(&key), body);
        assert_eq!(
            (r.status, r.json()["message"].as_str().unwrap()),
            (400, "Unable to process JSON"),
            "{body}"
        );
    }
}

#[test]
fn page_size_over_100_is_a_failure_dto_or_clamped() {
    let (mock, key) = mock_with(150);
    let r = post(&mock, &list_path(0, 101, ASC), Some(&key), BODY);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], "FAILURE");
    assert_eq!(
        r.json()["message"],
        "pageSize: must be less than or equal to 100"
    );
    assert_eq!(r.json()["errors"][0]["fieldId"], "pageSize");
    mock.set_oversize_pages(OversizePages::Clamp);
    assert_eq!(
        content(&post(&mock, &list_path(0, 500, ASC), Some(&key), BODY)).len(),
        100
    );
    let r = post(&mock, &list_path(0, 0, ASC), Some(&key), BODY);
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (500, "UNKNOWN_ERROR")
    );
}

#[test]
fn out_of_range_page_is_empty_with_the_same_totals() {
    let (mock, key) = mock_with(12);
    let r = post(&mock, &list_path(7, 10, ASC), Some(&key), BODY);
    let json = r.json();
    let data = &json["data"];
    assert_eq!(
        (
            data["empty"].as_bool(),
            data["totalItems"].as_u64(),
            data["pageItemCount"].as_u64()
        ),
        (Some(true), Some(12), Some(0))
    );
}

#[test]
fn faults_are_served_once_or_persistently_and_requests_are_recorded() {
    let (mock, key) = mock_with(12);
    mock.push_fault(Fault::html_502());
    mock.push_fault(Fault::Truncate);
    let r = post(&mock, &list_path(0, 10, ASC), Some(&key), BODY);
    assert_eq!((r.status, r.body.starts_with("<html>")), (502, true));
    let r = post(&mock, &list_path(0, 10, ASC), Some(&key), BODY);
    assert!(r.status == 200 && serde_json::from_str::<Value>(&r.body).is_err());
    assert_eq!(
        post(&mock, &list_path(0, 10, ASC), Some(&key), BODY).status,
        200
    );
    mock.set_persistent_fault(Some(Fault::rate_limited()));
    for _ in 0..2 {
        assert_eq!(
            post(&mock, &list_path(0, 10, ASC), Some(&key), BODY).body,
            "Too Many Requests"
        );
    }
    let requests = mock.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[0].api_key.as_deref(), Some(key.as_str()));
    assert_eq!(requests[0].param("sortOrders"), Some("timestamp,ASC"));
    assert_eq!(requests[0].body.as_ref().unwrap()["filterType"], "Audit");
}

#[test]
fn events_stay_hidden_until_their_ingest_delay_passes() {
    let (mock, key) = mock_with(3);
    let now = crate::seed::now_ms();
    let late = generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 2,
        start_ms: 1_500_000,
        end_ms: 1_500_001,
        seed: 9,
    });
    mock.insert_visible_at(late.into_iter().zip([now + 60_000, now - 1]));
    let total = |m: &MockHarness| {
        post(m, &list_path(0, 100, ASC), Some(&key), BODY).json()["data"]["totalItems"].clone()
    };
    assert_eq!(total(&mock), 4, "the event visible in a minute is hidden");
    assert_eq!(mock.events_json().len(), 5, "ground truth holds it");
}

#[test]
fn fault_rates_inject_each_kind() {
    let (mock, key) = mock_with(3);
    let cases: [(FaultRates, &str); 5] = [
        (
            FaultRates {
                rate_limited: 1.0,
                ..FaultRates::default()
            },
            "429",
        ),
        (
            FaultRates {
                server_error: 1.0,
                ..FaultRates::default()
            },
            "500",
        ),
        (
            FaultRates {
                gateway: 1.0,
                ..FaultRates::default()
            },
            "50x",
        ),
        (
            FaultRates {
                truncated: 1.0,
                ..FaultRates::default()
            },
            "truncated",
        ),
        (
            FaultRates {
                reset: 1.0,
                ..FaultRates::default()
            },
            "reset",
        ),
    ];
    for (rates, kind) in cases {
        mock.set_fault_rates(Some(rates));
        let mut stream = std::net::TcpStream::connect(mock.addr()).unwrap();
        write!(
            stream,
            "POST {} HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
            list_path(0, 10, ASC),
            BODY.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        let read = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        match kind {
            "429" => assert!(
                text.starts_with("HTTP/1.1 429") && text.ends_with("Too Many Requests"),
                "{text}"
            ),
            "500" => assert!(
                text.starts_with("HTTP/1.1 500") && text.contains("UNKNOWN_ERROR"),
                "{text}"
            ),
            "50x" => assert!(
                text.starts_with("HTTP/1.1 50") && text.contains("<html>"),
                "{text}"
            ),
            "truncated" => {
                let body = text.split_once("\r\n\r\n").unwrap().1;
                assert!(
                    text.starts_with("HTTP/1.1 200")
                        && serde_json::from_str::<Value>(body).is_err()
                );
            }
            _ => assert!(
                read.is_err() || !text.contains("SUCCESS"),
                "a reset connection never delivers a page: {text}"
            ),
        }
    }
    mock.set_fault_rates(Some(FaultRates {
        max_latency_ms: 30,
        ..FaultRates::default()
    }));
    assert_eq!(
        post(&mock, &list_path(0, 10, ASC), Some(&key), BODY).status,
        200
    );
}

#[test]
fn ground_truth_endpoint_lists_every_event() {
    let (mock, _) = mock_with(7);
    let mut stream = std::net::TcpStream::connect(mock.addr()).unwrap();
    write!(
        stream,
        "GET /__mock/ground-truth HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        body.lines().map(str::to_owned).collect::<Vec<_>>(),
        mock.events_json()
    );
}

#[test]
fn list_v2_is_off_by_default_and_pages_by_token_bound_to_the_body() {
    let (mock, key) = mock_with(25);
    let path = |token: Option<&str>| {
        let token = token.map(|t| format!("&pageToken={t}")).unwrap_or_default();
        format!("/audit/api/audits/listV2?accountIdentifier={ACCOUNT}&pageSize=10{ASC}{token}")
    };
    assert_eq!(post(&mock, &path(None), Some(&key), BODY).status, 404);
    mock.enable_list_v2(true);
    let (mut token, mut seen) = (None::<String>, 0);
    for _ in 0..5 {
        let r = post(&mock, &path(token.as_deref()), Some(&key), BODY);
        let data = r.json()["data"].clone();
        assert!(data.get("totalItems").is_none() && data.get("pageIndex").is_none());
        seen += data["content"].as_array().unwrap().len();
        if !data["hasNext"].as_bool().unwrap() {
            assert!(data["pageToken"].is_null());
            break;
        }
        token = Some(data["pageToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, 25);
    let first = post(&mock, &path(None), Some(&key), BODY).json()["data"]["pageToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_body = r#"{"filterType":"Audit","startTime":1,"endTime":9999999999999}"#;
    let r = post(&mock, &path(Some(&first)), Some(&key), other_body);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Invalid request: pageToken is not valid for this request body"
    );
}

#[test]
fn only_criteria_besides_time_count_as_narrowing() {
    let events = generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 400,
        start_ms: 1_000,
        end_ms: 2_000,
        seed: 5,
    });
    let cases = [
        (r#"{}"#, false),
        (
            r#"{"filterType":"Audit","startTime":1000,"endTime":2000}"#,
            false,
        ),
        (r#"{"scopes":[{"accountIdentifier":"a"}]}"#, false),
        (
            r#"{"scopes":[{"accountIdentifier":"a"},{"accountIdentifier":"a","orgIdentifier":"o"}]}"#,
            false,
        ),
        (
            r#"{"scopes":[],"resources":[],"actions":[],"environments":[],"principals":[]}"#,
            false,
        ),
        (r#"{"staticFilter":"SOMETHING_ELSE"}"#, false),
        (
            r#"{"scopes":[{"accountIdentifier":"a"}],"includeChildScopes":false}"#,
            true,
        ),
        (
            r#"{"scopes":[{"accountIdentifier":"a","orgIdentifier":"default"}]}"#,
            true,
        ),
        (r#"{"resources":[{"type":"PIPELINE"}]}"#, true),
        (r#"{"modules":["CD"]}"#, true),
        (r#"{"actions":["LOGIN"]}"#, true),
        (r#"{"environments":[{"type":"Production"}]}"#, true),
        (r#"{"principals":[{"type":"USER","identifier":"x"}]}"#, true),
        (r#"{"staticFilter":"EXCLUDE_LOGIN_EVENTS"}"#, true),
        (r#"{"staticFilter":"EXCLUDE_SYSTEM_EVENTS"}"#, true),
    ];
    for (body, narrowing) in cases {
        let filter: FilterBody = serde_json::from_str(body).unwrap();
        let modules = filter.modules.as_deref();
        assert_eq!(narrows(&filter, modules), narrowing, "{body}");
        let all_match = events.iter().all(|e| matches(e, &filter, modules, 2_000));
        // The slice shortcut is sound only if a non-narrowing filter keeps everything.
        assert!(narrowing || all_match, "{body} drops events");
        assert!(!narrowing || !all_match, "{body} keeps every seeded event");
    }
}

/// A mock with `freedoms` set before its events are inserted: 250 events in
/// one millisecond between 20 before and 20 after.
fn free_mock(freedoms: Freedoms) -> (MockHarness, String) {
    let (mock, key) = mock_with(0);
    mock.set_freedoms(freedoms);
    let mut events = generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 290,
        start_ms: 1_000_000,
        end_ms: 2_000_000,
        seed: 8,
    });
    for (i, e) in events.iter_mut().enumerate() {
        e.timestamp = match i {
            0..20 => 1_000_000 + i as u64,
            20..270 => 1_500_000,
            _ => 1_600_000 + i as u64,
        };
    }
    mock.insert(events);
    (mock, key)
}

fn ids(r: &Reply) -> Vec<String> {
    content(r)
        .iter()
        .map(|e| e["auditId"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn without_freedoms_ties_keep_their_order_and_pages_are_full() {
    let (mock, key) = free_mock(Freedoms::default());
    let a = post(&mock, &list_path(1, 100, ASC), Some(&key), BODY);
    let b = post(&mock, &list_path(1, 100, ASC), Some(&key), BODY);
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(ids(&a).len(), 100);
    assert_eq!(a.json()["data"]["totalItems"], 290);
}

/// The same page of a millisecond larger than a page holds other events on
/// each request, and every page stays in timestamp order.
#[test]
fn ties_come_back_in_a_new_order_on_every_request() {
    let (mock, key) = free_mock(Freedoms {
        shuffle_ties: true,
        ..Freedoms::default()
    });
    let pages: Vec<Vec<String>> = (0..5)
        .map(|_| ids(&post(&mock, &list_path(1, 100, ASC), Some(&key), BODY)))
        .collect();
    assert!(pages.iter().all(|p| p.len() == 100));
    assert!(
        pages.windows(2).any(|w| w[0] != w[1]),
        "the order never changed"
    );
    let union: std::collections::BTreeSet<&String> = pages.iter().flatten().collect();
    assert!(union.len() > 100, "other tie members reached the page");
    let page = content(&post(&mock, &list_path(0, 100, ASC), Some(&key), BODY));
    let stamps: Vec<u64> = page
        .iter()
        .map(|e| e["timestamp"].as_u64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(&stamps[..20], (1_000_000..1_000_020).collect::<Vec<_>>());
}

/// Hidden events are counted and never returned; a lagging node answers
/// short pages whose events another request returns.
#[test]
fn counted_events_can_be_missing_from_pages_for_good_or_for_a_while() {
    let (mock, key) = free_mock(Freedoms {
        hidden_fraction: 0.1,
        ..Freedoms::default()
    });
    let hidden = mock.hidden_count();
    assert!((10..=50).contains(&hidden), "{hidden}");
    let r = post(&mock, &list_path(0, 100, ASC), Some(&key), BODY);
    assert_eq!(
        r.json()["data"]["totalItems"],
        290,
        "hidden events are counted"
    );
    let mut returned = std::collections::BTreeSet::new();
    for index in 0..3 {
        returned.extend(ids(&post(
            &mock,
            &list_path(index, 100, ASC),
            Some(&key),
            BODY,
        )));
    }
    assert_eq!(returned.len(), 290 - hidden, "and never returned");
    assert_eq!(mock.returnable_json().len(), 290 - hidden);

    let (lagging, key) = free_mock(Freedoms {
        short_page_rate: 1.0,
        short_page_drop: 0.5,
        ..Freedoms::default()
    });
    let pages: Vec<Vec<String>> = (0..6)
        .map(|_| ids(&post(&lagging, &list_path(0, 100, ASC), Some(&key), BODY)))
        .collect();
    assert!(pages.iter().all(|p| p.len() < 100), "every page is short");
    let union: std::collections::BTreeSet<&String> = pages.iter().flatten().collect();
    assert_eq!(
        union.len(),
        100,
        "what one page leaves out, another returns"
    );
}

/// The count comes from another node: it includes events the pages do not
/// return yet, or leaves out events they already return.
#[test]
fn counts_disagree_with_pages_for_a_while() {
    let (mock, key) = mock_with(0);
    mock.set_freedoms(Freedoms {
        count_skew_ms: 60_000,
        ..Freedoms::default()
    });
    let now = crate::seed::now_ms();
    let events = generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 40,
        start_ms: 1_000_000,
        end_ms: 2_000_000,
        seed: 9,
    });
    // Half of them become visible 30 s from now.
    mock.insert_visible_at(
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (e, if i % 2 == 0 { 0 } else { now + 30_000 })),
    );
    let totals: std::collections::BTreeSet<u64> = (0..30)
        .map(|_| {
            let r = post(&mock, &list_path(0, 100, ASC), Some(&key), BODY);
            assert_eq!(content(&r).len(), 20, "pages show what is visible now");
            r.json()["data"]["totalItems"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        totals,
        [20, 40].into(),
        "counts from a node ahead and one in step"
    );
}

#[test]
fn late_events_become_visible_up_to_the_set_delay_after_their_timestamp() {
    let (mock, key) = mock_with(0);
    mock.set_freedoms(Freedoms {
        late_fraction: 1.0,
        max_late_ms: 3_600_000,
        ..Freedoms::default()
    });
    let now = crate::seed::now_ms();
    mock.insert(generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 50,
        start_ms: now - 1_000,
        end_ms: now,
        seed: 10,
    }));
    let visible = content(&post(&mock, &list_path(0, 100, ASC), Some(&key), BODY)).len();
    assert!(visible < 5, "{visible} of 50 visible at once");
    assert!(mock.events_visible_by() > now + 600_000);
    assert!(mock.events_visible_by() <= now + 3_600_000);
}

/// A POST of `BODY` to page `index` of 100, oldest first: status,
/// `Content-Encoding`, and the body's bytes.
fn post_bytes(mock: &MockHarness, key: &str, index: u32) -> (u16, Option<String>, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::blocking::Client::new()
        .post(format!("{}{}", mock.base_url(), list_path(index, 100, ASC)))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .unwrap();
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status().as_u16(),
        encoding,
        response.bytes().unwrap().to_vec(),
    )
}

/// Odd content is off by default; switched on, every kind is sent, each
/// event's bytes its own, inside the page as they are.
#[test]
fn odd_events_are_sent_behind_their_switch_each_kind_as_it_says() {
    let (plain, key) = mock_with(50);
    assert!(plain.returnable().iter().all(|r| r.odd.is_none()));

    let (mock, key2) = mock_with(0);
    assert_eq!(key, key2);
    mock.set_freedoms(Freedoms {
        odd: Some(OddContent {
            events: 1.0,
            answers: 0.0,
            big_bytes: 4096,
        }),
        ..Freedoms::default()
    });
    mock.insert(generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 200,
        start_ms: 1_000_000,
        end_ms: 2_000_000,
        seed: 4,
    }));
    let returned = mock.returnable();
    let kinds: std::collections::BTreeSet<OddKind> =
        returned.iter().filter_map(|r| r.odd).collect();
    assert_eq!(kinds.len(), OddKind::ALL.len());
    let unique: std::collections::BTreeSet<&[u8]> =
        returned.iter().map(|r| r.bytes.as_slice()).collect();
    assert_eq!(
        unique.len(),
        returned.len(),
        "no two events send the same bytes"
    );

    #[derive(serde::Deserialize)]
    struct Keys {
        #[serde(rename = "auditId")]
        audit_id: String,
        timestamp: u64,
    }
    for event in &returned {
        let kind = event.odd.unwrap();
        let text = std::str::from_utf8(&event.bytes);
        // serde reads a struct from an array too: only an object is an event.
        let keys = text
            .ok()
            .filter(|t| t.starts_with('{'))
            .and_then(|t| serde_json::from_str::<Keys>(t).ok());
        let readable = keys.is_some_and(|k| k.audit_id == event.audit_id && k.timestamp > 0);
        let expected = match kind {
            // Valid JSON serde reads (its recursion limit aside), keys and all.
            OddKind::LoneSurrogate
            | OddKind::Controls
            | OddKind::Big
            | OddKind::Nulls
            | OddKind::WideNumbers
            | OddKind::Pretty => true,
            // Readable by a lenient client, not by a strict struct.
            OddKind::DigitTimestamp | OddKind::DuplicateMember | OddKind::Deep => readable,
            _ => false,
        };
        assert_eq!(
            readable,
            expected,
            "{kind:?}: {:?}",
            text.map(|t| &t[..t.len().min(200)])
        );
        match kind {
            OddKind::NotUtf8 => assert!(text.is_err()),
            OddKind::Big => assert!(event.bytes.len() > 4096),
            OddKind::Deep => assert!(text.unwrap().contains(&"[".repeat(150))),
            OddKind::Pretty => assert!(event.bytes.contains(&b'\n')),
            OddKind::RawControl => assert!(event.bytes.contains(&b'\t')),
            _ => {}
        }
    }
    let (status, _, body) = post_bytes(&mock, &key, 0);
    assert_eq!(status, 200);
    for event in returned.iter().take(100) {
        assert!(
            body.windows(event.bytes.len()).any(|w| w == event.bytes),
            "{:?} is in the page as it is",
            event.odd
        );
    }
}

/// Switched on, a share of answers are not a page (each kind, and a gzip
/// page); the next request is answered as usual.
#[test]
fn odd_answers_are_sent_behind_their_switch() {
    let (mock, key) = mock_with(30);
    mock.set_freedoms(Freedoms {
        odd: Some(OddContent {
            events: 0.0,
            answers: 1.0,
            big_bytes: 0,
        }),
        ..Freedoms::default()
    });
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (status, encoding, body) = post_bytes(&mock, &key, 0);
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body);
        let seen_as = if encoding.as_deref() == Some("gzip") {
            let mut page = String::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut page)
                .unwrap();
            assert!(page.contains("\"content\":[{"), "a whole page, gzipped");
            "gzip"
        } else if text.starts_with("<!DOCTYPE html>") {
            "maintenance"
        } else if text.contains("IN_PROGRESS") {
            "status"
        } else if text.contains("\"data\":null") {
            "no data"
        } else if text.contains("\"content\":null") {
            "no content"
        } else {
            panic!("{text}")
        };
        seen.insert(seen_as);
    }
    assert_eq!(seen.len(), OddAnswer::ALL.len(), "{seen:?}");
    mock.set_freedoms(Freedoms::default());
    let (_, encoding, body) = post_bytes(&mock, &key, 0);
    assert_eq!(encoding, None);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("\"status\":\"SUCCESS\"")
    );
}

/// A trickled answer arrives whole, slowly; an encoded one is labelled.
#[test]
fn trickled_and_encoded_answers_are_the_page() {
    let (mock, key) = mock_with(5);
    let (_, _, plain) = post_bytes(&mock, &key, 0);
    mock.push_fault(Fault::Trickle {
        chunk: 256,
        every: std::time::Duration::from_millis(20),
    });
    let started = std::time::Instant::now();
    let (_, _, slow) = post_bytes(&mock, &key, 0);
    assert!(started.elapsed() >= std::time::Duration::from_millis(20 * (plain.len() as u64 / 256)));
    assert_eq!(slow.len(), plain.len());
    mock.push_fault(Fault::Encoded { encoding: "br" });
    let (_, encoding, _) = post_bytes(&mock, &key, 0);
    assert_eq!(encoding.as_deref(), Some("br"));
}
