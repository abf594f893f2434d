//! The source's error type, a native mirror of the WIT `source-error` variant.

use std::fmt;

/// A failed Harness response, with Harness's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// Harness `code`, if the body had one.
    pub code: Option<String>,
    /// Harness `message`, or a description of the body.
    pub message: String,
    /// Harness `correlationId`, if any.
    pub correlation_id: Option<String>,
}

/// Why the host refused a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// The batch itself is unacceptable.
    Rejected(String),
    /// Storage failed.
    Unavailable(String),
}

/// Why a source call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// Settings or checkpoint unusable.
    InvalidSettings(String),
    /// `poll` before `configure`.
    NotConfigured,
    /// HTTP 401.
    Unauthorized(ApiFailure),
    /// HTTP 403.
    Forbidden(ApiFailure),
    /// HTTP 400.
    BadRequest(ApiFailure),
    /// HTTP 429.
    RateLimited {
        /// `Retry-After`, when sent.
        retry_after_secs: Option<u32>,
        /// Body or description.
        message: String,
    },
    /// HTTP 5xx or unexpected status.
    ServerError(ApiFailure),
    /// The request did not complete.
    Transport(String),
    /// The body is not a valid audit page.
    MalformedResponse(String),
    /// The host could not store a batch.
    SinkFailure(EmitError),
}

impl SourceError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::ServerError(_)
                | Self::Transport(_)
                | Self::MalformedResponse(_)
        )
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.correlation_id {
            write!(f, " (correlationId {id})")?;
        }
        Ok(())
    }
}
