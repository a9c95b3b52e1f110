//! POST /api/indicators/import and POST /api/indicators/BatchDelete.

use iocd_server::ServerConfig;
use iocd_testkit::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn import(server: &TestServer, items: Vec<Value>) -> (u16, Value) {
    status_json(
        server
            .post_json("/api/indicators/import", &json!({ "Indicators": items }))
            .await,
    )
    .await
}

async fn import_reports_each_item_in_order_and_lands_the_valid_ones() {
    let server = TestServer::start().await;
    let mut items: Vec<Value> = (0..6).map(domain_request).collect();
    items[1]["indicatorType"] = json!("Domain"); // not an indicator type
    items[3] = json!({"indicatorValue": "abc", "indicatorType": "FileSha1", "action": "Block", "title": "t", "description": "d"});
    items[4] = json!("not an object");
    items.push(
        json!({"indicatorType": "DomainName", "action": "Block", "title": "t", "description": "d"}),
    );
    let (status, body) = import(&server, items).await;
    assert_eq!(status, 200, "{body}");
    let results = body["value"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    for (i, result) in results.iter().enumerate() {
        let object = result.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{result}");
        for key in ["id", "indicator", "isFailed", "failureReason"] {
            assert!(object.contains_key(key), "{key} missing in {result}");
        }
        let should_fail = matches!(i, 1 | 3 | 4 | 6);
        assert_eq!(result["isFailed"], should_fail, "item {i}: {result}");
        if should_fail {
            assert!(result["id"].is_null());
            assert!(result["failureReason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()));
        } else {
            assert!(result["failureReason"].is_null());
            assert_eq!(result["indicator"], format!("host{i}.evil.example"));
        }
    }
    assert!(results[1]["failureReason"]
        .as_str()
        .unwrap()
        .contains("indicatorType"));
    assert_eq!(results[1]["indicator"], "host1.evil.example");
    assert!(results[3]["failureReason"]
        .as_str()
        .unwrap()
        .contains("indicatorValue"));
    assert!(results[4]["indicator"].is_null());
    assert!(results[6]["failureReason"]
        .as_str()
        .unwrap()
        .contains("indicatorValue"));
    assert_eq!(server.row_count().await, 3);
    // The ids are real: each one reads back as the indicator reported.
    for i in [0, 2, 5] {
        let id = results[i]["id"].as_str().unwrap();
        let (status, entity) = status_json(
            server
                .send(Method::GET, &format!("/api/indicators/{id}"))
                .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(entity["indicatorValue"], results[i]["indicator"]);
    }
}

async fn import_upserts_like_the_single_submit() {
    let server = TestServer::start().await;
    let (_, first) = import(&server, vec![domain_request(1), domain_request(2)]).await;
    let mut changed = domain_request(1);
    changed["title"] = json!("renamed");
    // The same key twice in one batch: the second is an update of the first.
    let mut again = domain_request(3);
    again["severity"] = json!("High");
    let (status, second) = import(&server, vec![changed, domain_request(3), again]).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["value"][0]["id"], first["value"][0]["id"]);
    assert_eq!(second["value"][1]["id"], second["value"][2]["id"]);
    assert_eq!(server.row_count().await, 3);
    let id = second["value"][0]["id"].as_str().unwrap();
    let (_, entity) = status_json(
        server
            .send(Method::GET, &format!("/api/indicators/{id}"))
            .await,
    )
    .await;
    assert_eq!(entity["title"], "renamed");
    let id = second["value"][2]["id"].as_str().unwrap();
    let (_, entity) = status_json(
        server
            .send(Method::GET, &format!("/api/indicators/{id}"))
            .await,
    )
    .await;
    assert_eq!(entity["severity"], "High");
    // Audit without generateAlert fails per item, as a single submit fails with 400.
    let audit = json!({"indicatorValue": "audit.example", "indicatorType": "DomainName", "action": "Audit", "title": "t", "description": "d"});
    let (_, single) = status_json(server.post_json("/api/indicators", &audit).await).await;
    let (_, batch) = import(&server, vec![audit]).await;
    assert_eq!(batch["value"][0]["isFailed"], true);
    assert_eq!(
        batch["value"][0]["failureReason"],
        single["error"]["message"]
    );
}

async fn import_quota_counts_the_whole_batch() {
    let server = TestServer::start_with(ServerConfig {
        max_active_indicators: Some(10),
        ..Default::default()
    })
    .await;
    let (_, _) = import(&server, (0..4).map(domain_request).collect()).await;
    // 4 exist; of 10 new ones plus an update of an existing one, 6 fit and the update works.
    let mut items: Vec<Value> = (100..110).map(domain_request).collect();
    let mut update = domain_request(0);
    update["title"] = json!("still fine");
    items.push(update);
    let (status, body) = import(&server, items).await;
    assert_eq!(status, 200, "{body}");
    let results = body["value"].as_array().unwrap();
    let landed = results[..10]
        .iter()
        .filter(|r| r["isFailed"] == false)
        .count();
    assert_eq!(landed, 6);
    assert!(results[6..10].iter().all(|r| r["isFailed"] == true
        && r["failureReason"]
            .as_str()
            .unwrap()
            .contains("Max capacity exceeded")));
    assert_eq!(results[10]["isFailed"], false);
    assert_eq!(server.row_count().await, 10);
}

async fn import_batch_limits_and_body_shape() {
    let server = TestServer::start().await;
    let (status, body) = import(&server, (0..501).map(domain_request).collect()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "MaximumBatchSizeExceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Received: 501") && message.contains("allowed: 500"),
        "{message}"
    );
    assert_eq!(server.row_count().await, 0);

    let (status, body) = import(&server, (0..500).map(domain_request).collect()).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"].as_array().unwrap().len(), 500);
    assert_eq!(server.row_count().await, 500);

    // The write-permission probe some clients send.
    let (status, body) = import(&server, vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], json!([]));

    for (bad, fragment) in [
        (json!([domain_request(1)]), "Indicators"),
        (json!({"indicators": [domain_request(1)]}), "case-sensitive"),
        (json!({"Indicators": domain_request(1)}), "must be an array"),
        (json!({}), "Indicators"),
    ] {
        let (status, body) =
            status_json(server.post_json("/api/indicators/import", &bad).await).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{body}"
        );
    }
    let res = server
        .request(Method::POST, "/api/indicators/import")
        .header("content-type", "application/json")
        .body("{\"Indicators\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Case-insensitive path.
    let (status, _) = status_json(
        server
            .post_json(
                "/API/Indicators/IMPORT",
                &json!({"Indicators": [domain_request(900)]}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
}

async fn ids_of(server: &TestServer, n: std::ops::Range<usize>) -> Vec<String> {
    let (_, body) = import(server, n.map(domain_request).collect()).await;
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn batch_delete_is_all_or_nothing() {
    let server = TestServer::start().await;
    let ids = ids_of(&server, 0..5).await;
    let res = server
        .post_json(
            "/api/indicators/BatchDelete",
            &json!({"IndicatorIds": [ids[0], ids[1], ids[1]]}),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert!(res.text().await.unwrap().is_empty());
    assert_eq!(server.row_count().await, 3);

    // One unknown id (and one already deleted): 404 naming them, nothing deleted.
    let (status, body) = status_json(
        server
            .post_json(
                "/api/indicators/BatchDelete",
                &json!({"IndicatorIds": [ids[2], "999", ids[0], ids[3]]}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NotFound");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("999") && message.contains(&ids[0]),
        "{message}"
    );
    assert!(!message.contains(&format!(" {},", ids[2])), "{message}");
    assert_eq!(server.row_count().await, 3);

    // Numbers are accepted as well as strings; lower-case path.
    let numeric: Vec<i64> = ids[2..].iter().map(|id| id.parse().unwrap()).collect();
    let res = server
        .post_json(
            "/api/indicators/batchdelete",
            &json!({ "IndicatorIds": numeric }),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(server.row_count().await, 0);
}

async fn batch_delete_rejects_bad_bodies() {
    let server = TestServer::start().await;
    let ids = ids_of(&server, 0..2).await;
    let too_many: Vec<String> = (1..=501).map(|i| i.to_string()).collect();
    let cases = [
        (json!({"IndicatorIds": []}), "InvalidInput", "empty"),
        (
            json!({"IndicatorIds": too_many}),
            "MaximumBatchSizeExceeded",
            "Received: 501",
        ),
        (
            json!({"IndicatorIds": [ids[0], "abc"]}),
            "InvalidInput",
            "IndicatorIds[1]",
        ),
        (
            json!({"IndicatorIds": [ids[0], 0]}),
            "InvalidInput",
            "IndicatorIds[1]",
        ),
        (
            json!({"IndicatorIds": [ids[0], null]}),
            "InvalidInput",
            "IndicatorIds[1]",
        ),
        (
            json!({"indicatorIds": [ids[0]]}),
            "MissingRequiredParameter",
            "case-sensitive",
        ),
        (
            json!({"IndicatorIds": ids[0]}),
            "InvalidRequestBody",
            "array",
        ),
        (json!([ids[0]]), "InvalidRequestBody", "IndicatorIds"),
    ];
    for (body, code, fragment) in cases {
        let (status, error) =
            status_json(server.post_json("/api/indicators/BatchDelete", &body).await).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["code"], code, "{body}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{body}: {message}");
    }
    assert_eq!(server.row_count().await, 2);
    // GET on the batch routes is 405.
    let res = server
        .send(Method::GET, "/api/indicators/BatchDelete")
        .await;
    assert_eq!(res.status(), 405);
}

on_every_backend!(
    import_reports_each_item_in_order_and_lands_the_valid_ones,
    import_upserts_like_the_single_submit,
    import_quota_counts_the_whole_batch,
    import_batch_limits_and_body_shape,
    batch_delete_is_all_or_nothing,
    batch_delete_rejects_bad_bodies,
);
