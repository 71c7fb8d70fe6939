//! Phase 3, commit-to-visible latency at a fixed rate of source changes:
//! the workload generator's mix paced to the rate on several connections,
//! and meanwhile a marker transaction every 20 ms (a product whose
//! description holds a unique token, and a pending order). The clock starts
//! when COMMIT is sent; a marker is visible in Redis when both its
//! `product:` and `order:` documents exist (polled every millisecond, all
//! pending markers in one pipeline), and in search when the admin API's
//! search endpoint returns its product for its token (polled every 10 ms,
//! all pending tokens in one query).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use viewkeeper::workload::{WorkloadOptions, WorkloadStats};

use crate::harness::{http_get, log_field, spawn_workload, strip_ansi};
use crate::streaming::CONNECTIONS;
use crate::{Deployment, probe};

const MARKER_INTERVAL: Duration = Duration::from_millis(20);
const REDIS_POLL: Duration = Duration::from_millis(1);
const SEARCH_POLL: Duration = Duration::from_millis(10);
/// Markers checked per poll, oldest first: views apply in commit order, so
/// while the oldest is not visible the newer ones rarely are, and a poll
/// stays one cheap round trip even when the views fall behind.
const CHECKED_PER_POLL: usize = 20;
/// A marker not visible after this long is counted as lost (the views fell
/// this far behind, or the workload deleted its rows meanwhile), not waited
/// for; percentiles count it as at least this long.
pub const GIVE_UP: Duration = Duration::from_secs(10);
/// Changes each marker transaction makes.
const MARKER_CHANGES: f64 = 2.0;
const SEED: u64 = 7_000;
const CHANGES: &str = "viewkeeper_changes_total";

/// Markers take ids below 1, which the workload never picks
/// (`src/workload/runner.rs`): a marker the workload renamed, deleted or
/// turned into a draft would never show, and would count as lost. Their
/// numbers come from a sequence, so the markers of every phase differ; the
/// product and the order of one marker share its (negated) number as id.
const CREATE_MARKER_NUMBERS: &str = "CREATE SEQUENCE IF NOT EXISTS bench_marker_numbers";
const INSERT_MARKER_PRODUCT: &str = "WITH marker AS (SELECT nextval('bench_marker_numbers') AS n) \
     INSERT INTO products (id, name, description, price_cents) \
     SELECT -n, 'Marker ' || n, 'vkmarker' || n, 100 FROM marker RETURNING id";
const INSERT_MARKER_ORDER: &str =
    "INSERT INTO orders (id, status, total_cents) VALUES ($1, 'pending', 0) RETURNING id";

/// One marker transaction.
#[derive(Debug, Clone)]
struct Marker {
    number: i64,
    product: i64,
    order: i64,
    committing: Instant,
}

impl Marker {
    fn token(&self) -> String {
        format!("vkmarker{}", self.number)
    }
}

/// What the latency phase saw.
#[derive(Debug, Default)]
pub struct LatencyRun {
    pub redis: Vec<Duration>,
    pub search: Vec<Duration>,
    pub markers: u64,
    /// Source changes per second viewkeeper applied during the window.
    pub changes_per_second: f64,
    pub max_lag_seconds: f64,
    pub max_lag_bytes: u64,
    /// How long each state-store checkpoint finished during the window
    /// took: one slows the engine while it is written, and shows in the
    /// p99 of the window it falls in.
    pub checkpoints: Vec<Duration>,
}

impl LatencyRun {
    pub fn lost_redis(&self) -> u64 {
        self.markers - self.redis.len() as u64
    }

    pub fn lost_search(&self) -> u64 {
        self.markers - self.search.len() as u64
    }

    pub fn summary(&self) -> String {
        format!(
            "{:.0} changes/s; Redis {}; search {}; {} markers; lag at most {:.2} s, {} bytes; {}",
            self.changes_per_second,
            percentiles_ms(&self.redis, self.lost_redis()),
            percentiles_ms(&self.search, self.lost_search()),
            self.markers,
            self.max_lag_seconds,
            self.max_lag_bytes,
            self.checkpoints_summary()
        )
    }

    /// `2 state-store checkpoints (2.1, 3.4 s)`, or `no state-store checkpoint`.
    pub fn checkpoints_summary(&self) -> String {
        let seconds: Vec<String> = self
            .checkpoints
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64()))
            .collect();
        match seconds.len() {
            0 => "no state-store checkpoint".to_owned(),
            1 => format!("1 state-store checkpoint ({} s)", seconds[0]),
            n => format!("{n} state-store checkpoints ({} s)", seconds.join(", ")),
        }
    }
}

