//! Dead letters: roots of a view whose output could not be made (an
//! expression that fails on the row's values, a document over the size
//! limit). Each is kept with where it came from and why, until a later
//! refresh of the same root succeeds (a fix in the data, a retry after a fix
//! in the configuration, a rebuild) and removes it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::names::{NameIds, read_prefix};
use super::tables::{Table, Tables};
use super::writer::StateWriter;
use super::{Store, StoreError, keycode};

/// Why one root of a view has no output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// End LSN of the source transaction being applied when the root failed
    /// (`None` when it failed in a snapshot, a rebuild or a retry before the
    /// first streamed transaction). A root that fails again for the same
    /// reason keeps its first letter.
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
        self.changes.insert(Table::DeadLetters, &key, &value);
        Ok(())
    }

    /// The dead letter of one root, if it has one.
    pub fn dead_letter(&self, view: &str, pk: &[u8]) -> Result<Option<DeadLetter>, StoreError> {
        if self.changes.tables().is_empty(Table::DeadLetters) {
            return Ok(None);
        }
        let key = self.names.prefixed(view, pk)?;
        self.changes
            .get(Table::DeadLetters, &key)
            .map(decode)
            .transpose()
    }

    /// Removes the dead letter of one root, if there is one; says whether
    /// there was.
    pub fn remove_dead_letter(&mut self, view: &str, pk: &[u8]) -> Result<bool, StoreError> {
        if self.changes.tables().is_empty(Table::DeadLetters) {
            return Ok(false); // the usual case, without building a key
        }
        let key = self.names.prefixed(view, pk)?;
        Ok(self.changes.remove(Table::DeadLetters, &key).is_some())
    }

    /// The root keys of every dead letter of `view`.
    pub fn dead_letter_roots(&self, view: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = self.names.prefixed(view, &[])?;
        let end = keycode::prefix_end(&prefix);
        Ok(self
            .changes
            .tables()
            .range(Table::DeadLetters, &prefix, &end)
            .map(|(key, _)| key[prefix.len()..].to_vec())
            .collect())
    }

    /// Forgets every dead letter of `view` (the view is dropped).
    pub fn clear_dead_letters(&mut self, view: &str) -> Result<(), StoreError> {
        let prefix = self.names.prefixed(view, &[])?;
        let end = keycode::prefix_end(&prefix);
        self.changes.clear_range(Table::DeadLetters, &prefix, &end);
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
        let tables = self.snapshot()?;
        let prefix = read_prefix(&tables, view)?;
        let end = keycode::prefix_end(&prefix);
        let mut letters = Vec::new();
        let mut total = 0;
        for (_, value) in tables.range(Table::DeadLetters, &prefix, &end) {
            total += 1;
            if letters.len() < limit {
                letters.push(decode(value)?);
            }
        }
        Ok((letters, total))
    }

    /// How many dead letters `view` had at the last commit.
    pub fn dead_letter_count(&self, view: &str) -> Result<u64, StoreError> {
        let counts = self
            .dead_letter_counts
            .read()
            .unwrap_or_else(|p| p.into_inner());
        Ok(counts.get(view).copied().unwrap_or(0))
    }

    /// Counts the dead letters again after a commit that changed them.
    pub(super) fn publish_dead_letter_counts(&self, tables: &Tables) {
        match count_by_view(tables) {
            Ok(counts) => {
                *self
                    .dead_letter_counts
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = counts
            }
            Err(error) => tracing::error!(%error, "counting dead letters"),
        }
    }
}

/// How many dead letters each view has.
pub(super) fn count_by_view(tables: &Tables) -> Result<HashMap<String, u64>, StoreError> {
    let mut by_id: HashMap<[u8; 2], u64> = HashMap::new();
    for (key, _) in tables.iter(Table::DeadLetters) {
        if let Some(id) = key.first_chunk::<2>() {
            *by_id.entry(*id).or_default() += 1;
        }
    }
    if by_id.is_empty() {
        return Ok(HashMap::new());
    }
    let names = NameIds::load(tables, false)?;
    Ok(by_id
        .into_iter()
        .filter_map(|(id, count)| Some((names.name(u16::from_be_bytes(id))?, count)))
        .collect())
}

fn decode(bytes: &[u8]) -> Result<DeadLetter, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: "dead letter",
        reason: e.to_string(),
    })
}
