//! The embedded state store: one redb file under the data directory.
//!
//! It holds what the views need and nothing else: the stored columns of every
//! source row, the join indexes that find the root rows a change touches, the
//! last output of every root, one outbox per sink, and the source position.
//! The engine writes all of it in one transaction per batch, so the position
//! is durable exactly when the effects of the changes before it are.

mod dead_letters;
mod groups;
pub mod keycode;
mod names;
mod outbox;
mod read_cache;
mod reader;
mod view_records;
mod writer;

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

pub use dead_letters::DeadLetter;
pub use groups::{GroupValues, StoredGroup};
pub use outbox::{OutboxEntry, OutboxOp, StoredOutput};
pub use read_cache::{Keys, Row};
pub use reader::StateReader;
pub use view_records::ViewRecord;
pub use writer::{OutputChange, StateWriter};

use crate::change::Lsn;

// Keys start with the 2-byte id of a table, index or view name
// ([`names::NameIds`]), written `table` and `view` below.

/// `table ‖ primary key` → stored columns (postcard `Vec<Value>`).
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
/// `table ‖ index ‖ join values ‖ primary key` → nothing: a join index entry.
const JOIN_INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("join_index");
/// `view ‖ root primary key` → the root's last output: of a cache or search
/// view its key and document digest ([`StateWriter::replace_output`]), of
/// an aggregate view its whole contribution (group key and measure inputs,
/// postcard).
const OUTPUTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("outputs");
/// `view ‖ group key` → [`StoredGroup`]: aggregate groups.
const GROUPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("groups");
/// `view ‖ group key ‖ measure ‖ sort key` → (count, value): the inputs of
/// `min`, `max` and `count_distinct`, in value order.
const GROUP_VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("group_values");
/// `(sink, sequence)` → [`OutboxEntry`], in the order the sink must apply them.
const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbox");
/// `(view, root primary key)` → nothing: roots whose refresh was deferred.
const PENDING: TableDefinition<(&str, &[u8]), ()> = TableDefinition::new("pending_roots");
/// `view ‖ root primary key` → [`DeadLetter`]: roots without an output.
const DEAD_LETTERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dead_letters");
/// Small named values: source position, layout, outbox sequences.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// redb's page cache unless configured (`state_cache_mb`). Its own default
/// (1 GiB) alone exceeded the memory target at a million items; a larger
/// cache buys streaming speed when the store is larger than this.
pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024 * 1024;

const META_POSITION: &str = "source_position";
const META_LAYOUT: &str = "layout";
const META_STORE_ID: &str = "store_id";
const META_FORMAT: &str = "format";

/// The layout of keys and values this version writes. A store written in
/// another is taken down and started anew (see [`Store::open`]). 2: names
/// in keys are ids.
const FORMAT: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Storage(#[from] redb::Error),
    #[error("state store: corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error(
        "state store: every id for table, index and view names is taken; \
         delete state.redb to start a new store (a new snapshot follows)"
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

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Storage(e.into()) }
        }
    )*};
}
storage_error_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Reads of stored rows and join indexes, in a write transaction
/// ([`StateWriter`]) or a read one ([`StateReader`]): what computing an
/// output needs.
pub trait ReadRows {
    /// The stored row of `table` under the encoded primary key `pk`.
    fn get_row(&self, table: &str, pk: &[u8]) -> Result<Option<Row>, StoreError>;
    /// Primary keys of the rows of `table` whose `index` columns equal the
    /// encoded `values`.
    fn index_lookup(&self, table: &str, index: &str, values: &[u8]) -> Result<Keys, StoreError>;
}

