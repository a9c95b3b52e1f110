//! Turning a bearer token (iocd's own, or one of a trusted external issuer such as a real Entra
//! ID tenant) into a [`Caller`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use iocd_auth::{
    JwksCache, TokenError, TokenValidator, TrustedIssuer, ValidatedToken, ValidatorConfig,
    TENANT_ID_PLACEHOLDER,
};

use crate::config::IdentityConfig;
use crate::delegated::DELEGATED_PERMISSION;
use crate::keys::KeyRing;
use crate::provider::IdentityProvider;
use crate::roles::{Caller, Role, SignedInUser};
use crate::users::UserRole;

/// Why a bearer token does not make a caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    /// The token is malformed, expired, wrongly signed or not meant for this API.
    #[error(transparent)]
    Token(TokenError),
    /// iocd signed the token, but its tenant has no apps (any more).
    #[error("tenant '{0}' is not known to this server")]
    UnknownTenant(String),
    /// iocd signed the token, but its app is registered in another tenant than its `tid`.
    #[error("application '{app_id}' is not registered in tenant '{tenant_id}'")]
    AppNotInTenant { app_id: String, tenant_id: String },
    #[error(transparent)]
    Store(#[from] iocd_store::StoreError),
}

/// A token naming an unknown key id makes the keys be re-read at most this often (a rotation
/// on another server is seen at once; random key ids cannot hammer the database).
const FORCED_KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Validates bearer tokens: iocd's own (v1 and v2 issuers, and Entra's for tokens issued
/// through an intercepted login host; every key of iocd's key ring) and those of the
/// configured external issuers (keys fetched from their JWKS URL).
pub struct TokenAuthenticator {
    provider: Arc<IdentityProvider>,
    /// The issuer templates iocd signs for: its own, and Entra's (see `new`).
    own_issuers: Vec<String>,
    accepted_audiences: Vec<String>,
    leeway_secs: u64,
    remote_issuers: Vec<(String, Arc<JwksCache>)>,
    /// The validator for the key ring of this generation, rebuilt when the keys change.
    validator: RwLock<(u64, Arc<TokenValidator>)>,
    forced_reload_at: Mutex<Option<Instant>>,
    /// (tenant, app) pairs of iocd's tokens already checked against the registry, with the
    /// answer and when it was found. By tenant, then app, so that a lookup (on every request)
    /// builds no key.
    app_tenants: Mutex<HashMap<String, CheckedApps>>,
}

/// A tenant's apps checked against the registry: the answer, and when it was found.
type CheckedApps = HashMap<String, (bool, Instant)>;

/// How long a checked (tenant, app) pair is trusted without asking the registry again.
const APP_TENANT_TTL: Duration = Duration::from_secs(60);

impl TokenAuthenticator {
    pub fn new(provider: Arc<IdentityProvider>, config: &IdentityConfig) -> Self {
        let mut own_issuers = vec![provider.issuer_v2_template(), provider.issuer_v1_template()];
        // Tokens issued through an intercepted login host carry Entra's issuers, signed with
        // iocd's key; unless the operator trusts the real Entra under that issuer.
        for entra in [
            iocd_auth::entra::ENTRA_ISSUER_V2,
            iocd_auth::entra::ENTRA_ISSUER_V1,
        ] {
            if !config.external_issuers.iter().any(|e| e.issuer == entra) {
                own_issuers.push(entra.to_string());
            }
        }
        let ring = provider.key_ring();
        let mut authenticator = TokenAuthenticator {
            accepted_audiences: provider.accepted_audiences().to_vec(),
            provider,
            own_issuers,
            leeway_secs: config.leeway_secs,
            remote_issuers: config
                .external_issuers
                .iter()
                .map(|external| {
                    (
                        external.issuer.clone(),
                        Arc::new(JwksCache::new(external.jwks_url.clone())),
                    )
                })
                .collect(),
            validator: RwLock::new((0, Arc::new(TokenValidator::new(ValidatorConfig::default())))),
            forced_reload_at: Mutex::new(None),
            app_tenants: Mutex::new(HashMap::new()),
        };
        let validator = Arc::new(authenticator.build_validator(&ring));
        authenticator.validator = RwLock::new((ring.generation, validator));
        authenticator
    }

    fn build_validator(&self, ring: &KeyRing) -> TokenValidator {
        let own_keys = ring.jwk_set();
        let mut validator = TokenValidator::new(ValidatorConfig {
            trusted_issuers: self
                .own_issuers
                .iter()
                .map(|issuer| TrustedIssuer::new(issuer.clone(), own_keys.clone()))
                .collect(),
            accepted_audiences: self.accepted_audiences.clone(),
            leeway_secs: self.leeway_secs,
        });
        for (issuer, cache) in &self.remote_issuers {
            validator = validator.with_remote_issuer(issuer.clone(), cache.clone());
        }
        validator
    }

    /// The validator trusting exactly the keys of `ring`.
    fn validator_for(&self, ring: &KeyRing) -> Arc<TokenValidator> {
        {
            let current = self
                .validator
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if current.0 == ring.generation {
                return current.1.clone();
            }
        }
        let built = Arc::new(self.build_validator(ring));
        let mut current = self
            .validator
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current.0 < ring.generation {
            *current = (ring.generation, built.clone());
        }
        built
    }

