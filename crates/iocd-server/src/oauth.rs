//! The identity-provider endpoints, shaped like Entra ID's so that real clients only change a host
//! name: the client-credentials token endpoint (v2 `scope=…/.default` and v1 `resource=`), the
//! JWKS and the OpenID discovery documents.
//!
//! Their errors are OAuth2's (`{"error":"invalid_client","error_description":…}`), not the
//! indicator API's envelope: a client's OAuth library reads them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use iocd_auth::{TokenClaimsInput, TokenVersion};
use serde_json::{json, Value};

use crate::error::{PassThroughError, REQUEST_ID};
use crate::identity::{ClientAuthError, IdentityProvider};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    // Entra accepts GET as well as POST on the token endpoint, and one real client sends a GET
    // with a form body.
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", get(token_v2).post(token_v2))
        .route("/{tenant}/oauth2/token", get(token_v1).post(token_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration_v2),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(openid_configuration_v1),
        )
}

/// An OAuth2 error response (RFC 6749 §5.2) with Entra's extra fields.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    /// Entra's AADSTS number for the same failure, so clients that branch on it keep working.
    code: u32,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: String) -> Self {
        OAuthError {
            status,
            error,
            code,
            description,
        }
    }

    fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    fn unknown_tenant(tenant: &str, error: &'static str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            error,
            90002,
            format!(
                "Tenant '{tenant}' not found. Check that the tenant id is right: tenants are created by 'iocd apps create --tenant <id>'."
            ),
        )
    }

    fn into_response(self, headers: &HeaderMap) -> Response {
        let trace_id = headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        // Entra echoes the client's correlation id, or makes one up.
        let correlation_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| uuid::Uuid::parse_str(v).is_ok())
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let body = json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {}", self.code, self.description),
            "error_codes": [self.code],
            "timestamp": iocd_domain::time::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        });
        let mut response = (self.status, no_store(), Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a 401 for client authentication carries a challenge.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"iocd\""),
            );
        }
        response.extensions_mut().insert(PassThroughError);
        response
    }
}

/// RFC 6749 §5.1: token responses must not be cached.
fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// The form fields of a token request, first occurrence of each.
#[derive(Default)]
struct TokenForm {
    fields: Vec<(String, String)>,
}

impl TokenForm {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }
}

/// Reads the form from the body whatever the method: some clients send a GET with a form body.
/// The query string is deliberately not read: secrets in URLs end up in logs.
fn parse_form(headers: &HeaderMap, body: &Bytes) -> Result<TokenForm, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.is_empty() && !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!(
                "The request body must be application/x-www-form-urlencoded, not '{content_type}'."
            ),
        ));
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body is not a valid form: {e}."),
        )
    })?;
    Ok(TokenForm { fields })
}

/// Client id and secret from HTTP Basic authentication (`client_secret_basic`), if sent.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

async fn token_v2(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    issue_token(&app, &tenant, &headers, &body, TokenVersion::V2)
        .await
        .unwrap_or_else(|e| e.into_response(&headers))
}

async fn token_v1(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    issue_token(&app, &tenant, &headers, &body, TokenVersion::V1)
        .await
        .unwrap_or_else(|e| e.into_response(&headers))
}

/// The resource (audience) a token is requested for: `scope=<resource>/.default` (v2) or
/// `resource=<resource>` (v1), matched against the accepted audiences ignoring a trailing `/`.
fn requested_audience(
    provider: &IdentityProvider,
    form: &TokenForm,
    version: TokenVersion,
) -> Result<String, OAuthError> {
    let resource = match version {
        TokenVersion::V2 => {
            let scope = form
                .get("scope")
                .ok_or_else(|| OAuthError::missing_parameter("scope"))?;
            // OpenID scopes may ride along; the client-credentials grant needs exactly one
            // `<resource>/.default`.
            let resources: Vec<&str> = scope
                .split_whitespace()
                .filter(|s| !matches!(*s, "openid" | "profile" | "email" | "offline_access"))
                .collect();
            match resources.as_slice() {
                [one] => one.strip_suffix("/.default").ok_or_else(|| {
                    OAuthError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        1002012,
                        format!("The provided value for scope {one} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI), for example https://api.securitycenter.microsoft.com/.default."),
                    )
                })?,
                _ => {
                    return Err(OAuthError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        70011,
                        format!("The provided value for the input parameter 'scope' is not valid: '{scope}'. Ask for one resource, for example scope=https://api.securitycenter.microsoft.com/.default."),
                    ))
                }
            }
        }
        TokenVersion::V1 => form
            .get("resource")
            .ok_or_else(|| OAuthError::missing_parameter("resource"))?,
    };
    let wanted = resource.trim_end_matches('/');
    provider
        .accepted_audiences()
        .iter()
        .find(|accepted| accepted.trim_end_matches('/').eq_ignore_ascii_case(wanted))
        .cloned()
        .ok_or_else(|| {
            OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {resource} was not found. Resources served here: {}.",
                    provider.accepted_audiences().join(", ")
                ),
            )
        })
}

