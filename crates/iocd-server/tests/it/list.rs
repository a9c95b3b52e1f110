//! GET /api/indicators: the OData subset real clients send, checked against what the real
//! server returns for a known set of indicators; paging with @odata.nextLink; OData errors.

use std::collections::HashSet;

use iocd_testkit::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Five indicators, labelled by their value, that the filter table below is written against.
fn seed() -> Value {
    json!({"Indicators": [
        {
            "indicatorValue": "alpha.evil.example", "indicatorType": "DomainName", "action": "Block",
            "title": "Alpha O'Brien", "description": "first", "severity": "High", "generateAlert": true,
            "application": "Edge", "expirationTime": "2099-01-01T00:00:00.5Z",
            "rbacGroupNames": ["Servers", "Laptops"], "rbacGroupIds": ["10"]
        },
        {
            "indicatorValue": "beta.evil.example", "indicatorType": "DomainName", "action": "Warn",
            "title": "Beta 50% off", "description": "second", "severity": "Low",
            "expirationTime": "2098-06-01T12:00:00Z", "rbacGroupNames": ["Servers"]
        },
        {
            "indicatorValue": "https://gamma.example/path?q=1", "indicatorType": "Url", "action": "Audit",
            "generateAlert": true, "title": "Gamma", "description": "third", "severity": "Medium"
        },
        {
            "indicatorValue": "8.8.8.8", "indicatorType": "IpAddress", "action": "Allowed",
            "title": "delta_ip", "description": "fourth", "severity": "Informational",
            "generateAlert": false, "rbacGroupIds": ["7"]
        },
        {
            "indicatorValue": "2233223322332233223322332233223322332233223322332233223322332222",
            "indicatorType": "FileSha256", "action": "BlockAndRemediate", "title": "Epsilon",
            "description": "fifth", "severity": "High", "expirationTime": "2097-01-01T00:00:00Z",
            "rbacGroupNames": ["Laptops"]
        }
    ]})
}

const ALPHA: &str = "alpha.evil.example";
const BETA: &str = "beta.evil.example";
const GAMMA: &str = "https://gamma.example/path?q=1";
const DELTA: &str = "8.8.8.8";
const EPSILON: &str = "2233223322332233223322332233223322332233223322332233223322332222";
const ALL: &[&str] = &[ALPHA, BETA, GAMMA, DELTA, EPSILON];

async fn seeded() -> TestServer {
    let server = TestServer::start().await;
    let (status, body) =
        status_json(server.post_json("/api/indicators/import", &seed()).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["isFailed"] == false),
        "{body}"
    );
    server
}

/// The indicator values of a list response, in order.
fn values(body: &Value) -> Vec<String> {
    body["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no value array in {body}"))
        .iter()
        .map(|i| i["indicatorValue"].as_str().unwrap().to_string())
        .collect()
}

/// GET with a raw (already encoded) query string.
async fn list(server: &TestServer, query: &str) -> (u16, Value) {
    status_json(
        server
            .send(Method::GET, &format!("/api/indicators?{query}"))
            .await,
    )
    .await
}

