//! Limits on failed client authentication at the token endpoint, per client id and per source
//! address, as Entra's smart lockout answers a flood of wrong secrets (AADSTS50053).
//!
//! Failures are counted by `iocd-ratelimit` meters (GCRA: `limit` failures at once, then one per
//! `period / limit`), in memory or in Redis shared by every replica. A failure the meter refuses
//! locks the client id (or address) on this replica until the meter would admit one again; while
//! locked, a request is refused before any argon2 verification, unless its secret is one this
//! replica verified recently (a legitimate client keeps getting tokens through a flood aimed at
//! its id or its address). A replica learns of a lockout from the shared meter at its next
//! failure, so each replica spends at most one verification per lockout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use iocd_ratelimit::{Decision, Family, MemoryLimiter, Policy, RateLimiter, Window};

/// The failure meters are `iocd-ratelimit` limiters of their own (own instances, own Redis key
/// prefix), each with one window set; this is the family slot that set occupies. It has nothing
/// to do with the API's submit limit.
pub const FAILURE_METER_SLOT: Family = Family::Submit;

/// How many failed client authentications are tolerated before a lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAuthLimits {
    /// Per client id (in its tenant): `None` for no limit.
    pub per_client: Option<Window>,
    /// Per source address: `None` for no limit.
    pub per_address: Option<Window>,
}

impl Default for FailedAuthLimits {
    fn default() -> Self {
        FailedAuthLimits {
            // Entra's smart lockout: 10 failures, then a lockout of about a minute.
            per_client: Some(Window::per_minute(10)),
            per_address: Some(Window::per_minute(60)),
        }
    }
}

impl FailedAuthLimits {
    pub fn off() -> Self {
        FailedAuthLimits {
            per_client: None,
            per_address: None,
        }
    }

    /// The policy of one meter.
    pub fn policy(window: Window) -> Policy {
        Policy::unlimited().with_windows(FAILURE_METER_SLOT, vec![window])
    }
}

/// What is locked out, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    Client { retry_after_secs: u64 },
    Address { retry_after_secs: u64 },
}

/// The failure meters and this replica's current lockouts.
pub struct Lockouts {
    per_client: Option<Arc<dyn RateLimiter>>,
    per_address: Option<Arc<dyn RateLimiter>>,
    /// Key (`c:` tenant/client or `a:` address) → locked until.
    locked: Mutex<HashMap<String, Instant>>,
}

/// Lockouts kept before the expired ones are swept.
const SWEEP_ABOVE: usize = 10_000;

impl Lockouts {
    /// In-memory meters for `limits`.
    pub fn in_memory(limits: &FailedAuthLimits) -> Lockouts {
        let meter = |window: Window| -> Arc<dyn RateLimiter> {
            Arc::new(MemoryLimiter::new(FailedAuthLimits::policy(window)))
        };
        Lockouts::with_meters(limits.per_client.map(meter), limits.per_address.map(meter))
    }

    /// Meters built elsewhere (Redis-backed, shared by replicas), each with
    /// [`FailedAuthLimits::policy`].
    pub fn with_meters(
        per_client: Option<Arc<dyn RateLimiter>>,
        per_address: Option<Arc<dyn RateLimiter>>,
    ) -> Lockouts {
        Lockouts {
            per_client,
            per_address,
            locked: Mutex::new(HashMap::new()),
        }
    }

    fn client_key(tenant: &str, client_id: &str) -> String {
        format!("c:{tenant}/{client_id}")
    }

    fn address_key(address: &str) -> String {
        format!("a:{address}")
    }

    fn remaining(&self, key: &str) -> Option<u64> {
        let locked = self.locked.lock().unwrap_or_else(PoisonError::into_inner);
        let until = locked.get(key)?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }

