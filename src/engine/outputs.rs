//! Refreshing roots: recompute the output, diff it against the stored one,
//! and append the difference to the view's sink outbox.
//!
//! Computing a root's output (a cache or search view's document, an
//! aggregate view's contribution) is most of a refresh, and it only reads
//! rows. So the roots of a transaction are computed in chunks by two
//! threads, the engine's own and its helper, each with a reader of the
//! transaction's rows, taking roots one at a time from a shared counter;
//! then the engine's thread stores the chunk's outputs in the roots' order,
//! so the state and the outboxes are exactly what one thread would have
//! written, while the helper goes on to the next chunk.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::dead_letters::Outcome;
use super::worker::{Submitted, Worker};
use super::{BatchOutcome, EngineError, dead_letters, document, groups, output_keys};
use crate::aggregate::Contribution;
use crate::plan::{OutputPlan, Plan, ViewPlan};
use crate::state::{
    OutboxEntry, OutboxOp, OutputChange, PlainAllowance, PreparedOutput, ReadRows, StateReader,
    StateWriter, Store, packing_order,
};

/// Roots computed together before their outputs are stored: the outputs
/// in flight stay within a few megabytes.
const CHUNK: usize = 2_048;
/// With fewer roots than this to compute, the engine's thread computes
/// them alone: handing work over costs more than it saves.
const MIN_SHARED: usize = 16;

/// A root: its view's index in the plan and its encoded primary key.
pub(super) type Root = (usize, Vec<u8>);

/// A root's new output, computed, before it is stored.
enum Computed {
    Document(Outcome<Option<PreparedOutput>>),
    Contribution(Outcome<Option<Contribution>>),
}

/// What refreshing roots needs besides the write transaction.
pub(super) struct Refresh<'e> {
    pub plan: &'e Arc<Plan>,
    pub helper: &'e Worker,
    pub max_document_bytes: usize,
    /// What the transaction's puts may leave uncompressed.
    pub plain: Arc<PlainAllowance>,
}

