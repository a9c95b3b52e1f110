//! The embedded SQLite store.
//!
//! Reads go through a pool of connections (WAL lets them run beside the writer). Writes go
//! through the shared group-commit [`Writer`], which owns the only writing connection: one
//! writer means upserts never race and our own writers never meet `SQLITE_BUSY`, and each
//! batch is one `BEGIN IMMEDIATE … COMMIT` with one fsync.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use iocd_domain::time::Timestamp;
use iocd_domain::{Actor, Indicator, Submission};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqliteConnection};

use crate::identity::impl_identity_store;
use crate::protocol::impl_write_connection;
use crate::rows::{get_visible_sql, ticks, IndicatorRow, COLUMNS, COUNT_ACTIVE};
use crate::writer::Writer;
use crate::{DeleteOutcome, IndicatorStore, ItemResult, Scope, StoreError, WriteLimits};

const ACTIVE: &str = "(expiration_time IS NULL OR expiration_time > $2)";

pub struct SqliteStore {
    readers: SqlitePool,
    writer: Writer,
}

struct SqliteWriter {
    conn: SqliteConnection,
}

impl_identity_store!(SqliteStore);

impl_write_connection!(SqliteWriter, begin_immediate);

/// Takes the database's write lock at the start, not at the first write, so the transaction
/// cannot fail half-way on a lock upgrade. One writer per process, so no tenant locks needed.
async fn begin_immediate(
    writer: &mut SqliteWriter,
    _tenants: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer.conn)
        .await
        .map(|_| ())
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://iocd.db`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before anyone is told it succeeded.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .disable_statement_logging();
        let mut conn = options.connect().await?;
        sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            readers,
            writer: Writer::spawn(SqliteWriter { conn }),
        })
    }
}

#[async_trait]
impl IndicatorStore for SqliteStore {
    async fn submit(
        &self,
        scope: &Scope,
        actor: &Actor,
        items: Vec<Submission>,
        limits: WriteLimits,
        now: Timestamp,
    ) -> Result<Vec<ItemResult>, StoreError> {
        self.writer.submit(scope, actor, items, limits, now).await
    }

    async fn get(
        &self,
        scope: &Scope,
        id: i64,
        now: Timestamp,
    ) -> Result<Option<Indicator>, StoreError> {
        let sql = get_visible_sql();
        let row: Option<IndicatorRow> = sqlx::query_as(&sql)
            .bind(&scope.tenant_id)
            .bind(ticks(now))
            .bind(id)
            .bind(scope.owner.as_deref())
            .fetch_optional(&self.readers)
            .await?;
        row.map(Indicator::try_from).transpose()
    }

    async fn delete(
        &self,
        scope: &Scope,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<DeleteOutcome, StoreError> {
        self.writer.delete(scope, ids, now).await
    }

    async fn list(
        &self,
        scope: &Scope,
        skip: u64,
        take: u64,
        now: Timestamp,
    ) -> Result<Vec<Indicator>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND {ACTIVE} AND (CAST($3 AS TEXT) IS NULL OR created_by = $3) \
             ORDER BY id LIMIT $4 OFFSET $5"
        );
        let rows: Vec<IndicatorRow> = sqlx::query_as(&sql)
            .bind(&scope.tenant_id)
            .bind(ticks(now))
            .bind(scope.owner.as_deref())
            .bind(take as i64)
            .bind(skip as i64)
            .fetch_all(&self.readers)
            .await?;
        rows.into_iter().map(Indicator::try_from).collect()
    }

    async fn count_active(&self, tenant_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(COUNT_ACTIVE)
            .bind(tenant_id)
            .bind(ticks(now))
            .fetch_one(&self.readers)
            .await?;
        Ok(n as u64)
    }
}
