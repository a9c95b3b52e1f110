//! Running the real `iocd` binary as a child process over a database of its own, for the crash
//! test and the throughput benchmark (which includes this file with `#[path]`).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::Connection;

/// The PostgreSQL server used when none is named: the machine's local one (trust auth).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of its own: a SQLite file in a temporary directory, or a PostgreSQL database
/// created for the run and dropped (with `FORCE`, ending a killed server's sessions) on drop.
pub struct ScratchDatabase {
    pub url: String,
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl ScratchDatabase {
    pub async fn sqlite() -> anyhow::Result<ScratchDatabase> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("iocd.db").display());
        Ok(ScratchDatabase {
            url,
            dir,
            postgres: None,
        })
    }

    /// A fresh database on the PostgreSQL server `admin_url` names (any database of it).
    pub async fn postgres(admin_url: &str) -> anyhow::Result<ScratchDatabase> {
        let name = format!("iocd_scratch_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("the PostgreSQL URL must name a database")?;
        Ok(ScratchDatabase {
            url: format!("{base}/{name}"),
            dir: tempfile::tempdir()?,
            postgres: Some((admin_url.to_string(), name)),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The SQLite file's path (None on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("sqlite://").map(PathBuf::from)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside or outside a runtime: use a small one on a plain thread.
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// A running `iocd serve` child process. Dropping it kills the process.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `iocd serve` on a free loopback port over `database_url`, with rate limits and
    /// the active-indicator quota off, and waits until `/health` answers.
    pub async fn start(
        binary: &Path,
        database_url: &str,
        log_dir: &Path,
    ) -> anyhow::Result<ServerProcess> {
        let mut last_error = None;
        // The free port is found by binding and releasing it; another process could take it
        // in between, so a failed start is retried on another port.
        for attempt in 0..3 {
            let addr = free_loopback_port()?;
            let log = log_dir.join(format!("iocd-{}-{attempt}.log", addr.port()));
            let log_file = std::fs::File::create(&log)?;
            let mut command = Command::new(binary);
            // The server logs as configured by default (one line per request at info);
            // IOCD_SERVER_LOG sets its RUST_LOG instead.
            if let Ok(filter) = std::env::var("IOCD_SERVER_LOG") {
                command.env("RUST_LOG", filter);
            }
            let child = command
                .arg("serve")
                .env("IOCD_LISTEN", addr.to_string())
                .env("IOCD_DATABASE_URL", database_url)
                .env("IOCD_RATE_LIMITS", "off")
                .env("IOCD_MAX_ACTIVE_INDICATORS", "0")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let mut server = ServerProcess { child, addr, log };
            match server.wait_healthy(Duration::from_secs(30)).await {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last_error = Some(e);
                    server.kill();
                }
            }
        }
        Err(last_error.expect("three attempts"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_healthy(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("iocd exited with {status} before serving:\n{log}");
            }
            let healthy = client
                .get(format!("{}/health", self.base_url()))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("iocd did not answer /health within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server process's resident set size in bytes, from /proc (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The tenant the crash test and the benchmark write as.
pub const TENANT: &str = "00000000-0000-0000-0000-0000000000be";

/// What `iocd apps create` prints: the credentials of a new app.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Registers an app with `iocd apps create` against `database_url`, as an operator would.
pub fn register_app(
    binary: &Path,
    database_url: &str,
    tenant: &str,
    name: &str,
    role: &str,
) -> anyhow::Result<AppCredentials> {
    let output = Command::new(binary)
        .args(["apps", "create", "--database", database_url])
        .args(["--tenant", tenant, "--name", name, "--role", role])
        .env("RUST_LOG", "warn")
        .output()
        .context("running iocd apps create")?;
    if !output.status.success() {
        bail!(
            "iocd apps create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let app: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("iocd apps create did not print JSON")?;
    let field = |name: &str| {
        app[name]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("iocd apps create printed no {name}"))
    };
    Ok(AppCredentials {
        tenant_id: field("tenantId")?,
        client_id: field("clientId")?,
        client_secret: field("clientSecret")?,
    })
}

/// A token for `app` from the server's OAuth2 v2 token endpoint (client credentials), exactly as
/// a real client gets one.
pub async fn client_credentials_token(
    base_url: &str,
    app: &AppCredentials,
) -> anyhow::Result<String> {
    let res = reqwest::Client::new()
        .post(format!("{base_url}/{}/oauth2/v2.0/token", app.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("scope", "https://api.securitycenter.microsoft.com/.default"),
        ])
        .send()
        .await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    match body["access_token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_string()),
        _ => bail!("the token endpoint answered {status}: {body}"),
    }
}

/// A bearer token for a new `Ti.ReadWrite.All` app of [`TENANT`] on the server at `base_url`.
pub async fn bearer_token(
    binary: &Path,
    database_url: &str,
    base_url: &str,
) -> anyhow::Result<String> {
    let app = register_app(binary, database_url, TENANT, "bench", "Ti.ReadWrite.All")?;
    client_credentials_token(base_url, &app).await
}

/// The `Authorization` header value for requests to `base_url` (the server requires a
/// bearer token on the API): a token of a new `Ti.ReadWrite.All` app, see [`bearer_token`].
pub async fn authorization(
    binary: &Path,
    database_url: &str,
    base_url: &str,
) -> anyhow::Result<Option<String>> {
    let token = bearer_token(binary, database_url, base_url).await?;
    Ok(Some(format!("Bearer {token}")))
}
