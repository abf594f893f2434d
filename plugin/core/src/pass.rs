//! One collection pass: pages through a fixed window, drops events already
//! emitted, and hands each page to the pipeline with the checkpoint that
//! covers it. Generic over its effects so it runs natively in tests.

use crate::cursor::{Chain, Checkpoint, Window};
use crate::error::{EmitError, SourceError};
use crate::pacing::Pacer;
use crate::page::{self, Event, Page};
use crate::request::{self, ListRequest};
use crate::retry;
use crate::settings::{ApiFlavor, Settings};
use crate::shape::{self, OutputShape};

/// A raw HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Whole body.
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when present and numeric.
    pub retry_after_secs: Option<u32>,
}

/// Sends HTTP requests (wasi:http in the component).
pub trait Transport {
    /// POSTs a JSON body; `Err` is a transport failure, described.
    fn post_json(&mut self, url: &str, body: &[u8]) -> Result<HttpResponse, String>;
    /// GETs a URL; `Err` is a transport failure, described.
    fn get(&mut self, url: &str) -> Result<HttpResponse, String>;
}

/// Time and randomness (wasi:clocks and wasi:random in the component).
pub trait Clock {
    /// Wall-clock time, epoch ms.
    fn now_ms(&mut self) -> u64;
    /// Blocks for `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
    /// A uniformly random number, for jitter.
    fn random_u64(&mut self) -> u64;
}

/// A batch ready for the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// NDJSON, one event per line, each line ending in `\n`.
    pub lines: Vec<u8>,
    /// Lines in `lines`.
    pub event_count: u32,
    /// First event's `timestamp`.
    pub first_event_ms: u64,
    /// Last event's `timestamp`.
    pub last_event_ms: u64,
    /// Window start (inclusive).
    pub window_start_ms: u64,
    /// Window end (inclusive).
    pub window_end_ms: u64,
    /// Checkpoint valid once the batch is durable.
    pub checkpoint: Vec<u8>,
}

/// Makes batches durable (the host's `emit` in the component).
pub trait Pipeline {
    /// Returns once the batch and its checkpoint are stored.
    fn emit(&mut self, batch: Batch) -> Result<(), EmitError>;
}

/// Counters for one `poll` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Events the API returned.
    pub events_read: u64,
    /// Events emitted.
    pub events_emitted: u64,
    /// Events dropped as already emitted.
    pub duplicates_dropped: u64,
    /// Successful page responses.
    pub pages: u32,
    /// Batches emitted.
    pub batches: u32,
    /// Retried requests.
    pub retries: u32,
    /// The pass reached the end of its window.
    pub caught_up: bool,
    /// Newest emitted `timestamp`.
    pub watermark_ms: Option<u64>,
    /// The window of the pass this call worked on, if any.
    pub window: Option<Window>,
}

/// The source's state between calls.
#[derive(Debug)]
pub struct Source {
    settings: Settings,
    /// The working state, advanced page by page.
    checkpoint: Checkpoint,
    /// The state as of the last emitted batch.
    committed: Checkpoint,
    pacer: Pacer,
    retry_waited_ms: u64,
}

