//! Waits between attempts, exponential with jitter, so that clients or nodes that failed together
//! do not come back together: the Rust client's reconnects and the Redis broker's. One random
//! source and one exponential bound; each caller keeps its own formula.

use std::time::Duration;

/// `base · 2^attempt`, at most `max`.
pub(crate) fn exponential(base: Duration, attempt: u32, max: Duration) -> Duration {
    let factor = 2f64.powi(attempt.min(30) as i32);
    base.mul_f64(factor).min(max)
}

/// A random duration in `[0, bound]` (full jitter).
pub(crate) fn jitter(bound: Duration) -> Duration {
    bound.mul_f64(random_unit())
}

/// A number in [0, 1): the clock's nanoseconds through a randomly keyed hash (no cryptography
/// needed, and no dependency for it).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_doubles_up_to_the_most() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        assert_eq!(exponential(base, 0, max), base);
        assert_eq!(exponential(base, 3, max), Duration::from_millis(800));
        assert_eq!(exponential(base, 40, max), max);
    }

    #[test]
    fn jitter_spreads_within_the_bound() {
        let bound = Duration::from_secs(1);
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| jitter(bound)).collect();
        assert!(draws.iter().all(|d| *d <= bound));
        assert!(draws.len() > 10, "full jitter spreads the waits: {draws:?}");
    }
}
