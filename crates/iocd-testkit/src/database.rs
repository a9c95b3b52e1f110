//! Scratch databases: one of its own for every test server, so parallel tests (and other people's
//! test runs on the same machine) never see each other's rows.

use std::path::{Path, PathBuf};

use sqlx::Connection;

use crate::backend::Backend;
use crate::env;

/// A fresh database: a SQLite file in a temporary directory, or a PostgreSQL database created on
/// the server [`env::POSTGRES_URL_VAR`] names and dropped (with `FORCE`, ending the sessions of a
/// killed or stopped server) on drop.
pub struct ScratchDatabase {
    /// What `iocd --database` / `iocd_store::open_stores` take.
    pub url: String,
    backend: Backend,
    /// The admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
    /// Holds the SQLite file, and the logs of `iocd` processes on either backend.
    dir: tempfile::TempDir,
}

impl ScratchDatabase {
    /// A scratch database on `backend`. For PostgreSQL the test must have checked
    /// [`env::postgres_url`] first (`on_every_backend!` does), so a missing variable here is a
    /// mistake in the test.
    pub async fn create(backend: Backend) -> ScratchDatabase {
        match backend {
            Backend::Sqlite => ScratchDatabase::sqlite(),
            Backend::Postgres => {
                let admin = std::env::var(env::POSTGRES_URL_VAR).unwrap_or_else(|_| {
                    panic!(
                        "a PostgreSQL test ran without {}: check env::postgres_url() first",
                        env::POSTGRES_URL_VAR
                    )
                });
                ScratchDatabase::postgres(&admin).await
            }
        }
    }

    /// A scratch database on the backend of the running test ([`Backend::current`]).
    pub async fn for_current_backend() -> ScratchDatabase {
        ScratchDatabase::create(Backend::current()).await
    }

    /// A SQLite file in a new temporary directory.
    pub fn sqlite() -> ScratchDatabase {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("iocd.db").display());
        ScratchDatabase {
            url,
            backend: Backend::Sqlite,
            postgres: None,
            dir,
        }
    }

    /// A new database on the PostgreSQL server `admin_url` names (any database of it).
    pub async fn postgres(admin_url: &str) -> ScratchDatabase {
        let name = format!("iocd_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is unreachable: {e}"));
        // The name is generated from safe characters, so formatting it in is fine.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating database {name} at {admin_url}: {e}"));
        let (base, _) = admin_url
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("the PostgreSQL URL {admin_url} must name a database"));
        ScratchDatabase {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            postgres: Some((admin_url.to_string(), name)),
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// The SQLite file (None on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("sqlite://").map(PathBuf::from)
    }

    /// A temporary directory that lives as long as the database: for logs and files of the test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a single-value integer query straight against the database (e.g. to prove that a
    /// refused request wrote nothing).
    pub async fn scalar(&self, sql: &str) -> i64 {
        // The same three steps on either driver's connection type.
        macro_rules! scalar_with {
            ($connection:ty) => {{
                let mut conn = <$connection>::connect(&self.url)
                    .await
                    .expect("connect to the scratch database");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }};
        }
        match self.backend {
            Backend::Sqlite => scalar_with!(sqlx::SqliteConnection),
            Backend::Postgres => scalar_with!(sqlx::PgConnection),
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside or outside a runtime: use a small one on a plain thread.
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
