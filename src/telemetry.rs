//! Every metric name, in one place (`viewkeeper_<what>_<unit>`; counters end
//! in `_total`; labels never carry row values).

use std::time::Duration;

use crate::engine::BatchOutcome;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// Row changes applied to the state store.
pub const CHANGES_TOTAL: &str = "viewkeeper_changes_total";
/// Batches applied (a batch holds whole transactions, or a part of a huge one).
pub const BATCHES_TOTAL: &str = "viewkeeper_batches_total";
/// Time to apply one batch to the state store (histogram).
pub const BATCH_SECONDS: &str = "viewkeeper_batch_seconds";
/// Outbox entries written by the engine.
pub const OUTBOX_ENTRIES_TOTAL: &str = "viewkeeper_outbox_entries_total";
/// Outbox entries a sink made durable, by `sink`.
pub const SINK_APPLIED_TOTAL: &str = "viewkeeper_sink_applied_total";
/// Failed sink attempts (each is retried), by `sink`.
pub const SINK_ERRORS_TOTAL: &str = "viewkeeper_sink_errors_total";
/// Times a sink found its target without its data and rewrote it, by `sink`.
pub const SINK_DATA_LOSSES_TOTAL: &str = "viewkeeper_sink_data_losses_total";
/// Entries waiting in a sink's outbox, by `sink`.
pub const OUTBOX_DEPTH: &str = "viewkeeper_outbox_depth";
/// WAL bytes between the primary's current position and the applied one.
pub const SOURCE_LAG_BYTES: &str = "viewkeeper_source_lag_bytes";
/// Seconds since the last applied commit, while behind (0 when caught up).
pub const SOURCE_LAG_SECONDS: &str = "viewkeeper_source_lag_seconds";
/// WAL bytes the replication slot keeps on the primary.
pub const RETAINED_WAL_BYTES: &str = "viewkeeper_retained_wal_bytes";

/// Roots that failed to produce an output and became dead letters, by `view`.
pub const DEAD_LETTERS_TOTAL: &str = "viewkeeper_dead_letters_total";
/// Dead letters a view holds now, by `view`.
pub const DEAD_LETTERS: &str = "viewkeeper_dead_letters";

/// Rows a running rebuild has recomputed, by `view` (0 when none runs).
pub const REBUILD_ROWS_DONE: &str = "viewkeeper_rebuild_rows_done";
/// Rows the running rebuild recomputes in all, by `view`.
pub const REBUILD_ROWS_TOTAL: &str = "viewkeeper_rebuild_rows_total";

/// How long a gauge no status report set stays in `/metrics`.
const GAUGES_GONE_AFTER: Duration = Duration::from_secs(10);

/// Batch durations, in seconds: from sub-millisecond to slow disks.
const BATCH_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs the process-wide Prometheus recorder; its handle renders
/// `/metrics`. `None` (and a warning) if a recorder is already installed.
pub fn install_recorder() -> Option<PrometheusHandle> {
    // Every gauge is set again by the status report that precedes each
    // render: one not set for 10 s is a view or sink that is gone, and
    // leaves the output (it stayed there, at its last value, for good).
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(BATCH_SECONDS.to_owned()),
            BATCH_BUCKETS,
        )
        .ok()?
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGES_GONE_AFTER));
    match builder.install_recorder() {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "metrics recorder not installed; /metrics is empty");
            None
        }
    }
}

/// Records one applied batch, and logs it at debug level, from one place.
pub fn record_batch(changes: usize, outcome: &BatchOutcome, elapsed: Duration) {
    metrics::counter!(CHANGES_TOTAL).increment(changes as u64);
    metrics::counter!(BATCHES_TOTAL).increment(1);
    metrics::counter!(OUTBOX_ENTRIES_TOTAL).increment(outcome.outbox_entries as u64);
    metrics::histogram!(BATCH_SECONDS).record(elapsed.as_secs_f64());
    let timings = &outcome.timings;
    tracing::debug!(
        changes,
        roots = outcome.roots_refreshed,
        outbox_entries = outcome.outbox_entries,
        ms = elapsed.as_millis() as u64,
        rows_ms = timings.rows.as_millis() as u64,
        refresh_ms = timings.refresh.as_millis() as u64,
        commit_ms = timings.commit.as_millis() as u64,
        deferred_ms = timings.deferred.as_millis() as u64,
        "batch applied"
    );
}

/// Records a failed attempt of a sink.
pub fn record_sink_error(sink: &str) {
    metrics::counter!(SINK_ERRORS_TOTAL, "sink" => sink.to_owned()).increment(1);
}

pub fn record_outbox_depth(sink: &str, depth: u64) {
    metrics::gauge!(OUTBOX_DEPTH, "sink" => sink.to_owned()).set(depth as f64);
}

pub fn record_source_lag(bytes: u64, seconds: f64) {
    metrics::gauge!(SOURCE_LAG_BYTES).set(bytes as f64);
    metrics::gauge!(SOURCE_LAG_SECONDS).set(seconds);
}

pub fn record_retained_wal(bytes: u64) {
    metrics::gauge!(RETAINED_WAL_BYTES).set(bytes as f64);
}

/// Records entries a sink has made durable. `sink` is its outbox's name,
/// as [`OUTBOX_DEPTH`] labels it (`redis`, `aggregate:<view>`,
/// `search:<view>`), so the two join per view (trial 40: this one was by
/// sink kind).
pub fn record_sink_applied(sink: &str, entries: usize) {
    metrics::counter!(SINK_APPLIED_TOTAL, "sink" => sink.to_owned()).increment(entries as u64);
}

pub fn record_dead_letter(view: &str) {
    metrics::counter!(DEAD_LETTERS_TOTAL, "view" => view.to_owned()).increment(1);
}

pub fn record_dead_letter_count(view: &str, count: u64) {
    metrics::gauge!(DEAD_LETTERS, "view" => view.to_owned()).set(count as f64);
}

pub fn record_rebuild_progress(view: &str, done: u64, total: u64) {
    metrics::gauge!(REBUILD_ROWS_DONE, "view" => view.to_owned()).set(done as f64);
    metrics::gauge!(REBUILD_ROWS_TOTAL, "view" => view.to_owned()).set(total as f64);
}

pub fn record_sink_data_loss(sink: &str) {
    metrics::counter!(SINK_DATA_LOSSES_TOTAL, "sink" => sink.to_owned()).increment(1);
}
