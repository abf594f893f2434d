//! A mock of the Harness audit API, faithful to `shared/docs/harness-audit-api.md`:
//! auth outcomes, offset paging with totals, `sortOrders` semantics, every body
//! filter with inclusive bounds, verbatim validation messages, and injectable
//! faults. Behind [`Freedoms`], it also does everything a Mongo `skip/limit` on
//! `timestamp` alone, read from a secondary with a separate `count`, may do
//! (section 9, item 10). It binds 127.0.0.1 on a free port and runs on its own
//! thread.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::seed::{AuditEvent, Rng};
use crate::server::LoopbackServer;

mod odd;
pub use odd::{OddAnswer, OddContent, OddKind};

/// Modules and actions the API knows: the host's lists.
pub use harness_audit_core::vocabulary::{ACTIONS, MODULES};

const LOGIN_ACTIONS: [&str; 3] = ["LOGIN", "LOGIN2FA", "UNSUCCESSFUL_LOGIN"];

/// An API key the mock accepts.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    /// The full token, `pat.<account>.<id>.<secret>`.
    pub key: String,
    /// Whether its principal has `core_audit_view`.
    pub can_view: bool,
}

/// What to do when `pageSize` exceeds 100 (unverified against SaaS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OversizePages {
    /// 400 FailureDTO (default).
    Reject,
    /// Serve 100.
    Clamp,
}

/// An injected failure for list requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status, content type and body.
    Respond {
        /// HTTP status.
        status: u16,
        /// `Content-Type`.
        content_type: &'static str,
        /// Body.
        body: String,
    },
    /// Serve the real response cut in half (as a dropped connection would).
    Truncate,
    /// Send a 200 status line, then break the connection instead of a body.
    Reset,
    /// Serve the real response gzip-encoded, with `Content-Encoding: gzip`.
    Gzip,
    /// Serve the real response as it is, labelled with `Content-Encoding: encoding`.
    Encoded {
        /// The label, such as `br`.
        encoding: &'static str,
    },
    /// Serve the real response `chunk` bytes at a time, one chunk `every`.
    Trickle {
        /// Bytes per chunk.
        chunk: usize,
        /// The pause before each chunk.
        every: std::time::Duration,
    },
}

/// Probabilities (0.0 to 1.0, per list request) of each injected fault, and
/// the most latency added to every request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// 429 with a plain-text body and no `Retry-After`, as Cloud Armor sends.
    pub rate_limited: f64,
    /// 500 `ErrorDTO` `UNKNOWN_ERROR`.
    pub server_error: f64,
    /// 502 or 503 with an HTML body.
    pub gateway: f64,
    /// A 200 whose JSON body is cut short.
    pub truncated: f64,
    /// A connection broken after the status line.
    pub reset: f64,
    /// Up to this much latency, uniformly, on every request.
    pub max_latency_ms: u64,
}

impl FaultRates {
    fn pick(&self, rng: &mut Rng) -> Option<Fault> {
        let roll = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let error_dto = json!({
            "status": "ERROR", "code": "UNKNOWN_ERROR",
            "message": "Oops, something went wrong on our end. Please contact Harness Support.",
            "correlationId": correlation_id(rng), "detailedMessage": null, "responseMessages": [], "metadata": null,
        });
        let gateway_status = if rng.below(2) == 0 { 502 } else { 503 };
        let choices = [
            (self.rate_limited, Fault::rate_limited()),
            (
                self.server_error,
                Fault::Respond {
                    status: 500,
                    content_type: "application/json",
                    body: error_dto.to_string(),
                },
            ),
            (
                self.gateway,
                Fault::Respond {
                    status: gateway_status,
                    content_type: "text/html",
                    body: format!(
                        "<html><body><h1>{gateway_status} Service Unavailable</h1></body></html>"
                    ),
                },
            ),
            (self.truncated, Fault::Truncate),
            (self.reset, Fault::Reset),
        ];
        let mut threshold = 0.0;
        for (p, fault) in choices {
            threshold += p;
            if roll < threshold {
                return Some(fault);
            }
        }
        None
    }
}

/// A body that fails on first read: hyper then aborts the connection.
pub(crate) struct BrokenBody;

impl http_body::Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        ))))
    }
}

impl Fault {
    /// A gateway error page.
    pub fn html_502() -> Self {
        Self::Respond {
            status: 502,
            content_type: "text/html",
            body:
                "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
                    .into(),
        }
    }

    /// Cloud Armor's 429: no `Retry-After`, not JSON.
    pub fn rate_limited() -> Self {
        Self::Respond {
            status: 429,
            content_type: "text/plain",
            body: "Too Many Requests".into(),
        }
    }

    /// The answer this fault gives in place of the page: its status and
    /// body, or a body that breaks off mid-stream. `None` for a truncation,
    /// which cuts the page itself.
    fn response(&self) -> Option<Response> {
        match self {
            Self::Respond {
                status,
                content_type,
                body,
            } => {
                let status = StatusCode::from_u16(*status).expect("valid status");
                Some(
                    (
                        status,
                        [(header::CONTENT_TYPE, *content_type)],
                        body.clone(),
                    )
                        .into_response(),
                )
            }
            Self::Reset => Some(
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(axum::body::Body::new(BrokenBody))
                    .expect("a valid response"),
            ),
            Self::Truncate | Self::Gzip | Self::Encoded { .. } | Self::Trickle { .. } => None,
        }
    }
}

/// A body sent a few bytes at a time, as a slow link or a stalling proxy
/// sends it.
struct TrickleBody {
    body: Bytes,
    chunk: usize,
    every: std::time::Duration,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl TrickleBody {
    fn new(body: Vec<u8>, chunk: usize, every: std::time::Duration) -> Self {
        Self {
            body: Bytes::from(body),
            chunk: chunk.max(1),
            every,
            pause: Box::pin(tokio::time::sleep(every)),
        }
    }
}

impl http_body::Body for TrickleBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::future::Future as _;
        if self.body.is_empty() {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(self.pause.as_mut().poll(cx));
        let every = self.every;
        self.pause
            .as_mut()
            .reset(tokio::time::Instant::now() + every);
        let chunk = self.chunk.min(self.body.len());
        let frame = self.body.split_to(chunk);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(frame))))
    }
}

