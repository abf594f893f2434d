use std::collections::VecDeque;

use serde_json::Value;

use super::*;
use crate::settings::{example, with};

/// Runs before each page is served, with the stored events and the request number.
type InsertHook = Box<dyn FnMut(&mut Vec<(u64, String)>, usize)>;

/// A small deterministic PRNG (xorshift64*) for the API's freedoms.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// What the real API may do and an in-order fake would not.
#[derive(Default)]
struct Freedoms {
    /// Events sharing a millisecond come back in a new order on every request.
    shuffle_ties: bool,
    /// Counted in `totalItems` but filtered out of every page after paging.
    hidden: std::collections::HashSet<String>,
    /// Chance (per mille) that a request is answered by a lagging node that
    /// leaves each event of its page out with a chance of one in two.
    lagging_per_mille: u64,
}

/// An in-memory list endpoint: ascending by timestamp, inclusive bounds,
/// offset pages with `totalItems`, as the real `/list` behaves; with
/// `freedoms`, also as it may behave.
struct FakeHarness {
    events: Vec<(u64, String)>,
    requests: Vec<(String, Value)>,
    /// Responses served before the real ones (fault injection).
    faults: VecDeque<Result<HttpResponse, TransportError>>,
    /// Called before each page is served, to insert events mid-pass.
    on_request: Option<InsertHook>,
    /// Answers the request with this number (1-based) with this response.
    fail_on_request: Option<(usize, HttpResponse)>,
    /// `auditYaml` answers 500 for these ids.
    yaml_failures: Vec<String>,
    /// `auditYaml` requests, by audit id.
    yaml_requests: Vec<String>,
    /// What the API sends for these ids instead of their plain JSON: odd
    /// but legal content.
    odd: std::collections::HashMap<String, String>,
    /// Pages of more than this many events are too large to read.
    max_readable_page: Option<usize>,
    freedoms: Freedoms,
    rng: Rng,
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
            odd: std::collections::HashMap::new(),
            max_readable_page: None,
            freedoms: Freedoms::default(),
            rng: Rng(0x9e37_79b9_7f4a_7c15),
        };
        for ts in timestamps {
            h.insert(ts);
        }
        h
    }

    fn insert(&mut self, ts: u64) -> String {
        let id = format!("id{:05}", self.events.len());
        let at = self.events.partition_point(|(t, _)| *t <= ts);
        self.events.insert(at, (ts, id.clone()));
        id
    }

    /// Count requests (`pageSize=1`) served so far.
    fn count_requests(&self) -> usize {
        self.requests
            .iter()
            .filter(|(url, _)| url.contains("pageSize=1&"))
            .count()
    }

    /// The events in `[start, end]`, ties shuffled if the API may.
    fn matching(&mut self, start: u64, end: u64) -> Vec<(u64, String)> {
        let mut hits: Vec<(u64, String)> = self
            .events
            .iter()
            .filter(|(ts, _)| (start..=end).contains(ts))
            .cloned()
            .collect();
        if self.freedoms.shuffle_ties {
            let mut from = 0;
            while from < hits.len() {
                let to = from + hits[from..].partition_point(|(t, _)| *t == hits[from].0);
                for i in (from + 1..to).rev() {
                    let j = from + self.rng.below((i - from + 1) as u64) as usize;
                    hits.swap(i, j);
                }
                from = to;
            }
        }
        hits
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
    fn get(&mut self, url: &str) -> Result<HttpResponse, TransportError> {
        let id = url.rsplit("auditId=").next().unwrap().to_owned();
        self.yaml_requests.push(id.clone());
        if self.yaml_failures.contains(&id) {
            return Ok(HttpResponse {
                status: 500,
                body: br#"{"status":"ERROR","code":"UNKNOWN_ERROR","message":"boom"}"#.to_vec(),
                retry_after_secs: None,
                ..HttpResponse::default()
            });
        }
        Ok(HttpResponse {
            status: 200,
            body: format!(
                r#"{{"status":"SUCCESS","data":{{"oldYaml":"v1 of {id}","newYaml":"v2 of {id}"}}}}"#
            )
            .into_bytes(),
            retry_after_secs: None,
            ..HttpResponse::default()
        })
    }

    fn post_json(&mut self, url: &str, raw_body: &[u8]) -> Result<HttpResponse, TransportError> {
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
        if self.max_readable_page.is_some_and(|max| size > max) {
            let answer = HttpResponse::json(200, Vec::new());
            return Err(TransportError::Body(Box::new(answer.unusable(
                &[],
                crate::error::UnusableKind::TooLarge,
                "too large".into(),
            ))));
        }
        let (start, end) = (
            body["startTime"].as_u64().unwrap(),
            body["endTime"].as_u64().unwrap(),
        );
        let hits = self.matching(start, end);
        let matching: Vec<String> = hits
            .iter()
            .map(|(ts, id)| {
                self.odd
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| event_json(*ts, id))
            })
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
            let lagging = self.rng.below(1000) < self.freedoms.lagging_per_mille;
            let mut content = Vec::new();
            for ((_, id), json) in hits.iter().zip(&matching).skip(index * size).take(size) {
                // Filtered after paging, or left out by a lagging node.
                if self.freedoms.hidden.contains(id) || (lagging && self.rng.below(2) == 0) {
                    continue;
                }
                content.push(json.as_str());
            }
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
            ..HttpResponse::default()
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
    /// The bytes of every quarantined event, in emitted order.
    fn quarantined(&self) -> Vec<Vec<u8>> {
        self.batches
            .iter()
            .flat_map(|b| b.quarantine.iter().flat_map(|q| &q.events))
            .map(|e| e.bytes.clone())
            .collect()
    }

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
            .map(|line| id_of(&line))
            .collect()
    }
}

