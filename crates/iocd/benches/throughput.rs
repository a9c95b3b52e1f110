//! Throughput and latency of iocd against its own ceilings, in one run:
//!
//! ```text
//! cargo bench -p iocd --bench throughput                 # SQLite, full run
//! cargo bench -p iocd --bench throughput -- --quick      # small counts, a smoke run
//! cargo bench -p iocd --bench throughput -- --parts changelog   # the change log's cost
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
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use iocd_testkit::{start_bare_axum, Iocd, IocdProcess, ScratchDatabase, TENANT};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use tokio::net::TcpStream;

const IMPORT_BATCH: usize = 500;
const LIST_TOP: usize = 100;

/// The command line (after `--`).
#[derive(Debug, Parser)]
#[command(
    name = "throughput",
    about = "Throughput and latency of iocd against a bare axum handler and raw sqlx inserts"
)]
struct Args {
    /// Small counts and short phases: a smoke run (options given with it still apply).
    #[arg(long)]
    quick: bool,
    /// Measure PostgreSQL (a scratch database is made on this server) instead of SQLite.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Connections of the single-request phases.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Connections sending imports at once.
    #[arg(long, default_value_t = 4)]
    import_connections: usize,
    /// How long each single-request phase runs [default: 10, or 2 with --quick].
    #[arg(long, value_name = "S")]
    phase_seconds: Option<u64>,
    /// Stored indicators of the large list measurement [default: 1000000, or 50000 with --quick].
    #[arg(long, value_name = "N")]
    large_store: Option<usize>,
    /// Requests per list measurement [default: 5000, or 1000 with --quick].
    #[arg(long, value_name = "N")]
    list_requests: Option<usize>,
    /// Rows of the storage baseline [default: 200000, or 20000 with --quick].
    #[arg(long, value_name = "N")]
    storage_rows: Option<usize>,
    /// The parts to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "baselines,creates,updates,import,list"
    )]
    parts: Vec<Part>,
    /// Passed by `cargo bench` to targets without the default harness; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What one run measures, defaults resolved.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Baselines,
    Creates,
    Updates,
    Import,
    List,
    /// Single creates and imports with the change log and without it (`--no-change-log`), on
    /// fresh stores, in alternating order: what the log costs the write path.
    Changelog,
}

impl Settings {
    fn parse() -> Settings {
        let args = Args::parse();
        let quick = args.quick;
        let pick = |given: Option<usize>, full_run: usize, quick_run: usize| {
            given.unwrap_or(if quick { quick_run } else { full_run })
        };
        Settings {
            postgres: args.postgres,
            connections: args.connections,
            import_connections: args.import_connections,
            phase: Duration::from_secs(args.phase_seconds.unwrap_or(if quick { 2 } else { 10 })),
            small_store: 15_000,
            large_store: pick(args.large_store, 1_000_000, 50_000),
            list_requests: pick(args.list_requests, 5_000, 1_000),
            storage_rows: pick(args.storage_rows, 200_000, 20_000),
            parts: args.parts,
        }
    }

    fn has(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }

