//! Wrong-password limits of the delegated sign-ins: after too many wrong passwords for one user, or from one address,
//! within a window, further attempts are refused without checking the password (Entra's
//! AADSTS50053 lockout) until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Entries kept at most; beyond it, keys whose failures all left the window are dropped first.
const MAX_KEYS: usize = 100_000;

/// Counts failures per key (a user, an address) in a sliding window.
pub struct FailureLimiter {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureLimiter {
    pub fn new(limit: usize, window: Duration) -> Self {
        FailureLimiter {
            limit: limit.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `key` has used up its failures in the current window.
    pub fn is_locked(&self, key: &str) -> bool {
        let mut map = self.map();
        let Some(times) = map.get_mut(key) else {
            return false;
        };
        while times.front().is_some_and(|t| t.elapsed() >= self.window) {
            times.pop_front();
        }
        times.len() >= self.limit
    }

    pub fn record(&self, key: &str) {
        let mut map = self.map();
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, times| times.back().is_some_and(|t| t.elapsed() < window));
        }
        let times = map.entry(key.to_string()).or_default();
        times.push_back(Instant::now());
        while times.len() > self.limit {
            times.pop_front();
        }
    }

    pub fn clear(&self, key: &str) {
        self.map().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_clears() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            limiter.record("user:a");
        }
        assert!(!limiter.is_locked("user:a"));
        limiter.record("user:a");
        assert!(limiter.is_locked("user:a"));
        assert!(!limiter.is_locked("user:b"));
        limiter.clear("user:a");
        assert!(!limiter.is_locked("user:a"));
    }

    #[test]
    fn failures_leave_the_window() {
        let limiter = FailureLimiter::new(1, Duration::from_millis(20));
        limiter.record("k");
        assert!(limiter.is_locked("k"));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!limiter.is_locked("k"));
    }
}
