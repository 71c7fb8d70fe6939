//! The store's tables, held in memory: ordered maps from byte keys to byte
//! values, and [`Changes`], the one write transaction that may change them.
//!
//! The maps are persistent B+trees ([`imbl::OrdSet`] of [`Entry`]): cloning one is O(1)
//! and shares every node, so a reader ([`super::StateReader`]) or a
//! checkpoint gets a consistent copy at once and the writer copies only the
//! nodes it changes while such a copy lives. Without one, changes are made
//! in place.
//!
//! A transaction changes the maps directly and keeps two records: an undo
//! list (the values it replaced, moved out of the maps, not copied), which
//! puts everything back when it fails, and a redo record
//! ([`super::redo`]), which the commit appends to the write-ahead log.

use std::ops::Bound;

use imbl::OrdSet;

use super::entry::{Entry, KeyRef};
use super::outboxes::{EntryBytes, OutboxChange};
use super::redo::{Op, RedoWriter};

/// What [`Changes::insert`] found under its key.
#[derive(Debug, PartialEq, Eq)]
pub enum Previous<'c> {
    /// No entry: the value was added.
    Absent,
    /// This very value: nothing changed.
    Same,
    /// Another value, now replaced.
    Value(&'c [u8]),
}

/// One table: entries in key order.
pub type Map = OrdSet<Entry>;

/// The tables of the store. Keys of most start with the 2-byte id of a name
/// ([`super::names`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// `table ‖ primary key` → stored columns (postcard `Vec<Value>`).
    Rows = 0,
    /// `table ‖ index ‖ join values ‖ primary key` → empty: a join index entry.
    JoinIndex = 1,
    /// `view ‖ root primary key` → the root's last output: of a cache or
    /// search view its key and document digest, of an aggregate view its
    /// whole contribution (group key and measure inputs, postcard).
    Outputs = 2,
    /// `view ‖ group key` → [`super::StoredGroup`]: aggregate groups.
    Groups = 3,
    /// `view ‖ group key ‖ measure ‖ sort key` → (count, value): the inputs
    /// of `min`, `max` and `count_distinct`, in value order.
    GroupValues = 4,
    /// `view ‖ root primary key` → empty: roots whose refresh was deferred.
    Pending = 5,
    /// `view ‖ root primary key` → [`super::DeadLetter`]: roots without an output.
    DeadLetters = 6,
    /// Small named values (UTF-8 names): source position, layout, outbox
    /// sequences, view hashes and records.
    Meta = 7,
    /// Name (UTF-8) → its 2-byte id ([`super::names`]).
    Names = 8,
    /// `view ‖ output key` → the root owning the key and the roots waiting
    /// for it ([`super::output_keys`]), for cache views whose key template
    /// may give two rows one key.
    OutputKeys = 9,
}

pub const TABLE_COUNT: usize = 10;

impl Table {
    pub const ALL: [Table; TABLE_COUNT] = [
        Table::Rows,
        Table::JoinIndex,
        Table::Outputs,
        Table::Groups,
        Table::GroupValues,
        Table::Pending,
        Table::DeadLetters,
        Table::Meta,
        Table::Names,
        Table::OutputKeys,
    ];

    pub fn from_byte(byte: u8) -> Option<Table> {
        Table::ALL.get(usize::from(byte)).copied()
    }
}

/// Every table, as of one point.
#[derive(Clone, Default)]
pub struct Tables {
    maps: [Map; TABLE_COUNT],
}

/// The half-open key range `start..end`.
fn between<'r, 'k>(
    start: &'r KeyRef<'k>,
    end: &'r KeyRef<'k>,
) -> (Bound<&'r KeyRef<'k>>, Bound<&'r KeyRef<'k>>) {
    (Bound::Included(start), Bound::Excluded(end))
}

impl Tables {
    fn map(&self, table: Table) -> &Map {
        &self.maps[table as usize]
    }

    fn map_mut(&mut self, table: Table) -> &mut Map {
        &mut self.maps[table as usize]
    }

    /// A copy of `tables` (sharing their nodes), the others left empty.
    pub fn only(&self, tables: &[Table]) -> Tables {
        let mut copy = Tables::default();
        for table in tables {
            *copy.map_mut(*table) = self.map(*table).clone();
        }
        copy
    }

    pub fn get(&self, table: Table, key: &[u8]) -> Option<&[u8]> {
        self.map(table).get(&KeyRef::new(key)).map(Entry::value)
    }

