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
                ids: &[i64],
                now: iocd_domain::time::Timestamp,
            ) -> Result<$crate::DeleteOutcome, $crate::StoreError> {
                self.writer.delete(scope, ids, now).await
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
        }
    };
}
pub(crate) use impl_indicator_store;
