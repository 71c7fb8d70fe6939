//! Outbox entries and stored outputs: what the engine hands to sinks.
//!
//! An entry is the difference between a root's last output and its new one,
//! stated as the final effect on the target (put this document, delete this
//! key), so applying it twice leaves the target as applying it once.

use serde::{Deserialize, Serialize};

use super::StoreError;

/// The last output of one root of a cache view: its key and its JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOutput {
    pub key: String,
    pub document: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxOp {
    Put { key: String, document: String },
    Delete { key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub view: String,
    pub op: OutboxOp,
}

pub(super) fn sequence_meta_key(sink: &str) -> String {
    format!("outbox_sequence:{sink}")
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs into a Vec cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

pub(super) fn decode(bytes: &[u8]) -> Result<OutboxEntry, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: "outbox entry",
        reason: e.to_string(),
    })
}

pub(super) fn decode_output(bytes: &[u8]) -> Result<StoredOutput, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: "stored output",
        reason: e.to_string(),
    })
}

/// The key of an encoded [`StoredOutput`], without decoding its document.
pub(super) fn decode_output_key(bytes: &[u8]) -> Result<String, StoreError> {
    // `key` is the first field, so it is a prefix of the encoding.
    postcard::take_from_bytes::<String>(bytes)
        .map(|(key, _)| key)
        .map_err(|e| StoreError::Corrupt {
            what: "stored output",
            reason: e.to_string(),
        })
}
