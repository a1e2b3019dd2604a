//! Where the broker gets the time from.
//!
//! Code expiry and consent timeouts are decided by the broker, so the clock
//! is part of the application state: production uses [`SystemClock`], tests
//! use [`ManualClock`] and move time forward without sleeping. Timers sleep
//! through the clock too ([`Clock::sleep_until`]), so moving a manual clock
//! fires them as it would in production.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    fn now_ms(&self) -> u64;

    /// Completes once [`Clock::now_ms`] has reached `deadline_ms`.
    fn sleep_until(&self, deadline_ms: u64) -> Sleep<'_>;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 is a broken machine; treating it as the
        // epoch makes every code look expired rather than crashing the broker.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep<'_> {
        Box::pin(async move {
            // A loop, because the wall clock can be stepped while we sleep
            // on the monotonic one: waking early just sleeps the rest.
            loop {
                let now = self.now_ms();
                if now >= deadline_ms {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(deadline_ms - now)).await;
            }
        })
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    // An atomic rather than a mutex: the clock is read on every request and
    // only ever holds one number.
    now_ms: AtomicU64,
    // Wakes the sleepers of `sleep_until` whenever the time is moved.
    moved: Notify,
}

impl ManualClock {
    /// A clock that reads `now_ms` until it is moved.
    pub fn new(now_ms: u64) -> Self {
        Self {
            now_ms: AtomicU64::new(now_ms),
            moved: Notify::new(),
        }
    }

    /// A clock that starts at the system's current time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now_ms())
    }

    /// Sets the time.
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
        self.moved.notify_waiters();
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_add(by, Ordering::SeqCst);
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                // Registered before the time is read, so a move between the
                // read and the wait still wakes us.
                let moved = self.moved.notified();
                if self.now_ms() >= deadline_ms {
                    return;
                }
                moved.await;
            }
        })
    }
}

/// A moment in UTC, to the minute, for what people read (display names,
/// tables); the broker computes with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcMinute {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

impl UtcMinute {
    /// The UTC calendar date and time of `ms` milliseconds since the epoch.
    pub fn from_ms(ms: u64) -> Self {
        let secs = ms / 1000;
        let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
        let of_day = secs % 86_400;
        // Days to a proleptic Gregorian date (Howard Hinnant's
        // `civil_from_days`), to avoid a date crate for one conversion.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            // Both are small positive numbers by construction.
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
            hour: u32::try_from(of_day / 3600).unwrap_or(0),
            minute: u32::try_from(of_day % 3600 / 60).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), 3_000);
        clock.set(5);
        assert_eq!(clock.now_ms(), 5);
    }

    #[tokio::test]
    async fn manual_sleepers_wake_when_the_clock_reaches_their_deadline() {
        let clock = std::sync::Arc::new(ManualClock::new(1_000));
        let sleeper = {
            let clock = std::sync::Arc::clone(&clock);
            tokio::spawn(async move { clock.sleep_until(5_000).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.set(5_000);
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke at its deadline")
            .unwrap();
    }

    #[tokio::test]
    async fn system_sleep_until_a_past_deadline_returns_at_once() {
        SystemClock.sleep_until(0).await;
    }

    #[test]
    fn utc_dates_are_right_across_years_and_leap_days() {
        let at = |ms| {
            let t = UtcMinute::from_ms(ms);
            (t.year, t.month, t.day, t.hour, t.minute)
        };
        assert_eq!(at(0), (1970, 1, 1, 0, 0));
        assert_eq!(at(1_700_000_000_000), (2023, 11, 14, 22, 13));
        assert_eq!(at(951_782_400_000), (2000, 2, 29, 0, 0));
        assert_eq!(at(1_709_251_199_000), (2024, 2, 29, 23, 59));
        assert_eq!(at(1_735_689_600_000), (2025, 1, 1, 0, 0));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
