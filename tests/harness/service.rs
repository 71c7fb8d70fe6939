//! The viewkeeper binary under test, as a child process that tests can kill
//! with SIGKILL and start again, and the convergence check against the oracle.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;
use tempfile::TempDir;

use super::{
    append_to, diff_documents, expected_order_cache, expected_product_cache, has_exited, log_tail,
    reap, signal, try_redis_documents, wait_until,
};

/// Where one viewkeeper instance reads and writes: its own data directory and
/// log, kept across restarts.
pub struct ServiceSetup {
    pub database_url: String,
    pub redis_url: String,
    pub views: PathBuf,
    pub dir: TempDir,
}

impl ServiceSetup {
    /// The example views of the repository.
    pub fn new(database_url: &str, redis_url: &str) -> ServiceSetup {
        Self::with_views(
            database_url,
            redis_url,
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views"),
        )
    }

    pub fn with_views(database_url: &str, redis_url: &str, views: PathBuf) -> ServiceSetup {
        ServiceSetup {
            database_url: database_url.to_owned(),
            redis_url: redis_url.to_owned(),
            views,
            dir: tempfile::tempdir().expect("creating a temp dir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("viewkeeper.log")
    }

    /// `viewkeeper run` with this setup's flags.
    pub fn start(&self) -> Service {
        let log = self.log_path();
        let child = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
            .arg("run")
            .args(["--database-url", &self.database_url])
            .args(["--redis-url", &self.redis_url])
            .arg("--views")
            .arg(&self.views)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--log", "info,viewkeeper=debug"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(append_to(&log))
            .stderr(append_to(&log))
            .spawn()
            .expect("starting viewkeeper");
        Service { child, log }
    }
}

/// A running `viewkeeper run`; killed when dropped.
pub struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    /// SIGKILL: no chance to flush or clean up, like a crash.
    pub async fn kill(&mut self) {
        signal(&self.child, "KILL");
        reap(
            &mut self.child,
            Duration::from_secs(10),
            "viewkeeper exited after SIGKILL",
        )
        .await;
    }

    /// Panics with the log's tail if the process has exited.
    pub fn assert_running(&mut self) {
        if has_exited(&mut self.child) {
            panic!("viewkeeper exited; log:\n{}", log_tail(&self.log, 40));
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until Redis holds exactly what the oracle says for both example
/// cache views, failing fast if the service dies, and with the remaining
/// differences after `deadline`.
pub async fn converged(service: &mut Service, pool: &PgPool, redis_url: &str, deadline: Duration) {
    wait_until(deadline, "redis matches the SQL oracle", || {
        service.assert_running();
        async {
            let mut differences = Vec::new();
            for (pattern, expected) in [
                ("order:*", expected_order_cache(pool).await),
                ("product:*", expected_product_cache(pool).await),
            ] {
                let actual = try_redis_documents(redis_url, pattern)
                    .await
                    .map_err(|e| format!("reading redis: {e}"))?;
                differences.extend(diff_documents(&expected, &actual));
            }
            if differences.is_empty() {
                Ok(())
            } else {
                Err(differences.join("\n"))
            }
        }
    })
    .await
}
