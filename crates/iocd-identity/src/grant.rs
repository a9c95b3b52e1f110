//! The token endpoint's rules (client-credentials grant, v1 and v2): which requests get a token,
//! for which audience, and the OAuth2 error (with Entra's AADSTS number) of every refusal. The
//! HTTP server reads the form and writes the response; everything in between is here.

use iocd_auth::{TokenClaimsInput, TokenVersion};

use crate::provider::{ClientAuthError, IdentityProvider};

/// A token request: its form fields (first occurrence of each counts) and the client id and
/// secret of HTTP Basic authentication (`client_secret_basic`), if sent.
#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    pub fields: Vec<(String, String)>,
    pub basic_credentials: Option<(String, String)>,
    /// The host the client called (without port): on an Entra login host (reached through
    /// interception) the token carries Entra's issuer.
    pub host: String,
    /// The scheme, host and port the client called (`https://login.microsoftonline.com`): a
    /// client assertion's `aud` may name the token endpoint there.
    pub origin: String,
    /// The client's IP address, for the per-address limit on failed authentications.
    pub client_address: Option<String>,
}

impl TokenRequest {
    /// A field's value; an empty value counts as absent, as Entra treats it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }
}

/// An OAuth2 error (RFC 6749 §5.2) with Entra's AADSTS number for the same failure, so clients
/// that branch on it keep working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantError {
    /// `invalid_request`, `invalid_client`, `invalid_scope`, … (RFC 6749 §5.2).
    pub error: &'static str,
    pub code: u32,
    pub description: String,
    /// A lockout: answer 429 with this `Retry-After`.
    pub retry_after_secs: Option<u64>,
}

impl GrantError {
    pub fn new(error: &'static str, code: u32, description: impl Into<String>) -> Self {
        GrantError {
            error,
            code,
            description: description.into(),
            retry_after_secs: None,
        }
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    pub fn unknown_tenant(tenant: &str, error: &'static str) -> Self {
        Self::new(
            error,
            90002,
            format!(
                "Tenant '{tenant}' not found. Check that the tenant id is right: tenants are created by 'iocd apps create --tenant <id>'."
            ),
        )
    }

    /// The request could not be served for a reason of the server's (storage, signing).
    pub fn temporarily_unavailable() -> Self {
        Self::new(
            "temporarily_unavailable",
            50000,
            "There was an error issuing a token; retry the request.",
        )
    }

    /// Client authentication failed: RFC 6749 answers these with 401.
    pub fn is_client_authentication_failure(&self) -> bool {
        self.error == "invalid_client"
    }

    /// The server, not the request, is at fault: a 500.
    pub fn is_server_failure(&self) -> bool {
        self.error == "temporarily_unavailable"
    }
}

/// A token the endpoint issued, with what its response reports.
#[derive(Debug, Clone)]
pub struct GrantedToken {
    pub access_token: String,
    pub expires_in: u64,
    /// The audience the token was issued for, as configured (v1 responses echo it as `resource`).
    pub audience: String,
}

/// AADSTS700016: no app with this client id in the tenant.
pub(crate) fn unknown_app(client_id: &str, tenant: &str) -> GrantError {
    GrantError::new(
        "invalid_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
        ),
    )
}

/// AADSTS50053: too many failed sign-ins; answered with 429 and `Retry-After`.
fn locked_out(client_id: &str, lockout: crate::lockout::Lockout) -> GrantError {
    let (what, retry_after_secs) = match lockout {
        crate::lockout::Lockout::Client { retry_after_secs } => {
            (format!("application '{client_id}'"), retry_after_secs)
        }
        crate::lockout::Lockout::Address { retry_after_secs } => {
            ("this address".to_string(), retry_after_secs)
        }
    };
    GrantError {
        retry_after_secs: Some(retry_after_secs),
        ..GrantError::new(
            "invalid_client",
            50053,
            format!("The account is locked: too many failed client authentications for {what}. Retry after {retry_after_secs} seconds."),
        )
    }
}

