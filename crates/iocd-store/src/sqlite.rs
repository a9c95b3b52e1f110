//! The embedded SQLite store.
//!
//! Reads go through a pool of connections (WAL lets them run beside a writer). Every write
//! goes to one writer task that owns the only writing connection: it drains whatever commands
//! are queued, runs them in one `BEGIN IMMEDIATE` transaction with a savepoint per command,
//! commits once (one fsync for the whole group) and only then answers each caller. This makes
//! upserts race-free without retry loops, never meets `SQLITE_BUSY` between our own writers,
//! and turns many concurrent small writes into few durable commits.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use iocd_domain::time::Timestamp;
use iocd_domain::{Actor, Indicator, Submission};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::rows::{bind_indicator, ticks, IndicatorRow, COLUMNS, INSERT, UPDATE};
use crate::{
    DeleteOutcome, IndicatorStore, ItemError, ItemOutcome, ItemResult, Scope, StoreError,
    WriteLimits,
};

/// Most commands folded into one transaction; bounds the latency a single commit adds.
const MAX_COMMANDS_PER_COMMIT: usize = 256;
const QUEUE_DEPTH: usize = 4096;
const ACTIVE: &str = "(expiration_time IS NULL OR expiration_time > $2)";

pub struct SqliteStore {
    readers: SqlitePool,
    writer: mpsc::Sender<WriteCommand>,
}

enum WriteCommand {
    Submit {
        scope: Scope,
        actor: Actor,
        items: Vec<Submission>,
        limits: WriteLimits,
        now: Timestamp,
        reply: oneshot::Sender<Result<Vec<ItemResult>, StoreError>>,
    },
    Delete {
        scope: Scope,
        ids: Vec<i64>,
        now: Timestamp,
        reply: oneshot::Sender<Result<DeleteOutcome, StoreError>>,
    },
}

/// A command's result, held until the transaction it ran in has committed.
enum PendingReply {
    Submit(
        oneshot::Sender<Result<Vec<ItemResult>, StoreError>>,
        Result<Vec<ItemResult>, StoreError>,
    ),
    Delete(
        oneshot::Sender<Result<DeleteOutcome, StoreError>>,
        Result<DeleteOutcome, StoreError>,
    ),
}

impl PendingReply {
    fn send(self) {
        // A caller that went away (client disconnected) no longer needs its answer.
        match self {
            PendingReply::Submit(tx, r) => drop(tx.send(r)),
            PendingReply::Delete(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self, why: &str) {
        let err = || StoreError::CommitFailed(why.to_string());
        match self {
            PendingReply::Submit(tx, _) => drop(tx.send(Err(err()))),
            PendingReply::Delete(tx, _) => drop(tx.send(Err(err()))),
        }
    }
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
        let mut writer = options.connect().await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut writer)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_writer(writer, rx));
        Ok(SqliteStore {
            readers,
            writer: tx,
        })
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteCommand,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(make(tx))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

async fn run_writer(mut conn: SqliteConnection, mut queue: mpsc::Receiver<WriteCommand>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_COMMANDS_PER_COMMIT {
            match queue.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch).await;
    }
    let _ = conn.close().await;
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(&mut *conn).await.map(|_| ())
}

async fn run_batch(conn: &mut SqliteConnection, batch: Vec<WriteCommand>) {
    let mut replies = Vec::with_capacity(batch.len());
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        tracing::error!(error = %e, "could not start a write transaction");
        for cmd in batch {
            pending(cmd, None).fail(&e.to_string());
        }
        return;
    }
    for cmd in batch {
        let outcome = run_in_savepoint(conn, &cmd).await;
        replies.push(pending(cmd, Some(outcome)));
    }
    match exec(conn, "COMMIT").await {
        Ok(()) => replies.into_iter().for_each(PendingReply::send),
        Err(e) => {
            tracing::error!(error = %e, "commit failed; the batch was rolled back");
            let _ = exec(conn, "ROLLBACK").await;
            replies.into_iter().for_each(|r| r.fail(&e.to_string()));
        }
    }
}

enum CommandResult {
    Submit(Result<Vec<ItemResult>, StoreError>),
    Delete(Result<DeleteOutcome, StoreError>),
}

fn pending(cmd: WriteCommand, outcome: Option<CommandResult>) -> PendingReply {
    match (cmd, outcome) {
        (WriteCommand::Submit { reply, .. }, Some(CommandResult::Submit(r))) => {
            PendingReply::Submit(reply, r)
        }
        (WriteCommand::Submit { reply, .. }, _) => {
            PendingReply::Submit(reply, Err(StoreError::WriterGone))
        }
        (WriteCommand::Delete { reply, .. }, Some(CommandResult::Delete(r))) => {
            PendingReply::Delete(reply, r)
        }
        (WriteCommand::Delete { reply, .. }, _) => {
            PendingReply::Delete(reply, Err(StoreError::WriterGone))
        }
    }
}

/// Runs one command so that a database error undoes that command only, not its batch-mates.
async fn run_in_savepoint(conn: &mut SqliteConnection, cmd: &WriteCommand) -> CommandResult {
    if let Err(e) = exec(conn, "SAVEPOINT command").await {
        return match cmd {
            WriteCommand::Submit { .. } => CommandResult::Submit(Err(e.into())),
            WriteCommand::Delete { .. } => CommandResult::Delete(Err(e.into())),
        };
    }
    let (result, failed) = match cmd {
        WriteCommand::Submit {
            scope,
            actor,
            items,
            limits,
            now,
            ..
        } => {
            let r = submit_items(conn, scope, actor, items, *limits, *now).await;
            let failed = r.is_err();
            (CommandResult::Submit(r), failed)
        }
        WriteCommand::Delete {
            scope, ids, now, ..
        } => {
            let r = delete_ids(conn, scope, ids, *now).await;
            let failed = r.is_err();
            (CommandResult::Delete(r), failed)
        }
    };
    if failed {
        let _ = exec(conn, "ROLLBACK TO command").await;
    }
    let _ = exec(conn, "RELEASE command").await;
    result
}

