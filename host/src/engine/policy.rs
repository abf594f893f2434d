//! The guest's only door to the network: one origin, the key added here,
//! timeouts capped, each request at its key's pace.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{AUTHORIZATION, COOKIE, HeaderName, HeaderValue};
use http::uri::Scheme;
use url::Url;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use super::pacing::{Cut, KeyPace};

/// Makes ring the process's TLS provider for the guest's requests: wasi:http
/// builds its client configuration from the process default, and ring is the
/// one provider linked. Idempotent.
pub fn install_tls_provider() {
    // Err only means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Header carrying the Harness API key.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// Egress policy for one account.
pub struct EgressPolicy {
    scheme: Scheme,
    authority: String,
    api_key: HeaderValue,
    timeout_cap: Duration,
    /// The key's pace, shared by every pass on the key; none for [`EgressPolicy::deny_all`].
    pace: Option<Arc<KeyPace>>,
}

impl std::fmt::Debug for EgressPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressPolicy")
            .field(
                "origin",
                &format_args!("{}://{}", self.scheme, self.authority),
            )
            .field("timeout_cap", &self.timeout_cap)
            .finish_non_exhaustive()
    }
}

/// Why a policy could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The base URL has no usable origin.
    #[error("the API base `{0}` has no http(s) origin")]
    NoOrigin(String),
    /// The key is not a valid header value (its text is never printed).
    #[error("the API key contains characters that cannot be sent in an HTTP header")]
    KeyNotAHeader,
}

impl EgressPolicy {
    /// Allows exactly the origin (scheme, host, port) of `api_base`; every
    /// request waits for its slot in `pace`.
    pub fn new(
        api_base: &Url,
        api_key: &str,
        timeout_cap: Duration,
        pace: Arc<KeyPace>,
    ) -> Result<Self, PolicyError> {
        let scheme = match api_base.scheme() {
            "https" => Scheme::HTTPS,
            "http" => Scheme::HTTP,
            _ => return Err(PolicyError::NoOrigin(api_base.to_string())),
        };
        let host = api_base
            .host_str()
            .ok_or_else(|| PolicyError::NoOrigin(api_base.to_string()))?;
        let port = api_base
            .port_or_known_default()
            .ok_or_else(|| PolicyError::NoOrigin(api_base.to_string()))?;
        let mut api_key = HeaderValue::from_str(api_key).map_err(|_| PolicyError::KeyNotAHeader)?;
        api_key.set_sensitive(true);
        Ok(Self {
            scheme,
            authority: format!("{host}:{port}"),
            api_key,
            timeout_cap,
            pace: Some(pace),
        })
    }

    /// A sandbox with no way out, for calls that must make no request.
    pub fn deny_all() -> Self {
        Self {
            scheme: Scheme::HTTPS,
            authority: String::new(),
            api_key: HeaderValue::from_static(""),
            timeout_cap: Duration::ZERO,
            pace: None,
        }
    }

    /// Whether a request to `uri` may leave the sandbox.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme() else {
            return false;
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        *scheme == self.scheme && format!("{}:{port}", authority.host()) == self.authority
    }

    fn capped(&self, options: Option<RequestOptions>) -> RequestOptions {
        let cap =
            |t: Option<Duration>| Some(t.map_or(self.timeout_cap, |t| t.min(self.timeout_cap)));
        let options = options.unwrap_or_default();
        RequestOptions {
            connect_timeout: cap(options.connect_timeout),
            first_byte_timeout: cap(options.first_byte_timeout),
            between_bytes_timeout: cap(options.between_bytes_timeout),
        }
    }
}

