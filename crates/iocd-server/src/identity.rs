//! Who is calling. Handlers take a [`Caller`] and never look at headers themselves; the
//! [`TokenAuthenticator`] behind the [`Authenticator`] trait turns a bearer token (iocd's own, or
//! one of a trusted external issuer such as a real Entra ID tenant) into a `Caller`.
//!
//! This module also holds what the token endpoint and the `iocd apps` commands share: the
//! identity settings, app registration and the development app made on an empty database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use iocd_auth::{
    JwksCache, SigningKey, TokenError, TokenValidator, TrustedIssuer, ValidatedToken,
    ValidatorConfig, DEFAULT_LEEWAY_SECS, DEFAULT_TOKEN_LIFETIME, TENANT_ID_PLACEHOLDER,
};
use iocd_domain::time;
use iocd_domain::Actor;
use iocd_store::{AppInsertError, AppRegistration, IdentityStore, Scope, StoredSigningKey};
use sha2::Digest as _;

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

/// Application roles of the Defender API's permission catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads all of the tenant's indicators.
    ReadAll,
    /// Creates indicators; reads, updates and deletes only the ones it created.
    ReadWrite,
    /// Manages all of the tenant's indicators.
    ReadWriteAll,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::ReadAll, Role::ReadWrite, Role::ReadWriteAll];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadAll => "Ti.Read.All",
            Role::ReadWrite => "Ti.ReadWrite",
            Role::ReadWriteAll => "Ti.ReadWrite.All",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Roles that may write (submit, import, delete).
pub const WRITE_ROLES: &[Role] = &[Role::ReadWriteAll, Role::ReadWrite];
/// Roles that may read.
pub const READ_ROLES: &[Role] = &[Role::ReadWriteAll, Role::ReadWrite, Role::ReadAll];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: String,
    /// The application's client id (`createdBy`).
    pub client_id: String,
    /// The application's display name (`createdByDisplayName`).
    pub display_name: String,
    pub roles: Vec<Role>,
}

