//! Getting an access token with an app's client id and secret (client-credentials grant), for
//! the commands that talk to a server.

use anyhow::{bail, Context};
use serde_json::Value;

/// Fetches a token from `{base_url}/{tenant}/oauth2/v2.0/token` and returns the access token.
pub async fn fetch_token(
    http: &reqwest::Client,
    base_url: &str,
    tenant: &str,
    client_id: &str,
    client_secret: &str,
) -> anyhow::Result<String> {
    let url = format!(
        "{}/{tenant}/oauth2/v2.0/token",
        base_url.trim_end_matches('/')
    );
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret)
        .append_pair("scope", "https://api.securitycenter.microsoft.com/.default")
        .finish();
    let response = http
        .post(&url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .with_context(|| format!("requesting a token from {url}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("reading the token response from {url}"))?;
    match body.get("access_token").and_then(Value::as_str) {
        Some(token) if status.is_success() => Ok(token.to_string()),
        _ => bail!("the token endpoint {url} answered {status}: {body}"),
    }
}
