//! Redis for tests: key prefixes of their own on the shared server, and private servers a test
//! may stop and start (the shared one must never be disturbed).

use std::time::Duration;

use crate::env;

/// A key prefix no other test (or test run) uses; every key under it is deleted on drop, since
/// rate-limit keys would otherwise linger until their windows pass (up to an hour).
pub struct RedisPrefix {
    prefix: String,
}

impl RedisPrefix {
    /// `iocd-test:{label}:{unique}`.
    pub fn new(label: &str) -> RedisPrefix {
        RedisPrefix {
            prefix: format!("iocd-test:{label}:{}", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Display for RedisPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.prefix)
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        // Without the variable the test used no shared Redis: nothing to clean.
        let Ok(url) = std::env::var(env::REDIS_URL_VAR) else {
            return;
        };
        let pattern = format!("{}:*", self.prefix);
        // A blocking client on a plain thread: drop may run inside a runtime.
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url) else {
                return;
            };
            if let Ok(mut connection) = client.get_connection() {
                let keys: Vec<String> =
                    redis::Commands::keys(&mut connection, &pattern).unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::Commands::del(&mut connection, keys);
                }
            }
        })
        .join();
    }
}

/// A `redis-server` process owned by one test, on a loopback port of its own; killed on drop.
/// Needs `redis-server` on the PATH, which the machines that set [`env::REDIS_URL_VAR`] have.
pub struct PrivateRedis {
    process: std::process::Child,
    pub port: u16,
}

impl PrivateRedis {
    /// Starts a server on `port` (e.g. [`crate::free_port`], or the port of a stopped one, to
    /// bring it back) and waits until it answers.
    pub async fn start(port: u16) -> PrivateRedis {
        let process = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir", "/tmp"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        // Owned from here on, so the process is stopped even if it never becomes ready.
        let redis = PrivateRedis { process, port };
        let client = redis::Client::open(redis.url()).expect("Redis URL");
        for _ in 0..100 {
            if client.get_multiplexed_async_connection().await.is_ok() {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("private redis-server on port {port} did not start");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server now; returns its port, to start it again later.
    pub fn stop(mut self) -> u16 {
        self.process.kill().expect("kill redis-server");
        self.process.wait().expect("reap redis-server");
        self.port
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
