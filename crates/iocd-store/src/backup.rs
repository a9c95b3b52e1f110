//! Backups of a SQLite store (`iocd backup`, `iocd restore`).
//!
//! A backup is SQLite's `VACUUM INTO`: one read transaction on a connection of its own, so it
//! is a consistent snapshot of every committed write at its start, taken while a server keeps
//! writing (in WAL mode the writer is not blocked). The copy is a compact, self-contained
//! database file. A restore checks the copy (`PRAGMA integrity_check`, that it is an iocd
//! database), refuses a target that already holds data, writes the copy there with
//! `VACUUM INTO` and opens it once, so migrations newer than the backup run.
//!
//! PostgreSQL has its own tools (`pg_dump`, `pg_restore`; docs/deployment.md).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::StoreError;

/// What a backup or restore did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    pub database: String,
    pub file: String,
    pub bytes: u64,
    pub indicators: i64,
    pub apps: i64,
    pub users: i64,
}

/// Why a backup or restore was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Store(StoreError::from(e))
    }
}

/// The file path of a `sqlite://PATH` URL; other URLs are refused with the way to go.
fn sqlite_path(url: &str) -> Result<PathBuf, BackupError> {
    if url == crate::sqlite::IN_MEMORY_URL {
        return Err(BackupError::Refused(
            "an in-memory store (--in-memory) has nothing on disk to back up or restore into"
                .into(),
        ));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Err(BackupError::Refused(
            "this is a PostgreSQL database: back it up with pg_dump and restore it with pg_restore (docs/deployment.md, \"Backups\")".into(),
        ));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| BackupError::Refused(format!("'{url}' is not a sqlite:// URL: {e}")))?;
    Ok(options.get_filename().to_path_buf())
}

async fn connect(path: &Path, read_only: bool) -> Result<SqliteConnection, BackupError> {
    if !path.exists() {
        return Err(BackupError::Refused(format!(
            "{} does not exist",
            path.display()
        )));
    }
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(30))
        .disable_statement_logging()
        .connect()
        .await?)
}

async fn count(conn: &mut SqliteConnection, table: &str) -> Result<i64, BackupError> {
    let exists: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
    if exists == 0 {
        return Ok(0);
    }
    Ok(sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut *conn)
        .await?)
}

/// `PRAGMA integrity_check`'s answer: `ok`, or what is wrong.
pub async fn integrity_check(path: &Path) -> Result<String, BackupError> {
    let mut conn = connect(path, true).await?;
    let lines: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    conn.close().await?;
    Ok(lines.join("; "))
}

async fn report(database: &str, file: &Path) -> Result<BackupReport, BackupError> {
    let mut conn = connect(file, true).await?;
    let report = BackupReport {
        database: database.to_string(),
        file: file.display().to_string(),
        bytes: std::fs::metadata(file)?.len(),
        indicators: count(&mut conn, "indicators").await?,
        apps: count(&mut conn, "apps").await?,
        users: count(&mut conn, "users").await?,
    };
    conn.close().await?;
    Ok(report)
}

/// Writes a consistent copy of the SQLite store at `database` to `output` (which must not
/// exist), while servers may be writing to it.
pub async fn backup(database: &str, output: &Path) -> Result<BackupReport, BackupError> {
    let source = sqlite_path(database)?;
    if output.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists: a backup never overwrites a file",
            output.display()
        )));
    }
    let mut conn = connect(&source, false).await?;
    let target = output
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{} is not a UTF-8 path", output.display())))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    report(database, output).await
}

/// Restores the backup `input` into the SQLite store at `database`, which must not exist or
/// hold no indicators, apps or users (a server that started on it and stopped leaves only its
/// keys, which the backup's replace).
pub async fn restore(input: &Path, database: &str) -> Result<BackupReport, BackupError> {
    let target = sqlite_path(database)?;
    let check = integrity_check(input).await?;
    if check != "ok" {
        return Err(BackupError::Refused(format!(
            "{} fails PRAGMA integrity_check: {check}",
            input.display()
        )));
    }
    {
        let mut conn = connect(input, true).await?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_sqlx_migrations', 'indicators', 'apps')",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        if tables != 3 {
            return Err(BackupError::Refused(format!(
                "{} is not an iocd database (no indicators, apps and migrations tables)",
                input.display()
            )));
        }
    }
    if target.exists() {
        let mut conn = connect(&target, true).await?;
        let held = [
            ("indicators", count(&mut conn, "indicators").await?),
            ("apps", count(&mut conn, "apps").await?),
            ("users", count(&mut conn, "users").await?),
        ];
        conn.close().await?;
        let held: Vec<String> = held
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        if !held.is_empty() {
            return Err(BackupError::Refused(format!(
                "{} is not empty (it holds {}): restore only into a new or empty store, so nothing is overwritten",
                target.display(),
                held.join(", ")
            )));
        }
        // An empty store (a server started on it once): replaced by the backup.
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = target.clone().into_os_string();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let target_text = target
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{} is not a UTF-8 path", target.display())))?;
    let mut conn = connect(input, true).await?;
    sqlx::query("VACUUM INTO ?")
        .bind(target_text)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    // Once in WAL mode, as the server keeps it, and migrated to this version's schema.
    let conn = SqliteConnectOptions::new()
        .filename(&target)
        .journal_mode(SqliteJournalMode::Wal)
        .disable_statement_logging()
        .connect()
        .await?;
    conn.close().await?;
    drop(crate::sqlite::SqliteStore::open(database).await?);
    report(database, &target).await
}
