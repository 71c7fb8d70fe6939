//! The aggregate sink: drains an aggregate view's outbox into its SQL table.
//!
//! One sink per aggregate view. Its outbox holds final group rows (put this
//! row, delete this group), so a batch is folded to the last entry of each
//! group and written in one SQL transaction together with a checkpoint row
//! `(view, store id, definition hash, outbox sequence)` in
//! [`CHECKPOINT_TABLE`]: a crash before the commit leaves neither, a replay
//! after it starts past the entries it covers. Groups are written in
//! group-key order, so two writers of one table cannot deadlock; a
//! serialization failure or deadlock is retried at once, anything else with
//! backoff.
//!
//! When the checkpoint is missing, belongs to another state store, or was
//! written for another definition of the view (or the table is gone), the sink
//! recreates the table and fills it from the groups in the state store, in
//! one transaction, before it goes on with the outbox.
//!
//! A view's `table:` may name a table someone else made: viewkeeper drops,
//! empties or replaces only tables that carry its [`TABLE_MARKER`] (or that
//! an earlier viewkeeper wrote before tables carried it, see
//! [`TableOwner::EarlierViewkeeper`]). Any other table stops the view's sink
//! with [`AggregateSinkError::ForeignTable`], checked again inside the
//! transaction that would replace it.
//!
//! Two viewkeepers (two data directories, two slots) must not write one
//! table: each would write the whole table anew over the other's rows, for
//! as long as both run. A sink first claims its table
//! ([`SqlTarget::claim`]: in PostgreSQL, an advisory lock its session holds
//! while the process runs; in SQLite, a locked file beside the database); a
//! table another viewkeeper holds stops the sink with
//! [`AggregateSinkError::Contested`] until that one stops.
//!
//! The target is PostgreSQL ([`postgres`]) or SQLite ([`sqlite`]).

pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::status::SinkHealth;
use async_trait::async_trait;
use tokio::sync::{Notify, mpsc, watch};

use crate::change::Value;
use crate::engine::values_from_json;
use crate::expr::ValueType;
use crate::plan::{AggregatePlan, ViewPlan};
use crate::sink::RewriteSignal;
use crate::source::connection::redact_url;
use crate::state::keycode::encode_values;
use crate::state::{OutboxOp, OutboxRead, Store, StoreError};

/// Where every aggregate sink of a target database keeps its checkpoint.
pub const CHECKPOINT_TABLE: &str = "viewkeeper_checkpoints";
/// How every table viewkeeper creates is marked (PostgreSQL: its comment;
/// SQLite, which has no comments on tables: a comment in its `CREATE TABLE`),
/// so that it never mistakes a user's table of the same name for its own.
pub const TABLE_MARKER: &str = "viewkeeper aggregate table";
/// Outbox entries per SQL transaction at most.
const ENTRIES_PER_BATCH: usize = 10_000;
/// Groups per chunk when a table is filled from the state store.
const REWRITE_CHUNK: usize = 5_000;
/// Immediate retries of a transaction that lost a serialization conflict.
const CONFLICT_RETRIES: usize = 5;
/// How often an idle sink makes sure its table is still there: one dropped
/// by hand is written again without waiting for the view's next change.
const TABLE_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The outbox name of an aggregate view's sink.
pub fn sink_name(view: &str) -> String {
    format!("aggregate:{view}")
}

#[derive(Debug, thiserror::Error)]
pub enum AggregateSinkError {
    #[error("aggregate table {table}: {}", crate::source::sql_error_text(.source))]
    Sql {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("aggregate target {url}: {message}")]
    Target { url: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("view {view}: outbox entry {sequence} is not a group row: {reason}")]
    Entry {
        view: String,
        sequence: u64,
        reason: String,
    },
    #[error("state store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The checkpoint row no longer names this sink's state store and
    /// definition: another viewkeeper (another data directory or slot)
    /// wrote the table since. The sink writes it anew.
    #[error(
        "view {view}: aggregate table {table} was written by another viewkeeper \
         (its checkpoint row names another state store, or is gone)"
    )]
    CheckpointTaken { view: String, table: String },
    /// Another viewkeeper holds the table's claim (its lock, in
    /// PostgreSQL): retried with backoff, so this one takes the table over
    /// once the other stops.
    #[error(
        "view {view}: aggregate table {table} is written by another viewkeeper ({holder}), \
         which holds its claim on it: two instances cannot share a table, as each would write \
         over the other's rows. This one waits, and takes the table over when the other \
         stops; to run both, give one of them another `table:` or `aggregates_url`"
    )]
    Contested {
        view: String,
        table: String,
        holder: String,
    },
    /// Needs an operator: retried with backoff, so the view starts once the
    /// table is dropped.
    #[error("view {view} ({file}): {}", foreign_table_reason(.table))]
    ForeignTable {
        view: String,
        file: String,
        table: String,
    },
}

