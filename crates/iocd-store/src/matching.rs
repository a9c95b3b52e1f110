//! The per-tenant match indexes ([`iocd_domain::matching::MatchIndex`]) of one server, kept
//! current by following each tenant's change sequence (the change log).
//!
//! * **Start.** [`MatchEngine::start`] builds every tenant's index from the store in the
//!   background; a match on a tenant not yet loaded waits for its load. A load reads the
//!   tenant's last change sequence number ([`IndicatorStore::index_sequence`]) *before* its rows
//!   ([`IndicatorStore::index_rows`]), so the rows reflect at least that number; applying the
//!   entries after it again is harmless (each entry is applied by reading the indicator's
//!   current row).
//! * **Following.** The index then applies [`IndicatorStore::index_changes`] after the number
//!   it reflects: for each entry, the indicator's current row is indexed, or, when the row is
//!   gone (deleted, expired, purged), the indicator is removed. Entries missing at the start of
//!   the page (trimmed by retention, or the log emptied by the emulator's reset) make it load
//!   the tenant again.
//! * **This replica's writes.** The store's writer ticks [`IndicatorStore::commits`] after each
//!   commit and before it answers the callers. A match reads that count when it begins; if the
//!   tenant's index has not caught up with a change-log read that started after that count, the
//!   match first applies the entries after the index's number itself. So a match reflects every
//!   write this replica acknowledged before it began. A follower task, woken by the same watch,
//!   keeps the indexes current so that matches rarely need to.
//! * **Other replicas' writes.** The follower also wakes every [`POLL_INTERVAL`], reads every
//!   tenant's last sequence number in one query ([`IndicatorStore::change_sequences`]) and
//!   applies the entries of the tenants that moved. Staleness after a write elsewhere is at
//!   most one interval plus the queries' time (docs/compatibility.md, "Freshness").
//! * **Search.** Each tenant also keeps a [`TextIndex`] of its indicators' values and titles,
//!   loaded and followed with the match index, for the portal's search ([`MatchEngine::search`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use iocd_domain::matching::{Decision, IndexRecord, MatchIndex, Observable};
use iocd_domain::search::{SearchHits, TextIndex};
use iocd_domain::time::{from_ticks, Timestamp};
use iocd_domain::{Action, Indicator, IndicatorType, Severity};

use crate::{IndicatorStore, Scope, StoreError};

/// How often the follower looks for other replicas' writes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Most change-log entries the index reads at once.
pub const CHANGES_PER_READ: u32 = 1000;
/// A tenant further behind than this many entries is loaded again rather than followed.
pub const RELOAD_AFTER: i64 = 200_000;
/// Most entities cached per tenant for the match API (the cache is emptied when full).
pub const CACHED_ENTITIES: usize = 50_000;
/// Rows per read while loading a tenant (so a load never holds the whole tenant's rows).
pub const ROWS_PER_READ: u32 = 20_000;

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
    /// The value as submitted and the title, for the portal's search ([`TextIndex`]).
    pub indicator_value: String,
    pub title: String,
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

/// Where a tenant's change log stands: its last sequence number (0: none yet) and that change's
/// time, when the log still holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSequence {
    pub sequence: i64,
    pub changed_at: Option<Timestamp>,
}

/// One change-log entry as the index applies it: the indicator it names and that indicator's
/// row now (`None` once it is gone).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexChange {
    pub sequence: i64,
    pub time: Timestamp,
    pub indicator_id: i64,
    pub indicator_type: IndicatorType,
    /// The value as the entry recorded it (its key is the upsert key's normalisation).
    pub indicator_value: String,
    pub row: Option<IndexRow>,
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
    indicator_value: String,
    title: String,
}

fn corrupt(e: iocd_domain::ValidationError) -> StoreError {
    StoreError::Corrupt(format!("enum column: {}", e.message))
}

impl TryFrom<IndexRowText> for IndexRow {
    type Error = StoreError;

