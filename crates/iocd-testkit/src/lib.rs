//! iocd's test kit: everything integration tests share, written once (in the style of kanidm's
//! `server/testkit`). Never published; every crate's tests take it as a dev-dependency.
//!
//! | need | use |
//! |---|---|
//! | a database of the test's own, SQLite or PostgreSQL | [`ScratchDatabase`] |
//! | the same test on both backends | [`on_every_backend!`], [`Backend::current`] |
//! | the real server in-process, over HTTP | [`TestServer`] |
//! | the real `iocd` binary (commands, `iocd serve`) | [`Iocd`], [`IocdProcess`] |
//! | apps and tokens | [`TestServer::create_app`], [`Iocd::create_app`], [`client_credentials_token`] |
//! | request bodies, reading responses | [`seed_request`], [`domain_request`], [`status_json`] |
//! | PostgreSQL / Redis, or a skip | [`env::postgres_url`], [`env::redis_url`] |
//! | Redis keys of the test's own, a Redis to stop and start | [`RedisPrefix`], [`PrivateRedis`] |
//! | a port, a stand-in HTTP service (Entra's JWKS) | [`free_port`], [`serve_router`] |
//!
//! # Writing a new integration test
//!
//! Each crate has ONE integration-test binary: `crates/<crate>/tests/it/main.rs`, which only
//! declares modules, one per area (`mod submit; mod list; …`). To add tests:
//!
//! 1. Put them in the module of their area, or add `crates/<crate>/tests/it/<area>.rs` and a
//!    `mod <area>;` line in `main.rs`. Never add a file directly under `tests/`: each one is
//!    another binary to link. Helpers used by one area stay in its module; helpers two crates
//!    need belong here.
//! 2. The crate needs `iocd-testkit = { workspace = true }` and `tokio` under
//!    `[dev-dependencies]`.
//! 3. Write the test against the real server and assert what could fail:
//!
//! ```ignore
//! use iocd_testkit::{domain_request, on_every_backend, status_json, TestServer};
//!
//! async fn deleting_an_indicator_twice_is_404() {
//!     let server = TestServer::start().await; // scratch database of the current backend
//!     let (status, created) =
//!         status_json(server.post_json("/api/indicators", &domain_request(1)).await).await;
//!     assert_eq!(status, 200, "{created}");
//!     let path = format!("/api/indicators/{}", created["id"].as_str().unwrap());
//!     assert_eq!(server.send(reqwest::Method::DELETE, &path).await.status(), 204);
//!     assert_eq!(server.send(reqwest::Method::DELETE, &path).await.status(), 404);
//! }
//!
//! // One #[tokio::test] per backend: on_sqlite::… and on_postgres::… (once per module).
//! on_every_backend!(deleting_an_indicator_twice_is_404);
//! ```
//!
//! A test of the binary (CLI, configuration, several processes) uses the process wrapper:
//!
//! ```ignore
//! let iocd = Iocd::new(env!("CARGO_BIN_EXE_iocd")); // only the iocd crate's tests have it
//! let database = ScratchDatabase::sqlite();
//! let app = iocd.create_app(&database.url, TENANT, "importer", "Ti.ReadWrite.All");
//! let server = iocd.serve().database(&database.url).unthrottled().start().await;
//! let token = client_credentials_token(&reqwest::Client::new(), &server.base_url(), &app).await;
//! ```
//!
//! A test that needs PostgreSQL or Redis outside `on_every_backend!` starts with
//!
//! ```ignore
//! let Some(redis_url) = iocd_testkit::env::redis_url() else { return };
//! ```
//!
//! which, when `IOCD_TEST_REDIS_URL` is unset, prints one `skipped <test>: set … to run` line
//! and ends the test; when it is set, the service must answer or the test fails. `.ci/run` sets
//! both variables, so in CI nothing is skipped. Run one area with
//! `cargo test -p <crate> --test it <area>::`.
//!
//! Tests run in parallel, and other people's runs share the machine: bind `127.0.0.1:0` (or
//! [`free_port`] where only a port number can be passed), use a [`ScratchDatabase`] per server
//! and a [`RedisPrefix`] per Redis user, never fixed names.

mod apps;
mod backend;
mod database;
pub mod env;
mod fixtures;
mod net;
mod process;
mod redis;
mod server;

pub use apps::{
    client_credentials_token, parse_created_app, NewAppCredentials, Role, TestApp, AUDIENCE, TENANT,
};
pub use backend::{run_on, Backend};
pub use database::ScratchDatabase;
pub use fixtures::{domain_request, seed_request, status_json};
pub use net::{free_port, serve_router, start_bare_axum};
pub use process::{Iocd, IocdProcess, Serve};
pub use redis::{PrivateRedis, RedisPrefix};
pub use server::TestServer;