/// What `/list` may do under the API's contract and a kind mock would not
/// (API doc, section 9 item 10). Every one is off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Freedoms {
    /// Events that share a millisecond come back in a new order on every
    /// request: the sort is on `timestamp` alone, with no tiebreaker.
    pub shuffle_ties: bool,
    /// Chance (0.0 to 1.0) that a list request is answered short by a lagging
    /// secondary: each event of its page is left out with
    /// `short_page_drop`. Another request may return them.
    pub short_page_rate: f64,
    /// Share of a short page's events left out.
    pub short_page_drop: f64,
    /// Share of events inserted while set that Harness counts in
    /// `totalItems` but filters out of every page after paging: counted,
    /// never returned.
    pub hidden_fraction: f64,
    /// `totalItems` comes from another node: it counts the events visible up
    /// to this many ms later or earlier than the page does (drawn per
    /// request), so counts and pages disagree for a while.
    pub count_skew_ms: u64,
    /// Share of events added with [`MockHarness::insert`] that become visible
    /// late...
    pub late_fraction: f64,
    /// ...up to this long after their timestamp, in ms (hours, in Harness).
    pub max_late_ms: u64,
    /// Harness's edge: each key's budget, 429 with no `Retry-After` past it.
    pub edge_limit: Option<EdgeLimit>,
    /// Odd but legal content (section 9 item 11): events sent oddly, and
    /// answers that are not a page. Not one of [`Freedoms::ALL`]: the chaos
    /// runs turn it on.
    pub odd: Option<OddContent>,
}

impl Freedoms {
    /// Every freedom on: ties in a new order each time, one request in ten
    /// answered short by a third, one event in a hundred counted and never
    /// returned, counts two seconds off either way, one event in twenty of
    /// those inserted visible up to a minute late, and an edge of 50
    /// requests a second per key (Harness's budget on a test's time scale:
    /// an unpaced collector meets it, a paced one never does).
    pub const ALL: Self = Self {
        shuffle_ties: true,
        short_page_rate: 0.10,
        short_page_drop: 0.30,
        hidden_fraction: 0.01,
        count_skew_ms: 2_000,
        late_fraction: 0.05,
        max_late_ms: 60_000,
        edge_limit: Some(EdgeLimit {
            requests: 50,
            window: std::time::Duration::from_secs(1),
        }),
        odd: None,
    };
}

/// A uniform draw in [0, 1).
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Path.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// `x-api-key` header, if sent.
    pub api_key: Option<String>,
    /// JSON body, if any and parseable.
    pub body: Option<Value>,
}

impl RecordedRequest {
    /// First value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Stored {
    event: AuditEvent,
    json: String,
    /// What the API sends instead of `json`, when it sends this event oddly.
    odd: Option<(OddKind, Vec<u8>)>,
    /// Harness's async outbox makes events visible late; hidden until then.
    visible_at_ms: u64,
    /// Counted in `totalItems`, filtered out of every page ([`Freedoms::hidden_fraction`]).
    hidden: bool,
}

struct MockState {
    account_id: String,
    keys: Vec<KeyGrant>,
    events: Vec<Stored>,
    /// The latest `visible_at_ms` of any event: every event is visible from then on.
    visible_by_ms: u64,
    requests: Vec<RecordedRequest>,
    faults: VecDeque<Fault>,
    persistent_fault: Option<Fault>,
    fault_rates: Option<FaultRates>,
    oversize: OversizePages,
    list_v2: bool,
    freedoms: Freedoms,
    rng: Rng,
    /// `auditYaml` answers 500 for these audit ids.
    yaml_failures: std::collections::BTreeSet<String>,
    edge: Edge,
}

/// Events Harness writes while a collector runs ([`MockHarness::insert_live`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveInserts {
    /// Events a second.
    pub per_sec: f64,
    /// For this many seconds.
    pub secs: u64,
    /// Share of them written late: visible on insertion, with an earlier timestamp...
    pub late_fraction: f64,
    /// ...by up to this many ms.
    pub max_late_ms: u64,
    /// Seed of the events and their delays.
    pub seed: u64,
}

/// When an event became visible.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Visibility {
    /// Its `auditId`.
    #[serde(rename = "auditId")]
    pub audit_id: String,
    /// Its `timestamp`.
    pub timestamp_ms: u64,
    /// When the API first returned it (epoch ms).
    pub visible_at_ms: u64,
}

/// An event as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    /// Its `auditId`, whether or not its bytes hold it.
    pub audit_id: String,
    /// The bytes the API sends for it.
    pub bytes: Vec<u8>,
    /// How it is sent oddly, if it is.
    pub odd: Option<OddKind>,
}

impl Stored {
    /// The bytes the API sends for this event.
    fn sent(&self) -> &[u8] {
        self.odd
            .as_ref()
            .map_or(self.json.as_bytes(), |(_, bytes)| bytes)
    }
}

/// A running mock; stops when dropped.
#[derive(Debug)]
pub struct MockHarness {
    state: Arc<Mutex<MockState>>,
    server: LoopbackServer,
}

impl std::fmt::Debug for MockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockState")
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// A well-formed key for `account` (the format Harness issues).
pub fn make_key(account: &str, token_id: &str) -> String {
    format!(
        "pat.{account}.{token_id}.{}",
        "s3cr3tV4lu3x".repeat(2).get(..20).unwrap()
    )
}