/// The `auditId` (or `auditEventId`) of a line, which may hold what serde
/// refuses (a lone surrogate).
fn id_of(line: &str) -> String {
    let members = crate::scan::object(line.as_bytes()).expect("each line is an object");
    let id = members
        .iter()
        .find(|m| matches!(&line[m.key.clone()], "auditId" | "auditEventId"))
        .expect("each line has an id");
    line[id.value.clone()].trim_matches('"').to_owned()
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

/// Settings that make each page its own batch (a batch closes before the
/// page that would take it past `page_size` events).
fn settings(page_size: u32) -> Settings {
    with(example(), |s| {
        s.query.page_size = page_size;
        s.output.batch_max_events = page_size;
        s.retries.retry_base_ms = 100;
    })
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

/// Runs polls until caught up, at most 1,000 calls; the report sums them
/// (the watermark, gap and window are the last call's).
fn drain(
    src: &mut Source,
    h: &mut FakeHarness,
    out: &mut Collected,
    c: &mut FakeClock,
) -> PollReport {
    let mut total = PollReport::default();
    for _ in 0..1000 {
        let report = src.poll(7, h, out, c).unwrap();
        total.events_read += report.events_read;
        total.events_emitted += report.events_emitted;
        total.duplicates_dropped += report.duplicates_dropped;
        total.pages += report.pages;
        total.batches += report.batches;
        total.retries += report.retries;
        total.count_requests += report.count_requests;
        total.slices_reread += report.slices_reread;
        total.late_events += report.late_events;
        total.findings.extend(report.findings);
        total.watermark_ms = report.watermark_ms;
        total.unreconciled_events = report.unreconciled_events;
        total.window = report.window.or(total.window);
        if report.caught_up {
            total.caught_up = true;
            return total;
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
    let mut src = source_with(with(settings(50), |s| s.window.overlap_secs = 1));
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
    // On the default settle lag (5 s), a pass reads up to 5 s before it began.
    let lag = u64::from(crate::settings::defaults::SETTLE_LAG_SECS) * 1000;
    let mut h = FakeHarness::new([NOW - lag - 1_000, NOW - lag + 1_000]);
    let mut src = source_with(with(settings(50), |s| {
        s.window.settle_lag_secs = crate::settings::defaults::SETTLE_LAG_SECS
    }));
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), ["id00000"]);
    assert_eq!(h.requests[0].1["endTime"], NOW - lag);
    c.now = NOW + 1_500;
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), ["id00000", "id00001"]);
}

#[test]
fn late_events_are_caught_exactly_within_the_overlap() {
    let mut h = FakeHarness::new([NOW - 50_000]);
    let mut src = source_with(with(settings(50), |s| s.window.overlap_secs = 10));
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
    let mut src = source_with(with(settings(10), |s| s.window.overlap_secs = 200));
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
            ..HttpResponse::default()
        }));
    }
    let settings = with(settings(50), |s| {
        s.retries.max_retries = 10;
        s.retries.retry_budget_secs = 70;
    });
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
    let mut src = source_with(with(settings(10), |s| {
        s.retries.max_requests_per_minute = 600
    }));
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(h.requests.len(), 4);
    assert_eq!(c.slept, [100, 100, 100]);
}

#[test]
fn retryable_failures_back_off_then_succeed() {
    let mut h = FakeHarness::new([NOW - 1]);
    h.faults
        .push_back(Err(TransportError::Failed("connection reset".into())));
    h.faults.push_back(Ok(HttpResponse {
        status: 429,
        body: b"slow down".to_vec(),
        retry_after_secs: Some(2),
        ..HttpResponse::default()
    }));
    h.faults.push_back(Ok(HttpResponse {
        status: 200,
        body: b"{\"status\":\"SUC".to_vec(),
        retry_after_secs: None,
        ..HttpResponse::default()
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
            ..HttpResponse::default()
        }));
    }
    let mut src = source_with(with(settings(50), |s| s.retries.max_retries = 2));
    let before = src.checkpoint();
    let err = src
        .poll(5, &mut h, &mut Collected::default(), &mut clock())
        .unwrap_err();
    assert!(
        matches!(err, SourceError::ServerError(ref f) if f.status == 503),
        "{err:?}"
    );
    assert_eq!(h.requests.len(), 3);
    assert_eq!(src.checkpoint(), before, "nothing advanced");
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
        ..HttpResponse::default()
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
    let before = h.requests.len();
    drain(&mut resumed, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h));
    assert_eq!(
        h.requests[before].1["endTime"], NOW,
        "the interrupted window is finished first"
    );
    assert_eq!(
        h.requests.last().unwrap().1["endTime"],
        NOW + 5000,
        "then the pass reads what settled since"
    );
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
        ..HttpResponse::default()
    }));
    let mut src = source_with(with(settings(50), |s| s.retries.max_retries = 0));
    let err = src
        .poll(1, &mut h, &mut Collected::default(), &mut clock())
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Unusable(ref u) if u.detail.contains("event 1")),
        "{err:?}"
    );
}

