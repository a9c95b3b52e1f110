//! How a group commit's commands turn into statements, applying the domain's upsert rules, the
//! quota and the ownership checks.
//!
//! Item by item, every submitted item would cost a key lookup and an insert or update:
//! statements that on SQLite are each a hand-off to sqlx's database thread, and on PostgreSQL
//! each a network round trip. A batch instead reads every row it may touch up front (one query
//! per tenant and indicator type for the submitted keys, one per tenant for the ids that deletes
//! name), runs all its commands in memory, in order, and writes the outcome back with one
//! `DELETE` and one upsert per tenant: a batch of 64 single creates is about 6 statements instead
//! of about 130.
//!
//! Where a batch meets something out of the ordinary (a database error, a stored row that does
//! not decode), the writer rolls it back and runs it again with [`run_one_at_a_time`]: each
//! command as a batch of its own, in a savepoint, so only the commands that meet the problem
//! fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use iocd_domain::change::{self, ChangeActor, ChangeEntry, ChangeKind};
use iocd_domain::time::Timestamp;
use iocd_domain::{Action, Actor, Indicator, IndicatorType, Submission};

use crate::protocol::{Counters, Outcome, WriteConnection};
use crate::rows::ticks;
use crate::{
    ChangeLogging, DeleteOutcome, DeleteVia, ItemError, ItemOutcome, ItemResult, Scope, StoreError,
    WriteLimits,
};

/// One queued command, as the batch reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Command<'a> {
    Submit {
        scope: &'a Scope,
        actor: &'a Actor,
        items: &'a [Submission],
        limits: WriteLimits,
        now: Timestamp,
    },
    Delete {
        scope: &'a Scope,
        actor: &'a Actor,
        ids: &'a [i64],
        via: DeleteVia,
        now: Timestamp,
    },
    /// Removes those of `ids` that are expired at `now` (the sweeper).
    Expire {
        scope: &'a Scope,
        ids: &'a [i64],
        now: Timestamp,
    },
}

/// A write as queued: the data a [`Command`] borrows.
#[derive(Debug)]
pub(crate) enum Work {
    Submit {
        scope: Scope,
        actor: Actor,
        items: Vec<Submission>,
        limits: WriteLimits,
        now: Timestamp,
    },
    Delete {
        scope: Scope,
        actor: Actor,
        ids: Vec<i64>,
        via: DeleteVia,
        now: Timestamp,
    },
    Expire {
        scope: Scope,
        ids: Vec<i64>,
        now: Timestamp,
    },
}

impl Work {
    pub(crate) fn command(&self) -> Command<'_> {
        match self {
            Work::Submit {
                scope,
                actor,
                items,
                limits,
                now,
            } => Command::Submit {
                scope,
                actor,
                items,
                limits: *limits,
                now: *now,
            },
            Work::Delete {
                scope,
                actor,
                ids,
                via,
                now,
            } => Command::Delete {
                scope,
                actor,
                ids,
                via: *via,
                now: *now,
            },
            Work::Expire { scope, ids, now } => Command::Expire {
                scope,
                ids,
                now: *now,
            },
        }
    }
}

impl Command<'_> {
    pub(crate) fn tenant(&self) -> &str {
        match self {
            Command::Submit { scope, .. }
            | Command::Delete { scope, .. }
            | Command::Expire { scope, .. } => &scope.tenant_id,
        }
    }

    fn now(&self) -> Timestamp {
        match self {
            Command::Submit { now, .. }
            | Command::Delete { now, .. }
            | Command::Expire { now, .. } => *now,
        }
    }
}

