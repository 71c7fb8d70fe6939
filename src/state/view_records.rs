//! What the store remembers about each view it built: the definition hash
//! its outputs were made with, and its kind and target, so that a view whose
//! file was removed can still be dropped (`viewkeeper drop VIEW`) with
//! everything it left behind; and the rebuilds asked for and not finished,
//! so that one a crash or a stop cut short runs again at the next start.

use serde::{Deserialize, Serialize};

use super::writer::{StateWriter, view_hash_key};
use super::{Store, StoreError};

/// The kind and target of a view, as it was last built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// `cache`, `search` or `aggregate`.
    pub kind: String,
    /// The outbox its sink drains.
    pub sink: String,
    /// The table of an aggregate view.
    pub table: Option<String>,
}

fn record_key(view: &str) -> String {
    format!("view_record:{view}")
}

fn decode_record(bytes: &[u8]) -> Result<ViewRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what: "view record",
        reason: e.to_string(),
    })
}

const REBUILD_ASKED_PREFIX: &str = "rebuild_asked:";
const FROM_SOURCE: &[u8] = b"source";
const FROM_STORE: &[u8] = b"store";

fn rebuild_asked_key(view: &str) -> String {
    format!("{REBUILD_ASKED_PREFIX}{view}")
}

impl StateWriter<'_> {
    pub fn set_view_record(&mut self, view: &str, record: &ViewRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.put_meta(&record_key(view), &bytes);
        Ok(())
    }

    /// Forgets everything stored for `view`: outputs and their keys' owners,
    /// groups, dead letters, pending roots, its hash and record, and the
    /// outbox of `own_sink` (a sink that served only this view).
    pub fn forget_view(&mut self, view: &str, own_sink: Option<&str>) -> Result<(), StoreError> {
        self.clear_view_groups(view)?; // outputs too
        self.clear_output_keys(view)?;
        self.clear_dead_letters(view)?;
        self.clear_pending(view)?;
        self.remove_meta(&view_hash_key(view));
        self.remove_meta(&record_key(view));
        self.remove_meta(&rebuild_asked_key(view));
        if let Some(sink) = own_sink {
            self.changes.clear_outbox(sink);
        }
        Ok(())
    }
}

impl Store {
    /// The record of `view`, if the store built it.
    pub fn view_record(&self, view: &str) -> Result<Option<ViewRecord>, StoreError> {
        self.read_meta_bytes(&record_key(view))?
            .map(|bytes| decode_record(&bytes))
            .transpose()
    }

    /// Every view the store built, by name, with its record.
    pub fn view_records(&self) -> Result<Vec<(String, ViewRecord)>, StoreError> {
        let prefix = record_key("");
        self.meta_entries_under(&prefix)?
            .into_iter()
            .map(|(name, bytes)| Ok((name[prefix.len()..].to_owned(), decode_record(&bytes)?)))
            .collect()
    }

    /// Records that a rebuild of `view` was asked for (`from_source`: from
    /// a new snapshot), durably, before the caller is told it started.
    pub fn mark_rebuild_asked(&self, view: &str, from_source: bool) -> Result<(), StoreError> {
        let from = if from_source { FROM_SOURCE } else { FROM_STORE };
        self.write(|w| {
            w.put_meta(&rebuild_asked_key(view), from);
            Ok(())
        })
    }

    /// The rebuild of `view` ended, done or failed with its error shown.
    pub fn clear_rebuild_asked(&self, view: &str) -> Result<(), StoreError> {
        self.write(|w| {
            w.remove_meta(&rebuild_asked_key(view));
            Ok(())
        })
    }

    /// The views whose rebuild was asked for and has not ended, each with
    /// whether it was asked from the source.
    pub fn rebuilds_asked(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let entries = self.meta_entries_under(REBUILD_ASKED_PREFIX)?;
        Ok(entries
            .into_iter()
            .map(|(name, from)| {
                let view = name[REBUILD_ASKED_PREFIX.len()..].to_owned();
                (view, from == FROM_SOURCE)
            })
            .collect())
    }
}
