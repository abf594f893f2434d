//! One request pace per API key for the whole process. Harness's edge limits
//! each key, not each collector, so every pass on a key draws from one pace:
//! a live pass and a backfill in one `serve` together stay under the key's
//! `MAX_REQUESTS_PER_MINUTE`. The pace also learns from 429s, so collectors
//! in other processes, or scripts on the same key, settle under the limit
//! together.
//!
//! The edge sends 429 with no `Retry-After` (API doc, section 6) once the
//! key's requests in the last minute reach its budget. So on a 429 the pace
//! learns its share: what the edge admitted of this key's requests in the
//! last minute, less a tenth. It never cuts by more than half at once, so a
//! lone refusal early in a pass does not stall it; and at most once a minute,
//! since refusals within the minute after a cut report the window the cut is
//! already draining.
//!
//! From twenty seconds after a cut it probes for capacity others have
//! freed: every ten seconds the rate grows by a step that starts at 1% of
//! the ceiling and doubles each time, until the next 429 cuts it and starts
//! the steps small again. Below what the edge admitted before the cut each
//! step climbs half the way back at least; there the steps start small
//! again, so the limit is found with a few refusals; far below it (a process
//! beside it has stopped) the doubling steps regain the rate within a minute
//! or two. Two processes on one key, simulated against the edge in the
//! tests below, keep over 90% of its budget with under 1% refused.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use url::Url;

/// Requests a minute Harness's edge allows one key (API doc, section 6):
/// where an unpaced key (`MAX_REQUESTS_PER_MINUTE` 0) starts once refused.
const EDGE_LIMIT_PER_MINUTE: f64 = 400.0;
/// The edge counts requests over a minute.
const EDGE_WINDOW: Duration = Duration::from_secs(60);
/// Share of the requests admitted in the last minute a cut keeps.
const SHARE_KEPT: f64 = 0.9;
/// A cut keeps at least this share of the rate.
const MAX_CUT: f64 = 0.5;
/// Time after a cut before the rate grows again: a third of the edge's
/// window, which the cut must first drain. Waiting the whole window costs a
/// backfill beside a collector that has gone quiet a tenth of the key
/// (simulated below); probing much sooner, into a window still full, costs
/// refusals.
const PROBE_AFTER: Duration = Duration::from_secs(20);
/// Time between two steps up.
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// The first step up after a cut, as a share of the ceiling (of the edge's
/// limit when there is none).
const FIRST_STEP: f64 = 0.01;
/// Each step up is this much larger than the one before.
const STEP_GROWTH: f64 = 2.0;
/// The pace never drops below this many requests a minute.
const FLOOR_PER_MINUTE: f64 = 4.0;

/// The paces of the keys in use in this process, by origin and key. A pace
/// lives as long as a pass uses it.
#[derive(Default)]
pub struct KeyPaces {
    paces: Mutex<HashMap<[u8; 32], Weak<KeyPace>>>,
}

impl std::fmt::Debug for KeyPaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPaces").finish_non_exhaustive()
    }
}

impl KeyPaces {
    /// The pace of `api_key` at `api_base`'s origin. `per_minute` is this
    /// user's ceiling (0: none); a key shared by users of different
    /// ceilings keeps the lowest.
    pub fn pace(&self, api_base: &Url, api_key: &str, per_minute: u32) -> Arc<KeyPace> {
        // Only a digest of the key is kept, so no map holds the secret.
        let id: [u8; 32] = Sha256::new()
            .chain_update(api_base.origin().ascii_serialization())
            .chain_update([0])
            .chain_update(api_key)
            .finalize()
            .into();
        let ceiling = if per_minute == 0 {
            f64::INFINITY
        } else {
            f64::from(per_minute)
        };
        let mut paces = self.paces.lock().expect("the key paces lock");
        paces.retain(|_, pace| pace.strong_count() > 0);
        if let Some(pace) = paces.get(&id).and_then(Weak::upgrade) {
            pace.lower_ceiling(ceiling);
            return pace;
        }
        let pace = Arc::new(KeyPace::new(ceiling, Instant::now()));
        paces.insert(id, Arc::downgrade(&pace));
        pace
    }
}

/// A key's pace: when its next request may go, learned from its answers.
#[derive(Debug)]
pub struct KeyPace {
    state: Mutex<Aimd>,
}

