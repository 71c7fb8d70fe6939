//! Phase 1, the initial snapshot: rows per second from an empty data
//! directory to every view live, beside PostgreSQL's own `COPY … TO STDOUT`
//! of exactly the columns viewkeeper copies (the same statements, the same
//! rows, one repeatable-read transaction, read and thrown away).

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use sqlx::PgPool;
use tokio::time::Instant;
use viewkeeper::plan::Plan;
use viewkeeper::source::catalog::load_catalog;
use viewkeeper::source::connection::{quote_ident, quote_qualified};

use crate::{Deployment, probe};

/// How long a snapshot may take before the run fails.
const DEADLINE: Duration = Duration::from_secs(30 * 60);
/// Documents the Redis sink has made durable, as `/metrics` prints it.
const REDIS_APPLIED: &str = r#"viewkeeper_sink_applied_total{sink="redis"}"#;
const TABLES: [&str; 5] = [
    "categories",
    "products",
    "customers",
    "orders",
    "order_items",
];

/// What the loaded shop holds, and so what each view must hold when live.
#[derive(Debug)]
pub struct ShopCounts {
    pub tables: Vec<(&'static str, u64)>,
    /// Documents of both cache views: non-draft orders and every product.
    pub cache_documents: u64,
    pub products: u64,
    /// Items `category_daily_sales` counts: those of paid orders.
    pub paid_items: u64,
}

impl ShopCounts {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, rows)| rows).sum()
    }

    pub fn items(&self) -> u64 {
        self.count("order_items")
    }

    pub fn count(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find_map(|(name, rows)| (*name == table).then_some(*rows))
            .unwrap_or(0)
    }
}

pub async fn count_shop(pool: &PgPool) -> ShopCounts {
    let mut tables = Vec::new();
    for table in TABLES {
        let sql = format!("SELECT count(*) FROM {table}");
        tables.push((table, scalar(pool, &sql).await));
    }
    let live_orders = scalar(pool, "SELECT count(*) FROM orders WHERE status <> 'draft'").await;
    let paid_items = scalar(
        pool,
        "SELECT count(*) FROM order_items oi JOIN orders o ON o.id = oi.order_id \
         WHERE o.status = 'paid'",
    )
    .await;
    let products = tables[1].1;
    ShopCounts {
        tables,
        cache_documents: live_orders + products,
        products,
        paid_items,
    }
}

/// Items counted in the aggregate table; 0 while it does not exist.
pub async fn counted_items(pool: &PgPool) -> u64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT coalesce(sum(items), 0)::bigint FROM analytics.category_daily_sales",
    )
    .fetch_one(pool)
    .await
    .map_or(0, |n| n as u64)
}

async fn scalar(pool: &PgPool, sql: &str) -> u64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}")) as u64
}

/// The ceiling: rows and seconds of `COPY (SELECT <stored columns> FROM t)
/// TO STDOUT` for every table the views read, as viewkeeper's snapshot
/// issues it (the columns come from the same plan).
pub async fn copy_ceiling(pool: &PgPool) -> (u64, f64) {
    let views_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views");
    let views = viewkeeper::view::load_views(&views_dir).expect("loading the views");
    let catalog = load_catalog(pool).await.expect("reading the catalog");
    let plan = Plan::build(&views, &catalog).expect("planning the views");
    let mut conn = pool.acquire().await.expect("a connection");
    let started = Instant::now();
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await
        .expect("BEGIN");
    let mut rows = 0;
    for table in plan.tables.values() {
        let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
        let statement = format!(
            "COPY (SELECT {} FROM {}) TO STDOUT",
            columns.join(", "),
            quote_qualified(&table.name)
        );
        let mut stream = conn.copy_out_raw(&statement).await.expect("COPY");
        while let Some(bytes) = stream.next().await {
            // COPY's text format escapes newlines in values: one per row.
            rows += bytes
                .expect("COPY data")
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
        }
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut *conn)
        .await
        .expect("COMMIT");
    (rows, started.elapsed().as_secs_f64())
}

/// One instance's initial snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotRun {
    /// From process start until every view is live.
    pub seconds: f64,
    /// From process start until the state store holds the snapshot (copy,
    /// rows, join indexes, outputs, outboxes); the sinks drain after.
    pub snapshot_done_seconds: f64,
    /// Documents per second while the Redis sink drained its outbox.
    pub redis_drain_rate: Option<f64>,
    pub peak_rss: u64,
}

/// Starts `deployment` on an empty data directory and waits until every
/// view holds everything; stops it (SIGTERM) afterwards.
pub async fn run_until_live(
    deployment: &Deployment,
    counts: &ShopCounts,
    pool: &PgPool,
) -> SnapshotRun {
    let port = deployment.setup.admin_port;
    let started = Instant::now();
    let mut service = deployment.setup.start();
    let mut snapshot_done_seconds = None;
    let mut drain = DrainClock::default();
    let what = format!("{}: every view live after the snapshot", deployment.name);
    let seconds = probe::wait_for(
        &mut service,
        port,
        started,
        DEADLINE,
        &what,
        async |status| {
            if status.snapshot_done && snapshot_done_seconds.is_none() {
                snapshot_done_seconds = Some(started.elapsed().as_secs_f64());
            }
            if let Ok(applied) = probe::metric(port, REDIS_APPLIED).await {
                drain.sample(applied, started.elapsed().as_secs_f64());
            }
            status.ready
                && status.drained_but_aggregates()
                && deployment.holds_everything(counts, pool).await
        },
    )
    .await;
    let peak_rss = probe::peak_rss_bytes(service.pid());
    service.terminate(Duration::from_secs(60)).await;
    SnapshotRun {
        seconds,
        snapshot_done_seconds: snapshot_done_seconds.unwrap_or(seconds),
        redis_drain_rate: drain.rate(),
        peak_rss,
    }
}

/// The rate of a counter between the first and the last sample that moved
/// it: how fast a sink drained while it had work.
#[derive(Debug, Default)]
struct DrainClock {
    first: Option<(f64, f64)>,
    last: Option<(f64, f64)>,
}

impl DrainClock {
    fn sample(&mut self, value: f64, at: f64) {
        let moved = self
            .last
            .map_or(value > 0.0, |(previous, _)| value > previous);
        if moved {
            self.first.get_or_insert((value, at));
            self.last = Some((value, at));
        }
    }

    fn rate(&self) -> Option<f64> {
        let ((v0, t0), (v1, t1)) = (self.first?, self.last?);
        (t1 > t0).then(|| (v1 - v0) / (t1 - t0))
    }
}