    /// The entries with keys in `start..end`, in key order.
    pub fn range<'a>(
        &'a self,
        table: Table,
        start: &'a [u8],
        end: &'a [u8],
    ) -> impl DoubleEndedIterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let (start, end) = (KeyRef::new(start), KeyRef::new(end));
        self.map(table)
            .range::<_, KeyRef>(between(&start, &end))
            .map(|entry| (entry.key(), entry.value()))
    }

    /// Every entry, in key order.
    pub fn iter(&self, table: Table) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map(table)
            .iter()
            .map(|entry| (entry.key(), entry.value()))
    }

    pub fn len(&self, table: Table) -> usize {
        self.map(table).len()
    }

    pub fn is_empty(&self, table: Table) -> bool {
        self.map(table).is_empty()
    }

    /// Empties `table` in this copy, dropping its share of the nodes: a
    /// writer still holding the table then changes them in place again.
    pub(super) fn release(&mut self, table: Table) {
        *self.map_mut(table) = Map::new();
    }

    /// Adds the entries of a table read from a checkpoint, in key order.
    pub(super) fn load(&mut self, table: Table, entries: Vec<Entry>) {
        insert_packed(self.map_mut(table), entries);
    }

    /// Applies one logged change (replaying the write-ahead log).
    pub(super) fn apply(&mut self, table: Table, change: TableChange<'_>) {
        let map = self.map_mut(table);
        match change {
            TableChange::Put(key, value) => {
                map.insert(Entry::new(key, value));
            }
            TableChange::Delete(key) => {
                map.remove(&KeyRef::new(key));
            }
            TableChange::ClearRange(start, end) => {
                let _ = remove_range(map, start, end);
            }
            TableChange::Clear => *map = Map::new(),
        }
    }
}

/// Items in the order that fills the store's B+tree leaves when they are
/// sorted keys inserted one by one: every other one first, then the rest.
/// The tree splits a full leaf in the middle, so keys inserted in order
/// leave every leaf half empty (at a million rows, a fifth of the store's
/// memory); the second pass fills the gaps the first left. Writers of
/// sorted keys (snapshot rows, a view's new outputs) insert in this order.
pub fn packing_order<T>(items: &[T]) -> impl Iterator<Item = &T> {
    items
        .iter()
        .step_by(2)
        .chain(items.iter().skip(1).step_by(2))
}

/// Inserts entries given in key order in [`packing_order`], moving them.
fn insert_packed(map: &mut Map, entries: Vec<Entry>) {
    let mut odd = Vec::with_capacity(entries.len() / 2);
    for (index, entry) in entries.into_iter().enumerate() {
        if index % 2 == 0 {
            map.insert(entry);
        } else {
            odd.push(entry);
        }
    }
    for entry in odd {
        map.insert(entry);
    }
}

/// A change of one table, as the redo record states it.
pub enum TableChange<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
    ClearRange(&'a [u8], &'a [u8]),
    Clear,
}

/// Removes the entries with keys in `start..end` and returns them; a range
/// that covers the whole map swaps it for an empty one.
fn remove_range(map: &mut Map, start: &[u8], end: &[u8]) -> Removed {
    let covers_all = match (map.get_min(), map.get_max()) {
        (Some(first), Some(last)) => first.key() >= start && last.key() < end,
        _ => return Removed::Entries(Vec::new()),
    };
    if covers_all {
        return Removed::Map(std::mem::take(map));
    }
    let (start, end) = (KeyRef::new(start), KeyRef::new(end));
    let keys: Vec<Box<[u8]>> = map
        .range::<_, KeyRef>(between(&start, &end))
        .map(|entry| entry.key().into())
        .collect();
    let entries = keys
        .iter()
        .filter_map(|key| map.remove(&KeyRef::new(key)))
        .collect();
    Removed::Entries(entries)
}

enum Removed {
    Map(Map),
    Entries(Vec<Entry>),
}

/// What puts one change back.
enum Undo {
    /// An entry was added where none was: remove it.
    Added { table: Table, key: Box<[u8]> },
    /// An entry was replaced or removed: put it back.
    Replaced { table: Table, old: Entry },
    /// Put back the entries a range removal took.
    Entries { table: Table, entries: Vec<Entry> },
    /// Put back a whole map a range removal swapped out.
    Map { table: Table, map: Map },
}

/// One write transaction's changes to the tables: applied at once, undone
/// by [`Changes::rollback`], logged from [`Changes::redo`].
pub struct Changes<'t> {
    tables: &'t mut Tables,
    undo: Vec<Undo>,
    redo: RedoWriter,
    /// What the outboxes get when the transaction commits.
    outbox: Vec<OutboxChange>,
    /// Bit `t` set: table `t` was changed.
    touched: u16,
}