impl Refresh<'_> {
    /// Recomputes `roots` in order, then appends every aggregate group the
    /// transaction changed ([`groups::append_changed_groups`]); returns how
    /// many outbox entries were appended. Called once per transaction.
    pub fn roots(&self, w: &mut StateWriter, roots: &[Root]) -> Result<usize, EngineError> {
        let mut entries = 0;
        if roots.len() < MIN_SHARED {
            let outputs = roots
                .iter()
                .map(|(view, pk)| self.compute(w, *view, pk))
                .collect::<Result<Vec<_>, _>>()?;
            entries += self.store_outputs(w, roots, outputs)?;
        } else {
            // While the engine's thread stores a chunk's outputs, the helper
            // computes the next chunk; then both compute what is left of it.
            // Storing writes no rows, so the helper's reader stays true.
            let mut chunks = roots.chunks(CHUNK);
            let mut next = chunks
                .next()
                .map(|chunk| self.share(chunk, w.rows_reader()));
            while let Some(InFlight {
                roots,
                claims,
                helper,
            }) = next.take()
            {
                let mut done = Vec::new();
                while let Some((n, (view, pk))) = claims.claim() {
                    done.push((n, self.compute(w, *view, pk)));
                }
                let (helper_done, reader) = helper.wait()?;
                next = match chunks.next() {
                    Some(chunk) => Some(self.share(chunk, reader)),
                    None => {
                        // The engine's thread is the one that bounds a batch;
                        // the helper is idle until the next transaction.
                        self.helper.release(reader);
                        None
                    }
                };
                let outputs = in_order(roots.len(), done.into_iter().chain(helper_done))?;
                entries += self.store_outputs(w, roots, outputs)?;
            }
        }
        Ok(entries + groups::append_changed_groups(w, self.plan)?)
    }

    /// Hands `chunk` to the helper, which computes roots from it until none
    /// is left unclaimed; the engine's thread claims from the same chunk.
    fn share<'c>(&self, chunk: &'c [Root], reader: StateReader) -> InFlight<'c> {
        let claims = Arc::new(SharedRoots {
            roots: chunk.to_vec(),
            next: AtomicUsize::new(0),
        });
        let (helper_claims, plan) = (Arc::clone(&claims), Arc::clone(self.plan));
        let max_document_bytes = self.max_document_bytes;
        let plain = Arc::clone(&self.plain);
        let helper = self.helper.submit(move || {
            let mut done = Vec::new();
            while let Some((n, (view, pk))) = helper_claims.claim() {
                let view = &plan.views[*view];
                done.push((n, compute(&reader, view, pk, max_document_bytes, &plain)));
            }
            Ok((done, reader))
        });
        InFlight {
            roots: chunk,
            claims,
            helper,
        }
    }

    /// Stores the outputs computed for `roots`, in their order; returns the
    /// outbox entries appended.
    fn store_outputs(
        &self,
        w: &mut StateWriter,
        roots: &[Root],
        outputs: Vec<Computed>,
    ) -> Result<usize, EngineError> {
        let mut entries = 0;
        for ((view, pk), computed) in roots.iter().zip(outputs) {
            let view = &self.plan.views[*view];
            match computed {
                Computed::Document(computed) => {
                    entries += self.store_document(w, view, pk, computed)?;
                }
                // Computed only for an aggregate view's roots.
                Computed::Contribution(computed) => {
                    if let OutputPlan::Aggregate(aggregate) = &view.output {
                        groups::store_contribution(w, self.plan, view, aggregate, pk, computed)?;
                    }
                }
            }
        }
        Ok(entries)
    }

    /// Stores a computed document (or its dead letter) and appends what
    /// changed to the view's outbox; returns the entries appended.
    fn store_document(
        &self,
        w: &mut StateWriter,
        view: &ViewPlan,
        pk: &[u8],
        computed: Outcome<Option<PreparedOutput>>,
    ) -> Result<usize, EngineError> {
        let (computed, newly_claimed, taken_from, waits_for_key) = if view.claims_keys() {
            let claimed = output_keys::claim(w, self.plan, view, pk, computed)?;
            (
                claimed.computed,
                claimed.newly_claimed,
                claimed.taken_from,
                claimed.waits_for_key,
            )
        } else {
            (computed, false, None, false)
        };
        let new = if waits_for_key {
            dead_letters::settle_waiting_for_key(w, self.plan, view, pk, computed)?
        } else {
            dead_letters::settle(w, self.plan, view, pk, computed)?
        };
        let old_key = match w.replace_output(&view.name, pk, new.as_ref())? {
            OutputChange::Changed { old_key } => old_key,
            // Stored before its view's keys were claimed: another root may
            // have written the key last, so it is written again.
            OutputChange::Unchanged if newly_claimed => None,
            OutputChange::Unchanged => return Ok(0),
        };
        let mut count = 0;
        if let Some(old_key) = old_key
            && new.as_ref().is_none_or(|new| new.key != old_key)
        {
            let released = output_keys::release(w, view, pk, &old_key)?;
            if released.was_owned {
                let entry = OutboxEntry {
                    view: view.name.clone(),
                    op: OutboxOp::Delete { key: old_key },
                };
                w.append_outbox(&view.sink, &entry)?;
                count += 1;
            }
            // After the delete: the first of them to claim the key puts it.
            for waiting in released.waiting {
                count += self.store_waiting(w, view, &waiting)?;
            }
        }
        if let Some(new) = &new {
            w.append_put(&view.sink, new)?;
            count += 1;
            if let Some(previous) = taken_from {
                output_keys::give_up(w, self.plan, view, &previous, pk, &new.key)?;
            }
        }
        Ok(count)
    }

    /// Refreshes a root that waited for a key now released.
    fn store_waiting(
        &self,
        w: &mut StateWriter,
        view: &ViewPlan,
        pk: &[u8],
    ) -> Result<usize, EngineError> {
        match compute(w, view, pk, self.max_document_bytes, &self.plain)? {
            Computed::Document(computed) => self.store_document(w, view, pk, computed),
            Computed::Contribution(_) => Ok(0), // only cache views claim keys
        }
    }

    /// A root's output computed from the rows `rows` reads.
    fn compute(
        &self,
        rows: &dyn ReadRows,
        view: usize,
        pk: &[u8],
    ) -> Result<Computed, EngineError> {
        compute(
            rows,
            &self.plan.views[view],
            pk,
            self.max_document_bytes,
            &self.plain,
        )
    }
}

