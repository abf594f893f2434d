//! A walk reads one inclusive time range to its end, whatever order the API
//! gives events that share a millisecond and however short its pages are.
//!
//! The `list` API is a Mongo `skip/limit` sorted on `timestamp` alone. So the
//! walk never steps through offsets, which shift as events arrive and mean
//! nothing inside a millisecond whose events come back in a new order on every
//! request. Each request starts at the newest millisecond read (`cursor_ms`);
//! the events already read there are remembered by id, so page 0 of the next
//! request holds at least one unread event unless the range is exhausted.
//!
//! A full page of one millisecond means that millisecond may hold more than a
//! page. It is then read on its own (a one-millisecond range) until the API's
//! count for it, `totalItems`, has been read, sweeping its pages again and
//! again if their order changes, within [`tie_request_bound`] requests.
//!
//! The walk ends when a page holds nothing unread, or when a short page brings
//! the events read up to the count the API gave for the request. A short page
//! alone proves nothing: a lagging secondary, or results filtered after
//! paging, shorten pages before the end.
//!
//! Events are known by [`Event::key`] and placed at [`Event::at_ms`]: an
//! event whose `timestamp` cannot be read sits where the event before it
//! does. A full page of such events holds no time to move by, so the walk
//! then steps through the request's pages by offset, until a page moves the
//! cursor or the range runs out. Its hour must be exact, since the ledger
//! compares hours with Harness's counts: when the events around it lie in
//! different hours, the walk drops the page and asks one hour at a time from
//! then on, so that the range asked for is the event's hour.

use serde::{Deserialize, Serialize};

use crate::ledger::{SLICE_MS, slice_start};
use crate::page::Event;

/// An inclusive time range, epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// `startTime`.
    pub start_ms: u64,
    /// `endTime`.
    pub end_ms: u64,
}

/// Why a range is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// A window of the pass: what has settled since the last one.
    Window,
    /// One ledger slice again, because Harness counts more than was stored.
    Reread,
}

/// A `listV2` page token and the body it belongs to. A token is sent only
/// with that exact body; anything else starts a new chain at the cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    /// `startTime` of the chain's body.
    pub start_ms: u64,
    /// [`crate::request::body_hash`] of that body.
    pub body_hash: u64,
    /// The token for the next page.
    pub token: String,
}

/// Reading the cursor's millisecond on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tie {
    /// Requests made for it so far.
    pub requests: u32,
    /// `pageIndex` of the next request.
    pub next_page: u32,
}

/// A millisecond whose count was not reached within the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TieShortfall {
    /// The millisecond.
    pub ms: u64,
    /// The API's count for it.
    pub counted: u64,
    /// Distinct events read from it.
    pub read: u64,
}

/// What one page did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// The range has been read to its end.
    pub done: bool,
    /// A millisecond was left with fewer events than counted.
    pub tie_shortfall: Option<TieShortfall>,
    /// The page was not read: it is asked for again, one hour at a time.
    pub dropped: bool,
}

/// The state of one walk, kept in the checkpoint so that it resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Walk {
    /// Why the range is read.
    pub purpose: Purpose,
    /// The range.
    pub range: Window,
    /// `startTime` of the next request: the newest millisecond read.
    pub cursor_ms: u64,
    /// Ids read at `cursor_ms`.
    pub seen_at_cursor: Vec<String>,
    /// Set while `cursor_ms` is read on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie: Option<Tie>,
    /// Distinct events read so far.
    pub read: u64,
    /// `totalItems` of the first request: the API's count for the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<u64>,
    /// Events this walk handed on to be written (not stored before).
    pub written: u64,
    /// `listV2` only: the token for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Chain>,
    /// `pageIndex` of the next request outside a tie: 0, unless full pages
    /// of events without a readable time keep the cursor where it is.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u32,
    /// The page size this walk asks for, when smaller than the configured
    /// one: a page came back larger than the component reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Set once a page held an event whose hour its neighbours left open:
    /// from then on no request reaches past the end of the cursor's hour.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hourly: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The last millisecond of the hour holding `ms`.
