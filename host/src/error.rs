//! Why a collection pass failed, with the fix, and the exit code for each cause.

use crate::config::ConfigError;
use crate::evidence::KeyError;
use crate::storage::SinkError;
use crate::storage::lease::LeaseError;

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
/// Exit code when a shutdown stopped a call into the component: what was
/// committed before stands, and the next pass continues from it.
pub const EXIT_INTERRUPTED: u8 = 1;
/// Exit code of `verify` when the store's integrity is broken: an object
/// modified, removed or added, or a digest changed, missing or badly signed.
pub const EXIT_INTEGRITY: u8 = 8;
/// Exit code of `verify --completeness` when the store is intact but holds
/// fewer events than Harness counted.
pub const EXIT_INCOMPLETE: u8 = 9;
/// Exit code when another instance holds the lease or advanced the checkpoint:
/// this run stopped without writing; the other one carries on.
pub const EXIT_ANOTHER_INSTANCE: u8 = 7;
/// Exit code when Harness answered with something that is not a page of
/// audit events (an HTML page behind a 200, another `status`, a body cut
/// short, too large or too slow, an encoding that cannot be undone), after
/// the retries its kind allows.
pub const EXIT_UNUSABLE: u8 = 10;
/// Passes in a row that meet the same unusable answer at the same request
/// before the error calls collection stuck.
pub const STUCK_AFTER_PASSES: u32 = 3;

/// A failed pass. Batches committed before the failure stay committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is unusable.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The stored state is not usable; it was left untouched.
    #[error(
        "the checkpoint at {location} is unusable: {reason}. It was left untouched; fix or remove it, or run with --reset-checkpoint"
    )]
    CorruptState {
        /// Where it is.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// Storage credentials are missing or unusable.
    #[error(transparent)]
    Credentials(Box<SinkError>),
    /// The component refused its settings or the stored checkpoint.
    #[error(
        "invalid settings or checkpoint: {reason}. Fix the setting named, or move the checkpoint at {checkpoint} aside"
    )]
    InvalidSettings {
        /// The component's words.
        reason: String,
        /// Where the checkpoint it was given lives.
        checkpoint: String,
    },
    /// HTTP 401.
    #[error(
        "Harness rejected the API key ({failure}). Fix: set HARNESS_API_KEY to a valid, unexpired key of account {account}"
    )]
    Unauthorized {
        /// Harness's answer.
        failure: String,
        /// The configured account.
        account: String,
    },
    /// HTTP 403.
    #[error(
        "Harness denied access ({failure}). Fix: grant the key's user or service account the core_audit_view permission \
         (for example the Account Viewer role) on account {account}"
    )]
    Forbidden {
        /// Harness's answer.
        failure: String,
        /// The configured account.
        account: String,
    },
    /// HTTP 400.
    #[error(
        "Harness rejected the request ({failure}). Fix: check FILTER_MODULES, FILTER_ACTIONS, STATIC_FILTER and PAGE_SIZE"
    )]
    BadRequest {
        /// Harness's answer.
        failure: String,
    },
    /// HTTP 429 after all retries.
    #[error(
        "Harness rate-limited every attempt ({failure}). Fix: run less often, or raise MAX_RETRIES / RETRY_BASE_MS"
    )]
    RateLimited {
        /// Harness's answer.
        failure: String,
    },
    /// 5xx or network failures after all retries.
    #[error(
        "Harness was unavailable: {reason}. Nothing was lost: the next run resumes from the last checkpoint"
    )]
    Unavailable {
        /// The last attempt's failure.
        reason: String,
    },
    /// Harness answered with something that is not a page, after the
    /// retries its kind allows.
    #[error(
        "Harness answered the request for {at} with something that is not a page of audit events: {answer}. \
         No event was skipped: the checkpoint stays before this request, and the next pass asks again. {hint}{}",
        .stuck.as_ref().map(ToString::to_string).unwrap_or_default()
    )]
    UnusableResponse {
        /// What Harness sent, and what is wrong with it.
        answer: String,
        /// The request it answered, in words.
        at: String,
        /// What to do about this kind of answer.
        hint: &'static str,
        /// The same answer to the same request, pass after pass.
        stuck: Option<Stuck>,
    },
    /// The sink or checkpoint store failed.
    #[error("storage failed: {during}{source}")]
    Storage {
        /// What the host was doing, when more than writing a batch (ends in `: `).
        during: &'static str,
        /// The store's error.
        source: Box<SinkError>,
    },
    /// A batch could not be made durable; the component passed on the host's words.
    #[error("storage failed: {reason}")]
    EmitFailed {
        /// The host's storage error, as the component returned it.
        reason: String,
    },
    /// Another instance holds the lease or advanced the checkpoint.
    #[error("{reason}")]
    AnotherInstance {
        /// Who holds what.
        reason: String,
    },
    /// The component trapped: a panic, an unreachable, a failed host call.
    #[error("the source component failed: {trap}{stderr}")]
    Trap {
        /// The trap and its backtrace.
        trap: String,
        /// What the component wrote on stderr, prefixed with `; component stderr: `, or empty.
        stderr: String,
    },
    /// The component broke the `harness:audit` contract.
    #[error("the source component failed: {breach}")]
    ContractBreach {
        /// What it did.
        breach: String,
    },
    /// The egress policy could not be built for the configured API base.
    #[error("the egress policy cannot be built: {reason}")]
    Policy {
        /// Why.
        reason: String,
    },
    /// A pass's task panicked in the host.
    #[error("the pass panicked: {reason}")]
    Panicked {
        /// The panic.
        reason: String,
    },
    /// The component hit a sandbox limit.
    #[error("the source component hit a limit: {message}")]
    LimitExceeded {
        /// The setting that sets the limit.
        setting: &'static str,
        /// What happened, naming the setting and its value.
        message: String,
    },
    /// The signing key cannot be used (it was readable when the settings were checked).
    #[error("{0}. Fix SIGNING_KEY_FILE")]
    SigningKey(#[from] KeyError),
    /// A shutdown stopped a call into the component.
    #[error(
        "stopped for shutdown during a call into the component; every batch emitted before it is committed \
         and the next pass continues from there"
    )]
    Interrupted,
}