impl MockHarness {
    /// Starts a mock for `account_id` accepting `keys`.
    pub fn start(account_id: &str, keys: Vec<KeyGrant>) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(MockState {
            account_id: account_id.to_owned(),
            keys,
            events: Vec::new(),
            visible_by_ms: 0,
            requests: Vec::new(),
            faults: VecDeque::new(),
            persistent_fault: None,
            fault_rates: None,
            oversize: OversizePages::Reject,
            list_v2: false,
            freedoms: Freedoms::default(),
            rng: Rng::new(0x5eed),
            yaml_failures: std::collections::BTreeSet::new(),
            edge: Edge::new(),
        }));
        let app = Router::new()
            .route("/audit/api/audits/list", post(list))
            .route("/gateway/audit/api/audits/list", post(list))
            .route("/audit/api/audits/listV2", post(list))
            .route("/gateway/audit/api/audits/listV2", post(list))
            .route("/audit/api/auditYaml", axum::routing::get(audit_yaml))
            .route(
                "/gateway/audit/api/auditYaml",
                axum::routing::get(audit_yaml),
            )
            .route("/__mock/ground-truth", axum::routing::get(ground_truth))
            .route("/__mock/edge", axum::routing::get(edge_answers))
            .route("/__mock/visibility", axum::routing::get(visibility_lines))
            .fallback(not_found)
            .with_state(state.clone());
        let server = LoopbackServer::start("mock-harness", app)?;
        Ok(Self { state, server })
    }

    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().expect("mock state lock")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Adds events (any order), visible at once unless
    /// [`Freedoms::late_fraction`] makes some late; they are kept sorted by
    /// timestamp, ties in insertion order.
    pub fn insert(&self, events: impl IntoIterator<Item = AuditEvent>) {
        let (freedoms, seed) = {
            let mut state = self.lock();
            (state.freedoms, state.rng.next_u64())
        };
        let mut rng = Rng::new(seed);
        self.insert_visible_at(events.into_iter().map(|e| {
            let late = freedoms.late_fraction > 0.0 && unit(&mut rng) < freedoms.late_fraction;
            let visible_at = if late {
                e.timestamp + rng.below(freedoms.max_late_ms + 1)
            } else {
                0
            };
            (e, visible_at)
        }));
    }

    /// Adds events that become visible only at the given epoch ms (an ingest
    /// delay). With [`Freedoms::hidden_fraction`] set, that share of them is
    /// counted and never returned.
    pub fn insert_visible_at(&self, events: impl IntoIterator<Item = (AuditEvent, u64)>) {
        insert_visible_at(&mut self.lock(), events);
    }

    /// Inserts events as Harness writes them, from a thread of its own:
    /// `live.per_sec` a second for `live.secs` seconds, each visible from the
    /// moment it is inserted, a share of them with a timestamp up to
    /// `live.max_late_ms` earlier (written late). [`MockHarness::visibility`]
    /// tells when each became visible.
    pub fn insert_live(&self, live: LiveInserts) -> std::thread::JoinHandle<()> {
        let state = self.state.clone();
        std::thread::spawn(move || {
            let account = state.lock().expect("mock state lock").account_id.clone();
            let mut rng = Rng::new(live.seed);
            let start = std::time::Instant::now();
            let total = (live.per_sec * live.secs as f64).round() as u64;
            for i in 0..total {
                let due = start + std::time::Duration::from_secs_f64(i as f64 / live.per_sec);
                std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                let now = crate::seed::now_ms();
                let late = unit(&mut rng) < live.late_fraction;
                let written = now
                    - if late {
                        rng.below(live.max_late_ms + 1)
                    } else {
                        0
                    };
                let event = crate::seed::generate(&crate::seed::SeedSpec {
                    account_id: account.clone(),
                    count: 1,
                    start_ms: written,
                    end_ms: written,
                    seed: rng.next_u64(),
                })
                .remove(0);
                insert_visible_at(&mut state.lock().expect("mock state lock"), [(event, now)]);
            }
        })
    }

    /// When each event the API can return became visible, oldest first.
    pub fn visibility(&self) -> Vec<Visibility> {
        visibility(&self.lock())
    }

    /// Grants `/list` the API's freedoms (or takes them back). Set before
    /// inserting: hidden and late events are chosen as events are inserted.
    pub fn set_freedoms(&self, freedoms: Freedoms) {
        self.lock().freedoms = freedoms;
    }

    /// Every event the API can return (all but the hidden ones), as JSON, oldest first.
    pub fn returnable_json(&self) -> Vec<String> {
        self.lock()
            .events
            .iter()
            .filter(|s| !s.hidden)
            .map(|s| s.json.clone())
            .collect()
    }

    /// Every event the API can return (all but the hidden ones), as it sends
    /// them, oldest first.
    pub fn returnable(&self) -> Vec<Returned> {
        self.lock()
            .events
            .iter()
            .filter(|s| !s.hidden)
            .map(|s| Returned {
                audit_id: s.event.audit_id.clone(),
                bytes: s.sent().to_vec(),
                odd: s.odd.as_ref().map(|(kind, _)| *kind),
            })
            .collect()
    }

    /// Every answer of the edge so far ([`Freedoms::edge_limit`]).
    pub fn edge_answers(&self) -> Vec<EdgeAnswer> {
        self.lock().edge.answers().to_vec()
    }

    /// How many events are counted and never returned.
    pub fn hidden_count(&self) -> usize {
        self.lock().events.iter().filter(|s| s.hidden).count()
    }

    /// Injects faults at random into list requests, or stops with `None`.
    pub fn set_fault_rates(&self, rates: Option<FaultRates>) {
        self.lock().fault_rates = rates;
    }

    /// When the last hidden event becomes visible (epoch ms; 0 if none is delayed).
    pub fn events_visible_by(&self) -> u64 {
        self.lock().visible_by_ms
    }

    /// Every event's JSON, oldest first.
    pub fn events_json(&self) -> Vec<String> {
        self.lock().events.iter().map(|s| s.json.clone()).collect()
    }

    /// Events matching `keep`, as JSON, oldest first.
    pub fn events_json_where(&self, keep: impl Fn(&AuditEvent) -> bool) -> Vec<String> {
        self.lock()
            .events
            .iter()
            .filter(|s| keep(&s.event))
            .map(|s| s.json.clone())
            .collect()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Queues a fault for the next list request.
    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Fails every list request with `fault` until cleared with `None`.
    pub fn set_persistent_fault(&self, fault: Option<Fault>) {
        self.lock().persistent_fault = fault;
    }

    /// Every stored event, in timestamp order.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.lock().events.iter().map(|s| s.event.clone()).collect()
    }

    /// Makes `auditYaml` fail (500) for these audit ids.
    pub fn fail_yaml_for(&self, audit_ids: impl IntoIterator<Item = String>) {
        self.lock().yaml_failures.extend(audit_ids);
    }

    /// Serves `/audits/listV2` (cursor pages with `pageToken`/`hasNext`, no
    /// totals). Inferred from the SecOps recipe only: off (404) by default.
    pub fn enable_list_v2(&self, enabled: bool) {
        self.lock().list_v2 = enabled;
    }

    /// Chooses the `pageSize > 100` behaviour.
    pub fn set_oversize_pages(&self, mode: OversizePages) {
        self.lock().oversize = mode;
    }
}

