//! Refreshing roots: recompute the output, diff it against the stored one,
//! and append the difference to the view's sink outbox.

use super::{BatchOutcome, EngineError, dead_letters, document, groups};
use crate::plan::{OutputPlan, Plan};
use crate::state::{OutboxEntry, OutboxOp, OutputChange, StateWriter, Store, StoredOutput};

/// Recomputes one root and returns how many outbox entries it produced.
/// Aggregate views produce theirs when the transaction ends
/// ([`groups::append_changed_groups`]).
pub(super) fn refresh_root(
    w: &mut StateWriter,
    plan: &Plan,
    view: usize,
    pk: &[u8],
    max_document_bytes: usize,
) -> Result<usize, EngineError> {
    let view = &plan.views[view];
    if let OutputPlan::Aggregate(aggregate) = &view.output {
        groups::refresh_root(w, plan, view, aggregate, pk)?;
        return Ok(0);
    }
    let computed = document::compute_output(w, view, pk)?
        .and_then(|output| dead_letters::within_limit(output, max_document_bytes));
    let new = dead_letters::settle(w, plan, view, pk, computed)?;
    let OutputChange::Changed { old_key } = w.replace_output(&view.name, pk, new.as_ref())? else {
        return Ok(0);
    };
    let mut ops = Vec::with_capacity(2);
    if let Some(old_key) = old_key
        && new.as_ref().is_none_or(|new| new.key != old_key)
    {
        ops.push(OutboxOp::Delete { key: old_key });
    }
    if let Some(StoredOutput { key, document }) = new {
        ops.push(OutboxOp::Put { key, document });
    }
    let count = ops.len();
    for op in ops {
        let entry = OutboxEntry {
            view: view.name.clone(),
            op,
        };
        w.append_outbox(&view.sink, &entry)?;
    }
    Ok(count)
}

/// Recomputes every root of a view (after a snapshot), in transactions of
/// `chunk` roots, then deletes outputs whose root no longer exists. Roots
/// are refreshed every other one first ([`super::rows::alternating`]), so
/// their new outputs pack the store's leaves.
pub(super) fn refresh_all_roots(
    store: &Store,
    plan: &Plan,
    view: usize,
    chunk: usize,
    max_document_bytes: usize,
    on_chunk: &mut dyn FnMut(usize),
) -> Result<BatchOutcome, EngineError> {
    let root_table = &plan.views[view].nodes[0].table;
    let mut outcome = BatchOutcome::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (last, done) = store.write(|w| {
            let roots = w.table_keys_after(root_table, after.as_deref(), chunk)?;
            let mut entries = 0;
            // Outputs stored in key order would leave the leaves half empty.
            for pk in super::rows::alternating(&roots) {
                entries += refresh_root(w, plan, view, pk, max_document_bytes)?;
            }
            entries += groups::append_changed_groups(w, plan)?;
            Ok::<_, EngineError>((roots.last().cloned(), (roots.len(), entries)))
        })?;
        outcome.roots_refreshed += done.0;
        outcome.outbox_entries += done.1;
        on_chunk(outcome.roots_refreshed);
        match last {
            Some(pk) if done.0 == chunk => after = Some(pk),
            _ => break,
        }
    }
    outcome.outbox_entries += sweep_orphans(store, plan, view, max_document_bytes)?;
    Ok(outcome)
}

/// Deletes outputs whose root row is gone (deleted while viewkeeper was away).
fn sweep_orphans(
    store: &Store,
    plan: &Plan,
    view: usize,
    max_document_bytes: usize,
) -> Result<usize, EngineError> {
    let view_plan = &plan.views[view];
    let orphans = store
        .reader()?
        .outputs_without_row(&view_plan.name, &view_plan.nodes[0].table)?;
    if orphans.is_empty() {
        return Ok(0);
    }
    // Refreshing a root is right whenever it happens, so a row that came
    // back since the read is refreshed from it.
    store.write(|w| {
        let mut entries = 0;
        for pk in &orphans {
            entries += refresh_root(w, plan, view, pk, max_document_bytes)?;
        }
        Ok(entries + groups::append_changed_groups(w, plan)?)
    })
}
