//! How long a retried message stays invisible.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff from a message's receive count, with jitter.
///
/// The n-th delivery (receive count n) waits `min × 2^(n-1)` plus up to
/// half of that again, capped at `max`. The jitter spreads messages that
/// failed together; it never makes a later attempt wait less than an
/// earlier one (attempt n lands in `[b, 1.5 b)`, attempt n+1 in
/// `[2 b, 3 b)`). Delays of a second or more are whole seconds, rounded
/// down, since SQS counts visibility in seconds; rounding down keeps the
/// attempts apart (1 s, 2 s, 4–5 s, 8–11 s, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's delay.
    pub min: Duration,
    /// The longest delay (SQS caps visibility at 12 h anyway).
    pub max: Duration,
}

impl Backoff {
    /// The delay before the next attempt of a message received
    /// `receive_count` times.
    pub fn delay(&self, receive_count: u32) -> Duration {
        self.delay_with(receive_count, rand::rng().random_range(0.0..0.5))
    }

    /// [`Self::delay`] with the jitter given: a fraction in `[0, 0.5)`.
    pub fn delay_with(&self, receive_count: u32, jitter: f64) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(32);
        let base = self.min.saturating_mul(2u32.saturating_pow(doublings));
        let mut delay = base.mul_f64(1.0 + jitter.clamp(0.0, 0.5));
        if delay >= Duration::from_secs(1) {
            delay = Duration::from_secs(delay.as_secs());
        }
        delay.clamp(self.min, self.max.max(self.min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        min: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    #[test]
    fn doubles_per_receive_within_bounds() {
        let without_jitter: Vec<u64> = (1..=8)
            .map(|n| BACKOFF.delay_with(n, 0.0).as_secs())
            .collect();
        assert_eq!(without_jitter, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(BACKOFF.delay_with(0, 0.0), Duration::from_secs(1));
        assert_eq!(BACKOFF.delay_with(u32::MAX, 0.4), Duration::from_secs(60));
    }

    #[test]
    fn jitter_adds_at_most_half_and_never_overlaps_the_next_attempt() {
        for n in 1..6 {
            let low = BACKOFF.delay_with(n, 0.0);
            let high = BACKOFF.delay_with(n, 0.499);
            assert!(high >= low && high < low.mul_f64(1.5) + Duration::from_secs(1));
            assert!(high < BACKOFF.delay_with(n + 1, 0.0));
        }
        for _ in 0..100 {
            let delay = BACKOFF.delay(3);
            assert!(delay == Duration::from_secs(4) || delay == Duration::from_secs(5));
        }
    }

    #[test]
    fn max_below_min_means_min() {
        let odd = Backoff {
            min: Duration::from_secs(5),
            max: Duration::from_secs(1),
        };
        assert_eq!(odd.delay_with(4, 0.3), Duration::from_secs(5));
    }
}
