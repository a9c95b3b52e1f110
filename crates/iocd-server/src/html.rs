//! The one page layout of iocd's HTML (the sign-in pages and the portal): the document shell,
//! the stylesheet and script served from the binary, and the security headers every page
//! carries. Pages are rendered with maud, so every value is escaped.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::error::PassThroughError;

/// The stylesheet of every page (`/portal/assets/iocd.css`).
pub(crate) const STYLESHEET: &str = include_str!("portal/assets/iocd.css");
/// The portal's script (`/portal/assets/portal.js`): progressive enhancement only.
pub(crate) const SCRIPT: &str = include_str!("portal/assets/portal.js");
pub(crate) const STYLESHEET_PATH: &str = "/portal/assets/iocd.css";
pub(crate) const SCRIPT_PATH: &str = "/portal/assets/portal.js";

/// Pages that only post forms to iocd itself: scripts and styles from iocd's own files only, no
/// inline script or style, no framing.
pub(crate) const PORTAL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The sign-in pages: no script at all; the form's answer redirects to the app's redirect URI,
/// wherever that is.
pub(crate) const SIGN_IN_CSP: &str = "default-src 'none'; style-src 'self'; \
form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'";

/// How a page is laid out.
pub(crate) enum Shell {
    /// A small centred card (sign-in pages).
    Card,
    /// The portal: a header bar above the page.
    App { header: Markup },
}

/// A whole HTML document.
pub(crate) fn document(title: &str, shell: Shell, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · iocd" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
                @if matches!(shell, Shell::App { .. }) {
                    script src=(SCRIPT_PATH) defer {}
                }
            }
            @match shell {
                Shell::Card => {
                    body.card-page {
                        main.card {
                            h1 { (title) }
                            (body)
                        }
                    }
                }
                Shell::App { header } => {
                    body.app-page {
                        (header)
                        main.app { (body) }
                    }
                }
            }
        }
    }
}

/// A page response: the document with `status`, not cached, not framed, with `csp`. An error
/// status stays a page (not the API's JSON envelope): a person reads it.
pub(crate) fn page_response(status: StatusCode, csp: &'static str, document: Markup) -> Response {
    let mut response = (status, document).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response.extensions_mut().insert(PassThroughError);
    response
}

/// One of the files above, cacheable for a while (they change only with the binary).
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=600"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}
