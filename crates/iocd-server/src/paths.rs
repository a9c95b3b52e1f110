//! Case-insensitive routing for the API's fixed path segments.

use axum::extract::Request;
use axum::http::Uri;

/// The fixed segments under `/api`, in their canonical spelling.
const SEGMENTS: &[&str] = &["api", "v1.0", "indicators", "import", "BatchDelete"];

/// Rewrites `/API/Indicators/batchdelete?x` to `/api/indicators/BatchDelete?x`; ids and
/// anything outside `/api` are left alone.
pub fn canonicalise(mut req: Request) -> Request {
    let path = req.uri().path();
    if !path
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("/api"))
    {
        return req;
    }
    let rewritten: Vec<&str> = path
        .split('/')
        .map(|seg| {
            SEGMENTS
                .iter()
                .find(|canon| canon.eq_ignore_ascii_case(seg))
                .copied()
                .unwrap_or(seg)
        })
        .collect();
    let rewritten = rewritten.join("/");
    if rewritten == path {
        return req;
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rewritten}?{q}"),
        None => rewritten,
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}
