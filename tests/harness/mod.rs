//! The integration-test harness: real PostgreSQL and Redis servers started from
//! the binaries on the machine (no Docker), waiting with deadlines, and the SQL
//! oracle that tells what the example cache view must hold.
//!
//! - `pg_server`: [`PgServer`], a throwaway cluster with `wal_level=logical`.
//! - `redis_server`: [`RedisServer`], a throwaway Redis without persistence.
//! - `oracle`: [`expected_order_cache`], [`redis_documents`], [`diff_documents`].
//!
//! Each test file compiles this module on its own (`mod harness;`) and uses only
//! part of it, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

mod fixtures;
mod oracle;
mod pg_server;
mod redis_server;
mod service;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use tokio::time::Instant;

pub use fixtures::{
    current_wal_lsn, served_small_shop, shop, slot_confirmed, small_shop, spawn_workload,
};
pub use oracle::{
    category_daily_sales_rows, diff_documents, expected_category_daily_sales, expected_order_cache,
    expected_product_cache, expected_product_search, redis_documents, redis_matches, scan_keys,
    try_redis_documents,
};
pub use pg_server::PgServer;
pub use redis_server::RedisServer;
pub use service::{
    Service, ServiceSetup, converged, converged_except, http_get, http_post, index_documents,
    view_status, wait_for_view_counts, wait_for_view_error, wait_for_view_state,
};

/// How often conditions are polled: short enough for fast tests, long enough
/// not to load a 2-core machine.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Ok`, and returns that value. Panics after
/// `deadline` with `what` and the last `Err` that `check` gave, so a test that
/// times out says how far it got (e.g. the remaining differences).
pub async fn wait_until<T, E, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let end = Instant::now() + deadline;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= end => {
                panic!("timed out after {deadline:?} waiting until {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Polls `probe` until the server in `child` answers. Gives up early when the
/// process exits (a taken port, a bad setting), and after `deadline`.
async fn wait_for_server<F, Fut>(
    child: &mut Child,
    deadline: Duration,
    mut probe: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let end = Instant::now() + deadline;
    loop {
        if has_exited(child) {
            return Err("the server exited during start-up".to_owned());
        }
        match probe().await {
            Ok(()) => return Ok(()),
            Err(last) if Instant::now() >= end => {
                return Err(format!("not ready after {deadline:?}: {last}"));
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// A port that was free a moment ago. Another process may take it before the
/// server binds it, so servers retry on a new port when they fail to start.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    listener
        .local_addr()
        .expect("reading the ephemeral port")
        .port()
}

/// Sends `signal` (e.g. "INT", "QUIT", "KILL") to `child`; it may have exited.
fn signal(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status();
}

/// Whether `child` has exited (and reaps it if so).
fn has_exited(child: &mut Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

/// Sends `signal` to `child` unless it has exited, and waits (blocking) for it
/// to exit: for `Drop` and failed starts.
fn stop_blocking(child: &mut Child, signal_name: &str) {
    if !has_exited(child) {
        signal(child, signal_name);
        reap_blocking(child, Duration::from_secs(10));
    }
}

/// Waits for `child` to exit after a signal, blocking: usable from `Drop`.
/// Kills it if it does not exit within `deadline`.
fn reap_blocking(child: &mut Child, deadline: Duration) {
    let end = std::time::Instant::now() + deadline;
    while !has_exited(child) {
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits for `child` to exit after a signal; panics after `deadline`.
async fn reap(child: &mut Child, deadline: Duration, what: &str) {
    wait_until(deadline, what, || {
        let exited = has_exited(child);
        async move { if exited { Ok(()) } else { Err("still running") } }
    })
    .await
}

/// The last `lines` lines of a log file, for failure messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A line of the service's log without its colour escapes (`ESC [ ... letter`).
pub fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The number in field `key=123` of a plain log line, or 0.
pub fn log_field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

/// Opens a log file for a child's stdout or stderr, appending across restarts.
fn append_to(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// `2 × AMD EPYC` from the CPU count and /proc/cpuinfo's model name.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cpus} × {model}")
}

/// Every sample of a Prometheus text exposition, by series (`name{labels}`);
/// panics on a line that is neither a comment nor `series value`.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in: {line}"));
        assert!(
            series.starts_with("viewkeeper_"),
            "metric without the viewkeeper_ prefix: {line}"
        );
        samples.insert(series.to_owned(), value);
    }
    samples
}
