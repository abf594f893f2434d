//! One pass of the imported source: configured, then polled until caught
//! up. The sink writes the batches to the stream the runner attached; the
//! runner stores or hands back their checkpoints.

use std::fmt;

use harness_audit_core::settings as core;

use crate::bindings::harness::adapter::output;
use crate::bindings::harness::audit::source;
use crate::bindings::harness::audit::types::{
    self as wit, Budget, EmitError, Finding, FindingKind, QuarantinedEvent, SourceError,
};

/// What a pass did, in the host's words.
#[derive(Debug, Default)]
pub struct Summary {
    events: u64,
    quarantined: u64,
    batches: u32,
    requests: u32,
    duplicates: u64,
    retries: u32,
    late: u64,
    unreconciled: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} events in {} batches from {} requests, and quarantined {}; {} duplicates \
             dropped, {} retries, {} late events; {} events counted by Harness and never returned",
            self.events,
            self.batches,
            self.requests,
            self.quarantined,
            self.duplicates,
            self.retries,
            self.late,
            self.unreconciled
        )
    }
}

/// Configures the source with `settings`, `checkpoint` and the key, and polls
/// it until it is caught up, `max_pages` requests a poll. After each poll,
/// `quarantine` gets the events its batches quarantined, if any, then
/// `store` the checkpoint of the batches the sink wrote during it, if any,
/// even when the poll failed; at the end `store` gets the source's own. Each
/// completeness finding goes to `finding`, as a sentence.
pub fn collect(
    settings: core::Settings,
    checkpoint: Option<&str>,
    api_key: &str,
    max_pages: u32,
    mut quarantine: impl FnMut(Vec<QuarantinedEvent>) -> Result<(), String>,
    mut store: impl FnMut(String) -> Result<(), String>,
    mut finding: impl FnMut(String),
) -> Result<Summary, String> {
    source::configure(
        &harness_audit_core::wit_settings!(wit, &settings),
        checkpoint,
        Some(api_key),
    )
    .map_err(|e| describe(&e))?;
    let mut summary = Summary::default();
    loop {
        let polled = source::poll(Budget { max_pages });
        // A batch written before a failure keeps its quarantine and its checkpoint.
        let quarantined = output::take_quarantine();
        if !quarantined.is_empty() {
            quarantine(quarantined)?;
        }
        if let Some(checkpoint) = output::take_checkpoint() {
            store(checkpoint)?;
        }
        let report = polled.map_err(|e| describe(&e))?;
        summary.events += report.events_emitted;
        summary.quarantined += report.events_quarantined;
        summary.batches += report.batches;
        summary.requests += report.pages + report.count_requests;
        summary.duplicates += report.duplicates_dropped;
        summary.retries += report.retries;
        summary.late += report.late_events;
        summary.unreconciled = report.unreconciled_events;
        for f in &report.findings {
            finding(finding_text(f));
        }
        if report.caught_up {
            break;
        }
    }
    // A pass over an empty window advances the checkpoint without a batch.
    store(source::checkpoint())?;
    Ok(summary)
}

fn finding_text(f: &Finding) -> String {
    let what = match f.kind {
        FindingKind::WindowShort => {
            "a window returned fewer events than counted; checking its hours"
        }
        FindingKind::LateCollected => "late events collected",
        FindingKind::GapRemains => "Harness counts events it does not return",
        FindingKind::TieIncomplete => "a millisecond was not read to its count",
        FindingKind::CountDecreased => "an hour's count went down",
        FindingKind::CountBelowStored => "Harness counts fewer events than were stored",
        FindingKind::CountFailed => "a count request failed; checked again next interval",
    };
    format!(
        "{what} (epoch ms {}..{}: counted {}, collected {}){}",
        f.start_ms,
        f.end_ms,
        f.counted,
        f.collected,
        if f.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", f.detail)
        }
    )
}

/// A quarantine reason's name, as the WIT spells it.
pub fn reason_name(reason: wit::QuarantineReason) -> &'static str {
    harness_audit_core::reason_from_wit!(wit, reason).name()
}

fn describe(error: &SourceError) -> String {
    // The core's wording of a failed response, as the host logs it.
    let failure = |f: &wit::ApiFailure| {
        harness_audit_core::error::ApiFailure {
            status: f.status,
            code: f.code.clone(),
            message: f.message.clone(),
            correlation_id: f.correlation_id.clone(),
        }
        .to_string()
    };
    match error {
        SourceError::InvalidSettings(m) => format!("invalid settings or checkpoint: {m}"),
        SourceError::NotConfigured => "the source was polled before it was configured".into(),
        SourceError::Unauthorized(f) => format!(
            "Harness refused the API key ({}): check HARNESS_API_KEY and HARNESS_ACCOUNT_ID",
            failure(f)
        ),
        SourceError::Forbidden(f) => format!(
            "the key's principal may not read the audit trail ({}): grant it core_audit_view",
            failure(f)
        ),
        SourceError::BadRequest(f) => format!("Harness rejected the request ({})", failure(f)),
        SourceError::RateLimited(r) => format!(
            "Harness rate-limited every retry ({}): {}; lower MAX_REQUESTS_PER_MINUTE so that \
             everything using this key stays under its budget",
            r.retry_after_secs.map_or_else(
                || "it sent no Retry-After".to_owned(),
                |secs| format!("it asked to wait {secs} s")
            ),
            r.message
        ),
        SourceError::ServerError(f) => {
            format!("Harness failed after every retry ({})", failure(f))
        }
        SourceError::Transport(m) => format!("the request did not complete after every retry: {m}"),
        SourceError::UnusableResponse(u) => format!(
            "Harness answered with something that is not a page of audit events, after the retries \
             its kind allows: {}",
            harness_audit_core::unusable_from_wit!(wit, u)
        ),
        SourceError::SinkFailure(EmitError::Rejected(m) | EmitError::Unavailable(m)) => {
            format!("{m}; the checkpoint was not advanced past the failed batch")
        }
    }
}
