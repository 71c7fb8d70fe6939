//! Roots that cannot produce an output: the row's values make an expression
//! fail (an overflow, a bad cast), or its document is over the size limit.
//! Such a root gets no output (a cache key is deleted rather than left
//! stale: a miss sends readers to the database, a stale document misleads
//! them) and a dead letter that says where and why. The batch, and every
//! other root and view, go on. The next refresh of the root that succeeds
//! (the row is fixed, a retry after the limit was raised, a rebuild)
//! removes its dead letter.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::EngineError;
use crate::plan::{Plan, ViewPlan};
use crate::state::{DeadLetter, ReadRows, StateWriter, StoredOutput};
use crate::telemetry;

/// Why one root has no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Poison(pub String);

/// A root's output, or why it cannot have one.
pub(super) type Outcome<T> = Result<T, Poison>;

/// Refuses a document larger than `max_bytes`.
pub(super) fn within_limit(
    output: Option<StoredOutput>,
    max_bytes: usize,
) -> Outcome<Option<StoredOutput>> {
    match output {
        Some(output) if output.document.len() > max_bytes => Err(Poison(format!(
            "document of {} bytes is over max_document_bytes ({max_bytes})",
            output.document.len()
        ))),
        other => Ok(other),
    }
}

/// Keeps the outcome of refreshing one root: the output, after removing a
/// dead letter the root may have had, or `None` after recording the poison
/// (logged, and counted in `viewkeeper_dead_letters_total`).
pub(super) fn settle<T>(
    w: &mut StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    pk: &[u8],
    outcome: Outcome<Option<T>>,
) -> Result<Option<T>, EngineError> {
    record(w, plan, view, pk, outcome, true)
}

/// [`settle`] for a root waiting for a key another root holds. In a view
/// keyed by a unique key rather than the primary key, two rows hold one
/// key only within a transaction (they swap codes), so the wait is almost
/// always over by the end of the batch: its dead letter is kept without a
/// log line or a count, and one that outlasts the batch is listed and
/// counted in `/status` as any other.
pub(super) fn settle_waiting_for_key<T>(
    w: &mut StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    pk: &[u8],
    outcome: Outcome<Option<T>>,
) -> Result<Option<T>, EngineError> {
    record(w, plan, view, pk, outcome, view.keys_may_collide())
}

fn record<T>(
    w: &mut StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    pk: &[u8],
    outcome: Outcome<Option<T>>,
    announced: bool,
) -> Result<Option<T>, EngineError> {
    match outcome {
        Ok(output) => {
            w.remove_dead_letter(&view.name, pk)?;
            Ok(output)
        }
        Err(Poison(reason)) => {
            // The same failure again (a retry without a fix, another change
            // that leaves it) keeps where and when it began.
            if w.dead_letter(&view.name, pk)?
                .is_some_and(|earlier| earlier.reason == reason)
            {
                return Ok(None);
            }
            let table = &view.nodes[0].table;
            let letter = DeadLetter {
                lsn: w.source_lsn().map(|lsn| lsn.0),
                table: table.clone(),
                key: root_key_text(w, plan, table, pk)?,
                reason,
                recorded_at_micros: crate::status::now_micros(),
            };
            let logging = match announced {
                true => log_decision(&view.name, Instant::now()),
                false => Logging::Quiet,
            };
            if logging != Logging::Quiet {
                tracing::warn!(
                    view = %view.name,
                    table = %letter.table,
                    key = %letter.key,
                    // Written as PostgreSQL and `/status` write it; none for
                    // a root found while building the view.
                    lsn = %w.source_lsn().map_or_else(|| "none".to_owned(), |lsn| lsn.to_string()),
                    reason = %letter.reason,
                    "a root cannot be materialized: recorded as a dead letter"
                );
            }
            if logging == Logging::LastInWindow {
                tracing::warn!(
                    view = %view.name,
                    "{LOGGED_PER_WINDOW} dead letters of this view logged within {}s: more are \
                     counted (`/status`, `/metrics`) and listed (`viewkeeper dead-letters {}`), \
                     not logged, until the minute is over",
                    LOG_WINDOW.as_secs(),
                    view.name
                );
            }
            w.put_dead_letter(&view.name, pk, &letter)?;
            if announced {
                telemetry::record_dead_letter(&view.name);
            }
            Ok(None)
        }
    }
}

/// Dead letters of one view logged within [`LOG_WINDOW`]: a poison value in
/// a 100,000-row update would otherwise write 100,000 lines. The rest are
/// counted and listed as every dead letter is.
const LOGGED_PER_WINDOW: u32 = 10;
const LOG_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq, Eq)]
enum Logging {
    Log,
    /// Logged, with a line saying that the next are not.
    LastInWindow,
    Quiet,
}

/// When each view's window began, and how many of its dead letters it logged.
static LOG_WINDOWS: LazyLock<Mutex<HashMap<String, (Instant, u32)>>> =
    LazyLock::new(Mutex::default);

fn log_decision(view: &str, now: Instant) -> Logging {
    let mut windows = LOG_WINDOWS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let window = windows.entry(view.to_owned()).or_insert((now, 0));
    next_in_window(window, now)
}

fn next_in_window(window: &mut (Instant, u32), now: Instant) -> Logging {
    if now.duration_since(window.0) >= LOG_WINDOW {
        *window = (now, 0);
    }
    window.1 = window.1.saturating_add(1);
    match window.1.cmp(&LOGGED_PER_WINDOW) {
        std::cmp::Ordering::Less => Logging::Log,
        std::cmp::Ordering::Equal => Logging::LastInWindow,
        std::cmp::Ordering::Greater => Logging::Quiet,
    }
}

/// `column=value, …` of the root's primary key, read from its stored row.
pub(super) fn root_key_text(
    w: &dyn ReadRows,
    plan: &Plan,
    table: &str,
    pk: &[u8],
) -> Result<String, EngineError> {
    let (Some(table), Some(row)) = (plan.table(table), w.get_row(table, pk)?) else {
        return Ok(String::new());
    };
    Ok(table.columns[..table.primary_key_len]
        .iter()
        .zip(row.iter())
        .map(|(column, value)| format!("{column}={}", value.to_text()))
        .collect::<Vec<_>>()
        .join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten a minute are logged, the tenth saying so; then none until the
    /// minute is over.
    #[test]
    fn dead_letters_are_logged_ten_a_minute() {
        let start = Instant::now();
        let mut window = (start, 0);
        let decisions: Vec<Logging> = (0..12)
            .map(|_| next_in_window(&mut window, start + Duration::from_secs(5)))
            .collect();
        assert_eq!(decisions[..9], [(); 9].map(|_| Logging::Log));
        assert_eq!(
            decisions[9..],
            [Logging::LastInWindow, Logging::Quiet, Logging::Quiet]
        );
        assert_eq!(
            next_in_window(&mut window, start + Duration::from_secs(59)),
            Logging::Quiet
        );
        assert_eq!(
            next_in_window(&mut window, start + Duration::from_secs(60)),
            Logging::Log
        );
    }
}
