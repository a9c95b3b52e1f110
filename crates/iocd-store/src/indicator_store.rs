//! The [`IndicatorStore`](crate::IndicatorStore) implementation both databases share: writes go
//! to the store's group-commit writer, reads run the shared SQL on its reader pool. Only the SQL
//! dialect of the compiled OData filter differs, and is passed in.

/// Implements [`IndicatorStore`](crate::IndicatorStore) for a store struct with `readers` (a
/// sqlx pool) and `writer` ([`Writer`](crate::writer::Writer)) fields.
macro_rules! impl_indicator_store {
    ($store:ty, $dialect:expr) => {
        #[async_trait::async_trait]
        impl $crate::IndicatorStore for $store {
            async fn submit(
                &self,
                scope: &$crate::Scope,
                actor: &iocd_domain::Actor,
                items: Vec<iocd_domain::Submission>,
                limits: $crate::WriteLimits,
                now: iocd_domain::time::Timestamp,
            ) -> Result<Vec<$crate::ItemResult>, $crate::StoreError> {
                self.writer.submit(scope, actor, items, limits, now).await
            }

            async fn get(
                &self,
                scope: &$crate::Scope,
                id: i64,
                now: iocd_domain::time::Timestamp,
            ) -> Result<Option<iocd_domain::Indicator>, $crate::StoreError> {
                let sql = $crate::sql::get_visible_sql();
                let row: Option<$crate::rows::IndicatorRow> = sqlx::query_as(&sql)
                    .bind(&scope.tenant_id)
                    .bind($crate::rows::ticks(now))
                    .bind(id)
                    .bind(scope.owner.as_deref())
                    .fetch_optional(&self.readers)
                    .await?;
                row.map(iocd_domain::Indicator::try_from).transpose()
            }

            async fn delete(
                &self,
                scope: &$crate::Scope,
                actor: &iocd_domain::Actor,
                ids: &[i64],
                via: $crate::DeleteVia,
                now: iocd_domain::time::Timestamp,
            ) -> Result<$crate::DeleteOutcome, $crate::StoreError> {
                self.writer.delete(scope, actor, ids, via, now).await
            }

            async fn expire(
                &self,
                tenant_id: &str,
                ids: &[i64],
                now: iocd_domain::time::Timestamp,
            ) -> Result<usize, $crate::StoreError> {
                self.writer.expire(tenant_id, ids, now).await
            }

            async fn changes_after(
                &self,
                scope: &$crate::Scope,
                since: i64,
                limit: u32,
            ) -> Result<Vec<iocd_domain::ChangeEntry>, $crate::StoreError> {
                let sql = $crate::sql::changes_after_sql();
                let rows: Vec<$crate::rows::ChangeRow> = sqlx::query_as(&sql)
                    .bind(&scope.tenant_id)
                    .bind(scope.owner.as_deref())
                    .bind(since)
                    .bind(i64::from(limit.min($crate::MAX_CHANGES_PER_READ)))
                    .fetch_all(&self.readers)
                    .await?;
                rows.into_iter()
                    .map(iocd_domain::ChangeEntry::try_from)
                    .collect()
            }

            async fn history(
                &self,
                scope: &$crate::Scope,
                id: i64,
            ) -> Result<Vec<iocd_domain::ChangeEntry>, $crate::StoreError> {
                let sql = $crate::sql::history_sql();
                let rows: Vec<$crate::rows::ChangeRow> = sqlx::query_as(&sql)
                    .bind(&scope.tenant_id)
                    .bind(scope.owner.as_deref())
                    .bind(id)
                    .fetch_all(&self.readers)
                    .await?;
                rows.into_iter()
                    .map(iocd_domain::ChangeEntry::try_from)
                    .collect()
            }

            async fn tenants(&self) -> Result<Vec<String>, $crate::StoreError> {
                Ok(sqlx::query_scalar($crate::sql::TENANT_IDS)
                    .fetch_all(&self.readers)
                    .await?)
            }

            async fn expired_ids(
                &self,
                tenant_id: &str,
                now: iocd_domain::time::Timestamp,
                limit: u32,
            ) -> Result<Vec<i64>, $crate::StoreError> {
                Ok(sqlx::query_scalar($crate::sql::EXPIRED_IDS)
                    .bind(tenant_id)
                    .bind($crate::rows::ticks(now))
                    .bind(i64::from(limit))
                    .fetch_all(&self.readers)
                    .await?)
            }

            async fn trim_change_log(
                &self,
                tenant_id: &str,
                retention: &$crate::Retention,
                now: iocd_domain::time::Timestamp,
                limit: u32,
            ) -> Result<u64, $crate::StoreError> {
                let last: Option<i64> = sqlx::query_scalar($crate::sql::LAST_CHANGE_SEQ)
                    .bind(tenant_id)
                    .fetch_optional(&self.readers)
                    .await?;
                let keep_from = match (retention.max_entries, last) {
                    (Some(n), Some(last)) => {
                        last.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX))
                    }
                    _ => i64::MIN,
                };
                let cutoff = retention
                    .max_age
                    .and_then(|age| chrono::Duration::from_std(age).ok())
                    .and_then(|age| now.checked_sub_signed(age))
                    .map_or(i64::MIN, $crate::rows::ticks);
                let done = sqlx::query($crate::sql::TRIM_CHANGES)
                    .bind(tenant_id)
                    .bind(keep_from)
                    .bind(cutoff)
                    .bind(i64::from(limit))
                    .execute(&self.readers)
                    .await?;
                Ok(done.rows_affected())
            }

            fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
                self.writer.commits()
            }

            async fn list(
                &self,
                scope: &$crate::Scope,
                request: &$crate::ListRequest,
                now: iocd_domain::time::Timestamp,
            ) -> Result<$crate::ListPage, $crate::StoreError> {
                let statement =
                    $crate::listing::list_sql($dialect, scope, request, $crate::rows::ticks(now));
                let rows: Vec<$crate::rows::IndicatorRow> =
                    $crate::listing::bind_values!(sqlx::query_as(&statement.sql), &statement.binds)
                        .fetch_all(&self.readers)
                        .await?;
                let indicators = rows
                    .into_iter()
                    .map(iocd_domain::Indicator::try_from)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok($crate::listing::into_page(indicators, request.take))
            }

            async fn count_active(
                &self,
                tenant_id: &str,
                now: iocd_domain::time::Timestamp,
            ) -> Result<u64, $crate::StoreError> {
                let n: i64 = sqlx::query_scalar($crate::sql::COUNT_ACTIVE)
                    .bind(tenant_id)
                    .bind($crate::rows::ticks(now))
                    .fetch_one(&self.readers)
                    .await?;
                Ok(n as u64)
            }

            async fn change_sequences(&self) -> Result<Vec<(String, i64)>, $crate::StoreError> {
                Ok(sqlx::query_as($crate::matching::sql::SEQUENCES)
                    .fetch_all(&self.readers)
                    .await?)
            }

            async fn index_sequence(
                &self,
                tenant_id: &str,
            ) -> Result<$crate::IndexSequence, $crate::StoreError> {
                let sequence: Option<i64> = sqlx::query_scalar($crate::sql::LAST_CHANGE_SEQ)
                    .bind(tenant_id)
                    .fetch_optional(&self.readers)
                    .await?;
                let sequence = sequence.unwrap_or(0);
                let changed: Option<i64> = sqlx::query_scalar($crate::matching::sql::CHANGE_TIME)
                    .bind(tenant_id)
                    .bind(sequence)
                    .fetch_optional(&self.readers)
                    .await?;
                Ok($crate::IndexSequence {
                    sequence,
                    changed_at: changed.map(iocd_domain::time::from_ticks),
                })
            }

            async fn index_rows(
                &self,
                tenant_id: &str,
                after_id: i64,
                limit: u32,
            ) -> Result<Vec<$crate::IndexRow>, $crate::StoreError> {
                let rows: Vec<$crate::matching::IndexRowText> =
                    sqlx::query_as($crate::matching::sql::ROWS)
                        .bind(tenant_id)
                        .bind(after_id)
                        .bind(i64::from(limit))
                        .fetch_all(&self.readers)
                        .await?;
                rows.into_iter().map($crate::IndexRow::try_from).collect()
            }

            async fn index_changes(
                &self,
                tenant_id: &str,
                since: i64,
                limit: u32,
            ) -> Result<Vec<$crate::IndexChange>, $crate::StoreError> {
                let rows: Vec<$crate::matching::IndexChangeText> =
                    sqlx::query_as($crate::matching::sql::CHANGES)
                        .bind(tenant_id)
                        .bind(since)
                        .bind(i64::from(limit))
                        .fetch_all(&self.readers)
                        .await?;
                rows.into_iter()
                    .map($crate::IndexChange::try_from)
                    .collect()
            }

            async fn get_many(
                &self,
                scope: &$crate::Scope,
                ids: &[i64],
                now: iocd_domain::time::Timestamp,
            ) -> Result<Vec<iocd_domain::Indicator>, $crate::StoreError> {
                let mut found = Vec::with_capacity(ids.len());
                for chunk in ids.chunks($crate::matching::sql::GET_MANY_CHUNK) {
                    let sql = $crate::matching::sql::get_many_sql(chunk.len());
                    let mut query = sqlx::query_as::<_, $crate::rows::IndicatorRow>(&sql)
                        .bind(&scope.tenant_id)
                        .bind($crate::rows::ticks(now))
                        .bind(scope.owner.as_deref())
                        .bind(None::<i64>);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    for row in query.fetch_all(&self.readers).await? {
                        found.push(iocd_domain::Indicator::try_from(row)?);
                    }
                }
                Ok(found)
            }

            async fn reset(&self, tenant_id: Option<&str>) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query("DELETE FROM indicators WHERE $1 IS NULL OR tenant_id = $1")
                    .bind(tenant_id)
                    .execute(&self.readers)
                    .await?;
                // The log of what is gone goes too; sequence numbers continue where they were,
                // so a follower never sees a number twice.
                sqlx::query("DELETE FROM change_log WHERE $1 IS NULL OR tenant_id = $1")
                    .bind(tenant_id)
                    .execute(&self.readers)
                    .await?;
                // Moved on by one with no entry: another replica's follower sees the number
                // move, finds the entries it needs gone, and loads the tenant's index again.
                sqlx::query(
                    "UPDATE tenants SET last_change_seq = last_change_seq + 1 \
                     WHERE $1 IS NULL OR tenant_id = $1",
                )
                .bind(tenant_id)
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected())
            }

            async fn ping(&self) -> Result<(), $crate::StoreError> {
                let _: i64 = sqlx::query_scalar("SELECT CAST(1 AS BIGINT)")
                    .fetch_one(&self.readers)
                    .await?;
                if !self.writer.is_running() {
                    return Err($crate::StoreError::WriterGone);
                }
                Ok(())
            }

            async fn active_counts(
                &self,
                now: iocd_domain::time::Timestamp,
            ) -> Result<Vec<$crate::ActiveCount>, $crate::StoreError> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as($crate::sql::ACTIVE_COUNTS)
                    .bind($crate::rows::ticks(now))
                    .fetch_all(&self.readers)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(tenant_id, indicator_type, count)| $crate::ActiveCount {
                        tenant_id,
                        indicator_type,
                        count: count.max(0) as u64,
                    })
                    .collect())
            }

            fn writer_metrics(&self) -> $crate::WriterMetrics {
                self.writer.metrics()
            }
        }
    };
}
pub(crate) use impl_indicator_store;
