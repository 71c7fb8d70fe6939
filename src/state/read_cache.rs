//! What a writer or a reader has read, decoded: stored rows and join index
//! lookups.
//!
//! Recomputing a batch's roots reads the same rows over and over (a product
//! for each of its orders, a customer for each of hers), and each read is a
//! B-tree lookup plus a postcard decode. Rows go through a [`RowCache`],
//! the store's own for its writer and the reader beside it (kept from one
//! transaction to the next), a reader's own otherwise. Lookups are cached
//! as long as the [`ReadCache`] lives. Both are written through: every
//! write of a row or an index entry updates or drops what was cached, so a
//! read always sees the transaction's own writes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::StoreError;
use super::row_cache::{Reading, RowCache};
use super::tables::{Table, Tables};
use super::writer::{decode_row, first_suffix_after, suffixes_after};
use crate::change::Value;

/// A stored row's columns, shared between the cache and its readers.
pub type Row = Arc<[Value]>;

/// The primary keys found under one index prefix.
pub type Keys = Arc<[Vec<u8>]>;

/// Lookups kept before the cache starts over: bounds memory when one
/// transaction reads a whole table (a truncate, a rebuild).
const MAX_LOOKUPS: usize = 200_000;

/// The keys are the store's own, not an attacker's: the maps hash with
/// foldhash, several times faster than the default SipHash on long keys.
pub(super) struct ReadCache {
    rows: Arc<RowCache>,
    /// Whose reads these are, for `rows`.
    reading: Reading,
    /// Index prefix (`table ‖ index ‖ join values`) → primary keys under it.
    lookups: RefCell<HashMap<Vec<u8>, Keys, RandomState>>,
}

impl ReadCache {
    /// A cache of a reader's own.
    pub fn new() -> ReadCache {
        ReadCache::sharing(Arc::new(RowCache::new()), Reading::Writer)
    }

    /// A cache whose rows are read through `rows` (see [`RowCache`] for
    /// who may share one).
    pub fn sharing(rows: Arc<RowCache>, reading: Reading) -> ReadCache {
        ReadCache {
            rows,
            reading,
            lookups: RefCell::default(),
        }
    }

    /// The stored row under `key` (`table ‖ primary key`), read through
    /// this cache.
    pub fn get_row(&self, tables: &Tables, key: Vec<u8>) -> Result<Option<Row>, StoreError> {
        if let Some(cached) = self.rows.get(&key, self.reading) {
            return Ok(cached);
        }

        let row = match tables.get(Table::Rows, &key) {
            Some(bytes) => Some(Row::from(decode_row(bytes)?)),
            None => None,
        };
        self.rows.insert(key, row.clone(), self.reading);
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

    /// A row was written: a cached copy is replaced.
    pub fn row_written(&self, key: &[u8], row: Option<&[Value]>) {
        self.rows.written(key, row);
    }

    fn lookup(&self, prefix: &[u8]) -> Option<Keys> {
        self.lookups.borrow().get(prefix).cloned()
    }

    fn remember_lookup(&self, prefix: Vec<u8>, keys: Keys) {
        let mut lookups = self.lookups.borrow_mut();
        if lookups.len() >= MAX_LOOKUPS {
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
        self.rows.clear();
        self.lookups.borrow_mut().clear();
    }
}