/// AADSTS7000218: a confidential client sent neither a secret nor an assertion.
pub(crate) fn missing_client_credential() -> GrantError {
    GrantError::new(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )
}

pub(crate) fn storage_failure(e: iocd_store::StoreError) -> GrantError {
    tracing::error!(error = %e, "storage failure at the token endpoint");
    GrantError::temporarily_unavailable()
}

impl IdentityProvider {
    /// Authenticates a client by its secret (from the request's address, for the failure
    /// limits), with Entra's answer to each failure. Every grant that takes a secret uses it.
    pub(crate) async fn client_by_secret(
        &self,
        tenant: &str,
        client_id: &str,
        client_secret: &str,
        request: &TokenRequest,
    ) -> Result<iocd_store::AppRegistration, GrantError> {
        match self
            .authenticate_client(
                tenant,
                client_id,
                client_secret,
                request.client_address.as_deref(),
            )
            .await
            .map_err(storage_failure)?
        {
            Ok(registration) => Ok(registration),
            Err(ClientAuthError::UnknownApp) => Err(unknown_app(client_id, tenant)),
            Err(ClientAuthError::LockedOut(lockout)) => Err(locked_out(client_id, lockout)),
            Err(ClientAuthError::WrongSecret) => Err(GrantError::new(
                "invalid_client",
                7000215,
                format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value of app '{client_id}'."),
            )),
        }
    }

    /// The id of the tenant an authority URL names (by its id or by a domain alias), or the
    /// refusal a token, discovery or key request gets (`error` is its OAuth2 error).
    pub async fn require_tenant(
        &self,
        tenant: &str,
        error: &'static str,
    ) -> Result<String, GrantError> {
        match self.resolve_tenant(tenant).await {
            Ok(Some(tenant_id)) => Ok(tenant_id),
            Ok(None) => Err(GrantError::unknown_tenant(tenant, error)),
            Err(e) => Err(storage_failure(e)),
        }
    }

    /// Decides a token request made to `/{tenant}/oauth2/v2.0/token` (v2) or
    /// `/{tenant}/oauth2/token` (v1) and issues the token.
    pub async fn grant(
        &self,
        tenant: &str,
        version: TokenVersion,
        request: &TokenRequest,
    ) -> Result<GrantedToken, GrantError> {
        match request.get("grant_type") {
            None => return Err(GrantError::missing_parameter("grant_type")),
            Some("client_credentials") => {}
            Some(other) => {
                return Err(GrantError::new(
                    "unsupported_grant_type",
                    70003,
                    format!("The app requested an unsupported grant type '{other}'. iocd supports client_credentials, password, authorization_code, refresh_token and urn:ietf:params:oauth:grant-type:device_code."),
                ))
            }
        }
        // The URL may name the tenant by a domain alias; everything below uses its id.
        let named = tenant;
        let tenant_id = self.require_tenant(named, "invalid_request").await?;
        let tenant = tenant_id.as_str();
        if let Some(assertion) = request.get("client_assertion") {
            match request.get("client_assertion_type") {
                Some(iocd_auth::JWT_BEARER_ASSERTION_TYPE) => {}
                None => return Err(GrantError::missing_parameter("client_assertion_type")),
                Some(other) => {
                    return Err(GrantError::new(
                        "invalid_request",
                        900144,
                        format!(
                            "client_assertion_type '{other}' is not supported; use {}.",
                            iocd_auth::JWT_BEARER_ASSERTION_TYPE
                        ),
                    ))
                }
            }
            // Entra lets a client leave client_id out when its assertion names it.
            let client_id = match request.get("client_id") {
                Some(id) => id.to_string(),
                None => iocd_auth::unverified_assertion_issuer(assertion)
                    .ok_or_else(|| GrantError::missing_parameter("client_id"))?,
            };
            let audience = self.requested_audience(request, version)?;
            let registration = self
                .authenticate_assertion(
                    tenant,
                    &[tenant, named],
                    &client_id,
                    assertion,
                    &request.origin,
                )
                .await?;
            let signing_key = self.current_key_ring().await.active().clone();
            return self.issue(&signing_key, registration, audience, version, request);
        }
        let (client_id, client_secret) = match &request.basic_credentials {
            Some(basic) => basic.clone(),
            None => (
                request
                    .get("client_id")
                    .ok_or_else(|| GrantError::missing_parameter("client_id"))?
                    .to_string(),
                request
                    .get("client_secret")
                    .ok_or_else(missing_client_credential)?
                    .to_string(),
            ),
        };
        // Cheap checks first: an unknown resource costs no argon2 verification.
        let audience = self.requested_audience(request, version)?;
        let registration = self
            .client_by_secret(tenant, &client_id, &client_secret, request)
            .await?;
        let signing_key = self.current_key_ring().await.active().clone();
        self.issue(&signing_key, registration, audience, version, request)
    }

