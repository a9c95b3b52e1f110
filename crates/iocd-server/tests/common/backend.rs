//! Which database a test's servers use. Every integration test runs once per backend:
//! [`on_every_backend!`](crate::on_every_backend) generates one `#[tokio::test]` per backend
//! around the same test body, which reads the backend from a task-local.

use sqlx::Connection;

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

pub async fn run_on<F: std::future::Future<Output = ()>>(backend: Backend, test: F) {
    BACKEND.scope(backend, test).await
}

/// The PostgreSQL server tests use: `IOCD_TEST_POSTGRES_URL`, by default the machine's local
/// one (trust auth, database `test`).
pub fn postgres_admin_url() -> String {
    std::env::var("IOCD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database of its own for one test server: a temporary SQLite file, or a PostgreSQL
/// database created for it and dropped afterwards, so runs never interfere.
pub struct TestDatabase {
    pub url: String,
    backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("iocd.db").display());
                TestDatabase {
                    url,
                    backend,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("iocd_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} is needed for the postgres tests: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .expect("URL with a database");
                TestDatabase {
                    url: format!("{base}/{name}"),
                    backend,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Runs a single-value query straight against the database.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("query")
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("query")
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async code: use a small runtime on a plain thread. FORCE ends the
        // stopped server's pooled connections.
        let admin = postgres_admin_url();
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Runs each named `async fn` test once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_every_backend {
    ($($test:ident),+ $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    $crate::common::run_on($crate::common::Backend::Sqlite, super::$test()).await
                }
            )+
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    $crate::common::run_on($crate::common::Backend::Postgres, super::$test()).await
                }
            )+
        }
    };
}
