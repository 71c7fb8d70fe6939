//! Issue 3's benchmark: how fast viewkeeper builds the `product_search`
//! index from an initial snapshot, beside a bare Tantivy indexing loop over
//! the same documents in the same run.
//!
//! ```text
//! cargo bench --bench search_snapshot                          # 200,000 products
//! BENCH_PRODUCTS=500000 cargo bench --bench search_snapshot    # another size
//! ```
//!
//! It starts a throwaway PostgreSQL and Redis (the test harness: binaries on
//! the machine, no Docker), loads the example shop with `BENCH_PRODUCTS`
//! products (default 200,000) and few orders and customers, then starts the
//! release `viewkeeper run` with only `views/product_search.yaml` and times it
//! from process start until its index holds one document per product: slot
//! creation, snapshot copy, state store, outbox and index, end to end. With
//! the service stopped, it reads the same documents with SQL (the JSON
//! viewkeeper indexes) and times `bare_indexing_rate` with viewkeeper's writer
//! settings (64 MiB, one indexing thread). It prints one table, the machine,
//! and the service's log lines that mark the phases (with their offsets from
//! process start, and the index commits summed up). A benchmark, not a test:
//! it asserts nothing about speed.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::{PgServer, RedisServer, ServiceSetup, log_field, shop, strip_ansi};
use serde_json::{Map, Value};
use sqlx::PgPool;
use viewkeeper::sink::search::{SearchIndex, bare_indexing_rate};
use viewkeeper::view::model::{SearchField, ViewKind};
use viewkeeper::workload::Scale;

const VIEW: &str = "product_search";
const DEFAULT_PRODUCTS: u64 = 200_000;
/// viewkeeper's writer settings (`INDEX_MEMORY_BUDGET` in src/service.rs,
/// one indexing thread), so the yardstick is like for like.
const MEMORY_BUDGET: usize = 64 * 1024 * 1024;
const INDEX_THREADS: usize = 1;
/// How long the service may take to index everything before the run fails.
const DEADLINE: Duration = Duration::from_secs(30 * 60);
const POLL: Duration = Duration::from_millis(100);

/// The documents viewkeeper indexes for `product_search`, by id: keys as the
/// view's fields, NULLs as `null` (skipped when converted).
const DOCUMENTS_SQL: &str = r#"
    SELECT p.id::text,
           json_build_object('name', p.name, 'description', p.description,
                             'category', c.name, 'price_cents', p.price_cents)::text
    FROM products p LEFT JOIN categories c ON c.id = p.category_id
    ORDER BY p.id"#;

/// Service log messages that mark the phases of a snapshot.
const MILESTONES: [&str; 7] = [
    "configuration",
    "creating search index",
    "replication slot created",
    "table copied",
    "snapshot complete",
    "streaming",
    "search index loaded",
];
/// The writer's debug message after each index commit.
const COMMITTED: &str = "search index committed";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let products = products_from_env();
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;

    let loading = Instant::now();
    let scale = Scale {
        categories: 100,
        products,
        customers: 100,
        orders: 100,
        max_items_per_order: 3,
    };
    let (url, pool) = shop(&pg, &scale).await;
    eprintln!(
        "loaded {products} products in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    let views = tempfile::tempdir().expect("creating the views dir");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views/product_search.yaml");
    std::fs::copy(&source, views.path().join("product_search.yaml"))
        .expect("copying views/product_search.yaml");
    let fields = search_fields(views.path());

    let setup = ServiceSetup::with_views(&url, &redis.url(), views.path().to_owned());
    let index_dir = setup.data_dir().join("indexes").join(VIEW);
    let started = Instant::now();
    let started_at = utc_seconds_of_day(SystemTime::now());
    let mut service = setup.start();
    let service_seconds = loop {
        service.assert_running();
        if indexed(&index_dir, &fields) >= products {
            break started.elapsed().as_secs_f64();
        }
        if started.elapsed() > DEADLINE {
            panic!(
                "the index did not reach {products} documents in {DEADLINE:?}; log:\n{}",
                service.log_tail(40)
            );
        }
        tokio::time::sleep(POLL).await;
    };
    // The writer logs a commit just after readers can see it: give the last
    // commit's line a moment (not timed) to reach the log.
    let log_deadline = Instant::now() + Duration::from_secs(5);
    let mut log = service_log(&setup.log_path(), started_at);
    while log.1 < products && Instant::now() < log_deadline {
        tokio::time::sleep(POLL).await;
        log = service_log(&setup.log_path(), started_at);
    }
    // The yardstick runs alone: nothing else of viewkeeper competes for the CPU.
    drop(service);

    let documents = documents(&pool).await;
    assert_eq!(documents.len() as u64, products, "documents read with SQL");
    let bare_dir = tempfile::tempdir().expect("creating the bare index dir");
    let bare_rate = bare_indexing_rate(
        bare_dir.path(),
        &fields,
        &documents,
        MEMORY_BUDGET,
        INDEX_THREADS,
    )
    .expect("the bare indexing loop");

    let service_rate = products as f64 / service_seconds;
    println!();
    println!("search_snapshot: {VIEW} from an initial snapshot");
    println!(
        "{:>10}  {:>12}  {:>14}  {:>16}  {:>6}",
        "documents", "viewkeeper s", "viewkeeper d/s", "bare tantivy d/s", "ratio"
    );
    println!(
        "{:>10}  {:>12.1}  {:>14.0}  {:>16.0}  {:>5.1}%",
        products,
        service_seconds,
        service_rate,
        bare_rate,
        100.0 * service_rate / bare_rate
    );
    println!("machine: {}", harness::machine());
    println!(
        "viewkeeper: process start to all documents searchable (slot, snapshot copy, state store, outbox, index)"
    );
    println!(
        "bare tantivy: add_document + one commit, {} MiB, {INDEX_THREADS} thread, documents converted beforehand",
        MEMORY_BUDGET >> 20
    );
    println!("service log, seconds after process start:");
    for line in log.0 {
        println!("  {line}");
    }
}