#[test]
fn pretty_printed_events_stay_on_one_line() {
    let raw = "{\"auditId\":\"a\",\r\n  \"timestamp\":5,\n\"x\":\"line\\nbreak\"}";
    let line = Line {
        at_ms: 5,
        key: "a".into(),
        text: raw.into(),
        yaml: false,
    };
    let b = batch(
        &[line],
        None,
        Window {
            start_ms: 0,
            end_ms: 9,
        },
        vec![],
    );
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
    let v2 = with(settings(10), |s| {
        s.query.api_flavor = crate::settings::ApiFlavor::ListV2
    });
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
    let changed = with(v2, |s| s.query.modules = vec!["CORE".into()]);
    let mut resumed = Source::new(changed, Some(&stored), NOW).unwrap();
    let before = h.requests.len();
    drain(&mut resumed, &mut h, &mut out, &mut c);
    assert!(!h.requests[before].0.contains("pageToken"));
    assert_eq!(out.ids(), all_ids(&h));
}

#[test]
fn pages_are_gathered_into_batches_of_the_configured_size() {
    let mut h = FakeHarness::new((0..95).map(|i| NOW - 1_000 + i));
    let mut src = source_with(with(settings(10), |s| s.output.batch_max_events = 25));
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
        with(settings(10), |s| s.output.batch_max_events = 25),
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
    let mut src = source_with(with(settings(10), |s| {
        s.output.batch_max_events = 20;
        s.retries.max_retries = 0;
    }));
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
            ..HttpResponse::default()
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
    let mut src = source_with(with(settings(10), |s| {
        s.window.start_at_ms = Some(start);
        s.window.start_minutes_back = 1;
    }));
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h)[1..].to_vec());
    assert_eq!(h.requests[0].1["startTime"], start);

    let future = Source::new(
        with(settings(10), |s| s.window.start_at_ms = Some(NOW + 1)),
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
    let mut src = source_with(with(settings(10), |s| {
        s.window.start_at_ms = Some(NOW - 1_000_000);
        s.window.end_at_ms = Some(end);
    }));
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
    let mut src = source_with(with(settings(10), |s| {
        s.output.enrich_yaml_diff = true;
        s.retries.max_retries = 1;
    }));
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

/// Settings with reconciliation on: look back a day, check every minute.
fn reconciling(page_size: u32) -> Settings {
    with(settings(page_size), |s| {
        s.window.reconcile_hours = 24;
        s.window.reconcile_interval_secs = 60;
        s.window.overlap_secs = 10;
    })
}

fn unique(ids: &[String]) -> usize {
    ids.iter().collect::<std::collections::BTreeSet<_>>().len()
}

/// A bulk operation writes 1,000 events in one millisecond; every request
/// returns them in a new order. All of them arrive, once each, with the
/// millisecond's own count as the stopping rule.
#[test]
fn a_thousand_events_in_one_millisecond_in_a_new_order_each_time_arrive_once() {
    let burst = NOW - 50_000;
    let mut h = FakeHarness::new(
        (0..40)
            .map(|i| burst - 20_000 + i)
            .chain(std::iter::repeat_n(burst, 1_000))
            .chain((1..=40).map(|i| burst + i)),
    );
    h.freedoms.shuffle_ties = true;
    let (mut src, mut out, mut c) = (source(100), Collected::default(), clock());
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    let ids = out.ids();
    assert_eq!(ids.len(), 1_080);
    assert_eq!(sorted(ids), sorted(all_ids(&h)));
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let tie_requests = h
        .requests
        .iter()
        .filter(|(_, b)| b["startTime"] == burst && b["endTime"] == burst)
        .count();
    assert!(
        (10..=crate::walk::tie_request_bound(1_000, 100) as usize).contains(&tie_requests),
        "{tie_requests} requests for the millisecond"
    );
}

/// Pages come back short before the end (a lagging node leaves events out):
/// a short page is asked again, the window is compared with its count, and
/// nothing is lost.
#[test]
fn short_pages_before_the_end_lose_nothing() {
    let mut h = FakeHarness::new((0..2_000).map(|i| NOW - 3_000_000 + i * 1_000));
    h.freedoms.lagging_per_mille = 300;
    let (mut src, mut out, mut c) = (source_with(reconciling(50)), Collected::default(), clock());
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    let ids = out.ids();
    assert_eq!(unique(&ids), ids.len(), "duplicates");
    assert_eq!(sorted(ids), sorted(all_ids(&h)));
    assert_eq!(report.unreconciled_events, 0);
}

/// Harness counts events that it never returns (filtered after paging): the
/// pass still finishes, writes everything else, and reports exactly the
/// gap, in the ledger and the report; it does not re-read forever.
#[test]
fn events_counted_but_never_returned_are_reported_and_the_pass_finishes() {
    let mut h = FakeHarness::new((0..500).map(|i| NOW - 2_000_000 + i * 3_000));
    let hidden: Vec<String> = all_ids(&h).into_iter().step_by(20).collect();
    h.freedoms.hidden = hidden.iter().cloned().collect();
    h.freedoms.shuffle_ties = true;
    let (mut src, mut out, mut c) = (source_with(reconciling(40)), Collected::default(), clock());
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    let visible: Vec<String> = all_ids(&h)
        .into_iter()
        .filter(|id| !hidden.contains(id))
        .collect();
    assert_eq!(sorted(out.ids()), sorted(visible));
    assert_eq!(report.unreconciled_events, hidden.len() as u64);
    let ledger = src.ledger();
    let gap: u64 = ledger
        .slices
        .iter()
        .filter_map(|s| s.count)
        .map(|c| c.gap())
        .sum();
    assert_eq!(gap, hidden.len() as u64);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::GapRemains)
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::WindowShort)
    );

    // The next pass checks again but does not re-read a gap that did not grow.
    let requests = h.requests.len();
    c.now += 61_000;
    let again = drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(again.slices_reread, 0, "{:?}", again.findings);
    assert_eq!(again.unreconciled_events, hidden.len() as u64);
    let counts = h.requests[requests..]
        .iter()
        .filter(|(url, _)| url.contains("pageSize=1&"))
        .count();
    assert!(counts >= 1);
}

