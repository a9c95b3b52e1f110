//! iocd-server's integration tests: the real server in-process (`iocd_testkit::TestServer`),
//! spoken to over HTTP, each test on a scratch database of its own, most on both backends.

mod aliases;
mod auth;
mod certificates;
mod changes;
mod connections;
mod emulator;
mod faults;
mod feeds;
mod hostile;
mod ids;
mod import;
mod journal;
mod keys;
mod list;
mod matching;
mod metrics;
mod portal;
mod portal_browser;
mod protocol_errors;
mod quota;
mod ratelimit;
mod routes;
mod submit;
mod suricata;
mod token_flood;
mod users;
