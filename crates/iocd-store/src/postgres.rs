//! The PostgreSQL store, for several iocd replicas sharing one database.
//!
//! Writes use the same group-commit writer and protocol as SQLite. What makes them correct
//! across replicas is the transaction start: each batch locks the rows of the tenants it writes
//! (`SELECT … FOR UPDATE`, in tenant order so replicas cannot deadlock), so the read-then-write
//! upsert, the id counter and the quota count of one tenant never interleave between servers.
//! The unique key on (tenant, type, value, action) stays as the last line of defence.

use std::str::FromStr;
use std::time::Duration;

use iocd_domain::time::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection};

use crate::authority::impl_certificate_authority_store;
use crate::identity::impl_identity_store;
use crate::indicator_store::impl_indicator_store;
use crate::listing::{bind_values, list_sql};
use crate::protocol::impl_write_connection;
use crate::rows::ticks;
use crate::writer::Writer;
use crate::{ListRequest, Scope, StoreError, StoreOptions};
use iocd_odata::Dialect;

pub struct PostgresStore {
    readers: PgPool,
    writer: Writer,
}

struct PgWriter {
    conn: PgConnection,
    options: PgConnectOptions,
}

impl_identity_store!(PostgresStore);
crate::users::impl_user_store!(PostgresStore);
impl_certificate_authority_store!(PostgresStore);

impl_write_connection!(PgWriter, begin_locked, batched);

/// The fast path's batched statements on PostgreSQL: multi-row statements of a few fixed sizes.
mod batched {
    use iocd_domain::time::to_ticks;
    use iocd_domain::{ChangeEntry, Indicator};
    use sqlx::PgConnection;

    use crate::rows::IndicatorRow;
    use crate::sql::postgres as sql;

    // Keys and ids go in as one array parameter (`= ANY($n)`), not as an `IN` list of
    // parameters: PostgreSQL plans a prepared statement generically after a few runs, and its
    // generic plan for a long `IN` list walked all of the tenant's rows of the type (an import
    // into a store of 100,000 slowed to 825 indicators/s), while `= ANY` keeps to the index.

    pub(super) async fn fetch_by_values(
        conn: &mut PgConnection,
        tenant: &str,
        indicator_type: &str,
        value_keys: &[&str],
    ) -> Result<Vec<IndicatorRow>, sqlx::Error> {
        sqlx::query_as(&sql::SELECT_BY_VALUES)
            .bind(tenant)
            .bind(indicator_type)
            .bind(value_keys)
            .fetch_all(conn)
            .await
    }

    pub(super) async fn fetch_by_ids(
        conn: &mut PgConnection,
        tenant: &str,
        ids: &[i64],
    ) -> Result<Vec<IndicatorRow>, sqlx::Error> {
        sqlx::query_as(&sql::SELECT_BY_IDS)
            .bind(tenant)
            .bind(ids)
            .fetch_all(conn)
            .await
    }

    pub(super) async fn delete_many(
        conn: &mut PgConnection,
        tenant: &str,
        ids: &[i64],
    ) -> Result<(), sqlx::Error> {
        sqlx::query(sql::DELETE_BY_IDS)
            .bind(tenant)
            .bind(ids)
            .execute(conn)
            .await
            .map(|_| ())
    }

    pub(super) async fn append_changes(
        conn: &mut PgConnection,
        tenant: &str,
        entries: &[ChangeEntry],
    ) -> Result<(), sqlx::Error> {
        let column = |f: fn(&ChangeEntry) -> String| entries.iter().map(f).collect::<Vec<_>>();
        sqlx::query(&sql::INSERT_CHANGES)
            .bind(tenant)
            .bind(entries.iter().map(|e| e.sequence).collect::<Vec<_>>())
            .bind(entries.iter().map(|e| to_ticks(e.time)).collect::<Vec<_>>())
            .bind(column(|e| e.actor.id.clone()))
            .bind(column(|e| e.actor.display_name.clone()))
            .bind(column(|e| e.actor.source.as_str().to_string()))
            .bind(entries.iter().map(|e| e.indicator_id).collect::<Vec<_>>())
            .bind(column(|e| e.indicator_type.as_str().to_string()))
            .bind(column(|e| e.indicator_value.clone()))
            .bind(column(|e| e.action.as_str().to_string()))
            .bind(column(|e| e.created_by.clone()))
            .bind(column(|e| e.kind.as_str().to_string()))
            .bind(column(crate::rows::changes_text))
            .execute(conn)
            .await
            .map(|_| ())
    }

    pub(super) async fn upsert_many(
        conn: &mut PgConnection,
        tenant: &str,
        indicators: &[Indicator],
    ) -> Result<(), sqlx::Error> {
        let mut rest = indicators;
        for size in crate::sql::statement_sizes(indicators.len(), sql::EXACT_UPSERT_ROWS) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut query = sqlx::query(sql::upsert_sql(size));
            for indicator in chunk {
                query = sql::bind_indicator!(query, tenant, indicator);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

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
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`PostgresStore::open`] with options.
    pub async fn open_with(url: &str, store_options: StoreOptions) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
        let readers = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&readers)
            .await?;
        // The writer's statements are planned for their parameters each time: a generic plan
        // (what PostgreSQL switches a prepared statement to after five runs) of the batched key
        // lookup walked every row of the tenant and type, taking up to 1.5 s per import batch
        // in a store of 60,000, where the planned-for-its-keys statement searches the index.
        let writer_options = options
            .clone()
            .options([("plan_cache_mode", "force_custom_plan")]);
        let conn = writer_options.connect().await?;
        Ok(PostgresStore {
            readers,
            writer: Writer::spawn(
                PgWriter {
                    conn,
                    options: writer_options,
                },
                store_options.change_log,
            ),
        })
    }

    /// The plan of the statement [`IndicatorStore::list`](crate::IndicatorStore::list) runs for this request, as the lines
    /// `EXPLAIN` prints (`Index Scan using indicators_value on indicators …`). For operators
    /// and tests that check a filter is served by an index.
    pub async fn explain_list(
        &self,
        scope: &Scope,
        request: &ListRequest,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let statement = list_sql(Dialect::Postgres, scope, request, ticks(now));
        let sql = format!("EXPLAIN {}", statement.sql);
        let lines: Vec<String> = bind_values!(sqlx::query_scalar(&sql), &statement.binds)
            .fetch_all(&self.readers)
            .await?;
        Ok(lines)
    }

    /// Refreshes the planner's statistics (`ANALYZE indicators`), as autovacuum eventually does.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE indicators")
            .execute(&self.readers)
            .await?;
        Ok(())
    }
}

impl_indicator_store!(PostgresStore, Dialect::Postgres);