impl Source {
    /// Validates settings and the stored checkpoint, if any.
    pub fn new(
        settings: Settings,
        checkpoint: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<Self, SourceError> {
        let settings = settings.validate().map_err(SourceError::InvalidSettings)?;
        let checkpoint = match checkpoint {
            Some(bytes) => Checkpoint::load(bytes, &settings.account_id)
                .map_err(SourceError::InvalidSettings)?,
            None => match settings.start_at_ms {
                Some(start) if start > now_ms => {
                    return Err(SourceError::InvalidSettings(format!(
                        "start-at-ms {start} is in the future (now is {now_ms})"
                    )));
                }
                Some(start) => Checkpoint::fresh(&settings.account_id, start),
                None => {
                    let back_ms = u64::from(settings.start_minutes_back) * 60_000;
                    Checkpoint::fresh(&settings.account_id, now_ms.saturating_sub(back_ms))
                }
            },
        };
        let pacer = Pacer::new(settings.max_requests_per_minute);
        Ok(Self {
            settings,
            committed: checkpoint.clone(),
            checkpoint,
            pacer,
            retry_waited_ms: 0,
        })
    }

    /// The current checkpoint, serialized.
    pub fn checkpoint(&self) -> Vec<u8> {
        self.checkpoint.to_bytes()
    }

    fn overlap_ms(&self) -> u64 {
        u64::from(self.settings.overlap_secs) * 1000
    }

    /// Pages through the current settled window until it is exhausted or
    /// `max_pages` pages were read. On error the state returns to the last
    /// emitted batch's checkpoint, so nothing read but not emitted is skipped.
    pub fn poll(
        &mut self,
        max_pages: u32,
        transport: &mut impl Transport,
        pipeline: &mut impl Pipeline,
        clock: &mut impl Clock,
    ) -> Result<PollReport, SourceError> {
        let result = self.poll_pages(max_pages, transport, pipeline, clock);
        if result.is_err() {
            self.checkpoint = self.committed.clone();
        }
        result
    }

    fn poll_pages(
        &mut self,
        max_pages: u32,
        transport: &mut impl Transport,
        pipeline: &mut impl Pipeline,
        clock: &mut impl Clock,
    ) -> Result<PollReport, SourceError> {
        let mut report = PollReport {
            watermark_ms: self.checkpoint.watermark_ms,
            ..PollReport::default()
        };
        let settle_lag_ms = u64::from(self.settings.settle_lag_secs) * 1000;
        let overlap_ms = self.overlap_ms();
        // A fixed range end (a backfill) caps the window end like the settle lag does.
        let now_ms = match self.settings.end_at_ms {
            Some(end) => clock.now_ms().min(end.saturating_add(settle_lag_ms)),
            None => clock.now_ms(),
        };
        let Some(window) = self
            .checkpoint
            .begin_pass(now_ms, settle_lag_ms, overlap_ms)
        else {
            report.caught_up = true;
            return Ok(report);
        };
        report.window = Some(window);
        let max_pages = max_pages.max(1);
        let mut pending = Vec::new();
        while report.pages < max_pages {
            let req = self.next_request(window);
            let body = request::body(&self.settings, &req);
            let page = self.fetch(&req, &body, transport, clock, &mut report)?;
            report.pages += 1;
            report.events_read += page.events.len() as u64;
            check_order(&page, &req)?;
            let more = match self.settings.api_flavor {
                ApiFlavor::List => page.events.len() >= self.settings.page_size as usize,
                ApiFlavor::ListV2 => page.has_next == Some(true),
            };
            if more
                && req.page_token.is_none()
                && page
                    .events
                    .iter()
                    .all(|e| self.checkpoint.read_at_cursor(e))
            {
                return Err(SourceError::MalformedResponse(format!(
                    "a page at startTime {} pageIndex {} held only events already read; the API is not \
                     honouring the time filter",
                    req.start_ms, req.page_index
                )));
            }
            let is_fresh: Vec<bool> = page
                .events
                .iter()
                .map(|e| !self.checkpoint.has_seen(e))
                .collect();
            let fresh: Vec<&Event> = page
                .events
                .iter()
                .zip(&is_fresh)
                .filter(|(_, f)| **f)
                .map(|(e, _)| e)
                .collect();
            // A batch holds whole pages (its checkpoint marks a page end), so the
            // batch this page would push past the limit is emitted before it.
            if !pending.is_empty()
                && pending.len() + fresh.len() > self.settings.batch_max_events as usize
            {
                self.emit(
                    &mut pending,
                    window,
                    pipeline,
                    transport,
                    clock,
                    &mut report,
                )?;
            }
            report.duplicates_dropped += (page.events.len() - fresh.len()) as u64;
            self.checkpoint.advance(&page.events, &fresh, overlap_ms);
            self.checkpoint.chain = match (more, page.next_token) {
                (true, Some(token)) if self.settings.api_flavor == ApiFlavor::ListV2 => {
                    Some(Chain {
                        start_ms: req.start_ms,
                        body_hash: request::body_hash(&body),
                        token,
                    })
                }
                _ => None,
            };
            if !more {
                self.checkpoint.finish_pass(overlap_ms);
            }
            pending.extend(
                page.events
                    .into_iter()
                    .zip(is_fresh)
                    .filter_map(|(e, fresh)| fresh.then_some(e)),
            );
            let last_page = !more || report.pages >= max_pages;
            if pending.len() >= self.settings.batch_max_events as usize
                || (last_page && !pending.is_empty())
            {
                self.emit(
                    &mut pending,
                    window,
                    pipeline,
                    transport,
                    clock,
                    &mut report,
                )?;
            }
            if !more {
                report.caught_up = true;
                break;
            }
        }
        Ok(report)
    }

    /// Emits the events read since the last batch with the checkpoint that
    /// covers them; only then does that checkpoint count as committed.
    fn emit(
        &mut self,
        pending: &mut Vec<Event>,
        window: Window,
        pipeline: &mut impl Pipeline,
        transport: &mut impl Transport,
        clock: &mut impl Clock,
        report: &mut PollReport,
    ) -> Result<(), SourceError> {
        let extras: Vec<Option<String>> = if self.settings.enrich_yaml_diff {
            pending
                .iter()
                .map(|event| self.yaml_diff(event, transport, clock, report))
                .collect()
        } else {
            vec![None; pending.len()]
        };
        pipeline
            .emit(batch(
                pending,
                &extras,
                window,
                self.checkpoint.to_bytes(),
                self.settings.output_shape,
            )?)
            .map_err(SourceError::SinkFailure)?;
        self.committed = self.checkpoint.clone();
        report.batches += 1;
        report.events_emitted += pending.len() as u64;
        report.watermark_ms = self.checkpoint.watermark_ms;
        pending.clear();
        Ok(())
    }

    /// Continues a `listV2` token chain when its body is unchanged; otherwise
    /// starts at the cursor (for `list`, with an offset inside its millisecond).
    fn next_request(&self, window: Window) -> ListRequest {
        let cp = &self.checkpoint;
        if let Some(chain) = &cp.chain {
            let req = ListRequest {
                start_ms: chain.start_ms,
                end_ms: window.end_ms,
                page_index: 0,
                page_token: Some(chain.token.clone()),
            };
            if request::body_hash(&request::body(&self.settings, &req)) == chain.body_hash {
                return req;
            }
        }
        let page_index = match self.settings.api_flavor {
            ApiFlavor::List => cp.page_index(self.settings.page_size),
            ApiFlavor::ListV2 => 0,
        };
        ListRequest {
            start_ms: cp.cursor_ms,
            end_ms: window.end_ms,
            page_index,
            page_token: None,
        }
    }

    fn fetch(
        &mut self,
        req: &ListRequest,
        body: &[u8],
        transport: &mut impl Transport,
        clock: &mut impl Clock,
        report: &mut PollReport,
    ) -> Result<Page, SourceError> {
        let url = request::url(&self.settings, req);
        self.call(
            transport,
            clock,
            report,
            |t| t.post_json(&url, body),
            page::parse,
        )
    }

    /// `"harnessAuditYamlDiff":{...}` for a configuration change: the diff, or
    /// the error that kept it from being fetched (the event is written either way).
    fn yaml_diff(
        &mut self,
        event: &Event,
        transport: &mut impl Transport,
        clock: &mut impl Clock,
        report: &mut PollReport,
    ) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct ActionKey {
            action: Option<String>,
        }
        let action = serde_json::from_str::<ActionKey>(event.raw.get())
            .ok()?
            .action?;
        if !YAML_ACTIONS.contains(&action.as_str()) {
            return None;
        }
        let url = request::yaml_url(&self.settings, &event.audit_id);
        let value = match self.call(transport, clock, report, |t| t.get(&url), page::parse_yaml) {
            Ok(diff) => serde_json::to_string(&diff).expect("strings always serialize"),
            Err(e) => serde_json::json!({ "error": describe(&e) }).to_string(),
        };
        Some(format!("\"{YAML_DIFF_KEY}\":{value}"))
    }

