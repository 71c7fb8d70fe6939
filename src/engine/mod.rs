//! The engine: turns a batch of row changes into outbox entries.
//!
//! For each batch, in one state-store transaction: apply the row changes
//! ([`rows`]), find every root row of every view the changes touch ([`roots`]),
//! recompute those roots' outputs and append the differences to the sinks'
//! outboxes ([`outputs`]), and store the source position. The engine is pure
//! with respect to the outside world: no network I/O, only the state store.

mod dead_letters;
mod document;
mod groups;
mod logged_puts;
mod output_keys;
mod output_reader;
mod outputs;
mod roots;
mod rows;
mod worker;

use std::time::{Duration, Instant};

pub use groups::{values_from_json, values_json};
pub use logged_puts::SettledPuts;
pub use output_reader::OutputReader;
use std::sync::Arc;

use crate::change::{ChangeBatch, Lsn, Value};
use crate::plan::{OutputPlan, Plan};
use crate::state::{CommitNumber, StateWriter, Store, StoreError, ViewRecord};

/// Roots refreshed in one state-store transaction unless configured
/// (`batch_max_roots`): inside a batch's own transaction, and in each of the
/// transactions that refresh many (pending roots, a whole view after a
/// snapshot or on demand, retried dead letters). A larger fan-out (a
/// customer with 100,000 orders renamed) is recorded as pending and
/// refreshed in later transactions, so memory stays bounded. The example
/// shop's workload touches about 4 roots per change, so a full batch of
/// 20,000 changes touches about 80,000: refreshing them all in its own
/// transaction saves writing and reading them back as pending, and lets
/// them share what the transaction has read; fewer, larger transactions pay
/// fewer commits (each an fsync) and start cold less often. (It was 25,000
/// while the store was an on-disk B-tree whose page cache a larger
/// transaction outgrew; in memory, 100,000 streamed 28% faster.)
pub const DEFAULT_BATCH_MAX_ROOTS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "table {table}: primary-key column {column} is missing from a change{at}: the table's \
         replica identity no longer names its primary key (REPLICA IDENTITY USING INDEX?). Set \
         REPLICA IDENTITY DEFAULT or FULL, then `viewkeeper rebuild <any view> --from-source` \
         once (it takes every table anew, for every view): the log already holds changes \
         without the key"
    )]
    MissingKey {
        table: String,
        column: String,
        /// Where the change is in the log, once its batch is known.
        at: LogRange,
    },
    #[error(transparent)]
    Aggregate(#[from] crate::aggregate::AggregateError),
    #[error("the engine panicked: {0}")]
    Panicked(String),
    #[error("the engine's thread has stopped")]
    Stopped,
}

/// Where a change is in the log: in a transaction committed after the
/// stored position `after`, by the batch's last commit `through` (`None`
/// while that transaction is still arriving).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogRange {
    pub after: Option<Lsn>,
    pub through: Option<Lsn>,
}

impl std::fmt::Display for LogRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.after, self.through) {
            (Some(after), Some(through)) => {
                write!(f, " committed after LSN {after} and by LSN {through}")
            }
            (None, Some(through)) => write!(f, " committed by LSN {through}"),
            (Some(after), None) => write!(f, " of a transaction after LSN {after}"),
            (None, None) => Ok(()),
        }
    }
}

impl EngineError {
    /// This error of a change in a batch, told where the batch is.
    fn in_batch(self, at: LogRange) -> EngineError {
        match self {
            EngineError::MissingKey { table, column, .. } => {
                EngineError::MissingKey { table, column, at }
            }
            other => other,
        }
    }
}

/// What applying a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub changes_applied: usize,
    pub roots_refreshed: usize,
    pub outbox_entries: usize,
    pub timings: BatchTimings,
    /// The batch's commit. [`Engine::apply`] returns before it is on
    /// disk: wait for it ([`crate::state::Store::wait_durable`]) before
    /// confirming the batch's position.
    pub commit: CommitNumber,
}

/// Where a batch's time went, for the `batch applied` log line: telling
/// apart a slow fan-out, a slow commit and a backlog of deferred roots.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchTimings {
    /// Applying the row changes and finding the roots they touch.
    pub rows: Duration,
    /// Refreshing the roots the batch's own transaction takes.
    pub refresh: Duration,
    /// Committing that transaction: its redo record written to the log
    /// (the sync runs on the store's sync thread).
    pub commit: Duration,
    /// Refreshing the roots beyond `batch_max_roots`, in later transactions.
    pub deferred: Duration,
}

