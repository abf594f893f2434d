//! One collection pass: reads each settled window to its end, checks what it
//! read against Harness's counts, reads slices again where they fall short,
//! drops events already stored, and hands batches to the pipeline with the
//! checkpoint that covers them. Generic over its effects so it runs natively
//! in tests.

mod reconcile;

use std::collections::BTreeSet;

use crate::checkpoint::Checkpoint;
use crate::error::{EmitError, SourceError};
use crate::ledger::SLICE_MS;
use crate::pacing::Pacer;
use crate::page::{self, Event, Page};
use crate::report::{Finding, FindingKind, LedgerReport, LedgerSlice, PollReport};
use crate::request::{self, ListRequest};
use crate::retry;
use crate::settings::{ApiFlavor, Settings};
use crate::shape::{self, OutputShape};
use crate::walk::{Chain, Purpose, Walk, Window};

/// Requests of one page at most while it comes back shorter than the count
/// says it should: a lagging secondary answers differently the next time,
/// results filtered after paging do not.
pub const SHORT_PAGE_ATTEMPTS: u32 = 3;

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
    /// NDJSON, one event per line, each line ending in `\n`, oldest first.
    pub lines: Vec<u8>,
    /// Lines in `lines`.
    pub event_count: u32,
    /// First event's `timestamp`.
    pub first_event_ms: u64,
    /// Last event's `timestamp`.
    pub last_event_ms: u64,
    /// Start (inclusive) of the window, or of the slice read again.
    pub window_start_ms: u64,
    /// End (inclusive) of that range.
    pub window_end_ms: u64,
    /// Checkpoint valid once the batch is durable.
    pub checkpoint: Vec<u8>,
}

/// Makes batches durable (the host's `emit` in the component).
pub trait Pipeline {
    /// Returns once the batch and its checkpoint are stored.
    fn emit(&mut self, batch: Batch) -> Result<(), EmitError>;
}

/// The effects one poll works through.
struct Effects<'a, T, P, C> {
    transport: &'a mut T,
    pipeline: &'a mut P,
    clock: &'a mut C,
}

/// Events read and not yet emitted, with the span of the ranges they came from.
#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    range: Option<Window>,
}

impl Pending {
    fn add(&mut self, events: impl IntoIterator<Item = Event>, range: Window) {
        self.events.extend(events);
        self.range = Some(span(self.range, range));
    }
}

/// The smallest window holding `a` (if any) and `b`.
fn span(a: Option<Window>, b: Window) -> Window {
    a.map_or(b, |a| Window {
        start_ms: a.start_ms.min(b.start_ms),
        end_ms: a.end_ms.max(b.end_ms),
    })
}

/// The source's state between calls.
#[derive(Debug)]
pub struct Source {
    settings: Settings,
    /// The working state, advanced page by page.
    checkpoint: Checkpoint,
    /// The state as of the last emitted batch, serialized: the ledger can be
    /// large, and it is read back only after an error.
    committed: Vec<u8>,
    pacer: Pacer,
    retry_waited_ms: u64,
    /// End of the last window of this pass, fixed at its first poll.
    target_end_ms: Option<u64>,
}

