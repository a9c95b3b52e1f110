//! The shared scenarios against the in-process limiter.

use std::sync::Arc;

use crate::scenarios::{self, SharedLimiter};
use iocd_ratelimit::{MemoryLimiter, Policy};

async fn memory_limiter(policy: Policy) -> SharedLimiter {
    Arc::new(MemoryLimiter::new(policy))
}

#[tokio::test]
async fn mde_minute_window_admits_100_then_refuses() {
    scenarios::mde_minute_window_admits_100_then_refuses(memory_limiter).await;
}

#[tokio::test]
async fn mde_import_admits_30_per_minute() {
    scenarios::mde_import_admits_30_per_minute(memory_limiter).await;
}

#[tokio::test]
async fn short_window_refills_one_call_per_interval() {
    scenarios::short_window_refills_one_call_per_interval(memory_limiter).await;
}

#[tokio::test]
async fn stricter_second_window_decides() {
    scenarios::stricter_second_window_decides(memory_limiter).await;
}

#[tokio::test]
async fn refused_calls_consume_from_no_window() {
    scenarios::refused_calls_consume_from_no_window(memory_limiter).await;
}

#[tokio::test]
async fn keys_are_independent() {
    scenarios::keys_are_independent(memory_limiter).await;
}

#[tokio::test]
async fn unlimited_policy_admits_everything() {
    scenarios::unlimited_policy_admits_everything(memory_limiter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_get_exactly_the_limit() {
    let limiter = memory_limiter(scenarios::hourly_submit_policy(100)).await;
    scenarios::concurrent_callers_get_exactly_the_limit(vec![limiter], 100).await;
}
