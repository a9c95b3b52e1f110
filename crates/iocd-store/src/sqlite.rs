//! The embedded SQLite store.
//!
//! Reads go through a pool of connections (WAL lets them run beside the writer). Writes go
//! through the shared group-commit `Writer` (batch.rs), which owns the only writing connection: one
//! writer means upserts never race and our own writers never meet `SQLITE_BUSY`, and each
//! batch is one `BEGIN IMMEDIATE … COMMIT` with one fsync.

use std::str::FromStr;
use std::time::Duration;

use iocd_domain::time::Timestamp;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

use crate::authority::impl_certificate_authority_store;
use crate::identity::impl_identity_store;
use crate::indicator_store::impl_indicator_store;
use crate::listing::{bind_values, list_sql};
use crate::protocol::impl_write_connection;
use crate::rows::ticks;
use crate::writer::Writer;
use crate::{ChangeLogging, ListRequest, Scope, StoreError, StoreOptions};
use iocd_odata::Dialect;

pub struct SqliteStore {
    readers: SqlitePool,
    writer: Writer,
    /// For an in-memory store: a connection held open for the store's life, because SQLite
    /// frees a shared in-memory database when its last connection closes.
    _keep_alive: Option<std::sync::Mutex<SqliteConnection>>,
}

/// The URL that names an in-memory store (`iocd serve --in-memory`).
pub const IN_MEMORY_URL: &str = "sqlite::memory:";

pub(crate) struct SqliteWriter {
    conn: SqliteConnection,
}

impl SqliteWriter {
    pub(crate) fn new(conn: SqliteConnection) -> Self {
        SqliteWriter { conn }
    }
}

impl_identity_store!(SqliteStore);
crate::users::impl_user_store!(SqliteStore);
impl_certificate_authority_store!(SqliteStore);

impl_write_connection!(SqliteWriter, begin_immediate, batched);

/// The fast path's batched statements on SQLite: each batch's keys or rows go in as one JSON
/// text, so each is one statement of one shape, whatever the batch size.
mod batched {
    use iocd_domain::{ChangeEntry, Indicator};
    use sqlx::SqliteConnection;

    use crate::rows::IndicatorRow;
    use crate::sql::sqlite as sql;

    fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
        serde_json::to_string(value).expect("keys, ids and rows serialise")
    }

    pub(super) async fn fetch_by_values(
        conn: &mut SqliteConnection,
        tenant: &str,
        indicator_type: &str,
        value_keys: &[&str],
    ) -> Result<Vec<IndicatorRow>, sqlx::Error> {
        sqlx::query_as(&sql::SELECT_BY_VALUES)
            .bind(tenant)
            .bind(indicator_type)
            .bind(json(value_keys))
            .fetch_all(conn)
            .await
    }

    pub(super) async fn fetch_by_ids(
        conn: &mut SqliteConnection,
        tenant: &str,
        ids: &[i64],
    ) -> Result<Vec<IndicatorRow>, sqlx::Error> {
        sqlx::query_as(&sql::SELECT_BY_IDS)
            .bind(tenant)
            .bind(json(ids))
            .fetch_all(conn)
            .await
    }

    pub(super) async fn delete_many(
        conn: &mut SqliteConnection,
        tenant: &str,
        ids: &[i64],
    ) -> Result<(), sqlx::Error> {
        sqlx::query(sql::DELETE_BY_IDS)
            .bind(tenant)
            .bind(json(ids))
            .execute(conn)
            .await
            .map(|_| ())
    }

    pub(super) async fn append_changes(
        conn: &mut SqliteConnection,
        tenant: &str,
        entries: &[ChangeEntry],
    ) -> Result<(), sqlx::Error> {
        let mut rest = entries;
        for size in crate::sql::statement_sizes(entries.len(), sql::EXACT_CHANGE_ROWS) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut query = sqlx::query(sql::insert_changes(size));
            for entry in chunk {
                query = sql::bind_change(query, tenant, entry);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    pub(super) async fn upsert_many(
        conn: &mut SqliteConnection,
        tenant: &str,
        indicators: &[Indicator],
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<serde_json::Value> = indicators.iter().map(sql::indicator_json).collect();
        sqlx::query(&sql::UPSERT)
            .bind(tenant)
            .bind(json(&rows))
            .execute(conn)
            .await
            .map(|_| ())
    }
}

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

/// Migrates the database, then opens the writing connection. The writer is a connection of its
/// own, opened after migrating: a connection reads the planner statistics (sqlite_stat1) when it
/// loads the schema, and the one that ran the migrations still holds those of the empty
/// database, which would send the writer's batched key lookups through a scan of the tenant.
async fn migrate_then_connect(
    options: &SqliteConnectOptions,
) -> Result<SqliteConnection, StoreError> {
    let mut migrating = options.connect().await?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut migrating)
        .await?;
    migrating.close().await?;
    // The writer touches every index of every row it writes; a larger page cache than SQLite's
    // 2 MiB default keeps their upper levels in memory instead of re-reading them per batch.
    // A batch's multi-row statements each keep a statement journal (to undo that statement
    // alone); in memory rather than in a temporary file, since it never outlives the statement
    // and is no part of durability (the WAL is). Profiled, the file cost a tenth of the
    // writer's time.
    let writer = options
        .clone()
        .pragma("cache_size", format!("-{}", WRITER_CACHE_KIB))
        .pragma("temp_store", "MEMORY");
    Ok(writer.connect().await?)
}

