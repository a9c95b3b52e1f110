//! Protocol-level errors over raw TCP: a URI or headers too large, a request that is not valid
//! HTTP. Each is answered in the API's error shape with a request id, whether the application
//! refuses it (an oversize URI or head hyper can still parse) or hyper does (a URI beyond 64 KB,
//! more than 100 header lines, a malformed `Content-Length` or header name), where hyper alone
//! once sent an empty body.

use std::time::Duration;

use iocd_testkit::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the API's error shape: JSON, `code`, a `message`, and the request id as `target`
    /// and `x-request-id`; returns the code.
    fn error_code(&self) -> String {
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{self:?}"
        );
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)));
        let target = body["error"]["target"].as_str().expect("a target");
        assert!(uuid::Uuid::parse_str(target).is_ok(), "{body}");
        assert_eq!(self.header("x-request-id"), Some(target), "{self:?}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body["error"]["code"].as_str().expect("a code").to_string()
    }
}

/// Reads one response from `stream`: its head, then `content-length` bytes of body.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return (head, seen[end + 4..end + 4 + length].to_vec());
                }
            }
            let n = stream.read(&mut buf).await.expect("the answer is readable");
            assert!(n > 0, "closed before a whole answer: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer within 10 s");
    let (head, body) = read;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends `request` on a new connection and reads the answer.
async fn exchange(server: &TestServer, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_answer(&mut stream).await
}

fn get(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra_headers}\r\n")
        .into_bytes()
}

fn long_filter(bytes: usize) -> String {
    format!(
        "/api/indicators?$filter=indicatorValue%20eq%20%27{}%27",
        "a".repeat(bytes)
    )
}

#[tokio::test]
async fn a_uri_over_64_kb_is_answered_414_in_the_error_shape() {
    let server = TestServer::start().await;
    let answer = exchange(&server, &get(&long_filter(70_000), "")).await;
    assert_eq!(answer.status, 414, "{answer:?}");
    assert_eq!(answer.error_code(), "RequestUriTooLong");
    assert_eq!(answer.header("connection"), Some("close"));
}

#[tokio::test]
async fn a_uri_over_32_kb_is_refused_by_the_application() {
    let server = TestServer::start().await;
    let answer = exchange(&server, &get(&long_filter(40_000), "")).await;
    assert_eq!(answer.status, 414, "{answer:?}");
    assert_eq!(answer.error_code(), "RequestUriTooLong");
    // A URI just below the limit reaches the route (401 without a token).
    let answer = exchange(&server, &get(&long_filter(30_000), "")).await;
    assert_eq!(answer.status, 401, "{answer:?}");
}

#[tokio::test]
async fn huge_headers_are_answered_431_in_the_error_shape() {
    let server = TestServer::start().await;
    // One header of 100 KB: the application refuses it.
    let big = format!("X-Big: {}\r\n", "b".repeat(100_000));
    let answer = exchange(&server, &get("/health", &big)).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(answer.error_code(), "RequestHeaderFieldsTooLarge");
    // 150 header lines: hyper refuses them before the application sees a request.
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = exchange(&server, &get("/health", &many)).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(answer.error_code(), "RequestHeaderFieldsTooLarge");
}

/// HTTP/2 (cleartext, prior knowledge): a header list well over the application's 64 KiB, and
/// over what iocd once advertised (128 KiB: this one then closed the connection, GOAWAY for too
/// many CONTINUATION frames), reaches the application, which answers in the error shape.
#[tokio::test]
async fn huge_headers_over_http2_are_answered_431_in_the_error_shape() {
    use http_body_util::BodyExt;
    let server = TestServer::start().await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(format!("http://{}/health", server.addr))
        .header("x-big", "b".repeat(300_000))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let answer = Answer {
        status,
        headers,
        body,
    };
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(answer.error_code(), "RequestHeaderFieldsTooLarge");
}

#[tokio::test]
async fn malformed_requests_are_answered_400_in_the_error_shape() {
    let server = TestServer::start().await;
    for request in [
        &b"POST /api/indicators HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}"[..],
        b"POST /api/indicators HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nBad Header Name: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Ctl: a\x01b\r\n\r\n",
        b"GET /hea\x7fth HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"G(T /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ] {
        let answer = exchange(&server, request).await;
        assert_eq!(
            answer.status,
            400,
            "{:?}: {answer:?}",
            String::from_utf8_lossy(request)
        );
        assert_eq!(answer.error_code(), "BadRequest");
    }
}

#[tokio::test]
async fn a_malformed_request_after_good_ones_on_one_connection_gets_the_error_shape() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(&mut stream).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        // An error the application wrote is left as it is.
        stream
            .write_all(b"GET /api/indicators/1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(&mut stream).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.error_code(), "Unauthorized");
    }
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.error_code(), "BadRequest");
}
