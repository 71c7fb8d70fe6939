//! The groups of aggregate views: each group's running state
//! ([`GroupState`]) with the row last handed to its sink, the multisets of
//! inputs that `min`, `max` and `count_distinct` read, and the groups the
//! current transaction changed, which the engine turns into outbox entries
//! before it commits.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use super::keycode::{encode_values, prefix_end};
use super::names::read_prefix;
use super::tables::Table;
use super::{StateWriter, Store, StoreError, outbox};
use crate::aggregate::{AggregateError, GroupState, KeyCount, KeyInputs, ValueCounts};
use crate::change::Value;

/// A group as stored: its state, and the row last appended to its sink's
/// outbox (`None` before the first time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub state: GroupState,
    pub row: Option<Vec<Value>>,
}

fn corrupt(what: &'static str) -> impl Fn(postcard::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    }
}

/// The groups and value counts one write transaction has changed, kept
/// decoded and written to their tables once ([`StateWriter::flush_group_writes`]).
/// A batch adds and retracts thousands of contributions to the same few
/// hundred groups: decoding, re-encoding and re-inserting a group (and a
/// value count) for each was two table writes per contribution.
#[derive(Default)]
pub(super) struct GroupWrites {
    /// Group key → the group as this transaction left it.
    groups: HashMap<Vec<u8>, StoredGroup, RandomState>,
    /// Value key → its inputs as this transaction left them (none: gone).
    values: HashMap<Vec<u8>, KeyInputs, RandomState>,
}

impl<'t> StateWriter<'t> {
    /// `view ‖ group key`: the key of a group in both tables.
    pub fn group_key(&self, view: &str, group: &[Value]) -> Result<Vec<u8>, StoreError> {
        self.names.prefixed(view, &encode_values(group))
    }

    pub fn get_group(&self, key: &[u8]) -> Result<Option<StoredGroup>, StoreError> {
        if let Some(buffered) = self.group_writes.groups.get(key) {
            return Ok(Some(buffered.clone()));
        }
        match self.changes.get(Table::Groups, key) {
            Some(bytes) => postcard::from_bytes(bytes)
                .map(Some)
                .map_err(corrupt("group")),
            None => Ok(None),
        }
    }

    /// The group under `key` to change and put back ([`Self::put_group`]):
    /// taken out of the transaction's buffer rather than copied.
    pub fn take_group(&mut self, key: &[u8]) -> Result<Option<StoredGroup>, StoreError> {
        match self.group_writes.groups.remove(key) {
            Some(buffered) => Ok(Some(buffered)),
            None => self.get_group(key),
        }
    }

    /// Stores `group` under `key` when the transaction ends (or the changed
    /// groups are taken), not at once.
    pub fn put_group(&mut self, key: &[u8], group: StoredGroup) {
        self.group_writes.groups.insert(key.to_vec(), group);
    }

    pub fn delete_group(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.flush_group_writes()?;
        self.changes.remove(Table::Groups, key);
        let end = prefix_end(key);
        self.changes.clear_range(Table::GroupValues, key, &end);
        Ok(())
    }

    /// Writes the buffered groups and value counts to their tables: before
    /// anything reads those tables by range, and before the commit.
    pub(super) fn flush_group_writes(&mut self) -> Result<(), StoreError> {
        for (key, group) in self.group_writes.groups.drain() {
            self.changes
                .insert(Table::Groups, &key, &outbox::encode(&group));
        }
        for (key, inputs) in self.group_writes.values.drain() {
            if inputs.count == 0 {
                self.changes.remove(Table::GroupValues, &key);
            } else {
                let bytes = outbox::encode(&inputs);
                self.changes.insert(Table::GroupValues, &key, &bytes);
            }
        }
        Ok(())
    }

    /// Notes that the group under `key` changed in this transaction.
    pub fn mark_group_changed(&mut self, view: &str, key: Vec<u8>) {
        // Most changes touch a group already marked: no allocation then.
        self.changed_groups
            .entry(key)
            .or_insert_with(|| view.to_owned());
    }

