//! `POST /api/indicators`: the seed example, every validation rule, the upsert rules and
//! their concurrency, against the real server over HTTP.

use iocd_testkit::*;
use serde_json::{json, Value};

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

fn without(mut body: Value, field: &str) -> Value {
    body.as_object_mut().unwrap().remove(field);
    body
}

fn sha1_request() -> Value {
    json!({"indicatorValue": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "indicatorType": "FileSha1",
           "action": "Block", "title": "t", "description": "d"})
}

fn typed(value: &str, ty: &str, action: &str) -> Value {
    json!({"indicatorValue": value, "indicatorType": ty, "action": action, "title": "t", "description": "d"})
}

/// The wire order of the entity's properties in real responses.
const WIRE_ORDER: &[&str] = &[
    "@odata.context",
    "id",
    "indicatorValue",
    "indicatorType",
    "action",
    "createdBy",
    "severity",
    "category",
    "application",
    "educateUrl",
    "bypassDurationHours",
    "title",
    "description",
    "recommendedActions",
    "creationTimeDateTimeUtc",
    "expirationTime",
    "lastUpdateTime",
    "lastUpdatedBy",
    "rbacGroupNames",
    "rbacGroupIds",
    "notificationId",
    "notificationBody",
    "version",
    "mitreTechniques",
    "historicalDetection",
    "lookBackPeriod",
    "generateAlert",
    "additionalInfo",
    "createdByDisplayName",
    "externalId",
    "createdBySource",
    "certificateInfo",
];

