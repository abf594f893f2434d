//! The one module that talks to Google Cloud Storage, through its JSON API.
//!
//! Every write is a single multipart upload carrying an `ifGenerationMatch`
//! precondition, so nothing is ever overwritten by accident: data objects are
//! created with generation 0 and the checkpoint is replaced only if it still
//! is the generation last read. The media part carries the content type
//! itself, which is where `fake-gcs-server` reads it from. Rate limits, 5xx and
//! network errors are retried with jittered exponential backoff.

mod auth;
mod sink;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::config::Retention;
use crate::pause_points::{self, SplitBody, Step};
use crate::random;

pub use auth::Credentials;
pub use sink::GcsSink;

/// OAuth scope for reading and writing objects.
pub const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// The role the README asks for: create, read, replace and delete objects.
pub const REQUIRED_ROLE: &str = "roles/storage.objectUser";
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Characters of an error body quoted in messages.
const ERROR_EXCERPT: usize = 300;

/// A failed GCS call. Messages name the object and the fix, never a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcsError {
    /// No credential source produced credentials.
    #[error(
        "no Google credentials found: {0}. Fix: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key or \
         workload identity federation file, or run on Cloud Run / GKE / GCE with a service account that has \
         {REQUIRED_ROLE} on the bucket (or set STORAGE_EMULATOR_HOST to use an emulator)"
    )]
    NoCredentials(String),
    /// A credential source was found but is unusable.
    #[error("Google credentials unusable: {0}")]
    Credentials(String),
    /// The object's generation is not the one the write was conditioned on.
    #[error("{url} was changed by another writer (HTTP 412, precondition failed)")]
    PreconditionFailed {
        /// `gs://bucket/object`.
        url: String,
    },
    /// HTTP 401.
    #[error(
        "GCS rejected the credentials of {principal} (HTTP 401) while {action} {url}: {message}. Fix: renew or replace them"
    )]
    Unauthorized {
        /// Who the request was made as.
        principal: String,
        /// What was being done.
        action: &'static str,
        /// `gs://bucket/object`.
        url: String,
        /// The server's message.
        message: String,
    },
    /// HTTP 403.
    #[error(
        "GCS denied {principal} (HTTP 403) while {action} {url}: {message}. Fix: grant it {REQUIRED_ROLE} on gs://{bucket}"
    )]
    Forbidden {
        /// Who the request was made as.
        principal: String,
        /// What was being done.
        action: &'static str,
        /// `gs://bucket/object`.
        url: String,
        /// The bucket.
        bucket: String,
        /// The server's message.
        message: String,
    },
    /// HTTP 404 on a write: the bucket is missing.
    #[error(
        "bucket gs://{bucket} does not exist (HTTP 404 while {action}). Fix: create it, or correct GCS_BUCKET"
    )]
    BucketNotFound {
        /// The bucket.
        bucket: String,
        /// What was being done.
        action: &'static str,
    },
    /// Any other status, after retries where retrying made sense.
    #[error("GCS answered HTTP {status} while {action} {url}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// What was being done.
        action: &'static str,
        /// `gs://bucket/object`.
        url: String,
        /// The server's message.
        message: String,
    },
    /// The request never got an answer, after retries.
    #[error("GCS could not be reached while {action} {url}: {message}")]
    Transport {
        /// What was being done.
        action: &'static str,
        /// `gs://bucket/object`.
        url: String,
        /// The client's message.
        message: String,
    },
}

/// How failed requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff ceiling; it doubles per retry, up to 30 s.
    pub base: Duration,
    /// Timeout of each attempt.
    pub timeout: Duration,
}

/// An object's generation and custom metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The generation, for preconditions.
    pub generation: i64,
    /// Custom metadata.
    pub metadata: BTreeMap<String, String>,
}

/// What to upload.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// The bytes stored.
    pub body: &'a [u8],
    /// `contentType`.
    pub content_type: &'a str,
    /// `contentEncoding`, e.g. `gzip`.
    pub content_encoding: Option<&'a str>,
    /// Custom metadata.
    pub metadata: &'a BTreeMap<String, String>,
    /// The crash tests' step to mark once half the request is sent.
    pub midway: Option<Step>,
    /// Object retention to set, for buckets with Object Retention Lock.
    pub retention: Option<Retention>,
}

/// The object resource's `retention` field for an upload at `now_ms`.
fn retention_resource(retention: Retention, now_ms: u64) -> serde_json::Value {
    let until = now_ms + u64::from(retention.days) * 86_400_000;
    serde_json::json!({
        "mode": if retention.locked { "Locked" } else { "Unlocked" },
        "retainUntilTime": crate::time::rfc3339_ms(until),
    })
}