impl<'t> Changes<'t> {
    /// A transaction on `tables` that writes its record into `redo` (empty).
    pub fn new(tables: &'t mut Tables, redo: RedoWriter) -> Changes<'t> {
        Changes {
            tables,
            undo: Vec::new(),
            redo,
            outbox: Vec::new(),
            touched: 0,
        }
    }

    /// Whether this transaction changed `table`.
    pub fn touched(&self, table: Table) -> bool {
        self.touched & (1 << table as u16) != 0
    }

    fn touch(&mut self, table: Table) {
        self.touched |= 1 << table as u16;
    }

    pub fn tables(&self) -> &Tables {
        self.tables
    }

    pub fn get(&self, table: Table, key: &[u8]) -> Option<&[u8]> {
        self.tables.get(table, key)
    }

    /// Puts `value` under `key`, and says what was there: a caller that
    /// needs the old value gets it without a second walk down the tree.
    pub fn insert(&mut self, table: Table, key: &[u8], value: &[u8]) -> Previous<'_> {
        // One walk down the tree, not a lookup and then an insert: an
        // entry replaced by an equal one is a change of nothing, neither
        // logged nor undone.
        let (undo, replaced) = match self.tables.map_mut(table).insert(Entry::new(key, value)) {
            Some(old) if old.value() == value => return Previous::Same,
            Some(old) => (Undo::Replaced { table, old }, true),
            None => (
                Undo::Added {
                    table,
                    key: key.into(),
                },
                false,
            ),
        };
        self.undo.push(undo);
        self.touch(table);
        self.redo.push(&Op::Put { table, key, value });
        match self.last_replaced() {
            Some(old) if replaced => Previous::Value(old),
            _ => Previous::Absent,
        }
    }

    /// Removes `key`; returns the value it had, `None` when it was not there.
    pub fn remove(&mut self, table: Table, key: &[u8]) -> Option<&[u8]> {
        let old = self.tables.map_mut(table).remove(&KeyRef::new(key))?;
        self.touch(table);
        self.redo.push(&Op::Delete { table, key });
        self.undo.push(Undo::Replaced { table, old });
        self.last_replaced()
    }

    /// The value the last undo record puts back, when it is one entry's.
    fn last_replaced(&self) -> Option<&[u8]> {
        match self.undo.last() {
            Some(Undo::Replaced { old, .. }) => Some(old.value()),
            _ => None,
        }
    }

    /// Removes every entry with a key in `start..end`.
    pub fn clear_range(&mut self, table: Table, start: &[u8], end: &[u8]) {
        match remove_range(self.tables.map_mut(table), start, end) {
            Removed::Entries(entries) if entries.is_empty() => return,
            Removed::Entries(entries) => self.undo.push(Undo::Entries { table, entries }),
            Removed::Map(map) => self.undo.push(Undo::Map { table, map }),
        }
        self.touch(table);
        self.redo.push(&Op::ClearRange { table, start, end });
    }

    /// Removes every entry.
    pub fn clear(&mut self, table: Table) {
        let map = std::mem::take(self.tables.map_mut(table));
        if map.is_empty() {
            return;
        }
        self.undo.push(Undo::Map { table, map });
        self.touch(table);
        self.redo.push(&Op::Clear { table });
    }

    /// Removes the first entry and returns its key.
    pub fn pop_first(&mut self, table: Table) -> Option<Box<[u8]>> {
        let key: Box<[u8]> = self.tables.map(table).get_min()?.key().into();
        self.remove(table, &key);
        Some(key)
    }

    /// Appends `entry` to `sink`'s outbox when the transaction commits;
    /// the log keeps `logged` in its place (a put naming its root, or the
    /// entry itself).
    pub fn append_outbox(&mut self, sink: &str, sequence: u64, entry: &[u8], logged: &[u8]) {
        self.redo.push(&Op::OutboxAppend {
            sink,
            sequence,
            entry: logged,
        });
        self.outbox.push(OutboxChange::Append {
            sink: sink.to_owned(),
            sequence,
            entry: EntryBytes::from(entry),
        });
    }

    /// Drops every entry of `sink`'s outbox when the transaction commits.
    pub fn clear_outbox(&mut self, sink: &str) {
        self.redo.push(&Op::OutboxClear { sink });
        self.outbox.push(OutboxChange::Clear {
            sink: sink.to_owned(),
        });
    }

    /// Logs a release of outbox entries that happened outside any
    /// transaction ([`super::Outboxes::release`]).
    pub fn log_release(&mut self, sink: &str, upto: u64) {
        self.redo.push(&Op::OutboxTruncate { sink, upto });
    }

    /// Puts back everything this transaction changed, newest first; hands
    /// back the record's buffer.
    pub fn rollback(mut self) -> RedoWriter {
        self.undo_all();
        std::mem::take(&mut self.redo)
    }

