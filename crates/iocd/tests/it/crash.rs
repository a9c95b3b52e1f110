//! Durability under SIGKILL: a 200 means the indicator is on disk.
//!
//! A write load (new indicators and updates of acknowledged ones, from many connections) runs
//! against the real `iocd` binary; the server is killed with SIGKILL mid-stream and restarted
//! on the same database. Every acknowledged create must be there with an acknowledged (or a
//! later, unacknowledged but committed) version of its content, ids must not be reused, and
//! the database must be consistent. The change log must hold every acknowledged change and
//! nothing the table lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iocd_testkit::{env, IocdProcess, ScratchDatabase};
use serde_json::{json, Value};
use sqlx::Connection;

const WRITERS: usize = 24;
/// How long the load runs before the kill: long enough for thousands of acknowledgements.
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(1500);

/// What the writers sent for one indicator value and what was acknowledged.
#[derive(Default)]
struct Ledger {
    /// Value → (id from the acknowledged create, titles sent in order, index of the last
    /// acknowledged title).
    values: HashMap<String, (i64, Vec<String>, usize)>,
    acknowledged_writes: usize,
}

fn body(value: &str, title: &str) -> Value {
    json!({
        "indicatorValue": value,
        "indicatorType": "DomainName",
        "action": "Block",
        "severity": "High",
        "title": title,
        "description": format!("crash test indicator {value}"),
        "rbacGroupNames": ["crash", "test"]
    })
}

/// Posts until the server goes away: each writer creates new values and, every third request,
/// updates one of its acknowledged values with a new title.
async fn write_until_refused(
    writer: usize,
    base: String,
    auth: Option<String>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let client = reqwest::Client::new();
    let mut mine: Vec<String> = Vec::new();
    for n in 0.. {
        let update = n % 3 == 2 && !mine.is_empty();
        let value = if update {
            mine[n % mine.len()].clone()
        } else {
            format!("w{writer}-n{n}.crash.example")
        };
        let title = format!("title {writer}/{n}");
        if update {
            ledger
                .lock()
                .unwrap()
                .values
                .get_mut(&value)
                .unwrap()
                .1
                .push(title.clone());
        }
        let mut req = client
            .post(format!("{base}/api/indicators"))
            .json(&body(&value, &title));
        if let Some(auth) = &auth {
            req = req.header("Authorization", auth);
        }
        let Ok(res) = req.send().await else { return };
        if res.status() != 200 {
            // A request cut by the kill fails to send; anything else is a real error.
            let status = res.status();
            let text = res.text().await.unwrap_or_default();
            panic!("write answered {status}: {text}");
        }
        let Ok(entity) = res.json::<Value>().await else {
            return;
        };
        let id: i64 = entity["id"].as_str().unwrap().parse().unwrap();
        let mut ledger = ledger.lock().unwrap();
        ledger.acknowledged_writes += 1;
        if update {
            let entry = ledger.values.get_mut(&value).unwrap();
            assert_eq!(entry.0, id, "an update changed the id of {value}");
            let sent = entry.1.iter().position(|t| *t == title).unwrap();
            entry.2 = entry.2.max(sent);
        } else {
            ledger.values.insert(value.clone(), (id, vec![title], 0));
            mine.push(value);
        }
    }
}

/// An unthrottled server over `database`, and the `Authorization` header of a new app's token.
async fn start(database: &ScratchDatabase) -> (IocdProcess, Option<String>) {
    let server = crate::iocd()
        .serve()
        .database(&database.url)
        .unthrottled()
        .start()
        .await;
    let token = crate::iocd()
        .token_for_new_app(&database.url, &server.base_url())
        .await;
    (server, Some(format!("Bearer {token}")))
}

