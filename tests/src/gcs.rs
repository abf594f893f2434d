//! The GCS side of the end-to-end tests: the `fake-gcs-server` emulator
//! (started by `scripts/with-gcs-emulator.sh`) read back directly, and a
//! proxy placed between the binary and the emulator that injects faults or,
//! like Google, refuses requests without a live bearer token.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use crate::google::TokenLedger;
use crate::mock::BrokenBody;
use crate::seed::Rng;
use crate::server::LoopbackServer;

/// reqwest is built without a TLS provider of its own (see the host's `gcs` module).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One stored object, as the JSON API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Object name.
    pub name: String,
    /// `contentType`.
    pub content_type: String,
    /// `contentEncoding`, empty when absent.
    pub content_encoding: String,
    /// Custom metadata.
    pub metadata: BTreeMap<String, String>,
}

/// The emulator named by `STORAGE_EMULATOR_HOST`.
#[derive(Debug)]
pub struct Emulator {
    base: String,
    http: reqwest::blocking::Client,
}

fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Emulator {
    /// The running emulator; panics with the fix when none is configured.
    pub fn from_env() -> Self {
        let base = std::env::var("STORAGE_EMULATOR_HOST").expect(
            "STORAGE_EMULATOR_HOST is not set: run the tests with scripts/test.sh, or wrap the command in \
             scripts/with-gcs-emulator.sh, which starts fake-gcs-server on 127.0.0.1",
        );
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "tests talk only to loopback; STORAGE_EMULATOR_HOST is {base}"
        );
        install_crypto_provider();
        Self {
            base,
            http: reqwest::blocking::Client::new(),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Creates a bucket with a name no other test uses.
    pub fn fresh_bucket(&self, tag: &str) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let response = self
            .http
            .post(format!("{}/storage/v1/b?project=harness-audit", self.base))
            .header(header::CONTENT_TYPE, "application/json")
            .body(serde_json::json!({ "name": name }).to_string())
            .send()
            .expect("creating a bucket");
        assert!(
            response.status().is_success(),
            "{}",
            response.text().unwrap()
        );
        name
    }

    /// Every object under `prefix`, sorted by name.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<StoredObject> {
        let mut objects = Vec::new();
        let mut page_token = String::new();
        for _ in 0..10_000 {
            let text = self
                .http
                .get(format!(
                    "{}/storage/v1/b/{bucket}/o?prefix={}&pageToken={}",
                    self.base,
                    encode(prefix),
                    encode(&page_token)
                ))
                .send()
                .and_then(reqwest::blocking::Response::text)
                .expect("listing objects");
            let listing: Value = serde_json::from_str(&text).expect("a JSON listing");
            for item in listing["items"].as_array().into_iter().flatten() {
                let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
                objects.push(StoredObject {
                    name: text("name"),
                    content_type: text("contentType"),
                    content_encoding: text("contentEncoding"),
                    metadata: item["metadata"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect(),
                });
            }
            match listing["nextPageToken"].as_str() {
                Some(token) if !token.is_empty() => page_token = token.to_owned(),
                _ => {
                    objects.sort_by(|a, b| a.name.cmp(&b.name));
                    return objects;
                }
            }
        }
        panic!("the listing never ended");
    }

    /// The stored bytes, exactly as written (no decompressive transcoding).
    pub fn download(&self, bucket: &str, name: &str) -> Option<Vec<u8>> {
        let response = self
            .http
            .get(format!(
                "{}/storage/v1/b/{bucket}/o/{}?alt=media",
                self.base,
                encode(name)
            ))
            .header(header::ACCEPT_ENCODING, "gzip")
            .send()
            .expect("downloading an object");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert!(response.status().is_success(), "{}", response.status());
        Some(response.bytes().expect("object bytes").to_vec())
    }

    /// Stores `bytes` at `name` unconditionally (test setup).
    pub fn upload(&self, bucket: &str, name: &str, bytes: &[u8]) {
        let response = self
            .http
            .post(format!(
                "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
                self.base,
                encode(name)
            ))
            .header(header::CONTENT_TYPE, "application/json")
            .body(bytes.to_vec())
            .send()
            .expect("uploading an object");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The object resource of `name` (its metadata as the JSON API gives it).
    pub fn resource(&self, bucket: &str, name: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!(
                "{}/storage/v1/b/{bucket}/o/{}",
                self.base,
                encode(name)
            ))
            .send()
            .expect("reading an object resource");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        let text = response.text().expect("an object resource");
        Some(serde_json::from_str(&text).expect("a JSON object resource"))
    }

    /// Deletes `name` (test setup, or tampering).
    pub fn delete(&self, bucket: &str, name: &str) {
        let response = self
            .http
            .delete(format!(
                "{}/storage/v1/b/{bucket}/o/{}",
                self.base,
                encode(name)
            ))
            .send()
            .expect("deleting an object");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Lets the lease beside `state_key` lapse, as its lifetime passing would
    /// for a holder that was killed or froze.
    pub fn let_lease_lapse(&self, bucket: &str, state_key: &str) {
        let lapsed = serde_json::json!({
            "holder": "a killed or frozen writer",
            "renewed_at": "2026-01-01T00:00:00.000Z",
            "expires_at_ms": 0,
        });
        self.upload(
            bucket,
            &format!("{state_key}.lease"),
            lapsed.to_string().as_bytes(),
        );
    }

    /// Every line of every data object under `prefix`, gunzipped where stored compressed.
    /// Every line of every object under `prefix`, as bytes (gzip undone).
    pub fn line_bytes(&self, bucket: &str, prefix: &str) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for object in self.list(bucket, prefix) {
            if !(object.name.ends_with(".jsonl") || object.name.ends_with(".jsonl.gz")) {
                continue;
            }
            let mut bytes = self.download(bucket, &object.name).expect("listed object");
            if object.content_encoding == "gzip" {
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut plain)
                    .expect("a gzip object decompresses");
                bytes = plain;
            }
            lines.extend(crate::stored::lines(&bytes));
        }
        lines
    }

    pub fn lines(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for object in self.list(bucket, prefix) {
            if !(object.name.ends_with(".jsonl") || object.name.ends_with(".jsonl.gz")) {
                continue;
            }
            let bytes = self.download(bucket, &object.name).expect("listed object");
            let text = if object.content_encoding == "gzip" {
                let mut text = String::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_string(&mut text)
                    .expect("a gzip object decompresses");
                text
            } else {
                String::from_utf8(bytes).expect("UTF-8 lines")
            };
            lines.extend(text.lines().map(str::to_owned));
        }
        lines
    }
}

