//! One collection pass: reads each settled window to its end, checks what it
//! read against Harness's counts, reads slices again where they fall short,
//! drops events already stored, and hands batches to the pipeline with the
//! checkpoint that covers them. Generic over its effects so it runs natively
//! in tests.
//!
//! No event stops a pass. One that cannot be read or shaped travels in its
//! batch's quarantine, byte for byte, and is recorded in the ledger as
//! stored, like any other; the host makes the quarantine durable, with a
//! checkpoint of its own, before the batch's lines.

mod reconcile;

use std::collections::BTreeSet;

use crate::checkpoint::Checkpoint;
use crate::error::{EmitError, SourceError, Unusable, UnusableKind};
use crate::event::Reason;
use crate::ledger::SLICE_MS;
use crate::pacing::Pacer;
use crate::page::{self, Content, Event, HttpResponse, Page, Quarantined};
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

/// Why a request got no whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The request did not complete: connection, DNS, TLS, a timeout before
    /// the answer, or the host's egress policy. Described.
    Failed(String),
    /// Harness answered, but its body could not be read whole: larger than
    /// [`page::MAX_BODY_BYTES`], or not arrived within the host's deadline.
    Body(Box<Unusable>),
}

/// Sends HTTP requests (wasi:http in the component).
pub trait Transport {
    /// POSTs a JSON body.
    fn post_json(&mut self, url: &str, body: &[u8]) -> Result<HttpResponse, TransportError>;
    /// GETs a URL.
    fn get(&mut self, url: &str) -> Result<HttpResponse, TransportError>;
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

/// An event kept in the quarantine, as a batch carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedEvent {
    /// The bytes Harness sent for the event, on one line: a line break they
    /// hold becomes a space between tokens, its escape inside a string.
    pub bytes: Vec<u8>,
    /// Why it is kept here.
    pub reason: Reason,
    /// What is wrong, in words.
    pub detail: String,
    /// Its `timestamp`, or where its page placed it (epoch ms).
    pub at_ms: u64,
}

/// The quarantine of a batch, and the checkpoint that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    /// The events, oldest first.
    pub events: Vec<QuarantinedEvent>,
    /// The last committed checkpoint with these events recorded as stored:
    /// valid once they are durable, before the batch's lines are.
    pub checkpoint: Vec<u8>,
}

/// A batch ready for the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// NDJSON, one event per line, each line ending in `\n`, oldest first;
    /// empty when every event of the batch is in its quarantine.
    pub lines: Vec<u8>,
    /// Lines in `lines`.
    pub event_count: u32,
    /// Time of the batch's first event, lines and quarantine alike.
    pub first_event_ms: u64,
    /// Time of its last event.
    pub last_event_ms: u64,
    /// Start (inclusive) of the window, or of the slice read again.
    pub window_start_ms: u64,
    /// End (inclusive) of that range.
    pub window_end_ms: u64,
    /// Checkpoint valid once the batch is durable.
    pub checkpoint: Vec<u8>,
    /// Events that cannot be written in the configured shape.
    pub quarantine: Option<Quarantine>,
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

/// An event to be written in the configured shape.
struct Line {
    at_ms: u64,
    key: String,
    /// The event in its shape, on one line or not yet.
    text: String,
    /// A configuration change, to be enriched with its YAML diff.
    yaml: bool,
}

/// Events read and not yet emitted, with the span of the ranges they came from.
#[derive(Default)]
struct Pending {
    lines: Vec<Line>,
    /// Events for the quarantine, with their keys.
    quarantined: Vec<(String, QuarantinedEvent)>,
    range: Option<Window>,
}

