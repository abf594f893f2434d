//! `run`: one collection pass against the configured storage, holding its
//! lease while the pass runs, and the summary it reports.
//! Shared by `run` (one pass) and `serve` (passes on a schedule).

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::engine::{Collector, PassSummary, PassThread, RunError};
use crate::storage::{self, CheckpointStore, Sink, StorageError, lease};
use crate::time::now_ms;

/// What a finished pass did and where.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The pass's figures.
    pub summary: PassSummary,
    /// Where the data went.
    pub data: String,
    /// Where a quarantine goes, for a store that keeps one.
    pub quarantine: Option<String>,
    /// Where the checkpoint is.
    pub checkpoint: String,
}

impl RunOutcome {
    /// The one-line summary.
    pub fn line(&self) -> String {
        self.summary.line(
            &self.data,
            self.quarantine.as_deref(),
            &self.checkpoint,
            now_ms(),
        )
    }
}

/// A stop flag that turns true at the first SIGTERM or SIGINT: the pass ends
/// at its next batch boundary, `emit` or epoch tick, with everything emitted
/// so far committed. A second signal ends the process at once, which is as
/// safe: a write in flight is settled by the next run. The process then
/// exits with `exit_code`.
pub fn stop_on_signals(exit_code: u8) -> std::io::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!(
            "stopping: the pass ends at its next batch boundary; a second signal ends it now"
        );
        let _ = stop.send(true);
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        std::process::exit(i32::from(exit_code));
    });
    Ok(stopped)
}

/// Runs one pass on `thread`. With `stop`, the pass ends early (progress
/// committed) once it turns true.
pub async fn run_once(
    config: &Config,
    reset: bool,
    collector: &Collector,
    (thread, stop): (PassThread, Option<watch::Receiver<bool>>),
    progress: Option<&(dyn Fn(&PassSummary) + Sync)>,
) -> Result<RunOutcome, RunError> {
    let holder = lease::holder_id();
    let storage = storage::open(config, &holder).await?;
    let lease = storage.lease(config, &holder).await?;
    let (sink, store) = (storage.sink, storage.checkpoints);
    tracing::info!(
        account = %config.source.query.account_id,
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
        (thread, stop),
        progress,
    )
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    Ok(RunOutcome {
        summary: result?,
        data: sink.location(),
        quarantine: sink.quarantine_location(),
        checkpoint: store.checkpoint_location(),
    })
}

async fn pass(
    config: &Config,
    reset: bool,
    collector: &Collector,
    sink: Arc<dyn Sink>,
    store: Arc<dyn CheckpointStore>,
    interrupts: (PassThread, Option<watch::Receiver<bool>>),
    progress: Option<&(dyn Fn(&PassSummary) + Sync)>,
) -> Result<PassSummary, RunError> {
    if reset {
        match store.set_aside().await {
            Ok(Some(aside)) => eprintln!(
                "harness-audit: checkpoint moved to {aside}; this run starts over {} minutes ago \
                 (START_MINUTES_BACK) and writes again any event already written since then",
                config.source.window.start_minutes_back
            ),
            Ok(None) => eprintln!("harness-audit: there was no checkpoint to reset"),
            Err(e) => return Err(StorageError::during("resetting the checkpoint: ", e).into()),
        }
    }
    collector
        .run_pass(config, sink, store, interrupts, progress)
        .await
}