/// Why a view may not write `table` (`run` and `check` say the same).
pub fn foreign_table_reason(table: &str) -> String {
    format!(
        "table {table} exists and was not created by viewkeeper; choose another `table:` or drop it"
    )
}

impl AggregateSinkError {
    /// The role may not read or write the table (`insufficient_privilege`).
    pub fn is_permission_denied(&self) -> bool {
        matches!(
            self,
            AggregateSinkError::Sql { source: sqlx::Error::Database(error), .. }
                if error.code().as_deref() == Some("42501")
        )
    }

    /// A conflict with another transaction, worth an immediate retry.
    fn is_conflict(&self) -> bool {
        let AggregateSinkError::Sql {
            source: sqlx::Error::Database(error),
            ..
        } = self
        else {
            return false;
        };
        // serialization_failure, deadlock_detected; SQLite: database is busy.
        matches!(error.code().as_deref(), Some("40001" | "40P01" | "5"))
    }
}

/// The table an aggregate view writes, as the target sees it.
#[derive(Debug, Clone)]
pub struct TargetTable {
    pub view: String,
    /// The view file, named when the table turns out to be someone else's.
    pub file: PathBuf,
    /// Schema-qualified (`analytics.category_daily_sales`).
    pub name: String,
    /// Group columns first, then measures, with their types.
    pub columns: Vec<(String, ValueType)>,
    /// `columns[..key_len]` are the group columns.
    pub key_len: usize,
    /// Whether a group column can be NULL, so that it cannot be a primary key.
    pub key_nullable: bool,
    pub definition_hash: String,
}

impl TargetTable {
    pub fn of(view: &ViewPlan, plan: &AggregatePlan) -> TargetTable {
        TargetTable {
            view: view.name.clone(),
            file: view.file.clone(),
            name: plan.table.clone(),
            columns: plan.columns(),
            key_len: plan.group.len(),
            key_nullable: plan.group.iter().any(|key| key.nullable),
            definition_hash: view.definition_hash.clone(),
        }
    }

    /// The marker written on the table when viewkeeper creates it; it
    /// begins with [`TABLE_MARKER`].
    pub fn marker(&self) -> String {
        format!(
            "{TABLE_MARKER} of view {}: viewkeeper drops or replaces only tables with this mark",
            self.view
        )
    }

    /// The error that stops the sink when the table is someone else's.
    pub fn foreign(&self) -> AggregateSinkError {
        AggregateSinkError::ForeignTable {
            view: self.view.clone(),
            file: self.file.display().to_string(),
            table: self.name.clone(),
        }
    }

    /// The error of a batch that found the checkpoint row another
    /// viewkeeper's.
    pub fn checkpoint_taken(&self) -> AggregateSinkError {
        AggregateSinkError::CheckpointTaken {
            view: self.view.clone(),
            table: self.name.clone(),
        }
    }

    fn sql_error(&self) -> impl Fn(sqlx::Error) -> AggregateSinkError + '_ {
        |source| AggregateSinkError::Sql {
            table: self.name.clone(),
            source,
        }
    }
}

/// Who made the table a view's `table:` names, as its database tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOwner {
    /// There is no such table: the sink creates it.
    Nobody,
    /// viewkeeper created it: it carries [`TABLE_MARKER`].
    Viewkeeper,
    /// A viewkeeper from before the marker wrote it: it has no marker, but
    /// the view's checkpoint row was written for this very view file (whose
    /// hash covers `table:`). The sink rewrites it once, with the marker.
    EarlierViewkeeper,
    /// Anyone else: viewkeeper must not touch it.
    Someone,
}

impl TableOwner {
    /// The owner of a table that exists, from whether it carries the marker
    /// and from the definition hash of the view's checkpoint row, if any.
    /// `definition_hash` is the view file's, `None` when unknown (then a
    /// table without the marker is never taken for viewkeeper's).
    pub fn of_existing(
        marked: bool,
        checkpoint_hash: Option<&str>,
        definition_hash: Option<&str>,
    ) -> TableOwner {
        if marked {
            TableOwner::Viewkeeper
        } else if checkpoint_hash.is_some() && checkpoint_hash == definition_hash {
            TableOwner::EarlierViewkeeper
        } else {
            TableOwner::Someone
        }
    }

