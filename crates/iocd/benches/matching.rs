//! The enforcement side at a million indicators, each figure against a baseline of the same run:
//!
//! ```text
//! cargo bench -p iocd --bench matching                  # 1,000,000 indicators, SQLite
//! cargo bench -p iocd --bench matching -- --quick       # 100,000 indicators, short phases
//! cargo bench -p iocd --bench matching -- --postgres postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! It starts the release `iocd` binary (rate limits and quota off) over a fresh database, imports
//! the indicators through `POST /api/indicators/import` (mixed kinds: domains, URLs, IPv4 and IPv6
//! addresses, SHA-256, SHA-1 and MD5 hashes, certificate thumbprints), then measures:
//!
//! 1. in-process lookups: the tenant's `MatchIndex`, built from the store's rows in this process,
//!    finding the deciding indicator of observables of each kind (half of them matching;
//!    `MatchIndex::verdict`), against an `FxHashSet` of the same normalised keys probed with the
//!    keys the index probes, in its order, until one is found (one key for hashes,
//!    thumbprints and addresses; a domain's suffixes; a URL's path prefixes, then its host's
//!    suffixes): ns per lookup; and the same with the match API's reason (`decide`);
//! 2. the index's heap bytes per indicator, and the rebuild at start: a `MatchEngine` over the
//!    database, from nothing to its first answer;
//! 3. `GET /iocd/v1/match` on 64 connections against a bare axum handler answering the same
//!    bytes (the HTTP ceiling), and `POST /iocd/v1/match` with 1,000 observables per call;
//! 4. the feed of every indicator (`zeek-intel`): its time and the server's peak resident memory
//!    above what it held before.
//!
//! See docs/benchmarks.md.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use iocd_domain::matching::{domain_suffixes, MatchIndex, Observable, UrlHost, UrlParts};
use iocd_domain::IndicatorType;
use iocd_testkit::{start_bare_axum, Iocd, IocdProcess, ScratchDatabase, TENANT};
use rustc_hash::FxHashSet;
use serde_json::{json, Value};
use tokio::net::TcpStream;

const IMPORT_BATCH: u64 = 500;
const POST_BATCH: usize = 1000;

#[derive(Debug, Parser)]
#[command(
    name = "matching",
    about = "The match index, the match API and feeds at a million indicators"
)]
struct Args {
    /// 100,000 indicators and 3 s phases: a smoke run.
    #[arg(long)]
    quick: bool,
    /// Indicators stored [default: 1000000, or 100000 with --quick].
    #[arg(long, value_name = "N")]
    indicators: Option<u64>,
    /// Measure PostgreSQL (a scratch database is made on this server) instead of SQLite.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Connections of the GET phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Connections of the POST phase.
    #[arg(long, default_value_t = 8)]
    post_connections: usize,
    /// Seconds per HTTP phase [default: 10, or 3 with --quick].
    #[arg(long, value_name = "S")]
    phase_seconds: Option<u64>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

// ---------------------------------------------------------------------------------------------
// The indicators: a fixed mix of kinds, value `n` of each kind unique.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Domain,
    Url,
    Ipv4,
    Ipv6,
    Sha256,
    Sha1,
    Md5,
    Certificate,
}

