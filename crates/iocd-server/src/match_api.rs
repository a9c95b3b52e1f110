//! iocd's match API: what Defender would do with a URL, domain, address, file or certificate.
//! The rules are `iocd_domain::matching`'s; the index is `iocd_store::MatchEngine`'s. These
//! handlers parse, authorise, ask the engine once and fetch the deciding indicators once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use iocd_domain::matching::{parse_match_body, parse_match_query, MatchRequest};
use iocd_domain::{time, Action, Indicator};
use iocd_store::MatchedEntity;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::handlers::odata_json;
use crate::identity::{Caller, READ_ROLES};
use crate::AppState;

/// One observable's answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchResult<'a> {
    /// What Defender would do; null when no indicator applies (or the observable is malformed).
    action: Option<Action>,
    /// The deciding indicator; null when none applies, or when the caller may not read it.
    #[schema(value_type = Option<Indicator>)]
    indicator: Option<&'a RawValue>,
    /// Which rule decided, e.g. "domain suffix evil.example matched sub.evil.example".
    reason: Option<String>,
    /// Why this observable could not be read; the other observables are answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

/// A per-observable error: the error body's fields, `target` naming the property.
#[derive(Serialize, ToSchema)]
pub struct ItemError {
    code: String,
    message: String,
    target: String,
}

/// The answers, one per observable, in order.
#[derive(Serialize, ToSchema)]
pub struct MatchResponse<'a> {
    value: Vec<MatchResult<'a>>,
}

/// The body of `POST /iocd/v1/match`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchBody {
    /// The device group of the device asking; omitted: a device in no group.
    device_group: Option<String>,
    /// At most 10,000 observables, each an object with one property: `url`, `domain`, `ip`,
    /// `certificateThumbprint` (strings) or `file` (`{"sha256","sha1","md5"}`).
    #[schema(value_type = Vec<Object>)]
    observables: Vec<serde_json::Value>,
}

/// Match a batch of observables.
#[utoipa::path(
    post,
    path = "/iocd/v1/match",
    tag = "match",
    request_body(content = MatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per observable, in order", body = MatchResponse),
        (status = 400, description = "Not a match request, or more than 10,000 observables", body = ErrorBody),
        (status = 403, description = "The caller has no read role", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn match_batch(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(READ_ROLES)?;
    let request = parse_match_body(&body)?;
    answer(&app, &caller, request).await
}

/// Match one observable.
#[utoipa::path(
    get,
    path = "/iocd/v1/match",
    tag = "match",
    params(
        ("url" = Option<String>, Query, description = "A URL"),
        ("domain" = Option<String>, Query, description = "A domain name"),
        ("ip" = Option<String>, Query, description = "An IPv4 or IPv6 address"),
        ("sha256" = Option<String>, Query, description = "A file's SHA-256 (combinable with sha1, md5)"),
        ("sha1" = Option<String>, Query, description = "A file's SHA-1"),
        ("md5" = Option<String>, Query, description = "A file's MD5"),
        ("certificateThumbprint" = Option<String>, Query, description = "A certificate's SHA-1 thumbprint"),
        ("deviceGroup" = Option<String>, Query, description = "The asking device's group"),
    ),
    responses(
        (status = 200, description = "One result", body = MatchResponse),
        (status = 400, description = "No observable, several, or a malformed one; the message names the parameter", body = ErrorBody),
        (status = 403, description = "The caller has no read role", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn match_one(
    State(app): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> Result<Response, ApiError> {
    caller.require(READ_ROLES)?;
    // Decoded as `Query` would, but borrowing from the URI where nothing is escaped rather than
    // copying every name and value: this runs on every call.
    let params: Vec<_> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).collect();
    let request = parse_match_query(&params)?;
    answer(&app, &caller, request).await
}

async fn answer(
    app: &AppState,
    caller: &Caller,
    request: MatchRequest,
) -> Result<Response, ApiError> {
    let now = time::now();
    let decisions = app
        .matcher
        .decide(
            &caller.tenant_id,
            &request.observables,
            request.device_group.as_deref(),
            now,
        )
        .await?;
    let mut ids: Vec<i64> = decisions.iter().flatten().map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    // Referenced, not cloned, by the answers: an indicator has some thirty properties.
    let entities: HashMap<i64, Arc<MatchedEntity>> = app
        .matcher
        .entities(&caller.read_scope(), &ids, now)
        .await?
        .into_iter()
        .map(|entity| (entity.indicator.id, entity))
        .collect();
    let invalid = request.observables.iter().filter(|o| o.is_err()).count() as u64;
    let matched = decisions.iter().flatten().count() as u64;
    let total = request.observables.len() as u64;
    app.metrics
        .matched(matched, total.saturating_sub(matched + invalid), invalid);
    let value = request
        .observables
        .iter()
        .zip(decisions)
        .map(|(observable, decision)| match (observable, decision) {
            (Err(e), _) => MatchResult {
                action: None,
                indicator: None,
                reason: None,
                error: Some(ItemError {
                    code: e.code.as_str().to_string(),
                    message: e.message.clone(),
                    target: e.field.clone(),
                }),
            },
            (Ok(_), None) => MatchResult {
                action: None,
                indicator: None,
                reason: Some("no indicator applies".to_string()),
                error: None,
            },
            (Ok(_), Some(d)) => MatchResult {
                action: Some(d.action),
                indicator: entities.get(&d.id).map(|entity| &*entity.json),
                reason: Some(d.reason),
                error: None,
            },
        })
        .collect();
    Ok(odata_json(&MatchResponse { value }))
}