async fn submit_items(
    conn: &mut SqliteConnection,
    scope: &Scope,
    actor: &Actor,
    items: &[Submission],
    limits: WriteLimits,
    now: Timestamp,
) -> Result<Vec<ItemResult>, StoreError> {
    let tenant = scope.tenant_id.as_str();
    let select_by_key = format!(
        "SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND indicator_type = $2 AND value_key = $3 AND action = $4"
    );
    // Counted once per command, then tracked, so a 500-item import costs one COUNT.
    let mut active_count: Option<u64> = None;
    let mut results = Vec::with_capacity(items.len());
    for sub in items {
        let existing: Option<IndicatorRow> = sqlx::query_as(&select_by_key)
            .bind(tenant)
            .bind(sub.indicator_type.as_str())
            .bind(&sub.value_key)
            .bind(sub.action.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = existing {
            let mut indicator = Indicator::try_from(row)?;
            if indicator.is_active(now) {
                if scope
                    .owner
                    .as_ref()
                    .is_some_and(|owner| *owner != indicator.created_by)
                {
                    results.push(Err(ItemError::NotOwner { id: indicator.id }));
                    continue;
                }
                indicator.apply_update(sub, actor, now);
                bind_indicator!(sqlx::query(UPDATE), tenant, &indicator)
                    .execute(&mut *conn)
                    .await?;
                results.push(Ok(ItemOutcome::Updated(indicator)));
                continue;
            }
            // An expired indicator is gone as far as clients can tell; its key starts afresh.
            sqlx::query("DELETE FROM indicators WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(indicator.id)
                .execute(&mut *conn)
                .await?;
        }
        if let Some(limit) = limits.max_active_indicators {
            let count = match active_count {
                Some(c) => c,
                None => count_active_on(&mut *conn, tenant, now).await?,
            };
            if count >= limit {
                active_count = Some(count);
                results.push(Err(ItemError::QuotaExceeded { limit }));
                continue;
            }
            active_count = Some(count + 1);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tenants (tenant_id, next_indicator_id) VALUES ($1, 1) \
             ON CONFLICT (tenant_id) DO UPDATE SET next_indicator_id = tenants.next_indicator_id + 1 \
             RETURNING next_indicator_id",
        )
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await?;
        let indicator = Indicator::create(id, sub, actor, now);
        bind_indicator!(sqlx::query(INSERT), tenant, &indicator)
            .execute(&mut *conn)
            .await?;
        results.push(Ok(ItemOutcome::Created(indicator)));
    }
    Ok(results)
}

async fn count_active_on(
    conn: &mut SqliteConnection,
    tenant: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM indicators WHERE tenant_id = $1 AND {ACTIVE}"
    ))
    .bind(tenant)
    .bind(ticks(now))
    .fetch_one(&mut *conn)
    .await?;
    Ok(n as u64)
}

async fn delete_ids(
    conn: &mut SqliteConnection,
    scope: &Scope,
    ids: &[i64],
    now: Timestamp,
) -> Result<DeleteOutcome, StoreError> {
    let mut unique: Vec<i64> = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let visible = format!(
        "SELECT id FROM indicators WHERE tenant_id = $1 AND {ACTIVE} AND id = $3 AND ($4 IS NULL OR created_by = $4)"
    );
    let mut missing = Vec::new();
    for &id in &unique {
        let found: Option<i64> = sqlx::query_scalar(&visible)
            .bind(&scope.tenant_id)
            .bind(ticks(now))
            .bind(id)
            .bind(scope.owner.as_deref())
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            missing.push(id);
        }
    }
    if !missing.is_empty() {
        return Ok(DeleteOutcome::NotFound(missing));
    }
    for &id in &unique {
        sqlx::query("DELETE FROM indicators WHERE tenant_id = $1 AND id = $2")
            .bind(&scope.tenant_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(DeleteOutcome::Deleted(unique.len()))
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
        self.send(|reply| WriteCommand::Submit {
            scope: scope.clone(),
            actor: actor.clone(),
            items,
            limits,
            now,
            reply,
        })
        .await
    }

    async fn get(
        &self,
        scope: &Scope,
        id: i64,
        now: Timestamp,
    ) -> Result<Option<Indicator>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND {ACTIVE} AND id = $3 AND ($4 IS NULL OR created_by = $4)"
        );
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
        self.send(|reply| WriteCommand::Delete {
            scope: scope.clone(),
            ids: ids.to_vec(),
            now,
            reply,
        })
        .await
    }

    async fn list(
        &self,
        scope: &Scope,
        skip: u64,
        take: u64,
        now: Timestamp,
    ) -> Result<Vec<Indicator>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM indicators WHERE tenant_id = $1 AND {ACTIVE} AND ($3 IS NULL OR created_by = $3) \
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
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM indicators WHERE tenant_id = $1 AND {ACTIVE}"
        ))
        .bind(tenant_id)
        .bind(ticks(now))
        .fetch_one(&self.readers)
        .await?;
        Ok(n as u64)
    }
}