/// An event that becomes visible long after its window was read (past the
/// overlap) is found by reconciliation, written once, and counted as late.
#[test]
fn an_event_visible_hours_late_is_collected_by_reconciliation() {
    let mut h = FakeHarness::new((0..30).map(|i| NOW - 7_000_000 + i * 100_000));
    let mut src = source_with(with(reconciling(10), |s| {
        s.window.start_at_ms = Some(NOW - 8_000_000)
    }));
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids().len(), 30);
    let late = h.insert(NOW - 6_000_000);
    // Before the interval has passed, nothing is checked.
    c.now += 30_000;
    let quiet = drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!((quiet.count_requests, quiet.late_events), (0, 0));
    c.now += 31_000;
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!((report.late_events, report.slices_reread), (1, 1));
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::LateCollected)
    );
    assert_eq!(out.ids().last(), Some(&late));
    assert_eq!(unique(&out.ids()), 31);
    assert_eq!(report.unreconciled_events, 0);
}

/// With nothing missing, reconciliation costs one count request per slice
/// of the look-back that was collected, and no page request.
#[test]
fn reconciliation_with_nothing_missing_costs_one_count_per_slice() {
    let hour = crate::ledger::SLICE_MS;
    let start = NOW - 5 * hour;
    let mut h = FakeHarness::new((0..50).map(|i| start + i * 300_000));
    let mut src = source_with(with(reconciling(100), |s| {
        s.window.start_at_ms = Some(start)
    }));
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    let before = h.requests.len();
    c.now += 60_000;
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    let slices = (NOW + 60_000) / hour - start / hour + 1;
    assert_eq!(u64::from(report.count_requests), slices);
    let new: Vec<_> = h.requests[before..].iter().collect();
    let counts = new
        .iter()
        .filter(|(u, _)| u.contains("pageSize=1&"))
        .count() as u64;
    assert_eq!(counts, slices);
    assert!(
        new.len() as u64 <= slices + 1,
        "at most the new window's page besides the counts"
    );
    assert_eq!(report.slices_reread, 0);
    assert_eq!(h.count_requests() as u64, slices);
}

/// A count request that fails is reported and retried at the next interval;
/// a count that goes down is reported; neither stops the pass or changes
/// what is stored.
#[test]
fn failing_and_shrinking_counts_are_reported_and_change_nothing() {
    let mut h = FakeHarness::new((0..20).map(|i| NOW - 1_000_000 + i * 1_000));
    let mut src = source_with(with(reconciling(50), |s| s.retries.max_retries = 0));
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    c.now += 61_000;
    // The new window takes one request; the first count fails.
    h.fail_on_request = Some((
        h.requests.len() + 2,
        HttpResponse {
            status: 503,
            body: b"<html>busy</html>".to_vec(),
            retry_after_secs: None,
            ..HttpResponse::default()
        },
    ));
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    let failed: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::CountFailed)
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", report.findings);
    assert!(failed[0].detail.contains("503"), "{}", failed[0].detail);
    assert_eq!(out.ids().len(), 20);

    c.now += 61_000;
    drain(&mut src, &mut h, &mut out, &mut c);
    // Retention removes events Harness had counted.
    h.events.truncate(15);
    c.now += 61_000;
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    let kinds: Vec<FindingKind> = report.findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::CountDecreased), "{kinds:?}");
    assert!(kinds.contains(&FindingKind::CountBelowStored), "{kinds:?}");
    assert_eq!((report.slices_reread, report.unreconciled_events), (0, 0));
    assert_eq!(out.ids().len(), 20, "nothing is written or removed");
}

/// `spread` events 1.5 s apart from 15 minutes before `NOW`, and `burst`
/// more in one millisecond, with every freedom on: ties in a new order on
/// every request, one request in five answered by a lagging node, and one
/// event in 37 counted and never returned.
fn free_harness(spread: u64, burst: usize) -> FakeHarness {
    let timestamps = (0..spread)
        .map(|i| NOW - 900_000 + i * 1_500)
        .chain(std::iter::repeat_n(NOW - 400_000, burst));
    let mut h = FakeHarness::new(timestamps);
    h.freedoms.shuffle_ties = true;
    h.freedoms.lagging_per_mille = 200;
    h.freedoms.hidden = all_ids(&h).into_iter().step_by(37).collect();
    h
}