impl<'a> Upload<'a> {
    /// A JSON document (checkpoints, leases).
    pub fn json(body: &'a [u8], metadata: &'a BTreeMap<String, String>) -> Self {
        Self {
            body,
            content_type: "application/json",
            content_encoding: None,
            metadata,
            midway: None,
            retention: None,
        }
    }
}

/// A bucket, reached with resolved credentials.
#[derive(Debug)]
pub struct GcsClient {
    http: reqwest::Client,
    endpoint: String,
    bucket: String,
    credentials: Credentials,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    #[serde(default)]
    items: Vec<ListedObject>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ListedObject {
    name: String,
}

#[derive(Deserialize)]
struct ObjectResource {
    generation: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// Makes ring the process's TLS provider: reqwest and gcloud-auth are built
/// without one of their own. Idempotent.
pub(crate) fn install_crypto_provider() {
    // Err only means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How one attempt ended, before the retry decision.
enum Attempt {
    Done(reqwest::Response),
    Retry(String),
}

impl GcsClient {
    /// Resolves credentials (the emulator when `STORAGE_EMULATOR_HOST` is set,
    /// otherwise Application Default Credentials for the JSON API at
    /// `endpoint`) for `bucket`.
    pub async fn connect(
        bucket: &str,
        endpoint: &str,
        retry: RetryPolicy,
    ) -> Result<Self, GcsError> {
        let credentials = Credentials::resolve(endpoint, |name| std::env::var(name).ok()).await?;
        Ok(Self::new(bucket, credentials, retry))
    }

    /// A client for `bucket` with the given credentials.
    pub fn new(bucket: &str, credentials: Credentials, retry: RetryPolicy) -> Self {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            .connect_timeout(retry.timeout.min(Duration::from_secs(10)))
            .build()
            .expect("a reqwest client with timeouts always builds");
        Self {
            http,
            endpoint: credentials.endpoint().trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            credentials,
            retry,
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Which credentials are used, for the start-up log line.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// `gs://bucket/object`.
    pub fn url(&self, object: &str) -> String {
        format!("gs://{}/{object}", self.bucket)
    }

    /// Creates or replaces `object` if its generation is `if_generation_match`
    /// (0: only if absent); returns the new generation.
    pub async fn insert(
        &self,
        object: &str,
        upload: Upload<'_>,
        if_generation_match: i64,
    ) -> Result<i64, GcsError> {
        const ACTION: &str = "writing";
        let mut resource = serde_json::json!({
            "name": object,
            "contentType": upload.content_type,
            "metadata": upload.metadata,
        });
        if let Some(encoding) = upload.content_encoding {
            resource["contentEncoding"] = encoding.into();
        }
        if let Some(retention) = upload.retention {
            resource["retention"] = retention_resource(retention, crate::time::now_ms());
        }
        let (boundary, body) = multipart_related(&resource.to_string(), upload);
        let body = Bytes::from(body);
        let midway = upload.midway.filter(|step| pause_points::is_armed(*step));
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=multipart&ifGenerationMatch={if_generation_match}",
            self.endpoint,
            encode(&self.bucket)
        );
        let response = self
            .send(ACTION, object, || {
                self.http
                    .post(&url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/related; boundary={boundary}"),
                    )
                    .body(match midway {
                        Some(step) => reqwest::Body::wrap(SplitBody::new(body.clone(), step)),
                        None => body.clone().into(),
                    })
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(self.resource(ACTION, object, response).await?.0),
            StatusCode::NOT_FOUND => Err(GcsError::BucketNotFound {
                bucket: self.bucket.clone(),
                action: ACTION,
            }),
            _ => Err(self.failure(ACTION, object, response).await),
        }
    }

    /// The object's generation and metadata; `None` if it does not exist.
    pub async fn info(&self, object: &str) -> Result<Option<ObjectInfo>, GcsError> {
        const ACTION: &str = "reading the metadata of";
        let url = self.object_url(object);
        let response = self.send(ACTION, object, || self.http.get(&url)).await?;
        match response.status() {
            s if s.is_success() => {
                let (generation, metadata) = self.resource(ACTION, object, response).await?;
                Ok(Some(ObjectInfo {
                    generation,
                    metadata,
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.failure(ACTION, object, response).await),
        }
    }

    /// The object's content and generation; `None` if it does not exist.
    pub async fn read(&self, object: &str) -> Result<Option<(Vec<u8>, i64)>, GcsError> {
        const ACTION: &str = "reading";
        let url = format!("{}?alt=media", self.object_url(object));
        let response = self.send(ACTION, object, || self.http.get(&url)).await?;
        match response.status() {
            s if s.is_success() => {
                let generation = response
                    .headers()
                    .get("x-goog-generation")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| GcsError::Status {
                        status: s.as_u16(),
                        action: ACTION,
                        url: self.url(object),
                        message: "the response has no x-goog-generation header".into(),
                    })?;
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| self.transport(ACTION, object, &e))?;
                Ok(Some((bytes.to_vec(), generation)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.failure(ACTION, object, response).await),
        }
    }

    /// Names of the objects under `prefix`, in the order GCS lists them (by name).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, GcsError> {
        const ACTION: &str = "listing";
        let mut names = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/storage/v1/b/{}/o?prefix={}&fields=items(name),nextPageToken",
                self.endpoint,
                encode(&self.bucket),
                encode(prefix)
            );
            if let Some(token) = &page {
                let _ = write!(url, "&pageToken={}", encode(token));
            }
            let response = self.send(ACTION, prefix, || self.http.get(&url)).await?;
            if !response.status().is_success() {
                return Err(self.failure(ACTION, prefix, response).await);
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|e| self.transport(ACTION, prefix, &e))?;
            let listing: Listing =
                serde_json::from_slice(&bytes).map_err(|e| GcsError::Status {
                    status: 200,
                    action: ACTION,
                    url: self.url(prefix),
                    message: format!("unusable listing: {e}"),
                })?;
            names.extend(listing.items.into_iter().map(|o| o.name));
            match listing.next_page_token {
                Some(token) if !token.is_empty() => page = Some(token),
                _ => return Ok(names),
            }
        }
    }

    /// Deletes the object if its generation is `if_generation_match`; an
    /// object already gone counts as deleted.
    pub async fn delete(&self, object: &str, if_generation_match: i64) -> Result<(), GcsError> {
        const ACTION: &str = "deleting";
        let url = format!(
            "{}?ifGenerationMatch={if_generation_match}",
            self.object_url(object)
        );
        let response = self.send(ACTION, object, || self.http.delete(&url)).await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.failure(ACTION, object, response).await),
        }
    }

    fn object_url(&self, object: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            encode(&self.bucket),
            encode(object)
        )
    }

    /// Sends with retries; returns the first response that is not worth retrying.
    async fn send(
        &self,
        action: &'static str,
        object: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GcsError> {
        let mut last = String::new();
        for attempt in 0..=self.retry.max_retries {
            if attempt > 0 {
                let delay = backoff(self.retry.base, attempt);
                tracing::warn!(
                    stage = "storage",
                    object = %self.url(object),
                    attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %last,
                    "retrying a GCS request"
                );
                tokio::time::sleep(delay).await;
            }
            let mut builder = request();
            if let Some(token) = self.credentials.authorization().await? {
                builder = builder.header(reqwest::header::AUTHORIZATION, token);
            }
            let outcome = match builder.send().await {
                Ok(r) if is_retryable(r.status()) => Attempt::Retry(format!("HTTP {}", r.status())),
                Ok(r) => Attempt::Done(r),
                Err(e) => Attempt::Retry(describe_transport(&e)),
            };
            match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Retry(why) => last = why,
            }
        }
        Err(GcsError::Transport {
            action,
            url: self.url(object),
            message: format!("{last} (gave up after {} retries)", self.retry.max_retries),
        })
    }

    async fn resource(
        &self,
        action: &'static str,
        object: &str,
        response: reqwest::Response,
    ) -> Result<(i64, BTreeMap<String, String>), GcsError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport(action, object, &e))?;
        let unusable = |why: String| GcsError::Status {
            status: 200,
            action,
            url: self.url(object),
            message: format!("unusable object resource: {why}"),
        };
        let resource: ObjectResource =
            serde_json::from_slice(&bytes).map_err(|e| unusable(e.to_string()))?;
        let generation = resource
            .generation
            .parse()
            .map_err(|_| unusable(format!("generation `{}`", resource.generation)))?;
        Ok((generation, resource.metadata))
    }

