//! Batch handlers: import and BatchDelete, up to 500 items each.
//! Thin like the others: parse the request, call the store once, shape the response.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iocd_domain::{parse_submission, time, Submission, ValidationError};
use iocd_store::{DeleteOutcome, DeleteVia};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::JsonBody;
use crate::handlers::odata_json;
use crate::identity::{Caller, WRITE_ROLES};
use crate::AppState;

/// Most indicators per import and most ids per BatchDelete (the reference's limit).
pub const MAX_BATCH: usize = 500;

/// The array under `name` in a batch body, or a 400 naming what is wrong with the body.
fn batch_array<'a>(body: &'a Value, name: &str, element: &str) -> Result<&'a [Value], ApiError> {
    let expected =
        format!("expected a JSON object {{\"{name}\": [...]}} with up to {MAX_BATCH} {element}");
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequestBody,
            format!("Invalid request body: {expected}."),
        ));
    };
    match object.get(name) {
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ApiError::bad_request(
            ErrorCode::InvalidRequestBody,
            format!("Invalid request body: '{name}' must be an array; {expected}."),
        )),
        None => {
            let hint = object
                .keys()
                .find(|key| key.eq_ignore_ascii_case(name))
                .map(|key| format!(" ('{key}' was sent; property names are case-sensitive)"))
                .unwrap_or_default();
            Err(ApiError::bad_request(
                ErrorCode::MissingRequiredParameter,
                format!("Invalid request body: '{name}' is missing{hint}; {expected}."),
            ))
        }
    }
}

fn batch_too_large(received: usize) -> ApiError {
    ApiError::bad_request(
        ErrorCode::MaximumBatchSizeExceeded,
        format!("Maximum batch size exceeded. Received: {received}, allowed: {MAX_BATCH}."),
    )
}

/// The body of `POST /api/indicators/import`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ImportRequest {
    /// 0 to 500 indicators, each shaped like the body of `POST /api/indicators`.
    #[serde(rename = "Indicators")]
    indicators: Vec<crate::openapi::IndicatorRequest>,
}

/// How one imported indicator ended, in input order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// The indicator's id (created or updated); null when it failed.
    pub id: Option<String>,
    /// The indicator value (as stored when it landed, as sent when it failed; null if none was sent).
    pub indicator: Option<String>,
    pub is_failed: bool,
    /// Why it failed (the message the single submit would have given); null when it landed.
    pub failure_reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportResponse {
    pub value: Vec<ImportResult>,
}

fn failed(item: &Value, reason: String) -> ImportResult {
    ImportResult {
        id: None,
        indicator: item
            .get("indicatorValue")
            .and_then(Value::as_str)
            .map(str::to_owned),
        is_failed: true,
        failure_reason: Some(reason),
    }
}

/// Submit or update up to 500 indicators.
#[utoipa::path(
    post,
    path = "/api/indicators/import",
    tag = "indicators",
    request_body(content = ImportRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per indicator, in input order; valid ones landed even if others failed", body = ImportResponse),
        (status = 400, description = "The body is not {\"Indicators\": [...]} (InvalidRequestBody, MissingRequiredParameter) or holds more than 500 (MaximumBatchSizeExceeded)", body = ErrorBody),
        (status = 403, description = "Missing role", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn import_indicators(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(WRITE_ROLES)?;
    let items = batch_array(&body, "Indicators", "indicators")?;
    if items.len() > MAX_BATCH {
        return Err(batch_too_large(items.len()));
    }
    let parsed: Vec<Result<Submission, ValidationError>> =
        items.iter().map(parse_submission).collect();
    let valid: Vec<Submission> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .cloned()
        .collect();
    // One store command for the whole batch: one transaction, and the quota is counted once
    // and then tracked item by item.
    let mut stored = app
        .store
        .submit(
            &caller.write_scope(),
            &caller.actor(),
            valid,
            app.write_limits(),
            time::now(),
        )
        .await?
        .into_iter();
    let mut value = Vec::with_capacity(items.len());
    for (item, parsed) in items.iter().zip(parsed) {
        let result = match parsed {
            Err(invalid) => failed(item, invalid.message),
            Ok(_) => match stored.next().ok_or_else(ApiError::internal)? {
                Ok(outcome) => {
                    let indicator = outcome.indicator();
                    ImportResult {
                        id: Some(indicator.id.to_string()),
                        indicator: Some(indicator.indicator_value.clone()),
                        is_failed: false,
                        failure_reason: None,
                    }
                }
                Err(refused) => failed(item, ApiError::from(refused).message),
            },
        };
        value.push(result);
    }
    Ok(odata_json(&ImportResponse { value }))
}

/// The body of `POST /api/indicators/BatchDelete`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct BatchDeleteRequest {
    /// 1 to 500 indicator ids (strings, as the API returns them; integers are accepted too).
    #[serde(rename = "IndicatorIds")]
    indicator_ids: Vec<String>,
}

/// One id of a BatchDelete body: a positive integer, as a string or a number.
fn batch_id(index: usize, raw: &Value) -> Result<i64, ApiError> {
    let id = match raw {
        Value::String(text) => text.trim().parse::<i64>().ok(),
        Value::Number(number) => number.as_i64(),
        _ => None,
    };
    id.filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("Invalid input IndicatorIds[{index}]: {raw} is not an indicator id (a positive integer, sent as a string)."),
        )
    })
}

/// Delete 1 to 500 indicators, all or none.
#[utoipa::path(
    post,
    path = "/api/indicators/BatchDelete",
    tag = "indicators",
    request_body(content = BatchDeleteRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "Every id existed and all were deleted"),
        (status = 400, description = "Not {\"IndicatorIds\": [...]}, an invalid id (InvalidInput), no ids, or more than 500 (MaximumBatchSizeExceeded)", body = ErrorBody),
        (status = 404, description = "Some ids are unknown, expired or not visible to the caller; the message lists them and nothing was deleted", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn batch_delete_indicators(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(WRITE_ROLES)?;
    let raw_ids = batch_array(&body, "IndicatorIds", "ids")?;
    if raw_ids.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "Invalid input IndicatorIds: the list is empty; send 1 to 500 ids.",
        ));
    }
    if raw_ids.len() > MAX_BATCH {
        return Err(batch_too_large(raw_ids.len()));
    }
    let ids = raw_ids
        .iter()
        .enumerate()
        .map(|(index, raw)| batch_id(index, raw))
        .collect::<Result<Vec<i64>, ApiError>>()?;
    match app
        .store
        .delete(
            &caller.write_scope(),
            &caller.actor(),
            &ids,
            DeleteVia::Batch,
            time::now(),
        )
        .await?
    {
        DeleteOutcome::Deleted(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        DeleteOutcome::NotFound(missing) => {
            let list: Vec<String> = missing.iter().map(i64::to_string).collect();
            Err(ApiError::not_found(format!(
                "Indicators not found: {}. Nothing was deleted.",
                list.join(", ")
            )))
        }
    }
}