/// The p-th percentile (nearest rank) of `seen` (sorted) and `lost`
/// markers, which count as [`GIVE_UP`]; `None` without markers.
pub fn percentile(seen: &[Duration], lost: u64, p: f64) -> Option<Duration> {
    let total = seen.len() + lost as usize;
    let rank = ((p / 100.0) * total as f64).ceil() as usize;
    (total > 0).then(|| seen.get(rank.max(1) - 1).copied().unwrap_or(GIVE_UP))
}

/// `p50 / p99 / max` in milliseconds; `> 10 s` where lost markers count.
pub fn percentiles_ms(seen: &[Duration], lost: u64) -> String {
    let show = |p: f64| match percentile(seen, lost, p) {
        None => "—".to_owned(),
        Some(d) if d >= GIVE_UP => format!("> {} s", GIVE_UP.as_secs()),
        Some(d) => format!("{:.1}", d.as_secs_f64() * 1000.0),
    };
    format!("{} / {} / {} ms", show(50.0), show(99.0), show(100.0))
}

/// Runs the paced workload and the markers for `window` against the running
/// all-views instance, and waits for the last markers.
pub async fn measure(
    pool: &PgPool,
    deployment: &Deployment,
    rate: f64,
    changes_per_transaction: f64,
    window: Duration,
) -> LatencyRun {
    let port = deployment.setup.admin_port;
    let marker_rate = MARKER_CHANGES / MARKER_INTERVAL.as_secs_f64();
    let transactions_per_second = (rate - marker_rate).max(1.0) / changes_per_transaction;
    let stop = Arc::new(AtomicBool::new(false));
    let runs: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let mut options = WorkloadOptions::new(u64::MAX, SEED + i);
            options.rate = Some(transactions_per_second / CONNECTIONS as f64);
            options.stop = Arc::clone(&stop);
            spawn_workload(pool, options)
        })
        .collect();

    let (to_redis, from_writer_redis) = mpsc::unbounded_channel();
    let (to_search, from_writer_search) = mpsc::unbounded_channel();
    let redis_watch = tokio::spawn(watch_redis(deployment.redis_url.clone(), from_writer_redis));
    let search_watch = tokio::spawn(watch_search(port, from_writer_search));
    let changes_before = probe::metric(port, CHANGES).await.unwrap_or(0.0);
    let log_before = log_len(&deployment.setup.log_path());
    let started = Instant::now();
    let (markers, max_lag_seconds, max_lag_bytes) = write_markers(
        &deployment.setup.database_url,
        port,
        window,
        to_redis,
        to_search,
    )
    .await;
    let changes_after = probe::metric(port, CHANGES).await.unwrap_or(0.0);
    let elapsed = started.elapsed().as_secs_f64();
    let checkpoints = checkpoints_logged_after(&deployment.setup.log_path(), log_before);
    stop.store(true, Ordering::Relaxed);
    let mut stats = WorkloadStats::default();
    for run in runs {
        stats.merge(&run.await.expect("a workload task"));
    }
    let mut redis = redis_watch.await.expect("the Redis watcher");
    let mut search = search_watch.await.expect("the search watcher");
    redis.sort();
    search.sort();
    LatencyRun {
        redis,
        search,
        markers,
        changes_per_second: (changes_after - changes_before) / elapsed,
        max_lag_seconds,
        max_lag_bytes,
        checkpoints,
    }
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The durations of the state-store checkpoints the service logged after
/// byte `offset` of its log (its `state-store checkpoint written` debug
/// lines, whose `ms` field is the checkpoint's whole time).
fn checkpoints_logged_after(path: &Path, offset: u64) -> Vec<Duration> {
    let Ok(log) = std::fs::read(path) else {
        return Vec::new();
    };
    let after = log.get(offset as usize..).unwrap_or_default();
    String::from_utf8_lossy(after)
        .lines()
        .filter(|line| line.contains("state-store checkpoint written"))
        .map(|line| Duration::from_millis(log_field(&strip_ansi(line), "ms")))
        .collect()
}

