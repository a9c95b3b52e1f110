//! Test harness: starts the real server on a free loopback port over a fresh database and
//! talks HTTP to it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use iocd_server::identity::FixedIdentity;
use iocd_server::{AppState, Server, ServerConfig};
use reqwest::{Client, Method, Response};
use serde_json::Value;
use tokio::sync::oneshot;

mod backend;
#[allow(unused_imports)]
pub use backend::{run_on, Backend, TestDatabase};

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    // Declared last: dropped after the server was told to stop.
    database: TestDatabase,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> TestServer {
        let database = TestDatabase::create(Backend::current()).await;
        let database_url = database.url.clone();
        let store = iocd_store::open(&database_url).await.expect("open store");
        let rate_limiter = iocd_server::ratelimit::build_limiter(&config.rate_limits)
            .await
            .expect("rate limiter");
        let state = AppState {
            store,
            authenticator: Arc::new(FixedIdentity::development()),
            config: Arc::new(config),
            rate_limiter,
        };
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), state)
            .await
            .expect("bind");
        let addr = server.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            client: Client::new(),
            database_url,
            shutdown: Some(tx),
            database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// A request to `path`, to add headers or a body before sending.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn send(&self, method: Method, path: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Rows in the indicators table, read straight from the database (expired ones included),
    /// to prove that a refused request wrote nothing.
    pub async fn row_count(&self) -> i64 {
        self.database
            .scalar("SELECT COUNT(*) FROM indicators")
            .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads a response as (status, JSON body); an empty body reads as `Value::Null`.
pub async fn status_json(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// The documented example request of the submit API.
pub fn seed_request() -> Value {
    serde_json::json!({
        "indicatorValue": "220e7d15b011d7fac48f2bd61114db1022197f7f",
        "indicatorType": "FileSha1",
        "title": "test",
        "application": "demo-test",
        "expirationTime": "2020-12-12T00:00:00Z",
        "action": "AlertAndBlock",
        "severity": "Informational",
        "description": "test",
        "recommendedActions": "nothing",
        "rbacGroupNames": ["group1", "group2"]
    })
}

/// A valid body with a unique value, for tests that need many distinct indicators.
pub fn domain_request(n: usize) -> Value {
    serde_json::json!({
        "indicatorValue": format!("host{n}.evil.example"),
        "indicatorType": "DomainName",
        "action": "Block",
        "title": format!("indicator {n}"),
        "description": "test indicator"
    })
}
