//! Backoff between attempts of one request: exponential with full jitter.

/// Longest wait between two attempts, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Longest `Retry-After` honoured, in seconds; a larger value is capped.
pub const MAX_RETRY_AFTER_SECS: u32 = 300;

/// Delay before retry number `attempt` (0-based). `random` is a uniformly
/// random `u64`; full jitter spreads many tenants sharing one key over time.
pub fn delay_ms(attempt: u32, base_ms: u32, retry_after_secs: Option<u32>, random: u64) -> u64 {
    if let Some(secs) = retry_after_secs {
        return u64::from(secs.min(MAX_RETRY_AFTER_SECS)) * 1000;
    }
    let ceiling = u64::from(base_ms)
        .saturating_mul(1u64.checked_shl(attempt).unwrap_or(u64::MAX))
        .min(MAX_DELAY_MS);
    if ceiling == 0 {
        0
    } else {
        random % (ceiling + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_doubling_ceiling() {
        for attempt in 0..5 {
            let ceiling = 100u64 << attempt;
            assert_eq!(delay_ms(attempt, 100, None, ceiling), ceiling);
            assert_eq!(delay_ms(attempt, 100, None, ceiling + 1), 0);
            assert!(delay_ms(attempt, 100, None, u64::MAX) <= ceiling);
        }
    }

    #[test]
    fn ceiling_is_capped_and_never_overflows() {
        assert_eq!(delay_ms(80, 1000, None, MAX_DELAY_MS), MAX_DELAY_MS);
        assert_eq!(
            delay_ms(200, u32::MAX, None, u64::MAX),
            u64::MAX % (MAX_DELAY_MS + 1)
        );
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        assert_eq!(delay_ms(0, 100, Some(7), 0), 7000);
        assert_eq!(delay_ms(0, 100, Some(86_400), 0), 300_000);
    }

    #[test]
    fn zero_base_means_no_wait() {
        assert_eq!(delay_ms(3, 0, None, 12345), 0);
    }
}
