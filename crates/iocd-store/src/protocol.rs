//! The statements a writer runs, behind [`WriteConnection`]: what the group-commit writer
//! ([`crate::writer`]) and its batches ([`crate::batch`]) ask of a database. The order of reads
//! and writes, the upsert rules, the quota and the ownership checks live in [`crate::batch`] once;
//! backends supply only the statements.

use async_trait::async_trait;
use iocd_domain::{ChangeEntry, Indicator};

use crate::rows::IndicatorRow;
use crate::{DeleteOutcome, ItemResult, StoreError};

/// One writing connection. Every method but `begin` runs inside the transaction it opened.
#[async_trait]
pub(crate) trait WriteConnection: Send + 'static {
    /// Opens the batch's transaction. `tenants` (sorted, unique) are the tenants it writes; a
    /// backend shared by several servers locks them here so their writes are serialised.
    async fn begin(&mut self, tenants: &[String]) -> Result<(), sqlx::Error>;
    /// Runs a statement without results (`SAVEPOINT`, `ROLLBACK`, …).
    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error>;
    async fn commit(&mut self) -> Result<(), sqlx::Error>;
    async fn count_active(&mut self, tenant: &str, now_ticks: i64) -> Result<i64, sqlx::Error>;
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
    /// The tenant's counters (0 before their first use).
    async fn counters(&mut self, tenant: &str) -> Result<Counters, sqlx::Error>;
    async fn set_counters(&mut self, tenant: &str, counters: Counters) -> Result<(), sqlx::Error>;
    /// Appends the entries (numbered already) to the tenant's change log.
    async fn append_changes(
        &mut self,
        tenant: &str,
        entries: &[ChangeEntry],
    ) -> Result<(), sqlx::Error>;
    async fn delete_many(&mut self, tenant: &str, ids: &[i64]) -> Result<(), sqlx::Error>;
    /// Inserts the indicators, rewriting those whose id exists already.
    async fn upsert_many(&mut self, tenant: &str, rows: &[Indicator]) -> Result<(), sqlx::Error>;
}

/// A tenant's counters, kept in its `tenants` row and moved only inside write transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// The last indicator id handed out.
    pub last_id: i64,
    /// The last change-log sequence number handed out.
    pub last_seq: i64,
}

/// What one command returned, before its caller is answered.
#[derive(Debug)]
pub(crate) enum Outcome {
    Submit(Result<Vec<ItemResult>, StoreError>),
    Delete(Result<DeleteOutcome, StoreError>),
    /// How many expired indicators were removed.
    Expire(Result<usize, StoreError>),
}

impl Outcome {
    /// The answer of a command that failed with `error`.
    pub(crate) fn failed(command: &crate::batch::Command<'_>, error: StoreError) -> Outcome {
        use crate::batch::Command;
        match command {
            Command::Submit { .. } => Outcome::Submit(Err(error)),
            Command::Delete { .. } => Outcome::Delete(Err(error)),
            Command::Expire { .. } => Outcome::Expire(Err(error)),
        }
    }
}

/// Implements [`WriteConnection`] for a wrapper struct with a `conn` field, whose sqlx
/// connection type runs the shared SQL unchanged. What differs between databases is passed in:
/// `begin`, and a module of the batched statements (`fetch_by_values`, `fetch_by_ids`,
/// `delete_many`, `upsert_many`, `append_changes` on the connection).
macro_rules! impl_write_connection {
    ($writer:ty, $begin:path, $batched:ident) => {
        #[async_trait::async_trait]
        impl $crate::protocol::WriteConnection for $writer {
            async fn begin(&mut self, tenants: &[String]) -> Result<(), sqlx::Error> {
                $begin(self, tenants).await
            }

            async fn commit(&mut self) -> Result<(), sqlx::Error> {
                sqlx::query("COMMIT")
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
            }

            async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
                sqlx::query(sql).execute(&mut self.conn).await.map(|_| ())
            }

            async fn count_active(
                &mut self,
                tenant: &str,
                now_ticks: i64,
            ) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar($crate::sql::COUNT_ACTIVE)
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

            async fn counters(
                &mut self,
                tenant: &str,
            ) -> Result<$crate::protocol::Counters, sqlx::Error> {
                let row: Option<(i64, i64)> = sqlx::query_as($crate::sql::COUNTERS)
                    .bind(tenant)
                    .fetch_optional(&mut self.conn)
                    .await?;
                let (last_id, last_seq) = row.unwrap_or((0, 0));
                Ok($crate::protocol::Counters { last_id, last_seq })
            }

            async fn set_counters(
                &mut self,
                tenant: &str,
                counters: $crate::protocol::Counters,
            ) -> Result<(), sqlx::Error> {
                sqlx::query($crate::sql::SET_COUNTERS)
                    .bind(tenant)
                    .bind(counters.last_id)
                    .bind(counters.last_seq)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ())
            }

            async fn append_changes(
                &mut self,
                tenant: &str,
                entries: &[iocd_domain::ChangeEntry],
            ) -> Result<(), sqlx::Error> {
                $batched::append_changes(&mut self.conn, tenant, entries).await
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
        }
    };
}
pub(crate) use impl_write_connection;