    /// Signs the token a granted request gets.
    fn issue(
        &self,
        signing_key: &iocd_auth::SigningKey,
        registration: iocd_store::AppRegistration,
        audience: String,
        version: TokenVersion,
        request: &TokenRequest,
    ) -> Result<GrantedToken, GrantError> {
        let issuer = self.issuer_template(version, &request.host);
        let issued = signing_key
            .issue(&TokenClaimsInput {
                tenant_id: registration.tenant_id,
                client_id: registration.client_id,
                app_object_id: registration.object_id,
                app_display_name: Some(registration.display_name),
                roles: registration.roles,
                audience: audience.clone(),
                issuer,
                version,
                lifetime: self.token_lifetime(),
            })
            .map_err(|e| {
                tracing::error!(error = %e, "signing a token failed");
                GrantError::temporarily_unavailable()
            })?;
        Ok(GrantedToken {
            access_token: issued.access_token,
            expires_in: issued.expires_in,
            audience,
        })
    }

    /// The resource (audience) a token is requested for: `scope=<resource>/.default` (v2) or
    /// `resource=<resource>` (v1), matched against the accepted audiences ignoring a trailing `/`.
    fn requested_audience(
        &self,
        request: &TokenRequest,
        version: TokenVersion,
    ) -> Result<String, GrantError> {
        let resource = match version {
            TokenVersion::V2 => {
                let scope = request
                    .get("scope")
                    .ok_or_else(|| GrantError::missing_parameter("scope"))?;
                // OpenID scopes may ride along; the client-credentials grant needs exactly one
                // `<resource>/.default`.
                let resources: Vec<&str> = scope
                    .split_whitespace()
                    .filter(|s| !matches!(*s, "openid" | "profile" | "email" | "offline_access"))
                    .collect();
                match resources.as_slice() {
                    [one] => one.strip_suffix("/.default").ok_or_else(|| {
                        GrantError::new(
                            "invalid_scope",
                            1002012,
                            format!("The provided value for scope {one} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI), for example https://api.securitycenter.microsoft.com/.default."),
                        )
                    })?,
                    _ => {
                        return Err(GrantError::new(
                            "invalid_scope",
                            70011,
                            format!("The provided value for the input parameter 'scope' is not valid: '{scope}'. Ask for one resource, for example scope=https://api.securitycenter.microsoft.com/.default."),
                        ))
                    }
                }
            }
            TokenVersion::V1 => request
                .get("resource")
                .ok_or_else(|| GrantError::missing_parameter("resource"))?,
        };
        self.accepted_audience(resource)
    }

    /// The audience this server serves that `resource` names (a trailing slash and case do not
    /// matter), as Entra spells the refusal when it serves none.
    pub(crate) fn accepted_audience(&self, resource: &str) -> Result<String, GrantError> {
        let wanted = resource.trim_end_matches('/');
        self.accepted_audiences()
            .iter()
            .find(|accepted| accepted.trim_end_matches('/').eq_ignore_ascii_case(wanted))
            .cloned()
            .ok_or_else(|| {
                GrantError::new(
                    "invalid_resource",
                    500011,
                    format!(
                        "The resource principal named {resource} was not found. Resources served here: {}.",
                        self.accepted_audiences().join(", ")
                    ),
                )
            })
    }
}
