use std::collections::VecDeque;

use serde_json::Value;

use super::*;
use crate::settings::example;
use crate::shape::OutputShape;

/// Runs before each page is served, with the stored events and the request number.
type InsertHook = Box<dyn FnMut(&mut Vec<(u64, String)>, usize)>;

/// An in-memory list endpoint: ascending by timestamp, ties in insertion
/// order, inclusive bounds, offset pages, as the real `/list` behaves.
struct FakeHarness {
    events: Vec<(u64, String)>,
    requests: Vec<(String, Value)>,
    /// Responses served before the real ones (fault injection).
    faults: VecDeque<Result<HttpResponse, String>>,
    /// Called before each page is served, to insert events mid-pass.
    on_request: Option<InsertHook>,
    /// Answers the request with this number (1-based) with this response.
    fail_on_request: Option<(usize, HttpResponse)>,
    /// `auditYaml` answers 500 for these ids.
    yaml_failures: Vec<String>,
    /// `auditYaml` requests, by audit id.
    yaml_requests: Vec<String>,
}

impl FakeHarness {
    fn new(timestamps: impl IntoIterator<Item = u64>) -> Self {
        let mut h = Self {
            events: vec![],
            requests: vec![],
            faults: VecDeque::new(),
            on_request: None,
            fail_on_request: None,
            yaml_failures: vec![],
            yaml_requests: vec![],
        };
        for ts in timestamps {
            h.insert(ts);
        }
        h
    }

    fn insert(&mut self, ts: u64) {
        let id = format!("id{:05}", self.events.len());
        let at = self.events.partition_point(|(t, _)| *t <= ts);
        self.events.insert(at, (ts, id));
    }
}

