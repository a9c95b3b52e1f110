//! Protocol-level errors in the API's error shape: a request whose URI or headers are too large,
//! or that does not parse as HTTP at all.
//!
//! Two places answer them:
//!
//! * **The application**, for requests hyper can still parse: hyper's own limits sit above
//!   iocd's ([`MAX_URI_BYTES`], [`MAX_HEADER_BYTES`]), so an oversize request reaches
//!   [`head_refusal`], which answers 414 or 431 as an `ApiError` (the error envelope asks it
//!   first, then adds the body and the request id, and the request is logged like any other).
//! * **The connection**, for what hyper must refuse before there is a request: a malformed
//!   request line, header name or `Content-Length`, more header lines than it parses, a URI
//!   beyond what `http::Uri` can hold (65,534 bytes), or a head beyond its read buffer. hyper then
//!   writes a bare `400`/`414`/`431` with no body and closes the connection, and offers no hook
//!   to change it. The connection's byte stream (`connections::Tracked`) recognises that exact
//!   response when no request is in the application and writes [`automatic_answer`]'s
//!   replacement instead: the same status, with the error body and a request id of its own.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iocd_domain::ErrorCode;

use crate::error::{ApiError, ErrorBody, ErrorDetail};

/// The longest request target the application accepts (the path and query as sent); 414 beyond.
pub const MAX_URI_BYTES: usize = 32 * 1024;

/// The largest header section the application accepts, counted as on the wire (`name: value`
/// and the line end, for each header); 431 beyond.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// hyper's HTTP/1 read buffer, which bounds a request's head: well above the application's
/// limits, so a head between them reaches [`head_refusal`].
pub(crate) const HTTP1_MAX_BUF_BYTES: usize = 512 * 1024;

/// The HTTP/2 header list size iocd advertises (RFC 7541 sizes: 32 bytes more per header than
/// on HTTP/1), above [`MAX_HEADER_BYTES`] for the same reason, and as large as HTTP/1's read
/// buffer, so that the application answers the same heads on both. Beyond it the h2 library
/// answers a bare 431 itself (HTTP/2 frames leave no answer to rewrite on the connection); a
/// list is decoded and held only while the application refuses it.
pub(crate) const HTTP2_MAX_HEADER_LIST_BYTES: u32 = HTTP1_MAX_BUF_BYTES as u32;

/// The refusal of a request whose target or headers are larger than iocd accepts, if it is one.
/// Checked by [`crate::error::error_envelope`] before anything else reads the head, so that
/// the refusal is in the API's error shape.
pub(crate) fn head_refusal(req: &Request) -> Option<Response> {
    let uri = req.uri();
    let uri_bytes = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(
            ApiError::new(
                StatusCode::URI_TOO_LONG,
                ErrorCode::RequestUriTooLong,
                format!(
                    "The request URI is {uri_bytes} bytes long; iocd accepts at most {MAX_URI_BYTES}. Send long lists of ids with POST /api/indicators/BatchDelete, or split the $filter."
                ),
            )
            .into_response(),
        );
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(
            ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::RequestHeaderFieldsTooLarge,
                format!(
                    "The request's headers take {header_bytes} bytes; iocd accepts at most {MAX_HEADER_BYTES}."
                ),
            )
            .into_response(),
        );
    }
    None
}

/// If `written` is exactly one of hyper's automatic error responses (a status line of 400, 414
/// or 431 and only `content-length: 0`, `connection: close` and `date` headers), the response to
/// write instead: the same status and date, the error body, a new request id as `target` and
/// `x-request-id`, and `connection: close`. `None` for anything else.
pub(crate) fn automatic_answer(written: &[u8]) -> Option<Vec<u8>> {
    // hyper's head is about 100 bytes; anything much longer is not one.
    if written.len() > 512 || !may_be_automatic_answer(written) {
        return None;
    }
    let text = std::str::from_utf8(written).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let version = status_line.get(..8)?;
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return None;
    }
    let code: u16 = status_line.get(9..12)?.parse().ok()?;
    let mut date = None;
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        match (name.to_ascii_lowercase().as_str(), value) {
            ("content-length", "0") | ("connection", "close") => {}
            ("date", value) => date = Some(value),
            _ => return None,
        }
    }
    let (status, error_code, message) = match code {
        400 => (
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "The request is not valid HTTP: its request line, a header name or value, or its Content-Length is malformed.",
        ),
        414 => (
            StatusCode::URI_TOO_LONG,
            ErrorCode::RequestUriTooLong,
            "The request URI is longer than an HTTP server can hold (65,534 bytes); iocd accepts at most 32,768.",
        ),
        431 => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::RequestHeaderFieldsTooLarge,
            "The request's head is too large: more than 100 header lines, or more bytes than iocd reads before the end of the headers.",
        ),
        _ => return None,
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    tracing::info!(
        request_id,
        status = code,
        "refused a request that could not be parsed, before routing"
    );
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code: error_code.as_str().to_string(),
            message: message.to_string(),
            target: request_id.clone(),
        },
    })
    .ok()?;
    let mut answer = format!(
        "{version} {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nodata-version: 4.0\r\nconnection: close\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    if let Some(date) = date {
        answer.push_str("date: ");
        answer.push_str(date);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

/// A cheap first look: `written` starts like a 4xx status line.
pub(crate) fn may_be_automatic_answer(written: &[u8]) -> bool {
    matches!(written.get(..10), Some(b"HTTP/1.1 4" | b"HTTP/1.0 4"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_errors_are_answered_with_a_body() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\ndate: Mon, 30 Nov 2026 08:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(automatic_answer(bare).expect("replaced")).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("date: Mon, 30 Nov 2026 08:00:00 GMT"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "RequestHeaderFieldsTooLarge");
        let id = body["error"]["target"].as_str().unwrap();
        assert!(head.contains(&format!("x-request-id: {id}\r\n")));
        assert!(head.contains(&format!(
            "content-length: {}\r\n",
            answer.len() - head.len() - 4
        )));
    }

    #[test]
    fn other_responses_are_left_alone() {
        for written in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"\x00\x00\x12\x04\x00\x00\x00\x00\x00",
            b"",
        ] {
            assert!(automatic_answer(written).is_none(), "{written:?}");
        }
    }
}
