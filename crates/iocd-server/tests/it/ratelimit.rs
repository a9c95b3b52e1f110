//! Rate limits over HTTP: 429 with the error envelope and an integer `Retry-After` that is enough
//! to get through, per endpoint family, several windows at once, switched off, and failing closed
//! (503) when the Redis that holds them is unreachable.
//!
//! Every scenario runs twice: with the in-process limiter and with the Redis one (the real local
//! Redis at `IOCD_TEST_REDIS_URL`, under a key prefix of its own; skipped when it is unset).

use std::time::{Duration, Instant};

use iocd_ratelimit::{Policy, PolicyOverride};
use iocd_server::{RateLimitConfig, ServerConfig};
use iocd_testkit::*;
use redis::AsyncCommands;
use reqwest::{Method, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimiterStore {
    Memory,
    Redis,
}

/// The shared Redis; only the Redis variants call it, and they are skipped without it.
fn redis_url() -> String {
    env::redis_url().expect("a Redis test ran without IOCD_TEST_REDIS_URL")
}

/// MDE's defaults changed by `settings` (`submit=5/1h`, the `--rate-limit` syntax).
fn policy(settings: &[&str]) -> Policy {
    settings
        .iter()
        .fold(Policy::mde_defaults(), |policy, setting| {
            policy.with_override(&setting.parse::<PolicyOverride>().unwrap())
        })
}

/// A server limiting with `policy` in the given store; Redis keys live under a fresh prefix that
/// is deleted when the returned guard drops.
async fn start(store: LimiterStore, policy: Policy) -> (TestServer, RedisPrefix) {
    let prefix = RedisPrefix::new("server-ratelimit");
    let rate_limits = RateLimitConfig {
        policy,
        redis_url: (store == LimiterStore::Redis).then(redis_url),
        redis_key_prefix: prefix.to_string(),
        ..RateLimitConfig::default()
    };
    let server = TestServer::start_with(ServerConfig {
        rate_limits,
        ..ServerConfig::default()
    })
    .await;
    (server, prefix)
}

/// Checks a 429 (envelope, code, message naming the refusing window) and returns its `Retry-After`.
async fn expect_too_many_requests(res: Response, limit: u32, period: &str) -> u64 {
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_string());
    let request_id = res.headers().get("x-request-id").cloned();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "TooManyRequests", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "API calls quota exceeded! maximum allowed {limit} per {period}"
        )),
        "{message}"
    );
    assert_eq!(
        body["error"]["target"].as_str(),
        request_id.as_ref().map(|id| id.to_str().unwrap()),
        "target is the request id"
    );
    let retry_after = retry_after.expect("a 429 carries Retry-After");
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {retry_after:?} is not an integer"));
    assert!(seconds >= 1);
    assert!(
        message.contains(&format!("Retry after {seconds} seconds")),
        "{message}"
    );
    seconds
}

async fn submit(server: &TestServer, n: usize) -> Response {
    server
        .post_json("/api/indicators", &domain_request(n))
        .await
}

async fn get_missing(server: &TestServer) -> Response {
    server.send(Method::GET, "/api/indicators/999999").await
}

/// MDE's real limit (100/min + 1,500/h): the first 100 submits pass, the call after them is refused
/// with `Retry-After: 1` (one call per 600 ms refills), nothing of it is written, and the same call
/// made after that wait passes. Calls take time, so the meter may have refilled a few slots by the
/// first refusal; how many is bounded by the elapsed time.
async fn the_call_after_100_in_a_minute_is_refused_until_retry_after(store: LimiterStore) {
    let (server, _keys) = start(store, Policy::mde_defaults()).await;
    let started = Instant::now();
    let mut admitted = 0;
    let refusal = loop {
        let res = submit(&server, admitted).await;
        if res.status() == 429 {
            break res;
        }
        assert_eq!(res.status(), 200, "call {}", admitted + 1);
        admitted += 1;
        assert!(admitted <= 200, "no refusal after {admitted} calls");
    };
    let refills = (started.elapsed().as_millis() / 600) as usize;
    assert!(
        (100..=100 + refills).contains(&admitted),
        "{admitted} admitted in {:?}",
        started.elapsed()
    );
    let retry_after = expect_too_many_requests(refusal, 100, "00:01:00").await;
    assert_eq!(retry_after, 1, "one slot refills every 600 ms");
    assert_eq!(
        server.row_count().await,
        admitted as i64,
        "the refused call wrote nothing"
    );

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, body) = status_json(submit(&server, admitted).await).await;
    assert_eq!(status, 200, "after Retry-After the call passes: {body}");
}

/// An hourly window counts exactly: 5 pass, the 6th waits 3600/5 = 720 s.
async fn an_hourly_window_admits_exactly_its_limit(store: LimiterStore) {
    let (server, _keys) = start(store, policy(&["submit=5/1h"])).await;
    for n in 0..5 {
        assert_eq!(submit(&server, n).await.status(), 200, "call {}", n + 1);
    }
    for n in 5..8 {
        let retry_after = expect_too_many_requests(submit(&server, n).await, 5, "01:00:00").await;
        assert_eq!(retry_after, 720);
    }
    assert_eq!(server.row_count().await, 5);
}

