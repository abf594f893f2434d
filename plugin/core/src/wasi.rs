//! The core's effects on WASI 0.2 (HTTP, clocks, randomness), as the
//! `harness:audit` component performs them.

/// The generated WASI 0.2 imports, which the component's own bindings reuse.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "source-effects",
        generate_all,
    });
}

use bindings::wasi::clocks::{monotonic_clock, wall_clock};
use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    http_error_code,
};
use bindings::wasi::io::streams::StreamError;
use bindings::wasi::random::random;

use crate::error::UnusableKind;
use crate::page::{HttpResponse, MAX_BODY_BYTES};
use crate::pass::{Clock, Transport, TransportError};

const NANOS_PER_SEC: u64 = 1_000_000_000;
const CONNECT_TIMEOUT_SECS: u64 = 10;
const FIRST_BYTE_TIMEOUT_SECS: u64 = 60;
const BETWEEN_BYTES_TIMEOUT_SECS: u64 = 30;
/// `blocking-write-and-flush` accepts at most 4096 bytes per call.
const WRITE_CHUNK: usize = 4096;

/// The wall clock in epoch milliseconds.
pub fn now_ms() -> u64 {
    let now = wall_clock::now();
    now.seconds * 1000 + u64::from(now.nanoseconds) / 1_000_000
}

/// Time, sleeping and randomness through `wasi:clocks` and `wasi:random`.
#[derive(Debug, Default)]
pub struct WasiClock;

impl Clock for WasiClock {
    fn now_ms(&mut self) -> u64 {
        now_ms()
    }

    fn sleep_ms(&mut self, ms: u64) {
        monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
    }

    fn random_u64(&mut self) -> u64 {
        random::get_random_u64()
    }
}

/// Requests through `wasi:http/outgoing-handler`.
#[derive(Default)]
pub struct WasiHttp {
    api_key: Option<String>,
}

impl WasiHttp {
    /// Requests that carry no credential: the component's case, where the
    /// host adds `x-api-key` and enforces the origin.
    pub fn without_credentials() -> Self {
        Self::default()
    }

    /// Requests that carry `x-api-key` themselves: a stock runtime's case,
    /// which has no way to inject it, so the adapter passes it to `configure`.
    pub fn with_api_key(api_key: String) -> Self {
        Self {
            api_key: Some(api_key),
        }
    }

    fn send(
        &self,
        method: &Method,
        url: &str,
        body: &[u8],
    ) -> Result<HttpResponse, TransportError> {
        send(method, url, body, self.api_key.as_deref())
    }
}

impl std::fmt::Debug for WasiHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiHttp")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Transport for WasiHttp {
    fn post_json(&mut self, url: &str, body: &[u8]) -> Result<HttpResponse, TransportError> {
        self.send(&Method::Post, url, body)
    }

    fn get(&mut self, url: &str) -> Result<HttpResponse, TransportError> {
        self.send(&Method::Get, url, &[])
    }
}

fn send(
    method: &Method,
    url: &str,
    body: &[u8],
    api_key: Option<&str>,
) -> Result<HttpResponse, TransportError> {
    let mut answer = request(method, url, body, api_key).map_err(TransportError::Failed)?;
    match read_all(&answer.1) {
        Ok(body) => {
            let _trailers = IncomingBody::finish(answer.1);
            answer.0.body = body;
            Ok(answer.0)
        }
        Err(Unread::Failed(m)) => Err(TransportError::Failed(m)),
        Err(Unread::Answer(kind, read, detail)) => Err(TransportError::Body(Box::new(
            answer.0.unusable(&read, kind, detail),
        ))),
    }
}

