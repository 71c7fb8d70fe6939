//! [`StateWriter`]: typed access to the store inside one write transaction.

use std::collections::{BTreeMap, HashMap};

use super::keycode::prefix_end;
use super::names::{NameIds, ScanBounds, encode_id};
use super::outbox::{self, OutboxEntry, PreparedOutput};
use super::read_cache::{Keys, ReadCache, Row};
use super::tables::{Changes, Previous, Table, Tables};
use super::{META_LAYOUT, META_POSITION, ReadRows, StateReader, StoreError};
use crate::aggregate::Contribution;
use crate::change::{Lsn, Value};

/// What [`StateWriter::replace_output`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum OutputChange {
    Unchanged,
    /// The output was replaced or removed; `old_key` is the key of the one
    /// before, if there was one.
    Changed {
        old_key: Option<String>,
    },
}

/// A stored row with its encoded primary key.
pub type KeyedRow = (Vec<u8>, Vec<Value>);

/// The tables of one write transaction. Keys of rows and outputs are the
/// encoded primary key (see [`super::keycode`]); this type adds the table, view
/// or index name in front.
pub struct StateWriter<'t> {
    pub(super) changes: Changes<'t>,
    /// The ids of the names keys start with.
    pub(super) names: NameIds,
    /// End LSN of the source transactions this write applies, for dead letters.
    source_lsn: Option<Lsn>,
    /// Next outbox sequence per sink, read once per transaction.
    next_sequence: HashMap<String, u64>,
    /// Keys (`view ‖ group`) of the aggregate groups changed in this
    /// transaction, with their view: in key order, which is view order.
    pub(super) changed_groups: BTreeMap<Vec<u8>, String>,
    /// Groups and value counts changed in this transaction, not yet written.
    pub(super) group_writes: super::groups::GroupWrites,
    /// Rows and index lookups read in this transaction.
    cache: ReadCache,
}

pub(super) fn view_hash_key(view: &str) -> String {
    format!("view_hash:{view}")
}

/// The key suffixes after `prefix` of every entry of `table` that starts with it.
pub(super) fn suffixes_after(tables: &Tables, table: Table, prefix: &[u8]) -> Vec<Vec<u8>> {
    let end = prefix_end(prefix);
    tables
        .range(table, prefix, &end)
        .map(|(key, _)| key[prefix.len()..].to_vec())
        .collect()
}

/// The key suffix after `prefix` of the first entry of `table` that starts with it.
pub(super) fn first_suffix_after(tables: &Tables, table: Table, prefix: &[u8]) -> Option<Vec<u8>> {
    let end = prefix_end(prefix);
    tables
        .range(table, prefix, &end)
        .next()
        .map(|(key, _)| key[prefix.len()..].to_vec())
}

pub(super) fn decode_row(bytes: &[u8]) -> Result<Vec<Value>, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: "row",
        reason: e.to_string(),
    })
}

impl ReadRows for StateWriter<'_> {
    fn get_row(&self, table: &str, pk: &[u8]) -> Result<Option<Row>, StoreError> {
        let key = self.names.prefixed(table, pk)?;
        self.cache.get_row(self.changes.tables(), key)
    }

    fn index_lookup(&self, table: &str, index: &str, values: &[u8]) -> Result<Keys, StoreError> {
        let prefix = self.names.index_prefix(table, index, values)?;
        Ok(self.cache.index_lookup(self.changes.tables(), prefix))
    }

    fn index_first(
        &self,
        table: &str,
        index: &str,
        values: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let prefix = self.names.index_prefix(table, index, values)?;
        Ok(self.cache.index_first(self.changes.tables(), &prefix))
    }
}

impl<'t> StateWriter<'t> {
    pub(super) fn open(changes: Changes<'t>) -> Result<Self, StoreError> {
        Ok(StateWriter {
            names: NameIds::load(changes.tables(), true)?,
            changes,
            source_lsn: None,
            next_sequence: HashMap::new(),
            changed_groups: BTreeMap::new(),
            group_writes: Default::default(),
            cache: ReadCache::default(),
        })
    }

    /// A reader of this transaction's rows and join indexes as they are
    /// now, for computing outputs on another thread. It shares the maps'
    /// nodes (O(1)), so a row written while it lives copies the nodes on
    /// its path: it is meant for refreshing roots, which writes no rows.
    pub fn rows_reader(&self) -> StateReader {
        let tables = self.changes.tables().only(&[Table::Rows, Table::JoinIndex]);
        StateReader::of(tables, self.names.for_reader())
    }