    /// Sends with pacing, and retries what is retryable within the pass's budget.
    fn call<T>(
        &mut self,
        transport: &mut impl Transport,
        clock: &mut impl Clock,
        report: &mut PollReport,
        mut send: impl FnMut(&mut dyn Transport) -> Result<HttpResponse, String>,
        parse: impl Fn(u16, &[u8], Option<u32>) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let budget_ms = u64::from(self.settings.retry_budget_secs) * 1000;
        let mut attempt = 0;
        loop {
            let wait = self.pacer.delay_ms(clock.now_ms());
            if wait > 0 {
                clock.sleep_ms(wait);
            }
            let result = send(transport)
                .map_err(SourceError::Transport)
                .and_then(|resp| parse(resp.status, &resp.body, resp.retry_after_secs));
            let err = match result {
                Err(err) if err.is_retryable() && attempt < self.settings.max_retries => err,
                other => return other,
            };
            let retry_after = match &err {
                SourceError::RateLimited {
                    retry_after_secs, ..
                } => *retry_after_secs,
                _ => None,
            };
            let random = clock.random_u64();
            let delay = retry::delay_ms(attempt, self.settings.retry_base_ms, retry_after, random);
            // The budget bounds how long one pass can stall on a failing API.
            if self.retry_waited_ms + delay > budget_ms {
                return Err(err);
            }
            clock.sleep_ms(delay);
            self.retry_waited_ms += delay;
            attempt += 1;
            report.retries += 1;
        }
    }
}

