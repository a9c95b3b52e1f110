//! The PostgreSQL store, for several iocd replicas sharing one database.
//!
//! Writes use the same group-commit writer and protocol as SQLite. What makes them correct
//! across replicas is the transaction start: each batch locks the rows of the tenants it writes
//! (`SELECT … FOR UPDATE`, in tenant order so replicas cannot deadlock), so the read-then-write
//! upsert, the id counter and the quota count of one tenant never interleave between servers.
//! The unique key on (tenant, type, value, action) stays as the last line of defence.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use iocd_domain::time::Timestamp;
use iocd_domain::{Actor, Indicator, Submission};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection};

use crate::identity::impl_identity_store;
use crate::protocol::impl_write_connection;
use crate::rows::{get_visible_sql, ticks, IndicatorRow, COLUMNS, COUNT_ACTIVE};
use crate::writer::Writer;
use crate::{DeleteOutcome, IndicatorStore, ItemResult, Scope, StoreError, WriteLimits};

pub struct PostgresStore {
    readers: PgPool,
    writer: Writer,
}

struct PgWriter {
    conn: PgConnection,
    options: PgConnectOptions,
}

impl_identity_store!(PostgresStore);

impl_write_connection!(PgWriter, begin_locked);

/// Starts a batch, reconnecting once if the connection was lost (a database restart).
async fn begin_locked(writer: &mut PgWriter, tenants: &[String]) -> Result<(), sqlx::Error> {
    match lock_tenants(&mut writer.conn, tenants).await {
        Ok(()) => Ok(()),
        Err(first) => {
            tracing::warn!(error = %first, "write transaction failed to start; reconnecting");
            writer.conn = writer.options.connect().await?;
            lock_tenants(&mut writer.conn, tenants).await
        }
    }
}

async fn lock_tenants(conn: &mut PgConnection, tenants: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO tenants (tenant_id, next_indicator_id) SELECT t, 0 FROM unnest($1::text[]) AS t ORDER BY t \
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenants)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "SELECT tenant_id FROM tenants WHERE tenant_id = ANY($1) ORDER BY tenant_id FOR UPDATE",
    )
    .bind(tenants)
    .fetch_all(&mut *conn)
    .await?;
    Ok(())
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/db`) and migrates the schema (sqlx holds an
    /// advisory lock while migrating, so replicas starting together do not collide).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
        let readers = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&readers)
            .await?;
        let conn = options.connect().await?;
        Ok(PostgresStore {
            readers,
            writer: Writer::spawn(PgWriter { conn, options }),
        })
    }
}

#[async_trait]
impl IndicatorStore for PostgresStore {
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
            "SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND (expiration_time IS NULL OR expiration_time > $2) \
             AND (CAST($3 AS TEXT) IS NULL OR created_by = $3) ORDER BY id LIMIT $4 OFFSET $5"
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