    /// The transaction's changes, to commit or roll back.
    pub(super) fn into_changes(self) -> Changes<'t> {
        self.changes
    }

    fn tables(&self) -> &Tables {
        self.changes.tables()
    }

    /// Says which source transactions this write applies (the end LSN of the
    /// batch's last commit), so that what fails in it can say where it came from.
    pub fn set_source_lsn(&mut self, lsn: Option<Lsn>) {
        self.source_lsn = lsn;
    }

    pub fn source_lsn(&self) -> Option<Lsn> {
        self.source_lsn
    }

    pub fn put_row(&mut self, table: &str, pk: &[u8], row: &[Value]) -> Result<(), StoreError> {
        let key = self.names.prefixed(table, pk)?;
        let bytes = outbox::encode(&row);
        self.changes.insert(Table::Rows, &key, &bytes);
        self.cache.row_written(&key, Some(row));
        Ok(())
    }

    pub fn delete_row(&mut self, table: &str, pk: &[u8]) -> Result<(), StoreError> {
        let key = self.names.prefixed(table, pk)?;
        self.changes.remove(Table::Rows, &key);
        self.cache.row_written(&key, None);
        Ok(())
    }

    /// Primary keys of every stored row of `table`, in key order.
    pub fn table_keys(&self, table: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(suffixes_after(
            self.tables(),
            Table::Rows,
            &self.names.prefixed(table, &[])?,
        ))
    }

    /// Primary keys of the stored rows of `table` in key order, from `after`
    /// (exclusive), at most `limit`: for refreshes in bounded chunks, which
    /// read each row through the read cache, so decoding it here would be
    /// done twice.
    pub fn table_keys_after(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let ScanBounds { prefix, start, end } = self.names.scan_bounds(table, after)?;
        Ok(self
            .tables()
            .range(Table::Rows, &start, &end)
            .take(limit)
            .map(|(key, _)| key[prefix.len()..].to_vec())
            .collect())
    }

    /// Stored rows of `table` in primary-key order, from `after` (exclusive),
    /// at most `limit`: for scans in bounded chunks.
    pub fn table_rows_after(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyedRow>, StoreError> {
        let ScanBounds { prefix, start, end } = self.names.scan_bounds(table, after)?;
        self.tables()
            .range(Table::Rows, &start, &end)
            .take(limit)
            .map(|(key, value)| Ok((key[prefix.len()..].to_vec(), decode_row(value)?)))
            .collect()
    }

    pub fn index_insert(
        &mut self,
        table: &str,
        index: &str,
        values: &[u8],
        pk: &[u8],
    ) -> Result<(), StoreError> {
        let mut key = self.names.index_prefix(table, index, values)?;
        self.cache.index_written(&key);
        key.extend_from_slice(pk);
        self.changes.insert(Table::JoinIndex, &key, &[]);
        Ok(())
    }

    pub fn index_remove(
        &mut self,
        table: &str,
        index: &str,
        values: &[u8],
        pk: &[u8],
    ) -> Result<(), StoreError> {
        let mut key = self.names.index_prefix(table, index, values)?;
        self.cache.index_written(&key);
        key.extend_from_slice(pk);
        self.changes.remove(Table::JoinIndex, &key);
        Ok(())
    }

    /// Drops the join index entries of `table` (to be rebuilt from its rows).
    pub fn clear_table_indexes(&mut self, table: &str) -> Result<(), StoreError> {
        let prefix = self.names.prefixed(table, &[])?;
        let end = prefix_end(&prefix);
        self.changes.clear_range(Table::JoinIndex, &prefix, &end);
        self.cache.clear();
        Ok(())
    }

    /// Drops the rows and join index entries of one table no view reads.
    pub fn clear_table(&mut self, table: &str) -> Result<(), StoreError> {
        let prefix = self.names.prefixed(table, &[])?;
        let end = prefix_end(&prefix);
        self.changes.clear_range(Table::Rows, &prefix, &end);
        self.clear_table_indexes(table)
    }

    /// Drops every row and join index entry (a new snapshot follows).
    pub fn clear_rows(&mut self) -> Result<(), StoreError> {
        self.changes.clear(Table::Rows);
        self.changes.clear(Table::JoinIndex);
        self.cache.clear();
        self.remove_meta(META_POSITION);
        Ok(())
    }

    /// The stored contribution of root `pk` of the aggregate view `view`.
    pub fn get_contribution(
        &self,
        view: &str,
        pk: &[u8],
    ) -> Result<Option<Contribution>, StoreError> {
        let key = self.names.prefixed(view, pk)?;
        match self.changes.get(Table::Outputs, &key) {
            Some(bytes) => outbox::decode_contribution(bytes)
                .map(Some)
                .map_err(|reason| StoreError::Corrupt {
                    what: "stored contribution",
                    reason: format!("view {view}: {reason}"),
                }),
            None => Ok(None),
        }
    }

    pub fn put_contribution(
        &mut self,
        view: &str,
        pk: &[u8],
        contribution: &Contribution,
    ) -> Result<(), StoreError> {
        let key = self.names.prefixed(view, pk)?;
        let bytes = outbox::encode_contribution(contribution);
        self.changes.insert(Table::Outputs, &key, &bytes);
        Ok(())
    }

    /// Records `new` as the output of root `pk` of the cache or search view
    /// `view` (`None`: it has none), unless its key and document digest are
    /// the ones recorded.
    pub fn replace_output(
        &mut self,
        view: &str,
        pk: &[u8],
        new: Option<&PreparedOutput>,
    ) -> Result<OutputChange, StoreError> {
        let key = self.names.prefixed(view, pk)?;
        // Written first and the old record taken from the write: one walk
        // down the tree. Should the old record not decode, the error rolls
        // the transaction back, this write with it.
        let old = match new {
            Some(new) => match self.changes.insert(Table::Outputs, &key, &new.record) {
                Previous::Same => return Ok(OutputChange::Unchanged),
                Previous::Absent => None,
                Previous::Value(old) => Some(old),
            },
            None => match self.changes.remove(Table::Outputs, &key) {
                None => return Ok(OutputChange::Unchanged),
                old => old,
            },
        };
        let old_key = old.map(outbox::decode_output_key).transpose()?;
        Ok(OutputChange::Changed { old_key })
    }

    pub fn delete_output(&mut self, view: &str, pk: &[u8]) -> Result<(), StoreError> {
        let key = self.names.prefixed(view, pk)?;
        self.changes.remove(Table::Outputs, &key);
        Ok(())
    }

    /// Appends `entry` to `sink`'s outbox and returns its sequence.
    pub fn append_outbox(&mut self, sink: &str, entry: &OutboxEntry) -> Result<u64, StoreError> {
        let entry = outbox::encode_entry(entry);
        self.append_encoded(sink, &entry, &entry)
    }

    /// Appends the entry that puts `output` to `sink`'s outbox, already
    /// encoded where it was computed, and returns its sequence. The log
    /// keeps only the root and key it names.
    pub fn append_put(&mut self, sink: &str, output: &PreparedOutput) -> Result<u64, StoreError> {
        self.append_encoded(sink, &output.put_entry, &output.logged_entry)
    }

    fn append_encoded(
        &mut self,
        sink: &str,
        entry: &[u8],
        logged: &[u8],
    ) -> Result<u64, StoreError> {
        let sequence = self.next_sequence(sink)?;
        self.changes.append_outbox(sink, sequence, entry, logged);
        Ok(sequence)
    }

    /// Takes the next outbox sequence of `sink`; the newest one is stored
    /// once, when the transaction ends ([`StateWriter::finish`]).
    fn next_sequence(&mut self, sink: &str) -> Result<u64, StoreError> {
        if let Some(next) = self.next_sequence.get_mut(sink) {
            *next += 1;
            return Ok(*next - 1);
        }
        let next = super::read_sequence(self.tables(), sink)? + 1;
        self.next_sequence.insert(sink.to_string(), next + 1);
        Ok(next)
    }

    /// Stores what the transaction kept in memory: the buffered groups and
    /// value counts, the ids it gave names, and the newest outbox sequence of each sink it
    /// appended to.
    pub(super) fn finish(&mut self) -> Result<(), StoreError> {
        self.flush_group_writes()?;
        for (name, id) in self.names.take_added() {
            self.changes
                .insert(Table::Names, name.as_bytes(), &encode_id(id));
        }
        for (sink, next) in std::mem::take(&mut self.next_sequence) {
            let newest = next - 1;
            self.put_meta(&outbox::sequence_meta_key(&sink), &newest.to_be_bytes());
        }
        Ok(())
    }

    pub(super) fn put_meta(&mut self, name: &str, value: &[u8]) {
        self.changes.insert(Table::Meta, name.as_bytes(), value);
    }

    pub(super) fn remove_meta(&mut self, name: &str) {
        self.changes.remove(Table::Meta, name.as_bytes());
    }

    pub fn position(&self) -> Result<Option<Lsn>, StoreError> {
        match self.changes.get(Table::Meta, META_POSITION.as_bytes()) {
            Some(v) => Ok(Some(Lsn(super::decode_u64(v, "source position")?))),
            None => Ok(None),
        }
    }

    pub fn set_position(&mut self, position: Lsn) -> Result<(), StoreError> {
        self.put_meta(META_POSITION, &position.0.to_be_bytes());
        Ok(())
    }

    pub fn set_layout(&mut self, layout: &str) -> Result<(), StoreError> {
        self.put_meta(META_LAYOUT, layout.as_bytes());
        Ok(())
    }

    pub fn set_source_identity(&mut self, identity: &str) {
        self.put_meta(super::META_SOURCE_IDENTITY, identity.as_bytes());
    }

    /// Records that a root of `view` must be refreshed later.
    pub fn add_pending(&mut self, view: &str, pk: &[u8]) -> Result<(), StoreError> {
        let key = self.names.prefixed(view, pk)?;
        self.changes.insert(Table::Pending, &key, &[]);
        Ok(())
    }

    /// Removes and returns up to `limit` pending roots.
    pub fn take_pending(&mut self, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut taken = Vec::new();
        while taken.len() < limit {
            let Some(key) = self.changes.pop_first(Table::Pending) else {
                break;
            };
            let view = key
                .get(..2)
                .and_then(|id| self.names.name(u16::from_be_bytes([id[0], id[1]])))
                .ok_or_else(|| StoreError::Corrupt {
                    what: "pending root",
                    reason: format!("key {key:?} names no view"),
                })?;
            taken.push((view, key[2..].to_vec()));
        }
        Ok(taken)
    }

    /// Forgets the pending roots of `view`.
    pub(super) fn clear_pending(&mut self, view: &str) -> Result<(), StoreError> {
        let prefix = self.names.prefixed(view, &[])?;
        let end = prefix_end(&prefix);
        self.changes.clear_range(Table::Pending, &prefix, &end);
        Ok(())
    }

    pub fn set_view_hash(&mut self, view: &str, hash: &str) -> Result<(), StoreError> {
        self.put_meta(&view_hash_key(view), hash.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ReadRows, Store};
    use crate::change::Value;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        (dir, store)
    }

    /// Reads after writes in the same transaction see the writes, although
    /// the first read was cached.
    #[test]
    fn cached_rows_follow_the_transactions_writes() {
        let (_dir, store) = store();
        store
            .write(|w| {
                assert_eq!(w.get_row("t", b"1")?, None);
                w.put_row("t", b"1", &[Value::Int(1)])?;
                assert_eq!(w.get_row("t", b"1")?.as_deref(), Some(&[Value::Int(1)][..]));
                w.put_row("t", b"1", &[Value::Int(2)])?;
                assert_eq!(w.get_row("t", b"1")?.as_deref(), Some(&[Value::Int(2)][..]));
                w.delete_row("t", b"1")?;
                assert_eq!(w.get_row("t", b"1")?, None);
                w.put_row("t", b"2", &[Value::Int(3)])?;
                w.clear_rows()?;
                assert_eq!(w.get_row("t", b"2")?, None);
                Ok::<_, super::StoreError>(())
            })
            .unwrap();
    }

    /// A `one` join reads only the lowest key: the same one a whole lookup
    /// starts with, whether that lookup is cached or not.
    #[test]
    fn the_first_index_key_is_the_lowest_and_follows_the_transactions_writes() {
        let (_dir, store) = store();
        store
            .write(|w| {
                assert_eq!(w.index_first("t", "i", b"v")?, None);
                w.index_insert("t", "i", b"v", b"3")?;
                w.index_insert("t", "i", b"v", b"1")?;
                w.index_insert("t", "i", b"w", b"0")?;
                assert_eq!(w.index_first("t", "i", b"v")?, Some(b"1".to_vec()));
                assert_eq!(w.index_lookup("t", "i", b"v")?[0], b"1");
                w.index_remove("t", "i", b"v", b"1")?;
                assert_eq!(w.index_first("t", "i", b"v")?, Some(b"3".to_vec()));
                w.index_remove("t", "i", b"v", b"3")?;
                assert_eq!(w.index_first("t", "i", b"v")?, None);
                assert_eq!(w.index_first("t", "i", b"w")?, Some(b"0".to_vec()));
                Ok::<_, super::StoreError>(())
            })
            .unwrap();
    }

    #[test]
    fn cached_index_lookups_follow_the_transactions_writes() {
        let (_dir, store) = store();
        store
            .write(|w| {
                assert!(w.index_lookup("t", "i", b"v")?.is_empty());
                w.index_insert("t", "i", b"v", b"1")?;
                w.index_insert("t", "i", b"w", b"2")?;
                assert_eq!(&*w.index_lookup("t", "i", b"v")?, &[b"1".to_vec()]);
                w.index_insert("t", "i", b"v", b"3")?;
                assert_eq!(
                    &*w.index_lookup("t", "i", b"v")?,
                    &[b"1".to_vec(), b"3".to_vec()]
                );
                w.index_remove("t", "i", b"v", b"1")?;
                assert_eq!(&*w.index_lookup("t", "i", b"v")?, &[b"3".to_vec()]);
                w.clear_table_indexes("t")?;
                assert!(w.index_lookup("t", "i", b"v")?.is_empty());
                Ok::<_, super::StoreError>(())
            })
            .unwrap();
    }

    fn output(key: &str, document: &str) -> crate::state::PreparedOutput {
        let output = crate::state::StoredOutput {
            key: key.into(),
            document: document.into(),
        };
        crate::state::PreparedOutput::new("v", b"pk", output, &crate::state::PlainAllowance::none())
    }

    /// Outputs whose root row is gone are found by one merge of the two
    /// key orders, whatever lies before and after the view and the table.
    #[test]
    fn outputs_without_a_row_are_found() {
        let (_dir, store) = store();
        let pk = |id: i64| crate::state::keycode::encode_values(&[Value::Int(id)]);
        store
            .write(|w| {
                for id in [1, 3, 5] {
                    w.put_row("t", &pk(id), &[Value::Int(id)])?;
                }
                w.put_row("s", &pk(2), &[Value::Int(2)])?;
                w.put_row("u", &pk(4), &[Value::Int(4)])?;
                for id in [0, 1, 2, 3, 4, 6] {
                    w.replace_output("v", &pk(id), Some(&output(&format!("k:{id}"), "{}")))?;
                }
                w.replace_output("w", &pk(7), Some(&output("k:7", "{}")))?;
                Ok::<_, super::StoreError>(())
            })
            .unwrap();
        let orphans = store
            .reader()
            .unwrap()
            .outputs_without_row("v", "t")
            .unwrap();
        assert_eq!(orphans, vec![pk(0), pk(2), pk(4), pk(6)]);
        let none = store
            .reader()
            .unwrap()
            .outputs_without_row("x", "t")
            .unwrap();
        assert!(none.is_empty());
    }

    /// Outputs are compared by key and document digest, and a replaced one
    /// hands back its key (to be deleted when the new key differs).
    #[test]
    fn replaced_outputs_are_compared_by_key_and_digest() {
        use super::OutputChange::{Changed, Unchanged};
        let (_dir, store) = store();
        store
            .write(|w| {
                let a = output("k:1", r#"{"a":1}"#);
                assert_eq!(w.replace_output("v", b"1", None)?, Unchanged);
                assert_eq!(
                    w.replace_output("v", b"1", Some(&a))?,
                    Changed { old_key: None }
                );
                assert_eq!(w.replace_output("v", b"1", Some(&a))?, Unchanged);
                let b = output("k:1", r#"{"a":2}"#);
                assert_eq!(
                    w.replace_output("v", b"1", Some(&b))?,
                    Changed {
                        old_key: Some("k:1".into())
                    }
                );
                assert_eq!(
                    w.replace_output("v", b"1", None)?,
                    Changed {
                        old_key: Some("k:1".into())
                    }
                );
                assert_eq!(w.replace_output("v", b"1", None)?, Unchanged);
                Ok::<_, super::StoreError>(())
            })
            .unwrap();
    }
}