    fn try_from(r: IndexRowText) -> Result<Self, StoreError> {
        Ok(IndexRow {
            id: r.id,
            indicator_type: IndicatorType::parse("indicatorType", &r.indicator_type)
                .map_err(corrupt)?,
            value_key: r.value_key,
            action: Action::parse("action", &r.action).map_err(corrupt)?,
            severity: Severity::parse("severity", &r.severity).map_err(corrupt)?,
            expiration_time: r.expiration_time.map(from_ticks),
            last_update_time: from_ticks(r.last_update_time),
            rbac_group_names: serde_json::from_str(&r.rbac_group_names)
                .map_err(|e| StoreError::Corrupt(format!("list column: {e}")))?,
            indicator_value: r.indicator_value,
            title: r.title,
        })
    }
}

/// A change-log entry joined with its indicator's row (the row's columns null when it is gone).
#[derive(sqlx::FromRow)]
pub(crate) struct IndexChangeText {
    seq: i64,
    time: i64,
    indicator_id: i64,
    change_type: String,
    indicator_value: String,
    id: Option<i64>,
    indicator_type: Option<String>,
    value_key: Option<String>,
    action: Option<String>,
    severity: Option<String>,
    expiration_time: Option<i64>,
    last_update_time: Option<i64>,
    rbac_group_names: Option<String>,
    row_value: Option<String>,
    title: Option<String>,
}

impl TryFrom<IndexChangeText> for IndexChange {
    type Error = StoreError;

    fn try_from(r: IndexChangeText) -> Result<Self, StoreError> {
        let row = match (
            r.id,
            r.indicator_type,
            r.value_key,
            r.action,
            r.severity,
            r.last_update_time,
            r.rbac_group_names,
            r.row_value,
            r.title,
        ) {
            (
                Some(id),
                Some(indicator_type),
                Some(value_key),
                Some(action),
                Some(severity),
                Some(last_update_time),
                Some(rbac_group_names),
                Some(row_value),
                Some(title),
            ) => Some(IndexRow::try_from(IndexRowText {
                id,
                indicator_type,
                value_key,
                action,
                severity,
                expiration_time: r.expiration_time,
                last_update_time,
                rbac_group_names,
                indicator_value: row_value,
                title,
            })?),
            _ => None,
        };
        Ok(IndexChange {
            sequence: r.seq,
            time: from_ticks(r.time),
            indicator_id: r.indicator_id,
            indicator_type: IndicatorType::parse("indicatorType", &r.change_type)
                .map_err(corrupt)?,
            indicator_value: r.indicator_value,
            row,
        })
    }
}