/// A root's output computed from the rows `rows` reads. A document is
/// checked against the size limit and prepared for the writer here, on
/// whichever of the two threads computed it.
fn compute(
    rows: &dyn ReadRows,
    view: &ViewPlan,
    pk: &[u8],
    max_document_bytes: usize,
    plain: &PlainAllowance,
) -> Result<Computed, EngineError> {
    Ok(match &view.output {
        OutputPlan::Aggregate(aggregate) => {
            Computed::Contribution(groups::contribution(rows, view, aggregate, pk)?)
        }
        OutputPlan::Cache { .. } | OutputPlan::Search { .. } => Computed::Document(
            document::compute_output(rows, view, pk)?
                .and_then(|output| dead_letters::within_limit(output, max_document_bytes))
                .map(|output| {
                    output.map(|output| PreparedOutput::new(&view.name, pk, output, plain))
                }),
        ),
    })
}

/// Roots two threads take one at a time.
struct SharedRoots {
    roots: Vec<Root>,
    next: AtomicUsize,
}

impl SharedRoots {
    /// The next root no thread has taken, with its number.
    fn claim(&self) -> Option<(usize, &Root)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.roots.get(n).map(|root| (n, root))
    }
}

/// A root's output, with the root's position in its chunk.
type Claimed = (usize, Result<Computed, EngineError>);

/// A chunk of roots being computed by both threads.
struct InFlight<'c> {
    roots: &'c [Root],
    claims: Arc<SharedRoots>,
    /// The helper's part: its outputs by position, and its reader back.
    helper: Submitted<(Vec<Claimed>, StateReader)>,
}

/// The outputs of a chunk of `len` roots in the roots' order, from the
/// `(position, output)` pairs of both threads: every root was claimed by
/// one thread, and each claimed root is in its thread's results.
fn in_order(len: usize, done: impl Iterator<Item = Claimed>) -> Result<Vec<Computed>, EngineError> {
    let mut outputs: Vec<Option<Computed>> = (0..len).map(|_| None).collect();
    for (n, output) in done {
        outputs[n] = Some(output?);
    }
    Ok(outputs.into_iter().flatten().collect())
}

/// Recomputes every root of a view (after a snapshot), in transactions of
/// `chunk` roots, then deletes outputs whose root no longer exists. Roots
/// are refreshed in [`packing_order`], so their new outputs fill the
/// store's leaves.
pub(super) fn refresh_all_roots(
    store: &Store,
    refresh: &Refresh,
    view: usize,
    chunk: usize,
    on_chunk: &mut dyn FnMut(usize),
) -> Result<BatchOutcome, EngineError> {
    let root_table = &refresh.plan.views[view].nodes[0].table;
    let mut outcome = BatchOutcome::default();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (last, done) = store.write(|w| {
            let roots = w.table_keys_after(root_table, after.as_deref(), chunk)?;
            let order: Vec<Root> = packing_order(&roots).map(|pk| (view, pk.clone())).collect();
            let entries = refresh.roots(w, &order)?;
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
    outcome.outbox_entries += sweep_orphans(store, refresh, view)?;
    Ok(outcome)
}

/// Deletes outputs whose root row is gone (deleted while viewkeeper was away).
fn sweep_orphans(store: &Store, refresh: &Refresh, view: usize) -> Result<usize, EngineError> {
    let view_plan = &refresh.plan.views[view];
    let orphans = store
        .reader()?
        .outputs_without_row(&view_plan.name, &view_plan.nodes[0].table)?;
    if orphans.is_empty() {
        return Ok(0);
    }
    // Refreshing a root is right whenever it happens, so a row that came
    // back since the read is refreshed from it.
    let orphans: Vec<Root> = orphans.into_iter().map(|pk| (view, pk)).collect();
    store.write(|w| refresh.roots(w, &orphans))
}