/// Runs the batch's commands in the transaction `conn` has open and writes their effects, or
/// returns `None` when the batch must go the slow path. Leaves the transaction open either way.
pub(crate) async fn run<C: WriteConnection>(
    conn: &mut C,
    commands: &[Command<'_>],
    log: ChangeLogging,
) -> Result<Option<Vec<Outcome>>, StoreError> {
    let reads = ReadSet::of(commands);
    let mut snapshot = Snapshot::default();
    for ((tenant, indicator_type), values) in &reads.values {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        for row in conn
            .fetch_by_values(tenant, indicator_type, &values)
            .await?
        {
            snapshot
                .rows
                .push((tenant.clone(), Indicator::try_from(row)?));
        }
    }
    for (tenant, ids) in &reads.ids {
        let ids: Vec<i64> = ids.iter().copied().collect();
        for row in conn.fetch_by_ids(tenant, &ids).await? {
            snapshot
                .rows
                .push((tenant.clone(), Indicator::try_from(row)?));
        }
    }
    for tenant in &reads.counters {
        let counters = conn.counters(tenant).await?;
        snapshot.counters.insert(tenant.clone(), counters);
    }
    for (tenant, now) in counts_needed(commands, &snapshot.rows) {
        let count = conn.count_active(&tenant, ticks(now)).await?;
        snapshot.active_counts.insert(tenant, count.max(0) as u64);
    }
    let Some(plan) = plan(commands, snapshot, log) else {
        return Ok(None);
    };
    for (tenant, ids) in &plan.deletes {
        conn.delete_many(tenant, ids).await?;
    }
    for (tenant, rows) in &plan.upserts {
        conn.upsert_many(tenant, rows).await?;
    }
    for (tenant, entries) in &plan.changes {
        conn.append_changes(tenant, entries).await?;
    }
    for (tenant, counters) in &plan.counters {
        conn.set_counters(tenant, *counters).await?;
    }
    Ok(Some(plan.outcomes))
}

/// The fallback: opens the batch's transaction and runs every command in it, in order, each as
/// a batch of one inside a savepoint of its own, so a database error undoes only the command
/// that met it. Leaves the transaction open.
pub(crate) async fn run_one_at_a_time<C: WriteConnection>(
    conn: &mut C,
    tenants: &[String],
    commands: &[Command<'_>],
    log: ChangeLogging,
) -> Result<Vec<Outcome>, sqlx::Error> {
    conn.begin(tenants).await?;
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        outcomes.push(run_in_savepoint(conn, command, log).await);
    }
    Ok(outcomes)
}

async fn run_in_savepoint<C: WriteConnection>(
    conn: &mut C,
    command: &Command<'_>,
    log: ChangeLogging,
) -> Outcome {
    let ran = match conn.execute("SAVEPOINT command").await {
        Ok(()) => run(conn, std::slice::from_ref(command), log).await,
        Err(e) => Err(e.into()),
    };
    let outcome = match ran {
        Ok(Some(mut outcomes)) if outcomes.len() == 1 => outcomes.pop(),
        Ok(_) => None,
        Err(e) => {
            let _ = conn.execute("ROLLBACK TO SAVEPOINT command").await;
            Some(Outcome::failed(command, e))
        }
    };
    let _ = conn.execute("RELEASE SAVEPOINT command").await;
    // A batch of one always has the reads its plan needs; should that ever fail, the command
    // fails rather than guess.
    outcome.unwrap_or_else(|| {
        let error = StoreError::CommitFailed("the command could not be planned".to_string());
        Outcome::failed(command, error)
    })
}

/// What a batch reads before it runs its commands in memory.
#[derive(Debug, Default, PartialEq)]
struct ReadSet {
    /// Submitted value keys, by tenant and indicator type (the leading columns of the upsert
    /// key's unique index, so each group is one index search).
    values: BTreeMap<(String, &'static str), BTreeSet<String>>,
    /// Ids that deletes and expiries name, by tenant.
    ids: BTreeMap<String, BTreeSet<i64>>,
    /// Every tenant of the batch: its counters are read.
    counters: BTreeSet<String>,
}

impl ReadSet {
    fn of(commands: &[Command]) -> ReadSet {
        let mut reads = ReadSet::default();
        for command in commands {
            match command {
                Command::Submit { scope, items, .. } => {
                    reads.counters.insert(scope.tenant_id.clone());
                    for sub in *items {
                        reads
                            .values
                            .entry((scope.tenant_id.clone(), sub.indicator_type.as_str()))
                            .or_default()
                            .insert(sub.value_key.clone());
                    }
                }
                Command::Delete { scope, ids, .. } | Command::Expire { scope, ids, .. } => {
                    reads.counters.insert(scope.tenant_id.clone());
                    reads
                        .ids
                        .entry(scope.tenant_id.clone())
                        .or_default()
                        .extend(ids.iter().copied());
                }
            }
        }
        reads
    }
}

/// The stored state a batch starts from.
#[derive(Debug, Default)]
struct Snapshot {
    /// Every stored row the batch may touch, with its tenant (a row may appear twice).
    rows: Vec<(String, Indicator)>,
    /// The counters of every tenant of the batch.
    counters: HashMap<String, Counters>,
    /// Active indicators, per tenant whose quota the batch may reach.
    active_counts: HashMap<String, u64>,
}

/// The tenants whose active indicators must be counted, and the time to count them at: those
/// with a quota where the batch may create an indicator (a submitted key with no active stored
/// row) or free room (a delete). Counting at the batch's earliest time counts every indicator
/// that is active at any of its commands' times, so the count errs towards refusing a create
/// in the rare batch during which an indicator expires, never towards exceeding the quota.
fn counts_needed(commands: &[Command], stored: &[(String, Indicator)]) -> Vec<(String, Timestamp)> {
    let active_keys: HashMap<Key, &Indicator> = stored
        .iter()
        .map(|(tenant, ind)| (Key::of_indicator(tenant, ind), ind))
        .collect();
    let mut may_create: BTreeSet<&str> = BTreeSet::new();
    let mut limited: BTreeSet<&str> = BTreeSet::new();
    let mut earliest: HashMap<&str, Timestamp> = HashMap::new();
    for command in commands {
        let tenant = command.tenant();
        let now = command.now();
        earliest
            .entry(tenant)
            .and_modify(|t| *t = (*t).min(now))
            .or_insert(now);
        match command {
            Command::Submit { items, limits, .. } => {
                if limits.max_active_indicators.is_none() {
                    continue;
                }
                limited.insert(tenant);
                let creates = items.iter().any(|sub| {
                    active_keys
                        .get(&Key::of_submission(tenant, sub))
                        .is_none_or(|ind| !ind.is_active(now))
                });
                if creates {
                    may_create.insert(tenant);
                }
            }
            Command::Delete { .. } | Command::Expire { .. } => {
                may_create.insert(tenant);
            }
        }
    }
    limited
        .intersection(&may_create)
        .map(|tenant| (tenant.to_string(), earliest[tenant]))
        .collect()
}

/// An upsert key: one indicator per tenant, type, normalised value and action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: String,
    indicator_type: IndicatorType,
    value_key: String,
    action: Action,
}

impl Key {
    fn of_submission(tenant: &str, sub: &Submission) -> Key {
        Key {
            tenant: tenant.to_string(),
            indicator_type: sub.indicator_type,
            value_key: sub.value_key.clone(),
            action: sub.action,
        }
    }

    fn of_indicator(tenant: &str, ind: &Indicator) -> Key {
        Key {
            tenant: tenant.to_string(),
            indicator_type: ind.indicator_type,
            value_key: ind.value_key.clone(),
            action: ind.action,
        }
    }
}

/// What the batch writes back, and its commands' answers.
#[derive(Debug)]
struct Plan {
    outcomes: Vec<Outcome>,
    /// Stored rows to remove, by tenant. Removed before the upserts run: an expired row's key
    /// may have been taken by a new indicator.
    deletes: BTreeMap<String, Vec<i64>>,
    /// Rows to insert or rewrite whole, by tenant, in id order.
    upserts: BTreeMap<String, Vec<Indicator>>,
    /// Change-log entries to append, numbered, by tenant.
    changes: BTreeMap<String, Vec<ChangeEntry>>,
    /// The new counters, for tenants whose counters moved.
    counters: BTreeMap<String, Counters>,
}

/// One row as the batch sees it.
#[derive(Debug)]
struct Slot {
    indicator: Indicator,
    /// It was stored before the batch.
    stored: bool,
    /// The batch changed or created it.
    changed: bool,
    /// The batch removed it (deleted, or replaced after it expired).
    removed: bool,
}

/// The rows of a batch, in memory, as its commands change them.
struct Working {
    slots: HashMap<(String, i64), Slot>,
    /// The id holding each key among the rows not removed.
    keys: HashMap<Key, i64>,
    counters: HashMap<String, Counters>,
    active_counts: HashMap<String, u64>,
    log: ChangeLogging,
    changes: BTreeMap<String, Vec<ChangeEntry>>,
}

/// Runs the commands in order against the snapshot. `None` when the snapshot lacks what a
/// command needs (it cannot, given [`ReadSet`] and [`counts_needed`]; the slow path is the
/// safe answer if it ever does).
fn plan(commands: &[Command], snapshot: Snapshot, log: ChangeLogging) -> Option<Plan> {
    let mut working = Working {
        slots: HashMap::with_capacity(snapshot.rows.len()),
        keys: HashMap::with_capacity(snapshot.rows.len()),
        counters: snapshot.counters.clone(),
        active_counts: snapshot.active_counts,
        log,
        changes: BTreeMap::new(),
    };
    for (tenant, indicator) in snapshot.rows {
        working
            .keys
            .insert(Key::of_indicator(&tenant, &indicator), indicator.id);
        working.slots.insert(
            (tenant, indicator.id),
            Slot {
                indicator,
                stored: true,
                changed: false,
                removed: false,
            },
        );
    }
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        outcomes.push(match *command {
            Command::Submit {
                scope,
                actor,
                items,
                limits,
                now,
            } => Outcome::Submit(Ok(working.submit(scope, actor, items, limits, now)?)),
            Command::Delete {
                scope,
                actor,
                ids,
                via,
                now,
            } => Outcome::Delete(Ok(working.delete(scope, actor, ids, via, now))),
            Command::Expire { scope, ids, now } => {
                Outcome::Expire(Ok(working.expire(scope, ids, now)))
            }
        });
    }
    let mut plan = Plan {
        outcomes,
        deletes: BTreeMap::new(),
        upserts: BTreeMap::new(),
        changes: working.changes,
        counters: BTreeMap::new(),
    };
    for ((tenant, id), slot) in working.slots {
        if slot.removed {
            if slot.stored {
                plan.deletes.entry(tenant).or_default().push(id);
            }
        } else if slot.changed {
            plan.upserts.entry(tenant).or_default().push(slot.indicator);
        }
    }
    plan.deletes
        .values_mut()
        .for_each(|ids| ids.sort_unstable());
    plan.upserts
        .values_mut()
        .for_each(|rows| rows.sort_unstable_by_key(|ind| ind.id));
    for (tenant, counters) in working.counters {
        if snapshot.counters.get(&tenant) != Some(&counters) {
            plan.counters.insert(tenant, counters);
        }
    }
    Some(plan)
}