    /// Whether viewkeeper may drop, empty or replace the table.
    pub fn is_viewkeeper(self) -> bool {
        matches!(
            self,
            TableOwner::Nobody | TableOwner::Viewkeeper | TableOwner::EarlierViewkeeper
        )
    }
}

/// What the checkpoint row of a view says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub store_id: String,
    pub definition_hash: String,
    pub sequence: u64,
}

impl Checkpoint {
    /// From a checkpoint row: store id, definition hash, sequence.
    fn from_row((store_id, definition_hash, sequence): (String, String, i64)) -> Checkpoint {
        Checkpoint {
            store_id,
            definition_hash,
            sequence: u64::try_from(sequence).unwrap_or(0),
        }
    }

    /// The sequence as SQL's bigint.
    fn sql_sequence(&self) -> i64 {
        i64::try_from(self.sequence).unwrap_or(i64::MAX)
    }
}

/// One transaction's worth of group rows, each group once, in key order.
#[derive(Debug, Default)]
pub struct GroupBatch {
    /// Whole rows (group columns, then measures).
    pub upserts: Vec<Vec<Value>>,
    /// Group key values.
    pub deletes: Vec<Vec<Value>>,
}

/// Group rows streamed from the state store to fill a table from scratch.
pub type RowChunks = mpsc::Receiver<RowChunk>;

pub enum RowChunk {
    Rows(Vec<Vec<Value>>),
    /// Every row was sent: only now may the target commit.
    End,
}

/// A SQL database that holds aggregate tables.
#[async_trait]
pub trait SqlTarget: Send + Sync {
    /// The table a view's schema-qualified `table:` names, as this database
    /// names it (in logs and errors too).
    fn table_name(&self, qualified: &str) -> String {
        qualified.to_owned()
    }
    /// Claims `table` for the viewkeeper of state store `store_id` for as
    /// long as this process runs; [`AggregateSinkError::Contested`] while
    /// another viewkeeper holds it. Called again, it checks the claim still
    /// stands (a restarted server forgot it, a lock file was deleted) and
    /// takes it again.
    async fn claim(&self, table: &TargetTable, store_id: &str) -> Result<(), AggregateSinkError>;
    /// Who made the view's table. Reads only: creates nothing, not even the
    /// checkpoint table (`viewkeeper check` asks it too).
    async fn owner(&self, table: &TargetTable) -> Result<TableOwner, AggregateSinkError>;
    /// The view's checkpoint, or `None` when it or the table is missing or
    /// the table was written by an earlier viewkeeper (so that it is
    /// rewritten with the marker). [`AggregateSinkError::ForeignTable`] when
    /// the table is someone else's.
    async fn checkpoint(
        &self,
        table: &TargetTable,
    ) -> Result<Option<Checkpoint>, AggregateSinkError>;
    /// In one transaction: checks the table is viewkeeper's (else
    /// [`AggregateSinkError::ForeignTable`], having touched nothing), drops
    /// and creates it with the marker, inserts every row of `rows`, and
    /// records `checkpoint`; commits only when `rows` ends with
    /// [`RowChunk::End`]. Returns how many rows it wrote.
    async fn rewrite(
        &self,
        table: &TargetTable,
        rows: &mut RowChunks,
        checkpoint: &Checkpoint,
    ) -> Result<u64, AggregateSinkError>;
    /// In one transaction: drops the table `name` of `view` if it is
    /// viewkeeper's (`definition_hash`: the view file's as the state store
    /// last knew it, to recognise a table of an earlier viewkeeper) and
    /// forgets the view's checkpoint (`viewkeeper drop VIEW`). Returns
    /// whether it dropped the table.
    async fn drop_table(
        &self,
        view: &str,
        name: &str,
        definition_hash: Option<&str>,
    ) -> Result<bool, AggregateSinkError>;
    /// In one transaction: applies `batch` and records `checkpoint`.
    async fn apply(
        &self,
        table: &TargetTable,
        batch: &GroupBatch,
        checkpoint: &Checkpoint,
    ) -> Result<(), AggregateSinkError>;
}