/// Commits a marker every [`MARKER_INTERVAL`] for `window` and hands each
/// to both watchers; samples the lag every 25 markers. Returns the markers
/// written and the largest lag seen.
async fn write_markers(
    database_url: &str,
    admin_port: u16,
    window: Duration,
    to_redis: mpsc::UnboundedSender<Marker>,
    to_search: mpsc::UnboundedSender<Marker>,
) -> (u64, f64, u64) {
    let mut conn = PgConnection::connect(database_url)
        .await
        .expect("connecting the marker writer");
    sqlx::query(CREATE_MARKER_NUMBERS)
        .execute(&mut conn)
        .await
        .expect("the markers' sequence");
    let mut tick = tokio::time::interval(MARKER_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (end, mut written) = (Instant::now() + window, 0);
    let (mut lag_seconds, mut lag_bytes) = (0.0_f64, 0_u64);
    while Instant::now() < end {
        tick.tick().await;
        written += 1;
        let marker = write_marker(&mut conn).await;
        let _ = to_redis.send(marker.clone());
        let _ = to_search.send(marker);
        if written % 25 == 0
            && let Ok(status) = probe::status(admin_port).await
        {
            lag_seconds = lag_seconds.max(status.lag_seconds);
            lag_bytes = lag_bytes.max(status.lag_bytes);
        }
    }
    (written, lag_seconds, lag_bytes)
}

async fn write_marker(conn: &mut PgConnection) -> Marker {
    let mut txn = conn.begin().await.expect("begin");
    let product: i64 = sqlx::query_scalar(INSERT_MARKER_PRODUCT)
        .fetch_one(&mut *txn)
        .await
        .expect("the marker product");
    let order: i64 = sqlx::query_scalar(INSERT_MARKER_ORDER)
        .bind(product)
        .fetch_one(&mut *txn)
        .await
        .expect("the marker order");
    let committing = Instant::now();
    txn.commit().await.expect("committing a marker");
    Marker {
        number: -product,
        product,
        order,
        committing,
    }
}

/// Polls Redis for every pending marker's two documents, one pipeline per
/// millisecond; returns the latencies of those that appeared.
async fn watch_redis(url: String, mut markers: mpsc::UnboundedReceiver<Marker>) -> Vec<Duration> {
    let client = redis::Client::open(url.as_str()).expect("the Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    // Not the client's 500 ms: on the saturated cores of the 5,000 changes/s
    // phase a poll can wait longer than that for Redis, which is slow, not
    // gone (a marker not seen within `GIVE_UP` counts as lost anyway).
    conn.set_response_timeout(GIVE_UP);
    let mut pending: Vec<Marker> = Vec::new();
    let mut seen = Vec::new();
    let mut open = true;
    let mut tick = tokio::time::interval(REDIS_POLL);
    while open || !pending.is_empty() {
        tick.tick().await;
        open = receive(&mut markers, &mut pending);
        if pending.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for marker in pending.iter().take(CHECKED_PER_POLL) {
            pipe.exists(format!("order:{}", marker.order));
            pipe.exists(format!("product:{}", marker.product));
        }
        let exists: Vec<bool> = pipe.query_async(&mut conn).await.expect("polling Redis");
        let now = Instant::now();
        let mut index = 0;
        pending.retain(|marker| {
            let visible = exists.get(index..index + 2) == Some(&[true, true]);
            index += 2;
            if visible {
                seen.push(now - marker.committing);
            }
            !visible && now - marker.committing < GIVE_UP
        });
    }
    seen
}

/// Polls the search endpoint for every pending marker's token in one query;
/// returns the latencies of the markers whose product it found.
async fn watch_search(
    admin_port: u16,
    mut markers: mpsc::UnboundedReceiver<Marker>,
) -> Vec<Duration> {
    let mut pending: Vec<Marker> = Vec::new();
    let mut seen = Vec::new();
    let mut open = true;
    let mut tick = tokio::time::interval(SEARCH_POLL);
    while open || !pending.is_empty() {
        tick.tick().await;
        open = receive(&mut markers, &mut pending);
        if pending.is_empty() {
            continue;
        }
        let checked = pending.iter().take(CHECKED_PER_POLL);
        let tokens: Vec<String> = checked.map(Marker::token).collect();
        let found = search_ids(admin_port, &tokens.join(" OR "), tokens.len()).await;
        let now = Instant::now();
        pending.retain(|marker| {
            let visible = found.contains(&marker.product.to_string());
            if visible {
                seen.push(now - marker.committing);
            }
            !visible && now - marker.committing < GIVE_UP
        });
    }
    seen
}

/// Moves what the writer sent into `pending`; false once it is done.
fn receive(markers: &mut mpsc::UnboundedReceiver<Marker>, pending: &mut Vec<Marker>) -> bool {
    loop {
        match markers.try_recv() {
            Ok(marker) => pending.push(marker),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
}

/// The document ids the search endpoint returns for `query`; none on error.
async fn search_ids(admin_port: u16, query: &str, expected: usize) -> BTreeSet<String> {
    let query: String = url_encode(query);
    let path = format!(
        "/views/{}/search?q={query}&limit={}",
        crate::SEARCH_VIEW,
        (expected * 2).clamp(10, 1_000)
    );
    let Ok((200, body)) = http_get(admin_port, &path).await else {
        return BTreeSet::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    json["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hit| hit["id"].as_str().map(str::to_owned))
        .collect()
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
