//! The component's own pacing, at a fixed rate: all a source has under a
//! stock host. The Rust host also paces each key across all its passes and
//! learns from 429s (`host/src/engine/pacing.rs`).

/// Spaces requests evenly at a fixed rate.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    interval_ms: u64,
    next_at_ms: Option<u64>,
}

impl Pacer {
    /// At most `per_minute` requests a minute; 0 disables pacing.
    pub fn new(per_minute: u32) -> Self {
        let interval_ms = if per_minute == 0 {
            0
        } else {
            60_000u64.div_ceil(u64::from(per_minute))
        };
        Self {
            interval_ms,
            next_at_ms: None,
        }
    }

    /// How long to wait before a request at `now_ms`; records the request.
    pub fn delay_ms(&mut self, now_ms: u64) -> u64 {
        let at = self.next_at_ms.map_or(now_ms, |next| next.max(now_ms));
        self.next_at_ms = Some(at + self.interval_ms);
        at - now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_requests_at_the_configured_rate() {
        let mut pacer = Pacer::new(300);
        assert_eq!(pacer.delay_ms(1_000), 0);
        assert_eq!(pacer.delay_ms(1_000), 200);
        assert_eq!(pacer.delay_ms(1_100), 300, "the third slot is at 1400");
        assert_eq!(pacer.delay_ms(5_000), 0, "idle time is not banked");
        assert_eq!(pacer.delay_ms(5_050), 150);
    }

    #[test]
    fn zero_disables_pacing() {
        let mut pacer = Pacer::new(0);
        assert!((0..10).all(|_| pacer.delay_ms(7) == 0));
    }
}
