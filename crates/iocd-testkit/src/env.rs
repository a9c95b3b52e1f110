//! The environment variables the tests read, defined once.
//!
//! A test that needs PostgreSQL or Redis asks [`postgres_url`] or [`redis_url`] first. When the
//! variable is unset the test is skipped: it prints one line saying how to run it and returns.
//! When the variable is set the service must be reachable: a connection failure fails the test,
//! so CI (which sets both) can never pass by skipping.

use std::io::Write;

/// The PostgreSQL server tests create their scratch databases on (any database of it; the
/// connecting role needs `CREATEDB`).
pub const POSTGRES_URL_VAR: &str = "IOCD_TEST_POSTGRES_URL";
/// What CI sets [`POSTGRES_URL_VAR`] to: the local server, trust auth, database `test`.
pub const POSTGRES_URL_EXAMPLE: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The Redis server tests use, each under a key prefix of its own.
pub const REDIS_URL_VAR: &str = "IOCD_TEST_REDIS_URL";
/// What CI sets [`REDIS_URL_VAR`] to.
pub const REDIS_URL_EXAMPLE: &str = "redis://127.0.0.1:6379";

/// When set, the `RUST_LOG` of every `iocd` process a test or the benchmark starts (they log as
/// configured by default otherwise).
pub const SERVER_LOG_VAR: &str = "IOCD_SERVER_LOG";

/// The PostgreSQL URL to test against, or `None` after printing the skip line.
pub fn postgres_url() -> Option<String> {
    service_url(POSTGRES_URL_VAR, POSTGRES_URL_EXAMPLE)
}

/// The Redis URL to test against, or `None` after printing the skip line.
pub fn redis_url() -> Option<String> {
    service_url(REDIS_URL_VAR, REDIS_URL_EXAMPLE)
}

/// Both service URLs, for tests that need PostgreSQL and Redis; `None` (after one skip line
/// naming what is missing) unless both are set.
pub fn postgres_and_redis_urls() -> Option<(String, String)> {
    let postgres = set(POSTGRES_URL_VAR);
    let redis = set(REDIS_URL_VAR);
    if let (Some(postgres), Some(redis)) = (&postgres, &redis) {
        return Some((postgres.clone(), redis.clone()));
    }
    let mut missing = Vec::new();
    if postgres.is_none() {
        missing.push(format!("{POSTGRES_URL_VAR}={POSTGRES_URL_EXAMPLE}"));
    }
    if redis.is_none() {
        missing.push(format!("{REDIS_URL_VAR}={REDIS_URL_EXAMPLE}"));
    }
    skip(&format!("set {} to run", missing.join(" and ")));
    None
}

fn service_url(variable: &str, example: &str) -> Option<String> {
    let url = set(variable);
    if url.is_none() {
        skip(&format!("set {variable}={example} to run"));
    }
    url
}

fn set(variable: &str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Prints `skipped <test>: <how to run it>` where the person running `cargo test` sees it.
///
/// libtest captures `print!` output of passing tests; writing to the stderr handle directly is
/// not captured, so the line shows in a plain `cargo test` run.
pub fn skip(how_to_run: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "skipped {test}: {how_to_run}");
}
