//! The write protocol both databases share: how a batch of submissions or a delete turns into
//! statements, applying the domain's upsert rules. Backends supply the statements through
//! [`WriteConnection`]; the order of reads and writes, the quota and the ownership checks live
//! here once.

use async_trait::async_trait;
use iocd_domain::time::Timestamp;
use iocd_domain::{Actor, Indicator, Submission};

use crate::batch::Command;
use crate::rows::{ticks, IndicatorRow};
use crate::{DeleteOutcome, ItemError, ItemOutcome, ItemResult, Scope, StoreError, WriteLimits};

/// One writing connection. Every method runs inside the transaction [`begin`](Self::begin) opened.
#[async_trait]
pub(crate) trait WriteConnection: Send + 'static {
    /// Opens the batch's transaction. `tenants` (sorted, unique) are the tenants it writes; a
    /// backend shared by several servers locks them here so their writes are serialised.
    async fn begin(&mut self, tenants: &[String]) -> Result<(), sqlx::Error>;
    /// Runs a statement without results (`SAVEPOINT`, `ROLLBACK`, …).
    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error>;
    /// Writes back the id counters the transaction used, then commits it.
    async fn commit(&mut self) -> Result<(), sqlx::Error>;
    async fn find_by_key(
        &mut self,
        tenant: &str,
        sub: &Submission,
    ) -> Result<Option<IndicatorRow>, sqlx::Error>;
    async fn insert(&mut self, tenant: &str, indicator: &Indicator) -> Result<(), sqlx::Error>;
    async fn update(&mut self, tenant: &str, indicator: &Indicator) -> Result<(), sqlx::Error>;
    async fn remove(&mut self, tenant: &str, id: i64) -> Result<(), sqlx::Error>;
    /// Takes the tenant's next indicator id.
    async fn next_id(&mut self, tenant: &str) -> Result<i64, sqlx::Error>;
    async fn count_active(&mut self, tenant: &str, now_ticks: i64) -> Result<i64, sqlx::Error>;
    /// Whether `id` is an active indicator the scope may see.
    async fn is_visible(
        &mut self,
        scope: &Scope,
        id: i64,
        now_ticks: i64,
    ) -> Result<bool, sqlx::Error>;

    // The batched statements of the fast path (crate::batch): each call is a few statements
    // whatever the number of rows.

    /// Rows of a tenant and indicator type whose value key is one of `value_keys`.
    async fn fetch_by_values(
        &mut self,
        tenant: &str,
        indicator_type: &str,
        value_keys: &[&str],
    ) -> Result<Vec<IndicatorRow>, sqlx::Error>;
    /// Rows of a tenant whose id is one of `ids`, expired or not.
    async fn fetch_by_ids(
        &mut self,
        tenant: &str,
        ids: &[i64],
    ) -> Result<Vec<IndicatorRow>, sqlx::Error>;
    /// The last indicator id handed out in the tenant (0 before its first).
    async fn last_id(&mut self, tenant: &str) -> Result<i64, sqlx::Error>;
    async fn set_last_id(&mut self, tenant: &str, last: i64) -> Result<(), sqlx::Error>;
    async fn delete_many(&mut self, tenant: &str, ids: &[i64]) -> Result<(), sqlx::Error>;
    /// Inserts the indicators, rewriting whole those whose id exists already.
    async fn upsert_many(&mut self, tenant: &str, rows: &[Indicator]) -> Result<(), sqlx::Error>;
}

/// What one command returned, before its caller is answered.
#[derive(Debug)]
pub(crate) enum Outcome {
    Submit(Result<Vec<ItemResult>, StoreError>),
    Delete(Result<DeleteOutcome, StoreError>),
}

/// The slow path: opens the batch's transaction and runs every command in it, in order, each
/// statement by statement in a savepoint of its own, so a database error undoes only the
/// command that met it. Leaves the transaction open.
pub(crate) async fn run_one_by_one<C: WriteConnection>(
    conn: &mut C,
    tenants: &[String],
    commands: &[Command<'_>],
) -> Result<Vec<Outcome>, sqlx::Error> {
    conn.begin(tenants).await?;
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        outcomes.push(run_in_savepoint(conn, command).await);
    }
    Ok(outcomes)
}

async fn run_in_savepoint<C: WriteConnection>(conn: &mut C, command: &Command<'_>) -> Outcome {
    let outcome = match conn.execute("SAVEPOINT command").await {
        Ok(()) => run_command(conn, command).await,
        Err(e) => Err(e.into()),
    };
    if outcome.is_err() {
        let _ = conn.execute("ROLLBACK TO SAVEPOINT command").await;
    }
    let _ = conn.execute("RELEASE SAVEPOINT command").await;
    match (command, outcome) {
        (Command::Submit { .. }, Ok(outcome)) => outcome,
        (Command::Submit { .. }, Err(e)) => Outcome::Submit(Err(e)),
        (Command::Delete { .. }, Ok(outcome)) => outcome,
        (Command::Delete { .. }, Err(e)) => Outcome::Delete(Err(e)),
    }
}

