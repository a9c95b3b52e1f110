//! Entra ID's own names: its login hosts and the issuers of the tokens it signs. iocd uses them
//! for clients that reach it as `login.microsoftonline.com` (through interception), so that what
//! they read in a token or a discovery document is what Entra would have written.

use crate::TokenVersion;

/// Entra ID's sign-in hosts (commercial, its older names, and US Government's).
pub const LOGIN_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.windows.net",
    "login.microsoft.com",
    "sts.windows.net",
    "login.microsoftonline.us",
];

/// Entra's v2.0 issuer, whichever login host issued the token.
pub const ENTRA_ISSUER_V2: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
/// Entra's v1.0 issuer, whichever login host issued the token.
pub const ENTRA_ISSUER_V1: &str = "https://sts.windows.net/{tenantid}/";

/// Whether `host` (any case, without port, with or without a trailing dot) is an Entra login
/// host.
pub fn is_login_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    LOGIN_HOSTS
        .iter()
        .any(|known| known.eq_ignore_ascii_case(host))
}

/// The issuer template (with `{tenantid}`) Entra gives tokens of `version`.
pub fn entra_issuer(version: TokenVersion) -> &'static str {
    match version {
        TokenVersion::V2 => ENTRA_ISSUER_V2,
        TokenVersion::V1 => ENTRA_ISSUER_V1,
    }
}

/// The instance-discovery answer (`/common/discovery/instance`) MSAL reads: where the tenant's
/// discovery document is, and which login hosts are aliases of one another. `origin` is the
/// scheme and host the client called; `tenant_document` the path of the tenant's document.
pub fn instance_discovery(origin: &str, tenant_document: &str) -> serde_json::Value {
    let called = origin.split_once("://").map_or(origin, |(_, host)| host);
    let mut metadata = vec![
        serde_json::json!({
            "preferred_network": "login.microsoftonline.com",
            "preferred_cache": "login.windows.net",
            "aliases": ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
        }),
        serde_json::json!({
            "preferred_network": "login.microsoftonline.us",
            "preferred_cache": "login.microsoftonline.us",
            "aliases": ["login.microsoftonline.us", "login.usgovcloudapi.net"],
        }),
    ];
    if !is_login_host(called.split(':').next().unwrap_or(called)) {
        // iocd reached by its own name: that name is an instance of its own.
        metadata.push(serde_json::json!({
            "preferred_network": called,
            "preferred_cache": called,
            "aliases": [called],
        }));
    }
    serde_json::json!({
        "tenant_discovery_endpoint": format!("{origin}{tenant_document}"),
        "api-version": "1.1",
        "metadata": metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_hosts_in_any_case() {
        assert!(is_login_host("LOGIN.microsoftonline.com"));
        assert!(is_login_host("sts.windows.net."));
        assert!(!is_login_host("api.securitycenter.microsoft.com"));
        assert!(!is_login_host("login.microsoftonline.com.example"));
    }

    #[test]
    fn instance_discovery_points_at_the_called_host() {
        let answer = instance_discovery(
            "https://login.microsoftonline.com",
            "/t1/v2.0/.well-known/openid-configuration",
        );
        assert_eq!(
            answer["tenant_discovery_endpoint"],
            "https://login.microsoftonline.com/t1/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(answer["metadata"].as_array().unwrap().len(), 2);
        let own = instance_discovery(
            "https://localhost:8443",
            "/t1/.well-known/openid-configuration",
        );
        assert_eq!(own["metadata"][2]["aliases"][0], "localhost:8443");
    }
}
