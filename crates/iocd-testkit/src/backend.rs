//! Which database a test's servers use. A test written once runs on both backends:
//! [`on_every_backend!`](crate::on_every_backend) generates one `#[tokio::test]` per backend
//! around the same test body, which reads the backend from a task-local.

use std::future::Future;

use crate::env;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

impl Backend {
    /// The backend of the running test (SQLite outside `on_every_backend!`).
    pub fn current() -> Backend {
        BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
    }
}

/// Runs `test` with `backend` as [`Backend::current`]; on PostgreSQL without
/// [`env::POSTGRES_URL_VAR`] the test is skipped with one line saying how to run it.
pub async fn run_on<F: Future<Output = ()>>(backend: Backend, test: F) {
    if backend == Backend::Postgres && env::postgres_url().is_none() {
        return;
    }
    BACKEND.scope(backend, test).await
}

/// Runs each named `async fn` test once on SQLite (`on_sqlite::name`) and once on PostgreSQL
/// (`on_postgres::name`). Use it once per module, after the test functions:
///
/// ```ignore
/// async fn deleting_twice_is_404() { let server = TestServer::start().await; /* … */ }
///
/// iocd_testkit::on_every_backend!(deleting_twice_is_404);
/// ```
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),+ $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    $crate::run_on($crate::Backend::Sqlite, super::$test()).await
                }
            )+
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    $crate::run_on($crate::Backend::Postgres, super::$test()).await
                }
            )+
        }
    };
}