/// A short window, as tests and lab deployments configure it: 2 calls per 2 s. The refusal says
/// `Retry-After: 1`; after exactly that wait one call passes, and the next is refused again.
async fn waiting_retry_after_gets_through(store: LimiterStore) {
    let (server, _keys) = start(store, policy(&["get=2/2s"])).await;
    for _ in 0..2 {
        assert_eq!(
            get_missing(&server).await.status(),
            404,
            "admitted, then not found"
        );
    }
    let retry_after = expect_too_many_requests(get_missing(&server).await, 2, "00:00:02").await;
    assert_eq!(retry_after, 1);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(get_missing(&server).await.status(), 404);
    expect_too_many_requests(get_missing(&server).await, 2, "00:00:02").await;
}

/// A call is admitted only if every window of its family has room; the refusal names the window
/// that needs the longest wait.
async fn every_window_of_a_family_applies(store: LimiterStore) {
    let (server, _keys) = start(store, policy(&["submit=3/1s,5/1h"])).await;
    for n in 0..3 {
        assert_eq!(submit(&server, n).await.status(), 200);
    }
    let retry_after = expect_too_many_requests(submit(&server, 3).await, 3, "00:00:01").await;
    assert_eq!(retry_after, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in 3..5 {
        assert_eq!(
            submit(&server, n).await.status(),
            200,
            "the second refilled"
        );
    }
    let retry_after = expect_too_many_requests(submit(&server, 5).await, 5, "01:00:00").await;
    assert!((710..=720).contains(&retry_after), "{retry_after}");
}

/// Families have separate windows, and `/api/v1.0` is the same API as `/api`.
async fn families_are_limited_separately(store: LimiterStore) {
    let (server, _keys) = start(store, policy(&["submit=2/1h", "delete=1/1h"])).await;
    assert_eq!(submit(&server, 0).await.status(), 200);
    let res = server
        .post_json("/api/v1.0/indicators", &domain_request(1))
        .await;
    assert_eq!(res.status(), 200);
    expect_too_many_requests(submit(&server, 2).await, 2, "01:00:00").await;
    expect_too_many_requests(
        server
            .post_json("/API/V1.0/Indicators", &domain_request(3))
            .await,
        2,
        "01:00:00",
    )
    .await;

    // Get and delete still have room while submit is exhausted.
    let (status, body) = status_json(server.send(Method::GET, "/api/indicators/1").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server
            .send(Method::DELETE, "/api/indicators/1")
            .await
            .status(),
        204
    );
    expect_too_many_requests(
        server.send(Method::DELETE, "/api/indicators/2").await,
        1,
        "01:00:00",
    )
    .await;
    // Routes outside the API are never limited.
    for _ in 0..5 {
        assert_eq!(server.send(Method::GET, "/health").await.status(), 200);
    }
}

/// `--rate-limits off`: nothing is counted, whatever the policy says.
async fn limits_can_be_switched_off(store: LimiterStore) {
    let prefix = RedisPrefix::new("server-ratelimit");
    let server = TestServer::start_with(ServerConfig {
        rate_limits: RateLimitConfig {
            enabled: false,
            policy: policy(&["all=1/1h"]),
            redis_url: (store == LimiterStore::Redis).then(redis_url),
            redis_key_prefix: prefix.to_string(),
            ..RateLimitConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    for n in 0..20 {
        assert_eq!(submit(&server, n).await.status(), 200);
        assert_eq!(get_missing(&server).await.status(), 404);
    }
    if store == LimiterStore::Redis {
        let mut connection = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = connection.keys(format!("{prefix}:*")).await.unwrap();
        assert!(keys.is_empty(), "nothing counted: {keys:?}");
    }
}

/// A family set to `off` is unlimited while the others keep their limits.
async fn one_family_can_be_unlimited(store: LimiterStore) {
    let (server, _keys) = start(store, policy(&["all=2/1h", "get=off"])).await;
    for _ in 0..10 {
        assert_eq!(get_missing(&server).await.status(), 404);
    }
    assert_eq!(submit(&server, 0).await.status(), 200);
    assert_eq!(submit(&server, 1).await.status(), 200);
    expect_too_many_requests(submit(&server, 2).await, 2, "01:00:00").await;
}

macro_rules! on_every_limiter {
    ($($test:ident),+ $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::LimiterStore::Memory).await
                }
            )+
        }
        mod on_redis {
            $(
                #[tokio::test]
                async fn $test() {
                    if iocd_testkit::env::redis_url().is_some() {
                        super::$test(super::LimiterStore::Redis).await
                    }
                }
            )+
        }
    };
}

