//! Fault injection for the emulator: rules that make chosen calls fail the way Defender does
//! (a 429 with `Retry-After`, a 500, a 503), slow down, or lose their connection, so that a
//! client's retry code can be proven. Rules come from `--fault JSON` and `POST /_iocd/faults`;
//! the first rule that matches a call decides, and a rule whose `count` or time window is used
//! up stops matching. Every injected response carries `x-iocd-fault: <rule id>`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorCode, PassThroughError};
use crate::AppState;

/// The header that marks an injected response (its value is the rule's id).
pub const FAULT_HEADER: HeaderName = HeaderName::from_static("x-iocd-fault");

const FAMILIES: &[&str] = &[
    "submit",
    "list",
    "get",
    "delete",
    "import",
    "batchdelete",
    "token",
    "all",
];

/// One fault rule: optional matches, exactly one effect, at most one trigger.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Assigned by the server.
    #[serde(default, skip_deserializing)]
    pub id: String,
    /// submit, list, get, delete, import, batchdelete, token or all (default all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// HTTP method (case-insensitive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The caller's tenant (the token's; the path's for the token endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The caller's client id (from its token; not matched on token-endpoint calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Effect: answer this status (400–599) with Defender's error body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// With `status`: the `Retry-After` seconds (default 1 for 429 and 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Effect: delay the call this long, then serve it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Effect: drop the connection without an answer body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close: Option<bool>,
    /// Trigger: each matching call with this probability (0 < p ≤ 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Trigger: the next N matching calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Trigger: every matching call for this many seconds from the rule's creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_seconds: Option<u64>,
}

impl FaultRule {
    /// Checks the rule's shape; the message names the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(family) = &self.family {
            if !FAMILIES.contains(&family.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "family '{family}' is unknown: use one of {}",
                    FAMILIES.join(", ")
                ));
            }
        }
        if let Some(method) = &self.method {
            Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("method '{method}' is not an HTTP method"))?;
        }
        let effects = [
            self.status.is_some(),
            self.latency_ms.is_some(),
            self.close == Some(true),
        ];
        if effects.iter().filter(|e| **e).count() != 1 {
            return Err("give exactly one effect: status, latencyMs or close (true)".to_string());
        }
        if let Some(status) = self.status {
            if !(400..=599).contains(&status) {
                return Err(format!(
                    "status {status} is not an error status (400 to 599)"
                ));
            }
        } else if self.retry_after.is_some() {
            return Err("retryAfter goes with status".to_string());
        }
        if self.latency_ms.is_some_and(|ms| ms > 600_000) {
            return Err("latencyMs must be at most 600000".to_string());
        }
        let triggers = [
            self.probability.is_some(),
            self.count.is_some(),
            self.for_seconds.is_some(),
        ];
        if triggers.iter().filter(|t| **t).count() > 1 {
            return Err("give at most one trigger: probability, count or forSeconds".to_string());
        }
        if let Some(p) = self.probability {
            if !(p > 0.0 && p <= 1.0) {
                return Err(format!(
                    "probability {p} must be greater than 0 and at most 1"
                ));
            }
        }
        if self.count == Some(0) {
            return Err("count must be at least 1".to_string());
        }
        Ok(())
    }

    /// A rule from its JSON text (`--fault`).
    pub fn parse(text: &str) -> Result<FaultRule, String> {
        let rule: FaultRule =
            serde_json::from_str(text).map_err(|e| format!("not a fault rule: {e}"))?;
        rule.validate()?;
        Ok(rule)
    }
}

struct ActiveRule {
    rule: FaultRule,
    remaining: Option<u64>,
    until: Option<Instant>,
}

impl ActiveRule {
    fn used_up(&self, now: Instant) -> bool {
        self.remaining == Some(0) || self.until.is_some_and(|until| now >= until)
    }
}

