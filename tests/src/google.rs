//! Local servers that act like Google's credential endpoints, one per flow,
//! each checking what Google checks before it issues an access token:
//!
//! - the OAuth token endpoint (`token_uri` of a service-account key): a JWT
//!   bearer assertion signed RS256 by the key, issued by its `client_email`,
//!   for this endpoint as audience and the storage scope; and the refresh-token
//!   grant of gcloud's application default credentials file;
//! - STS (`token_url` of a workload identity federation file): a token
//!   exchange of the subject token for the pool's audience;
//! - the metadata server (`GCE_METADATA_HOST`): `Metadata-Flavor: Google`.
//!
//! Every token issued is kept in a [`TokenLedger`] with its expiry, so the
//! storage proxy ([`crate::gcs::FaultProxy::with_auth`]) can refuse any
//! request whose bearer token was not issued or has expired.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::server::LoopbackServer;

/// The scope the collector must ask for.
pub const STORAGE_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// The service account every flow stands for.
pub const SERVICE_ACCOUNT: &str = "collector@harness-audit-test.iam.gserviceaccount.com";
/// The workload identity pool provider the federation file names.
pub const WIF_AUDIENCE: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/local";

/// Which flow issued a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// JWT bearer assertion signed by a service-account key.
    ServiceAccountKey,
    /// Refresh token of gcloud's application default credentials.
    AuthorizedUser,
    /// STS token exchange (workload identity federation).
    Federation,
    /// The metadata server's default service account.
    Metadata,
}

/// One access token issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Which flow issued it.
    pub flow: Flow,
    /// When it stops being accepted.
    pub expires: Instant,
}

/// Every token issued, shared with the storage proxy that checks them.
#[derive(Debug, Default)]
pub struct TokenLedger {
    tokens: Mutex<HashMap<String, Issued>>,
    refused: Mutex<Vec<String>>,
}

impl TokenLedger {
    /// Why `authorization` (the header's value) is not a live token; `None` when it is.
    pub fn check(&self, authorization: Option<&str>) -> Option<String> {
        let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) else {
            return Some(format!("no bearer token ({authorization:?})"));
        };
        let tokens = self.tokens.lock().expect("ledger");
        match tokens.get(token) {
            None => Some("a token this issuer never issued".into()),
            Some(issued) if issued.expires <= Instant::now() => {
                Some(format!("a token of {:?} that has expired", issued.flow))
            }
            Some(_) => None,
        }
    }

    /// How long `token` has left, if it was issued.
    pub fn remaining(&self, token: &str) -> Option<Duration> {
        let tokens = self.tokens.lock().expect("ledger");
        tokens
            .get(token)
            .map(|t| t.expires.saturating_duration_since(Instant::now()))
    }

    /// The token issued as `token`, if any.
    pub fn get(&self, token: &str) -> Option<Issued> {
        self.tokens.lock().expect("ledger").get(token).cloned()
    }

    /// Every access token issued so far.
    pub fn issued(&self) -> Vec<(String, Issued)> {
        let tokens = self.tokens.lock().expect("ledger");
        tokens.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Token requests refused, with the reason.
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().expect("ledger").clone()
    }
}

/// A service-account key pair made with `openssl` for this test run.
#[derive(Debug)]
pub struct TestKey {
    /// PKCS#8 PEM private key, as a key file holds it.
    pub private_pem: String,
    /// SPKI PEM public key, for the token endpoint.
    pub public_pem: String,
}

impl TestKey {
    /// A fresh 2048-bit RSA key.
    pub fn generate(dir: &Path) -> Self {
        let private = dir.join("sa-key.pem");
        let public = dir.join("sa-key.pub.pem");
        let run = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl is needed to make a test service-account key");
            assert!(status.status.success(), "openssl {args:?} failed");
        };
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            private.to_str().expect("UTF-8 path"),
        ]);
        run(&[
            "pkey",
            "-in",
            private.to_str().expect("UTF-8 path"),
            "-pubout",
            "-out",
            public.to_str().expect("UTF-8 path"),
        ]);
        Self {
            private_pem: std::fs::read_to_string(&private).expect("private key"),
            public_pem: std::fs::read_to_string(&public).expect("public key"),
        }
    }

    /// The base64 body of the private key, which must never appear in any output.
    pub fn secret_line(&self) -> &str {
        self.private_pem
            .lines()
            .find(|l| l.len() >= 60 && !l.starts_with("-----"))
            .expect("a PEM body line")
    }
}

