//! The HTTP client of `iocd import` / `iocd export`: base URL, optional bearer token, waiting
//! out 429 `Retry-After`, and errors that show the server's error body.

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::client_auth::fetch_token;

/// How to reach a server and authenticate to it (flags shared by the client commands).
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of the iocd (or compatible) server.
    #[arg(long, env = "IOCD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token to send. Without it (and without client credentials) no Authorization header is sent.
    #[arg(long, env = "IOCD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tenant id, to fetch a token with --client-id/--client-secret.
    #[arg(long, env = "IOCD_TENANT_ID")]
    pub tenant: Option<String>,
    #[arg(long, env = "IOCD_CLIENT_ID")]
    pub client_id: Option<String>,
    #[arg(long, env = "IOCD_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
}

/// Longest a single `Retry-After` wait may be, and how many 429s in a row we sit out.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);
const MAX_THROTTLED_RETRIES: u32 = 20;

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    /// The bearer token sent, replaced when it expires and client credentials allow a new one.
    token: std::sync::RwLock<Option<String>>,
    /// Tenant, client id and secret, when the token came from them: a long `import` or
    /// `changes --follow` outlives a token (an hour by default), and gets a new one on a 401.
    credentials: Option<(String, String, String)>,
}

impl ApiClient {
    /// Builds the client, fetching a token first when client credentials were given.
    pub async fn connect(args: &ServerArgs) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .context("building the HTTP client")?;
        let base = args.url.trim_end_matches('/').to_string();
        let (token, credentials) =
            match (&args.token, &args.tenant, &args.client_id, &args.client_secret) {
                (Some(token), ..) => (Some(token.clone()), None),
                (None, Some(tenant), Some(id), Some(secret)) => (
                    Some(fetch_token(&http, &base, tenant, id, secret).await?),
                    Some((tenant.clone(), id.clone(), secret.clone())),
                ),
                (None, None, None, None) => (None, None),
                _ => bail!("to fetch a token, give all of --tenant, --client-id and --client-secret (or --token)"),
            };
        Ok(ApiClient {
            http,
            base,
            token: std::sync::RwLock::new(token),
            credentials,
        })
    }

    fn bearer(&self) -> Option<String> {
        self.token.read().expect("token lock").clone()
    }

    /// Replaces an expired token with a new one from the client credentials; false when the
    /// token was given as such and cannot be renewed.
    async fn renew_token(&self) -> anyhow::Result<bool> {
        let Some((tenant, id, secret)) = &self.credentials else {
            return Ok(false);
        };
        let fresh = fetch_token(&self.http, &self.base, tenant, id, secret).await?;
        *self.token.write().expect("token lock") = Some(fresh);
        Ok(true)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request (to a path or an absolute URL), retrying after 429 and 503 as the server asks.
    async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut throttled = 0;
        let mut renewed = false;
        loop {
            let mut request = self.http.request(method.clone(), url);
            if let Some(token) = self.bearer() {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("{method} {url}"))?;
            let status = response.status();
            // 429 (throttled) and 503 (unavailable for now) are retried as the server asks; the
            // upserts make a retried batch land once.
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if retryable && throttled < MAX_THROTTLED_RETRIES {
                throttled += 1;
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(Duration::from_secs(1))
                    .min(MAX_RETRY_WAIT);
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !renewed && self.renew_token().await? {
                renewed = true;
                continue;
            }
            let text = response
                .text()
                .await
                .with_context(|| format!("reading the answer to {method} {url}"))?;
            if !status.is_success() {
                let detail = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| {
                        let e = v.get("error")?;
                        Some(format!(
                            "{}: {}",
                            e.get("code")?.as_str()?,
                            e.get("message")?.as_str()?
                        ))
                    })
                    .unwrap_or(text);
                bail!("{method} {url} failed with {status}: {detail}");
            }
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text)
                .with_context(|| format!("the answer to {method} {url} is not JSON"));
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, &self.url(path), Some(body)).await
    }

    /// GETs `path` and copies the body to `out` as it arrives; returns the bytes written.
    pub async fn download(&self, path: &str, out: &mut impl std::io::Write) -> anyhow::Result<u64> {
        let url = self.url(path);
        let mut request = self.http.get(&url);
        if let Some(token) = self.bearer() {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("GET {url} failed with {status}: {text}");
        }
        let mut written = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("reading GET {url}"))?
        {
            out.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }

    pub async fn get(&self, url: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, url, None).await
    }
}