async fn run_command<C: WriteConnection>(
    conn: &mut C,
    command: &Command<'_>,
) -> Result<Outcome, StoreError> {
    Ok(match *command {
        Command::Submit {
            scope,
            actor,
            items,
            limits,
            now,
        } => Outcome::Submit(Ok(
            submit_items(conn, scope, actor, items, limits, now).await?
        )),
        Command::Delete { scope, ids, now } => {
            Outcome::Delete(Ok(delete_ids(conn, scope, ids, now).await?))
        }
    })
}

async fn submit_items<C: WriteConnection>(
    conn: &mut C,
    scope: &Scope,
    actor: &Actor,
    items: &[Submission],
    limits: WriteLimits,
    now: Timestamp,
) -> Result<Vec<ItemResult>, StoreError> {
    let tenant = scope.tenant_id.as_str();
    // Counted once per command, then tracked, so a 500-item import costs one COUNT.
    let mut active_count: Option<u64> = None;
    let mut results = Vec::with_capacity(items.len());
    for sub in items {
        if let Some(row) = conn.find_by_key(tenant, sub).await? {
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
                conn.update(tenant, &indicator).await?;
                if !indicator.is_active(now) {
                    // Updated to an expiration time already past: it no longer counts.
                    active_count = active_count.map(|c| c.saturating_sub(1));
                }
                results.push(Ok(ItemOutcome::Updated(indicator)));
                continue;
            }
            // An expired indicator is gone as far as clients can tell; its key starts afresh.
            conn.remove(tenant, indicator.id).await?;
        }
        if let Some(limit) = limits.max_active_indicators {
            let count = match active_count {
                Some(c) => c,
                None => conn.count_active(tenant, ticks(now)).await? as u64,
            };
            active_count = Some(count);
            if count >= limit {
                results.push(Err(ItemError::QuotaExceeded { limit }));
                continue;
            }
        }
        let id = conn.next_id(tenant).await?;
        let indicator = Indicator::create(id, sub, actor, now);
        conn.insert(tenant, &indicator).await?;
        if indicator.is_active(now) {
            // One created with an expiration time already past is stored but not counted.
            active_count = active_count.map(|c| c + 1);
        }
        results.push(Ok(ItemOutcome::Created(indicator)));
    }
    Ok(results)
}

/// Deletes all of `ids` or, if any is not an active indicator visible to the scope, none.
async fn delete_ids<C: WriteConnection>(
    conn: &mut C,
    scope: &Scope,
    ids: &[i64],
    now: Timestamp,
) -> Result<DeleteOutcome, StoreError> {
    let mut unique: Vec<i64> = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut missing = Vec::new();
    for &id in &unique {
        if !conn.is_visible(scope, id, ticks(now)).await? {
            missing.push(id);
        }
    }
    if !missing.is_empty() {
        return Ok(DeleteOutcome::NotFound(missing));
    }
    for &id in &unique {
        conn.remove(&scope.tenant_id, id).await?;
    }
    Ok(DeleteOutcome::Deleted(unique.len()))
}

/// The last indicator id handed out per tenant in the open transaction. The first id a tenant
/// takes in a transaction comes from its counter row (a statement); the following ones are
/// counted here and the counter is written once, before `COMMIT`: one statement per tenant and
/// batch instead of one per created indicator. The counter rows are the transaction's (on
/// PostgreSQL locked at `begin`), so nobody else moves them meanwhile. The counter is written
/// as the highest id handed out, also ids of commands undone by a savepoint: ids leave gaps
/// on errors but are never reused.
pub(crate) type IdCounters = std::collections::HashMap<String, i64>;

