//! The embedded state store: tables held in memory, made durable by a
//! write-ahead log and checkpoints under `<data_dir>/state/` ([`wal`]).
//!
//! It holds what the views need and nothing else: the stored columns of every
//! source row, the join indexes that find the root rows a change touches, the
//! last output of every root, one outbox per sink, and the source position.
//! The engine writes all of it in one transaction per batch, so the position
//! is durable exactly when the effects of the changes before it are. A
//! batch's commit is synced on a thread of the store's while the engine
//! computes the next one; nothing outside the writer sees it before it is
//! durable ([`durability`]).
//!
//! Why in memory: every batch reads rows at random all over the tables
//! (a product's orders, an order's items), and an on-disk B-tree spent most
//! of the engine's time on page lookups, copies and commits
//! (docs/decisions.md, "State in memory, a log on disk").

mod dead_letters;
mod durability;
mod entry;
mod groups;
pub mod keycode;
mod names;
mod outbox;
mod outboxes;
mod output_keys;
mod read_cache;
mod reader;
mod redo;
mod tables;
mod view_records;
mod wal;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use dead_letters::DeadLetter;
pub use durability::CommitNumber;
pub use groups::{GroupValues, StoredGroup};
pub use outbox::{
    NamedPut, OutboxEntry, OutboxOp, PlainAllowance, PreparedOutput, StoredOutput,
    decode_output_key as output_record_key,
};
pub use outboxes::DEFAULT_OUTBOX_BUDGET;
pub use output_keys::{Claim, Released};
pub use read_cache::{Keys, Row};
pub use reader::StateReader;
pub use tables::packing_order;
pub use view_records::ViewRecord;
pub use wal::DEFAULT_MIN_LOG_BYTES;
pub use writer::{OutputChange, StateWriter};

use durability::{Durability, Syncer};
use outboxes::Outboxes;
use redo::RedoWriter;
use tables::{Changes, Table, Tables};
use wal::Wal;

use crate::change::Lsn;

const META_POSITION: &str = "source_position";
const META_LAYOUT: &str = "layout";
const META_SOURCE_IDENTITY: &str = "source_identity";
const META_STORE_ID: &str = "store_id";

/// The layout of keys and values this version writes, recorded in every
/// state file. 8: the log keeps outbox puts by the root they name; 7: the
/// inputs of `min`/`max`/`count_distinct` keep each text of an equal value;
/// 6: a numeric sum counts its inputs' scales; 5: numerics in keys by value
/// (`1.00` is `1`); 4: integers in keys take the bytes they need; 3: tables
/// in memory with a log (1 and 2 were redb files). A store of a format
/// before [`OLDEST_READ_FORMAT`] is started anew; a version that reads
/// formats only up to an earlier one refuses this one's files.
const FORMAT: u64 = 8;

/// The oldest format this version reads as it is: 7's files differ from 8's
/// only in that every outbox put is logged whole.
const OLDEST_READ_FORMAT: u64 = 7;

/// The file of a store written by viewkeeper before format 3.
const REDB_FILE: &str = "state.redb";
/// The directory of this store under the data directory.
const STATE_DIR: &str = "state";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {action} {path}: {source}")]
    Io {
        path: String,
        action: &'static str,
        source: std::io::Error,
    },
    #[error(
        "state store: the log {path} could not be cut back after a failed write; \
         restart viewkeeper (the log is replayed up to its last whole commit)"
    )]
    LogBroken { path: String },
    #[error(
        "state store: {reason}; it takes no more commits: restart viewkeeper \
         (the log is replayed up to its last whole commit, and the source resends the rest)"
    )]
    SyncFailed { reason: String },
    #[error("state store: corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error(
        "state store: every id for table, index and view names is taken; \
         delete the data directory's state/ to start a new store (a new snapshot follows)"
    )]
    NamesExhausted,
    #[error(
        "state store {path} was written by a newer viewkeeper (format {found}; this one reads {FORMAT})"
    )]
    NewerFormat { path: String, found: u64 },
    #[error(
        "state store {path} is locked by another viewkeeper process (only one may use a data directory)"
    )]
    Locked { path: String },
}

/// How the store uses memory and disk.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A checkpoint is written when the log since the last one holds this
    /// much and more than that checkpoint's size (`state_checkpoint_mb`).
    pub checkpoint_log_bytes: u64,
    /// What all outboxes may hold in memory together (`outbox_memory_mb`).
    pub outbox_budget_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            checkpoint_log_bytes: DEFAULT_MIN_LOG_BYTES,
            outbox_budget_bytes: DEFAULT_OUTBOX_BUDGET,
        }
    }
}

/// What a sink finds in its outbox after its position.
#[derive(Debug)]
pub enum OutboxRead {
    /// The next entries, in order (none: it is up to date).
    Entries(Vec<(u64, OutboxEntry)>),
    /// Entries after its position were dropped to bound memory: it must
    /// rewrite its target from the state store, then read on from the
    /// sequence that rewrite covers.
    Gap,
}

