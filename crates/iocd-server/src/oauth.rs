//! The identity-provider endpoints, shaped like Entra ID's so that real clients only change a host
//! name: the client-credentials token endpoint (v2 `scope=…/.default` and v1 `resource=`), the
//! JWKS and the OpenID discovery documents.
//!
//! Their errors are OAuth2's (`{"error":"invalid_client","error_description":…}`), not the
//! indicator API's envelope: a client's OAuth library reads them. Which requests get a token is
//! decided by the identity rules ([`iocd_identity::IdentityProvider::grant`]); this module reads
//! the form and writes the responses.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use iocd_auth::TokenVersion;
use iocd_identity::{GrantError, TokenRequest};
use serde_json::{json, Value};

use crate::error::{PassThroughError, REQUEST_ID};
use crate::extract::RequestOrigin;
use crate::transport::PeerAddr;
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
        .route("/common/discovery/instance", get(instance_discovery))
}

/// An OAuth2 error response (RFC 6749 §5.2) with Entra's extra fields.
struct OAuthError(GrantError);

impl From<GrantError> for OAuthError {
    fn from(error: GrantError) -> Self {
        OAuthError(error)
    }
}

impl OAuthError {
    fn status(&self) -> StatusCode {
        if self.0.retry_after_secs.is_some() {
            StatusCode::TOO_MANY_REQUESTS
        } else if self.0.is_client_authentication_failure() {
            StatusCode::UNAUTHORIZED
        } else if self.0.is_server_failure() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        }
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
        let status = self.status();
        let GrantError {
            error,
            code,
            description,
            retry_after_secs,
        } = self.0;
        let body = json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "timestamp": iocd_domain::time::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        });
        let mut response = (status, no_store(), Json(body)).into_response();
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
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

/// Reads the form from the body whatever the method: some clients send a GET with a form body.
/// The query string is deliberately not read: secrets in URLs end up in logs.
pub(crate) fn parse_form(
    headers: &HeaderMap,
    body: &Bytes,
    origin: &RequestOrigin,
    peer: Option<PeerAddr>,
) -> Result<TokenRequest, GrantError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.is_empty() && !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(GrantError::new(
            "invalid_request",
            900144,
            format!(
                "The request body must be application/x-www-form-urlencoded, not '{content_type}'."
            ),
        ));
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
        GrantError::new(
            "invalid_request",
            900144,
            format!("The request body is not a valid form: {e}."),
        )
    })?;
    Ok(TokenRequest {
        fields,
        basic_credentials: basic_credentials(headers),
        host: origin.host.clone(),
        origin: origin.url.clone(),
        client_address: peer.map(|PeerAddr(addr)| addr.ip().to_string()),
    })
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
    origin: RequestOrigin,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(peer)| peer);
    issue_token(
        &app,
        &tenant,
        &origin,
        peer,
        &headers,
        &body,
        TokenVersion::V2,
    )
    .await
    .unwrap_or_else(|e| e.into_response(&headers))
}

async fn token_v1(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    origin: RequestOrigin,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(peer)| peer);
    issue_token(
        &app,
        &tenant,
        &origin,
        peer,
        &headers,
        &body,
        TokenVersion::V1,
    )
    .await
    .unwrap_or_else(|e| e.into_response(&headers))
}

/// An OAuth2 error as the token and device-code endpoints answer it.
pub(crate) fn oauth_error_response(error: GrantError, headers: &HeaderMap) -> Response {
    OAuthError(error).into_response(headers)
}