/// Killed after any batch and resumed from that batch's checkpoint, with
/// every freedom on, the output is exactly the visible events, once each.
#[test]
fn resuming_from_any_batch_with_every_freedom_on_is_exact() {
    let make = || free_harness(300, 120);
    let settings = with(reconciling(25), |s| s.output.batch_max_events = 30);
    let mut h = make();
    let (mut src, mut full, mut c) = (source_with(settings.clone()), Collected::default(), clock());
    drain(&mut src, &mut h, &mut full, &mut c);
    let visible: Vec<String> = all_ids(&h)
        .into_iter()
        .filter(|id| !h.freedoms.hidden.contains(id))
        .collect();
    assert_eq!(sorted(full.ids()), sorted(visible.clone()));
    for kill_after in 0..full.batches.len() {
        let kept = Collected {
            batches: full.batches[..=kill_after].to_vec(),
            fail_next: None,
        };
        let mut out = kept;
        let stored = out.batches.last().unwrap().checkpoint.clone();
        let mut h = make();
        let mut c = clock();
        c.now += 1_000;
        let mut resumed = Source::new(settings.clone(), Some(&stored), c.now).unwrap();
        drain(&mut resumed, &mut h, &mut out, &mut c);
        let ids = out.ids();
        assert_eq!(
            unique(&ids),
            ids.len(),
            "duplicate after a kill at batch {kill_after}"
        );
        assert_eq!(
            sorted(ids),
            sorted(visible.clone()),
            "kill at batch {kill_after}"
        );
    }
}

/// An event listed twice on one page is written once.
#[test]
fn an_event_listed_twice_on_a_page_is_written_once() {
    let mut h = FakeHarness::new([NOW - 20, NOW - 10]);
    let body = format!(
        r#"{{"status":"SUCCESS","data":{{"totalItems":3,"content":[{},{},{}]}}}}"#,
        event_json(NOW - 20, "id00000"),
        event_json(NOW - 20, "id00000"),
        event_json(NOW - 10, "id00001")
    );
    h.faults.push_back(Ok(HttpResponse {
        status: 200,
        body: body.into_bytes(),
        retry_after_secs: None,
        ..HttpResponse::default()
    }));
    let (mut src, mut out, mut c) = (source(50), Collected::default(), clock());
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h));
    assert!(report.duplicates_dropped >= 1);
}

/// Ties come back in any order; a batch that reads the same events is the
/// same bytes, ties ordered by auditId, so a re-read after a crash names the
/// same object. (Five events a millisecond and pages of twenty: no page splits
/// a millisecond. A millisecond split across batches can come out in other
/// subsets, which is why the host fences an interrupted write's name.)
#[test]
fn a_batch_that_reads_the_same_events_is_the_same_bytes_whatever_order_ties_come_in() {
    let stamps: Vec<u64> = (0..100).map(|i| NOW - 600_000 + (i / 5) * 1000).collect();
    let read = |seed: u64| {
        let mut h = FakeHarness::new(stamps.iter().copied());
        h.freedoms.shuffle_ties = true;
        h.rng = Rng(seed);
        let (mut src, mut out, mut c) = (source(20), Collected::default(), clock());
        drain(&mut src, &mut h, &mut out, &mut c);
        let ids = out.ids();
        let batches: Vec<Vec<u8>> = out.batches.into_iter().map(|b| b.lines).collect();
        (batches, ids)
    };
    let (first, ids) = read(1);
    assert!(first == read(0x5eed).0, "the same batches, byte for byte");
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    assert_eq!(ids, sorted_ids, "ties in auditId order");
}

