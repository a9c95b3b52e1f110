//! Scenarios run unchanged against every limiter implementation: each takes a factory that builds the
//! limiter under test for the scenario's policy, so memory and Redis are held to the same behaviour.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iocd_ratelimit::{Decision, Family, Policy, RateLimiter, Window};

pub type SharedLimiter = Arc<dyn RateLimiter>;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const APP: &str = "0b1c2d3e-0000-4000-8000-123456789abc";

async fn check(limiter: &dyn RateLimiter, family: Family) -> Decision {
    limiter
        .check(TENANT, APP, family)
        .await
        .expect("the limiter should be available")
}

async fn admit_all(limiter: &dyn RateLimiter, family: Family, calls: u32) {
    for call in 1..=calls {
        let decision = check(limiter, family).await;
        assert_eq!(
            decision,
            Decision::Allowed,
            "call {call} of {calls} should be admitted"
        );
    }
}

/// The refusal's wait, after checking it names the expected window.
fn expect_limited(decision: Decision, expected: Window) -> Duration {
    match decision {
        Decision::Limited {
            retry_after,
            limit,
            period,
        } => {
            assert_eq!(
                Window::new(limit, period),
                expected,
                "refused by the wrong window"
            );
            retry_after
        }
        Decision::Allowed => panic!("expected a refusal by {expected:?}, got Allowed"),
    }
}

/// A refusal's wait is the emission interval minus the time since the burst began, so it lies in
/// `(interval - elapsed, interval]`.
fn assert_wait_close_to(wait: Duration, interval: Duration, elapsed: Duration) {
    assert!(
        wait <= interval && wait + elapsed >= interval,
        "wait {wait:?} should be within {elapsed:?} below {interval:?}"
    );
}

/// MDE's 100 calls per minute: 100 at once pass, the 101st waits period/limit = 600 ms (sent as
/// `Retry-After: 1`), and exactly one call passes after that wait.
pub async fn mde_minute_window_admits_100_then_refuses<F, Fut>(make: F)
where
    F: Fn(Policy) -> Fut,
    Fut: Future<Output = SharedLimiter>,
{
    let limiter = make(Policy::mde_defaults()).await;
    let started = Instant::now();
    admit_all(&*limiter, Family::Submit, 100).await;
    let wait = expect_limited(
        check(&*limiter, Family::Submit).await,
        Window::per_minute(100),
    );
    assert_wait_close_to(wait, Duration::from_millis(600), started.elapsed());
    let refusal = check(&*limiter, Family::Submit).await;
    assert_eq!(refusal.retry_after_secs(), 1);

    tokio::time::sleep(wait).await;
    assert_eq!(check(&*limiter, Family::Submit).await, Decision::Allowed);
    expect_limited(
        check(&*limiter, Family::Submit).await,
        Window::per_minute(100),
    );
}

/// Import's 30 per minute: the 31st call waits 2 s.
pub async fn mde_import_admits_30_per_minute<F, Fut>(make: F)
where
    F: Fn(Policy) -> Fut,
    Fut: Future<Output = SharedLimiter>,
{
    let limiter = make(Policy::mde_defaults()).await;
    let started = Instant::now();
    admit_all(&*limiter, Family::Import, 30).await;
    let refusal = check(&*limiter, Family::Import).await;
    let wait = expect_limited(refusal, Window::per_minute(30));
    assert_wait_close_to(wait, Duration::from_secs(2), started.elapsed());
    assert_eq!(refusal.retry_after_secs(), 2);
}

/// 5 per 500 ms: refill is one call per 100 ms, and the reported wait is exactly enough.
pub async fn short_window_refills_one_call_per_interval<F, Fut>(make: F)
where
    F: Fn(Policy) -> Fut,
    Fut: Future<Output = SharedLimiter>,
{
    let window = Window::new(5, Duration::from_millis(500));
    let limiter = make(Policy::unlimited().with_windows(Family::Get, vec![window])).await;
    let started = Instant::now();
    admit_all(&*limiter, Family::Get, 5).await;
    let wait = expect_limited(check(&*limiter, Family::Get).await, window);
    assert_wait_close_to(wait, Duration::from_millis(100), started.elapsed());

    // Each round sleeps the wait the latest refusal reported: that is the promise under test.
    let mut reported = wait;
    for _ in 0..3 {
        tokio::time::sleep(reported).await;
        assert_eq!(check(&*limiter, Family::Get).await, Decision::Allowed);
        reported = expect_limited(check(&*limiter, Family::Get).await, window);
        assert!(reported <= Duration::from_millis(100));
    }

    // After a full period of silence the whole burst is available again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    admit_all(&*limiter, Family::Get, 5).await;
    expect_limited(check(&*limiter, Family::Get).await, window);
}

