//! Turning a bearer token (iocd's own, or one of a trusted external issuer such as a real Entra
//! ID tenant) into a [`Caller`].

use std::sync::Arc;

use iocd_auth::{
    JwksCache, TokenError, TokenValidator, TrustedIssuer, ValidatedToken, ValidatorConfig,
    TENANT_ID_PLACEHOLDER,
};

use crate::config::IdentityConfig;
use crate::provider::IdentityProvider;
use crate::roles::{Caller, Role};

/// Why a bearer token does not make a caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    /// The token is malformed, expired, wrongly signed or not meant for this API.
    #[error(transparent)]
    Token(TokenError),
    /// iocd signed the token, but its tenant has no apps (any more).
    #[error("tenant '{0}' is not known to this server")]
    UnknownTenant(String),
    #[error(transparent)]
    Store(#[from] iocd_store::StoreError),
}

/// Validates bearer tokens: iocd's own (v1 and v2 issuers, iocd's key) and those of the
/// configured external issuers (keys fetched from their JWKS URL).
pub struct TokenAuthenticator {
    provider: Arc<IdentityProvider>,
    validator: TokenValidator,
}

impl TokenAuthenticator {
    pub fn new(provider: Arc<IdentityProvider>, config: &IdentityConfig) -> Self {
        let own_keys = provider.signing_key().jwk_set();
        let mut validator = TokenValidator::new(ValidatorConfig {
            trusted_issuers: vec![
                TrustedIssuer::new(provider.issuer_v2_template(), own_keys.clone()),
                TrustedIssuer::new(provider.issuer_v1_template(), own_keys),
            ],
            accepted_audiences: provider.accepted_audiences().to_vec(),
            leeway_secs: config.leeway_secs,
        });
        for external in &config.external_issuers {
            validator = validator.with_remote_issuer(
                external.issuer.clone(),
                Arc::new(JwksCache::new(external.jwks_url.clone())),
            );
        }
        TokenAuthenticator {
            provider,
            validator,
        }
    }

    fn is_own(&self, token: &ValidatedToken) -> bool {
        let tenant = &token.tenant_id;
        token.issuer
            == self
                .provider
                .issuer_v2_template()
                .replace(TENANT_ID_PLACEHOLDER, tenant)
            || token.issuer
                == self
                    .provider
                    .issuer_v1_template()
                    .replace(TENANT_ID_PLACEHOLDER, tenant)
    }

    /// The caller a bearer token stands for.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthenticationError> {
        let validated = self
            .validator
            .validate_refreshing(token)
            .await
            .map_err(AuthenticationError::Token)?;
        // iocd's own tokens name tenants of its registry; one that no longer has apps (or was
        // never created) is refused even though the key signed it.
        if self.is_own(&validated) && !self.provider.tenant_exists(&validated.tenant_id).await? {
            return Err(AuthenticationError::UnknownTenant(validated.tenant_id));
        }
        let mut roles: Vec<Role> = validated
            .roles
            .iter()
            .filter_map(|r| Role::parse(r))
            .collect();
        // A delegated token's `Ti.ReadWrite` scope acts as the application role of that name:
        // the user's indicators are the app's own (iocd has no per-user scoping).
        if validated
            .scopes
            .iter()
            .any(|s| s == Role::ReadWrite.as_str())
            && !roles.contains(&Role::ReadWrite)
        {
            roles.push(Role::ReadWrite);
        }
        Ok(Caller {
            display_name: validated
                .display_name
                .clone()
                .unwrap_or_else(|| validated.app_id.clone()),
            tenant_id: validated.tenant_id,
            client_id: validated.app_id,
            roles,
        })
    }
}
