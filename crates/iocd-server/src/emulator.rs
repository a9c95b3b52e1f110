//! The emulator controls under `/_iocd/`: what a test suite needs from iocd beyond Defender's
//! API (a clean state per test, seeded data). They exist only with `--emulator`
//! ([`ServerConfig::emulator`](crate::ServerConfig::emulator)); without it every `/_iocd/`
//! route answers 404 as if it did not exist.
//!
//! Who may call them (`guard`): a caller whose token carries `Iocd.Admin`; or, when no app
//! holds that role, anyone connecting from loopback without a token (a test on the same
//! machine, as with LocalStack or Azurite).

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use iocd_domain::{parse_submission, time, Actor};
use iocd_formats::{Format, ImportOptions};
use iocd_identity::{
    ensure_well_known_app, validate_tenant_id, Caller, NewAppCredentials, ADMIN_ROLES,
};
use iocd_store::Scope;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::transport::{PeerAddr, ServedOverTls};
use crate::AppState;

/// The `createdBy` of seeded indicators.
pub const SEED_ACTOR_ID: &str = "iocd-seed";
/// The `createdByDisplayName` of seeded indicators.
pub const SEED_ACTOR_NAME: &str = "iocd seed";

/// Most indicators per store command when seeding (the API's batch size).
const SEED_BATCH: usize = 500;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/reset", post(reset))
        .route("/seed", post(seed))
        .route(
            "/faults",
            post(crate::faults::add_fault)
                .get(crate::faults::list_faults)
                .delete(crate::faults::clear_faults),
        )
        .route("/faults/{id}", delete(crate::faults::remove_fault))
        .route(
            "/requests",
            get(crate::journal::list_requests).delete(crate::journal::clear_requests),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
}

/// Refuses the controls unless the emulator is on and the caller may use them.
async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !app.config.emulator {
        return ApiError::not_found(format!(
            "No API route matches {} {}. The emulator controls (/_iocd/) need `iocd serve --emulator`.",
            req.method(),
            req.uri().path()
        ))
        .into_response();
    }
    let (mut parts, body) = req.into_parts();
    if parts.headers.contains_key(header::AUTHORIZATION) {
        let caller: Caller = match app.authenticator.authenticate(&parts).await {
            Ok(caller) => caller,
            Err(error) => return error.into_response(),
        };
        if let Err(missing) = caller.require(ADMIN_ROLES) {
            return ApiError::from(missing).into_response();
        }
        parts.extensions.insert(caller);
    } else {
        // A TLS call (the HTTPS listener, or a CONNECT tunnel a loopback client may open for
        // anyone) never counts as loopback: only the plain listener's own peers do.
        let over_tls = parts.extensions.get::<ServedOverTls>().is_some();
        let from_loopback = !over_tls
            && parts
                .extensions
                .get::<PeerAddr>()
                .is_some_and(|PeerAddr(peer)| peer.ip().is_loopback());
        let admin_exists =
            match iocd_identity::admin_app_exists(app.identity.store().as_ref()).await {
                Ok(exists) => exists,
                Err(error) => return ApiError::from(error).into_response(),
            };
        if !from_loopback || admin_exists {
            // The missing-header 401, with its challenge.
            let why = if admin_exists {
                "an app holds Iocd.Admin, so the emulator controls need its token"
            } else {
                "the emulator controls answer callers without a token only from loopback"
            };
            return match app.authenticator.authenticate(&parts).await {
                Err(mut error) => {
                    error.message = format!("{} ({why}).", error.message.trim_end_matches('.'));
                    error.into_response()
                }
                Ok(_) => ApiError::forbidden(why).into_response(),
            };
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// `POST /_iocd/reset`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResetQuery {
    /// Only this tenant (default: every tenant).
    pub tenant: Option<String>,
    /// Also delete the apps (default false). The emulator's well-known app is created again.
    pub all: Option<bool>,
}

/// What a reset removed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetReport {
    /// The tenant reset, or null for every tenant.
    pub tenant: Option<String>,
    pub indicators_deleted: u64,
    pub apps_deleted: u64,
}