/// Each kind's share of the store, in thousandths.
const MIX: [(Kind, u64); 8] = [
    (Kind::Domain, 300),
    (Kind::Url, 100),
    (Kind::Ipv4, 160),
    (Kind::Ipv6, 40),
    (Kind::Sha256, 200),
    (Kind::Sha1, 50),
    (Kind::Md5, 100),
    (Kind::Certificate, 50),
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Sha256 => "sha256",
            Kind::Sha1 => "sha1",
            Kind::Md5 => "md5",
            Kind::Certificate => "certificate",
        }
    }

    fn indicator_type(self) -> IndicatorType {
        match self {
            Kind::Domain => IndicatorType::DomainName,
            Kind::Url => IndicatorType::Url,
            Kind::Ipv4 | Kind::Ipv6 => IndicatorType::IpAddress,
            Kind::Sha256 => IndicatorType::FileSha256,
            Kind::Sha1 => IndicatorType::FileSha1,
            Kind::Md5 => IndicatorType::FileMd5,
            Kind::Certificate => IndicatorType::CertificateThumbprint,
        }
    }

    /// The observable kind of the match API.
    fn observable(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::Ipv4 | Kind::Ipv6 => "ip",
            Kind::Sha256 => "sha256",
            Kind::Sha1 => "sha1",
            Kind::Md5 => "md5",
            Kind::Certificate => "certificateThumbprint",
        }
    }

    /// Indicator `n` of this kind's value.
    fn value(self, n: u64) -> String {
        match self {
            Kind::Domain => format!("d{n}.z{}.bench.example", n % 997),
            Kind::Url => format!("https://u{}.bench.example/p{n}", n % 5000),
            Kind::Ipv4 => Ipv4Addr::from(0x0B00_0000 + n as u32).to_string(),
            Kind::Ipv6 => {
                Ipv6Addr::from(0x2a00_1450_4000_0000_0000_0000_0000_0000u128 + u128::from(n))
                    .to_string()
            }
            Kind::Sha256 => hex_of(n, 1, 64),
            Kind::Sha1 => hex_of(n, 2, 40),
            Kind::Md5 => hex_of(n, 3, 32),
            Kind::Certificate => hex_of(n, 4, 40),
        }
    }

    /// An observable that matches indicator `n` (`hit`) or matches nothing.
    fn probe(self, n: u64, hit: bool) -> String {
        match (self, hit) {
            (Kind::Domain, true) => format!("www.{}", self.value(n)),
            (Kind::Domain, false) => format!("www.x{n}.bench.example"),
            (Kind::Url, true) => format!("{}/page.html?id=7", self.value(n)),
            (Kind::Url, false) => format!("https://u{}.bench.example/q{n}", n % 5000),
            (Kind::Ipv4, false) => Ipv4Addr::from(0x0C00_0000 + n as u32).to_string(),
            (Kind::Ipv6, false) => {
                Ipv6Addr::from(0x2a00_1450_5000_0000_0000_0000_0000_0000u128 + u128::from(n))
                    .to_string()
            }
            (Kind::Sha256, false) => hex_of(n, 11, 64),
            (Kind::Sha1, false) => hex_of(n, 12, 40),
            (Kind::Md5, false) => hex_of(n, 13, 32),
            (Kind::Certificate, false) => hex_of(n, 14, 40),
            (_, true) => self.value(n),
        }
    }
}

/// `len` hex digits unique to (`n`, `salt`).
fn hex_of(n: u64, salt: u64, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut x = n ^ (salt << 56);
    while out.len() < len {
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt);
        out.push_str(&format!("{:016x}", x ^ (x >> 29)));
    }
    out.truncate(len);
    out
}

/// How many indicators of each kind a store of `total` holds.
fn counts(total: u64) -> Vec<(Kind, u64)> {
    MIX.iter()
        .map(|&(kind, share)| (kind, total * share / 1000))
        .collect()
}

/// Indicator `i` of the store (kinds in blocks).
fn indicator(counts: &[(Kind, u64)], mut i: u64) -> (Kind, u64) {
    for &(kind, count) in counts {
        if i < count {
            return (kind, i);
        }
        i -= count;
    }
    unreachable!("index within the store")
}

