//! Issue 6's benchmark: viewkeeper end to end with every example view in
//! `views/` — how fast it loads an existing database, how many changes per
//! second it keeps up with, how long after a commit a view shows it, and its
//! peak memory — each beside a ceiling measured in the same run, on the same
//! machine, with the same data.
//!
//! ```text
//! cargo bench --bench end_to_end                           # ≈1,000,000 order_items
//! BENCH_ITEMS=30000 cargo bench --bench end_to_end         # another scale
//! ```
//!
//! | variable | default | what |
//! |---|---|---|
//! | `BENCH_ITEMS` | 1,000,000 | order_items to load (orders = items / 3, the rest derived as `Scale::from_orders`) |
//! | `BENCH_TRANSACTIONS` | 100,000 | workload transactions in the streaming backlog |
//! | `BENCH_RATE` | 5,000 | source changes per second during the latency phase (the target's rate) |
//! | `BENCH_LOW_RATE` | 1,000 | the same at a rate the views keep up with, measured first |
//! | `BENCH_LATENCY_SECONDS` | 30 | length of the latency phase |
//! | `BENCH_PERF` | unset | a path: `perf record` the all-views catch-up into it |
//!
//! Each instance's log is kept under `target/tmp/end_to_end/`.
//!
//! It starts a throwaway PostgreSQL (`wal_level=logical`) and Redis through
//! the test harness, loads the example shop, and runs, in order:
//!
//! 1. `snapshot`: `COPY … TO STDOUT` of the columns viewkeeper copies (the
//!    ceiling), then viewkeeper with all views from an empty data directory
//!    until every view is live; then a second instance with the cache views
//!    alone (its own slot, Redis database 1), for the next phase.
//! 2. `streaming`: with both instances stopped, the workload generator's mix
//!    on 4 connections writes a backlog, which `pg_recvlogical` decodes to
//!    /dev/null through a pgoutput slot created just before it (the ceiling);
//!    then each instance catches up with the same backlog on its own.
//! 3. `latency`: the workload at a fixed rate with all views, and marker rows
//!    polled in Redis and through the search endpoint: first at a rate the
//!    views keep up with, then at the target's 5,000 changes per second;
//!    the state-store checkpoints written meanwhile are read from the
//!    service's log, since each shows in the window's p99.
//! 4. the SQL oracle against Redis, the index and the aggregate table; then
//!    `redis_ceiling`: the same documents written with a raw pipelined loop.
//!
//! It prints one table (`report`). A benchmark, not a test: it asserts
//! nothing about speed, only that the views end up right.

#[path = "../../tests/harness/mod.rs"]
mod harness;
mod latency;
mod probe;
mod redis_ceiling;
mod report;
mod snapshot;
mod streaming;

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{PgServer, RedisServer, ServiceSetup, converged, shop};
use sqlx::PgPool;
use viewkeeper::sink::search::SearchIndex;
use viewkeeper::view::model::{SearchField, ViewKind};
use viewkeeper::workload::Scale;

use snapshot::ShopCounts;

const SEARCH_VIEW: &str = "product_search";
const CACHE_VIEW_FILES: [&str; 2] = ["order_cache.yaml", "product_cache.yaml"];
/// The cache-only instance's slot (and publication); the all-views instance
/// keeps the default, `viewkeeper`.
const CACHE_ONLY_SLOT: &str = "vk_cache";
/// How long the final comparison with the SQL oracle may take.
const ORACLE_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// What to run, from the environment.
pub struct Options {
    pub items: u64,
    pub transactions: u64,
    pub rate: f64,
    pub low_rate: f64,
    pub latency_window: Duration,
    pub perf_output: Option<PathBuf>,
}