/// Reads of stored rows and join indexes, in a write transaction
/// ([`StateWriter`]) or a read one ([`StateReader`]): what computing an
/// output needs.
pub trait ReadRows {
    /// The stored row of `table` under the encoded primary key `pk`.
    fn get_row(&self, table: &str, pk: &[u8]) -> Result<Option<Row>, StoreError>;
    /// Primary keys of the rows of `table` whose `index` columns equal the
    /// encoded `values`.
    fn index_lookup(&self, table: &str, index: &str, values: &[u8]) -> Result<Keys, StoreError>;
    /// The lowest of the primary keys [`ReadRows::index_lookup`] gives,
    /// without reading the others.
    fn index_first(
        &self,
        table: &str,
        index: &str,
        values: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The tables and the log they are made durable by: one writer at a time.
struct Durable {
    tables: Tables,
    wal: Wal,
    /// The buffer of the next transaction's redo record.
    redo: RedoWriter,
    /// The last commit since the store was opened.
    last_commit: CommitNumber,
}

/// How a write transaction's commit reaches the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Synced before the write returns.
    Now,
    /// Synced on the sync thread after it returns ([`Store::write_pipelined`]).
    Pipelined,
    /// Synced by whichever sync comes next ([`Store::write_volatile`]).
    Later,
}

/// Handle to the state store; cheap to share behind an `Arc`.
pub struct Store {
    state: Mutex<Durable>,
    /// The outboxes, and the commits whose entries wait for a sync.
    durability: Arc<Durability>,
    syncer: Syncer,
    /// Dead letters per view as of the last commit: `/status` and
    /// `/metrics` read them without waiting for a batch being applied.
    dead_letter_counts: RwLock<HashMap<String, u64>>,
    /// Held (an advisory lock) while the store is open; dropped last.
    _lock: File,
}

impl Store {
    /// Opens (or creates) the store under `dir`: reads its last checkpoint
    /// and replays its log. A store of an earlier format (a `state.redb`
    /// file) is removed: a new snapshot rebuilds it, and the sinks, finding
    /// their checkpoints foreign, rewrite their targets. Nothing is lost
    /// that the source does not hold.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let old = dir.join(REDB_FILE);
        if old.exists() {
            tracing::warn!(
                path = %old.display(),
                format = FORMAT,
                "state store written in an earlier format: removed, a new snapshot follows"
            );
            std::fs::remove_file(&old).map_err(|source| StoreError::Io {
                path: old.display().to_string(),
                action: "removing",
                source,
            })?;
        }
        let recovered = Wal::open(&dir.join(STATE_DIR), options.checkpoint_log_bytes)?;
        let outboxes = Outboxes::new(options.outbox_budget_bytes);
        outboxes.restore(recovered.outboxes, newest_sequences(&recovered.tables)?);
        let durability = Arc::new(Durability::new(outboxes));
        let store = Store {
            dead_letter_counts: RwLock::new(dead_letters::count_by_view(&recovered.tables)?),
            state: Mutex::new(Durable {
                tables: recovered.tables,
                wal: recovered.wal,
                redo: RedoWriter::default(),
                last_commit: CommitNumber::default(),
            }),
            syncer: Syncer::start(Arc::clone(&durability)),
            durability,
            _lock: recovered.lock,
        };
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Durable> {
        // A panic while applying left the tables as its transaction's
        // rollback did not run; the service stops on a panic anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store with every commit durable: how everything outside the
    /// writer reads it. A reader must not see what a crash could take
    /// back (a sink rewriting its target from it would record a position
    /// the store may never reach again), so commits still waiting for the
    /// sync thread are synced here first.
    fn lock_durable(&self) -> Result<MutexGuard<'_, Durable>, StoreError> {
        let mut state = self.lock();
        if let Some(failed) = self.durability.failure() {
            return Err(failed);
        }
        let last_commit = state.last_commit;
        if !self.durability.is_durable(last_commit) {
            self.sync_inline(&mut state.wal, last_commit)?;
        }
        Ok(state)
    }

    /// Syncs the log on this thread, which makes every commit up to
    /// `last_commit` durable. A failed sync stops the store, as one on the
    /// sync thread does: whether the frames it should have covered are on
    /// disk is unknown, and a later sync that succeeds would not say.
    fn sync_inline(&self, wal: &mut Wal, last_commit: CommitNumber) -> Result<(), StoreError> {
        match wal.sync() {
            Ok(()) => {
                self.durability.made_durable(last_commit);
                Ok(())
            }
            Err(error) => {
                let reason = match &error {
                    StoreError::Io {
                        path,
                        action,
                        source,
                    } => format!("{action} {path}: {source}"),
                    other => other.to_string(),
                };
                self.durability.fail(reason);
                Err(error)
            }
        }
    }

