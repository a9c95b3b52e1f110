//! The shared scenarios against the in-process limiter.

mod common;

use std::sync::Arc;

use common::SharedLimiter;
use iocd_ratelimit::{MemoryLimiter, Policy};

async fn memory_limiter(policy: Policy) -> SharedLimiter {
    Arc::new(MemoryLimiter::new(policy))
}

#[tokio::test]
async fn mde_minute_window_admits_100_then_refuses() {
    common::mde_minute_window_admits_100_then_refuses(memory_limiter).await;
}

#[tokio::test]
async fn mde_import_admits_30_per_minute() {
    common::mde_import_admits_30_per_minute(memory_limiter).await;
}

#[tokio::test]
async fn short_window_refills_one_call_per_interval() {
    common::short_window_refills_one_call_per_interval(memory_limiter).await;
}

#[tokio::test]
async fn stricter_second_window_decides() {
    common::stricter_second_window_decides(memory_limiter).await;
}

#[tokio::test]
async fn refused_calls_consume_from_no_window() {
    common::refused_calls_consume_from_no_window(memory_limiter).await;
}

#[tokio::test]
async fn keys_are_independent() {
    common::keys_are_independent(memory_limiter).await;
}

#[tokio::test]
async fn unlimited_policy_admits_everything() {
    common::unlimited_policy_admits_everything(memory_limiter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_get_exactly_the_limit() {
    let limiter = memory_limiter(common::hourly_submit_policy(100)).await;
    common::concurrent_callers_get_exactly_the_limit(vec![limiter], 100).await;
}
