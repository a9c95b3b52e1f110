//! The emulator's request journal: the last N API and token calls (`--journal-size`, 1,000 by
//! default) with their method, path, query, status, latency, caller, headers and bodies (each
//! capped at `--journal-body-bytes`), so that a test can see exactly what its client sent.
//! Secrets are redacted before anything is kept ([`crate::redact`]).
//!
//! Kept only with `--emulator`; read with `GET /_iocd/requests`, cleared with
//! `DELETE /_iocd/requests` and by `POST /_iocd/reset`. The controls themselves, `/health`,
//! `/ready`, `/metrics`, the documents and the web portal's pages are not journaled.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::faults::FAULT_HEADER;
use crate::{redact, AppState};

/// The request's URI as the client sent it, before paths are given their canonical case and
/// trailing slashes are trimmed (set by `Server::run`).
#[derive(Debug, Clone)]
pub struct ClientUri(pub axum::http::Uri);

/// One journaled call.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Increasing from 1; `?since=` takes the last one seen.
    pub id: u64,
    /// When the call arrived (UTC).
    pub time: String,
    pub method: String,
    /// As the client sent it.
    pub path: String,
    /// The query string, secrets redacted; null without one.
    pub query: Option<String>,
    pub status: u16,
    /// From the request's arrival to the response's headers.
    pub latency_ms: f64,
    /// The caller's tenant: its token's, or the path's on the token endpoints.
    pub tenant: Option<String>,
    /// The calling app's client id.
    pub app: Option<String>,
    /// The signed-in user (UPN) of a delegated token.
    pub user: Option<String>,
    /// The fault rule that answered instead of the service (`x-iocd-fault`), if any.
    pub fault: Option<String>,
    /// Request headers, credentials redacted.
    pub request_headers: BTreeMap<String, String>,
    /// The body as read by the service (UTF-8, lossy), secrets redacted, cut at the cap.
    pub request_body: Option<String>,
    /// The body's full size in bytes as read.
    pub request_body_bytes: u64,
    pub request_body_truncated: bool,
    pub response_headers: BTreeMap<String, String>,
    /// Null for a streamed or compressed answer (feeds, event streams).
    pub response_body: Option<String>,
    pub response_body_bytes: u64,
    pub response_body_truncated: bool,
}

/// The journal: a ring of the last `capacity` entries.
pub struct Journal {
    entries: Mutex<VecDeque<JournalEntry>>,
    last_id: AtomicU64,
    capacity: usize,
    body_bytes: usize,
}