impl Caller {
    /// Refuses with 403 unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.roles.contains(r)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "Missing application roles. API required roles: {}",
            names.join(", ")
        )))
    }

    /// The indicators this caller may read: all of the tenant's with `Ti.Read.All` or
    /// `Ti.ReadWrite.All`, otherwise only those it created.
    pub fn read_scope(&self) -> Scope {
        self.scope(self.roles.contains(&Role::ReadAll) || self.roles.contains(&Role::ReadWriteAll))
    }

    /// The indicators this caller may change: all of the tenant's with `Ti.ReadWrite.All`,
    /// otherwise only those it created.
    pub fn write_scope(&self) -> Scope {
        self.scope(self.roles.contains(&Role::ReadWriteAll))
    }

    fn scope(&self, tenant_wide: bool) -> Scope {
        Scope {
            tenant_id: self.tenant_id.clone(),
            owner: if tenant_wide {
                None
            } else {
                Some(self.client_id.clone())
            },
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            id: self.client_id.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError>;
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The rate-limit middleware authenticates first and leaves the caller here.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let auth: Arc<dyn Authenticator> = state.authenticator.clone();
        auth.authenticate(parts).await
    }
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

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
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            issuer_url: None,
            accepted_audiences: DEFAULT_AUDIENCES.iter().map(|a| a.to_string()).collect(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            external_issuers: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The identity provider state shared by the token endpoint and the authenticator
// ---------------------------------------------------------------------------------------------

/// How long a tenant seen in the database is trusted to exist without asking again.
const KNOWN_TENANT_TTL: Duration = Duration::from_secs(60);

/// How long a verified client secret is remembered, so a burst of token requests costs one
/// argon2 verification rather than one each.
const VERIFIED_SECRET_TTL: Duration = Duration::from_secs(300);

/// iocd as an identity provider: its signing key, issuer URLs, the app registry and the caches
/// that keep token requests and API calls cheap.
pub struct IdentityProvider {
    store: Arc<dyn IdentityStore>,
    key: SigningKey,
    issuer_base: String,
    accepted_audiences: Vec<String>,
    token_lifetime: Duration,
    known_tenants: Mutex<HashMap<String, Instant>>,
    verified_secrets: Mutex<HashMap<String, VerifiedSecret>>,
    /// argon2 takes ~19 MiB and tens of milliseconds per verification: at most one per core
    /// runs at once, the rest queue, so a storm of token requests cannot exhaust memory.
    argon2_permits: tokio::sync::Semaphore,
}

struct VerifiedSecret {
    /// SHA-256 of the secret that verified. A fast hash is fine here: the secret has 256 bits of
    /// entropy, and this lives only in memory.
    secret_digest: [u8; 32],
    /// The stored hash it verified against; a changed registration invalidates the entry.
    secret_hash: String,
    verified_at: Instant,
}

/// Why a client could not authenticate at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthError {
    UnknownApp,
    WrongSecret,
}

impl IdentityProvider {
    /// Loads the signing key from the database, generating and storing it on first use (race-free
    /// across replicas: whichever server stores first wins and everyone reads that one back).
    pub async fn open(
        store: Arc<dyn IdentityStore>,
        config: &IdentityConfig,
        issuer_base: &str,
    ) -> anyhow::Result<IdentityProvider> {
        let key = load_or_create_signing_key(store.as_ref()).await?;
        let issuer_base = issuer_base.trim_end_matches('/').to_string();
        let mut accepted_audiences: Vec<String> = config
            .accepted_audiences
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        if !accepted_audiences.contains(&issuer_base) {
            accepted_audiences.push(issuer_base.clone());
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(IdentityProvider {
            store,
            key,
            issuer_base,
            accepted_audiences,
            token_lifetime: config.token_lifetime,
            known_tenants: Mutex::new(HashMap::new()),
            verified_secrets: Mutex::new(HashMap::new()),
            argon2_permits: tokio::sync::Semaphore::new(cores),
        })
    }

    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn issuer_base(&self) -> &str {
        &self.issuer_base
    }

    pub fn accepted_audiences(&self) -> &[String] {
        &self.accepted_audiences
    }

    pub fn token_lifetime(&self) -> Duration {
        self.token_lifetime
    }

    /// The `iss` of v2 tokens: `{base}/{tenantid}/v2.0`, like `login.microsoftonline.com`.
    pub fn issuer_v2_template(&self) -> String {
        format!("{}/{TENANT_ID_PLACEHOLDER}/v2.0", self.issuer_base)
    }

    /// The `iss` of v1 tokens: `{base}/{tenantid}/`, like `sts.windows.net`.
    pub fn issuer_v1_template(&self) -> String {
        format!("{}/{TENANT_ID_PLACEHOLDER}/", self.issuer_base)
    }

    /// Whether the tenant has apps. Positive answers are cached briefly; negative ones are not,
    /// so a tenant created by `iocd apps create` works at once.
    pub async fn tenant_exists(&self, tenant_id: &str) -> Result<bool, iocd_store::StoreError> {
        {
            let known = self
                .known_tenants
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if known
                .get(tenant_id)
                .is_some_and(|seen| seen.elapsed() < KNOWN_TENANT_TTL)
            {
                return Ok(true);
            }
        }
        let exists = self.store.tenant_exists(tenant_id).await?;
        let mut known = self
            .known_tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if exists {
            known.insert(tenant_id.to_string(), Instant::now());
        } else {
            known.remove(tenant_id);
        }
        Ok(exists)
    }

    /// Checks a client id and secret against the app registry (client-credentials grant).
    pub async fn authenticate_client(
        &self,
        tenant_id: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Result<AppRegistration, ClientAuthError>, iocd_store::StoreError> {
        // The registry is read every time, so a deleted app gets no new token even while its
        // secret is still remembered below.
        let Some(app) = self.store.find_app(tenant_id, client_id).await? else {
            return Ok(Err(ClientAuthError::UnknownApp));
        };
        let digest: [u8; 32] = sha2::Sha256::digest(client_secret.as_bytes()).into();
        if self.recently_verified(&app, &digest) {
            return Ok(Ok(app));
        }
        let verified = {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = self.argon2_permits.acquire().await;
            let secret = client_secret.to_string();
            let hash = app.secret_hash.clone();
            tokio::task::spawn_blocking(move || iocd_auth::verify_secret(&secret, &hash))
                .await
                .unwrap_or(false)
        };
        if !verified {
            return Ok(Err(ClientAuthError::WrongSecret));
        }
        self.verified_secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                app.client_id.clone(),
                VerifiedSecret {
                    secret_digest: digest,
                    secret_hash: app.secret_hash.clone(),
                    verified_at: Instant::now(),
                },
            );
        Ok(Ok(app))
    }

    fn recently_verified(&self, app: &AppRegistration, digest: &[u8; 32]) -> bool {
        let mut cache = self
            .verified_secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match cache.get(&app.client_id) {
            Some(entry)
                if entry.verified_at.elapsed() < VERIFIED_SECRET_TTL
                    && entry.secret_hash == app.secret_hash =>
            {
                &entry.secret_digest == digest
            }
            Some(_) => {
                cache.remove(&app.client_id);
                false
            }
            None => false,
        }
    }
}

async fn load_or_create_signing_key(store: &dyn IdentityStore) -> anyhow::Result<SigningKey> {
    if let Some(stored) = store.signing_key().await? {
        return Ok(SigningKey::from_pkcs8_pem(&stored.private_key_pem)?);
    }
    // RSA key generation takes a noticeable fraction of a second: keep it off the async threads.
    let generated = tokio::task::spawn_blocking(SigningKey::generate).await??;
    let candidate = StoredSigningKey {
        kid: generated.kid().to_string(),
        private_key_pem: generated.to_pkcs8_pem()?,
        created_at: time::now(),
    };
    let stored = store.signing_key_or_insert(&candidate).await?;
    if stored.kid == candidate.kid {
        tracing::info!(kid = %stored.kid, "generated the token-signing key and stored it in the database");
        return Ok(generated);
    }
    // Another server stored its key first; use that one so every replica signs alike.
    Ok(SigningKey::from_pkcs8_pem(&stored.private_key_pem)?)
}

// ---------------------------------------------------------------------------------------------
// Bearer-token authentication of API calls
// ---------------------------------------------------------------------------------------------

/// Authenticates API calls by their bearer token: iocd's own tokens (v1 and v2 issuers, iocd's
/// key) and those of the configured external issuers (keys fetched from their JWKS URL).
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
}

/// A 401 in the API's error shape, with the RFC 6750 challenge.
fn unauthorized(message: String, challenge: String) -> ApiError {
    let challenge = HeaderValue::from_str(&challenge)
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""));
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
        .with_header(header::WWW_AUTHENTICATE, challenge)
}

