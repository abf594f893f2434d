//! `verify`: walks the evidence chains of a store and checks every object
//! against them, and with `--completeness` the stored events against the
//! counts of Harness the ledger recorded. It reads only; nothing is written.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::commands::ledger::{self, LedgerRange};
use crate::config::{Config, OutputShape, SinkKind};
use crate::engine::Collector;
use crate::engine::RunError;
use crate::evidence::PublicKey;
use crate::evidence::digest::{chain_dir, digests_root, state_key_of};
use crate::evidence::verify::{Report, Verifier};
use crate::storage::journal::StateFile;
use crate::storage::{self, SinkError, StorageError};
use harness_audit_core::event::line_time;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    /// Objects from this time (epoch ms), by their names.
    pub from_ms: Option<u64>,
    /// Objects up to this time (epoch ms).
    pub to_ms: Option<u64>,
    /// Checks each digest's signature with this key.
    pub public_key: Option<PublicKey>,
    /// Also compares the events stored with the counts of Harness the ledger recorded.
    pub completeness: bool,
}

/// One hour of the completeness comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourCheck {
    /// First millisecond of the hour (RFC 3339).
    pub start: String,
    /// Harness's count at the ledger's last check of the hour.
    pub counted: u64,
    /// The last millisecond that count covers (RFC 3339).
    pub counted_through: String,
    /// Events found in the store's proven objects over the same span.
    pub found: u64,
    /// Counted but not found.
    pub gap: u64,
}

/// The verdict, as the exit code tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every object proven, nothing added, the chain whole (and, with
    /// `--completeness`, every counted event found).
    Proven,
    /// Something was modified, removed, added, or the chain is broken.
    IntegrityBroken,
    /// The store is intact, but holds fewer events than Harness counted.
    CompletenessGap,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutcome {
    /// The verdict.
    pub verdict: Verdict,
    /// Where the objects were read.
    pub store: String,
    /// The chains, objects and problems.
    #[serde(flatten)]
    pub report: Report,
    /// Each hour the ledger counted, with `--completeness`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness: Option<Vec<HourCheck>>,
    /// Hours of the ledger in the range that Harness's count was never
    /// taken for, with `--completeness`: nothing proves them complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncounted_hours: Option<u64>,
}

fn storage_error(during: &'static str) -> impl FnOnce(SinkError) -> RunError {
    move |e| StorageError::during(during, e).into()
}

/// Verifies the store `config` names.
pub async fn verify(
    config: &Config,
    collector: &Collector,
    request: VerifyRequest,
) -> Result<VerifyOutcome, RunError> {
    if config.output.sink == SinkKind::Stdout {
        return Err(RunError::from(crate::config::ConfigError::Missing {
            what: "SINK",
            hint: "verify reads the objects a sink stores, and SINK=stdout stores none; give verify the \
                   settings of the store the collector writes to",
        }));
    }
    let storage = storage::open(config, "harness-audit-verify").await?;
    let objects = storage
        .checkpoints
        .objects()
        .expect("every store `storage::open` gives keeps objects");
    let output = &config.output;
    let mut verifier = Verifier::new(
        &output.prefix,
        request.public_key.clone(),
        request.from_ms,
        request.to_ms,
    );
    let root = digests_root(&output.state_key);
    let mut chains = BTreeSet::from([chain_dir(&output.state_key)]);
    for name in objects
        .list(&root)
        .await
        .map_err(storage_error("listing the digests: "))?
    {
        let Some((chain, _)) = name[root.len()..].split_once('/') else {
            continue;
        };
        let chain = format!("{root}{chain}/");
        let bytes = objects
            .read(&name)
            .await
            .map_err(storage_error("reading a digest: "))?
            .unwrap_or_default();
        verifier.digest(&chain, &name, &bytes);
        chains.insert(chain);
    }
    for chain in &chains {
        let Some(state_key) = state_key_of(chain) else {
            continue;
        };
        let Some(bytes) = objects
            .read(&state_key)
            .await
            .map_err(storage_error("reading a checkpoint: "))?
        else {
            continue;
        };
        let state = StateFile::parse(&bytes).map_err(|e| StorageError::CorruptState {
            location: objects.url(&state_key),
            reason: e.to_string(),
        })?;
        verifier.state(chain, state.chain.into_owned(), state.unsealed.into_owned());
    }
    let field = match config.source.output.output_shape {
        OutputShape::Raw => "timestamp",
        OutputShape::Streaming => "auditEventTime",
    };
    let mut times = Vec::new();
    for name in verifier.walk_chains() {
        let content = objects
            .read(&name)
            .await
            .map_err(storage_error("reading an object: "))?;
        let proven = verifier.object(&name, content.as_deref());
        if let (true, true, Some(content)) = (request.completeness, proven, &content) {
            // A quarantine's lines may not be read: its digest entry says where each sits.
            match verifier.quarantine_times(&name) {
                Some(at) => times.extend_from_slice(at),
                None => times.extend(
                    content
                        .split(|b| *b == b'\n')
                        .filter_map(|line| std::str::from_utf8(line).ok())
                        .filter_map(|line| line_time(line, field).ok().flatten()),
                ),
            }
        }
    }
    // Not batches: the Cloud Run recipe's checkpoint, taken over and left in
    // place, and a checkpoint kept inside the prefix with its lease and digests.
    let recipe_state = format!("{}/state.json", output.prefix);
    let lease = format!("{}.lease", output.state_key);
    let mut found = objects
        .list(&format!("{}/", output.prefix))
        .await
        .map_err(storage_error("listing the objects: "))?;
    found.extend(
        objects
            .list(&format!("{}/", storage::quarantine_prefix(&output.prefix)))
            .await
            .map_err(storage_error("listing the quarantine: "))?,
    );
    verifier.found(found.into_iter().filter(|n| {
        ![&recipe_state, &output.state_key, &lease].contains(&n) && !n.starts_with(&root)
    }));
    let report = verifier.finish();
    let completeness = if request.completeness {
        times.sort_unstable();
        let range = LedgerRange {
            from_ms: request.from_ms,
            to_ms: request.to_ms,
        };
        let view = ledger::read(config, collector, range).await?;
        Some(compare(&view, &times))
    } else {
        None
    };
    let uncounted_hours = completeness.as_ref().map(|(_, uncounted)| *uncounted);
    let completeness = completeness.map(|(hours, _)| hours);
    let verdict = if !report.problems.is_empty() {
        Verdict::IntegrityBroken
    } else if completeness
        .as_ref()
        .is_some_and(|hours| hours.iter().any(|h| h.gap > 0))
    {
        Verdict::CompletenessGap
    } else {
        Verdict::Proven
    };
    Ok(VerifyOutcome {
        verdict,
        store: objects.url(""),
        report,
        completeness,
        uncounted_hours,
    })
}

