//! The in-process test server: the real axum server on an ephemeral loopback port over a scratch
//! database of the running test's backend, spoken to over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use iocd_identity::{register_app, NewAppCredentials, Role};
use iocd_server::{AppState, Server, ServerConfig};
use iocd_store::IdentityStore;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::apps::{client_credentials_token, TestApp};
use crate::database::ScratchDatabase;
use crate::fixtures::status_json;

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub database_url: String,
    /// The server's identity store (same database), to register apps or read the signing key.
    pub identity: Arc<dyn IdentityStore>,
    /// A `Ti.ReadWrite.All` app of a fresh tenant; `post_json`, `send` and `request` act as it.
    pub app: TestApp,
    shutdown: Option<oneshot::Sender<()>>,
    // Declared last: dropped after the server was told to stop.
    database: ScratchDatabase,
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
        let database = ScratchDatabase::for_current_backend().await;
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

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path` with no credentials: its status and JSON body (see [`status_json`]).
    pub async fn anonymous_get(&self, path: &str) -> (u16, Value) {
        status_json(self.client.get(self.url(path)).send().await.expect("GET")).await
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
        client_credentials_token(&self.client, &self.base_url(), credentials).await
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

    /// `POST /api/indicators/import` of `items` as the default app, which must answer 200;
    /// returns the answer's body (one result per item, in `value`).
    pub async fn import(&self, items: Vec<Value>) -> Value {
        let response = self
            .post_json(
                "/api/indicators/import",
                &serde_json::json!({ "Indicators": items }),
            )
            .await;
        let (status, body) = crate::status_json(response).await;
        assert_eq!(status, 200, "import refused: {body}");
        body
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
