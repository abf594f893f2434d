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
    /// Harness answered, with something that is not a usable page.
    Unusable(Box<Unusable>),
    /// The host could not store a batch.
    SinkFailure(EmitError),
}

impl SourceError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::ServerError(_) | Self::Transport(_)
        ) || matches!(self, Self::Unusable(u) if u.kind.is_transient())
    }
}

/// What kind of answer a whole response was, when it was not a usable page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnusableKind {
    /// A body that is not a page: not the envelope (an HTML maintenance or
    /// challenge page), a `status` other than `SUCCESS`, `data` or `content`
    /// missing or null, events out of the order or range asked for.
    NotAPage,
    /// A body that ends before its JSON does.
    CutShort,
    /// A body larger than the component reads ([`crate::pass::MAX_BODY_BYTES`])
    /// at a page size of 1.
    TooLarge,
    /// A body that did not arrive whole within the host's deadline.
    SlowBody,
    /// A `Content-Encoding` the component cannot undo.
    UnsupportedEncoding,
}

impl UnusableKind {
    /// Whether asking again may get another answer: a maintenance page ends
    /// and a connection recovers, while the same request meets the same
    /// size and the same encoding again.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::NotAPage | Self::CutShort | Self::SlowBody)
    }

    /// The kind's name, as in the WIT.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotAPage => "not-a-page",
            Self::CutShort => "cut-short",
            Self::TooLarge => "too-large",
            Self::SlowBody => "slow-body",
            Self::UnsupportedEncoding => "unsupported-encoding",
        }
    }
}

/// The request an answer was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestAt {
    /// `startTime`, epoch ms.
    pub start_ms: u64,
    /// `endTime`, epoch ms.
    pub end_ms: u64,
    /// `pageIndex`.
    pub page_index: u32,
    /// `pageSize`.
    pub page_size: u32,
}

/// A whole answer that is not a usable page: what Harness sent, and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// What kind of answer it was.
    pub kind: UnusableKind,
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// `Content-Encoding`, if sent.
    pub content_encoding: Option<String>,
    /// Bytes of the body received (decoded, when an encoding was undone).
    pub bytes: u64,
    /// The body's first characters, control characters blanked.
    pub excerpt: String,
    /// What is wrong with it.
    pub detail: String,
    /// The request it answered, once known.
    pub request: Option<RequestAt>,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} (", self.status)?;
        match &self.content_type {
            Some(t) => write!(f, "{t}")?,
            None => write!(f, "no content type")?,
        }
        if let Some(e) = &self.content_encoding {
            write!(f, ", content-encoding {e}")?;
        }
        write!(f, ", {} bytes", self.bytes)?;
        if !self.excerpt.is_empty() {
            write!(f, " starting `{}`", self.excerpt)?;
        }
        write!(f, "): {}", self.detail)
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

/// A WIT `unusable-response` as the core's [`Unusable`], for its wording.
/// `$wit` is the module holding the WIT record's Rust types, `$unusable` a
/// reference to one: the host's types come from wasmtime's `bindgen!` and the
/// runners' from wit-bindgen, distinct types of one shape (see
/// [`crate::wit_settings`]).
#[macro_export]
macro_rules! unusable_from_wit {
    ($wit:ident, $unusable:expr) => {{
        use $crate::error::UnusableKind as K;
        let u: &$wit::UnusableResponse = $unusable;
        $crate::error::Unusable {
            kind: match u.kind {
                $wit::UnusableKind::NotAPage => K::NotAPage,
                $wit::UnusableKind::CutShort => K::CutShort,
                $wit::UnusableKind::TooLarge => K::TooLarge,
                $wit::UnusableKind::SlowBody => K::SlowBody,
                $wit::UnusableKind::UnsupportedEncoding => K::UnsupportedEncoding,
            },
            status: u.status,
            content_type: u.content_type.clone(),
            content_encoding: u.content_encoding.clone(),
            bytes: u.bytes,
            excerpt: u.excerpt.clone(),
            detail: u.detail.clone(),
            request: u.request.map(|r| $crate::error::RequestAt {
                start_ms: r.start_ms,
                end_ms: r.end_ms,
                page_index: r.page_index,
                page_size: r.page_size,
            }),
        }
    }};
}

/// A WIT `quarantine-reason` as the core's [`crate::event::Reason`]; see
/// [`unusable_from_wit`] for `$wit`.
#[macro_export]
macro_rules! reason_from_wit {
    ($wit:ident, $reason:expr) => {{
        use $crate::event::Reason;
        match $reason {
            $wit::QuarantineReason::NotJson => Reason::NotJson,
            $wit::QuarantineReason::NotAnObject => Reason::NotAnObject,
            $wit::QuarantineReason::AuditId => Reason::AuditId,
            $wit::QuarantineReason::Timestamp => Reason::Timestamp,
            $wit::QuarantineReason::Unmappable => Reason::Unmappable,
        }
    }};
}
