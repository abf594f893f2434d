//! Why a collection pass failed, with the fix, and the exit code for each cause.

use crate::bindings::{ApiFailure, EmitError, SourceError};
use crate::config::ConfigError;
use crate::sink::SinkError;

/// Exit code for configuration errors (including an unusable checkpoint).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when Harness refused the request (401, 403, 400): retrying will not help.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code when Harness was unavailable (429, 5xx, network, bad bodies): a later run may succeed.
pub const EXIT_UNAVAILABLE: u8 = 4;
/// Exit code when storage failed.
pub const EXIT_STORAGE: u8 = 5;
/// Exit code when the component itself failed (trap, contract breach).
pub const EXIT_COMPONENT: u8 = 6;
/// Exit code when another instance holds the lease or advanced the checkpoint:
/// this run stopped without writing; the other one carries on.
pub const EXIT_ANOTHER_INSTANCE: u8 = 7;

/// A failed pass. Batches committed before the failure stay committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is unusable.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The stored state is not usable; it was left untouched.
    #[error("{0}")]
    CorruptState(String),
    /// Storage credentials are missing or unusable.
    #[error("{0}")]
    Credentials(String),
    /// The component refused its settings or the stored checkpoint.
    #[error(
        "invalid settings or checkpoint: {0}. Fix the setting named, or move the checkpoint at {1} aside"
    )]
    InvalidSettings(String, String),
    /// HTTP 401.
    #[error(
        "Harness rejected the API key ({0}). Fix: set HARNESS_API_KEY to a valid, unexpired key of account {1}"
    )]
    Unauthorized(String, String),
    /// HTTP 403.
    #[error(
        "Harness denied access ({0}). Fix: grant the key's user or service account the core_audit_view permission \
         (for example the Account Viewer role) on account {1}"
    )]
    Forbidden(String, String),
    /// HTTP 400.
    #[error(
        "Harness rejected the request ({0}). Fix: check FILTER_MODULES, FILTER_ACTIONS, STATIC_FILTER and PAGE_SIZE"
    )]
    BadRequest(String),
    /// HTTP 429 after all retries.
    #[error(
        "Harness rate-limited every attempt ({0}). Fix: run less often, or raise MAX_RETRIES / RETRY_BASE_MS"
    )]
    RateLimited(String),
    /// 5xx, network or unparseable responses after all retries.
    #[error(
        "Harness was unavailable: {0}. Nothing was lost: the next run resumes from the last checkpoint"
    )]
    Unavailable(String),
    /// The sink or checkpoint store failed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// Another instance holds the lease or advanced the checkpoint.
    #[error("{0}")]
    AnotherInstance(String),
    /// The component trapped or broke the contract.
    #[error("the source component failed: {0}")]
    Component(String),
    /// The component hit a sandbox limit.
    #[error("the source component hit a limit: {0}")]
    LimitExceeded(String),
}

impl RunError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::InvalidSettings(..)
            | Self::CorruptState(_)
            | Self::Credentials(_) => EXIT_CONFIG,
            Self::Unauthorized(..) | Self::Forbidden(..) | Self::BadRequest(_) => EXIT_REFUSED,
            Self::RateLimited(_) | Self::Unavailable(_) => EXIT_UNAVAILABLE,
            Self::Storage(_) => EXIT_STORAGE,
            Self::AnotherInstance(_) => EXIT_ANOTHER_INSTANCE,
            Self::Component(_) | Self::LimitExceeded(_) => EXIT_COMPONENT,
        }
    }

    /// A short, stable name of the cause, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::CorruptState(_) => "corrupt_state",
            Self::Credentials(_) => "credentials",
            Self::InvalidSettings(..) => "invalid_settings",
            Self::Unauthorized(..) => "unauthorized",
            Self::Forbidden(..) => "forbidden",
            Self::BadRequest(_) => "bad_request",
            Self::RateLimited(_) => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Storage(_) => "storage",
            Self::AnotherInstance(_) => "another_instance",
            Self::Component(_) => "component",
            Self::LimitExceeded(_) => "limit",
        }
    }

    /// Maps a component error; `account` and `state` name what to fix.
    pub fn from_source(err: SourceError, account: &str, state: &str) -> Self {
        match err {
            SourceError::InvalidSettings(m) => Self::InvalidSettings(m, state.to_owned()),
            SourceError::NotConfigured => {
                Self::Component("poll was called before configure".into())
            }
            SourceError::Unauthorized(f) => Self::Unauthorized(describe(&f), account.to_owned()),
            SourceError::Forbidden(f) => Self::Forbidden(describe(&f), account.to_owned()),
            SourceError::BadRequest(f) => Self::BadRequest(describe(&f)),
            SourceError::RateLimited(r) => Self::RateLimited(format!("HTTP 429: {}", r.message)),
            SourceError::ServerError(f) => Self::Unavailable(describe(&f)),
            SourceError::Transport(m) => Self::Unavailable(format!("request failed: {m}")),
            SourceError::MalformedResponse(m) => {
                Self::Unavailable(format!("unusable response: {m}"))
            }
            SourceError::SinkFailure(EmitError::Unavailable(m)) => Self::Storage(m),
            SourceError::SinkFailure(EmitError::Rejected(m)) => {
                Self::Component(format!("the host rejected a batch: {m}"))
            }
        }
    }
}

impl From<crate::state::StateError> for RunError {
    fn from(e: crate::state::StateError) -> Self {
        match e {
            crate::state::StateError::Storage(e) => e.into(),
            corrupt => Self::CorruptState(corrupt.to_string()),
        }
    }
}

impl From<SinkError> for RunError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Superseded(_) => Self::AnotherInstance(e.to_string()),
            other => Self::Storage(other.to_string()),
        }
    }
}

impl From<crate::lease::LeaseError> for RunError {
    fn from(e: crate::lease::LeaseError) -> Self {
        match e {
            crate::lease::LeaseError::Held { .. } => Self::AnotherInstance(e.to_string()),
            crate::lease::LeaseError::Gcs(g) => Self::Storage(g.to_string()),
        }
    }
}

/// `HTTP 401 INVALID_TOKEN: Token is not valid. (correlationId …)`
pub fn describe(f: &ApiFailure) -> String {
    let mut s = format!("HTTP {}", f.status);
    if let Some(code) = &f.code {
        s.push(' ');
        s.push_str(code);
    }
    s.push_str(": ");
    s.push_str(&f.message);
    if let Some(id) = &f.correlation_id {
        s.push_str(&format!(" (correlationId {id})"));
    }
    s
}