impl Pending {
    fn len(&self) -> usize {
        self.lines.len() + self.quarantined.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
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
        let settings = settings
            .validate()
            .map_err(|e| SourceError::InvalidSettings(e.to_string()))?;
        let loaded = match checkpoint {
            Some(bytes) => {
                Checkpoint::load(bytes, &settings.query.account_id, settings.overlap_ms())
                    .map_err(SourceError::InvalidSettings)?
            }
            None => match settings.window.start_at_ms {
                Some(start) if start > now_ms => {
                    return Err(SourceError::InvalidSettings(format!(
                        "start-at-ms {start} is in the future (now is {now_ms})"
                    )));
                }
                Some(start) => Checkpoint::fresh(&settings.query.account_id, start),
                None => {
                    let back_ms = u64::from(settings.window.start_minutes_back) * 60_000;
                    Checkpoint::fresh(&settings.query.account_id, now_ms.saturating_sub(back_ms))
                }
            },
        };
        let pacer = Pacer::new(settings.retries.max_requests_per_minute);
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
                    quarantined: slice.quarantined,
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
                &self.settings.query.account_id,
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
        if !pending.is_empty() {
            self.emit(&mut pending, &mut report, fx)?;
        }
        report.watermark_ms = self.checkpoint.watermark_ms;
        report.unreconciled_events = self.checkpoint.ledger.total_gap();
        Ok(report)
    }

