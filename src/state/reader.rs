//! [`StateReader`]: the store at one consistent point, read without
//! blocking the engine's writes.

use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase};

use super::names::{NAMES, NameIds, ScanBounds};
use super::read_cache::{Keys, ReadCache, Row};
use super::{JOIN_INDEX, META, OUTPUTS, ROWS, ReadRows, Store, StoreError, outbox};

pub struct StateReader {
    rows: ReadOnlyTable<&'static [u8], &'static [u8]>,
    join_index: ReadOnlyTable<&'static [u8], ()>,
    outputs: ReadOnlyTable<&'static [u8], &'static [u8]>,
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
    names: NameIds,
    cache: ReadCache,
    _txn: ReadTransaction,
}

impl Store {
    /// A reader of the store as of now; later writes are not seen by it.
    pub fn reader(&self) -> Result<StateReader, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(StateReader {
            rows: txn.open_table(ROWS)?,
            join_index: txn.open_table(JOIN_INDEX)?,
            outputs: txn.open_table(OUTPUTS)?,
            meta: txn.open_table(META)?,
            names: NameIds::load(&txn.open_table(NAMES)?, false)?,
            cache: ReadCache::default(),
            _txn: txn,
        })
    }
}

impl ReadRows for StateReader {
    fn get_row(&self, table: &str, pk: &[u8]) -> Result<Option<Row>, StoreError> {
        let key = self.names.prefixed(table, pk)?;
        self.cache.get_row(&self.rows, key)
    }

    fn index_lookup(&self, table: &str, index: &str, values: &[u8]) -> Result<Keys, StoreError> {
        let prefix = self.names.index_prefix(table, index, values)?;
        self.cache.index_lookup(&self.join_index, prefix)
    }
}

impl StateReader {
    /// Whether the stored rows are a whole state of the source: they are not
    /// between the start of a snapshot (which clears them and the position)
    /// and its end (which stores the new position).
    pub fn rows_complete(&self) -> Result<bool, StoreError> {
        Ok(self.meta.get(super::META_POSITION)?.is_some())
    }

    /// Primary keys of the roots of `view` that have a stored output but no
    /// row in `table`: one merge of two key-ordered scans, where a lookup
    /// per output decoded every root row.
    pub fn outputs_without_row(&self, view: &str, table: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let ScanBounds {
            prefix: output_prefix,
            start,
            end,
        } = self.names.scan_bounds(view, None)?;
        let ScanBounds {
            prefix: row_prefix,
            start: row_start,
            end: row_end,
        } = self.names.scan_bounds(table, None)?;
        let mut rows = self.rows.range(row_start.as_slice()..row_end.as_slice())?;
        let mut row = rows.next().transpose()?;
        let mut orphans = Vec::new();
        for output in self.outputs.range(start.as_slice()..end.as_slice())? {
            let (key, _) = output?;
            let pk = &key.value()[output_prefix.len()..];
            while let Some((row_key, _)) = &row
                && &row_key.value()[row_prefix.len()..] < pk
            {
                row = rows.next().transpose()?;
            }
            let found =
                matches!(&row, Some((row_key, _)) if &row_key.value()[row_prefix.len()..] == pk);
            if !found {
                orphans.push(pk.to_vec());
            }
        }
        Ok(orphans)
    }

    /// Whether any root of `view` has a stored output.
    pub fn has_outputs(&self, view: &str) -> Result<bool, StoreError> {
        let ScanBounds { start, end, .. } = self.names.scan_bounds(view, None)?;
        Ok(self
            .outputs
            .range(start.as_slice()..end.as_slice())?
            .next()
            .is_some())
    }

    /// The sequence of the newest outbox entry written for `sink` (0: none).
    pub fn outbox_sequence(&self, sink: &str) -> Result<u64, StoreError> {
        super::read_sequence(&self.meta, sink)
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
        for item in self
            .outputs
            .range(start.as_slice()..end.as_slice())
            .map_err(StoreError::from)?
        {
            let (key, value) = item.map_err(StoreError::from)?;
            each(
                &key.value()[prefix.len()..],
                outbox::decode_output_key(value.value())?,
            )?;
        }
        Ok(())
    }
}
