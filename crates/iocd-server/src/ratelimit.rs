//! Rate limits per (tenant, application, endpoint family), as MDE applies them
//! (docs/reference §10.3).
//!
//! One middleware, [`enforce`], sits on every API route (after routing, before the handler). It
//! finds the route's family in [`family_of`], the only place that maps routes to families,
//! authenticates the caller (401 comes before 429), and asks the limiter. A refusal is
//! `429 TooManyRequests` with an integer `Retry-After` after which the same call is admitted. If
//! the limiter cannot decide (its Redis is unreachable), the call is refused with
//! `503 ServiceUnavailable`: limits are never skipped silently.
//!
//! The authenticated [`Caller`] is left in the request's extensions so that the handler's `Caller`
//! extractor does not authenticate a second time.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use iocd_ratelimit::{
    BackgroundRedisLimiter, Decision, DisabledLimiter, Family, InvalidRedisUrl, LimiterError,
    MemoryLimiter, Policy, RateLimiter, DEFAULT_REDIS_TIMEOUT,
};

use crate::error::{ApiError, ErrorCode};
use crate::identity::Caller;
use crate::AppState;

/// How the server limits calls.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// `false` admits every call without counting (for benchmarks and trusted deployments).
    pub enabled: bool,
    /// The windows of each family; by default MDE's documented limits.
    pub policy: Policy,
    /// `redis://…`: share the windows between every replica using this Redis. `None` keeps them
    /// in this process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    pub redis_key_prefix: String,
    /// How long a Redis check may take before the call is refused with 503.
    pub redis_timeout: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            policy: Policy::mde_defaults(),
            redis_url: None,
            redis_key_prefix: "iocd:ratelimit".to_string(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
        }
    }
}

impl RateLimitConfig {
    /// Limits switched off.
    pub fn disabled() -> Self {
        RateLimitConfig {
            enabled: false,
            ..RateLimitConfig::default()
        }
    }

    /// A one-line description for the start-up log.
    pub fn describe(&self) -> String {
        match (self.enabled, &self.redis_url) {
            (false, _) => "off".to_string(),
            (true, None) => format!("in this process: {}", self.policy),
            (true, Some(_)) => format!(
                "shared through Redis (key prefix {:?}): {}",
                self.redis_key_prefix, self.policy
            ),
        }
    }
}

/// Builds the limiter `config` describes. With Redis, the first connection is attempted now; if
/// Redis is unreachable the server still starts, logs it, answers rate-limited calls with 503 and
/// keeps reconnecting. Only an unusable Redis URL is an error.
pub async fn build_limiter(
    config: &RateLimitConfig,
) -> Result<Arc<dyn RateLimiter>, InvalidRedisUrl> {
    if !config.enabled {
        return Ok(Arc::new(DisabledLimiter));
    }
    match &config.redis_url {
        None => Ok(Arc::new(MemoryLimiter::new(config.policy.clone()))),
        Some(url) => Ok(Arc::new(
            BackgroundRedisLimiter::connect(
                url,
                &config.redis_key_prefix,
                config.policy.clone(),
                config.redis_timeout,
            )
            .await?,
        )),
    }
}

/// With a Redis URL, the token endpoint's failure meters (`iocd_identity::Lockouts`) in Redis
/// under `{prefix}:token-failures:{client|address}`, shared by every replica; `None` leaves them
/// in memory.
pub async fn shared_lockouts(
    config: &RateLimitConfig,
    identity: &iocd_identity::IdentityConfig,
) -> Result<Option<iocd_identity::Lockouts>, InvalidRedisUrl> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    let limits = identity.failed_auth_limits;
    let mut meters = Vec::new();
    for (window, name) in [
        (limits.per_client, "client"),
        (limits.per_address, "address"),
    ] {
        let meter: Option<Arc<dyn RateLimiter>> = match window {
            None => None,
            Some(window) => Some(Arc::new(
                BackgroundRedisLimiter::connect(
                    url,
                    &format!("{}:token-failures:{name}", config.redis_key_prefix),
                    iocd_identity::FailedAuthLimits::policy(window),
                    config.redis_timeout,
                )
                .await?,
            )),
        };
        meters.push(meter);
    }
    let per_address = meters.pop().flatten();
    let per_client = meters.pop().flatten();
    Ok(Some(iocd_identity::Lockouts::with_meters(
        per_client,
        per_address,
    )))
}

