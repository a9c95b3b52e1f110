//! Thin HTTP handlers: authorise, parse with the domain, call the store, shape the response.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use iocd_domain::{parse_submission, time, Indicator};
use iocd_store::{DeleteOutcome, DeleteVia};
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{parse_indicator_id, JsonBody, ODataBase};
use crate::identity::{Caller, READ_ROLES, WRITE_ROLES};
use crate::AppState;

/// The content type the real service answers with; some clients check for `application/json`.
pub const ODATA_JSON: &str =
    "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8";

/// A single entity: `@odata.context` first, then the entity's properties in wire order.
#[derive(Serialize)]
struct EntityEnvelope<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(flatten)]
    entity: &'a Indicator,
}

/// A collection page.
#[derive(Serialize)]
pub struct CollectionEnvelope<'a> {
    #[serde(rename = "@odata.context")]
    pub context: String,
    pub value: &'a [Indicator],
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

pub fn odata_json(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON))],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            ApiError::internal().into_response()
        }
    }
}

fn entity_response(base: &ODataBase, indicator: &Indicator) -> Response {
    odata_json(&EntityEnvelope {
        context: base.entity_context(),
        entity: indicator,
    })
}

/// Submit or update one indicator.
#[utoipa::path(
    post,
    path = "/api/indicators",
    tag = "indicators",
    request_body(content = crate::openapi::IndicatorRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The created or updated indicator", body = Indicator),
        (status = 400, description = "Invalid body; the message names the property", body = ErrorBody),
        (status = 403, description = "Missing role, or the key belongs to another app", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn submit_indicator(
    State(app): State<AppState>,
    caller: Caller,
    base: ODataBase,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(WRITE_ROLES)?;
    let submission = parse_submission(&body)?;
    let mut results = app
        .store
        .submit(
            &caller.write_scope(),
            &caller.actor(),
            vec![submission],
            app.write_limits(),
            time::now(),
        )
        .await?;
    let outcome = results.pop().ok_or_else(ApiError::internal)??;
    Ok(entity_response(&base, outcome.indicator()))
}

/// Get one indicator by id (undocumented by Microsoft, used by clients).
#[utoipa::path(
    get,
    path = "/api/indicators/{id}",
    tag = "indicators",
    params(("id" = String, Path, description = "Indicator id")),
    responses(
        (status = 200, description = "The indicator", body = Indicator),
        (status = 404, description = "No active indicator with that id is visible to the caller", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_indicator(
    State(app): State<AppState>,
    caller: Caller,
    base: ODataBase,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(READ_ROLES)?;
    let id = parse_indicator_id(&id)?;
    match app.store.get(&caller.read_scope(), id, time::now()).await? {
        Some(indicator) => Ok(entity_response(&base, &indicator)),
        None => Err(ApiError::not_found(format!(
            "Indicator {id} was not found."
        ))),
    }
}

/// Delete one indicator.
#[utoipa::path(
    delete,
    path = "/api/indicators/{id}",
    tag = "indicators",
    params(("id" = String, Path, description = "Indicator id")),
    responses(
        (status = 204, description = "Deleted (200 with an empty body if the server is configured so)"),
        (status = 404, description = "No active indicator with that id is visible to the caller", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_indicator(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(WRITE_ROLES)?;
    let id = parse_indicator_id(&id)?;
    match app
        .store
        .delete(
            &caller.write_scope(),
            &caller.actor(),
            &[id],
            DeleteVia::Single,
            time::now(),
        )
        .await?
    {
        DeleteOutcome::Deleted(_) => Ok(app.config.delete_status.into_response()),
        DeleteOutcome::NotFound(_) => Err(ApiError::not_found(format!(
            "Indicator {id} was not found."
        ))),
    }
}

/// Status of a successful single delete: 204 as documented, or 200 with an empty body as
/// the production service was observed to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteStatus {
    NoContent,
    OkEmpty,
}

impl IntoResponse for DeleteStatus {
    fn into_response(self) -> Response {
        match self {
            DeleteStatus::NoContent => StatusCode::NO_CONTENT.into_response(),
            DeleteStatus::OkEmpty => {
                (StatusCode::OK, [(header::CONTENT_LENGTH, "0")]).into_response()
            }
        }
    }
}

/// Fallback for paths no route matches.
pub async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("No API route matches {method} {}.", uri.path()))
}

/// Liveness probe.
pub async fn health() -> Response {
    axum::Json(Value::from("ok")).into_response()
}

/// What `/ready` found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// `ok`: the database answered and the writer runs.
    pub database: &'static str,
    /// `ok`, or `not used` when the rate limits are in process.
    pub redis: &'static str,
}

/// How long each readiness check may take.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Readiness probe: the database answers (and its writer runs), and so does Redis when the rate
/// limits use it. A part that does not is named in a 503 in the API's error shape.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every part answers", body = Readiness),
        (status = 503, description = "A part does not answer; the message names it", body = ErrorBody),
    )
)]
pub async fn ready(State(app): State<AppState>) -> Result<axum::Json<Readiness>, ApiError> {
    let uses_redis = app.config.rate_limits.enabled && app.config.rate_limits.redis_url.is_some();
    let (database, redis) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, app.store.ping()),
        tokio::time::timeout(READY_TIMEOUT, app.rate_limiter.ping()),
    );
    let mut failing = Vec::new();
    match database {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failing.push(format!("database ({e})")),
        Err(_) => failing.push(format!(
            "database (no answer within {}s)",
            READY_TIMEOUT.as_secs()
        )),
    }
    match redis {
        Ok(Ok(())) => {}
        Ok(Err(iocd_ratelimit::LimiterError::Unavailable(why))) => {
            failing.push(format!("redis ({why})"))
        }
        Err(_) => failing.push(format!(
            "redis (no answer within {}s)",
            READY_TIMEOUT.as_secs()
        )),
    }
    if !failing.is_empty() {
        tracing::warn!(failing = %failing.join("; "), "not ready");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::error::ErrorCode::ServiceUnavailable,
            format!("Not ready: {}.", failing.join("; ")),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(5u64)));
    }
    Ok(axum::Json(Readiness {
        status: "ready",
        database: "ok",
        redis: if uses_redis { "ok" } else { "not used" },
    }))
}
