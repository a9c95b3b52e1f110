//! The delegated sign-in flows, where a person signs in through an app: resource owner password
//! credentials, authorization code with PKCE, device code, and refresh tokens. Each answers with
//! Entra's OAuth2 errors (and AADSTS numbers) so MSAL and azure-identity behave as they do
//! against Entra. The HTTP server renders the sign-in pages and maps these answers to responses.
//!
//! Codes and refresh tokens are random 256-bit values stored only as their SHA-256, each
//! redeemable once; a refresh token presented again after it was rotated revokes its whole
//! family (the sign-in it came from), as OAuth 2.0 Security BCP §4.14 recommends.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use iocd_auth::{DelegatedUserClaims, TokenClaimsInput, TokenVersion};
use iocd_domain::time::{self, Timestamp};
use iocd_store::{AppRegistration, SignInGrant, UserRecord};
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::grant::{
    missing_client_credential, storage_failure, unknown_app, GrantError, GrantedToken, TokenRequest,
};
use crate::provider::IdentityProvider;

/// The RFC 8628 grant type of device-code polling (v2); the v1 endpoint also takes `device_code`.
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The one delegated permission of the Defender catalogue that covers indicators.
pub const DELEGATED_PERMISSION: &str = "Ti.ReadWrite";

const AUTHORIZATION_CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Entra's device codes last 15 minutes and ask clients to poll every 5 seconds.
const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(900);
const DEVICE_CODE_INTERVAL_SECS: i64 = 5;
/// User codes avoid letters and digits people confuse (0/O, 1/I/L).
const USER_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const USER_CODE_LEN: usize = 9;

const KIND_REFRESH: &str = "refresh_token";
const KIND_CODE: &str = "authorization_code";
const KIND_DEVICE: &str = "device_code";

/// What a token response carries: the access token, and for delegated grants the granted
/// scope, a refresh token, an ID token and MSAL's `client_info`.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub granted: GrantedToken,
    pub scope: Option<String>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub client_info: Option<String>,
}

impl From<GrantedToken> for TokenResponse {
    fn from(granted: GrantedToken) -> Self {
        TokenResponse {
            granted,
            scope: None,
            refresh_token: None,
            id_token: None,
            client_info: None,
        }
    }
}

/// A device-code authorization started at `/devicecode`: what the client shows its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// An authorization request (`/authorize`), as the sign-in page carries it between its steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// The scheme, host and port the browser called the authorization endpoint at
    /// (`https://iocd.example`): a path-only registered redirect URI is allowed on it alone.
    pub served_origin: String,
}

/// Why an authorization request cannot even be answered at its redirect URI (the page shows the
/// error instead, as Entra does for an unknown app or an unregistered redirect URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeError(pub GrantError);

/// The scopes a delegated token request asked for, resolved.
#[derive(Debug, Clone)]
struct DelegatedScope {
    audience: String,
    permissions: Vec<String>,
    openid: bool,
    offline_access: bool,
    /// The `scope` of the response: the resource's permissions, then the OpenID scopes.
    granted: String,
}

fn sha256_hex(value: &str) -> String {
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

fn after(now: Timestamp, lifetime: Duration) -> Timestamp {
    now + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX)
}

fn invalid_grant(code: u32, description: impl Into<String>) -> GrantError {
    GrantError::new("invalid_grant", code, description)
}

/// The user code people type: dashes, spaces and case are forgiven.
pub fn normalise_user_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn generate_user_code() -> String {
    use rand_core::RngCore as _;
    let mut bytes = [0u8; USER_CODE_LEN];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| USER_CODE_ALPHABET[usize::from(*b) % USER_CODE_ALPHABET.len()] as char)
        .collect()
}

/// Whether a PKCE verifier answers a challenge (RFC 7636 §4.6).
fn pkce_matches(verifier: &str, challenge: &str, method: &str) -> bool {
    match method {
        "S256" => URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())) == challenge,
        "plain" => verifier == challenge,
        _ => false,
    }
}