/// Handle to the state store; cheap to share behind an `Arc`.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store at `dir/state.redb`, with a page cache
    /// of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        let path = dir.join("state.redb");
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                    path: path.display().to_string(),
                },
                other => StoreError::Storage(other.into()),
            })?;
        let store = Store { db };
        store.create_tables()?;
        store.settle_format(&path)?;
        Ok(store)
    }

    /// Makes the store one of [`FORMAT`]. One written in an earlier format
    /// (before it was recorded: format 1) is emptied, store id included:
    /// a new snapshot rebuilds it, and the sinks, finding their checkpoints
    /// foreign, rewrite their targets. Nothing is lost that the source does
    /// not hold.
    fn settle_format(&self, path: &Path) -> Result<(), StoreError> {
        let found = self.read_meta_u64(META_FORMAT)?;
        match found {
            Some(FORMAT) => return Ok(()),
            Some(found) if found > FORMAT => {
                return Err(StoreError::NewerFormat {
                    path: path.display().to_string(),
                    found,
                });
            }
            _ => {}
        }
        let txn = self.db.begin_write()?;
        if !txn.open_table(META)?.is_empty()? {
            tracing::warn!(
                path = %path.display(),
                found = found.unwrap_or(1),
                format = FORMAT,
                "state store written in an earlier format: emptied, a new snapshot follows"
            );
            let tables: Vec<_> = txn.list_tables()?.collect();
            for table in tables {
                txn.delete_table(table)?;
            }
        }
        txn.commit()?;
        self.create_tables()?;
        let txn = self.db.begin_write()?;
        txn.open_table(META)?
            .insert(META_FORMAT, FORMAT.to_be_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// A random identifier chosen when the store was created. Sinks record it
    /// beside their checkpoint, so a checkpoint written from another store
    /// (the data directory was replaced) is recognised as foreign.
    pub fn id(&self) -> Result<String, StoreError> {
        if let Some(id) = self.read_meta_u64(META_STORE_ID)? {
            return Ok(format!("{id:016x}"));
        }
        let id: u64 = rand::random();
        let txn = self.db.begin_write()?;
        txn.open_table(META)?
            .insert(META_STORE_ID, id.to_be_bytes().as_slice())?;
        txn.commit()?;
        Ok(format!("{id:016x}"))
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(ROWS)?;
        txn.open_table(JOIN_INDEX)?;
        txn.open_table(OUTPUTS)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(META)?;
        txn.open_table(PENDING)?;
        txn.open_table(GROUPS)?;
        txn.open_table(GROUP_VALUES)?;
        txn.open_table(DEAD_LETTERS)?;
        txn.open_table(names::NAMES)?;
        txn.commit()?;
        Ok(())
    }

    /// Runs `work` in one write transaction and commits it durably.
    pub fn write<T, E>(&self, work: impl FnOnce(&mut StateWriter) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write_with(redb::Durability::Immediate, work)
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
        self.write_with(redb::Durability::None, work)
    }

    fn write_with<T, E>(
        &self,
        durability: redb::Durability,
        work: impl FnOnce(&mut StateWriter) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut txn = self.db.begin_write().map_err(StoreError::from)?;
        txn.set_durability(durability)
            .map_err(|e| StoreError::Storage(e.into()))?;
        let result = {
            let mut writer = StateWriter::open(&txn)?;
            let result = work(&mut writer)?;
            writer.finish()?;
            result
        };
        txn.commit().map_err(StoreError::from)?;
        Ok(result)
    }

    /// The end LSN of the last transaction whose effects are durable here, or
    /// `None` before the initial snapshot has completed.
    pub fn position(&self) -> Result<Option<Lsn>, StoreError> {
        self.read_meta_u64(META_POSITION).map(|v| v.map(Lsn))
    }

    /// Forgets the source position (keeping rows and outputs), so that the
    /// next start takes a new snapshot and diffs its outputs against them.
    pub fn forget_position(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.remove(META_POSITION)?;
        txn.commit()?;
        Ok(())
    }

    /// The layout the rows were stored with (see [`crate::plan::Plan::layout`]).
    pub fn layout(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let value = meta.get(META_LAYOUT)?;
        Ok(value.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// The definition hash the stored outputs of `view` were built with.
    pub fn view_hash(&self, view: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let value = meta.get(writer::view_hash_key(view).as_str())?;
        Ok(value.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    fn read_meta_u64(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let value = meta.get(name)?;
        value
            .map(|v| decode_u64(v.value(), "meta value"))
            .transpose()
    }

    /// How many rows of `table` are stored.
    pub fn table_row_count(&self, table: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let rows = txn.open_table(ROWS)?;
        let prefix = names::read_prefix(&txn, table)?;
        let end = keycode::prefix_end(&prefix);
        Ok(rows.range(prefix.as_slice()..end.as_slice())?.count() as u64)
    }

    /// Up to `limit` outbox entries of `sink` after sequence `after`, in order.
    pub fn outbox_after(
        &self,
        sink: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        let txn = self.db.begin_read()?;
        let outbox = txn.open_table(OUTBOX)?;
        let mut entries = Vec::new();
        for item in outbox
            .range((sink, after.saturating_add(1))..=(sink, u64::MAX))?
            .take(limit)
        {
            let (key, value) = item?;
            entries.push((key.value().1, outbox::decode(value.value())?));
        }
        Ok(entries)
    }

    /// Removes the outbox entries of `sink` up to and including `upto`, once the
    /// sink has made them durable. Not itself durable (no fsync): after a
    /// crash the entries are back, and the sink, which resumes from its own
    /// checkpoint, skips them; the engine's next commit makes it durable.
    pub fn truncate_outbox(&self, sink: &str, upto: u64) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)
            .map_err(redb::Error::from)?;
        {
            let mut outbox = txn.open_table(OUTBOX)?;
            outbox.retain_in((sink, 0)..=(sink, upto), |_, _| false)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Number of entries `sink` has not applied yet, given its applied sequence.
    pub fn outbox_depth(&self, sink: &str, applied: u64) -> Result<u64, StoreError> {
        Ok(self.last_outbox_sequence(sink)?.saturating_sub(applied))
    }

    /// How many entries of `sink` are still in its outbox: written, and not
    /// yet made durable by the sink (or just made durable, before the sink
    /// truncated them).
    pub fn outbox_pending(&self, sink: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let outbox = txn.open_table(OUTBOX)?;
        let first = outbox.range((sink, 0)..=(sink, u64::MAX))?.next();
        let Some(first) = first else {
            return Ok(0);
        };
        let first = first?.0.value().1;
        let last = read_sequence(&txn.open_table(META)?, sink)?;
        Ok(last.saturating_sub(first) + 1)
    }

    /// The sequence of the newest outbox entry ever written for `sink` (0: none).
    pub fn last_outbox_sequence(&self, sink: &str) -> Result<u64, StoreError> {
        Ok(self
            .read_meta_u64(&outbox::sequence_meta_key(sink))?
            .unwrap_or(0))
    }
}

/// The newest outbox sequence of `sink` (0: none yet).
fn read_sequence(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    sink: &str,
) -> Result<u64, StoreError> {
    match meta.get(outbox::sequence_meta_key(sink).as_str())? {
        Some(v) => decode_u64(v.value(), "outbox sequence"),
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

    fn set_meta_u64(store: &Store, name: &str, value: Option<u64>) {
        let txn = store.db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            match value {
                Some(value) => meta.insert(name, value.to_be_bytes().as_slice()).unwrap(),
                None => meta.remove(name).unwrap(),
            };
        }
        txn.commit().unwrap();
    }

    /// A store of an earlier format (one without a recorded format) is
    /// emptied when opened, its id too, so that a new snapshot rebuilds it
    /// and sinks rewrite their targets; one of a newer format is refused.
    #[test]
    fn a_store_of_another_format_is_started_anew_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let id = store.id().unwrap();
        store
            .write(|w| {
                w.put_row("public.t", b"1", &[Value::Int(1)])?;
                w.set_position(Lsn(42))
            })
            .unwrap();
        set_meta_u64(&store, META_FORMAT, None);
        drop(store);

        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.position().unwrap(), None);
        assert_eq!(store.table_row_count("public.t").unwrap(), 0);
        assert_ne!(store.id().unwrap(), id);
        assert_eq!(store.read_meta_u64(META_FORMAT).unwrap(), Some(FORMAT));
        store.write(|w| w.set_position(Lsn(43))).unwrap();
        drop(store);

        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            store.position().unwrap(),
            Some(Lsn(43)),
            "same format: kept"
        );
        set_meta_u64(&store, META_FORMAT, Some(FORMAT + 1));
        drop(store);
        let error = Store::open(dir.path(), 1 << 20).err().unwrap();
        assert!(
            matches!(error, StoreError::NewerFormat { found, .. } if found == FORMAT + 1),
            "{error}"
        );
    }
}
