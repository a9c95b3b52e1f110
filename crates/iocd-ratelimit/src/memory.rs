//! In-process limiter for a single server.
//!
//! Why not the `governor` crate: a call must be admitted only if *every* window of its family has room,
//! and a call refused by one window must not consume from another. `governor` can only test a limiter
//! by consuming from it (there is no "check without consuming" nor a multi-limiter transaction), so
//! chaining two of its limiters would burn a unit in the first when the second refuses. It also could
//! not be made to agree to the microsecond with the Redis script. The GCRA state is one integer per
//! window, so keeping it ourselves behind a sharded mutex is small and exact.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;

use crate::gcra::{admit, CompiledPolicy};
use crate::{Decision, Family, LimiterError, Policy, RateLimiter};

/// Independent locks so concurrent requests from different tenants rarely wait on each other.
const SHARD_COUNT: usize = 32;

/// A shard is swept for stale keys when it grows to this size, then again each time it doubles.
/// Sweeping cost is thus proportional to insertions, and memory stays within about twice the number of
/// keys still inside their window.
const MIN_SWEEP_LEN: usize = 1_024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LimitKey {
    tenant: Box<str>,
    app: Box<str>,
    family: Family,
}

#[derive(Debug)]
struct Shard {
    /// One TAT per window of the key's family, in `Policy` order.
    tats_by_key: HashMap<LimitKey, Box<[u64]>>,
    sweep_at_len: usize,
}

impl Shard {
    /// Drops keys whose every TAT is in the past: such a key behaves exactly like one never seen, so
    /// forgetting it changes no decision.
    fn evict_expired(&mut self, now_us: u64) {
        self.tats_by_key
            .retain(|_, tats| tats.iter().any(|tat| *tat > now_us));
        self.sweep_at_len = (self.tats_by_key.len() * 2).max(MIN_SWEEP_LEN);
    }
}

/// GCRA limiter holding its state in this process. Decisions match [`crate::RedisLimiter`]'s.
#[derive(Debug)]
pub struct MemoryLimiter {
    policy: CompiledPolicy,
    shards: Box<[Mutex<Shard>]>,
    shard_hasher: RandomState,
    /// Origin of the limiter's microsecond clock. Monotonic, so wall-clock steps never refund or
    /// steal capacity.
    epoch: Instant,
}

impl MemoryLimiter {
    pub fn new(policy: Policy) -> Self {
        MemoryLimiter {
            policy: CompiledPolicy::new(&policy),
            shards: (0..SHARD_COUNT)
                .map(|_| {
                    Mutex::new(Shard {
                        tats_by_key: HashMap::new(),
                        sweep_at_len: MIN_SWEEP_LEN,
                    })
                })
                .collect(),
            shard_hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Number of (tenant, app, family) keys currently held, including stale ones not yet swept.
    pub fn tracked_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).tats_by_key.len())
            .sum()
    }

    /// Forgets every key whose windows are all empty again. Not required (the map sweeps itself as it
    /// grows) but lets a server reclaim memory after a burst of one-off tenants.
    pub fn evict_expired(&self) {
        let now_us = self.now_us();
        for shard in self.shards.iter() {
            lock(shard).evict_expired(now_us);
        }
    }

    fn now_us(&self) -> u64 {
        // u64 microseconds last 584,000 years of uptime.
        self.epoch.elapsed().as_micros() as u64
    }

    /// [`RateLimiter::check`] at an explicit clock reading, for deterministic tests.
    pub(crate) fn check_at(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
        now_us: u64,
    ) -> Decision {
        let windows = self.policy.windows(family);
        if windows.is_empty() {
            return Decision::Allowed;
        }
        let shard_index = self.shard_hasher.hash_one((tenant, app, family)) as usize % SHARD_COUNT;
        let mut shard = lock(&self.shards[shard_index]);
        let key = LimitKey {
            tenant: tenant.into(),
            app: app.into(),
            family,
        };
        if let Some(tats) = shard.tats_by_key.get_mut(&key) {
            return admit(windows, tats, now_us).into_decision(windows);
        }
        let mut tats = vec![0; windows.len()].into_boxed_slice();
        let verdict = admit(windows, &mut tats, now_us);
        // A fresh key is refused only by a window that cannot hold even one call, which validation
        // forbids; still, only remember keys whose state actually changed.
        if verdict == crate::gcra::Verdict::Admitted {
            if shard.tats_by_key.len() >= shard.sweep_at_len {
                shard.evict_expired(now_us);
            }
            shard.tats_by_key.insert(key, tats);
        }
        verdict.into_decision(windows)
    }
}

