//! Harness's edge (Google Cloud Armor): a budget of requests per API key over
//! a sliding window, and past it 429 with a plain-text body and no
//! `Retry-After` (API doc, section 6). Only admitted requests count, as with
//! Cloud Armor's throttle; a window is the strictest reading of "400 calls
//! per minute": no minute, wherever it starts, holds more.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

/// A budget per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimit {
    /// Requests admitted per window.
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

impl EdgeLimit {
    /// Harness's published limit: 400 external calls a minute per key.
    pub const HARNESS: Self = Self {
        requests: 400,
        window: Duration::from_secs(60),
    };
}

/// One answer of the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EdgeAnswer {
    /// Milliseconds since the mock started.
    pub at_ms: u64,
    /// Whether it was a 429.
    pub refused: bool,
}

/// What the edge admitted per key, and every answer it gave.
#[derive(Debug)]
pub(super) struct Edge {
    started: Instant,
    admitted: HashMap<String, VecDeque<Instant>>,
    answers: Vec<EdgeAnswer>,
}

impl Edge {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            admitted: HashMap::new(),
            answers: Vec::new(),
        }
    }

    /// Whether a request with `key` at `now` passes `limit`; records it.
    pub(super) fn admit(&mut self, limit: EdgeLimit, key: &str, now: Instant) -> bool {
        let admitted = self.admitted.entry(key.to_owned()).or_default();
        while admitted
            .front()
            .is_some_and(|at| now.duration_since(*at) >= limit.window)
        {
            admitted.pop_front();
        }
        let pass = admitted.len() < limit.requests as usize;
        if pass {
            admitted.push_back(now);
        }
        self.answers.push(EdgeAnswer {
            at_ms: u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX),
            refused: !pass,
        });
        pass
    }

    pub(super) fn answers(&self) -> &[EdgeAnswer] {
        &self.answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_budget_per_sliding_window_and_refusals_do_not_count() {
        let limit = EdgeLimit {
            requests: 3,
            window: Duration::from_secs(10),
        };
        let mut edge = Edge::new();
        let t0 = edge.started;
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(edge.admit(limit, "a", at(0)));
        assert!(edge.admit(limit, "a", at(4)));
        assert!(edge.admit(limit, "a", at(9)));
        assert!(!edge.admit(limit, "a", at(9)), "the fourth in ten seconds");
        assert!(
            edge.admit(limit, "b", at(9)),
            "another key has its own budget"
        );
        assert!(edge.admit(limit, "a", at(10)), "the first left the window");
        assert!(
            !edge.admit(limit, "a", at(13)),
            "the window slides: 4, 9, 10 are in it"
        );
        assert!(edge.admit(limit, "a", at(14)));
        let refused: Vec<u64> = edge
            .answers()
            .iter()
            .filter(|a| a.refused)
            .map(|a| a.at_ms)
            .collect();
        assert_eq!(refused, [9_000, 13_000]);
    }
}
