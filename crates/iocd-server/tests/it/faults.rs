//! Fault rules (`/_iocd/faults`): each effect as a client sees it.

use std::time::{Duration, Instant};

use iocd_server::ServerConfig;
use iocd_testkit::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn emulator() -> TestServer {
    TestServer::start_with(ServerConfig {
        emulator: true,
        rate_limits: iocd_server::RateLimitConfig::disabled(),
        ..ServerConfig::default()
    })
    .await
}

async fn add(server: &TestServer, rule: Value) -> (u16, Value) {
    status_json(
        server
            .client
            .post(server.url("/_iocd/faults"))
            .json(&rule)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn status_effect_with_count_then_used_up() {
    let server = emulator().await;
    let (status, rule) = add(
        &server,
        json!({"family": "submit", "status": 429, "retryAfter": 2, "count": 2}),
    )
    .await;
    assert_eq!(status, 200, "{rule}");
    let id = rule["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let res = server
            .request(Method::POST, "/api/indicators")
            .json(&domain_request(1))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "2");
        assert_eq!(res.headers()["x-iocd-fault"], id.as_str());
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "TooManyRequests");
        assert!(body["error"]["target"].is_string());
    }
    // Used up: the call is served, without the marker, and the rule is gone.
    let res = server
        .request(Method::POST, "/api/indicators")
        .json(&domain_request(1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-iocd-fault").is_none());
    assert_eq!(server.row_count().await, 1);
    let (_, rules) = server.anonymous_get("/_iocd/faults").await;
    assert_eq!(rules, json!([]));
    // Other families are untouched by a family rule.
    add(&server, json!({"family": "import", "status": 503})).await;
    let (status, _) = status_json(server.send(Method::GET, "/api/indicators").await).await;
    assert_eq!(status, 200);
    let res = server
        .request(Method::POST, "/api/indicators/import")
        .json(&json!({"Indicators": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
}

async fn latency_close_and_the_first_matching_rule() {
    let server = emulator().await;
    let (_, slow) = add(&server, json!({"family": "list", "latencyMs": 300})).await;
    add(&server, json!({"family": "list", "status": 500})).await;
    let started = Instant::now();
    let res = server.send(Method::GET, "/api/indicators").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The first rule decided: slow, but served.
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-iocd-fault"], slow["id"].as_str().unwrap());

    let (_, close) = add(&server, json!({"family": "get", "close": true, "count": 1})).await;
    assert!(close["id"].is_string());
    let outcome = match server
        .request(Method::GET, "/api/indicators/1")
        .send()
        .await
    {
        Ok(res) => res.text().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(outcome.is_err(), "the connection was not dropped");
    let (status, _) = status_json(server.send(Method::GET, "/api/indicators/1").await).await;
    assert_eq!(status, 404, "the close rule was used up");

    // Tenant matching: a rule for another tenant leaves this one alone.
    let res = server
        .client
        .delete(server.url("/_iocd/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    add(&server, json!({"tenant": "someone-else", "status": 500})).await;
    let (_, mine) = add(&server, json!({"tenant": server.app.credentials.tenant_id, "method": "get", "status": 500, "forSeconds": 1})).await;
    let res = server.send(Method::GET, "/api/indicators").await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.headers()["x-iocd-fault"], mine["id"].as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        server.send(Method::GET, "/api/indicators").await.status(),
        200
    );
    // Deleting one rule by id; an unknown id is 404.
    let (_, rules) = server.anonymous_get("/_iocd/faults").await;
    let id = rules[0]["id"].as_str().unwrap();
    let res = server
        .client
        .delete(server.url(&format!("/_iocd/faults/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = server
        .client
        .delete(server.url(&format!("/_iocd/faults/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn token_endpoint_faults_and_bad_rules() {
    let server = emulator().await;
    add(
        &server,
        json!({"family": "token", "status": 503, "count": 1}),
    )
    .await;
    let res = server
        .client
        .post(server.url(&format!(
            "/{}/oauth2/v2.0/token",
            server.app.credentials.tenant_id
        )))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("x-iocd-fault").is_some());
    for bad in [
        json!({"family": "nope", "status": 429}),
        json!({"status": 429, "latencyMs": 5}),
        json!({"family": "list"}),
        json!({"status": 200}),
        json!({"status": 429, "count": 1, "probability": 0.5}),
        json!({"status": 429, "probability": 1.5}),
        json!({"status": 429, "colour": "red"}),
    ] {
        let (status, body) = add(&server, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "InvalidRequestBody");
    }
}

on_every_backend!(
    status_effect_with_count_then_used_up,
    latency_close_and_the_first_matching_rule,
    token_endpoint_faults_and_bad_rules,
);