/// The guarded state is only written after a decision is complete, so a panic elsewhere while the
/// lock was held cannot have left it half-updated: recovering from poisoning is safe.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn check(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
    ) -> Result<Decision, LimiterError> {
        Ok(self.check_at(tenant, app, family, self.now_us()))
    }

    async fn usage(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
    ) -> Result<Option<crate::Usage>, LimiterError> {
        let windows = self.policy.windows(family);
        let shard_index = self.shard_hasher.hash_one((tenant, app, family)) as usize % SHARD_COUNT;
        let key = LimitKey {
            tenant: tenant.into(),
            app: app.into(),
            family,
        };
        let shard = lock(&self.shards[shard_index]);
        let never_used = vec![0; windows.len()].into_boxed_slice();
        let tats = shard.tats_by_key.get(&key).unwrap_or(&never_used);
        Ok(Some(crate::gcra::usage(windows, tats, self.now_us())))
    }

    async fn reset(&self, tenant: Option<&str>) -> Result<(), LimiterError> {
        for shard in self.shards.iter() {
            lock(shard)
                .tats_by_key
                .retain(|key, _| tenant.is_some_and(|t| *key.tenant != *t));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Window;

    #[test]
    fn stale_keys_are_swept_as_the_map_grows() {
        let policy = Policy::unlimited()
            .with_windows(Family::Get, vec![Window::new(5, Duration::from_millis(50))]);
        let limiter = MemoryLimiter::new(policy);
        let key_count = SHARD_COUNT * MIN_SWEEP_LEN * 2;
        for tenant in 0..key_count {
            let decision = limiter.check_at(&tenant.to_string(), "app", Family::Get, 0);
            assert!(decision.is_allowed());
        }
        assert_eq!(limiter.tracked_keys(), key_count);

        // Every earlier key's TAT (10 ms) is now in the past. Twice as many new keys push every shard
        // past its sweep threshold (at most about twice its size after the last sweep), so every
        // stale key is gone and only the new ones remain.
        let later_us = 1_000_000;
        for tenant in key_count..key_count * 3 {
            limiter.check_at(&tenant.to_string(), "app", Family::Get, later_us);
        }
        assert_eq!(
            limiter.tracked_keys(),
            key_count * 2,
            "stale keys were not evicted"
        );
    }

    #[tokio::test]
    async fn reset_forgets_one_tenant_or_every_tenant() {
        let policy = Policy::unlimited()
            .with_windows(Family::Get, vec![Window::new(1, Duration::from_secs(3600))]);
        let limiter = MemoryLimiter::new(policy);
        for tenant in ["t1", "t2", "t3"] {
            assert!(limiter.check_at(tenant, "a", Family::Get, 0).is_allowed());
            assert!(!limiter.check_at(tenant, "a", Family::Get, 0).is_allowed());
        }
        limiter.reset(Some("t1")).await.unwrap();
        assert!(limiter.check_at("t1", "a", Family::Get, 0).is_allowed());
        assert!(!limiter.check_at("t2", "a", Family::Get, 0).is_allowed());
        limiter.reset(None).await.unwrap();
        assert_eq!(limiter.tracked_keys(), 0);
        assert!(limiter.check_at("t2", "a", Family::Get, 0).is_allowed());
        assert!(limiter.check_at("t3", "a", Family::Get, 0).is_allowed());
    }

    #[test]
    fn evicting_changes_no_decision() {
        let policy = Policy::unlimited()
            .with_windows(Family::Get, vec![Window::new(2, Duration::from_secs(1))]);
        let limiter = MemoryLimiter::new(policy);
        assert!(limiter.check_at("t", "a", Family::Get, 0).is_allowed());
        assert!(limiter.check_at("t", "a", Family::Get, 0).is_allowed());
        assert!(!limiter.check_at("t", "a", Family::Get, 0).is_allowed());
        for shard in limiter.shards.iter() {
            lock(shard).evict_expired(0);
        }
        assert_eq!(
            limiter.tracked_keys(),
            1,
            "a key inside its window was evicted"
        );
        assert!(!limiter.check_at("t", "a", Family::Get, 0).is_allowed());
    }
}
