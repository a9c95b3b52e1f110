//! Indicator ids under group commit: concurrent creates share transactions and take their ids
//! from one per-tenant counter, written once per transaction.

use iocd_testkit::*;

async fn concurrent_creates_get_consecutive_unique_ids_that_continue_after() {
    let server = TestServer::start_unthrottled().await;
    let bodies: Vec<_> = (0..200).map(domain_request).collect();
    let responses = futures::future::join_all(
        bodies
            .iter()
            .map(|b| server.post_json("/api/indicators", b)),
    )
    .await;
    let mut ids = Vec::new();
    for res in responses {
        let (status, body) = status_json(res).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().unwrap().parse::<i64>().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<i64>>(), "no gaps, no repeats");

    // A later transaction continues from the counter the batches wrote back.
    let (status, next) = status_json(
        server
            .post_json("/api/indicators", &domain_request(1000))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["id"], "201");
    // An update keeps its id and takes none.
    let (_, updated) = status_json(
        server
            .post_json("/api/indicators", &domain_request(5))
            .await,
    )
    .await;
    let (_, after) = status_json(
        server
            .post_json("/api/indicators", &domain_request(1001))
            .await,
    )
    .await;
    assert_ne!(updated["id"], "202");
    assert_eq!(after["id"], "202");
    assert_eq!(server.row_count().await, 202);
}

on_every_backend!(concurrent_creates_get_consecutive_unique_ids_that_continue_after);