/// The rules in force, in order.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<ActiveRule>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// What a call is, for matching.
struct Call<'a> {
    family: Option<&'static str>,
    method: &'a Method,
    tenant: Option<String>,
    app: Option<String>,
}

impl Faults {
    pub fn new(initial: Vec<FaultRule>) -> Faults {
        let faults = Faults::default();
        for rule in initial {
            faults.add(rule);
        }
        faults
    }

    /// Appends a (validated) rule; returns it with its id.
    pub fn add(&self, mut rule: FaultRule) -> FaultRule {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        rule.id = format!("fault-{n}");
        let active = ActiveRule {
            remaining: rule.count,
            until: rule
                .for_seconds
                .map(|s| Instant::now() + Duration::from_secs(s)),
            rule: rule.clone(),
        };
        self.lock().push(active);
        rule
    }

    pub fn list(&self) -> Vec<FaultRule> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|r| !r.used_up(now))
            .map(|r| r.rule.clone())
            .collect()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn remove(&self, id: &str) -> bool {
        let mut rules = self.lock();
        let before = rules.len();
        rules.retain(|r| r.rule.id != id);
        rules.len() != before
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn needs_caller(&self) -> bool {
        self.lock()
            .iter()
            .any(|r| r.rule.tenant.is_some() || r.rule.app.is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ActiveRule>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first rule matching `call` that fires now (counting it), if any.
    fn decide(&self, call: &Call<'_>) -> Option<FaultRule> {
        let now = Instant::now();
        let mut rules = self.lock();
        rules.retain(|r| !r.used_up(now));
        for active in rules.iter_mut() {
            let rule = &active.rule;
            let family_ok = match rule.family.as_deref().map(str::to_ascii_lowercase) {
                None => call.family.is_some(),
                Some(f) if f == "all" => call.family.is_some(),
                Some(f) => call.family == Some(f.as_str()),
            };
            let method_ok = rule
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(call.method.as_str()));
            let tenant_ok = rule.tenant.as_deref().is_none_or(|t| {
                call.tenant
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(t))
            });
            let app_ok = rule.app.as_deref().is_none_or(|a| {
                call.app
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(a))
            });
            if !(family_ok && method_ok && tenant_ok && app_ok) {
                continue;
            }
            if let Some(p) = rule.probability {
                // Uniform in [0, 1) from the OS's randomness (a v4 UUID's random bits).
                let draw = (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64;
                if draw >= p {
                    // Not drawn this time: the rule does not match this call.
                    continue;
                }
            }
            if let Some(remaining) = active.remaining.as_mut() {
                *remaining -= 1;
            }
            return Some(active.rule.clone());
        }
        None
    }
}

/// The family of a call by its (canonical) path, or `None` for what faults never touch
/// (`/_iocd/`, `/health`, the documents).
fn family_of(method: &Method, path: &str) -> Option<&'static str> {
    if path.ends_with("/oauth2/v2.0/token") || path.ends_with("/oauth2/token") {
        return Some("token");
    }
    let rest = path
        .strip_prefix("/api/v1.0")
        .or_else(|| path.strip_prefix("/api"))?;
    let family = match (method.as_str(), rest) {
        ("POST", "/indicators") => "submit",
        ("GET", "/indicators") => "list",
        ("POST", "/indicators/import") => "import",
        ("POST", "/indicators/BatchDelete") => "batchdelete",
        ("GET", r) if r.starts_with("/indicators/") => "get",
        ("DELETE", r) if r.starts_with("/indicators/") => "delete",
        _ => return None,
    };
    Some(family)
}

fn marked(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(FAULT_HEADER, value);
    }
    response
}