/// Each counted hour against the events found (`times`, sorted) over the
/// span its count covers; and how many hours have no count.
fn compare(view: &ledger::LedgerView, times: &[u64]) -> (Vec<HourCheck>, u64) {
    let in_span = |from: u64, through: u64| {
        (times.partition_point(|t| *t <= through) - times.partition_point(|t| *t < from)) as u64
    };
    let uncounted = view.hours.iter().filter(|h| h.counted.is_none()).count() as u64;
    let counted = view
        .hours
        .iter()
        .filter_map(|hour| {
            let counted = hour.counted?;
            let through = hour.counted_through.clone()?;
            let from = crate::time::parse_rfc3339_utc(&hour.start)?;
            let through_ms = crate::time::parse_rfc3339_utc(&through)?;
            let found = in_span(from, through_ms);
            Some(HourCheck {
                start: hour.start.clone(),
                counted,
                counted_through: through,
                found,
                gap: counted.saturating_sub(found),
            })
        })
        .collect();
    (counted, uncounted)
}

impl VerifyOutcome {
    /// The report for people.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let r = &self.report;
        let mut out = String::new();
        let _ = writeln!(out, "store: {} (prefix {})", self.store, r.prefix);
        if r.from.is_some() || r.to.is_some() {
            let _ = writeln!(
                out,
                "objects named from {} to {}",
                r.from.as_deref().unwrap_or("the start"),
                r.to.as_deref().unwrap_or("the end")
            );
        }
        for chain in &r.chains {
            let _ = writeln!(
                out,
                "chain of {}: {} digests, the checkpoint records {}; {} objects await the next digest",
                chain.state,
                chain.digests,
                chain.head.map_or_else(
                    || "nothing (no checkpoint)".to_owned(),
                    |h| format!("digest {h} as the newest")
                ),
                chain.pending
            );
        }
        let _ = writeln!(
            out,
            "signatures: {}",
            r.public_key.as_deref().map_or_else(
                || "not checked (give --public-key)".to_owned(),
                |k| format!("checked with {k}")
            )
        );
        let _ = writeln!(
            out,
            "objects: {} proven, holding {} events ({} listed by a checkpoint, awaiting their digest)",
            r.objects_checked, r.events, r.objects_pending
        );
        if r.problems.is_empty() {
            let _ = writeln!(out, "problems: none");
        } else {
            let _ = writeln!(out, "problems: {}", r.problems.len());
            for problem in &r.problems {
                let _ = writeln!(out, "  {problem}");
            }
        }
        if let Some(hours) = &self.completeness {
            let counted: u64 = hours.iter().map(|h| h.counted).sum();
            let found: u64 = hours.iter().map(|h| h.found).sum();
            let _ = writeln!(
                out,
                "completeness: {} hours counted by Harness: {counted} events counted, {found} found; \
                 {} hours never counted (the collector counts an hour when a window reads short, and \
                 at each reconciliation)",
                hours.len(),
                self.uncounted_hours.unwrap_or(0)
            );
            for hour in hours.iter().filter(|h| h.gap > 0) {
                let _ = writeln!(
                    out,
                    "  gap: {} through {}: Harness counted {}, the store holds {} ({} missing)",
                    hour.start, hour.counted_through, hour.counted, hour.found, hour.gap
                );
            }
        }
        let _ = writeln!(
            out,
            "verdict: {}",
            match self.verdict {
                Verdict::Proven => "proven",
                Verdict::IntegrityBroken => "integrity broken",
                Verdict::CompletenessGap => "completeness gap",
            }
        );
        out
    }

    /// The report as one JSON document.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report always serializes")
    }
}