/// The cursor is only sound if events come back oldest first and inside the
/// window asked for; anything else could skip events, so it is an error.
fn check_order(page: &Page, req: &ListRequest) -> Result<(), SourceError> {
    let mut previous = req.start_ms;
    for (i, event) in page.events.iter().enumerate() {
        if event.timestamp_ms < previous || event.timestamp_ms > req.end_ms {
            return Err(SourceError::MalformedResponse(format!(
                "event {i} (`{}`, timestamp {}) is out of ascending order or outside the window [{}, {}]",
                event.audit_id, event.timestamp_ms, req.start_ms, req.end_ms
            )));
        }
        previous = event.timestamp_ms;
    }
    Ok(())
}

/// Actions whose events have a YAML diff: configuration changes.
const YAML_ACTIONS: [&str; 6] = [
    "CREATE",
    "UPDATE",
    "UPSERT",
    "DELETE",
    "FORCE_DELETE",
    "RESTORE",
];
/// Key of the YAML diff added to an enriched event.
pub const YAML_DIFF_KEY: &str = "harnessAuditYamlDiff";

/// An error recorded on an event, in the words the host uses.
fn describe(e: &SourceError) -> String {
    match e {
        SourceError::Unauthorized(f)
        | SourceError::Forbidden(f)
        | SourceError::BadRequest(f)
        | SourceError::ServerError(f) => f.to_string(),
        SourceError::RateLimited { message, .. } => format!("HTTP 429: {message}"),
        SourceError::Transport(m) => format!("request failed: {m}"),
        SourceError::MalformedResponse(m) => format!("unusable response: {m}"),
        other => format!("{other:?}"),
    }
}

/// NDJSON lines of `events` in `shape`; a `Some` extra is a `"key":value`
/// member added to its event's object.
fn batch(
    events: &[Event],
    extras: &[Option<String>],
    window: Window,
    checkpoint: Vec<u8>,
    shape: OutputShape,
) -> Result<Batch, SourceError> {
    let mut lines = Vec::with_capacity(events.iter().map(|e| e.raw.get().len() + 1).sum());
    for (event, extra) in events.iter().zip(extras) {
        let rewritten;
        let shaped = match shape {
            OutputShape::Raw => event.raw.get(),
            OutputShape::Streaming => {
                rewritten =
                    shape::to_streaming(event.raw.get()).map_err(SourceError::MalformedResponse)?;
                &rewritten
            }
        };
        let enriched;
        let raw = match extra {
            None => shaped.as_bytes(),
            Some(member) => {
                let open = shaped.trim_end().strip_suffix('}').ok_or_else(|| {
                    SourceError::MalformedResponse(format!(
                        "event `{}` is not a JSON object",
                        event.audit_id
                    ))
                })?;
                let separator = if open.trim_end().ends_with('{') {
                    ""
                } else {
                    ","
                };
                enriched = format!("{open}{separator}{member}}}");
                enriched.as_bytes()
            }
        };
        // JSON strings cannot hold raw newlines, so any here is whitespace
        // between tokens; flattening it keeps one event per line. One
        // branch-free pass copies and flattens at once: in wasm32, where
        // `contains` scans four bytes at a time, it beats scanning first.
        lines.extend(
            raw.iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
        lines.push(b'\n');
    }
    Ok(Batch {
        lines,
        event_count: u32::try_from(events.len()).expect("a batch holds at most 20,000 events"),
        first_event_ms: events.first().map_or(0, |e| e.timestamp_ms),
        last_event_ms: events.last().map_or(0, |e| e.timestamp_ms),
        window_start_ms: window.start_ms,
        window_end_ms: window.end_ms,
        checkpoint,
    })
}

#[cfg(test)]
mod tests;
