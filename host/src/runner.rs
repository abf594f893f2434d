//! One collection pass against the configured storage: builds the sink and
//! checkpoint store, holds the GCS lease while the pass runs, and reports.
//! Shared by `run` (one pass) and `serve` (passes on a schedule).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::collector::{Collector, PassSummary};
use crate::config::{Config, SinkKind};
use crate::error::RunError;
use crate::gcs::{GcsClient, RetryPolicy};
use crate::lease::{self, Lease};
use crate::sink::{self, CheckpointStore, GcsSink, LocalDirSink, Sink, StdoutSink};

/// What a finished pass did and where.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The pass's figures.
    pub summary: PassSummary,
    /// Where the data went.
    pub data: String,
    /// Where the checkpoint is.
    pub checkpoint: String,
}

impl RunOutcome {
    /// The one-line summary.
    pub fn line(&self) -> String {
        self.summary
            .line(&self.data, &self.checkpoint, sink::now_ms())
    }
}

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

/// Opens the configured storage; `holder` names this process in GCS writes.
pub async fn open_storage(config: &Config, holder: &str) -> Result<Storage, RunError> {
    let output = &config.output;
    Ok(match output.sink {
        SinkKind::Local | SinkKind::Stdout => {
            let store = Arc::new(LocalDirSink::new(
                &output.output_dir,
                &output.prefix,
                &output.state_key,
            ));
            let sink: Arc<dyn Sink> = if output.sink == SinkKind::Stdout {
                Arc::new(StdoutSink)
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
            let h = &config.harness;
            let retry = RetryPolicy {
                max_retries: h.max_retries,
                base: Duration::from_millis(u64::from(h.retry_base_ms)),
                timeout: Duration::from_secs(u64::from(h.http_timeout_secs)),
            };
            let client = Arc::new(
                GcsClient::connect(bucket, retry)
                    .await
                    .map_err(|e| RunError::Credentials(e.to_string()))?,
            );
            tracing::info!(stage = "gcs", credentials = %client.credentials().source(), "resolved storage credentials");
            let sink = Arc::new(GcsSink::new(
                client.clone(),
                &output.prefix,
                &output.state_key,
                output.gzip,
                holder,
            ));
            Storage {
                sink: sink.clone(),
                checkpoints: sink,
                gcs: Some(client),
            }
        }
    })
}

/// Runs one pass. With `stop`, the pass ends early (progress committed) once it turns true.
pub async fn run_once(
    config: &Config,
    reset: bool,
    collector: &Collector,
    stop: Option<watch::Receiver<bool>>,
    progress: Option<&(dyn Fn(&PassSummary) + Sync)>,
) -> Result<RunOutcome, RunError> {
    let holder = lease::holder_id();
    let Storage {
        sink,
        checkpoints: store,
        gcs,
    } = open_storage(config, &holder).await?;
    let lease = match gcs {
        Some(client) => Some(
            Lease::acquire(
                client,
                &format!("{}.lease", config.output.state_key),
                &holder,
                Duration::from_secs(u64::from(config.output.lease_secs)),
            )
            .await?
            .keep(),
        ),
        None => None,
    };
    tracing::info!(
        account = %config.harness.account_id,
        api_base = %config.harness.api_base,
        sink = %sink.location(),
        checkpoint = %store.checkpoint_location(),
        "starting collection pass"
    );
    let result = pass(
        config,
        reset,
        collector,
        sink.clone(),
        store.clone(),
        stop,
        progress,
    )
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    Ok(RunOutcome {
        summary: result?,
        data: sink.location(),
        checkpoint: store.checkpoint_location(),
    })
}

async fn pass(
    config: &Config,
    reset: bool,
    collector: &Collector,
    sink: Arc<dyn Sink>,
    store: Arc<dyn CheckpointStore>,
    stop: Option<watch::Receiver<bool>>,
    progress: Option<&(dyn Fn(&PassSummary) + Sync)>,
) -> Result<PassSummary, RunError> {
    if reset {
        match store.set_aside().await {
            Ok(Some(aside)) => eprintln!(
                "harness-audit: checkpoint moved to {aside}; this run starts over {} minutes ago \
                 (START_MINUTES_BACK) and writes again any event already written since then",
                config.harness.start_minutes_back
            ),
            Ok(None) => eprintln!("harness-audit: there was no checkpoint to reset"),
            Err(e) => {
                return Err(match RunError::from(e) {
                    RunError::Storage(m) => {
                        RunError::Storage(format!("resetting the checkpoint: {m}"))
                    }
                    other => other,
                });
            }
        }
    }
    collector
        .run_pass(config, sink, store, stop, progress)
        .await
}