/// The SQL the index reads with (both databases accept it).
pub(crate) mod sql {
    /// Every tenant's last change sequence number.
    pub const SEQUENCES: &str = "SELECT tenant_id, last_change_seq FROM tenants";
    /// The time of tenant `$1`'s change `$2`.
    pub const CHANGE_TIME: &str = "SELECT time FROM change_log WHERE tenant_id = $1 AND seq = $2";
    /// Tenant `$1`'s rows after id `$2`, expired ones included, in id order, at most `$3`.
    pub const ROWS: &str = "SELECT id, indicator_type, value_key, action, severity, \
        expiration_time, last_update_time, rbac_group_names, indicator_value, title FROM indicators \
        WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    /// Tenant `$1`'s entries after `$2`, oldest first, at most `$3`, each with its
    /// indicator's current row (nulls when gone).
    pub const CHANGES: &str = "SELECT c.seq, c.time, c.indicator_id, \
        c.indicator_type AS change_type, c.indicator_value, i.id, i.indicator_type, i.value_key, \
        i.action, i.severity, i.expiration_time, i.last_update_time, i.rbac_group_names, \
        i.indicator_value AS row_value, i.title \
        FROM change_log c LEFT JOIN indicators i \
        ON i.tenant_id = c.tenant_id AND i.id = c.indicator_id \
        WHERE c.tenant_id = $1 AND c.seq > $2 ORDER BY c.seq LIMIT $3";
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

/// One tenant's index and the change sequence number it reflects.
struct TenantIndex {
    index: RwLock<MatchIndex>,
    /// Values and titles, changed with `index` under the same `follow` lock.
    text: RwLock<TextIndex>,
    /// Serialises loads and catch-ups.
    follow: tokio::sync::Mutex<()>,
    /// The tenant's change sequence number the index reflects.
    sequence: AtomicI64,
    /// The time (ticks) of that change; `i64::MIN` when unknown.
    changed_ticks: AtomicI64,
    /// A commit count of this process's writer whose commits the index reflects.
    seen_commit: AtomicU64,
    /// Whether the index was built from the store once.
    loaded: AtomicBool,
    /// Entities the match API answered lately, by id; an entry goes when a change-log entry
    /// names its id, all when the tenant is loaded again.
    entities: std::sync::Mutex<HashMap<i64, Arc<MatchedEntity>>>,
}

/// An indicator the match API answers with, and its JSON, written once when it is cached:
/// serialising an indicator's thirty-odd properties cost more than the match itself.
#[derive(Debug)]
pub struct MatchedEntity {
    pub indicator: Indicator,
    /// `indicator` as the API writes it.
    pub json: Box<serde_json::value::RawValue>,
}

impl MatchedEntity {
    fn new(indicator: Indicator) -> MatchedEntity {
        let json = serde_json::value::to_raw_value(&indicator).expect("indicators serialise");
        MatchedEntity { indicator, json }
    }
}

impl TenantIndex {
    fn new() -> TenantIndex {
        TenantIndex {
            index: RwLock::new(MatchIndex::new()),
            text: RwLock::new(TextIndex::new()),
            follow: tokio::sync::Mutex::new(()),
            sequence: AtomicI64::new(0),
            changed_ticks: AtomicI64::new(i64::MIN),
            seen_commit: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            entities: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }
}

/// Why a tenant's index catches up.
#[derive(Debug, Clone, Copy)]
enum CatchUp {
    /// At start: load it.
    Load,
    /// A match began when this process's writer had committed this many times.
    Commit(u64),
    /// The store's sequence number was seen at this.
    Sequence(i64),
}

/// What a feed's caching headers are derived from: the tenant's change sequence number the
/// index reflects, and when that change happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedVersion {
    pub sequence: i64,
    /// The time of change `sequence`, if known.
    pub changed_at: Option<Timestamp>,
    /// Indexed indicators expired at the time asked (an expiry changes a feed before the
    /// sweeper logs it), and the latest such expiry.
    pub expired: usize,
    pub last_expiry: Option<Timestamp>,
}

/// Every tenant's match index over one store. See the module documentation.
pub struct MatchEngine {
    store: Arc<dyn IndicatorStore>,
    commits: tokio::sync::watch::Receiver<u64>,
    tenants: RwLock<HashMap<String, Arc<TenantIndex>>>,
}

impl MatchEngine {
    /// An engine over `store`, loading every tenant in the background and following the
    /// change sequence while the engine lives.
    pub fn start(store: Arc<dyn IndicatorStore>) -> Arc<MatchEngine> {
        let commits = store.commits();
        let engine = Arc::new(MatchEngine {
            store,
            commits: commits.clone(),
            tenants: RwLock::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&engine);
        tokio::spawn(async move {
            if let Some(engine) = weak.upgrade() {
                if let Err(e) = engine.load_all().await {
                    tracing::warn!(error = %e, "the match index could not be loaded at start; tenants load on their first match");
                }
            }
            follow(weak, commits).await;
        });
        engine
    }

    async fn load_all(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let tenants = self.store.change_sequences().await?;
        let mut indicators = 0;
        for (tenant, _) in &tenants {
            let index = self.tenant(tenant);
            self.catch_up(&index, tenant, CatchUp::Load).await?;
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

    /// Brings `index` up to the store's change sequence: loads it if it never was (or if it
    /// is too far behind, or the entries it needs are gone), else applies the entries after its
    /// number. Does nothing when, once it holds the tenant's lock, `why` is already met.
    async fn catch_up(
        &self,
        index: &TenantIndex,
        tenant_id: &str,
        why: CatchUp,
    ) -> Result<(), StoreError> {
        let _follow = index.follow.lock().await;
        let sequence = index.sequence.load(Ordering::Acquire);
        let target = match why {
            CatchUp::Load => {
                if index.loaded() {
                    return Ok(());
                }
                None
            }
            CatchUp::Commit(commit) => {
                if index.loaded() && index.seen_commit.load(Ordering::Acquire) >= commit {
                    return Ok(());
                }
                None
            }
            CatchUp::Sequence(stored) => {
                if index.loaded() && sequence >= stored {
                    return Ok(());
                }
                Some(stored)
            }
        };
        // Every commit counted here is visible to the reads below.
        let commit = *self.commits.borrow();
        let behind = target.map_or(0, |t| t - sequence);
        if !index.loaded() || behind > RELOAD_AFTER {
            self.load(index, tenant_id).await?;
        } else {
            self.apply_changes(index, tenant_id, target).await?;
        }
        index.seen_commit.fetch_max(commit, Ordering::AcqRel);
        Ok(())
    }

    /// Builds the tenant's index afresh and swaps it in. The sequence number is read before the
    /// rows (page by page, in id order): every change up to it is in the rows, and the entries
    /// after it, applied next, bring any row read late or missed back in step.
    async fn load(&self, index: &TenantIndex, tenant_id: &str) -> Result<(), StoreError> {
        let at = self.store.index_sequence(tenant_id).await?;
        let mut fresh = MatchIndex::new();
        let mut text = TextIndex::new();
        let mut newest = None;
        let mut after = i64::MIN;
        loop {
            let rows = self
                .store
                .index_rows(tenant_id, after, ROWS_PER_READ)
                .await?;
            for row in &rows {
                index_row(&mut fresh, &mut text, row);
                newest = newest.max(Some(row.last_update_time));
            }
            match rows.last() {
                Some(last) if rows.len() == ROWS_PER_READ as usize => after = last.id,
                _ => break,
            }
        }
        fresh.shrink_to_fit();
        text.shrink_to_fit();
        let changed = at.changed_at.or(newest);
        *index.index.write().expect("index lock") = fresh;
        *index.text.write().expect("text lock") = text;
        index.sequence.store(at.sequence, Ordering::Release);
        index.entities.lock().expect("entities lock").clear();
        index.changed_ticks.store(
            changed.map_or(i64::MIN, iocd_domain::time::to_ticks),
            Ordering::Release,
        );
        index.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Applies the tenant's entries after the index's number, page by page. `target`: the
    /// number the store was seen at, if known.
    async fn apply_changes(
        &self,
        index: &TenantIndex,
        tenant_id: &str,
        target: Option<i64>,
    ) -> Result<(), StoreError> {
        loop {
            let since = index.sequence.load(Ordering::Acquire);
            let page = self
                .store
                .index_changes(tenant_id, since, CHANGES_PER_READ)
                .await?;
            let gap = match page.first() {
                Some(first) => first.sequence != since + 1,
                // Nothing after `since`, yet the store was seen further on: the entries went.
                None => target.is_some_and(|t| t > since),
            };
            if gap {
                tracing::info!(
                    tenant = tenant_id,
                    since,
                    "change-log entries the match index needs are gone; loading the tenant again"
                );
                return self.load(index, tenant_id).await;
            }
            let Some(last) = page.last() else {
                return Ok(());
            };
            let (last_seq, last_time) = (last.sequence, last.time);
            {
                // Both locks at once, in this order (nothing else holds both): a reader never
                // sees one index a page ahead of the other.
                let mut idx = index.index.write().expect("index lock");
                let mut text = index.text.write().expect("text lock");
                for change in &page {
                    apply(&mut idx, &mut text, change);
                }
            }
            // The number first: an entity read before it moved is then not cached (see
            // `entities`), and one cached before is removed here.
            index.sequence.store(last_seq, Ordering::Release);
            {
                let mut entities = index.entities.lock().expect("entities lock");
                for change in &page {
                    entities.remove(&change.indicator_id);
                }
            }
            index
                .changed_ticks
                .store(iocd_domain::time::to_ticks(last_time), Ordering::Release);
            if page.len() < CHANGES_PER_READ as usize {
                return Ok(());
            }
        }
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

    /// The ids of the tenant's indicators of `types` whose value or title may contain `term`
    /// (a superset of what the database's case-insensitive `LIKE` finds, expired ones included),
    /// or [`SearchHits::TooMany`] past `limit`. Reflects every write this process acknowledged
    /// before the call, as [`MatchEngine::decide`] does.
    pub async fn search(
        &self,
        tenant_id: &str,
        term: &str,
        types: &[IndicatorType],
        limit: usize,
    ) -> Result<SearchHits, StoreError> {
        let index = self.current(tenant_id).await?;
        let text = index.text.read().expect("text lock");
        Ok(text.search(term, types, limit))
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

    /// The change sequence number the tenant's current index reflects, and what else a feed's
    /// content depends on at `now` (see [`FeedVersion`]).
    pub async fn feed_version(
        &self,
        tenant_id: &str,
        now: Timestamp,
    ) -> Result<FeedVersion, StoreError> {
        let index = self.current(tenant_id).await?;
        // Read before the feed is rendered from the index, which only moves forward: the
        // content is never older than the version its headers name.
        let (expired, last_expiry) = index.index.read().expect("index lock").expired_at(now);
        let changed = index.changed_ticks.load(Ordering::Acquire);
        Ok(FeedVersion {
            sequence: index.sequence.load(Ordering::Acquire),
            changed_at: (changed != i64::MIN).then(|| from_ticks(changed)),
            expired,
            last_expiry,
        })
    }

    /// The tenant's index, loaded, reflecting every commit of this process's writer counted
    /// when the call began.
    async fn current(&self, tenant_id: &str) -> Result<Arc<TenantIndex>, StoreError> {
        let commit = *self.commits.borrow();
        let index = self.tenant(tenant_id);
        if !index.loaded() || index.seen_commit.load(Ordering::Acquire) < commit {
            self.catch_up(&index, tenant_id, CatchUp::Commit(commit))
                .await?;
        }
        Ok(index)
    }

    /// The active indicators among `ids` visible in `scope` at `now` (as
    /// [`IndicatorStore::get_many`]), from the tenant's cache where it holds them. Call after
    /// [`MatchEngine::decide`]: the cache then reflects what the decisions do.
    pub async fn entities(
        &self,
        scope: &Scope,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<Vec<Arc<MatchedEntity>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let index = self.tenant(&scope.tenant_id);
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let entities = index.entities.lock().expect("entities lock");
            for id in ids {
                match entities.get(id) {
                    Some(entity) => found.push(entity.clone()),
                    None => missing.push(*id),
                }
            }
        }
        if !missing.is_empty() {
            // Read tenant-wide, filter below, so the cache serves every caller.
            let before = index.sequence.load(Ordering::Acquire);
            let read = self
                .store
                .get_many(&Scope::tenant_wide(&scope.tenant_id), &missing, now)
                .await?;
            let read: Vec<Arc<MatchedEntity>> = read
                .into_iter()
                .map(|i| Arc::new(MatchedEntity::new(i)))
                .collect();
            let mut entities = index.entities.lock().expect("entities lock");
            // Only rows read with no entry applied meanwhile: an entry applied during the
            // read may have removed a newer version than the one read.
            if index.sequence.load(Ordering::Acquire) == before {
                if entities.len() + read.len() > CACHED_ENTITIES {
                    entities.clear();
                }
                for entity in &read {
                    entities.insert(entity.indicator.id, entity.clone());
                }
            }
            found.extend(read);
        }
        let now_ticks = iocd_domain::time::to_ticks(now);
        Ok(found
            .into_iter()
            .filter(|entity| {
                let i = &entity.indicator;
                scope.owner.as_ref().is_none_or(|o| &i.created_by == o)
                    && i.expiration_time
                        .is_none_or(|t| iocd_domain::time::to_ticks(t) > now_ticks)
            })
            .collect())
    }

    /// Drops the index of one tenant, or of every tenant, after the store emptied them (the
    /// emulator's reset): the next match builds it again from the store.
    pub fn forget(&self, tenant_id: Option<&str>) {
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

    /// The heap bytes of every tenant's search text ([`TextIndex`]), for the figures.
    pub fn text_size(&self) -> usize {
        let tenants = self.tenants.read().expect("tenants lock");
        tenants.values().fold(0, |bytes, t| {
            bytes + t.text.read().expect("text lock").memory_bytes()
        })
    }

    /// Loads the tenants' indexes now (they also load in the background at start, and on a
    /// tenant's first match): for the benchmark's rebuild figure.
    pub async fn load_now(&self) -> Result<(), StoreError> {
        self.load_all().await
    }
}

/// Puts one stored indicator into both indexes, replacing what they held for its id: on a load
/// and for a change-log entry alike.
fn index_row(idx: &mut MatchIndex, text: &mut TextIndex, row: &IndexRow) {
    if !idx.upsert(&row.record()) {
        tracing::warn!(
            id = row.id,
            "a stored indicator's value is not a valid key; not matched"
        );
    }
    text.upsert(row.id, row.indicator_type, &row.indicator_value, &row.title);
}

/// Applies one entry: the indicator's current row, or its removal.
fn apply(idx: &mut MatchIndex, text: &mut TextIndex, change: &IndexChange) {
    match &change.row {
        Some(row) => index_row(idx, text, row),
        None => {
            // The key never changes after creation; an entry's value gives it back.
            if let Ok(key) =
                iocd_domain::value::normalise(change.indicator_type, &change.indicator_value)
            {
                idx.remove(change.indicator_id, change.indicator_type, &key);
            }
            text.remove(change.indicator_id);
        }
    }
}

/// Keeps the loaded indexes current: after each commit of this process's writer, and every
/// [`POLL_INTERVAL`] for other replicas' writes.
async fn follow(engine: Weak<MatchEngine>, mut commits: tokio::sync::watch::Receiver<u64>) {
    let mut writer_alive = true;
    loop {
        if writer_alive {
            tokio::select! {
                changed = commits.changed() => writer_alive = changed.is_ok(),
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        } else {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        // Every commit counted here is visible to the query below.
        let commit = *commits.borrow_and_update();
        let sequences: HashMap<String, i64> = match engine.store.change_sequences().await {
            Ok(sequences) => sequences.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "the match index could not read the change sequences");
                continue;
            }
        };
        let tenants: Vec<(String, Arc<TenantIndex>)> = engine
            .tenants
            .read()
            .expect("tenants lock")
            .iter()
            .filter(|(_, index)| index.loaded())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (tenant, index) in tenants {
            let stored = sequences.get(&tenant).copied().unwrap_or(0);
            if stored > index.sequence.load(Ordering::Acquire) {
                if let Err(e) = engine
                    .catch_up(&index, &tenant, CatchUp::Sequence(stored))
                    .await
                {
                    tracing::warn!(error = %e, tenant, "the match index could not follow the change log");
                }
            } else {
                index.seen_commit.fetch_max(commit, Ordering::AcqRel);
            }
        }
    }
}