impl Working {
    /// The upsert rules, item by item: an active indicator with the key is updated (if the
    /// scope may change it), an expired one is replaced, otherwise one is created (within the
    /// quota).
    fn submit(
        &mut self,
        scope: &Scope,
        actor: &Actor,
        items: &[Submission],
        limits: WriteLimits,
        now: Timestamp,
    ) -> Option<Vec<ItemResult>> {
        let tenant = &scope.tenant_id;
        let mut results = Vec::with_capacity(items.len());
        for sub in items {
            let key = Key::of_submission(tenant, sub);
            if let Some(&id) = self.keys.get(&key) {
                let slot = self.slots.get_mut(&(tenant.clone(), id))?;
                if slot.indicator.is_active(now) {
                    if scope
                        .owner
                        .as_ref()
                        .is_some_and(|owner| *owner != slot.indicator.created_by)
                    {
                        results.push(Err(ItemError::NotOwner { id }));
                        continue;
                    }
                    let before = self.log.on().then(|| slot.indicator.clone());
                    slot.indicator.apply_update(sub, actor, now);
                    slot.changed = true;
                    let updated = slot.indicator.clone();
                    if !updated.is_active(now) {
                        // Updated to an expiration time already past: it no longer counts.
                        if let Some(count) = self.active_counts.get_mut(tenant) {
                            *count = count.saturating_sub(1);
                        }
                    }
                    if let Some(before) = before {
                        let (kind, changes) = change::update_change(&before, &updated);
                        let entry =
                            ChangeEntry::new(kind, &updated, ChangeActor::of(actor), changes, now);
                        self.append(tenant, entry)?;
                    }
                    results.push(Ok(ItemOutcome::Updated(updated)));
                    continue;
                }
                // An expired indicator is gone as far as clients can tell; its key starts afresh.
                slot.removed = true;
                self.keys.remove(&key);
                if self.log.on() {
                    let entry = expired_entry(&slot.indicator, now);
                    self.append(tenant, entry)?;
                }
            }
            if let Some(limit) = limits.max_active_indicators {
                if *self.active_counts.get(tenant)? >= limit {
                    results.push(Err(ItemError::QuotaExceeded { limit }));
                    continue;
                }
            }
            let counters = self.counters.get_mut(tenant)?;
            counters.last_id += 1;
            let indicator = Indicator::create(counters.last_id, sub, actor, now);
            if self.log.on() {
                let changes = change::diff(None, Some(&indicator));
                let entry = ChangeEntry::new(
                    ChangeKind::Created,
                    &indicator,
                    ChangeActor::of(actor),
                    changes,
                    now,
                );
                self.append(tenant, entry)?;
            }
            if indicator.is_active(now) {
                // One created with an expiration time already past is stored but not counted.
                if let Some(count) = self.active_counts.get_mut(tenant) {
                    *count += 1;
                }
            }
            self.keys.insert(key, indicator.id);
            self.slots.insert(
                (tenant.clone(), indicator.id),
                Slot {
                    indicator: indicator.clone(),
                    stored: false,
                    changed: true,
                    removed: false,
                },
            );
            results.push(Ok(ItemOutcome::Created(indicator)));
        }
        Some(results)
    }