/// The writer's SQLite page cache, in KiB.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://iocd.db`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`SqliteStore::open`] with options.
    pub async fn open_with(url: &str, store_options: StoreOptions) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before anyone is told it succeeded.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .disable_statement_logging();
        let conn = migrate_then_connect(&options).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            readers,
            writer: Writer::spawn(SqliteWriter::new(conn), store_options.change_log),
            _keep_alive: None,
        })
    }

    /// A store that lives only as long as this value: a SQLite database in memory (SQLite's
    /// `memdb` VFS, one database shared by the writer and the readers of this process), with
    /// the same schema, writer and statements as on disk. Without a WAL (memdb has no shared
    /// memory) readers and the writer take turns through SQLite's locks and the busy timeout.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Names starting with '/' are shared by the connections of this process.
        let name = format!("/iocd-memory-{}-{n}", std::process::id());
        let options = SqliteConnectOptions::new()
            .filename(&name)
            .vfs("memdb")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Memory)
            .synchronous(SqliteSynchronous::Off)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .disable_statement_logging();
        let keep_alive = options.connect().await?;
        let conn = migrate_then_connect(&options).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            readers,
            writer: Writer::spawn(SqliteWriter::new(conn), ChangeLogging::On),
            _keep_alive: Some(std::sync::Mutex::new(keep_alive)),
        })
    }

    /// The query plan of the statement [`IndicatorStore::list`](crate::IndicatorStore::list) runs for this request, one
    /// `EXPLAIN QUERY PLAN` detail line per step (`SEARCH indicators USING INDEX …`). For
    /// operators and tests that check a filter is served by an index.
    pub async fn explain_list(
        &self,
        scope: &Scope,
        request: &ListRequest,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let statement = list_sql(Dialect::Sqlite, scope, request, ticks(now));
        let sql = format!("EXPLAIN QUERY PLAN {}", statement.sql);
        let rows = bind_values!(sqlx::query(&sql), &statement.binds)
            .fetch_all(&self.readers)
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect())
    }
}

impl_indicator_store!(SqliteStore, Dialect::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    async fn plan(conn: &mut SqliteConnection, sql: &str, binds: &[&str]) -> Vec<String> {
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        query
            .fetch_all(conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect()
    }

    /// The writer's batched statements must search the upsert key's index or the primary key
    /// on a database it has just created, never walk the tenant's rows (which one stale
    /// planner statistic once made the key lookup do).
    #[tokio::test]
    async fn the_writers_batched_statements_search_their_keys_on_a_new_database() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let mut writer = migrate_then_connect(&options).await.unwrap();
        let by_values = plan(
            &mut writer,
            &crate::sql::sqlite::SELECT_BY_VALUES,
            &["tenant", "DomainName", r#"["a.example","b.example"]"#],
        )
        .await;
        assert_eq!(
            by_values[0],
            "SEARCH indicators USING INDEX sqlite_autoindex_indicators_2 \
             (tenant_id=? AND indicator_type=? AND value_key=?)"
        );
        for sql in [
            &*crate::sql::sqlite::SELECT_BY_IDS,
            crate::sql::sqlite::DELETE_BY_IDS,
        ] {
            let by_ids = plan(&mut writer, sql, &["tenant", "[1,2,3]"]).await;
            assert_eq!(
                by_ids[0], "SEARCH indicators USING PRIMARY KEY (tenant_id=? AND id=?)",
                "{sql}"
            );
        }
    }
}
