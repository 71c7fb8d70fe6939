//! What one write transaction has read, decoded: stored rows and join index
//! lookups.
//!
//! Recomputing a batch's roots reads the same rows over and over (a product
//! for each of its orders, a customer for each of hers), and each read is a
//! B-tree lookup plus a postcard decode. The cache
//! lives as long as its [`super::StateWriter`] and is written through: every
//! write of a row or an index entry updates or drops what it cached, so a
//! read always sees the transaction's own writes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::StoreError;
use super::tables::{Table, Tables};
use super::writer::{decode_row, first_suffix_after, suffixes_after};
use crate::change::Value;

/// A stored row's columns, shared between the cache and its readers.
pub type Row = Arc<[Value]>;

/// The primary keys found under one index prefix.
pub type Keys = Arc<[Vec<u8>]>;

/// Entries kept before the cache starts over: bounds memory when one
/// transaction reads a whole table (a truncate, a rebuild).
const MAX_ENTRIES: usize = 200_000;

/// The keys are the store's own, not an attacker's: the maps hash with
/// foldhash, several times faster than the default SipHash on long keys.
#[derive(Default)]
pub(super) struct ReadCache {
    /// Full row key (`table ‖ primary key`) → the row, or `None`: known absent.
    rows: RefCell<HashMap<Vec<u8>, Option<Row>, RandomState>>,
    /// Index prefix (`table ‖ index ‖ join values`) → primary keys under it.
    lookups: RefCell<HashMap<Vec<u8>, Keys, RandomState>>,
}

impl ReadCache {
    /// The stored row under `key` (`table ‖ primary key`), read through
    /// this cache.
    pub fn get_row(&self, tables: &Tables, key: Vec<u8>) -> Result<Option<Row>, StoreError> {
        if let Some(cached) = self.row(&key) {
            return Ok(cached);
        }
        let row = match tables.get(Table::Rows, &key) {
            Some(bytes) => Some(Row::from(decode_row(bytes)?)),
            None => None,
        };
        self.remember_row(key, row.clone());
        Ok(row)
    }

    /// Primary keys of the join index entries under `prefix` (`table ‖
    /// index ‖ values`), read through this cache.
    pub fn index_lookup(&self, tables: &Tables, prefix: Vec<u8>) -> Keys {
        if let Some(cached) = self.lookup(&prefix) {
            return cached;
        }
        let keys: Keys = suffixes_after(tables, Table::JoinIndex, &prefix).into();
        self.remember_lookup(prefix, Arc::clone(&keys));
        keys
    }

    /// The first primary key [`ReadCache::index_lookup`] would give: from
    /// a cached lookup, or one descent into the index, which is not cached:
    /// a `one` join over a unique index reads each row's key once anyway.
    pub fn index_first(&self, tables: &Tables, prefix: &[u8]) -> Option<Vec<u8>> {
        match self.lookup(prefix) {
            Some(keys) => keys.first().cloned(),
            None => first_suffix_after(tables, Table::JoinIndex, prefix),
        }
    }

    /// The cached row under `key`: `None` when not cached, `Some(None)` when
    /// known to be absent.
    fn row(&self, key: &[u8]) -> Option<Option<Row>> {
        self.rows.borrow().get(key).cloned()
    }

    fn remember_row(&self, key: Vec<u8>, row: Option<Row>) {
        let mut rows = self.rows.borrow_mut();
        if rows.len() >= MAX_ENTRIES {
            rows.clear();
        }
        rows.insert(key, row);
    }

    /// A row was written: a cached copy is replaced. Rows never read in this
    /// transaction are not added (a snapshot writes millions).
    pub fn row_written(&self, key: &[u8], row: Option<&[Value]>) {
        if let Some(slot) = self.rows.borrow_mut().get_mut(key) {
            *slot = row.map(Arc::from);
        }
    }

    fn lookup(&self, prefix: &[u8]) -> Option<Keys> {
        self.lookups.borrow().get(prefix).cloned()
    }

    fn remember_lookup(&self, prefix: Vec<u8>, keys: Keys) {
        let mut lookups = self.lookups.borrow_mut();
        if lookups.len() >= MAX_ENTRIES {
            lookups.clear();
        }
        lookups.insert(prefix, keys);
    }

    /// An index entry under `prefix` was added or removed.
    pub fn index_written(&self, prefix: &[u8]) {
        self.lookups.borrow_mut().remove(prefix);
    }

    /// Rows or index entries were removed wholesale.
    pub fn clear(&self) {
        self.rows.borrow_mut().clear();
        self.lookups.borrow_mut().clear();
    }
}
