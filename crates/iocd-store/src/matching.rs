//! The per-tenant match indexes ([`iocd_domain::matching::MatchIndex`]) of one server, kept
//! current from the store.
//!
//! * **Start.** [`MatchEngine::start`] builds every tenant's index from the store in the
//!   background; a match on a tenant not yet loaded waits for its load.
//! * **This replica's writes.** The server's store is wrapped in [`IndexedStore`], which counts
//!   each write of a tenant once the store has acknowledged it (and remembers deleted ids). A
//!   match that finds the count ahead of what its index reflects first reads the rows changed
//!   since the index's last look, so a match reflects every write this replica acknowledged
//!   before it began.
//! * **Other replicas' writes.** A poller looks every [`POLL_INTERVAL`] at each loaded tenant:
//!   the rows updated since its watermark (minus [`CHANGE_MARGIN`], for writes whose update time
//!   was taken before a later one committed, and clock skew between replicas), then a summary
//!   (row count and id sum) that, when it differs from the index's, makes it drop the ids the
//!   store no longer holds. Staleness after a write elsewhere is at most one interval plus the
//!   queries' time (docs/compatibility.md, "Matching").

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use iocd_domain::matching::{Decision, IndexRecord, MatchIndex, Observable};
use iocd_domain::time::{to_ticks, Timestamp};
use iocd_domain::{Action, Actor, ChangeEntry, Indicator, IndicatorType, Severity, Submission};

use crate::{
    DeleteOutcome, DeleteVia, IndicatorStore, ItemResult, ListPage, ListRequest, Retention, Scope,
    StoreError, WriteLimits,
};

/// How often the poller looks for other replicas' writes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How far before its watermark the index re-reads changed rows (ticks of 100 ns: 10 s).
pub const CHANGE_MARGIN: i64 = 10 * 10_000_000;

/// What the match index keeps of a stored indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub id: i64,
    pub indicator_type: IndicatorType,
    pub value_key: String,
    pub action: Action,
    pub severity: Severity,
    pub expiration_time: Option<Timestamp>,
    pub last_update_time: Timestamp,
    pub rbac_group_names: Vec<String>,
}

impl IndexRow {
    pub fn record(&self) -> IndexRecord<'_> {
        IndexRecord {
            id: self.id,
            indicator_type: self.indicator_type,
            value_key: &self.value_key,
            action: self.action,
            severity: self.severity,
            expiration_time: self.expiration_time,
            last_update_time: self.last_update_time,
            rbac_group_names: &self.rbac_group_names,
        }
    }
}

/// A tenant's rows in brief: what the index compares to notice deletes it was not told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantSummary {
    pub rows: u64,
    /// Sum of the ids (wrapping, as [`MatchIndex::id_sum`]).
    pub id_sum: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct IndexRowText {
    id: i64,
    indicator_type: String,
    value_key: String,
    action: String,
    severity: String,
    expiration_time: Option<i64>,
    last_update_time: i64,
    rbac_group_names: String,
}

impl TryFrom<IndexRowText> for IndexRow {
    type Error = StoreError;

    fn try_from(r: IndexRowText) -> Result<Self, StoreError> {
        let corrupt = |e: iocd_domain::ValidationError| {
            StoreError::Corrupt(format!("enum column: {}", e.message))
        };
        Ok(IndexRow {
            id: r.id,
            indicator_type: IndicatorType::parse("indicatorType", &r.indicator_type)
                .map_err(corrupt)?,
            value_key: r.value_key,
            action: Action::parse("action", &r.action).map_err(corrupt)?,
            severity: Severity::parse("severity", &r.severity).map_err(corrupt)?,
            expiration_time: r.expiration_time.map(iocd_domain::time::from_ticks),
            last_update_time: iocd_domain::time::from_ticks(r.last_update_time),
            rbac_group_names: serde_json::from_str(&r.rbac_group_names)
                .map_err(|e| StoreError::Corrupt(format!("list column: {e}")))?,
        })
    }
}

