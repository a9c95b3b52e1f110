//! Clients that hold a connection without finishing a request: slow headers (slowloris), a
//! stalled body, an idle keep-alive. Each is cut off after its timeout; a stalled body answers
//! 408 in the API's error shape. Timeouts are set to a second here; the bounds leave room for a
//! loaded machine and are far below the indefinite hold they guard against.

use std::time::{Duration, Instant};

use iocd_server::{ConnectionLimits, ServerConfig};
use iocd_testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOUND: Duration = Duration::from_secs(5);

async fn server_with_short_timeouts() -> TestServer {
    TestServer::start_with(ServerConfig {
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        },
        ..ServerConfig::default()
    })
    .await
}

/// Everything the server sends until it closes the connection; `None` if it is still open after
/// `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| seen)
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let server = server_with_short_timeouts().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let headers =
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut_off = false;
    for byte in headers {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cut_off || closed_within(&mut stream, BOUND).await.is_some(),
        "the slow headers are still being read after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(7));
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let server = server_with_short_timeouts().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let seen = closed_within(&mut stream, BOUND)
        .await
        .expect("an idle connection is still open");
    assert!(seen.is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_request() {
    let server = server_with_short_timeouts().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let seen = closed_within(&mut stream, BOUND)
        .await
        .expect("the keep-alive connection is still open");
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 200 "), "{seen}");
}

#[tokio::test]
async fn a_stalled_body_answers_408_in_the_api_error_shape() {
    let server = server_with_short_timeouts().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /api/indicators HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"indicat",
        server.app.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let seen = closed_within(&mut stream, BOUND)
        .await
        .expect("the stalled body is still being waited for");
    assert!(started.elapsed() < BOUND);
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 408 "), "{seen}");
    let body = &seen[seen.find("\r\n\r\n").expect("a body") + 4..];
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["error"]["code"], "RequestTimeout", "{body}");
    assert!(!body["error"]["target"].as_str().unwrap_or("").is_empty());
    assert_eq!(server.row_count().await, 0);
}

/// A request in flight keeps its connection however long the server takes; only the time
/// outside requests counts.
#[tokio::test]
async fn a_client_sending_steadily_is_not_cut_off() {
    let server = server_with_short_timeouts().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..4 {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 "));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