    /// The end of the last window of a pass starting at `now_ms`: what has
    /// settled, and never past a fixed range's end.
    fn target_end(&self, now_ms: u64) -> u64 {
        let settled = now_ms.saturating_sub(u64::from(self.settings.window.settle_lag_secs) * 1000);
        match self.settings.window.end_at_ms {
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
        let ledger = &mut self.checkpoint.ledger;
        ledger.forget_before(keep_from);
        ledger.set_tail_from(window.end_ms.saturating_sub(self.settings.overlap_ms()));
        self.checkpoint.walk = Some(Walk::new(Purpose::Window, window));
    }

    /// One page of the walk in progress (with its repeats, if short), its
    /// new events added to `pending`. A page larger than the component reads
    /// is asked for again in pages half the size.
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
        let fetched = self
            .fetch_page(&req, &body, report, fx)
            .and_then(|mut page| {
                if self.settings.query.api_flavor == ApiFlavor::List && !in_tie {
                    self.complete_short_page(&req, &body, &mut page, report, fx)?;
                }
                Ok(page)
            });
        let mut page = match fetched {
            Err(SourceError::Unusable(u))
                if u.kind == UnusableKind::TooLarge && req.page_size > 1 =>
            {
                let walk = self
                    .checkpoint
                    .walk
                    .as_mut()
                    .expect("a walk is in progress");
                walk.halve_pages(req.page_size);
                report.retries += 1;
                return Ok(());
            }
            other => other?,
        };
        // A page holds at most the events asked for, so a batch of whole
        // pages stays within its limit. More (an API that ignores pageSize,
        // or short answers merged) are the newest: the next request, which
        // starts at the newest event kept, reads them again.
        page.events.truncate(req.page_size as usize);
        if purpose == Purpose::Window {
            report.window = Some(span(report.window, range));
        }

        let walk = self
            .checkpoint
            .walk
            .as_ref()
            .expect("a walk is in progress");
        let ledger = &self.checkpoint.ledger;
        let fresh: Vec<bool> = page
            .events
            .iter()
            .map(|e| {
                let stored = if e.readable() {
                    ledger.contains(e.at_ms, &e.key)
                } else {
                    ledger.contains_anywhere(&e.key)
                };
                walk.unread(e) && !stored
            })
            .collect();
        let fresh_count = fresh.iter().filter(|f| **f).count();
        // A batch holds whole pages (its checkpoint marks a page end), so the
        // batch this page would push past the limit is emitted before it.
        if !pending.is_empty()
            && pending.len() + fresh_count > self.settings.output.batch_max_events as usize
        {
            self.emit(pending, report, fx)?;
        }
        let listed = page.events.len();

        let walk = self
            .checkpoint
            .walk
            .as_mut()
            .expect("a walk is in progress");
        let step = match self.settings.query.api_flavor {
            ApiFlavor::List => walk.apply_list(&page.events, page.total_items, req.page_size),
            ApiFlavor::ListV2 => {
                let has_next = page.has_next == Some(true);
                if has_next && page.next_token.is_none() && !walk.unread_any(&page.events) {
                    let answer = HttpResponse::json(200, Vec::new());
                    let mut u = answer.unusable(
                        &[],
                        UnusableKind::NotAPage,
                        format!(
                            "a page at startTime {} said hasNext without a pageToken and held nothing new",
                            req.start_ms
                        ),
                    );
                    u.request = Some(req.at());
                    return Err(SourceError::Unusable(Box::new(u)));
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
        if step.dropped {
            return Ok(());
        }
        let mut taken = 0;
        for (event, fresh) in page.events.into_iter().zip(fresh) {
            // Recording refuses a key recorded already: one listed twice on this page.
            if fresh && self.take(event, pending) {
                taken += 1;
            }
        }
        report.duplicates_dropped += (listed - taken) as u64;
        if let Some(walk) = self.checkpoint.walk.as_mut() {
            walk.written += taken as u64;
        }
        pending.range = Some(span(pending.range, range));
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
        if pending.len() >= self.settings.output.batch_max_events as usize {
            self.emit(pending, report, fx)?;
        }
        Ok(())
    }

    /// Records a fresh event and adds it to `pending`, in its shape or to the
    /// quarantine; false when the ledger holds it already.
    fn take(&mut self, event: Event, pending: &mut Pending) -> bool {
        let Event {
            key,
            at_ms,
            content,
            ..
        } = event;
        let quarantined = match content {
            Content::Json(raw) => {
                let yaml = self.settings.output.enrich_yaml_diff && wants_yaml_diff(raw.get());
                let shaped = match self.settings.output.output_shape {
                    OutputShape::Raw => Ok(String::from(Box::<str>::from(raw))),
                    OutputShape::Streaming => {
                        shape::to_streaming(raw.get(), at_ms).map_err(|detail| (raw, detail))
                    }
                };
                match shaped {
                    Ok(text) => {
                        if !self.checkpoint.record(at_ms, &key) {
                            return false;
                        }
                        pending.lines.push(Line {
                            at_ms,
                            key,
                            text,
                            yaml,
                        });
                        return true;
                    }
                    Err((raw, detail)) => Quarantined {
                        bytes: raw.get().as_bytes().into(),
                        reason: Reason::Unmappable,
                        detail,
                    },
                }
            }
            Content::Quarantined(q) => q,
        };
        if !self.checkpoint.record_quarantined(at_ms, &key) {
            return false;
        }
        pending.quarantined.push((
            key,
            QuarantinedEvent {
                bytes: one_line(&quarantined.bytes),
                reason: quarantined.reason,
                detail: quarantined.detail,
                at_ms,
            },
        ));
        true
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
            let held: BTreeSet<String> = page.events.iter().map(|e| e.key.clone()).collect();
            page.events
                .extend(again.events.into_iter().filter(|e| !held.contains(&e.key)));
            page.total_items = again.total_items.or(page.total_items);
            if page.events.len() == before {
                break;
            }
            page.events.sort_by_key(|e| e.at_ms);
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
    /// committed. The quarantine carries a checkpoint of its own: the last
    /// committed one with its events recorded, valid while the batch's lines
    /// are not yet durable.
    fn emit<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        pending: &mut Pending,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
    ) -> Result<(), SourceError> {
        // Ties in time are ordered by key, not as the API happened to return
        // them, so a batch read twice (after a crash, or by two writers that
        // overlap) is the same bytes and so the same object.
        pending
            .lines
            .sort_by(|a, b| (a.at_ms, &a.key).cmp(&(b.at_ms, &b.key)));
        pending
            .quarantined
            .sort_by(|a, b| (a.1.at_ms, &a.0).cmp(&(b.1.at_ms, &b.0)));
        if self.settings.output.enrich_yaml_diff {
            for i in 0..pending.lines.len() {
                if pending.lines[i].yaml {
                    let member = self.yaml_diff(&pending.lines[i].key, report, fx);
                    enrich(&mut pending.lines[i].text, &member);
                }
            }
        }
        let range = pending.range.expect("pending events have a range");
        let checkpoint = self.checkpoint.to_bytes();
        let quarantine = (!pending.quarantined.is_empty()).then(|| {
            let recorded = if pending.lines.is_empty() {
                checkpoint.clone()
            } else {
                let mut committed = self.committed_checkpoint();
                for (key, q) in &pending.quarantined {
                    committed.record_quarantined(q.at_ms, key);
                }
                committed.to_bytes()
            };
            Quarantine {
                events: pending.quarantined.iter().map(|(_, q)| q.clone()).collect(),
                checkpoint: recorded,
            }
        });
        fx.pipeline
            .emit(batch(&pending.lines, quarantine, range, checkpoint.clone()))
            .map_err(SourceError::SinkFailure)?;
        self.committed = checkpoint;
        report.batches += 1;
        report.events_emitted += pending.lines.len() as u64;
        report.events_quarantined += pending.quarantined.len() as u64;
        *pending = Pending::default();
        Ok(())
    }

    /// The checkpoint as of the last emitted batch.
    fn committed_checkpoint(&self) -> Checkpoint {
        Checkpoint::load(
            &self.committed,
            &self.settings.query.account_id,
            self.settings.overlap_ms(),
        )
        .expect("a checkpoint this source serialized reads back")
    }

    /// Continues a `listV2` token chain when its body is unchanged; otherwise
    /// starts at the walk's cursor.
    fn next_request(&self, walk: &Walk) -> ListRequest {
        let page_size = walk.page_size.unwrap_or(self.settings.query.page_size);
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
        let (start_ms, end_ms, page_index) = match self.settings.query.api_flavor {
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

    /// One page, its events placed in order inside the request's range.
    fn fetch_page<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        req: &ListRequest,
        body: &[u8],
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
    ) -> Result<Page, SourceError> {
        let url = request::url(&self.settings, req);
        let at = req.at();
        let page = self.call(
            report,
            fx,
            |t| t.post_json(&url, body),
            |r| page::parse(r, &at),
        )?;
        report.pages += 1;
        report.events_read += page.events.len() as u64;
        Ok(page)
    }

    /// `"harnessAuditYamlDiff":{...}` for a configuration change: the diff, or
    /// the error that kept it from being fetched (the event is written either way).
    fn yaml_diff<T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        audit_id: &str,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
    ) -> String {
        let url = request::yaml_url(&self.settings, audit_id);
        let value = match self.call(report, fx, |t| t.get(&url), page::parse_yaml) {
            Ok(diff) => serde_json::to_string(&diff).expect("strings always serialize"),
            Err(e) => serde_json::json!({ "error": describe(&e) }).to_string(),
        };
        format!("\"{YAML_DIFF_KEY}\":{value}")
    }

    /// Sends with pacing, and retries what is retryable within the pass's budget.
    fn call<R, T: Transport, P: Pipeline, C: Clock>(
        &mut self,
        report: &mut PollReport,
        fx: &mut Effects<'_, T, P, C>,
        mut send: impl FnMut(&mut T) -> Result<HttpResponse, TransportError>,
        parse: impl Fn(&HttpResponse) -> Result<R, SourceError>,
    ) -> Result<R, SourceError> {
        let budget_ms = u64::from(self.settings.retries.retry_budget_secs) * 1000;
        let mut attempt = 0;
        loop {
            let wait = self.pacer.delay_ms(fx.clock.now_ms());
            if wait > 0 {
                fx.clock.sleep_ms(wait);
            }
            let result = match send(fx.transport) {
                Ok(resp) => parse(&resp),
                Err(TransportError::Failed(m)) => Err(SourceError::Transport(m)),
                Err(TransportError::Body(u)) => Err(SourceError::Unusable(u)),
            };
            let err = match result {
                Err(err) if err.is_retryable() && attempt < self.settings.retries.max_retries => {
                    err
                }
                other => return other,
            };
            let retry_after = match &err {
                SourceError::RateLimited {
                    retry_after_secs, ..
                } => *retry_after_secs,
                _ => None,
            };
            let random = fx.clock.random_u64();
            let delay = retry::delay_ms(
                attempt,
                self.settings.retries.retry_base_ms,
                retry_after,
                random,
            );
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

/// Whether the event (an object) is a configuration change.
fn wants_yaml_diff(raw: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct ActionKey {
        action: Option<String>,
    }
    serde_json::from_str::<ActionKey>(raw)
        .ok()
        .and_then(|k| k.action)
        .is_some_and(|action| YAML_ACTIONS.contains(&action.as_str()))
}

/// Adds a `"key":value` member to the object `text`.
fn enrich(text: &mut String, member: &str) {
    let open = text.trim_end().len() - 1;
    debug_assert_eq!(&text[open..=open], "}", "a shaped event is an object");
    let empty = text[..open].trim_end().ends_with('{');
    text.truncate(open);
    if !empty {
        text.push(',');
    }
    text.push_str(member);
    text.push('}');
}

/// An error recorded on an event, in the words the host uses.
fn describe(e: &SourceError) -> String {
    match e {
        SourceError::Unauthorized(f)
        | SourceError::Forbidden(f)
        | SourceError::BadRequest(f)
        | SourceError::ServerError(f) => f.to_string(),
        SourceError::RateLimited { message, .. } => format!("HTTP 429: {message}"),
        SourceError::Transport(m) => format!("request failed: {m}"),
        SourceError::Unusable(u) => format!("unusable response: {u}"),
        other => format!("{other:?}"),
    }
}

/// Puts an event on one line. JSON strings cannot hold raw line breaks, so
/// in JSON one is whitespace between tokens and becomes a space; in bytes
/// that are not JSON, one inside what reads as a string becomes its escape.
fn one_line(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        match b {
            b'\n' | b'\r' if in_string => {
                out.extend_from_slice(if b == b'\n' { b"\\n" } else { b"\\r" });
                escaped = false;
                continue;
            }
            b'\n' | b'\r' => {
                out.push(b' ');
                continue;
            }
            b'"' if !escaped => in_string = !in_string,
            _ => {}
        }
        escaped = in_string && b == b'\\' && !escaped;
        out.push(b);
    }
    out
}

/// The batch of `lines` (in their shape) and `quarantine`.
fn batch(
    lines: &[Line],
    quarantine: Option<Quarantine>,
    window: Window,
    checkpoint: Vec<u8>,
) -> Batch {
    let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.text.len() + 1).sum());
    for line in lines {
        // JSON strings cannot hold raw newlines, so any here is whitespace
        // between tokens; flattening it keeps one event per line. One
        // branch-free pass copies and flattens at once: in wasm32, where
        // `contains` scans four bytes at a time, it beats scanning first.
        bytes.extend(
            line.text
                .bytes()
                .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
        bytes.push(b'\n');
    }
    let times = lines.iter().map(|l| l.at_ms).chain(
        quarantine
            .iter()
            .flat_map(|q| q.events.iter().map(|e| e.at_ms)),
    );
    let (first, last) = times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    Batch {
        lines: bytes,
        event_count: u32::try_from(lines.len()).expect("a batch holds at most 20,000 events"),
        first_event_ms: first,
        last_event_ms: last,
        window_start_ms: window.start_ms,
        window_end_ms: window.end_ms,
        checkpoint,
        quarantine,
    }
}

#[cfg(test)]
mod tests;

/// A core [`Batch`] as the WIT record `harness:audit/types.batch`. `$wit`
/// is the module holding the record's Rust types: the component's from
/// wit-bindgen, the host's from wasmtime's `bindgen!` (the fuzz target that
/// checks batches as the host does), distinct types of one shape, as for
/// [`crate::wit_settings`].
#[macro_export]
macro_rules! wit_batch {
    ($wit:ident, $batch:expr) => {{
        use $crate::event::Reason;
        let batch: $crate::pass::Batch = $batch;
        // The core serializes checkpoints as JSON, which is UTF-8 text.
        let text =
            |bytes: Vec<u8>| String::from_utf8(bytes).expect("the core's checkpoint is JSON text");
        $wit::Batch {
            lines: batch.lines,
            event_count: batch.event_count,
            first_event_ms: batch.first_event_ms,
            last_event_ms: batch.last_event_ms,
            window_start_ms: batch.window_start_ms,
            window_end_ms: batch.window_end_ms,
            checkpoint: text(batch.checkpoint),
            quarantine: batch.quarantine.map(|q| $wit::Quarantine {
                events: q
                    .events
                    .into_iter()
                    .map(|e| $wit::QuarantinedEvent {
                        bytes: e.bytes,
                        reason: match e.reason {
                            Reason::NotJson => $wit::QuarantineReason::NotJson,
                            Reason::NotAnObject => $wit::QuarantineReason::NotAnObject,
                            Reason::AuditId => $wit::QuarantineReason::AuditId,
                            Reason::Timestamp => $wit::QuarantineReason::Timestamp,
                            Reason::Unmappable => $wit::QuarantineReason::Unmappable,
                        },
                        detail: e.detail,
                        at_ms: e.at_ms,
                    })
                    .collect(),
                checkpoint: text(q.checkpoint),
            }),
        }
    }};
}
