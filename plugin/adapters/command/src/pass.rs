//! One collection pass of the composed command: its batches reach stdout
//! through the sink, events it could not read are added to
//! `<state-dir>/quarantine.jsonl` (as Harness sent them, one a line), and
//! each batch's checkpoint is stored in `<state-dir>/checkpoint.json` right
//! after both.

use std::process::ExitCode;

use harness_audit_runner::bindings::harness::adapter::output;
use harness_audit_runner::environment::ApiKey;
use harness_audit_runner::pass;

use crate::bindings::wasi::cli::stdout;
use crate::options::Options;
use crate::state::StateDir;

/// One page request per poll, so that a poll writes at most one batch and
/// its checkpoint is stored before the next batch is written: a crash
/// repeats at most one batch on stdout.
const MAX_PAGES_PER_POLL: u32 = 1;
const CHECKPOINT_FILE: &str = "checkpoint.json";
const QUARANTINE_FILE: &str = "quarantine.jsonl";

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

fn collect(options: Options) -> Result<pass::Summary, String> {
    let api_key = match options.environment.api_key {
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
        .map_err(|e| format!("reading the checkpoint: {e}"))?
        .map(String::from_utf8)
        .transpose()
        .map_err(|_| {
            format!(
                "{}/{CHECKPOINT_FILE} is not UTF-8 text: not a checkpoint of this source",
                options.state_dir
            )
        })?;
    let mut stored = checkpoint.clone().unwrap_or_default();
    output::attach(stdout::get_stdout());
    pass::collect(
        options.environment.settings,
        checkpoint.as_deref(),
        &api_key,
        MAX_PAGES_PER_POLL,
        |events| {
            let mut lines = Vec::new();
            for event in &events {
                eprintln!(
                    "harness-audit-command: quarantined an event ({}: {}) into {}/{QUARANTINE_FILE}",
                    pass::reason_name(event.reason),
                    event.detail,
                    options.state_dir
                );
                lines.extend_from_slice(&event.bytes);
                lines.push(b'\n');
            }
            state
                .append(QUARANTINE_FILE, &lines)
                .map_err(|e| format!("storing the quarantine: {e}"))
        },
        |checkpoint| {
            if checkpoint == stored {
                return Ok(());
            }
            state
                .replace(CHECKPOINT_FILE, checkpoint.as_bytes())
                .map_err(|e| format!("storing the checkpoint: {e}"))?;
            stored = checkpoint;
            Ok(())
        },
        |finding| eprintln!("harness-audit-command: completeness: {finding}"),
    )
}