impl Journal {
    pub fn new(capacity: usize, body_bytes: usize) -> Journal {
        Journal {
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            last_id: AtomicU64::new(0),
            capacity,
            body_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<JournalEntry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, mut entry: JournalEntry) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        // Numbered under the lock, so ids are in order in the ring.
        entry.id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The highest id given so far (0 before the first call).
    pub fn last_id(&self) -> u64 {
        self.last_id.load(Ordering::Relaxed)
    }

    /// Every entry `filter` accepts, oldest first.
    pub fn select(&self, filter: &JournalFilter) -> Vec<JournalEntry> {
        self.lock()
            .iter()
            .filter(|e| filter.accepts(e))
            .cloned()
            .collect()
    }

    /// Forgets the entries of `tenant`, or all; returns how many. Ids keep counting.
    pub fn clear(&self, tenant: Option<&str>) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        match tenant {
            None => entries.clear(),
            Some(t) => entries.retain(|e| {
                !e.tenant
                    .as_deref()
                    .is_some_and(|mine| mine.eq_ignore_ascii_case(t))
            }),
        }
        before - entries.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `GET /_iocd/requests`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JournalQuery {
    /// Only entries after this id (the `lastId` of an earlier answer).
    pub since: Option<u64>,
    /// Only this path (case-insensitive); a trailing `*` matches every path it begins.
    pub path: Option<String>,
    /// Only this status (`429`), class (`4xx`), or a comma-separated list of them.
    pub status: Option<String>,
    /// Only this HTTP method.
    pub method: Option<String>,
    /// Only this tenant's calls.
    pub tenant: Option<String>,
}

/// A status condition of `?status=`.
#[derive(Debug, Clone, Copy)]
enum StatusMatch {
    Exact(u16),
    Class(u16),
}

/// The journal's filter, from [`JournalQuery`].
#[derive(Debug, Default)]
pub struct JournalFilter {
    since: u64,
    path: Option<String>,
    statuses: Vec<StatusMatch>,
    method: Option<String>,
    tenant: Option<String>,
}

impl JournalFilter {
    fn from_query(query: JournalQuery) -> Result<JournalFilter, ApiError> {
        let mut statuses = Vec::new();
        if let Some(text) = &query.status {
            for part in text.split(',').map(str::trim) {
                let bad = || {
                    ApiError::bad_request(
                        ErrorCode::InvalidInput,
                        format!("status: '{part}' is neither a status (429) nor a class (4xx)."),
                    )
                };
                let lower = part.to_ascii_lowercase();
                let status = if let Some(class) = lower.strip_suffix("xx") {
                    match class.parse::<u16>() {
                        Ok(c @ 1..=5) if class.len() == 1 => StatusMatch::Class(c),
                        _ => return Err(bad()),
                    }
                } else {
                    match part.parse::<u16>() {
                        Ok(s @ 100..=599) => StatusMatch::Exact(s),
                        _ => return Err(bad()),
                    }
                };
                statuses.push(status);
            }
        }
        Ok(JournalFilter {
            since: query.since.unwrap_or(0),
            path: query.path,
            statuses,
            method: query.method,
            tenant: query.tenant,
        })
    }

    fn accepts(&self, entry: &JournalEntry) -> bool {
        if entry.id <= self.since {
            return false;
        }
        if let Some(path) = &self.path {
            let ok = match path.strip_suffix('*') {
                Some(prefix) => entry
                    .path
                    .get(..prefix.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(prefix)),
                None => entry.path.eq_ignore_ascii_case(path),
            };
            if !ok {
                return false;
            }
        }
        if !self.statuses.is_empty()
            && !self.statuses.iter().any(|s| match *s {
                StatusMatch::Exact(code) => entry.status == code,
                StatusMatch::Class(class) => entry.status / 100 == class,
            })
        {
            return false;
        }
        if let Some(method) = &self.method {
            if !entry.method.eq_ignore_ascii_case(method) {
                return false;
            }
        }
        if let Some(tenant) = &self.tenant {
            if !entry
                .tenant
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(tenant))
            {
                return false;
            }
        }
        true
    }
}

/// Whether calls to `path` are journaled: the API, iocd's own routes, the identity endpoints;
/// not the controls, health, metrics or documents.
fn journaled(path: &str) -> bool {
    const SKIPPED: &[&str] = &[
        "/_iocd",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/portal",
    ];
    !SKIPPED.iter().any(|s| {
        path.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
            && matches!(path.as_bytes().get(s.len()), None | Some(b'/'))
    })
}

fn is_token_endpoint(path: &str) -> bool {
    let path = path.trim_end_matches('/').to_ascii_lowercase();
    path.ends_with("/oauth2/v2.0/token") || path.ends_with("/oauth2/token")
}

/// How many bytes of a request body were read, by the journal and the service.
struct Captured {
    total: u64,
}

/// The request body after the journal read its first bytes: those bytes, then the rest as the
/// client sends it (counted as the service reads it), so the body limit and read timeouts still
/// apply. An error met while reading the first bytes is handed on after them.
struct Prefixed {
    head: VecDeque<Bytes>,
    error: Option<axum::Error>,
    rest: Option<Body>,
    captured: Arc<Mutex<Captured>>,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.head.pop_front() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
        }
        if let Some(error) = self.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        let Some(rest) = self.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(rest).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let mut captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
                captured.total += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let head: u64 = self.head.iter().map(|b| b.len() as u64).sum();
        match &self.rest {
            Some(rest) => {
                let hint = rest.size_hint();
                let mut out = hyper::body::SizeHint::new();
                out.set_lower(hint.lower() + head);
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper + head);
                }
                out
            }
            None => hyper::body::SizeHint::with_exact(head),
        }
    }
}