fn products_from_env() -> u64 {
    match std::env::var("BENCH_PRODUCTS") {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("BENCH_PRODUCTS={value} is not a positive number")),
        Err(_) => DEFAULT_PRODUCTS,
    }
}

/// The fields of `product_search` as the view defines them.
fn search_fields(views: &Path) -> Vec<SearchField> {
    let defs = viewkeeper::view::load_views(views).expect("loading the views");
    defs.into_iter()
        .find_map(|def| match def.kind {
            ViewKind::Search(search) if def.name == VIEW => Some(search.fields),
            _ => None,
        })
        .expect("views/product_search.yaml defines a search view")
}

/// Documents in the service's index; 0 until it exists and is readable.
fn indexed(dir: &Path, fields: &[SearchField]) -> u64 {
    SearchIndex::open(dir, VIEW, fields).map_or(0, |index| index.num_docs())
}

async fn documents(pool: &PgPool) -> Vec<(String, Map<String, Value>)> {
    let rows: Vec<(String, String)> = sqlx::query_as(DOCUMENTS_SQL)
        .fetch_all(pool)
        .await
        .expect("reading the products");
    rows.into_iter()
        .map(|(id, json)| match serde_json::from_str(&json) {
            Ok(Value::Object(document)) => (id, document),
            other => panic!("product {id}: not a JSON object: {other:?}"),
        })
        .collect()
}

/// The milestone lines of the service log, each with its offset from
/// `started_at`, and one line that sums up the index commits; and how many
/// index ops those commits logged.
fn service_log(log: &Path, started_at: f64) -> (Vec<String>, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let offset = |line: &str| {
        let time = line.split_whitespace().next()?.split_once('T')?.1;
        let mut parts = time.trim_end_matches('Z').split(':');
        let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
        let seconds = h.parse::<f64>().ok()? * 3600.0
            + m.parse::<f64>().ok()? * 60.0
            + s.parse::<f64>().ok()?;
        Some((seconds - started_at).rem_euclid(86_400.0))
    };
    let (mut lines, mut commits) = (Vec::new(), Vec::new());
    for line in text.lines().map(strip_ansi) {
        let Some(at) = offset(&line) else { continue };
        if line.contains(COMMITTED) {
            commits.push((at, log_field(&line, "ops"), log_field(&line, "elapsed_ms")));
        } else if let Some(m) = MILESTONES.iter().find(|m| line.contains(**m)) {
            // The configuration line is long: its message is enough.
            let rest = line
                .split_once(": ")
                .map_or(line.as_str(), |(_, rest)| rest);
            let shown = if *m == "configuration" { m } else { rest };
            lines.push(format!("{at:>7.2}  {shown}"));
        }
    }
    // The empty commit of the initial load (an empty state store) is not work.
    commits.retain(|(_, ops, _)| *ops > 0);
    let ops: u64 = commits.iter().map(|c| c.1).sum();
    if let (Some(first), Some(last)) = (commits.first(), commits.last()) {
        let busy = commits.iter().map(|c| c.2).sum::<u64>() as f64 / 1000.0;
        let from = first.0 - first.2 as f64 / 1000.0;
        lines.push(format!(
            "{from:>7.2}  .. {:.2}: {} index commits of {ops} ops; {busy:.2} s inside the writer \
             (adds, commit, reload), {:.2} s between commits (outbox reads, commit interval)",
            last.0,
            commits.len(),
            last.0 - from - busy
        ));
    }
    (lines, ops)
}

/// Seconds since midnight UTC, as the service log's timestamps count them.
fn utc_seconds_of_day(time: SystemTime) -> f64 {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    since_epoch.as_secs_f64().rem_euclid(86_400.0)
}
