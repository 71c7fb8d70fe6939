//! Roots that cannot produce an output: the row's values make an expression
//! fail (an overflow, a bad cast), or its document is over the size limit.
//! Such a root gets no output (a cache key is deleted rather than left
//! stale: a miss sends readers to the database, a stale document misleads
//! them) and a dead letter that says where and why. The batch, and every
//! other root and view, go on. The next refresh of the root that succeeds
//! (the row is fixed, a retry after the limit was raised, a rebuild)
//! removes its dead letter.

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
/// dead letter the root may have had, or `None` after recording the poison.
pub(super) fn settle<T>(
    w: &mut StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    pk: &[u8],
    outcome: Outcome<Option<T>>,
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
            tracing::warn!(
                view = %view.name,
                table = %letter.table,
                key = %letter.key,
                // Written as PostgreSQL and `/status` write it; none for a
                // root found while building the view.
                lsn = %w.source_lsn().map_or_else(|| "none".to_owned(), |lsn| lsn.to_string()),
                reason = %letter.reason,
                "a root cannot be materialized: recorded as a dead letter"
            );
            w.put_dead_letter(&view.name, pk, &letter)?;
            telemetry::record_dead_letter(&view.name);
            Ok(None)
        }
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
