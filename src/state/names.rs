//! Short ids for the names that start every key: tables, join indexes and
//! views. Spelled out, `public.order_items` and an index name took 32 of a
//! join index entry's 50 bytes, in every entry; an id takes 2. Shorter keys
//! make a smaller store and cheaper key compares.
//!
//! Ids are given out by write transactions, stored in the `names` table with
//! the rest of the transaction, and never reused: a key means the same thing
//! for the store's whole life. Each transaction reads the table when it
//! starts (a few dozen entries), so its ids are exactly the ones its
//! snapshot of the store was written with.

use std::cell::RefCell;
use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::StoreError;
use super::keycode::prefix_end;
use super::tables::{Table, Tables};

/// What a reader uses for a name no transaction has given an id: no key
/// starts with it, so lookups and scans under it find nothing. Never given out.
const UNKNOWN: u16 = u16::MAX;

/// The ids one transaction knows, and those it gave out.
pub(super) struct NameIds {
    ids: RefCell<HashMap<String, u16, RandomState>>,
    /// Names given an id in this transaction, to be stored with it; `None`
    /// in a read transaction, which gives none out.
    added: Option<RefCell<Vec<(String, u16)>>>,
}

impl NameIds {
    /// The ids stored in `tables`, for a write transaction (`can_add`) or a
    /// read one.
    pub fn load(tables: &Tables, can_add: bool) -> Result<Self, StoreError> {
        let mut ids = HashMap::default();
        for (name, id) in tables.iter(Table::Names) {
            ids.insert(decode_name(name)?, decode_id(id)?);
        }
        Ok(NameIds {
            ids: RefCell::new(ids),
            added: can_add.then(RefCell::default),
        })
    }

    /// The ids known now, for a reader of this transaction's tables (on
    /// another thread): it gives none out.
    pub fn for_reader(&self) -> NameIds {
        NameIds {
            ids: RefCell::new(self.ids.borrow().clone()),
            added: None,
        }
    }

    /// The id of `name`. A write transaction gives a name without one the
    /// next id; a read transaction answers [`UNKNOWN`].
    pub fn id(&self, name: &str) -> Result<u16, StoreError> {
        if let Some(id) = self.ids.borrow().get(name) {
            return Ok(*id);
        }
        let Some(added) = &self.added else {
            return Ok(UNKNOWN);
        };
        let mut ids = self.ids.borrow_mut();
        // Ids are dense from 0: none is ever removed.
        let id = u16::try_from(ids.len())
            .ok()
            .filter(|id| *id != UNKNOWN)
            .ok_or(StoreError::NamesExhausted)?;
        ids.insert(name.to_owned(), id);
        added.borrow_mut().push((name.to_owned(), id));
        Ok(id)
    }

    /// The name with id `id`, if any.
    pub fn name(&self, id: u16) -> Option<String> {
        self.ids
            .borrow()
            .iter()
            .find(|(_, known)| **known == id)
            .map(|(name, _)| name.clone())
    }

    /// The names given an id since the last call, to store.
    pub fn take_added(&self) -> Vec<(String, u16)> {
        self.added
            .as_ref()
            .map(|added| std::mem::take(&mut *added.borrow_mut()))
            .unwrap_or_default()
    }

    /// `name ‖ rest`: the key of an entry under `name` (a row of a table, an
    /// output, group or dead letter of a view).
    pub fn prefixed(&self, name: &str, rest: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut key = Vec::with_capacity(2 + rest.len());
        key.extend_from_slice(&self.id(name)?.to_be_bytes());
        key.extend_from_slice(rest);
        Ok(key)
    }

    /// `table ‖ index ‖ values`: the prefix of a join index's entries with
    /// those (encoded) values.
    pub fn index_prefix(
        &self,
        table: &str,
        index: &str,
        values: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut key = Vec::with_capacity(4 + values.len());
        key.extend_from_slice(&self.id(table)?.to_be_bytes());
        key.extend_from_slice(&self.id(index)?.to_be_bytes());
        key.extend_from_slice(values);
        Ok(key)
    }

    /// The keys of a scan over the entries under `name` after the primary
    /// key `after` (exclusive).
    pub fn scan_bounds(&self, name: &str, after: Option<&[u8]>) -> Result<ScanBounds, StoreError> {
        let prefix = self.prefixed(name, &[])?;
        let end = prefix_end(&prefix);
        let start = match after {
            Some(pk) => {
                let mut key = self.prefixed(name, pk)?;
                key.push(0); // the next key after `pk`
                key
            }
            None => prefix.clone(),
        };
        Ok(ScanBounds { prefix, start, end })
    }
}

/// The key prefix of the entries under `name` in `tables` (a name without
/// an id has none, so nothing is under it).
pub(super) fn read_prefix(tables: &Tables, name: &str) -> Result<Vec<u8>, StoreError> {
    let id = match tables.get(Table::Names, name.as_bytes()) {
        Some(id) => decode_id(id)?,
        None => UNKNOWN,
    };
    Ok(id.to_be_bytes().to_vec())
}

/// The value stored for a name: its id.
pub(super) fn encode_id(id: u16) -> [u8; 2] {
    id.to_be_bytes()
}

fn decode_id(bytes: &[u8]) -> Result<u16, StoreError> {
    let array: [u8; 2] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: "name id",
        reason: format!("expected 2 bytes, found {}", bytes.len()),
    })?;
    Ok(u16::from_be_bytes(array))
}

fn decode_name(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| StoreError::Corrupt {
        what: "name",
        reason: e.to_string(),
    })
}

/// A key range under one name: `start..end`, every key starting with
/// `prefix`, which the scan strips to get primary keys.
pub(super) struct ScanBounds {
    pub prefix: Vec<u8>,
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Value;
    use crate::state::{ReadRows, Store};

    fn stored_ids(store: &Store) -> Vec<(String, u16)> {
        let tables = store.snapshot().unwrap();
        let mut ids: Vec<_> = tables
            .iter(Table::Names)
            .map(|(name, id)| (decode_name(name).unwrap(), decode_id(id).unwrap()))
            .collect();
        ids.sort_by_key(|(_, id)| *id);
        ids
    }

    /// Ids are stored with the transaction that gave them out, so one that
    /// fails gives none; readers find rows under the ids writers gave, and
    /// nothing under a name without one.
    #[test]
    fn ids_are_kept_with_their_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::state::StoreOptions::default()).unwrap();
        let row = [Value::Int(1)];
        let failed = store.write(|w| {
            w.put_row("public.a", b"1", &row)?;
            Err::<(), _>(StoreError::NamesExhausted)
        });
        assert!(failed.is_err());
        assert_eq!(stored_ids(&store), vec![]);

        store
            .write(|w| {
                w.put_row("public.b", b"1", &row)?;
                w.put_row("public.a", b"1", &row)
            })
            .unwrap();
        store.write(|w| w.put_row("public.a", b"2", &row)).unwrap();
        assert_eq!(
            stored_ids(&store),
            vec![("public.b".to_owned(), 0), ("public.a".to_owned(), 1)]
        );

        let reader = store.reader().unwrap();
        assert_eq!(
            reader.get_row("public.a", b"2").unwrap().as_deref(),
            Some(&row[..])
        );
        assert_eq!(reader.get_row("public.c", b"1").unwrap(), None);
        assert_eq!(store.table_row_count("public.a").unwrap(), 2);
        assert_eq!(store.table_row_count("public.c").unwrap(), 0);
        assert_eq!(stored_ids(&store).len(), 2, "readers give out no ids");
    }
}
