//! Dead letters: roots of a view whose output could not be made (an
//! expression that fails on the row's values, a document over the size
//! limit). Each is kept with where it came from and why, until a later
//! refresh of the same root succeeds (a fix in the data, a retry after a fix
//! in the configuration, a rebuild) and removes it.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::names::read_prefix;
use super::writer::StateWriter;
use super::{DEAD_LETTERS, Store, StoreError, keycode};

/// Why one root of a view has no output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// End LSN of the source transaction being applied when the root failed
    /// (`None` when it failed in a snapshot, a rebuild or a retry before the
    /// first streamed transaction).
    pub lsn: Option<u64>,
    /// The view's root table.
    pub table: String,
    /// The root's primary key, as `column=value` pairs.
    pub key: String,
    pub reason: String,
    /// When it was recorded, in microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
}

impl StateWriter<'_> {
    /// Records (or replaces) the dead letter of one root of `view`.
    pub fn put_dead_letter(
        &mut self,
        view: &str,
        pk: &[u8],
        letter: &DeadLetter,
    ) -> Result<(), StoreError> {
        let key = self.names.prefixed(view, pk)?;
        let value = postcard::to_allocvec(letter).unwrap_or_default();
        self.dead_letters.insert(key.as_slice(), value.as_slice())?;
        Ok(())
    }

    /// Removes the dead letter of one root, if there is one; says whether
    /// there was.
    pub fn remove_dead_letter(&mut self, view: &str, pk: &[u8]) -> Result<bool, StoreError> {
        if self.dead_letters.is_empty()? {
            return Ok(false); // the usual case, without building a key
        }
        Ok(self
            .dead_letters
            .remove(self.names.prefixed(view, pk)?.as_slice())?
            .is_some())
    }

    /// The root keys of every dead letter of `view`.
    pub fn dead_letter_roots(&self, view: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = self.names.prefixed(view, &[])?;
        let end = keycode::prefix_end(&prefix);
        let mut roots = Vec::new();
        for item in self.dead_letters.range(prefix.as_slice()..end.as_slice())? {
            let (key, _) = item?;
            roots.push(key.value()[prefix.len()..].to_vec());
        }
        Ok(roots)
    }

    /// Forgets every dead letter of `view` (the view is dropped).
    pub fn clear_dead_letters(&mut self, view: &str) -> Result<(), StoreError> {
        let prefix = self.names.prefixed(view, &[])?;
        let end = keycode::prefix_end(&prefix);
        self.dead_letters
            .retain_in(prefix.as_slice()..end.as_slice(), |_, _| false)?;
        Ok(())
    }
}

impl Store {
    /// Up to `limit` dead letters of `view`, in root-key order, and how many
    /// there are in all.
    pub fn dead_letters(
        &self,
        view: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEAD_LETTERS)?;
        let prefix = read_prefix(&txn, view)?;
        let end = keycode::prefix_end(&prefix);
        let mut letters = Vec::new();
        let mut total = 0;
        for item in table.range(prefix.as_slice()..end.as_slice())? {
            let (_, value) = item?;
            total += 1;
            if letters.len() < limit {
                letters.push(decode(value.value())?);
            }
        }
        Ok((letters, total))
    }

    /// How many dead letters `view` has.
    pub fn dead_letter_count(&self, view: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEAD_LETTERS)?;
        if table.is_empty()? {
            return Ok(0);
        }
        let prefix = read_prefix(&txn, view)?;
        let end = keycode::prefix_end(&prefix);
        Ok(table.range(prefix.as_slice()..end.as_slice())?.count() as u64)
    }
}

fn decode(bytes: &[u8]) -> Result<DeadLetter, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: "dead letter",
        reason: e.to_string(),
    })
}
