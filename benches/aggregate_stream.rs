//! Issue 4's benchmark: how fast viewkeeper streams order_items changes
//! through the `category_daily_sales` aggregate view, beside the plain
//! `INSERT … ON CONFLICT DO UPDATE` upsert of the same deltas, measured in
//! the same run on the same PostgreSQL.
//!
//! ```text
//! cargo bench --bench aggregate_stream                         # 1,000,000 changes
//! BENCH_CHANGES=2000000 cargo bench --bench aggregate_stream   # another size
//! ```
//!
//! It starts a throwaway PostgreSQL (the test harness), loads the example shop
//! with 1,000 paid orders over 30 days and 200 products in 20 categories,
//! starts the release `viewkeeper run` with only
//! `views/category_daily_sales.yaml`, and waits until its table is written.
//! Then it inserts `BENCH_CHANGES` order_items (default 1,000,000) in
//! transactions of 10,000 rows and times from the first insert until the
//! table counts every item: decoding, state store, group state, outbox and
//! the SQL transactions, end to end, while the inserts themselves run. The
//! table is then compared with the GROUP BY over the source tables.
//!
//! The yardstick, with viewkeeper stopped: the same items' deltas (group key,
//! 1 item, its quantity, revenue and price), read back with SQL, applied one
//! upsert per change in transactions of 10,000, as a hand-written dual write
//! or a trigger would. A benchmark, not a test: it asserts nothing about
//! speed, only that the table is right.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::{
    PgServer, ServiceSetup, category_daily_sales_rows, diff_documents,
    expected_category_daily_sales, shop,
};
use sqlx::PgPool;
use viewkeeper::workload::Scale;

const DEFAULT_CHANGES: u64 = 1_000_000;
const ROWS_PER_TRANSACTION: u64 = 10_000;
const DEADLINE: Duration = Duration::from_secs(30 * 60);
const POLL: Duration = Duration::from_millis(100);
/// No cache view reads Redis here; the URL is never dialled.
const NO_REDIS: &str = "redis://127.0.0.1:1";

/// Items counted in the aggregate table, or -1 while it does not exist.
const COUNTED_SQL: &str =
    "SELECT coalesce(sum(items), 0)::bigint FROM analytics.category_daily_sales";
/// Items the table must count: those of paid orders.
const PAID_ITEMS_SQL: &str = "SELECT count(*) FROM order_items oi \
     JOIN orders o ON o.id = oi.order_id WHERE o.status = 'paid'";

/// One batch of new items, spread over every paid order and product.
const INSERT_ITEMS_SQL: &str = "INSERT INTO order_items \
         (order_id, product_id, sku, quantity, unit_price_cents) \
     SELECT o.ids[1 + (g % array_length(o.ids, 1))], \
            p.ids[1 + ((g * 7) % array_length(p.ids, 1))], \
            'SKU-' || g, 1 + g % 9, 100 + (g * 37) % 10000 \
     FROM generate_series($1::bigint, $2::bigint) g, \
          (SELECT array_agg(id ORDER BY id) AS ids FROM orders WHERE status = 'paid') o, \
          (SELECT array_agg(id ORDER BY id) AS ids FROM products) p";

/// The deltas of the items inserted after `$1`, as the view defines them.
const DELTAS_SQL: &str = "SELECT date(o.created_at AT TIME ZONE 'UTC')::text, p.category_id, \
            oi.quantity::bigint, oi.quantity * oi.unit_price_cents, oi.unit_price_cents \
     FROM order_items oi JOIN orders o ON o.id = oi.order_id \
     LEFT JOIN products p ON p.id = oi.product_id \
     WHERE oi.id > $1 AND o.status = 'paid' ORDER BY oi.id";

const PLAIN_TABLE_SQL: &str = "CREATE TABLE plain_upsert (day date, category_id bigint, \
     items bigint, units numeric, revenue_cents numeric, max_unit_price_cents bigint, \
     price_sum numeric, UNIQUE NULLS NOT DISTINCT (day, category_id))";

const PLAIN_UPSERT_SQL: &str = "INSERT INTO plain_upsert AS t VALUES ($1::date, $2, 1, $3, $4, $5, $5) \
     ON CONFLICT (day, category_id) DO UPDATE SET items = t.items + 1, \
     units = t.units + EXCLUDED.units, revenue_cents = t.revenue_cents + EXCLUDED.revenue_cents, \
     max_unit_price_cents = greatest(t.max_unit_price_cents, EXCLUDED.max_unit_price_cents), \
     price_sum = t.price_sum + EXCLUDED.price_sum";