on_every_limiter!(
    the_call_after_100_in_a_minute_is_refused_until_retry_after,
    an_hourly_window_admits_exactly_its_limit,
    waiting_retry_after_gets_through,
    every_window_of_a_family_applies,
    families_are_limited_separately,
    limits_can_be_switched_off,
    one_family_can_be_unlimited,
);

/// Two servers on one Redis prefix, each with its own database and so its own tenant and app:
/// limits are per (tenant, app), so exhausting one app's window leaves the other's whole. (Two
/// servers sharing one app's windows: the multi-replica test in crates/iocd, and iocd-ratelimit's
/// `two_replicas_share_one_limit`.)
#[tokio::test]
async fn apps_on_a_shared_redis_are_limited_separately() {
    if env::redis_url().is_none() {
        return;
    }
    let (first, keys) = start(LimiterStore::Redis, policy(&["submit=5/1h"])).await;
    let second = TestServer::start_with(ServerConfig {
        rate_limits: RateLimitConfig {
            policy: policy(&["submit=5/1h"]),
            redis_url: Some(redis_url()),
            redis_key_prefix: keys.to_string(),
            ..RateLimitConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    assert_ne!(first.app.client_id(), second.app.client_id());
    for n in 0..5 {
        assert_eq!(submit(&first, n).await.status(), 200);
    }
    expect_too_many_requests(submit(&first, 5).await, 5, "01:00:00").await;
    for n in 0..5 {
        assert_eq!(
            submit(&second, n).await.status(),
            200,
            "another app has its own window"
        );
    }
    expect_too_many_requests(submit(&second, 5).await, 5, "01:00:00").await;
}

/// Checks the 503 that replaces a rate-limit decision when Redis cannot be reached.
async fn expect_limiter_unavailable(res: Response) {
    let retry_after = res.headers().get("retry-after").cloned();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rate-limit store (Redis) is unreachable"),
        "{message}"
    );
    assert!(!body["error"]["target"].as_str().unwrap().is_empty());
    assert_eq!(retry_after.unwrap(), "5");
}

/// Redis down when the server starts, then down again while it runs: every limited call is refused
/// with 503 (promptly, and writing nothing), never let through; once Redis is back, calls pass and
/// are limited again.
#[tokio::test]
async fn unreachable_redis_fails_closed_and_recovers() {
    // A private redis-server is started and stopped: the machines that have Redis have it.
    if env::redis_url().is_none() {
        return;
    }
    let port = free_port();
    let server = TestServer::start_with(ServerConfig {
        rate_limits: RateLimitConfig {
            policy: policy(&["submit=3/1h"]),
            redis_url: Some(format!("redis://127.0.0.1:{port}")),
            redis_key_prefix: "outage".to_string(),
            ..RateLimitConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    for n in 0..3 {
        let started = Instant::now();
        expect_limiter_unavailable(submit(&server, n).await).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
    expect_limiter_unavailable(get_missing(&server).await).await;
    assert_eq!(server.row_count().await, 0, "nothing was written unlimited");
    assert_eq!(server.send(Method::GET, "/health").await.status(), 200);

    // Redis comes up: the server connects in the background and limits apply.
    let redis = PrivateRedis::start(port).await;
    let mut first_admitted = None;
    for attempt in 0..50 {
        let res = submit(&server, 100 + attempt).await;
        if res.status() == 200 {
            first_admitted = Some(attempt);
            break;
        }
        expect_limiter_unavailable(res).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_admitted =
        first_admitted.expect("the server never connected to Redis once it was up");
    for n in 1..3 {
        assert_eq!(
            submit(&server, 100 + first_admitted + n).await.status(),
            200
        );
    }
    expect_too_many_requests(submit(&server, 200).await, 3, "01:00:00").await;

    // Redis goes away while the server runs: 503 again, not unlimited.
    drop(redis);
    for n in 0..3 {
        expect_limiter_unavailable(submit(&server, 300 + n).await).await;
    }
    assert_eq!(server.row_count().await, 3);
}

/// An unusable Redis URL is a configuration error the server reports before it starts.
#[tokio::test]
async fn an_invalid_redis_url_is_refused_at_start() {
    let config = RateLimitConfig {
        redis_url: Some("http://not-redis".to_string()),
        ..RateLimitConfig::default()
    };
    let error = iocd_server::ratelimit::build_limiter(&config)
        .await
        .err()
        .expect("an http:// URL is not a Redis URL");
    assert!(error.to_string().contains("invalid Redis URL"), "{error}");
}

/// The 429 body is the reference's envelope and nothing else.
#[tokio::test]
async fn the_refusal_body_has_exactly_the_envelope() {
    let (server, _keys) = start(LimiterStore::Memory, policy(&["get=1/1h"])).await;
    get_missing(&server).await;
    let res = get_missing(&server).await;
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let (status, body) = status_json(res).await;
    assert_eq!(status, 429);
    let error = body["error"].as_object().unwrap();
    let mut fields: Vec<&str> = error.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["code", "message", "target"]);
    assert_eq!(body.as_object().unwrap().len(), 1);
}
