//! The `iocd` binary: `apps create/list/delete` on SQLite and PostgreSQL, `serve` on an empty
//! database printing the development app, and `iocd token` against that server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

const IOCD: &str = env!("CARGO_BIN_EXE_iocd");

fn postgres_admin_url() -> String {
    std::env::var("IOCD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh database URL for one test: a temporary SQLite file or a new PostgreSQL database.
struct Database {
    url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    async fn sqlite() -> Database {
        let dir = tempfile::tempdir().unwrap();
        Database {
            url: format!("sqlite://{}", dir.path().join("iocd.db").display()),
            pg_name: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Database {
        let admin = postgres_admin_url();
        let name = format!("iocd_cli_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        Database {
            url: format!("{base}/{name}"),
            pg_name: Some(name),
            _dir: None,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&mut conn)
                            .await;
                        }
                    })
            })
            .join();
        }
    }
}

fn iocd(args: &[&str], database: &str) -> Output {
    Command::new(IOCD)
        .args(args)
        .env("IOCD_DATABASE_URL", database)
        .env_remove("RUST_LOG")
        .output()
        .expect("run iocd")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "iocd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn apps_lifecycle(database: &str) {
    let tenant = uuid::Uuid::new_v4().to_string();
    let created = stdout_json(&iocd(
        &[
            "apps",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "SOAR connector",
            "--role",
            "Ti.ReadWrite",
            "--role",
            "Ti.Read.All",
        ],
        database,
    ));
    assert_eq!(created["tenantId"], tenant.as_str());
    let client_id = created["clientId"].as_str().unwrap().to_string();
    let secret = created["clientSecret"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&client_id).is_ok());
    assert!(secret.len() >= 40);

    // --database works as well as the environment variable.
    let listed = stdout_json(
        &Command::new(IOCD)
            .args(["apps", "list", "--database", database, "--tenant", &tenant])
            .env_remove("IOCD_DATABASE_URL")
            .output()
            .unwrap(),
    );
    let apps = listed.as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["clientId"], client_id.as_str());
    assert_eq!(apps[0]["displayName"], "SOAR connector");
    assert_eq!(
        apps[0]["roles"],
        serde_json::json!(["Ti.ReadWrite", "Ti.Read.All"])
    );
    let listing = serde_json::to_string(&listed).unwrap();
    assert!(!listing.contains(&secret), "the secret is never listed");

    // Bad input names what is wrong and stores nothing.
    let bad_role = iocd(
        &[
            "apps",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "x",
            "--role",
            "ti.readwrite",
        ],
        database,
    );
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role 'ti.readwrite'"));
    let bad_tenant = iocd(
        &[
            "apps",
            "create",
            "--tenant",
            "a/b",
            "--name",
            "x",
            "--role",
            "Ti.ReadWrite",
        ],
        database,
    );
    assert!(!bad_tenant.status.success());
    assert!(String::from_utf8_lossy(&bad_tenant.stderr).contains("tenant id 'a/b' is invalid"));
    assert_eq!(
        stdout_json(&iocd(&["apps", "list"], database))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let deleted = stdout_json(&iocd(
        &[
            "apps",
            "delete",
            "--tenant",
            &tenant,
            "--client-id",
            &client_id,
        ],
        database,
    ));
    assert_eq!(deleted["deleted"], true);
    let again = iocd(
        &[
            "apps",
            "delete",
            "--tenant",
            &tenant,
            "--client-id",
            &client_id,
        ],
        database,
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no app with client id"));
    assert_eq!(
        stdout_json(&iocd(&["apps", "list"], database)),
        Value::Array(vec![])
    );
}

#[tokio::test]
async fn apps_commands_on_sqlite() {
    let db = Database::sqlite().await;
    tokio::task::spawn_blocking(move || apps_lifecycle(&db.url))
        .await
        .unwrap();
}

#[tokio::test]
async fn apps_commands_on_postgres() {
    let db = Database::postgres().await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || apps_lifecycle(&url))
        .await
        .unwrap();
    drop(db);
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `iocd serve` and collects its stdout until the development app's block is printed.
fn serve_until_credentials(database: &str, port: u16) -> (Running, String) {
    let mut child = Command::new(IOCD)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("IOCD_DATABASE_URL", database)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("More apps:") {
                let _ = tx.send(text.clone());
            }
        }
    });
    let text = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve printed the development app");
    (running, text)
}

fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in {text}"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn serve_on_an_empty_database_prints_working_development_credentials() {
    let db = Database::sqlite().await;
    let port = free_port();
    let url = db.url.clone();
    let (server, text) = tokio::task::spawn_blocking(move || serve_until_credentials(&url, port))
        .await
        .unwrap();
    let tenant = field(&text, "tenant id:");
    let client_id = field(&text, "client id:");
    let secret = field(&text, "client secret:");
    assert!(text.contains(&format!(
        "curl -s http://127.0.0.1:{port}/{tenant}/oauth2/v2.0/token"
    )));

    // `iocd token` (the client side of the contract) gets a token the API accepts.
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let token = loop {
        let output = Command::new(IOCD)
            .args([
                "token",
                "--url",
                &base,
                "--tenant",
                &tenant,
                "--client-id",
                &client_id,
            ])
            .env("IOCD_CLIENT_SECRET", &secret)
            .output()
            .unwrap();
        if output.status.success() {
            break String::from_utf8(output.stdout).unwrap().trim().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{output:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(token.split('.').count(), 3);
    let res = reqwest::Client::new()
        .post(format!("{base}/api/indicators"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "indicatorValue": "evil.example.com", "indicatorType": "DomainName",
            "action": "Block", "title": "t", "description": "d"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["createdBy"], client_id.as_str());
    assert_eq!(body["createdByDisplayName"], "iocd development app");

    // A wrong secret is refused with the token endpoint's own error.
    let refused = Command::new(IOCD)
        .args([
            "token",
            "--url",
            &base,
            "--tenant",
            &tenant,
            "--client-id",
            &client_id,
            "--client-secret",
            "wrong",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_client"));

    // Exactly one app was created, and its secret is not listed.
    drop(server);
    let listed = stdout_json(&iocd(&["apps", "list"], &db.url));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!serde_json::to_string(&listed).unwrap().contains(&secret));
}
