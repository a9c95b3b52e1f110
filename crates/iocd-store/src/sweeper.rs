//! The background jobs that keep the database bounded: the expiry sweeper, which deletes
//! indicators whose `expirationTime` has passed (each logged as `Expired`), and the change
//! log's trimming by [`Retention`].
//!
//! Both work in small batches. The sweeper finds expired ids on the reader pool and removes
//! them through the store's writer ([`IndicatorStore::expire`]), which re-reads each row under
//! the tenant's lock and removes only those still there and still expired: replicas sweeping
//! one PostgreSQL at once neither conflict nor log an expiry twice, and a batch of
//! [`SweepConfig::batch`] holds the writer no longer than a write of that size. Reads hide
//! expired rows whether or not they are swept yet, so when the sweep runs is invisible to
//! clients.

use std::sync::Arc;
use std::time::Duration;

use iocd_domain::time::{self, Timestamp};
use tokio::task::JoinHandle;

use crate::{IndicatorStore, Retention, StoreError};

/// How the background jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepConfig {
    /// Time between two sweeps (`--sweep-interval`).
    pub interval: Duration,
    /// Most rows one statement of either job touches.
    pub batch: u32,
    pub retention: Retention,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            interval: Duration::from_secs(60),
            batch: 200,
            retention: Retention::default(),
        }
    }
}

/// Most batches one job runs per tenant and sweep, so one huge backlog cannot starve the
/// others; the rest waits for the next sweep.
const MAX_BATCHES_PER_TENANT: usize = 50;

/// Removes the indicators expired at `now`, tenant by tenant in batches of `batch`; how many.
pub async fn sweep_expired(
    store: &dyn IndicatorStore,
    now: Timestamp,
    batch: u32,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for tenant in store.tenants().await? {
        for _ in 0..MAX_BATCHES_PER_TENANT {
            let ids = store.expired_ids(&tenant, now, batch).await?;
            if ids.is_empty() {
                break;
            }
            let n = store.expire(&tenant, &ids, now).await?;
            removed += n;
            // Fewer than asked, or none removed (another replica was first): done for now.
            if ids.len() < batch as usize || n == 0 {
                break;
            }
        }
    }
    Ok(removed)
}

/// Deletes the change-log entries `retention` no longer keeps, in batches of `batch`; how many.
pub async fn trim_change_log(
    store: &dyn IndicatorStore,
    retention: &Retention,
    now: Timestamp,
    batch: u32,
) -> Result<u64, StoreError> {
    if retention.max_age.is_none() && retention.max_entries.is_none() {
        return Ok(0);
    }
    let mut trimmed = 0;
    for tenant in store.tenants().await? {
        for _ in 0..MAX_BATCHES_PER_TENANT {
            let n = store
                .trim_change_log(&tenant, retention, now, batch)
                .await?;
            trimmed += n;
            if n < u64::from(batch) {
                break;
            }
        }
    }
    Ok(trimmed)
}

/// Runs both jobs every `config.interval` until the task is aborted.
pub fn spawn(store: Arc<dyn IndicatorStore>, config: SweepConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let now = time::now();
            match sweep_expired(store.as_ref(), now, config.batch).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired indicators swept"),
                Err(e) => tracing::warn!(error = %e, "the expiry sweep failed; retrying next time"),
            }
            match trim_change_log(store.as_ref(), &config.retention, now, config.batch).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(trimmed = n, "change-log entries past retention deleted"),
                Err(e) => tracing::warn!(error = %e, "trimming the change log failed"),
            }
        }
    })
}