fn correlation_id(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        a & 0xffff,
        (b >> 52) & 0xfff,
        (b >> 40) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

fn json_response(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).expect("valid status"),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `ErrorDTO` as `WingsExceptionMapperV2` renders it.
fn error_dto(rng: &mut Rng, status: u16, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({
            "status": "ERROR", "code": code, "message": message, "correlationId": correlation_id(rng),
            "detailedMessage": null,
            "responseMessages": [{"code": code, "level": "ERROR", "message": message, "exception": null, "failureTypes": []}],
            "metadata": null,
        }),
    )
}

/// `FailureDTO` for bean-validation errors.
fn failure_dto(rng: &mut Rng, field: &str, error: &str) -> Response {
    json_response(
        400,
        json!({
            "status": "FAILURE", "code": "INVALID_REQUEST", "message": format!("{field}: {error}"),
            "correlationId": correlation_id(rng), "errors": [{"fieldId": field, "error": error}],
        }),
    )
}

fn invalid_request(rng: &mut Rng, message: &str) -> Response {
    error_dto(
        rng,
        400,
        "INVALID_REQUEST",
        &format!("Invalid request: {message}"),
    )
}

async fn not_found() -> Response {
    not_found_response()
}

fn not_found_response() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "HTTP 404 Not Found",
    )
        .into_response()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FilterBody {
    filter_type: Option<String>,
    scopes: Option<Vec<ScopeFilter>>,
    resources: Option<Vec<ResourceFilter>>,
    modules: Option<Vec<String>>,
    actions: Option<Vec<String>>,
    environments: Option<Vec<EnvironmentFilter>>,
    principals: Option<Vec<PrincipalFilter>>,
    static_filter: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    include_child_scopes: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeFilter {
    account_identifier: Option<String>,
    org_identifier: Option<String>,
    project_identifier: Option<String>,
}

#[derive(Deserialize)]
struct ResourceFilter {
    #[serde(rename = "type")]
    kind: Option<String>,
    identifier: Option<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct EnvironmentFilter {
    #[serde(rename = "type")]
    kind: Option<String>,
    identifier: Option<String>,
}

#[derive(Deserialize)]
struct PrincipalFilter {
    #[serde(rename = "type")]
    kind: Option<String>,
    identifier: Option<String>,
}

enum Sort {
    Asc,
    Desc,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    List,
    ListV2,
}

async fn list(
    State(state): State<Arc<Mutex<MockState>>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let flavor = if uri.path().ends_with("/listV2") {
        Flavor::ListV2
    } else {
        Flavor::List
    };
    serve(&state, flavor, &headers, &query, &uri, &body).await
}

async fn serve(
    state: &Mutex<MockState>,
    flavor: Flavor,
    headers: &HeaderMap,
    query: &[(String, String)],
    uri: &axum::http::Uri,
    body: &Bytes,
) -> Response {
    let (response, latency_ms) = {
        let mut guard = state.lock().expect("mock state lock");
        let state = &mut *guard;
        if flavor == Flavor::ListV2 && !state.list_v2 {
            return not_found_response();
        }
        let latency_ms = match state.fault_rates {
            Some(r) if r.max_latency_ms > 0 => state.rng.below(r.max_latency_ms + 1),
            _ => 0,
        };
        (
            respond(state, flavor, headers, query, uri, body),
            latency_ms,
        )
    };
    if latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency_ms)).await;
    }
    response
}

