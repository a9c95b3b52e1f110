//! The change log over HTTP: every kind of change is one entry with its diff, refused requests
//! log nothing, `GET /iocd/v1/changes` returns each change once and in order (also under
//! concurrent writers), the long-poll wakes on a write, the event stream delivers entries as
//! they commit, and the log is tenant- and owner-scoped.

use std::time::{Duration, Instant};

use iocd_identity::Role;
use iocd_server::ServerConfig;
use iocd_testkit::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn ok_json(res: reqwest::Response) -> Value {
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn create(server: &TestServer, body: &Value) -> i64 {
    let created = ok_json(server.post_json("/api/indicators", body).await).await;
    created["id"].as_str().unwrap().parse().unwrap()
}

/// Every entry after `since`, read in pages of `limit`, as `token`.
async fn feed_as(server: &TestServer, token: &str, since: i64, limit: u32) -> Vec<Value> {
    let mut since = since;
    let mut entries = Vec::new();
    loop {
        let path = format!("/iocd/v1/changes?since={since}&limit={limit}");
        let page = ok_json(server.send_as(token, Method::GET, &path).await).await;
        let value = page["value"].as_array().unwrap().clone();
        let next = page["nextSince"].as_i64().unwrap();
        if value.is_empty() {
            assert_eq!(next, since, "{page}");
            return entries;
        }
        assert_eq!(next, value.last().unwrap()["sequence"].as_i64().unwrap());
        since = next;
        entries.extend(value);
    }
}

async fn feed(server: &TestServer) -> Vec<Value> {
    feed_as(server, &server.app.token, 0, 100).await
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

fn change<'a>(entry: &'a Value, property: &str) -> Option<&'a Value> {
    entry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["property"] == property)
}

/// Sequence numbers 1, 2, 3, … without gaps or repeats.
fn assert_consecutive(entries: &[Value]) {
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["sequence"], json!(i as i64 + 1), "{entry}");
    }
}