/// Reads up to `limit` bytes of `body` (whole frames) and returns them with the body that
/// yields them and then the rest.
async fn read_head(mut body: Body, limit: usize) -> (Vec<u8>, Prefixed) {
    use http_body_util::BodyExt;
    let (mut head, mut frames, mut error, mut ended) = (Vec::new(), VecDeque::new(), None, false);
    while head.len() <= limit {
        match body.frame().await {
            None => {
                ended = true;
                break;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                    frames.push_back(data);
                }
            }
            Some(Err(e)) => {
                error = Some(e);
                break;
            }
        }
    }
    let captured = Arc::new(Mutex::new(Captured {
        total: head.len() as u64,
    }));
    let prefixed = Prefixed {
        head: frames,
        error,
        rest: (!ended).then_some(body),
        captured,
    };
    (head, prefixed)
}

fn headers_of(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        let value = redact::header(name.as_str(), &value);
        out.entry(name.as_str().to_string())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// A captured body as text, redacted by its content type.
fn body_text(
    headers: &HeaderMap,
    bytes: &[u8],
    token_endpoint: bool,
    cap: usize,
) -> (Option<String>, bool) {
    if bytes.is_empty() {
        return (None, false);
    }
    let truncated = bytes.len() > cap;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(cap)]);
    (
        Some(redact::body(content_type(headers), &text, token_endpoint)),
        truncated,
    )
}

/// The client id of a Basic `Authorization` header (its user name), never its secret.
fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    let user = form_urlencoded::parse(format!("u={user}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    (!user.is_empty()).then_some(user)
}

/// The middleware: journals each call when the emulator is on (see the module documentation).
pub async fn record(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if !app.config.emulator || app.journal.capacity == 0 {
        return next.run(request).await;
    }
    let uri = request
        .extensions()
        .get::<ClientUri>()
        .map(|ClientUri(uri)| uri.clone())
        .unwrap_or_else(|| request.uri().clone());
    if !journaled(uri.path()) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let time = iocd_domain::time::format_wire(iocd_domain::time::now());
    let cap = app.journal.body_bytes;
    let (parts, body) = request.into_parts();
    let (mut request_head, prefixed) = read_head(body, cap).await;
    let captured = prefixed.captured.clone();
    let method = parts.method.clone();
    let request_headers = parts.headers.clone();
    let response = next
        .run(Request::from_parts(parts, Body::new(prefixed)))
        .await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;

    // The response body, when it is whole already (not streamed or compressed).
    let (response_parts, response_body) = response.into_parts();
    let whole = response_body.size_hint().exact().is_some()
        && !response_parts
            .headers
            .contains_key(header::CONTENT_ENCODING);
    let (response_body, response_bytes) = if whole {
        match axum::body::to_bytes(response_body, usize::MAX).await {
            Ok(bytes) => (Body::from(bytes.clone()), Some(bytes)),
            Err(_) => (Body::empty(), None),
        }
    } else {
        (response_body, None)
    };

    let token_endpoint = is_token_endpoint(uri.path());
    let request_total = captured
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .total;
    let request_body_truncated = request_total > cap as u64;
    request_head.truncate(cap + 1);
    let (request_body, _) = body_text(&request_headers, &request_head, token_endpoint, cap);
    let (response_body_text, response_body_truncated) = match &response_bytes {
        Some(bytes) => body_text(&response_parts.headers, bytes, token_endpoint, cap),
        None => (None, false),
    };

    // Who called: the bearer token's caller; on the token endpoints the path's tenant and the
    // form's (or Basic header's) client id.
    let (mut tenant, mut client, mut user) = (None, None, None);
    if token_endpoint {
        tenant = uri.path().split('/').nth(1).map(str::to_owned);
        client = form_urlencoded::parse(&request_head)
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.into_owned())
            .or_else(|| basic_client_id(&request_headers));
    } else if request_headers.contains_key(header::AUTHORIZATION) {
        let mut probe = axum::http::Request::new(());
        *probe.headers_mut() = request_headers.clone();
        let (probe, ()) = probe.into_parts();
        match app.authenticator.authenticate(&probe).await {
            Ok(caller) => {
                tenant = Some(caller.tenant_id);
                client = Some(caller.client_id);
                user = caller.user.map(|u| u.upn);
            }
            Err(_) => client = basic_client_id(&request_headers),
        }
    }

    let entry = JournalEntry {
        id: 0,
        time,
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(redact::form),
        status: response_parts.status.as_u16(),
        latency_ms,
        tenant,
        app: client,
        user,
        fault: response_parts
            .headers
            .get(FAULT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        request_headers: headers_of(&request_headers),
        request_body,
        request_body_bytes: request_total,
        request_body_truncated,
        response_headers: headers_of(&response_parts.headers),
        response_body: response_body_text,
        response_body_bytes: response_bytes.as_ref().map_or(0, |b| b.len() as u64),
        response_body_truncated,
    };
    app.journal.push(entry);
    Response::from_parts(response_parts, response_body)
}

/// `GET /_iocd/requests`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalPage {
    /// The entries, oldest first.
    pub value: Vec<JournalEntry>,
    /// The highest id given so far: pass it as `since` to see only later calls.
    pub last_id: u64,
}

