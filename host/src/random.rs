//! Randomness, in one place: the host needs it only for jitter and for
//! names that must not collide, never for secrets, so the standard library's
//! randomly keyed hasher serves and no RNG crate is linked.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A random number.
pub fn u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A uniform wait from zero to `max`, inclusive, at millisecond grain.
pub fn up_to(max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(u64() % max_ms.saturating_add(1))
}
