//! A time-bounded lease in GCS, taken and renewed by compare-and-swap, so a
//! second instance on the same checkpoint stops at once instead of reading
//! Harness only to lose the checkpoint race. The lease saves work; the
//! checkpoint's own compare-and-swap is what keeps events exact.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::random;
use crate::storage::gcs::{GcsClient, GcsError, Upload};
use crate::time::{now_ms, rfc3339_ms};

/// Why the lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another instance holds it.
    #[error(
        "another instance ({holder}) holds the lease {url} until {until}; this run stopped without reading or writing. \
         If that instance died, its lease expires by itself"
    )]
    Held {
        /// The lease object.
        url: String,
        /// Who holds it.
        holder: String,
        /// When it expires (RFC 3339).
        until: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Gcs(#[from] GcsError),
}

impl LeaseError {
    /// The storage failure behind this error, or the error itself when
    /// another instance holds the lease.
    pub fn into_storage(self) -> Result<super::SinkError, Self> {
        match self {
            Self::Gcs(e) => Ok(e.into()),
            held @ Self::Held { .. } => Err(held),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LeaseBody {
    holder: String,
    renewed_at: String,
    expires_at_ms: u64,
}

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    client: Arc<GcsClient>,
    object: String,
    holder: String,
    ttl: Duration,
    generation: i64,
}

impl Lease {
    /// Takes the lease at `object` for `ttl`, unless another holder's lease is still running.
    pub async fn acquire(
        client: Arc<GcsClient>,
        object: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Self, LeaseError> {
        let mut lease = Self {
            client,
            object: object.to_owned(),
            holder: holder.to_owned(),
            ttl,
            generation: 0,
        };
        if let Some((bytes, generation)) = lease.client.read(object).await? {
            // An unreadable lease is treated as expired: it can only block, never protect.
            if let Ok(current) = serde_json::from_slice::<LeaseBody>(&bytes)
                && current.expires_at_ms > now_ms()
                && current.holder != holder
            {
                return Err(lease.held_by(current));
            }
            lease.generation = generation;
        }
        match lease.write().await {
            Ok(()) => Ok(lease),
            Err(LeaseError::Gcs(GcsError::PreconditionFailed { .. })) => {
                let holder = match lease.client.read(object).await? {
                    Some((bytes, _)) => serde_json::from_slice::<LeaseBody>(&bytes).ok(),
                    None => None,
                };
                Err(match holder {
                    Some(body) => lease.held_by(body),
                    None => LeaseError::Held {
                        url: lease.client.url(object),
                        holder: "an instance that just took and released it".into(),
                        until: rfc3339_ms(now_ms()),
                    },
                })
            }
            Err(e) => Err(e),
        }
    }

    /// After a 412, whether the lease in place is the one this process just
    /// wrote (a retried write whose first attempt succeeded unseen).
    async fn written_by_us(&mut self, expected: &[u8]) -> Result<bool, GcsError> {
        match self.client.read(&self.object).await? {
            Some((bytes, generation)) if bytes == expected => {
                self.generation = generation;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn held_by(&self, body: LeaseBody) -> LeaseError {
        LeaseError::Held {
            url: self.client.url(&self.object),
            holder: body.holder,
            until: rfc3339_ms(body.expires_at_ms),
        }
    }

    /// Writes the lease with a fresh expiry, conditioned on the generation held.
    async fn write(&mut self) -> Result<(), LeaseError> {
        let now = now_ms();
        let body = LeaseBody {
            holder: self.holder.clone(),
            renewed_at: rfc3339_ms(now),
            expires_at_ms: now + u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX / 2),
        };
        let bytes = serde_json::to_vec(&body).expect("the lease body serializes");
        let metadata = BTreeMap::new();
        let upload = Upload::json(&bytes, &metadata);
        match self
            .client
            .insert(&self.object, upload, self.generation)
            .await
        {
            Ok(generation) => {
                self.generation = generation;
                Ok(())
            }
            Err(e @ GcsError::PreconditionFailed { .. }) => {
                if self.written_by_us(&bytes).await? {
                    Ok(())
                } else {
                    Err(e.into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Renews the lease every third of its lifetime until released.
    pub fn keep(self) -> HeldLease {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut lease = self;
            let period = lease.ttl / 3;
            loop {
                tokio::select! {
                    _ = &mut stopped => return Some(lease),
                    () = tokio::time::sleep(period) => {}
                }
                if let Err(e) = lease.write().await {
                    tracing::error!(
                        stage = "lease",
                        lease = %lease.client.url(&lease.object),
                        error = %e,
                        "lost the lease; the checkpoint's compare-and-swap still stops any conflicting write"
                    );
                    return None;
                }
            }
        });
        HeldLease { stop, task }
    }

    /// Deletes the lease so the next run need not wait for it to expire.
    async fn release(self) {
        if let Err(e) = self.client.delete(&self.object, self.generation).await {
            tracing::warn!(stage = "lease", error = %e, "could not release the lease; it expires by itself");
        }
    }
}

/// A lease renewed in the background.
#[derive(Debug)]
pub struct HeldLease {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Option<Lease>>,
}

impl HeldLease {
    /// Stops renewing and releases the lease.
    pub async fn release(self) {
        let _ = self.stop.send(());
        if let Ok(Some(lease)) = self.task.await {
            lease.release().await;
        }
    }
}

/// A name for this process in leases and checkpoint metadata: host, PID and a random part.
pub fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!(
        "{host}/pid-{}/{:08x}",
        std::process::id(),
        random::u64() as u32
    )
}
