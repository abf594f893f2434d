//! One collection pass: the core polled until caught up, each batch written
//! to stdout and then its checkpoint to `<state-dir>/checkpoint.json`.

use std::io::Write;
use std::process::ExitCode;

use harness_audit_core::error::{EmitError, SourceError};
use harness_audit_core::pass::{Batch, Pipeline, Source};
use harness_audit_core::report::{Finding, FindingKind};
use harness_audit_core::wasi::{self, WasiClock, WasiHttp};

use crate::options::{ApiKey, Options};
use crate::state::StateDir;

/// Page requests per `poll` call, as the host budgets them.
const MAX_PAGES_PER_POLL: u32 = 20;
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
    let mut source = Source::new(options.settings, checkpoint.as_deref(), wasi::now_ms())
        .map_err(|e| describe(&e))?;

    let mut http = WasiHttp::with_api_key(api_key);
    let mut stdout = StdoutPipeline {
        state,
        stored: checkpoint.unwrap_or_default(),
    };
    let (mut events, mut batches, mut pages, mut duplicates, mut retries) = (0, 0, 0, 0, 0);
    let mut late = 0;
    let mut unreconciled;
    loop {
        let report = source
            .poll(MAX_PAGES_PER_POLL, &mut http, &mut stdout, &mut WasiClock)
            .map_err(|e| describe(&e))?;
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
    stdout.store_checkpoint(&source.checkpoint())?;
    Ok(format!(
        "wrote {events} events in {batches} batches from {pages} requests; \
         {duplicates} duplicates dropped, {retries} retries, {late} late events; \
         {unreconciled} events counted by Harness and never returned"
    ))
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
        f.range.start_ms,
        f.range.end_ms,
        f.counted,
        f.collected,
        if f.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", f.detail)
        }
    )
}

/// Stdout is at least once: a batch written before a crash that kept its
/// checkpoint from being stored is written again by the next run.
struct StdoutPipeline {
    state: StateDir,
    stored: Vec<u8>,
}

impl StdoutPipeline {
    fn store_checkpoint(&mut self, checkpoint: &[u8]) -> Result<(), String> {
        if checkpoint == self.stored {
            return Ok(());
        }
        self.state
            .replace(CHECKPOINT_FILE, checkpoint)
            .map_err(|e| format!("storing the checkpoint: {e}"))?;
        self.stored = checkpoint.to_vec();
        Ok(())
    }
}

impl Pipeline for StdoutPipeline {
    fn emit(&mut self, batch: Batch) -> Result<(), EmitError> {
        let mut out = std::io::stdout().lock();
        out.write_all(&batch.lines)
            .and_then(|()| out.flush())
            .map_err(|e| EmitError::Unavailable(format!("writing to stdout: {e}")))?;
        self.store_checkpoint(&batch.checkpoint)
            .map_err(EmitError::Unavailable)
    }
}

fn describe(error: &SourceError) -> String {
    match error {
        SourceError::InvalidSettings(m) => format!("invalid settings or checkpoint: {m}"),
        SourceError::NotConfigured => "the source was polled before it was configured".into(),
        SourceError::Unauthorized(f) => format!(
            "Harness refused the API key ({f}): check HARNESS_API_KEY and HARNESS_ACCOUNT_ID"
        ),
        SourceError::Forbidden(f) => format!(
            "the key's principal may not read the audit trail ({f}): grant it core_audit_view"
        ),
        SourceError::BadRequest(f) => format!("Harness rejected the request ({f})"),
        SourceError::RateLimited {
            retry_after_secs,
            message,
        } => format!(
            "rate limited after every retry (retry after {retry_after_secs:?} s): {message}; \
             lower MAX_REQUESTS_PER_MINUTE"
        ),
        SourceError::ServerError(f) => format!("Harness failed after every retry ({f})"),
        SourceError::Transport(m) => format!("the request did not complete after every retry: {m}"),
        SourceError::MalformedResponse(m) => {
            format!("Harness answered with something that is not an audit page: {m}")
        }
        SourceError::SinkFailure(EmitError::Rejected(m) | EmitError::Unavailable(m)) => {
            format!("{m}; the checkpoint was not advanced past the failed batch")
        }
    }
}
