//! Rate limiting for iocd's Indicators API, per (tenant, application, endpoint family).
//!
//! Microsoft Defender for Endpoint throttles each API "per application + tenant"
//! (docs/reference §10.3): 100 calls per minute and 1,500 per hour for submit/list/get/delete,
//! 30 per minute for import, 30 per minute and 1,500 per hour for batch delete.
//! [`Policy::mde_defaults`] encodes those numbers.
//!
//! Every window is a GCRA ("generic cell rate algorithm") meter with burst = limit: `limit` calls may
//! arrive at once, then one more every `period / limit`. A call is admitted only if *every* window of its
//! family has room, and then it consumes from all of them at once; a refused call consumes nothing.
//! A refusal carries the exact wait after which the same call will be admitted.
//!
//! Two implementations give identical answers for the same sequence of calls and clock readings:
//! [`MemoryLimiter`] for a single server process and [`RedisLimiter`] for replicas sharing limits.

mod background;
mod gcra;
mod memory;
#[cfg(test)]
mod parity_tests;
mod policy;
mod redis_limiter;
mod spec;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;

pub use background::{BackgroundRedisLimiter, InvalidRedisUrl};
pub use memory::MemoryLimiter;
pub use policy::{InvalidWindow, Policy, Window, MAX_PERIOD};
pub use redis_limiter::{RedisLimiter, DEFAULT_REDIS_TIMEOUT};
pub use spec::{InvalidOverride, PolicyOverride};

/// The group of API operations that share one set of rate-limit windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `POST /api/indicators` (submit or update one indicator).
    Submit,
    /// `GET /api/indicators`.
    List,
    /// `GET /api/indicators/{id}` (undocumented upstream; limited like the other single-item calls).
    Get,
    /// `DELETE /api/indicators/{id}`.
    Delete,
    /// `POST /api/indicators/import`.
    Import,
    /// `POST /api/indicators/BatchDelete`.
    BatchDelete,
    /// iocd's match API (`GET`/`POST /iocd/v1/match`); unlimited unless configured.
    Match,
}

impl Family {
    /// Every family, in declaration order.
    pub const ALL: [Family; 7] = [
        Family::Submit,
        Family::List,
        Family::Get,
        Family::Delete,
        Family::Import,
        Family::BatchDelete,
        Family::Match,
    ];

    /// Stable lower-case name, used in Redis keys and configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            Family::Submit => "submit",
            Family::List => "list",
            Family::Get => "get",
            Family::Delete => "delete",
            Family::Import => "import",
            Family::BatchDelete => "batchdelete",
            Family::Match => "match",
        }
    }

    /// Position in [`Family::ALL`]; lets per-family tables be plain arrays.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given to [`Family::from_str`] matched no family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rate-limit family {0:?} (expected one of submit, list, get, delete, import, batchdelete, match)")]
pub struct UnknownFamily(pub String);

impl FromStr for Family {
    type Err = UnknownFamily;

    /// Case-insensitive; `_` and `-` are ignored so config files may write `batch_delete` or `BatchDelete`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let normalized: String = name
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        Family::ALL
            .into_iter()
            .find(|family| family.as_str() == normalized)
            .ok_or_else(|| UnknownFamily(name.to_owned()))
    }
}

/// The answer to one [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The call is admitted and has been counted against every window of its family.
    Allowed,
    /// The call is refused and counted nowhere.
    Limited {
        /// The same call made after this wait will be admitted (unless other calls take the room first).
        retry_after: Duration,
        /// Limit of the window that refused the call (the one needing the longest wait).
        limit: u32,
        /// Period of that window.
        period: Duration,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }

    /// The wait as an integer `Retry-After` value: whole seconds rounded up, at least 1, so a client
    /// that honours it is admitted. `0` for [`Decision::Allowed`], which has no wait.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Decision::Allowed => 0,
            Decision::Limited { retry_after, .. } => {
                let whole = retry_after.as_secs();
                let rounded_up = if retry_after.subsec_nanos() > 0 {
                    whole + 1
                } else {
                    whole
                };
                rounded_up.max(1)
            }
        }
    }
}

/// The current state of one (tenant, app, family): each window's room, in `Policy` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub windows: Vec<WindowUsage>,
}

/// One window's room right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUsage {
    /// Calls the window admits per `period`.
    pub limit: u32,
    pub period: Duration,
    /// Calls it would admit now, at once.
    pub remaining: u32,
}

/// The limiter could not decide. The server must fail closed (503), never admit the call silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimiterError {
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
}

/// Decides whether one call may proceed, counting it if so.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn check(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
    ) -> Result<Decision, LimiterError>;

    /// How many calls each window of `family` would admit now for (tenant, app), without
    /// counting a call; `None` when this limiter keeps no such state (limits switched off).
    async fn usage(
        &self,
        tenant: &str,
        app: &str,
        family: Family,
    ) -> Result<Option<Usage>, LimiterError> {
        let _ = (tenant, app, family);
        Ok(None)
    }

    /// Forgets the windows of one tenant, or of every tenant (the emulator's reset): its next
    /// calls are counted from nothing.
    async fn reset(&self, tenant: Option<&str>) -> Result<(), LimiterError> {
        let _ = tenant;
        Ok(())
    }

    /// Whether the limiter's store answers now (`/ready`); in-process limiters always do.
    async fn ping(&self) -> Result<(), LimiterError> {
        Ok(())
    }
}

/// Admits every call: for deployments that switch rate limiting off entirely.
/// (A [`Policy::unlimited`] policy behaves the same in either real limiter.)
#[derive(Debug, Clone, Copy, Default)]
pub struct DisabledLimiter;

#[async_trait]
impl RateLimiter for DisabledLimiter {
    async fn check(&self, _: &str, _: &str, _: Family) -> Result<Decision, LimiterError> {
        Ok(Decision::Allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited_after(retry_after: Duration) -> Decision {
        Decision::Limited {
            retry_after,
            limit: 1,
            period: Duration::from_secs(1),
        }
    }

    #[test]
    fn retry_after_secs_rounds_up_and_is_at_least_one() {
        assert_eq!(Decision::Allowed.retry_after_secs(), 0);
        assert_eq!(limited_after(Duration::ZERO).retry_after_secs(), 1);
        assert_eq!(
            limited_after(Duration::from_micros(1)).retry_after_secs(),
            1
        );
        assert_eq!(
            limited_after(Duration::from_millis(600)).retry_after_secs(),
            1
        );
        assert_eq!(limited_after(Duration::from_secs(2)).retry_after_secs(), 2);
        assert_eq!(
            limited_after(Duration::from_micros(2_000_001)).retry_after_secs(),
            3
        );
    }

    #[test]
    fn family_names_round_trip_and_accept_config_spellings() {
        for family in Family::ALL {
            assert_eq!(family.as_str().parse::<Family>(), Ok(family));
            assert_eq!(Family::ALL[family.index()], family);
        }
        assert_eq!("BatchDelete".parse::<Family>(), Ok(Family::BatchDelete));
        assert_eq!("batch_delete".parse::<Family>(), Ok(Family::BatchDelete));
        assert!("upload".parse::<Family>().is_err());
    }

    #[tokio::test]
    async fn disabled_limiter_admits_everything() {
        for _ in 0..1_000 {
            let decision = DisabledLimiter.check("t", "a", Family::Import).await;
            assert_eq!(decision, Ok(Decision::Allowed));
        }
    }
}
