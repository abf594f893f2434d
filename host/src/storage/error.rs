//! Why storage stopped a pass, in the terms a pass reports. Batches committed
//! before the failure stay committed.

use super::SinkError;
use super::lease::LeaseError;
use super::pipeline::StoreError;

/// A storage failure that ends a pass or a command.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The stored state is not ours or is damaged; it was left untouched.
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
    /// Another instance advanced the checkpoint after this one read it.
    #[error(transparent)]
    Superseded(Box<SinkError>),
    /// Another instance holds the lease.
    #[error(transparent)]
    LeaseHeld(Box<LeaseError>),
    /// A read or write of the store failed.
    #[error("storage failed: {during}{source}")]
    Failed {
        /// What the host was doing, when more than its usual work (ends in `: `).
        during: &'static str,
        /// The store's error.
        source: Box<SinkError>,
    },
    /// A batch or checkpoint did not reach storage.
    #[error("storage failed: {0}")]
    Store(Box<StoreError>),
}

impl StorageError {
    /// `e`, met while doing `during` (ends in `: `).
    pub fn during(during: &'static str, e: SinkError) -> Self {
        match Self::from(e) {
            Self::Failed { source, .. } => Self::Failed { during, source },
            other => other,
        }
    }

    /// Another instance holds the lease or advanced the checkpoint: this one
    /// stopped without writing, and the other carries on.
    pub fn is_another_instance(&self) -> bool {
        matches!(self, Self::Superseded(_) | Self::LeaseHeld(_))
    }
}

impl From<SinkError> for StorageError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Superseded(_) => Self::Superseded(Box::new(e)),
            SinkError::Credentials(_) => Self::Credentials(Box::new(e)),
            source => Self::Failed {
                during: "",
                source: Box::new(source),
            },
        }
    }
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        if e.is_superseded() {
            Self::Superseded(Box::new(e.source))
        } else {
            Self::Store(Box::new(e))
        }
    }
}

impl From<LeaseError> for StorageError {
    fn from(e: LeaseError) -> Self {
        match e.into_storage() {
            Ok(source) => Self::during("taking the lease: ", source),
            Err(held) => Self::LeaseHeld(Box::new(held)),
        }
    }
}
