//! Apps and tokens: registering an app and getting a token exactly as a real client does
//! (client credentials at the v2 token endpoint).

pub use iocd_identity::{NewAppCredentials, Role};
use serde_json::Value;

use crate::fixtures::status_json;

/// The resource tests ask tokens for (Defender's).
pub const AUDIENCE: &str = "https://api.securitycenter.microsoft.com";

/// A tenant for tests that need a fixed one (the crash test and the benchmark write as it).
pub const TENANT: &str = "00000000-0000-0000-0000-0000000000be";

/// An app registered for a test, with a token from the server's token endpoint.
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

/// A token for `credentials` from `POST {base_url}/{tenant}/oauth2/v2.0/token` (client
/// credentials, scope `{AUDIENCE}/.default`). Fails the test unless the endpoint answers 200.
pub async fn client_credentials_token(
    client: &reqwest::Client,
    base_url: &str,
    credentials: &NewAppCredentials,
) -> String {
    let res = client
        .post(format!(
            "{base_url}/{}/oauth2/v2.0/token",
            credentials.tenant_id
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.as_str()),
            ("scope", &format!("{AUDIENCE}/.default")),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("token request to {base_url}: {e}"));
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "token endpoint: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The credentials `iocd apps create` printed (its stdout, JSON).
pub fn parse_created_app(stdout: &[u8]) -> NewAppCredentials {
    let app: Value = serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "iocd apps create did not print JSON ({e}): {}",
            String::from_utf8_lossy(stdout)
        )
    });
    let field = |name: &str| {
        app[name]
            .as_str()
            .unwrap_or_else(|| panic!("iocd apps create printed no {name}: {app}"))
            .to_string()
    };
    NewAppCredentials {
        tenant_id: field("tenantId"),
        client_id: field("clientId"),
        client_secret: field("clientSecret"),
    }
}
