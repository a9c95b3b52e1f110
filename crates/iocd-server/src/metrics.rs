//! `GET /metrics`: the server's metrics in the Prometheus text format (0.0.4), every name
//! prefixed `iocd_`. One registry per [`AppState`] (no global recorder), so servers in one
//! process (tests) count apart.
//!
//! Label sets are bounded: route families are a fixed list, statuses are HTTP's, token
//! failures are OAuth2 error names and AADSTS numbers, feed formats and match results are
//! fixed lists; active indicators are labelled by tenant only for the
//! [`TENANT_LABELS`] tenants with the most, the rest summed under `tenant="_other"`.

use std::borrow::Cow;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::AppState;

/// Most tenants labelled by name in `iocd_indicators_active`.
pub const TENANT_LABELS: usize = 20;

type Labels = Vec<(&'static str, String)>;

/// The labels of every request's latency: fixed strings, so counting a request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    family: &'static str,
}

/// The labels of every request's count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    family: &'static str,
    status: u16,
}

/// The metrics a server keeps, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<ResponseLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    rate_limited: Family<Labels, Counter>,
    tokens_issued: Family<Labels, Counter>,
    token_failures: Family<Labels, Counter>,
    match_observables: Family<Labels, Counter>,
    feed_requests: Family<Labels, Counter>,
    faults_injected: Counter,
    active: Family<Labels, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// The registry for a server whose store's writer reports `writer`.
    pub fn new(writer: iocd_store::WriterMetrics) -> Metrics {
        let mut registry = Registry::with_prefix("iocd");
        let requests = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route family and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response headers, by route family",
            latency.clone(),
        );
        let rate_limited = Family::<Labels, Counter>::default();
        registry.register(
            "rate_limit_rejections",
            "API calls refused with 429 by the rate limiter, by endpoint family",
            rate_limited.clone(),
        );
        let tokens_issued = Family::<Labels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Access tokens issued by the token endpoints, by grant type",
            tokens_issued.clone(),
        );
        let token_failures = Family::<Labels, Counter>::default();
        registry.register(
            "token_failures",
            "Token requests refused, by OAuth2 error and AADSTS code",
            token_failures.clone(),
        );
        let match_observables = Family::<Labels, Counter>::default();
        registry.register(
            "match_observables",
            "Observables asked about on /iocd/v1/match, by result (matched, unmatched, invalid)",
            match_observables.clone(),
        );
        let feed_requests = Family::<Labels, Counter>::default();
        registry.register(
            "feed_requests",
            "Feeds served on /iocd/v1/feeds, by format",
            feed_requests.clone(),
        );
        let faults_injected = Counter::default();
        registry.register(
            "faults_injected",
            "Calls answered by an emulator fault rule",
            faults_injected.clone(),
        );
        let active = Family::<Labels, Gauge>::default();
        registry.register(
            "indicators_active",
            "Active (unexpired) indicators by tenant (the largest few, the rest as _other) and type",
            active.clone(),
        );
        registry.register(
            "store_write_queue_depth",
            "Write commands waiting for the group-commit writer",
            writer.queued,
        );
        registry.register(
            "store_commit_batch_commands",
            "Write commands per group commit",
            writer.batch_commands,
        );
        registry.register(
            "store_commit_duration_seconds",
            "Time of a group commit's transaction, first statement to commit",
            writer.commit_seconds,
        );
        Metrics {
            registry,
            requests,
            latency,
            rate_limited,
            tokens_issued,
            token_failures,
            match_observables,
            feed_requests,
            faults_injected,
            active,
        }
    }

    /// A call the rate limiter refused.
    pub fn rate_limited(&self, family: &str) {
        self.rate_limited
            .get_or_create(&vec![("family", family.to_string())])
            .inc();
    }

    /// A token issued for `grant_type` (bounded to the grants iocd knows).
    pub fn token_issued(&self, grant_type: &str) {
        self.tokens_issued
            .get_or_create(&vec![("grant", known_grant(grant_type).to_string())])
            .inc();
    }

    /// A token request refused with OAuth2 `error` and AADSTS `code`.
    pub fn token_failed(&self, error: &str, code: u32) {
        self.token_failures
            .get_or_create(&vec![
                ("reason", error.to_string()),
                ("code", code.to_string()),
            ])
            .inc();
    }

    /// Observables of a match call: how many matched an indicator, matched none, were invalid.
    pub fn matched(&self, matched: u64, unmatched: u64, invalid: u64) {
        for (result, n) in [
            ("matched", matched),
            ("unmatched", unmatched),
            ("invalid", invalid),
        ] {
            if n > 0 {
                self.match_observables
                    .get_or_create(&vec![("result", result.to_string())])
                    .inc_by(n);
            }
        }
    }

    /// A feed served in `format` (one of the feed formats; the route refuses others first).
    pub fn feed_served(&self, format: &str) {
        self.feed_requests
            .get_or_create(&vec![("format", format.to_ascii_lowercase())])
            .inc();
    }

    /// The text of `/metrics` after refreshing the gauges read at scrape time.
    async fn render(&self, app: &AppState) -> String {
        match app.store.active_counts(iocd_domain::time::now()).await {
            Ok(counts) => {
                self.active.clear();
                for (tenant, kind, n) in bounded_tenants(counts) {
                    self.active
                        .get_or_create(&vec![("tenant", tenant), ("type", kind)])
                        .set(n as i64);
                }
            }
            Err(error) => tracing::warn!(%error, "counting active indicators for /metrics failed"),
        }
        let mut text = String::new();
        if let Err(error) = prometheus_text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding the metrics failed");
        }
        text
    }
}

