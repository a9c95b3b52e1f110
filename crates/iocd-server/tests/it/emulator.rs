//! The emulator controls under `/_iocd/`: who may call them, reset, seed.

use iocd_server::ServerConfig;
use iocd_testkit::*;
use reqwest::Method;
use serde_json::Value;

fn emulator() -> ServerConfig {
    ServerConfig {
        emulator: true,
        ..ServerConfig::default()
    }
}

async fn visible_count(server: &TestServer, token: &str) -> usize {
    let (status, body) =
        status_json(server.send_as(token, Method::GET, "/api/indicators").await).await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().unwrap().len()
}

async fn post_control(server: &TestServer, path: &str) -> (u16, Value) {
    status_json(
        server
            .client
            .post(server.url(path))
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn controls_are_404_without_emulator() {
    let server = TestServer::start().await;
    for path in ["/_iocd/reset", "/_iocd/seed?tenant=x"] {
        let (status, body) = post_control(&server, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "NotFound");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--emulator"));
        assert!(body["error"]["target"].is_string());
    }
    // Even an admin's token does not open them.
    let admin = server
        .create_app(
            &server.app.credentials.tenant_id,
            "admin",
            &[Role::IocdAdmin],
        )
        .await;
    let res = server
        .request_as(&admin.token, Method::POST, "/_iocd/reset")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(server.row_count().await, 0);
}

async fn controls_need_the_admin_role_once_an_app_holds_it() {
    let server = TestServer::start_with(emulator()).await;
    // Loopback, and nobody holds Iocd.Admin: open.
    let (status, body) = post_control(&server, "/_iocd/reset").await;
    assert_eq!(status, 200, "{body}");
    // A token without the role: 403, in Defender's shape.
    let (status, body) = status_json(server.send(Method::POST, "/_iocd/reset").await).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "Forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Iocd.Admin"));

    let admin = server
        .create_app(
            &server.app.credentials.tenant_id,
            "admin",
            &[Role::IocdAdmin],
        )
        .await;
    // Now someone holds the role: loopback without a token is no longer enough.
    let (status, body) = post_control(&server, "/_iocd/reset").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Iocd.Admin"));
    let (status, body) = status_json(
        server
            .send_as(&admin.token, Method::POST, "/_iocd/reset")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = status_json(
        server
            .send_as("not-a-token", Method::POST, "/_iocd/reset")
            .await,
    )
    .await;
    assert_eq!(status, 401);
}

async fn reset_isolates_tenants_and_keeps_apps_unless_all() {
    let server = TestServer::start_with(emulator()).await;
    let a = server.app.clone();
    let other_tenant = uuid::Uuid::new_v4().to_string();
    let b = server
        .create_app(&other_tenant, "tenant b", &[Role::ReadWriteAll])
        .await;
    for n in 0..3 {
        let (status, body) = status_json(
            server
                .post_json_as(&a.token, "/api/indicators", &domain_request(n))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = status_json(
        server
            .post_json_as(&b.token, "/api/indicators", &domain_request(9))
            .await,
    )
    .await;
    assert_eq!(status, 200);

    // The match index has seen A's indicator before the reset…
    let matched = |token: String| {
        let request = server.request_as(
            &token,
            Method::GET,
            "/iocd/v1/match?domain=host0.evil.example",
        );
        async move {
            let (status, body) = status_json(request.send().await.unwrap()).await;
            assert_eq!(status, 200, "{body}");
            body["value"][0]["action"].clone()
        }
    };
    assert_eq!(matched(a.token.clone()).await, "Block");
    let (status, body) = post_control(
        &server,
        &format!("/_iocd/reset?tenant={}", a.credentials.tenant_id),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["indicatorsDeleted"], 3);
    assert_eq!(body["appsDeleted"], 0);
    assert_eq!(body["tenant"], a.credentials.tenant_id.as_str());
    assert_eq!(visible_count(&server, &a.token).await, 0);
    assert_eq!(visible_count(&server, &b.token).await, 1);
    // … and forgets it at once after.
    assert_eq!(matched(a.token.clone()).await, Value::Null);

    let (status, body) = post_control(&server, "/_iocd/reset").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["indicatorsDeleted"], 1);
    assert_eq!(body["tenant"], Value::Null);
    assert_eq!(visible_count(&server, &b.token).await, 0);
    assert_eq!(server.row_count().await, 0);
    // Apps were kept: both still list (and write).
    let (status, _) = status_json(
        server
            .post_json_as(&a.token, "/api/indicators", &domain_request(1))
            .await,
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = post_control(
        &server,
        &format!("/_iocd/reset?tenant={other_tenant}&all=true"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["appsDeleted"], 1);
    assert_eq!(body["indicatorsDeleted"], 0);
    assert!(server
        .identity
        .list_apps(Some(&other_tenant))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        server
            .identity
            .list_apps(Some(&a.credentials.tenant_id))
            .await
            .unwrap()
            .len(),
        1
    );
    // A's indicator survived B's reset.
    assert_eq!(visible_count(&server, &a.token).await, 1);

    for bad in ["/_iocd/reset?all=maybe", "/_iocd/reset?tenant=a/b"] {
        let (status, body) = post_control(&server, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "InvalidInput");
    }
}

const SEED_CSV: &str = "IndicatorType,IndicatorValue,Action,Title,Description\r\n\
DomainName,seeded.example.com,Block,seeded,from the seed\r\n\
DomainName,not a domain!,Block,bad,refused\r\n\
IpAddress,203.0.113.7,Audit,no alert,audit needs generateAlert\r\n\
FileSha256,0000000000000000000000000000000000000000000000000000000000000001,Allowed,hash,ok\r\n";

async fn seed_loads_valid_rows_and_reports_refused_ones() {
    let server = TestServer::start_with(emulator()).await;
    let tenant = server.app.credentials.tenant_id.clone();
    let (status, report) = status_json(
        server
            .client
            .post(server.url(&format!("/_iocd/seed?tenant={tenant}")))
            .header("content-type", "text/csv; charset=utf-8")
            .body(SEED_CSV)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["loaded"], 2, "{report}");
    assert_eq!(report["format"], "csv");
    let refused = report["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{report}");
    assert_eq!(refused[0]["line"], 3);
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("indicatorValue"),
        "{report}"
    );
    assert_eq!(refused[1]["line"], 4);
    assert!(
        refused[1]["reason"]
            .as_str()
            .unwrap()
            .contains("generateAlert"),
        "{report}"
    );
    let (status, list) = status_json(server.send(Method::GET, "/api/indicators").await).await;
    assert_eq!(status, 200);
    let values: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["indicatorValue"].as_str().unwrap())
        .collect();
    assert!(values.contains(&"seeded.example.com"), "{list}");
    assert_eq!(values.len(), 2);
    assert_eq!(list["value"][0]["createdByDisplayName"], "iocd seed");

    // JSON, by Content-Type.
    let (status, report) = status_json(
        server
            .client
            .post(server.url(&format!("/_iocd/seed?tenant={tenant}")))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&serde_json::json!([domain_request(5)])).unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, report["loaded"].as_u64()),
        (200, Some(1)),
        "{report}"
    );

    // Not a seed format, and a file that cannot be read at all.
    let (status, body) = status_json(
        server
            .client
            .post(server.url(&format!("/_iocd/seed?tenant={tenant}")))
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "UnsupportedMediaType");
    let (status, body) = status_json(
        server
            .client
            .post(server.url(&format!("/_iocd/seed?tenant={tenant}")))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "InvalidRequestBody");
    // Without a well-known app there is no default tenant.
    let (status, body) = status_json(
        server
            .client
            .post(server.url("/_iocd/seed"))
            .header("content-type", "text/csv")
            .body(SEED_CSV)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tenant"));
    assert_eq!(visible_count(&server, &server.app.token).await, 3);
}

on_every_backend!(
    controls_are_404_without_emulator,
    controls_need_the_admin_role_once_an_app_holds_it,
    reset_isolates_tenants_and_keeps_apps_unless_all,
    seed_loads_valid_rows_and_reports_refused_ones,
);