    /// The tables as of the last commit, made durable: a copy that shares
    /// every node (O(1)), read without holding the store.
    fn snapshot(&self) -> Result<Tables, StoreError> {
        Ok(self.lock_durable()?.tables.clone())
    }

    fn outboxes(&self) -> &Outboxes {
        self.durability.outboxes()
    }

    /// A random identifier chosen when the store was created. Sinks record it
    /// beside their checkpoint, so a checkpoint written from another store
    /// (the data directory was replaced) is recognised as foreign.
    pub fn id(&self) -> Result<String, StoreError> {
        if let Some(id) = self.read_meta_u64(META_STORE_ID)? {
            return Ok(format!("{id:016x}"));
        }
        let id: u64 = rand::random();
        self.write(|w| {
            w.put_meta(META_STORE_ID, &id.to_be_bytes());
            Ok::<_, StoreError>(())
        })?;
        Ok(format!("{id:016x}"))
    }

    /// Gives the store a new identifier and forgets its source position:
    /// for a store whose history is no longer the one its sinks' targets
    /// hold (a data directory restored from a backup, behind the slot).
    /// Each sink then finds its checkpoint foreign and rewrites its target
    /// after the new snapshot; under the old identifier, a target that
    /// applied sequences the restored store counts again skipped them.
    pub fn renew_id(&self) -> Result<String, StoreError> {
        let id: u64 = rand::random();
        self.write(|w| {
            w.put_meta(META_STORE_ID, &id.to_be_bytes());
            w.remove_meta(META_POSITION);
            Ok::<_, StoreError>(())
        })?;
        Ok(format!("{id:016x}"))
    }

    /// Runs `work` in one write transaction and commits it durably.
    pub fn write<T, E>(&self, work: impl FnOnce(&mut StateWriter) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write_with(Sync::Now, work).map(|(value, _)| value)
    }

    /// Runs `work` in one write transaction and commits it, returning
    /// before the commit is on disk: the sync thread makes it durable while
    /// the caller goes on, and its outbox entries reach the sinks only then.
    /// Wait for the returned commit ([`Store::wait_durable`]) before telling
    /// anyone outside that it happened (confirming its source position).
    pub fn write_pipelined<T, E>(
        &self,
        work: impl FnOnce(&mut StateWriter) -> Result<T, E>,
    ) -> Result<(T, CommitNumber), E>
    where
        E: From<StoreError>,
    {
        self.write_with(Sync::Pipelined, work)
    }

    /// Waits until `commit` (and every commit before it) is durable.
    pub async fn wait_durable(&self, commit: CommitNumber) -> Result<(), StoreError> {
        self.durability.wait(commit).await
    }

    /// Runs `work` in one write transaction and commits it without an
    /// fsync: a crash may lose it, and the next durable commit makes it
    /// durable with everything before it. Only for writes that no sink
    /// reads and that are redone when lost; a sink must never see an outbox
    /// entry that a crash could take back.
    pub fn write_volatile<T, E>(
        &self,
        work: impl FnOnce(&mut StateWriter) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write_with(Sync::Later, work).map(|(value, _)| value)
    }

    fn write_with<T, E>(
        &self,
        sync: Sync,
        work: impl FnOnce(&mut StateWriter) -> Result<T, E>,
    ) -> Result<(T, CommitNumber), E>
    where
        E: From<StoreError>,
    {
        let mut state = self.lock();
        if let Some(failed) = self.durability.failure() {
            return Err(failed.into());
        }
        let Durable {
            tables,
            wal,
            redo,
            last_commit,
        } = &mut *state;
        let mut writer = StateWriter::open(Changes::new(tables, std::mem::take(redo)))?;
        let result = work(&mut writer).and_then(|value| {
            writer.finish()?;
            Ok(value)
        });
        let mut changes = writer.into_changes();
        let value = match result {
            Ok(value) => value,
            Err(error) => {
                *redo = changes.rollback();
                redo.reset();
                return Err(error);
            }
        };
        for (sink, upto) in self.outboxes().take_unlogged_releases() {
            changes.log_release(&sink, upto);
        }
        // Written now, synced after the commit: a frame whose sync fails is
        // in the file, so the transaction is not rolled back then; the
        // store stops instead, and a restart replays what reached the disk.
        let logged = if changes.redo().is_empty() {
            Ok(())
        } else {
            wal.append(changes.redo())
        };
        if let Err(error) = logged {
            *redo = changes.rollback();
            redo.reset();
            return Err(error.into());
        }
        let dead_letters_changed = changes.touched(Table::DeadLetters);
        let (outbox, record) = changes.commit();
        *redo = record;
        redo.reset();
        *last_commit = last_commit.next();
        self.durability.hold(*last_commit, outbox);
        if !wal.has_unsynced() {
            // Nothing written since the last sync.
            self.durability.made_durable(*last_commit);
        } else {
            match sync {
                Sync::Now => self.sync_inline(wal, *last_commit)?,
                Sync::Pipelined => {
                    let (file, path) = wal.file();
                    if !self.syncer.request(file, path, *last_commit) {
                        self.sync_inline(wal, *last_commit)?;
                    }
                }
                Sync::Later => {}
            }
        }
        if dead_letters_changed {
            self.publish_dead_letter_counts(tables);
        }
        if wal.wants_checkpoint() {
            self.start_checkpoint(wal, tables, *last_commit);
        }
        Ok((value, *last_commit))
    }