    fn undo_all(&mut self) {
        for step in std::mem::take(&mut self.undo).into_iter().rev() {
            match step {
                Undo::Added { table, key } => {
                    self.tables.map_mut(table).remove(&KeyRef::new(&key));
                }
                Undo::Replaced { table, old } => {
                    self.tables.map_mut(table).insert(old);
                }
                Undo::Entries { table, entries } => {
                    let map = self.tables.map_mut(table);
                    for entry in entries {
                        map.insert(entry);
                    }
                }
                Undo::Map { table, map } => *self.tables.map_mut(table) = map,
            }
        }
    }

    /// The redo record of everything changed (empty: nothing was).
    pub fn redo(&self) -> &RedoWriter {
        &self.redo
    }

    /// Keeps the changes (their record is in the log): what the outboxes
    /// get, and the record's buffer.
    pub fn commit(mut self) -> (Vec<OutboxChange>, RedoWriter) {
        self.undo.clear();
        (
            std::mem::take(&mut self.outbox),
            std::mem::take(&mut self.redo),
        )
    }
}

impl Drop for Changes<'_> {
    /// A transaction neither committed nor rolled back (a panic unwound
    /// through it) is rolled back: the tables must never hold changes the
    /// log does not.
    fn drop(&mut self) {
        self.undo_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tables: &Tables, table: Table) -> Vec<(Vec<u8>, Vec<u8>)> {
        tables
            .iter(table)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    /// A transaction dropped half done (a panic) is rolled back.
    #[test]
    fn a_transaction_dropped_unfinished_is_rolled_back() {
        let mut tables = Tables::default();
        {
            let mut changes = Changes::new(&mut tables, RedoWriter::default());
            changes.insert(Table::Rows, b"k", b"v");
            let _ = changes.commit();
        }
        {
            let mut changes = Changes::new(&mut tables, RedoWriter::default());
            changes.insert(Table::Rows, b"k", b"w");
            changes.insert(Table::Rows, b"l", b"x");
        }
        assert_eq!(
            entries(&tables, Table::Rows),
            vec![(b"k".to_vec(), b"v".to_vec())]
        );
    }

    /// A rolled-back transaction leaves the tables exactly as they were,
    /// whatever mix of puts, removes and range removals it made.
    #[test]
    fn rollback_restores_every_change() {
        let mut tables = Tables::default();
        {
            let mut changes = Changes::new(&mut tables, RedoWriter::default());
            for key in [b"a1", b"a2", b"b1", b"c1"] {
                changes.insert(Table::Rows, key, b"v");
            }
            changes.insert(Table::Meta, b"m", b"1");
            let _ = changes.commit();
        }
        let before = (entries(&tables, Table::Rows), entries(&tables, Table::Meta));
        let mut changes = Changes::new(&mut tables, RedoWriter::default());
        assert_eq!(changes.insert(Table::Rows, b"a2", b"v"), Previous::Same);
        assert_eq!(
            changes.insert(Table::Rows, b"a1", b"w"),
            Previous::Value(b"v")
        );
        assert_eq!(changes.insert(Table::Rows, b"d1", b"new"), Previous::Absent);
        assert_eq!(changes.remove(Table::Rows, b"b1"), Some(&b"v"[..]));
        assert_eq!(changes.remove(Table::Rows, b"zz"), None);
        changes.clear_range(Table::Rows, b"a", b"b");
        changes.clear_range(Table::Meta, b"", b"\xff");
        assert_eq!(changes.pop_first(Table::Rows).unwrap().as_ref(), b"c1");
        assert!(changes.tables().is_empty(Table::Meta));
        changes.rollback();
        assert_eq!(
            (entries(&tables, Table::Rows), entries(&tables, Table::Meta)),
            before
        );
    }

    /// Putting the value a key already has changes nothing and logs nothing.
    #[test]
    fn an_unchanged_value_is_not_logged() {
        let mut tables = Tables::default();
        let mut changes = Changes::new(&mut tables, RedoWriter::default());
        changes.insert(Table::Rows, b"k", b"v");
        let logged = changes.redo().len();
        changes.insert(Table::Rows, b"k", b"v");
        assert_eq!(changes.redo().len(), logged);
    }

    #[test]
    fn ranges_are_half_open() {
        let mut tables = Tables::default();
        let mut changes = Changes::new(&mut tables, RedoWriter::default());
        for key in [b"a", b"b", b"c"] {
            changes.insert(Table::Rows, key, b"");
        }
        let _ = changes.commit();
        let keys: Vec<&[u8]> = tables
            .range(Table::Rows, b"a", b"c")
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"a".as_slice(), b"b".as_slice()]);
    }
}