fn hour_end(ms: u64) -> u64 {
    slice_start(ms) + SLICE_MS - 1
}

/// Requests allowed for one millisecond whose events come back in a new
/// order each time: every sweep of its pages sees a random page-sized share,
/// so the chance that one of `count` events is still unseen after `sweeps`
/// sweeps is about `count * e^-sweeps`; `log2(count) + 8` sweeps make that
/// less than one in a thousand.
pub fn tie_request_bound(count: u64, page_size: u32) -> u32 {
    let pages = count.div_ceil(u64::from(page_size.max(1))).max(1);
    let sweeps = u64::from(u64::BITS - count.leading_zeros()) + 8;
    u32::try_from(pages.saturating_mul(sweeps)).unwrap_or(u32::MAX)
}

impl Walk {
    /// A walk over `range` from its start.
    pub fn new(purpose: Purpose, range: Window) -> Self {
        Self {
            purpose,
            range,
            cursor_ms: range.start_ms,
            seen_at_cursor: Vec::new(),
            tie: None,
            read: 0,
            counted: None,
            written: 0,
            chain: None,
            offset: 0,
            page_size: None,
            hourly: false,
        }
    }

    /// Whether the walk has not read `event` yet.
    pub fn unread(&self, event: &Event) -> bool {
        event.at_ms > self.cursor_ms
            || (event.at_ms == self.cursor_ms && !self.seen_at_cursor.contains(&event.key))
    }

    /// Whether `page` holds an event the walk has not read.
    pub fn unread_any(&self, page: &[Event]) -> bool {
        page.iter().any(|e| self.unread(e))
    }

    /// Events of the current request's range read once `page` is: the ones
    /// read before at the cursor, and the page's unread ones.
    pub fn known_with(&self, page: &[Event]) -> u64 {
        (self.seen_at_cursor.len() + page.iter().filter(|e| self.unread(e)).count()) as u64
    }

    /// `(startTime, endTime, pageIndex)` of the next `list` request.
    pub fn list_request(&self) -> (u64, u64, u32) {
        match self.tie {
            Some(tie) => (self.cursor_ms, self.cursor_ms, tie.next_page),
            None => (self.cursor_ms, self.request_end(), self.offset),
        }
    }

    /// `endTime` of the next request outside a tie.
    fn request_end(&self) -> u64 {
        if self.hourly {
            self.range.end_ms.min(hour_end(self.cursor_ms))
        } else {
            self.range.end_ms
        }
    }

    /// Whether `page` holds an event placed by its neighbours whose hour
    /// they leave open: the events before and after it (or the request's
    /// end) lie in different hours.
    fn hour_left_open(&self, page: &[Event]) -> bool {
        let end = self.request_end();
        if slice_start(self.cursor_ms) == slice_start(end) {
            return false;
        }
        page.iter().enumerate().any(|(i, e)| {
            let placed = e.time_ms != Some(e.at_ms);
            let upper = page[i + 1..]
                .iter()
                .find(|n| n.time_ms == Some(n.at_ms))
                .map_or(end, |n| n.at_ms);
            placed && slice_start(e.at_ms) != slice_start(upper)
        })
    }

    /// Asks for pages half the size from now on (at least 1), keeping each
    /// page index at the same events; the new size.
    pub fn halve_pages(&mut self, page_size: u32) -> u32 {
        let half = (page_size / 2).max(1);
        self.page_size = Some(half);
        if half < page_size {
            self.offset = self.offset.saturating_mul(2);
            if let Some(tie) = self.tie.as_mut() {
                tie.next_page = tie.next_page.saturating_mul(2);
            }
        }
        half
    }