/// Implements the statement methods of [`WriteConnection`] for a wrapper struct with a `conn`
/// field, whose sqlx connection type runs the shared SQL unchanged. What differs between
/// databases is passed in: `begin`, and a module of the batched statements (`fetch_by_values`,
/// `fetch_by_ids`, `delete_many`, `upsert_many` on the connection).
macro_rules! impl_write_connection {
    ($writer:ty, $begin:path, $batched:ident) => {
        #[async_trait::async_trait]
        impl $crate::protocol::WriteConnection for $writer {
            async fn begin(&mut self, tenants: &[String]) -> Result<(), sqlx::Error> {
                self.ids.clear();
                $begin(self, tenants).await
            }

            async fn commit(&mut self) -> Result<(), sqlx::Error> {
                for (tenant, last) in self.ids.drain() {
                    // An upsert: a savepoint undone may have taken the row's creation with it.
                    sqlx::query($crate::rows::SET_LAST_ID)
                        .bind(tenant)
                        .bind(last)
                        .execute(&mut self.conn)
                        .await?;
                }
                sqlx::query("COMMIT")
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
            }

            async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
                sqlx::query(sql).execute(&mut self.conn).await.map(|_| ())
            }

            async fn find_by_key(
                &mut self,
                tenant: &str,
                sub: &iocd_domain::Submission,
            ) -> Result<Option<$crate::rows::IndicatorRow>, sqlx::Error> {
                sqlx::query_as($crate::rows::SELECT_BY_KEY)
                    .bind(tenant)
                    .bind(sub.indicator_type.as_str())
                    .bind(&sub.value_key)
                    .bind(sub.action.as_str())
                    .fetch_optional(&mut self.conn)
                    .await
            }

            async fn insert(
                &mut self,
                tenant: &str,
                indicator: &iocd_domain::Indicator,
            ) -> Result<(), sqlx::Error> {
                $crate::rows::bind_indicator!(sqlx::query($crate::rows::INSERT), tenant, indicator)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
            }

            async fn update(
                &mut self,
                tenant: &str,
                indicator: &iocd_domain::Indicator,
            ) -> Result<(), sqlx::Error> {
                $crate::rows::bind_indicator!(sqlx::query($crate::rows::UPDATE), tenant, indicator)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
            }

            async fn remove(&mut self, tenant: &str, id: i64) -> Result<(), sqlx::Error> {
                sqlx::query("DELETE FROM indicators WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
            }

            async fn next_id(&mut self, tenant: &str) -> Result<i64, sqlx::Error> {
                if let Some(last) = self.ids.get_mut(tenant) {
                    *last += 1;
                    return Ok(*last);
                }
                let id: i64 = sqlx::query_scalar($crate::rows::NEXT_ID)
                    .bind(tenant)
                    .fetch_one(&mut self.conn)
                    .await?;
                self.ids.insert(tenant.to_string(), id);
                Ok(id)
            }

            async fn count_active(
                &mut self,
                tenant: &str,
                now_ticks: i64,
            ) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar($crate::rows::COUNT_ACTIVE)
                    .bind(tenant)
                    .bind(now_ticks)
                    .fetch_one(&mut self.conn)
                    .await
            }

            async fn fetch_by_values(
                &mut self,
                tenant: &str,
                indicator_type: &str,
                value_keys: &[&str],
            ) -> Result<Vec<$crate::rows::IndicatorRow>, sqlx::Error> {
                $batched::fetch_by_values(&mut self.conn, tenant, indicator_type, value_keys).await
            }

            async fn fetch_by_ids(
                &mut self,
                tenant: &str,
                ids: &[i64],
            ) -> Result<Vec<$crate::rows::IndicatorRow>, sqlx::Error> {
                $batched::fetch_by_ids(&mut self.conn, tenant, ids).await
            }

            async fn last_id(&mut self, tenant: &str) -> Result<i64, sqlx::Error> {
                let last: Option<i64> = sqlx::query_scalar($crate::rows::LAST_ID)
                    .bind(tenant)
                    .fetch_optional(&mut self.conn)
                    .await?;
                Ok(last.unwrap_or(0))
            }

            async fn set_last_id(&mut self, tenant: &str, last: i64) -> Result<(), sqlx::Error> {
                sqlx::query($crate::rows::SET_LAST_ID)
                    .bind(tenant)
                    .bind(last)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
            }

            async fn delete_many(&mut self, tenant: &str, ids: &[i64]) -> Result<(), sqlx::Error> {
                $batched::delete_many(&mut self.conn, tenant, ids).await
            }

            async fn upsert_many(
                &mut self,
                tenant: &str,
                rows: &[iocd_domain::Indicator],
            ) -> Result<(), sqlx::Error> {
                $batched::upsert_many(&mut self.conn, tenant, rows).await
            }

            async fn is_visible(
                &mut self,
                scope: &$crate::Scope,
                id: i64,
                now_ticks: i64,
            ) -> Result<bool, sqlx::Error> {
                let found: Option<i64> = sqlx::query_scalar(&$crate::rows::visible_id_sql())
                    .bind(&scope.tenant_id)
                    .bind(now_ticks)
                    .bind(id)
                    .bind(scope.owner.as_deref())
                    .fetch_optional(&mut self.conn)
                    .await?;
                Ok(found.is_some())
            }
        }
    };
}
pub(crate) use impl_write_connection;
