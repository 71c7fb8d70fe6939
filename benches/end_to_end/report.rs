//! The one table the benchmark prints — figure, value, ceiling, ratio,
//! target — and the lines under it that say what each figure counted.

use std::time::Duration;

use crate::latency::{GIVE_UP, LatencyRun, percentile, percentiles_ms};
use crate::snapshot::{ShopCounts, SnapshotRun};
use crate::streaming::{Backlog, CONNECTIONS, CatchUp};
use crate::{Options, harness};

const REDIS_P99_TARGET: Duration = Duration::from_millis(50);
const SEARCH_P99_TARGET: Duration = Duration::from_secs(1);
const RSS_TARGET: u64 = 1 << 30;

/// Everything measured, in the order it was measured.
pub struct Figures<'a> {
    pub options: &'a Options,
    /// The 1-minute load average before and after the run.
    pub load_average: [String; 2],
    pub counts: &'a ShopCounts,
    /// Rows and seconds of the `COPY … TO STDOUT` ceiling.
    pub copy: (u64, f64),
    pub all_snapshot: SnapshotRun,
    pub cache_snapshot: SnapshotRun,
    pub backlog: Backlog,
    /// `pg_recvlogical` over the backlog.
    pub decode_seconds: f64,
    pub cache_catch_up: CatchUp,
    pub all_catch_up: CatchUp,
    /// At `options.rate`, the target's rate.
    pub latency: LatencyRun,
    /// At `options.low_rate`, a rate the views keep up with.
    pub low_latency: LatencyRun,
    /// The all-views process of the streaming and latency phases.
    pub streaming_rss: u64,
    /// The all-views state store's files (checkpoint and log) after the run.
    pub store_bytes: u64,
    /// Documents and seconds of the pipelined `SET` loop.
    pub redis_ceiling: (u64, f64),
}

struct Row {
    figure: String,
    value: String,
    ceiling: String,
    ratio: String,
    target: &'static str,
    met: bool,
}

