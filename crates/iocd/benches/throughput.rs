//! Throughput and latency of iocd against its own ceilings, in one run:
//!
//! ```text
//! cargo bench -p iocd --bench throughput                 # SQLite, full run
//! cargo bench -p iocd --bench throughput -- --quick      # small counts, a smoke run
//! cargo bench -p iocd --bench throughput -- --postgres postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! It starts the release `iocd` binary itself (rate limits and quota off) over a fresh database
//! and drives it over keep-alive HTTP/1.1 connections, then prints one table. The baselines run
//! in the same process on the same machine: a bare axum handler answering an entity-sized
//! JSON body (the HTTP ceiling) and raw sqlx inserts of the same rows in 500-row transactions
//! (the storage ceiling). See docs/benchmarks.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use iocd_testkit::{Iocd, IocdProcess, ScratchDatabase, TENANT};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use tokio::net::TcpStream;

const IMPORT_BATCH: usize = 500;
const LIST_TOP: usize = 100;

/// Command-line settings (after `--`).
#[derive(Debug, Clone)]
struct Settings {
    postgres: Option<String>,
    /// Connections of the single-request phases.
    connections: usize,
    /// Connections sending imports at once.
    import_connections: usize,
    /// How long each single-request phase runs.
    phase: Duration,
    /// Stored indicators of the small list measurement (the reference's quota).
    small_store: usize,
    /// Stored indicators of the large list measurement.
    large_store: usize,
    /// Requests per list measurement.
    list_requests: usize,
    /// Rows of the storage baseline.
    storage_rows: usize,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Baselines,
    Creates,
    Updates,
    Import,
    List,
}