impl Options {
    fn from_env() -> Options {
        Options {
            items: env_number("BENCH_ITEMS", 1_000_000),
            transactions: env_number("BENCH_TRANSACTIONS", 100_000),
            rate: env_number("BENCH_RATE", 5_000) as f64,
            low_rate: env_number("BENCH_LOW_RATE", 1_000) as f64,
            latency_window: Duration::from_secs(env_number("BENCH_LATENCY_SECONDS", 30)),
            perf_output: std::env::var_os("BENCH_PERF").map(PathBuf::from),
        }
    }

    /// `Scale::from_orders` gives three items per order on average.
    fn scale(&self) -> Scale {
        Scale::from_orders(self.items.div_ceil(3))
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .replace(['_', ','], "")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{name}={value} is not a positive number")),
        Err(_) => default,
    }
}

/// One viewkeeper instance: its setup (data directory, admin port, slot),
/// the Redis database its cache views write, and what "live" means for it.
pub struct Deployment {
    pub name: &'static str,
    pub setup: ServiceSetup,
    pub redis_url: String,
    /// `product_search`'s fields when this instance has every view (search
    /// and aggregate too); `None` for the cache views alone.
    pub search_fields: Option<Vec<SearchField>>,
}

impl Deployment {
    fn all_views(database_url: &str, redis: &RedisServer) -> Deployment {
        let setup = ServiceSetup::new(database_url, &redis.url());
        let search_fields = Some(search_fields(&setup.views));
        Deployment {
            name: "all views",
            redis_url: redis.url(),
            setup,
            search_fields,
        }
    }

    /// The two cache views, in their own views directory, slot and Redis
    /// database, so the two instances never share anything but the source.
    fn cache_views_alone(database_url: &str, redis: &RedisServer, views: &Path) -> Deployment {
        let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views");
        for file in CACHE_VIEW_FILES {
            std::fs::copy(examples.join(file), views.join(file))
                .unwrap_or_else(|e| panic!("copying views/{file}: {e}"));
        }
        let redis_url = format!("{}/1", redis.url());
        let mut setup = ServiceSetup::with_views(database_url, &redis_url, views.to_owned());
        setup.extra_args = vec!["--slot".into(), CACHE_ONLY_SLOT.into()];
        Deployment {
            name: "cache views alone",
            redis_url,
            setup,
            search_fields: None,
        }
    }

    /// Whether every view's target holds everything the source has: the
    /// documents in Redis and, with all views, the index and the table.
    async fn holds_everything(&self, counts: &ShopCounts, pool: &PgPool) -> bool {
        // The sink's checkpoint key is the one key that is not a document.
        if redis_keys(&self.redis_url).await < counts.cache_documents + 1 {
            return false;
        }
        let Some(fields) = &self.search_fields else {
            return true;
        };
        let index_dir = self.setup.data_dir().join("indexes").join(SEARCH_VIEW);
        let indexed =
            SearchIndex::open(&index_dir, SEARCH_VIEW, fields).map_or(0, |i| i.num_docs());
        indexed == counts.products && snapshot::counted_items(pool).await == counts.paid_items
    }
}

fn search_fields(views: &Path) -> Vec<SearchField> {
    let defs = viewkeeper::view::load_views(views).expect("loading the views");
    defs.into_iter()
        .find_map(|def| match def.kind {
            ViewKind::Search(search) if def.name == SEARCH_VIEW => Some(search.fields),
            _ => None,
        })
        .expect("views/product_search.yaml defines a search view")
}

/// Copies each instance's log (with its `batch applied` and snapshot
/// lines: where the time went) out of its temporary directory, which is
/// removed at the end.
fn keep_logs(deployments: &[&Deployment]) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("end_to_end");
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("not keeping the logs: {}: {error}", dir.display());
        return;
    }
    for deployment in deployments {
        let kept = dir.join(format!("{}.log", deployment.name.replace(' ', "-")));
        match std::fs::copy(deployment.setup.log_path(), &kept) {
            Ok(_) => eprintln!("{} log: {}", deployment.name, kept.display()),
            Err(error) => eprintln!("not keeping the {} log: {error}", deployment.name),
        }
    }
}

