//! Storage for iocd behind one trait, [`IndicatorStore`], with a SQLite implementation
//! (the embedded default) and a PostgreSQL one (for several replicas).
//!
//! The store applies the domain's upsert rules ([`iocd_domain::Indicator::create`] and
//! [`iocd_domain::Indicator::apply_update`]) inside its transactions; it never decides them.

pub mod authority;
pub mod backup;
mod batch;
pub mod identity;
mod indicator_store;
mod listing;
pub mod matching;
pub mod postgres;
mod protocol;
mod rows;
mod sql;
pub mod sqlite;
pub mod sweeper;
pub mod users;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use iocd_domain::time::Timestamp;
use iocd_domain::{Actor, ChangeEntry, Indicator, Submission};

pub use authority::{CertificateAuthorityStore, StoredCertificateAuthority};
pub use identity::{
    AppInsertError, AppRegistration, CertificateAdded, IdentityStore, StoredAppCertificate,
    StoredSigningKey,
};
pub use listing::{ListPage, ListRequest};
pub use matching::{FeedVersion, IndexChange, IndexRow, IndexSequence, MatchEngine, MatchedEntity};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use users::{AppSignIn, SignInGrant, UserInsertError, UserRecord, UserStore};
pub use writer::WriterMetrics;

/// Which indicators of a tenant a caller may see and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub tenant_id: String,
    /// `Some(client id)` for apps holding only `Ti.ReadWrite`: they see and change only the
    /// indicators they created. `None` means every indicator of the tenant.
    pub owner: Option<String>,
}

impl Scope {
    pub fn tenant_wide(tenant_id: impl Into<String>) -> Self {
        Scope {
            tenant_id: tenant_id.into(),
            owner: None,
        }
    }
}

/// Limits the store enforces inside its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteLimits {
    /// Most active (non-expired) indicators per tenant; `None` = unlimited.
    pub max_active_indicators: Option<u64>,
}

/// How one submitted item ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    Created(Indicator),
    Updated(Indicator),
}

impl ItemOutcome {
    pub fn indicator(&self) -> &Indicator {
        match self {
            ItemOutcome::Created(i) | ItemOutcome::Updated(i) => i,
        }
    }

    pub fn into_indicator(self) -> Indicator {
        match self {
            ItemOutcome::Created(i) | ItemOutcome::Updated(i) => i,
        }
    }
}

/// Why one submitted item was refused by the store (validation happened before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemError {
    /// Creating it would exceed the tenant's active-indicator limit.
    QuotaExceeded { limit: u64 },
    /// The key exists but belongs to another application, and the caller may change only its own.
    NotOwner { id: i64 },
}

pub type ItemResult = Result<ItemOutcome, ItemError>;

/// What a (batch) delete found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted(usize),
    /// Nothing was deleted because these ids are unknown, expired or not visible to the caller.
    NotFound(Vec<i64>),
}

/// Which route a delete came through: the change log tells a single delete from a batch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteVia {
    /// `DELETE /api/indicators/{id}`.
    Single,
    /// `POST /api/indicators/BatchDelete`.
    Batch,
}

/// Whether writes append to the change log. Always on in service; off only to measure what the
/// log costs (`iocd serve --no-change-log`, for the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangeLogging {
    #[default]
    On,
    Off,
}

impl ChangeLogging {
    pub fn on(self) -> bool {
        self == ChangeLogging::On
    }
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreOptions {
    pub change_log: ChangeLogging,
}

/// How long the change log keeps entries: an entry goes when it is older than `max_age` or
/// when more than `max_entries` newer ones of its tenant exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<std::time::Duration>,
    pub max_entries: Option<u64>,
}

impl Default for Retention {
    /// 90 days, however many entries.
    fn default() -> Self {
        Retention {
            max_age: Some(std::time::Duration::from_secs(90 * 86_400)),
            max_entries: None,
        }
    }
}

/// Most change-log entries one read returns.
pub const MAX_CHANGES_PER_READ: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("the storage writer has stopped")]
    WriterGone,
    #[error("unsupported database URL '{0}': expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

