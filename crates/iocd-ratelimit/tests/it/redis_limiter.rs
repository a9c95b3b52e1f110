//! The shared scenarios against the Redis limiter, plus what only Redis has: several replicas sharing
//! windows, key layout and expiry, and failing closed when Redis is unreachable.
//!
//! Needs the real Redis at `IOCD_TEST_REDIS_URL` (skipped when it is unset). Every test uses its own
//! key prefix, so tests run in parallel and never see each other's (or a server's) keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scenarios::{self, SharedLimiter};
use iocd_ratelimit::{Family, LimiterError, Policy, RateLimiter, RedisLimiter, Window};
use iocd_testkit::{env, free_port, PrivateRedis, RedisPrefix};
use redis::AsyncCommands;

async fn connect(redis_url: &str, prefix: &str, policy: Policy) -> RedisLimiter {
    RedisLimiter::connect(redis_url, prefix, policy)
        .await
        .unwrap_or_else(|error| panic!("Redis must be running at {redis_url}: {error}"))
}

async fn raw_connection(redis_url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Runs a shared scenario with a fresh key prefix for every limiter it builds.
macro_rules! redis_scenario {
    ($scenario:ident) => {
        #[tokio::test]
        async fn $scenario() {
            let Some(redis_url) = env::redis_url() else {
                return;
            };
            let prefix = RedisPrefix::new(stringify!($scenario));
            let limiters_built = std::sync::atomic::AtomicUsize::new(0);
            scenarios::$scenario(|policy| {
                let index = limiters_built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let prefix = format!("{prefix}:{index}");
                let redis_url = redis_url.clone();
                async move { Arc::new(connect(&redis_url, &prefix, policy).await) as SharedLimiter }
            })
            .await;
        }
    };
}

redis_scenario!(mde_minute_window_admits_100_then_refuses);
redis_scenario!(mde_import_admits_30_per_minute);
redis_scenario!(short_window_refills_one_call_per_interval);
redis_scenario!(stricter_second_window_decides);
redis_scenario!(refused_calls_consume_from_no_window);
redis_scenario!(keys_are_independent);
redis_scenario!(unlimited_policy_admits_everything);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_get_exactly_the_limit() {
    let Some(redis_url) = env::redis_url() else {
        return;
    };
    let prefix = RedisPrefix::new("concurrent");
    let limiter: SharedLimiter = Arc::new(
        connect(
            &redis_url,
            prefix.as_str(),
            scenarios::hourly_submit_policy(100),
        )
        .await,
    );
    scenarios::concurrent_callers_get_exactly_the_limit(vec![limiter], 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_limit() {
    let Some(redis_url) = env::redis_url() else {
        return;
    };
    let prefix = RedisPrefix::new("replicas");
    let policy = scenarios::hourly_submit_policy(100);
    let replica_a: SharedLimiter =
        Arc::new(connect(&redis_url, prefix.as_str(), policy.clone()).await);
    let replica_b: SharedLimiter = Arc::new(connect(&redis_url, prefix.as_str(), policy).await);
    scenarios::concurrent_callers_get_exactly_the_limit(vec![replica_a, replica_b], 100).await;
}

#[tokio::test]
async fn keys_follow_the_documented_layout_and_expire_with_their_window() {
    let Some(redis_url) = env::redis_url() else {
        return;
    };
    let prefix = RedisPrefix::new("layout");
    let policy = Policy::unlimited().with_windows(
        Family::BatchDelete,
        vec![Window::per_minute(30), Window::per_hour(1_500)],
    );
    let limiter = connect(&redis_url, prefix.as_str(), policy).await;
    assert!(limiter
        .check("tenant-1", "app-1", Family::BatchDelete)
        .await
        .unwrap()
        .is_allowed());

    let mut connection = raw_connection(&redis_url).await;
    let mut keys: Vec<String> = connection.keys(format!("{prefix}:*")).await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{prefix}:tenant-1:app-1:batchdelete:0"),
            format!("{prefix}:tenant-1:app-1:batchdelete:1"),
        ]
    );
    // One call occupies 2 s of the minute window and 2.4 s of the hour window: the key is kept just
    // that long (never longer than the period).
    let minute_ttl_ms: i64 = connection.pttl(&keys[0]).await.unwrap();
    let hour_ttl_ms: i64 = connection.pttl(&keys[1]).await.unwrap();
    assert!(
        (1_900..=2_000).contains(&minute_ttl_ms),
        "ttl {minute_ttl_ms}"
    );
    assert!((2_300..=2_400).contains(&hour_ttl_ms), "ttl {hour_ttl_ms}");

    // The stored TAT is the Redis server's clock plus one interval, in microseconds.
    let (server_secs, server_micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut connection)
        .await
        .unwrap();
    let server_now_us = server_secs * 1_000_000 + server_micros;
    let tat_us: u64 = connection.get(&keys[0]).await.unwrap();
    assert!(
        tat_us > server_now_us && tat_us <= server_now_us + 2_000_000,
        "tat {tat_us} vs server clock {server_now_us}"
    );
}

#[tokio::test]
async fn unreachable_redis_is_reported_promptly() {
    let started = Instant::now();
    let result =
        RedisLimiter::connect("redis://127.0.0.1:1", "unused", Policy::mde_defaults()).await;
    assert!(
        matches!(result, Err(LimiterError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

/// A server that accepts connections and never answers: the limiter must give up after its timeout
/// (while connecting or while checking) instead of hanging the request.
#[tokio::test]
async fn silent_redis_times_out_as_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let black_hole = tokio::spawn(async move {
        let mut held_open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held_open.push(socket);
        }
    });

    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let outcome = match RedisLimiter::connect_with_timeout(
        &format!("redis://{address}"),
        "unused",
        Policy::mde_defaults(),
        timeout,
    )
    .await
    {
        Ok(limiter) => limiter.check("t", "a", Family::Submit).await,
        Err(error) => Err(error),
    };
    assert!(
        matches!(outcome, Err(LimiterError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    black_hole.abort();
}

/// Checks on a working limiter keep failing closed, not hanging, if the shared store is the wrong
/// kind of data (e.g. a key clobbered by another program): the server gets an error, never a pass.
#[tokio::test]
async fn corrupted_state_fails_closed() {
    let Some(redis_url) = env::redis_url() else {
        return;
    };
    let prefix = RedisPrefix::new("corrupt");
    let policy = Policy::unlimited().with_windows(Family::Get, vec![Window::per_minute(5)]);
    let limiter = connect(&redis_url, prefix.as_str(), policy).await;
    let mut connection = raw_connection(&redis_url).await;
    let _: () = connection
        .set(format!("{prefix}:t:a:get:0"), "not a number")
        .await
        .unwrap();
    let outcome = limiter.check("t", "a", Family::Get).await;
    assert!(
        matches!(outcome, Err(LimiterError::Unavailable(_))),
        "{outcome:?}"
    );
}

/// While Redis is down every check fails closed, promptly; once it is back the same limiter works
/// again without being rebuilt.
#[tokio::test]
async fn outage_fails_closed_then_recovers() {
    // A private redis-server is started and stopped: the machines that have Redis have it.
    if env::redis_url().is_none() {
        return;
    }
    let redis = PrivateRedis::start(free_port()).await;
    let url = redis.url();
    let policy = Policy::unlimited().with_windows(Family::Submit, vec![Window::per_minute(100)]);
    let limiter = RedisLimiter::connect(&url, "outage", policy).await.unwrap();
    assert!(limiter
        .check("t", "a", Family::Submit)
        .await
        .unwrap()
        .is_allowed());

    let port = redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let outcome = limiter.check("t", "a", Family::Submit).await;
        assert!(
            matches!(outcome, Err(LimiterError::Unavailable(_))),
            "{outcome:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    let _restarted = PrivateRedis::start(port).await;
    let mut recovered = false;
    for _ in 0..20 {
        if let Ok(decision) = limiter.check("t", "a", Family::Submit).await {
            assert!(decision.is_allowed());
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the limiter did not reconnect after Redis came back"
    );
}

/// The emulator's reset forgets one tenant's windows (and only its) or every tenant's under the
/// limiter's prefix, leaving other prefixes alone.
#[tokio::test]
async fn reset_deletes_one_tenants_keys_or_the_prefixes() {
    let Some(redis_url) = env::redis_url() else {
        return;
    };
    let prefix = RedisPrefix::new("reset");
    let policy = Policy::unlimited()
        .with_windows(Family::Get, vec![Window::new(1, Duration::from_secs(3600))]);
    let limiter = connect(&redis_url, &format!("{prefix}:a"), policy.clone()).await;
    let bystander = connect(&redis_url, &format!("{prefix}:b"), policy).await;
    // A tenant id with glob characters must match only itself.
    for tenant in ["t1", "t2", "t*"] {
        assert!(limiter
            .check(tenant, "app", Family::Get)
            .await
            .unwrap()
            .is_allowed());
        assert!(!limiter
            .check(tenant, "app", Family::Get)
            .await
            .unwrap()
            .is_allowed());
    }
    assert!(bystander
        .check("t1", "app", Family::Get)
        .await
        .unwrap()
        .is_allowed());
    limiter.reset(Some("t*")).await.unwrap();
    assert!(limiter
        .check("t*", "app", Family::Get)
        .await
        .unwrap()
        .is_allowed());
    assert!(!limiter
        .check("t1", "app", Family::Get)
        .await
        .unwrap()
        .is_allowed());
    limiter.reset(None).await.unwrap();
    assert!(limiter
        .check("t1", "app", Family::Get)
        .await
        .unwrap()
        .is_allowed());
    assert!(limiter
        .check("t2", "app", Family::Get)
        .await
        .unwrap()
        .is_allowed());
    assert!(!bystander
        .check("t1", "app", Family::Get)
        .await
        .unwrap()
        .is_allowed());
}
