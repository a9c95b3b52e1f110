mod common;
use common::*;

#[tokio::test]
async fn seed_request_round_trips() {
    let server = TestServer::start().await;
    let (status, body) =
        status_json(server.post_json("/api/indicators", &seed_request()).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "1");
    assert_eq!(server.row_count().await, 1);
}
