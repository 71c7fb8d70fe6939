//! Every metric name, in one place (`viewkeeper_<what>_<unit>`; counters end
//! in `_total`; labels never carry row values).

use std::time::Duration;

use crate::engine::BatchOutcome;

pub const CHANGES_TOTAL: &str = "viewkeeper_changes_total";
pub const BATCH_SECONDS: &str = "viewkeeper_batch_seconds";
pub const OUTBOX_ENTRIES_TOTAL: &str = "viewkeeper_outbox_entries_total";
pub const SINK_APPLIED_TOTAL: &str = "viewkeeper_sink_applied_total";

/// Records one applied batch, and logs it at debug level, from one place.
pub fn record_batch(changes: usize, outcome: &BatchOutcome, elapsed: Duration) {
    metrics::counter!(CHANGES_TOTAL).increment(changes as u64);
    metrics::counter!(OUTBOX_ENTRIES_TOTAL).increment(outcome.outbox_entries as u64);
    metrics::histogram!(BATCH_SECONDS).record(elapsed.as_secs_f64());
    tracing::debug!(
        changes,
        roots = outcome.roots_refreshed,
        outbox_entries = outcome.outbox_entries,
        ms = elapsed.as_millis() as u64,
        "batch applied"
    );
}

/// Records entries a sink has made durable.
pub fn record_sink_applied(sink: &'static str, entries: usize) {
    metrics::counter!(SINK_APPLIED_TOTAL, "sink" => sink).increment(entries as u64);
}
