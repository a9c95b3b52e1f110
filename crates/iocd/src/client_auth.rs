//! Getting an access token from an iocd server (or any Entra-shaped token endpoint) with an app's
//! client id and secret, for the commands that talk to a server.

use anyhow::{bail, Context};

/// The resource iocd's commands ask tokens for: the Defender API's, which every iocd accepts.
pub const DEFAULT_RESOURCE: &str = "https://api.securitycenter.microsoft.com";

/// Fetches a token with the client-credentials grant from
/// `{base_url}/{tenant}/oauth2/v2.0/token` and returns the access token.
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
    let scope = format!("{DEFAULT_RESOURCE}/.default");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("scope", scope.as_str()),
    ];
    let body = serde_urlencoded::to_string(form).context("encoding the token request")?;
    let response = http
        .post(&url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .with_context(|| format!("requesting a token from {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the token response of {url}"))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!("the token endpoint {url} answered {status} with no JSON: {text}")
    })?;
    if !status.is_success() {
        let error = json["error"].as_str().unwrap_or("error");
        let description = json["error_description"].as_str().unwrap_or(&text);
        bail!("the token endpoint {url} refused ({status}, {error}): {description}");
    }
    match json["access_token"].as_str() {
        Some(token) if !token.is_empty() => Ok(token.to_string()),
        _ => bail!("the token endpoint {url} answered without an access_token: {text}"),
    }
}