/// The middleware: applies the first matching rule to API and token calls.
pub async fn inject(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if app.faults.is_empty() {
        return next.run(request).await;
    }
    let family = family_of(request.method(), request.uri().path());
    if family.is_none() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let (mut tenant, mut client) = (None, None);
    if family == Some("token") {
        tenant = parts.uri.path().split('/').nth(1).map(str::to_owned);
    } else if app.faults.needs_caller() {
        if let Ok(caller) = app.authenticator.authenticate(&parts).await {
            tenant = Some(caller.tenant_id);
            client = Some(caller.client_id);
        }
    }
    let call = Call {
        family,
        method: &parts.method,
        tenant,
        app: client,
    };
    let Some(rule) = app.faults.decide(&call) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    tracing::info!(rule = %rule.id, method = %parts.method, path = %parts.uri.path(), "injecting a fault");
    if let Some(ms) = rule.latency_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let response = next.run(Request::from_parts(parts, body)).await;
        return marked(response, &rule.id);
    }
    if rule.close == Some(true) {
        // Headers, then a body that fails: the server drops the connection mid-answer.
        let failing = aborting_body();
        let mut response = Response::new(failing);
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response.extensions_mut().insert(PassThroughError);
        return marked(response, &rule.id);
    }
    let status = StatusCode::from_u16(rule.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        s if s.is_server_error() => ErrorCode::InternalServerError,
        _ => ErrorCode::BadRequest,
    };
    let message = match status {
        StatusCode::TOO_MANY_REQUESTS => {
            "Rate limit is exceeded. Try again later (injected by an iocd fault rule).".to_string()
        }
        _ => format!("Injected by the iocd fault rule {}.", rule.id),
    };
    let mut error = ApiError::new(status, code, message);
    let retry_after = rule.retry_after.or(matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then_some(1));
    if let Some(secs) = retry_after {
        error = error.with_header(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    marked(error.into_response(), &rule.id)
}

/// A body whose first poll fails, so the connection is aborted.
fn aborting_body() -> Body {
    struct Failing;
    impl axum::body::HttpBody for Failing {
        type Data = bytes::Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
            std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection closed by an iocd fault rule",
            ))))
        }
    }
    Body::new(Failing)
}

fn invalid_rule(message: String) -> ApiError {
    ApiError::bad_request(
        ErrorCode::InvalidRequestBody,
        format!("Invalid fault rule: {message}."),
    )
}

/// Adds a fault rule (after the others: the first matching rule decides).
#[utoipa::path(
    post,
    path = "/_iocd/faults",
    tag = "emulator",
    request_body(content = FaultRule, content_type = "application/json"),
    responses(
        (status = 200, description = "The rule, with its id", body = FaultRule),
        (status = 400, description = "Not a valid rule (the message names the field)", body = ErrorBody),
        (status = 404, description = "The server runs without --emulator", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn add_fault(
    State(app): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<FaultRule>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| invalid_rule("not UTF-8".into()))?;
    let rule = FaultRule::parse(text).map_err(invalid_rule)?;
    Ok(Json(app.faults.add(rule)))
}

/// The rules in force, in order (used-up ones are gone).
#[utoipa::path(
    get,
    path = "/_iocd/faults",
    tag = "emulator",
    responses((status = 200, description = "The rules", body = Vec<FaultRule>)),
    security((), ("bearer" = []))
)]
pub async fn list_faults(State(app): State<AppState>) -> Json<Vec<FaultRule>> {
    Json(app.faults.list())
}

/// Removes every rule.
#[utoipa::path(
    delete,
    path = "/_iocd/faults",
    tag = "emulator",
    responses((status = 204, description = "No rules left")),
    security((), ("bearer" = []))
)]
pub async fn clear_faults(State(app): State<AppState>) -> StatusCode {
    app.faults.clear();
    StatusCode::NO_CONTENT
}

/// Removes one rule.
#[utoipa::path(
    delete,
    path = "/_iocd/faults/{id}",
    tag = "emulator",
    params(("id" = String, Path, description = "The rule's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such rule", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn remove_fault(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.faults.remove(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "No fault rule has the id '{id}'."
        )))
    }
}

/// Shared handle.
pub type SharedFaults = Arc<Faults>;
