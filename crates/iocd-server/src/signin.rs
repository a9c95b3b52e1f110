//! The sign-in pages and endpoints of the delegated flows, shaped like Entra's: the
//! authorization endpoint (`/{tenant}/oauth2/v2.0/authorize`, v1 `/{tenant}/oauth2/authorize`)
//! with iocd's own sign-in form, the device-authorization endpoint (`…/devicecode`) and the
//! device-login page (`/devicelogin`) where a person approves a device code.
//!
//! The pages are plain HTML forms (fields `username`, `password`, `code`) that work without
//! JavaScript, rendered with maud so every value is escaped. The rules (who may sign in, which
//! redirect URIs are allowed, what a code is worth) are in `iocd_identity`.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use iocd_auth::TokenVersion;
use iocd_identity::{AuthorizationRequest, GrantError};
use maud::{html, Markup};
use serde_json::json;

use crate::extract::RequestOrigin;
use crate::html;
use crate::oauth::{oauth_error_response, parse_form};
use crate::transport::PeerAddr;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(authorize_page).post(authorize_submit),
        )
        .route(
            "/{tenant}/oauth2/authorize",
            get(authorize_page).post(authorize_submit),
        )
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            axum::routing::post(device_code_v2),
        )
        .route(
            "/{tenant}/oauth2/devicecode",
            axum::routing::post(device_code_v1),
        )
        .route(
            "/devicelogin",
            get(device_login_page).post(device_login_submit),
        )
        .route("/common/userrealm/{username}", get(user_realm))
}

/// Entra's home-realm discovery, which MSAL asks before a password sign-in: every iocd account
/// is a managed (cloud) one, never federated, so MSAL goes on with the password grant.
async fn user_realm(Path(username): Path<String>) -> Response {
    let domain = username.rsplit_once('@').map_or("", |(_, d)| d).to_string();
    Json(json!({
        "ver": "1.0",
        "account_type": "Managed",
        "domain_name": domain,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_audience_urn": "urn:federation:MicrosoftOnline",
    }))
    .into_response()
}

/// The caller's IP address, as the transport recorded it ([`PeerAddr`]): the key of the
/// per-address limit on wrong passwords. Empty when unknown (then only the per-user limit
/// applies).
pub(crate) struct SourceAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(SourceAddress(
            parts
                .extensions
                .get::<PeerAddr>()
                .map(|PeerAddr(addr)| addr.ip().to_string())
                .unwrap_or_default(),
        ))
    }
}

/// Sign-in pages must not be framed (clickjacking), cached, or run any script.
fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    html::page_response(
        status,
        html::SIGN_IN_CSP,
        html::document(title, html::Shell::Card, body),
    )
}

fn error_page(error: &GrantError) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Sign-in failed",
        html! {
            p.error { "AADSTS" (error.code) ": " (error.description) }
        },
    )
}

fn form_value(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .filter(|value| !value.is_empty())
}

fn authorization_request(
    fields: &[(String, String)],
    origin: &RequestOrigin,
) -> AuthorizationRequest {
    AuthorizationRequest {
        served_origin: origin.url.clone(),
        client_id: form_value(fields, "client_id").unwrap_or_default(),
        redirect_uri: form_value(fields, "redirect_uri").unwrap_or_default(),
        response_type: form_value(fields, "response_type").unwrap_or_default(),
        scope: form_value(fields, "scope").unwrap_or_default(),
        state: form_value(fields, "state"),
        nonce: form_value(fields, "nonce"),
        code_challenge: form_value(fields, "code_challenge"),
        code_challenge_method: form_value(fields, "code_challenge_method"),
    }
}

/// The authorization request in `fields` and the app it names, once the identity service has
/// checked them; a request it refuses is answered with an error page, never a redirect (the
/// redirect URI is not trusted yet).
async fn checked_request(
    app: &AppState,
    tenant: &str,
    fields: &[(String, String)],
    origin: &RequestOrigin,
) -> Result<(AuthorizationRequest, iocd_store::AppRegistration), Response> {
    let request = authorization_request(fields, origin);
    match app
        .identity
        .check_authorization_request(tenant, &request)
        .await
    {
        Ok(registered) => Ok((request, registered)),
        Err(refusal) => Err(error_page(&refusal.0)),
    }
}

/// The parameters the sign-in form carries from the authorization request to its submission.
const CARRIED: [&str; 8] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

fn sign_in_form(
    action: &str,
    app_name: &str,
    hidden: &[(String, String)],
    username: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        p.muted { "Sign in to continue to " strong { (app_name) } "." }
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form method="post" action=(action) {
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            label for="username" { "User name" }
            input #username type="email" name="username" value=(username) autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
    }
}

async fn authorize_page(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    origin: RequestOrigin,
    uri: axum::http::Uri,
) -> Response {
    let fields: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let (_, registered) = match checked_request(&app, &tenant, &fields, &origin).await {
        Ok(checked) => checked,
        Err(refused) => return refused,
    };
    let hidden = carried(&fields);
    page(
        StatusCode::OK,
        "Sign in",
        sign_in_form(uri.path(), &registered.display_name, &hidden, "", None),
    )
}

fn carried(fields: &[(String, String)]) -> Vec<(String, String)> {
    CARRIED
        .iter()
        .filter_map(|name| form_value(fields, name).map(|value| (name.to_string(), value)))
        .collect()
}

