//! How long the portal takes to render a page of 100 indicators over a large store, beside the
//! same query through `GET /api/indicators` (the baseline, measured in the same run).
//!
//! ```text
//! cargo bench -p iocd-server --bench portal                      # 1,000,000 stored, SQLite
//! cargo bench -p iocd-server --bench portal -- --rows 50000      # a quick run
//! cargo bench -p iocd-server --bench portal -- --postgres postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! The real server runs in this process on a loopback port over a fresh database; the rows are
//! written through the store's own write path (500 per command, as the import API does), in
//! one tenant, a mix of every type: 40 % SHA-256, 9 % SHA-1, 20 % domains, 20 % IPv4 addresses,
//! 10 % URLs, 1 % certificate thumbprints. A user signs in to the portal through the real
//! authorization-code flow; an app takes a token. Then, for each tab, `--requests` page loads
//! one after another on one keep-alive connection (`/portal/indicators?tab=…&size=100`, newest
//! first: `id desc`), and the API call the page shows (same `$filter`, `$orderby`, `$top=100`), each timed
//! from sending the request to reading the whole body.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use iocd_domain::{parse_submission, time, Actor};
use iocd_identity::{create_user, register_app, Role, UserRole};
use iocd_server::{AppState, RateLimitConfig, Server, ServerConfig};
use iocd_store::{Scope, WriteLimits};
use iocd_testkit::{Backend, ScratchDatabase};
use reqwest::redirect::Policy;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";
const BATCH: usize = 500;

struct Options {
    rows: u64,
    requests: usize,
    postgres: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        rows: 1_000_000,
        requests: 200,
        postgres: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rows" => options.rows = args.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--requests" => {
                options.requests = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--requests N")
            }
            "--postgres" => options.postgres = Some(args.next().expect("--postgres URL")),
            "--bench" => {}
            "--help" | "-h" => {
                println!("options: --rows N (1000000) --requests N (200) --postgres URL");
                std::process::exit(0);
            }
            other => panic!("unknown option {other}"),
        }
    }
    options
}

