//! Outbox entries and stored outputs: what the engine hands to sinks.
//!
//! An entry is the difference between a root's last output and its new one,
//! stated as the final effect on the target (put this document, delete this
//! key), so applying it twice leaves the target as applying it once.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::aggregate::Contribution;

/// The output of one root of a cache or search view: its key and its JSON
/// document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOutput {
    pub key: String,
    pub document: String,
}

/// A cache or search view's new output, made ready for the writer on the
/// thread that computed it (either of the engine's two): the record
/// [`super::StateWriter::replace_output`] compares and stores (its key and
/// digest), and the outbox entry that puts it, encoded. The writer's
/// thread, which bounds a batch, then only compares and copies bytes.
#[derive(Debug)]
pub struct PreparedOutput {
    pub key: String,
    pub(super) record: Vec<u8>,
    pub(super) put_entry: Vec<u8>,
}

impl PreparedOutput {
    /// `output` of a root of `view`.
    pub fn new(view: &str, output: StoredOutput) -> PreparedOutput {
        let record = encode_output_record(&output);
        let StoredOutput { key, document } = output;
        let put_entry = encode(&OutboxEntry {
            view: view.to_owned(),
            op: OutboxOp::Put {
                key: key.clone(),
                document,
            },
        });
        PreparedOutput {
            key,
            record,
            put_entry,
        }
    }
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

/// An aggregate root's contribution as the store keeps it: its values in
/// postcard, read without a JSON parse on every refresh of the root.
pub(super) fn encode_contribution(contribution: &Contribution) -> Vec<u8> {
    encode(contribution)
}

pub(super) fn decode_contribution(bytes: &[u8]) -> Result<Contribution, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
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

/// What the store keeps of a cache or search view's output: its key (to
/// delete it when the key changes) and a digest of its document (to tell
/// whether a recomputed one differs). The document itself goes to the outbox
/// only, and a sink that must rewrite its target recomputes documents from
/// the rows (`engine::OutputReader`): storing them made every refresh rewrite
/// a page of a table as large as all documents together.
fn encode_output_record(output: &StoredOutput) -> Vec<u8> {
    let digest: [u8; 16] = Sha256::digest(output.document.as_bytes())[..16]
        .try_into()
        .unwrap_or_default();
    encode(&(output.key.as_str(), digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prepared output's entry is the one the writer encoded before
    /// outputs were prepared, and its record names its key and tells two
    /// documents apart.
    #[test]
    fn a_prepared_output_encodes_its_put_entry_and_record() {
        let output = |document: &str| StoredOutput {
            key: "order:7".into(),
            document: document.into(),
        };
        let prepared = PreparedOutput::new("order_cache", output("{\"id\":7}"));
        assert_eq!(
            decode(&prepared.put_entry).unwrap(),
            OutboxEntry {
                view: "order_cache".into(),
                op: OutboxOp::Put {
                    key: "order:7".into(),
                    document: "{\"id\":7}".into(),
                },
            }
        );
        assert_eq!(decode_output_key(&prepared.record).unwrap(), "order:7");
        let same = PreparedOutput::new("order_cache", output("{\"id\":7}"));
        let other = PreparedOutput::new("order_cache", output("{\"id\":8}"));
        assert_eq!(prepared.record, same.record);
        assert_ne!(prepared.record, other.record);
    }
}