    /// Starts writing a checkpoint of `tables`, the state after `last_commit`.
    /// It holds the outboxes too, so every commit's entries are published
    /// first: the log files it replaces are synced by then anyway.
    fn start_checkpoint(&self, wal: &mut Wal, tables: &Tables, last_commit: CommitNumber) {
        let started = self
            .sync_inline(wal, last_commit)
            .and_then(|()| wal.start_checkpoint(tables.clone(), self.outboxes().snapshot()));
        if let Err(error) = started {
            // The commit is in the log; a checkpoint is only a shortcut.
            tracing::error!(%error, "could not start a state-store checkpoint");
        }
    }

    /// Starts a checkpoint now, unless one is being written: after a start
    /// made logged puts whole, so that the next start reads them whole
    /// instead of computing them again (a crash loop would otherwise redo
    /// the same work at every start, and never get further).
    pub fn start_checkpoint_now(&self) -> Result<(), StoreError> {
        let mut state = self.lock_durable()?;
        let Durable {
            tables,
            wal,
            last_commit,
            ..
        } = &mut *state;
        if !wal.is_checkpointing() {
            self.start_checkpoint(wal, tables, *last_commit);
        }
        Ok(())
    }

    /// The end LSN of the last transaction whose effects are durable here, or
    /// `None` before the initial snapshot has completed.
    pub fn position(&self) -> Result<Option<Lsn>, StoreError> {
        self.read_meta_u64(META_POSITION).map(|v| v.map(Lsn))
    }

    /// Forgets the source position (keeping rows and outputs), so that the
    /// next start takes a new snapshot and diffs its outputs against them.
    pub fn forget_position(&self) -> Result<(), StoreError> {
        self.write(|w| {
            w.remove_meta(META_POSITION);
            Ok(())
        })
    }

    /// The layout the rows were stored with (see [`crate::plan::Plan::layout`]).
    pub fn layout(&self) -> Result<Option<String>, StoreError> {
        self.read_meta_text(META_LAYOUT)
    }

    /// Which tables and columns the rows were copied from (see
    /// [`crate::source::identity`]), as its text.
    pub fn source_identity(&self) -> Result<Option<String>, StoreError> {
        self.read_meta_text(META_SOURCE_IDENTITY)
    }

    pub fn set_source_identity(&self, identity: &str) -> Result<(), StoreError> {
        self.write(|w| {
            w.set_source_identity(identity);
            Ok(())
        })
    }

    /// The definition hash the stored outputs of `view` were built with.
    pub fn view_hash(&self, view: &str) -> Result<Option<String>, StoreError> {
        self.read_meta_text(&writer::view_hash_key(view))
    }

    fn read_meta_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        let bytes = self.read_meta_bytes(name)?;
        Ok(bytes.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn read_meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock_durable()?
            .tables
            .get(Table::Meta, name.as_bytes())
            .map(<[u8]>::to_vec))
    }

    /// The meta entries whose names start with `prefix`, in order.
    fn meta_entries_under(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let end = keycode::prefix_end(prefix.as_bytes());
        Ok(self
            .lock_durable()?
            .tables
            .range(Table::Meta, prefix.as_bytes(), &end)
            .map(|(key, value)| (String::from_utf8_lossy(key).into_owned(), value.to_vec()))
            .collect())
    }

    fn read_meta_u64(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.lock_durable()?
            .tables
            .get(Table::Meta, name.as_bytes())
            .map(|v| decode_u64(v, "meta value"))
            .transpose()
    }

    /// How many rows of `table` are stored.
    pub fn table_row_count(&self, table: &str) -> Result<u64, StoreError> {
        let tables = self.snapshot()?;
        let prefix = names::read_prefix(&tables, table)?;
        let end = keycode::prefix_end(&prefix);
        Ok(tables.range(Table::Rows, &prefix, &end).count() as u64)
    }