/// Odd but legal content for every seventh event: readable kinds (a lone
/// surrogate, controls, a number past 64 bits, deep nesting, a timestamp of
/// digits, a member given twice) and unreadable ones (no `auditId`, no
/// `timestamp`, not an object, not JSON), each unique to its event; what the
/// raw shape must keep in the quarantine.
fn oddities(h: &mut FakeHarness) -> Vec<String> {
    let mut kept = Vec::new();
    let events = h.events.clone();
    for (n, (ts, id)) in events.iter().enumerate().filter(|(n, _)| n % 7 == 3) {
        let deep = format!("{}{n}{}", "[".repeat(200), "]".repeat(200));
        let (json, readable) = match (n / 7) % 10 {
            0 => (
                format!(r#"{{"auditId":"{id}","timestamp":{ts},"x":"\ud800 {n}"}}"#),
                true,
            ),
            1 => (
                format!(r#"{{"auditId":"{id}","timestamp":{ts},"x":"\u0000\u001f{n}"}}"#),
                true,
            ),
            2 => (
                format!(r#"{{"auditId":"{id}","timestamp":{ts},"n":1180591620717411303424{n}}}"#),
                true,
            ),
            3 => (
                format!(r#"{{"auditId":"{id}","timestamp":{ts},"d":{deep}}}"#),
                true,
            ),
            4 => (format!(r#"{{"auditId":"{id}","timestamp":"{ts}"}}"#), true),
            5 => (
                format!(r#"{{"auditId":"{id}","timestamp":{ts},"module":"CD","module":"CI"}}"#),
                true,
            ),
            6 => (format!(r#"{{"timestamp":{ts},"orphan":"{id}"}}"#), false),
            7 => (format!(r#"{{"auditId":"{id}","module":"CORE"}}"#), false),
            8 => (format!(r#"["{id}",{ts}]"#), false),
            _ => (
                format!("{{\"auditId\":\"{id}\",\"timestamp\":{ts},\"x\":\"tab\there\"}}"),
                false,
            ),
        };
        if !readable {
            kept.push(json.clone());
        }
        h.odd.insert(id.clone(), json);
    }
    kept
}

/// Every visible event once: readable ones among the lines by id, the
/// others in the quarantine byte for byte.
fn assert_once_each(out: &Collected, h: &FakeHarness, kept: &[String], what: &str) {
    let visible: Vec<String> = all_ids(h)
        .into_iter()
        .filter(|id| !h.freedoms.hidden.contains(id))
        .collect();
    let expected_kept: Vec<String> = kept
        .iter()
        .filter(|json| {
            !h.freedoms
                .hidden
                .iter()
                .any(|id| json.contains(&format!("\"{id}\"")))
        })
        .cloned()
        .collect();
    let lines: Vec<String> = visible
        .iter()
        .filter(|id| {
            !expected_kept
                .iter()
                .any(|json| json.contains(&format!("\"{id}\"")))
        })
        .cloned()
        .collect();
    let ids = out.ids();
    assert_eq!(unique(&ids), ids.len(), "{what}: a line twice");
    assert_same(ids, lines, &format!("{what}: the lines"));
    let quarantined: Vec<String> = out
        .quarantined()
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert_same(
        quarantined,
        expected_kept,
        &format!("{what}: the quarantine, byte for byte"),
    );
}

/// The same items, in any order; a failure names what is missing and what
/// is extra, not both lists.
fn assert_same(found: Vec<String>, expected: Vec<String>, what: &str) {
    let (found, expected) = (sorted(found), sorted(expected));
    let missing: Vec<&String> = expected.iter().filter(|e| !found.contains(e)).collect();
    let extra: Vec<&String> = found.iter().filter(|f| !expected.contains(f)).collect();
    assert!(
        found == expected,
        "{what}: missing {missing:?}, extra {extra:?}"
    );
}

/// No event stops a pass: odd but legal events are written or quarantined,
/// once each, in both shapes, with every freedom of the API on and a kill
/// after any batch, or between a batch's quarantine and its lines.
#[test]
fn odd_events_are_written_or_quarantined_once_each_whatever_the_kill() {
    for shape in [OutputShape::Raw, OutputShape::Streaming] {
        let make = || {
            let mut h = free_harness(280, 60);
            let mut kept = oddities(&mut h);
            if shape == OutputShape::Streaming {
                // A member given twice: the streaming shape cannot hold it.
                kept.extend(
                    h.odd
                        .values()
                        .filter(|j| j.contains(r#""module":"CI""#))
                        .cloned(),
                );
            }
            (h, kept)
        };
        let settings = with(reconciling(25), |s| {
            s.output.batch_max_events = 30;
            s.output.output_shape = shape;
        });
        let (mut h, kept) = make();
        let (mut src, mut full, mut c) =
            (source_with(settings.clone()), Collected::default(), clock());
        let report = drain(&mut src, &mut h, &mut full, &mut c);
        assert_once_each(&full, &h, &kept, &format!("{shape:?}, no kill"));
        let ledger = src.ledger();
        assert_eq!(
            ledger.slices.iter().map(|s| s.quarantined).sum::<u64>() as usize,
            full.quarantined().len(),
            "the ledger counts the quarantine"
        );
        assert_eq!(
            report.unreconciled_events,
            h.freedoms.hidden.len() as u64,
            "{shape:?}"
        );
        assert!(
            full.batches
                .iter()
                .any(|b| b.quarantine.is_some() && b.event_count > 0),
            "some batch holds both"
        );
        for kill_after in 0..full.batches.len() {
            let batch = &full.batches[kill_after];
            let mut kills = vec![(false, batch.checkpoint.clone())];
            if let (Some(q), true) = (&batch.quarantine, batch.event_count > 0) {
                kills.push((true, q.checkpoint.clone()));
            }
            for (mid_batch, stored) in kills {
                let mut out = Collected {
                    batches: full.batches[..=kill_after].to_vec(),
                    fail_next: None,
                };
                if mid_batch {
                    // The quarantine is durable, the lines are not.
                    let last = out.batches.last_mut().unwrap();
                    last.lines.clear();
                    last.event_count = 0;
                }
                let (mut h, kept) = make();
                let mut c = clock();
                c.now += 1_000;
                let mut resumed = Source::new(settings.clone(), Some(&stored), c.now).unwrap();
                drain(&mut resumed, &mut h, &mut out, &mut c);
                let what = format!("{shape:?}, kill at batch {kill_after}, mid-batch {mid_batch}");
                assert_once_each(&out, &h, &kept, &what);
            }
        }
    }
}

/// The batch carries what the host needs: reasons, details, each event's
/// place, and a quarantine checkpoint that records the quarantine and not
/// the lines.
#[test]
fn a_quarantine_says_why_and_where_and_its_checkpoint_records_only_itself() {
    let mut h = FakeHarness::new([NOW - 30, NOW - 20, NOW - 10]);
    h.odd.insert(
        "id00001".into(),
        r#"{"auditId":"id00001","module":"X"}"#.into(),
    );
    let (mut src, mut out, mut c) = (source(50), Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    let batch = &out.batches[0];
    assert_eq!(batch.event_count, 2);
    let q = batch.quarantine.as_ref().unwrap();
    assert_eq!(q.events.len(), 1);
    let e = &q.events[0];
    assert_eq!((e.reason, e.at_ms), (Reason::Timestamp, NOW - 30));
    assert!(e.detail.contains("`timestamp` is missing"), "{}", e.detail);
    assert_eq!(
        (batch.first_event_ms, batch.last_event_ms),
        (NOW - 30, NOW - 10)
    );
    let recorded = Checkpoint::load(&q.checkpoint, "Xy3kQ9mTR0aWb1cD2eF4gH", 0).unwrap();
    assert!(recorded.ledger.contains_anywhere("id00001"));
    assert!(
        !recorded.ledger.contains_anywhere("id00000"),
        "the lines are not yet durable"
    );
    let all = Checkpoint::load(&batch.checkpoint, "Xy3kQ9mTR0aWb1cD2eF4gH", 0).unwrap();
    assert!(all.ledger.contains_anywhere("id00000") && all.ledger.contains_anywhere("id00001"));
}

/// Full pages of events whose time cannot be read hold nothing to move the
/// cursor by: the walk steps through them by offset, and ends.
#[test]
fn full_pages_without_a_readable_time_are_stepped_through_by_offset() {
    let mut h = FakeHarness::new((0..130).map(|i| NOW - 200_000 + (i / 10) * 7_000));
    for (n, (_, id)) in h.events.clone().iter().enumerate() {
        if !(60..120).contains(&n) {
            continue;
        }
        h.odd.insert(
            id.clone(),
            format!(r#"{{"auditId":"{id}","module":"CORE"}}"#),
        );
    }
    let (mut src, mut out, mut c) = (source(10), Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids().len(), 70);
    let kept = out.quarantined();
    assert_eq!(kept.len(), 60);
    let mut keys: Vec<Vec<u8>> = kept.clone();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 60, "each once");
    assert!(
        h.requests
            .iter()
            .any(|(url, _)| !url.contains("pageIndex=0&")),
        "offsets were used"
    );
}

/// A page too large to read is asked for again in pages half the size.
#[test]
fn a_page_too_large_to_read_is_asked_for_in_smaller_pages() {
    let mut h = FakeHarness::new((0..40).map(|i| NOW - 100_000 + i * 100));
    h.max_readable_page = Some(10);
    let (mut src, mut out, mut c) = (source(50), Collected::default(), clock());
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    assert_eq!(out.ids(), all_ids(&h));
    assert!(report.retries >= 3, "50, then 25, then 12, then 6");
    assert!(
        h.requests
            .iter()
            .any(|(url, _)| url.contains("pageSize=6&"))
    );
    h.max_readable_page = Some(0);
    h.insert(NOW - 50);
    c.now += 60_000;
    let err = src.poll(5, &mut h, &mut out, &mut c).unwrap_err();
    assert!(
        matches!(err, SourceError::Unusable(ref u) if u.kind == crate::error::UnusableKind::TooLarge),
        "at a page size of 1 it fails: {err:?}"
    );
}

/// An event whose time cannot be read counts in its true hour, even when
/// the events around it lie on both sides of an hour's end: the walk then
/// reads one hour at a time. So Harness's counts and the ledger agree, and
/// nothing is reported missing that is stored.
#[test]
fn an_event_without_a_time_counts_in_its_true_hour_at_an_hour_s_end() {
    let boundary = NOW - NOW % SLICE_MS;
    let timestamps: Vec<u64> = (0..40).map(|i| boundary - 20_000 + i * 1_000).collect();
    let mut h = FakeHarness::new(timestamps.iter().copied());
    // Untimed events on both sides of the hour's end, and at it.
    for (n, (ts, id)) in h.events.clone().iter().enumerate() {
        if [18, 19, 20, 21].contains(&n) {
            h.odd
                .insert(id.clone(), format!(r#"{{"auditId":"{id}","at":{ts}}}"#));
        }
    }
    let (mut src, mut out, mut c) = (source_with(reconciling(50)), Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    c.now += 120_000;
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    assert!(report.count_requests > 0, "the hours were checked");
    assert_eq!(report.unreconciled_events, 0, "{:?}", report.findings);
    let kinds: Vec<FindingKind> = report.findings.iter().map(|f| f.kind).collect();
    assert!(!kinds.contains(&FindingKind::CountBelowStored), "{kinds:?}");
    let ledger = src.ledger();
    let before: u64 = ledger
        .slices
        .iter()
        .filter(|s| s.end_ms < boundary)
        .map(|s| s.quarantined)
        .sum();
    assert_eq!(before, 2, "two of the four lie before the hour's end");
    assert_eq!(out.quarantined().len(), 4);
    assert!(
        h.requests
            .iter()
            .any(|(_, body)| body["endTime"] == boundary - 1),
        "an hour was asked for on its own"
    );
}

/// A page with more events than asked for (an API that ignores `pageSize`)
/// never makes a batch larger than its limit, and loses nothing: the events
/// past the page size are read by the next request.
#[test]
fn a_page_larger_than_asked_for_keeps_batches_within_their_limit() {
    let mut h = FakeHarness::new((0..30).map(|i| NOW - 100_000 + i * 100));
    let everything: Vec<String> = h
        .events
        .iter()
        .map(|(ts, id)| event_json(*ts, id))
        .collect();
    h.faults.push_back(Ok(HttpResponse::json(
        200,
        format!(
            r#"{{"status":"SUCCESS","data":{{"totalItems":30,"content":[{}]}}}}"#,
            everything.join(",")
        ),
    )));
    let (mut src, mut out, mut c) = (
        source_with(with(settings(10), |s| s.output.batch_max_events = 10)),
        Collected::default(),
        clock(),
    );
    drain(&mut src, &mut h, &mut out, &mut c);
    assert!(out.batches.iter().all(|b| b.event_count <= 10));
    assert_eq!(out.ids(), all_ids(&h));
}

/// An event that turns up in the part of the trail the next window reads
/// again (here, between the window's read and the count that follows it) is
/// left to that window: the count stops where the next window starts, so it
/// sees no gap and no hour is read again for it.
#[test]
fn a_count_never_covers_what_the_next_window_reads_again() {
    let start = NOW - 2 * crate::ledger::SLICE_MS;
    let mut h = FakeHarness::new((0..40).map(|i| start + i * 150_000));
    let mut src = source_with(with(reconciling(50), |s| {
        s.window.start_at_ms = Some(start);
        s.window.overlap_secs = 120;
    }));
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    c.now += 61_000;
    // The new window is the pass's first request; the counts follow it. An
    // event a minute old becomes visible as the first count is asked.
    let first_count = h.requests.len() + 2;
    let late_ts = c.now - 60_000;
    h.on_request = Some(Box::new(move |events, n| {
        if n == first_count {
            events.push((late_ts, "late-in-the-overlap".into()));
        }
    }));
    let report = drain(&mut src, &mut h, &mut out, &mut c);
    assert!(report.count_requests > 0, "the interval was due");
    assert_eq!(report.slices_reread, 0, "{:?}", report.findings);
    assert_eq!(report.unreconciled_events, 0);
    h.on_request = None;
    c.now += 15_000;
    drain(&mut src, &mut h, &mut out, &mut c);
    let ids = out.ids();
    assert_eq!(
        ids.iter().filter(|id| *id == "late-in-the-overlap").count(),
        1,
        "the next window reads it, once"
    );
    assert_eq!(unique(&ids), 41);
}

/// Reconciliation in tiers: over an hour of passes every 15 s, the hours of
/// the recent tier are counted every recent interval and the whole
/// look-back once; an event hours late in the recent hours is collected
/// within a recent interval, one older within the interval.
#[test]
fn recent_hours_are_counted_every_few_minutes_and_the_look_back_hourly() {
    let hour = crate::ledger::SLICE_MS;
    let start = NOW - 10 * hour;
    let mut h = FakeHarness::new((0..100).map(|i| start + i * 360_000));
    let mut src = source_with(with(settings(100), |s| {
        s.window.start_at_ms = Some(start);
        s.window.reconcile_hours = 24;
        s.window.reconcile_interval_secs = 3_600;
        s.window.reconcile_recent_hours = 3;
        s.window.reconcile_recent_interval_secs = 300;
        s.window.overlap_secs = 120;
    }));
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    let recent_late = h.insert(NOW - 2 * hour);
    let old_late = h.insert(NOW - 8 * hour);
    let mut checks = Vec::new();
    let mut found = std::collections::BTreeMap::new();
    for pass in 1..=244_u64 {
        c.now += 15_000;
        let report = drain(&mut src, &mut h, &mut out, &mut c);
        if report.count_requests > 0 {
            checks.push((pass * 15, report.count_requests));
        }
        for id in [&recent_late, &old_late] {
            if out.ids().contains(id) {
                found.entry(id.clone()).or_insert(pass * 15);
            }
        }
    }
    // The slices from `from` to the last millisecond a count may cover, which
    // stops where the next window starts again: now less the overlap.
    let slices = |from: u64, secs: u64| {
        let counted_through = NOW + secs * 1_000 - 120_000 - 1;
        u32::try_from(counted_through / hour - from / hour + 1).unwrap()
    };
    let mut expected: Vec<(u64, u32)> = (1..=11)
        .map(|i| (i * 300, slices(NOW + i * 300_000 - 3 * hour, i * 300)))
        .collect();
    expected.push((3_600, slices(start, 3_600)));
    assert_eq!(checks.get(..12), Some(&expected[..]), "{checks:?}");
    assert_eq!(found[&recent_late], 300, "within the recent interval");
    assert_eq!(found[&old_late], 3_600, "within the interval");
    assert_eq!(unique(&out.ids()), 102);
}

/// An idle account on the defaults, collected by `serve` every 15 s for two
/// hours (so the whole look-back is counted twice): every request, windows
/// and counts, stays under a tenth of the key's 380 a minute.
#[test]
fn an_idle_tenant_on_the_defaults_sends_under_a_tenth_of_the_key_s_budget() {
    use crate::settings::defaults;
    let mut h = FakeHarness::new([]);
    let mut settings = settings(defaults::PAGE_SIZE);
    settings.window = crate::settings::Window {
        settle_lag_secs: defaults::SETTLE_LAG_SECS,
        overlap_secs: defaults::OVERLAP_SECS,
        reconcile_interval_secs: defaults::RECONCILE_INTERVAL_SECS,
        reconcile_hours: defaults::RECONCILE_HOURS,
        reconcile_recent_interval_secs: defaults::RECONCILE_RECENT_INTERVAL_SECS,
        reconcile_recent_hours: defaults::RECONCILE_RECENT_HOURS,
        // Collecting for two days already: the look-back is whole.
        start_minutes_back: 49 * 60,
        ..settings.window
    };
    let mut src = source_with(settings);
    let (mut out, mut c) = (Collected::default(), clock());
    drain(&mut src, &mut h, &mut out, &mut c);
    let before = h.requests.len();
    let minutes = 120;
    for _ in 0..minutes * 4 {
        c.now += 15_000;
        drain(&mut src, &mut h, &mut out, &mut c);
    }
    let per_minute = (h.requests.len() - before) as f64 / f64::from(minutes);
    assert!(per_minute <= 38.0, "{per_minute:.1} requests a minute");
    assert!(
        h.count_requests() > 2 * 48,
        "the look-back was counted: {}",
        h.count_requests()
    );
}