/// A filter and the values it must select, on a server whose default app created them all.
fn filter_cases(server: &TestServer) -> Vec<(String, Vec<&'static str>)> {
    let created_by_all = format!("createdBy eq '{}'", server.app.credentials.client_id);
    let by_display_name_url = format!(
        "createdByDisplayName eq '{}' and indicatorType eq 'Url'",
        server.app.display_name
    );
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("indicatorValue eq 'alpha.evil.example'".into(), vec![ALPHA]),
        (format!("indicatorValue eq '{GAMMA}'"), vec![GAMMA]),
        ("indicatorValue ne '8.8.8.8'".into(), vec![ALPHA, BETA, GAMMA, EPSILON]),
        ("indicatorType eq 'DomainName'".into(), vec![ALPHA, BETA]),
        ("action eq 'Block' or action eq 'Warn'".into(), vec![ALPHA, BETA]),
        ("action eq 'Audit' and generateAlert eq true".into(), vec![GAMMA]),
        ("severity eq 'High'".into(), vec![ALPHA, EPSILON]),
        ("generateAlert eq false".into(), vec![BETA, DELTA, EPSILON]),
        ("title eq 'Alpha O''Brien'".into(), vec![ALPHA]),
        ("contains(title,'O''B')".into(), vec![ALPHA]),
        ("contains(title,'50%')".into(), vec![BETA]),
        ("contains(title,'_')".into(), vec![DELTA]),
        ("startswith(indicatorValue,'https://')".into(), vec![GAMMA]),
        ("endswith(indicatorValue,'EVIL.EXAMPLE')".into(), vec![ALPHA, BETA]),
        ("not contains(indicatorValue,'evil')".into(), vec![GAMMA, DELTA, EPSILON]),
        ("application eq 'Edge'".into(), vec![ALPHA]),
        ("application ne 'Edge'".into(), vec![BETA, GAMMA, DELTA, EPSILON]),
        ("application eq null".into(), vec![BETA, GAMMA, DELTA, EPSILON]),
        ("expirationTime lt 2098-12-31T00:00:00Z".into(), vec![BETA, EPSILON]),
        ("expirationTime gt 2099-01-01T00:00:00.4Z".into(), vec![ALPHA]),
        ("expirationTime ge 2099-01-01T00:00:00.6Z".into(), vec![]),
        ("expirationTime eq null".into(), vec![GAMMA, DELTA]),
        ("not (expirationTime lt 2098-12-31T00:00:00Z)".into(), vec![ALPHA, GAMMA, DELTA]),
        ("expirationTime le 2098-06-01T14:00:00+02:00".into(), vec![BETA, EPSILON]),
        ("creationTimeDateTimeUtc ge 2020-01-01T00:00:00Z".into(), ALL.to_vec()),
        ("creationTimeDateTimeUtc lt 2020-01-01T00:00:00Z".into(), vec![]),
        ("lastUpdateTime gt 2020-01-01T00:00:00Z and severity eq 'Low'".into(), vec![BETA]),
        (created_by_all, ALL.to_vec()),
        (by_display_name_url, vec![GAMMA]),
        ("rbacGroupNames/any(g: g eq 'Servers')".into(), vec![ALPHA, BETA]),
        ("rbacGroupNames/any(g: g eq 'Laptops') and not rbacGroupNames/any(g: g eq 'Servers')".into(), vec![EPSILON]),
        ("rbacGroupNames/any()".into(), vec![ALPHA, BETA, EPSILON]),
        ("rbacGroupIds/any(x: x eq '7' or x eq '10')".into(), vec![ALPHA, DELTA]),
        (
            "(indicatorType eq 'DomainName' or indicatorType eq 'FileSha256') and not (severity eq 'Low')".into(),
            vec![ALPHA, EPSILON],
        ),
        ("id eq 3".into(), vec![GAMMA]),
        ("id eq '4' or id eq 5".into(), vec![DELTA, EPSILON]),
        // Keywords are case-insensitive (property names are not: see the error table).
        ("indicatorType EQ 'Url' OR id eq 1".into(), vec![ALPHA, GAMMA]),
    ];
    cases
}

async fn filter_table_matches_the_server() {
    let server = seeded().await;
    for (filter, expected) in filter_cases(&server) {
        // Sent as clients send it: form-encoded ('+' for spaces), with a percent-encoded '$'.
        let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        let (status, body) = list(&server, &format!("%24filter={encoded}")).await;
        assert_eq!(status, 200, "{filter}: {body}");
        let got: HashSet<String> = values(&body).into_iter().collect();
        let want: HashSet<String> = expected.iter().map(|v| v.to_string()).collect();
        assert_eq!(got, want, "{filter}");
        // And with %20 for spaces and a literal '$'.
        let encoded = encoded.replace('+', "%20");
        let (status, body) = list(&server, &format!("$filter={encoded}")).await;
        assert_eq!(status, 200, "{filter}: {body}");
        assert_eq!(values(&body).len(), expected.len(), "{filter}");
    }
}

