//! Get, delete, unknown routes and methods, and the API description.

use iocd_testkit::*;
use reqwest::Method;
use serde_json::json;

async fn create(server: &TestServer, n: usize) -> String {
    let (status, body) = status_json(
        server
            .post_json("/api/indicators", &domain_request(n))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn get_returns_the_entity_and_404_for_unknown_ids() {
    let server = TestServer::start().await;
    let id = create(&server, 1).await;
    let (status, body) = status_json(
        server
            .send(Method::GET, &format!("/api/indicators/{id}"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["indicatorValue"], "host1.evil.example");
    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#Indicators/$entity"));

    let (status, body) = status_json(server.send(Method::GET, "/api/indicators/99").await).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NotFound");
    assert!(body["error"]["message"].as_str().unwrap().contains("99"));

    let (status, body) = status_json(server.send(Method::GET, "/api/indicators/abc").await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "InvalidInput");
    assert!(body["error"]["message"].as_str().unwrap().contains("id"));
}

async fn delete_is_204_then_404() {
    let server = TestServer::start().await;
    let id = create(&server, 1).await;
    let keep = create(&server, 2).await;
    let res = server
        .send(Method::DELETE, &format!("/api/indicators/{id}"))
        .await;
    assert_eq!(res.status(), 204);
    assert!(res.text().await.unwrap().is_empty());
    let (status, body) = status_json(
        server
            .send(Method::DELETE, &format!("/api/indicators/{id}"))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NotFound"))
    );
    assert_eq!(server.row_count().await, 1);
    let (status, _) = status_json(
        server
            .send(Method::GET, &format!("/api/indicators/{keep}"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    // Ids are never reused.
    assert_eq!(create(&server, 3).await, "3");
}

async fn delete_status_can_be_200_with_an_empty_body() {
    let config = iocd_server::ServerConfig {
        delete_status: iocd_server::DeleteStatus::OkEmpty,
        ..Default::default()
    };
    let server = TestServer::start_with(config).await;
    let id = create(&server, 1).await;
    let res = server
        .send(Method::DELETE, &format!("/api/indicators/{id}"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "0");
}

async fn unknown_routes_and_methods_use_the_error_body() {
    let server = TestServer::start().await;
    let res = server.send(Method::GET, "/api/nothing-here").await;
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NotFound");
    assert_eq!(body["error"]["target"], request_id.as_str());

    let res = server.send(Method::PUT, "/api/indicators").await;
    assert_eq!(res.status(), 405);
    assert!(res.headers()["allow"].to_str().unwrap().contains("POST"));
    let (_, body) = status_json(res).await;
    assert_eq!(body["error"]["code"], "MethodNotAllowed");

    let res = server
        .client
        .patch(server.url("/api/indicators/1"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
}

async fn openapi_document_and_docs_page_are_served() {
    let server = TestServer::start().await;
    let (status, doc) = status_json(server.send(Method::GET, "/openapi.json").await).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(
        doc["paths"]["/api/indicators"]["post"].is_object(),
        "{}",
        doc["paths"]
    );
    assert!(doc["paths"]["/api/indicators/{id}"]["get"].is_object());
    assert!(doc["paths"]["/api/indicators/{id}"]["delete"].is_object());
    assert!(doc["paths"]["/api/indicators"]["get"].is_object());
    assert!(doc["paths"]["/api/indicators/import"]["post"].is_object());
    assert!(doc["paths"]["/api/indicators/BatchDelete"]["post"].is_object());
    let import = &doc["components"]["schemas"]["ImportRequest"]["properties"];
    assert!(import["Indicators"].is_object(), "{import}");
    let result = &doc["components"]["schemas"]["ImportResult"]["properties"];
    for field in ["id", "indicator", "isFailed", "failureReason"] {
        assert!(result[field].is_object(), "{field}: {result}");
    }
    let batch = &doc["components"]["schemas"]["BatchDeleteRequest"]["properties"];
    assert!(batch["IndicatorIds"].is_object(), "{batch}");
    let page = &doc["components"]["schemas"]["IndicatorCollection"]["properties"];
    assert!(page["@odata.nextLink"].is_object(), "{page}");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Indicator",
        "IndicatorRequest",
        "ErrorBody",
        "IndicatorType",
        "Action",
        "Severity",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    assert!(schemas["Indicator"]["properties"]["creationTimeDateTimeUtc"].is_object());
    let res = server.send(Method::GET, "/docs").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().to_lowercase().contains("<html"));
}

/// A connector that lists `GET /api/indicators/` before it imports must see what exists, so
/// every route answers the same with a trailing slash: the API under both prefixes, the token
/// and discovery routes, and the service's own.
async fn every_route_answers_with_a_trailing_slash() {
    let server = TestServer::start().await;
    let (status, created) = status_json(
        server
            .post_json("/api/indicators/", &domain_request(1))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    for prefix in ["/api", "/api/v1.0", "/API"] {
        let (status, page) = status_json(
            server
                .send(Method::GET, &format!("{prefix}/indicators/"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{prefix}: {page}");
        assert_eq!(
            page["value"].as_array().unwrap().len(),
            1,
            "{prefix}: {page}"
        );
        let (status, one) = status_json(
            server
                .send(Method::GET, &format!("{prefix}/indicators/{id}/"))
                .await,
        )
        .await;
        assert_eq!((status, &one["id"]), (200, &json!(id)), "{prefix}");
    }
    let (_, page) = status_json(server.send(Method::GET, "/api/v1.0/indicators/").await).await;
    assert!(
        page["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1.0/$metadata#Indicators"),
        "{page}"
    );

    let (status, imported) = status_json(
        server
            .post_json(
                "/api/indicators/import/",
                &json!({ "Indicators": [domain_request(2)] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["value"][0]["isFailed"], false, "{imported}");
    let second = imported["value"][0]["id"].as_str().unwrap().to_string();
    let res = server
        .send(Method::DELETE, &format!("/api/indicators/{id}/"))
        .await;
    assert_eq!(res.status(), 204);
    let res = server
        .post_json(
            "/api/v1.0/indicators/BatchDelete/",
            &json!({ "IndicatorIds": [second] }),
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_eq!(server.row_count().await, 0);

    // The identity routes: a token from the slashed token endpoint (the client authenticating
    // with HTTP Basic this time) works on the API.
    let tenant = server.app.tenant_id().to_string();
    let credentials = &server.app.credentials;
    let res = server
        .client
        .post(server.url(&format!("/{tenant}/oauth2/v2.0/token/")))
        .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", &format!("{AUDIENCE}/.default")),
        ])
        .send()
        .await
        .unwrap();
    let (status, token) = status_json(res).await;
    assert_eq!(status, 200, "{token}");
    let res = server
        .request_as(
            token["access_token"].as_str().unwrap(),
            Method::GET,
            "/api/indicators/",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for path in [
        format!("/{tenant}/discovery/v2.0/keys/"),
        format!("/{tenant}/v2.0/.well-known/openid-configuration/"),
        format!("/{tenant}/.well-known/openid-configuration/"),
    ] {
        let (status, body) = server.anonymous_get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.is_object(), "{path}: {body}");
    }
    let res = server
        .client
        .get(server.url("/health/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Only trailing slashes go: a route that does not exist still does not.
    let res = server.send(Method::GET, "/api/indicators/import/x/").await;
    assert_eq!(res.status(), 404);
}

on_every_backend!(
    get_returns_the_entity_and_404_for_unknown_ids,
    delete_is_204_then_404,
    delete_status_can_be_200_with_an_empty_body,
    unknown_routes_and_methods_use_the_error_body,
    openapi_document_and_docs_page_are_served,
    every_route_answers_with_a_trailing_slash,
);

/// `docs/openapi.json` is the API's description under review: any change to a route, a schema
/// or a status shows up as a diff of that file. Regenerate it with
/// `IOCD_UPDATE_OPENAPI=1 cargo test --workspace -- committed_openapi` (or `iocd openapi`).
#[tokio::test]
async fn committed_openapi_document_is_the_served_one() {
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated = format!("{}\n", iocd_server::openapi::document_json());
    if std::env::var_os("IOCD_UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is not what the server serves; regenerate it with \
         `IOCD_UPDATE_OPENAPI=1 cargo test --workspace -- committed_openapi` and commit the diff"
    );

    let server = TestServer::start().await;
    let (status, served) = status_json(server.send(Method::GET, "/openapi.json").await).await;
    assert_eq!(status, 200);
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(served, committed);
}