/// The journaled calls, oldest first, filtered.
#[utoipa::path(
    get,
    path = "/_iocd/requests",
    tag = "emulator",
    params(JournalQuery),
    responses(
        (status = 200, description = "The journaled calls (secrets redacted)", body = JournalPage),
        (status = 400, description = "A bad `since` or `status`", body = ErrorBody),
        (status = 401, description = "No token, and the call is not from loopback or an app holds Iocd.Admin", body = ErrorBody),
        (status = 403, description = "The token lacks Iocd.Admin", body = ErrorBody),
        (status = 404, description = "The server runs without --emulator", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn list_requests(
    State(app): State<AppState>,
    uri: axum::http::Uri,
) -> Result<Json<JournalPage>, ApiError> {
    let query: JournalQuery = crate::emulator::query(&uri)?;
    let filter = JournalFilter::from_query(query)?;
    // The id first: an entry pushed meanwhile is seen by the next `since=lastId`.
    let last_id = app.journal.last_id();
    let value = app
        .journal
        .select(&filter)
        .into_iter()
        .filter(|e| e.id <= last_id)
        .collect();
    Ok(Json(JournalPage { value, last_id }))
}

/// `DELETE /_iocd/requests`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClearQuery {
    /// Only this tenant's entries (default: all).
    pub tenant: Option<String>,
}

/// Empties the journal (or one tenant's part of it).
#[utoipa::path(
    delete,
    path = "/_iocd/requests",
    tag = "emulator",
    params(ClearQuery),
    responses(
        (status = 204, description = "Cleared"),
        (status = 404, description = "The server runs without --emulator", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn clear_requests(
    State(app): State<AppState>,
    uri: axum::http::Uri,
) -> Result<StatusCode, ApiError> {
    let ClearQuery { tenant } = crate::emulator::query(&uri)?;
    app.journal.clear(tenant.as_deref());
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_health_and_documents_are_not_journaled() {
        for path in [
            "/_iocd/reset",
            "/health",
            "/metrics",
            "/docs/x",
            "/openapi.json",
        ] {
            assert!(!journaled(path), "{path}");
        }
        for path in [
            "/api/indicators",
            "/t/oauth2/v2.0/token",
            "/healthz",
            "/iocd/v1/match",
        ] {
            assert!(journaled(path), "{path}");
        }
    }

    #[test]
    fn basic_credentials_give_their_client_id_only() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("my-client:s3cret");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(basic_client_id(&headers).as_deref(), Some("my-client"));
    }
}