/// The family of an API route: `route` is the route's pattern as axum matched it, with or without
/// the `/api` or `/api/v1.0` prefix (`/api/indicators/{id}`). `None` for routes that are not limited.
pub fn family_of(method: &Method, route: &str) -> Option<Family> {
    let route = route
        .strip_prefix("/api/v1.0")
        .or_else(|| route.strip_prefix("/api"))
        .unwrap_or(route);
    let family = match (method.as_str(), route) {
        ("POST", "/indicators") => Family::Submit,
        ("GET", "/indicators") => Family::List,
        ("GET", "/indicators/{id}") => Family::Get,
        ("DELETE", "/indicators/{id}") => Family::Delete,
        ("POST", "/indicators/import") => Family::Import,
        ("POST", "/indicators/BatchDelete") => Family::BatchDelete,
        ("GET" | "POST", "/iocd/v1/match") => Family::Match,
        _ => return None,
    };
    Some(family)
}

/// The rate-limit middleware (see the module documentation). Install it with `route_layer` so it
/// runs only for matched routes, where [`MatchedPath`] is known.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let family = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|route| family_of(request.method(), route.as_str()));
    let Some(family) = family else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(unauthenticated) => return unauthenticated.into_response(),
    };
    let decision = match state
        .rate_limiter
        .check(&caller.tenant_id, &caller.client_id, family)
        .await
    {
        Ok(decision) => decision,
        Err(LimiterError::Unavailable(why)) => {
            tracing::error!(error = %why, %family, "rate limiter unavailable; refusing the call with 503 rather than admitting it unlimited");
            return limiter_unavailable().into_response();
        }
    };
    if let Decision::Limited { limit, period, .. } = decision {
        let retry_after_secs = decision.retry_after_secs();
        tracing::info!(
            tenant = %caller.tenant_id,
            app = %caller.client_id,
            %family,
            limit,
            ?period,
            retry_after_secs,
            "rate limit reached"
        );
        state.metrics.rate_limited(family.as_str());
        return too_many_requests(limit, period, retry_after_secs).into_response();
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

/// 429 in the error envelope. The message follows the wording MDE's APIs use ("API calls quota
/// exceeded! maximum allowed 100 per 00:01:00"), with the wait spelled out.
fn too_many_requests(limit: u32, period: Duration, retry_after_secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyRequests,
        format!(
            "API calls quota exceeded! maximum allowed {limit} per {}. Retry after {retry_after_secs} seconds (see the Retry-After header).",
            format_timespan(period)
        ),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
}

/// Seconds a client is asked to wait after a 503 caused by the limiter's store.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

fn limiter_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceUnavailable,
        "The rate-limit store (Redis) is unreachable, so the request was not processed: rate limits are never skipped. Retry later.",
    )
    .with_header(
        header::RETRY_AFTER,
        HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
    )
}

/// A period as .NET prints a `TimeSpan` (`00:01:00`, `01:00:00`, `1.00:00:00`, `00:00:00.5000000`),
/// since that is how the service's messages show it.
fn format_timespan(period: Duration) -> String {
    let total = period.as_secs();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    let mut text = if days > 0 {
        format!("{days}.{hours:02}:{minutes:02}:{seconds:02}")
    } else {
        format!("{hours:02}:{minutes:02}:{seconds:02}")
    };
    let ticks = period.subsec_nanos() / 100;
    if ticks > 0 {
        text.push_str(&format!(".{ticks:07}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_has_its_documented_family() {
        let cases = [
            (Method::POST, "/api/indicators", Some(Family::Submit)),
            (Method::GET, "/api/indicators", Some(Family::List)),
            (Method::GET, "/api/v1.0/indicators/{id}", Some(Family::Get)),
            (Method::DELETE, "/api/indicators/{id}", Some(Family::Delete)),
            (Method::POST, "/api/indicators/import", Some(Family::Import)),
            (
                Method::POST,
                "/api/v1.0/indicators/BatchDelete",
                Some(Family::BatchDelete),
            ),
            (
                Method::POST,
                "/indicators/BatchDelete",
                Some(Family::BatchDelete),
            ),
            (Method::GET, "/iocd/v1/match", Some(Family::Match)),
            (Method::POST, "/iocd/v1/match", Some(Family::Match)),
            (Method::GET, "/health", None),
            (Method::PUT, "/api/indicators/{id}", None),
        ];
        for (method, route, expected) in cases {
            assert_eq!(family_of(&method, route), expected, "{method} {route}");
        }
    }

    #[test]
    fn periods_print_like_dotnet_timespans() {
        assert_eq!(format_timespan(Duration::from_secs(60)), "00:01:00");
        assert_eq!(format_timespan(Duration::from_secs(3600)), "01:00:00");
        assert_eq!(format_timespan(Duration::from_secs(2)), "00:00:02");
        assert_eq!(format_timespan(Duration::from_secs(90_061)), "1.01:01:01");
        assert_eq!(
            format_timespan(Duration::from_millis(1500)),
            "00:00:01.5000000"
        );
    }
}