/// The roots a transaction's changes touched: encoded primary keys per view
/// (by index into `Plan::views`), collected as found, a root as often as it
/// was touched; sorted and made unique when they are refreshed, and
/// whenever a view's list grows past [`Touched::COMPACT_ABOVE`] and twice
/// what its last compaction left. Without that, a row many roots join
/// (an author of 100,000 posts) changed a thousand times in one batch
/// collected a hundred million copies of the same keys and took tens of
/// GiB.
#[derive(Default)]
pub(super) struct Touched {
    by_view: Vec<Touches>,
}

#[derive(Default)]
struct Touches {
    roots: Vec<Vec<u8>>,
    /// How long `roots` may grow before it is made unique again.
    compact_at: usize,
}

impl Touched {
    /// The least length a view's list is compacted at: most batches never
    /// reach it, and pay only for the one sort they always did.
    const COMPACT_ABOVE: usize = 1 << 20;

    pub fn add(&mut self, view: usize, roots: impl IntoIterator<Item = Vec<u8>>) {
        if self.by_view.len() <= view {
            self.by_view.resize_with(view + 1, Touches::default);
        }
        let touches = &mut self.by_view[view];
        touches.roots.extend(roots);
        if touches.roots.len() > touches.compact_at.max(Self::COMPACT_ABOVE) {
            touches.roots.sort_unstable();
            touches.roots.dedup();
            touches.compact_at = 2 * touches.roots.len();
        }
    }

    /// Every root once: views in plan order, each view's roots in key order
    /// (neighbouring keys share the store's nodes, and the outcome does not
    /// depend on a hash order).
    pub fn into_roots(self) -> impl Iterator<Item = (usize, Vec<u8>)> {
        self.by_view
            .into_iter()
            .enumerate()
            .flat_map(|(view, Touches { mut roots, .. })| {
                roots.sort_unstable();
                roots.dedup();
                roots.into_iter().map(move |root| (view, root))
            })
    }

    /// Roots held, copies included.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.by_view.iter().map(|touches| touches.roots.len()).sum()
    }
}

/// The largest document a cache or search view may produce unless configured
/// otherwise: far above any sane document, far below Redis' 512 MB string.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

pub struct Engine {
    plan: Arc<Plan>,
    store: Arc<Store>,
    /// A larger document becomes a dead letter instead of an output.
    max_document_bytes: usize,
    /// Roots refreshed in a batch's own transaction; the rest are deferred.
    batch_max_roots: usize,
    /// Held while a batch is applied: a pipeline stopped between two awaits
    /// waits on it, so no batch of the old views lands after the next
    /// pipeline has started.
    applying: std::sync::Mutex<()>,
    /// Batches handed to a blocking thread ([`Engine::spawn_apply`]) that
    /// have not finished: one still queued for a thread has not taken
    /// `applying` yet, and must be waited for too.
    queued: Arc<Queued>,
    /// The thread batches and snapshots are applied on.
    worker: worker::Worker,
    /// The thread that computes documents beside it ([`outputs::Refresh`]).
    helper: worker::Worker,
}

#[derive(Default)]
struct Queued {
    count: std::sync::Mutex<usize>,
    emptied: std::sync::Condvar,
}

/// Counts one batch in [`Queued`] from before it is spawned until it has
/// been applied, or dropped unapplied.
struct QueuedTicket(Arc<Queued>);

impl QueuedTicket {
    fn new(queued: &Arc<Queued>) -> QueuedTicket {
        *queued.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        QueuedTicket(Arc::clone(queued))
    }
}

impl Drop for QueuedTicket {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(|p| p.into_inner());
        *count -= 1;
        if *count == 0 {
            self.0.emptied.notify_all();
        }
    }
}

impl Engine {
    pub fn new(plan: Arc<Plan>, store: Arc<Store>) -> Engine {
        Engine {
            plan,
            store,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            batch_max_roots: DEFAULT_BATCH_MAX_ROOTS,
            applying: std::sync::Mutex::new(()),
            queued: Arc::default(),
            worker: worker::Worker::start("engine"),
            helper: worker::Worker::start("engine-helper"),
        }
    }

    pub fn with_max_document_bytes(self, max_document_bytes: usize) -> Engine {
        Engine {
            max_document_bytes,
            ..self
        }
    }

