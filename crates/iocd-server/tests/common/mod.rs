//! Test harness: starts the real server on a free loopback port over a fresh database and
//! talks HTTP to it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use iocd_identity::{register_app, NewAppCredentials, Role};
use iocd_server::{AppState, Server, ServerConfig};
use iocd_store::IdentityStore;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod backend;
#[allow(unused_imports)]
pub use backend::{run_on, Backend, TestDatabase};

/// The resource the harness asks tokens for.
pub const AUDIENCE: &str = "https://api.securitycenter.microsoft.com";

/// An app registered in the test server's database, with a token from its token endpoint.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub credentials: NewAppCredentials,
    pub display_name: String,
    pub token: String,
}

impl TestApp {
    pub fn tenant_id(&self) -> &str {
        &self.credentials.tenant_id
    }

    pub fn client_id(&self) -> &str {
        &self.credentials.client_id
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub database_url: String,
    /// The server's identity store (same database), to register apps or read the signing key.
    pub identity: Arc<dyn IdentityStore>,
    /// A `Ti.ReadWrite.All` app of the default test tenant; `post_json`, `send` and `request`
    /// act as it.
    pub app: TestApp,
    shutdown: Option<oneshot::Sender<()>>,
    // Declared last: dropped after the server was told to stop.
    database: TestDatabase,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServerConfig::default()).await
    }

    /// A server without rate limits, for tests about volume (thousands of calls), not throttling.
    pub async fn start_unthrottled() -> TestServer {
        Self::start_with(ServerConfig {
            rate_limits: iocd_server::RateLimitConfig::disabled(),
            ..ServerConfig::default()
        })
        .await
    }

    pub async fn start_with(config: ServerConfig) -> TestServer {
        let database = TestDatabase::create(Backend::current()).await;
        let database_url = database.url.clone();
        let stores = iocd_store::open_stores(&database_url)
            .await
            .expect("open store");
        let identity = stores.identity.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let state = AppState::new(stores, config, &format!("http://{addr}"))
            .await
            .expect("server state");
        let server = Server::on_listener(listener, state);
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let mut server = TestServer {
            addr,
            client: Client::new(),
            database_url,
            identity,
            app: TestApp {
                credentials: NewAppCredentials {
                    tenant_id: String::new(),
                    client_id: String::new(),
                    client_secret: String::new(),
                },
                display_name: String::new(),
                token: String::new(),
            },
            shutdown: Some(tx),
            database,
        };
        let tenant = uuid::Uuid::new_v4().to_string();
        server.app = server
            .create_app(&tenant, "iocd test app", &[Role::ReadWriteAll])
            .await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Registers an app in the database and gets its token over HTTP from the v2 endpoint.
    pub async fn create_app(&self, tenant: &str, name: &str, roles: &[Role]) -> TestApp {
        let credentials = register_app(self.identity.as_ref(), tenant, name, roles)
            .await
            .expect("register app");
        let token = self.fetch_token(&credentials).await;
        TestApp {
            credentials,
            display_name: name.to_string(),
            token,
        }
    }

    /// A token for these credentials from `POST /{tenant}/oauth2/v2.0/token`.
    pub async fn fetch_token(&self, credentials: &NewAppCredentials) -> String {
        let res = self
            .client
            .post(self.url(&format!("/{}/oauth2/v2.0/token", credentials.tenant_id)))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", credentials.client_id.as_str()),
                ("client_secret", credentials.client_secret.as_str()),
                ("scope", &format!("{AUDIENCE}/.default")),
            ])
            .send()
            .await
            .expect("token request");
        let (status, body) = status_json(res).await;
        assert_eq!(status, 200, "token endpoint: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A request as the default app (its bearer token attached).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(&self.app.token, method, path)
    }

    /// A request with this bearer token.
    pub fn request_as(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.post_json_as(&self.app.token, path, body).await
    }

    pub async fn post_json_as(&self, token: &str, path: &str, body: &Value) -> Response {
        self.request_as(token, Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn send(&self, method: Method, path: &str) -> Response {
        self.send_as(&self.app.token, method, path).await
    }

    pub async fn send_as(&self, token: &str, method: Method, path: &str) -> Response {
        self.request_as(token, method, path)
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

    /// Runs a single-value query straight against the database.
    pub async fn scalar(&self, sql: &str) -> i64 {
        self.database.scalar(sql).await
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