/// Even ids are configuration changes (with a YAML diff), odd ones logins.
fn event_json(ts: u64, id: &str) -> String {
    let action = if id.ends_with(['0', '2', '4', '6', '8']) {
        "UPDATE"
    } else {
        "LOGIN"
    };
    format!(r#"{{"auditId":"{id}","timestamp":{ts},"module":"CORE","action":"{action}"}}"#)
}

impl Transport for FakeHarness {
    fn get(&mut self, url: &str) -> Result<HttpResponse, String> {
        let id = url.rsplit("auditId=").next().unwrap().to_owned();
        self.yaml_requests.push(id.clone());
        if self.yaml_failures.contains(&id) {
            return Ok(HttpResponse {
                status: 500,
                body: br#"{"status":"ERROR","code":"UNKNOWN_ERROR","message":"boom"}"#.to_vec(),
                retry_after_secs: None,
            });
        }
        Ok(HttpResponse {
            status: 200,
            body: format!(
                r#"{{"status":"SUCCESS","data":{{"oldYaml":"v1 of {id}","newYaml":"v2 of {id}"}}}}"#
            )
            .into_bytes(),
            retry_after_secs: None,
        })
    }

    fn post_json(&mut self, url: &str, raw_body: &[u8]) -> Result<HttpResponse, String> {
        let body: Value = serde_json::from_slice(raw_body).unwrap();
        self.requests.push((url.to_owned(), body.clone()));
        if let Some(fault) = self.faults.pop_front() {
            return fault;
        }
        if let Some((n, response)) = &self.fail_on_request
            && *n == self.requests.len()
        {
            return Ok(response.clone());
        }
        if let Some(hook) = self.on_request.as_mut() {
            hook(&mut self.events, self.requests.len());
        }
        let query = |key: &str| -> usize {
            let start = url.find(&format!("{key}=")).unwrap() + key.len() + 1;
            url[start..].split('&').next().unwrap().parse().unwrap()
        };
        let size = query("pageSize");
        let (start, end) = (
            body["startTime"].as_u64().unwrap(),
            body["endTime"].as_u64().unwrap(),
        );
        let matching: Vec<String> = self
            .events
            .iter()
            .filter(|(ts, _)| (start..=end).contains(ts))
            .map(|(ts, id)| event_json(*ts, id))
            .collect();
        let json = if url.contains("/listV2?") {
            // Token = "<offset>:<hash of the body it was issued for>".
            let hash = crate::request::body_hash(raw_body);
            let offset = match url.split("pageToken=").nth(1) {
                None => 0,
                Some(token) => {
                    let token = token.replace("%3A", ":");
                    let (offset, issued_for) = token.split_once(':').unwrap();
                    assert_eq!(
                        issued_for.parse::<u64>().unwrap(),
                        hash,
                        "a token was sent with another body"
                    );
                    offset.parse().unwrap()
                }
            };
            let content: Vec<&str> = matching
                .iter()
                .skip(offset)
                .take(size)
                .map(String::as_str)
                .collect();
            let has_next = offset + size < matching.len();
            let token = if has_next {
                format!(r#""{}:{hash}""#, offset + size)
            } else {
                "null".into()
            };
            format!(
                r#"{{"status":"SUCCESS","data":{{"content":[{}],"hasNext":{has_next},"pageToken":{token}}}}}"#,
                content.join(",")
            )
        } else {
            let index = query("pageIndex");
            let content: Vec<&str> = matching
                .iter()
                .skip(index * size)
                .take(size)
                .map(String::as_str)
                .collect();
            format!(
                r#"{{"status":"SUCCESS","data":{{"totalItems":{},"content":[{}]}},"correlationId":"x"}}"#,
                matching.len(),
                content.join(",")
            )
        };
        Ok(HttpResponse {
            status: 200,
            body: json.into_bytes(),
            retry_after_secs: None,
        })
    }
}

#[derive(Default)]
struct Collected {
    batches: Vec<Batch>,
    fail_next: Option<EmitError>,
}

impl Pipeline for Collected {
    fn emit(&mut self, batch: Batch) -> Result<(), EmitError> {
        if let Some(err) = self.fail_next.take() {
            return Err(err);
        }
        self.batches.push(batch);
        Ok(())
    }
}

impl Collected {
    fn ids(&self) -> Vec<String> {
        self.batches
            .iter()
            .flat_map(|b| {
                std::str::from_utf8(&b.lines)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|line| {
                serde_json::from_str::<Value>(&line).unwrap()["auditId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
}

struct FakeClock {
    now: u64,
    slept: Vec<u64>,
}

impl Clock for FakeClock {
    fn now_ms(&mut self) -> u64 {
        self.now
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.slept.push(ms);
        self.now += ms;
    }
    fn random_u64(&mut self) -> u64 {
        u64::MAX
    }
}

const NOW: u64 = 1_000_000_000;

fn clock() -> FakeClock {
    FakeClock {
        now: NOW,
        slept: vec![],
    }
}

fn settings(page_size: u32) -> Settings {
    Settings {
        page_size,
        retry_base_ms: 100,
        ..example()
    }
}

fn source(page_size: u32) -> Source {
    source_with(settings(page_size))
}

fn source_with(settings: Settings) -> Source {
    Source::new(settings, None, NOW).unwrap()
}

fn all_ids(h: &FakeHarness) -> Vec<String> {
    h.events.iter().map(|(_, id)| id.clone()).collect()
}

/// Runs polls until caught up, at most `limit` calls.
fn drain(
    src: &mut Source,
    h: &mut FakeHarness,
    out: &mut Collected,
    c: &mut FakeClock,
) -> PollReport {
    for _ in 0..1000 {
        let report = src.poll(7, h, out, c).unwrap();
        if report.caught_up {
            return report;
        }
    }
    panic!("never caught up");
}

#[test]
fn drains_many_pages_once_each_in_order() {
    let mut h = FakeHarness::new((0..250).map(|i| NOW - 3_000_000 + i * 1000));
    let (mut src, mut out, mut c) = (source(20), Collected::default(), clock());
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h));
    assert_eq!(report.watermark_ms, Some(NOW - 3_000_000 + 249_000));
    let (_, first_body) = &h.requests[0];
    assert_eq!(first_body["startTime"], NOW - 3_600_000);
    assert_eq!(first_body["endTime"], NOW);
    assert!(
        h.requests.iter().all(|(_, b)| b["endTime"] == NOW),
        "window end must stay fixed"
    );
}

#[test]
fn later_passes_emit_no_duplicate_and_pick_up_new_and_late_events() {
    let mut h = FakeHarness::new([NOW - 10, NOW - 5, NOW - 5]);
    let mut src = source_with(Settings {
        overlap_secs: 1,
        ..settings(50)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids().len(), 3);
    c.now = NOW + 100;
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(
        (report.events_emitted, report.duplicates_dropped),
        (0, 3),
        "the overlap is re-read and deduplicated"
    );
    h.insert(NOW + 50);
    h.insert(NOW - 5);
    c.now = NOW + 200;
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(
        out.ids(),
        ["id00000", "id00001", "id00002", "id00004", "id00003"]
    );
}

#[test]
fn only_settled_events_are_read() {
    let mut h = FakeHarness::new([NOW - 5_000, NOW - 1_000]);
    let mut src = source_with(Settings {
        settle_lag_secs: 2,
        ..settings(50)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), ["id00000"]);
    assert_eq!(h.requests[0].1["endTime"], NOW - 2_000);
    c.now = NOW + 1_500;
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), ["id00000", "id00001"]);
}

#[test]
fn late_events_are_caught_exactly_within_the_overlap() {
    let mut h = FakeHarness::new([NOW - 50_000]);
    let mut src = source_with(Settings {
        overlap_secs: 10,
        ..settings(50)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    // Both arrive after the pass that covered them; only one is inside the overlap.
    h.insert(NOW - 10_000);
    h.insert(NOW - 10_001);
    c.now = NOW + 60_000;
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), ["id00000", "id00001"]);
}

#[test]
fn events_sharing_one_millisecond_beyond_a_page_are_all_emitted_once() {
    let mut h = FakeHarness::new(std::iter::repeat_n(NOW - 1000, 73).chain([NOW - 999]));
    let (mut src, mut out, mut c) = (source(10), Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h));
}

#[test]
fn inserts_while_paging_are_neither_lost_nor_duplicated() {
    let mut h = FakeHarness::new((0..100).map(|i| NOW - 100_000 + i * 100));
    // Before every request, insert one event behind the current position and
    // one ahead of it: offset paging would skip or repeat events here.
    h.on_request = Some(Box::new(|events, n| {
        let n = n as u64;
        for ts in [NOW - 100_000 + n * 250 + 1, NOW - 1000 + n] {
            let id = format!("ins{n:03}-{ts}");
            let at = events.partition_point(|(t, _)| *t <= ts);
            events.insert(at, (ts, id));
        }
    }));
    let mut src = source_with(Settings {
        overlap_secs: 200,
        ..settings(10)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    h.on_request = None;
    c.now = NOW + 1;
    drain(&mut src, &mut h, &mut out, &mut c);
    let ids = out.ids();
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates emitted");
    assert_eq!(
        sorted(ids),
        sorted(all_ids(&h)),
        "every event, inserted ahead or behind, arrives once"
    );
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn the_retry_time_budget_stops_a_pass_before_max_retries() {
    let mut h = FakeHarness::new([NOW - 1]);
    for _ in 0..10 {
        h.faults.push_back(Ok(HttpResponse {
            status: 429,
            body: vec![],
            retry_after_secs: Some(30),
        }));
    }
    let settings = Settings {
        max_retries: 10,
        retry_budget_secs: 70,
        ..settings(50)
    };
    let mut src = Source::new(settings, None, NOW).unwrap();
    let mut c = clock();
    let err = src
        .poll(5, &mut h, &mut Collected::default(), &mut c)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::RateLimited {
                retry_after_secs: Some(30),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        c.slept,
        [30_000, 30_000],
        "a third wait would pass the 70 s budget"
    );
    assert_eq!(h.requests.len(), 3);
}

#[test]
fn requests_are_paced_to_the_configured_rate() {
    let mut h = FakeHarness::new((0..30).map(|i| NOW - 100 + i));
    let mut src = source_with(Settings {
        max_requests_per_minute: 600,
        ..settings(10)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(h.requests.len(), 4);
    assert_eq!(c.slept, [100, 100, 100]);
}

#[test]
fn retryable_failures_back_off_then_succeed() {
    let mut h = FakeHarness::new([NOW - 1]);
    h.faults.push_back(Err("connection reset".into()));
    h.faults.push_back(Ok(HttpResponse {
        status: 429,
        body: b"slow down".to_vec(),
        retry_after_secs: Some(2),
    }));
    h.faults.push_back(Ok(HttpResponse {
        status: 200,
        body: b"{\"status\":\"SUC".to_vec(),
        retry_after_secs: None,
    }));
    let (mut src, mut out, mut c) = (source(50), Collected::default(), clock());
    let report = src.poll(5, &mut h, &mut out, &mut c).unwrap();
    assert_eq!(report.retries, 3);
    // Full jitter over [0, 100] then [0, 400]; the 429's Retry-After wins in between.
    assert_eq!(c.slept, [u64::MAX % 101, 2000, u64::MAX % 401]);
    assert_eq!(out.ids(), ["id00000"]);
}

#[test]
fn retries_are_bounded_and_the_last_error_is_returned() {
    let mut h = FakeHarness::new([NOW - 1]);
    for _ in 0..10 {
        h.faults.push_back(Ok(HttpResponse {
            status: 503,
            body: b"<html>".to_vec(),
            retry_after_secs: None,
        }));
    }
    let mut src = source_with(Settings {
        max_retries: 2,
        ..settings(50)
    });
    let before = src.checkpoint();
    let err = src
        .poll(5, &mut h, &mut Collected::default(), &mut clock())
        .unwrap_err();
    assert!(
        matches!(err, SourceError::ServerError(ref f) if f.status == 503),
        "{err:?}"
    );
    assert_eq!(h.requests.len(), 3);
    let after: Checkpoint = serde_json::from_slice(&src.checkpoint()).unwrap();
    let before: Checkpoint = serde_json::from_slice(&before).unwrap();
    assert_eq!(
        (after.cursor_ms, after.seen_at_cursor),
        (before.cursor_ms, before.seen_at_cursor)
    );
}

#[test]
fn unauthorized_fails_at_once() {
    let mut h = FakeHarness::new([NOW - 1]);
    let body =
        br#"{"status":"ERROR","code":"INVALID_TOKEN","message":"Token is not valid."}"#.to_vec();
    h.faults.push_back(Ok(HttpResponse {
        status: 401,
        body,
        retry_after_secs: None,
    }));
    let mut c = clock();
    let err = source(50)
        .poll(5, &mut h, &mut Collected::default(), &mut c)
        .unwrap_err();
    assert!(matches!(err, SourceError::Unauthorized(_)));
    assert_eq!((h.requests.len(), c.slept.len()), (1, 0));
}

#[test]
fn a_failed_emit_does_not_advance_the_checkpoint() {
    let mut h = FakeHarness::new((0..30).map(|i| NOW - 100 + i));
    let (mut src, mut c) = (source(10), clock());
    let mut out = Collected::default();
    src.poll(1, &mut h, &mut out, &mut c).unwrap();
    let committed = src.checkpoint();
    out.fail_next = Some(EmitError::Unavailable("disk full".into()));
    let err = src.poll(1, &mut h, &mut out, &mut c).unwrap_err();
    assert_eq!(
        err,
        SourceError::SinkFailure(EmitError::Unavailable("disk full".into()))
    );
    assert_eq!(src.checkpoint(), committed);
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h));
}

#[test]
fn a_resumed_pass_keeps_its_window_and_emits_nothing_twice() {
    let mut h = FakeHarness::new((0..45).map(|i| NOW - 1000 + i * 10));
    let (mut src, mut out, mut c) = (source(10), Collected::default(), clock());
    let report = src.poll(2, &mut h, &mut out, &mut c).unwrap();
    assert!(!report.caught_up);
    // Crash: only the last durable batch's checkpoint survives.
    let stored = out.batches.last().unwrap().checkpoint.clone();
    c.now = NOW + 5000;
    let mut resumed = Source::new(settings(10), Some(&stored), c.now).unwrap();
    drain(&mut resumed, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h));
    assert!(h.requests.iter().all(|(_, b)| b["endTime"] == NOW));
}

#[test]
fn out_of_order_pages_are_refused() {
    let mut h = FakeHarness::new([]);
    let body = format!(
        r#"{{"status":"SUCCESS","data":{{"content":[{},{}]}}}}"#,
        event_json(NOW - 1, "b"),
        event_json(NOW - 2, "a")
    );
    h.faults.push_back(Ok(HttpResponse {
        status: 200,
        body: body.into_bytes(),
        retry_after_secs: None,
    }));
    let mut src = source_with(Settings {
        max_retries: 0,
        ..settings(50)
    });
    let err = src
        .poll(1, &mut h, &mut Collected::default(), &mut clock())
        .unwrap_err();
    assert!(
        matches!(err, SourceError::MalformedResponse(ref m) if m.contains("event 1")),
        "{err:?}"
    );
}

#[test]
fn pretty_printed_events_stay_on_one_line() {
    let raw = "{\"auditId\":\"a\",\r\n  \"timestamp\":5,\n\"x\":\"line\\nbreak\"}";
    let event = Event {
        raw: serde_json::value::RawValue::from_string(raw.into()).unwrap(),
        audit_id: "a".into(),
        timestamp_ms: 5,
    };
    let b = batch(
        &[event],
        &[None],
        Window {
            start_ms: 0,
            end_ms: 9,
        },
        vec![],
        OutputShape::Raw,
    )
    .unwrap();
    let text = String::from_utf8(b.lines).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(text.trim_end()).unwrap()["x"],
        "line\nbreak"
    );
}

#[test]
fn bad_settings_and_foreign_checkpoints_are_invalid_settings() {
    let err = Source::new(settings(0), None, NOW).unwrap_err();
    assert!(matches!(err, SourceError::InvalidSettings(ref m) if m.contains("page-size")));
    let other = Checkpoint::fresh("someone-else", 0).to_bytes();
    assert!(matches!(
        Source::new(settings(5), Some(&other), NOW),
        Err(SourceError::InvalidSettings(_))
    ));
}

#[test]
fn list_v2_follows_tokens_only_with_the_body_they_were_issued_for() {
    let mut h = FakeHarness::new((0..95).map(|i| NOW - 10_000 + i * 7));
    let v2 = Settings {
        api_flavor: crate::settings::ApiFlavor::ListV2,
        ..settings(10)
    };
    let mut src = Source::new(v2.clone(), None, NOW).unwrap();
    let (mut out, mut c) = (Collected::default(), clock());
    let report = src.poll(3, &mut h, &mut out, &mut c).unwrap();
    assert!(!report.caught_up);
    assert!(h.requests[0].0.contains("/listV2?") && !h.requests[0].0.contains("pageToken"));
    assert!(
        h.requests[1..]
            .iter()
            .all(|(url, _)| url.contains("pageToken="))
    );
    // Resumed with different filters: the stored token's body no longer
    // matches, so a new chain starts at the cursor instead of reusing it.
    let stored = out.batches.last().unwrap().checkpoint.clone();
    let changed = Settings {
        modules: vec!["CORE".into()],
        ..v2
    };
    let mut resumed = Source::new(changed, Some(&stored), NOW).unwrap();
    let before = h.requests.len();
    drain(&mut resumed, &mut h, &mut out, &mut c);
    assert!(!h.requests[before].0.contains("pageToken"));
    assert_eq!(out.ids(), all_ids(&h));
}

#[test]
fn pages_are_gathered_into_batches_of_the_configured_size() {
    let mut h = FakeHarness::new((0..95).map(|i| NOW - 1_000 + i));
    let mut src = source_with(Settings {
        batch_max_events: 25,
        ..settings(10)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    assert!(src.poll(100, &mut h, &mut out, &mut c).unwrap().caught_up);
    // Pages bring 10, then 9 new events (each re-reads the cursor's event), 4
    // on the last: a batch closes before the page that would take it past 25,
    // and at the end of the pass.
    let sizes: Vec<u32> = out.batches.iter().map(|b| b.event_count).collect();
    assert_eq!(sizes, [19, 18, 18, 18, 22]);
    assert_eq!(out.ids(), all_ids(&h));
    // Each batch's checkpoint resumes exactly after it.
    let stored = out.batches[1].checkpoint.clone();
    let mut resumed = Source::new(
        Settings {
            batch_max_events: 25,
            ..settings(10)
        },
        Some(&stored),
        NOW,
    )
    .unwrap();
    let mut rest = Collected::default();
    drain(&mut resumed, &mut h, &mut rest, &mut c);
    assert_eq!(rest.ids(), all_ids(&h)[37..]);
}

#[test]
fn an_error_mid_batch_returns_to_the_last_emitted_checkpoint() {
    let mut h = FakeHarness::new((0..50).map(|i| NOW - 1_000 + i));
    let mut src = source_with(Settings {
        batch_max_events: 20,
        max_retries: 0,
        ..settings(10)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    src.poll(2, &mut h, &mut out, &mut c).unwrap();
    let committed = src.checkpoint();
    assert_eq!(out.batches.last().unwrap().checkpoint, committed);
    // The next page is read into a batch that is not full; the one after fails.
    let body =
        br#"{"status":"ERROR","code":"INVALID_TOKEN","message":"Token is not valid."}"#.to_vec();
    h.fail_on_request = Some((
        4,
        HttpResponse {
            status: 401,
            body,
            retry_after_secs: None,
        },
    ));
    let err = src.poll(5, &mut h, &mut out, &mut c).unwrap_err();
    assert!(matches!(err, SourceError::Unauthorized(_)));
    assert_eq!(h.requests.len(), 4);
    assert_eq!(
        src.checkpoint(),
        committed,
        "events read but not emitted are read again"
    );
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h));
}

#[test]
fn an_explicit_start_reads_from_that_millisecond_and_not_before() {
    let start = NOW - 1_000_000;
    let mut h = FakeHarness::new([start - 1, start, start + 1]);
    let mut src = source_with(Settings {
        start_at_ms: Some(start),
        start_minutes_back: 1,
        ..settings(10)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h)[1..].to_vec());
    assert_eq!(h.requests[0].1["startTime"], start);

    let future = Source::new(
        Settings {
            start_at_ms: Some(NOW + 1),
            ..settings(10)
        },
        None,
        NOW,
    );
    assert!(
        matches!(future, Err(SourceError::InvalidSettings(ref m)) if m.contains("in the future"))
    );
}

#[test]
fn a_fixed_range_end_is_never_read_past_and_stays_caught_up() {
    let end = NOW - 600_000;
    let mut h = FakeHarness::new([NOW - 900_000, end - 1, end, end + 1, NOW - 1000]);
    let mut src = source_with(Settings {
        start_at_ms: Some(NOW - 1_000_000),
        end_at_ms: Some(end),
        ..settings(10)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h)[..3].to_vec());
    assert!(h.requests.iter().all(|(_, b)| b["endTime"] == end));
    let requests = h.requests.len();
    c.now += 3_600_000;
    assert!(src.poll(5, &mut h, &mut out, &mut c).unwrap().caught_up);
    assert_eq!(h.requests.len(), requests, "nothing more is requested");
}

#[test]
fn configuration_changes_carry_their_yaml_diff_or_the_error_that_kept_it() {
    let mut h = FakeHarness::new((0..30).map(|i| NOW - 100_000 + i * 1000));
    h.yaml_failures.push("id00004".into());
    let mut src = source_with(Settings {
        enrich_yaml_diff: true,
        max_retries: 1,
        ..settings(10)
    });
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h), "no event is dropped");
    let lines: Vec<Value> = out
        .batches
        .iter()
        .flat_map(|b| {
            String::from_utf8(b.lines.clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect();
    for line in &lines {
        let id = line["auditId"].as_str().unwrap();
        let diff = &line[YAML_DIFF_KEY];
        match (line["action"].as_str().unwrap(), id) {
            ("LOGIN", _) => assert!(diff.is_null(), "{line}"),
            (_, "id00004") => assert!(
                diff["error"]
                    .as_str()
                    .unwrap()
                    .contains("HTTP 500 UNKNOWN_ERROR: boom"),
                "{line}"
            ),
            _ => assert_eq!(
                diff,
                &serde_json::json!({"oldYaml": format!("v1 of {id}"), "newYaml": format!("v2 of {id}")})
            ),
        }
    }
    assert_eq!(
        h.yaml_requests.iter().filter(|id| *id == "id00004").count(),
        2,
        "a failed fetch is retried"
    );
    assert_eq!(h.yaml_requests.len(), 15 + 1);
}
