//! The expiry sweeper and the change log's retention, with time as a parameter: expired
//! indicators are deleted and logged once, live ones stay, and under a rolling load of
//! short-lived indicators the database holds only the live set and what retention keeps.

use chrono::{Duration, TimeZone, Utc};
use iocd_domain::time::Timestamp;
use iocd_domain::{parse_submission, Actor, Submission};
use iocd_store::sweeper::{sweep_expired, trim_change_log};
use iocd_store::{Retention, Scope, WriteLimits};
use iocd_testkit::{on_every_backend, ScratchDatabase};
use serde_json::json;

fn actor() -> Actor {
    Actor::new("feed", "Feed")
}

fn expiring(value: &str, at: Timestamp) -> Submission {
    parse_submission(&json!({
        "indicatorValue": value, "indicatorType": "DomainName", "action": "Block",
        "title": "t", "description": "d",
        "expirationTime": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }))
    .unwrap()
}

fn start() -> Timestamp {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

async fn the_sweeper_deletes_what_expired_and_logs_each_once() {
    let database = ScratchDatabase::for_current_backend().await;
    let store = iocd_store::open(&database.url).await.unwrap();
    let scope = Scope::tenant_wide("t1");
    let t0 = start();
    let items = (0..5)
        .map(|n| expiring(&format!("e{n}.example"), t0 + Duration::minutes(1)))
        .chain((0..3).map(|n| expiring(&format!("l{n}.example"), t0 + Duration::hours(1))))
        .collect();
    store
        .submit(&scope, &actor(), items, WriteLimits::default(), t0)
        .await
        .unwrap();
    // Before the expiry instant nothing goes.
    assert_eq!(sweep_expired(store.as_ref(), t0, 2).await.unwrap(), 0);
    // After it, the five expired ones go, in batches of two; twice at once removes each once.
    let later = t0 + Duration::minutes(2);
    let (a, b) = tokio::join!(
        sweep_expired(store.as_ref(), later, 2),
        sweep_expired(store.as_ref(), later, 2)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 5);
    assert_eq!(database.scalar("SELECT COUNT(*) FROM indicators").await, 3);
    let log = store.changes_after(&scope, 0, 100).await.unwrap();
    let expired: Vec<&str> = log
        .iter()
        .filter(|e| e.kind == iocd_domain::ChangeKind::Expired)
        .map(|e| e.indicator_value.as_str())
        .collect();
    assert_eq!(expired.len(), 5, "{log:?}");
    assert!(expired.iter().all(|v| v.starts_with('e')));
    let sequences: Vec<i64> = log.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=13).collect::<Vec<_>>());
    assert!(log[8..]
        .iter()
        .all(|e| e.actor.source == iocd_domain::ChangeSource::Sweeper && e.time == later));
}

/// 60 rounds, one a minute: each creates 20 indicators living 5 minutes, then the sweeper and
/// the trimming (retention 10 minutes) run. The rows left depend on the live set and the
/// retention, not on how long the load ran.
async fn a_rolling_load_leaves_a_bounded_database() {
    let database = ScratchDatabase::for_current_backend().await;
    let store = iocd_store::open(&database.url).await.unwrap();
    let scope = Scope::tenant_wide("rolling");
    let retention = Retention {
        max_age: Some(std::time::Duration::from_secs(600)),
        max_entries: None,
    };
    let t0 = start();
    let mut sizes = Vec::new();
    for round in 0..60 {
        let now = t0 + Duration::minutes(round);
        let items = (0..20)
            .map(|n| expiring(&format!("r{round}-{n}.example"), now + Duration::minutes(5)))
            .collect();
        store
            .submit(&scope, &actor(), items, WriteLimits::default(), now)
            .await
            .unwrap();
        sweep_expired(store.as_ref(), now, 50).await.unwrap();
        trim_change_log(store.as_ref(), &retention, now, 50)
            .await
            .unwrap();
        let rows = database.scalar("SELECT COUNT(*) FROM indicators").await;
        let entries = database.scalar("SELECT COUNT(*) FROM change_log").await;
        sizes.push((rows, entries));
    }
    // Live: the last 5 rounds' 100 (those expiring exactly now are swept). Log: 10 minutes of
    // creations and expiries, 20 + 20 a minute, plus the boundary minute.
    for (rows, entries) in &sizes[15..] {
        assert_eq!(*rows, 100, "{sizes:?}");
        assert!(*entries <= 11 * 40, "{sizes:?}");
    }
    assert_eq!(sizes[20], sizes[59], "steady state");
    // Trimming by count keeps the newest entries only.
    let by_count = Retention {
        max_age: None,
        max_entries: Some(25),
    };
    trim_change_log(store.as_ref(), &by_count, t0, 10)
        .await
        .unwrap();
    assert_eq!(database.scalar("SELECT COUNT(*) FROM change_log").await, 25);
    let newest = store.changes_after(&scope, 0, 100).await.unwrap();
    assert_eq!(newest.len(), 25);
    assert_eq!(
        newest.last().unwrap().sequence,
        database
            .scalar("SELECT last_change_seq FROM tenants WHERE tenant_id = 'rolling'")
            .await
    );
}

on_every_backend!(
    the_sweeper_deletes_what_expired_and_logs_each_once,
    a_rolling_load_leaves_a_bounded_database,
);
