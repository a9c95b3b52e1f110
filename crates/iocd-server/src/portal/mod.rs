//! The web portal at `/portal`: server-rendered pages (maud) for people, over the same domain,
//! store and identity rules as the API. It is an OAuth client of iocd's own identity service
//! (authorization code with PKCE through the sign-in page, `signin.rs`), keeps the tokens in a
//! server-side session (`session.rs`) and acts with the signed-in user's delegated rights, so a
//! user without the manage role sees everything read-only.
//!
//! Every page works without JavaScript; `assets/portal.js` only enhances. Every response carries
//! a Content-Security-Policy without inline script, and every form a CSRF token that each POST
//! must return (403 otherwise).
//!
//! Handlers are thin: they extract the session (`Signed`), call the store, the domain or
//! `iocd_identity` once, and render.

mod admin;
mod detail;
mod forms;
mod indicators;
mod observe;
mod session;
mod signin;
mod transfer;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use iocd_identity::{Caller, Role, READ_ROLES, WRITE_ROLES};
use maud::{html, Markup};

pub use session::Sessions;
use session::{cookie, same_secret, Session, SESSION_COOKIE};

use crate::extract::RequestOrigin;
use crate::html::{self, Shell};
use crate::AppState;

/// The portal's routes, all under `/portal`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/portal",
            get(|| async { Redirect::to("/portal/indicators") }),
        )
        .route(
            "/portal/assets/iocd.css",
            get(|| async { html::asset("text/css; charset=utf-8", html::STYLESHEET) }),
        )
        .route(
            "/portal/assets/portal.js",
            get(|| async { html::asset("text/javascript; charset=utf-8", html::SCRIPT) }),
        )
        .route("/portal/signin", get(signin::sign_in_page))
        .route("/portal/signin/start", get(signin::start))
        .route("/portal/callback", get(signin::callback))
        .route("/portal/signout", post(signin::sign_out))
        .route("/portal/indicators", get(indicators::list))
        .route(
            "/portal/indicators/new",
            get(forms::new_form).post(forms::create),
        )
        .route("/portal/indicators/delete", post(forms::delete_selected))
        .route("/portal/indicators/{id}", get(detail::show))
        .route(
            "/portal/indicators/{id}/edit",
            get(forms::edit_form).post(forms::update),
        )
        .route("/portal/indicators/{id}/delete", post(forms::delete_one))
        .route(
            "/portal/import",
            get(transfer::import_form).post(transfer::import),
        )
        .route("/portal/import/{number}", get(transfer::import_report))
        .route("/portal/export", get(transfer::export))
        .route("/portal/match", get(observe::test_observable))
        .route("/portal/admin", get(admin::show))
        .route("/portal/admin/apps", post(admin::create_app))
        .route(
            "/portal/admin/apps/{client_id}/roles",
            post(admin::app_roles),
        )
        .route(
            "/portal/admin/apps/{client_id}/delete",
            post(admin::delete_app),
        )
        .route("/portal/admin/users", post(admin::create_user_form))
        .route("/portal/admin/users/{upn}/roles", post(admin::user_roles))
        .route("/portal/admin/users/{upn}/delete", post(admin::delete_user))
}

/// The signed-in person of a portal request: their session and what they may do (the caller
/// their delegated token makes). Without a live session, a page request is sent to sign in.
pub(crate) struct Signed {
    pub session_id: String,
    pub session: Arc<Session>,
    pub caller: Caller,
    pub origin: RequestOrigin,
}

impl Signed {
    /// Whether the user may create, change and delete indicators (the manage role).
    pub fn can_manage(&self) -> bool {
        self.caller.require(WRITE_ROLES).is_ok()
    }

    /// Whether the user is an iocd administrator.
    pub fn is_admin(&self) -> bool {
        self.caller.roles.contains(&Role::IocdAdmin)
    }

    /// Whether the user may read indicators at all.
    pub fn can_read(&self) -> bool {
        self.caller.require(READ_ROLES).is_ok()
    }

