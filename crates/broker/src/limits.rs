//! Limits on failed redemptions, so that guessing codes is hopeless.
//!
//! Every failed redemption (wrong, expired, cancelled, used or another
//! site's code) is recorded with its time, per agent and site. An agent is
//! locked while it has `agent_max` failures within the last
//! `agent_window_secs`, or `agent_daily_max` within the last 24 hours; a
//! site is locked, for all its agents, while it has `site_max` failures
//! within `site_window_secs`. A lock ends by itself when enough failures
//! have aged out of the window, which is also what `retry_after` says.
//!
//! The policy is here, as pure functions over "when was the n-th newest
//! failure"; the store answers that question from its own data.

use crate::config::RedeemLimits;

/// Milliseconds in the 24 hours of the daily cap.
pub const DAY_MS: u64 = 86_400_000;

/// How long failures are kept: the longest window any limit can have.
pub const KEEP_FAILURES_MS: u64 = DAY_MS;

/// Whose failures a count is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// The failures of the agent making the request.
    Agent,
    /// The failures of every agent of the agent's site.
    Site,
}

/// Which limit caused a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// `agent_max` within `agent_window_secs`.
    Agent,
    /// `agent_daily_max` within 24 hours.
    AgentDaily,
    /// `site_max` within `site_window_secs`, for all the site's agents.
    Site,
}

impl LockScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LockScope::Agent => "agent",
            LockScope::AgentDaily => "agent_daily",
            LockScope::Site => "site",
        }
    }
}

/// Redeeming is refused until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub scope: LockScope,
    pub until_ms: u64,
}

impl Lock {
    /// Whole seconds from `now_ms` until the lock ends, rounded up (so a
    /// client that waits that long is never refused again for this lock),
    /// and at least 1.
    pub fn retry_after_secs(&self, now_ms: u64) -> u32 {
        let ms = self.until_ms.saturating_sub(now_ms);
        u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX).max(1)
    }
}

/// The lock in force at `now_ms`, if any; when several are, the one that
/// lasts longest.
///
/// `nth_newest(counted, n, since_ms)` answers the time of the `n`-th newest
/// failure (1 = the newest) strictly after `since_ms`, if there are that
/// many. With `max` failures allowed in a window `w`, the limit holds while
/// the `max`-th newest failure is within the window, that is until that
/// failure's time plus `w`.
pub fn current_lock<E>(
    limits: &RedeemLimits,
    now_ms: u64,
    mut nth_newest: impl FnMut(Counted, u32, u64) -> Result<Option<u64>, E>,
) -> Result<Option<Lock>, E> {
    let windows = [
        (
            LockScope::Agent,
            Counted::Agent,
            limits.agent_max,
            u64::from(limits.agent_window_secs) * 1000,
        ),
        (
            LockScope::AgentDaily,
            Counted::Agent,
            limits.agent_daily_max,
            DAY_MS,
        ),
        (
            LockScope::Site,
            Counted::Site,
            limits.site_max,
            u64::from(limits.site_window_secs) * 1000,
        ),
    ];
    let mut lock: Option<Lock> = None;
    for (scope, counted, max, window_ms) in windows {
        let since = now_ms.saturating_sub(window_ms);
        if let Some(at) = nth_newest(counted, max, since)? {
            let until_ms = at + window_ms;
            if until_ms > now_ms && lock.is_none_or(|l| until_ms > l.until_ms) {
                lock = Some(Lock { scope, until_ms });
            }
        }
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    const T0: u64 = 1_700_000_000_000;

    /// `current_lock` over failure lists, newest or not, for the agent and the site.
    fn lock(agent: &[u64], site: &[u64], now: u64) -> Option<Lock> {
        current_lock(&RedeemLimits::default(), now, |counted, n, since| {
            let list = match counted {
                Counted::Agent => agent,
                Counted::Site => site,
            };
            let mut recent: Vec<u64> = list.iter().copied().filter(|t| *t > since).collect();
            recent.sort_unstable_by(|a, b| b.cmp(a));
            Ok::<_, Infallible>(recent.get(n as usize - 1).copied())
        })
        .unwrap()
    }

    #[test]
    fn four_failures_are_fine_and_the_fifth_locks_for_the_window() {
        let fails: Vec<u64> = (0..4).map(|i| T0 + i * 1000).collect();
        assert_eq!(lock(&fails, &fails, T0 + 5000), None);
        let mut fails = fails;
        fails.push(T0 + 4000);
        let l = lock(&fails, &fails, T0 + 5000).unwrap();
        assert_eq!(l.scope, LockScope::Agent);
        // The oldest of the five leaves the 10-minute window at T0 + 600 s.
        assert_eq!(l.until_ms, T0 + 600_000);
        assert_eq!(l.retry_after_secs(T0 + 5000), 595);
        assert_eq!(l.retry_after_secs(T0 + 599_999), 1);
        assert_eq!(lock(&fails, &fails, T0 + 600_000), None);
    }

    #[test]
    fn the_daily_cap_outlasts_the_short_window() {
        // 20 failures, four every 10 minutes: never 5 in one window.
        let fails: Vec<u64> = (0..20)
            .map(|i| T0 + (i / 4) * 600_000 + (i % 4) * 1000)
            .collect();
        let now = T0 + 5 * 600_000;
        let l = lock(&fails, &[], now).unwrap();
        assert_eq!(l.scope, LockScope::AgentDaily);
        assert_eq!(l.until_ms, T0 + DAY_MS);
        assert_eq!(lock(&fails, &[], T0 + DAY_MS), None);
    }

    #[test]
    fn the_site_lock_counts_everyone_and_the_longest_lock_wins() {
        let site: Vec<u64> = (0..20).map(|i| T0 + i * 1000).collect();
        let l = lock(&[], &site, T0 + 30_000).unwrap();
        assert_eq!(
            l,
            Lock {
                scope: LockScope::Site,
                until_ms: T0 + 3_600_000
            }
        );
        // Locked both as an agent (10 min) and as a site (1 h): 1 h it is.
        let mine: Vec<u64> = site[15..].to_vec();
        assert_eq!(
            lock(&mine, &site, T0 + 30_000).unwrap().scope,
            LockScope::Site
        );
    }
}