async fn seed_example_gives_the_full_entity_in_wire_order() {
    let server = TestServer::start().await;
    let res = server.post_json("/api/indicators", &seed_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["odata-version"], "4.0");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json; odata.metadata=minimal"));
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();

    // Every property present (explicit nulls), no others, in wire order.
    assert_eq!(body.as_object().unwrap().len(), WIRE_ORDER.len(), "{text}");
    let positions: Vec<usize> = WIRE_ORDER
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "wire order broken: {text}"
    );

    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/api/$metadata#Indicators/$entity"));
    assert_eq!(body["id"], "1");
    assert_eq!(
        body["indicatorValue"],
        "220e7d15b011d7fac48f2bd61114db1022197f7f"
    );
    assert_eq!(body["indicatorType"], "FileSha1");
    assert_eq!(body["action"], "AlertAndBlock");
    assert_eq!(body["severity"], "Informational");
    assert_eq!(body["application"], "demo-test");
    assert_eq!(body["expirationTime"], "2020-12-12T00:00:00Z");
    assert_eq!(body["recommendedActions"], "nothing");
    assert_eq!(body["rbacGroupNames"], json!(["group1", "group2"]));
    assert_eq!(body["rbacGroupIds"], json!([]));
    assert_eq!(body["createdBySource"], "PublicApi");
    assert_eq!(body["category"], 1);
    assert_eq!(body["generateAlert"], false);
    assert_eq!(body["lastUpdatedBy"], Value::Null);
    assert_eq!(body["certificateInfo"], Value::Null);
    assert_eq!(body["creationTimeDateTimeUtc"], body["lastUpdateTime"]);
    assert!(body["creationTimeDateTimeUtc"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(server.row_count().await, 1);
}

async fn v1_alias_and_case_insensitive_paths() {
    let server = TestServer::start().await;
    let (status, body) = status_json(
        server
            .post_json("/api/v1.0/indicators", &sha1_request())
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1.0/$metadata#Indicators/$entity"));
    let (status, body) =
        status_json(server.send(reqwest::Method::GET, "/API/Indicators/1").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["indicatorValue"],
        "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"
    );
}

async fn invalid_bodies_are_refused_with_field_and_nothing_is_written() {
    let server = TestServer::start().await;
    let base = sha1_request();
    let url_block = typed("https://evil.example/x", "Url", "Block");
    // (body, expected code, text the message must contain)
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            without(base.clone(), "indicatorValue"),
            "MissingRequiredParameter",
            "indicatorValue",
        ),
        (
            without(base.clone(), "indicatorType"),
            "MissingRequiredParameter",
            "indicatorType",
        ),
        (
            without(base.clone(), "action"),
            "MissingRequiredParameter",
            "action",
        ),
        (
            without(base.clone(), "title"),
            "MissingRequiredParameter",
            "title",
        ),
        (
            without(base.clone(), "description"),
            "MissingRequiredParameter",
            "description",
        ),
        (
            with(base.clone(), "title", Value::Null),
            "MissingRequiredParameter",
            "title",
        ),
        (
            with(base.clone(), "title", json!("  ")),
            "InvalidInput",
            "title",
        ),
        (
            with(base.clone(), "title", json!(42)),
            "InvalidInput",
            "title",
        ),
        (
            with(base.clone(), "title", json!("x".repeat(4001))),
            "InvalidInput",
            "title",
        ),
        (
            with(base.clone(), "indicatorValue", json!("")),
            "InvalidInput",
            "indicatorValue",
        ),
        (
            with(base.clone(), "indicatorType", json!("filesha1")),
            "InvalidInput",
            "expected 'FileSha1'",
        ),
        (
            with(base.clone(), "indicatorType", json!("Sha1")),
            "InvalidInput",
            "indicatorType",
        ),
        (
            with(base.clone(), "action", json!("alert")),
            "InvalidInput",
            "expected 'Alert'",
        ),
        (
            with(base.clone(), "action", json!("Deny")),
            "InvalidInput",
            "action",
        ),
        (
            with(base.clone(), "severity", json!("high")),
            "InvalidInput",
            "expected 'High'",
        ),
        (
            with(base.clone(), "generateAlert", json!("yes")),
            "InvalidInput",
            "generateAlert",
        ),
        (
            with(base.clone(), "generateAlert", json!(1)),
            "InvalidInput",
            "generateAlert",
        ),
        (
            with(base.clone(), "rbacGroupNames", json!(5)),
            "InvalidInput",
            "rbacGroupNames",
        ),
        (
            with(base.clone(), "rbacGroupNames", json!([{"a": 1}])),
            "InvalidInput",
            "rbacGroupNames",
        ),
        (
            with(base.clone(), "expirationTime", json!("tomorrow")),
            "InvalidInput",
            "expirationTime",
        ),
        (
            with(base.clone(), "mitreTechniques", json!(["T15"])),
            "InvalidInput",
            "mitreTechniques",
        ),
        (
            with(base.clone(), "bypassDurationHours", json!(-1)),
            "InvalidInput",
            "bypassDurationHours",
        ),
        (
            with(base.clone(), "category", json!("Execution")),
            "InvalidInput",
            "category",
        ),
        // Per-type value rules.
        (
            typed("d41d8cd98f00b204e9800998ecf8427", "FileMd5", "Block"),
            "InvalidHashValue",
            "32",
        ),
        (
            typed(&"z".repeat(64), "FileSha256", "Block"),
            "InvalidHashValue",
            "hexadecimal",
        ),
        (
            typed(&"a".repeat(64), "FileSha1", "Block"),
            "InvalidHashValue",
            "40",
        ),
        (
            typed(&"a".repeat(39), "CertificateThumbprint", "Allowed"),
            "InvalidHashValue",
            "40",
        ),
        (
            typed("8.8.8.0/24", "IpAddress", "Block"),
            "InvalidIpAddress",
            "CIDR",
        ),
        (
            typed("8.8.8.1-8.8.8.9", "IpAddress", "Block"),
            "InvalidIpAddress",
            "ranges",
        ),
        (
            typed("10.0.0.1", "IpAddress", "Block"),
            "InvalidIpAddress",
            "private",
        ),
        (
            typed("127.0.0.1", "IpAddress", "Block"),
            "InvalidIpAddress",
            "loopback",
        ),
        (
            typed("fe80::1", "IpAddress", "Block"),
            "InvalidIpAddress",
            "link-local",
        ),
        (
            typed("300.1.1.1", "IpAddress", "Block"),
            "InvalidIpAddress",
            "indicatorValue",
        ),
        (
            typed("https://evil.example", "DomainName", "Block"),
            "InvalidDomainName",
            "Url",
        ),
        (
            typed("intranet", "DomainName", "Block"),
            "InvalidDomainName",
            "two labels",
        ),
        (
            typed("*.evil.example", "DomainName", "Block"),
            "InvalidDomainName",
            "wildcards",
        ),
        (
            typed("evil.example/path", "Url", "Block"),
            "InvalidUrl",
            "absolute",
        ),
        (
            typed("ftp://evil.example/x", "Url", "Block"),
            "InvalidUrl",
            "scheme",
        ),
        // Cross-field rules.
        (
            typed("evil.example", "DomainName", "Audit"),
            "InvalidInput",
            "generateAlert",
        ),
        (
            with(
                typed("evil.example", "DomainName", "Audit"),
                "generateAlert",
                json!(false),
            ),
            "InvalidInput",
            "generateAlert",
        ),
        (
            with(
                typed("evil.example", "DomainName", "Block"),
                "educateUrl",
                json!("https://help.example/"),
            ),
            "InvalidInput",
            "educateUrl",
        ),
        (
            with(
                typed("https://evil.example/", "Url", "Allowed"),
                "educateUrl",
                json!("https://help.example/"),
            ),
            "InvalidInput",
            "educateUrl",
        ),
        (
            with(url_block.clone(), "educateUrl", json!("not a url")),
            "InvalidInput",
            "educateUrl",
        ),
        // Whole-body problems.
        (json!([sha1_request()]), "InvalidRequestBody", "JSON object"),
        (json!("FileSha1"), "InvalidRequestBody", "JSON object"),
    ];
    for (body, code, needle) in cases {
        let (status, res) = status_json(server.post_json("/api/indicators", &body).await).await;
        assert_eq!(status, 400, "{body} -> {res}");
        assert_eq!(res["error"]["code"], code, "{body} -> {res}");
        let message = res["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{body}: message {message:?} lacks {needle:?}"
        );
        assert!(!res["error"]["target"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        server.row_count().await,
        0,
        "a refused request wrote something"
    );
}

async fn wrong_case_property_names_are_missing_with_a_hint() {
    let server = TestServer::start().await;
    let mut body = without(sha1_request(), "indicatorValue");
    body["IndicatorValue"] = json!("a94a8fe5ccb19ba61c4c0873d391e987982fbbd3");
    let (status, res) = status_json(server.post_json("/api/indicators", &body).await).await;
    assert_eq!(status, 400);
    assert_eq!(res["error"]["code"], "MissingRequiredParameter");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("case-sensitive"),
        "{res}"
    );
    assert_eq!(server.row_count().await, 0);
}

async fn malformed_and_mistyped_requests_get_the_error_body() {
    let server = TestServer::start().await;
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let mut req = server
            .request(reqwest::Method::POST, "/api/indicators")
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let res = post("{\"indicatorValue\": ", Some("application/json"))
        .await
        .unwrap();
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("InvalidRequestBody")),
        "{body}"
    );
    assert_eq!(
        body["error"]["target"],
        request_id.as_str(),
        "target is the request id"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{body}"
    );

    let (status, body) = status_json(post("", Some("application/json")).await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("InvalidRequestBody")),
        "{body}"
    );

    let (status, body) = status_json(post("{}", Some("text/plain")).await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("UnsupportedMediaType")),
        "{body}"
    );
    let (status, body) = status_json(post("{}", None).await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("UnsupportedMediaType")),
        "{body}"
    );

    let ok = post(
        r#"{"indicatorValue":"8.8.8.8","indicatorType":"IpAddress","action":"Block","title":"t","description":"d"}"#,
        Some("application/json; charset=utf-8"),
    );
    assert_eq!(ok.await.unwrap().status(), 200, "charset parameter is fine");
    assert_eq!(server.row_count().await, 1);
}