async fn issue_token(
    app: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    body: &Bytes,
    version: TokenVersion,
) -> Result<Response, OAuthError> {
    let provider = &app.identity;
    let form = parse_form(headers, body)?;
    match form.get("grant_type") {
        None => return Err(OAuthError::missing_parameter("grant_type")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'. iocd supports only client_credentials."),
            ))
        }
    }
    if !provider
        .tenant_exists(tenant)
        .await
        .map_err(storage_error)?
    {
        return Err(OAuthError::unknown_tenant(tenant, "invalid_request"));
    }
    if form.get("client_assertion").is_some() {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "Certificate credentials (client_assertion) are not supported by iocd; send the app's client_secret.".to_string(),
        ));
    }
    let (client_id, client_secret) = match basic_credentials(headers) {
        Some(basic) => basic,
        None => (
            form.get("client_id")
                .ok_or_else(|| OAuthError::missing_parameter("client_id"))?
                .to_string(),
            form.get("client_secret")
                .ok_or_else(|| {
                    OAuthError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000218,
                        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_string(),
                    )
                })?
                .to_string(),
        ),
    };
    // Cheap checks first: an unknown resource costs no argon2 verification.
    let audience = requested_audience(provider, &form, version)?;
    let registration = match provider
        .authenticate_client(tenant, &client_id, &client_secret)
        .await
        .map_err(storage_error)?
    {
        Ok(registration) => registration,
        Err(ClientAuthError::UnknownApp) => {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700016,
                format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
            ))
        }
        Err(ClientAuthError::WrongSecret) => {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value of app '{client_id}'."),
            ))
        }
    };
    let issuer = match version {
        TokenVersion::V1 => provider.issuer_v1_template(),
        TokenVersion::V2 => provider.issuer_v2_template(),
    };
    let issued = provider
        .signing_key()
        .issue(&TokenClaimsInput {
            tenant_id: registration.tenant_id,
            client_id: registration.client_id,
            app_object_id: registration.object_id,
            app_display_name: Some(registration.display_name),
            roles: registration.roles,
            audience: audience.clone(),
            issuer,
            version,
            lifetime: provider.token_lifetime(),
        })
        .map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            server_error()
        })?;
    let body = match version {
        TokenVersion::V2 => json!({
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "ext_expires_in": issued.expires_in,
            "access_token": issued.access_token,
        }),
        // Entra's v1 endpoint writes its numbers as strings and adds the times and resource.
        TokenVersion::V1 => {
            let now = iocd_domain::time::now().timestamp();
            json!({
                "token_type": "Bearer",
                "expires_in": issued.expires_in.to_string(),
                "ext_expires_in": issued.expires_in.to_string(),
                "expires_on": (now + issued.expires_in as i64).to_string(),
                "not_before": now.to_string(),
                "resource": audience,
                "access_token": issued.access_token,
            })
        }
    };
    Ok((no_store(), Json(body)).into_response())
}

fn storage_error(e: iocd_store::StoreError) -> OAuthError {
    tracing::error!(error = %e, "storage failure at the token endpoint");
    server_error()
}

fn server_error() -> OAuthError {
    OAuthError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "temporarily_unavailable",
        50000,
        "There was an error issuing a token; retry the request.".to_string(),
    )
}

async fn known_tenant(app: &AppState, tenant: &str, headers: &HeaderMap) -> Result<(), Response> {
    match app.identity.tenant_exists(tenant).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            Err(OAuthError::unknown_tenant(tenant, "invalid_tenant").into_response(headers))
        }
        Err(e) => Err(storage_error(e).into_response(headers)),
    }
}

/// The public signing keys. One key signs for every tenant, so every tenant's document is the same.
async fn jwks(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = known_tenant(&app, &tenant, &headers).await {
        return refusal;
    }
    Json(app.identity.signing_key().jwks()).into_response()
}

async fn openid_configuration_v2(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let issuer = app.identity.issuer_v2_template();
    discovery_document(
        &app,
        &tenant,
        &headers,
        &issuer,
        "oauth2/v2.0/token",
        "discovery/v2.0/keys",
    )
    .await
}

async fn openid_configuration_v1(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let issuer = app.identity.issuer_v1_template();
    discovery_document(
        &app,
        &tenant,
        &headers,
        &issuer,
        "oauth2/token",
        "discovery/keys",
    )
    .await
}

/// The OpenID discovery document of one tenant for one token version: its issuer (the version's
/// template filled in) and the token and key endpoints under `{base}/{tenant}/`.
async fn discovery_document(
    app: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    issuer_template: &str,
    token_path: &str,
    keys_path: &str,
) -> Response {
    if let Err(refusal) = known_tenant(app, tenant, headers).await {
        return refusal;
    }
    let base = app.identity.issuer_base();
    let document: Value = iocd_auth::openid_configuration(
        &issuer_template.replace(iocd_auth::TENANT_ID_PLACEHOLDER, tenant),
        &format!("{base}/{tenant}/{token_path}"),
        &format!("{base}/{tenant}/{keys_path}"),
    );
    Json(document).into_response()
}
