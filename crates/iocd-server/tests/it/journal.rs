//! The emulator's request journal (`/_iocd/requests`): what it keeps, what it hides, its
//! filters, and who may read it.

use iocd_server::ServerConfig;
use iocd_testkit::*;
use reqwest::Method;
use serde_json::{json, Value};

fn emulator() -> ServerConfig {
    ServerConfig {
        emulator: true,
        rate_limits: iocd_server::RateLimitConfig::disabled(),
        ..ServerConfig::default()
    }
}

async fn journal(server: &TestServer, query: &str) -> (u16, Value) {
    server
        .anonymous_get(&format!("/_iocd/requests{query}"))
        .await
}

async fn journal_redacts_secrets_and_names_the_caller() {
    let server = TestServer::start_with(emulator()).await;
    let app = server.app.clone();
    // The token call (made while the test server started) was journaled with its form body
    // and its answer, the secret, the access token and the Authorization header hidden.
    let token =
        client_credentials_token(&server.client, &server.base_url(), &app.credentials).await;
    let res = server
        .request_as(
            &token,
            Method::POST,
            "/api/indicators?x=1&client_secret=leak",
        )
        .json(&domain_request(7))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, page) = journal(&server, "").await;
    assert_eq!(status, 200, "{page}");
    let text = page.to_string();
    for secret in [
        app.credentials.client_secret.as_str(),
        app.token.as_str(),
        token.as_str(),
        "leak",
    ] {
        assert!(!text.contains(secret), "a secret is in the journal: {text}");
    }
    let entries = page["value"].as_array().unwrap();
    let token_call = entries
        .iter()
        .rev()
        .find(|e| e["path"].as_str().unwrap().ends_with("/oauth2/v2.0/token"))
        .expect("the token call is journaled");
    assert_eq!(token_call["method"], "POST");
    assert_eq!(token_call["status"], 200);
    assert_eq!(token_call["tenant"], app.tenant_id());
    assert_eq!(token_call["app"], app.client_id());
    let form = token_call["requestBody"].as_str().unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("client_secret=[redacted]"), "{form}");
    let answer = token_call["responseBody"].as_str().unwrap();
    assert!(
        answer.contains(r#""access_token":"[redacted]""#),
        "{answer}"
    );
    assert!(answer.contains(r#""token_type":"Bearer""#), "{answer}");

    let submit = entries.last().unwrap();
    assert_eq!(submit["method"], "POST");
    assert_eq!(submit["path"], "/api/indicators");
    assert_eq!(submit["query"], "x=1&client_secret=[redacted]");
    assert_eq!(submit["status"], 200);
    assert!(submit["latencyMs"].as_f64().unwrap() >= 0.0);
    assert_eq!(submit["tenant"], app.tenant_id());
    assert_eq!(submit["app"], app.client_id());
    assert_eq!(
        submit["requestHeaders"]["authorization"],
        "Bearer [redacted]"
    );
    let sent: Value = serde_json::from_str(submit["requestBody"].as_str().unwrap()).unwrap();
    assert_eq!(sent, domain_request(7));
    let answered: Value = serde_json::from_str(submit["responseBody"].as_str().unwrap()).unwrap();
    assert_eq!(
        answered["indicatorValue"],
        domain_request(7)["indicatorValue"]
    );
    assert!(submit["fault"].is_null());

    // A delegated password grant: the password and the refresh token never show.
    let res = server
        .client
        .post(server.url(&format!("/{}/oauth2/v2.0/token", app.tenant_id())))
        .form(&[
            ("grant_type", "password"),
            ("client_id", app.client_id()),
            ("username", "nobody@example.com"),
            ("password", "correct horse battery staple"),
            ("refresh_token", "rt-should-not-show"),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    let (_, page) = journal(&server, &format!("?path=/{}/oauth2/*", app.tenant_id())).await;
    let text = page.to_string();
    assert!(!text.contains("correct horse"), "{text}");
    assert!(!text.contains("rt-should-not-show"), "{text}");
    assert!(text.contains("username=nobody%40example.com"), "{text}");

    // The controls themselves are not journaled; a reset empties it, ids keep counting.
    let last = page["lastId"].as_u64().unwrap();
    let (_, page) = journal(&server, "").await;
    assert!(page["value"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| !e["path"].as_str().unwrap().starts_with("/_iocd")));
    let res = server
        .client
        .post(server.url("/_iocd/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, page) = journal(&server, "").await;
    assert_eq!(page["value"], json!([]), "{page}");
    assert_eq!(page["lastId"].as_u64().unwrap(), last);
}

async fn journal_filters_by_since_path_status_and_tenant_and_clears() {
    let server = TestServer::start_with(emulator()).await;
    let other = server
        .create_app(
            &uuid::Uuid::new_v4().to_string(),
            "other",
            &[Role::ReadWriteAll],
        )
        .await;
    let (_, page) = journal(&server, "").await;
    let start = page["lastId"].as_u64().unwrap();
    server
        .post_json("/api/indicators", &domain_request(1))
        .await;
    server.send(Method::GET, "/api/indicators/999999").await; // 404
    server.send(Method::GET, "/api/Indicators/").await; // as sent, before rewriting
    server
        .send_as(&other.token, Method::GET, "/api/indicators")
        .await;

    let (_, page) = journal(&server, &format!("?since={start}")).await;
    let paths: Vec<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/api/indicators",
            "/api/indicators/999999",
            "/api/Indicators/",
            "/api/indicators"
        ]
    );
    let (_, page) = journal(&server, &format!("?since={start}&status=4xx")).await;
    let only: Vec<u64> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(only, [404]);
    let (_, page) = journal(&server, &format!("?since={start}&status=200&method=get")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 2, "{page}");
    let (_, page) = journal(&server, &format!("?since={start}&path=/API/indicators")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 2, "{page}");
    let (_, page) = journal(&server, &format!("?since={start}&path=/api/indicators/*")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 2, "{page}");
    let (_, page) = journal(&server, &format!("?tenant={}", other.tenant_id())).await;
    let entries = page["value"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["tenant"] == other.tenant_id()));
    let (status, body) = journal(&server, "?status=4x").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("status"));
    let (status, _) = journal(&server, "?since=minus").await;
    assert_eq!(status, 400);

    // One tenant's entries go with DELETE ?tenant=, the rest with DELETE.
    let res = server
        .client
        .delete(server.url(&format!("/_iocd/requests?tenant={}", other.tenant_id())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, page) = journal(&server, &format!("?tenant={}", other.tenant_id())).await;
    assert_eq!(page["value"], json!([]));
    let (_, page) = journal(&server, &format!("?tenant={}", server.app.tenant_id())).await;
    assert!(!page["value"].as_array().unwrap().is_empty());
    let res = server
        .client
        .delete(server.url("/_iocd/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, page) = journal(&server, "").await;
    assert_eq!(page["value"], json!([]));
}

async fn journal_keeps_the_last_n_with_capped_bodies_and_marks_faults() {
    let server = TestServer::start_with(ServerConfig {
        journal_size: 3,
        journal_body_bytes: 64,
        ..emulator()
    })
    .await;
    let res = server
        .client
        .post(server.url("/_iocd/faults"))
        .json(&json!({"family": "submit", "status": 503, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = server
        .post_json("/api/indicators", &domain_request(2))
        .await;
    assert_eq!(res.status(), 503);
    let (_, page) = journal(&server, "").await;
    let injected = page["value"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(injected["status"], 503);
    assert_eq!(injected["fault"], "fault-1");
    // The body the client sent is there even though the service never read it, cut at 64 bytes.
    let sent = injected["requestBody"].as_str().unwrap();
    assert_eq!(sent.len(), 64, "{sent}");
    assert!(injected["requestBodyTruncated"].as_bool().unwrap());
    assert!(injected["requestBodyBytes"].as_u64().unwrap() > 64);
    for _ in 0..5 {
        server.send(Method::GET, "/api/indicators").await;
    }
    let (_, page) = journal(&server, "").await;
    let entries = page["value"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let ids: Vec<u64> = entries.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    let last = page["lastId"].as_u64().unwrap();
    assert_eq!(ids, [last - 2, last - 1, last]);
}

async fn journal_is_refused_without_emulator_or_without_the_role() {
    let server = TestServer::start().await;
    server.send(Method::GET, "/api/indicators").await;
    let (status, body) = journal(&server, "").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NotFound");

    let server = TestServer::start_with(emulator()).await;
    // A token without Iocd.Admin: 403.
    let (status, body) = status_json(server.send(Method::GET, "/_iocd/requests").await).await;
    assert_eq!(status, 403, "{body}");
    let admin = server
        .create_app(server.app.tenant_id(), "admin", &[Role::IocdAdmin])
        .await;
    // Someone holds Iocd.Admin: loopback alone is not enough, the admin's token is.
    let (status, body) = journal(&server, "").await;
    assert_eq!(status, 401, "{body}");
    let res = server
        .client
        .delete(server.url("/_iocd/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let (status, body) = status_json(
        server
            .send_as(&admin.token, Method::GET, "/_iocd/requests")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

on_every_backend!(
    journal_redacts_secrets_and_names_the_caller,
    journal_filters_by_since_path_status_and_tenant_and_clears,
    journal_keeps_the_last_n_with_capped_bodies_and_marks_faults,
    journal_is_refused_without_emulator_or_without_the_role,
);