/// The SQL the index reads with (both databases accept it).
pub(crate) mod sql {
    pub const TENANTS: &str = "SELECT DISTINCT tenant_id FROM indicators";
    pub const ROWS_SINCE: &str = "SELECT id, indicator_type, value_key, action, severity, \
        expiration_time, last_update_time, rbac_group_names FROM indicators \
        WHERE tenant_id = $1 AND last_update_time >= $2";
    pub const SUMMARY: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(id), 0) AS BIGINT) \
        FROM indicators WHERE tenant_id = $1";
    pub const IDS: &str = "SELECT id FROM indicators WHERE tenant_id = $1";
    /// Most ids per [`get_many_sql`] statement.
    pub const GET_MANY_CHUNK: usize = 100;

    /// The visible rows among `n` ids (`$5`…): tenant `$1`, active at `$2`, created by `$3`
    /// unless null. `$4` is unused, so the ids start at a fixed position.
    pub fn get_many_sql(n: usize) -> String {
        let ids: Vec<String> = (0..n).map(|i| format!("${}", i + 5)).collect();
        format!(
            "SELECT {} FROM indicators WHERE tenant_id = $1 \
             AND (expiration_time IS NULL OR expiration_time > $2) \
             AND (CAST($3 AS TEXT) IS NULL OR created_by = $3) \
             AND (CAST($4 AS BIGINT) IS NULL) AND id IN ({})",
            crate::sql::COLUMNS,
            ids.join(", ")
        )
    }
}

/// One tenant's index and what it is known to reflect.
struct TenantIndex {
    index: RwLock<MatchIndex>,
    /// Serialises syncs, and holds the latest update time read from the store.
    sync: tokio::sync::Mutex<Option<i64>>,
    /// Writes of this tenant this process has acknowledged.
    written: AtomicU64,
    /// The value of `written` the index reflects.
    synced: AtomicU64,
    /// Ids this process deleted, not yet removed from the index.
    deleted: std::sync::Mutex<Vec<i64>>,
    /// Whether the index was built from the store once.
    loaded: AtomicBool,
    /// When (ticks) the index last changed: the newest update time read, or when this
    /// process last removed deleted rows from it.
    changed: AtomicI64,
}

impl TenantIndex {
    fn new() -> TenantIndex {
        TenantIndex {
            index: RwLock::new(MatchIndex::new()),
            sync: tokio::sync::Mutex::new(None),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            deleted: std::sync::Mutex::new(Vec::new()),
            loaded: AtomicBool::new(false),
            changed: AtomicI64::new(0),
        }
    }
}

/// Every tenant's match index over one store. See the module documentation.
pub struct MatchEngine {
    store: Arc<dyn IndicatorStore>,
    tenants: RwLock<HashMap<String, Arc<TenantIndex>>>,
}