type Delta = (Option<String>, Option<i64>, i64, i64, i64);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let changes = changes_from_env();
    let pg = PgServer::start().await;
    let scale = Scale {
        categories: 20,
        products: 200,
        customers: 100,
        orders: 1_000,
        max_items_per_order: 2,
    };
    let (url, pool) = shop(&pg, &scale).await;
    execute(
        &pool,
        "UPDATE orders SET status = 'paid', created_at = now() - (id % 30) * interval '1 day'",
    )
    .await;

    let views = tempfile::tempdir().expect("creating the views dir");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views/category_daily_sales.yaml");
    std::fs::copy(&source, views.path().join("category_daily_sales.yaml"))
        .expect("copying views/category_daily_sales.yaml");
    let setup = ServiceSetup::with_views(&url, NO_REDIS, views.path().to_owned());
    let mut service = setup.start();
    let before = scalar(&pool, PAID_ITEMS_SQL).await;
    wait_for_count(&pool, &mut service, before).await;

    let first_new_id = scalar(&pool, "SELECT coalesce(max(id), 0) FROM order_items").await;
    let started = Instant::now();
    let mut inserted = 0;
    while inserted < changes {
        let rows = ROWS_PER_TRANSACTION.min(changes - inserted);
        sqlx::query(INSERT_ITEMS_SQL)
            .bind(inserted as i64 + 1)
            .bind((inserted + rows) as i64)
            .execute(&pool)
            .await
            .expect("inserting items");
        inserted += rows;
    }
    let insert_seconds = started.elapsed().as_secs_f64();
    wait_for_count(&pool, &mut service, before + changes as i64).await;
    let service_seconds = started.elapsed().as_secs_f64();
    drop(service);

    let expected = expected_category_daily_sales(&pool).await;
    let actual = category_daily_sales_rows(&pool)
        .await
        .expect("reading the table");
    let differences = diff_documents(&expected, &actual);
    assert!(
        differences.is_empty(),
        "the table is wrong:\n{}",
        differences.join("\n")
    );

    let deltas = deltas(&pool, first_new_id).await;
    assert_eq!(deltas.len() as u64, changes, "deltas read back");
    let plain_seconds = plain_upserts(&pool, &deltas).await;

    let service_rate = changes as f64 / service_seconds;
    let plain_rate = changes as f64 / plain_seconds;
    println!();
    println!("aggregate_stream: {changes} inserted order_items through category_daily_sales");
    println!(
        "{:>10}  {:>12}  {:>14}  {:>17}  {:>6}",
        "changes", "viewkeeper s", "viewkeeper c/s", "plain upsert c/s", "ratio"
    );
    println!(
        "{:>10}  {:>12.1}  {:>14.0}  {:>17.0}  {:>5.0}%",
        changes,
        service_seconds,
        service_rate,
        plain_rate,
        100.0 * service_rate / plain_rate
    );
    println!(
        "groups: {}; machine: {}",
        expected.len(),
        harness::machine()
    );
    println!(
        "viewkeeper: first insert to every item counted in the table (the inserts alone took {insert_seconds:.1} s, {:.0} rows/s)",
        changes as f64 / insert_seconds
    );
    println!(
        "plain upsert: one INSERT … ON CONFLICT DO UPDATE per change, {ROWS_PER_TRANSACTION} per transaction, deltas read beforehand, viewkeeper stopped"
    );
}

fn changes_from_env() -> u64 {
    match std::env::var("BENCH_CHANGES") {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("BENCH_CHANGES={value} is not a positive number")),
        Err(_) => DEFAULT_CHANGES,
    }
}

async fn execute(pool: &PgPool, sql: &'static str) {
    sqlx::query(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Waits until the aggregate table counts `items` items.
async fn wait_for_count(pool: &PgPool, service: &mut harness::Service, items: i64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        service.assert_running();
        let counted: Option<i64> = sqlx::query_scalar(COUNTED_SQL).fetch_one(pool).await.ok();
        if counted == Some(items) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "the table counts {counted:?} items, not {items}, after {DEADLINE:?}; log:\n{}",
                service.log_tail(40)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn deltas(pool: &PgPool, after_id: i64) -> Vec<Delta> {
    sqlx::query_as(DELTAS_SQL)
        .bind(after_id)
        .fetch_all(pool)
        .await
        .expect("reading the deltas")
}

/// Applies every delta as one upsert, in transactions; returns the seconds.
async fn plain_upserts(pool: &PgPool, deltas: &[Delta]) -> f64 {
    execute(pool, PLAIN_TABLE_SQL).await;
    let started = Instant::now();
    for chunk in deltas.chunks(ROWS_PER_TRANSACTION as usize) {
        let mut txn = pool.begin().await.expect("begin");
        for (day, category, units, revenue, price) in chunk {
            sqlx::query(PLAIN_UPSERT_SQL)
                .bind(day.as_deref())
                .bind(category)
                .bind(units)
                .bind(revenue)
                .bind(price)
                .execute(&mut *txn)
                .await
                .expect("plain upsert");
        }
        txn.commit().await.expect("commit");
    }
    started.elapsed().as_secs_f64()
}