/// The same unusable answer, at the same request, pass after pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// Passes in a row, this one included.
    pub passes: u32,
    /// When the first of them failed (RFC 3339).
    pub since: String,
    /// Where collection waits: the request's first millisecond (RFC 3339).
    pub from: String,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            " Collection of this account is stuck here: the same answer came back to this request in the last {} \
             passes (since {}), and no event from {} on is collected until Harness answers it with a page. \
             What was collected before stands; the next pass tries again.",
            self.passes, self.since, self.from
        )
    }
}

impl RunError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::InvalidSettings { .. }
            | Self::CorruptState { .. }
            | Self::SigningKey(_)
            | Self::Credentials(_) => EXIT_CONFIG,
            Self::Unauthorized { .. } | Self::Forbidden { .. } | Self::BadRequest { .. } => {
                EXIT_REFUSED
            }
            Self::RateLimited { .. } | Self::Unavailable { .. } => EXIT_UNAVAILABLE,
            Self::UnusableResponse { .. } => EXIT_UNUSABLE,
            Self::Storage { .. } | Self::EmitFailed { .. } => EXIT_STORAGE,
            Self::AnotherInstance { .. } => EXIT_ANOTHER_INSTANCE,
            Self::Interrupted => EXIT_INTERRUPTED,
            Self::Trap { .. }
            | Self::ContractBreach { .. }
            | Self::Policy { .. }
            | Self::Panicked { .. }
            | Self::LimitExceeded { .. } => EXIT_COMPONENT,
        }
    }

    /// A short, stable name of the cause: the `error_kind` log field and metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) | Self::SigningKey(_) => "config",
            Self::CorruptState { .. } => "corrupt_state",
            Self::Credentials(_) => "credentials",
            Self::InvalidSettings { .. } => "invalid_settings",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::BadRequest { .. } => "bad_request",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::UnusableResponse { .. } => "unusable_response",
            Self::Storage { .. } | Self::EmitFailed { .. } => "storage",
            Self::AnotherInstance { .. } => "another_instance",
            Self::Interrupted => "interrupted",
            Self::Trap { .. }
            | Self::ContractBreach { .. }
            | Self::Policy { .. }
            | Self::Panicked { .. } => "component",
            Self::LimitExceeded { .. } => "limit",
        }
    }

    /// A contract breach by the component.
    pub fn breach(breach: impl Into<String>) -> Self {
        Self::ContractBreach {
            breach: breach.into(),
        }
    }
}

impl From<SinkError> for RunError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Superseded(_) => Self::AnotherInstance {
                reason: e.to_string(),
            },
            SinkError::Credentials(_) => Self::Credentials(Box::new(e)),
            source => Self::Storage {
                during: "",
                source: Box::new(source),
            },
        }
    }
}

impl From<LeaseError> for RunError {
    fn from(e: LeaseError) -> Self {
        match e.into_storage() {
            Ok(source) => Self::Storage {
                during: "taking the lease: ",
                source: Box::new(source),
            },
            Err(held) => Self::AnotherInstance {
                reason: held.to_string(),
            },
        }
    }
}
