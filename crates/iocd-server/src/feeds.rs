//! `GET /iocd/v1/feeds/{format}`: the tenant's indicators as a list an enforcement point
//! loads. Which entries and which lines are `iocd_domain::feeds`'; this module authenticates
//! (a bearer token, or HTTP Basic with an app's client id and secret), answers `304` to a
//! matching `If-None-Match`, and streams the feed chunk by chunk from the match index, so the
//! index's lock is held for one chunk at a time and memory does not grow with the feed.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use iocd_domain::feeds::FeedRequest;
use iocd_domain::time;
use iocd_identity::authenticate_basic;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::identity::{Caller, READ_ROLES};
use crate::AppState;

/// The header that says `max=N` cut the feed: `kept N of M`.
pub const TRUNCATED_HEADER: &str = "x-iocd-feed-truncated";

/// The caller of a feed: HTTP Basic (client id, secret) or, as everywhere, a bearer token.
pub struct FeedCaller(pub Caller);

impl FromRequestParts<AppState> for FeedCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let basic = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("basic")
                    .then(|| rest.trim().to_string())
            });
        let Some(encoded) = basic else {
            return Caller::from_request_parts(parts, state)
                .await
                .map(FeedCaller);
        };
        let refused = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "Invalid Basic credentials: send an app's client id as the user name and its client secret as the password.",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"iocd feeds\""),
            )
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(refused)?;
        let (client_id, secret) = decoded.split_once(':').ok_or_else(refused)?;
        match authenticate_basic(&state.identity, client_id, secret).await? {
            Some(caller) => Ok(FeedCaller(caller)),
            None => Err(refused()),
        }
    }
}

/// A feed for an enforcement point.
#[utoipa::path(
    get,
    path = "/iocd/v1/feeds/{format}",
    tag = "feeds",
    params(
        ("format" = String, Path, description = "edl-ip, edl-domain, edl-url, fortigate-ip, fortigate-domain, fortigate-url, fortigate-hash, rpz, suricata-sha256, suricata-md5, suricata-ip, zeek-intel, text-<indicatorType>"),
        ("action" = Option<String>, Query, description = "Actions carried, comma-separated (default: Block, AlertAndBlock, BlockAndRemediate; an RPZ also carries Allowed as rpz-passthru)"),
        ("deviceGroup" = Option<String>, Query, description = "Decide as for a device of this group"),
        ("minSeverity" = Option<String>, Query, description = "Informational, Low, Medium or High"),
        ("type" = Option<String>, Query, description = "Indicator types carried, comma-separated"),
        ("max" = Option<usize>, Query, description = "Keep the N most important entries (severity, then recency); the x-iocd-feed-truncated header says when it cut"),
        ("subdomains" = Option<bool>, Query, description = "Domain lists: add *.domain lines (default true)"),
        ("policy" = Option<String>, Query, description = "rpz: nxdomain (default), nodata, drop or cname:NAME"),
    ),
    responses(
        (status = 200, description = "The feed, streamed; ETag and Last-Modified set", content_type = "text/plain"),
        (status = 304, description = "If-None-Match named the current ETag"),
        (status = 400, description = "Unknown format or option; the message names it", body = ErrorBody),
        (status = 401, description = "No valid bearer token or Basic credentials", body = ErrorBody),
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn feed(
    State(app): State<AppState>,
    FeedCaller(caller): FeedCaller,
    Path(format): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(READ_ROLES)?;
    let request = FeedRequest::parse(&format, &query)?;
    app.metrics.feed_served(&format);
    let now = time::now();
    let tenant = caller.tenant_id.clone();
    let version = app.matcher.feed_version(&tenant, now).await?;
    // The content is a function of the request, the change sequence number and which
    // indicators have expired by now (an expiry takes effect before the sweeper logs it).
    let mut hasher = DefaultHasher::new();
    (
        format.to_ascii_lowercase(),
        &query,
        version.sequence,
        version.expired,
        version.last_expiry,
    )
        .hash(&mut hasher);
    let etag = format!("\"{}-{:016x}\"", version.sequence, hasher.finish());
    let changed_at = version
        .changed_at
        .max(version.last_expiry)
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    let last_modified = changed_at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let mut response_headers = vec![
        (header::ETAG, etag.clone()),
        (header::LAST_MODIFIED, last_modified),
        (header::CACHE_CONTROL, "no-cache".to_string()),
    ];
    let matches_etag = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    if matches_etag {
        return Ok(with_headers(
            StatusCode::NOT_MODIFIED.into_response(),
            response_headers,
        ));
    }
    let keep = match request.max {
        Some(max) => {
            let (ids, total) = app
                .matcher
                .with_index(&tenant, |idx| request.most_important(idx, max, now))
                .await?;
            if total > max {
                response_headers.push((
                    header::HeaderName::from_static(TRUNCATED_HEADER),
                    format!("kept {max} of {total}"),
                ));
            }
            Some(ids)
        }
        None => None,
    };
    // RFC 1982 serial arithmetic wraps: the sequence number modulo 2^32.
    let serial = version.sequence as u32;
    let header_text = request.header(serial, &now.to_rfc3339());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let matcher = app.matcher.clone();
    tokio::spawn(async move {
        if !header_text.is_empty() && tx.send(Ok(Bytes::from(header_text))).await.is_err() {
            return;
        }
        let failed = |error: &dyn std::fmt::Display| {
            tracing::error!(error = %error, "feed generation failed");
            Err(std::io::Error::other("feed generation failed"))
        };
        // The index changes between chunks; the hold keeps its records where the cursor
        // points until the feed ends (or the client goes away and this task with it).
        let (_hold, first) = match matcher
            .with_index(&tenant, |idx| (idx.hold_layout(), idx.first_chunk()))
            .await
        {
            Ok(start) => start,
            Err(e) => {
                let _ = tx.send(failed(&e)).await;
                return;
            }
        };
        for pass in request.passes() {
            let mut from = Some(first);
            while let Some(pos) = from {
                let chunk = matcher
                    .with_index(&tenant, |idx| {
                        request.render_chunk(idx, pos, *pass, keep.as_ref(), now)
                    })
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|rendered| rendered.map_err(|e| e.to_string()));
                let (text, next) = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        let _ = tx.send(failed(&e)).await;
                        return;
                    }
                };
                if !text.is_empty() && tx.send(Ok(Bytes::from(text))).await.is_err() {
                    return; // the client went away
                }
                from = next;
            }
        }
    });
    // Fused: the compression layer polls once more after the end.
    let stream = futures::StreamExt::fuse(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(request_content_type(&format)),
    );
    Ok(with_headers(response, response_headers))
}

fn request_content_type(format: &str) -> &'static str {
    iocd_domain::feeds::FeedFormat::parse(format)
        .map(|f| f.content_type())
        .unwrap_or("text/plain; charset=utf-8")
}

fn with_headers(mut response: Response, headers: Vec<(header::HeaderName, String)>) -> Response {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