    pub fn with_batch_max_roots(self, batch_max_roots: usize) -> Engine {
        Engine {
            batch_max_roots,
            ..self
        }
    }

    /// Each of `views` with its sink and the newest sequence of that sink's
    /// outbox: where a recompute of them that just ended ends.
    pub fn recompute_ends(
        &self,
        views: &[String],
    ) -> Result<Vec<(String, String, u64)>, EngineError> {
        let mut ends = Vec::with_capacity(views.len());
        for view in &self.plan.views {
            if views.contains(&view.name) {
                let sequence = self.store.last_outbox_sequence(&view.sink)?;
                ends.push((view.name.clone(), view.sink.clone(), sequence));
            }
        }
        Ok(ends)
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Makes whole the outbox puts the store read back from its log, which
    /// name their root instead of carrying their document: called before
    /// any sink of this plan reads.
    pub fn settle_logged_puts(&self) -> Result<SettledPuts, EngineError> {
        logged_puts::settle(&self.store, &self.plan, self.max_document_bytes)
    }

    /// What sinks rewrite their targets from.
    pub fn output_reader(&self) -> OutputReader {
        OutputReader::new(
            Arc::clone(&self.plan),
            Arc::clone(&self.store),
            self.max_document_bytes,
        )
    }

    /// Applies a batch and commits it with its position, returning before
    /// the commit is durable (`outcome.commit` says when it is). A batch
    /// whose position is not after the stored one was applied before and is
    /// skipped.
    pub fn apply(&self, batch: &ChangeBatch) -> Result<BatchOutcome, EngineError> {
        let _applying = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let mut timings = BatchTimings::default();
        let (outcome, commit) = self.store.write_pipelined(|w| {
            let position = w.position()?;
            if let (Some(end), Some(stored)) = (batch.commit_end, position)
                && end <= stored
            {
                return Ok((BatchOutcome::default(), 0));
            }
            w.set_source_lsn(batch.commit_end.or(position));
            let mut touched = Touched::default();
            let at = LogRange {
                after: position,
                through: batch.commit_end,
            };
            for change in &batch.changes {
                rows::apply_change(w, &self.plan, change, &mut touched)
                    .map_err(|error| error.in_batch(at))?;
            }
            timings.rows = started.elapsed();
            let (mut outcome, deferred_roots) = self.refresh_or_defer(w, touched)?;
            outcome.changes_applied = batch.changes.len();
            if let Some(end) = batch.commit_end {
                w.set_position(end)?;
            }
            timings.refresh = started.elapsed() - timings.rows;
            Ok::<_, EngineError>((outcome, deferred_roots))
        })?;
        timings.commit = started.elapsed() - timings.rows - timings.refresh;
        let (outcome, deferred_roots) = outcome;
        // Most batches defer nothing: only then is another durable commit needed.
        let deferred = if deferred_roots > 0 {
            tracing::info!(
                refreshed = outcome.roots_refreshed,
                deferred = deferred_roots,
                batch_max_roots = self.batch_max_roots,
                "fan-out beyond batch_max_roots: the deferred roots are refreshed in later \
                 transactions"
            );
            let deferred_started = Instant::now();
            let deferred = self.refresh_pending()?;
            timings.deferred = deferred_started.elapsed();
            deferred
        } else {
            BatchOutcome::default()
        };
        Ok(BatchOutcome {
            roots_refreshed: outcome.roots_refreshed + deferred.roots_refreshed,
            outbox_entries: outcome.outbox_entries + deferred.outbox_entries,
            timings,
            commit,
            ..outcome
        })
    }

    /// Applies a batch on the engine's thread. The batch counts as being
    /// applied from this call on, for [`Engine::wait_until_idle`].
    pub fn spawn_apply(
        self: &Arc<Self>,
        batch: ChangeBatch,
    ) -> tokio::task::JoinHandle<Result<BatchOutcome, EngineError>> {
        let ticket = QueuedTicket::new(&self.queued);
        self.run(move |engine| {
            let _ticket = ticket;
            engine.apply(&batch)
        })
    }

    /// Returns once no batch is being applied or queued to be (blocking).
    pub fn wait_until_idle(&self) {
        let mut count = self.queued.count.lock().unwrap_or_else(|p| p.into_inner());
        while *count > 0 {
            count = self
                .queued
                .emptied
                .wait(count)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(count);
        drop(self.applying.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Refreshes up to `batch_max_roots` roots now and records the rest as
    /// pending, in the same transaction as the changes that touched them.
    /// Returns how many roots were deferred.
    fn refresh_or_defer(
        &self,
        w: &mut StateWriter,
        touched: Touched,
    ) -> Result<(BatchOutcome, usize), EngineError> {
        let mut deferred = 0;
        let mut now = Vec::new();
        for (view, root) in touched.into_roots() {
            if now.len() < self.batch_max_roots {
                now.push((view, root));
            } else {
                w.add_pending(&self.plan.views[view].name, &root)?;
                deferred += 1;
            }
        }
        let outcome = BatchOutcome {
            outbox_entries: self.refresh().roots(w, &now)?,
            roots_refreshed: now.len(),
            ..BatchOutcome::default()
        };
        Ok((outcome, deferred))
    }

    fn refresh(&self) -> outputs::Refresh<'_> {
        outputs::Refresh {
            plan: &self.plan,
            helper: &self.helper,
            max_document_bytes: self.max_document_bytes,
            plain: Arc::new(self.store.plain_allowance()),
        }
    }

    /// Refreshes roots left pending by large fan-outs (or by a crash), one
    /// bounded transaction at a time.
    pub fn refresh_pending(&self) -> Result<BatchOutcome, EngineError> {
        let mut total = BatchOutcome::default();
        loop {
            let done = self.store.write(|w| {
                let pending = w.take_pending(self.batch_max_roots)?;
                let position = w.position()?;
                w.set_source_lsn(position);
                // A root of a view that no longer exists is dropped.
                let roots: Vec<outputs::Root> = pending
                    .iter()
                    .filter_map(|(view_name, root)| {
                        let view = self.plan.views.iter().position(|v| &v.name == view_name)?;
                        Some((view, root.clone()))
                    })
                    .collect();
                let outcome = BatchOutcome {
                    outbox_entries: self.refresh().roots(w, &roots)?,
                    roots_refreshed: roots.len(),
                    ..BatchOutcome::default()
                };
                Ok::<_, EngineError>((pending.len(), outcome))
            })?;
            total.roots_refreshed += done.1.roots_refreshed;
            total.outbox_entries += done.1.outbox_entries;
            if done.0 < self.batch_max_roots {
                return Ok(total);
            }
        }
    }

    /// Starts a new initial snapshot: forgets every stored row and the source
    /// position, but keeps the last outputs, so that finishing the snapshot
    /// emits only what changed and deletes what disappeared. The rows to
    /// come are stored in the plan's layout, from the tables and columns
    /// `source_identity` names ([`crate::source::identity`]).
    pub fn begin_snapshot(&self, source_identity: &str) -> Result<(), EngineError> {
        self.store.write(|w| {
            w.clear_rows()?;
            w.set_layout(&self.plan.layout())?;
            w.set_source_identity(source_identity);
            Ok(())
        })
    }

    /// Stores snapshot rows of `table`, each in the table's stored-column order.
    ///
    /// Not durable by itself: rows and join index entries are all it
    /// writes, which no sink reads, and a snapshot that did not finish is
    /// taken again from the start. [`Engine::finish_snapshot`]'s durable
    /// commits make them durable; an fsync per chunk of a million-row table
    /// cost seconds.
    pub fn load_snapshot_rows(&self, table: &str, rows: &[Vec<Value>]) -> Result<(), EngineError> {
        let Some(table) = self.plan.table(table) else {
            return Ok(());
        };
        self.store
            .write_volatile(|w| rows::insert_snapshot_rows(w, table, rows))
    }

    /// Computes every root's output from the snapshot rows, deletes outputs of
    /// roots that no longer exist, then records `position`: from here on the
    /// stream continues.
    pub fn finish_snapshot(&self, position: Lsn) -> Result<BatchOutcome, EngineError> {
        let mut total = BatchOutcome::default();
        for view in 0..self.plan.views.len() {
            let outcome = self.rebuild_view(view)?;
            total.roots_refreshed += outcome.roots_refreshed;
            total.outbox_entries += outcome.outbox_entries;
        }
        self.store.write(|w| {
            w.set_position(position)?;
            Ok::<_, EngineError>(())
        })?;
        Ok(total)
    }

    /// Re-stores the rows kept under `stored_layout` in the plan's layout,
    /// when the plan needs no table or column that was not stored (views were
    /// removed, or read fewer columns): unneeded columns and tables are
    /// dropped and join indexes rebuilt, so no new snapshot is needed.
    /// Returns `false`, having changed nothing, when one is. One transaction:
    /// a crash leaves the old layout whole.
    pub fn narrow_layout(&self, stored_layout: &str) -> Result<bool, EngineError> {
        let Some(stored) = Plan::layout_columns(stored_layout) else {
            return Ok(false);
        };
        let mut projections = Vec::new();
        for table in self.plan.tables.values() {
            let Some(stored_columns) = stored.get(&table.name) else {
                return Ok(false);
            };
            let positions: Option<Vec<usize>> = table
                .stored_columns()
                .iter()
                .map(|column| stored_columns.iter().position(|c| c == column))
                .collect();
            match positions {
                // The key columns stay first, so the stored keys stay valid.
                Some(positions)
                    if positions[..table.primary_key_len]
                        .iter()
                        .copied()
                        .eq(0..table.primary_key_len) =>
                {
                    projections.push((table, positions))
                }
                _ => return Ok(false),
            }
        }
        self.store.write(|w| {
            for (table, positions) in &projections {
                w.clear_table_indexes(&table.name)?;
                for (pk, row) in w.table_rows_after(&table.name, None, usize::MAX)? {
                    let projected: Vec<Value> = positions
                        .iter()
                        .map(|&i| row.get(i).cloned().unwrap_or(Value::Null))
                        .collect();
                    w.put_row(&table.name, &pk, &projected)?;
                    rows::index_row(w, table, &pk, &projected, true)?;
                }
            }
            for table in stored.keys() {
                if self.plan.table(table).is_none() {
                    w.clear_table(table)?;
                }
            }
            w.set_layout(&self.plan.layout())?;
            Ok::<_, EngineError>(())
        })?;
        Ok(true)
    }

    /// Recomputes every root of each view whose definition changed since its
    /// outputs were built (a new key template or filter), from the state store.
    pub fn rebuild_changed_views(&self) -> Result<Vec<String>, EngineError> {
        let mut rebuilt = Vec::new();
        for (index, view) in self.plan.views.iter().enumerate() {
            let stored = self.store.view_hash(&view.name)?;
            if stored.as_deref() != Some(view.definition_hash.as_str()) {
                self.rebuild_view(index)?;
                rebuilt.push(view.name.clone());
            }
        }
        // Stores built before view records existed get them now.
        self.store.write(|w| {
            for view in &self.plan.views {
                w.set_view_record(&view.name, &view_record(view))?;
            }
            Ok::<_, EngineError>(())
        })?;
        Ok(rebuilt)
    }

    /// Recomputes every root of the view named `view` from the state store
    /// (a rebuild on demand); `None` when there is no such view. Batches go
    /// on meanwhile: each chunk of roots is its own transaction, after which
    /// `progress` hears (roots done, roots in all).
    pub fn recompute_view(
        &self,
        view: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Option<BatchOutcome>, EngineError> {
        let Some(index) = self.plan.views.iter().position(|v| v.name == view) else {
            return Ok(None);
        };
        let total = self
            .store
            .table_row_count(&self.plan.views[index].nodes[0].table)?;
        progress(0, total);
        outputs::refresh_all_roots(
            &self.store,
            &self.refresh(),
            index,
            self.batch_max_roots,
            &mut |done| progress(done as u64, total.max(done as u64)),
        )
        .map(Some)
    }

    /// Recomputes every root of one view and records its definition hash.
    /// An aggregate view built under another definition starts from no
    /// groups: the old ones were keyed and measured by the old definition
    /// (its sink rewrites the table once the hash is recorded).
    fn rebuild_view(&self, view: usize) -> Result<BatchOutcome, EngineError> {
        let plan = &self.plan.views[view];
        if matches!(plan.output, OutputPlan::Aggregate(_))
            && self.store.view_hash(&plan.name)?.as_deref() != Some(plan.definition_hash.as_str())
        {
            self.store.write(|w| w.clear_view_groups(&plan.name))?;
        }
        let outcome = outputs::refresh_all_roots(
            &self.store,
            &self.refresh(),
            view,
            self.batch_max_roots,
            &mut |_| {},
        )?;
        self.store.write(|w| {
            if !plan.claims_keys() {
                // Owners recorded while the view claimed its keys would be
                // stale should it claim them again.
                w.clear_output_keys(&plan.name)?;
            }
            w.set_view_hash(&plan.name, &plan.definition_hash)?;
            w.set_view_record(&plan.name, &view_record(plan))?;
            Ok::<_, EngineError>(())
        })?;
        Ok(outcome)
    }

    /// Refreshes every root of `view` that has a dead letter, as a new change
    /// would (after a fix in the data or the limits): each that now succeeds
    /// loses its dead letter and gets its output. `None` when there is no
    /// such view.
    pub fn retry_dead_letters(&self, view: &str) -> Result<Option<RetryOutcome>, EngineError> {
        let Some(index) = self.plan.views.iter().position(|v| v.name == view) else {
            return Ok(None);
        };
        let roots = self.store.write(|w| w.dead_letter_roots(view))?;
        let mut outbox_entries = 0;
        for chunk in roots.chunks(self.batch_max_roots) {
            outbox_entries += self.store.write(|w| {
                let position = w.position()?;
                w.set_source_lsn(position);
                let roots: Vec<outputs::Root> =
                    chunk.iter().map(|root| (index, root.clone())).collect();
                self.refresh().roots(w, &roots)
            })?;
        }
        Ok(Some(RetryOutcome {
            retried: roots.len(),
            still_failing: self.store.dead_letter_count(view)?,
            outbox_entries,
        }))
    }
}

/// What `viewkeeper drop` needs to know of a view once its file is gone.
fn view_record(view: &crate::plan::ViewPlan) -> ViewRecord {
    ViewRecord {
        kind: view.kind().to_owned(),
        sink: view.sink.clone(),
        table: match &view.output {
            OutputPlan::Aggregate(aggregate) => Some(aggregate.table.clone()),
            _ => None,
        },
    }
}

/// What retrying a view's dead letters did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RetryOutcome {
    pub retried: usize,
    pub still_failing: u64,
    #[serde(skip)]
    pub outbox_entries: usize,
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::view::Catalog;

    /// A root touched again and again in one batch is held a bounded number
    /// of times, and refreshed once.
    #[test]
    fn touched_roots_stay_bounded_however_often_they_are_touched() {
        let fan_out: Vec<Vec<u8>> = (0..100_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut touched = Touched::default();
        for _ in 0..200 {
            touched.add(1, fan_out.iter().cloned());
            assert!(
                touched.held() <= Touched::COMPACT_ABOVE + fan_out.len(),
                "{} roots held",
                touched.held()
            );
        }
        touched.add(0, [b"b".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        let roots: Vec<(usize, Vec<u8>)> = touched.into_roots().collect();
        let mut expected = vec![(0, b"a".to_vec()), (0, b"b".to_vec())];
        expected.extend(fan_out.into_iter().map(|root| (1, root)));
        assert_eq!(roots, expected);
    }

    /// A batch spawned but still waiting for the engine's thread counts as
    /// being applied: a stopped pipeline must not go on before it lands.
    #[test]
    fn wait_until_idle_waits_for_a_queued_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap());
        let plan = Arc::new(Plan::build(&[], &Catalog::default()).unwrap());
        let engine = Arc::new(Engine::new(plan, Arc::clone(&store)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _entered = runtime.enter();

        // Occupy the engine's thread, so the batch stays queued.
        let (release, released) = mpsc::channel::<()>();
        let blocker = engine.run(move |_| {
            let _ = released.recv();
            Ok(())
        });
        let end = Lsn(42);
        let batch = ChangeBatch {
            changes: Vec::new(),
            commit_end: Some(end),
            commit_time_micros: 0,
        };
        let applied = engine.spawn_apply(batch);

        let (idle, idle_reported) = mpsc::channel();
        let waiter = {
            let (engine, store) = (Arc::clone(&engine), Arc::clone(&store));
            std::thread::spawn(move || {
                engine.wait_until_idle();
                idle.send(store.position().unwrap()).unwrap();
            })
        };
        assert!(
            idle_reported
                .recv_timeout(Duration::from_millis(200))
                .is_err(),
            "wait_until_idle returned while a batch was still queued"
        );
        release.send(()).unwrap();
        let position = idle_reported
            .recv_timeout(Duration::from_secs(10))
            .expect("wait_until_idle returned after the batch");
        assert_eq!(position, Some(end));
        waiter.join().unwrap();
        runtime.block_on(async {
            blocker.await.unwrap().unwrap();
            applied.await.unwrap().unwrap();
        });
    }
}
