//! The real `iocd` binary as a child process: commands run to completion, and `iocd serve` on an
//! ephemeral loopback port, waited for until `/health` answers, its output captured to a log
//! file, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::apps::{client_credentials_token, parse_created_app, NewAppCredentials, TENANT};
use crate::env;
use crate::net::free_port;

/// How long `iocd serve` may take to answer `/health` (a debug build on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The built `iocd` binary. Cargo tells the `iocd` crate's tests and benches where it is:
/// `Iocd::new(env!("CARGO_BIN_EXE_iocd"))`.
#[derive(Debug, Clone)]
pub struct Iocd {
    binary: PathBuf,
}

impl Iocd {
    pub fn new(binary: impl AsRef<Path>) -> Iocd {
        Iocd {
            binary: binary.as_ref().to_path_buf(),
        }
    }

    /// A command for the binary, to add arguments and environment to.
    pub fn command(&self) -> Command {
        Command::new(&self.binary)
    }

    /// Runs `iocd args…` with `envs` added to the environment, to completion.
    pub fn output(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut command = self.command();
        command.args(args);
        for (name, value) in envs {
            command.env(name, value);
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.binary.display()))
    }

    /// Registers an app with `iocd apps create` against `database_url`, as an operator would.
    pub fn create_app(
        &self,
        database_url: &str,
        tenant: &str,
        name: &str,
        role: &str,
    ) -> NewAppCredentials {
        let output = self
            .command()
            .args(["apps", "create", "--database", database_url])
            .args(["--tenant", tenant, "--name", name, "--role", role])
            .env("RUST_LOG", "warn")
            .output()
            .expect("running iocd apps create");
        assert!(
            output.status.success(),
            "iocd apps create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        parse_created_app(&output.stdout)
    }

    /// A bearer token of a new `Ti.ReadWrite.All` app of [`TENANT`], registered in
    /// `database_url` and issued by the server at `base_url`.
    pub async fn token_for_new_app(&self, database_url: &str, base_url: &str) -> String {
        let app = self.create_app(database_url, TENANT, "iocd test app", "Ti.ReadWrite.All");
        client_credentials_token(&reqwest::Client::new(), base_url, &app).await
    }

    /// `iocd serve`, to configure and [`start`](Serve::start).
    pub fn serve(&self) -> Serve {
        Serve {
            iocd: self.clone(),
            args: Vec::new(),
            envs: Vec::new(),
            ulimit: None,
        }
    }
}

/// The arguments and environment of an `iocd serve` to start. `--listen` is chosen by
/// [`start`](Serve::start).
#[must_use]
pub struct Serve {
    iocd: Iocd,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    ulimit: Option<String>,
}

impl Serve {
    /// Starts the server under `sh -c 'ulimit OPTIONS && exec iocd …'`, e.g. `"-n 640"` (soft
    /// and hard descriptor limits) or `"-Sn 256"` (soft only). Unix only.
    pub fn ulimit(mut self, options: &str) -> Serve {
        self.ulimit = Some(options.to_string());
        self
    }

    pub fn arg(mut self, arg: &str) -> Serve {
        self.args.push(arg.to_string());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Serve {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Serve {
        self.envs.push((name.to_string(), value.to_string()));
        self
    }

    pub fn envs(mut self, envs: &[(&str, &str)]) -> Serve {
        for (name, value) in envs {
            self = self.env(name, value);
        }
        self
    }

    /// `IOCD_DATABASE_URL`.
    pub fn database(self, url: &str) -> Serve {
        self.env("IOCD_DATABASE_URL", url)
    }

    /// Rate limits and the active-indicator quota off, for tests and measurements of volume.
    pub fn unthrottled(self) -> Serve {
        self.env("IOCD_RATE_LIMITS", "off")
            .env("IOCD_MAX_ACTIVE_INDICATORS", "0")
    }

    /// Starts the server and waits until `/health` answers; fails the test (showing the
    /// server's output) if it exits or does not answer in time.
    pub async fn start(self) -> IocdProcess {
        let log_dir = tempfile::tempdir().expect("temporary directory");
        let mut last_error = String::new();
        // The free port is found by binding and releasing it; another process could take it
        // in between, so a failed start is retried on another port.
        for attempt in 0..3 {
            let port = free_port();
            let log = log_dir.path().join(format!("iocd-{port}-{attempt}.log"));
            let log_file = std::fs::File::create(&log).expect("log file");
            let mut command = match &self.ulimit {
                Some(options) => {
                    let mut shell = Command::new("sh");
                    shell
                        .arg("-c")
                        .arg(format!("ulimit {options} && exec \"$0\" \"$@\""))
                        .arg(&self.iocd.binary);
                    shell
                }
                None => self.iocd.command(),
            };
            command
                .arg("serve")
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(&self.args);
            // The server logs as configured by default (info, no line per request), whatever
            // the test run's own RUST_LOG; IOCD_SERVER_LOG sets the server's filter.
            command.env_remove("RUST_LOG");
            if let Ok(filter) = std::env::var(env::SERVER_LOG_VAR) {
                command.env("RUST_LOG", filter);
            }
            for (name, value) in &self.envs {
                command.env(name, value);
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log file"))
                .stderr(log_file)
                .spawn()
                .expect("starting iocd");
            let mut process = IocdProcess {
                child,
                port,
                log,
                _log_dir: None,
            };
            match process.wait_healthy().await {
                Ok(()) => {
                    process._log_dir = Some(log_dir);
                    return process;
                }
                Err(e) => {
                    last_error = e;
                    process.kill();
                }
            }
        }
        panic!("iocd serve did not start: {last_error}");
    }
}

/// A running `iocd serve`. Dropping it kills the process.
pub struct IocdProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    _log_dir: Option<tempfile::TempDir>,
}

impl IocdProcess {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the output contains `needle`; returns the output up to then.
    pub async fn wait_for_output(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let output = self.output();
            if output.contains(needle) {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "iocd did not print {needle:?} within {within:?}:\n{output}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's resident set size in bytes, from /proc (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "iocd exited with {status} before serving:\n{}",
                    self.output()
                ));
            }
            let healthy = client
                .get(self.url("/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on /health within {START_TIMEOUT:?}:\n{}",
                    self.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for IocdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