/// With two windows, the stricter one decides and is the one reported.
pub async fn stricter_second_window_decides<F, Fut>(make: F)
where
    F: Fn(Policy) -> Fut,
    Fut: Future<Output = SharedLimiter>,
{
    let lenient = Window::new(10, Duration::from_secs(1));
    let strict = Window::new(3, Duration::from_secs(60));
    let limiter =
        make(Policy::unlimited().with_windows(Family::Delete, vec![lenient, strict])).await;
    let started = Instant::now();
    admit_all(&*limiter, Family::Delete, 3).await;
    let wait = expect_limited(check(&*limiter, Family::Delete).await, strict);
    assert_wait_close_to(wait, Duration::from_secs(20), started.elapsed());
}

/// Calls refused by the short window must not use up the long one (and vice versa, by running the
/// scenario with the windows in both orders): if they did, the calls after each wait would be refused.
pub async fn refused_calls_consume_from_no_window<F, Fut>(make: F)
where
    F: Fn(Policy) -> Fut,
    Fut: Future<Output = SharedLimiter>,
{
    let short = Window::new(1, Duration::from_millis(150));
    let long = Window::new(3, Duration::from_secs(3600));
    for windows in [vec![short, long], vec![long, short]] {
        let limiter = make(Policy::unlimited().with_windows(Family::BatchDelete, windows)).await;
        admit_all(&*limiter, Family::BatchDelete, 1).await;
        for _ in 0..2 {
            let mut wait = Duration::ZERO;
            for _ in 0..10 {
                wait = expect_limited(check(&*limiter, Family::BatchDelete).await, short);
            }
            tokio::time::sleep(wait).await;
            assert_eq!(
                check(&*limiter, Family::BatchDelete).await,
                Decision::Allowed
            );
        }
        // Three calls admitted in all: the long window is now the one refusing, for about 20 minutes.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let wait = expect_limited(check(&*limiter, Family::BatchDelete).await, long);
        assert!(
            wait > Duration::from_secs(19 * 60),
            "unexpected wait {wait:?}"
        );
    }
}

/// Tenant, application and family each get their own windows.
pub async fn keys_are_independent<F, Fut>(make: F)
where
    F: Fn(Policy) -> Fut,
    Fut: Future<Output = SharedLimiter>,
{
    let window = Window::new(2, Duration::from_secs(3600));
    let policy = Family::ALL
        .into_iter()
        .fold(Policy::unlimited(), |policy, family| {
            policy.with_windows(family, vec![window])
        });
    let limiter = make(policy).await;
    let callers = [
        ("tenant-a", "app-1", Family::Submit),
        ("tenant-b", "app-1", Family::Submit),
        ("tenant-a", "app-2", Family::Submit),
        ("tenant-a", "app-1", Family::List),
        ("tenant-a", "app-1", Family::Import),
        // Separators inside ids must not merge keys.
        ("tenant:a", "app-1", Family::Submit),
        ("tenant", "a:app-1", Family::Submit),
    ];
    for (tenant, app, family) in callers {
        for _ in 0..2 {
            let decision = limiter.check(tenant, app, family).await.unwrap();
            assert_eq!(decision, Decision::Allowed, "{tenant}/{app}/{family}");
        }
        let decision = limiter.check(tenant, app, family).await.unwrap();
        expect_limited(decision, window);
    }
}

/// A family without windows is never refused.
pub async fn unlimited_policy_admits_everything<F, Fut>(make: F)
where
    F: Fn(Policy) -> Fut,
    Fut: Future<Output = SharedLimiter>,
{
    let limiter = make(Policy::mde_defaults().with_windows(Family::List, Vec::new())).await;
    admit_all(&*limiter, Family::List, 2_000).await;
    let limiter = make(Policy::unlimited()).await;
    for family in Family::ALL {
        admit_all(&*limiter, family, 200).await;
    }
}

/// Many tasks hammering one key through the given limiters (one, or several replicas sharing state)
/// get exactly `limit` admissions in total.
pub async fn concurrent_callers_get_exactly_the_limit(limiters: Vec<SharedLimiter>, limit: u32) {
    const TASKS: usize = 24;
    const CALLS_PER_TASK: usize = 25;
    assert!(TASKS * CALLS_PER_TASK > limit as usize * 2);
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let limiter = Arc::clone(&limiters[task % limiters.len()]);
            tokio::spawn(async move {
                let mut admitted = 0u32;
                for _ in 0..CALLS_PER_TASK {
                    if limiter
                        .check(TENANT, APP, Family::Submit)
                        .await
                        .unwrap()
                        .is_allowed()
                    {
                        admitted += 1;
                    }
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert_eq!(admitted, limit);
}

/// A policy for [`concurrent_callers_get_exactly_the_limit`]: a period long enough that no unit
/// refills while the test runs.
pub fn hourly_submit_policy(limit: u32) -> Policy {
    Policy::unlimited().with_windows(Family::Submit, vec![Window::per_hour(limit)])
}