/// Whether a redirect URI is one the app registered (a path-only registration, such as the
/// portal's, on `served_origin` only), or, for a public client, any port of `http://localhost`
/// (Entra lets native apps listen on a port of their choosing).
fn redirect_allowed(
    uri: &str,
    registered: &[String],
    public_client: bool,
    served_origin: &str,
) -> bool {
    if registered
        .iter()
        .any(|r| r == uri || crate::portal::same_origin_redirect(uri, r, served_origin))
    {
        return true;
    }
    public_client
        && url::Url::parse(uri).is_ok_and(|u| {
            u.scheme() == "http"
                && matches!(u.host_str(), Some("localhost" | "127.0.0.1"))
                && u.fragment().is_none()
        })
}

impl IdentityProvider {
    /// Decides any token request: the client-credentials grant of [`Self::grant`], or one of
    /// the delegated grants.
    pub async fn token(
        &self,
        tenant: &str,
        version: TokenVersion,
        request: &TokenRequest,
    ) -> Result<TokenResponse, GrantError> {
        let kind = request.get("grant_type");
        if !matches!(
            kind,
            Some(
                "password"
                    | "refresh_token"
                    | "authorization_code"
                    | DEVICE_CODE_GRANT_TYPE
                    | "device_code"
            )
        ) {
            return self.grant(tenant, version, request).await.map(Into::into);
        }
        // The authority URL may name the tenant by a domain alias: what follows works on its id.
        let tenant = &self.require_tenant(tenant, "invalid_request").await?;
        // The caller's address keys the per-address limit on wrong passwords.
        let source = request.client_address.as_deref().unwrap_or("");
        match kind {
            Some("password") => self.password_grant(tenant, version, request, source).await,
            Some("refresh_token") => self.refresh_grant(tenant, version, request).await,
            Some("authorization_code") => self.code_grant(tenant, version, request).await,
            _ => self.device_code_grant(tenant, version, request).await,
        }
    }

    /// The app of a delegated request: a public client sends only its id; a confidential one
    /// authenticates with its secret as in the client-credentials grant.
    async fn delegated_client(
        &self,
        tenant: &str,
        request: &TokenRequest,
    ) -> Result<AppRegistration, GrantError> {
        let (client_id, secret) = match &request.basic_credentials {
            Some((id, secret)) => (id.clone(), Some(secret.clone())),
            None => (
                request
                    .get("client_id")
                    .ok_or_else(|| GrantError::missing_parameter("client_id"))?
                    .to_string(),
                request.get("client_secret").map(str::to_string),
            ),
        };
        let app = self.app_in_tenant(tenant, &client_id).await?;
        let public = self
            .store()
            .app_sign_in(&client_id)
            .await
            .map_err(storage_failure)?
            .is_some_and(|s| s.public_client);
        if public {
            if secret.is_some() {
                return Err(GrantError::new(
                    "invalid_client",
                    700025,
                    "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
                ));
            }
            return Ok(app);
        }
        let secret = secret.ok_or_else(missing_client_credential)?;
        self.client_by_secret(tenant, &client_id, &secret, request)
            .await
    }

