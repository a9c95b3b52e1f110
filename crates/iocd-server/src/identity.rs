//! Who is calling, over HTTP. Handlers take a [`Caller`] and never look at headers themselves:
//! the [`Authenticator`] reads the `Authorization` header and the identity rules
//! ([`iocd_identity::TokenAuthenticator`]) turn its bearer token into a `Caller`. This module only
//! maps their answers onto 401s, 403s and 503s in the API's error shape.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use iocd_auth::TokenError;
use iocd_identity::AuthenticationError;
pub use iocd_identity::{Caller, Role, TokenAuthenticator, READ_ROLES, WRITE_ROLES};

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError>;
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The rate-limit middleware authenticates first and leaves the caller here. Taken, not
        // cloned (four allocations a request): the handler is its only reader, and a second
        // extractor of the same request would authenticate again.
        if let Some(caller) = parts.extensions.remove::<Caller>() {
            return Ok(caller);
        }
        let auth: Arc<dyn Authenticator> = state.authenticator.clone();
        auth.authenticate(parts).await
    }
}

/// A 401 in the API's error shape, with the RFC 6750 challenge.
fn unauthorized(message: String, challenge: String) -> ApiError {
    let challenge = HeaderValue::from_str(&challenge)
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""));
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
        .with_header(header::WWW_AUTHENTICATE, challenge)
}

fn invalid_token(error: &TokenError) -> ApiError {
    unauthorized(
        format!("Invalid Authorization payload: {error}."),
        error.www_authenticate(),
    )
}

/// Makes text safe inside a quoted header parameter.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

fn invalid_token_message(message: &str) -> ApiError {
    unauthorized(
        format!("Invalid Authorization payload: {message}."),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            header_text(message)
        ),
    )
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        // RFC 6750 §3.1: a request without credentials gets a challenge without an error code.
        return Err(unauthorized(
            "The Authorization header is missing. Send 'Authorization: Bearer <token>', with a token from POST /{tenant}/oauth2/v2.0/token.".to_string(),
            "Bearer realm=\"iocd\"".to_string(),
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| invalid_token_message("the Authorization header is not ASCII text"))?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid_token_message(
            "the Authorization header must use the Bearer scheme ('Authorization: Bearer <token>')",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid_token_message(
            "the Authorization header has the Bearer scheme but no token",
        ));
    }
    Ok(token)
}

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let token = bearer_token(parts)?;
        match TokenAuthenticator::authenticate(self, token).await {
            Ok(caller) => Ok(caller),
            Err(AuthenticationError::Token(TokenError::KeysUnavailable(reason))) => {
                // The token may well be good: the issuer's keys could not be fetched to check it.
                tracing::warn!(%reason, "an external issuer's signing keys are unavailable");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ServiceUnavailable,
                    format!("The token cannot be checked now: {reason}. Retry later."),
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("30")))
            }
            Err(AuthenticationError::Token(error)) => Err(invalid_token(&error)),
            Err(AuthenticationError::UnknownTenant(tenant)) => {
                Err(invalid_token_message(&format!(
                    "tenant '{}' is not known to this server",
                    header_text(&tenant)
                )))
            }
            Err(AuthenticationError::AppNotInTenant { app_id, tenant_id }) => {
                Err(invalid_token_message(&format!(
                    "application '{}' is not registered in tenant '{}'",
                    header_text(&app_id),
                    header_text(&tenant_id)
                )))
            }
            Err(AuthenticationError::Store(e)) => Err(e.into()),
        }
    }
}
