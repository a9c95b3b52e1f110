//! Limiter whose state lives in Redis, so every replica of the server draws from the same windows.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::gcra::{CompiledPolicy, GcraWindow, Verdict};
use crate::{Decision, Family, LimiterError, Policy, RateLimiter};

/// How long one check (or the initial connection) may take before the limiter reports
/// [`LimiterError::Unavailable`]. A rate-limit check sits in front of every request, so a slow Redis
/// must turn into a prompt 503 rather than requests piling up.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Connection attempts the manager retries after a failure. None: a check arriving while Redis is
/// unreachable triggers one fresh attempt, bounded by the timeout, and fails closed if it fails; the
/// next check tries again. (Retrying inside redis-rs would add backoff sleeps of a second or more,
/// delaying both the 503 and the recovery once Redis is back.)
const CONNECTION_RETRIES: usize = 0;

/// GCRA limiter shared by every server replica through Redis, using one `EVALSHA` per check.
///
/// Keys are `{prefix}:{tenant}:{app}:{family}:{window index}`, each holding the window's TAT in
/// microseconds of the Redis server's clock and expiring once that TAT has passed (at most the
/// window's period after the last admitted call).
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    policy: CompiledPolicy,
    key_prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connects to `redis_url` (e.g. `redis://127.0.0.1:6379/0`) with [`DEFAULT_REDIS_TIMEOUT`].
    pub async fn connect(
        redis_url: &str,
        key_prefix: &str,
        policy: Policy,
    ) -> Result<Self, LimiterError> {
        Self::connect_with_timeout(redis_url, key_prefix, policy, DEFAULT_REDIS_TIMEOUT).await
    }

    /// Connects with a custom per-check timeout. If the connection breaks, each following check makes
    /// one reconnection attempt and fails with [`LimiterError::Unavailable`] until one succeeds.
    pub async fn connect_with_timeout(
        redis_url: &str,
        key_prefix: &str,
        policy: Policy,
        timeout: Duration,
    ) -> Result<Self, LimiterError> {
        let client = redis::Client::open(redis_url).map_err(|error| {
            LimiterError::Unavailable(format!("invalid Redis URL for the rate limiter: {error}"))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(CONNECTION_RETRIES);
        let connecting = ConnectionManager::new_with_config(client, config);
        // The manager's timeouts cover the TCP connect and each reply separately; this bounds the whole.
        let connection = tokio::time::timeout(timeout * 2, connecting)
            .await
            .map_err(|_| {
                LimiterError::Unavailable(format!(
                    "could not connect to the rate-limit Redis within {:?}",
                    timeout * 2
                ))
            })?
            .map_err(|error| {
                LimiterError::Unavailable(format!(
                    "could not connect to the rate-limit Redis: {error}"
                ))
            })?;
        Ok(RedisLimiter {
            connection,
            script: Script::new(include_str!("redis_gcra.lua")),
            policy: CompiledPolicy::new(&policy),
            key_prefix: key_prefix.to_owned(),
            timeout,
        })
    }

    /// The Redis key of `family`'s window `window_index` for (tenant, app).
    fn key(&self, tenant: &str, app: &str, family: Family, window_index: usize) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.key_prefix,
            escape_key_part(tenant),
            escape_key_part(app),
            family.as_str(),
            window_index
        )
    }

    /// Runs the script; `now_us` overrides the Redis server's clock (tests compare against
    /// [`crate::MemoryLimiter`] at identical clock readings), `None` uses `TIME`.
    pub(crate) async fn check_with_clock(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
        now_us: Option<u64>,
    ) -> Result<Decision, LimiterError> {
        let windows = self.policy.windows(family);
        if windows.is_empty() {
            return Ok(Decision::Allowed);
        }
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now_us.map(|now| now.to_string()).unwrap_or_default());
        for (window_index, window) in windows.iter().enumerate() {
            invocation
                .key(self.key(tenant, app, family, window_index))
                .arg(window.interval_us)
                .arg(window.burst_us);
        }
        // The connection manager is a cheap handle onto one multiplexed connection.
        let mut connection = self.connection.clone();
        let reply: Vec<u64> =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| {
                    LimiterError::Unavailable(format!(
                        "the rate-limit Redis did not answer within {:?}",
                        self.timeout
                    ))
                })?
                .map_err(|error| {
                    LimiterError::Unavailable(format!("the rate-limit Redis failed: {error}"))
                })?;
        verdict_from_reply(&reply, windows).map(|verdict| verdict.into_decision(windows))
    }
}