async fn each_kind_of_change_is_one_entry_with_its_diff() {
    let server = TestServer::start().await;
    let first = create(&server, &domain_request(1)).await;
    // The same body again changes nothing but lastUpdateTime: a touch.
    create(&server, &domain_request(1)).await;
    let mut retitled = domain_request(1);
    retitled["title"] = json!("a new title");
    retitled["severity"] = json!("High");
    create(&server, &retitled).await;
    let second = create(&server, &domain_request(2)).await;
    let third = create(&server, &domain_request(3)).await;
    let res = server
        .send(Method::DELETE, &format!("/api/indicators/{first}"))
        .await;
    assert_eq!(res.status(), 204);
    let res = server
        .post_json(
            "/api/indicators/BatchDelete",
            &json!({"IndicatorIds": [second.to_string(), third.to_string()]}),
        )
        .await;
    assert_eq!(res.status(), 204);
    // Created already expired, then submitted again: the expired one is replaced.
    let stale = create(&server, &seed_request()).await;
    let fresh = create(&server, &seed_request()).await;
    assert_ne!(stale, fresh);

    let entries = feed(&server).await;
    assert_eq!(
        kinds(&entries),
        [
            "Created",
            "Touched",
            "Updated",
            "Created",
            "Created",
            "Deleted",
            "BatchDeleted",
            "BatchDeleted",
            "Created",
            "Expired",
            "Created"
        ]
    );
    assert_consecutive(&entries);
    let ids: Vec<i64> = entries
        .iter()
        .map(|e| e["indicatorId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        ids,
        [first, first, first, second, third, first, second, third, stale, stale, fresh]
    );

    let created = &entries[0];
    assert_eq!(created["indicatorValue"], "host1.evil.example");
    assert_eq!(created["indicatorType"], "DomainName");
    assert_eq!(created["action"], "Block");
    assert_eq!(created["actor"]["id"], server.app.client_id());
    assert_eq!(created["actor"]["displayName"], "iocd test app");
    assert_eq!(created["actor"]["source"], "PublicApi");
    assert_eq!(
        change(created, "title").unwrap(),
        &json!({"property": "title", "old": null, "new": "indicator 1"})
    );

    let touched = &entries[1];
    let touched_props: Vec<&str> = touched["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["property"].as_str().unwrap())
        .collect();
    assert!(
        touched_props
            .iter()
            .all(|p| *p == "lastUpdateTime" || *p == "lastUpdatedBy"),
        "{touched}"
    );
    assert!(change(touched, "lastUpdateTime").is_some(), "{touched}");

    let updated = &entries[2];
    assert_eq!(
        change(updated, "title").unwrap(),
        &json!({"property": "title", "old": "indicator 1", "new": "a new title"})
    );
    assert_eq!(
        change(updated, "severity").unwrap(),
        &json!({"property": "severity", "old": "Informational", "new": "High"})
    );
    assert!(change(updated, "description").is_none(), "{updated}");

    let expired = &entries[9];
    assert_eq!(expired["actor"]["source"], "Sweeper");
    assert_eq!(expired["changes"], json!([]));

    // The history still answers after the delete, oldest first.
    let history = ok_json(
        server
            .send(Method::GET, &format!("/iocd/v1/indicators/{first}/history"))
            .await,
    )
    .await;
    assert_eq!(
        kinds(history["value"].as_array().unwrap()),
        ["Created", "Touched", "Updated", "Deleted"]
    );
    let (status, body) = status_json(
        server
            .send(Method::GET, "/iocd/v1/indicators/999999/history")
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NotFound", "{body}");
}

async fn refused_requests_log_nothing_and_a_partial_import_logs_what_landed() {
    let server = TestServer::start_with(ServerConfig {
        max_active_indicators: Some(3),
        ..ServerConfig::default()
    })
    .await;
    let own = create(&server, &domain_request(1)).await;
    // Invalid body, unknown id, a batch delete naming one unknown id, and an update by an app
    // that may change only its own indicators: all refused.
    let mut invalid = domain_request(9);
    invalid["indicatorType"] = json!("Nonsense");
    assert_eq!(
        server.post_json("/api/indicators", &invalid).await.status(),
        400
    );
    assert_eq!(
        server
            .send(Method::DELETE, "/api/indicators/424242")
            .await
            .status(),
        404
    );
    let res = server
        .post_json(
            "/api/indicators/BatchDelete",
            &json!({"IndicatorIds": [own.to_string(), "424242"]}),
        )
        .await;
    assert_eq!(res.status(), 404);
    let tenant = server.app.tenant_id().to_string();
    let own_only = server
        .create_app(&tenant, "own-only", &[Role::ReadWrite])
        .await;
    let res = server
        .post_json_as(&own_only.token, "/api/indicators", &domain_request(1))
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(kinds(&feed(&server).await), ["Created"]);

    // The quota leaves room for two of four: the two that land are logged, no more.
    let items: Vec<Value> = (10..14).map(domain_request).collect();
    server.import(items).await;
    let entries = feed(&server).await;
    assert_eq!(kinds(&entries), ["Created", "Created", "Created"]);
    let values: Vec<&str> = entries
        .iter()
        .map(|e| e["indicatorValue"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "host1.evil.example",
            "host10.evil.example",
            "host11.evil.example"
        ]
    );
    assert_consecutive(&entries);
    assert_eq!(
        server.scalar("SELECT COUNT(*) FROM change_log").await,
        3,
        "the database holds no other entry"
    );
}

async fn the_log_is_tenant_and_owner_scoped_and_needs_a_read_role() {
    let server = TestServer::start().await;
    let tenant = server.app.tenant_id().to_string();
    let own_only = server
        .create_app(&tenant, "own-only", &[Role::ReadWrite])
        .await;
    let by_admin = create(&server, &domain_request(1)).await;
    let own = ok_json(
        server
            .post_json_as(&own_only.token, "/api/indicators", &domain_request(2))
            .await,
    )
    .await;
    let own: i64 = own["id"].as_str().unwrap().parse().unwrap();

    let all = feed(&server).await;
    assert_eq!(all.len(), 2);
    let mine = feed_as(&server, &own_only.token, 0, 100).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["indicatorId"], json!(own.to_string()));
    assert_eq!(mine[0]["sequence"], 2);
    let res = server
        .send_as(
            &own_only.token,
            Method::GET,
            &format!("/iocd/v1/indicators/{by_admin}/history"),
        )
        .await;
    assert_eq!(res.status(), 404);

    let reader = server.create_app(&tenant, "reader", &[Role::ReadAll]).await;
    assert_eq!(feed_as(&server, &reader.token, 0, 1).await.len(), 2);

    let stranger = server
        .create_app("another-tenant", "stranger", &[Role::ReadWriteAll])
        .await;
    assert!(feed_as(&server, &stranger.token, 0, 100).await.is_empty());
    let res = server
        .send_as(
            &stranger.token,
            Method::GET,
            &format!("/iocd/v1/indicators/{by_admin}/history"),
        )
        .await;
    assert_eq!(res.status(), 404);

    let res = server
        .client
        .get(server.url("/iocd/v1/changes"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

async fn bad_feed_options_are_400s_naming_the_option() {
    let server = TestServer::start().await;
    for (query, name) in [
        ("since=-1", "since"),
        ("since=x", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("wait=61", "wait"),
    ] {
        let (status, body) = status_json(
            server
                .send(Method::GET, &format!("/iocd/v1/changes?{query}"))
                .await,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "InvalidInput", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{query}: {message}");
    }
    let (status, body) = status_json(
        server
            .send(Method::GET, "/iocd/v1/indicators/abc/history")
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

async fn the_feed_returns_every_change_once_in_order_under_concurrent_writers() {
    let server = std::sync::Arc::new(TestServer::start_unthrottled().await);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..20 {
                    ids.push(create(&server, &domain_request(w * 100 + n)).await);
                }
                ids
            })
        })
        .collect();
    // A reader following the feed while the writers run sees a prefix each time.
    let mut seen = Vec::new();
    let mut since = 0;
    let mut created = Vec::new();
    let mut pending = writers;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() || since < 160 {
        assert!(Instant::now() < deadline, "stuck at since={since}");
        let path = format!("/iocd/v1/changes?since={since}&limit=7&wait=2");
        let page = ok_json(server.send(Method::GET, &path).await).await;
        for entry in page["value"].as_array().unwrap() {
            seen.push(entry.clone());
        }
        since = page["nextSince"].as_i64().unwrap();
        let mut still = Vec::new();
        for writer in pending {
            if writer.is_finished() {
                created.extend(writer.await.unwrap());
            } else {
                still.push(writer);
            }
        }
        pending = still;
    }
    assert_eq!(seen.len(), 160);
    assert_consecutive(&seen);
    let mut logged: Vec<i64> = seen
        .iter()
        .map(|e| e["indicatorId"].as_str().unwrap().parse().unwrap())
        .collect();
    logged.sort_unstable();
    created.sort_unstable();
    assert_eq!(
        logged, created,
        "each acknowledged create logged exactly once"
    );
}

async fn a_long_poll_wakes_on_a_write() {
    let server = std::sync::Arc::new(TestServer::start().await);
    create(&server, &domain_request(1)).await;
    // Nothing after 1: waits, then answers empty with the same since.
    let started = Instant::now();
    let page = ok_json(
        server
            .send(Method::GET, "/iocd/v1/changes?since=1&wait=1")
            .await,
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(page, json!({"value": [], "nextSince": 1}));

    let polling = {
        let server = server.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let res = server
                .send(Method::GET, "/iocd/v1/changes?since=1&wait=30")
                .await;
            (started.elapsed(), ok_json(res).await)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!polling.is_finished(), "the poll waits for a change");
    create(&server, &domain_request(2)).await;
    let (elapsed, page) = polling.await.unwrap();
    assert!(
        elapsed < Duration::from_secs(10),
        "woken by the write: {elapsed:?}"
    );
    assert_eq!(page["value"][0]["indicatorValue"], "host2.evil.example");
    assert_eq!(page["nextSince"], 2);
}

/// `data:` lines of the `change` events in `text`.
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|event| event.lines().any(|l| l == "event: change"))
        .map(|event| {
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data line");
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

/// Reads the stream into `text` until it holds `n` change events.
async fn read_until(n: usize, text: &mut String, res: &mut reqwest::Response) {
    while events(text).len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
            .await
            .unwrap_or_else(|_| panic!("no event within 10 s after {text}"))
            .unwrap()
            .expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

async fn the_event_stream_delivers_the_backlog_then_each_new_entry() {
    let server = TestServer::start().await;
    create(&server, &domain_request(1)).await;
    create(&server, &domain_request(2)).await;
    let mut res = server
        .request(Method::GET, "/iocd/v1/changes/stream?since=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    read_until(1, &mut text, &mut res).await;
    create(&server, &domain_request(3)).await;
    read_until(2, &mut text, &mut res).await;
    let got = events(&text);
    let sequences: Vec<i64> = got
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, [2, 3]);
    assert_eq!(got[1]["indicatorValue"], "host3.evil.example");
    assert!(text.contains("id: 3\n"), "{text}");

    // Resuming with Last-Event-ID starts after it.
    let mut res = server
        .request(Method::GET, "/iocd/v1/changes/stream")
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    read_until(1, &mut text, &mut res).await;
    assert_eq!(events(&text)[0]["sequence"], 3);
}

on_every_backend!(
    each_kind_of_change_is_one_entry_with_its_diff,
    refused_requests_log_nothing_and_a_partial_import_logs_what_landed,
    the_log_is_tenant_and_owner_scoped_and_needs_a_read_role,
    bad_feed_options_are_400s_naming_the_option,
    the_feed_returns_every_change_once_in_order_under_concurrent_writers,
    a_long_poll_wakes_on_a_write,
    the_event_stream_delivers_the_backlog_then_each_new_entry,
);
