//! How iocd issues and checks tokens.

use std::time::Duration;

use iocd_auth::{DEFAULT_LEEWAY_SECS, DEFAULT_TOKEN_LIFETIME};

/// The resources (token audiences) real Defender clients ask for: both API hosts, the legacy
/// host, the service's app-ID URI and its first-party application id (docs/reference §2.1, §2.2).
pub const DEFAULT_AUDIENCES: &[&str] = &[
    "https://api.securitycenter.microsoft.com",
    "https://api.security.microsoft.com",
    "https://api.securitycenter.windows.com",
    "https://securitycenter.onmicrosoft.com/windowsatpservice",
    "fc780465-2017-40d4-a0c5-307022471b92",
];

/// An issuer outside iocd whose tokens the API accepts, such as a real Entra ID tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIssuer {
    /// The exact `iss` (`https://login.microsoftonline.com/<tenant id>/v2.0`), or a template with
    /// `{tenantid}` to accept every tenant of a multi-tenant issuer.
    pub issuer: String,
    /// Where the issuer publishes its signing keys
    /// (`https://login.microsoftonline.com/common/discovery/v2.0/keys`).
    pub jwks_url: String,
}

impl std::str::FromStr for ExternalIssuer {
    type Err = String;

    /// `ISSUER=JWKS_URL`, the form of the `--trust-issuer` flag.
    fn from_str(s: &str) -> Result<Self, String> {
        // The JWKS URL never holds `=` before its query, the issuer never does: split on the
        // last `=` that is followed by a URL scheme.
        let split = s
            .match_indices('=')
            .map(|(i, _)| i)
            .find(|&i| s[i + 1..].starts_with("http://") || s[i + 1..].starts_with("https://"));
        let Some(i) = split else {
            return Err(format!(
                "'{s}' is not ISSUER=JWKS_URL (for example https://login.microsoftonline.com/<tenant id>/v2.0=https://login.microsoftonline.com/common/discovery/v2.0/keys)"
            ));
        };
        let (issuer, jwks_url) = (s[..i].trim(), s[i + 1..].trim());
        if issuer.is_empty() {
            return Err(format!("'{s}' names no issuer before '='"));
        }
        Ok(ExternalIssuer {
            issuer: issuer.to_string(),
            jwks_url: jwks_url.to_string(),
        })
    }
}

/// How iocd issues and checks tokens.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// The base of iocd's issuer and token-endpoint URLs (`https://iocd.example.com`). `None`:
    /// the server's public URL, else its listen address.
    pub issuer_url: Option<String>,
    /// Audiences (resources) tokens may be requested for and are accepted with; iocd's own
    /// issuer URL is always accepted too.
    pub accepted_audiences: Vec<String>,
    /// Lifetime of the tokens iocd issues (Entra's is 3599 s).
    pub token_lifetime: Duration,
    /// Clock skew tolerated on `exp` and `nbf` (at most 300 s).
    pub leeway_secs: u64,
    pub external_issuers: Vec<ExternalIssuer>,
    /// How often the signing keys are re-read from the database (to see a rotation).
    pub key_reload_interval: Duration,
    /// Failed client authentications tolerated per client id and per address before a lockout.
    pub failed_auth_limits: crate::lockout::FailedAuthLimits,
    /// How long a refresh token stays usable (each use rotates it); Entra's default is 90 days.
    pub refresh_token_lifetime: Duration,
}

/// Entra's refresh tokens last 90 days.
pub const DEFAULT_REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            issuer_url: None,
            accepted_audiences: DEFAULT_AUDIENCES.iter().map(|a| a.to_string()).collect(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            external_issuers: Vec::new(),
            key_reload_interval: crate::keys::DEFAULT_KEY_RELOAD_INTERVAL,
            failed_auth_limits: crate::lockout::FailedAuthLimits::default(),
            refresh_token_lifetime: DEFAULT_REFRESH_TOKEN_LIFETIME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_issuers_parse_from_issuer_equals_url() {
        let parsed: ExternalIssuer = "https://login.microsoftonline.com/t1/v2.0=https://login.microsoftonline.com/common/discovery/v2.0/keys?appid=x=y"
            .parse()
            .unwrap();
        assert_eq!(parsed.issuer, "https://login.microsoftonline.com/t1/v2.0");
        assert_eq!(
            parsed.jwks_url,
            "https://login.microsoftonline.com/common/discovery/v2.0/keys?appid=x=y"
        );
        assert!("https://issuer.example".parse::<ExternalIssuer>().is_err());
        assert!("=https://keys.example".parse::<ExternalIssuer>().is_err());
    }
}
