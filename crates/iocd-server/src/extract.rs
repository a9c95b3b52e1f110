//! Request extractors whose rejections are [`ApiError`]s naming what is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};
use crate::transport::ServedOverTls;
use crate::AppState;

/// A JSON request body: `Content-Type: application/json` (parameters such as `charset`
/// allowed), within the body limit, syntactically valid JSON.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                if content_type.is_empty() {
                    "Content-Type is missing; send the body as application/json.".to_string()
                } else {
                    format!("Content-Type '{content_type}' is not supported; send the body as application/json.")
                },
            ));
        }
        let limit = state.config.max_body_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if body_read_timed_out(&rejection) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::RequestTimeout,
                    "The request body was not received in time; send it without pausing.",
                )
                .with_header(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                )
            } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::RequestEntityTooLarge,
                    format!("The request body is larger than the limit of {limit} bytes."),
                )
            } else {
                ApiError::bad_request(
                    ErrorCode::InvalidRequestBody,
                    format!("Invalid request body: {}", rejection.body_text()),
                )
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRequestBody,
                "Invalid request body: the body is empty; send the indicator as a JSON object.",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidRequestBody,
                format!("Invalid request body: not valid JSON ({e})."),
            )
        })
    }
}

/// Whether reading the body failed because the client paused longer than the body read timeout
/// (`connections::ConnectionLimits::body_read_timeout`).
pub(crate) fn body_read_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The scheme and host this request should see in the URLs iocd makes up (`@odata.context`,
/// discovery documents): the Microsoft host it called when that is one iocd intercepts (a client
/// tunnelled to `https://api.securitycenter.microsoft.com` must see that name), else the
/// configured public URL, else the scheme and `Host` the client called.
pub struct RequestOrigin {
    /// `https://login.microsoftonline.com`, `http://127.0.0.1:8080`: no trailing slash.
    pub url: String,
    /// The host the client called, without port.
    pub host: String,
}

impl RequestOrigin {
    /// Whether the client called one of Entra's login hosts.
    pub fn is_login_host(&self) -> bool {
        iocd_auth::entra::is_login_host(&self.host)
    }

    pub fn of(parts: &Parts, public_url: Option<&str>) -> RequestOrigin {
        // HTTP/2 carries the host in the URI's authority instead of a Host header.
        let authority = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        let host = match authority.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next().unwrap_or(bracketed),
            None => authority.split(':').next().unwrap_or(authority),
        }
        .to_ascii_lowercase();
        let scheme = if parts.extensions.get::<ServedOverTls>().is_some() {
            "https"
        } else {
            parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
                .filter(|p| *p == "https" || *p == "http")
                .unwrap_or("http")
        };
        let url = match public_url {
            Some(url) if !iocd_tls::hosts::is_intercepted_host(&host) => {
                url.trim_end_matches('/').to_string()
            }
            _ => format!("{scheme}://{authority}"),
        };
        RequestOrigin { url, host }
    }
}

impl FromRequestParts<AppState> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(RequestOrigin::of(parts, state.config.public_url.as_deref()))
    }
}

/// The base of `@odata.context` for this request: its [`RequestOrigin`] plus `/api` or
/// `/api/v1.0`, as the client called it.
pub struct ODataBase(pub String);

impl ODataBase {
    pub fn entity_context(&self) -> String {
        format!("{}/$metadata#Indicators/$entity", self.0)
    }

    pub fn collection_context(&self) -> String {
        format!("{}/$metadata#Indicators", self.0)
    }
}

impl FromRequestParts<AppState> for ODataBase {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let origin = RequestOrigin::of(parts, state.config.public_url.as_deref()).url;
        // Nested routers see the path without its prefix; the original tells which was called.
        let path = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(uri)) => uri.path(),
            None => parts.uri.path(),
        };
        let versioned = path.starts_with("/api/v1.0/");
        Ok(ODataBase(format!(
            "{origin}/api{}",
            if versioned { "/v1.0" } else { "" }
        )))
    }
}

/// Parses an indicator id from the path: ids are positive integers sent as strings.
pub fn parse_indicator_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("Invalid input id: '{raw}' is not an indicator id (a positive integer)."),
        )
    })
}