/// Sends the request; the answer's head, and its body still to be read.
fn request(
    method: &Method,
    url: &str,
    body: &[u8],
    api_key: Option<&str>,
) -> Result<(HttpResponse, IncomingBody), String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some(("http", rest)) => (Scheme::Http, rest),
        _ => return Err(format!("unsupported URL `{url}`")),
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));

    let mut headers = vec![
        ("content-type".to_owned(), b"application/json".to_vec()),
        ("accept".to_owned(), b"application/json".to_vec()),
    ];
    if let Some(key) = api_key {
        headers.push(("x-api-key".to_owned(), key.as_bytes().to_vec()));
    }
    // The error names the header, never its value: the key must not leak.
    let headers = Fields::from_list(&headers).map_err(|e| format!("building headers: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let bad = |what: &str| format!("the host refused the request's {what} for `{url}`");
    request.set_method(method).map_err(|()| bad("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| bad("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| bad("path"))?;
    let outgoing = request.body().map_err(|()| bad("body"))?;

    let options = RequestOptions::new();
    // The host caps these further; setting them keeps a slow server from
    // holding a poll for the host's full limit.
    let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_SECS * NANOS_PER_SEC));
    let _ = options.set_first_byte_timeout(Some(FIRST_BYTE_TIMEOUT_SECS * NANOS_PER_SEC));
    let _ = options.set_between_bytes_timeout(Some(BETWEEN_BYTES_TIMEOUT_SECS * NANOS_PER_SEC));

    let pending = outgoing_handler::handle(request, Some(options)).map_err(describe)?;
    let sent = write_body(outgoing, body);
    pending.subscribe().block();
    // When the connection fails, the body stream closes first; the response
    // future carries the cause (refused, timed out, denied), so prefer it.
    let response = pending
        .get()
        .ok_or("the response future was not ready after blocking")?
        .map_err(|()| "the response was already taken")?
        .map_err(describe)?;
    sent?;
    let headers = response.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .first()
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
    };
    let head = HttpResponse {
        status: response.status(),
        body: Vec::new(),
        retry_after_secs: header("retry-after").and_then(|v| v.parse().ok()),
        content_type: header("content-type"),
        content_encoding: header("content-encoding"),
    };
    drop(headers);
    let incoming = response
        .consume()
        .map_err(|()| "the response body was already taken")?;
    Ok((head, incoming))
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    {
        let stream = outgoing
            .write()
            .map_err(|()| "the request body stream was already taken")?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("sending the body: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(describe)
}

/// Why a body was not read whole.
enum Unread {
    /// The connection failed: a transport failure.
    Failed(String),
    /// The answer itself is unusable: its kind, what was read, and why.
    Answer(UnusableKind, Vec<u8>, String),
}

fn read_all(incoming: &IncomingBody) -> Result<Vec<u8>, Unread> {
    let stream = incoming
        .stream()
        .map_err(|()| Unread::Failed("the response stream was already taken".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                // Most bodies arrive in one chunk: keep it rather than copy it.
                if body.is_empty() {
                    body = chunk;
                } else {
                    body.extend_from_slice(&chunk);
                }
                // Read as a stream and stopped at the bound, never buffered whole.
                if body.len() > MAX_BODY_BYTES {
                    let detail = format!(
                        "the body is larger than {MAX_BODY_BYTES} bytes, the most the component reads"
                    );
                    return Err(Unread::Answer(UnusableKind::TooLarge, body, detail));
                }
            }
            Err(StreamError::Closed) => return Ok(body),
            Err(StreamError::LastOperationFailed(e)) => {
                let read = body.len();
                // Hosts report a body that stopped arriving in their own
                // terms: an error code, or only its words.
                let timed_out =
                    matches!(http_error_code(&e), Some(ErrorCode::ConnectionReadTimeout))
                        || e.to_debug_string().to_ascii_lowercase().contains("timeout");
                if timed_out {
                    let detail = format!(
                        "the body stopped arriving after {read} bytes: the host's deadline for the answer passed"
                    );
                    return Err(Unread::Answer(UnusableKind::SlowBody, body, detail));
                }
                return Err(Unread::Failed(format!(
                    "reading the response body failed after {read} bytes: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

fn describe(code: ErrorCode) -> String {
    match code {
        ErrorCode::HttpRequestDenied => {
            "the host's egress policy denied the request (only the configured API origin is allowed)".into()
        }
        other => format!("{other:?}"),
    }
}