fn invalid_token(error: &TokenError) -> ApiError {
    unauthorized(
        format!("Invalid Authorization payload: {error}."),
        error.www_authenticate(),
    )
}

/// Makes text safe inside a quoted header parameter.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

fn invalid_token_message(message: &str) -> ApiError {
    unauthorized(
        format!("Invalid Authorization payload: {message}."),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            header_text(message)
        ),
    )
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        // RFC 6750 §3.1: a request without credentials gets a challenge without an error code.
        return Err(unauthorized(
            "The Authorization header is missing. Send 'Authorization: Bearer <token>', with a token from POST /{tenant}/oauth2/v2.0/token.".to_string(),
            "Bearer realm=\"iocd\"".to_string(),
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| invalid_token_message("the Authorization header is not ASCII text"))?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid_token_message(
            "the Authorization header must use the Bearer scheme ('Authorization: Bearer <token>')",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid_token_message(
            "the Authorization header has the Bearer scheme but no token",
        ));
    }
    Ok(token)
}

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let token = bearer_token(parts)?;
        let validated = match self.validator.validate_refreshing(token).await {
            Ok(validated) => validated,
            Err(TokenError::KeysUnavailable(reason)) => {
                // The token may well be good: the issuer's keys could not be fetched to check it.
                tracing::warn!(%reason, "an external issuer's signing keys are unavailable");
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ServiceUnavailable,
                    format!("The token cannot be checked now: {reason}. Retry later."),
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("30")));
            }
            Err(error) => return Err(invalid_token(&error)),
        };
        // iocd's own tokens name tenants of its registry; one that no longer has apps (or was
        // never created) is refused even though the key signed it.
        if self.is_own(&validated) && !self.provider.tenant_exists(&validated.tenant_id).await? {
            return Err(invalid_token_message(&format!(
                "tenant '{}' is not known to this server",
                header_text(&validated.tenant_id)
            )));
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

// ---------------------------------------------------------------------------------------------
// App registration (shared by `iocd apps create`, the development app and the test harness)
// ---------------------------------------------------------------------------------------------

/// Names that cannot be tenant ids because they are (or shadow) paths of the server, plus
/// Entra's pseudo-tenants, which mean something else to real clients.
const RESERVED_TENANT_IDS: &[&str] = &[
    "api",
    "docs",
    "health",
    "openapi.json",
    "common",
    "organizations",
    "consumers",
];

const MAX_TENANT_ID_CHARS: usize = 64;
const MAX_DISPLAY_NAME_CHARS: usize = 256;

/// A new app's credentials: the only time the secret exists outside the app's owner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAppCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Why an app could not be registered; the text names the bad input.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    /// Hashing the secret on a blocking thread failed (the task panicked or was cancelled):
    /// nothing the caller sent was wrong.
    #[error("hashing the client secret failed: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] iocd_store::StoreError),
}

