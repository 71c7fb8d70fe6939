//! The engine alone: what applying changes costs in CPU, in the engine and
//! the state store, per change and per root, without PostgreSQL decoding the
//! WAL and Redis, Tantivy or SQL sinks draining outboxes on the same two
//! cores. Deterministic and repeatable (a seeded synthetic shop, changes
//! generated before timing), so that two versions of the engine can be
//! compared A/B and profiled with clean call stacks.
//!
//! ```text
//! cargo bench --bench engine                           # 200,000 items, 200,000 changes
//! BENCH_ITEMS=1000000 cargo bench --bench engine       # a larger shop
//! BENCH_CHANGES=500000 BENCH_SEED=2 cargo bench --bench engine
//! BENCH_ONLY=streaming cargo bench --bench engine      # report one phase (snapshot or streaming)
//! BENCH_CHECKPOINT_MB=1 cargo bench --bench engine     # checkpoints all along (state_checkpoint_mb)
//! BENCH_BATCH_CHANGES=150 cargo bench --bench engine   # small batches, as at 5,000 changes/s
//! ```
//!
//! Profiles: the bench binary keeps its symbols and unwind tables, so DWARF
//! call graphs work on the usual build (the binary is the one `cargo bench`
//! prints after "Running"; the views are found wherever it runs from):
//!
//! ```text
//! cargo bench --bench engine --no-run
//! perf record --call-graph dwarf target/release/deps/engine-<hash>
//! perf report --children
//! ```
//!
//! For `perf record -g` (frame pointers: much smaller recordings), build with
//! frame pointers and line tables, in a target directory of its own so the
//! usual build is left alone (it rebuilds every dependency once):
//!
//! ```text
//! CARGO_TARGET_DIR=target/perf RUSTFLAGS="-C force-frame-pointers=yes" \
//!   CARGO_PROFILE_BENCH_DEBUG=line-tables-only cargo bench --bench engine --no-run
//! perf record -g target/perf/release/deps/engine-<hash>
//! ```
//!
//! Each phase is a frame of its own (`engine::take_snapshot`,
//! `engine::stream`, and `engine::Shop::generate`,
//! `engine::generate_batches` for the untimed generation), so
//! `perf report --children` shows what each costs and what is below it.
//!
//! What it does: builds by hand the catalog of the five tables of
//! `schemas/shop.sql`, loads the example views of `views/` and plans them,
//! opens a state store in a temporary directory and creates an [`Engine`].
//! Then it generates a shop at the proportions of
//! [`Scale::from_orders`]`(BENCH_ITEMS / 3)` (seeded by `BENCH_SEED`) and
//! takes it as an initial snapshot: `load_snapshot_rows` in chunks of 10,000
//! rows, timed apart from `finish_snapshot`, which computes every root's
//! output. Then it streams `BENCH_CHANGES` changes of whole synthetic
//! transactions, drawn with the weights of the workload's default
//! [`Mix`] and shaped as pgoutput delivers them (updates without the old row,
//! deletes with the key only, cascades and `SET NULL` as separate changes,
//! an untouched large description as unchanged TOAST), in batches cut as the
//! source cuts them by default (at the first commit after 20,000 changes),
//! each applied with [`Engine::apply`] under the engine's default limits (the
//! roots of a batch beyond `batch_max_roots`, 25,000, are refreshed in later
//! transactions: the `deferred` time). `BENCH_ONLY=streaming` still takes
//! the snapshot, which the stream needs, but does not report it. No sink
//! runs: after each batch, outside the timed region, the outboxes are
//! released as if every sink had drained them. At the end the store is checked against the
//! generated shop (row counts, outputs of `order_cache` and `product_cache`,
//! items counted by `category_daily_sales`), so the benchmark cannot
//! silently measure nothing.
//!
//! Columns: `wall s` includes the fsync of each commit and every wait;
//! `cpu s` is the CPU time of the whole process: the engine's thread, its
//! helper that computes documents beside it, and the store's background
//! checkpoints; so `cpu s` above `wall s` means two cores were busy. A
//! benchmark, not a test: it asserts nothing about speed.

/// The allocator the service runs with (`src/main.rs`): the engine's
/// cost depends on it more than on anything else.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use viewkeeper::change::{Cell, Change, ChangeBatch, ChangeKind, Lsn, TableName, Tuple, Value};
use viewkeeper::engine::{BatchOutcome, BatchTimings, Engine};
use viewkeeper::plan::{OutputPlan, Plan, TablePlan};
use viewkeeper::source::stream::BatchLimits;
use viewkeeper::state::{Store, StoreError, StoreOptions};
use viewkeeper::view::{Catalog, ColumnInfo, TableInfo, check_against_catalog, load_views};
use viewkeeper::workload::{Mix, Op, Scale};

const DEFAULT_ITEMS: u64 = 200_000;
const DEFAULT_CHANGES: u64 = 200_000;
const DEFAULT_SEED: u64 = 1;
/// Rows per `load_snapshot_rows` call, per table.
const SNAPSHOT_CHUNK: usize = 10_000;
const SNAPSHOT_POSITION: Lsn = Lsn(1);

const ORDER_CACHE: &str = "order_cache";
const PRODUCT_CACHE: &str = "product_cache";
const CATEGORY_DAILY_SALES: &str = "category_daily_sales";

fn main() {
    viewkeeper::allocator::configure();
    let now = timestamptz(NOW_MICROS);
    assert_eq!(now, "2026-10-22T10:08:40.044264Z", "timestamptz text form");
    let settings = Settings::from_env();
    let bench = Bench::open();
    let scale = Scale::from_orders(settings.items / 3);
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut shop = Shop::generate(&scale, &mut rng);
    println!();
    println!(
        "engine: {} items, {} orders, {} customers, {} products, {} categories; seed {}",
        grouped(shop.items.len()),
        grouped(shop.orders.len()),
        grouped(shop.customers.len()),
        grouped(shop.products.len()),
        grouped(shop.categories.len()),
        settings.seed
    );

    let generated = memory();
    let snapshot = take_snapshot(&bench, &shop);
    let after_snapshot = memory();
    let streamed = settings.streams().then(|| {
        let batches = generate_batches(&mut shop, &mut rng, &settings);
        let before = memory();
        let streamed = stream(&bench, &batches);
        (streamed, before, memory())
    });

    print_table_header();
    if settings.reports_snapshot() {
        print_snapshot(&snapshot);
    }
    if let Some((streamed, ..)) = &streamed {
        print_streaming(streamed);
    }
    if settings.reports_snapshot() {
        println!(
            "snapshot: state log {:.0} bytes per row",
            snapshot.log_bytes as f64 / snapshot.rows as f64
        );
    }
    print_memory(
        generated,
        after_snapshot,
        streamed.as_ref().map(|(_, a, b)| (*a, *b)),
    );
    let checked = check(&bench, &shop);
    println!("check: ok ({checked})");
}

/// The process's resident memory now and at its peak, in MiB (`VmRSS`,
/// `VmHWM`; zero where /proc does not say).
#[derive(Clone, Copy)]
struct Memory {
    now: u64,
    peak: u64,
}

fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib >> 10)
    };
    Memory {
        now: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// What the store holds after the snapshot (the generated shop and the
/// changes are the bench's own, allocated before), and what streaming adds
/// at its peak.
fn print_memory(generated: Memory, snapshot: Memory, streaming: Option<(Memory, Memory)>) {
    let mut line = format!(
        "memory: the store after the snapshot {} MiB (peak while taking it {} MiB)",
        snapshot.now.saturating_sub(generated.now),
        snapshot.peak.saturating_sub(generated.now)
    );
    if let Some((before, after)) = streaming {
        line.push_str(&format!(
            "; streaming adds {} MiB at its peak, {} MiB left after",
            after.peak.saturating_sub(before.now.max(snapshot.peak)),
            after.now.saturating_sub(before.now)
        ));
    }
    println!("{line}");
}

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

struct Settings {
    items: u64,
    changes: u64,
    /// A batch is cut at the first commit after this many changes.
    batch_changes: u64,
    seed: u64,
    only: Option<Phase>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Snapshot,
    Streaming,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            items: env_number("BENCH_ITEMS", DEFAULT_ITEMS),
            changes: env_number("BENCH_CHANGES", DEFAULT_CHANGES),
            batch_changes: env_number(
                "BENCH_BATCH_CHANGES",
                BatchLimits::default().max_changes as u64,
            ),
            seed: env_number("BENCH_SEED", DEFAULT_SEED),
            only: only_from_env(),
        }
    }

    fn streams(&self) -> bool {
        self.only != Some(Phase::Snapshot)
    }

    /// The snapshot is always taken (the stream needs its rows), but with
    /// `BENCH_ONLY=streaming` it is not reported.
    fn reports_snapshot(&self) -> bool {
        self.only != Some(Phase::Streaming)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
        Err(_) => default,
    }
}

fn only_from_env() -> Option<Phase> {
    match std::env::var("BENCH_ONLY").as_deref() {
        Err(_) | Ok("") => None,
        Ok("snapshot") => Some(Phase::Snapshot),
        Ok("streaming") => Some(Phase::Streaming),
        Ok(other) => panic!("BENCH_ONLY={other}: expected snapshot or streaming"),
    }
}

// ---------------------------------------------------------------------------
// The engine under test
// ---------------------------------------------------------------------------

struct Bench {
    engine: Engine,
    store: Arc<Store>,
    /// Every sink the plan's views write to, each once.
    sinks: Vec<String>,
    /// Removed (with the store) when the bench ends.
    _dir: tempfile::TempDir,
}

impl Bench {
    fn log_bytes(&self) -> u64 {
        self.store
            .log_bytes_written()
            .expect("reading the log's size")
    }

    fn open() -> Bench {
        let catalog = shop_catalog();
        let views_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("views");
        let views = load_views(&views_dir).unwrap_or_else(|errors| panic!("views/: {errors}"));
        let errors = check_against_catalog(&views, &catalog);
        assert!(
            errors.is_empty(),
            "the views do not fit the hand-made catalog:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let plan = Plan::build(&views, &catalog).expect("planning the example views");
        let mut sinks: Vec<String> = plan.views.iter().map(|view| view.sink.clone()).collect();
        sinks.sort();
        sinks.dedup();
        let dir = tempfile::tempdir().expect("creating the store's directory");
        let mut options = StoreOptions::default();
        if let Ok(mib) = std::env::var("BENCH_CHECKPOINT_MB") {
            let mib: u64 = mib.parse().expect("BENCH_CHECKPOINT_MB is a number of MiB");
            options.checkpoint_log_bytes = mib << 20;
        }
        let store = Store::open(dir.path(), &options).expect("opening the store");
        let store = Arc::new(store);
        Bench {
            engine: Engine::new(Arc::new(plan), Arc::clone(&store)),
            store,
            sinks,
            _dir: dir,
        }
    }

    fn plan(&self) -> &Plan {
        self.engine.plan()
    }

    /// Drops every outbox entry written so far, as sinks that had drained
    /// them would (the release is logged with the next commit).
    fn release_outboxes(&self) {
        for sink in &self.sinks {
            let last = self
                .store
                .last_outbox_sequence(sink)
                .expect("reading an outbox sequence");
            self.store
                .truncate_outbox(sink, last)
                .expect("truncating an outbox");
        }
    }
}

// ---------------------------------------------------------------------------
// The schema: schemas/shop.sql as a hand-made catalog
// ---------------------------------------------------------------------------

const INT8: u32 = 20;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const TIMESTAMPTZ: u32 = 1184;
const NOT_NULL: bool = true;
const NULLABLE: bool = false;

/// A table of the shop: its columns in table order, `id` (the primary key)
/// first.
struct TableSpec {
    name: &'static str,
    /// (name, type OID, NOT NULL)
    columns: &'static [(&'static str, u32, bool)],
}

const CATEGORIES: TableSpec = TableSpec {
    name: "public.categories",
    columns: &[("id", INT8, NOT_NULL), ("name", TEXT, NOT_NULL)],
};
const PRODUCTS: TableSpec = TableSpec {
    name: "public.products",
    columns: &[
        ("id", INT8, NOT_NULL),
        ("category_id", INT8, NULLABLE),
        ("name", TEXT, NOT_NULL),
        ("description", TEXT, NULLABLE),
        ("price_cents", INT8, NOT_NULL),
    ],
};
/// The position of `description` in [`PRODUCTS`].
const PRODUCT_DESCRIPTION: usize = 3;
const CUSTOMERS: TableSpec = TableSpec {
    name: "public.customers",
    columns: &[
        ("id", INT8, NOT_NULL),
        ("name", TEXT, NOT_NULL),
        ("email", TEXT, NOT_NULL),
    ],
};
const ORDERS: TableSpec = TableSpec {
    name: "public.orders",
    columns: &[
        ("id", INT8, NOT_NULL),
        ("customer_id", INT8, NULLABLE),
        ("status", TEXT, NOT_NULL),
        ("total_cents", INT8, NOT_NULL),
        ("created_at", TIMESTAMPTZ, NOT_NULL),
    ],
};
const ORDER_ITEMS: TableSpec = TableSpec {
    name: "public.order_items",
    columns: &[
        ("id", INT8, NOT_NULL),
        ("order_id", INT8, NOT_NULL),
        ("product_id", INT8, NULLABLE),
        ("sku", TEXT, NOT_NULL),
        ("quantity", INT4, NOT_NULL),
        ("unit_price_cents", INT8, NOT_NULL),
    ],
};
const SHOP_TABLES: [&TableSpec; 5] = [&CATEGORIES, &PRODUCTS, &CUSTOMERS, &ORDERS, &ORDER_ITEMS];

fn shop_catalog() -> Catalog {
    let mut catalog = Catalog::default();
    for spec in SHOP_TABLES {
        let columns = spec
            .columns
            .iter()
            .map(|&(name, type_oid, not_null)| ColumnInfo {
                name: name.to_owned(),
                type_oid,
                type_modifier: -1,
                not_null,
                is_enum: false,
                array_element: None,
                type_name: format!("type {type_oid}"),
            })
            .collect();
        let table = TableInfo {
            columns,
            primary_key: vec!["id".to_owned()],
            unique_keys: Vec::new(),
        };
        catalog.tables.insert(spec.name.to_owned(), table);
    }
    catalog
}