    /// The app `client_id` of the tenant whose id (not alias) is `tenant`.
    async fn app_in_tenant(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<AppRegistration, GrantError> {
        self.store()
            .find_app(tenant, client_id)
            .await
            .map_err(storage_failure)?
            .ok_or_else(|| unknown_app(client_id, tenant))
    }

    /// Resolves `scope` (v2) or `resource` (v1) for a delegated token.
    fn delegated_scope(
        &self,
        version: TokenVersion,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<DelegatedScope, GrantError> {
        let words: Vec<&str> = scope.unwrap_or("").split_whitespace().collect();
        let openid = words.contains(&"openid");
        let mut resources: Vec<(&str, &str)> = Vec::new();
        for word in &words {
            if matches!(*word, "openid" | "profile" | "email" | "offline_access") {
                continue;
            }
            let Some((resource, permission)) = word.rsplit_once('/') else {
                return Err(GrantError::new(
                    "invalid_scope",
                    70011,
                    format!("The provided value for the input parameter 'scope' is not valid: '{word}'. Ask for the API's permission by its full name, for example https://api.securitycenter.microsoft.com/{DELEGATED_PERMISSION}."),
                ));
            };
            resources.push((resource, permission));
        }
        let (audience, permissions) = match version {
            TokenVersion::V1 => {
                let resource = resource.ok_or_else(|| GrantError::missing_parameter("resource"))?;
                (resource, vec![DELEGATED_PERMISSION.to_string()])
            }
            TokenVersion::V2 => {
                let Some((first, _)) = resources.first() else {
                    return Err(GrantError::new(
                        "invalid_scope",
                        70011,
                        format!("The provided value for the input parameter 'scope' is not valid: '{}'. Ask for the API's permission, for example https://api.securitycenter.microsoft.com/{DELEGATED_PERMISSION} openid offline_access.", scope.unwrap_or("")),
                    ));
                };
                if resources.iter().any(|(r, _)| r != first) {
                    return Err(GrantError::new(
                        "invalid_scope",
                        28000,
                        "Provided value for the input parameter scope is not valid because it contains more than one resource.",
                    ));
                }
                let mut permissions = Vec::new();
                for (_, permission) in &resources {
                    let permission = match *permission {
                        ".default" | DELEGATED_PERMISSION => DELEGATED_PERMISSION,
                        other => {
                            return Err(GrantError::new(
                                "invalid_scope",
                                65005,
                                format!("The application asked for scope '{other}' that doesn't exist on the resource. The resource's delegated permission is {DELEGATED_PERMISSION}."),
                            ))
                        }
                    };
                    if !permissions.iter().any(|p| p == permission) {
                        permissions.push(permission.to_string());
                    }
                }
                (*first, permissions)
            }
        };
        let audience = self.accepted_audience(audience)?;
        let offline_access = version == TokenVersion::V1 || words.contains(&"offline_access");
        let mut granted: Vec<String> = permissions
            .iter()
            .map(|p| format!("{}/{p}", audience.trim_end_matches('/')))
            .collect();
        for oidc in ["openid", "profile", "email", "offline_access"] {
            if words.contains(&oidc) {
                granted.push(oidc.to_string());
            }
        }
        Ok(DelegatedScope {
            audience,
            permissions,
            openid,
            offline_access,
            granted: granted.join(" "),
        })
    }

    /// Checks a user's name and password, with the per-user and per-address failure limits.
    /// Every refusal reads the same whether or not the user exists.
    pub async fn authenticate_user(
        &self,
        tenant: &str,
        username: &str,
        password: &str,
        source: &str,
    ) -> Result<UserRecord, GrantError> {
        let user_key = format!("{tenant}/{}", username.trim().to_lowercase());
        // An unknown address (the transport did not say) is not a key: it would pool everyone.
        let by_address = self.sign_in_failures_by_address();
        if self.sign_in_failures().is_locked(&user_key)
            || (!source.is_empty() && by_address.is_locked(source))
        {
            return Err(invalid_grant(
                50053,
                "Your account is locked because you've tried to sign in too many times with an incorrect user ID or password. Wait a few minutes and try again.",
            ));
        }
        let user = self
            .store()
            .find_user_by_upn(tenant, username)
            .await
            .map_err(storage_failure)?;
        // An unknown user costs the same argon2 verification as a wrong password, so timing does
        // not tell which names exist.
        let hash = user.as_ref().map_or(self.decoy_password_hash(), |user| {
            user.password_hash.as_str()
        });
        let verified = self.verify_with_permit(password, hash).await && user.is_some();
        match user {
            Some(user) if verified => {
                self.sign_in_failures().clear(&user_key);
                Ok(user)
            }
            _ => {
                self.sign_in_failures().record(&user_key);
                if !source.is_empty() {
                    by_address.record(source);
                }
                Err(invalid_grant(
                    50126,
                    "Error validating credentials due to invalid username or password.",
                ))
            }
        }
    }

    async fn password_grant(
        &self,
        tenant: &str,
        version: TokenVersion,
        request: &TokenRequest,
        source: &str,
    ) -> Result<TokenResponse, GrantError> {
        let app = self.delegated_client(tenant, request).await?;
        let scope = self.delegated_scope(version, request.get("scope"), request.get("resource"))?;
        let username = request
            .get("username")
            .ok_or_else(|| GrantError::missing_parameter("username"))?;
        let password = request
            .get("password")
            .ok_or_else(|| GrantError::missing_parameter("password"))?;
        let user = self
            .authenticate_user(tenant, username, password, source)
            .await?;
        self.issue_delegated(tenant, version, request, &app, &user, &scope, None, None)
            .await
    }

    async fn refresh_grant(
        &self,
        tenant: &str,
        version: TokenVersion,
        request: &TokenRequest,
    ) -> Result<TokenResponse, GrantError> {
        let app = self.delegated_client(tenant, request).await?;
        let presented = request
            .get("refresh_token")
            .ok_or_else(|| GrantError::missing_parameter("refresh_token"))?;
        let grant = self
            .redeem(
                presented,
                KIND_REFRESH,
                tenant,
                &app.client_id,
                &REFRESH_REFUSALS,
            )
            .await?;
        let user = self.grant_user(tenant, &grant).await?;
        let scope_words = request.get("scope").unwrap_or(&grant.scope).to_string();
        let resource = request
            .get("resource")
            .map(str::to_string)
            .or_else(|| grant.details["resource"].as_str().map(str::to_string));
        let scope = self.delegated_scope(version, Some(&scope_words), resource.as_deref())?;
        self.issue_delegated(
            tenant,
            version,
            request,
            &app,
            &user,
            &scope,
            None,
            Some(grant.family),
        )
        .await
    }

    async fn code_grant(
        &self,
        tenant: &str,
        version: TokenVersion,
        request: &TokenRequest,
    ) -> Result<TokenResponse, GrantError> {
        let app = self.delegated_client(tenant, request).await?;
        let code = request
            .get("code")
            .ok_or_else(|| GrantError::missing_parameter("code"))?;
        let grant = self
            .redeem(code, KIND_CODE, tenant, &app.client_id, &CODE_REFUSALS)
            .await?;
        let details = &grant.details;
        if request.get("redirect_uri") != details["redirect_uri"].as_str() {
            return Err(invalid_grant(
                50148,
                "The redirect_uri of the token request does not match the one of the authorization request.",
            ));
        }
        if let Some(challenge) = details["code_challenge"].as_str() {
            let method = details["code_challenge_method"].as_str().unwrap_or("plain");
            let verifier = request
                .get("code_verifier")
                .ok_or_else(|| GrantError::missing_parameter("code_verifier"))?;
            if !pkce_matches(verifier, challenge, method) {
                return Err(invalid_grant(
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                ));
            }
        }
        let user = self.grant_user(tenant, &grant).await?;
        let scope = self.delegated_scope(
            version,
            Some(&grant.scope),
            request
                .get("resource")
                .or_else(|| details["resource"].as_str()),
        )?;
        let nonce = details["nonce"].as_str().map(str::to_string);
        self.issue_delegated(
            tenant,
            version,
            request,
            &app,
            &user,
            &scope,
            nonce.as_deref(),
            None,
        )
        .await
    }

    async fn device_code_grant(
        &self,
        tenant: &str,
        version: TokenVersion,
        request: &TokenRequest,
    ) -> Result<TokenResponse, GrantError> {
        let client_id = request
            .get("client_id")
            .ok_or_else(|| GrantError::missing_parameter("client_id"))?;
        let app = self.app_in_tenant(tenant, client_id).await?;
        let device_code = request
            .get("device_code")
            .or_else(|| request.get("code"))
            .ok_or_else(|| GrantError::missing_parameter("device_code"))?;
        let hash = sha256_hex(device_code);
        let now = time::now();
        let grant = self
            .store()
            .find_grant(&hash)
            .await
            .map_err(storage_failure)?
            .filter(|g| g.kind == KIND_DEVICE && g.tenant_id == tenant && g.client_id == client_id)
            .ok_or_else(|| {
                GrantError::new(
                    "invalid_grant",
                    70000,
                    "The provided device code is not valid for this app and tenant.",
                )
            })?;
        if grant.expires_at <= now {
            return Err(GrantError::new(
                "expired_token",
                70019,
                "Verification code expired. Start the device-code flow again.",
            ));
        }
        if grant.consumed_at.is_some() {
            return Err(invalid_grant(
                54005,
                "The device code was already redeemed; start the device-code flow again.",
            ));
        }
        let mut details = grant.details.clone();
        match details["status"].as_str() {
            Some("approved") => {}
            Some("denied") => {
                return Err(GrantError::new(
                    "access_denied",
                    65004,
                    "User declined to consent to access the app.",
                ))
            }
            _ => {
                let last_poll = details["last_poll"].as_i64().unwrap_or(0);
                let polled_at = now.timestamp();
                details["last_poll"] = json!(polled_at);
                self.store()
                    .update_grant(&hash, &grant.user_object_id, &details)
                    .await
                    .map_err(storage_failure)?;
                if polled_at - last_poll < DEVICE_CODE_INTERVAL_SECS {
                    return Err(GrantError::new(
                        "slow_down",
                        70016,
                        format!("OAuth 2.0 device flow error. Polling too fast: wait {DEVICE_CODE_INTERVAL_SECS} seconds between requests."),
                    ));
                }
                return Err(GrantError::new(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                ));
            }
        }
        if !self
            .store()
            .consume_grant(&hash, now)
            .await
            .map_err(storage_failure)?
        {
            return Err(invalid_grant(
                54005,
                "The device code was already redeemed; start the device-code flow again.",
            ));
        }
        let user = self.grant_user(tenant, &grant).await?;
        let scope = self.delegated_scope(
            version,
            Some(&grant.scope),
            grant.details["resource"].as_str(),
        )?;
        self.issue_delegated(tenant, version, request, &app, &user, &scope, None, None)
            .await
    }

    /// Starts a device-code sign-in (`/devicecode`) for an app of the tenant.
    pub async fn start_device_authorization(
        &self,
        tenant: &str,
        version: TokenVersion,
        request: &TokenRequest,
    ) -> Result<DeviceAuthorization, GrantError> {
        let tenant = &self.require_tenant(tenant, "invalid_request").await?;
        let client_id = request
            .get("client_id")
            .ok_or_else(|| GrantError::missing_parameter("client_id"))?;
        self.app_in_tenant(tenant, client_id).await?;
        let scope = request.get("scope").unwrap_or("").to_string();
        let resource = request.get("resource");
        // Checked now so a bad scope fails before anyone is asked to sign in.
        self.delegated_scope(version, Some(&scope), resource)?;
        let device_code = iocd_auth::generate_client_secret();
        let user_code = generate_user_code();
        let now = time::now();
        self.store()
            .insert_grant(&SignInGrant {
                value_hash: sha256_hex(&device_code),
                kind: KIND_DEVICE.to_string(),
                tenant_id: tenant.to_string(),
                client_id: client_id.to_string(),
                user_object_id: String::new(),
                scope,
                details: json!({ "status": "pending", "last_poll": 0, "resource": resource }),
                family: uuid::Uuid::new_v4().to_string(),
                lookup: Some(user_code.clone()),
                created_at: now,
                expires_at: after(now, DEVICE_CODE_LIFETIME),
                consumed_at: None,
            })
            .await
            .map_err(storage_failure)?;
        Ok(DeviceAuthorization {
            device_code,
            user_code,
            expires_in: DEVICE_CODE_LIFETIME.as_secs(),
            interval: DEVICE_CODE_INTERVAL_SECS as u64,
        })
    }

    /// The app a typed user code would sign in to, for the device-login page; `None` for a code
    /// that is unknown, used or expired.
    pub async fn device_code_app(
        &self,
        user_code: &str,
    ) -> Result<Option<AppRegistration>, GrantError> {
        let Some(grant) = self.pending_device_grant(user_code).await? else {
            return Ok(None);
        };
        self.store()
            .find_app(&grant.tenant_id, &grant.client_id)
            .await
            .map_err(storage_failure)
    }

    async fn pending_device_grant(
        &self,
        user_code: &str,
    ) -> Result<Option<SignInGrant>, GrantError> {
        let code = normalise_user_code(user_code);
        if code.is_empty() {
            return Ok(None);
        }
        let grant = self
            .store()
            .find_grant_by_lookup(KIND_DEVICE, &code)
            .await
            .map_err(storage_failure)?;
        Ok(grant.filter(|g| {
            g.expires_at > time::now() && g.details["status"].as_str() == Some("pending")
        }))
    }

    /// Approves (after signing the user in) or declines a device code from the device-login
    /// page. Returns the app's display name.
    pub async fn decide_device_code(
        &self,
        user_code: &str,
        sign_in: Option<(&str, &str)>,
        source: &str,
    ) -> Result<String, GrantError> {
        let grant = self.pending_device_grant(user_code).await?.ok_or_else(|| {
            invalid_grant(
                70018,
                "That code is not valid or has expired. Check the code your device shows, or start again on the device.",
            )
        })?;
        let app = self
            .app_in_tenant(&grant.tenant_id, &grant.client_id)
            .await?;
        let mut details = grant.details.clone();
        let user_object_id = match sign_in {
            Some((username, password)) => {
                let user = self
                    .authenticate_user(&grant.tenant_id, username, password, source)
                    .await?;
                details["status"] = json!("approved");
                user.object_id
            }
            None => {
                details["status"] = json!("denied");
                String::new()
            }
        };
        self.store()
            .update_grant(&grant.value_hash, &user_object_id, &details)
            .await
            .map_err(storage_failure)?;
        Ok(app.display_name)
    }

    /// Checks an authorization request before the sign-in page is shown: the app exists in the
    /// tenant and the redirect URI is registered for it. Failures are shown on the page, never
    /// sent to an unverified redirect URI.
    pub async fn check_authorization_request(
        &self,
        tenant: &str,
        request: &AuthorizationRequest,
    ) -> Result<AppRegistration, AuthorizeError> {
        if request.client_id.is_empty() {
            return Err(AuthorizeError(GrantError::missing_parameter("client_id")));
        }
        let tenant = &self
            .require_tenant(tenant, "invalid_request")
            .await
            .map_err(AuthorizeError)?;
        let app = self
            .app_in_tenant(tenant, &request.client_id)
            .await
            .map_err(AuthorizeError)?;
        let settings = self
            .store()
            .app_sign_in(&request.client_id)
            .await
            .map_err(|e| AuthorizeError(storage_failure(e)))?
            .unwrap_or_default();
        if !redirect_allowed(
            &request.redirect_uri,
            &settings.redirect_uris,
            settings.public_client,
            &request.served_origin,
        ) {
            return Err(AuthorizeError(GrantError::new(
                "invalid_request",
                50011,
                format!(
                    "The redirect URI '{}' specified in the request does not match the redirect URIs configured for the application '{}'. Register it with `iocd apps create --redirect-uri`.",
                    request.redirect_uri, request.client_id
                ),
            )));
        }
        Ok(app)
    }

    /// Signs the user in for an authorization request and returns the code to send back to
    /// the redirect URI. A request error the client should see (unsupported response type,
    /// bad scope) is an `Err` of [`GrantError`] for the redirect; a wrong password is too, and the
    /// page shows it.
    pub async fn authorize(
        &self,
        tenant: &str,
        request: &AuthorizationRequest,
        username: &str,
        password: &str,
        source: &str,
    ) -> Result<String, GrantError> {
        let tenant = &self.require_tenant(tenant, "invalid_request").await?;
        if request.response_type != "code" {
            return Err(GrantError::new(
                "unsupported_response_type",
                70005,
                "The response_type must be 'code': iocd serves the authorization-code flow.",
            ));
        }
        self.delegated_scope(TokenVersion::V2, Some(&request.scope), None)?;
        if let Some(method) = &request.code_challenge_method {
            if request.code_challenge.is_none() || !matches!(method.as_str(), "S256" | "plain") {
                return Err(GrantError::new(
                    "invalid_request",
                    50131,
                    "code_challenge_method must be S256 or plain, with a code_challenge.",
                ));
            }
        }
        let user = self
            .authenticate_user(tenant, username, password, source)
            .await?;
        let code = iocd_auth::generate_client_secret();
        let now = time::now();
        self.store()
            .insert_grant(&SignInGrant {
                value_hash: sha256_hex(&code),
                kind: KIND_CODE.to_string(),
                tenant_id: tenant.to_string(),
                client_id: request.client_id.clone(),
                user_object_id: user.object_id,
                scope: request.scope.clone(),
                details: json!({
                    "redirect_uri": request.redirect_uri,
                    "nonce": request.nonce,
                    "code_challenge": request.code_challenge,
                    "code_challenge_method": request
                        .code_challenge
                        .as_ref()
                        .map(|_| request.code_challenge_method.clone().unwrap_or_else(|| "plain".into())),
                }),
                family: uuid::Uuid::new_v4().to_string(),
                lookup: None,
                created_at: now,
                expires_at: after(now, AUTHORIZATION_CODE_LIFETIME),
                consumed_at: None,
            })
            .await
            .map_err(storage_failure)?;
        Ok(code)
    }

    /// Redeems a one-time code or refresh token: exactly one caller gets it; the others get
    /// the refusal `refusals` gives for why.
    async fn redeem(
        &self,
        presented: &str,
        kind: &str,
        tenant: &str,
        client_id: &str,
        refusals: &Refusals,
    ) -> Result<SignInGrant, GrantError> {
        let refuse = |(code, description): (u32, &str)| invalid_grant(code, description);
        let hash = sha256_hex(presented);
        let now = time::now();
        let grant = self
            .store()
            .find_grant(&hash)
            .await
            .map_err(storage_failure)?
            .filter(|g| g.kind == kind && g.tenant_id == tenant && g.client_id == client_id)
            .ok_or_else(|| refuse(refusals.unknown))?;
        if grant.expires_at <= now {
            return Err(refuse(refusals.expired));
        }
        let won = grant.consumed_at.is_none()
            && self
                .store()
                .consume_grant(&hash, now)
                .await
                .map_err(storage_failure)?;
        if !won {
            if kind == KIND_REFRESH {
                let revoked = self
                    .store()
                    .revoke_family(&grant.family, now)
                    .await
                    .map_err(storage_failure)?;
                tracing::warn!(
                    tenant,
                    client_id,
                    revoked,
                    "a rotated refresh token was presented again; its sign-in is revoked"
                );
            }
            return Err(refuse(refusals.replayed));
        }
        Ok(grant)
    }

    async fn grant_user(
        &self,
        tenant: &str,
        grant: &SignInGrant,
    ) -> Result<UserRecord, GrantError> {
        self.store()
            .find_user(tenant, &grant.user_object_id)
            .await
            .map_err(storage_failure)?
            .ok_or_else(|| {
                invalid_grant(
                    50034,
                    "The user account does not exist in this tenant any more. Sign in again.",
                )
            })
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_delegated(
        &self,
        tenant: &str,
        version: TokenVersion,
        request: &TokenRequest,
        app: &AppRegistration,
        user: &UserRecord,
        scope: &DelegatedScope,
        nonce: Option<&str>,
        family: Option<String>,
    ) -> Result<TokenResponse, GrantError> {
        let signing_failed = |e: iocd_auth::IssueError| {
            tracing::error!(error = %e, "signing a delegated token failed");
            GrantError::temporarily_unavailable()
        };
        let input = TokenClaimsInput {
            tenant_id: tenant.to_string(),
            client_id: app.client_id.clone(),
            app_object_id: app.object_id.clone(),
            app_display_name: Some(app.display_name.clone()),
            roles: user.roles.clone(),
            audience: scope.audience.clone(),
            issuer: self.issuer_template(version, &request.host),
            version,
            lifetime: self.token_lifetime(),
        };
        let claims = DelegatedUserClaims {
            object_id: user.object_id.clone(),
            upn: user.upn.clone(),
            name: user.display_name.clone(),
            scopes: scope.permissions.clone(),
        };
        let issued_at = time::system_now();
        let issued = self
            .signing_key()
            .issue_delegated_at(&input, &claims, issued_at)
            .map_err(signing_failed)?;
        let id_token = if scope.openid {
            let id_input = TokenClaimsInput {
                issuer: self.issuer_template(TokenVersion::V2, &request.host),
                ..input.clone()
            };
            Some(
                self.signing_key()
                    .issue_id_token_at(&id_input, &claims, nonce, issued_at)
                    .map_err(signing_failed)?,
            )
        } else {
            None
        };
        let refresh_token = if scope.offline_access {
            let value = iocd_auth::generate_client_secret();
            let now = time::now();
            self.store()
                .insert_grant(&SignInGrant {
                    value_hash: sha256_hex(&value),
                    kind: KIND_REFRESH.to_string(),
                    tenant_id: tenant.to_string(),
                    client_id: app.client_id.clone(),
                    user_object_id: user.object_id.clone(),
                    scope: scope.granted.clone(),
                    details: json!({ "resource": scope.audience }),
                    family: family.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                    lookup: None,
                    created_at: now,
                    expires_at: after(now, self.refresh_token_lifetime()),
                    consumed_at: None,
                })
                .await
                .map_err(storage_failure)?;
            Some(value)
        } else {
            None
        };
        let client_info = (request.get("client_info") == Some("1")).then(|| {
            let info: Value = json!({ "uid": user.object_id, "utid": tenant });
            URL_SAFE_NO_PAD.encode(info.to_string())
        });
        Ok(TokenResponse {
            granted: GrantedToken {
                access_token: issued.access_token,
                expires_in: issued.expires_in,
                audience: scope.audience.clone(),
            },
            scope: Some(scope.granted.clone()),
            refresh_token,
            id_token,
            client_info,
        })
    }
}

/// What refusing a code or refresh token answers (Entra's AADSTS number and text), for each
/// reason it cannot be redeemed.
struct Refusals {
    /// Not one this server issued to this app in this tenant.
    unknown: (u32, &'static str),
    expired: (u32, &'static str),
    /// Redeemed already.
    replayed: (u32, &'static str),
}

const REFRESH_REFUSALS: Refusals = Refusals {
    unknown: (
        9002313,
        "Invalid request. Request is malformed or invalid: the refresh token is not one this server issued to this app.",
    ),
    expired: (
        700082,
        "The refresh token has expired due to inactivity. Sign in again.",
    ),
    replayed: (
        70000,
        "The provided grant is revoked: this refresh token was already used, so every token of its sign-in is revoked. Sign in again.",
    ),
};

const CODE_REFUSALS: Refusals = Refusals {
    unknown: (
        9002313,
        "Invalid request. Request is malformed or invalid: the authorization code is not one this server issued to this app.",
    ),
    expired: (
        70008,
        "The provided authorization code or refresh token has expired. Send a new interactive authorization request for this user and resource.",
    ),
    replayed: (
        54005,
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
    ),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge, "S256"));
        assert!(!pkce_matches("another-verifier", challenge, "S256"));
        assert!(!pkce_matches(verifier, challenge, "S512"));
        assert!(pkce_matches("same", "same", "plain"));
    }

    #[test]
    fn public_clients_may_use_any_localhost_port() {
        let registered = vec!["https://app.example/cb".to_string()];
        assert!(redirect_allowed(
            "https://app.example/cb",
            &registered,
            false,
            ""
        ));
        assert!(!redirect_allowed(
            "http://localhost:8400",
            &registered,
            false,
            ""
        ));
        assert!(redirect_allowed(
            "http://localhost:8400",
            &registered,
            true,
            ""
        ));
        assert!(redirect_allowed(
            "http://127.0.0.1:5000/x",
            &registered,
            true,
            ""
        ));
        assert!(!redirect_allowed(
            "http://evil.example:80",
            &registered,
            true,
            ""
        ));
        assert!(!redirect_allowed(
            "https://app.example/cb2",
            &registered,
            true,
            ""
        ));
    }

    #[test]
    fn user_codes_are_forgiving_and_unambiguous() {
        let code = generate_user_code();
        assert_eq!(code.len(), USER_CODE_LEN);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        assert_eq!(normalise_user_code(" abcd-efgh1 "), "ABCDEFGH1");
    }
}