    /// The lockout a request from `address` for `client_id` meets, if any.
    pub fn check(&self, tenant: &str, client_id: &str, address: Option<&str>) -> Option<Lockout> {
        if let Some(secs) = self.remaining(&Self::client_key(tenant, client_id)) {
            return Some(Lockout::Client {
                retry_after_secs: secs,
            });
        }
        let secs = self.remaining(&Self::address_key(address?))?;
        Some(Lockout::Address {
            retry_after_secs: secs,
        })
    }

    /// Counts a failed authentication; the lockout it starts, if the meter refuses it.
    pub async fn record_failure(
        &self,
        tenant: &str,
        client_id: &str,
        address: Option<&str>,
    ) -> Option<Lockout> {
        let mut lockout = None;
        if let Some(meter) = &self.per_address {
            if let Some(address) = address {
                let key = Self::address_key(address);
                if let Some(secs) = self.count(meter.as_ref(), "address", address, &key).await {
                    lockout = Some(Lockout::Address {
                        retry_after_secs: secs,
                    });
                }
            }
        }
        if let Some(meter) = &self.per_client {
            let key = Self::client_key(tenant, client_id);
            if let Some(secs) = self.count(meter.as_ref(), tenant, client_id, &key).await {
                lockout = Some(Lockout::Client {
                    retry_after_secs: secs,
                });
            }
        }
        lockout
    }

    async fn count(
        &self,
        meter: &dyn RateLimiter,
        scope: &str,
        name: &str,
        key: &str,
    ) -> Option<u64> {
        let decision = match meter.check(scope, name, FAILURE_METER_SLOT).await {
            Ok(decision) => decision,
            Err(e) => {
                // The argon2 semaphore still bounds the cost; a lost count is not a lost secret.
                tracing::warn!(error = %e, "counting a failed client authentication failed");
                return None;
            }
        };
        let Decision::Limited { retry_after, .. } = decision else {
            return None;
        };
        let secs = decision.retry_after_secs();
        let mut locked = self.locked.lock().unwrap_or_else(PoisonError::into_inner);
        if locked.len() > SWEEP_ABOVE {
            let now = Instant::now();
            locked.retain(|_, until| *until > now);
        }
        locked.insert(
            key.to_string(),
            Instant::now() + retry_after.max(Duration::from_secs(1)),
        );
        tracing::warn!(
            key,
            retry_after_secs = secs,
            "too many failed client authentications; locked out"
        );
        Some(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_failure_beyond_the_limit_locks_the_client_and_the_address_apart() {
        let lockouts = Lockouts::in_memory(&FailedAuthLimits {
            per_client: Some(Window::per_minute(3)),
            per_address: Some(Window::per_minute(5)),
        });
        for _ in 0..3 {
            assert_eq!(
                lockouts.record_failure("t", "c1", Some("10.0.0.1")).await,
                None
            );
        }
        assert!(lockouts.check("t", "c1", Some("10.0.0.2")).is_none());
        assert!(matches!(
            lockouts.record_failure("t", "c1", Some("10.0.0.1")).await,
            Some(Lockout::Client { retry_after_secs }) if (1..=20).contains(&retry_after_secs)
        ));
        assert!(matches!(
            lockouts.check("t", "c1", Some("10.0.0.2")),
            Some(Lockout::Client { .. })
        ));
        // Another client id from the same address: not locked until the address's meter refuses.
        assert!(lockouts.check("t", "c2", Some("10.0.0.1")).is_none());
        assert_eq!(
            lockouts.record_failure("t", "c2", Some("10.0.0.1")).await,
            None
        );
        assert!(matches!(
            lockouts.record_failure("t", "c3", Some("10.0.0.1")).await,
            Some(Lockout::Address { .. })
        ));
        assert!(matches!(
            lockouts.check("t", "c4", Some("10.0.0.1")),
            Some(Lockout::Address { .. })
        ));
        assert!(lockouts.check("t", "c4", Some("10.0.0.9")).is_none());
        assert!(lockouts.check("other", "c1", None).is_none());
    }
}