pub(crate) fn query<T: serde::de::DeserializeOwned + Default>(
    uri: &axum::http::Uri,
) -> Result<T, ApiError> {
    match uri.query() {
        None => Ok(T::default()),
        Some(query) => serde_urlencoded::from_str(query).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidInput,
                format!("Invalid query string: {e}."),
            )
        }),
    }
}

fn checked_tenant(tenant: &str) -> Result<(), ApiError> {
    validate_tenant_id(tenant)
        .map_err(|why| ApiError::bad_request(ErrorCode::InvalidInput, format!("tenant: {why}.")))
}

/// Empties indicators, the change log, rate-limit windows and the request journal (and with
/// `all=true` the apps) of one tenant or all.
#[utoipa::path(
    post,
    path = "/_iocd/reset",
    tag = "emulator",
    params(ResetQuery),
    responses(
        (status = 200, description = "What was removed", body = ResetReport),
        (status = 400, description = "A bad tenant id or `all` value", body = ErrorBody),
        (status = 401, description = "No token, and the call is not from loopback or an app holds Iocd.Admin", body = ErrorBody),
        (status = 403, description = "The token lacks Iocd.Admin", body = ErrorBody),
        (status = 404, description = "The server runs without --emulator", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn reset(
    State(app): State<AppState>,
    uri: axum::http::Uri,
) -> Result<Json<ResetReport>, ApiError> {
    let ResetQuery { tenant, all } = query(&uri)?;
    if let Some(tenant) = &tenant {
        checked_tenant(tenant)?;
    }
    let tenant = tenant.as_deref();
    let deleted = app.store.reset(tenant).await;
    // The change log went with the rows: the next match loads the tenant again.
    app.matcher.forget(tenant);
    let indicators_deleted = deleted?;
    if let Err(error) = app.rate_limiter.reset(tenant).await {
        tracing::warn!(%error, "resetting the rate-limit windows failed");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            format!("The indicators were reset but the rate-limit windows were not: {error}."),
        ));
    }
    app.journal.clear(tenant);
    let mut apps_deleted = 0;
    if all == Some(true) {
        let store = app.identity.store();
        apps_deleted = store.delete_apps(tenant).await?;
        if let Some(well_known) = &app.config.well_known_app {
            if tenant.is_none_or(|t| t == well_known.tenant_id) {
                ensure_well_known_app(store.as_ref(), well_known)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "re-creating the well-known app failed");
                        ApiError::internal()
                    })?;
            }
        }
    }
    tracing::info!(
        tenant = tenant.unwrap_or("*"),
        indicators_deleted,
        apps_deleted,
        "emulator reset"
    );
    Ok(Json(ResetReport {
        tenant: tenant.map(str::to_owned),
        indicators_deleted,
        apps_deleted,
    }))
}

/// One row of a seed file that did not land.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefusedRow {
    /// The CSV line (header = 1), or the item's position (1-based) in JSON and STIX.
    pub line: usize,
    pub reason: String,
}

/// What a seed loaded and refused.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub tenant: String,
    pub format: String,
    /// Indicators created or updated.
    pub loaded: usize,
    /// Rows that failed validation (the same as `iocd import`'s), with line and reason.
    pub refused: Vec<RefusedRow>,
    /// Entries the format could not map to an indicator (STIX objects of other types…).
    pub skipped: Vec<RefusedRow>,
}

/// Why a whole seed file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] iocd_store::StoreError),
}

impl From<SeedError> for ApiError {
    fn from(error: SeedError) -> Self {
        match error {
            SeedError::Invalid(message) => {
                ApiError::bad_request(ErrorCode::InvalidRequestBody, message)
            }
            SeedError::Store(e) => e.into(),
        }
    }
}