    /// Up to `limit` outbox entries of `sink` after sequence `after`, in
    /// order, or word that some of them were dropped.
    pub fn outbox_after(
        &self,
        sink: &str,
        after: u64,
        limit: usize,
    ) -> Result<OutboxRead, StoreError> {
        let Ok(entries) = self.outboxes().after(sink, after, limit) else {
            return Ok(OutboxRead::Gap);
        };
        entries
            .into_iter()
            .map(|(sequence, bytes)| Ok((sequence, outbox::decode(&bytes)?)))
            .collect::<Result<_, _>>()
            .map(OutboxRead::Entries)
    }

    /// Removes the outbox entries of `sink` up to and including `upto`, once the
    /// sink has made them durable. Logged with the next commit, not at once:
    /// after a crash the entries may be back, and the sink, which resumes
    /// from its own checkpoint, skips them.
    pub fn truncate_outbox(&self, sink: &str, upto: u64) -> Result<(), StoreError> {
        self.outboxes().release(sink, upto);
        Ok(())
    }

    /// What the puts of the next write transaction may leave uncompressed,
    /// given what the outboxes hold now.
    pub fn plain_allowance(&self) -> PlainAllowance {
        PlainAllowance::new(self.outboxes().plain_allowance())
    }

    /// How many entries of `sink` are still in its outbox: written, and not
    /// yet made durable by the sink (or just made durable, before the sink
    /// truncated them).
    pub fn outbox_pending(&self, sink: &str) -> Result<u64, StoreError> {
        Ok(self.outboxes().len(sink))
    }

    /// Whether `sink` has no entry left at or before `sequence`: its sink
    /// applied them (or they were dropped past the budget, and the sink
    /// rewrites its target when it finds the gap).
    pub fn outbox_released_through(&self, sink: &str, sequence: u64) -> bool {
        self.outboxes()
            .oldest(sink)
            .is_none_or(|oldest| oldest > sequence)
    }

    /// The bytes written to the log since the store was opened: how much
    /// each change costs the log, which sets how often checkpoints come.
    pub fn log_bytes_written(&self) -> Result<u64, StoreError> {
        Ok(self.lock_durable()?.wal.appended_bytes())
    }

    /// The sequence of the newest outbox entry ever written for `sink` (0: none).
    pub fn last_outbox_sequence(&self, sink: &str) -> Result<u64, StoreError> {
        read_sequence(&self.lock_durable()?.tables, sink)
    }

    /// The outbox puts still as the log keeps them, naming their root: read
    /// back after a restart, to be made whole ([`Store::settle_logged_put`])
    /// before any sink reads.
    pub fn logged_puts(&self) -> Result<Vec<LoggedPut>, StoreError> {
        self.outboxes()
            .named_puts()
            .into_iter()
            .filter_map(|(sink, sequence, bytes)| {
                let put = outbox::decode_named_put(&bytes)?;
                Some(put.map(|put| LoggedPut {
                    sink,
                    sequence,
                    put,
                }))
            })
            .collect()
    }

    /// Whether `sink`'s outbox still holds its entry `sequence`.
    pub fn outbox_holds(&self, sink: &str, sequence: u64) -> bool {
        self.outboxes().holds(sink, sequence)
    }

    /// Puts the entry a named put stands for in its place (in memory: the
    /// log keeps naming the root, and the next checkpoint keeps the entry).
    pub fn settle_logged_put(&self, logged: &LoggedPut, settled: SettledPut) {
        let LoggedPut {
            sink,
            sequence,
            put,
        } = logged;
        let entry = match settled {
            SettledPut::Put(output) => output.into_put_entry(),
            SettledPut::Delete => outbox::encode_entry(&OutboxEntry {
                view: put.view.clone(),
                op: OutboxOp::Delete {
                    key: put.key.clone(),
                },
            }),
            SettledPut::Unknown => {
                self.outboxes().drop_through(sink, *sequence);
                return;
            }
        };
        self.outboxes().replace(sink, *sequence, entry.into());
    }
}

/// An outbox put the log named by its root, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPut {
    pub sink: String,
    pub sequence: u64,
    pub put: NamedPut,
}

/// What a [`LoggedPut`] stands for, decided from the stored rows.
pub enum SettledPut {
    /// The root's output: the one its stored record was made from.
    Put(PreparedOutput),
    /// The key is no longer the root's output: a later entry deletes it
    /// (or puts another root's document there), so deleting it here ends
    /// the same.
    Delete,
    /// The stored rows do not give the output recorded (a snapshot cut
    /// short, a changed view): the entry and every one before it are
    /// dropped, and the sink rewrites its target from the state store.
    Unknown,
}