async fn oversized_bodies_get_413() {
    let server = TestServer::start_with(iocd_server::ServerConfig {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let body = with(sha1_request(), "description", json!("x".repeat(2000)));
    let (status, res) = status_json(server.post_json("/api/indicators", &body).await).await;
    assert_eq!(status, 413, "{res}");
    assert_eq!(res["error"]["code"], "RequestEntityTooLarge");
    assert!(
        res["error"]["message"].as_str().unwrap().contains("1024"),
        "{res}"
    );
    assert_eq!(server.row_count().await, 0);
}

async fn lenient_inputs_that_real_clients_send_are_accepted() {
    let server = TestServer::start().await;
    let full = json!({
        "indicatorValue": "https://Evil.Example/Path?q=1", "indicatorType": "Url", "action": "Warn",
        "title": "t", "description": "d", "generateAlert": "True", "rbacGroupNames": "g1, g2,,g1",
        "rbacGroupIds": [1, "2"], "expirationTime": "2099-01-01T02:00:00+02:00",
        "educateUrl": "https://help.example/why", "category": 3, "externalId": "ext-1",
        "mitreTechniques": "T1566,T1566.001", "bypassDurationHours": 24, "notificationId": 7,
        "notificationBody": "nb", "version": "v1", "historicalDetection": "false", "lookBackPeriod": "P30D",
        "additionalInfo": {"feed": "x"}, "certificateInfo": {"issuer": "CN=x"}, "severity": "Medium",
        "recommendedActions": "r", "application": "app",
        // Read-only and unknown properties that clients echo back are ignored.
        "id": "999", "createdBy": "someone", "lastUpdateTime": "2020-01-01T00:00:00Z", "source": "x",
        "sourceType": "AadApp", "createdBySource": "Portal", "somethingNew": {"a": 1}
    });
    let (status, body) = status_json(server.post_json("/api/indicators", &full).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "1");
    assert_eq!(
        body["indicatorValue"], "https://Evil.Example/Path?q=1",
        "spelling preserved"
    );
    assert_eq!(body["generateAlert"], true);
    assert_eq!(body["rbacGroupNames"], json!(["g1", "g2"]));
    assert_eq!(body["rbacGroupIds"], json!(["1", "2"]));
    assert_eq!(
        body["expirationTime"], "2099-01-01T00:00:00Z",
        "returned in UTC"
    );
    assert_eq!(body["mitreTechniques"], json!(["T1566", "T1566.001"]));
    assert_eq!(body["category"], 3);
    assert_eq!(body["educateUrl"], "https://help.example/why");
    assert_eq!(body["bypassDurationHours"], 24);
    assert_eq!(body["notificationId"], "7");
    assert_eq!(body["historicalDetection"], false);
    assert_eq!(body["lookBackPeriod"], "P30D");
    assert_eq!(body["additionalInfo"], json!({"feed": "x"}));
    assert_eq!(body["certificateInfo"], json!({"issuer": "CN=x"}));
    assert_eq!(
        body["createdBy"],
        server.app.client_id(),
        "createdBy is the caller, not the body"
    );
    assert_eq!(body["createdBySource"], "PublicApi");
    assert_ne!(body["lastUpdateTime"], "2020-01-01T00:00:00Z");

    // Stored, not just echoed.
    let (_, stored) =
        status_json(server.send(reqwest::Method::GET, "/api/indicators/1").await).await;
    let (mut a, mut b) = (body.clone(), stored.clone());
    a.as_object_mut().unwrap().remove("@odata.context");
    b.as_object_mut().unwrap().remove("@odata.context");
    assert_eq!(a, b);

    for valid in [
        typed("bücher.example", "DomainName", "Allowed"),
        typed("2001:4860:4860:0:0:0:0:8888", "IpAddress", "Block"),
        with(
            typed("d41d8cd98f00b204e9800998ecf8427e", "FileMd5", "Audit"),
            "generateAlert",
            json!(true),
        ),
        typed(&"A".repeat(64), "FileSha256", "BlockAndRemediate"),
        typed(&"b".repeat(40), "CertificateThumbprint", "Allowed"),
        typed("8.8.4.4", "IpAddress", "Alert"),
    ] {
        let (status, res) = status_json(server.post_json("/api/indicators", &valid).await).await;
        assert_eq!(status, 200, "{valid} -> {res}");
    }
    assert_eq!(server.row_count().await, 7);
}

async fn same_key_updates_in_place_and_other_action_creates() {
    let server = TestServer::start().await;
    let first = json!({"indicatorValue": "A94A8FE5CCB19BA61C4C0873D391E987982FBBD3", "indicatorType": "FileSha1",
        "action": "Block", "title": "first", "description": "d", "application": "app-1", "version": "1",
        "certificateInfo": {"v": 1}, "severity": "High", "externalId": "e1"});
    let (_, created) = status_json(server.post_json("/api/indicators", &first).await).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    // Same type, normalised value and action: an update, whatever the hash's case.
    let second = json!({"indicatorValue": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "indicatorType": "FileSha1",
        "action": "Block", "title": "second", "description": "d2", "application": "app-2", "version": "2",
        "certificateInfo": {"v": 2}, "externalId": null});
    let (status, updated) = status_json(server.post_json("/api/indicators", &second).await).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(
        updated["creationTimeDateTimeUtc"],
        created["creationTimeDateTimeUtc"]
    );
    assert_ne!(updated["lastUpdateTime"], created["lastUpdateTime"]);
    assert_eq!(updated["lastUpdatedBy"], created["createdBy"]);
    assert_eq!(updated["title"], "second");
    assert_eq!(
        updated["application"], "app-1",
        "application is create-only"
    );
    assert_eq!(updated["version"], "1", "version is create-only");
    assert_eq!(
        updated["certificateInfo"],
        json!({"v": 1}),
        "certificateInfo is create-only"
    );
    assert_eq!(
        updated["severity"], "High",
        "an absent property keeps its value"
    );
    assert_eq!(
        updated["externalId"],
        Value::Null,
        "an explicit null clears"
    );
    assert_eq!(server.row_count().await, 1);

    // Another action is another indicator (Allow > Warn > Block may coexist for one value).
    let allowed = with(second.clone(), "action", json!("Allowed"));
    let (_, other) = status_json(server.post_json("/api/indicators", &allowed).await).await;
    assert_eq!(other["id"], "2");
    assert_eq!(server.row_count().await, 2);
}

async fn concurrent_posts_of_one_key_make_one_indicator() {
    let server = TestServer::start().await;
    let body = typed("race.evil.example", "DomainName", "Block");
    let responses = futures::future::join_all((0..50).map(|i| {
        let body = with(body.clone(), "title", json!(format!("writer {i}")));
        let req = server
            .request(reqwest::Method::POST, "/api/indicators")
            .json(&body);
        async move { status_json(req.send().await.unwrap()).await }
    }))
    .await;
    let ids: std::collections::HashSet<String> = responses
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "ids: {ids:?}");
    assert_eq!(server.row_count().await, 1);
}

async fn expired_indicators_are_gone_and_their_key_starts_afresh() {
    let server = TestServer::start().await;
    let (status, first) =
        status_json(server.post_json("/api/indicators", &seed_request()).await).await;
    assert_eq!(status, 200, "{first}");
    let (status, _) =
        status_json(server.send(reqwest::Method::GET, "/api/indicators/1").await).await;
    assert_eq!(
        status, 404,
        "expired (2020-12-12) indicators are not returned"
    );
    let renewed = with(
        seed_request(),
        "expirationTime",
        json!("2099-12-12T00:00:00Z"),
    );
    let (_, second) = status_json(server.post_json("/api/indicators", &renewed).await).await;
    assert_eq!(second["id"], "2", "a fresh indicator, not a revived one");
    assert_eq!(server.row_count().await, 1, "the expired row was replaced");
}

on_every_backend!(
    seed_example_gives_the_full_entity_in_wire_order,
    v1_alias_and_case_insensitive_paths,
    invalid_bodies_are_refused_with_field_and_nothing_is_written,
    wrong_case_property_names_are_missing_with_a_hint,
    malformed_and_mistyped_requests_get_the_error_body,
    oversized_bodies_get_413,
    lenient_inputs_that_real_clients_send_are_accepted,
    same_key_updates_in_place_and_other_action_creates,
    concurrent_posts_of_one_key_make_one_indicator,
    expired_indicators_are_gone_and_their_key_starts_afresh,
);
