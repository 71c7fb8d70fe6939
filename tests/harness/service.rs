//! The viewkeeper binary under test, as a child process that tests can kill
//! with SIGKILL and start again, and the convergence check against the oracle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tempfile::TempDir;
use viewkeeper::sink::search::SearchIndex;
use viewkeeper::view::model::ViewKind;

use super::{
    append_to, category_daily_sales_rows, diff_documents, expected_category_daily_sales,
    expected_order_cache, expected_product_cache, expected_product_search, has_exited, log_tail,
    reap, signal, try_redis_documents, wait_until,
};

/// Where one viewkeeper instance reads and writes: its own data directory and
/// log, kept across restarts.
pub struct ServiceSetup {
    pub database_url: String,
    pub redis_url: String,
    pub views: PathBuf,
    /// Shared with every [`Service`] started from it, so that a service
    /// started from a setup that is then dropped keeps its data directory
    /// and log (they were deleted under it, and the log read empty).
    pub dir: Arc<TempDir>,
    /// Where the admin API listens: a port free when the setup was made.
    pub admin_port: u16,
    /// More `viewkeeper run` flags (`--aggregates-url …`).
    pub extra_args: Vec<String>,
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
            dir: Arc::new(tempfile::tempdir().expect("creating a temp dir")),
            admin_port: super::free_port(),
            extra_args: Vec::new(),
        }
    }

    /// Mutating admin calls then need `token`.
    pub fn with_admin_token(mut self, token: &str) -> ServiceSetup {
        self.extra_args
            .extend(["--admin-token".to_owned(), token.to_owned()]);
        self
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("viewkeeper.log")
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// `viewkeeper run` with this setup's flags, to completion: for starts
    /// that must be refused. Panics with its output if it has not exited
    /// within a minute (a start that should be refused ran instead).
    pub fn run_to_exit(&self) -> std::process::Output {
        let stdout = self.dir.path().join("run_to_exit.stdout");
        let stderr = self.dir.path().join("run_to_exit.stderr");
        let create = |path: &Path| std::fs::File::create(path).expect("an output file");
        let mut child = self
            .run_command()
            .stdout(create(&stdout))
            .stderr(create(&stderr))
            .spawn()
            .expect("running viewkeeper");
        let end = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for viewkeeper") {
                break status;
            }
            if std::time::Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "viewkeeper run did not exit within 60 s; its stderr:\n{}",
                    log_tail(&stderr, 30)
                );
            }
            std::thread::sleep(super::POLL_INTERVAL);
        };
        let read = |path: &Path| std::fs::read(path).unwrap_or_default();
        std::process::Output {
            status,
            stdout: read(&stdout),
            stderr: read(&stderr),
        }
    }

    fn run_command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_viewkeeper"));
        command
            .arg("run")
            .args(["--database-url", &self.database_url])
            .args(["--redis-url", &self.redis_url])
            .arg("--views")
            .arg(&self.views)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--log", "info,viewkeeper=debug"])
            .args(["--admin-addr", &format!("127.0.0.1:{}", self.admin_port)])
            .args(&self.extra_args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    /// `viewkeeper run` with this setup's flags, in the background.
    pub fn start(&self) -> Service {
        let log = self.log_path();
        let child = self
            .run_command()
            .stdout(append_to(&log))
            .stderr(append_to(&log))
            .spawn()
            .expect("starting viewkeeper");
        Service {
            child,
            log,
            data_dir: self.data_dir(),
            views: self.views.clone(),
            _dir: Arc::clone(&self.dir),
        }
    }
}

/// A running `viewkeeper run`; killed when dropped.
pub struct Service {
    child: Child,
    log: PathBuf,
    data_dir: PathBuf,
    views: PathBuf,
    _dir: Arc<TempDir>,
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