/// A hash of a request body: a `listV2` token is valid only with its body.
/// Tokens live as long as the mock process, so the standard hasher, fixed
/// within one build, is enough.
fn hash_body(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Ground truth for tests driving a separate mock process: every stored
/// event, visible or not yet, as NDJSON, oldest first.
/// Actions whose events have a YAML diff: configuration changes.
const YAML_ACTIONS: [&str; 6] = [
    "CREATE",
    "UPDATE",
    "UPSERT",
    "DELETE",
    "FORCE_DELETE",
    "RESTORE",
];

/// The `(oldYaml, newYaml)` the mock serves for an event, if it has a diff.
pub fn yaml_diff_of(e: &AuditEvent) -> Option<(Option<String>, Option<String>)> {
    if !YAML_ACTIONS.contains(&e.action.as_str()) {
        return None;
    }
    let version = |n: u32| {
        format!(
            "{}:\n  identifier: {}\n  version: {n}\n",
            e.resource.kind.to_ascii_lowercase(),
            e.resource.identifier
        )
    };
    let old = (e.action != "CREATE").then(|| version(1));
    let new = (!matches!(e.action.as_str(), "DELETE" | "FORCE_DELETE")).then(|| version(2));
    Some((old, new))
}

/// `GET /audit/api/auditYaml?accountIdentifier=&auditId=`: `ResponseDTO<YamlDiffRecordDTO>`.
async fn audit_yaml(
    State(state): State<Arc<Mutex<MockState>>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    uri: axum::http::Uri,
) -> Response {
    let mut guard = state.lock().expect("mock state lock");
    let state = &mut *guard;
    let param = |name: &str| query_param(&query, name);
    let api_key = record(state, &headers, &query, &uri, &Bytes::new());
    if let Some(refused) = edge_refusal(state, api_key.as_deref()) {
        return refused;
    }
    let (account, can_view) = match authenticate(state, &headers, &param, api_key) {
        Ok(granted) => granted,
        Err(response) => return *response,
    };
    let rng = &mut state.rng;
    if !can_view {
        return access_denied(rng, &account);
    }
    let Some(id) = param("auditId") else {
        return failure_dto(rng, "auditId", "must not be null");
    };
    if state.yaml_failures.contains(&id) {
        return error_dto(
            rng,
            500,
            "UNKNOWN_ERROR",
            "Oops, something went wrong on our end. Please contact Harness Support.",
        );
    }
    let Some(stored) = state.events.iter().find(|s| s.event.audit_id == id) else {
        return invalid_request(rng, &format!("Audit event with id {id} not found"));
    };
    let data = match yaml_diff_of(&stored.event) {
        Some((old, new)) => json!({"oldYaml": old, "newYaml": new}),
        None => json!({}),
    };
    let correlation = correlation_id(rng);
    json_response(
        200,
        json!({"status": "SUCCESS", "data": data, "metaData": null, "correlationId": correlation}),
    )
}

async fn ground_truth(State(state): State<Arc<Mutex<MockState>>>) -> Response {
    let state = state.lock().expect("mock state lock");
    ndjson(state.events.iter().map(|stored| stored.json.clone()))
}

/// A 200 of NDJSON, one line per item.
fn ndjson(lines: impl Iterator<Item = String>) -> Response {
    let mut body = String::new();
    for line in lines {
        body.push_str(&line);
        body.push('\n');
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response()
}

fn query_param(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Records the request for the tests and returns its `x-api-key`.
fn record(
    state: &mut MockState,
    headers: &HeaderMap,
    query: &[(String, String)],
    uri: &axum::http::Uri,
    body: &Bytes,
) -> Option<String> {
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.requests.push(RecordedRequest {
        path: uri.path().to_owned(),
        query: query.to_vec(),
        api_key: api_key.clone(),
        body: serde_json::from_slice(body).ok(),
    });
    api_key
}

/// The edge's answer, before the service sees the request: a 429 past the
/// key's budget ([`Freedoms::edge_limit`]).
fn edge_refusal(state: &mut MockState, api_key: Option<&str>) -> Option<Response> {
    let limit = state.freedoms.edge_limit?;
    let admitted = state.edge.admit(
        limit,
        api_key.unwrap_or_default(),
        std::time::Instant::now(),
    );
    (!admitted).then(|| {
        Fault::rate_limited()
            .response()
            .expect("a 429 is a whole response")
    })
}

/// Adds events to the store, each visible from its epoch ms.
fn insert_visible_at(state: &mut MockState, events: impl IntoIterator<Item = (AuditEvent, u64)>) {
    for (event, visible_at_ms) in events {
        let at = state
            .events
            .partition_point(|s| s.event.timestamp <= event.timestamp);
        let json = event.to_json();
        let hidden = state.freedoms.hidden_fraction > 0.0
            && unit(&mut state.rng) < state.freedoms.hidden_fraction;
        let odd = state.freedoms.odd.and_then(|odd| {
            (unit(&mut state.rng) < odd.events).then(|| {
                let kind = OddKind::ALL[state.rng.below(OddKind::ALL.len() as u64) as usize];
                (kind, kind.render(&event, &json, odd.big_bytes))
            })
        });
        state.visible_by_ms = state.visible_by_ms.max(visible_at_ms);
        state.events.insert(
            at,
            Stored {
                event,
                json,
                odd,
                visible_at_ms,
                hidden,
            },
        );
    }
}

/// When each returnable event became visible.
fn visibility(state: &MockState) -> Vec<Visibility> {
    state
        .events
        .iter()
        .filter(|s| !s.hidden)
        .map(|s| Visibility {
            audit_id: s.event.audit_id.clone(),
            timestamp_ms: s.event.timestamp,
            visible_at_ms: s.visible_at_ms.max(s.event.timestamp),
        })
        .collect()
}

/// When each event became visible, as NDJSON, for benchmarks driving a
/// separate mock process.
async fn visibility_lines(State(state): State<Arc<Mutex<MockState>>>) -> Response {
    let state = state.lock().expect("mock state lock");
    ndjson(
        visibility(&state)
            .iter()
            .map(|v| serde_json::to_string(v).expect("visibility serializes")),
    )
}

/// Every answer of the edge so far, as JSON, for benchmarks driving a
/// separate mock process.
async fn edge_answers(State(state): State<Arc<Mutex<MockState>>>) -> Response {
    let state = state.lock().expect("mock state lock");
    axum::Json(state.edge.answers()).into_response()
}

/// 403 for a key without `core_audit_view`, in Harness's words.
fn access_denied(rng: &mut Rng, account: &str) -> Response {
    error_dto(
        rng,
        403,
        "ACCESS_DENIED",
        &format!(
            "User not authorized: You need core_audit_view permission on ACCOUNT with identifier: {account} to perform this action"
        ),
    )
}

/// NextGenAuthenticationFilter: key, then account, then the key's validity.
/// Returns the account and whether the key may view audits.
fn authenticate(
    state: &mut MockState,
    headers: &HeaderMap,
    param: &dyn Fn(&str) -> Option<String>,
    api_key: Option<String>,
) -> Result<(String, bool), Box<Response>> {
    let rng = &mut state.rng;
    let Some(key) = api_key else {
        return Err(Box::new(error_dto(
            rng,
            401,
            "INVALID_TOKEN",
            "Invalid token",
        )));
    };
    let account = headers
        .get("harness-account")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| param("account"))
        .or_else(|| param("accountIdentifier"));
    let Some(account) = account else {
        return Err(Box::new(invalid_request(
            rng,
            "Account detail is not present in the request",
        )));
    };
    let parts: Vec<&str> = key.split('.').collect();
    if !(3..=4).contains(&parts.len()) {
        return Err(Box::new(error_dto(
            rng,
            401,
            "INVALID_TOKEN",
            "Invalid API Token: Token length not matching for API token",
        )));
    }
    let grant = state.keys.iter().find(|g| g.key == key);
    let Some(grant) = grant.filter(|_| parts[1] == account && account == state.account_id) else {
        return Err(Box::new(error_dto(
            rng,
            401,
            "INVALID_TOKEN",
            &format!(
                "Invalid call: Invalid token or token expired. Account id for API called: {account}"
            ),
        )));
    };
    Ok((account, grant.can_view))
}

fn respond(
    state: &mut MockState,
    flavor: Flavor,
    headers: &HeaderMap,
    query: &[(String, String)],
    uri: &axum::http::Uri,
    body: &Bytes,
) -> Response {
    let param = |name: &str| query_param(query, name);
    let api_key = record(state, headers, query, uri, body);
    if let Some(refused) = edge_refusal(state, api_key.as_deref()) {
        return refused;
    }
    let (account, can_view) = match authenticate(state, headers, &param, api_key) {
        Ok(granted) => granted,
        Err(response) => return *response,
    };
    let rng = &mut state.rng;

    // Bean validation of the query parameters.
    if param("accountIdentifier").is_none() {
        return failure_dto(rng, "accountIdentifier", "must not be null");
    }
    let page_index: i64 = match param("pageIndex").map(|v| v.parse()) {
        None => 0,
        Some(Ok(v)) => v,
        Some(Err(_)) => return failure_dto(rng, "pageIndex", "must be a number"),
    };
    let mut page_size: i64 = match param("pageSize").map(|v| v.parse()) {
        None => 50,
        Some(Ok(v)) => v,
        Some(Err(_)) => return failure_dto(rng, "pageSize", "must be a number"),
    };
    if page_size > 100 {
        match state.oversize {
            OversizePages::Reject => {
                return failure_dto(rng, "pageSize", "must be less than or equal to 100");
            }
            OversizePages::Clamp => page_size = 100,
        }
    }
    if page_size <= 0 || page_index < 0 {
        // Spring's PageRequest.of throws; GenericExceptionMapperV2 answers 500.
        return error_dto(
            rng,
            500,
            "UNKNOWN_ERROR",
            "Oops, something went wrong on our end. Please contact Harness Support.",
        );
    }
    if !can_view {
        return access_denied(rng, &account);
    }

    let filter: FilterBody = if body.iter().all(u8::is_ascii_whitespace) {
        FilterBody::default()
    } else {
        match serde_json::from_slice::<FilterBody>(body) {
            Ok(f) if f.filter_type.as_deref() == Some("Audit") => f,
            _ => {
                return json_response(
                    400,
                    json!({"code": 400, "message": "Unable to process JSON"}),
                );
            }
        }
    };
    if let Err(message) = validate(&filter, &account) {
        return invalid_request(rng, &message);
    }
    let modules: Option<Vec<String>> = filter
        .modules
        .as_ref()
        .map(|m| m.iter().map(|v| v.to_ascii_uppercase()).collect());
    let unknown_module = modules
        .iter()
        .flatten()
        .any(|m| !MODULES.contains(&m.as_str()));
    let unknown_action = filter
        .actions
        .iter()
        .flatten()
        .any(|a| !ACTIONS.contains(&a.as_str()));
    let unknown_static = filter
        .static_filter
        .as_deref()
        .is_some_and(|s| !["EXCLUDE_LOGIN_EVENTS", "EXCLUDE_SYSTEM_EVENTS"].contains(&s));
    if unknown_module || unknown_action || unknown_static {
        return json_response(
            400,
            json!({"code": 400, "message": "Unable to process JSON"}),
        );
    }

    let body_hash = hash_body(body);
    let offset = match flavor {
        Flavor::List => (page_index * page_size) as usize,
        Flavor::ListV2 => match param("pageToken").filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => {
                let parsed = token.split_once('.').and_then(|(o, h)| {
                    Some((o.parse::<usize>().ok()?, u64::from_str_radix(h, 16).ok()?))
                });
                match parsed {
                    Some((offset, issued_for)) if issued_for == body_hash => offset,
                    _ => {
                        return invalid_request(
                            &mut state.rng,
                            "pageToken is not valid for this request body",
                        );
                    }
                }
            }
        },
    };
    let rates = state.fault_rates;
    let odd_answer = state.freedoms.odd.filter(|o| o.answers > 0.0);
    let fault = state
        .faults
        .pop_front()
        .or_else(|| state.persistent_fault.clone())
        .or_else(|| rates.and_then(|r| r.pick(&mut state.rng)))
        .or_else(|| {
            let odd = odd_answer?;
            (unit(&mut state.rng) < odd.answers)
                .then(|| OddAnswer::pick(&mut state.rng).fault(&mut state.rng))
        });
    if let Some(answer) = fault.as_ref().and_then(Fault::response) {
        return answer;
    }
    let body = page_response(
        state,
        flavor,
        &filter,
        modules.as_deref(),
        query,
        offset,
        page_size,
        body_hash,
    );
    match fault {
        // Cut bytes, not characters: a dropped connection can split a UTF-8 sequence.
        Some(Fault::Truncate) => json_bytes(&body[..body.len() / 2]),
        Some(Fault::Gzip) => {
            use std::io::Write as _;
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gzip.write_all(&body).expect("writing to a Vec");
            let mut response = json_bytes(&gzip.finish().expect("writing to a Vec"));
            response.headers_mut().insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static("gzip"),
            );
            response
        }
        Some(Fault::Encoded { encoding }) => {
            let mut response = json_bytes(&body);
            response.headers_mut().insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static(encoding),
            );
            response
        }
        Some(Fault::Trickle { chunk, every }) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::new(TrickleBody::new(body, chunk, every)))
            .expect("a valid response"),
        _ => json_bytes(&body),
    }
}