/// What the proxy does to requests, by fraction of requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProxyFaults {
    /// 503 without forwarding.
    pub unavailable: f64,
    /// 429 without forwarding.
    pub throttled: f64,
    /// Forwarded, then the connection is reset: the write happened, the client never hears.
    pub lost_response: f64,
    /// Every request answered 403, as for a principal without the role.
    pub deny_all: bool,
}

struct ProxyState {
    upstream: String,
    faults: ProxyFaults,
    rng: Rng,
    injected: u64,
    client: reqwest::Client,
    auth: Option<Arc<TokenLedger>>,
    recorded: Vec<Recorded>,
}

/// A request the proxy saw, as Google would check it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it arrived.
    pub at: std::time::Instant,
    /// The method and path.
    pub request: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// How long its token had left when it arrived ([`FaultProxy::with_auth`] only).
    pub remaining: Option<std::time::Duration>,
    /// Why it was refused with 401 ([`FaultProxy::with_auth`] only).
    pub refused: Option<String>,
}

/// A proxy in front of the emulator that injects [`ProxyFaults`].
#[derive(Debug)]
pub struct FaultProxy {
    state: Arc<Mutex<ProxyState>>,
    server: LoopbackServer,
}

impl std::fmt::Debug for ProxyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyState")
            .field("injected", &self.injected)
            .finish_non_exhaustive()
    }
}

enum Decision {
    Unavailable,
    Throttled,
    Forward { lose_response: bool },
    Deny,
}

