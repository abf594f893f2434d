//! The process's exit codes: the one table that maps every failure the
//! library reports to the code a scheduler, a job's retry policy or a shell
//! sees. The README's exit-code table and `tests/e2e/check.rs` follow it.

use harness_audit::commands::serve::ServeError;
use harness_audit::commands::verify::Verdict;
use harness_audit::engine::error::{ConfigurationError, HarnessError, RunError, SandboxError};
use harness_audit::storage::StorageError;

/// A shutdown stopped a call into the component: what was committed before
/// stands, and the next pass continues from it.
pub const INTERRUPTED: u8 = 1;
/// The configuration is unusable, or the checkpoint, or the credentials.
pub const CONFIG: u8 = 2;
/// Harness refused the request (401, 403, 400): retrying will not help.
pub const REFUSED: u8 = 3;
/// Harness was unavailable (429, 5xx, network): a later run may succeed.
pub const UNAVAILABLE: u8 = 4;
/// Storage failed.
pub const STORAGE: u8 = 5;
/// The component failed: a trap, a contract breach, a limit; or the host
/// could not start it.
pub const COMPONENT: u8 = 6;
/// Another instance holds the lease or advanced the checkpoint: this run
/// stopped without writing; the other one carries on.
pub const ANOTHER_INSTANCE: u8 = 7;
/// `verify`: the store's integrity is broken (an object modified, removed or
/// added, a digest changed, missing or badly signed).
pub const INTEGRITY: u8 = 8;
/// `verify --completeness`: the store is intact but holds fewer events than
/// Harness counted.
pub const INCOMPLETE: u8 = 9;
/// Harness answered with something that is not a page of audit events,
/// after the retries its kind allows.
pub const UNUSABLE: u8 = 10;

/// The exit code of a failed pass or command.
pub fn of(e: &RunError) -> u8 {
    match e {
        RunError::Configuration(
            ConfigurationError::Invalid(_)
            | ConfigurationError::InvalidSettings { .. }
            | ConfigurationError::SigningKey(_),
        ) => CONFIG,
        RunError::Harness(e) => match e {
            HarnessError::Unauthorized { .. }
            | HarnessError::Forbidden { .. }
            | HarnessError::BadRequest { .. } => REFUSED,
            HarnessError::RateLimited { .. } | HarnessError::Unavailable { .. } => UNAVAILABLE,
            HarnessError::UnusableResponse { .. } => UNUSABLE,
        },
        RunError::Storage(e) => match e {
            StorageError::CorruptState { .. } | StorageError::Credentials(_) => CONFIG,
            StorageError::Superseded(_) | StorageError::LeaseHeld(_) => ANOTHER_INSTANCE,
            StorageError::Failed { .. } | StorageError::Store(_) => STORAGE,
        },
        RunError::Sandbox(
            SandboxError::Trap { .. }
            | SandboxError::Breach { .. }
            | SandboxError::Refused(_)
            | SandboxError::Policy(_)
            | SandboxError::Panicked { .. }
            | SandboxError::LimitExceeded { .. },
        ) => COMPONENT,
        RunError::Interrupted => INTERRUPTED,
    }
}

/// The exit code of `serve`: with `--once`, the first failed tenant's, so a
/// job's retry policy sees a usual code.
pub fn of_serve(e: &ServeError) -> u8 {
    match e {
        ServeError::Startup(_) => CONFIG,
        ServeError::ShutdownGrace(_) => INTERRUPTED,
        ServeError::TenantsFailed(failed) => failed.first().map_or(COMPONENT, |(_, e)| of(e)),
    }
}

/// The exit code of `verify`'s verdict.
pub fn of_verdict(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Proven => 0,
        Verdict::IntegrityBroken => INTEGRITY,
        Verdict::CompletenessGap => INCOMPLETE,
    }
}