fn json_bytes(body: &[u8]) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::copy_from_slice(body),
    )
        .into_response()
}

/// `AuditFilterPropertiesValidator`, messages verbatim.
fn validate(f: &FilterBody, account: &str) -> Result<(), String> {
    for scope in f.scopes.iter().flatten() {
        let acct = scope.account_identifier.as_deref().unwrap_or("null");
        if acct != account {
            return Err(format!(
                "Invalid resource scope filter with accountIdentifier {acct}."
            ));
        }
        if let (Some(project), None) = (&scope.project_identifier, &scope.org_identifier) {
            return Err(format!(
                "Invalid resource scope filter with projectIdentifier {project} but missing orgIdentifier."
            ));
        }
    }
    if f.resources.iter().flatten().any(|r| r.kind.is_none()) {
        return Err("Invalid resource filter with missing resource type.".into());
    }
    for p in f.principals.iter().flatten() {
        if p.kind.is_none() {
            return Err("Invalid principal filter with missing principal type.".into());
        }
        if p.identifier.is_none() {
            return Err("Invalid principal filter with missing principal identifier.".into());
        }
    }
    if f.environments
        .iter()
        .flatten()
        .any(|e| e.kind.is_none() && e.identifier.is_none())
    {
        return Err("Invalid environment filter with missing both type and identifier.".into());
    }
    if let Some(start) = f.start_time.filter(|s| *s < 0) {
        return Err(format!(
            "Invalid time filter with start time {start} less than zero."
        ));
    }
    if let Some(end) = f.end_time.filter(|e| *e < 0) {
        return Err(format!(
            "Invalid time filter with end time {end} less than zero."
        ));
    }
    if let (Some(start), Some(end)) = (f.start_time, f.end_time)
        && start > end
    {
        return Err(format!(
            "Invalid time filter with start time {start} after end time {end}."
        ));
    }
    Ok(())
}