fn known_grant(grant_type: &str) -> &'static str {
    match grant_type {
        "client_credentials" => "client_credentials",
        "authorization_code" => "authorization_code",
        "password" => "password",
        "refresh_token" => "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => "device_code",
        _ => "other",
    }
}

/// The active counts with at most [`TENANT_LABELS`] tenants named (those with the most
/// indicators), the others summed per type under `_other`.
fn bounded_tenants(counts: Vec<iocd_store::ActiveCount>) -> Vec<(String, String, u64)> {
    let mut totals: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for c in &counts {
        *totals.entry(c.tenant_id.as_str()).or_default() += c.count;
    }
    let mut ranked: Vec<(&str, u64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: std::collections::HashSet<String> = ranked
        .iter()
        .take(TENANT_LABELS)
        .map(|(t, _)| t.to_string())
        .collect();
    let mut out: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for c in counts {
        let tenant = if named.contains(&c.tenant_id) {
            c.tenant_id
        } else {
            "_other".to_string()
        };
        *out.entry((tenant, c.indicator_type)).or_default() += c.count;
    }
    out.into_iter().map(|((t, k), n)| (t, k, n)).collect()
}

/// The route family of a call for `iocd_http_requests`: Defender's endpoint families, the
/// identity endpoints, iocd's own routes; a fixed list.
pub fn route_family(method: &Method, path: &str) -> &'static str {
    // Paths are nearly always lower case already: copy only those that are not.
    let lower = if path.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(path.to_ascii_lowercase())
    } else {
        Cow::Borrowed(path)
    };
    let lower = lower.trim_end_matches('/');
    if lower.ends_with("/oauth2/v2.0/token") || lower.ends_with("/oauth2/token") {
        return "token";
    }
    if lower.contains("/oauth2/") || lower.starts_with("/devicelogin") {
        return "signin";
    }
    if lower.contains("/.well-known/") || lower.contains("/discovery/") {
        return "discovery";
    }
    if let Some(rest) = lower
        .strip_prefix("/api/v1.0")
        .or_else(|| lower.strip_prefix("/api"))
    {
        return match (method.as_str(), rest) {
            ("POST", "/indicators") => "submit",
            ("GET", "/indicators") => "list",
            ("POST", "/indicators/import") => "import",
            ("POST", "/indicators/batchdelete") => "batchdelete",
            ("GET", r) if r.starts_with("/indicators/") => "get",
            ("DELETE", r) if r.starts_with("/indicators/") => "delete",
            _ => "api_other",
        };
    }
    if lower.starts_with("/iocd/v1/match") {
        "match"
    } else if lower.starts_with("/iocd/v1/feeds") {
        "feed"
    } else if lower.starts_with("/iocd/v1/changes") || lower.ends_with("/history") {
        "changes"
    } else if lower.starts_with("/_iocd") {
        "emulator"
    } else if lower == "/health" || lower == "/ready" {
        "health"
    } else if lower == "/metrics" {
        "metrics"
    } else if lower == "/portal" || lower.starts_with("/portal/") {
        "portal"
    } else if lower.starts_with("/docs") || lower == "/openapi.json" {
        "docs"
    } else {
        "other"
    }
}

/// The middleware counting every call (outermost, so errors of every layer count).
pub async fn observe(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let family = route_family(request.method(), request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &app.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabels { family })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&ResponseLabels {
            family,
            status: response.status().as_u16(),
        })
        .inc();
    if response.headers().contains_key(crate::faults::FAULT_HEADER) {
        metrics.faults_injected.inc();
    }
    response
}

/// The metrics, in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4; every name starts with iocd_", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(app): State<AppState>) -> Response {
    let text = app.metrics.render(&app).await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_a_fixed_list() {
        let cases = [
            (Method::POST, "/api/indicators", "submit"),
            (Method::GET, "/API/v1.0/Indicators/", "list"),
            (Method::GET, "/api/indicators/12", "get"),
            (Method::POST, "/api/indicators/BatchDelete", "batchdelete"),
            (Method::POST, "/t/oauth2/v2.0/token", "token"),
            (Method::GET, "/t/oauth2/v2.0/authorize", "signin"),
            (Method::GET, "/iocd/v1/feeds/edl", "feed"),
            (Method::GET, "/whatever/you/like", "other"),
        ];
        for (method, path, family) in cases {
            assert_eq!(route_family(&method, path), family, "{method} {path}");
        }
    }

    #[test]
    fn only_the_largest_tenants_are_named() {
        let mut counts = Vec::new();
        for t in 0..(TENANT_LABELS + 5) {
            counts.push(iocd_store::ActiveCount {
                tenant_id: format!("t{t:03}"),
                indicator_type: "DomainName".into(),
                count: 100 + t as u64,
            });
        }
        let bounded = bounded_tenants(counts);
        assert_eq!(bounded.len(), TENANT_LABELS + 1);
        let other = bounded.iter().find(|(t, _, _)| t == "_other").unwrap();
        // The five smallest: 100..=104.
        assert_eq!(other.2, 100 + 101 + 102 + 103 + 104);
    }
}