/// A response body that must arrive whole within a deadline from its head:
/// the between-bytes timeout alone lets a body that trickles a byte at a
/// time hold a pass for as long as it trickles.
struct Deadline<B> {
    body: B,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B: http_body::Body<Error = HttpError> + Unpin> http_body::Body for Deadline<B> {
    type Data = B::Data;
    type Error = HttpError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Headers the guest may not set: the credential headers the host owns, plus wasmtime's defaults.
fn is_forbidden(name: &HeaderName) -> bool {
    *name == API_KEY_HEADER
        || *name == AUTHORIZATION
        || *name == COOKIE
        || DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

impl WasiHttpHooks for EgressPolicy {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        std::sync::Arc::new(is_forbidden)
    }

    fn is_supported_scheme(&mut self, scheme: &Scheme) -> bool {
        *scheme == self.scheme
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        drop(fut);
        if !self.allows(request.uri()) {
            tracing::warn!(
                stage = "egress",
                error_kind = "request_denied",
                uri = %request.uri(),
                "the component tried to reach a host outside its allow-list"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        request
            .headers_mut()
            .insert(API_KEY_HEADER, self.api_key.clone());
        let options = self.capped(options);
        let timeout = self.timeout_cap;
        let pace = self.pace.clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            if let Some(pace) = &pace {
                let now = Instant::now();
                let slot = pace.reserve(now);
                // A timer, even one already due, waits for the driver's next tick (a millisecond).
                if slot > now {
                    tokio::time::sleep_until(slot.into()).await;
                }
            }
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            if let Some(pace) = &pace {
                let refused = response.status() == http::StatusCode::TOO_MANY_REQUESTS;
                if let Some(cut) = pace.answered(refused, Instant::now()) {
                    log_cut(cut);
                }
            }
            let deadline = tokio::time::sleep(timeout);
            Ok((
                response.map(|body| {
                    Deadline {
                        body,
                        deadline: Box::pin(deadline),
                    }
                    .boxed_unsync()
                }),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// A cut changes the pace of every pass on the key: worth a warning. The
/// refusal itself is the component's to retry and report.
fn log_cut(cut: Cut) {
    tracing::warn!(
        stage = "pacing",
        error_kind = "rate_limited",
        requests_per_minute = %format_args!("{:.0}", cut.to),
        previous_requests_per_minute = %format_args!("{:.0}", cut.from),
        admitted_last_minute = cut.admitted,
        "Harness refused a request (429): every pass on this key now paces at requests_per_minute, 90% of \
         what Harness admitted in the last minute and at least half the former pace; another user of the key \
         takes part of its budget. From 20 seconds on it probes for more, every 10 seconds"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: &str) -> EgressPolicy {
        let base = Url::parse(base).unwrap();
        let pace = crate::engine::pacing::KeyPaces::default().pace(&base, "pat.a.b.c", 0);
        EgressPolicy::new(&base, "pat.a.b.c", Duration::from_secs(30), pace).unwrap()
    }

    #[test]
    fn only_the_exact_origin_is_allowed() {
        let p = policy("https://app.harness.io/gateway");
        for ok in [
            "https://app.harness.io/audit/api/audits/list",
            "https://app.harness.io:443/x",
        ] {
            assert!(p.allows(&ok.parse().unwrap()), "{ok}");
        }
        for denied in [
            "http://app.harness.io/x",
            "https://app.harness.io:8443/x",
            "https://evil.example/x",
            "https://app.harness.io.evil.example/x",
            "/relative",
        ] {
            assert!(!p.allows(&denied.parse().unwrap()), "{denied}");
        }
        let none = EgressPolicy::deny_all();
        for denied in [
            "https://app.harness.io/x",
            "http://127.0.0.1:4567/a",
            "https://localhost/",
        ] {
            assert!(!none.allows(&denied.parse().unwrap()), "{denied}");
        }
        let local = policy("http://127.0.0.1:4567");
        assert!(local.allows(&"http://127.0.0.1:4567/a".parse().unwrap()));
        assert!(!local.allows(&"http://127.0.0.1:4568/a".parse().unwrap()));
    }

    #[test]
    fn credential_headers_are_forbidden_to_the_guest() {
        let mut p = policy("https://app.harness.io");
        let filter = p.forbidden_header_filter();
        for name in ["x-api-key", "X-Api-Key", "authorization", "cookie", "host"] {
            assert!(
                filter(&HeaderName::from_bytes(name.as_bytes()).unwrap()),
                "{name}"
            );
        }
        assert!(!filter(&HeaderName::from_static("content-type")));
    }

    #[test]
    fn timeouts_are_capped_and_defaulted() {
        let p = policy("https://app.harness.io");
        let capped = p.capped(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            first_byte_timeout: Some(Duration::from_secs(600)),
            between_bytes_timeout: None,
        }));
        assert_eq!(capped.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(capped.first_byte_timeout, Some(Duration::from_secs(30)));
        assert_eq!(capped.between_bytes_timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        assert!(!format!("{:?}", policy("https://app.harness.io")).contains("pat.a.b.c"));
    }
}
