//! iocd-ratelimit integration tests: the same scenarios against the in-process limiter and the
//! Redis one, plus what only Redis has.

mod memory;
mod redis_limiter;
mod scenarios;