/// A table as pgoutput's relation message describes it: every tuple of the
/// table shares these column names, as the source's tuples do.
struct Relation {
    table: TableName,
    columns: Arc<[String]>,
    key: Arc<[String]>,
}

impl Relation {
    fn of(spec: &TableSpec) -> Relation {
        Relation {
            table: spec.name.into(),
            columns: spec.columns.iter().map(|c| c.0.to_owned()).collect(),
            key: Arc::from(["id".to_owned()]),
        }
    }

    fn insert(&self, cells: Vec<Cell>) -> Change {
        let new = self.tuple(cells);
        self.change(ChangeKind::Insert { new })
    }

    /// With the default replica identity an update whose key is unchanged
    /// carries no old row, and the new one has every column.
    fn update(&self, cells: Vec<Cell>) -> Change {
        let new = self.tuple(cells);
        self.change(ChangeKind::Update { old: None, new })
    }

    /// With the default replica identity a delete carries the key only.
    fn delete(&self, id: i64) -> Change {
        let old = Tuple {
            columns: Arc::clone(&self.key),
            cells: vec![Cell::Value(Value::Int(id))],
        };
        self.change(ChangeKind::Delete { old })
    }

    fn tuple(&self, cells: Vec<Cell>) -> Tuple {
        debug_assert_eq!(cells.len(), self.columns.len(), "{}", self.table);
        Tuple {
            columns: Arc::clone(&self.columns),
            cells,
        }
    }

    fn change(&self, kind: ChangeKind) -> Change {
        Change {
            table: Arc::clone(&self.table),
            kind,
        }
    }
}

// ---------------------------------------------------------------------------
// The synthetic shop
// ---------------------------------------------------------------------------

/// "Now" for the shop: snapshot orders were created in the 60 days before,
/// streamed ones after.
const NOW_MICROS: i64 = 1_792_663_720_044_264; // 2026-10-22T10:08:40.044264Z
const DAY_MICROS: i64 = 86_400 * 1_000_000;
/// Streamed transactions are this far apart in commit time.
const TRANSACTION_INTERVAL_MICROS: i64 = 10_000;
/// A text longer than this is stored out of line (TOAST): an update that
/// leaves it alone sends it as unchanged TOAST.
const TOAST_THRESHOLD: usize = 2_000;

struct Category {
    name: String,
}

struct Product {
    category_id: Option<i64>,
    name: String,
    description: String,
    price_cents: i64,
}

struct Customer {
    name: String,
    email: String,
}

struct Order {
    customer_id: Option<i64>,
    status: &'static str,
    total_cents: i64,
    created_at_micros: i64,
}

struct Item {
    order_id: i64,
    product_id: Option<i64>,
    sku: String,
    quantity: i64,
    unit_price_cents: i64,
}

/// A row type of the shop and where it lives.
trait ShopRow: Sized {
    const SPEC: &'static TableSpec;
    /// The row's values in the order of `SPEC.columns`.
    fn values(&self, id: i64) -> Vec<Value>;
    fn rows(shop: &Shop) -> &Rows<Self>;
    /// Positions of the columns held out of line (TOAST) in this row.
    fn toasted_columns(&self) -> &'static [usize] {
        &[]
    }
}

impl ShopRow for Category {
    const SPEC: &'static TableSpec = &CATEGORIES;
    fn values(&self, id: i64) -> Vec<Value> {
        vec![Value::Int(id), text(&self.name)]
    }
    fn rows(shop: &Shop) -> &Rows<Self> {
        &shop.categories
    }
}

impl ShopRow for Product {
    const SPEC: &'static TableSpec = &PRODUCTS;
    fn values(&self, id: i64) -> Vec<Value> {
        vec![
            Value::Int(id),
            optional_id(self.category_id),
            text(&self.name),
            text(&self.description),
            Value::Int(self.price_cents),
        ]
    }
    fn rows(shop: &Shop) -> &Rows<Self> {
        &shop.products
    }
    fn toasted_columns(&self) -> &'static [usize] {
        if self.description.len() > TOAST_THRESHOLD {
            &[PRODUCT_DESCRIPTION]
        } else {
            &[]
        }
    }
}

impl ShopRow for Customer {
    const SPEC: &'static TableSpec = &CUSTOMERS;
    fn values(&self, id: i64) -> Vec<Value> {
        vec![Value::Int(id), text(&self.name), text(&self.email)]
    }
    fn rows(shop: &Shop) -> &Rows<Self> {
        &shop.customers
    }
}

impl ShopRow for Order {
    const SPEC: &'static TableSpec = &ORDERS;
    fn values(&self, id: i64) -> Vec<Value> {
        vec![
            Value::Int(id),
            optional_id(self.customer_id),
            text(self.status),
            Value::Int(self.total_cents),
            Value::TimestampTz(timestamptz(self.created_at_micros)),
        ]
    }
    fn rows(shop: &Shop) -> &Rows<Self> {
        &shop.orders
    }
}