impl Settings {
    fn parse() -> anyhow::Result<Settings> {
        let mut s = Settings {
            postgres: None,
            connections: 64,
            import_connections: 4,
            phase: Duration::from_secs(10),
            small_store: 15_000,
            large_store: 1_000_000,
            list_requests: 5_000,
            storage_rows: 200_000,
            parts: vec![
                Part::Baselines,
                Part::Creates,
                Part::Updates,
                Part::Import,
                Part::List,
            ],
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                // cargo bench passes --bench to harness=false targets.
                "--bench" => {}
                "--quick" => {
                    s.phase = Duration::from_secs(2);
                    s.small_store = 15_000;
                    s.large_store = 50_000;
                    s.list_requests = 1_000;
                    s.storage_rows = 20_000;
                }
                "--postgres" => s.postgres = Some(value("--postgres")?),
                "--connections" => s.connections = value("--connections")?.parse()?,
                "--import-connections" => {
                    s.import_connections = value("--import-connections")?.parse()?
                }
                "--phase-seconds" => {
                    s.phase = Duration::from_secs(value("--phase-seconds")?.parse()?)
                }
                "--large-store" => s.large_store = value("--large-store")?.parse()?,
                "--list-requests" => s.list_requests = value("--list-requests")?.parse()?,
                "--storage-rows" => s.storage_rows = value("--storage-rows")?.parse()?,
                "--parts" => {
                    s.parts = value("--parts")?
                        .split(',')
                        .map(|p| match p {
                            "baselines" => Ok(Part::Baselines),
                            "creates" => Ok(Part::Creates),
                            "updates" => Ok(Part::Updates),
                            "import" => Ok(Part::Import),
                            "list" => Ok(Part::List),
                            other => bail!(
                                "unknown part '{other}' (baselines,creates,updates,import,list)"
                            ),
                        })
                        .collect::<anyhow::Result<_>>()?
                }
                "-h" | "--help" => {
                    println!(
                        "options: --quick --postgres URL --connections N --import-connections N \
                         --phase-seconds S --large-store N --list-requests N --storage-rows N \
                         --parts baselines,creates,updates,import,list"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown option '{other}' (try --help)"),
            }
        }
        Ok(s)
    }

    fn has(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }
}

// ---------------------------------------------------------------------------------------------
// Load generation: a fixed set of keep-alive HTTP/1.1 connections, one task each.

/// Builds request `n` of a phase (its body and path), numbered across all connections.
type MakeRequest = Arc<dyn Fn(u64) -> (Method, String, Option<Bytes>) + Send + Sync>;
/// Checks one response body; returns how many items it carried (1 for an entity).
type CheckResponse = Arc<dyn Fn(&[u8]) -> anyhow::Result<u64> + Send + Sync>;

struct Load {
    addr: SocketAddr,
    auth: Option<String>,
    connections: usize,
    /// Stops after this many requests…
    max_requests: u64,
    /// …or after this long, whichever comes first.
    max_time: Duration,
    make: MakeRequest,
    check: CheckResponse,
}

struct LoadResult {
    requests: u64,
    items: u64,
    elapsed: Duration,
    /// Microseconds per request.
    latency: Histogram<u64>,
}

impl LoadResult {
    fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn items_per_second(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    fn p(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(quantile))
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

async fn run_load(load: Load) -> anyhow::Result<LoadResult> {
    let load = Arc::new(load);
    let next = Arc::new(AtomicU64::new(0));
    // Every connection is open before the clock starts.
    let start_line = Arc::new(tokio::sync::Barrier::new(load.connections + 1));
    let mut workers = Vec::new();
    for _ in 0..load.connections {
        let stream = TcpStream::connect(load.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let (load, next, start_line) = (load.clone(), next.clone(), start_line.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = sender;
            let mut latency = new_histogram();
            let mut items = 0u64;
            let mut requests = 0u64;
            start_line.wait().await;
            let started = Instant::now();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= load.max_requests || started.elapsed() >= load.max_time {
                    break;
                }
                let (method, path, body) = (load.make)(n);
                let mut req = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", load.addr.to_string());
                if let Some(auth) = &load.auth {
                    req = req.header("authorization", auth);
                }
                if body.is_some() {
                    req = req.header("content-type", "application/json");
                }
                let req = req.body(Full::new(body.unwrap_or_default()))?;
                let sent = Instant::now();
                sender.ready().await?;
                let res = sender.send_request(req).await?;
                let status = res.status();
                let bytes = res.into_body().collect().await?.to_bytes();
                latency.record(sent.elapsed().as_micros().max(1) as u64)?;
                if status != 200 {
                    bail!(
                        "request {n} answered {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                items += (load.check)(&bytes)?;
                requests += 1;
            }
            Ok::<_, anyhow::Error>((requests, items, latency))
        }));
    }
    start_line.wait().await;
    let started = Instant::now();
    let mut result = LoadResult {
        requests: 0,
        items: 0,
        elapsed: Duration::ZERO,
        latency: new_histogram(),
    };
    for worker in workers {
        let (requests, items, latency) = worker.await??;
        result.requests += requests;
        result.items += items;
        result.latency.add(latency)?;
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// What the phases send.

fn create_body(value: &str, title: &str) -> Value {
    json!({
        "indicatorValue": value,
        "indicatorType": "DomainName",
        "action": "Block",
        "severity": "High",
        "title": title,
        "description": "Phishing domain reported by the benchmark feed",
        "recommendedActions": "Block at the proxy and review affected devices",
        "rbacGroupNames": ["servers", "workstations"],
        "generateAlert": true
    })
}

fn created_value(n: u64) -> String {
    format!("c{n}.bench.example")
}

/// A SHA-256-shaped value unique to `n` (not a real hash; iocd checks the shape only).
fn imported_value(n: u64) -> String {
    let mixed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:016x}{:016x}{:016x}{:016x}", mixed, n, !mixed, n ^ 0xA5A5)
}

fn import_item(n: u64) -> Value {
    json!({
        "indicatorValue": imported_value(n),
        "indicatorType": "FileSha256",
        "action": "BlockAndRemediate",
        "severity": "Medium",
        "title": format!("Malware sample {n}"),
        "description": "Ransomware loader seen in the benchmark feed",
        "rbacGroupNames": ["servers"]
    })
}

fn import_body(first: u64) -> Bytes {
    let items: Vec<Value> = (first..first + IMPORT_BATCH as u64)
        .map(import_item)
        .collect();
    Bytes::from(serde_json::to_vec(&json!({ "Indicators": items })).expect("JSON"))
}

fn check_entity(body: &[u8]) -> anyhow::Result<u64> {
    let entity: Value = serde_json::from_slice(body)?;
    if entity["id"].as_str().is_none() {
        bail!("not an indicator: {}", String::from_utf8_lossy(body));
    }
    Ok(1)
}

fn check_import(body: &[u8]) -> anyhow::Result<u64> {
    let answer: Value = serde_json::from_slice(body)?;
    let results = answer["value"]
        .as_array()
        .context("import answer without value")?;
    if let Some(failed) = results.iter().find(|r| r["isFailed"] != false) {
        bail!("an imported item failed: {failed}");
    }
    Ok(results.len() as u64)
}

fn check_list(body: &[u8]) -> anyhow::Result<u64> {
    let answer: Value = serde_json::from_slice(body)?;
    let found = answer["value"]
        .as_array()
        .context("list answer without value")?
        .len();
    if found != 1 {
        bail!("the filter found {found} indicators, expected 1");
    }
    Ok(1)
}

/// `GET /api/indicators?$filter=indicatorValue eq '…'&$top=100` for a value among the
/// first `stored` imported ones (spread over the range by a multiplicative hash).
fn list_path(n: u64, stored: u64) -> String {
    let value = imported_value(n.wrapping_mul(2_654_435_761) % stored);
    format!("/api/indicators?$filter=indicatorValue%20eq%20%27{value}%27&$top={LIST_TOP}")
}

// ---------------------------------------------------------------------------------------------
// Baselines.

/// A realistic entity as iocd answers it, for the bare HTTP handler to return.
fn entity_sized_body() -> Bytes {
    let entity = json!({
        "@odata.context": "http://127.0.0.1/api/$metadata#Indicators/$entity",
        "id": "123456", "indicatorValue": "c123456.bench.example", "indicatorType": "DomainName",
        "action": "Block", "createdBy": "00000000-0000-0000-0000-0000000000de", "severity": "High",
        "category": 1, "application": null, "educateUrl": null, "bypassDurationHours": null,
        "title": "benchmark 123456", "description": "Phishing domain reported by the benchmark feed",
        "recommendedActions": "Block at the proxy and review affected devices",
        "creationTimeDateTimeUtc": "2026-11-23T10:00:00.1234567Z", "expirationTime": null,
        "lastUpdateTime": "2026-11-23T10:00:00.1234567Z", "lastUpdatedBy": null,
        "rbacGroupNames": ["servers", "workstations"], "rbacGroupIds": [], "notificationId": null,
        "notificationBody": null, "version": null, "mitreTechniques": [], "historicalDetection": false,
        "lookBackPeriod": null, "generateAlert": true, "additionalInfo": null,
        "createdByDisplayName": "bench", "externalId": null, "createdBySource": "PublicApi",
        "certificateInfo": null
    });
    Bytes::from(serde_json::to_vec(&entity).expect("JSON"))
}

/// Serves a bare axum app on its own two-thread runtime (like the iocd process has): every
/// request gets the entity-sized body, after the request body was read whole.
fn start_bare_axum() -> anyhow::Result<SocketAddr> {
    use axum::routing::any;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let body = entity_sized_body();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let handler = move |_request_body: Bytes| {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            };
            let app = axum::Router::new().fallback(any(handler));
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("bare axum");
        });
    });
    Ok(addr)
}

