//! `check`: is this configuration ready to collect? Validates the settings,
//! resolves storage credentials, makes one authenticated request to Harness
//! through the component (nothing is stored and the checkpoint is untouched),
//! and proves the storage writable with a probe object it removes again.

use std::sync::Arc;
use std::time::Duration;

use crate::collector::Collector;
use crate::config::{Config, SinkKind};
use crate::error::RunError;
use crate::gcs::{GcsClient, RetryPolicy, Upload};
use crate::sink::{Discard, MemoryCheckpoint};

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
    let storage = storage(config).await;
    findings.push(Finding {
        what: "storage",
        outcome: storage,
    });
    // Retries are cut short: a diagnosis should answer quickly.
    let mut quick = config.clone();
    quick.harness.max_retries = quick.harness.max_retries.min(1);
    quick.harness.retry_budget_secs = quick.harness.retry_budget_secs.min(10);
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
                config.harness.account_id,
                config.harness.api_base,
                summary.events_read,
                config.harness.start_minutes_back
            )
        });
    findings.push(Finding {
        what: "harness",
        outcome: harness,
    });
    findings
}

async fn storage(config: &Config) -> Result<String, RunError> {
    let output = &config.output;
    match output.sink {
        SinkKind::Stdout | SinkKind::Local => {
            let dir = output.output_dir.join(
                std::path::Path::new(&output.state_key)
                    .parent()
                    .unwrap_or(std::path::Path::new("")),
            );
            let probe = dir.join(format!(".harness-audit-check-{}", std::process::id()));
            let written = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&probe, b"check"))
                .and_then(|()| std::fs::remove_file(&probe));
            written.map_err(|e| {
                RunError::Storage(format!(
                    "the output directory {} is not writable: {e}. Fix: create it writable by this user, or set OUTPUT_DIR",
                    dir.display()
                ))
            })?;
            Ok(format!("{} is writable", output.output_dir.display()))
        }
        SinkKind::Gcs => {
            let bucket = output
                .gcs_bucket
                .as_deref()
                .expect("validation requires a bucket for the gcs sink");
            let retry = RetryPolicy {
                max_retries: 1,
                base: Duration::from_millis(u64::from(config.harness.retry_base_ms)),
                timeout: Duration::from_secs(u64::from(config.harness.http_timeout_secs)),
            };
            let client = GcsClient::connect(bucket, retry)
                .await
                .map_err(|e| RunError::Credentials(e.to_string()))?;
            let probe = format!("{}.check-{}", output.state_key, std::process::id());
            let metadata = std::collections::BTreeMap::new();
            let generation = client
                .insert(&probe, Upload::json(b"{}", &metadata), 0)
                .await
                .map_err(|e| RunError::Storage(e.to_string()))?;
            client
                .delete(&probe, generation)
                .await
                .map_err(|e| RunError::Storage(e.to_string()))?;
            Ok(format!(
                "gs://{bucket} is writable with {}",
                client.credentials().source()
            ))
        }
    }
}