impl MatchEngine {
    /// An engine over `store` (the unwrapped store), loading every tenant in the background and
    /// polling for other replicas' writes while the engine lives.
    pub fn start(store: Arc<dyn IndicatorStore>) -> Arc<MatchEngine> {
        let engine = Arc::new(MatchEngine {
            store,
            tenants: RwLock::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&engine);
        tokio::spawn(async move {
            if let Some(engine) = weak.upgrade() {
                if let Err(e) = engine.load_all().await {
                    tracing::warn!(error = %e, "the match index could not be loaded at start; tenants load on their first match");
                }
            }
            poll(weak).await;
        });
        engine
    }

    async fn load_all(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let tenants = self.store.index_tenants().await?;
        let mut indicators = 0;
        for tenant in &tenants {
            let index = self.tenant(tenant);
            self.sync(&index, tenant).await?;
            indicators += index.index.read().expect("index lock").len();
        }
        tracing::info!(
            tenants = tenants.len(),
            indicators,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "match index built"
        );
        Ok(())
    }

    fn tenant(&self, tenant_id: &str) -> Arc<TenantIndex> {
        if let Some(t) = self.tenants.read().expect("tenants lock").get(tenant_id) {
            return t.clone();
        }
        self.tenants
            .write()
            .expect("tenants lock")
            .entry(tenant_id.to_string())
            .or_insert_with(|| Arc::new(TenantIndex::new()))
            .clone()
    }

    /// Brings `index` up to date with the store (see the module documentation).
    async fn sync(&self, index: &TenantIndex, tenant_id: &str) -> Result<(), StoreError> {
        let mut watermark = index.sync.lock().await;
        let target = index.written.load(Ordering::Acquire);
        let deleted: Vec<i64> = std::mem::take(&mut *index.deleted.lock().expect("deleted lock"));
        if !deleted.is_empty() {
            let deleted: HashSet<i64> = deleted.into_iter().collect();
            let mut idx = index.index.write().expect("index lock");
            if idx.retain_ids(|id| !deleted.contains(&id)) > 0 {
                index
                    .changed
                    .fetch_max(to_ticks(iocd_domain::time::now()), Ordering::AcqRel);
            }
        }
        let since = watermark.map_or(i64::MIN, |w| w.saturating_sub(CHANGE_MARGIN));
        let rows = self.store.index_rows(tenant_id, since).await?;
        if !rows.is_empty() {
            let mut idx = index.index.write().expect("index lock");
            for row in &rows {
                if !idx.upsert(&row.record()) {
                    tracing::warn!(
                        id = row.id,
                        "a stored indicator's value is not a valid key; not matched"
                    );
                }
                let updated = to_ticks(row.last_update_time);
                *watermark = Some(watermark.map_or(updated, |w| w.max(updated)));
                index.changed.fetch_max(updated, Ordering::AcqRel);
            }
        }
        if watermark.is_none() {
            *watermark = Some(i64::MIN / 2);
        }
        let summary = self.store.tenant_summary(tenant_id).await?;
        let (len, id_sum) = {
            let idx = index.index.read().expect("index lock");
            (idx.len() as u64, idx.id_sum())
        };
        if summary.rows < len || (summary.rows == len && summary.id_sum != id_sum) {
            // Rows were deleted by another replica: keep only the ids the store still has.
            let ids: HashSet<i64> = self.store.index_ids(tenant_id).await?.into_iter().collect();
            let mut idx = index.index.write().expect("index lock");
            let removed = idx.retain_ids(|id| ids.contains(&id));
            if removed > 0 {
                index
                    .changed
                    .fetch_max(to_ticks(iocd_domain::time::now()), Ordering::AcqRel);
            }
            tracing::debug!(
                tenant = tenant_id,
                removed,
                "match index dropped deleted rows"
            );
        }
        index.synced.fetch_max(target, Ordering::AcqRel);
        index.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Defender's decision for each observable (an `Err` stays as it is) on a device of
    /// `device_group` at `now`, from an index that reflects every write this process
    /// acknowledged before the call.
    pub async fn decide(
        &self,
        tenant_id: &str,
        observables: &[Result<Observable, iocd_domain::ValidationError>],
        device_group: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<Option<Decision>>, StoreError> {
        let index = self.current(tenant_id).await?;
        let idx = index.index.read().expect("index lock");
        Ok(observables
            .iter()
            .map(|o| {
                o.as_ref()
                    .ok()
                    .and_then(|o| idx.decide(o, device_group, now))
            })
            .collect())
    }

    /// Runs `read` over the tenant's current index (for feeds).
    pub async fn with_index<R>(
        &self,
        tenant_id: &str,
        read: impl FnOnce(&MatchIndex) -> R,
    ) -> Result<R, StoreError> {
        let index = self.current(tenant_id).await?;
        let idx = index.index.read().expect("index lock");
        Ok(read(&idx))
    }

    /// What identifies the content of the tenant's feeds at `now` (the index's
    /// [`MatchIndex::fingerprint`]) and when the index last changed (ticks).
    pub async fn feed_version(
        &self,
        tenant_id: &str,
        now: Timestamp,
    ) -> Result<((usize, i64, usize, u32), i64), StoreError> {
        let index = self.current(tenant_id).await?;
        let fingerprint = index.index.read().expect("index lock").fingerprint(now);
        Ok((fingerprint, index.changed.load(Ordering::Acquire)))
    }

    async fn current(&self, tenant_id: &str) -> Result<Arc<TenantIndex>, StoreError> {
        let index = self.tenant(tenant_id);
        if !index.loaded.load(Ordering::Acquire)
            || index.written.load(Ordering::Acquire) > index.synced.load(Ordering::Acquire)
        {
            self.sync(&index, tenant_id).await?;
        }
        Ok(index)
    }

    fn acknowledged_write(&self, tenant_id: &str, deleted: &[i64]) {
        let index = self.tenant(tenant_id);
        if !deleted.is_empty() {
            index
                .deleted
                .lock()
                .expect("deleted lock")
                .extend_from_slice(deleted);
        }
        index.written.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops the index of one tenant, or of every tenant, after the store emptied them (the
    /// emulator's reset): the next match builds it again from the store.
    fn forget(&self, tenant_id: Option<&str>) {
        let mut tenants = self.tenants.write().expect("tenants lock");
        match tenant_id {
            Some(tenant) => {
                tenants.remove(tenant);
            }
            None => tenants.clear(),
        }
    }

    /// Indicators indexed over every tenant, and the heap bytes of the indexes.
    pub fn size(&self) -> (usize, usize) {
        let tenants = self.tenants.read().expect("tenants lock");
        tenants.values().fold((0, 0), |(n, bytes), t| {
            let idx = t.index.read().expect("index lock");
            (n + idx.len(), bytes + idx.heap_bytes())
        })
    }
}

async fn poll(engine: Weak<MatchEngine>) {
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let tenants: Vec<(String, Arc<TenantIndex>)> = engine
            .tenants
            .read()
            .expect("tenants lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (tenant, index) in tenants {
            if let Err(e) = engine.sync(&index, &tenant).await {
                tracing::warn!(error = %e, tenant, "match index poll failed");
            }
        }
    }
}

/// The server's store: every call goes to the inner store; each acknowledged write is counted
/// for the [`MatchEngine`], so matches see it.
pub struct IndexedStore {
    inner: Arc<dyn IndicatorStore>,
    engine: Arc<MatchEngine>,
}

impl IndexedStore {
    pub fn new(inner: Arc<dyn IndicatorStore>, engine: Arc<MatchEngine>) -> IndexedStore {
        IndexedStore { inner, engine }
    }
}

#[async_trait]
impl IndicatorStore for IndexedStore {
    async fn submit(
        &self,
        scope: &Scope,
        actor: &Actor,
        items: Vec<Submission>,
        limits: WriteLimits,
        now: Timestamp,
    ) -> Result<Vec<ItemResult>, StoreError> {
        let result = self.inner.submit(scope, actor, items, limits, now).await;
        self.engine.acknowledged_write(&scope.tenant_id, &[]);
        result
    }

    async fn get(
        &self,
        scope: &Scope,
        id: i64,
        now: Timestamp,
    ) -> Result<Option<Indicator>, StoreError> {
        self.inner.get(scope, id, now).await
    }

    async fn delete(
        &self,
        scope: &Scope,
        actor: &Actor,
        ids: &[i64],
        via: DeleteVia,
        now: Timestamp,
    ) -> Result<DeleteOutcome, StoreError> {
        let result = self.inner.delete(scope, actor, ids, via, now).await;
        let deleted = match &result {
            Ok(DeleteOutcome::Deleted(_)) => ids,
            _ => &[],
        };
        self.engine.acknowledged_write(&scope.tenant_id, deleted);
        result
    }

    async fn expire(
        &self,
        tenant_id: &str,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let result = self.inner.expire(tenant_id, ids, now).await;
        // Expired rows match nothing already; the poll's reconciliation drops them.
        self.engine.acknowledged_write(tenant_id, &[]);
        result
    }

    async fn changes_after(
        &self,
        scope: &Scope,
        since: i64,
        limit: u32,
    ) -> Result<Vec<ChangeEntry>, StoreError> {
        self.inner.changes_after(scope, since, limit).await
    }

    async fn history(&self, scope: &Scope, id: i64) -> Result<Vec<ChangeEntry>, StoreError> {
        self.inner.history(scope, id).await
    }

    async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        self.inner.tenants().await
    }

    async fn expired_ids(
        &self,
        tenant_id: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        self.inner.expired_ids(tenant_id, now, limit).await
    }

    async fn trim_change_log(
        &self,
        tenant_id: &str,
        retention: &Retention,
        now: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.inner
            .trim_change_log(tenant_id, retention, now, limit)
            .await
    }

    fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.commits()
    }

    async fn list(
        &self,
        scope: &Scope,
        request: &ListRequest,
        now: Timestamp,
    ) -> Result<ListPage, StoreError> {
        self.inner.list(scope, request, now).await
    }

    async fn count_active(&self, tenant_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.count_active(tenant_id, now).await
    }

    async fn index_tenants(&self) -> Result<Vec<String>, StoreError> {
        self.inner.index_tenants().await
    }

    async fn index_rows(
        &self,
        tenant_id: &str,
        updated_since_ticks: i64,
    ) -> Result<Vec<IndexRow>, StoreError> {
        self.inner.index_rows(tenant_id, updated_since_ticks).await
    }

    async fn tenant_summary(&self, tenant_id: &str) -> Result<TenantSummary, StoreError> {
        self.inner.tenant_summary(tenant_id).await
    }

    async fn index_ids(&self, tenant_id: &str) -> Result<Vec<i64>, StoreError> {
        self.inner.index_ids(tenant_id).await
    }

    async fn get_many(
        &self,
        scope: &Scope,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<Vec<Indicator>, StoreError> {
        self.inner.get_many(scope, ids, now).await
    }

    async fn reset(&self, tenant_id: Option<&str>) -> Result<u64, StoreError> {
        let result = self.inner.reset(tenant_id).await;
        self.engine.forget(tenant_id);
        result
    }
}
