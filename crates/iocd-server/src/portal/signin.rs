//! Signing in to the portal, as an OAuth client of iocd's own identity service: the portal sends
//! the browser to the tenant's authorization endpoint (code flow, PKCE S256) with its built-in
//! public client (`iocd_identity::ensure_portal_client`), takes the code at `/portal/callback`,
//! redeems it in-process through the token endpoint's own rules (`IdentityProvider::token`), and
//! keeps the tokens in the session, refreshing the access token with the refresh token.

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use iocd_auth::TokenVersion;
use iocd_identity::{
    ensure_portal_client, Caller, RegisterError, TokenRequest, TokenResponse, PORTAL_CALLBACK_PATH,
};
use maud::html;
use serde::Deserialize;
use sha2::Digest as _;

use super::session::{
    cookie, random_token, same_secret, set_cookie, Session, Tokens, SESSION_COOKIE, SIGN_IN_COOKIE,
    TENANT_COOKIE,
};
use super::SignedForm;
use crate::extract::RequestOrigin;
use crate::html::{self, Shell};
use crate::AppState;

/// Refresh the access token this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The session is over (its tokens are refused and cannot be refreshed): sign in again.
pub(crate) struct SessionEnded;

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default, rename = "return")]
    return_to: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
}

/// Only portal pages are places to return to (never another site).
fn safe_return(return_to: Option<&str>) -> String {
    match return_to {
        Some(path)
            if path.starts_with("/portal")
                && !path.starts_with("/portal/signin")
                && !path.starts_with("/portal/callback")
                && !path.contains("//")
                && !path.contains('\\') =>
        {
            path.to_string()
        }
        _ => "/portal/indicators".to_string(),
    }
}

fn card(status: StatusCode, title: &str, body: maud::Markup) -> Response {
    html::page_response(
        status,
        html::PORTAL_CSP,
        html::document(title, Shell::Card, body),
    )
}

/// The sign-in page: which tenant to sign in to. With `?tenant=` it goes straight on.
pub(crate) async fn sign_in_page(
    State(app): State<AppState>,
    origin: RequestOrigin,
    Query(query): Query<SignInQuery>,
    headers: HeaderMap,
) -> Response {
    let return_to = safe_return(query.return_to.as_deref());
    let remembered = cookie(&headers, TENANT_COOKIE);
    if let Some(tenant) = query.tenant.as_deref().filter(|t| !t.trim().is_empty()) {
        return begin(&app, &origin, tenant.trim(), &return_to).await;
    }
    sign_in_form(
        StatusCode::OK,
        remembered.as_deref().unwrap_or(""),
        &return_to,
        query.signed_out.is_some().then_some("You have signed out."),
        None,
    )
}

fn sign_in_form(
    status: StatusCode,
    tenant: &str,
    return_to: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    card(
        status,
        "Sign in to the iocd portal",
        html! {
            @if let Some(notice) = notice {
                p.ok role="status" { (notice) }
            }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            p.muted { "You sign in with your iocd user account, on your tenant's sign-in page." }
            form method="get" action="/portal/signin/start" {
                input type="hidden" name="return" value=(return_to);
                label for="tenant" { "Tenant (id or domain)" }
                input #tenant type="text" name="tenant" value=(tenant) required autofocus
                    placeholder="contoso.onmicrosoft.com";
                button type="submit" { "Continue" }
            }
            p.muted {
                "No account yet? An administrator creates one with "
                code { "iocd users create" } "."
            }
        },
    )
}

/// Starts a sign-in (the form's target).
pub(crate) async fn start(
    State(app): State<AppState>,
    origin: RequestOrigin,
    Query(query): Query<SignInQuery>,
) -> Response {
    let return_to = safe_return(query.return_to.as_deref());
    let tenant = query.tenant.unwrap_or_default();
    if tenant.trim().is_empty() {
        return sign_in_form(
            StatusCode::BAD_REQUEST,
            "",
            &return_to,
            None,
            Some("Enter the tenant to sign in to."),
        );
    }
    begin(&app, &origin, tenant.trim(), &return_to).await
}

/// The portal client of the tenant, the PKCE pair and the state; then off to the sign-in page.
async fn begin(app: &AppState, origin: &RequestOrigin, tenant: &str, return_to: &str) -> Response {
    let tenant_id = match app.identity.resolve_tenant(tenant).await {
        Ok(Some(tenant_id)) => tenant_id,
        Ok(None) => {
            return sign_in_form(
                StatusCode::NOT_FOUND,
                tenant,
                return_to,
                None,
                Some("This server has no such tenant. Check the tenant id or domain."),
            )
        }
        Err(e) => return unavailable(&e.to_string()),
    };
    let client_id = match ensure_portal_client(app.identity.store().as_ref(), &tenant_id).await {
        Ok(client_id) => client_id,
        Err(RegisterError::Invalid(why)) => {
            return sign_in_form(StatusCode::BAD_REQUEST, tenant, return_to, None, Some(&why))
        }
        Err(e) => return unavailable(&e.to_string()),
    };
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let redirect_uri = format!("{}{PORTAL_CALLBACK_PATH}", origin.url);
    let state =
        app.portal
            .start_sign_in(&tenant_id, &client_id, &verifier, &redirect_uri, return_to);
    let scope = format!("{} openid profile offline_access", portal_scope(app));
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &scope)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let secure = origin.url.starts_with("https://");
    let mut response =
        Redirect::to(&format!("/{tenant_id}/oauth2/v2.0/authorize?{query}")).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, &state, secure, Some(600)),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(TENANT_COOKIE, tenant, secure, Some(365 * 24 * 3600)),
    );
    response
}

