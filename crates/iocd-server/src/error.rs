//! One error type for the whole API, rendered once into the reference's body:
//! `{"error":{"code":…,"message":…,"target":"<request id>"}}`.
//!
//! Handlers return [`ApiError`]; its response carries the code and message as an extension and
//! the [`error_envelope`] middleware writes the body, because only it knows the request id. The
//! same middleware wraps errors produced outside handlers (axum's 405, a body-limit 413, a
//! caught panic) so that every error, everywhere, has the same shape.

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use iocd_domain::ErrorCode;
use iocd_domain::ValidationError;
use iocd_identity::MissingRoles;
use iocd_odata::ODataError;
use iocd_store::{ItemError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Extra response headers (`Allow`, `Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalServerError,
            "An internal error occurred; retry the operation. The request id identifies it in the server log.",
        )
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::bad_request(e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        ApiError::internal()
    }
}

impl From<ItemError> for ApiError {
    fn from(e: ItemError) -> Self {
        match e {
            ItemError::QuotaExceeded { limit } => ApiError::bad_request(
                ErrorCode::BadRequest,
                format!("Max capacity exceeded: the tenant already has {limit} active indicators, the most it may hold. Delete indicators or let them expire to make room; updates of existing indicators still work."),
            ),
            ItemError::NotOwner { id } => ApiError::forbidden(format!(
                "Indicator {id} has the same type, value and action but was created by another application; an application with Ti.ReadWrite may change only the indicators it created (Ti.ReadWrite.All manages all of the tenant's)."
            )),
        }
    }
}

impl From<MissingRoles> for ApiError {
    fn from(missing: MissingRoles) -> Self {
        ApiError::forbidden(missing.to_string())
    }
}

impl From<ODataError> for ApiError {
    fn from(e: ODataError) -> Self {
        ApiError::bad_request(
            ErrorCode::ODataError,
            format!("Invalid OData URI query: {e}"),
        )
    }
}

/// Marks an error response whose body is already in its own format (the OAuth2 endpoints' errors),
/// which [`error_envelope`] must leave alone.
#[derive(Debug, Clone, Copy)]
pub struct PassThroughError;

/// The code and message of an error response, waiting for its request id.
#[derive(Debug, Clone)]
struct ErrorPayload {
    code: ErrorCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        res.extensions_mut().insert(ErrorPayload {
            code: self.code,
            message: self.message,
        });
        res
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// e.g. `InvalidInput`, `MissingRequiredParameter`, `NotFound`, `TooManyRequests`.
    pub code: String,
    /// What is wrong and, where it applies, which property.
    pub message: String,
    /// The request id, also sent as the `x-request-id` response header and logged.
    pub target: String,
}

/// Writes the error body on every 4xx/5xx response, and gives every response the request's id
/// (`x-request-id`) unless it has one.
pub async fn error_envelope(req: Request, next: Next) -> Response {
    // The header's bytes are shared, not copied: most responses are not errors.
    let request_id = req.headers().get(REQUEST_ID).cloned();
    // Here rather than in a middleware of its own (one boxed future less per request): an
    // oversize URI or head is refused before anything reads it, in the API's shape.
    let mut res = match crate::protocol::head_refusal(&req) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    };
    // Here rather than with tower-http's `PropagateRequestId`, which also puts the id in each
    // response's extensions (a map allocated per request for nothing iocd reads).
    if let Some(id) = &request_id {
        res.headers_mut()
            .entry(REQUEST_ID)
            .or_insert_with(|| id.clone());
    }
    if res.extensions().get::<PassThroughError>().is_some() {
        return res;
    }
    let payload = match res.extensions_mut().remove::<ErrorPayload>() {
        Some(p) => p,
        None if res.status().is_client_error() || res.status().is_server_error() => {
            default_payload(res.status())
        }
        None => return res,
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: payload.code.as_str().to_string(),
            message: payload.message,
            target: request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        },
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    let json = serde_json::to_vec(&body).expect("error body serialises");
    Response::from_parts(parts, axum::body::Body::from(json))
}

/// Errors that did not come from a handler: axum's routing, tower-http layers, panics.
fn default_payload(status: StatusCode) -> ErrorPayload {
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "This route does not accept that HTTP method; the Allow header lists the ones it does.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::RequestEntityTooLarge,
            "The request body is larger than the server accepts.",
        ),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "No such resource."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/json.",
        ),
        s if s.is_server_error() => (
            ErrorCode::InternalServerError,
            "An internal error occurred; retry the operation.",
        ),
        _ => (ErrorCode::BadRequest, "The request could not be processed."),
    };
    ErrorPayload {
        code,
        message: message.to_string(),
    }
}
