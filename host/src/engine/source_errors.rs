//! What the component's errors mean to the host: each `source-error` as the
//! [`RunError`] it is, in words that name the fix, and the key by which
//! passes that fail on the same answer are told apart from new failures.

use crate::engine::bindings::harness::audit::types as wit;
use crate::engine::bindings::{ApiFailure, EmitError, SourceError};
use crate::engine::error::{ConfigurationError, HarnessError, RunError};
use crate::time::rfc3339_ms;

/// Maps a component error; `account` and `state` name what to fix.
pub(super) fn source_failure(err: SourceError, account: &str, state: &str) -> RunError {
    let account = account.to_owned();
    let harness = match err {
        SourceError::InvalidSettings(reason) => {
            return ConfigurationError::InvalidSettings {
                reason,
                checkpoint: state.to_owned(),
            }
            .into();
        }
        SourceError::NotConfigured => return RunError::breach("poll was called before configure"),
        // This host ends the call with a trap for every failure but a
        // shutdown, which the pass handles before it looks at the error.
        SourceError::SinkFailure(e) => {
            let (EmitError::Unavailable(m) | EmitError::Rejected(m)) = e;
            return RunError::breach(format!(
                "the component reported a storage failure the host did not report: {m}"
            ));
        }
        SourceError::Unauthorized(f) => HarnessError::Unauthorized {
            failure: describe(&f),
            account,
        },
        SourceError::Forbidden(f) => HarnessError::Forbidden {
            failure: describe(&f),
            account,
        },
        SourceError::BadRequest(f) => HarnessError::BadRequest {
            failure: describe(&f),
        },
        SourceError::RateLimited(r) => HarnessError::RateLimited {
            failure: format!("HTTP 429: {}", r.message),
        },
        SourceError::ServerError(f) => HarnessError::Unavailable {
            reason: describe(&f),
        },
        SourceError::Transport(m) => HarnessError::Unavailable {
            reason: format!("request failed: {m}"),
        },
        SourceError::UnusableResponse(u) => {
            let unusable = harness_audit_core::unusable_from_wit!(wit, &u);
            HarnessError::UnusableResponse {
                at: unusable
                    .request
                    .map_or_else(|| "a YAML diff".to_owned(), |r| request_words(&r)),
                answer: unusable.to_string(),
                hint: unusable_hint(unusable.kind),
                stuck: None,
            }
        }
    };
    harness.into()
}

/// A list request in words: its window in UTC and its page.
fn request_words(r: &harness_audit_core::error::RequestAt) -> String {
    format!(
        "events from {} to {} (page {}, {} a page)",
        rfc3339_ms(r.start_ms),
        rfc3339_ms(r.end_ms),
        r.page_index,
        r.page_size
    )
}

/// What to do about an unusable answer of this kind.
fn unusable_hint(kind: harness_audit_core::error::UnusableKind) -> &'static str {
    use harness_audit_core::error::UnusableKind as K;
    match kind {
        K::NotAPage => {
            "If it persists: an HTML page is Harness's maintenance page or an edge's challenge (check Harness's \
             status page, and that no proxy or firewall between this host and Harness answers in its place); \
             another status, or a page without data, is Harness's to explain: quote the correlation id to its \
             support."
        }
        K::CutShort => {
            "The body ended before its JSON did: check the network path to Harness (a proxy that cuts long \
             answers, a connection reset)."
        }
        K::TooLarge => {
            "An event on this page is larger than the component reads (32 MiB) even one event a page: report \
             the window to Harness support."
        }
        K::SlowBody => {
            "The body arrived slower than HTTP_TIMEOUT_SECS allows: raise it, or check the network path to \
             Harness."
        }
        K::UnsupportedEncoding => {
            "Something between this host and Harness compresses answers in an encoding the component cannot \
             undo: let it pass them as they are, or as gzip."
        }
    }
}

/// The key two passes share when they failed on the same kind of answer,
/// with the same status, at the same place: the request's start and page.
/// Its end moves with the clock; so does its start before any checkpoint
/// (`fresh`), when the place is the first window.
pub(super) fn stall_key(u: &wit::UnusableResponse, fresh: bool) -> String {
    let request = u.request.map_or_else(String::new, |r| {
        let start = if fresh {
            "the first window".to_owned()
        } else {
            r.start_ms.to_string()
        };
        format!(" at {start} page {} of {}", r.page_index, r.page_size)
    });
    format!("{:?} HTTP {}{request}", u.kind, u.status)
}

/// `HTTP 401 INVALID_TOKEN: Token is not valid. (correlationId …)`
fn describe(f: &ApiFailure) -> String {
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
