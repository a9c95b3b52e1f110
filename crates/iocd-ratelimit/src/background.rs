//! A Redis limiter that a server can start with before Redis is reachable.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use crate::{Decision, Family, LimiterError, Policy, RateLimiter, RedisLimiter};

/// Pause between connection attempts while Redis is unreachable.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The Redis URL cannot be used at all (a configuration mistake, not an outage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Redis URL {url:?} for the rate limiter: {reason}")]
pub struct InvalidRedisUrl {
    pub url: String,
    pub reason: String,
}

/// A [`RedisLimiter`] whose first connection may come later.
///
/// [`connect`](Self::connect) tries once; if Redis is unreachable it keeps trying in the background
/// and, until it succeeds, every check fails closed with [`LimiterError::Unavailable`]. So the order in
/// which Redis and the servers start does not matter, and a server never admits calls unlimited
/// because its Redis was missing at start-up. After the first connection, the [`RedisLimiter`]
/// reconnects by itself.
pub struct BackgroundRedisLimiter {
    shared: Arc<Shared>,
    connector: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    limiter: OnceLock<RedisLimiter>,
    /// Why the latest connection attempt failed, for the error of checks made meanwhile.
    last_failure: Mutex<String>,
}

impl BackgroundRedisLimiter {
    /// Connects to `redis_url`, waiting at most for the first attempt (bounded by `timeout`). Fails only
    /// if the URL itself is unusable. Must be called inside a Tokio runtime.
    pub async fn connect(
        redis_url: &str,
        key_prefix: &str,
        policy: Policy,
        timeout: Duration,
    ) -> Result<Self, InvalidRedisUrl> {
        redis::Client::open(redis_url).map_err(|error| InvalidRedisUrl {
            url: redis_url.to_owned(),
            reason: error.to_string(),
        })?;
        let attempt = {
            let (url, prefix, policy) = (redis_url.to_owned(), key_prefix.to_owned(), policy);
            move || {
                let (url, prefix, policy) = (url.clone(), prefix.clone(), policy.clone());
                async move { RedisLimiter::connect_with_timeout(&url, &prefix, policy, timeout).await }
            }
        };
        let shared = Arc::new(Shared {
            limiter: OnceLock::new(),
            last_failure: Mutex::new(String::new()),
        });
        match attempt().await {
            Ok(limiter) => {
                let _ = shared.limiter.set(limiter);
                return Ok(BackgroundRedisLimiter {
                    shared,
                    connector: None,
                });
            }
            Err(LimiterError::Unavailable(why)) => {
                tracing::error!(error = %why, "the rate-limit Redis is unreachable; rate-limited API calls answer 503 until it is reachable, retrying every {RECONNECT_PAUSE:?}");
                *lock(&shared.last_failure) = why;
            }
        }
        let connector = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                loop {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    match attempt().await {
                        Ok(limiter) => {
                            tracing::info!("connected to the rate-limit Redis; rate limits apply cluster-wide again");
                            let _ = shared.limiter.set(limiter);
                            return;
                        }
                        Err(LimiterError::Unavailable(why)) => *lock(&shared.last_failure) = why,
                    }
                }
            }
        });
        Ok(BackgroundRedisLimiter {
            shared,
            connector: Some(connector),
        })
    }

    /// Whether the first connection has been made (later outages are not reflected here).
    pub fn is_connected(&self) -> bool {
        self.shared.limiter.get().is_some()
    }
}

fn lock(failure: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    failure
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for BackgroundRedisLimiter {
    fn drop(&mut self) {
        if let Some(connector) = self.connector.take() {
            connector.abort();
        }
    }
}

#[async_trait]
impl RateLimiter for BackgroundRedisLimiter {
    async fn check(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
    ) -> Result<Decision, LimiterError> {
        match self.shared.limiter.get() {
            Some(limiter) => limiter.check(tenant, app, family).await,
            None => Err(LimiterError::Unavailable(format!(
                "not connected to the rate-limit Redis yet: {}",
                lock(&self.shared.last_failure)
            ))),
        }
    }

    async fn usage(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
    ) -> Result<Option<crate::Usage>, LimiterError> {
        match self.shared.limiter.get() {
            Some(limiter) => limiter.usage(tenant, app, family).await,
            None => Ok(None),
        }
    }

    async fn reset(&self, tenant: Option<&str>) -> Result<(), LimiterError> {
        match self.shared.limiter.get() {
            Some(limiter) => limiter.reset(tenant).await,
            None => Err(LimiterError::Unavailable(format!(
                "not connected to the rate-limit Redis yet: {}",
                lock(&self.shared.last_failure)
            ))),
        }
    }

    async fn ping(&self) -> Result<(), LimiterError> {
        match self.shared.limiter.get() {
            Some(limiter) => limiter.ping().await,
            None => Err(LimiterError::Unavailable(format!(
                "not connected to the rate-limit Redis yet: {}",
                lock(&self.shared.last_failure)
            ))),
        }
    }
}
