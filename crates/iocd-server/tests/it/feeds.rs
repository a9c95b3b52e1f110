//! `GET /iocd/v1/feeds/{format}`: content and precedence, options, ETag/304, Basic credentials,
//! and the real consumers (named-checkzone, unbound-checkconf) where installed.

use std::collections::HashSet;
use std::process::Command;

use base64::Engine;
use iocd_identity::Role;
use iocd_testkit::*;
use reqwest::header;
use serde_json::{json, Value};

fn indicator(value: &str, ty: &str, action: &str, severity: &str) -> Value {
    json!({"indicatorValue": value, "indicatorType": ty, "action": action, "title": "t",
           "description": "d", "severity": severity, "generateAlert": true})
}

/// A store exercising every format and the precedence rules.
async fn load(server: &TestServer) {
    let mut items = vec![
        indicator("evil.example", "DomainName", "Block", "High"),
        indicator("ok.evil.example", "DomainName", "Allowed", "Informational"),
        indicator("both.example", "DomainName", "Block", "High"),
        indicator("both.example", "DomainName", "Allowed", "Low"),
        indicator("warned.example", "DomainName", "Warn", "Medium"),
        indicator("bücher.example", "DomainName", "AlertAndBlock", "Low"),
        indicator("203.0.113.5", "IpAddress", "Block", "Medium"),
        indicator("2001:db8::5", "IpAddress", "Block", "Low"),
        indicator("198.51.100.7", "IpAddress", "Allowed", "Low"),
        indicator("http://site.example/block", "Url", "Block", "High"),
        indicator("https://site.example/", "Url", "Block", "Low"),
        indicator(&"a".repeat(64), "FileSha256", "Block", "High"),
        indicator(&"b".repeat(32), "FileMd5", "BlockAndRemediate", "High"),
        indicator(&"c".repeat(40), "FileSha1", "Block", "Low"),
        indicator(&"d".repeat(40), "CertificateThumbprint", "Block", "Low"),
        indicator("finance-only.example", "DomainName", "Block", "High"),
    ];
    items[15]["rbacGroupNames"] = json!(["Finance"]);
    let mut expired = indicator("expired.example", "DomainName", "Block", "High");
    expired["expirationTime"] = json!("2020-01-01T00:00:00Z");
    items.push(expired);
    let (status, body) = status_json(
        server
            .post_json("/api/indicators/import", &json!({ "Indicators": items }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for r in body["value"].as_array().unwrap() {
        assert_eq!(r["isFailed"], false, "{r}");
    }
}

async fn get_feed(server: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let res = server
        .request(reqwest::Method::GET, &format!("/iocd/v1/feeds/{path}"))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap())
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

async fn block_lists_apply_precedence_and_options() {
    let server = TestServer::start().await;
    load(&server).await;
    let (status, _, body) = get_feed(&server, "edl-domain").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        lines(&body).into_iter().collect::<HashSet<_>>(),
        HashSet::from([
            "evil.example",
            "*.evil.example",
            "xn--bcher-kva.example",
            "*.xn--bcher-kva.example"
        ]),
        "allowed, warned, group-scoped and expired domains stay out: {body}"
    );
    let (_, _, body) = get_feed(&server, "edl-domain?subdomains=false&deviceGroup=finance").await;
    assert!(lines(&body).contains(&"finance-only.example"), "{body}");
    assert!(!body.contains('*'), "{body}");
    let (_, _, body) = get_feed(&server, "edl-domain?action=Allowed").await;
    assert_eq!(
        lines(&body).into_iter().collect::<HashSet<_>>(),
        HashSet::from([
            "ok.evil.example",
            "*.ok.evil.example",
            "both.example",
            "*.both.example"
        ])
    );
    let (_, _, body) = get_feed(&server, "edl-ip").await;
    assert_eq!(
        lines(&body).into_iter().collect::<HashSet<_>>(),
        HashSet::from(["203.0.113.5", "2001:db8::5"])
    );
    let (_, _, body) = get_feed(&server, "edl-url").await;
    assert_eq!(
        lines(&body).into_iter().collect::<HashSet<_>>(),
        HashSet::from(["site.example/block", "site.example/block/", "site.example/"])
    );
    let (_, _, body) = get_feed(&server, "fortigate-hash?minSeverity=High").await;
    assert_eq!(
        lines(&body).into_iter().collect::<HashSet<_>>(),
        HashSet::from(["a".repeat(64).as_str(), "b".repeat(32).as_str()])
    );
    let (_, _, body) = get_feed(&server, "suricata-md5").await;
    assert_eq!(body, format!("{}\n", "b".repeat(32)));
    let (_, _, body) = get_feed(&server, "text-CertificateThumbprint").await;
    assert_eq!(body, format!("{}\n", "d".repeat(40)));

    let (_, headers, body) = get_feed(&server, "edl-domain?subdomains=false&max=1").await;
    assert_eq!(body, "evil.example\n", "the High one is kept");
    assert_eq!(headers["x-iocd-feed-truncated"], "kept 1 of 2");
    let (_, headers, _) = get_feed(&server, "edl-domain?max=5").await;
    assert!(headers.get("x-iocd-feed-truncated").is_none());

    for bad in [
        "nope",
        "edl-ip?type=Url",
        "rpz?policy=cname:",
        "edl-ip?max=x",
        "edl-ip?x=1",
    ] {
        let (status, _, body) = get_feed(&server, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

async fn zeek_and_rpz_files_have_their_formats() {
    let server = TestServer::start().await;
    load(&server).await;
    let (status, headers, zeek) = get_feed(&server, "zeek-intel").await;
    assert_eq!(status, 200);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/tab-separated-values"));
    let mut rows = zeek.lines();
    let fields: Vec<&str> = rows.next().unwrap().split('\t').collect();
    assert_eq!(
        fields,
        [
            "#fields",
            "indicator",
            "indicator_type",
            "meta.source",
            "meta.desc"
        ]
    );
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split('\t').collect()).collect();
    assert!(
        rows.iter()
            .all(|r| r.len() == 4 && !r.iter().any(|f| f.is_empty())),
        "{zeek}"
    );
    let kinds: HashSet<&str> = rows.iter().map(|r| r[1]).collect();
    for kind in [
        "Intel::ADDR",
        "Intel::DOMAIN",
        "Intel::URL",
        "Intel::FILE_HASH",
        "Intel::CERT_HASH",
    ] {
        assert!(kinds.contains(kind), "{kind} missing: {zeek}");
    }
    assert!(
        rows.iter().any(|r| r[0] == "site.example/block"),
        "URLs without the scheme"
    );
    assert!(!zeek.contains("://"));

    let (status, _, rpz) = get_feed(&server, "rpz").await;
    assert_eq!(status, 200);
    let owners: Vec<&str> = rpz
        .lines()
        .filter(|l| !l.starts_with(';') && !l.starts_with('$') && !l.starts_with('@'))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        owners.len(),
        owners.iter().collect::<HashSet<_>>().len(),
        "duplicate owners: {rpz}"
    );
    let first_block = rpz.lines().position(|l| l.ends_with("CNAME .")).unwrap();
    let last_pass = rpz
        .lines()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|l| l.ends_with("rpz-passthru."))
        .unwrap();
    assert!(last_pass < first_block, "passthru first: {rpz}");
    for line in [
        "ok.evil.example CNAME rpz-passthru.",
        "*.ok.evil.example CNAME rpz-passthru.",
        "both.example CNAME rpz-passthru.",
        "32.7.100.51.198.rpz-ip CNAME rpz-passthru.",
        "evil.example CNAME .",
        "*.evil.example CNAME .",
        "32.5.113.0.203.rpz-ip CNAME .",
        "128.5.zz.db8.2001.rpz-ip CNAME .",
    ] {
        assert!(rpz.lines().any(|l| l == line), "{line} missing: {rpz}");
    }
    assert!(
        !rpz.contains("both.example CNAME ."),
        "allowed never blocked"
    );
    let (_, _, cname) = get_feed(&server, "rpz?policy=cname:walled.garden.example").await;
    assert!(
        cname.contains("evil.example CNAME walled.garden.example."),
        "{cname}"
    );
    check_with_named(&rpz);
    check_with_unbound(&rpz);
}

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("-h").output().is_ok();
    if !found {
        eprintln!("skipping the {name} check: {name} is not installed (.ci/run installs it)");
    }
    found
}

fn check_with_named(rpz: &str) {
    if !tool("named-checkzone") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rpz.zone");
    std::fs::write(&file, rpz).unwrap();
    let out = Command::new("named-checkzone")
        .args(["rpz.iocd.example"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "named-checkzone refused the RPZ: {}{}\n{rpz}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_with_unbound(rpz: &str) {
    if !tool("unbound-checkconf") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("rpz.zone");
    std::fs::write(&zone, rpz).unwrap();
    let conf = dir.path().join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  module-config: \"respip validator iterator\"\n  chroot: \"\"\n  username: \"\"\n  directory: \"{dir}\"\n\
             rpz:\n  name: rpz.iocd.example\n  zonefile: \"{zone}\"\n",
            dir = dir.path().display(),
            zone = zone.display()
        ),
    )
    .unwrap();
    let out = Command::new("unbound-checkconf")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unbound-checkconf refused: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn feeds_carry_etags_and_take_basic_credentials() {
    let server = TestServer::start().await;
    load(&server).await;
    let (_, headers, _) = get_feed(&server, "edl-ip").await;
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    assert!(headers.contains_key(header::LAST_MODIFIED));
    let again = server
        .request(reqwest::Method::GET, "/iocd/v1/feeds/edl-ip")
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let (_, other, _) = get_feed(&server, "edl-domain").await;
    assert_ne!(other[header::ETAG].to_str().unwrap(), etag, "per format");
    // A write changes the ETag.
    let (status, _) = status_json(
        server
            .post_json(
                "/api/indicators",
                &indicator("203.0.113.99", "IpAddress", "Block", "Low"),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (_, headers, body) = get_feed(&server, "edl-ip").await;
    assert_ne!(headers[header::ETAG].to_str().unwrap(), etag);
    assert!(body.contains("203.0.113.99"));

    // gzip on request: the bytes on the wire are gzip, and inflate to the same feed.
    let gz = server
        .request(reqwest::Method::GET, "/iocd/v1/feeds/edl-ip")
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    let raw = gz.bytes().await.unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip magic");
    let mut inflated = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut inflated)
        .unwrap();
    assert_eq!(inflated, body);

    let tenant = server.app.tenant_id().to_string();
    let reader = server
        .create_app(&tenant, "firewall", &[Role::ReadAll])
        .await;
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let fetch = |auth: String| {
        server
            .client
            .get(server.url("/iocd/v1/feeds/edl-ip"))
            .header(header::AUTHORIZATION, auth)
            .send()
    };
    let ok = fetch(basic(
        &reader.credentials.client_id,
        &reader.credentials.client_secret,
    ))
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("203.0.113.5"));
    let wrong = fetch(basic(&reader.credentials.client_id, "wrong"))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let unknown = fetch(basic("nobody", "x")).await.unwrap();
    assert_eq!(unknown.status(), 401);
    let anonymous = server
        .client
        .get(server.url("/iocd/v1/feeds/edl-ip"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// The RPZ's SOA serial of the feed.
fn soa_serial(rpz: &str) -> i64 {
    let soa = rpz.lines().find(|l| l.contains(" SOA ")).expect("an SOA");
    soa.split('(')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The tenant's last change sequence number, from the change log's own route.
async fn last_sequence(server: &TestServer) -> i64 {
    let (status, body) = status_json(
        server
            .send(reqwest::Method::GET, "/iocd/v1/changes?limit=1000")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().unwrap().last().unwrap()["sequence"]
        .as_i64()
        .unwrap()
}

async fn serial_and_etag_follow_the_change_sequence() {
    let server = TestServer::start().await;
    load(&server).await;
    let (_, headers, rpz) = get_feed(&server, "rpz").await;
    let seq = last_sequence(&server).await;
    assert_eq!(soa_serial(&rpz), seq, "{rpz}");
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    assert!(etag.starts_with(&format!("\"{seq}-")), "{etag}");

    // One write, one number: the serial and the ETag move with it.
    let (status, created) = status_json(
        server
            .post_json(
                "/api/indicators",
                &indicator("new.example", "DomainName", "Block", "High"),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let (_, headers, rpz) = get_feed(&server, "rpz").await;
    assert_eq!(soa_serial(&rpz), seq + 1);
    assert_ne!(headers[header::ETAG].to_str().unwrap(), etag);
    let id = created["id"].as_str().unwrap();
    let deleted = server
        .send(reqwest::Method::DELETE, &format!("/api/indicators/{id}"))
        .await;
    assert_eq!(deleted.status(), 204);
    let (_, headers, rpz) = get_feed(&server, "rpz").await;
    assert_eq!(soa_serial(&rpz), seq + 2);
    assert!(!rpz.contains("new.example"));
    let etag = headers[header::ETAG].to_str().unwrap().to_string();

    // An expiry changes the content at its instant, before the sweeper logs it: the ETag
    // changes (the serial stays until the sweep's entry).
    let mut soon = indicator("soon.example", "DomainName", "Block", "High");
    let at = iocd_domain::time::now() + chrono::Duration::milliseconds(1500);
    soon["expirationTime"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let (status, body) = status_json(server.post_json("/api/indicators", &soon).await).await;
    assert_eq!(status, 200, "{body}");
    let (_, headers, rpz) = get_feed(&server, "rpz").await;
    assert!(rpz.contains("soon.example CNAME ."), "{rpz}");
    let before = headers[header::ETAG].to_str().unwrap().to_string();
    assert_ne!(before, etag);
    let wait = at - iocd_domain::time::now() + chrono::Duration::milliseconds(100);
    tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
    let again = server
        .request(reqwest::Method::GET, "/iocd/v1/feeds/rpz")
        .header(header::IF_NONE_MATCH, &before)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "an expiry is a new version");
    let rpz = again.text().await.unwrap();
    assert!(!rpz.contains("soon.example"), "{rpz}");
}

/// `edl-url` adds `host/path/` for an entry without a trailing slash, but not when another
/// indicator decides that URL (here an `Allowed` one): Defender would allow it.
async fn edl_url_never_blocks_what_an_allowed_url_covers() {
    let server = TestServer::start().await;
    let items = vec![
        indicator("http://slash.example/x", "Url", "Block", "High"),
        indicator("http://slash.example/x/", "Url", "Allowed", "High"),
        indicator("http://plain.example/y", "Url", "Block", "High"),
    ];
    let (status, body) = status_json(
        server
            .post_json("/api/indicators/import", &json!({ "Indicators": items }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = get_feed(&server, "edl-url").await;
    assert_eq!(
        lines(&body).into_iter().collect::<HashSet<_>>(),
        HashSet::from(["slash.example/x", "plain.example/y", "plain.example/y/"]),
        "{body}"
    );
}

on_every_backend!(
    block_lists_apply_precedence_and_options,
    zeek_and_rpz_files_have_their_formats,
    feeds_carry_etags_and_take_basic_credentials,
    serial_and_etag_follow_the_change_sequence,
    edl_url_never_blocks_what_an_allowed_url_covers,
);
