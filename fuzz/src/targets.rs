//! The targets: what each reader must do with whatever it is given.

use std::path::Path;

use arbitrary::Unstructured;
use harness_audit::config::{RawConfig, Validate as _};
use harness_audit::engine::batch_rules::{BatchRules, check_batch};
use harness_audit::engine::bindings::harness::audit::types as wit;
use harness_audit::evidence::Digest;
use harness_audit::storage::journal::StateFile;
use harness_audit::storage::recipe;
use harness_audit_core::checkpoint::Checkpoint;
use harness_audit_core::error::{EmitError, RequestAt};
use harness_audit_core::event::{self, line_time};
use harness_audit_core::page::{self, Content, HttpResponse};
use harness_audit_core::pass::{self, Clock, Pipeline, Source, Transport, TransportError};
use harness_audit_core::settings::{ApiFlavor, OutputShape, Settings};
use harness_audit_core::shape;

use crate::inputs::{BatchInput, PageInput, PassInput};

/// A line as a batch holds it: JSON holds line breaks only between tokens.
fn flat(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Every event of a parsed page sits in order inside the request; each
/// readable one reads back, in either shape, at its time; a quarantined one
/// keeps bytes.
pub fn page(input: &PageInput) {
    let (encoding, body) = input.encoded();
    let resp = HttpResponse {
        status: input.status,
        body,
        retry_after_secs: None,
        content_type: input.content_type.clone(),
        content_encoding: encoding.map(str::to_owned),
    };
    let (start_ms, end_ms, page_index, page_size) = input.request;
    let at = RequestAt {
        start_ms,
        end_ms,
        page_index,
        page_size,
    };
    let Ok(page) = page::parse(&resp, &at) else {
        return;
    };
    let mut previous = start_ms;
    for e in &page.events {
        assert!(
            (previous..=end_ms).contains(&e.at_ms),
            "placed out of order: {e:?}"
        );
        previous = e.at_ms;
        match &e.content {
            Content::Json(raw) => {
                assert_eq!(
                    e.time_ms,
                    Some(e.at_ms),
                    "a readable event sits at its time"
                );
                assert_eq!(
                    line_time(&flat(raw.get()), "timestamp"),
                    Ok(Some(e.at_ms)),
                    "{}",
                    raw.get()
                );
                if let Ok(line) = shape::to_streaming(raw.get(), e.at_ms) {
                    assert_eq!(
                        line_time(&flat(&line), "auditEventTime"),
                        Ok(Some(e.at_ms)),
                        "{line}"
                    );
                }
            }
            Content::Quarantined(q) => assert!(!q.bytes.is_empty()),
        }
    }
}

/// One event: when it reads whole, its line reads back at its time in
/// either shape (or the streaming shape says why it cannot hold it).
pub fn event(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if serde_json::from_str::<&serde_json::value::RawValue>(text).is_err() {
        return;
    }
    let Ok(keys) = event::read(text) else {
        return;
    };
    let Ok(at) = keys.timestamp else {
        return;
    };
    if keys.problem().is_some() {
        return;
    }
    // serde keeps the last of a repeated member; the reader refuses repeats,
    // wherever they are, so both must name the same values.
    if let Ok(serde_json::Value::Object(members)) = serde_json::from_str(text) {
        assert_eq!(
            members.get("auditId").and_then(|id| id.as_str()),
            keys.audit_id.as_deref().ok(),
            "{text}"
        );
        let time = match &members["timestamp"] {
            serde_json::Value::String(digits) => digits.parse().ok(),
            other => other.as_u64(),
        };
        assert_eq!(time, Some(at), "{text}");
    }
    assert_eq!(line_time(&flat(text), "timestamp"), Ok(Some(at)), "{text}");
    if let Ok(line) = shape::to_streaming(text, at) {
        assert_eq!(
            line_time(&flat(&line), "auditEventTime"),
            Ok(Some(at)),
            "{line}"
        );
    }
}

/// Answers drawn per request, fitted to the range it asks for.
struct Answers {
    seeds: Vec<Vec<u8>>,
    served: usize,
}

impl Transport for Answers {
    fn post_json(&mut self, url: &str, body: &[u8]) -> Result<HttpResponse, TransportError> {
        let request: serde_json::Value = serde_json::from_slice(body).expect("the core's body");
        let query = |key: &str| -> u32 {
            url.split(&format!("{key}="))
                .nth(1)
                .and_then(|rest| rest.split('&').next()?.parse().ok())
                .unwrap_or(0)
        };
        let range = (
            request["startTime"].as_u64().unwrap_or(0),
            request["endTime"].as_u64().unwrap_or(0),
            query("pageIndex"),
            query("pageSize"),
        );
        let Some(seed) = self.seeds.get(self.served) else {
            // Past the seeds Harness has nothing more: the pass ends.
            return Ok(HttpResponse::json(
                200,
                br#"{"status":"SUCCESS","data":{"totalItems":0,"content":[]}}"#.to_vec(),
            ));
        };
        self.served += 1;
        let Ok(input) = PageInput::answering(&mut Unstructured::new(seed), range) else {
            return Err(TransportError::Failed("the seed ran out".into()));
        };
        let (encoding, body) = input.encoded();
        Ok(HttpResponse {
            status: input.status,
            body,
            retry_after_secs: None,
            content_type: input.content_type,
            content_encoding: encoding.map(str::to_owned),
        })
    }

    fn get(&mut self, _: &str) -> Result<HttpResponse, TransportError> {
        Err(TransportError::Failed("no YAML diffs here".into()))
    }
}

/// A clock that moves only when slept on.
struct Still(u64);

impl Clock for Still {
    fn now_ms(&mut self) -> u64 {
        self.0
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.0 += ms;
    }
    fn random_u64(&mut self) -> u64 {
        0
    }
}

/// Checks each batch as the host does.
struct HostChecks {
    rules: BatchRules,
    now_ms: u64,
}

impl Pipeline for HostChecks {
    fn emit(&mut self, batch: pass::Batch) -> Result<(), EmitError> {
        let batch = harness_audit_core::wit_batch!(wit, batch);
        if let Err(refusal) = check_batch(&batch, &self.rules, self.now_ms) {
            panic!("the host refused a batch the core built: {refusal}");
        }
        Ok(())
    }
}

/// A pass over fuzzed answers: whatever Harness sends, every batch the core
/// emits meets the host's checks, and the pass ends.
pub fn pass(input: &PassInput) {
    let now_ms = 1_749_600_000_000;
    let settings = Settings {
        query: harness_audit_core::settings::Query {
            api_base: "https://app.harness.io".into(),
            account_id: "acct".into(),
            page_size: input.page_size,
            modules: Vec::new(),
            actions: Vec::new(),
            static_filter: None,
            principals: Vec::new(),
            scopes: Vec::new(),
            resources: Vec::new(),
            environments: Vec::new(),
            api_flavor: ApiFlavor::List,
        },
        window: harness_audit_core::settings::Window {
            start_minutes_back: 120,
            start_at_ms: None,
            end_at_ms: None,
            settle_lag_secs: 0,
            overlap_secs: 60,
            reconcile_interval_secs: 1,
            reconcile_hours: 2,
            reconcile_recent_interval_secs: 1,
            reconcile_recent_hours: 1,
        },
        retries: harness_audit_core::settings::Retries {
            max_retries: 1,
            retry_base_ms: 0,
            retry_budget_secs: 0,
            max_requests_per_minute: 0,
        },
        output: harness_audit_core::settings::Output {
            output_shape: if input.streaming {
                OutputShape::Streaming
            } else {
                OutputShape::Raw
            },
            enrich_yaml_diff: false,
            batch_max_events: input.batch_max_events,
        },
    };
    let mut source = Source::new(settings, None, now_ms).expect("valid settings");
    let mut answers = Answers {
        seeds: input.answers.clone(),
        served: 0,
    };
    let mut checks = HostChecks {
        rules: BatchRules {
            max_events: input.batch_max_events,
            time_field: if input.streaming {
                "auditEventTime"
            } else {
                "timestamp"
            },
            pass_from_ms: 0,
            pass_to_ms: None,
        },
        now_ms,
    };
    let mut clock = Still(now_ms);
    // Bounded: every answer is served once, then empty pages end the pass.
    for _ in 0..input.answers.len() * 4 + 8 {
        match source.poll(4, &mut answers, &mut checks, &mut clock) {
            Ok(report) if report.caught_up => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The checkpoint reader: what it accepts, it writes back the same.
pub fn checkpoint(bytes: &[u8]) {
    if let Ok(checkpoint) = Checkpoint::load(bytes, "acct", 60_000) {
        let again = Checkpoint::load(&checkpoint.to_bytes(), "acct", 60_000)
            .expect("a checkpoint the core wrote reads back");
        assert_eq!(again, checkpoint);
    }
}

/// The state, digest and recipe readers: what they accept round-trips.
pub fn state(bytes: &[u8]) {
    if let Ok(state) = StateFile::parse(bytes) {
        let again = StateFile::parse(&state.to_bytes()).expect("a state the host wrote reads back");
        assert_eq!(again.checkpoint, state.checkpoint);
        assert_eq!(again.pending, state.pending);
        assert_eq!(again.unsealed, state.unsealed);
        assert_eq!(again.stall, state.stall);
    }
    let _ = Digest::parse(bytes);
    let _ = recipe::parse_since(bytes);
}

/// The host's batch checks: what they accept holds as many lines as it
/// says, each one object at a time between the batch's first and last.
pub fn batch(input: &BatchInput) {
    let [first, last, start, end] = input.times;
    let field = if input.streaming {
        "auditEventTime"
    } else {
        "timestamp"
    };
    let batch = wit::Batch {
        lines: input.lines.clone(),
        event_count: input.event_count,
        first_event_ms: first,
        last_event_ms: last,
        window_start_ms: start,
        window_end_ms: end,
        checkpoint: input.checkpoint.clone(),
        quarantine: input.quarantine.as_ref().map(|q| wit::Quarantine {
            events: q
                .events
                .iter()
                .map(|(bytes, reason, at_ms)| wit::QuarantinedEvent {
                    bytes: bytes.clone(),
                    reason: [
                        wit::QuarantineReason::NotJson,
                        wit::QuarantineReason::NotAnObject,
                        wit::QuarantineReason::AuditId,
                        wit::QuarantineReason::Timestamp,
                        wit::QuarantineReason::Unmappable,
                    ][usize::from(*reason) % 5],
                    detail: String::new(),
                    at_ms: *at_ms,
                })
                .collect(),
            checkpoint: q.checkpoint.clone(),
        }),
    };
    let rules = BatchRules {
        max_events: 5,
        time_field: field,
        pass_from_ms: 0,
        pass_to_ms: None,
    };
    if check_batch(&batch, &rules, input.now_ms).is_err() {
        return;
    }
    let text = std::str::from_utf8(&batch.lines).expect("accepted lines are UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), batch.event_count as usize);
    for line in lines {
        let at = line_time(line, field)
            .expect("an accepted line is one object")
            .expect("with its time");
        assert!((first..=last).contains(&at));
    }
}

/// The TOML configuration reader: any text is a configuration or an error.
pub fn config(text: &str) {
    if let Ok(raw) = RawConfig::from_toml(text) {
        let _ = raw.validate();
    }
}

/// The tenant file reader: any text is tenants or an error.
pub fn tenants(text: &str) {
    let _ = harness_audit::config::tenants::parse(text, Path::new("/nonexistent"), |_| {
        Some("pat.acct.tok.secret".into())
    });
}