    /// Numbers `entry` with the tenant's next sequence number and queues it. `None` when the
    /// tenant's counters were not read (the slow path then fails the command).
    fn append(&mut self, tenant: &str, mut entry: ChangeEntry) -> Option<()> {
        let counters = self.counters.get_mut(tenant)?;
        counters.last_seq += 1;
        entry.sequence = counters.last_seq;
        self.changes
            .entry(tenant.to_string())
            .or_default()
            .push(entry);
        Some(())
    }

    /// Removes those of `ids` that are stored and expired at `now`; how many.
    fn expire(&mut self, scope: &Scope, ids: &[i64], now: Timestamp) -> usize {
        let tenant = &scope.tenant_id;
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut removed = 0;
        for id in unique {
            let Some(slot) = self.slots.get_mut(&(tenant.clone(), id)) else {
                continue;
            };
            if slot.removed || slot.indicator.is_active(now) {
                continue;
            }
            slot.removed = true;
            self.keys
                .remove(&Key::of_indicator(tenant, &slot.indicator));
            removed += 1;
            if self.log.on() {
                let entry = expired_entry(&slot.indicator, now);
                // The counters of every tenant with ids are read.
                let _ = self.append(tenant, entry);
            }
        }
        removed
    }

    /// Deletes all of `ids`, or none if one is not an active indicator visible to the scope.
    fn delete(
        &mut self,
        scope: &Scope,
        actor: &Actor,
        ids: &[i64],
        via: DeleteVia,
        now: Timestamp,
    ) -> DeleteOutcome {
        let tenant = &scope.tenant_id;
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let missing: Vec<i64> = unique
            .iter()
            .copied()
            .filter(|&id| {
                !self.slots.get(&(tenant.clone(), id)).is_some_and(|slot| {
                    !slot.removed
                        && slot.indicator.is_active(now)
                        && scope
                            .owner
                            .as_ref()
                            .is_none_or(|owner| *owner == slot.indicator.created_by)
                })
            })
            .collect();
        if !missing.is_empty() {
            return DeleteOutcome::NotFound(missing);
        }
        let kind = match via {
            DeleteVia::Single => ChangeKind::Deleted,
            DeleteVia::Batch => ChangeKind::BatchDeleted,
        };
        for &id in &unique {
            let mut removed = None;
            if let Some(slot) = self.slots.get_mut(&(tenant.clone(), id)) {
                slot.removed = true;
                self.keys
                    .remove(&Key::of_indicator(tenant, &slot.indicator));
                if self.log.on() {
                    removed = Some(ChangeEntry::new(
                        kind,
                        &slot.indicator,
                        ChangeActor::of(actor),
                        Vec::new(),
                        now,
                    ));
                }
            }
            if let Some(entry) = removed {
                // The counters of every tenant with ids are read.
                let _ = self.append(tenant, entry);
            }
            if let Some(count) = self.active_counts.get_mut(tenant) {
                *count = count.saturating_sub(1);
            }
        }
        DeleteOutcome::Deleted(unique.len())
    }
}