    /// Moves past `page` (ascending, answering [`Walk::list_request`]);
    /// `total` is its `totalItems`.
    pub fn apply_list(&mut self, page: &[Event], total: Option<u64>, page_size: u32) -> Step {
        if self.tie.is_some() {
            return self.apply_tie(page, total, page_size);
        }
        if self.read == 0 && self.seen_at_cursor.is_empty() && self.cursor_ms == self.range.start_ms
        {
            self.counted = self.counted.or(total);
        }
        if !self.hourly && self.hour_left_open(page) {
            self.hourly = true;
            return Step {
                dropped: true,
                ..Step::default()
            };
        }
        let seen_before = self.seen_at_cursor.len() as u64;
        let full = page.len() >= page_size as usize;
        let at_cursor = full && page.iter().all(|e| e.at_ms == self.cursor_ms);
        let cursor_before = self.cursor_ms;
        let unread = self.advance(page);
        if at_cursor {
            if page.iter().any(|e| e.time_ms == Some(self.cursor_ms)) {
                self.tie = Some(Tie::default());
            } else {
                // No event on the page says where it is: only offsets step past them.
                self.offset = self.offset.saturating_add(1);
            }
            return Step::default();
        }
        if self.cursor_ms > cursor_before {
            self.offset = 0;
        }
        let known = seen_before + unread;
        let done = unread == 0 || (!full && total.is_some_and(|t| known >= t));
        let end = self.request_end();
        if done && end < self.range.end_ms {
            // The hour is read: the next one.
            self.cursor_ms = end + 1;
            self.seen_at_cursor.clear();
            self.offset = 0;
            return Step::default();
        }
        Step {
            done,
            ..Step::default()
        }
    }

    /// Moves past a `listV2` page; the chain is the caller's.
    pub fn apply_v2(&mut self, page: &[Event], has_next: bool) -> Step {
        self.advance(page);
        Step {
            done: !has_next,
            ..Step::default()
        }
    }

    /// Records the unread events of an ascending page; how many there were.
    fn advance(&mut self, page: &[Event]) -> u64 {
        let mut unread = 0;
        let mut newest = self.cursor_ms;
        for event in page.iter().filter(|e| self.unread(e)) {
            unread += 1;
            newest = newest.max(event.at_ms);
        }
        self.read += unread;
        if newest > self.cursor_ms {
            self.cursor_ms = newest;
            self.seen_at_cursor.clear();
        }
        // Only the cursor's millisecond needs its ids: everything before it is behind the walk.
        for event in page.iter().filter(|e| e.at_ms == self.cursor_ms) {
            if !self.seen_at_cursor.contains(&event.key) {
                self.seen_at_cursor.push(event.key.clone());
            }
        }
        unread
    }

    fn apply_tie(&mut self, page: &[Event], total: Option<u64>, page_size: u32) -> Step {
        self.advance(page);
        let tie = self.tie.as_mut().expect("in a tie");
        tie.requests += 1;
        let read = self.seen_at_cursor.len() as u64;
        let finished = match total {
            Some(count) => {
                if read >= count {
                    Some(None)
                } else if tie.requests >= tie_request_bound(count, page_size) {
                    Some(Some(TieShortfall {
                        ms: self.cursor_ms,
                        counted: count,
                        read,
                    }))
                } else {
                    let pages = count.div_ceil(u64::from(page_size.max(1))).max(1);
                    tie.next_page = u32::try_from((u64::from(tie.next_page) + 1) % pages)
                        .expect("below a u32 page index");
                    None
                }
            }
            // Without a count only the pages themselves tell where the millisecond ends.
            None if page.len() < page_size as usize => Some(None),
            None => {
                tie.next_page += 1;
                None
            }
        };
        let Some(tie_shortfall) = finished else {
            return Step::default();
        };
        self.tie = None;
        self.seen_at_cursor.clear();
        self.offset = 0;
        let done = self.cursor_ms >= self.range.end_ms;
        if !done {
            self.cursor_ms += 1;
        }
        Step {
            done,
            tie_shortfall,
            ..Step::default()
        }
    }
}

#[cfg(test)]
pub(crate) fn event(id: &str, ts: u64) -> Event {
    Event::from_json(
        serde_json::value::RawValue::from_string(format!(
            r#"{{"auditId":"{id}","timestamp":{ts}}}"#
        ))
        .unwrap(),
    )
}

#[cfg(test)]
mod tests;