impl ShopRow for Item {
    const SPEC: &'static TableSpec = &ORDER_ITEMS;
    fn values(&self, id: i64) -> Vec<Value> {
        vec![
            Value::Int(id),
            Value::Int(self.order_id),
            optional_id(self.product_id),
            text(&self.sku),
            Value::Int(self.quantity),
            Value::Int(self.unit_price_cents),
        ]
    }
    fn rows(shop: &Shop) -> &Rows<Self> {
        &shop.items
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn optional_id(id: Option<i64>) -> Value {
    id.map_or(Value::Null, Value::Int)
}

/// `timestamptz` in its canonical form: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn timestamptz(micros: i64) -> String {
    let (year, month, day) = civil_from_days(micros.div_euclid(DAY_MICROS));
    let in_day = micros.rem_euclid(DAY_MICROS);
    let (seconds, fraction) = (in_day / 1_000_000, in_day % 1_000_000);
    let (hour, minute, second) = (seconds / 3_600, seconds / 60 % 60, seconds % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{fraction:06}Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The rows of one table by id (from 1, never reused), with the live ids in
/// a vector for uniform random picks. No hashing: the same seed gives the
/// same shop and the same changes.
struct Rows<R> {
    slots: Vec<Option<R>>,
    live: Vec<i64>,
    /// Position in `live` of each id's row, by id - 1.
    live_position: Vec<usize>,
}

impl<R> Default for Rows<R> {
    fn default() -> Self {
        Rows {
            slots: Vec::new(),
            live: Vec::new(),
            live_position: Vec::new(),
        }
    }
}

impl<R> Rows<R> {
    fn len(&self) -> usize {
        self.live.len()
    }

    fn insert(&mut self, row: R) -> i64 {
        self.slots.push(Some(row));
        let id = self.slots.len() as i64;
        self.live_position.push(self.live.len());
        self.live.push(id);
        id
    }

    fn get(&self, id: i64) -> &R {
        self.slots[slot(id)].as_ref().expect("a live row")
    }

    fn get_mut(&mut self, id: i64) -> &mut R {
        self.slots[slot(id)].as_mut().expect("a live row")
    }

    fn remove(&mut self, id: i64) -> R {
        let row = self.slots[slot(id)].take().expect("a live row");
        let position = self.live_position[slot(id)];
        self.live.swap_remove(position);
        if let Some(&moved) = self.live.get(position) {
            self.live_position[slot(moved)] = position;
        }
        row
    }

    fn pick(&self, rng: &mut StdRng) -> Option<i64> {
        self.live.choose(rng).copied()
    }

    /// Live rows in id order.
    fn iter(&self) -> impl Iterator<Item = (i64, &R)> {
        (1..)
            .zip(&self.slots)
            .filter_map(|(id, row)| Some((id, row.as_ref()?)))
    }
}

fn slot(id: i64) -> usize {
    usize::try_from(id - 1).expect("ids start at 1")
}

/// Child ids by parent id: what cascades and `SET NULL` reach.
#[derive(Default)]
struct Children {
    by_parent: Vec<Vec<i64>>,
}

impl Children {
    fn of(&self, parent: i64) -> &[i64] {
        self.by_parent.get(slot(parent)).map_or(&[], Vec::as_slice)
    }

    fn add(&mut self, parent: i64, child: i64) {
        if self.by_parent.len() <= slot(parent) {
            self.by_parent.resize_with(slot(parent) + 1, Vec::new);
        }
        self.by_parent[slot(parent)].push(child);
    }

    fn remove(&mut self, parent: i64, child: i64) {
        let children = &mut self.by_parent[slot(parent)];
        let position = children.iter().position(|&c| c == child);
        children.swap_remove(position.expect("a linked child"));
    }

    fn take(&mut self, parent: i64) -> Vec<i64> {
        self.by_parent
            .get_mut(slot(parent))
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Shop {
    categories: Rows<Category>,
    products: Rows<Product>,
    customers: Rows<Customer>,
    orders: Rows<Order>,
    items: Rows<Item>,
    items_by_order: Children,
    items_by_product: Children,
    orders_by_customer: Children,
    /// Products with a description held out of line.
    large_products: Vec<i64>,
}

impl Shop {
    /// A shop at `scale`, like the workload's bulk load: every order has
    /// 1..=`max_items_per_order` items of random products at their price.
    #[inline(never)] // a frame of its own in profiles
    fn generate(scale: &Scale, rng: &mut StdRng) -> Shop {
        let mut shop = Shop::default();
        for n in 1..=scale.categories {
            shop.categories.insert(Category {
                name: format!("Category {n}"),
            });
        }
        for n in 1..=scale.products {
            shop.add_product(snapshot_product(n, scale.categories, rng));
        }
        for n in 1..=scale.customers {
            shop.customers.insert(Customer {
                name: format!("Customer {n}"),
                email: format!("customer{n}@example.com"),
            });
        }
        for _ in 0..scale.orders {
            shop.add_snapshot_order(scale, rng);
        }
        shop
    }

    fn add_snapshot_order(&mut self, scale: &Scale, rng: &mut StdRng) {
        let order = self.add_order(Order {
            customer_id: Some(rng.random_range(1..=scale.customers as i64)),
            status: pick(rng, SNAPSHOT_STATUSES),
            total_cents: 0,
            created_at_micros: NOW_MICROS - rng.random_range(0..60 * DAY_MICROS),
        });
        for _ in 0..rng.random_range(1..=scale.max_items_per_order) {
            let product_id = rng.random_range(1..=scale.products as i64);
            self.add_item(Item {
                order_id: order,
                product_id: Some(product_id),
                sku: format!("SKU-{product_id}"),
                quantity: rng.random_range(1..=5),
                unit_price_cents: self.products.get(product_id).price_cents,
            });
        }
        self.orders.get_mut(order).total_cents = self.order_total(order);
    }

    fn add_product(&mut self, product: Product) -> i64 {
        let large = !product.toasted_columns().is_empty();
        let id = self.products.insert(product);
        if large {
            self.large_products.push(id);
        }
        id
    }

    fn add_order(&mut self, order: Order) -> i64 {
        let customer = order.customer_id;
        let id = self.orders.insert(order);
        if let Some(customer) = customer {
            self.orders_by_customer.add(customer, id);
        }
        id
    }

    fn add_item(&mut self, item: Item) -> i64 {
        let (order, product) = (item.order_id, item.product_id);
        let id = self.items.insert(item);
        self.items_by_order.add(order, id);
        if let Some(product) = product {
            self.items_by_product.add(product, id);
        }
        id
    }

    fn remove_item(&mut self, id: i64) {
        let item = self.items.remove(id);
        self.items_by_order.remove(item.order_id, id);
        if let Some(product) = item.product_id {
            self.items_by_product.remove(product, id);
        }
    }

    /// Removes the order and, as `ON DELETE CASCADE` does, its items,
    /// which it returns.
    fn remove_order(&mut self, id: i64) -> Vec<i64> {
        let items = self.items_by_order.of(id).to_vec();
        for &item in &items {
            self.remove_item(item);
        }
        let order = self.orders.remove(id);
        if let Some(customer) = order.customer_id {
            self.orders_by_customer.remove(customer, id);
        }
        items
    }

    /// Removes the customer and, as `ON DELETE SET NULL` does, unlinks its
    /// orders, which it returns.
    fn remove_customer(&mut self, id: i64) -> Vec<i64> {
        self.customers.remove(id);
        let orders = self.orders_by_customer.take(id);
        for &order in &orders {
            self.orders.get_mut(order).customer_id = None;
        }
        orders
    }

    /// Removes the product and unlinks its items, which it returns.
    fn remove_product(&mut self, id: i64) -> Vec<i64> {
        self.products.remove(id);
        self.large_products.retain(|&large| large != id);
        let items = self.items_by_product.take(id);
        for &item in &items {
            self.items.get_mut(item).product_id = None;
        }
        items
    }

    fn set_item_order(&mut self, id: i64, order: i64) {
        let item = self.items.get_mut(id);
        let old = std::mem::replace(&mut item.order_id, order);
        self.items_by_order.remove(old, id);
        self.items_by_order.add(order, id);
    }

    fn set_item_product(&mut self, id: i64, product: i64) {
        let item = self.items.get_mut(id);
        if let Some(old) = item.product_id.replace(product) {
            self.items_by_product.remove(old, id);
        }
        self.items_by_product.add(product, id);
    }

    fn set_order_customer(&mut self, id: i64, customer: Option<i64>) {
        let order = self.orders.get_mut(id);
        if let Some(old) = std::mem::replace(&mut order.customer_id, customer) {
            self.orders_by_customer.remove(old, id);
        }
        if let Some(customer) = customer {
            self.orders_by_customer.add(customer, id);
        }
    }

    /// `sum(quantity * unit_price_cents)` of the order's items.
    fn order_total(&self, order: i64) -> i64 {
        let item_total = |&id: &i64| {
            let item = self.items.get(id);
            item.quantity * item.unit_price_cents
        };
        self.items_by_order.of(order).iter().map(item_total).sum()
    }
}

fn snapshot_product(n: u64, categories: u64, rng: &mut StdRng) -> Product {
    let description = if rng.random_bool(0.02) {
        words(rng, 10_000..20_000)
    } else {
        words(rng, 100..300)
    };
    Product {
        category_id: Some(rng.random_range(1..=categories as i64)),
        name: format!("Product {n}"),
        description,
        price_cents: price(rng),
    }
}

// ---------------------------------------------------------------------------
// Random values, like the workload's (src/workload/values.rs, private there)
// ---------------------------------------------------------------------------

/// The status mix of the workload's bulk load.
const SNAPSHOT_STATUSES: &[&str] = &[
    "draft",
    "pending",
    "pending",
    "paid",
    "paid",
    "paid",
    "paid",
    "cancelled",
];

fn pick(rng: &mut StdRng, choices: &[&'static str]) -> &'static str {
    choices
        .choose(rng)
        .copied()
        .expect("a constant, non-empty list")
}

/// A status an order can be created with, other than draft.
fn live_status(rng: &mut StdRng) -> &'static str {
    pick(rng, &["pending", "paid", "paid", "cancelled"])
}

/// The order life cycle: draft → pending → paid, and cancelling or reopening.
fn next_status(current: &str, rng: &mut StdRng) -> &'static str {
    let choices: &[&'static str] = match current {
        "draft" => &["pending", "pending", "cancelled"],
        "pending" => &["paid", "paid", "draft", "cancelled"],
        "paid" => &["pending", "cancelled"],
        _ => &["pending", "draft"],
    };
    pick(rng, choices)
}

fn price(rng: &mut StdRng) -> i64 {
    rng.random_range(100..100_000)
}

fn person_name(rng: &mut StdRng) -> String {
    format!("{} {}", pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES))
}

fn email_for(rng: &mut StdRng, name: &str) -> String {
    let user = name.to_lowercase().replace(' ', ".");
    format!("{user}{}@example.com", rng.random_range(1..10_000))
}

fn product_name(rng: &mut StdRng) -> String {
    let (adjective, noun) = (pick(rng, WORDS), pick(rng, WORDS));
    format!("{adjective} {noun} {}", rng.random_range(1..1_000))
}

/// Random words up to a length drawn from `length`.
fn words(rng: &mut StdRng, length: std::ops::Range<usize>) -> String {
    let target = rng.random_range(length);
    let mut text = String::with_capacity(target + 16);
    while text.len() < target {
        text.push_str(pick(rng, WORDS));
        text.push(' ');
    }
    text
}

const WORDS: &[&str] = &[
    "amber", "brisk", "cedar", "dune", "ember", "fjord", "granite", "harbor", "indigo", "juniper",
    "kestrel", "lumen", "maple", "nimbus", "onyx", "pepper", "quartz", "raven", "saffron",
    "tundra", "umber", "velvet", "willow", "xenon", "yarrow", "zephyr", "lamp", "kettle", "chair",
    "blanket", "mug", "lantern", "satchel", "scarf", "teapot", "clock",
];
const FIRST_NAMES: &[&str] = &[
    "Ada", "Bo", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kemal",
    "Lena", "Mateo", "Nadia", "Olu", "Priya",
];
const LAST_NAMES: &[&str] = &[
    "Almeida", "Berg", "Costa", "Dubois", "Eze", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov",
];

// ---------------------------------------------------------------------------
// Streamed transactions, as pgoutput delivers them
// ---------------------------------------------------------------------------

/// Whether an update rewrote the row's out-of-line columns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Toast {
    /// They are sent as unchanged TOAST.
    Unchanged,
    /// They are sent in full.
    Rewritten,
}

/// Draws transactions from the workload's default mix, applies them to the
/// shop and records their changes.
struct Transactions<'a> {
    shop: &'a mut Shop,
    rng: &'a mut StdRng,
    relations: Vec<Relation>,
    ops: Vec<Op>,
    draw: WeightedIndex<u32>,
    clock_micros: i64,
    /// The changes of the transaction being generated.
    changes: Vec<Change>,
}

impl<'a> Transactions<'a> {
    fn new(shop: &'a mut Shop, rng: &'a mut StdRng) -> Transactions<'a> {
        let mix = Mix::default();
        let draw = WeightedIndex::new(mix.weights.iter().map(|(_, weight)| *weight))
            .expect("the default mix has weights");
        Transactions {
            shop,
            rng,
            relations: SHOP_TABLES.iter().map(|spec| Relation::of(spec)).collect(),
            ops: mix.weights.iter().map(|(op, _)| *op).collect(),
            draw,
            clock_micros: NOW_MICROS,
            changes: Vec::new(),
        }
    }

    /// The changes of the next transaction that found something to change.
    fn next_transaction(&mut self) -> Vec<Change> {
        loop {
            self.clock_micros += TRANSACTION_INTERVAL_MICROS;
            let op = self.ops[self.draw.sample(self.rng)];
            let done = self.run(op);
            if done.is_some() && !self.changes.is_empty() {
                return std::mem::take(&mut self.changes);
            }
            assert!(self.changes.is_empty(), "{op:?} changed rows, then gave up");
        }
    }

    /// `None` when the op found no row to act on (it changed nothing).
    fn run(&mut self, op: Op) -> Option<()> {
        match op {
            Op::NewOrder => self.new_order().map(drop),
            Op::AddItem => self.add_item(),
            Op::NewCustomer => self.new_customer(),
            Op::NewProduct => self.new_product(),
            Op::RenameCustomer => self.rename_customer(),
            Op::ChangeCustomerEmail => self.change_customer_email(),
            Op::RenameProduct => self.rename_product(),
            Op::ChangeProductPrice => self.change_product_price(),
            Op::ChangeProductCategory => self.change_product_category(),
            Op::RenameCategory => self.rename_category(),
            Op::ChangeItemQuantity => self.change_item_quantity(),
            Op::MoveItem => self.move_item(),
            Op::DeleteItem => self.delete_item(),
            Op::ChangeItemProduct => self.change_item_product(),
            Op::ChangeOrderStatus => self.change_order_status(),
            Op::ChangeOrderTotal => self.change_order_total(),
            Op::ReassignOrderCustomer => self.reassign_order_customer(),
            Op::DeleteOrder => self.delete_order(),
            Op::DeleteCustomer => self.delete_customer(),
            Op::DeleteProduct => self.delete_product(),
            Op::MultiTable => self.multi_table(),
            Op::LargeDescription => self.large_description(),
            Op::TouchLargeProduct => self.touch_large_product(),
            // Not in the default mix (a run truncates at most once, on
            // request); it would empty the largest table.
            Op::TruncateItems => None,
        }
    }

    // --- recording changes ---------------------------------------------------

    fn relation<R: ShopRow>(&self) -> &Relation {
        let name = R::SPEC.name;
        self.relations
            .iter()
            .find(|relation| &*relation.table == name)
            .expect("a relation per shop table")
    }

    fn inserted<R: ShopRow>(&mut self, id: i64) {
        let cells = full_cells(R::rows(self.shop).get(id), id);
        let change = self.relation::<R>().insert(cells);
        self.changes.push(change);
    }

    fn updated<R: ShopRow>(&mut self, id: i64) {
        self.updated_with::<R>(id, Toast::Unchanged);
    }

    fn updated_with<R: ShopRow>(&mut self, id: i64, toast: Toast) {
        let row = R::rows(self.shop).get(id);
        let mut cells = full_cells(row, id);
        if toast == Toast::Unchanged {
            for &column in row.toasted_columns() {
                cells[column] = Cell::UnchangedToast;
            }
        }
        let change = self.relation::<R>().update(cells);
        self.changes.push(change);
    }

    fn deleted<R: ShopRow>(&mut self, id: i64) {
        let change = self.relation::<R>().delete(id);
        self.changes.push(change);
    }

    // --- inserts -------------------------------------------------------------

    /// An order with 1..=5 items and its total; one in five is a draft.
    fn new_order(&mut self) -> Option<i64> {
        let status = if self.rng.random_bool(0.2) {
            "draft"
        } else {
            live_status(self.rng)
        };
        let order = self.shop.add_order(Order {
            customer_id: self.shop.customers.pick(self.rng),
            status,
            total_cents: 0,
            created_at_micros: self.clock_micros,
        });
        self.inserted::<Order>(order);
        for _ in 0..self.rng.random_range(1..=5) {
            self.insert_item(order);
        }
        self.update_total(order);
        Some(order)
    }

    fn add_item(&mut self) -> Option<()> {
        let order = self.shop.orders.pick(self.rng)?;
        self.insert_item(order);
        self.update_total(order);
        Some(())
    }

    /// An item of a random product at its price, or a custom line when no
    /// product is left.
    fn insert_item(&mut self, order: i64) {
        let product = self.shop.products.pick(self.rng);
        let item = Item {
            order_id: order,
            product_id: product,
            sku: product.map_or_else(|| "SKU-CUSTOM".to_owned(), |id| format!("SKU-{id}")),
            quantity: self.rng.random_range(1..=9),
            unit_price_cents: match product {
                Some(product) => self.shop.products.get(product).price_cents,
                None => price(self.rng),
            },
        };
        let id = self.shop.add_item(item);
        self.inserted::<Item>(id);
    }

    fn update_total(&mut self, order: i64) {
        self.shop.orders.get_mut(order).total_cents = self.shop.order_total(order);
        self.updated::<Order>(order);
    }

    fn new_customer(&mut self) -> Option<()> {
        let name = person_name(self.rng);
        let email = email_for(self.rng, &name);
        let id = self.shop.customers.insert(Customer { name, email });
        self.inserted::<Customer>(id);
        Some(())
    }

    fn new_product(&mut self) -> Option<()> {
        let name = product_name(self.rng);
        let product = Product {
            category_id: self.shop.categories.pick(self.rng),
            description: format!("A short description of {name}"),
            name,
            price_cents: price(self.rng),
        };
        let id = self.shop.add_product(product);
        self.inserted::<Product>(id);
        Some(())
    }

    // --- updates of single columns ---------------------------------------------

    fn rename_customer(&mut self) -> Option<()> {
        let id = self.shop.customers.pick(self.rng)?;
        self.shop.customers.get_mut(id).name = person_name(self.rng);
        self.updated::<Customer>(id);
        Some(())
    }

    fn change_customer_email(&mut self) -> Option<()> {
        let id = self.shop.customers.pick(self.rng)?;
        let name = person_name(self.rng);
        self.shop.customers.get_mut(id).email = email_for(self.rng, &name);
        self.updated::<Customer>(id);
        Some(())
    }

    fn rename_product(&mut self) -> Option<()> {
        let id = self.shop.products.pick(self.rng)?;
        self.shop.products.get_mut(id).name = product_name(self.rng);
        self.updated::<Product>(id);
        Some(())
    }

    fn change_product_price(&mut self) -> Option<()> {
        let id = self.shop.products.pick(self.rng)?;
        self.shop.products.get_mut(id).price_cents = price(self.rng);
        self.updated::<Product>(id);
        Some(())
    }

    /// Sometimes to no category.
    fn change_product_category(&mut self) -> Option<()> {
        let id = self.shop.products.pick(self.rng)?;
        let category = match self.rng.random_bool(0.1) {
            true => None,
            false => self.shop.categories.pick(self.rng),
        };
        self.shop.products.get_mut(id).category_id = category;
        self.updated::<Product>(id);
        Some(())
    }

    fn rename_category(&mut self) -> Option<()> {
        let id = self.shop.categories.pick(self.rng)?;
        let name = format!("Category {}", pick(self.rng, WORDS).to_uppercase());
        self.shop.categories.get_mut(id).name = name;
        self.updated::<Category>(id);
        Some(())
    }

    fn change_item_quantity(&mut self) -> Option<()> {
        let id = self.shop.items.pick(self.rng)?;
        self.shop.items.get_mut(id).quantity = self.rng.random_range(1..=9);
        self.updated::<Item>(id);
        Some(())
    }

    /// The item leaves one order's document and enters another's.
    fn move_item(&mut self) -> Option<()> {
        let id = self.shop.items.pick(self.rng)?;
        let order = self.shop.orders.pick(self.rng)?;
        self.shop.set_item_order(id, order);
        self.updated::<Item>(id);
        Some(())
    }

    fn change_item_product(&mut self) -> Option<()> {
        let id = self.shop.items.pick(self.rng)?;
        let product = self.shop.products.pick(self.rng)?;
        self.shop.set_item_product(id, product);
        let price_cents = self.shop.products.get(product).price_cents;
        let item = self.shop.items.get_mut(id);
        item.sku = format!("SKU-{product}");
        item.unit_price_cents = price_cents;
        self.updated::<Item>(id);
        Some(())
    }

    /// In and out of `order_cache`'s `status <> 'draft'` and
    /// `category_daily_sales`' `status = 'paid'`.
    fn change_order_status(&mut self) -> Option<()> {
        let id = self.shop.orders.pick(self.rng)?;
        self.change_status_of(id);
        Some(())
    }

    fn change_status_of(&mut self, id: i64) {
        let next = next_status(self.shop.orders.get(id).status, self.rng);
        self.shop.orders.get_mut(id).status = next;
        self.updated::<Order>(id);
    }

    fn change_order_total(&mut self) -> Option<()> {
        let id = self.shop.orders.pick(self.rng)?;
        let total = price(self.rng) * self.rng.random_range(1..=20);
        self.shop.orders.get_mut(id).total_cents = total;
        self.updated::<Order>(id);
        Some(())
    }

    fn reassign_order_customer(&mut self) -> Option<()> {
        let id = self.shop.orders.pick(self.rng)?;
        let customer = self.shop.customers.pick(self.rng);
        self.shop.set_order_customer(id, customer);
        self.updated::<Order>(id);
        Some(())
    }

    // --- deletes, with what the foreign keys do --------------------------------

    fn delete_item(&mut self) -> Option<()> {
        let id = self.shop.items.pick(self.rng)?;
        self.shop.remove_item(id);
        self.deleted::<Item>(id);
        Some(())
    }

    fn delete_order(&mut self) -> Option<()> {
        let id = self.shop.orders.pick(self.rng)?;
        self.delete_order_and_items(id);
        Some(())
    }

    /// The order, then its items as `ON DELETE CASCADE` deletes them.
    fn delete_order_and_items(&mut self, id: i64) {
        let items = self.shop.remove_order(id);
        self.deleted::<Order>(id);
        for item in items {
            self.deleted::<Item>(item);
        }
    }

    /// The customer, then its orders as `ON DELETE SET NULL` updates them.
    fn delete_customer(&mut self) -> Option<()> {
        let id = self.shop.customers.pick(self.rng)?;
        let orders = self.shop.remove_customer(id);
        self.deleted::<Customer>(id);
        for order in orders {
            self.updated::<Order>(order);
        }
        Some(())
    }

    /// The product, then its items as `ON DELETE SET NULL` updates them.
    fn delete_product(&mut self) -> Option<()> {
        let id = self.shop.products.pick(self.rng)?;
        let items = self.shop.remove_product(id);
        self.deleted::<Product>(id);
        for item in items {
            self.updated::<Item>(item);
        }
        Some(())
    }

    // --- several tables, TOAST -------------------------------------------------

    /// Several tables in one transaction, and sometimes the order it
    /// inserted deleted again before commit.
    fn multi_table(&mut self) -> Option<()> {
        self.rename_customer();
        let order = self.new_order()?;
        self.change_status_of(order);
        self.change_product_price();
        self.change_item_quantity();
        if self.rng.random_bool(0.3) {
            self.delete_order_and_items(order);
        }
        Some(())
    }

    /// A 10–20 KB description, sent in full by the update that writes it.
    fn large_description(&mut self) -> Option<()> {
        let id = self.shop.products.pick(self.rng)?;
        self.shop.products.get_mut(id).description = words(self.rng, 10_000..20_000);
        if !self.shop.large_products.contains(&id) {
            self.shop.large_products.push(id);
        }
        self.updated_with::<Product>(id, Toast::Rewritten);
        Some(())
    }

    /// The name, the price or both of a product with a large description,
    /// which arrives as unchanged TOAST.
    fn touch_large_product(&mut self) -> Option<()> {
        let id = *self.shop.large_products.choose(self.rng)?;
        let (name, price_cents) = (product_name(self.rng), price(self.rng));
        let product = self.shop.products.get_mut(id);
        match self.rng.random_range(0..3) {
            0 => product.name = name,
            1 => product.price_cents = price_cents,
            _ => (product.name, product.price_cents) = (name, price_cents),
        }
        self.updated::<Product>(id);
        Some(())
    }
}

fn full_cells<R: ShopRow>(row: &R, id: i64) -> Vec<Cell> {
    row.values(id).into_iter().map(Cell::Value).collect()
}

/// At least `settings.changes` changes of whole transactions, in batches
/// cut as the source cuts them (by default at the first commit after
/// 20,000 changes, as in a catch-up; far smaller at a steady low rate),
/// each with a later position than the one before.
#[inline(never)] // a frame of its own in profiles
fn generate_batches(shop: &mut Shop, rng: &mut StdRng, settings: &Settings) -> Vec<ChangeBatch> {
    let (changes, batch_changes) = (settings.changes, settings.batch_changes as usize);
    let mut transactions = Transactions::new(shop, rng);
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut generated = 0;
    while generated < changes {
        let transaction = transactions.next_transaction();
        generated += transaction.len() as u64;
        batch.extend(transaction);
        if batch.len() >= batch_changes || generated >= changes {
            batches.push(ChangeBatch {
                changes: std::mem::take(&mut batch),
                commit_end: Some(Lsn(SNAPSHOT_POSITION.0 + 1 + batches.len() as u64)),
                commit_time_micros: transactions.clock_micros,
            });
        }
    }
    batches
}

// ---------------------------------------------------------------------------
// The timed phases
// ---------------------------------------------------------------------------

/// Wall-clock and CPU time spent in the timed calls.
#[derive(Default, Clone, Copy)]
struct Spent {
    wall: Duration,
    cpu: Duration,
}

impl Spent {
    fn measure<T>(&mut self, work: impl FnOnce() -> T) -> T {
        let (wall, cpu) = (Instant::now(), process_cpu_time());
        let result = work();
        self.cpu += process_cpu_time().saturating_sub(cpu);
        self.wall += wall.elapsed();
        result
    }
}

/// CPU time of the process, every thread's: the engine's work is spread
/// over its own thread, its helper and the store's checkpoints.
fn process_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is handed.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

struct SnapshotRun {
    rows: usize,
    load: Spent,
    finish: Spent,
    outcome: BatchOutcome,
    /// Written to the state store's log by the snapshot.
    log_bytes: u64,
}

#[inline(never)] // a frame of its own in profiles
fn take_snapshot(bench: &Bench, shop: &Shop) -> SnapshotRun {
    let mut load = Spent::default();
    let log_before = bench.log_bytes();
    bench
        .engine
        .begin_snapshot("")
        .expect("beginning the snapshot");
    let rows = load_table::<Category>(bench, shop, &mut load)
        + load_table::<Product>(bench, shop, &mut load)
        + load_table::<Customer>(bench, shop, &mut load)
        + load_table::<Order>(bench, shop, &mut load)
        + load_table::<Item>(bench, shop, &mut load);
    let mut finish = Spent::default();
    let outcome = finish
        .measure(|| bench.engine.finish_snapshot(SNAPSHOT_POSITION))
        .expect("finishing the snapshot");
    bench.release_outboxes();
    SnapshotRun {
        rows,
        load,
        finish,
        outcome,
        log_bytes: bench.log_bytes() - log_before,
    }
}

/// Loads every row of one table in chunks; only the engine's calls are
/// timed. Returns how many rows.
fn load_table<R: ShopRow>(bench: &Bench, shop: &Shop, spent: &mut Spent) -> usize {
    let table = bench
        .plan()
        .table(R::SPEC.name)
        .unwrap_or_else(|| panic!("the views read {}", R::SPEC.name));
    let projection = stored_projection(table, R::SPEC);
    let mut chunk = Vec::with_capacity(SNAPSHOT_CHUNK);
    let mut load = |chunk: &mut Vec<Vec<Value>>| {
        spent
            .measure(|| bench.engine.load_snapshot_rows(&table.name, chunk))
            .expect("loading snapshot rows");
        chunk.clear();
    };
    for (id, row) in R::rows(shop).iter() {
        chunk.push(project(row.values(id), &projection));
        if chunk.len() == SNAPSHOT_CHUNK {
            load(&mut chunk);
        }
    }
    if !chunk.is_empty() {
        load(&mut chunk);
    }
    R::rows(shop).len()
}

/// For each stored column of `table` (the plan's order: key first), its
/// position among the columns of `spec`.
fn stored_projection(table: &TablePlan, spec: &TableSpec) -> Vec<usize> {
    let position = |stored: &String| {
        spec.columns
            .iter()
            .position(|column| column.0 == stored)
            .unwrap_or_else(|| panic!("{} has no column {stored}", spec.name))
    };
    table.columns.iter().map(position).collect()
}

fn project(mut values: Vec<Value>, projection: &[usize]) -> Vec<Value> {
    projection
        .iter()
        .map(|&column| std::mem::replace(&mut values[column], Value::Null))
        .collect()
}

struct StreamRun {
    batches: usize,
    spent: Spent,
    outcome: BatchOutcome,
    /// Written to the state store's log while streaming.
    log_bytes: u64,
}

#[inline(never)] // a frame of its own in profiles
fn stream(bench: &Bench, batches: &[ChangeBatch]) -> StreamRun {
    let mut spent = Spent::default();
    let mut total = BatchOutcome::default();
    let log_before = bench.log_bytes();
    for batch in batches {
        let outcome = spent
            .measure(|| bench.engine.apply(batch))
            .expect("applying a batch");
        add_outcome(&mut total, &outcome);
        bench.release_outboxes();
    }
    let generated: usize = batches.iter().map(|batch| batch.changes.len()).sum();
    assert_eq!(
        total.changes_applied, generated,
        "the engine skipped changes (a batch at or before the stored position?)"
    );
    StreamRun {
        batches: batches.len(),
        spent,
        outcome: total,
        log_bytes: bench.log_bytes() - log_before,
    }
}

fn add_outcome(total: &mut BatchOutcome, outcome: &BatchOutcome) {
    total.changes_applied += outcome.changes_applied;
    total.roots_refreshed += outcome.roots_refreshed;
    total.outbox_entries += outcome.outbox_entries;
    let (sum, add) = (&mut total.timings, &outcome.timings);
    *sum = BatchTimings {
        rows: sum.rows + add.rows,
        refresh: sum.refresh + add.refresh,
        commit: sum.commit + add.commit,
        deferred: sum.deferred + add.deferred,
    };
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn print_table_header() {
    println!(
        "{:<16} {:>10} {:<8} {:>8} {:>8} {:>14}",
        "phase", "count", "unit", "wall s", "cpu s", "rate /s"
    );
}

fn print_row(phase: &str, count: usize, unit: &str, spent: &Spent) {
    let rate = count as f64 / spent.wall.as_secs_f64();
    println!(
        "{:<16} {:>10} {:<8} {:>8.3} {:>8.3} {:>14}",
        phase,
        grouped(count),
        unit,
        spent.wall.as_secs_f64(),
        spent.cpu.as_secs_f64(),
        grouped(rate.round() as usize)
    );
}

fn print_snapshot(run: &SnapshotRun) {
    print_row("snapshot load", run.rows, "rows", &run.load);
    print_row(
        "snapshot finish",
        run.outcome.roots_refreshed,
        "roots",
        &run.finish,
    );
}

fn print_streaming(run: &StreamRun) {
    let outcome = &run.outcome;
    print_row(
        "streaming apply",
        outcome.changes_applied,
        "changes",
        &run.spent,
    );
    let per_change = |n: usize| n as f64 / outcome.changes_applied as f64;
    let cpu_per_change = run.spent.cpu.as_secs_f64() * 1e6 / outcome.changes_applied as f64;
    let cpu_per_root = run.spent.cpu.as_secs_f64() * 1e6 / outcome.roots_refreshed as f64;
    println!(
        "streaming: {} batches; {} roots refreshed ({:.2} per change), {} outbox entries ({:.2} per change); \
         cpu {cpu_per_change:.1} µs per change, {cpu_per_root:.1} µs per root; \
         state log {:.0} bytes per change",
        run.batches,
        grouped(outcome.roots_refreshed),
        per_change(outcome.roots_refreshed),
        grouped(outcome.outbox_entries),
        per_change(outcome.outbox_entries),
        per_change(run.log_bytes as usize),
    );
    let timings = &outcome.timings;
    println!(
        "streaming wall time: rows and roots {:.3} s, refresh {:.3} s, commit {:.3} s, deferred {:.3} s",
        timings.rows.as_secs_f64(),
        timings.refresh.as_secs_f64(),
        timings.commit.as_secs_f64(),
        timings.deferred.as_secs_f64()
    );
}

/// `1234567` as `1,234,567`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

// ---------------------------------------------------------------------------
// Check: the store holds what the generated shop says it should
// ---------------------------------------------------------------------------

/// Panics unless the stored rows and outputs match the shop; returns a
/// summary of what was compared.
#[inline(never)] // a frame of its own in profiles
fn check(bench: &Bench, shop: &Shop) -> String {
    check_row_count::<Category>(bench, shop);
    check_row_count::<Product>(bench, shop);
    check_row_count::<Customer>(bench, shop);
    check_row_count::<Order>(bench, shop);
    check_row_count::<Item>(bench, shop);

    let live_orders = shop
        .orders
        .iter()
        .filter(|(_, order)| order.status != "draft")
        .count();
    check_equal(ORDER_CACHE, output_count(bench, ORDER_CACHE), live_orders);
    let products = shop.products.len();
    check_equal(PRODUCT_CACHE, output_count(bench, PRODUCT_CACHE), products);

    let paid_items = shop
        .items
        .iter()
        .filter(|(_, item)| shop.orders.get(item.order_id).status == "paid")
        .count();
    let counted = items_counted_by_category_daily_sales(bench);
    check_equal(CATEGORY_DAILY_SALES, counted, paid_items);

    format!(
        "row counts of 5 tables; {} {ORDER_CACHE} outputs = non-draft orders; \
         {} {PRODUCT_CACHE} outputs = products; {} items in {CATEGORY_DAILY_SALES} = items of paid orders",
        grouped(live_orders),
        grouped(products),
        grouped(paid_items)
    )
}

fn check_equal(what: &str, stored: usize, expected: usize) {
    assert_eq!(
        stored, expected,
        "{what}: the store holds {stored}, the generated shop says {expected}"
    );
}

fn check_row_count<R: ShopRow>(bench: &Bench, shop: &Shop) {
    let stored = bench
        .store
        .table_row_count(R::SPEC.name)
        .expect("counting stored rows");
    let stored = usize::try_from(stored).expect("a row count fits usize");
    check_equal(R::SPEC.name, stored, R::rows(shop).len());
}

fn output_count(bench: &Bench, view: &str) -> usize {
    let reader = bench.store.reader().expect("reading the store");
    let mut count = 0;
    reader
        .for_each_output_root(view, |_, _| {
            count += 1;
            Ok::<_, StoreError>(())
        })
        .expect("reading outputs");
    count
}

/// The sum of the `items` measure (`count()`) over every group.
fn items_counted_by_category_daily_sales(bench: &Bench) -> usize {
    let view = bench
        .plan()
        .views
        .iter()
        .find(|view| view.name == CATEGORY_DAILY_SALES)
        .expect("the example views include category_daily_sales");
    let OutputPlan::Aggregate(aggregate) = &view.output else {
        panic!("{CATEGORY_DAILY_SALES} is not an aggregate view");
    };
    let items_column = aggregate.group.len()
        + aggregate
            .measures
            .iter()
            .position(|measure| measure.name == "items")
            .expect("category_daily_sales measures items");
    let mut items = 0;
    let read = bench.store.group_rows_snapshot(
        &view.name,
        &view.definition_hash,
        &view.sink,
        10_000,
        |_| {},
        |rows| {
            for (_, row) in rows {
                match row[items_column] {
                    Value::Int(count) => items += usize::try_from(count).expect("a count"),
                    ref other => panic!("{CATEGORY_DAILY_SALES}.items is {other:?}"),
                }
            }
            Ok(())
        },
    );
    read.expect("reading groups")
        .expect("the groups are built for the view's definition");
    items
}