/// An absent or empty list matches everything; otherwise any entry may match.
fn any_of<T>(list: &Option<Vec<T>>, test: impl Fn(&T) -> bool) -> bool {
    list.as_ref()
        .is_none_or(|l| l.is_empty() || l.iter().any(test))
}

/// The filter's inclusive time bounds: no `endTime` means now.
fn time_range(f: &FilterBody, now_ms: u64) -> (u64, u64) {
    (
        f.start_time.unwrap_or(0) as u64,
        f.end_time.map_or(now_ms, |t| t as u64),
    )
}

/// Whether any criterion besides time can exclude an event; `false` means
/// [`matches`] holds for every event in the time range.
fn narrows(f: &FilterBody, modules: Option<&[String]>) -> bool {
    let child_scopes = f.include_child_scopes.unwrap_or(true);
    let scopes_narrow = f.scopes.as_ref().is_some_and(|scopes| {
        !scopes.is_empty()
            && !scopes.iter().any(|s| {
                child_scopes && s.org_identifier.is_none() && s.project_identifier.is_none()
            })
    });
    let listed = |len: Option<usize>| len.is_some_and(|n| n > 0);
    scopes_narrow
        || listed(f.resources.as_ref().map(Vec::len))
        || listed(modules.map(<[String]>::len))
        || listed(f.actions.as_ref().map(Vec::len))
        || listed(f.environments.as_ref().map(Vec::len))
        || listed(f.principals.as_ref().map(Vec::len))
        || matches!(
            f.static_filter.as_deref(),
            Some("EXCLUDE_LOGIN_EVENTS" | "EXCLUDE_SYSTEM_EVENTS")
        )
}

