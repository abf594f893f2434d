//! `check`: is this configuration ready to collect? Validates the settings,
//! resolves storage credentials, makes one authenticated request to Harness
//! through the component (nothing is stored and the checkpoint is untouched),
//! and proves the storage writable with a probe object it removes again.

use std::sync::Arc;

use crate::config::Config;
use crate::engine::Collector;
use crate::engine::error::RunError;
use crate::storage::{self, Discard, MemoryCheckpoint};

/// One line of the report and, for a failure, the exit code.
#[derive(Debug)]
pub struct Finding {
    /// What was checked.
    pub what: &'static str,
    /// The outcome in plain words.
    pub outcome: Result<String, RunError>,
}

/// Runs the checks after the configuration itself validated.
pub async fn check(config: &Config, collector: &Collector) -> Vec<Finding> {
    let mut findings = Vec::new();
    let storage = storage::probe(config).await.map_err(RunError::from);
    findings.push(Finding {
        what: "storage",
        outcome: storage,
    });
    // Retries are cut short: a diagnosis should answer quickly.
    let mut quick = config.clone();
    quick.source.retries.max_retries = quick.source.retries.max_retries.min(1);
    quick.source.retries.retry_budget_secs = quick.source.retries.retry_budget_secs.min(10);
    let harness = collector
        // `check` reads, it does not collect: batches go nowhere, the checkpoint is scratch.
        .probe(
            &quick,
            Arc::new(Discard),
            Arc::new(MemoryCheckpoint::default()),
            1,
        )
        .await
        .map(|summary| {
            format!(
                "the key can read the audit trail of account {} at {} ({} events in the first page of the last {} minutes)",
                config.source.query.account_id,
                config.harness.api_base,
                summary.events_read,
                config.source.window.start_minutes_back
            )
        });
    findings.push(Finding {
        what: "harness",
        outcome: harness,
    });
    findings
}