    fn may_force_reload(&self) -> bool {
        let mut last = self
            .forced_reload_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < FORCED_KEY_RELOAD_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn is_own(&self, token: &ValidatedToken) -> bool {
        // Compared piecewise, not by filling the template in: this runs on every request.
        self.own_issuers.iter().any(
            |template| match template.split_once(TENANT_ID_PLACEHOLDER) {
                Some((before, after)) => token
                    .issuer
                    .strip_prefix(before)
                    .and_then(|rest| rest.strip_suffix(after))
                    .is_some_and(|tenant| tenant == token.tenant_id),
                None => token.issuer == *template,
            },
        )
    }

    /// Whether an iocd token's app may act in its tenant: it is registered there, or nowhere (a
    /// deleted app's tokens stay valid until they expire, as with Entra). An app registered in
    /// another tenant is refused: only a holder of the signing key could mint such a token.
    async fn app_may_act_in(
        &self,
        tenant: &str,
        app: &str,
    ) -> Result<bool, iocd_store::StoreError> {
        if let Some((answer, at)) = self
            .app_tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .and_then(|apps| apps.get(app))
        {
            if at.elapsed() < APP_TENANT_TTL {
                return Ok(*answer);
            }
        }
        let store = self.provider.store();
        let answer = store.find_app(tenant, app).await?.is_some()
            || !store
                .list_apps(None)
                .await?
                .iter()
                .any(|registered| registered.client_id == app);
        let mut checked = self
            .app_tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if checked.values().map(CheckedApps::len).sum::<usize>() > 10_000 {
            checked.retain(|_, apps| {
                apps.retain(|_, (_, at)| at.elapsed() < APP_TENANT_TTL);
                !apps.is_empty()
            });
        }
        checked
            .entry(tenant.to_string())
            .or_default()
            .insert(app.to_string(), (answer, Instant::now()));
        Ok(answer)
    }

    /// The caller a bearer token stands for.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthenticationError> {
        let ring = self.provider.current_key_ring().await;
        let validated = match self.validator_for(&ring).validate_refreshing(token).await {
            // Perhaps signed with a key rotated in on another server: re-read the keys, retry.
            Err(TokenError::UnknownKey { kid: Some(kid) })
                if !ring.contains(&kid) && self.may_force_reload() =>
            {
                match self.provider.reload_keys().await {
                    Ok(true) => {
                        let ring = self.provider.key_ring();
                        self.validator_for(&ring).validate_refreshing(token).await
                    }
                    Ok(false) => Err(TokenError::UnknownKey { kid: Some(kid) }),
                    Err(e) => {
                        tracing::error!(error = %e, "re-reading the signing keys failed");
                        Err(TokenError::UnknownKey { kid: Some(kid) })
                    }
                }
            }
            other => other,
        }
        .map_err(AuthenticationError::Token)?;
        // iocd's own tokens name tenants of its registry; one that no longer has apps (or was
        // never created) is refused even though the key signed it.
        let is_own = self.is_own(&validated);
        if is_own && !self.provider.tenant_exists(&validated.tenant_id).await? {
            return Err(AuthenticationError::UnknownTenant(
                validated.tenant_id.clone(),
            ));
        }
        if is_own
            && !self
                .app_may_act_in(&validated.tenant_id, &validated.app_id)
                .await?
        {
            return Err(AuthenticationError::AppNotInTenant {
                app_id: validated.app_id.clone(),
                tenant_id: validated.tenant_id.clone(),
            });
        }
        let app_roles: Vec<Role> = validated
            .roles
            .iter()
            .filter_map(|r| Role::parse(r))
            .collect();
        let delegated = !validated.scopes.is_empty();
        let (roles, user) = if delegated {
            (
                delegated_roles(&validated, is_own),
                Some(SignedInUser {
                    upn: validated
                        .upn
                        .clone()
                        .unwrap_or_else(|| validated.object_id.clone()),
                    name: validated
                        .user_display_name
                        .clone()
                        .or_else(|| validated.upn.clone())
                        .unwrap_or_else(|| validated.object_id.clone()),
                    object_id: validated.object_id.clone(),
                }),
            )
        } else {
            (app_roles, None)
        };
        Ok(Caller {
            display_name: validated
                .display_name
                .clone()
                .unwrap_or_else(|| validated.app_id.clone()),
            tenant_id: validated.tenant_id.clone(),
            client_id: validated.app_id.clone(),
            roles,
            user,
        })
    }
}

/// What a delegated token may do: Defender's rule is that both the app's delegated scope and the
/// user's own permission must allow an action. The scope is `Ti.ReadWrite`; the user's
/// permission is their iocd user role, carried in the token's `roles` as Entra carries a user's
/// app-role assignments. A token of an external issuer that carries no iocd user role keeps what
/// the scope alone grants (the user's own indicators), as before users existed; one of iocd's
/// own tokens without a user role may do nothing.
fn delegated_roles(token: &ValidatedToken, is_own: bool) -> Vec<Role> {
    if !token.scopes.iter().any(|s| s == DELEGATED_PERMISSION) {
        return Vec::new();
    }
    let user_roles: Vec<UserRole> = token
        .roles
        .iter()
        .filter_map(|r| UserRole::parse(r))
        .collect();
    if user_roles.is_empty() {
        return if is_own {
            Vec::new()
        } else {
            vec![Role::ReadWrite]
        };
    }
    let mut roles: Vec<Role> = Vec::new();
    for role in user_roles.into_iter().flat_map(UserRole::app_roles) {
        if !roles.contains(role) {
            roles.push(*role);
        }
    }
    roles
}