#[async_trait]
pub trait IndicatorStore: Send + Sync + 'static {
    /// Submits or updates each item with the upsert rules, in order, atomically per item:
    /// an item either lands whole or not at all, and valid items land even when others fail.
    async fn submit(
        &self,
        scope: &Scope,
        actor: &Actor,
        items: Vec<Submission>,
        limits: WriteLimits,
        now: Timestamp,
    ) -> Result<Vec<ItemResult>, StoreError>;

    /// One active indicator visible in `scope`.
    async fn get(
        &self,
        scope: &Scope,
        id: i64,
        now: Timestamp,
    ) -> Result<Option<Indicator>, StoreError>;

    /// Deletes all of `ids` or none of them, logging each as deleted by `actor` via `via`.
    async fn delete(
        &self,
        scope: &Scope,
        actor: &Actor,
        ids: &[i64],
        via: DeleteVia,
        now: Timestamp,
    ) -> Result<DeleteOutcome, StoreError>;

    /// Removes those of the tenant's `ids` that are expired at `now`, each logged as expired,
    /// through the writer (so replicas sweeping at once neither conflict nor log twice).
    /// Returns how many it removed.
    async fn expire(
        &self,
        tenant_id: &str,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<usize, StoreError>;

    /// The change-log entries visible in `scope` with a sequence number above `since`, oldest
    /// first, at most `limit` (capped at [`MAX_CHANGES_PER_READ`]).
    async fn changes_after(
        &self,
        scope: &Scope,
        since: i64,
        limit: u32,
    ) -> Result<Vec<ChangeEntry>, StoreError>;

    /// Every change-log entry of indicator `id` visible in `scope`, oldest first (also after
    /// the indicator was deleted or expired).
    async fn history(&self, scope: &Scope, id: i64) -> Result<Vec<ChangeEntry>, StoreError>;

    /// Every tenant that ever wrote (each has a counters row), in order.
    async fn tenants(&self) -> Result<Vec<String>, StoreError>;

    /// Ids of the tenant's indicators expired at `now`, soonest expired first, at most `limit`.
    async fn expired_ids(
        &self,
        tenant_id: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError>;

    /// Deletes at most `limit` of the tenant's oldest change-log entries that `retention` no
    /// longer keeps; how many it deleted. One bounded statement.
    async fn trim_change_log(
        &self,
        tenant_id: &str,
        retention: &Retention,
        now: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Ticks once after each commit of this process's writer: a receiver wakes when the change
    /// log may have grown (writes of other replicas on one PostgreSQL do not tick it).
    fn commits(&self) -> tokio::sync::watch::Receiver<u64>;

    /// One page of the active indicators visible in `scope` that match the request's filter,
    /// in its order (always ending with `id`, so paging is stable).
    async fn list(
        &self,
        scope: &Scope,
        request: &ListRequest,
        now: Timestamp,
    ) -> Result<ListPage, StoreError>;

    /// Active indicators of the tenant (what the quota counts).
    async fn count_active(&self, tenant_id: &str, now: Timestamp) -> Result<u64, StoreError>;

    /// Every tenant's last change sequence number (each tenant that ever wrote): the match
    /// index loads these tenants at start and polls this for other replicas' writes.
    async fn change_sequences(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// The tenant's last change sequence number and that change's time.
    async fn index_sequence(&self, tenant_id: &str) -> Result<IndexSequence, StoreError>;

    /// What the match index keeps of the tenant's rows (expired ones included) with an id above
    /// `after_id`, in id order, at most `limit`.
    async fn index_rows(
        &self,
        tenant_id: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<IndexRow>, StoreError>;

    /// The tenant's change-log entries after `since`, oldest first, at most `limit`, each with
    /// what the match index keeps of its indicator's current row (`None` once it is gone).
    async fn index_changes(
        &self,
        tenant_id: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<IndexChange>, StoreError>;

    /// The active indicators among `ids` visible in `scope`, in no particular order.
    async fn get_many(
        &self,
        scope: &Scope,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<Vec<Indicator>, StoreError>;

    /// Deletes every indicator of one tenant, or of every tenant (the emulator's reset); returns
    /// how many rows went. Indicator ids are not reused afterwards. Their change log goes too
    /// (without entries); its sequence numbers are not reused either, and the sequence moves on
    /// by one, so that other replicas' match indexes see it move, find no entries, and load the
    /// tenant again.
    async fn reset(&self, tenant_id: Option<&str>) -> Result<u64, StoreError>;

    /// Whether the database answers and the writer runs (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Active indicators at `now` per tenant and indicator type (for `/metrics`).
    async fn active_counts(&self, now: Timestamp) -> Result<Vec<ActiveCount>, StoreError>;

    /// The group-commit writer's metrics (queue, batch sizes, commit latency).
    fn writer_metrics(&self) -> WriterMetrics;
}

/// Active indicators of one tenant and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCount {
    pub tenant_id: String,
    /// The wire name (`DomainName`, `FileSha256`…).
    pub indicator_type: String,
    pub count: u64,
}

/// The stores of one database, sharing its connections.
#[derive(Clone)]
pub struct Stores {
    pub indicators: Arc<dyn IndicatorStore>,
    pub identity: Arc<dyn IdentityStore>,
    /// The local certificate authority behind iocd's HTTPS listener and interception.
    pub certificate_authority: Arc<dyn CertificateAuthorityStore>,
}

/// Opens the store a database URL names, running its migrations.
pub async fn open(url: &str) -> Result<Arc<dyn IndicatorStore>, StoreError> {
    Ok(open_stores(url).await?.indicators)
}

/// Opens the stores of the database a URL names, running its migrations.
///
/// [`sqlite::IN_MEMORY_URL`] (`sqlite::memory:`) opens a store in memory
/// ([`SqliteStore::open_in_memory`]), gone when the process ends.
pub async fn open_stores(url: &str) -> Result<Stores, StoreError> {
    open_stores_with(url, StoreOptions::default()).await
}

/// [`open_stores`] with options (the in-memory store always logs changes).
pub async fn open_stores_with(url: &str, options: StoreOptions) -> Result<Stores, StoreError> {
    if url == sqlite::IN_MEMORY_URL {
        let store = Arc::new(SqliteStore::open_in_memory().await?);
        Ok(Stores {
            indicators: store.clone(),
            identity: store.clone(),
            certificate_authority: store,
        })
    } else if url.starts_with("sqlite:") {
        let store = Arc::new(SqliteStore::open_with(url, options).await?);
        Ok(Stores {
            indicators: store.clone(),
            identity: store.clone(),
            certificate_authority: store,
        })
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = Arc::new(PostgresStore::open_with(url, options).await?);
        Ok(Stores {
            indicators: store.clone(),
            identity: store.clone(),
            certificate_authority: store,
        })
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
