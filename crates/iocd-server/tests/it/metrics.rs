//! `GET /metrics` (Prometheus text format) and `GET /ready`.

use std::collections::HashMap;

use iocd_server::ServerConfig;
use iocd_testkit::*;
use prometheus_parse::{Scrape, Value as Metric};
use reqwest::Method;
use serde_json::Value;

/// Scrapes `/metrics`, checks the text strictly (every sample line is `name{labels} value`, every
/// name starts with `iocd_` and has a `# TYPE`), and parses it with a Prometheus parser.
async fn scrape(server: &TestServer) -> Scrape {
    let res = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name.starts_with("iocd_"), "{line}");
            typed.push(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line: series value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(
            typed.iter().any(|t| name == t
                || name
                    .strip_prefix(t.as_str())
                    .is_some_and(|s| ["_bucket", "_sum", "_count", "_total"].contains(&s))),
            "no # TYPE for {name}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
        }
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The samples of metric `name` that carry every one of `labels`.
fn samples<'s>(
    scrape: &'s Scrape,
    name: &'s str,
    labels: &'s [(&str, &str)],
) -> impl Iterator<Item = &'s prometheus_parse::Sample> {
    scrape
        .samples
        .iter()
        .filter(move |s| s.metric == name)
        .filter(move |s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, name, labels)
        .map(|s| match &s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
            other => panic!("{name} is not a counter or gauge: {other:?}"),
        })
        .sum()
}

fn histogram_count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, name, labels)
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

async fn metrics_parse_and_move_as_requests_are_made() {
    let server = TestServer::start_with(ServerConfig {
        rate_limits: iocd_server::RateLimitConfig {
            policy: iocd_ratelimit::Policy::mde_defaults().with_override(
                &"submit=2/1h"
                    .parse::<iocd_ratelimit::PolicyOverride>()
                    .expect("a rate-limit override"),
            ),
            ..iocd_server::RateLimitConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let before = scrape(&server).await;
    let tokens_before = counter(
        &before,
        "iocd_tokens_issued_total",
        &[("grant", "client_credentials")],
    );
    assert!(tokens_before >= 1.0, "the test app's token was counted");

    for n in 0..3 {
        server
            .post_json("/api/indicators", &domain_request(n))
            .await;
    }
    server.send(Method::GET, "/api/indicators/424242").await;
    let res = server
        .client
        .post(server.url(&format!("/{}/oauth2/v2.0/token", server.app.tenant_id())))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", server.app.client_id()),
            ("client_secret", "wrong"),
            ("scope", "https://api.securitycenter.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    client_credentials_token(&server.client, &server.base_url(), &server.app.credentials).await;
    let res = server
        .request(Method::GET, "/iocd/v1/match?domain=host0.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = server
        .request(Method::GET, "/iocd/v1/feeds/edl-domain")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let after = scrape(&server).await;
    let submits = |s: &Scrape, status| {
        counter(
            s,
            "iocd_http_requests_total",
            &[("family", "submit"), ("status", status)],
        )
    };
    assert_eq!(submits(&after, "200") - submits(&before, "200"), 2.0);
    assert_eq!(submits(&after, "429") - submits(&before, "429"), 1.0);
    assert_eq!(
        counter(
            &after,
            "iocd_http_requests_total",
            &[("family", "get"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &after,
            "iocd_rate_limit_rejections_total",
            &[("family", "submit")]
        ),
        1.0
    );
    assert!(
        histogram_count(
            &after,
            "iocd_http_request_duration_seconds",
            &[("family", "submit")]
        ) >= 3.0
    );
    assert_eq!(
        counter(
            &after,
            "iocd_tokens_issued_total",
            &[("grant", "client_credentials")]
        ),
        tokens_before + 1.0
    );
    assert_eq!(
        counter(
            &after,
            "iocd_token_failures_total",
            &[("reason", "invalid_client")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &after,
            "iocd_indicators_active",
            &[("tenant", server.app.tenant_id()), ("type", "DomainName")]
        ),
        2.0
    );
    assert!(histogram_count(&after, "iocd_store_commit_batch_commands", &[]) >= 2.0);
    assert!(histogram_count(&after, "iocd_store_commit_duration_seconds", &[]) >= 2.0);
    assert_eq!(counter(&after, "iocd_store_write_queue_depth", &[]), 0.0);
    assert_eq!(
        counter(
            &after,
            "iocd_match_observables_total",
            &[("result", "matched")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &after,
            "iocd_feed_requests_total",
            &[("format", "edl-domain")]
        ),
        1.0
    );
    // Every family and status label comes from a fixed list, whatever the path.
    server.send(Method::GET, "/no/such/route/12345").await;
    let last = scrape(&server).await;
    let families: HashMap<&str, ()> = last
        .samples
        .iter()
        .filter(|s| s.metric == "iocd_http_requests_total")
        .filter_map(|s| s.labels.get("family"))
        .map(|f| (f, ()))
        .collect();
    assert!(families.contains_key("other"));
    assert!(!families.keys().any(|f| f.contains("12345")));
}

async fn ready_checks_the_database() {
    let server = TestServer::start().await;
    let (status, body) = server.anonymous_get("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "not used");
    let (status, body) = server.anonymous_get("/health").await;
    assert_eq!(status, 200, "{body}");
}

/// `/ready` names a stopped Redis, and recovers when it is back.
#[tokio::test]
async fn ready_reports_a_stopped_redis() {
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return env::skip("install redis-server to run ready_reports_a_stopped_redis");
    }
    let redis = PrivateRedis::start(free_port()).await;
    let server = TestServer::start_with(ServerConfig {
        rate_limits: iocd_server::RateLimitConfig {
            redis_url: Some(redis.url()),
            redis_timeout: std::time::Duration::from_millis(300),
            ..iocd_server::RateLimitConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let ready = || async { server.anonymous_get("/ready").await };
    let (status, body) = ready().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redis"], "ok");
    let port = redis.stop();
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("redis"), "{message}");
    assert!(!message.contains("database"), "{message}");
    // Liveness is not readiness.
    let res = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _redis = PrivateRedis::start(port).await;
    let mut last = Value::Null;
    for _ in 0..50 {
        let (status, body) = ready().await;
        if status == 200 {
            return;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("/ready did not recover after Redis came back: {last}");
}

on_every_backend!(
    metrics_parse_and_move_as_requests_are_made,
    ready_checks_the_database,
);