    async fn failure(
        &self,
        action: &'static str,
        object: &str,
        response: reqwest::Response,
    ) -> GcsError {
        let status = response.status();
        let message = error_message(&response.bytes().await.unwrap_or_default());
        let url = self.url(object);
        let principal = self.credentials.principal().to_owned();
        match status {
            StatusCode::PRECONDITION_FAILED => GcsError::PreconditionFailed { url },
            StatusCode::UNAUTHORIZED => GcsError::Unauthorized {
                principal,
                action,
                url,
                message,
            },
            StatusCode::FORBIDDEN => GcsError::Forbidden {
                principal,
                action,
                url,
                bucket: self.bucket.clone(),
                message,
            },
            _ => GcsError::Status {
                status: status.as_u16(),
                action,
                url,
                message,
            },
        }
    }

    fn transport(&self, action: &'static str, object: &str, e: &reqwest::Error) -> GcsError {
        GcsError::Transport {
            action,
            url: self.url(object),
            message: describe_transport(e),
        }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Full jitter: a uniform wait below `base * 2^(attempt-1)`, capped.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << (attempt - 1).min(16))
        .min(MAX_BACKOFF);
    random::up_to(ceiling)
}

fn describe_transport(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut message = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(message, ": {s}");
        source = s.source();
    }
    message
}