impl Source {
    /// Validates settings and the stored checkpoint, if any.
    pub fn new(
        settings: Settings,
        checkpoint: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<Self, SourceError> {
        let settings = settings.validate().map_err(SourceError::InvalidSettings)?;
        let loaded = match checkpoint {
            Some(bytes) => Checkpoint::load(bytes, &settings.account_id, settings.overlap_ms())
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
        // The bytes as stored already read back to this state: no need to serialize it again.
        let committed = checkpoint.map_or_else(|| loaded.to_bytes(), <[u8]>::to_vec);
        Ok(Self {
            settings,
            committed,
            checkpoint: loaded,
            pacer,
            retry_waited_ms: 0,
            target_end_ms: None,
        })
    }

    /// The current checkpoint, serialized.
    pub fn checkpoint(&self) -> Vec<u8> {
        self.checkpoint.to_bytes()
    }

    /// The ledger of the current checkpoint.
    pub fn ledger(&self) -> LedgerReport {
        let ledger = &self.checkpoint.ledger;
        LedgerReport {
            from_ms: ledger.from_ms,
            through_ms: self.checkpoint.last_end_ms,
            slices: ledger
                .slices
                .iter()
                .map(|(&start, slice)| LedgerSlice {
                    start_ms: ledger.covered_start(start),
                    end_ms: start + SLICE_MS - 1,
                    stored: slice.stored(),
                    count: slice.count,
                })
                .collect(),
        }
    }

    /// Reads what has settled, checks it, and re-reads what falls short,
    /// until caught up or `max_pages` requests were made. On error the state
    /// returns to the last emitted batch's checkpoint, so nothing read but
    /// not emitted is skipped.
    pub fn poll(
        &mut self,
        max_pages: u32,
        transport: &mut impl Transport,
        pipeline: &mut impl Pipeline,
        clock: &mut impl Clock,
    ) -> Result<PollReport, SourceError> {
        let mut fx = Effects {
            transport,
            pipeline,
            clock,
        };
        let result = self.poll_steps(max_pages.max(1), &mut fx);
        if result.is_err() {
            self.checkpoint = Checkpoint::load(
                &self.committed,
                &self.settings.account_id,
                self.settings.overlap_ms(),
            )
            .expect("a checkpoint this source serialized reads back");
        }
        result
    }

    fn poll_steps<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        max_requests: u32,
        fx: &mut Effects<'_, T, P, C>,
    ) -> Result<PollReport, SourceError> {
        let mut report = PollReport::default();
        let now_ms = fx.clock.now_ms();
        let target_end_ms = match self.target_end_ms {
            Some(target) => target,
            None => *self.target_end_ms.insert(self.target_end(now_ms)),
        };
        let mut pending = Pending::default();
        loop {
            if report.pages + report.count_requests >= max_requests {
                break;
            }
            if self.checkpoint.walk.is_some() {
                self.step_walk(&mut pending, &mut report, fx)?;
                continue;
            }
            if !self.checkpoint.to_check.is_empty() {
                self.check_next_slice(&mut report, fx)?;
                continue;
            }
            if let Some(window) = self
                .checkpoint
                .next_window(target_end_ms, self.settings.overlap_ms())
            {
                self.begin_window(window, now_ms);
                continue;
            }
            if self.queue_reconciliation(fx.clock.now_ms()) {
                continue;
            }
            report.caught_up = true;
            // The next poll begins a new pass, up to what has settled by then.
            self.target_end_ms = None;
            break;
        }
        if !pending.events.is_empty() {
            self.emit(&mut pending, &mut report, fx)?;
        }
        report.watermark_ms = self.checkpoint.watermark_ms;
        report.unreconciled_events = self.checkpoint.ledger.total_gap();
        Ok(report)
    }

    /// The end of the last window of a pass starting at `now_ms`: what has
    /// settled, and never past a fixed range's end.
    fn target_end(&self, now_ms: u64) -> u64 {
        let settled = now_ms.saturating_sub(u64::from(self.settings.settle_lag_secs) * 1000);
        match self.settings.end_at_ms {
            Some(end) => settled.min(end),
            None => settled,
        }
    }

    /// Starts reading `window`, first forgetting the ledger slices that
    /// neither it nor reconciliation can reach any more.
    fn begin_window(&mut self, window: Window, now_ms: u64) {
        let keep_from = match self.reconcile_span_ms() {
            Some(span) => window.start_ms.min(now_ms.saturating_sub(span)),
            None => window.start_ms,
        };
        self.checkpoint.ledger.forget_before(keep_from);
        self.checkpoint.walk = Some(Walk::new(Purpose::Window, window));
    }

    /// One page of the walk in progress (with its repeats, if short), its
    /// new events added to `pending`.
    fn step_walk<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        pending: &mut Pending,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
    ) -> Result<(), SourceError> {
        let walk = self
            .checkpoint
            .walk
            .as_ref()
            .expect("a walk is in progress");
        let (range, purpose, in_tie) = (walk.range, walk.purpose, walk.tie.is_some());
        let req = self.next_request(walk);
        let body = request::body(&self.settings, &req);
        let mut page = self.fetch_page(&req, &body, report, fx)?;
        if self.settings.api_flavor == ApiFlavor::List && !in_tie {
            self.complete_short_page(&req, &body, &mut page, report, fx)?;
        }
        if purpose == Purpose::Window {
            report.window = Some(span(report.window, range));
        }

        let walk = self
            .checkpoint
            .walk
            .as_ref()
            .expect("a walk is in progress");
        let fresh: Vec<bool> = page
            .events
            .iter()
            .map(|e| {
                walk.unread(e) && !self.checkpoint.ledger.contains(e.timestamp_ms, &e.audit_id)
            })
            .collect();
        let fresh_count = fresh.iter().filter(|f| **f).count();
        // A batch holds whole pages (its checkpoint marks a page end), so the
        // batch this page would push past the limit is emitted before it.
        if !pending.events.is_empty()
            && pending.events.len() + fresh_count > self.settings.batch_max_events as usize
        {
            self.emit(pending, report, fx)?;
        }
        let listed = page.events.len();

        let page_size = self.settings.page_size;
        let walk = self
            .checkpoint
            .walk
            .as_mut()
            .expect("a walk is in progress");
        let step = match self.settings.api_flavor {
            ApiFlavor::List => walk.apply_list(&page.events, page.total_items, page_size),
            ApiFlavor::ListV2 => {
                let has_next = page.has_next == Some(true);
                if has_next && page.next_token.is_none() && !walk.unread_any(&page.events) {
                    return Err(SourceError::MalformedResponse(format!(
                        "a page at startTime {} said hasNext without a pageToken and held nothing new",
                        req.start_ms
                    )));
                }
                walk.chain = match page.next_token.clone() {
                    Some(token) if has_next => Some(Chain {
                        start_ms: req.start_ms,
                        body_hash: request::body_hash(&body),
                        token,
                    }),
                    _ => None,
                };
                walk.apply_v2(&page.events, has_next)
            }
        };
        let new_events: Vec<Event> = page
            .events
            .into_iter()
            .zip(fresh)
            // Recording refuses an id recorded already: one listed twice on this page.
            .filter_map(|(e, fresh)| {
                (fresh && self.checkpoint.record(e.timestamp_ms, &e.audit_id)).then_some(e)
            })
            .collect();
        report.duplicates_dropped += (listed - new_events.len()) as u64;
        if let Some(walk) = self.checkpoint.walk.as_mut() {
            walk.written += new_events.len() as u64;
        }
        pending.add(new_events, range);
        if let Some(tie) = step.tie_shortfall {
            report.findings.push(Finding {
                kind: FindingKind::TieIncomplete,
                range: Window {
                    start_ms: tie.ms,
                    end_ms: tie.ms,
                },
                counted: tie.counted,
                collected: tie.read,
                detail: String::new(),
            });
        }
        if step.done {
            let walk = self.checkpoint.walk.take().expect("a walk is in progress");
            self.finish_walk(walk, report, fx.clock.now_ms());
        }
        if pending.events.len() >= self.settings.batch_max_events as usize {
            self.emit(pending, report, fx)?;
        }
        Ok(())
    }