    /// The groups changed since the last call, in (view, key) order: the
    /// order in which their rows reach the sink.
    pub fn take_changed_groups(&mut self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut self.changed_groups)
            .into_iter()
            .map(|(key, view)| (view, key))
            .collect()
    }

    /// The input multisets of the group under `key`.
    pub fn group_values<'w>(&'w mut self, key: &[u8]) -> GroupValues<'w, 't> {
        GroupValues {
            writer: self,
            group: key.to_vec(),
        }
    }

    /// Forgets every group and root contribution of `view` (its definition
    /// changed: the old groups mean nothing under the new one).
    pub fn clear_view_groups(&mut self, view: &str) -> Result<(), StoreError> {
        self.flush_group_writes()?;
        let prefix = self.names.prefixed(view, &[])?;
        let end = prefix_end(&prefix);
        for table in [Table::Groups, Table::GroupValues, Table::Outputs] {
            self.changes.clear_range(table, &prefix, &end);
        }
        self.changed_groups.retain(|_, changed| changed != view);
        Ok(())
    }
}

/// The multisets of one group, over the open write transaction.
pub struct GroupValues<'w, 't> {
    writer: &'w mut StateWriter<'t>,
    group: Vec<u8>,
}

impl GroupValues<'_, '_> {
    fn value_key(&self, measure: usize, sort_key: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.group.len() + 2 + sort_key.len());
        key.extend_from_slice(&self.group);
        key.extend_from_slice(&measure_tag(measure));
        key.extend_from_slice(sort_key);
        key
    }
}

/// Two bytes: views have far fewer measures than 65,536.
fn measure_tag(measure: usize) -> [u8; 2] {
    u16::try_from(measure).unwrap_or(u16::MAX).to_be_bytes()
}

fn storage(error: StoreError) -> AggregateError {
    AggregateError::Storage(error.to_string())
}

impl ValueCounts for GroupValues<'_, '_> {
    fn change(
        &mut self,
        measure: usize,
        sort_key: &[u8],
        value: &Value,
        delta: i64,
    ) -> Result<KeyCount, AggregateError> {
        let key = self.value_key(measure, sort_key);
        let mut inputs = match self.writer.group_writes.values.remove(&key) {
            Some(buffered) => buffered,
            None => match self.writer.changes.get(Table::GroupValues, &key) {
                Some(bytes) => postcard::from_bytes(bytes)
                    .map_err(corrupt("group value"))
                    .map_err(storage)?,
                None => KeyInputs::default(),
            },
        };
        let count = inputs.change(value, delta);
        self.writer.group_writes.values.insert(key, inputs);
        Ok(count)
    }

    fn extreme(&mut self, measure: usize, last: bool) -> Result<Option<Value>, AggregateError> {
        self.writer.flush_group_writes().map_err(storage)?;
        let mut start = self.group.clone();
        start.extend_from_slice(&measure_tag(measure));
        let end = prefix_end(&start);
        let mut range = self
            .writer
            .changes
            .tables()
            .range(Table::GroupValues, &start, &end);
        let found = if last {
            range.next_back()
        } else {
            range.next()
        };
        let Some((_, bytes)) = found else {
            return Ok(None);
        };
        let inputs: KeyInputs = postcard::from_bytes(bytes)
            .map_err(corrupt("group value"))
            .map_err(storage)?;
        Ok(inputs.shown().cloned())
    }

    fn nth(&mut self, measure: usize, place: u64) -> Result<Option<Value>, AggregateError> {
        self.writer.flush_group_writes().map_err(storage)?;
        let mut start = self.group.clone();
        start.extend_from_slice(&measure_tag(measure));
        let end = prefix_end(&start);
        let range = self
            .writer
            .changes
            .tables()
            .range(Table::GroupValues, &start, &end);
        let keys = range.map(|(_, bytes)| postcard::from_bytes::<KeyInputs>(bytes));
        let mut passed = 0u64;
        for inputs in keys {
            let inputs = inputs.map_err(corrupt("group value")).map_err(storage)?;
            passed += inputs.count;
            if place < passed {
                return Ok(inputs.shown().cloned());
            }
        }
        Ok(None)
    }
}

