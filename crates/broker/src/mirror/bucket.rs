//! Token buckets: how fast a visitor's page may send.

use std::time::Instant;

/// Allows bursts of up to `capacity` units, refilled at `per_sec` units a
/// second. Time is passed in, so the arithmetic is tested without waiting.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(capacity: u64, per_sec: u64, now: Instant) -> Self {
        // Counts up to a few million are exact in an f64.
        Self {
            capacity: capacity as f64,
            per_sec: per_sec as f64,
            tokens: capacity as f64,
            last: now,
        }
    }

    /// Takes `units` at `now` if the bucket holds them; false (and nothing
    /// taken) if it does not.
    pub fn take(&mut self, units: u64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_sec).min(self.capacity);
        let units = units as f64;
        if units <= self.tokens {
            self.tokens -= units;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(240, 120, t0);
        for _ in 0..240 {
            assert!(b.take(1, t0));
        }
        assert!(!b.take(1, t0), "the burst is spent");
        // Half a second refills 60.
        let t1 = t0 + Duration::from_millis(500);
        for _ in 0..60 {
            assert!(b.take(1, t1));
        }
        assert!(!b.take(1, t1));
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(3600);
        assert!(b.take(240, t2));
        assert!(!b.take(1, t2));
    }

    #[test]
    fn a_refused_take_takes_nothing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(8, 2, t0);
        assert!(b.take(5, t0));
        assert!(!b.take(4, t0));
        assert!(b.take(3, t0));
        // Time going backwards (another clock's instant) refills nothing.
        assert!(!b.take(1, t0 - Duration::from_secs(10)));
    }
}