async fn proxy(State(state): State<Arc<Mutex<ProxyState>>>, request: Request) -> Response {
    let (decision, upstream, client) = {
        let mut s = state.lock().expect("proxy state");
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let bearer = authorization.and_then(|v| v.strip_prefix("Bearer "));
        let ledger = s.auth.clone();
        let refused = ledger.as_ref().and_then(|l| l.check(authorization));
        s.recorded.push(Recorded {
            at: std::time::Instant::now(),
            request: format!("{} {}", request.method(), request.uri().path()),
            token: bearer.map(str::to_owned),
            remaining: ledger.zip(bearer).and_then(|(l, t)| l.remaining(t)),
            refused: refused.clone(),
        });
        if refused.is_some() {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    r#"{"error":{"code":401,"message":"Invalid Credentials"}}"#,
                ))
                .expect("a valid response");
        }
        let f = s.faults;
        let roll = (s.rng.next_u64() % 1_000_000) as f64 / 1_000_000.0;
        let decision = if f.deny_all {
            Decision::Deny
        } else if roll < f.unavailable {
            Decision::Unavailable
        } else if roll < f.unavailable + f.throttled {
            Decision::Throttled
        } else {
            Decision::Forward {
                lose_response: roll < f.unavailable + f.throttled + f.lost_response,
            }
        };
        if !matches!(
            decision,
            Decision::Forward {
                lose_response: false
            }
        ) {
            s.injected += 1;
        }
        (decision, s.upstream.clone(), s.client.clone())
    };
    let reply = |status: StatusCode, message: &str| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::json!({"error": {"code": status.as_u16(), "message": message}})
                    .to_string(),
            ))
            .expect("a valid response")
    };
    let lose_response = match decision {
        Decision::Deny => {
            return reply(
                StatusCode::FORBIDDEN,
                "test-collector@project.iam.gserviceaccount.com does not have storage.objects.get access",
            );
        }
        Decision::Unavailable => return reply(StatusCode::SERVICE_UNAVAILABLE, "injected outage"),
        Decision::Throttled => return reply(StatusCode::TOO_MANY_REQUESTS, "injected rate limit"),
        Decision::Forward { lose_response } => lose_response,
    };
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = client.request(parts.method.clone(), format!("{upstream}{path}"));
    for name in [header::CONTENT_TYPE, header::ACCEPT_ENCODING] {
        if let Some(v) = parts.headers.get(&name) {
            forward = forward.header(name, v.clone());
        }
    }
    let upstream_response = match forward.body(body).send().await {
        Ok(r) => r,
        Err(e) => return reply(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let status = upstream_response.status();
    let mut response = Response::builder().status(status);
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        HeaderName::from_static("x-goog-generation"),
    ] {
        if let Some(v) = upstream_response.headers().get(&name) {
            response = response.header(name, v.clone());
        }
    }
    let bytes: Bytes = upstream_response.bytes().await.unwrap_or_default();
    if lose_response {
        return response
            .body(Body::new(BrokenBody))
            .expect("a valid response");
    }
    response.body(Body::from(bytes)).expect("a valid response")
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (the emulator's base URL).
    pub fn start(upstream: &str, faults: ProxyFaults) -> std::io::Result<Self> {
        Self::start_checking(upstream, faults, None)
    }

    /// A proxy that, like Google, answers 401 to any request without a live
    /// bearer token from `ledger`, and records every request's token.
    pub fn with_auth(upstream: &str, ledger: Arc<TokenLedger>) -> std::io::Result<Self> {
        Self::start_checking(upstream, ProxyFaults::default(), Some(ledger))
    }

    fn start_checking(
        upstream: &str,
        faults: ProxyFaults,
        auth: Option<Arc<TokenLedger>>,
    ) -> std::io::Result<Self> {
        install_crypto_provider();
        let state = Arc::new(Mutex::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            faults,
            rng: Rng::new(0x6c5),
            injected: 0,
            client: reqwest::Client::new(),
            auth,
            recorded: Vec::new(),
        }));
        let app = Router::new().fallback(proxy).with_state(state.clone());
        let server = LoopbackServer::start("gcs-proxy", app)?;
        Ok(Self { state, server })
    }

    /// `http://127.0.0.1:<port>`, for `STORAGE_EMULATOR_HOST`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Requests that were failed on purpose.
    pub fn injected(&self) -> u64 {
        self.state.lock().expect("proxy state").injected
    }

    /// Every request seen, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.lock().expect("proxy state").recorded.clone()
    }

    /// Changes the faults from now on.
    pub fn set_faults(&self, faults: ProxyFaults) {
        self.state.lock().expect("proxy state").faults = faults;
    }
}
