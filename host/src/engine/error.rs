//! Why a pass failed, by role (configuration, Harness, storage, the
//! sandbox), each keeping the error it came from. The binary maps each to
//! its exit code; the library names each with a stable `kind` for logs and
//! metrics. The enums are exhaustive on purpose: a new cause does not build
//! until the binary's exit-code table gives it a code.

use crate::config::ConfigError;
use crate::engine::batch_refusal::BatchRefusal;
use crate::engine::policy::PolicyError;
use crate::evidence::KeyError;
use crate::storage::lease::LeaseError;
use crate::storage::{SinkError, StorageError, StoreError};

/// Why `emit` did not store a batch. The bindings return it from `emit`;
/// the host's `convert_emit_error` tells the component `unavailable`, or ends
/// its call with a trap that carries the [`RunError`].
#[derive(Debug)]
pub enum EmitFailure {
    /// The host is shutting down: the component hears `unavailable`, and the
    /// pass ends with what was committed before.
    ShuttingDown,
    /// The pass ends with this error, whatever the component would do next:
    /// nothing is committed after it.
    Ends(RunError),
}

impl<E: Into<RunError>> From<E> for EmitFailure {
    fn from(e: E) -> Self {
        Self::Ends(e.into())
    }
}

/// Passes in a row that meet the same unusable answer at the same request
/// before the error calls collection stuck.
pub const STUCK_AFTER_PASSES: u32 = 3;

/// A failed pass. Batches committed before the failure stay committed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration, or what the component made of it, is unusable.
    #[error(transparent)]
    Configuration(#[from] ConfigurationError),
    /// Harness refused, failed or answered with something unusable.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// Storage failed, or another instance owns it.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The component failed, broke the contract or hit a limit.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A shutdown stopped a call into the component.
    #[error(
        "stopped for shutdown during a call into the component; every batch emitted before it is committed \
         and the next pass continues from there"
    )]
    Interrupted,
}

/// The configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigurationError {
    /// A setting is missing or invalid.
    #[error("configuration error: {0}")]
    Invalid(#[from] ConfigError),
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
    /// The signing key cannot be used (it was readable when the settings were checked).
    #[error("{0}. Fix SIGNING_KEY_FILE")]
    SigningKey(#[from] KeyError),
}

/// Harness did not answer with audit events.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
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
}

/// The component failed, broke the `harness:audit` contract, or hit a limit.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The component trapped: a panic, an unreachable, a failed host call.
    #[error("the source component failed: {trap:#}{stderr}")]
    Trap {
        /// The trap, with the component's backtrace.
        #[source]
        trap: wasmtime::Error,
        /// What the component wrote on stderr, prefixed with `; component stderr: `, or empty.
        stderr: String,
    },
    /// The component broke the contract.
    #[error("the source component failed: {breach}")]
    Breach {
        /// What it did.
        breach: String,
    },
    /// The host refused a batch that breaks a rule of the contract.
    #[error("the source component failed: the host refused a batch: {0}")]
    Refused(#[from] BatchRefusal),
    /// The egress policy could not be built for the configured API base.
    #[error("the egress policy cannot be built: {0}")]
    Policy(#[from] PolicyError),
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
    /// A short, stable name of the cause: the `error_kind` log field and metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Configuration(e) => match e {
                ConfigurationError::InvalidSettings { .. } => "invalid_settings",
                ConfigurationError::Invalid(_) | ConfigurationError::SigningKey(_) => "config",
            },
            Self::Harness(e) => match e {
                HarnessError::Unauthorized { .. } => "unauthorized",
                HarnessError::Forbidden { .. } => "forbidden",
                HarnessError::BadRequest { .. } => "bad_request",
                HarnessError::RateLimited { .. } => "rate_limited",
                HarnessError::Unavailable { .. } => "unavailable",
                HarnessError::UnusableResponse { .. } => "unusable_response",
            },
            Self::Storage(e) => match e {
                StorageError::CorruptState { .. } => "corrupt_state",
                StorageError::Credentials(_) => "credentials",
                StorageError::Superseded(_) | StorageError::LeaseHeld(_) => "another_instance",
                StorageError::Failed { .. } | StorageError::Store(_) => "storage",
            },
            Self::Sandbox(e) => match e {
                SandboxError::LimitExceeded { .. } => "limit",
                SandboxError::Trap { .. }
                | SandboxError::Breach { .. }
                | SandboxError::Refused(_)
                | SandboxError::Policy(_)
                | SandboxError::Panicked { .. } => "component",
            },
            Self::Interrupted => "interrupted",
        }
    }

    /// A contract breach by the component.
    pub fn breach(breach: impl Into<String>) -> Self {
        SandboxError::Breach {
            breach: breach.into(),
        }
        .into()
    }

    /// The sandbox limit that `setting` sets was hit.
    pub fn limit(setting: &'static str, message: String) -> Self {
        SandboxError::LimitExceeded { setting, message }.into()
    }
}

/// Conversions for `?` from the errors each role wraps.
macro_rules! through {
    ($($from:ty => $role:ty),* $(,)?) => {$(
        impl From<$from> for RunError {
            fn from(e: $from) -> Self {
                <$role>::from(e).into()
            }
        }
    )*};
}

through! {
    ConfigError => ConfigurationError,
    KeyError => ConfigurationError,
    SinkError => StorageError,
    StoreError => StorageError,
    LeaseError => StorageError,
    BatchRefusal => SandboxError,
    PolicyError => SandboxError,
}
