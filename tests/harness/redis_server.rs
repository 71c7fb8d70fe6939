//! A throwaway Redis for one test: `redis-server` on a free port without
//! persistence, so a restart loses every key, as a cache restart in production
//! without RDB or AOF would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{append_to, free_port, log_tail, reap, signal, stop_blocking, wait_for_server};

const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 3;

/// A running (or stopped) Redis, killed on drop, also when the test panics.
pub struct RedisServer {
    /// Its working directory (`--dir`) and `redis.log`.
    dir: TempDir,
    port: u16,
    /// The server, while it runs.
    child: Option<Child>,
}

impl RedisServer {
    /// Starts Redis on a free port; panics with the log's tail if it fails.
    pub async fn start() -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("viewkeeper-redis-")
            .tempdir()
            .expect("creating the Redis temp dir");
        let mut server = RedisServer {
            dir,
            port: 0,
            child: None,
        };
        let mut reason = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait_ready().await {
                Ok(()) => return server,
                Err(why) => reason = why,
            }
        }
        server.fail(&reason)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Kills Redis and starts it again on the same port: every key is lost.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Kills Redis (SIGKILL, like a crash); it stays down until `start_again`.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "KILL");
            reap(&mut child, STOP_DEADLINE, "redis-server exited").await;
        }
    }

    /// Starts Redis again on the same port after `stop`, empty.
    pub async fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again: Redis is already running"
        );
        let started = self.spawn_and_wait_ready().await;
        started.unwrap_or_else(|reason| self.fail(&reason));
    }

    async fn spawn_and_wait_ready(&mut self) -> Result<(), String> {
        let mut child =
            (self.command().spawn()).map_err(|e| format!("spawning redis-server: {e}"))?;
        let url = self.url();
        let ready = wait_for_server(&mut child, START_DEADLINE, || answers_ping(&url)).await;
        match ready {
            Ok(()) => self.child = Some(child),
            Err(_) => stop_blocking(&mut child, "KILL"),
        }
        ready
    }

    fn command(&self) -> Command {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(append_to(&self.log_path()))
            .stderr(append_to(&self.log_path()));
        command
    }

    fn fail(&self, reason: &str) -> ! {
        panic!(
            "Redis failed to start on port {}: {reason}\n--- last lines of {} ---\n{}",
            self.port,
            self.log_path().display(),
            log_tail(&self.log_path(), 30)
        )
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_blocking(&mut child, "KILL");
        }
    }
}

async fn answers_ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = (client.get_multiplexed_async_connection().await).map_err(|e| e.to_string())?;
    let pong: String =
        (redis::cmd("PING").query_async(&mut conn).await).map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {pong}"))
    }
}