/// The 1-minute load average: other work on the machine (a build, tests)
/// takes cores from the figures, and this tells.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}

/// Keys in the Redis database of `url` but the claims; 0 while it cannot
/// be read.
async fn redis_keys(url: &str) -> u64 {
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    // Without the sink's claims on its key prefixes (`viewkeeper:claim:…`).
    let counted: Result<(u64, Vec<String>), _> = redis::pipe()
        .atomic()
        .cmd("DBSIZE")
        .cmd("KEYS")
        .arg("viewkeeper:claim:*")
        .query_async(&mut conn)
        .await;
    counted.map_or(0, |(keys, claims)| keys - claims.len() as u64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = Options::from_env();
    let load_at_start = load_average();
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let loading = tokio::time::Instant::now();
    let (url, pool) = shop(&pg, &options.scale()).await;
    let counts = snapshot::count_shop(&pool).await;
    eprintln!(
        "loaded {} rows ({} order_items) in {:.1} s",
        counts.rows(),
        counts.items(),
        loading.elapsed().as_secs_f64()
    );

    let copy = snapshot::copy_ceiling(&pool).await;
    eprintln!("COPY ceiling: {copy:?}");
    let all = Deployment::all_views(&url, &redis);
    let all_snapshot = snapshot::run_until_live(&all, &counts, &pool).await;
    eprintln!("snapshot, all views: {all_snapshot:?}");
    let cache_views = tempfile::tempdir().expect("creating the cache views dir");
    let cache_only = Deployment::cache_views_alone(&url, &redis, cache_views.path());
    let cache_snapshot = snapshot::run_until_live(&cache_only, &counts, &pool).await;
    eprintln!("snapshot, cache views alone: {cache_snapshot:?}");

    let backlog = streaming::write_backlog(&pool, options.transactions).await;
    eprintln!("backlog: {backlog:?}");
    let decode_seconds = streaming::decode_seconds(&url, &backlog).await;
    eprintln!("pg_recvlogical: {decode_seconds:.2} s");
    let (service, cache_catch_up) = streaming::catch_up(&cache_only, &backlog, None).await;
    drop(service);
    eprintln!("catch-up, cache views alone: {cache_catch_up:?}");
    let perf = options.perf_output.as_deref();
    let (mut service, all_catch_up) = streaming::catch_up(&all, &backlog, perf).await;
    eprintln!("catch-up, all views: {all_catch_up:?}");

    let changes_per_transaction = all_catch_up.changes as f64 / backlog.committed.max(1) as f64;
    let mut latencies = Vec::new();
    for rate in [options.low_rate, options.rate] {
        let window = options.latency_window;
        let run = latency::measure(&pool, &all, rate, changes_per_transaction, window).await;
        eprintln!("latency at {rate} changes/s: {}", run.summary());
        latencies.push(run);
    }
    let (latency, low_latency) = (latencies.pop(), latencies.pop());
    converged(&mut service, &pool, &all.redis_url, ORACLE_DEADLINE).await;
    let streaming_rss = probe::peak_rss_bytes(service.pid());
    drop(service);
    let store_bytes = dir_bytes(&all.setup.data_dir().join("state"));

    keep_logs(&[&all, &cache_only]);

    let redis_ceiling = redis_ceiling::pipelined_sets(&redis).await;
    report::print(&report::Figures {
        options: &options,
        load_average: [load_at_start, load_average()],
        counts: &counts,
        copy,
        all_snapshot,
        cache_snapshot,
        backlog,
        decode_seconds,
        cache_catch_up,
        all_catch_up,
        latency: latency.unwrap_or_default(),
        low_latency: low_latency.unwrap_or_default(),
        streaming_rss,
        store_bytes,
        redis_ceiling,
    });
}

/// The bytes of the files in `dir` (the state store's checkpoint and log).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}