/// The `error.message` of a JSON API error body, or an excerpt of the body.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<String> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
    let text = parsed.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let mut excerpt: String = text.chars().take(ERROR_EXCERPT).collect();
    if excerpt.is_empty() {
        excerpt.push_str("(empty body)");
    }
    excerpt
}

/// Percent-encodes everything but RFC 3986 unreserved characters, as object
/// names in JSON API paths require (`/` included).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A `multipart/related` body: the JSON resource, then the media with its own
/// content type. The boundary is chosen so it occurs in neither part.
fn multipart_related(resource: &str, upload: Upload<'_>) -> (String, Vec<u8>) {
    let boundary = loop {
        let candidate = format!("harness-audit-{:016x}{:016x}", random::u64(), random::u64());
        let needle = candidate.as_bytes();
        if !upload.body.windows(needle.len()).any(|w| w == needle) {
            break candidate;
        }
    };
    let mut body = Vec::with_capacity(upload.body.len() + resource.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{resource}\r\n--{boundary}\r\ncontent-type: {}\r\n\r\n",
            upload.content_type
        )
        .as_bytes(),
    );
    body.extend_from_slice(upload.body);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_encoded_as_one_path_segment() {
        assert_eq!(
            encode("harness/audit/2025/06/10/a b+c.jsonl"),
            "harness%2Faudit%2F2025%2F06%2F10%2Fa%20b%2Bc.jsonl"
        );
    }

    #[test]
    fn multipart_bodies_carry_both_parts_and_a_fresh_boundary() {
        let metadata = BTreeMap::new();
        let upload = Upload {
            body: b"{\"a\":1}\n",
            content_type: "application/x-ndjson",
            content_encoding: None,
            metadata: &metadata,
            midway: None,
            retention: None,
        };
        let (boundary, body) = multipart_related("{\"name\":\"x\"}", upload);
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\ncontent-type: application/json")));
        assert!(text.contains(&format!(
            "--{boundary}\r\ncontent-type: application/x-ndjson\r\n\r\n{{\"a\":1}}\n\r\n--{boundary}--\r\n"
        )));
    }

    #[test]
    fn backoff_stays_below_its_doubling_ceiling() {
        let base = Duration::from_millis(100);
        for attempt in 1..=12 {
            let ceiling = (base * 2u32.pow(attempt - 1)).min(MAX_BACKOFF);
            for _ in 0..50 {
                assert!(backoff(base, attempt) <= ceiling);
            }
        }
    }

    #[test]
    fn error_bodies_are_reduced_to_their_message() {
        assert_eq!(
            error_message(br#"{"error":{"code":403,"message":"x@y does not have storage.objects.create access"}}"#),
            "x@y does not have storage.objects.create access"
        );
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(error_message(&[b'x'; 1000]).len(), ERROR_EXCERPT);
    }

    #[tokio::test]
    async fn https_clients_build_with_the_single_tls_provider() {
        let credentials = Credentials::resolve("https://storage.googleapis.com", |name| {
            (name == "STORAGE_EMULATOR_HOST").then(|| "https://127.0.0.1:1".to_owned())
        })
        .await
        .unwrap();
        let retry = RetryPolicy {
            max_retries: 0,
            base: Duration::from_millis(1),
            timeout: Duration::from_secs(1),
        };
        let client = GcsClient::new("b", credentials, retry);
        assert!(matches!(
            client.info("x").await,
            Err(GcsError::Transport { .. })
        ));
        let roots = rustls::RootCertStore::empty();
        let _ = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 412] {
            assert!(!is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
