//! Opening the configured store: the one place that chooses a sink, builds
//! the GCS client and takes the lease.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::gcs::{GcsClient, GcsSink, RetryPolicy, Upload};
use super::lease::{HeldLease, Lease, LeaseError};
use super::{CheckpointStore, LocalDirSink, Sink, SinkError, StdoutSink};
use crate::config::{Config, SinkKind};

/// Where a configuration's data and checkpoint live.
pub struct Storage {
    /// Receives the batches.
    pub sink: Arc<dyn Sink>,
    /// Holds the checkpoint.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// The bucket's client, for the GCS sink (its lease lives beside the checkpoint).
    gcs: Option<Arc<GcsClient>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("sink", &self.sink.location())
            .field("checkpoints", &self.checkpoints.checkpoint_location())
            .finish_non_exhaustive()
    }
}

/// How hard GCS calls try. Storage reuses the retry settings of the Harness
/// requests, so one set of knobs bounds how long a pass can wait.
fn retry_policy(config: &Config, max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base: Duration::from_millis(u64::from(config.source.retries.retry_base_ms)),
        timeout: Duration::from_secs(u64::from(config.harness.http_timeout_secs)),
    }
}

/// Opens the configured storage; `holder` names this process in GCS writes.
pub async fn open(config: &Config, holder: &str) -> Result<Storage, SinkError> {
    open_with(config, holder, config.source.retries.max_retries).await
}

async fn open_with(config: &Config, holder: &str, max_retries: u32) -> Result<Storage, SinkError> {
    let output = &config.output;
    Ok(match output.sink {
        SinkKind::Local | SinkKind::Stdout => {
            let store = Arc::new(LocalDirSink::new(
                &output.output_dir,
                &output.prefix,
                &output.state_key,
            ));
            let sink: Arc<dyn Sink> = if output.sink == SinkKind::Stdout {
                Arc::new(StdoutSink::new(store.as_ref().clone()))
            } else {
                store.clone()
            };
            Storage {
                sink,
                checkpoints: store,
                gcs: None,
            }
        }
        SinkKind::Gcs => {
            let bucket = output
                .gcs_bucket
                .as_deref()
                .expect("validation requires a bucket for the gcs sink");
            let client = Arc::new(
                GcsClient::connect(
                    bucket,
                    &output.gcs_endpoint,
                    retry_policy(config, max_retries),
                )
                .await
                .map_err(SinkError::Credentials)?,
            );
            tracing::info!(stage = "storage", credentials = %client.credentials().source(), "resolved storage credentials");
            let sink = Arc::new(
                GcsSink::new(
                    client.clone(),
                    &output.prefix,
                    &output.state_key,
                    output.gzip,
                    holder,
                )
                .with_retention(output.retention),
            );
            Storage {
                sink: sink.clone(),
                checkpoints: sink,
                gcs: Some(client),
            }
        }
    })
}

impl Storage {
    /// Takes the lease beside the checkpoint, for a store that has one (GCS),
    /// and keeps renewing it until the guard is released.
    pub async fn lease(
        &self,
        config: &Config,
        holder: &str,
    ) -> Result<Option<HeldLease>, LeaseError> {
        let Some(client) = &self.gcs else {
            return Ok(None);
        };
        let lease = Lease::acquire(
            client.clone(),
            &format!("{}.lease", config.output.state_key),
            holder,
            Duration::from_secs(u64::from(config.output.lease_secs)),
        )
        .await?;
        Ok(Some(lease.keep()))
    }
}

/// For `check`: opens the store with one retry (a diagnosis should answer
/// quickly) and proves it writable with a probe object it removes again.
pub async fn probe(config: &Config) -> Result<String, SinkError> {
    let output = &config.output;
    let storage = open_with(config, "harness-audit-check", 1).await?;
    let Some(client) = storage.gcs else {
        let dir = output.output_dir.join(
            Path::new(&output.state_key)
                .parent()
                .unwrap_or(Path::new("")),
        );
        let probe = dir.join(format!(".harness-audit-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&probe, b"check"))
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|source| SinkError::Io {
                action: "writing a probe file in the output directory",
                path: dir.display().to_string(),
                source,
            })?;
        return Ok(format!("{} is writable", output.output_dir.display()));
    };
    let probe = format!("{}.check-{}", output.state_key, std::process::id());
    let generation = client
        .insert(&probe, Upload::json(b"{}", &BTreeMap::new()), 0)
        .await?;
    client.delete(&probe, generation).await?;
    Ok(format!(
        "gs://{} is writable with {}",
        output.gcs_bucket.as_deref().unwrap_or_default(),
        client.credentials().source()
    ))
}
