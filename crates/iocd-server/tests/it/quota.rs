//! The per-tenant quota of active indicators (docs/reference §5.4: 15,000; "Max capacity
//! exceeded"): creates beyond it are refused with a 400 and write nothing, updates of existing
//! indicators still pass, expired or deleted indicators free room, and concurrent creates never
//! overshoot.

use std::time::Duration;

use iocd_domain::{parse_submission, time, Actor};
use iocd_server::ServerConfig;
use iocd_store::{Scope, WriteLimits};
use iocd_testkit::*;
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// The app the harness's requests run as, as the store sees it.
fn harness_actor(server: &TestServer) -> (Scope, Actor) {
    (
        Scope::tenant_wide(server.app.tenant_id()),
        Actor::new(
            server.app.client_id().to_string(),
            server.app.display_name.clone(),
        ),
    )
}

fn with_quota(max_active_indicators: u64) -> ServerConfig {
    ServerConfig {
        max_active_indicators: Some(max_active_indicators),
        ..ServerConfig::default()
    }
}

async fn create(server: &TestServer, n: usize) -> Response {
    server
        .post_json("/api/indicators", &domain_request(n))
        .await
}

/// Checks the quota refusal: 400, the error envelope, "Max capacity exceeded" naming the limit.
async fn expect_capacity_exceeded(res: Response, limit: u64) {
    let (status, body) = status_json(res).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "BadRequest", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Max capacity exceeded"), "{message}");
    assert!(
        message.contains(&format!("{limit} active indicators")),
        "{message}"
    );
    assert!(!body["error"]["target"].as_str().unwrap().is_empty());
}

async fn expect_ok(res: Response) -> Value {
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// With a small quota: full means refused, updates still pass, an expired indicator no longer
/// counts (nor is it returned), and a deleted one frees its place.
async fn quota_refuses_creates_but_not_updates_and_expiry_frees_room() {
    let server = TestServer::start_with(with_quota(5)).await;
    for n in 0..4 {
        expect_ok(create(&server, n).await).await;
    }
    let expires_at = time::now() + chrono::Duration::seconds(2);
    let mut expiring = domain_request(4);
    expiring["expirationTime"] =
        json!(expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let expiring_id = expect_ok(server.post_json("/api/indicators", &expiring).await).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    expect_capacity_exceeded(create(&server, 5).await, 5).await;
    expect_capacity_exceeded(create(&server, 6).await, 5).await;
    assert_eq!(server.row_count().await, 5, "refused creates wrote nothing");

    // Updates of existing indicators (same type, value and action) still pass when full.
    let mut update = domain_request(0);
    update["title"] = json!("updated while full");
    let updated = expect_ok(server.post_json("/api/indicators", &update).await).await;
    assert_eq!(updated["id"], "1");
    assert_eq!(updated["title"], "updated while full");

    // Once the fifth expires, it is no longer returned and no longer counted.
    let wait = (expires_at - time::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    let (status, _) = status_json(
        server
            .send(Method::GET, &format!("/api/indicators/{expiring_id}"))
            .await,
    )
    .await;
    assert_eq!(status, 404, "an expired indicator is not returned");
    expect_ok(create(&server, 5).await).await;
    expect_capacity_exceeded(create(&server, 6).await, 5).await;

    // Deleting one makes room for exactly one more.
    let res = server.send(Method::DELETE, "/api/indicators/2").await;
    assert_eq!(res.status(), 204);
    expect_ok(create(&server, 6).await).await;
    expect_capacity_exceeded(create(&server, 7).await, 5).await;
}

/// The real default of 15,000: the store is filled to 14,999 directly (creating them one by one
/// over HTTP would take minutes in a debug build, and the rate limit allows 100 per minute),
/// then the boundary is crossed over HTTP.
async fn the_15001st_create_is_refused_over_http() {
    let server = TestServer::start_with(ServerConfig {
        max_active_indicators: Some(15_000),
        rate_limits: iocd_server::RateLimitConfig::disabled(),
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(ServerConfig::default().max_active_indicators, Some(15_000));
    let (scope, actor) = harness_actor(&server);
    let store = iocd_store::open(&server.database_url).await.unwrap();
    let chunks = (0..14_999usize).collect::<Vec<_>>();
    let fills = chunks.chunks(500).map(|chunk| {
        let submissions = chunk
            .iter()
            .map(|n| parse_submission(&domain_request(100_000 + n)).unwrap())
            .collect();
        let (store, scope, actor) = (store.clone(), scope.clone(), actor.clone());
        async move {
            let limits = WriteLimits {
                max_active_indicators: Some(15_000),
            };
            let results = store
                .submit(&scope, &actor, submissions, limits, time::now())
                .await
                .unwrap();
            assert!(results.iter().all(Result::is_ok));
        }
    });
    futures::future::join_all(fills).await;
    assert_eq!(server.row_count().await, 14_999);

    expect_ok(create(&server, 0).await).await;
    expect_capacity_exceeded(create(&server, 1).await, 15_000).await;
    assert_eq!(server.row_count().await, 15_000);

    // An update of one filled through the store passes over HTTP.
    let mut update = domain_request(100_000);
    update["severity"] = json!("High");
    let updated = expect_ok(server.post_json("/api/indicators", &update).await).await;
    assert_eq!(updated["severity"], "High");
    assert_eq!(server.row_count().await, 15_000);

    let res = server
        .send(
            Method::DELETE,
            &format!("/api/indicators/{}", updated["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(res.status(), 204);
    expect_ok(create(&server, 1).await).await;
    expect_capacity_exceeded(create(&server, 2).await, 15_000).await;
}

/// Many creates at once against a nearly full tenant: exactly the free room is granted.
async fn concurrent_creates_never_exceed_the_quota() {
    let server = TestServer::start_with(with_quota(20)).await;
    for n in 0..5 {
        expect_ok(create(&server, n).await).await;
    }
    let responses = futures::future::join_all((5..65).map(|n| {
        let req = server
            .request(Method::POST, "/api/indicators")
            .json(&domain_request(n));
        async move { req.send().await.unwrap() }
    }))
    .await;
    let mut created = 0;
    for res in responses {
        if res.status() == 200 {
            created += 1;
        } else {
            expect_capacity_exceeded(res, 20).await;
        }
    }
    assert_eq!(created, 15);
    assert_eq!(server.row_count().await, 20);
}

/// `--max-active-indicators 0`: no quota.
async fn no_quota_when_unlimited() {
    let server = TestServer::start_with(ServerConfig {
        max_active_indicators: None,
        ..ServerConfig::default()
    })
    .await;
    let (scope, actor) = harness_actor(&server);
    let store = iocd_store::open(&server.database_url).await.unwrap();
    let submissions = (0..2_000)
        .map(|n| parse_submission(&domain_request(n)).unwrap())
        .collect();
    store
        .submit(
            &scope,
            &actor,
            submissions,
            WriteLimits::default(),
            time::now(),
        )
        .await
        .unwrap();
    expect_ok(create(&server, 5_000).await).await;
    assert_eq!(server.row_count().await, 2_001);
}

on_every_backend!(
    quota_refuses_creates_but_not_updates_and_expiry_frees_room,
    the_15001st_create_is_refused_over_http,
    concurrent_creates_never_exceed_the_quota,
    no_quota_when_unlimited,
);