    /// A page shorter than `pageSize` whose events do not reach the count the
    /// API gave is requested again, and the answers merged, until one adds
    /// nothing or [`SHORT_PAGE_ATTEMPTS`] were made.
    fn complete_short_page<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        req: &ListRequest,
        body: &[u8],
        page: &mut Page,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
    ) -> Result<(), SourceError> {
        for _ in 1..SHORT_PAGE_ATTEMPTS {
            let walk = self
                .checkpoint
                .walk
                .as_ref()
                .expect("a walk is in progress");
            let short = page.events.len() < req.page_size as usize
                && page
                    .total_items
                    .is_some_and(|total| walk.known_with(&page.events) < total);
            if !short {
                break;
            }
            let again = self.fetch_page(req, body, report, fx)?;
            let before = page.events.len();
            let held: BTreeSet<String> = page.events.iter().map(|e| e.audit_id.clone()).collect();
            page.events.extend(
                again
                    .events
                    .into_iter()
                    .filter(|e| !held.contains(&e.audit_id)),
            );
            page.total_items = again.total_items.or(page.total_items);
            if page.events.len() == before {
                break;
            }
            page.events.sort_by_key(|e| e.timestamp_ms);
        }
        Ok(())
    }

    /// Closes a walk: a window moves the pass forward and, if it came back
    /// short of its count, queues its slices for a check; a re-read settles
    /// its slice.
    fn finish_walk(&mut self, walk: Walk, report: &mut PollReport, now_ms: u64) {
        match walk.purpose {
            Purpose::Window => {
                let end = walk.range.end_ms;
                self.checkpoint.last_end_ms = Some(
                    self.checkpoint
                        .last_end_ms
                        .map_or(end, |last| last.max(end)),
                );
                if let Some(counted) = walk.counted.filter(|c| *c > walk.read) {
                    report.findings.push(Finding {
                        kind: FindingKind::WindowShort,
                        range: walk.range,
                        counted,
                        collected: walk.read,
                        detail: String::new(),
                    });
                    self.checkpoint
                        .queue_checks(walk.range.start_ms, walk.range.end_ms);
                }
            }
            Purpose::Reread => self.settle_reread(&walk, report, now_ms),
        }
    }

    /// Emits the events read since the last batch, oldest first, with the
    /// checkpoint that covers them; only then does that checkpoint count as
    /// committed.
    fn emit<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        pending: &mut Pending,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
    ) -> Result<(), SourceError> {
        // Ties in time are ordered by auditId, not as the API happened to
        // return them, so a batch read twice (after a crash, or by two writers
        // that overlap) is the same bytes and so the same object.
        pending
            .events
            .sort_by(|a, b| (a.timestamp_ms, &a.audit_id).cmp(&(b.timestamp_ms, &b.audit_id)));
        let extras: Vec<Option<String>> = if self.settings.enrich_yaml_diff {
            pending
                .events
                .iter()
                .map(|event| self.yaml_diff(event, report, fx))
                .collect()
        } else {
            vec![None; pending.events.len()]
        };
        let range = pending.range.expect("pending events have a range");
        let checkpoint = self.checkpoint.to_bytes();
        fx.pipeline
            .emit(batch(
                &pending.events,
                &extras,
                range,
                checkpoint.clone(),
                self.settings.output_shape,
            )?)
            .map_err(SourceError::SinkFailure)?;
        self.committed = checkpoint;
        report.batches += 1;
        report.events_emitted += pending.events.len() as u64;
        *pending = Pending::default();
        Ok(())
    }

    /// Continues a `listV2` token chain when its body is unchanged; otherwise
    /// starts at the walk's cursor.
    fn next_request(&self, walk: &Walk) -> ListRequest {
        let page_size = self.settings.page_size;
        if let Some(chain) = &walk.chain {
            let req = ListRequest {
                start_ms: chain.start_ms,
                end_ms: walk.range.end_ms,
                page_index: 0,
                page_size,
                page_token: Some(chain.token.clone()),
            };
            if request::body_hash(&request::body(&self.settings, &req)) == chain.body_hash {
                return req;
            }
        }
        let (start_ms, end_ms, page_index) = match self.settings.api_flavor {
            ApiFlavor::List => walk.list_request(),
            ApiFlavor::ListV2 => (walk.cursor_ms, walk.range.end_ms, 0),
        };
        ListRequest {
            start_ms,
            end_ms,
            page_index,
            page_size,
            page_token: None,
        }
    }

    /// One page, checked to be in order and inside the request's range.
    fn fetch_page<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        req: &ListRequest,
        body: &[u8],
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
    ) -> Result<Page, SourceError> {
        let url = request::url(&self.settings, req);
        let page = self.call(report, fx, |t| t.post_json(&url, body), page::parse)?;
        report.pages += 1;
        report.events_read += page.events.len() as u64;
        check_order(&page, req)?;
        Ok(page)
    }

    /// `"harnessAuditYamlDiff":{...}` for a configuration change: the diff, or
    /// the error that kept it from being fetched (the event is written either way).
    fn yaml_diff<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        event: &Event,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
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
        let value = match self.call(report, fx, |t| t.get(&url), page::parse_yaml) {
            Ok(diff) => serde_json::to_string(&diff).expect("strings always serialize"),
            Err(e) => serde_json::json!({ "error": describe(&e) }).to_string(),
        };
        Some(format!("\"{YAML_DIFF_KEY}\":{value}"))
    }

    /// Sends with pacing, and retries what is retryable within the pass's budget.
    fn call<R, T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
        mut send: impl FnMut(&mut T) -> Result<HttpResponse, String>,
        parse: impl Fn(u16, &[u8], Option<u32>) -> Result<R, SourceError>,
    ) -> Result<R, SourceError> {
        let budget_ms = u64::from(self.settings.retry_budget_secs) * 1000;
        let mut attempt = 0;
        loop {
            let wait = self.pacer.delay_ms(fx.clock.now_ms());
            if wait > 0 {
                fx.clock.sleep_ms(wait);
            }
            let result = send(fx.transport)
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
            let random = fx.clock.random_u64();
            let delay = retry::delay_ms(attempt, self.settings.retry_base_ms, retry_after, random);
            // The budget bounds how long one pass can stall on a failing API.
            if self.retry_waited_ms + delay > budget_ms {
                return Err(err);
            }
            fx.clock.sleep_ms(delay);
            self.retry_waited_ms += delay;
            attempt += 1;
            report.retries += 1;
        }
    }
}

/// The walk is only sound if events come back oldest first and inside the
/// range asked for; anything else could skip events, so it is an error.
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