async fn datetimes_survive_form_encoding_and_junk_parameters_are_ignored() {
    let server = seeded().await;
    // An unquoted offset datetime whose '+' arrived as a space (form decoding), as requests does.
    let (status, body) = list(
        &server,
        "$filter=expirationTime+le+2098-06-01T14:00:00+02:00&api_key=s3cret&foo",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(values(&body), vec![BETA, EPSILON]);
    // Fractions with seven digits.
    let (status, body) = list(
        &server,
        "$filter=expirationTime%20gt%202099-01-01T00:00:00.4999999Z",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(values(&body), vec![ALPHA]);
}

async fn envelope_context_and_order() {
    let server = seeded().await;
    let res = server.send(Method::GET, "/api/indicators").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let (_, body) = status_json(res).await;
    assert_eq!(
        body["@odata.context"],
        format!("http://{}/api/$metadata#Indicators", server.addr)
    );
    assert!(body.get("@odata.nextLink").is_none(), "{body}");
    assert_eq!(values(&body), ALL);
    // Entities carry every field, nulls explicit.
    assert!(body["value"][1]["application"].is_null());
    assert_eq!(
        body["value"][0]["rbacGroupNames"],
        json!(["Servers", "Laptops"])
    );

    let (_, body) = status_json(server.send(Method::GET, "/api/v1.0/Indicators").await).await;
    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1.0/$metadata#Indicators"));

    let (status, body) = list(&server, "$orderby=severity desc,title").await;
    assert_eq!(status, 200, "{body}");
    // Severities sort by name, as SQL compares text: Medium, Low, Informational, High.
    assert_eq!(values(&body), vec![GAMMA, BETA, DELTA, ALPHA, EPSILON]);
    let (_, body) = list(&server, "$orderby=expirationTime desc&$top=2").await;
    assert_eq!(values(&body), vec![ALPHA, BETA]);
    let (_, body) = list(&server, "$orderby=id desc&$skip=3").await;
    assert_eq!(values(&body), vec![BETA, ALPHA]);
    let (_, body) = list(&server, "$filter=action%20eq%20'Alert'").await;
    assert_eq!(body["value"], json!([]));
}

async fn next_link_pages_and_preserves_the_query() {
    let server = seeded().await;
    let (status, body) = list(
        &server,
        "%24filter=severity+ne+%27Low%27&%24orderby=indicatorValue+desc&%24top=2&junk=1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(values(&body), vec![GAMMA, ALPHA]);
    let mut seen = values(&body);
    let mut link = body["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("http://{}/api/indicators?", server.addr)),
        "{link}"
    );
    assert!(!link.contains("junk"), "{link}");
    let mut pages = 1;
    loop {
        let (status, page) = status_json(
            server
                .client
                .get(&link)
                .bearer_auth(&server.app.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        seen.extend(values(&page));
        match page.get("@odata.nextLink") {
            Some(next) => link = next.as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, vec![GAMMA, ALPHA, DELTA, EPSILON]);
    // Exactly at the end: no link.
    let (_, body) = list(&server, "$top=5").await;
    assert!(body.get("@odata.nextLink").is_none(), "{body}");
    let (_, body) = list(&server, "$top=4").await;
    assert!(
        body["@odata.nextLink"]
            .as_str()
            .unwrap()
            .contains("%24skip=4")
            || body["@odata.nextLink"]
                .as_str()
                .unwrap()
                .contains("$skip=4")
    );
    // $top=0 returns nothing and no link that would never advance.
    let (_, body) = list(&server, "$top=0").await;
    assert_eq!(body["value"], json!([]));
    assert!(body.get("@odata.nextLink").is_none());
}

/// Invalid queries: 400 ODataError whose message says where and what was expected.
async fn bad_queries_are_odata_errors() {
    let server = seeded().await;
    let cases: &[(&str, &[&str])] = &[
        (
            "$filter=title eq 'abc",
            &["unterminated string literal", "position 9"],
        ),
        // An unencoded '&' inside a literal cuts it short, as on the real service.
        ("$filter=title eq 'a&b'", &["unterminated string literal"]),
        ("$filter=title eq", &["position", "expected"]),
        ("$filter=nosuch eq 'x'", &["unknown property 'nosuch'"]),
        (
            "$filter=indicatorvalue eq 'x'",
            &["did you mean 'indicatorValue'"],
        ),
        ("$filter=action eq 'block'", &["action"]),
        ("$filter=(title eq 'x'", &["expected"]),
        ("$filter=title eq 'x' xor title eq 'y'", &["position"]),
        (
            "$filter=expirationTime lt 2024-13-01T00:00:00Z",
            &["datetime"],
        ),
        ("$filter=generateAlert eq 'yes'", &["generateAlert"]),
        ("$top=10001", &["10,000"]),
        ("$top=-1", &["$top"]),
        ("$skip=abc", &["$skip"]),
        ("$orderby=rbacGroupNames", &["cannot sort"]),
        ("$count=true", &["not supported"]),
        (
            "$filter=title eq 'a'&%24filter=title eq 'b'",
            &["more than once"],
        ),
    ];
    for (query, fragments) in cases {
        let (status, body) = list(&server, &query.replace(' ', "%20")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "ODataError", "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Invalid OData URI query"), "{message}");
        for fragment in *fragments {
            assert!(
                message.contains(fragment),
                "{query}: '{message}' lacks '{fragment}'"
            );
        }
        assert!(body["error"]["target"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
    }
}

/// 25,000 indicators (filled through the import endpoint, 50 calls of 500) paged with
/// nextLink: every one exactly once, in id order.
async fn paging_25000_with_next_link_returns_each_once() {
    let server = TestServer::start_with(iocd_server::ServerConfig {
        max_active_indicators: None,
        rate_limits: iocd_server::RateLimitConfig::disabled(),
        ..Default::default()
    })
    .await;
    const TOTAL: usize = 25_000;
    for batch in 0..TOTAL / 500 {
        let items: Vec<Value> = (0..500)
            .map(|i| {
                let n = batch * 500 + i;
                json!({
                    "indicatorValue": format!("{n:040x}"), "indicatorType": "FileSha1",
                    "action": "Block", "title": "bulk", "description": "paging"
                })
            })
            .collect();
        server.import(items).await;
    }
    let mut seen = HashSet::new();
    let mut last_id = 0;
    let mut pages = 0;
    let mut link = server.url("/api/indicators");
    loop {
        let (status, page) = status_json(
            server
                .client
                .get(&link)
                .bearer_auth(&server.app.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        pages += 1;
        for item in page["value"].as_array().unwrap() {
            let id: i64 = item["id"].as_str().unwrap().parse().unwrap();
            assert!(id > last_id, "ids out of order");
            last_id = id;
            assert!(seen.insert(item["indicatorValue"].as_str().unwrap().to_string()));
        }
        match page.get("@odata.nextLink") {
            Some(next) => link = next.as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3, "10,000 per page by default");
    assert_eq!(seen.len(), TOTAL);
    // The same with an explicit page size and a filter that keeps everything.
    let mut count = 0;
    let mut link = server.url("/api/indicators?$top=7000&$filter=indicatorType+eq+'FileSha1'");
    loop {
        let (_, page) = status_json(
            server
                .client
                .get(&link)
                .bearer_auth(&server.app.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        count += page["value"].as_array().unwrap().len();
        match page.get("@odata.nextLink") {
            Some(next) => link = next.as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(count, TOTAL);
}

async fn expired_indicators_stay_hidden() {
    let server = seeded().await;
    // Expire one by resubmitting it with a past expiration: it vanishes from the list.
    let (status, _) = status_json(
        server
            .post_json(
                "/api/indicators",
                &json!({
                    "indicatorValue": DELTA, "indicatorType": "IpAddress", "action": "Allowed",
                    "title": "delta_ip", "description": "fourth", "expirationTime": "2001-01-01T00:00:00Z"
                }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = list(&server, "").await;
    assert_eq!(values(&body), vec![ALPHA, BETA, GAMMA, EPSILON]);
    let (_, body) = list(&server, "$filter=indicatorValue eq '8.8.8.8'").await;
    assert_eq!(body["value"], json!([]));
}

on_every_backend!(
    filter_table_matches_the_server,
    datetimes_survive_form_encoding_and_junk_parameters_are_ignored,
    envelope_context_and_order,
    next_link_pages_and_preserves_the_query,
    bad_queries_are_odata_errors,
    paging_25000_with_next_link_returns_each_once,
    expired_indicators_stay_hidden,
);
