//! Runs the real `iocd` binary as a child process on a free loopback port.
#![allow(dead_code)]

#[path = "../support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const IOCD: &str = env!("CARGO_BIN_EXE_iocd");

/// A port nobody listens on right now (the server binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `iocd serve` process, killed on drop.
pub struct ServerProcess {
    pub base_url: String,
    child: Child,
}

impl ServerProcess {
    /// Starts `iocd serve` with `args` and `envs` and waits until `/health` answers.
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(IOCD);
        command
            .arg("serve")
            .args(["--listen", &listen])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in envs {
            command.env(name, value);
        }
        let child = command.spawn().expect("start iocd");
        let mut server = ServerProcess {
            base_url: format!("http://{listen}"),
            child,
        };
        server.wait_until_healthy().await;
        server
    }

    async fn wait_until_healthy(&mut self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("iocd exited early with {status}");
            }
            let health = client.get(format!("{}/health", self.base_url)).send().await;
            if health.is_ok_and(|res| res.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("iocd did not become healthy at {}", self.base_url);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `iocd` with `args` and `envs` to completion: (success, stdout, stderr).
pub fn run_iocd(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(IOCD);
    command.args(args);
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command.output().expect("run iocd");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A valid indicator body with a unique value.
pub fn domain_request(n: usize) -> serde_json::Value {
    serde_json::json!({
        "indicatorValue": format!("host{n}.evil.example"),
        "indicatorType": "DomainName",
        "action": "Block",
        "title": format!("indicator {n}"),
        "description": "test indicator"
    })
}

/// Registers a `Ti.ReadWrite.All` app with `iocd apps create` and returns (tenant, client id, secret).
pub fn create_app(database: &str, tenant: &str, name: &str) -> (String, String, String) {
    let app = support::register_app(Path::new(IOCD), database, tenant, name, "Ti.ReadWrite.All")
        .expect("iocd apps create");
    (app.tenant_id, app.client_id, app.client_secret)
}

/// A bearer token from the server's token endpoint (client credentials).
pub async fn fetch_token(base_url: &str, app: &(String, String, String)) -> String {
    let (tenant_id, client_id, client_secret) = app.clone();
    let app = support::AppCredentials {
        tenant_id,
        client_id,
        client_secret,
    };
    support::client_credentials_token(base_url, &app)
        .await
        .expect("token")
}