/// The target at `url` to read, or `None` for a SQLite file that does not
/// exist yet (it holds no table, and opening it would create it).
pub async fn connect_existing(url: &str) -> Result<Option<Arc<dyn SqlTarget>>, AggregateSinkError> {
    if url.starts_with("sqlite:") {
        let target = sqlite::SqliteTarget::open_existing(url)?;
        return Ok(target.map(|target| Arc::new(target) as Arc<dyn SqlTarget>));
    }
    connect(url).await.map(Some)
}

/// Opens the target database named by `url`: `postgres://…` or `sqlite:…`.
pub async fn connect(url: &str) -> Result<Arc<dyn SqlTarget>, AggregateSinkError> {
    let target: Arc<dyn SqlTarget> = if url.starts_with("sqlite:") {
        Arc::new(sqlite::SqliteTarget::connect(url).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(postgres::PgTarget::connect(url).await?)
    } else {
        return Err(AggregateSinkError::Target {
            url: redact_url(url),
            message: "expected a postgres:// or sqlite: URL".into(),
        });
    };
    Ok(target)
}

pub struct AggregateSink {
    table: TargetTable,
    /// The outbox name: `aggregate:{view}`.
    sink: String,
    store: Arc<Store>,
    store_id: String,
    target: Arc<dyn SqlTarget>,
    /// Last sequence applied, published for status and tests.
    applied: watch::Sender<u64>,
    rewrites: RewriteSignal,
}

impl AggregateSink {
    pub fn new(
        mut table: TargetTable,
        store: Arc<Store>,
        store_id: String,
        target: Arc<dyn SqlTarget>,
        rewrites: RewriteSignal,
    ) -> AggregateSink {
        table.name = target.table_name(&table.name);
        AggregateSink {
            sink: sink_name(&table.view),
            table,
            store,
            store_id,
            target,
            applied: watch::channel(0).0,
            rewrites,
        }
    }

    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Drains the outbox until `shutdown` turns true, retrying failures.
    pub async fn run(self, wake: Arc<Notify>, health: SinkHealth, shutdown: watch::Receiver<bool>) {
        let label = self.sink.clone();
        crate::sink::retry_until_shutdown(
            &label,
            &health,
            shutdown,
            Duration::from_secs(10),
            || self.drain(&wake, &health),
        )
        .await;
    }

    async fn drain(&self, wake: &Notify, health: &SinkHealth) -> Result<(), AggregateSinkError> {
        self.target.claim(&self.table, &self.store_id).await?;
        let mut applied = match self.target.checkpoint(&self.table).await? {
            Some(checkpoint) if self.is_ours(&checkpoint) => checkpoint.sequence,
            _ => self.rewrite_when_built(wake).await?,
        };
        // After a crash the store may bring back entries applied before.
        super::release_outbox::<AggregateSinkError>(&self.store, &self.sink, applied).await?;
        self.applied.send_replace(applied);
        health.ok();
        let mut table_checked = Instant::now();
        loop {
            if let Some(ticket) = self.rewrites.pending() {
                applied = self.rewrite_when_built(wake).await?;
                self.rewrites.finished(ticket);
                self.applied.send_replace(applied);
            }
            let (store, sink, after) = (Arc::clone(&self.store), self.sink.clone(), applied);
            let read = tokio::task::spawn_blocking(move || {
                store.outbox_after(&sink, after, ENTRIES_PER_BATCH)
            })
            .await??;
            let OutboxRead::Entries(entries) = read else {
                tracing::warn!(
                    table = %self.table.name,
                    "the aggregate sink fell so far behind that its outbox entries were dropped: \
                     writing the table anew"
                );
                applied = self.rewrite_when_built(wake).await?;
                self.applied.send_replace(applied);
                continue;
            };
            let Some(&(last, _)) = entries.last() else {
                if table_checked.elapsed() >= TABLE_CHECK_INTERVAL {
                    table_checked = Instant::now();
                    self.target.claim(&self.table, &self.store_id).await?;
                    if self.table_is_gone().await? {
                        applied = self.rewrite_when_built(wake).await?;
                        self.applied.send_replace(applied);
                        continue;
                    }
                    if !self.checkpoint_is_ours().await? {
                        let taken = self.table.checkpoint_taken();
                        applied = self.rewrite_taken(wake, health, &taken).await?;
                        continue;
                    }
                }
                super::wait_for_wake(wake).await;
                continue;
            };
            let batch = self.fold(entries)?;
            let checkpoint = self.checkpoint_at(last);
            match self.apply_with_retries(&batch, &checkpoint).await {
                Err(error @ AggregateSinkError::CheckpointTaken { .. }) => {
                    applied = self.rewrite_taken(wake, health, &error).await?;
                    continue;
                }
                result => result?,
            }
            crate::telemetry::record_sink_applied(
                &self.sink,
                batch.upserts.len() + batch.deletes.len(),
            );
            applied = last;
            health.ok();
            self.applied.send_replace(applied);
            super::release_outbox::<AggregateSinkError>(&self.store, &self.sink, last).await?;
        }
    }

    /// Whether the table was dropped under the sink (it then says so); an
    /// error if someone else's table took its place.
    async fn table_is_gone(&self) -> Result<bool, AggregateSinkError> {
        match self.target.owner(&self.table).await? {
            TableOwner::Nobody => {
                tracing::warn!(
                    view = %self.table.view,
                    table = %self.table.name,
                    "the aggregate table is gone (dropped by hand?): writing it anew"
                );
                Ok(true)
            }
            TableOwner::Someone => Err(self.table.foreign()),
            TableOwner::Viewkeeper | TableOwner::EarlierViewkeeper => Ok(false),
        }
    }

    /// Whether the table's checkpoint row is still this sink's.
    async fn checkpoint_is_ours(&self) -> Result<bool, AggregateSinkError> {
        let checkpoint = self.target.checkpoint(&self.table).await?;
        Ok(checkpoint.is_some_and(|checkpoint| self.is_ours(&checkpoint)))
    }

    /// Writes the table anew after another viewkeeper wrote it (`error`
    /// says so): a loss of its data, as far as this sink can tell.
    async fn rewrite_taken(
        &self,
        wake: &Notify,
        health: &SinkHealth,
        error: &AggregateSinkError,
    ) -> Result<u64, AggregateSinkError> {
        tracing::warn!(%error, "writing the aggregate table anew from the state store");
        health.data_lost();
        let applied = self.rewrite_when_built(wake).await?;
        health.rewritten();
        self.applied.send_replace(applied);
        Ok(applied)
    }

    fn is_ours(&self, checkpoint: &Checkpoint) -> bool {
        checkpoint.store_id == self.store_id
            && checkpoint.definition_hash == self.table.definition_hash
    }

    fn checkpoint_at(&self, sequence: u64) -> Checkpoint {
        Checkpoint {
            store_id: self.store_id.clone(),
            definition_hash: self.table.definition_hash.clone(),
            sequence,
        }
    }

    /// Keeps the last entry of each group, in group-key order.
    fn fold(
        &self,
        entries: Vec<(u64, crate::state::OutboxEntry)>,
    ) -> Result<GroupBatch, AggregateSinkError> {
        // By encoded group key: the row to write, or `Err(key)` to delete.
        let mut last: BTreeMap<Vec<u8>, Result<Vec<Value>, Vec<Value>>> = BTreeMap::new();
        for (sequence, entry) in entries {
            let bad = |reason: String| AggregateSinkError::Entry {
                view: self.table.view.clone(),
                sequence,
                reason,
            };
            let decode = |text: &str| values_from_json(text).map_err(|e| bad(e.to_string()));
            let (key, change) = match &entry.op {
                OutboxOp::Put { key, document } => (decode(key)?, Ok(decode(document)?)),
                OutboxOp::Delete { key } => {
                    let key = decode(key)?;
                    (key.clone(), Err(key))
                }
            };
            let (values, width) = match &change {
                Ok(row) => (row, self.table.columns.len()),
                Err(key) => (key, self.table.key_len),
            };
            if key.len() != self.table.key_len || values.len() != width {
                return Err(bad(format!(
                    "{} key values and {} row values for a table of {} group and {} columns",
                    key.len(),
                    values.len(),
                    self.table.key_len,
                    self.table.columns.len()
                )));
            }
            last.insert(encode_values(&key), change);
        }
        let mut batch = GroupBatch::default();
        for change in last.into_values() {
            match change {
                Ok(row) => batch.upserts.push(row),
                Err(key) => batch.deletes.push(key),
            }
        }
        Ok(batch)
    }

    async fn apply_with_retries(
        &self,
        batch: &GroupBatch,
        checkpoint: &Checkpoint,
    ) -> Result<(), AggregateSinkError> {
        let mut attempt = 0;
        loop {
            match self.target.apply(&self.table, batch, checkpoint).await {
                Err(error) if error.is_conflict() && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(view = %self.table.view, %error, attempt, "aggregate sink: transaction conflict, retrying");
                }
                result => return result,
            }
        }
    }

    /// [`Self::rewrite`], once the engine has built the groups for this
    /// definition (first snapshot, or a rebuild for a new definition: it
    /// wakes the sink after each batch).
    async fn rewrite_when_built(&self, wake: &Notify) -> Result<u64, AggregateSinkError> {
        loop {
            if let Some(sequence) = self.rewrite().await? {
                super::release_outbox::<AggregateSinkError>(&self.store, &self.sink, sequence)
                    .await?;
                return Ok(sequence);
            }
            super::wait_for_wake(wake).await;
        }
    }

    /// Recreates the table from the groups in the state store; returns the
    /// outbox sequence that covers, or `None` (and writes nothing) while the
    /// groups are not built for this definition yet.
    async fn rewrite(&self) -> Result<Option<u64>, AggregateSinkError> {
        let (chunks_tx, mut chunks) = mpsc::channel(4);
        let (sequence_tx, sequence_rx) = tokio::sync::oneshot::channel();
        let (store, table, sink) = (
            Arc::clone(&self.store),
            self.table.clone(),
            self.sink.clone(),
        );
        let reader = tokio::task::spawn_blocking(move || {
            let on_sequence = |sequence| {
                let _ = sequence_tx.send(sequence);
            };
            // A closed channel means the writer failed; it reports why.
            let each_chunk = |chunk: Vec<(Vec<Value>, Vec<Value>)>| {
                let rows: Vec<Vec<Value>> = chunk.into_iter().map(|(_, row)| row).collect();
                if let Some(row) = rows.iter().find(|row| row.len() != table.columns.len()) {
                    return Err(StoreError::Corrupt {
                        what: "group row",
                        reason: format!(
                            "{} values for the {} columns of {}",
                            row.len(),
                            table.columns.len(),
                            table.name
                        ),
                    });
                }
                let _ = chunks_tx.blocking_send(RowChunk::Rows(rows));
                Ok(())
            };
            let built = store.group_rows_snapshot(
                &table.view,
                &table.definition_hash,
                &sink,
                REWRITE_CHUNK,
                on_sequence,
                each_chunk,
            )?;
            if built.is_some() {
                let _ = chunks_tx.blocking_send(RowChunk::End);
            }
            Ok::<_, StoreError>(built)
        });
        let Ok(sequence) = sequence_rx.await else {
            // Not built yet, or the read failed before it began: say which.
            return match reader.await?? {
                None => Ok(None),
                Some(_) => Err(StoreError::Corrupt {
                    what: "group snapshot",
                    reason: "ended without a sequence".into(),
                }
                .into()),
            };
        };
        let checkpoint = self.checkpoint_at(sequence);
        let written = self
            .target
            .rewrite(&self.table, &mut chunks, &checkpoint)
            .await;
        // A failed read ends the rows without `End`: nothing was committed.
        reader.await??;
        let rows = written?;
        tracing::info!(view = %self.table.view, table = %self.table.name, rows, sequence, "aggregate table written from the state store");
        Ok(Some(sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::TableOwner;

    #[test]
    fn a_marked_table_is_viewkeepers_whatever_the_checkpoint_says() {
        assert_eq!(
            TableOwner::of_existing(true, None, Some("h1")),
            TableOwner::Viewkeeper
        );
        assert_eq!(
            TableOwner::of_existing(true, Some("h0"), Some("h1")),
            TableOwner::Viewkeeper
        );
    }

    #[test]
    fn an_unmarked_table_is_an_earlier_viewkeepers_only_for_the_same_view_file() {
        assert_eq!(
            TableOwner::of_existing(false, Some("h1"), Some("h1")),
            TableOwner::EarlierViewkeeper
        );
        // The file changed, perhaps its `table:` too: the table may be a user's.
        assert_eq!(
            TableOwner::of_existing(false, Some("h0"), Some("h1")),
            TableOwner::Someone
        );
        assert_eq!(
            TableOwner::of_existing(false, None, Some("h1")),
            TableOwner::Someone
        );
        assert_eq!(
            TableOwner::of_existing(false, None, None),
            TableOwner::Someone
        );
        assert!(!TableOwner::Someone.is_viewkeeper());
        assert!(TableOwner::Nobody.is_viewkeeper());
    }
}
