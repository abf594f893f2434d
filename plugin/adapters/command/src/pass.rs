//! One collection pass of the composed command: the embedded source, polled
//! until caught up; its batches reach stdout through the sink, and each
//! batch's checkpoint is stored in `<state-dir>/checkpoint.json` right after it.

use std::process::ExitCode;

use harness_audit_core::settings::{self as core, ApiFlavor, OutputShape};

use crate::bindings::harness::adapter::output;
use crate::bindings::harness::audit::source;
use crate::bindings::harness::audit::types::{
    self as wit, Budget, EmitError, Finding, FindingKind, SourceError,
};
use crate::bindings::wasi::cli::stdout;
use crate::options::{ApiKey, Options};
use crate::state::StateDir;

/// One page request per poll, so that a poll writes at most one batch and
/// its checkpoint is stored before the next batch is written: a crash
/// repeats at most one batch on stdout.
const MAX_PAGES_PER_POLL: u32 = 1;
const CHECKPOINT_FILE: &str = "checkpoint.json";

pub fn run(options: Options) -> ExitCode {
    match collect(options) {
        Ok(summary) => {
            eprintln!("harness-audit-command: {summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("harness-audit-command: {message}");
            ExitCode::FAILURE
        }
    }
}

fn collect(options: Options) -> Result<String, String> {
    let api_key = match options.api_key {
        ApiKey::Value(key) => key,
        ApiKey::File(path) => std::fs::read_to_string(&path)
            .map(|k| k.trim().to_owned())
            .map_err(|e| {
                format!("reading HARNESS_API_KEY_FILE `{path}`: {e}; is its directory preopened?")
            })?,
    };
    let state = StateDir::open(&options.state_dir)?;
    let checkpoint = state
        .read(CHECKPOINT_FILE)
        .map_err(|e| format!("reading the checkpoint: {e}"))?;
    let mut stored = checkpoint.clone().unwrap_or_default();
    let checkpoint = checkpoint.map(String::from_utf8).transpose().map_err(|_| {
        format!(
            "{}/{CHECKPOINT_FILE} is not UTF-8 text: not a checkpoint of this source",
            options.state_dir
        )
    })?;
    source::configure(
        &settings(options.settings),
        checkpoint.as_deref(),
        Some(&api_key),
    )
    .map_err(|e| describe(&e))?;

    output::attach(stdout::get_stdout());
    let mut store = |checkpoint: String| -> Result<(), String> {
        if checkpoint.as_bytes() == stored {
            return Ok(());
        }
        state
            .replace(CHECKPOINT_FILE, checkpoint.as_bytes())
            .map_err(|e| format!("storing the checkpoint: {e}"))?;
        stored = checkpoint.into_bytes();
        Ok(())
    };
    let (mut events, mut batches, mut pages, mut duplicates, mut retries) = (0, 0, 0, 0, 0);
    let mut late = 0;
    let mut unreconciled;
    loop {
        let polled = source::poll(Budget {
            max_pages: MAX_PAGES_PER_POLL,
        });
        // A batch written before a failure keeps its checkpoint.
        if let Some(checkpoint) = output::take_checkpoint() {
            store(checkpoint)?;
        }
        let report = polled.map_err(|e| describe(&e))?;
        events += report.events_emitted;
        batches += report.batches;
        pages += report.pages + report.count_requests;
        duplicates += report.duplicates_dropped;
        retries += report.retries;
        late += report.late_events;
        unreconciled = report.unreconciled_events;
        for finding in &report.findings {
            eprintln!(
                "harness-audit-command: completeness: {}",
                finding_text(finding)
            );
        }
        if report.caught_up {
            break;
        }
    }
    // A pass over an empty window advances the checkpoint without a batch.
    store(source::checkpoint())?;
    Ok(format!(
        "wrote {events} events in {batches} batches from {pages} requests; \
         {duplicates} duplicates dropped, {retries} retries, {late} late events; \
         {unreconciled} events counted by Harness and never returned"
    ))
}

/// The parsed settings as the source's `configure` takes them.
fn settings(s: core::Settings) -> wit::Settings {
    wit::Settings {
        query: wit::Query {
            api_base: s.api_base,
            account_id: s.account_id,
            api_flavor: match s.api_flavor {
                ApiFlavor::List => wit::ApiFlavor::List,
                ApiFlavor::ListV2 => wit::ApiFlavor::ListV2,
            },
            page_size: s.page_size,
            modules: s.modules,
            actions: s.actions,
            static_filter: s.static_filter,
            // The command reads no structured filters: FILTER_PRINCIPALS and the
            // others are refused as host-only settings.
            principals: Vec::new(),
            scopes: Vec::new(),
            resources: Vec::new(),
            environments: Vec::new(),
        },
        window: wit::Window {
            start_minutes_back: s.start_minutes_back,
            start_at_ms: s.start_at_ms,
            end_at_ms: s.end_at_ms,
            settle_lag_secs: s.settle_lag_secs,
            overlap_secs: s.overlap_secs,
            reconcile_interval_secs: s.reconcile_interval_secs,
            reconcile_hours: s.reconcile_hours,
        },
        retries: wit::Retries {
            max_retries: s.max_retries,
            retry_base_ms: s.retry_base_ms,
            retry_budget_secs: s.retry_budget_secs,
            max_requests_per_minute: s.max_requests_per_minute,
        },
        output: wit::Output {
            output_shape: match s.output_shape {
                OutputShape::Raw => wit::OutputShape::Raw,
                OutputShape::Streaming => wit::OutputShape::Streaming,
            },
            enrich_yaml_diff: s.enrich_yaml_diff,
            batch_max_events: s.batch_max_events,
        },
    }
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
            "rate limited after every retry (retry after {:?} s): {}; \
             lower MAX_REQUESTS_PER_MINUTE",
            r.retry_after_secs, r.message
        ),
        SourceError::ServerError(f) => {
            format!("Harness failed after every retry ({})", failure(f))
        }
        SourceError::Transport(m) => format!("the request did not complete after every retry: {m}"),
        SourceError::MalformedResponse(m) => {
            format!("Harness answered with something that is not an audit page: {m}")
        }
        SourceError::SinkFailure(EmitError::Rejected(m) | EmitError::Unavailable(m)) => {
            format!("{m}; the checkpoint was not advanced past the failed batch")
        }
    }
}