/// Decodes the script's `{1}` or `{0, window index, wait µs}`. Anything else means the script or the
/// server is not what we expect; refusing to guess keeps the server failing closed.
fn verdict_from_reply(reply: &[u64], windows: &[GcraWindow]) -> Result<Verdict, LimiterError> {
    match *reply {
        [1] => Ok(Verdict::Admitted),
        [0, window_index, wait_us] if (window_index as usize) < windows.len() => {
            Ok(Verdict::Refused {
                window_index: window_index as usize,
                wait_us,
            })
        }
        _ => Err(LimiterError::Unavailable(format!(
            "the rate-limit Redis script returned an unexpected reply {reply:?}"
        ))),
    }
}

/// Tenant and app ids are GUIDs in practice, but they come from tokens; escaping `:` (and `%`, the
/// escape character) keeps ("a:b", "c") and ("a", "b:c") from sharing a key.
fn escape_key_part(part: &str) -> String {
    part.replace('%', "%25").replace(':', "%3A")
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
    ) -> Result<Decision, LimiterError> {
        self.check_with_clock(tenant, app, family, None).await
    }

    async fn usage(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
    ) -> Result<Option<crate::Usage>, LimiterError> {
        let windows = self.policy.windows(family);
        let keys: Vec<String> = (0..windows.len())
            .map(|index| self.key(tenant, app, family, index))
            .collect();
        let mut connection = self.connection.clone();
        let work = async move {
            // The script's clock: the Redis server's.
            let (secs, micros): (u64, u64) =
                redis::cmd("TIME").query_async(&mut connection).await?;
            let tats: Vec<Option<u64>> = if keys.is_empty() {
                Vec::new()
            } else {
                redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await?
            };
            Ok::<_, redis::RedisError>((secs * 1_000_000 + micros, tats))
        };
        let (now_us, tats) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| LimiterError::Unavailable("the rate-limit Redis did not answer".into()))?
            .map_err(|error| {
                LimiterError::Unavailable(format!("the rate-limit Redis failed: {error}"))
            })?;
        let tats: Vec<u64> = tats.into_iter().map(Option::unwrap_or_default).collect();
        Ok(Some(crate::gcra::usage(windows, &tats, now_us)))
    }

    async fn reset(&self, tenant: Option<&str>) -> Result<(), LimiterError> {
        let pattern = match tenant {
            Some(tenant) => format!(
                "{}:{}:*",
                glob_escape(&self.key_prefix),
                glob_escape(&escape_key_part(tenant))
            ),
            None => format!("{}:*", glob_escape(&self.key_prefix)),
        };
        let mut connection = self.connection.clone();
        let work = async move {
            let mut keys: Vec<String> = Vec::new();
            {
                let mut iter =
                    redis::AsyncCommands::scan_match::<_, String>(&mut connection, pattern).await?;
                while let Some(key) = iter.next_item().await {
                    keys.push(key);
                }
            }
            for chunk in keys.chunks(500) {
                redis::AsyncCommands::del::<_, ()>(&mut connection, chunk).await?;
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::time::timeout(self.timeout * 10, work)
            .await
            .map_err(|_| LimiterError::Unavailable("the rate-limit Redis did not answer".into()))?
            .map_err(|error| {
                LimiterError::Unavailable(format!("the rate-limit Redis failed: {error}"))
            })
    }

    async fn ping(&self) -> Result<(), LimiterError> {
        let mut connection = self.connection.clone();
        let pong: String = tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async(&mut connection),
        )
        .await
        .map_err(|_| {
            LimiterError::Unavailable(format!(
                "the rate-limit Redis did not answer PING within {:?}",
                self.timeout
            ))
        })?
        .map_err(|error| {
            LimiterError::Unavailable(format!("the rate-limit Redis failed: {error}"))
        })?;
        if pong != "PONG" {
            return Err(LimiterError::Unavailable(format!(
                "the rate-limit Redis answered PING with {pong:?}"
            )));
        }
        Ok(())
    }
}

/// Escapes Redis glob characters, so a key part matches only itself in `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_cannot_collide_through_separators() {
        assert_ne!(
            format!("{}:{}", escape_key_part("a:b"), escape_key_part("c")),
            format!("{}:{}", escape_key_part("a"), escape_key_part("b:c"))
        );
        assert_eq!(escape_key_part("a%3Ab"), "a%253Ab");
        assert_eq!(
            escape_key_part("72f988bf-86f1-41af-91ab-2d7cd011db47"),
            "72f988bf-86f1-41af-91ab-2d7cd011db47"
        );
    }
}