/// What the servers accept and how long their tokens live.
#[derive(Debug, Clone)]
pub struct GoogleSpec {
    /// The service account's public key.
    pub public_pem: String,
    /// The refresh grant's client id, client secret and refresh token.
    pub refresh: (String, String, String),
    /// The subject token STS accepts.
    pub subject_token: String,
    /// Lifetime of each access token (`expires_in`).
    pub lifetime: Duration,
}

struct Google {
    spec: GoogleSpec,
    base: Mutex<String>,
    ledger: Arc<TokenLedger>,
    counter: AtomicU64,
}

impl Google {
    fn issue(&self, flow: Flow) -> serde_json::Value {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let token = format!(
            "ya29.test-{flow:?}-{n}-{:x}",
            crate::seed::Rng::new(n).next_u64()
        );
        self.ledger.tokens.lock().expect("ledger").insert(
            token.clone(),
            Issued {
                flow,
                expires: Instant::now() + self.spec.lifetime,
            },
        );
        json!({
            "access_token": token,
            "expires_in": self.spec.lifetime.as_secs(),
            "token_type": "Bearer",
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        })
    }

    fn refuse(&self, why: String) -> Response {
        self.ledger
            .refused
            .lock()
            .expect("ledger")
            .push(why.clone());
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    }
}

/// A token request's fields: Google's token endpoint takes a form or, as
/// gcloud-auth sends the refresh grant, a JSON object.
fn form(body: &Bytes) -> HashMap<String, String> {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        return fields
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
            .collect();
    }
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    scope: String,
    iat: u64,
    exp: u64,
}

/// The OAuth endpoint: JWT bearer assertions and refresh tokens.
async fn token(State(google): State<Arc<Google>>, body: Bytes) -> Response {
    let form = form(&body);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    match field("grant_type") {
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let audience = format!("{}/token", google.base.lock().expect("base"));
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[audience]);
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(google.spec.public_pem.as_bytes())
                .expect("the test key's public half");
            let claims = match jsonwebtoken::decode::<Claims>(field("assertion"), &key, &validation)
            {
                Ok(data) => data.claims,
                Err(e) => return google.refuse(format!("assertion rejected: {e}")),
            };
            if claims.iss != SERVICE_ACCOUNT {
                return google.refuse(format!("assertion issued by {}", claims.iss));
            }
            if !claims.scope.split(' ').any(|s| s == STORAGE_SCOPE) {
                return google.refuse(format!("scope {} lacks storage", claims.scope));
            }
            if claims.exp.saturating_sub(claims.iat) > 3600 {
                return google.refuse("assertion valid for more than an hour".into());
            }
            axum::Json(google.issue(Flow::ServiceAccountKey)).into_response()
        }
        "refresh_token" => {
            let (id, secret, refresh) = &google.spec.refresh;
            if field("client_id") != id
                || field("client_secret") != secret
                || field("refresh_token") != refresh
            {
                return google.refuse("unknown client or refresh token".into());
            }
            axum::Json(google.issue(Flow::AuthorizedUser)).into_response()
        }
        other => google.refuse(format!("grant_type `{other}`")),
    }
}

/// STS: the token exchange of workload identity federation.
async fn sts(State(google): State<Arc<Google>>, body: Bytes) -> Response {
    let form = form(&body);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let problems = [
        (
            field("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange",
            "grant_type",
        ),
        (field("audience") == WIF_AUDIENCE, "audience"),
        (
            field("subject_token") == google.spec.subject_token,
            "subject_token",
        ),
        (
            field("subject_token_type") == "urn:ietf:params:oauth:token-type:jwt",
            "subject_token_type",
        ),
        (
            field("scope").split(' ').any(|s| s == STORAGE_SCOPE),
            "scope",
        ),
    ];
    if let Some((_, what)) = problems.iter().find(|(ok, _)| !ok) {
        return google.refuse(format!("token exchange with a wrong {what}"));
    }
    axum::Json(google.issue(Flow::Federation)).into_response()
}

fn metadata_flavored(headers: &HeaderMap) -> bool {
    headers
        .get("metadata-flavor")
        .is_some_and(|v| v.as_bytes() == b"Google")
}

async fn metadata_email(headers: HeaderMap) -> Response {
    if !metadata_flavored(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header",
        )
            .into_response();
    }
    SERVICE_ACCOUNT.into_response()
}