/// The `n`th row: every type, each value unique.
fn row(n: u64) -> Value {
    let (indicator_type, value) = match n % 100 {
        0..=39 => ("FileSha256", format!("{:064x}", n + 1)),
        40..=48 => ("FileSha1", format!("{:040x}", n + 1)),
        49 => ("CertificateThumbprint", format!("{:040x}", n + 1)),
        50..=69 => ("DomainName", format!("host{n}.bench.example")),
        70..=89 => {
            // Public IPv4 addresses from 11.0.0.0 on.
            let address = 0x0B00_0000u32 + n as u32;
            ("IpAddress", std::net::Ipv4Addr::from(address).to_string())
        }
        _ => ("Url", format!("https://host{n}.bench.example/download")),
    };
    let severities = ["Informational", "Low", "Medium", "High"];
    json!({
        "indicatorValue": value,
        "indicatorType": indicator_type,
        "action": if n.is_multiple_of(3) { "Audit" } else { "Block" },
        "generateAlert": true,
        "severity": severities[(n % 4) as usize],
        "title": format!("Benchmark indicator {n}"),
        "description": "Written by the portal benchmark",
    })
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Keeps the cookies of a redirect chain.
fn keep(cookies: &mut HashMap<String, String>, response: &reqwest::Response) {
    for value in response.headers().get_all("set-cookie") {
        let text = value.to_str().unwrap_or_default();
        let pair = text.split(';').next().unwrap_or_default();
        if let Some((name, value)) = pair.split_once('=') {
            cookies.insert(name.to_string(), value.to_string());
        }
    }
}

fn cookie_header(cookies: &HashMap<String, String>) -> String {
    cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Signs `upn` in to the portal (the real authorization-code flow); returns the cookie header.
async fn sign_in(base: &str, tenant: &str, upn: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let mut cookies = HashMap::new();
    let start = client
        .get(format!("{base}/portal/signin/start?tenant={tenant}"))
        .send()
        .await
        .unwrap();
    keep(&mut cookies, &start);
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let (path, query) = authorize.split_once('?').unwrap();
    let mut form: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    form.push(("username".into(), upn.into()));
    form.push(("password".into(), PASSWORD.into()));
    let back = client
        .post(format!("{base}{path}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    let done = client
        .get(callback)
        .header("cookie", cookie_header(&cookies))
        .send()
        .await
        .unwrap();
    keep(&mut cookies, &done);
    assert!(cookies.contains_key("iocd_portal"), "signed in");
    cookie_header(&cookies)
}

async fn time_requests(
    client: &reqwest::Client,
    url: &str,
    header: (&str, &str),
    requests: usize,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(requests);
    for i in 0..requests + 5 {
        let started = Instant::now();
        let response = client
            .get(url)
            .header(header.0, header.1)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body = response.bytes().await.unwrap();
        assert!(!body.is_empty());
        // The first few warm the caches.
        if i >= 5 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    times
}

#[tokio::main]
async fn main() {
    let options = options();
    let database = match &options.postgres {
        Some(url) => ScratchDatabase::postgres(url).await,
        None => ScratchDatabase::create(Backend::Sqlite).await,
    };
    let stores = iocd_store::open_stores(&database.url).await.expect("store");
    let tenant = uuid::Uuid::new_v4().to_string();
    let app = register_app(
        stores.identity.as_ref(),
        &tenant,
        "portal benchmark",
        &[Role::ReadWriteAll],
    )
    .await
    .unwrap();
    create_user(
        stores.identity.as_ref(),
        &tenant,
        "Bench Manager",
        "bench@contoso.example",
        &[UserRole::IndicatorsManage],
        Some(PASSWORD),
    )
    .await
    .unwrap();

    // The rows, through the store's write path, four commands in flight.
    let started = Instant::now();
    let scope = Scope {
        tenant_id: tenant.clone(),
        owner: None,
    };
    let actor = Actor::new(app.client_id.clone(), "portal benchmark");
    let limits = WriteLimits {
        max_active_indicators: None,
    };
    let batches: Vec<u64> = (0..options.rows.div_ceil(BATCH as u64)).collect();
    for group in batches.chunks(4) {
        let mut writes = Vec::new();
        for batch in group {
            let first = batch * BATCH as u64;
            let last = (first + BATCH as u64).min(options.rows);
            let submissions: Vec<_> = (first..last)
                .map(|n| parse_submission(&row(n)).expect("a valid row"))
                .collect();
            let store = stores.indicators.clone();
            let (scope, actor) = (scope.clone(), actor.clone());
            writes.push(tokio::spawn(async move {
                store
                    .submit(&scope, &actor, submissions, limits, time::now())
                    .await
                    .expect("stored")
            }));
        }
        for write in writes {
            assert!(write.await.unwrap().iter().all(Result::is_ok));
        }
        let done = (group.last().unwrap() + 1) * BATCH as u64;
        if done.is_multiple_of(100_000) {
            eprintln!("{done} rows stored");
        }
    }
    eprintln!(
        "{} rows stored in {:.0} s",
        options.rows,
        started.elapsed().as_secs_f64()
    );
    // PostgreSQL plans from statistics that autovacuum refreshes within a minute or so of a
    // load; the pages are timed in that steady state, not against an empty table's.
    if options.postgres.is_some() {
        iocd_store::PostgresStore::open(&database.url)
            .await
            .expect("store")
            .analyze()
            .await
            .expect("ANALYZE");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let config = ServerConfig {
        max_active_indicators: None,
        rate_limits: RateLimitConfig::disabled(),
        ..ServerConfig::default()
    };
    let state = AppState::new(stores, config, &base).await.unwrap();
    let matcher = state.matcher.clone();
    let server = Server::on_listener(listener, state);
    tokio::spawn(server.run(std::future::pending()));

    let client = reqwest::Client::new();
    let token: Value = client
        .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("scope", "https://api.securitycenter.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let cookie = sign_in(&base, &tenant, "bench@contoso.example").await;

    println!(
        "\n| tab | portal page p50 (ms) | p99 | API list p50 (ms) | p99 | portal / API (p50) |"
    );
    println!("|---|---|---|---|---|---|");
    for (tab, filter) in [
        (
            "files",
            "indicatorType in ('FileSha256','FileSha1','FileMd5')",
        ),
        ("ips", "indicatorType eq 'IpAddress'"),
        ("urls", "indicatorType in ('Url','DomainName')"),
        ("certificates", "indicatorType eq 'CertificateThumbprint'"),
    ] {
        let page = format!("{base}/portal/indicators?tab={tab}&size=100");
        let api = format!(
            "{base}/api/indicators?$filter={}&$orderby={}&$top=100&$skip=0",
            form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(b"id desc").collect::<String>()
        );
        let portal = time_requests(&client, &page, ("cookie", &cookie), options.requests).await;
        let baseline =
            time_requests(&client, &api, ("authorization", &bearer), options.requests).await;
        let (p50, b50) = (percentile(&portal, 0.5), percentile(&baseline, 0.5));
        println!(
            "| {tab} | {} | {} | {} | {} | {:.2} |",
            ms(p50),
            ms(percentile(&portal, 0.99)),
            ms(b50),
            ms(percentile(&baseline, 0.99)),
            p50.as_secs_f64() / b50.as_secs_f64()
        );
    }
    // Sorted pages: the largest tab by each column the portal sorts by, and every tab by the
    // columns whose values follow the type (value, title), both ways.
    println!("\n| tab sorted by | portal page p50 (ms) | p99 |");
    println!("|---|---|---|");
    let sorted_requests = (options.requests / 10).max(5);
    let every_column = [
        "expirationTime",
        "severity",
        "action",
        "createdBy",
        "creationTimeDateTimeUtc",
        "indicatorValue",
        "indicatorType",
        "title",
    ];
    let typed_columns = ["indicatorValue", "title"];
    for (tab, sorts) in [
        ("files", &every_column[..]),
        ("ips", &typed_columns[..]),
        ("urls", &typed_columns[..]),
        ("certificates", &typed_columns[..]),
    ] {
        for sort in sorts {
            for dir in ["desc", "asc"] {
                let page =
                    format!("{base}/portal/indicators?tab={tab}&size=100&sort={sort}&dir={dir}");
                let times =
                    time_requests(&client, &page, ("cookie", &cookie), sorted_requests).await;
                println!(
                    "| {tab}: {sort} {dir} | {} | {} |",
                    ms(percentile(&times, 0.5)),
                    ms(percentile(&times, 0.99))
                );
            }
        }
    }
    // Search (a substring of the value or the title). The search index (in memory) hands the
    // list the ids of the rows that hold the term, up to 10,000; a commoner term is found by
    // walking the rows, where a page fills after a few thousand.
    // The baseline is the API call with the same `contains` filter, which reads the rows.
    println!("\n| search | portal page p50 (ms) | p99 | API list p50 (ms) | portal / API (p50) |");
    println!("|---|---|---|---|---|");
    let probe = options.rows / 2 + 50;
    for (tab, term) in [
        ("files", "Benchmark".to_string()),
        ("urls", "bench.example/download".to_string()),
        ("urls", format!("host{probe}.")),
        ("urls", "host9999".to_string()),
        ("files", "indicator 777".to_string()),
        ("urls", "host77".to_string()),
        ("files", "indicator 12".to_string()),
        ("files", "no-such-text".to_string()),
    ] {
        let types: &[&str] = match tab {
            "files" => &["FileSha256", "FileSha1", "FileMd5"],
            _ => &["Url", "DomainName"],
        };
        // How many rows of the tab hold the term, counted from the rows the bench wrote.
        let needle = term.to_lowercase();
        let holding = (0..options.rows)
            .map(row)
            .filter(|r| {
                let text = |key: &str| r[key].as_str().unwrap_or_default().to_lowercase();
                types.contains(&r["indicatorType"].as_str().unwrap_or_default())
                    && (text("indicatorValue").contains(&needle) || text("title").contains(&needle))
            })
            .count();
        let query: String = form_urlencoded::byte_serialize(term.as_bytes()).collect();
        let page = format!("{base}/portal/indicators?tab={tab}&size=100&q={query}");
        let times = time_requests(&client, &page, ("cookie", &cookie), sorted_requests).await;
        let quoted: Vec<String> = types.iter().map(|t| format!("'{t}'")).collect();
        let filter = format!(
            "indicatorType in ({}) and (contains(indicatorValue,'{term}') or contains(title,'{term}'))",
            quoted.join(",")
        );
        let api = format!(
            "{base}/api/indicators?$filter={}&$orderby={}&$top=100&$skip=0",
            form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(b"id desc").collect::<String>()
        );
        let baseline =
            time_requests(&client, &api, ("authorization", &bearer), sorted_requests).await;
        let (p50, b50) = (percentile(&times, 0.5), percentile(&baseline, 0.5));
        println!(
            "| {tab}: `{term}` ({holding} rows) | {} | {} | {} | {:.2} |",
            ms(p50),
            ms(percentile(&times, 0.99)),
            ms(b50),
            p50.as_secs_f64() / b50.as_secs_f64()
        );
    }
    let (indexed, match_bytes) = matcher.size();
    println!(
        "\nIn memory: match index {:.1} B per indicator, search index {:.1} B per indicator.",
        match_bytes as f64 / indexed.max(1) as f64,
        matcher.text_size() as f64 / indexed.max(1) as f64
    );
    println!(
        "\n{} rows stored ({}), {} page loads per tab, one connection.",
        options.rows,
        if options.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        options.requests
    );
}