fn import_body(counts: &[(Kind, u64)], first: u64, total: u64) -> Bytes {
    let items: Vec<Value> = (first..(first + IMPORT_BATCH).min(total))
        .map(|i| {
            let (kind, n) = indicator(counts, i);
            let severity = ["Informational", "Low", "Medium", "High"][(n % 4) as usize];
            json!({
                "indicatorValue": kind.value(n),
                "indicatorType": kind.indicator_type().to_string(),
                "action": if n % 10 == 0 { "Allowed" } else { "Block" },
                "severity": severity,
                "title": format!("benchmark {i}"),
                "description": "matching benchmark",
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&json!({ "Indicators": items })).expect("JSON"))
}

// ---------------------------------------------------------------------------------------------
// Load generation: keep-alive HTTP/1.1 connections, one task each.

type MakeRequest = Arc<dyn Fn(u64) -> (Method, String, Option<Bytes>) + Send + Sync>;

struct LoadResult {
    requests: u64,
    elapsed: Duration,
}

impl LoadResult {
    fn per_second(&self, per_request: u64) -> f64 {
        (self.requests * per_request) as f64 / self.elapsed.as_secs_f64()
    }
}

async fn run_load(
    addr: SocketAddr,
    auth: Option<String>,
    connections: usize,
    time: Duration,
    make: MakeRequest,
) -> anyhow::Result<LoadResult> {
    let next = Arc::new(AtomicU64::new(0));
    let start_line = Arc::new(tokio::sync::Barrier::new(connections + 1));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let (next, start_line, make, auth) =
            (next.clone(), start_line.clone(), make.clone(), auth.clone());
        workers.push(tokio::spawn(async move {
            let mut requests = 0u64;
            start_line.wait().await;
            let started = Instant::now();
            while started.elapsed() < time {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let (method, path, body) = make(n);
                let mut req = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", addr.to_string());
                if let Some(auth) = &auth {
                    req = req.header("authorization", auth);
                }
                if body.is_some() {
                    req = req.header("content-type", "application/json");
                }
                let req = req.body(Full::new(body.unwrap_or_default()))?;
                sender.ready().await?;
                let res = sender.send_request(req).await?;
                let status = res.status();
                let bytes = res.into_body().collect().await?.to_bytes();
                if status != 200 {
                    bail!("request {n}: {status}: {}", String::from_utf8_lossy(&bytes));
                }
                requests += 1;
            }
            Ok::<_, anyhow::Error>(requests)
        }));
    }
    start_line.wait().await;
    let started = Instant::now();
    let mut requests = 0;
    for worker in workers {
        requests += worker.await??;
    }
    Ok(LoadResult {
        requests,
        elapsed: started.elapsed(),
    })
}

fn progress(what: &str) {
    eprintln!("[matching] {what}");
}

// ---------------------------------------------------------------------------------------------
// In-process lookups.

struct Probes {
    kind: Kind,
    observables: Vec<Observable>,
    /// The normalised keys the index probes for each observable, in its order, as the baseline
    /// looks them up: one for hashes, thumbprints and addresses; a domain's suffixes; a URL's
    /// path prefixes on its host, then its host's suffixes.
    keys: Vec<Vec<String>>,
}

/// The keys the index may probe for `observable`, in the index's order (see [`Probes::keys`]).
fn probe_keys(observable: &Observable) -> Vec<String> {
    match observable {
        Observable::Url(_, parts) => {
            let host = parts.host.key_text();
            let mut keys: Vec<String> = parts
                .covering_prefixes()
                .into_iter()
                .map(|prefix| format!("{host} {prefix}"))
                .collect();
            match &parts.host {
                UrlHost::Domain(name) => keys.extend(domain_suffixes(name).map(str::to_string)),
                UrlHost::Ip(ip) => keys.push(ip.to_string()),
            }
            keys
        }
        Observable::Domain(d) => domain_suffixes(d).map(str::to_string).collect(),
        Observable::Ip(ip) => vec![ip.to_string()],
        Observable::CertificateThumbprint(t) => vec![t.clone()],
        Observable::File(hashes) => hashes
            .strongest_first()
            .map(|(_, h)| h.to_string())
            .collect(),
    }
}

/// A stored indicator's key as the baseline holds it: the upsert key's value, and for URLs the
/// index's own `host path` form, which the probes spell.
fn baseline_key(indicator_type: IndicatorType, value_key: &str) -> String {
    match indicator_type {
        IndicatorType::Url => UrlParts::of_canonical(value_key)
            .map(|parts| parts.key_text())
            .unwrap_or_default(),
        _ => value_key.to_string(),
    }
}

fn probes(counts: &[(Kind, u64)], per_kind: u64) -> anyhow::Result<Vec<Probes>> {
    let mut all = Vec::new();
    for &(kind, count) in counts {
        let mut observables = Vec::new();
        let mut keys = Vec::new();
        for i in 0..per_kind {
            // Spread over the kind's indicators; every other one a hit.
            let n = i.wrapping_mul(2_654_435_761) % count.max(1);
            let raw = kind.probe(n, i % 2 == 0);
            let observable = Observable::parse(kind.observable(), &raw)
                .map_err(|e| anyhow::anyhow!("{raw}: {}", e.message))?;
            let key = probe_keys(&observable);
            observables.push(observable);
            keys.push(key);
        }
        all.push(Probes {
            kind,
            observables,
            keys,
        });
    }
    Ok(all)
}

/// Nanoseconds per call of `f` over `n` items, the best of three rounds.
fn ns_per(n: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut hits = 0;
    for _ in 0..3 {
        let started = Instant::now();
        hits = black_box(f());
        best = best.min(started.elapsed().as_nanos() as f64 / n as f64);
    }
    (best, hits)
}

// ---------------------------------------------------------------------------------------------

struct Row(String, String, String, String);

fn print_table(rows: &[Row]) {
    println!("| measurement | iocd | baseline | iocd / baseline |");
    println!("|---|---:|---:|---:|");
    for Row(a, b, c, d) in rows {
        println!("| {a} | {b} | {c} | {d} |");
    }
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

async fn import(
    server: &IocdProcess,
    auth: &str,
    counts: &[(Kind, u64)],
    total: u64,
) -> anyhow::Result<Duration> {
    let counts: Arc<Vec<(Kind, u64)>> = Arc::new(counts.to_vec());
    let calls = total.div_ceil(IMPORT_BATCH);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (counts, next, auth) = (counts.clone(), next.clone(), auth.to_string());
        let url = server.url("/api/indicators/import");
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let call = next.fetch_add(1, Ordering::Relaxed);
                if call >= calls {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = import_body(&counts, call * IMPORT_BATCH, total);
                let res = client
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = res.status();
                let answer: Value = res.json().await?;
                if status != 200 {
                    bail!("import answered {status}: {answer}");
                }
                if let Some(failed) = answer["value"]
                    .as_array()
                    .context("import answer")?
                    .iter()
                    .find(|r| r["isFailed"] != false)
                {
                    bail!("an item failed: {failed}");
                }
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let total = args
        .indicators
        .unwrap_or(if args.quick { 100_000 } else { 1_000_000 });
    let phase = Duration::from_secs(
        args.phase_seconds
            .unwrap_or(if args.quick { 3 } else { 10 }),
    );
    let counts = counts(total);
    let total: u64 = counts.iter().map(|(_, c)| c).sum();
    let database = match &args.postgres {
        Some(url) => ScratchDatabase::postgres(url).await,
        None => ScratchDatabase::sqlite(),
    };
    let iocd = Iocd::new(Path::new(env!("CARGO_BIN_EXE_iocd")));
    let server = iocd
        .serve()
        .database(&database.url)
        .unthrottled()
        .start()
        .await;
    let token = iocd
        .token_for_new_app(&database.url, &server.base_url())
        .await;
    let auth = format!("Bearer {token}");
    let rss_empty = server.rss_bytes();

    progress(&format!("importing {total} indicators"));
    let imported_in = import(&server, &auth, &counts, total).await?;
    let rss_loaded = server.rss_bytes();
    let mut rows = Vec::new();
    rows.push(Row(
        format!("import of {total} indicators (setup)"),
        format!("{:.0} s", imported_in.as_secs_f64()),
        "-".into(),
        "-".into(),
    ));

    // Rebuild at start: a MatchEngine over the database, from nothing to its first answer.
    progress("rebuild: a MatchEngine from the database");
    let stores = iocd_store::open_stores(&database.url).await?;
    let first = Observable::parse("ip", "11.0.0.1").map_err(|e| anyhow::anyhow!(e.message))?;
    let started = Instant::now();
    let engine = iocd_store::MatchEngine::start(stores.indicators.clone());
    engine
        .decide(TENANT, &[Ok(first)], None, iocd_domain::time::now())
        .await?;
    let rebuild = started.elapsed();
    let (indexed, _) = engine.size();
    drop(engine);
    rows.push(Row(
        format!("rebuild at start ({indexed} indexed)"),
        format!("{:.2} s", rebuild.as_secs_f64()),
        "-".into(),
        format!(
            "{:.1} µs/indicator",
            rebuild.as_secs_f64() * 1e6 / indexed.max(1) as f64
        ),
    ));

    // The index itself, in this process, for lookups and its size.
    let mut index = MatchIndex::new();
    let mut baseline: FxHashSet<String> = FxHashSet::default();
    let mut after = i64::MIN;
    loop {
        let rows = stores.indicators.index_rows(TENANT, after, 50_000).await?;
        for row in &rows {
            index.upsert(&row.record());
            baseline.insert(baseline_key(row.indicator_type, &row.value_key));
        }
        match rows.last() {
            Some(last) => after = last.id,
            None => break,
        }
    }
    // As the server's engine does after loading a tenant.
    index.shrink_to_fit();
    let bytes = index.heap_bytes();
    rows.push(Row(
        "index memory per indicator".into(),
        format!("{:.1} B", bytes as f64 / index.len() as f64),
        "100 B (target)".into(),
        format!("{:.0}%", bytes as f64 / index.len() as f64),
    ));

    progress("in-process lookups");
    let now = iocd_domain::time::now();
    let per_kind = 100_000u64.min(total);
    let probes = probes(&counts, per_kind)?;
    let (mut index_total, mut base_total, mut n_total) = (0.0, 0.0, 0usize);
    for p in &probes {
        let n = p.observables.len();
        let (index_ns, hits) = ns_per(n, || {
            p.observables
                .iter()
                .filter(|o| index.verdict(o, None, now).is_some())
                .count()
        });
        let (base_ns, base_hits) = ns_per(n, || {
            p.keys
                .iter()
                .filter(|keys| keys.iter().any(|k| baseline.contains(k.as_str())))
                .count()
        });
        index_total += index_ns * n as f64;
        base_total += base_ns * n as f64;
        n_total += n;
        rows.push(Row(
            format!(
                "lookup, {} ({hits} of {n} match; baseline finds {base_hits})",
                p.kind.name()
            ),
            format!("{index_ns:.0} ns"),
            format!("{base_ns:.0} ns"),
            format!("{:.0}%", base_ns / index_ns * 100.0),
        ));
    }
    // Mixed: the kinds interleaved.
    let mixed: Vec<(&Observable, &Vec<String>)> = (0..per_kind as usize)
        .flat_map(|i| probes.iter().map(move |p| (&p.observables[i], &p.keys[i])))
        .collect();
    let (mixed_index, _) = ns_per(mixed.len(), || {
        mixed
            .iter()
            .filter(|(o, _)| index.verdict(o, None, now).is_some())
            .count()
    });
    let (mixed_base, _) = ns_per(mixed.len(), || {
        mixed
            .iter()
            .filter(|(_, keys)| keys.iter().any(|k| baseline.contains(k.as_str())))
            .count()
    });
    // And with the reason the match API answers (the value's text and a sentence).
    let (mixed_explained, _) = ns_per(mixed.len(), || {
        mixed
            .iter()
            .filter(|(o, _)| index.decide(o, None, now).is_some())
            .count()
    });
    rows.push(Row(
        "lookup, kinds interleaved".into(),
        format!("{mixed_index:.0} ns"),
        format!("{mixed_base:.0} ns"),
        format!("{:.0}%", mixed_base / mixed_index * 100.0),
    ));
    rows.push(Row(
        "lookup with its reason (decide), kinds interleaved".into(),
        format!("{mixed_explained:.0} ns"),
        format!("{mixed_base:.0} ns"),
        format!("{:.0}%", mixed_base / mixed_explained * 100.0),
    ));
    rows.push(Row(
        "lookup, kinds one after another".into(),
        format!("{:.0} ns", index_total / n_total as f64),
        format!("{:.0} ns", base_total / n_total as f64),
        format!("{:.0}%", base_total / index_total * 100.0),
    ));
    drop((index, baseline, mixed));

    // HTTP: GET on 64 connections against the bare ceiling answering the same bytes.
    let get_paths: Arc<Vec<String>> = Arc::new(
        probes
            .iter()
            .flat_map(|p| {
                (0..1000u64).map(move |i| {
                    let n = i.wrapping_mul(2_654_435_761) % (per_kind.max(1));
                    let raw = p.kind.probe(n % 1000, i % 2 == 0);
                    let q: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
                    format!("/iocd/v1/match?{}={q}", p.kind.observable())
                })
            })
            .collect(),
    );
    drop(probes);
    let sample = reqwest::Client::new()
        .get(server.url(&get_paths[0]))
        .header("authorization", &auth)
        .send()
        .await?
        .bytes()
        .await?;
    progress("GET /iocd/v1/match, bare axum ceiling");
    let bare = start_bare_axum(sample)?;
    let paths = get_paths.clone();
    let ceiling = run_load(
        bare,
        None,
        args.connections,
        phase,
        Arc::new(move |n| (Method::GET, paths[n as usize % paths.len()].clone(), None)),
    )
    .await?;
    progress("GET /iocd/v1/match, iocd");
    let paths = get_paths.clone();
    let gets = run_load(
        server.addr(),
        Some(auth.clone()),
        args.connections,
        phase,
        Arc::new(move |n| (Method::GET, paths[n as usize % paths.len()].clone(), None)),
    )
    .await?;
    rows.push(Row(
        format!(
            "GET /iocd/v1/match, {} connections (mixed kinds, half match)",
            args.connections
        ),
        format!("{:.0} req/s", gets.per_second(1)),
        format!("{:.0} req/s", ceiling.per_second(1)),
        format!("{:.0}%", gets.per_second(1) / ceiling.per_second(1) * 100.0),
    ));

    progress("POST /iocd/v1/match, 1,000 observables per call");
    let counts_for_post = counts.clone();
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..16u64)
            .map(|b| {
                let observables: Vec<Value> = (0..POST_BATCH as u64)
                    .map(|i| {
                        let (kind, count) = counts_for_post[(i % 8) as usize];
                        let n = (b * 7919 + i).wrapping_mul(2_654_435_761) % count.max(1);
                        let raw = kind.probe(n, i % 2 == 0);
                        match kind {
                            Kind::Sha256 | Kind::Sha1 | Kind::Md5 => {
                                json!({"file": {kind.observable(): raw}})
                            }
                            _ => json!({kind.observable(): raw}),
                        }
                    })
                    .collect();
                Bytes::from(
                    serde_json::to_vec(&json!({ "observables": observables })).expect("JSON"),
                )
            })
            .collect(),
    );
    let posts = run_load(
        server.addr(),
        Some(auth.clone()),
        args.post_connections,
        phase,
        Arc::new(move |n| {
            (
                Method::POST,
                "/iocd/v1/match".to_string(),
                Some(bodies[n as usize % bodies.len()].clone()),
            )
        }),
    )
    .await?;
    rows.push(Row(
        format!(
            "POST /iocd/v1/match, 1,000 observables per call, {} connections",
            args.post_connections
        ),
        format!("{:.0} observables/s", posts.per_second(POST_BATCH as u64)),
        "-".into(),
        format!(
            "{:.1} ms/call",
            posts.elapsed.as_secs_f64() * 1000.0 / posts.requests.max(1) as f64
                * args.post_connections as f64
        ),
    ));

    // The feed of every indicator, its time and the server's peak memory above its start.
    progress("feed: zeek-intel of every indicator");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.pid();
    let before = rss_of(pid).unwrap_or(0);
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = rss_of(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    let feed = reqwest::Client::new()
        .get(server.url("/iocd/v1/feeds/zeek-intel?action=Block,Allowed"))
        .header("authorization", &auth)
        .send()
        .await?;
    if feed.status() != 200 {
        bail!("feed answered {}", feed.status());
    }
    let mut feed = feed;
    let (mut lines, mut size) = (0u64, 0u64);
    while let Some(chunk) = feed.chunk().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        size += chunk.len() as u64;
    }
    let feed_time = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    let added = peak.load(Ordering::Relaxed).saturating_sub(before);
    rows.push(Row(
        format!(
            "feed zeek-intel, {} entries, {:.0} MiB",
            lines.saturating_sub(1),
            size as f64 / 1048576.0
        ),
        format!("{:.2} s", feed_time.as_secs_f64()),
        "-".into(),
        format!("+{:.1} MiB peak RSS", added as f64 / 1048576.0),
    ));
    let mib = |b: Option<u64>| {
        b.map_or("-".to_string(), |b| {
            format!("{:.0} MiB", b as f64 / 1048576.0)
        })
    };
    rows.push(Row(
        "server RSS: empty / loaded".into(),
        format!("{} / {}", mib(rss_empty), mib(rss_loaded)),
        "-".into(),
        "-".into(),
    ));

    println!(
        "\nmatching on {}, {} indicators, {} cores, load average {}\n",
        if args.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        total,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    print_table(&rows);
    drop(server);
    Ok(())
}