/// Checks a tenant id: 1–64 letters, digits, `-`, `_` or `.`, starting with a letter or digit
/// (GUIDs as Entra uses them, or readable names), and not a reserved path name.
pub fn validate_tenant_id(tenant_id: &str) -> Result<(), String> {
    let valid_chars = tenant_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let starts_well = tenant_id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !valid_chars || !starts_well || tenant_id.len() > MAX_TENANT_ID_CHARS {
        return Err(format!(
            "tenant id '{tenant_id}' is invalid: use 1 to {MAX_TENANT_ID_CHARS} letters, digits, '-', '_' or '.', starting with a letter or digit (a GUID, like Entra's tenant ids, is best)"
        ));
    }
    if RESERVED_TENANT_IDS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(tenant_id))
    {
        return Err(format!(
            "tenant id '{tenant_id}' is reserved (it is a path of the server or an Entra pseudo-tenant); choose another"
        ));
    }
    Ok(())
}

/// Registers an app: a new client id and secret, the secret stored only as an argon2id hash.
pub async fn register_app(
    store: &dyn IdentityStore,
    tenant_id: &str,
    display_name: &str,
    roles: &[Role],
) -> Result<NewAppCredentials, RegisterError> {
    validate_tenant_id(tenant_id).map_err(RegisterError::Invalid)?;
    let display_name = display_name.trim();
    if display_name.is_empty()
        || display_name.chars().count() > MAX_DISPLAY_NAME_CHARS
        || display_name.chars().any(char::is_control)
    {
        return Err(RegisterError::Invalid(format!(
            "display name '{display_name}' is invalid: use 1 to {MAX_DISPLAY_NAME_CHARS} characters without control characters"
        )));
    }
    let mut role_names: Vec<String> = Vec::new();
    for role in roles {
        if !role_names.iter().any(|r| r == role.as_str()) {
            role_names.push(role.as_str().to_string());
        }
    }
    let client_secret = iocd_auth::generate_client_secret();
    let secret = client_secret.clone();
    let secret_hash = tokio::task::spawn_blocking(move || iocd_auth::hash_secret(&secret))
        .await
        .map_err(|e| RegisterError::Internal(e.to_string()))?;
    let app = AppRegistration {
        tenant_id: tenant_id.to_string(),
        client_id: iocd_auth::generate_client_id(),
        object_id: uuid::Uuid::new_v4().to_string(),
        display_name: display_name.to_string(),
        secret_hash,
        roles: role_names,
        created_at: time::now(),
    };
    match store.insert_app(&app).await {
        Ok(()) => {}
        // A random UUID v4 colliding is not going to happen; report it plainly if it does.
        Err(AppInsertError::DuplicateClientId(id)) => {
            return Err(RegisterError::Invalid(format!(
                "client id {id} already exists; run the command again"
            )))
        }
        Err(AppInsertError::Store(e)) => return Err(e.into()),
    }
    Ok(NewAppCredentials {
        tenant_id: app.tenant_id,
        client_id: app.client_id,
        client_secret,
    })
}

/// Display name of the app `iocd serve` creates on an empty database.
pub const DEVELOPMENT_APP_NAME: &str = "iocd development app";

/// On a database that has never had an app, creates a development tenant and a
/// `Ti.ReadWrite.All` app in it and returns its credentials (to print once). Exactly one server
/// does this even when several start together on one database; later starts return `None`.
pub async fn bootstrap_development_app(
    store: &dyn IdentityStore,
) -> Result<Option<NewAppCredentials>, RegisterError> {
    if !store.list_apps(None).await?.is_empty() {
        return Ok(None);
    }
    if !store
        .claim_bootstrap_step("development-app", time::now())
        .await?
    {
        return Ok(None);
    }
    let tenant_id = uuid::Uuid::new_v4().to_string();
    register_app(
        store,
        &tenant_id,
        DEVELOPMENT_APP_NAME,
        &[Role::ReadWriteAll],
    )
    .await
    .map(Some)
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

    #[test]
    fn tenant_ids_are_checked() {
        assert!(validate_tenant_id("6f1c2b4e-0000-4000-8000-00000000000a").is_ok());
        assert!(validate_tenant_id("contoso.example").is_ok());
        for bad in [
            "",
            "a/b",
            "-x",
            "{tenantid}",
            "api",
            "API",
            "common",
            &"x".repeat(65),
        ] {
            assert!(validate_tenant_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("ti.readwrite"), None);
    }
}