impl Drop for Store {
    /// Logs the releases of outbox entries since the last commit: otherwise
    /// the next start would bring back every entry the sinks drained since,
    /// to be released when each sink resumes from its checkpoint. Syncs
    /// the log either way, so that a clean stop leaves no commit to the
    /// sync thread.
    fn drop(&mut self) {
        let releases = self.outboxes().take_unlogged_releases();
        let mut record = RedoWriter::default();
        for (sink, upto) in &releases {
            record.push(&redo::Op::OutboxTruncate { sink, upto: *upto });
        }
        let wal = &mut self.lock().wal;
        let logged = if releases.is_empty() {
            wal.sync()
        } else {
            wal.append(&record).and_then(|()| wal.sync())
        };
        if let Err(error) = logged {
            tracing::warn!(%error, "could not log the last outbox releases and sync the log");
        }
    }
}

/// The newest outbox sequence of every sink that has one.
fn newest_sequences(tables: &Tables) -> Result<HashMap<String, u64>, StoreError> {
    let prefix = outbox::sequence_meta_key("");
    let end = keycode::prefix_end(prefix.as_bytes());
    tables
        .range(Table::Meta, prefix.as_bytes(), &end)
        .map(|(key, value)| {
            let sink = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            Ok((sink, decode_u64(value, "outbox sequence")?))
        })
        .collect()
}

/// The newest outbox sequence of `sink` (0: none yet).
fn read_sequence(tables: &Tables, sink: &str) -> Result<u64, StoreError> {
    match tables.get(Table::Meta, outbox::sequence_meta_key(sink).as_bytes()) {
        Some(v) => decode_u64(v, "outbox sequence"),
        None => Ok(0),
    }
}