async fn crash_and_recover(database: ScratchDatabase) {
    let (mut server, auth) = start(&database).await;
    let base = server.base_url();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(write_until_refused(
                w,
                base.clone(),
                auth.clone(),
                ledger.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    server.kill();
    for w in writers {
        w.await.expect("a writer panicked");
    }
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "{} writes acknowledged ({} values) before SIGKILL",
        ledger.acknowledged_writes,
        ledger.values.len()
    );
    assert!(
        ledger.acknowledged_writes >= 200,
        "only {} writes were acknowledged before the kill; the test proves nothing",
        ledger.acknowledged_writes
    );

    let (server, auth) = start(&database).await;
    let base = server.base_url();
    let client = reqwest::Client::new();
    let mut max_id = 0;
    let mut stored_titles: HashMap<i64, String> = HashMap::new();
    for (value, (id, titles, acknowledged)) in &ledger.values {
        max_id = max_id.max(*id);
        let mut req = client.get(format!("{base}/api/indicators/{id}"));
        if let Some(auth) = &auth {
            req = req.header("Authorization", auth);
        }
        let res = req.send().await.unwrap();
        assert_eq!(
            res.status(),
            200,
            "acknowledged indicator {id} ({value}) is lost"
        );
        let got: Value = res.json().await.unwrap();
        assert_eq!(got["indicatorValue"], *value);
        assert_eq!(got["severity"], "High");
        assert_eq!(got["description"], format!("crash test indicator {value}"));
        assert_eq!(got["rbacGroupNames"], json!(["crash", "test"]));
        let title = got["title"].as_str().unwrap();
        assert!(
            titles[*acknowledged..].iter().any(|t| t == title),
            "{value} has title '{title}', older than its acknowledged '{}'",
            titles[*acknowledged]
        );
        stored_titles.insert(*id, title.to_string());
    }
    assert_change_log_matches(&client, &base, auth.as_deref(), &stored_titles).await;

    // The restarted server goes on writing, and never hands out an id it gave before.
    let mut req = client
        .post(format!("{base}/api/indicators"))
        .json(&body("after.crash.example", "after"));
    if let Some(auth) = &auth {
        req = req.header("Authorization", auth);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let after: Value = res.json().await.unwrap();
    let after_id: i64 = after["id"].as_str().unwrap().parse().unwrap();
    assert!(
        after_id > max_id,
        "id {after_id} reused (acknowledged up to {max_id})"
    );
    drop(server);

    assert_consistent(&database, ledger.values.len() as i64 + 1).await;
}

/// The change log after the crash: gapless, and in step with the table. Every acknowledged
/// create has its entry, and the last title each indicator's entries record is the title the
/// table holds (so no acknowledged update is missing from the log, and no logged change from
/// the table); a logged creation that was never acknowledged is in the table too.
async fn assert_change_log_matches(
    client: &reqwest::Client,
    base: &str,
    auth: Option<&str>,
    stored_titles: &HashMap<i64, String>,
) {
    let mut entries: Vec<Value> = Vec::new();
    let mut since = 0;
    loop {
        let mut req = client.get(format!("{base}/iocd/v1/changes?since={since}&limit=1000"));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        let value = page["value"].as_array().expect("a page of changes").clone();
        if value.is_empty() {
            break;
        }
        since = page["nextSince"].as_i64().unwrap();
        entries.extend(value);
    }
    let mut logged_titles: HashMap<i64, String> = HashMap::new();
    let mut created: Vec<i64> = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        assert_eq!(entry["sequence"], n as i64 + 1, "a gap in the change log");
        let id: i64 = entry["indicatorId"].as_str().unwrap().parse().unwrap();
        if entry["kind"] == "Created" {
            created.push(id);
        }
        let title_change = entry["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["property"] == "title");
        if let Some(change) = title_change {
            logged_titles.insert(id, change["new"].as_str().unwrap().to_string());
        }
    }
    for (id, title) in stored_titles {
        assert!(
            created.contains(id),
            "acknowledged create {id} is not in the log"
        );
        assert_eq!(
            logged_titles.get(id),
            Some(title),
            "indicator {id}: the log's last title differs from the table's"
        );
    }
    // A create committed just before the kill but never acknowledged is in the log: it must be
    // in the table too, as the log last describes it.
    for id in created.iter().filter(|id| !stored_titles.contains_key(id)) {
        let mut req = client.get(format!("{base}/api/indicators/{id}"));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "the log created {id}; the table lost it");
        let got: Value = res.json().await.unwrap();
        assert_eq!(
            got["title"].as_str(),
            logged_titles.get(id).map(String::as_str)
        );
    }
}

/// The database after recovery: structurally sound, one row per upsert key, id counters ahead
/// of every id, and at least as many rows as acknowledged creates.
async fn assert_consistent(database: &ScratchDatabase, acknowledged_rows: i64) {
    const DUPLICATE_KEYS: &str = "SELECT COUNT(*) FROM (SELECT tenant_id, indicator_type, value_key, action \
        FROM indicators GROUP BY tenant_id, indicator_type, value_key, action HAVING COUNT(*) > 1) AS d";
    const IDS_AHEAD_OF_COUNTER: &str = "SELECT COUNT(*) FROM indicators i JOIN tenants t \
        ON t.tenant_id = i.tenant_id WHERE i.id > t.next_indicator_id";
    const ROWS: &str = "SELECT COUNT(*) FROM indicators";
    if !database.is_postgres() {
        let mut conn = sqlx::SqliteConnection::connect(&database.url)
            .await
            .unwrap();
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(integrity, vec!["ok".to_string()], "PRAGMA integrity_check");
    }
    let duplicates = database.scalar(DUPLICATE_KEYS).await;
    let ahead = database.scalar(IDS_AHEAD_OF_COUNTER).await;
    let rows = database.scalar(ROWS).await;
    assert_eq!(duplicates, 0, "upsert keys stored more than once");
    assert_eq!(ahead, 0, "ids beyond their tenant's counter");
    assert!(
        rows >= acknowledged_rows,
        "{rows} rows for {acknowledged_rows} acknowledged creates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_every_acknowledged_write_on_sqlite() {
    crash_and_recover(ScratchDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_every_acknowledged_write_on_postgres() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    crash_and_recover(ScratchDatabase::postgres(&admin).await).await;
}