async fn authorize_submit(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    SourceAddress(source): SourceAddress,
    origin: RequestOrigin,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let (request, registered) = match checked_request(&app, &tenant, &fields, &origin).await {
        Ok(checked) => checked,
        Err(refused) => return refused,
    };
    let username = form_value(&fields, "username").unwrap_or_default();
    let password = form_value(&fields, "password").unwrap_or_default();
    let redirect_with = |params: Vec<(&str, String)>| -> Response {
        let mut target = url::Url::parse(&request.redirect_uri)
            .expect("a redirect URI that passed the registration check parses");
        {
            let mut query = target.query_pairs_mut();
            for (key, value) in params {
                query.append_pair(key, &value);
            }
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
        }
        // 302, as Entra answers: the browser follows it with a GET.
        (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
    };
    match app
        .identity
        .authorize(&tenant, &request, &username, &password, &source)
        .await
    {
        Ok(code) => redirect_with(vec![("code", code)]),
        // Everything but a wrong password is the client's to handle, at its redirect URI.
        Err(error) => sign_in_again(&error, |message| {
            sign_in_form(
                uri.path(),
                &registered.display_name,
                &carried(&fields),
                &username,
                Some(message),
            )
        })
        .unwrap_or_else(|| {
            if error.is_server_failure() {
                error_page(&error)
            } else {
                redirect_with(vec![
                    ("error", error.error.to_string()),
                    (
                        "error_description",
                        format!("AADSTS{}: {}", error.code, error.description),
                    ),
                ])
            }
        }),
    }
}

/// A wrong password, or a sign-in locked after too many, shows the sign-in form (`form`, given
/// the message) again, with the same words whether or not the user exists; `None` for every
/// other refusal.
fn sign_in_again(error: &GrantError, form: impl FnOnce(&str) -> Markup) -> Option<Response> {
    let message = match error.code {
        50126 => "Your account or password is incorrect.",
        50053 => error.description.as_str(),
        _ => return None,
    };
    Some(page(StatusCode::OK, "Sign in", form(message)))
}

async fn device_code_v2(
    state: State<AppState>,
    path: Path<String>,
    origin: RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    device_code(state, path, origin, headers, body, TokenVersion::V2).await
}

async fn device_code_v1(
    state: State<AppState>,
    path: Path<String>,
    origin: RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    device_code(state, path, origin, headers, body, TokenVersion::V1).await
}

/// Starts a device-code sign-in: the codes and where the person should go, in Entra's shape
/// (v1 names the page `verification_url`, v2 `verification_uri`).
async fn device_code(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    origin: RequestOrigin,
    headers: HeaderMap,
    body: Bytes,
    version: TokenVersion,
) -> Response {
    let started = match parse_form(&headers, &body, &origin, None) {
        Ok(request) => {
            app.identity
                .start_device_authorization(&tenant, version, &request)
                .await
        }
        Err(error) => Err(error),
    };
    let started = match started {
        Ok(started) => started,
        Err(error) => return oauth_error_response(error, &headers),
    };
    let page_url = format!("{}/devicelogin", origin.url);
    let message = format!(
        "To sign in, use a web browser to open the page {page_url} and enter the code {} to authenticate.",
        started.user_code
    );
    let page_key = match version {
        TokenVersion::V1 => "verification_url",
        TokenVersion::V2 => "verification_uri",
    };
    let mut body = json!({
        "user_code": started.user_code,
        "device_code": started.device_code,
        "expires_in": started.expires_in,
        "interval": started.interval,
        "message": message,
    });
    body[page_key] = json!(page_url);
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

fn code_form(error: Option<&str>) -> Response {
    page(
        StatusCode::OK,
        "Enter code",
        html! {
            p.muted { "Enter the code displayed on your app or device." }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/devicelogin" {
                label for="code" { "Code" }
                input #code type="text" name="code" autocomplete="off" required autofocus;
                button type="submit" { "Next" }
            }
        },
    )
}

async fn device_login_page() -> Response {
    code_form(None)
}

/// The device-login form in its steps: a code alone shows the sign-in form for that code's app;
/// a code with a user name and password approves it; `decision=deny` declines it.
async fn device_login_submit(
    State(app): State<AppState>,
    SourceAddress(source): SourceAddress,
    body: Bytes,
) -> Response {
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let code = form_value(&fields, "code").unwrap_or_default();
    let registered = match app.identity.device_code_app(&code).await {
        Ok(Some(registered)) => registered,
        Ok(None) => return code_form(Some(
            "That code is not valid or has expired. Check the code on your device and try again.",
        )),
        Err(error) => return error_page(&error),
    };
    let hidden = vec![("code".to_string(), code.clone())];
    if form_value(&fields, "decision").as_deref() == Some("deny") {
        return match app.identity.decide_device_code(&code, None, &source).await {
            Ok(name) => page(
                StatusCode::OK,
                "Sign-in declined",
                html! { p { "You declined to sign in to " strong { (name) } " on your device." } },
            ),
            Err(error) => error_page(&error),
        };
    }
    let (Some(username), Some(password)) = (
        form_value(&fields, "username"),
        form_value(&fields, "password"),
    ) else {
        return page(
            StatusCode::OK,
            "Sign in",
            html! {
                (sign_in_form("/devicelogin", &registered.display_name, &hidden, "", None))
                (deny_form(&code))
            },
        );
    };
    match app
        .identity
        .decide_device_code(&code, Some((&username, &password)), &source)
        .await
    {
        Ok(name) => page(
            StatusCode::OK,
            "You're signed in",
            html! {
                p { "You have signed in to " strong { (name) } " on your device. You may now close this window." }
            },
        ),
        Err(error) => sign_in_again(&error, |message| {
            html! {
                (sign_in_form("/devicelogin", &registered.display_name, &hidden, &username, Some(message)))
                (deny_form(&code))
            }
        })
        .unwrap_or_else(|| error_page(&error)),
    }
}

fn deny_form(code: &str) -> Markup {
    html! {
        form method="post" action="/devicelogin" {
            input type="hidden" name="code" value=(code);
            input type="hidden" name="decision" value="deny";
            button type="submit" { "Cancel sign-in" }
        }
    }
}
