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
//! already draining. Five quiet minutes after a cut it starts to grow back,
//! slowly, to find capacity other users have freed.

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
/// Quiet time after a cut before the rate grows again.
const PROBE_AFTER: Duration = Duration::from_secs(300);
/// Share of the ceiling regained each minute once probing: slow, since every
/// probe past the limit costs refusals for every pass on the key.
const GROWTH_PER_MINUTE: f64 = 0.02;
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
    /// When the rate last grew.
    grown_at: Instant,
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
                grown_at: now,
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
        let share = admitted as f64 * SHARE_KEPT;
        let to = if from.is_finite() {
            share.max(from * MAX_CUT).min(from)
        } else {
            share.max(EDGE_LIMIT_PER_MINUTE * MAX_CUT)
        };
        state.rate = to.max(FLOOR_PER_MINUTE);
        state.cut_at = Some(now);
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

    /// Additive increase, from [`PROBE_AFTER`] after the last cut: a share
    /// of the ceiling (of the edge's limit when there is none) per minute.
    fn grow(&mut self, now: Instant) {
        let probing_from = self.cut_at.map_or(self.grown_at, |at| at + PROBE_AFTER);
        let minutes = now
            .saturating_duration_since(self.grown_at.max(probing_from))
            .as_secs_f64()
            / 60.0;
        self.grown_at = self.grown_at.max(now);
        if self.rate.is_finite() {
            let step = if self.ceiling.is_finite() {
                self.ceiling
            } else {
                EDGE_LIMIT_PER_MINUTE
            };
            self.rate = (self.rate + step * GROWTH_PER_MINUTE * minutes).min(self.ceiling);
        }
    }
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
    fn the_rate_grows_back_two_percent_of_the_ceiling_a_minute_from_five_quiet_minutes_on() {
        let t0 = Instant::now();
        let pace = KeyPace::new(400.0, t0);
        pace.answered(true, t0);
        assert_eq!(pace.per_minute(), 200.0);
        pace.reserve(t0 + secs(240.0));
        assert_eq!(
            pace.per_minute(),
            200.0,
            "not within five minutes of the cut"
        );
        pace.reserve(t0 + secs(900.0));
        assert!(
            (pace.per_minute() - 280.0).abs() < 1e-6,
            "{}",
            pace.per_minute()
        );
        pace.reserve(t0 + secs(6000.0));
        assert_eq!(pace.per_minute(), 400.0, "never past the ceiling");
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