#[derive(Deserialize)]
struct ScopesQuery {
    scopes: Option<String>,
}

async fn metadata_token(
    State(google): State<Arc<Google>>,
    headers: HeaderMap,
    Query(query): Query<ScopesQuery>,
) -> Response {
    if !metadata_flavored(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header",
        )
            .into_response();
    }
    let scopes = query.scopes.unwrap_or_default();
    if !scopes.split(',').any(|s| s == STORAGE_SCOPE) {
        return google.refuse(format!("metadata token for scopes `{scopes}`"));
    }
    axum::Json(google.issue(Flow::Metadata)).into_response()
}

/// The token endpoint, STS and the metadata server, on one loopback port.
#[derive(Debug)]
pub struct GoogleServers {
    ledger: Arc<TokenLedger>,
    server: LoopbackServer,
}

impl GoogleServers {
    /// Starts the servers.
    pub fn start(spec: GoogleSpec) -> std::io::Result<Self> {
        let ledger = Arc::new(TokenLedger::default());
        let google = Arc::new(Google {
            spec,
            base: Mutex::new(String::new()),
            ledger: ledger.clone(),
            counter: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/v1/token", post(sts))
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/email",
                get(metadata_email),
            )
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/token",
                get(metadata_token),
            )
            .with_state(google.clone());
        let server = LoopbackServer::start("google", app)?;
        *google.base.lock().expect("base") = format!("http://{}", server.addr());
        Ok(Self { ledger, server })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `127.0.0.1:<port>`, for `GCE_METADATA_HOST`.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// The tokens issued.
    pub fn ledger(&self) -> Arc<TokenLedger> {
        self.ledger.clone()
    }
}

/// The credential files of each flow, written under one directory.
#[derive(Debug)]
pub struct CredentialFiles {
    /// A service-account key file whose `token_uri` is the local endpoint.
    pub service_account: PathBuf,
    /// A workload identity federation file with a file subject-token source.
    pub federation: PathBuf,
    /// A `HOME` whose gcloud ADC file holds the refresh token.
    pub home: PathBuf,
}

impl CredentialFiles {
    /// Writes the files for `servers` under `dir`.
    pub fn write(dir: &Path, servers: &GoogleServers, key: &TestKey, spec: &GoogleSpec) -> Self {
        let base = servers.base_url();
        let service_account = dir.join("service-account.json");
        std::fs::write(
            &service_account,
            json!({
                "type": "service_account",
                "project_id": "harness-audit-test",
                "private_key_id": "0123456789abcdef",
                "private_key": key.private_pem,
                "client_email": SERVICE_ACCOUNT,
                "client_id": "100000000000000000001",
                "token_uri": format!("{base}/token"),
            })
            .to_string(),
        )
        .expect("writing the key file");
        let subject = dir.join("subject-token");
        std::fs::write(&subject, &spec.subject_token).expect("writing the subject token");
        let federation = dir.join("federation.json");
        std::fs::write(
            &federation,
            json!({
                "type": "external_account",
                "audience": WIF_AUDIENCE,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": format!("{base}/v1/token"),
                "credential_source": {"file": subject},
            })
            .to_string(),
        )
        .expect("writing the federation file");
        let home = dir.join("home");
        let gcloud = home.join(".config/gcloud");
        std::fs::create_dir_all(&gcloud).expect("creating the gcloud directory");
        let (id, secret, refresh) = &spec.refresh;
        std::fs::write(
            gcloud.join("application_default_credentials.json"),
            json!({
                "type": "authorized_user",
                "client_id": id,
                "client_secret": secret,
                "refresh_token": refresh,
                "token_uri": format!("{base}/token"),
            })
            .to_string(),
        )
        .expect("writing the ADC file");
        Self {
            service_account,
            federation,
            home,
        }
    }
}