    /// SIGTERM, and the exit status once the process is gone; panics if it
    /// takes longer than `deadline`.
    pub async fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        reap(&mut self.child, deadline, "viewkeeper exited after SIGTERM").await;
        self.child.wait().expect("the exit status")
    }

    /// SIGHUP: reload the view files.
    pub fn hang_up(&self) {
        signal(&self.child, "HUP");
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

    /// The process id: for benchmarks that read its memory from /proc or
    /// profile it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A failing test's output then says what the service last did: its
        // log lives in a temporary directory deleted with the test.
        if std::thread::panicking() {
            eprintln!("viewkeeper's log, last lines:\n{}", log_tail(&self.log, 60));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stored fields of every document in a search view's index, by id,
/// read from the data directory as `viewkeeper search` does.
pub fn index_documents(
    views: &Path,
    data_dir: &Path,
    view: &str,
) -> Result<BTreeMap<String, Value>, String> {
    let defs = viewkeeper::view::load_views(views).map_err(|e| e.to_string())?;
    let fields = defs
        .iter()
        .find_map(|def| match &def.kind {
            ViewKind::Search(search) if def.name == view => Some(search.fields.clone()),
            _ => None,
        })
        .ok_or_else(|| format!("no search view {view}"))?;
    let index = SearchIndex::open(&data_dir.join("indexes").join(view), view, &fields)
        .map_err(|e| e.to_string())?;
    let hits = index.all_documents().map_err(|e| e.to_string())?;
    Ok(hits
        .into_iter()
        .map(|hit| (hit.id, Value::Object(hit.fields)))
        .collect())
}

/// Waits until Redis holds exactly what the oracle says for both example
/// cache views, the `product_search` index (when the views have it) holds
/// one document per product with current stored values, and the
/// `category_daily_sales` table (when the views have it) equals its GROUP BY; fails fast if
/// the service dies, and with the remaining differences after `deadline`.
pub async fn converged(service: &mut Service, pool: &PgPool, redis_url: &str, deadline: Duration) {
    converged_except(service, pool, redis_url, deadline, &[]).await
}

/// [`converged`], except that the Redis keys in `absent` must be missing
/// (their roots are dead letters).
pub async fn converged_except(
    service: &mut Service,
    pool: &PgPool,
    redis_url: &str,
    deadline: Duration,
    absent: &[String],
) {
    let with_search = service.views.join("product_search.yaml").exists();
    let with_aggregate = service.views.join("category_daily_sales.yaml").exists();
    let (views, data_dir) = (service.views.clone(), service.data_dir.clone());
    wait_until(deadline, "redis and the index match the SQL oracle", || {
        service.assert_running();
        let (views, data_dir) = (views.clone(), data_dir.clone());
        async move {
            let mut differences = Vec::new();
            if with_search {
                let expected = expected_product_search(pool).await;
                let actual = index_documents(&views, &data_dir, "product_search")?;
                differences.extend(diff_documents(&expected, &actual));
            }
            if with_aggregate {
                let expected = expected_category_daily_sales(pool).await;
                let actual = category_daily_sales_rows(pool)
                    .await
                    .map_err(|e| format!("reading analytics.category_daily_sales: {e}"))?;
                differences.extend(diff_documents(&expected, &actual));
            }
            for (pattern, mut expected) in [
                ("order:*", expected_order_cache(pool).await),
                ("product:*", expected_product_cache(pool).await),
            ] {
                expected.retain(|key, _| !absent.contains(key));
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

/// A plain HTTP/1.1 GET on 127.0.0.1 (no client library needed): the status
/// code and the body.
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    http_request(port, "GET", path, None).await
}

/// A plain HTTP/1.1 POST without a body, with a bearer token if given.
pub async fn http_post(
    port: u16,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    http_request(port, "POST", path, token).await
}

async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {text}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// The `/status` entry of one view.
/// Waits until `view` reads `failed` with a `view_error` holding each of
/// `needles` (`check`'s message for a view that no longer checks).
pub async fn wait_for_view_error(port: u16, view: &str, needles: &[&str], deadline: Duration) {
    let what = format!("{view} failed with check's message");
    super::wait_until(deadline, &what, || async {
        let status = view_status(port, view).await;
        let error = status["view_error"].as_str().unwrap_or_default();
        if status["state"] == "failed" && needles.iter().all(|needle| error.contains(needle)) {
            Ok(())
        } else {
            Err(status.to_string())
        }
    })
    .await;
}

/// Waits until `/status` shows `view` in `state`, and returns its status;
/// a service that does not listen yet is waited for too.
pub async fn wait_for_view_state(
    port: u16,
    view: &str,
    state: &str,
    deadline: Duration,
) -> serde_json::Value {
    let what = format!("view {view} reads {state}");
    super::wait_until(deadline, &what, || async {
        http_get(port, "/status").await?;
        let status = view_status(port, view).await;
        if status["state"] == state {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
    .await
}

pub async fn view_status(port: u16, view: &str) -> serde_json::Value {
    let (_, body) = http_get(port, "/status").await.expect("/status answers");
    let status: serde_json::Value = serde_json::from_str(&body).expect("/status is JSON");
    status["views"]
        .as_array()
        .and_then(|views| views.iter().find(|v| v["view"] == view))
        .cloned()
        .unwrap_or_else(|| panic!("no view {view} in /status: {status:#}"))
}

/// Waits until `/status` lists exactly the views of `expected`, each with
/// the given number in `field` (`dead_letters`, `recomputes`).
pub async fn wait_for_view_counts(port: u16, field: &str, expected: &[(&str, u64)]) {
    let expected: std::collections::BTreeMap<String, u64> = expected
        .iter()
        .map(|(view, count)| (view.to_string(), *count))
        .collect();
    super::wait_until(
        Duration::from_secs(120),
        &format!("{field} in /status"),
        || async {
            let (_, body) = http_get(port, "/status").await?;
            let status: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            let found: std::collections::BTreeMap<String, u64> = status["views"]
                .as_array()
                .ok_or("no views in /status")?
                .iter()
                .map(|v| {
                    let name = v["view"].as_str().unwrap_or_default().to_owned();
                    (name, v[field].as_u64().unwrap_or(u64::MAX))
                })
                .collect();
            if found == expected {
                Ok(())
            } else {
                Err(format!("{found:?}, expected {expected:?}"))
            }
        },
    )
    .await
}