fn decode_u64(bytes: &[u8], what: &'static str) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what,
        reason: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Value;
    use rand::{Rng, SeedableRng};

    impl Store {
        /// Writes a checkpoint now and waits for it.
        fn checkpoint(&self) {
            let mut state = self.lock_durable().unwrap();
            let Durable { tables, wal, .. } = &mut *state;
            wal.start_checkpoint(tables.clone(), self.outboxes().snapshot())
                .unwrap();
            wal.wait_for_checkpoint();
        }
    }

    fn entry(n: u64) -> OutboxEntry {
        OutboxEntry {
            view: "v".into(),
            op: OutboxOp::Delete {
                key: format!("k:{n}"),
            },
        }
    }

    /// The outbox entries of sink `s` after 2, where its reader stands.
    fn outbox_keys(store: &Store) -> Vec<u64> {
        match store.outbox_after("s", 2, usize::MAX).unwrap() {
            OutboxRead::Entries(entries) => entries.into_iter().map(|(seq, _)| seq).collect(),
            OutboxRead::Gap => panic!("entries were dropped"),
        }
    }

    fn rows(store: &Store) -> Vec<(Vec<u8>, Vec<Value>)> {
        store
            .write(|w| w.table_rows_after("t", None, usize::MAX))
            .unwrap()
    }

    /// A store of an earlier format (a redb file) is removed when opened,
    /// so that a new snapshot rebuilds it and sinks rewrite their targets;
    /// a state file of a newer format is refused.
    #[test]
    fn a_store_of_another_format_is_started_anew_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(REDB_FILE), b"an old store").unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        assert!(!dir.path().join(REDB_FILE).exists());
        assert_eq!(store.position().unwrap(), None);
        store.write(|w| w.set_position(Lsn(43))).unwrap();
        drop(store);

        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        assert_eq!(
            store.position().unwrap(),
            Some(Lsn(43)),
            "same format: kept"
        );
        drop(store);
        // A log of the oldest format read (every outbox put logged whole) is
        // read as it is.
        let readable = dir.path().join(STATE_DIR).join("wal-fffffffffffffffd");
        let mut header = b"VKWAL\0\0\0".to_vec();
        header.extend_from_slice(&OLDEST_READ_FORMAT.to_le_bytes());
        std::fs::write(&readable, header).unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        assert_eq!(store.position().unwrap(), Some(Lsn(43)), "readable: kept");
        drop(store);
        let older = dir.path().join(STATE_DIR).join("wal-fffffffffffffffe");
        let mut header = b"VKWAL\0\0\0".to_vec();
        header.extend_from_slice(&(OLDEST_READ_FORMAT - 1).to_le_bytes());
        std::fs::write(&older, header).unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        assert_eq!(
            store.position().unwrap(),
            None,
            "an earlier format: removed"
        );
        assert!(!older.exists());
        drop(store);

        let newer = dir.path().join(STATE_DIR).join("wal-ffffffffffffffff");
        let mut header = b"VKWAL\0\0\0".to_vec();
        header.extend_from_slice(&(FORMAT + 1).to_le_bytes());
        std::fs::write(&newer, header).unwrap();
        let error = Store::open(dir.path(), &crate::state::StoreOptions::default())
            .err()
            .unwrap();
        assert!(
            matches!(error, StoreError::NewerFormat { found, .. } if found == FORMAT + 1),
            "{error}"
        );
    }

    /// Only one process may have a store open.
    #[test]
    fn a_store_open_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        let error = Store::open(dir.path(), &crate::state::StoreOptions::default())
            .err()
            .unwrap();
        assert!(matches!(error, StoreError::Locked { .. }), "{error}");
    }

    /// What was committed comes back after a restart: rows, outputs, the
    /// position, outbox entries not released; a failed transaction does not.
    #[test]
    fn commits_come_back_from_the_log_and_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        store
            .write(|w| {
                w.put_row("t", b"1", &[Value::Int(1)])?;
                w.put_row("t", b"2", &[Value::Text("two".into())])?;
                for n in 1..=4 {
                    w.append_outbox("s", &entry(n))?;
                }
                w.set_position(Lsn(10))
            })
            .unwrap();
        store.checkpoint();
        store
            .write_volatile(|w| w.put_row("t", b"3", &[Value::Null]))
            .unwrap();
        store.truncate_outbox("s", 2).unwrap();
        store
            .write(|w| {
                w.delete_row("t", b"1")?;
                w.append_outbox("s", &entry(5))?;
                w.set_position(Lsn(20))
            })
            .unwrap();
        let failed = store.write(|w| {
            w.put_row("t", b"9", &[Value::Int(9)])?;
            w.append_outbox("s", &entry(6))?;
            Err::<(), _>(StoreError::NamesExhausted)
        });
        assert!(failed.is_err());
        let expected_rows = rows(&store);
        assert_eq!(expected_rows.len(), 2);
        assert_eq!(outbox_keys(&store), vec![3, 4, 5]);
        assert!(
            matches!(store.outbox_after("s", 0, 1).unwrap(), OutboxRead::Gap),
            "a reader from before the released entries is told"
        );
        drop(store);

        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        assert_eq!(rows(&store), expected_rows);
        assert_eq!(outbox_keys(&store), vec![3, 4, 5]);
        assert_eq!(store.position().unwrap(), Some(Lsn(20)));
        assert_eq!(store.last_outbox_sequence("s").unwrap(), 5);
        store.write(|w| w.append_outbox("s", &entry(6))).unwrap();
        assert_eq!(outbox_keys(&store), vec![3, 4, 5, 6]);
    }

    /// A pipelined commit returns before its sync; its outbox entries reach
    /// the sinks once it is durable, a read from outside the writer makes it
    /// durable first, and it comes back after a restart.
    #[test]
    fn pipelined_commits_reach_sinks_once_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ((), first) = store
            .write_pipelined(|w| {
                for n in 1..=3 {
                    w.append_outbox("s", &entry(n))?;
                }
                w.set_position(Lsn(10))
            })
            .unwrap();
        runtime.block_on(store.wait_durable(first)).unwrap();
        assert_eq!(outbox_keys(&store), vec![3]);

        let ((), second) = store
            .write_pipelined(|w| {
                w.append_outbox("s", &entry(4))?;
                w.set_position(Lsn(20))
            })
            .unwrap();
        assert!(second > first);
        assert_eq!(store.position().unwrap(), Some(Lsn(20)));
        assert!(
            store.durability.is_durable(second),
            "reading the position made the commit durable"
        );
        assert_eq!(outbox_keys(&store), vec![3, 4]);
        runtime.block_on(store.wait_durable(second)).unwrap();
        drop(store);

        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(store.position().unwrap(), Some(Lsn(20)));
        assert_eq!(outbox_keys(&store), vec![3, 4]);
    }

    /// After a sync fails, the store refuses commits and reads with an
    /// error that says so, rather than go on from a log that may have lost them.
    #[test]
    fn a_failed_sync_stops_commits_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        store.write(|w| w.set_position(Lsn(10))).unwrap();
        store
            .durability
            .fail("syncing wal-1: Input/output error".into());
        let error = store.write(|w| w.set_position(Lsn(20))).unwrap_err();
        assert!(matches!(error, StoreError::SyncFailed { .. }), "{error}");
        assert!(error.to_string().contains("restart viewkeeper"), "{error}");
        let error = store.position().unwrap_err();
        assert!(matches!(error, StoreError::SyncFailed { .. }), "{error}");
    }

    /// Entries the sinks released are gone after a clean restart, though
    /// no commit logged the release.
    #[test]
    fn releases_since_the_last_commit_are_logged_when_the_store_closes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        store
            .write(|w| {
                for n in 1..=4 {
                    w.append_outbox("s", &entry(n))?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        store.truncate_outbox("s", 4).unwrap();
        drop(store);
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(store.outbox_pending("s").unwrap(), 0);
    }

    /// A crash can cut the last frame of the log short: the store opens at
    /// the commit before it and goes on from there.
    #[test]
    fn a_frame_cut_short_by_a_crash_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        store
            .write(|w| w.put_row("t", b"1", &[Value::Int(1)]))
            .unwrap();
        store
            .write(|w| w.put_row("t", b"2", &[Value::Int(2)]))
            .unwrap();
        drop(store);
        let log = std::fs::read_dir(dir.path().join(STATE_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("wal-"))
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap();
        let len = std::fs::metadata(&log).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(len - 3)
            .unwrap();

        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        assert_eq!(
            rows(&store).len(),
            1,
            "the cut commit is gone, the one before kept"
        );
        store
            .write(|w| w.put_row("t", b"3", &[Value::Int(3)]))
            .unwrap();
        drop(store);
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        assert_eq!(rows(&store).len(), 2);
    }

    /// Outbox entries stored compressed come back whole after a restart,
    /// from the checkpoint and from the log.
    #[test]
    fn compressed_outbox_entries_come_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::default();
        let store = Store::open(dir.path(), &options).unwrap();
        store
            .write(|w| w.append_outbox("s", &outbox::tests::order_put(1)))
            .unwrap();
        store.checkpoint();
        store
            .write(|w| w.append_outbox("s", &outbox::tests::order_put(2)))
            .unwrap();
        drop(store);

        let store = Store::open(dir.path(), &options).unwrap();
        match store.outbox_after("s", 0, usize::MAX).unwrap() {
            OutboxRead::Entries(entries) => {
                assert_eq!(
                    entries,
                    vec![
                        (1, outbox::tests::order_put(1)),
                        (2, outbox::tests::order_put(2))
                    ]
                );
            }
            OutboxRead::Gap => panic!("entries were dropped"),
        }
    }

    /// The log files in the store's directory, by name.
    fn log_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(STATE_DIR))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("wal-"))
            .collect();
        names.sort();
        names
    }

    /// After a checkpoint, the next one waits until the log has grown to
    /// `LOG_PER_CHECKPOINT` times its size.
    #[test]
    fn the_next_checkpoint_waits_for_the_log_to_outgrow_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            checkpoint_log_bytes: 1,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), &options).unwrap();
        let value = Value::Text("x".repeat(1000));
        let put_rows = |from: u64, count: u64| {
            store
                .write(|w| {
                    for n in from..from + count {
                        w.put_row("t", &n.to_be_bytes(), std::slice::from_ref(&value))?;
                    }
                    Ok::<_, StoreError>(())
                })
                .unwrap();
        };
        // The first commit outgrows an empty checkpoint.
        put_rows(0, 100);
        store.lock().wal.wait_for_checkpoint();
        let after_first = log_files(dir.path());
        assert_eq!(after_first.len(), 1, "{after_first:?}");

        // The checkpoint holds the 100 rows; the log may reach four times that.
        for round in 0..3 {
            put_rows(1000 + 100 * round, 100);
        }
        store.lock().wal.wait_for_checkpoint();
        assert_eq!(log_files(dir.path()), after_first, "too early");

        put_rows(2000, 200);
        store.lock().wal.wait_for_checkpoint();
        let after_second = log_files(dir.path());
        assert_eq!(after_second.len(), 1, "{after_second:?}");
        assert_ne!(after_second, after_first, "a checkpoint was written");
    }

    /// Random transactions, some failing, committed durably, pipelined or
    /// volatile, with checkpoints and restarts at random points, against a
    /// model of what was committed.
    #[test]
    fn random_commits_checkpoints_and_restarts_keep_exactly_the_committed_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut model = std::collections::BTreeMap::new();
        let mut store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        for step in 0..300 {
            let fails = rng.random_ratio(1, 6);
            let ops: Vec<(u8, i64)> = (0..rng.random_range(1..20))
                .map(|_| (rng.random_range(0..10), rng.random_range(0..50)))
                .collect();
            let mut next = model.clone();
            let sync = [Sync::Now, Sync::Pipelined, Sync::Later][rng.random_range(0..3)];
            let result = store.write_with(sync, |w| {
                for (op, id) in &ops {
                    let pk = keycode::encode_values(&[Value::Int(*id)]);
                    match op {
                        0..=5 => {
                            let row = vec![Value::Int(step), Value::Int(*id)];
                            w.put_row("t", &pk, &row)?;
                            next.insert(pk, row);
                        }
                        6..=8 => {
                            w.delete_row("t", &pk)?;
                            next.remove(&pk);
                        }
                        _ => {
                            w.clear_rows()?;
                            next.clear();
                        }
                    }
                }
                if fails {
                    return Err(StoreError::NamesExhausted);
                }
                Ok(())
            });
            assert_eq!(result.is_err(), fails);
            if !fails {
                model = next;
            }
            match rng.random_range(0..20) {
                0 => store.checkpoint(),
                1 => {
                    drop(store);
                    store =
                        Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
                }
                _ => {}
            }
            let stored: std::collections::BTreeMap<_, _> = rows(&store).into_iter().collect();
            assert_eq!(stored, model, "after step {step}");
        }
    }
}