fn matches(e: &AuditEvent, f: &FilterBody, modules: Option<&[String]>, now_ms: u64) -> bool {
    let (start, end) = time_range(f, now_ms);
    if e.timestamp < start || e.timestamp > end {
        return false;
    }
    let child_scopes = f.include_child_scopes.unwrap_or(true);
    let scope = &e.resource_scope;
    let scope_ok = |s: &ScopeFilter| {
        let org_ok = match &s.org_identifier {
            None => child_scopes || scope.org_identifier.is_none(),
            Some(org) => scope.org_identifier.as_ref() == Some(org),
        };
        let project_ok = match &s.project_identifier {
            None => child_scopes || scope.project_identifier.is_none(),
            Some(p) => scope.project_identifier.as_ref() == Some(p),
        };
        org_ok && project_ok
    };
    any_of(&f.scopes, scope_ok)
        && any_of(&f.resources, |r| {
            r.kind.as_deref() == Some(e.resource.kind.as_str())
                && r.identifier
                    .as_ref()
                    .is_none_or(|id| *id == e.resource.identifier)
                && r.labels.as_ref().is_none_or(|want| {
                    want.iter()
                        .all(|(k, v)| e.resource.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
                })
        })
        && modules.is_none_or(|m| m.is_empty() || m.contains(&e.module))
        && f.actions
            .as_ref()
            .is_none_or(|a| a.is_empty() || a.contains(&e.action))
        && any_of(&f.environments, |env| {
            e.environment.as_ref().is_some_and(|have| {
                env.kind.as_ref().is_none_or(|k| *k == have.kind)
                    && env
                        .identifier
                        .as_ref()
                        .is_none_or(|i| *i == have.identifier)
            })
        })
        && any_of(&f.principals, |p| {
            let have = &e.authentication_info.principal;
            p.kind.as_deref() == Some(have.kind.as_str())
                && p.identifier.as_deref() == Some(have.identifier.as_str())
        })
        && match f.static_filter.as_deref() {
            Some("EXCLUDE_LOGIN_EVENTS") => !LOGIN_ACTIONS.contains(&e.action.as_str()),
            Some("EXCLUDE_SYSTEM_EVENTS") => e.authentication_info.principal.kind != "SYSTEM",
            _ => true,
        }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename the arguments"
)]
fn page_response(
    state: &mut MockState,
    flavor: Flavor,
    filter: &FilterBody,
    modules: Option<&[String]>,
    query: &[(String, String)],
    offset: usize,
    page_size: i64,
    body_hash: u64,
) -> Vec<u8> {
    let now_ms = crate::seed::now_ms();
    let sorts: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "sortOrders")
        .map(|(_, v)| v.as_str())
        .collect();
    // Only a single order on `timestamp` is honoured; anything else means newest first.
    let sort = match sorts.as_slice() {
        ["timestamp,ASC"] => Sort::Asc,
        _ => Sort::Desc,
    };
    // The events are sorted by timestamp: like the real service's index, a
    // binary search bounds the scan to the window, so a large backlog costs
    // each page its own window rather than the whole store.
    let (start, end) = time_range(filter, now_ms);
    let from = state.events.partition_point(|s| s.event.timestamp < start);
    let to = state.events.partition_point(|s| s.event.timestamp <= end);
    let window = &state.events[from..to.max(from)];
    let size = page_size as usize;
    // The freedoms are those of `/list`'s skip/limit; `listV2` is inferred as a server-side cursor.
    let freedoms = match flavor {
        Flavor::List => state.freedoms,
        Flavor::ListV2 => Freedoms::default(),
    };
    let rng = &mut state.rng;
    let plain = !narrows(filter, modules);
    let hit = |s: &Stored, at: u64| {
        s.visible_at_ms <= at && (plain || matches(&s.event, filter, modules, now_ms))
    };
    // `count` runs apart from the page query, possibly on another node.
    let counted_at = match freedoms.count_skew_ms {
        0 => now_ms,
        skew => (now_ms + rng.below(2 * skew + 1)).saturating_sub(skew),
    };
    let total = if plain && state.visible_by_ms <= counted_at.min(now_ms) {
        window.len()
    } else {
        window.iter().filter(|s| hit(s, counted_at)).count()
    };
    // The hits up to the end of the page, and the rest of the millisecond it
    // ends in, so that a shuffle can move any of them onto the page.
    let mut hits: Vec<&Stored> = match sort {
        Sort::Asc => {
            let needed = offset + size;
            let mut hits: Vec<&Stored> = Vec::with_capacity(needed);
            for s in window.iter().filter(|s| hit(s, now_ms)) {
                if hits.len() >= needed
                    && hits
                        .last()
                        .is_some_and(|l| l.event.timestamp != s.event.timestamp)
                {
                    break;
                }
                hits.push(s);
            }
            hits
        }
        Sort::Desc => {
            let mut hits: Vec<&Stored> = window.iter().filter(|s| hit(s, now_ms)).collect();
            hits.sort_by_key(|s| std::cmp::Reverse(s.event.timestamp));
            hits
        }
    };
    if freedoms.shuffle_ties {
        let mut first = 0;
        while first < hits.len() {
            let ts = hits[first].event.timestamp;
            let last = first + hits[first..].partition_point(|s| s.event.timestamp == ts);
            for i in (first + 1..last).rev() {
                let j = first + rng.below((i - first + 1) as u64) as usize;
                hits.swap(i, j);
            }
            first = last;
        }
    }
    let lagging = freedoms.short_page_rate > 0.0 && unit(rng) < freedoms.short_page_rate;
    let content: Vec<&[u8]> = hits
        .iter()
        .skip(offset)
        .take(size)
        // Hidden events are filtered after paging; a lagging node leaves others out.
        .filter(|s| !(s.hidden || (lagging && unit(rng) < freedoms.short_page_drop)))
        .map(|s| s.sent())
        .collect();
    let correlation = correlation_id(rng);
    // Events are bytes (an odd one may not be UTF-8): the envelope is text
    // around them, the content spliced in at `CONTENT`.
    const CONTENT: &str = "\u{0}content\u{0}";
    let envelope = match flavor {
        Flavor::List => format!(
            r#"{{"status":"SUCCESS","data":{{"totalPages":{},"totalItems":{total},"pageItemCount":{},"pageSize":{page_size},"content":[{CONTENT}],"pageIndex":{},"empty":{},"pageToken":null}},"metaData":null,"correlationId":"{correlation}"}}"#,
            total.div_ceil(size),
            content.len(),
            offset / size,
            content.is_empty(),
        ),
        Flavor::ListV2 => {
            let has_next = offset + size < total;
            let token = if has_next {
                format!(r#""{}.{body_hash:016x}""#, offset + size)
            } else {
                "null".into()
            };
            format!(
                r#"{{"status":"SUCCESS","data":{{"content":[{CONTENT}],"hasNext":{has_next},"pageToken":{token}}},"metaData":null,"correlationId":"{correlation}"}}"#,
            )
        }
    };
    let (head, tail) = envelope
        .split_once(CONTENT)
        .expect("the envelope holds the content's place");
    let mut body =
        Vec::with_capacity(envelope.len() + content.iter().map(|c| c.len() + 1).sum::<usize>());
    body.extend_from_slice(head.as_bytes());
    for (i, event) in content.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event);
    }
    body.extend_from_slice(tail.as_bytes());
    body
}

#[cfg(test)]
mod tests;

mod edge;

use edge::Edge;
pub use edge::{EdgeAnswer, EdgeLimit};