#[derive(Debug)]
struct Aimd {
    /// Requests a minute never exceeded (infinite: no ceiling).
    ceiling: f64,
    /// Requests a minute now (infinite: unpaced).
    rate: f64,
    /// The earliest time of the next request.
    next: Instant,
    /// When the rate was last cut.
    cut_at: Option<Instant>,
    /// When the rate last grew, or the time probing starts from.
    probed_at: Instant,
    /// The next step up, in requests a minute.
    step: f64,
    /// Requests the edge admitted in the minute before the last cut (0
    /// before any): below it each step climbs half the way back at least,
    /// and on reaching it the steps start small again.
    cut_from: f64,
    /// When the edge admitted this key's requests in the last minute.
    admitted: VecDeque<Instant>,
}

/// A cut of the key's pace after a 429.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cut {
    /// Requests a minute before it.
    pub from: f64,
    /// Requests a minute after it.
    pub to: f64,
    /// Requests the edge admitted in the minute before it.
    pub admitted: usize,
}

impl KeyPace {
    fn new(ceiling: f64, now: Instant) -> Self {
        Self {
            state: Mutex::new(Aimd {
                ceiling,
                rate: ceiling,
                next: now,
                cut_at: None,
                probed_at: now,
                step: first_step(ceiling),
                cut_from: 0.0,
                admitted: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Aimd> {
        self.state.lock().expect("a key pace lock")
    }

    fn lower_ceiling(&self, ceiling: f64) {
        let mut state = self.lock();
        state.ceiling = state.ceiling.min(ceiling);
        state.rate = state.rate.min(state.ceiling);
    }

    /// Reserves the next slot at or after `now`: the request goes then.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut state = self.lock();
        state.grow(now);
        let slot = state.next.max(now);
        state.next = slot + state.interval();
        slot
    }

    /// Learns from an answer received at `now`: a 429 (`refused`) may cut
    /// the rate; any other answer counts as admitted.
    pub fn answered(&self, refused: bool, now: Instant) -> Option<Cut> {
        let mut state = self.lock();
        while state
            .admitted
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= EDGE_WINDOW)
        {
            state.admitted.pop_front();
        }
        if !refused {
            state.admitted.push_back(now);
            return None;
        }
        if state
            .cut_at
            .is_some_and(|at| now.saturating_duration_since(at) < EDGE_WINDOW)
        {
            return None;
        }
        let from = state.rate;
        let admitted = state.admitted.len();
        #[expect(clippy::cast_precision_loss, reason = "a minute's requests")]
        let admitted_rate = admitted as f64;
        let share = admitted_rate * SHARE_KEPT;
        let to = if from.is_finite() {
            share.max(from * MAX_CUT).min(from)
        } else {
            share.max(EDGE_LIMIT_PER_MINUTE * MAX_CUT)
        };
        state.rate = to.max(FLOOR_PER_MINUTE);
        state.cut_at = Some(now);
        state.probed_at = now + PROBE_AFTER;
        state.step = first_step(state.ceiling);
        state.cut_from = admitted_rate;
        Some(Cut {
            from,
            to: state.rate,
            admitted,
        })
    }

    /// Requests a minute now (infinite when unpaced).
    #[cfg(test)]
    fn per_minute(&self) -> f64 {
        self.lock().rate
    }
}

impl Aimd {
    fn interval(&self) -> Duration {
        if self.rate.is_finite() {
            Duration::from_secs_f64(60.0 / self.rate)
        } else {
            Duration::ZERO
        }
    }

    /// Steps up, one for each [`PROBE_EVERY`] since the last, each
    /// [`STEP_GROWTH`] times the one before, never past the ceiling.
    fn grow(&mut self, now: Instant) {
        if !self.rate.is_finite() {
            return;
        }
        while now.saturating_duration_since(self.probed_at) >= PROBE_EVERY {
            self.probed_at += PROBE_EVERY;
            if self.rate >= self.ceiling {
                // At the ceiling nothing is probed: the steps start small
                // when it is next cut.
                self.probed_at = self.probed_at.max(now);
                break;
            }
            let below = self.rate < self.cut_from;
            // Below what the edge admitted before the cut, half the way
            // back at least: that rate was held, if only just.
            let climb = if below {
                self.step.max((self.cut_from - self.rate) / 2.0)
            } else {
                self.step
            };
            self.rate = (self.rate + climb).min(self.ceiling);
            self.step *= STEP_GROWTH;
            if below && self.rate >= self.cut_from {
                self.rate = self.cut_from;
                self.step = first_step(self.ceiling);
            }
        }
    }
}

/// The first step up from a cut.
fn first_step(ceiling: f64) -> f64 {
    let base = if ceiling.is_finite() {
        ceiling
    } else {
        EDGE_LIMIT_PER_MINUTE
    };
    base * FIRST_STEP
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn slots_are_spaced_at_the_rate_and_idle_time_is_not_banked() {
        let t0 = Instant::now();
        let pace = KeyPace::new(300.0, t0);
        assert_eq!(pace.reserve(t0), t0);
        assert_eq!(pace.reserve(t0), t0 + secs(0.2));
        assert_eq!(pace.reserve(t0 + secs(0.1)), t0 + secs(0.4));
        assert_eq!(pace.reserve(t0 + secs(5.0)), t0 + secs(5.0));
        assert_eq!(pace.reserve(t0 + secs(5.0)), t0 + secs(5.2));
    }

    #[test]
    fn every_user_of_a_key_draws_from_one_pace() {
        let paces = KeyPaces::default();
        let base = Url::parse("https://app.harness.io/gateway").unwrap();
        let live = paces.pace(&base, "pat.a.b.c", 300);
        let backfill = paces.pace(
            &Url::parse("https://app.harness.io").unwrap(),
            "pat.a.b.c",
            300,
        );
        assert!(Arc::ptr_eq(&live, &backfill), "same origin, same key");
        let other_key = paces.pace(&base, "pat.a.b.d", 300);
        let other_origin = paces.pace(
            &Url::parse("https://eu.harness.io").unwrap(),
            "pat.a.b.c",
            300,
        );
        assert!(!Arc::ptr_eq(&live, &other_key));
        assert!(!Arc::ptr_eq(&live, &other_origin));

        let now = Instant::now() + secs(1.0);
        let slots = [
            live.reserve(now),
            backfill.reserve(now),
            live.reserve(now),
            backfill.reserve(now),
        ];
        assert!(
            slots.windows(2).all(|w| w[1] - w[0] == secs(0.2)),
            "{slots:?}"
        );

        let stricter = paces.pace(&base, "pat.a.b.c", 120);
        assert_eq!(stricter.per_minute(), 120.0, "the lowest ceiling wins");
        let looser = paces.pace(&base, "pat.a.b.c", 0);
        assert_eq!(looser.per_minute(), 120.0);
    }

    #[test]
    fn a_pace_no_pass_uses_is_dropped() {
        let paces = KeyPaces::default();
        let base = Url::parse("https://app.harness.io").unwrap();
        let first = paces.pace(&base, "pat.a.b.c", 100);
        first.answered(true, Instant::now());
        drop(first);
        let second = paces.pace(&base, "pat.a.b.c", 300);
        assert_eq!(second.per_minute(), 300.0, "a fresh pace, not the cut one");
        assert_eq!(paces.paces.lock().unwrap().len(), 1);
    }

    /// Answers `n` requests as admitted, evenly over the second before `at`.
    fn admit(pace: &KeyPace, n: u32, at: Instant) {
        for i in 0..n {
            pace.answered(false, at - secs(1.0) + secs(f64::from(i) / f64::from(n)));
        }
    }

    #[test]
    fn a_429_learns_the_key_s_share_from_the_last_minute_cutting_at_most_half_once_a_minute() {
        let t0 = Instant::now();
        let pace = KeyPace::new(380.0, t0);
        // Another collector takes half the key: the edge admitted 200 of ours in the last minute.
        admit(&pace, 200, t0 + secs(30.0));
        let cut = pace.answered(true, t0 + secs(30.0)).unwrap();
        assert_eq!(
            cut,
            Cut {
                from: 380.0,
                to: 190.0,
                admitted: 200
            }
        );
        assert!(
            pace.answered(true, t0 + secs(80.0)).is_none(),
            "the edge's minute is still full: no second cut"
        );
        // A minute on, the edge admitted 150 at the new pace: 90% of it is kept.
        admit(&pace, 150, t0 + secs(95.0));
        let second = pace.answered(true, t0 + secs(95.0)).unwrap();
        assert!((second.to - 135.0).abs() < 1e-9, "{second:?}");
        assert_eq!(second.admitted, 150, "the first 200 left the window");
    }

    #[test]
    fn a_lone_429_early_in_a_pass_halves_the_rate_at_most() {
        let t0 = Instant::now();
        let pace = KeyPace::new(600.0, t0);
        admit(&pace, 3, t0 + secs(1.0));
        assert_eq!(pace.answered(true, t0 + secs(1.0)).unwrap().to, 300.0);
        let unpaced = KeyPace::new(f64::INFINITY, t0);
        assert_eq!(
            unpaced.answered(true, t0).unwrap().to,
            EDGE_LIMIT_PER_MINUTE * MAX_CUT
        );
        let fast = KeyPace::new(f64::INFINITY, t0);
        admit(&fast, 3000, t0 + secs(2.0));
        assert_eq!(
            fast.answered(true, t0 + secs(2.0)).unwrap().to,
            2700.0,
            "an unpaced drain keeps 90% of what the edge took"
        );
    }

    #[test]
    fn from_twenty_seconds_after_a_cut_the_rate_grows_every_ten_seconds_by_steps_that_double() {
        let t0 = Instant::now();
        let pace = KeyPace::new(400.0, t0);
        pace.answered(true, t0);
        assert_eq!(pace.per_minute(), 200.0);
        pace.reserve(t0 + secs(29.0));
        assert_eq!(
            pace.per_minute(),
            200.0,
            "the first step is 30 s after the cut"
        );
        pace.reserve(t0 + secs(30.0));
        assert!(
            (pace.per_minute() - 204.0).abs() < 1e-9,
            "one step of 1% of 400"
        );
        pace.reserve(t0 + secs(50.0));
        assert!(
            (pace.per_minute() - (204.0 + 8.0 + 16.0)).abs() < 1e-9,
            "{}",
            pace.per_minute()
        );
        pace.reserve(t0 + secs(140.0));
        assert_eq!(
            pace.per_minute(),
            400.0,
            "back within two minutes of probing"
        );
        pace.reserve(t0 + secs(6000.0));
        assert_eq!(pace.per_minute(), 400.0, "never past the ceiling");

        pace.answered(true, t0 + secs(6000.0));
        pace.reserve(t0 + secs(6030.0));
        assert!(
            (pace.per_minute() - 204.0).abs() < 1e-9,
            "a cut starts the steps small again: {}",
            pace.per_minute()
        );
    }

    #[test]
    fn below_what_the_edge_admitted_before_a_cut_each_step_climbs_half_the_way_back_at_least() {
        let t0 = Instant::now();
        let pace = KeyPace::new(400.0, t0);
        admit(&pace, 300, t0 + secs(90.0));
        pace.answered(true, t0 + secs(90.0));
        assert_eq!(pace.per_minute(), 270.0, "90% of the 300 admitted");
        let at = |s: f64| {
            pace.reserve(t0 + secs(90.0 + s));
            pace.per_minute()
        };
        assert!((at(30.0) - 285.0).abs() < 1e-9, "half of the 30 back");
        assert!(
            (at(40.0) - 293.0).abs() < 1e-9,
            "the doubled step, 8, is more than half of 15"
        );
        assert!(
            (at(50.0) - 300.0).abs() < 1e-9,
            "never past 300 in one climb"
        );
        assert!(
            (at(60.0) - 304.0).abs() < 1e-9,
            "past it, small steps again"
        );
    }

    /// Harness's edge: 400 admitted requests per key in any minute.
    struct Edge {
        admitted: VecDeque<Instant>,
    }

    impl Edge {
        fn admit(&mut self, now: Instant) -> bool {
            while self
                .admitted
                .front()
                .is_some_and(|at| now.saturating_duration_since(*at) >= EDGE_WINDOW)
            {
                self.admitted.pop_front();
            }
            let pass = self.admitted.len() < 400;
            if pass {
                self.admitted.push_back(now);
            }
            pass
        }
    }

    /// Processes on one key, each with its own pace at the default ceiling
    /// and always a request to make, run against the edge for `phases`
    /// (seconds from, seconds to, which processes run); a process that
    /// starts again starts with a fresh pace, as a new process does. For
    /// each phase: the share of the edge's 400 a minute admitted, and of
    /// the requests refused, both after the phase's first minute.
    fn share_of_the_key(phases: &[(u64, u64, &[usize])]) -> Vec<(f64, f64)> {
        let t0 = Instant::now();
        let end = phases.iter().map(|p| p.1).max().unwrap();
        let runs = |who: usize, at: u64| {
            phases
                .iter()
                .any(|p| p.0 <= at && at < p.1 && p.2.contains(&who))
        };
        let mut edge = Edge {
            admitted: VecDeque::new(),
        };
        let mut paces: Vec<Option<KeyPace>> = vec![None, None];
        let mut next: Vec<Instant> = vec![t0, t0];
        // A slot reserved and not yet reached.
        let mut slots: Vec<Option<Instant>> = vec![None, None];
        let mut answers: Vec<(u64, bool)> = Vec::new();
        let mut latency: u64 = 1;
        loop {
            let who = usize::from(next[1] < next[0]);
            let now = next[who];
            let since_ms = u64::try_from((now - t0).as_millis()).unwrap();
            if since_ms >= end * 1000 {
                break;
            }
            if !runs(who, since_ms / 1000) {
                paces[who] = None;
                slots[who] = None;
                next[who] = now + secs(1.0);
                continue;
            }
            let pace = paces[who].get_or_insert_with(|| KeyPace::new(380.0, now));
            if slots[who].take().is_none() {
                let slot = pace.reserve(now);
                slots[who] = Some(slot);
                next[who] = slot;
                continue;
            }
            // The request reaches the edge, and its answer comes back, 1 to
            // 50 ms later each way, drawn from a fixed sequence.
            let mut delay = || {
                latency = latency
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                Duration::from_millis(1 + (latency >> 33) % 50)
            };
            let at_edge = now + delay();
            let answered_at = at_edge + delay();
            let admitted = edge.admit(at_edge);
            pace.answered(!admitted, answered_at);
            answers.push((since_ms, !admitted));
            next[who] = answered_at;
        }
        phases
            .iter()
            .map(|&(from, to, _)| {
                let after_first_minute: Vec<bool> = answers
                    .iter()
                    .filter(|(at, _)| (from + 60) * 1000 <= *at && *at < to * 1000)
                    .map(|(_, refused)| *refused)
                    .collect();
                let refused = after_first_minute.iter().filter(|r| **r).count();
                let admitted = after_first_minute.len() - refused;
                #[expect(clippy::cast_precision_loss, reason = "counts of a test")]
                let minutes = (to - from).saturating_sub(60) as f64 / 60.0;
                #[expect(clippy::cast_precision_loss, reason = "counts of a test")]
                (
                    admitted as f64 / minutes / 400.0,
                    refused as f64 / after_first_minute.len() as f64,
                )
            })
            .collect()
    }

    #[test]
    fn two_processes_on_one_key_fill_nine_tenths_of_it_as_either_starts_or_stops() {
        let both: &[usize] = &[0, 1];
        let one: &[usize] = &[0];
        let phases = share_of_the_key(&[(0, 600, both), (600, 1200, one), (1200, 1800, both)]);
        for ((share, refused), what) in
            phases
                .iter()
                .zip(["both", "one stopped", "it started again"])
        {
            assert!(*share >= 0.9, "{what}: {:.1}% of the key", share * 100.0);
            assert!(*refused <= 0.01, "{what}: {:.2}% refused", refused * 100.0);
        }
        // Both start at once, and a minute on one goes quiet (a live
        // collector that has caught up, beside a backfill): the other, cut
        // when they started, takes the key back within minutes.
        let (share, refused) = share_of_the_key(&[(0, 60, both), (60, 300, one)])[1];
        assert!(
            share >= 0.9,
            "after a start together: {:.1}% of the key",
            share * 100.0
        );
        assert!(
            refused <= 0.01,
            "after a start together: {:.2}% refused",
            refused * 100.0
        );
    }

    #[test]
    fn the_rate_never_drops_below_the_floor() {
        let t0 = Instant::now();
        let pace = KeyPace::new(f64::INFINITY, t0);
        assert_eq!(pace.reserve(t0), t0);
        assert_eq!(pace.reserve(t0), t0, "no spacing while unpaced");
        let mut at = t0;
        for _ in 0..20 {
            at += EDGE_WINDOW;
            pace.answered(true, at);
        }
        assert_eq!(pace.per_minute(), FLOOR_PER_MINUTE);
    }
}