/// The entry of an indicator removed because it expired.
fn expired_entry(indicator: &Indicator, now: Timestamp) -> ChangeEntry {
    ChangeEntry::new(
        ChangeKind::Expired,
        indicator,
        ChangeActor::sweeper(),
        Vec::new(),
        now,
    )
}

#[cfg(test)]
mod tests {
    //! Batched against one at a time: the same random commands, on two SQLite databases, run as
    //! whole batches on one and one command per batch on the other; every answer and the final
    //! tables must be identical.

    use std::str::FromStr;

    use chrono::{Duration, TimeZone, Utc};
    use serde_json::json;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, SqliteConnection};

    use super::*;
    use crate::rows::IndicatorRow;
    use crate::sql::COLUMNS;
    use crate::sqlite::SqliteWriter;
    use crate::SqliteStore;

    /// xorshift64*: reproducible commands without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    fn random_submission(rng: &mut Rng, now: Timestamp) -> Submission {
        let n = rng.below(12);
        let (indicator_type, value) = if rng.chance(50) {
            // Two spellings of one domain: the same key, and an update re-spells the value.
            let host = if rng.chance(30) { "HOST" } else { "host" };
            ("DomainName", format!("{host}{n}.example.com"))
        } else {
            ("IpAddress", format!("203.0.113.{n}"))
        };
        let mut body = json!({
            "indicatorValue": value,
            "indicatorType": indicator_type,
            "action": if rng.chance(70) { "Alert" } else { "Block" },
            "title": format!("title {}", rng.below(1000)),
            "description": "from the equivalence test",
        });
        if rng.chance(50) {
            let minutes = rng.below(50) as i64 - 10;
            body["expirationTime"] = json!((now + Duration::minutes(minutes))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string());
        }
        if rng.chance(30) {
            body["severity"] = json!("High");
        }
        iocd_domain::parse_submission(&body).expect("a valid submission")
    }

    fn random_batch(rng: &mut Rng, now: Timestamp, limits: WriteLimits) -> Vec<Work> {
        (0..1 + rng.below(8))
            .map(|_| {
                let tenant = if rng.chance(70) { "t1" } else { "t2" };
                let app = if rng.chance(50) { "app-a" } else { "app-b" };
                let scope = Scope {
                    tenant_id: tenant.to_string(),
                    owner: (!rng.chance(40)).then(|| app.to_string()),
                };
                if rng.chance(20) {
                    let ids: Vec<i64> = (0..1 + rng.below(3))
                        .map(|_| 1 + rng.below(40) as i64)
                        .collect();
                    // Not drawn from `rng`: the commands stay those the seeds were chosen for.
                    let via = if ids.len() > 1 {
                        DeleteVia::Batch
                    } else {
                        DeleteVia::Single
                    };
                    Work::Delete {
                        scope,
                        actor: Actor::new(app.to_string(), format!("{app} display")),
                        ids,
                        via,
                        now,
                    }
                } else {
                    Work::Submit {
                        scope,
                        actor: Actor::new(app.to_string(), format!("{app} display")),
                        items: (0..1 + rng.below(4))
                            .map(|_| random_submission(rng, now))
                            .collect(),
                        limits,
                        now,
                    }
                }
            })
            .collect()
    }

    async fn database(dir: &tempfile::TempDir, name: &str) -> (SqliteWriter, SqliteConnection) {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        drop(SqliteStore::open(&url).await.expect("migrated"));
        let options = SqliteConnectOptions::from_str(&url).expect("url");
        let writer = SqliteWriter::new(options.connect().await.expect("writer"));
        (writer, options.connect().await.expect("reader"))
    }

    async fn dump(conn: &mut SqliteConnection) -> Vec<String> {
        let sql = format!("SELECT {COLUMNS} FROM indicators ORDER BY tenant_id, id");
        let rows: Vec<IndicatorRow> = sqlx::query_as(&sql).fetch_all(&mut *conn).await.unwrap();
        let counters: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT tenant_id, next_indicator_id, last_change_seq FROM tenants ORDER BY tenant_id",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let changes: Vec<(String, i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT tenant_id, seq, indicator_id, kind, actor_id, changes FROM change_log \
             ORDER BY tenant_id, seq",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert!(!changes.is_empty());
        rows.into_iter()
            .map(|row| format!("{:?}", Indicator::try_from(row).unwrap()))
            .chain(counters.iter().map(|c| format!("{c:?}")))
            .chain(changes.iter().map(|c| format!("{c:?}")))
            .collect()
    }

    async fn compare_paths(seed: u64, limits: WriteLimits) {
        let dir = tempfile::tempdir().unwrap();
        let (mut fast, mut fast_reader) = database(&dir, "fast.db").await;
        let (mut slow, mut slow_reader) = database(&dir, "slow.db").await;
        let mut rng = Rng(seed);
        let start = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let (mut created, mut updated, mut refused, mut deleted) = (0, 0, 0, 0);
        for step in 0..80 {
            // One time per batch: one command at a time counts the quota at each command's time,
            // a batch at its earliest, which differ only if a row expires in between.
            let now = start + Duration::minutes(5 * step);
            let owned = random_batch(&mut rng, now, limits);
            let commands: Vec<Command> = owned.iter().map(Work::command).collect();
            let mut tenants: Vec<String> =
                commands.iter().map(|c| c.tenant().to_string()).collect();
            tenants.sort_unstable();
            tenants.dedup();

            fast.begin(&tenants).await.unwrap();
            let fast_outcomes = run(&mut fast, &commands, ChangeLogging::On)
                .await
                .unwrap()
                .expect("fast path");
            fast.commit().await.unwrap();
            let slow_outcomes =
                run_one_at_a_time(&mut slow, &tenants, &commands, ChangeLogging::On)
                    .await
                    .unwrap();
            slow.commit().await.unwrap();

            assert_eq!(
                format!("{fast_outcomes:#?}"),
                format!("{slow_outcomes:#?}"),
                "seed {seed}, step {step}"
            );
            for outcome in &fast_outcomes {
                match outcome {
                    Outcome::Submit(Ok(results)) => {
                        for r in results {
                            match r {
                                Ok(ItemOutcome::Created(_)) => created += 1,
                                Ok(ItemOutcome::Updated(_)) => updated += 1,
                                Err(_) => refused += 1,
                            }
                        }
                    }
                    Outcome::Delete(Ok(DeleteOutcome::Deleted(n))) => deleted += n,
                    _ => {}
                }
            }
        }
        assert_eq!(dump(&mut fast_reader).await, dump(&mut slow_reader).await);
        // The commands must have exercised every rule, or the comparison proves little.
        assert!(created > 20 && updated > 20 && refused > 5 && deleted > 3,
            "seed {seed}: created {created}, updated {updated}, refused {refused}, deleted {deleted}");
    }

    #[tokio::test]
    async fn batched_commands_answer_and_write_as_one_by_one_with_a_quota() {
        for seed in [1, 2, 3] {
            compare_paths(
                seed,
                WriteLimits {
                    max_active_indicators: Some(12),
                },
            )
            .await;
        }
    }

    /// A stored row that does not decode fails the batch; run again one command at a time, only
    /// the command that touches the row fails, and its batch-mate (queued together with it,
    /// so usually in the same batch) still lands.
    #[tokio::test]
    async fn a_command_that_meets_a_corrupt_row_fails_alone() {
        use crate::IndicatorStore;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("corrupt.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let scope = Scope::tenant_wide("t1");
        let actor = Actor::new("app", "App");
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let submission = |value: &str| {
            iocd_domain::parse_submission(&json!({
                "indicatorValue": value, "indicatorType": "DomainName",
                "action": "Alert", "title": "t", "description": "d"
            }))
            .unwrap()
        };
        let limits = WriteLimits::default();
        store
            .submit(&scope, &actor, vec![submission("bad.example")], limits, now)
            .await
            .unwrap();
        let mut conn = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE indicators SET rbac_group_names = 'not json'")
            .execute(&mut conn)
            .await
            .unwrap();
        let (touching, other) = tokio::join!(
            store.submit(&scope, &actor, vec![submission("bad.example")], limits, now),
            store.submit(
                &scope,
                &actor,
                vec![submission("good.example")],
                limits,
                now
            ),
        );
        assert!(
            matches!(touching, Err(StoreError::Corrupt(_))),
            "{touching:?}"
        );
        let other = other.unwrap();
        assert!(
            matches!(other[..], [Ok(ItemOutcome::Created(_))]),
            "{other:?}"
        );
        assert_eq!(store.count_active("t1", now).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn batched_commands_answer_and_write_as_one_by_one_without_a_quota() {
        for seed in [4, 5] {
            compare_paths(seed, WriteLimits::default()).await;
        }
    }
}