fn migrations_dir(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../iocd-store/migrations/{backend}"))
}

const INSERT_ROW: &str = "INSERT INTO indicators (tenant_id, id, indicator_value, indicator_type, action, \
    created_by, severity, category, title, description, creation_time, last_update_time, rbac_group_names, \
    rbac_group_ids, mitre_techniques, historical_detection, generate_alert, created_by_display_name, \
    created_by_source, value_key) VALUES ($1, $2, $3, 'FileSha256', 'BlockAndRemediate', $4, 'Medium', 1, $5, $6, \
    $7, $7, '[\"servers\"]', '[]', '[]', FALSE, FALSE, 'bench', 'PublicApi', $3)";

/// Inserts `rows` import-shaped rows straight through sqlx, 500 per transaction, on one
/// connection over the same schema and durability settings as iocd: the storage ceiling.
async fn storage_baseline(database: &ScratchDatabase, rows: usize) -> anyhow::Result<f64> {
    macro_rules! insert_all {
        ($conn:expr) => {{
            let conn = $conn;
            let started = Instant::now();
            for first in (0..rows as u64).step_by(IMPORT_BATCH) {
                let mut tx = conn.begin().await?;
                for n in first..(first + IMPORT_BATCH as u64).min(rows as u64) {
                    sqlx::query(INSERT_ROW)
                        .bind(TENANT)
                        .bind(n as i64 + 1)
                        .bind(imported_value(n))
                        .bind("00000000-0000-0000-0000-0000000000de")
                        .bind(format!("Malware sample {n}"))
                        .bind("Ransomware loader seen in the benchmark feed")
                        .bind(17_000_000_000_000_000i64 + n as i64)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            started.elapsed()
        }};
    }
    let elapsed = if database.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(&database.url).await?;
        sqlx::migrate::Migrator::new(migrations_dir("postgres"))
            .await?
            .run(&mut conn)
            .await?;
        insert_all!(&mut conn)
    } else {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use sqlx::ConnectOptions;
        let options: SqliteConnectOptions = database.url.parse()?;
        let mut conn = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .connect()
            .await?;
        sqlx::migrate::Migrator::new(migrations_dir("sqlite"))
            .await?
            .run(&mut conn)
            .await?;
        conn.execute("SELECT 1").await?;
        insert_all!(&mut conn)
    };
    Ok(rows as f64 / elapsed.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Row {
    what: String,
    iocd: String,
    baseline: String,
    ratio: String,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
}

fn latency_rows(rows: &mut Vec<Row>, what: &str, iocd: &LoadResult, base: Option<&LoadResult>) {
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        rows.push(Row {
            what: format!("{what} {name}"),
            iocd: ms(iocd.p(q)),
            baseline: base.map_or("-".into(), |b| ms(b.p(q))),
            ratio: base.map_or("-".into(), |b| {
                format!("{:.1}×", iocd.p(q).as_secs_f64() / b.p(q).as_secs_f64())
            }),
        });
    }
}

fn throughput_row(what: &str, unit: &str, iocd: f64, base: Option<f64>) -> Row {
    Row {
        what: what.to_string(),
        iocd: format!("{iocd:.0} {unit}"),
        baseline: base.map_or("-".into(), |b| format!("{b:.0} {unit}")),
        ratio: base.map_or("-".into(), |b| format!("{:.0}%", 100.0 * iocd / b)),
    }
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}\n");
    println!("| measurement | iocd | baseline | iocd / baseline |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r.what, r.iocd, r.baseline, r.ratio);
    }
}

fn progress(what: &str) {
    eprintln!("[{:>7.1}s] {what}", START.elapsed().as_secs_f64());
}

static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Imports `count` indicators numbered from `first`, `import_connections` calls at a time.
async fn import_range(
    s: &Settings,
    server: &IocdProcess,
    auth: &Option<String>,
    first: u64,
    count: u64,
) -> anyhow::Result<LoadResult> {
    let calls = count.div_ceil(IMPORT_BATCH as u64);
    run_load(Load {
        addr: server.addr(),
        auth: auth.clone(),
        connections: s.import_connections.min(calls as usize).max(1),
        max_requests: calls,
        max_time: Duration::from_secs(3600),
        make: Arc::new(move |n| {
            (
                Method::POST,
                "/api/indicators/import".to_string(),
                Some(import_body(first + n * IMPORT_BATCH as u64)),
            )
        }),
        check: Arc::new(check_import),
    })
    .await
}

async fn list_load(
    s: &Settings,
    addr: SocketAddr,
    auth: &Option<String>,
    stored: u64,
    check: CheckResponse,
) -> anyhow::Result<LoadResult> {
    run_load(Load {
        addr,
        auth: auth.clone(),
        connections: s.connections,
        max_requests: s.list_requests as u64,
        max_time: Duration::from_secs(600),
        make: Arc::new(move |n| (Method::GET, list_path(n, stored), None)),
        check,
    })
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings::parse()?;
    let _ = *START;
    let binary = Path::new(env!("CARGO_BIN_EXE_iocd"));
    let backend = if s.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let fresh_database = || async {
        match &s.postgres {
            Some(url) => ScratchDatabase::postgres(url).await,
            None => ScratchDatabase::sqlite(),
        }
    };
    let mut rows = Vec::new();

    // Baselines first, while nothing else runs.
    let mut http_ceiling = None;
    let mut http_get_ceiling = None;
    let mut storage_ceiling = None;
    if s.has(Part::Baselines) {
        progress("baseline: bare axum, single POSTs");
        let addr = start_bare_axum()?;
        let body = Bytes::from(serde_json::to_vec(&create_body("c1.bench.example", "t"))?);
        http_ceiling = Some(
            run_load(Load {
                addr,
                auth: None,
                connections: s.connections,
                max_requests: u64::MAX,
                max_time: s.phase,
                make: Arc::new(move |_| {
                    (Method::POST, "/api/indicators".into(), Some(body.clone()))
                }),
                check: Arc::new(|_| Ok(1)),
            })
            .await?,
        );
        progress("baseline: bare axum, GETs");
        http_get_ceiling =
            Some(list_load(&s, addr, &None, s.small_store as u64, Arc::new(|_| Ok(1))).await?);
        progress(&format!("baseline: raw sqlx inserts into {backend}"));
        let database = fresh_database().await;
        storage_ceiling = Some(storage_baseline(&database, s.storage_rows).await?);
    }

    let database = fresh_database().await;
    let iocd = Iocd::new(binary);
    let server = iocd
        .serve()
        .database(&database.url)
        .unthrottled()
        .start()
        .await;
    let token = iocd
        .token_for_new_app(&database.url, &server.base_url())
        .await;
    let auth = Some(format!("Bearer {token}"));
    let rss_empty = server.rss_bytes();
    let mut memory = vec![("empty".to_string(), rss_empty)];
    let mut stored: u64 = 0;
    let mut imported: u64 = 0;

    // The small store for the list measurement: the reference's per-tenant quota.
    let mut import_small = None;
    if s.has(Part::Import) || s.has(Part::List) {
        progress(&format!("import: {} indicators", s.small_store));
        import_small = Some(import_range(&s, &server, &auth, 0, s.small_store as u64).await?);
        imported = s.small_store as u64;
        stored += imported;
        memory.push((format!("{stored} stored"), server.rss_bytes()));
    }
    let mut list_small = None;
    if s.has(Part::List) {
        progress(&format!("list: filtered, {stored} stored"));
        list_small =
            Some(list_load(&s, server.addr(), &auth, imported, Arc::new(check_list)).await?);
    }

    let mut creates = None;
    if s.has(Part::Creates) {
        progress("creates: single POSTs of new values");
        let result = run_load(Load {
            addr: server.addr(),
            auth: auth.clone(),
            connections: s.connections,
            max_requests: u64::MAX,
            max_time: s.phase,
            make: Arc::new(|n| {
                let body = create_body(&created_value(n), &format!("benchmark {n}"));
                (
                    Method::POST,
                    "/api/indicators".into(),
                    Some(Bytes::from(body.to_string())),
                )
            }),
            check: Arc::new(check_entity),
        })
        .await?;
        stored += result.requests;
        creates = Some(result);
    }

    let mut updates = None;
    if s.has(Part::Updates) {
        let existing = creates.as_ref().map_or(0, |c| c.requests);
        if existing == 0 {
            bail!("the update phase needs the create phase");
        }
        progress("updates: single POSTs of existing values");
        updates = Some(
            run_load(Load {
                addr: server.addr(),
                auth: auth.clone(),
                connections: s.connections,
                max_requests: u64::MAX,
                max_time: s.phase,
                make: Arc::new(move |n| {
                    let value = created_value(n.wrapping_mul(2_654_435_761) % existing);
                    let body = create_body(&value, &format!("updated {n}"));
                    (
                        Method::POST,
                        "/api/indicators".into(),
                        Some(Bytes::from(body.to_string())),
                    )
                }),
                check: Arc::new(check_entity),
            })
            .await?,
        );
    }

    let mut import_large = None;
    let mut list_large = None;
    if s.has(Part::Import) || s.has(Part::List) {
        let target = s.large_store as u64;
        let count = target.saturating_sub(stored);
        progress(&format!(
            "import: {count} more indicators, to {target} stored"
        ));
        let result = import_range(&s, &server, &auth, imported, count).await?;
        imported += result.items;
        stored += result.items;
        memory.push((format!("{stored} stored"), server.rss_bytes()));
        import_large = Some(result);
        if s.has(Part::List) {
            progress(&format!("list: filtered, {stored} stored"));
            list_large =
                Some(list_load(&s, server.addr(), &auth, imported, Arc::new(check_list)).await?);
        }
    }
    memory.push(("at the end".into(), server.rss_bytes()));
    drop(server);

    // The table.
    if let Some(c) = &creates {
        let base = http_ceiling.as_ref();
        rows.push(throughput_row(
            &format!("single creates, {} connections", s.connections),
            "req/s",
            c.requests_per_second(),
            base.map(LoadResult::requests_per_second),
        ));
        latency_rows(&mut rows, "single creates latency", c, base);
    }
    if let Some(u) = &updates {
        let base = http_ceiling.as_ref();
        rows.push(throughput_row(
            &format!("single updates, {} connections", s.connections),
            "req/s",
            u.requests_per_second(),
            base.map(LoadResult::requests_per_second),
        ));
        latency_rows(&mut rows, "single updates latency", u, base);
    }
    for (label, result) in [
        ("import to 15k (first calls)", &import_small),
        ("import to large store", &import_large),
    ] {
        if let Some(r) = result {
            if s.has(Part::Import) && r.items > 0 {
                rows.push(throughput_row(
                    &format!(
                        "{label}, {} items/call, {} connections",
                        IMPORT_BATCH, s.import_connections
                    ),
                    "ind/s",
                    r.items_per_second(),
                    storage_ceiling,
                ));
            }
        }
    }
    for (label, result) in [
        (format!("{} stored", s.small_store), &list_small),
        (format!("{} stored", s.large_store), &list_large),
    ] {
        if let Some(r) = result {
            latency_rows(
                &mut rows,
                &format!("filtered list, {label},"),
                r,
                http_get_ceiling.as_ref(),
            );
        }
    }
    if creates.is_none() && updates.is_none() {
        if let Some(b) = &http_ceiling {
            rows.push(throughput_row(
                "bare axum POSTs",
                "req/s",
                b.requests_per_second(),
                None,
            ));
        }
    }
    if let Some(ceiling) = storage_ceiling {
        rows.push(throughput_row(
            "raw sqlx inserts, 500/transaction",
            "rows/s",
            ceiling,
            None,
        ));
    }
    for (when, rss) in &memory {
        rows.push(Row {
            what: format!("server RSS, {when}"),
            iocd: mib(*rss),
            baseline: "-".into(),
            ratio: "-".into(),
        });
    }
    if let (Some(empty), Some((_, Some(full)))) = (
        rss_empty,
        memory.iter().rev().find(|(w, _)| w.ends_with("stored")),
    ) {
        if stored > 0 {
            let per_million = (*full as f64 - empty as f64) / stored as f64 * 1e6;
            rows.push(Row {
                what: "server RSS growth per million stored".into(),
                iocd: mib(Some(per_million.max(0.0) as u64)),
                baseline: "-".into(),
                ratio: "-".into(),
            });
        }
    }
    print_table(
        &format!(
            "iocd on {backend}, {} cores, baseline = bare axum (HTTP) / raw sqlx inserts (storage)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        &rows,
    );
    Ok(())
}