impl Store {
    /// Reads every group row of `view` that was appended to its outbox, and
    /// the newest outbox sequence of `sink` (given to `on_sequence` first),
    /// at one consistent point, in chunks of `chunk` `(group key, row)`
    /// pairs. Used to write a target table from scratch. Returns `None`, and
    /// reads nothing, while the groups are not yet built for
    /// `definition_hash` (before the first snapshot, or during a rebuild),
    /// or while a snapshot is being taken: its views are refreshed in many
    /// transactions, so the groups are partly the new rows' and partly the
    /// old (a sink restarted after a crash in it wrote them; trial 10).
    pub fn group_rows_snapshot(
        &self,
        view: &str,
        definition_hash: &str,
        sink: &str,
        chunk: usize,
        on_sequence: impl FnOnce(u64),
        mut each_chunk: impl FnMut(Vec<(Vec<Value>, Vec<Value>)>) -> Result<(), StoreError>,
    ) -> Result<Option<u64>, StoreError> {
        let tables = self.snapshot()?;
        let built_for = tables.get(Table::Meta, super::writer::view_hash_key(view).as_bytes());
        let snapshot_complete = tables
            .get(Table::Meta, super::META_POSITION.as_bytes())
            .is_some();
        if built_for != Some(definition_hash.as_bytes()) || !snapshot_complete {
            return Ok(None);
        }
        let sequence = super::read_sequence(&tables, sink)?;
        on_sequence(sequence);
        let prefix = read_prefix(&tables, view)?;
        let end = prefix_end(&prefix);
        let mut batch = Vec::with_capacity(chunk);
        for (_, bytes) in tables.range(Table::Groups, &prefix, &end) {
            let group: StoredGroup = postcard::from_bytes(bytes).map_err(corrupt("group"))?;
            if let Some(row) = group.row {
                batch.push((group.state.group, row));
            }
            if batch.len() == chunk {
                each_chunk(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            each_chunk(batch)?;
        }
        Ok(Some(sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::ValueCounts;
    use crate::change::Lsn;

    fn group(rows: u64) -> StoredGroup {
        StoredGroup {
            state: GroupState {
                group: vec![Value::Int(1)],
                rows,
                measures: Vec::new(),
            },
            row: None,
        }
    }

    /// A target is written from the groups once they are built for its
    /// definition and no snapshot is being taken.
    #[test]
    fn group_rows_are_read_for_a_target_only_outside_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        let read = |store: &Store| {
            store
                .group_rows_snapshot("v", "h1", "v", 10, |_| {}, |_| Ok(()))
                .unwrap()
        };
        store.write(|w| w.set_view_hash("v", "h1")).unwrap();
        assert_eq!(read(&store), None, "before the first snapshot's end");
        store.write(|w| w.set_position(Lsn(7))).unwrap();
        assert_eq!(read(&store), Some(0));
        store.write(|w| w.set_view_hash("v", "h2")).unwrap();
        assert_eq!(read(&store), None, "built for another definition");
        store
            .write(|w| {
                w.set_view_hash("v", "h1")?;
                w.clear_rows()
            })
            .unwrap();
        assert_eq!(read(&store), None, "during a new snapshot");
    }

    /// Groups and value counts are buffered in the transaction: reads see
    /// the buffer, a range scan and the commit see it written out.
    #[test]
    fn buffered_group_writes_read_back_within_and_after_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        let key = store.write(|w| w.group_key("v", &[Value::Int(1)])).unwrap();
        let (five, nine) = (Value::Int(5), Value::Int(9));
        let sort = |v: &Value| crate::expr::sort_key(v).unwrap();
        store
            .write(|w| {
                assert_eq!(w.get_group(&key)?, None);
                w.put_group(&key, group(1));
                w.put_group(&key, group(3));
                assert_eq!(w.get_group(&key)?, Some(group(3)));
                let mut values = w.group_values(&key);
                assert_eq!(values.change(0, &sort(&five), &five, 1).unwrap().key, 1);
                assert_eq!(values.change(0, &sort(&nine), &nine, 1).unwrap().key, 1);
                assert_eq!(values.change(0, &sort(&nine), &nine, 1).unwrap().key, 2);
                assert_eq!(values.extreme(0, true).unwrap(), Some(nine.clone()));
                assert_eq!(values.change(0, &sort(&nine), &nine, -2).unwrap().key, 0);
                assert_eq!(values.extreme(0, true).unwrap(), Some(five.clone()));
                assert_eq!(values.extreme(0, false).unwrap(), Some(five.clone()));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        store
            .write(|w| {
                assert_eq!(w.get_group(&key)?, Some(group(3)));
                let mut values = w.group_values(&key);
                assert_eq!(values.extreme(0, true).unwrap(), Some(five.clone()));
                assert_eq!(values.change(0, &sort(&nine), &nine, 1).unwrap().key, 1);
                assert_eq!(values.extreme(0, true).unwrap(), Some(nine.clone()));
                w.clear_view_groups("v")?;
                assert_eq!(w.get_group(&key)?, None);
                assert_eq!(w.group_values(&key).extreme(0, true).unwrap(), None);
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
}