/// The delegated permission the portal asks for, on the first audience this server accepts.
fn portal_scope(app: &AppState) -> String {
    let audience = app
        .identity
        .accepted_audiences()
        .first()
        .map_or("https://api.securitycenter.microsoft.com", String::as_str)
        .trim_end_matches('/')
        .to_string();
    format!("{audience}/{}", iocd_identity::DELEGATED_PERMISSION)
}

fn unavailable(reason: &str) -> Response {
    tracing::error!(%reason, "portal sign-in failed");
    card(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        html! { p { "The server could not start the sign-in. Try again in a moment." } },
    )
}

#[derive(Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The sign-in page sends the browser back here with a code (or an error).
pub(crate) async fn callback(
    State(app): State<AppState>,
    origin: RequestOrigin,
    Query(callback): Query<Callback>,
    headers: HeaderMap,
) -> Response {
    let secure = origin.url.starts_with("https://");
    let failed = |why: &str| {
        let mut response = card(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            html! {
                p.error role="alert" { (why) }
                p { a href="/portal/signin" { "Sign in again" } }
            },
        );
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(SIGN_IN_COOKIE, "", secure, Some(0)),
        );
        response
    };
    let state = callback.state.unwrap_or_default();
    // The state must be the one this browser started with (its cookie): a code obtained by
    // someone else cannot be slipped into this browser's session.
    let started_here = cookie(&headers, SIGN_IN_COOKIE).is_some_and(|c| same_secret(&c, &state));
    let pending = if started_here {
        app.portal.finish_sign_in(&state)
    } else {
        None
    };
    let Some(pending) = pending else {
        return failed(
            "This sign-in was not started in this browser, or took too long. Start again.",
        );
    };
    if let Some(error) = callback.error {
        return failed(&format!(
            "{error}: {}",
            callback.error_description.unwrap_or_default()
        ));
    }
    let Some(code) = callback.code else {
        return failed("The sign-in page sent no code.");
    };
    let request = token_request(
        &origin,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &pending.client_id),
            ("code", &code),
            ("redirect_uri", &pending.redirect_uri),
            ("code_verifier", &pending.code_verifier),
        ],
    );
    let granted = match app
        .identity
        .token(&pending.tenant_id, TokenVersion::V2, &request)
        .await
    {
        Ok(granted) => granted,
        Err(error) => {
            return failed(&format!("AADSTS{}: {}", error.code, error.description));
        }
    };
    let id = app
        .portal
        .create(&pending.tenant_id, &pending.client_id, tokens_of(&granted));
    let mut response = Redirect::to(&pending.return_to).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, secure, None),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, "", secure, Some(0)),
    );
    response
}

fn token_request(origin: &RequestOrigin, fields: &[(&str, &str)]) -> TokenRequest {
    TokenRequest {
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        basic_credentials: None,
        host: origin.host.clone(),
        origin: origin.url.clone(),
        client_address: None,
    }
}

fn tokens_of(granted: &TokenResponse) -> Tokens {
    Tokens {
        access_token: granted.granted.access_token.clone(),
        refresh_token: granted.refresh_token.clone(),
        expires_at: Instant::now() + Duration::from_secs(granted.granted.expires_in),
    }
}

/// The caller the session's access token makes, refreshing the token first when it is about
/// to expire. The token is checked by the server's own authenticator, as an API call's is.
pub(crate) async fn session_caller(
    app: &AppState,
    session: &Session,
    origin: &RequestOrigin,
) -> Result<Caller, SessionEnded> {
    let mut tokens = session.tokens.lock().await;
    if tokens.expires_at <= Instant::now() + REFRESH_MARGIN {
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            return Err(SessionEnded);
        };
        let request = token_request(
            origin,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &session.client_id),
                ("refresh_token", &refresh_token),
            ],
        );
        match app
            .identity
            .token(&session.tenant_id, TokenVersion::V2, &request)
            .await
        {
            Ok(granted) => *tokens = tokens_of(&granted),
            Err(error) => {
                tracing::info!(code = error.code, "a portal session could not be refreshed");
                return Err(SessionEnded);
            }
        }
    }
    let mut parts = axum::http::Request::new(()).into_parts().0;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", tokens.access_token))
        .map_err(|_| SessionEnded)?;
    parts.headers.insert(header::AUTHORIZATION, bearer);
    drop(tokens);
    app.authenticator
        .authenticate(&parts)
        .await
        .map_err(|_| SessionEnded)
}

/// Ends the session (the form in the header).
pub(crate) async fn sign_out(State(app): State<AppState>, form: SignedForm) -> Response {
    let secure = form.signed.secure();
    app.portal.end(&form.signed.session_id);
    let mut response = Redirect::to("/portal/signin?signed_out=1").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", secure, Some(0)),
    );
    response
}