/// A row measured against a ceiling, with `target` the smallest good ratio.
fn against_ceiling(
    figure: &str,
    (value, unit): (f64, &str),
    (ceiling_name, ceiling): (&str, f64),
    target: Option<(f64, &'static str)>,
) -> Row {
    let ratio = value / ceiling;
    Row {
        figure: figure.to_owned(),
        value: format!("{} {unit}", thousands(value)),
        ceiling: format!("{ceiling_name} {} {unit}", thousands(ceiling)),
        ratio: format!("{:.1}%", 100.0 * ratio),
        target: target.map_or("—", |(_, text)| text),
        met: target.is_none_or(|(least, _)| ratio >= least),
    }
}

/// p50/p99/max of markers `seen` (sorted) and `lost`, against a p99 target.
fn latency_row(
    figure: String,
    (seen, lost): (&[Duration], u64),
    target: Option<(Duration, &'static str)>,
) -> Row {
    let p99 = percentile(seen, lost, 99.0);
    Row {
        figure,
        value: format!("{} (p50/p99/max)", percentiles_ms(seen, lost)),
        ceiling: "—".into(),
        ratio: match (p99, target) {
            (Some(p99), Some((target, _))) => {
                format!("{:.0}%", 100.0 * p99.as_secs_f64() / target.as_secs_f64())
            }
            _ => "—".into(),
        },
        target: target.map_or("—", |(_, text)| text),
        met: match target {
            Some((target, _)) => p99.is_some_and(|p99| p99 < target),
            None => true,
        },
    }
}

fn rows(f: &Figures) -> Vec<Row> {
    let decode_rate = f.all_catch_up.changes as f64 / f.decode_seconds;
    let (copied, copy_seconds) = f.copy;
    let (documents, set_seconds) = f.redis_ceiling;
    let peak_rss = f.all_snapshot.peak_rss.max(f.streaming_rss);
    let (high, low) = (&f.latency, &f.low_latency);
    let (rate, low_rate) = (thousands(f.options.rate), thousands(f.options.low_rate));
    vec![
        against_ceiling(
            "snapshot, all views",
            (f.counts.rows() as f64 / f.all_snapshot.seconds, "rows/s"),
            ("COPY TO STDOUT", copied as f64 / copy_seconds),
            Some((0.5, "≥ 50%")),
        ),
        against_ceiling(
            "streaming, cache views alone",
            (f.cache_catch_up.rate(), "changes/s"),
            ("pg_recvlogical", decode_rate),
            Some((0.5, "≥ 50%")),
        ),
        against_ceiling(
            "streaming, all views",
            (f.all_catch_up.rate(), "changes/s"),
            ("pg_recvlogical", decode_rate),
            Some((0.25, "≥ 25%")),
        ),
        against_ceiling(
            "Redis sink, snapshot drain",
            (f.all_snapshot.redis_drain_rate.unwrap_or(0.0), "docs/s"),
            ("pipelined SET", documents as f64 / set_seconds),
            None,
        ),
        latency_row(
            format!("commit-to-visible, Redis, {rate} c/s"),
            (&high.redis, high.lost_redis()),
            Some((REDIS_P99_TARGET, "p99 < 50 ms")),
        ),
        latency_row(
            format!("commit-to-visible, search, {rate} c/s"),
            (&high.search, high.lost_search()),
            Some((SEARCH_P99_TARGET, "p99 < 1 s")),
        ),
        latency_row(
            format!("commit-to-visible, Redis, {low_rate} c/s"),
            (&low.redis, low.lost_redis()),
            None,
        ),
        latency_row(
            format!("commit-to-visible, search, {low_rate} c/s"),
            (&low.search, low.lost_search()),
            None,
        ),
        Row {
            figure: "peak RSS, all views".into(),
            value: format!("{} MiB", peak_rss >> 20),
            ceiling: "—".into(),
            ratio: format!("{:.0}%", 100.0 * peak_rss as f64 / RSS_TARGET as f64),
            target: "< 1 GiB",
            met: peak_rss < RSS_TARGET,
        },
    ]
}

pub fn print(f: &Figures) {
    let rows = rows(f);
    let width = |pick: fn(&Row) -> usize, title: &str| {
        rows.iter().map(pick).max().unwrap_or(0).max(title.len())
    };
    let w = [
        width(|r| r.figure.chars().count(), "figure"),
        width(|r| r.value.chars().count(), "value"),
        width(|r| r.ceiling.chars().count(), "ceiling"),
        width(|r| r.ratio.chars().count(), "ratio"),
        width(|r| r.target.chars().count(), "target"),
    ];
    let line = |cells: [&str; 6]| {
        let [figure, value, ceiling, ratio, target, met] = cells;
        println!(
            "{figure:<a$}  {value:>b$}  {ceiling:>c$}  {ratio:>d$}  {target:<e$}  {met}",
            a = w[0],
            b = w[1],
            c = w[2],
            d = w[3],
            e = w[4]
        );
    };
    println!();
    println!(
        "end_to_end: {} order_items, every example view ({} rows: {})",
        thousands(f.counts.items() as f64),
        thousands(f.counts.rows() as f64),
        f.counts
            .tables
            .iter()
            .map(|(table, rows)| format!("{table} {}", thousands(*rows as f64)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    line(["figure", "value", "ceiling", "ratio", "target", "met"]);
    for row in &rows {
        let met = if row.met { "yes" } else { "NO" };
        line([
            &row.figure,
            &row.value,
            &row.ceiling,
            &row.ratio,
            row.target,
            met,
        ]);
    }
    for detail in details(f) {
        println!("{detail}");
    }
}

/// What each figure counted, and the figures behind the figures.
fn details(f: &Figures) -> Vec<String> {
    let (all, cache) = (&f.all_catch_up, &f.cache_catch_up);
    let generated = all.changes as f64 / f.backlog.seconds;
    vec![
        format!(
            "machine: {} (PostgreSQL, Redis and viewkeeper share the cores); load average {} before, {} after",
            harness::machine(),
            f.load_average[0],
            f.load_average[1]
        ),
        format!(
            "snapshot: process start to every view live (Redis keys, index documents, table sums) in {:.1} s; \
             state store complete at {:.1} s; cache views alone: {:.1} s ({} rows/s)",
            f.all_snapshot.seconds,
            f.all_snapshot.snapshot_done_seconds,
            f.cache_snapshot.seconds,
            thousands(f.counts.rows() as f64 / f.cache_snapshot.seconds)
        ),
        format!(
            "streaming: a backlog of {} transactions of the workload mix ({} changes; {} rolled back) \
             written by {CONNECTIONS} connections in {:.1} s ({} changes/s, no consumer running), then read \
             by each consumer alone: pg_recvlogical {:.1} s, cache views alone {:.1} s \
             ({} changes, {:.2} cores), all views {:.1} s ({} changes, {:.2} cores)",
            thousands(f.backlog.committed as f64),
            thousands(all.changes as f64),
            f.backlog.failed,
            f.backlog.seconds,
            thousands(generated),
            f.decode_seconds,
            cache.seconds,
            thousands(cache.changes as f64),
            cache.cpu_seconds / cache.seconds,
            all.seconds,
            thousands(all.changes as f64),
            all.cpu_seconds / all.seconds,
        ),
        latency_details(f.options, f.options.rate, &f.latency),
        latency_details(f.options, f.options.low_rate, &f.low_latency),
        format!(
            "Redis: the sink's rate while draining the snapshot's outbox (MULTI/EXEC of 1,000), \
             beside {} of the same documents in pipelines of 1,000 SETs",
            thousands(f.redis_ceiling.0 as f64)
        ),
        format!(
            "peak RSS (VmHWM): all views {} MiB during the snapshot, {} MiB streaming; cache views alone {} MiB; \
             all views' state store {} MiB on disk after the run",
            f.all_snapshot.peak_rss >> 20,
            f.streaming_rss >> 20,
            f.cache_snapshot.peak_rss.max(f.cache_catch_up.peak_rss) >> 20,
            f.store_bytes >> 20
        ),
        "checked: Redis, the index and the table equal the SQL oracle after the run".to_owned(),
    ]
}

fn latency_details(options: &Options, rate: f64, run: &LatencyRun) -> String {
    format!(
        "latency at {} changes/s: {} s, {} changes/s applied, the workload mix on {CONNECTIONS} \
         connections and a marker every 20 ms ({} markers; not seen within {} s: Redis {}, \
         search {}); lag at most {:.2} s / {} bytes; {} written in the window",
        thousands(rate),
        options.latency_window.as_secs(),
        thousands(run.changes_per_second),
        run.markers,
        GIVE_UP.as_secs(),
        run.lost_redis(),
        run.lost_search(),
        run.max_lag_seconds,
        thousands(run.max_lag_bytes as f64),
        run.checkpoints_summary()
    )
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