/// Loads a file's indicators into `tenant`, through the same validation as `import`: each row
/// lands or is refused with its line and reason. Used by `--seed` at start and `POST /_iocd/seed`.
pub async fn seed_tenant(
    app: &AppState,
    tenant: &str,
    format: Format,
    content: &[u8],
) -> Result<SeedReport, SeedError> {
    validate_tenant_id(tenant).map_err(SeedError::Invalid)?;
    let parsed = iocd_formats::parse(format, content, &ImportOptions::default())
        .map_err(|e| SeedError::Invalid(format!("The {format} file cannot be read: {e}.")))?;
    let mut refused: Vec<RefusedRow> = parsed
        .failed
        .iter()
        .map(|p| RefusedRow {
            line: p.line,
            reason: p.reason.clone(),
        })
        .collect();
    let skipped = parsed
        .skipped
        .iter()
        .map(|p| RefusedRow {
            line: p.line,
            reason: p.reason.clone(),
        })
        .collect();
    let scope = Scope::tenant_wide(tenant);
    let actor = Actor::new(SEED_ACTOR_ID.to_string(), SEED_ACTOR_NAME.to_string());
    let mut loaded = 0;
    for chunk in parsed.items.chunks(SEED_BATCH) {
        let mut valid = Vec::with_capacity(chunk.len());
        let mut lines = Vec::with_capacity(chunk.len());
        for item in chunk {
            match parse_submission(&item.body) {
                Ok(submission) => {
                    valid.push(submission);
                    lines.push(item.line);
                }
                Err(invalid) => refused.push(RefusedRow {
                    line: item.line,
                    reason: invalid.message,
                }),
            }
        }
        let results = app
            .store
            .submit(&scope, &actor, valid, app.write_limits(), time::now())
            .await?;
        for (line, result) in lines.into_iter().zip(results) {
            match result {
                Ok(_) => loaded += 1,
                Err(error) => refused.push(RefusedRow {
                    line,
                    reason: ApiError::from(error).message,
                }),
            }
        }
    }
    refused.sort_by_key(|row| row.line);
    Ok(SeedReport {
        tenant: tenant.to_string(),
        format: format.name().to_string(),
        loaded,
        refused,
        skipped,
    })
}

/// `POST /_iocd/seed`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeedQuery {
    /// The tenant to load into (default: the emulator's development tenant).
    pub tenant: Option<String>,
}

/// The seed format a `Content-Type` names.
fn seed_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" => Ok(Format::Csv),
        "application/json" => Ok(Format::Json),
        "application/stix+json" => Ok(Format::Stix),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type '{content_type}' is not a seed format: send text/csv, application/json or application/stix+json."),
        )),
    }
}

/// Loads a CSV, JSON or STIX 2.1 file (the body) into a tenant, as `iocd import` would.
#[utoipa::path(
    post,
    path = "/_iocd/seed",
    tag = "emulator",
    params(SeedQuery),
    request_body(content = String, description = "The file: CSV (text/csv), JSON (application/json) or STIX 2.1 (application/stix+json)", content_type = "text/csv"),
    responses(
        (status = 200, description = "What landed, and every refused row with its line and reason", body = SeedReport),
        (status = 400, description = "A bad tenant id, or a file that cannot be read at all", body = ErrorBody),
        (status = 401, description = "No token, and the call is not from loopback or an app holds Iocd.Admin", body = ErrorBody),
        (status = 403, description = "The token lacks Iocd.Admin", body = ErrorBody),
        (status = 404, description = "The server runs without --emulator", body = ErrorBody),
        (status = 415, description = "Not one of the three formats", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn seed(
    State(app): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SeedReport>, ApiError> {
    let SeedQuery { tenant } = query(&uri)?;
    let format = seed_format(&headers)?;
    let tenant = match tenant {
        Some(tenant) => tenant,
        None => match &app.config.well_known_app {
            Some(NewAppCredentials { tenant_id, .. }) => tenant_id.clone(),
            None => {
                return Err(ApiError::bad_request(
                    ErrorCode::MissingRequiredParameter,
                    "tenant is missing: name the tenant to seed (?tenant=…).",
                ))
            }
        },
    };
    checked_tenant(&tenant)?;
    let report = seed_tenant(&app, &tenant, format, &body).await?;
    Ok(Json(report))
}
