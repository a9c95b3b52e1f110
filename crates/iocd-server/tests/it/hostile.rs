//! Hostile input against the real server: bodies built to cost CPU, lists far beyond their caps.
//! Each test bounds the time the server may take to refuse, generously enough not to flake on a
//! loaded machine yet far below what the quadratic validation it guards against needed.

use std::time::{Duration, Instant};

use iocd_testkit::*;
use serde_json::{json, Value};

/// Far below the 60 s that 300,000 distinct names once cost, far above a linear refusal.
const REFUSAL_BOUND: Duration = Duration::from_secs(2);

fn distinct_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("g{i}")).collect()
}

fn body_with_list(property: &str, entries: Vec<String>) -> Value {
    let mut body = json!({"indicatorValue": "big-list.example", "indicatorType": "DomainName",
        "action": "Block", "title": "t", "description": "d"});
    body[property] = json!(entries);
    body
}

#[tokio::test]
async fn a_submit_with_300000_list_entries_is_refused_quickly() {
    let server = TestServer::start_unthrottled().await;
    for property in ["rbacGroupNames", "rbacGroupIds", "mitreTechniques"] {
        let body = body_with_list(property, distinct_names(300_000));
        let started = Instant::now();
        let res = server
            .request(reqwest::Method::POST, "/api/indicators")
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the server answers");
        let elapsed = started.elapsed();
        let (status, error) = status_json(res).await;
        assert_eq!(status, 400, "{property}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(property),
            "{error}"
        );
        assert!(
            elapsed < REFUSAL_BOUND,
            "{property}: refusing 300,000 entries took {elapsed:?}"
        );
    }
    assert_eq!(server.row_count().await, 0);
}

#[tokio::test]
async fn an_import_of_items_with_huge_lists_is_refused_quickly() {
    let server = TestServer::start_unthrottled().await;
    // 3 items of 100,000 names each: the body stays under the 8 MiB cap.
    let items: Vec<Value> = (0..3)
        .map(|i| {
            let mut item = body_with_list("rbacGroupNames", distinct_names(100_000));
            item["indicatorValue"] = json!(format!("big{i}.example"));
            item
        })
        .collect();
    let started = Instant::now();
    let res = server
        .request(reqwest::Method::POST, "/api/indicators/import")
        .json(&json!({ "Indicators": items }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the server answers");
    let elapsed = started.elapsed();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    let results = body["value"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for result in results {
        assert_eq!(result["isFailed"], true, "{result}");
        assert!(
            result["failureReason"]
                .as_str()
                .unwrap()
                .contains("rbacGroupNames"),
            "{result}"
        );
    }
    assert!(elapsed < REFUSAL_BOUND, "took {elapsed:?}");
    assert_eq!(server.row_count().await, 0);
}

#[tokio::test]
async fn a_batch_delete_of_300000_ids_is_refused_quickly() {
    let server = TestServer::start_unthrottled().await;
    let ids: Vec<String> = (1..=300_000).map(|i| i.to_string()).collect();
    let started = Instant::now();
    let res = server
        .post_json(
            "/api/indicators/BatchDelete",
            &json!({ "IndicatorIds": ids }),
        )
        .await;
    let elapsed = started.elapsed();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "MaximumBatchSizeExceeded");
    assert!(elapsed < REFUSAL_BOUND, "took {elapsed:?}");
}