async fn issue_token(
    app: &AppState,
    tenant: &str,
    origin: &RequestOrigin,
    peer: Option<PeerAddr>,
    headers: &HeaderMap,
    body: &Bytes,
    version: TokenVersion,
) -> Result<Response, OAuthError> {
    let request = parse_form(headers, body, origin, peer).inspect_err(|e| {
        app.metrics.token_failed(e.error, e.code);
    })?;
    let grant_type = request
        .fields
        .iter()
        .find(|(k, _)| k == "grant_type")
        .map_or("", |(_, v)| v.as_str());
    let response = match app.identity.token(tenant, version, &request).await {
        Ok(response) => {
            app.metrics.token_issued(grant_type);
            response
        }
        Err(e) => {
            app.metrics.token_failed(e.error, e.code);
            return Err(e.into());
        }
    };
    let granted = &response.granted;
    let mut body = match version {
        TokenVersion::V2 => json!({
            "token_type": "Bearer",
            "expires_in": granted.expires_in,
            "ext_expires_in": granted.expires_in,
            "access_token": granted.access_token,
        }),
        // Entra's v1 endpoint writes its numbers as strings and adds the times and resource.
        TokenVersion::V1 => {
            let now = iocd_domain::time::now().timestamp();
            json!({
                "token_type": "Bearer",
                "expires_in": granted.expires_in.to_string(),
                "ext_expires_in": granted.expires_in.to_string(),
                "expires_on": (now + granted.expires_in as i64).to_string(),
                "not_before": now.to_string(),
                "resource": granted.audience,
                "access_token": granted.access_token,
            })
        }
    };
    // Delegated grants add what a signed-in session needs.
    for (name, value) in [
        ("scope", &response.scope),
        ("refresh_token", &response.refresh_token),
        ("id_token", &response.id_token),
        ("client_info", &response.client_info),
    ] {
        if let Some(value) = value {
            body[name] = json!(value);
        }
    }
    Ok((no_store(), Json(body)).into_response())
}

/// The id of the tenant the URL names (by id or domain alias), or the OAuth2 refusal.
async fn known_tenant(
    app: &AppState,
    tenant: &str,
    headers: &HeaderMap,
) -> Result<String, Response> {
    app.identity
        .require_tenant(tenant, "invalid_tenant")
        .await
        .map_err(|e| OAuthError(e).into_response(headers))
}

/// The public signing keys: the active one and any rotated-out key whose tokens may still be
/// valid. One key ring signs for every tenant, so every tenant's document is the same.
async fn jwks(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = known_tenant(&app, &tenant, &headers).await {
        return refusal;
    }
    Json(app.identity.current_key_ring().await.jwks()).into_response()
}

async fn openid_configuration_v2(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    origin: RequestOrigin,
    headers: HeaderMap,
) -> Response {
    discovery_document(
        &app,
        &tenant,
        &headers,
        &origin,
        TokenVersion::V2,
        "oauth2/v2.0/token",
        "discovery/v2.0/keys",
    )
    .await
}

async fn openid_configuration_v1(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    origin: RequestOrigin,
    headers: HeaderMap,
) -> Response {
    discovery_document(
        &app,
        &tenant,
        &headers,
        &origin,
        TokenVersion::V1,
        "oauth2/token",
        "discovery/keys",
    )
    .await
}

/// The OpenID discovery document of one tenant for one token version: the issuer its token
/// endpoint writes, and the token and key endpoints under the scheme and host the client called.
async fn discovery_document(
    app: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    origin: &RequestOrigin,
    version: TokenVersion,
    token_path: &str,
    keys_path: &str,
) -> Response {
    // Named by an alias, the document names the tenant by its id, as Entra's does.
    let tenant = match known_tenant(app, tenant, headers).await {
        Ok(tenant_id) => tenant_id,
        Err(refusal) => return refusal,
    };
    let tenant = tenant.as_str();
    let base = &origin.url;
    let issuer = app.identity.issuer_template(version, &origin.host);
    let document: Value = iocd_auth::openid_configuration(
        &issuer.replace(iocd_auth::TENANT_ID_PLACEHOLDER, tenant),
        &format!("{base}/{tenant}/{token_path}"),
        &format!("{base}/{tenant}/{keys_path}"),
    );
    Json(document).into_response()
}

/// MSAL's instance discovery (`/common/discovery/instance?authorization_endpoint=…`): where the
/// tenant of that authorization endpoint keeps its discovery document, on the host called.
/// MSAL also calls it after a failed token request, so a 404 here would hide the AADSTS error.
async fn instance_discovery(
    origin: RequestOrigin,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let endpoint = query
        .get("authorization_endpoint")
        .map(String::as_str)
        .unwrap_or("");
    let path = endpoint.split_once("://").map_or(endpoint, |(_, rest)| {
        rest.split_once('/').map_or("", |(_, p)| p)
    });
    let tenant = path
        .split('/')
        .next()
        .filter(|t| !t.is_empty())
        .unwrap_or("common");
    let document = if path.contains("/v2.0/") || path.is_empty() {
        format!("/{tenant}/v2.0/.well-known/openid-configuration")
    } else {
        format!("/{tenant}/.well-known/openid-configuration")
    };
    Json(iocd_auth::entra::instance_discovery(&origin.url, &document)).into_response()
}
