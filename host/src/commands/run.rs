//! `run`: one collection pass against the configured storage, holding its
//! lease while the pass runs, and the summary it reports.
//! Shared by `run` (one pass) and `serve` (passes on a schedule).

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::engine::{Collector, PassSummary};
use crate::error::RunError;
use crate::storage::{self, CheckpointStore, Sink, lease};
use crate::time::now_ms;

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
        self.summary.line(&self.data, &self.checkpoint, now_ms())
    }
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
    let storage = storage::open(config, &holder).await?;
    let lease = storage.lease(config, &holder).await?;
    let (sink, store) = (storage.sink, storage.checkpoints);
    tracing::info!(
        account = %config.source.account_id,
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
                config.source.start_minutes_back
            ),
            Ok(None) => eprintln!("harness-audit: there was no checkpoint to reset"),
            Err(e) => {
                return Err(match RunError::from(e) {
                    RunError::Storage { source, .. } => RunError::Storage {
                        during: "resetting the checkpoint: ",
                        source,
                    },
                    other => other,
                });
            }
        }
    }
    collector
        .run_pass(config, sink, store, stop, progress)
        .await
}