    fn backend(&self) -> &'static str {
        if self.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    async fn fresh_database(&self) -> ScratchDatabase {
        match &self.postgres {
            Some(url) => ScratchDatabase::postgres(url).await,
            None => ScratchDatabase::sqlite(),
        }
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

/// The ceilings iocd is measured against, taken first while nothing else runs.
#[derive(Default)]
struct Baselines {
    /// A bare axum handler answering single POSTs with an entity-sized body.
    http_post: Option<LoadResult>,
    /// The same handler answering GETs.
    http_get: Option<LoadResult>,
    /// Raw sqlx inserts of the same rows, in rows per second.
    storage: Option<f64>,
}

async fn measure_baselines(s: &Settings) -> anyhow::Result<Baselines> {
    if !s.has(Part::Baselines) {
        return Ok(Baselines::default());
    }
    progress("baseline: bare axum, single POSTs");
    let addr = start_bare_axum(entity_sized_body())?;
    let body = Bytes::from(serde_json::to_vec(&create_body("c1.bench.example", "t"))?);
    let http_post = run_load(Load {
        addr,
        auth: None,
        connections: s.connections,
        max_requests: u64::MAX,
        max_time: s.phase,
        make: Arc::new(move |_| (Method::POST, "/api/indicators".into(), Some(body.clone()))),
        check: Arc::new(|_| Ok(1)),
    })
    .await?;
    progress("baseline: bare axum, GETs");
    let http_get = list_load(s, addr, &None, s.small_store as u64, Arc::new(|_| Ok(1))).await?;
    progress(&format!("baseline: raw sqlx inserts into {}", s.backend()));
    let database = s.fresh_database().await;
    let storage = storage_baseline(&database, s.storage_rows).await?;
    Ok(Baselines {
        http_post: Some(http_post),
        http_get: Some(http_get),
        storage: Some(storage),
    })
}

/// What the measurements of iocd itself found; a part not run leaves its fields empty.
#[derive(Default)]
struct Measurements {
    import_small: Option<LoadResult>,
    list_small: Option<LoadResult>,
    creates: Option<LoadResult>,
    updates: Option<LoadResult>,
    import_large: Option<LoadResult>,
    list_large: Option<LoadResult>,
    /// The server's resident memory at points of the run.
    memory: Vec<(String, Option<u64>)>,
    /// Indicators stored at the end.
    stored: u64,
}

/// The running server the iocd measurements drive, and how much it holds.
struct Target {
    server: IocdProcess,
    auth: Option<String>,
    /// Indicators stored so far.
    stored: u64,
    /// Of which imported (numbered `0..imported`, which the list requests look up).
    imported: u64,
    /// The server's store, kept for as long as the server runs.
    _database: ScratchDatabase,
}

impl Target {
    /// The release `iocd` unthrottled on a fresh store, with `extra` arguments to `serve`, and
    /// a token of a new app with the write role.
    async fn start(s: &Settings, extra: &[&str]) -> Target {
        let binary = Path::new(env!("CARGO_BIN_EXE_iocd"));
        let database = s.fresh_database().await;
        let iocd = Iocd::new(binary);
        let server = iocd
            .serve()
            .database(&database.url)
            .unthrottled()
            .args(extra)
            .start()
            .await;
        let token = iocd
            .token_for_new_app(&database.url, &server.base_url())
            .await;
        Target {
            server,
            auth: Some(format!("Bearer {token}")),
            stored: 0,
            imported: 0,
            _database: database,
        }
    }
}

async fn measure_iocd(s: &Settings) -> anyhow::Result<Measurements> {
    let mut target = Target::start(s, &[]).await;
    let mut m = Measurements {
        memory: vec![("empty".to_string(), target.server.rss_bytes())],
        ..Measurements::default()
    };
    if s.has(Part::Import) || s.has(Part::List) {
        // The small store for the list measurement: the reference's per-tenant quota.
        (m.import_small, m.list_small) =
            import_then_list(s, &mut target, s.small_store as u64, &mut m.memory).await?;
    }
    if s.has(Part::Creates) {
        m.creates = Some(single_creates(s, &mut target).await?);
    }
    if s.has(Part::Updates) {
        let existing = m.creates.as_ref().map_or(0, |c| c.requests);
        m.updates = Some(single_updates(s, &target, existing).await?);
    }
    if s.has(Part::Import) || s.has(Part::List) {
        (m.import_large, m.list_large) =
            import_then_list(s, &mut target, s.large_store as u64, &mut m.memory).await?;
    }
    m.memory
        .push(("at the end".into(), target.server.rss_bytes()));
    m.stored = target.stored;
    Ok(m)
}

/// Rounds of the change-log comparison; each runs both servers, in alternating order.
const CHANGE_LOG_ROUNDS: usize = 2;

/// Single creates and imports with the change log and without it, each on a fresh store.
/// Rounds alternate which server goes first, so drift of the machine's speed over the run
/// falls on both; each side keeps its best round.
async fn measure_change_log(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let imports = s.large_store.min(200_000) as u64;
    let mut best: [(f64, f64); 2] = [(0.0, 0.0); 2];
    for round in 0..CHANGE_LOG_ROUNDS {
        for step in 0..2 {
            let logged = (round + step) % 2 == 0;
            let (creates, imported) = write_path_with_log(s, logged, imports).await?;
            let side = &mut best[usize::from(logged)];
            side.0 = side.0.max(creates.requests_per_second());
            side.1 = side.1.max(imported.items_per_second());
        }
    }
    let [(creates_off, imports_off), (creates_on, imports_on)] = best;
    Ok(vec![
        throughput_row(
            &format!("single creates, {} connections", s.connections),
            "req/s",
            creates_on,
            Some(creates_off),
        ),
        throughput_row(
            &format!(
                "import of {imports}, {} items/call, {} connections",
                IMPORT_BATCH, s.import_connections
            ),
            "ind/s",
            imports_on,
            Some(imports_off),
        ),
    ])
}

/// One server on a fresh store, with or without the change log: a phase of single creates,
/// then `imports` imported indicators.
async fn write_path_with_log(
    s: &Settings,
    logged: bool,
    imports: u64,
) -> anyhow::Result<(LoadResult, LoadResult)> {
    let extra: &[&str] = if logged { &[] } else { &["--no-change-log"] };
    let mut target = Target::start(s, extra).await;
    progress(&format!(
        "change log {}: creates, then an import of {imports}",
        if logged { "on" } else { "off" }
    ));
    let creates = single_creates(s, &mut target).await?;
    let imported = import_range(s, &target.server, &target.auth, 0, imports).await?;
    Ok((creates, imported))
}

/// Imports until `size` indicators are stored, then (if the list part runs) measures filtered
/// lists over them.
async fn import_then_list(
    s: &Settings,
    target: &mut Target,
    size: u64,
    memory: &mut Vec<(String, Option<u64>)>,
) -> anyhow::Result<(Option<LoadResult>, Option<LoadResult>)> {
    let count = size.saturating_sub(target.stored);
    progress(&format!("import: {count} indicators, to {size} stored"));
    let imported = import_range(s, &target.server, &target.auth, target.imported, count).await?;
    target.imported += imported.items;
    target.stored += imported.items;
    memory.push((
        format!("{} stored", target.stored),
        target.server.rss_bytes(),
    ));
    if !s.has(Part::List) {
        return Ok((Some(imported), None));
    }
    progress(&format!("list: filtered, {} stored", target.stored));
    let listed = list_load(
        s,
        target.server.addr(),
        &target.auth,
        target.imported,
        Arc::new(check_list),
    )
    .await?;
    Ok((Some(imported), Some(listed)))
}

async fn single_creates(s: &Settings, target: &mut Target) -> anyhow::Result<LoadResult> {
    progress("creates: single POSTs of new values");
    let result = run_load(Load {
        addr: target.server.addr(),
        auth: target.auth.clone(),
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
    target.stored += result.requests;
    Ok(result)
}

/// Updates of the `existing` indicators the create phase made, in a scattered order.
async fn single_updates(
    s: &Settings,
    target: &Target,
    existing: u64,
) -> anyhow::Result<LoadResult> {
    if existing == 0 {
        bail!("the update phase needs the create phase");
    }
    progress("updates: single POSTs of existing values");
    run_load(Load {
        addr: target.server.addr(),
        auth: target.auth.clone(),
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
    .await
}

/// The table's rows: each measurement of iocd beside its baseline.
fn report(s: &Settings, base: &Baselines, m: &Measurements) -> Vec<Row> {
    let mut rows = Vec::new();
    for (what, result) in [("creates", &m.creates), ("updates", &m.updates)] {
        if let Some(r) = result {
            let ceiling = base.http_post.as_ref();
            rows.push(throughput_row(
                &format!("single {what}, {} connections", s.connections),
                "req/s",
                r.requests_per_second(),
                ceiling.map(LoadResult::requests_per_second),
            ));
            latency_rows(&mut rows, &format!("single {what} latency"), r, ceiling);
        }
    }
    for (label, result) in [
        ("import to 15k (first calls)", &m.import_small),
        ("import to large store", &m.import_large),
    ] {
        if let Some(r) = result
            .as_ref()
            .filter(|r| s.has(Part::Import) && r.items > 0)
        {
            rows.push(throughput_row(
                &format!(
                    "{label}, {} items/call, {} connections",
                    IMPORT_BATCH, s.import_connections
                ),
                "ind/s",
                r.items_per_second(),
                base.storage,
            ));
        }
    }
    for (size, result) in [
        (s.small_store, &m.list_small),
        (s.large_store, &m.list_large),
    ] {
        if let Some(r) = result {
            let what = format!("filtered list, {size} stored,");
            latency_rows(&mut rows, &what, r, base.http_get.as_ref());
        }
    }
    if m.creates.is_none() && m.updates.is_none() {
        if let Some(b) = &base.http_post {
            let rate = b.requests_per_second();
            rows.push(throughput_row("bare axum POSTs", "req/s", rate, None));
        }
    }
    if let Some(ceiling) = base.storage {
        let what = "raw sqlx inserts, 500/transaction";
        rows.push(throughput_row(what, "rows/s", ceiling, None));
    }
    memory_rows(&mut rows, m);
    rows
}

fn memory_rows(rows: &mut Vec<Row>, m: &Measurements) {
    let unmeasured = |what: String, iocd: String| Row {
        what,
        iocd,
        baseline: "-".into(),
        ratio: "-".into(),
    };
    for (when, rss) in &m.memory {
        rows.push(unmeasured(format!("server RSS, {when}"), mib(*rss)));
    }
    let empty = m.memory.first().and_then(|(_, rss)| *rss);
    let full = m.memory.iter().rev().find(|(w, _)| w.ends_with("stored"));
    if let (Some(empty), Some((_, Some(full)))) = (empty, full) {
        if m.stored > 0 {
            let per_million = (*full as f64 - empty as f64) / m.stored as f64 * 1e6;
            rows.push(unmeasured(
                "server RSS growth per million stored".into(),
                mib(Some(per_million.max(0.0) as u64)),
            ));
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings::parse();
    let _ = *START;
    let baselines = measure_baselines(&s).await?;
    let measurements = measure_iocd(&s).await?;
    if s.has(Part::Changelog) {
        let costs = measure_change_log(&s).await?;
        print_table(
            "the change log's cost: iocd with the log, baseline = the same server without it",
            &costs,
        );
    }
    print_table(
        &format!(
            "iocd on {}, {} cores, baseline = bare axum (HTTP) / raw sqlx inserts (storage)",
            s.backend(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        &report(&s, &baselines, &measurements),
    );
    Ok(())
}
