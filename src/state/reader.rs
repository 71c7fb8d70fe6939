//! [`StateReader`]: the store at one consistent point, read without
//! blocking the engine's writes.

use crate::change::Lsn;

use super::names::{NameIds, ScanBounds};
use super::read_cache::{Keys, ReadCache, Row};
use super::tables::{Table, Tables};
use super::{ReadRows, Store, StoreError, outbox};

pub struct StateReader {
    /// The tables as of the last commit before the reader was made: a copy
    /// sharing their nodes, which later writes copy before changing.
    tables: Tables,
    names: NameIds,
    cache: ReadCache,
}

impl Store {
    /// A reader of the store as of now; later writes are not seen by it.
    pub fn reader(&self) -> Result<StateReader, StoreError> {
        let tables = self.snapshot()?;
        Ok(StateReader {
            names: NameIds::load(&tables, false)?,
            tables,
            cache: ReadCache::default(),
        })
    }
}

impl StateReader {
    /// A reader of `tables` as they are, with a cache of its own.
    pub(super) fn of(tables: Tables, names: NameIds) -> StateReader {
        StateReader {
            tables,
            names,
            cache: ReadCache::default(),
        }
    }
}

impl ReadRows for StateReader {
    fn get_row(&self, table: &str, pk: &[u8]) -> Result<Option<Row>, StoreError> {
        let key = self.names.prefixed(table, pk)?;
        self.cache.get_row(&self.tables, key)
    }

    fn index_lookup(&self, table: &str, index: &str, values: &[u8]) -> Result<Keys, StoreError> {
        let prefix = self.names.index_prefix(table, index, values)?;
        Ok(self.cache.index_lookup(&self.tables, prefix))
    }

    fn index_first(
        &self,
        table: &str,
        index: &str,
        values: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let prefix = self.names.index_prefix(table, index, values)?;
        Ok(self.cache.index_first(&self.tables, &prefix))
    }
}

impl StateReader {
    /// Whether the stored rows are a whole state of the source: they are not
    /// between the start of a snapshot (which clears them and the position)
    /// and its end (which stores the new position).
    pub fn rows_complete(&self) -> Result<bool, StoreError> {
        Ok(self
            .tables
            .get(Table::Meta, super::META_POSITION.as_bytes())
            .is_some())
    }

    /// The source position the store had applied when the reader was made.
    pub fn position(&self) -> Result<Option<Lsn>, StoreError> {
        self.tables
            .get(Table::Meta, super::META_POSITION.as_bytes())
            .map(|value| super::decode_u64(value, "meta value").map(Lsn))
            .transpose()
    }

    /// Primary keys of the roots of `view` that have a stored output but no
    /// row in `table`: one merge of two key-ordered scans, where a lookup
    /// per output decoded every root row.
    pub fn outputs_without_row(&self, view: &str, table: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let outputs = self.names.scan_bounds(view, None)?;
        let rows = self.names.scan_bounds(table, None)?;
        let mut row_keys = self
            .tables
            .range(Table::Rows, &rows.start, &rows.end)
            .map(|(key, _)| &key[rows.prefix.len()..])
            .peekable();
        let mut orphans = Vec::new();
        for (key, _) in self
            .tables
            .range(Table::Outputs, &outputs.start, &outputs.end)
        {
            let pk = &key[outputs.prefix.len()..];
            while row_keys.next_if(|row| *row < pk).is_some() {}
            if row_keys.peek() != Some(&pk) {
                orphans.push(pk.to_vec());
            }
        }
        Ok(orphans)
    }

    /// The stored output record of the root `pk` of `view`: its key and its
    /// document's digest ([`crate::state::PreparedOutput::is_recorded_as`]).
    pub fn output_record(&self, view: &str, pk: &[u8]) -> Result<Option<&[u8]>, StoreError> {
        let key = self.names.prefixed(view, pk)?;
        Ok(self.tables.get(Table::Outputs, &key))
    }

    /// Whether the root `pk` of `view` waits to be refreshed (a fan-out past
    /// `batch_max_roots` left it for a later transaction).
    pub fn is_pending(&self, view: &str, pk: &[u8]) -> Result<bool, StoreError> {
        let key = self.names.prefixed(view, pk)?;
        Ok(self.tables.get(Table::Pending, &key).is_some())
    }

    /// Whether any root of `view` has a stored output.
    pub fn has_outputs(&self, view: &str) -> Result<bool, StoreError> {
        let ScanBounds { start, end, .. } = self.names.scan_bounds(view, None)?;
        Ok(self
            .tables
            .range(Table::Outputs, &start, &end)
            .next()
            .is_some())
    }

    /// The sequence of the newest outbox entry written for `sink` (0: none).
    pub fn outbox_sequence(&self, sink: &str) -> Result<u64, StoreError> {
        super::read_sequence(&self.tables, sink)
    }

    /// Calls `each` with the primary key and output key of every root of
    /// `view` that has an output, in key order. The reader holds its point
    /// in time, so one scan serves however many roots there are.
    pub fn for_each_output_root<E: From<StoreError>>(
        &self,
        view: &str,
        mut each: impl FnMut(&[u8], String) -> Result<(), E>,
    ) -> Result<(), E> {
        let ScanBounds { prefix, start, end } = self.names.scan_bounds(view, None)?;
        for (key, value) in self.tables.range(Table::Outputs, &start, &end) {
            each(&key[prefix.len()..], outbox::decode_output_key(value)?)?;
        }
        Ok(())
    }
}