    pub fn secure(&self) -> bool {
        self.origin.url.starts_with("https://")
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.session.csrf); }
    }

    /// The user's name, as the header shows it.
    fn name(&self) -> &str {
        self.caller
            .user
            .as_ref()
            .map_or(&self.caller.display_name, |u| &u.name)
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let origin = RequestOrigin::of(parts, app.config.public_url.as_deref());
        // After signing in, a page request comes back to where it was going.
        let return_to = if parts.method == Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or("/portal".to_string(), |pq| pq.as_str().to_string())
        } else {
            "/portal".to_string()
        };
        let to_sign_in = || {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("return", &return_to)
                .finish();
            Redirect::to(&format!("/portal/signin?{query}")).into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let Some(session) = app.portal.get(&id) else {
            return Err(to_sign_in());
        };
        match signin::session_caller(app, &session, &origin).await {
            Ok(caller) => Ok(Signed {
                session_id: id,
                session,
                caller,
                origin,
            }),
            Err(signin::SessionEnded) => {
                app.portal.end(&id);
                Err(to_sign_in())
            }
        }
    }
}

/// A form POST of a signed-in user, its CSRF token checked: the fields, form-decoded. A POST
/// without the session's token is refused with 403 and changes nothing.
pub(crate) struct SignedForm {
    pub signed: Signed,
    pub fields: Vec<(String, String)>,
}

impl SignedForm {
    /// A field's value (the first, if repeated); empty when absent.
    pub fn get(&self, name: &str) -> &str {
        field(&self.fields, name)
    }

    /// Every value of a repeated field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

impl FromRequest<AppState> for SignedForm {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, app).await?;
        let request = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(request, app)
            .await
            .map_err(|rejection| {
                message_page(
                    &signed,
                    rejection.status(),
                    "The form could not be read",
                    html! { p { (rejection.body_text()) } },
                )
            })?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        if !same_secret(field(&fields, "csrf"), &signed.session.csrf) {
            return Err(csrf_refusal(&signed));
        }
        Ok(SignedForm { signed, fields })
    }
}

/// The answer to a POST without this session's CSRF token.
pub(crate) fn csrf_refusal(signed: &Signed) -> Response {
    message_page(
        signed,
        StatusCode::FORBIDDEN,
        "Request refused",
        html! {
            p { "This form did not carry the security token of your session (CSRF protection), so nothing was changed." }
            p { "Go back, reload the page and submit the form again." }
        },
    )
}

/// A portal page for a signed-in user: the header, then `body`.
pub(crate) fn page(signed: &Signed, section: Section, title: &str, body: Markup) -> Response {
    page_with_status(signed, StatusCode::OK, section, title, body)
}

pub(crate) fn page_with_status(
    signed: &Signed,
    status: StatusCode,
    section: Section,
    title: &str,
    body: Markup,
) -> Response {
    html::page_response(
        status,
        html::PORTAL_CSP,
        html::document(
            title,
            Shell::App {
                header: header_bar(signed, section),
            },
            body,
        ),
    )
}

/// A page that says one thing (a refusal, a missing indicator).
pub(crate) fn message_page(
    signed: &Signed,
    status: StatusCode,
    title: &str,
    body: Markup,
) -> Response {
    page_with_status(
        signed,
        status,
        Section::None,
        title,
        html! { h1 { (title) } (body) },
    )
}

/// Which part of the portal a page belongs to (the header marks it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Indicators,
    Import,
    Match,
    Admin,
    None,
}

fn header_bar(signed: &Signed, section: Section) -> Markup {
    let current = |s: Section| (s == section).then_some("page");
    html! {
        header.topbar {
            a.brand href="/portal" { "iocd" }
            nav aria-label="Portal" {
                a href="/portal/indicators" aria-current=[current(Section::Indicators)] { "Indicators" }
                @if signed.can_manage() {
                    a href="/portal/import" aria-current=[current(Section::Import)] { "Import" }
                }
                a href="/portal/match" aria-current=[current(Section::Match)] { "Test an observable" }
                @if signed.is_admin() {
                    a href="/portal/admin" aria-current=[current(Section::Admin)] { "Admin" }
                }
            }
            div.who {
                span title=(signed.caller.tenant_id) { (signed.name()) }
                form method="post" action="/portal/signout" {
                    (signed.csrf_field())
                    button type="submit" { "Sign out" }
                }
            }
        }
    }
}

/// A redirect after a POST: the browser GETs `location` (303).
pub(crate) fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}
