//! Outbox entries and stored outputs: what the engine hands to sinks.
//!
//! An entry is the difference between a root's last output and its new one,
//! stated as the final effect on the target (put this document, delete this
//! key), so applying it twice leaves the target as applying it once.
//!
//! Entries are compressed (LZ4) once they are large enough to gain
//! ([`encode_entry`]), except the puts of documents while the outboxes hold
//! little ([`PlainAllowance`]): sinks that keep up read an entry within
//! milliseconds of its making, and compressing every document was a sixth
//! of the CPU a change cost in small batches. A put is logged without its document, naming the root
//! it is the output of ([`encode_named_put`]): documents were the largest
//! part of what the write-ahead log carried, so they set how often the store
//! must write a checkpoint, and a checkpoint slows the engine while it is
//! written. After a restart such an entry is made whole again from the
//! stored rows before any sink reads it (`engine::logged_puts`;
//! docs/decisions.md, "Outbox puts are logged by the root they come from").

use std::sync::atomic::{AtomicIsize, Ordering};

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
/// digest), the outbox entry that puts it, encoded, and that entry as the
/// log keeps it, naming the root. The writer's thread, which bounds a
/// batch, then only compares and copies bytes.
#[derive(Debug)]
pub struct PreparedOutput {
    pub key: String,
    pub(super) record: Vec<u8>,
    pub(super) put_entry: Vec<u8>,
    pub(super) logged_entry: Vec<u8>,
}

impl PreparedOutput {
    /// `output` of the root `pk` of `view`; its put entry stays plain if
    /// `plain` allows it.
    pub fn new(
        view: &str,
        pk: &[u8],
        output: StoredOutput,
        plain: &PlainAllowance,
    ) -> PreparedOutput {
        let record = encode_output_record(&output);
        let StoredOutput { key, document } = output;
        let logged_entry = encode_named_put(view, pk, &key);
        let entry = encode(&OutboxEntry {
            view: view.to_owned(),
            op: OutboxOp::Put {
                key: key.clone(),
                document,
            },
        });
        let put_entry = if plain.take(entry.len()) {
            entry
        } else {
            compress(entry)
        };
        PreparedOutput {
            key,
            record,
            put_entry,
            logged_entry,
        }
    }

    /// Whether this is the output `record` (a stored output record) was
    /// made from: the same key and document digest.
    pub fn is_recorded_as(&self, record: &[u8]) -> bool {
        self.record == record
    }

    /// The outbox entry that puts this output.
    pub fn into_put_entry(self) -> Vec<u8> {
        self.put_entry
    }
}

/// A put of a cache or search view's output as the log keeps it: the root
/// it is the output of, and its key, without the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedPut {
    pub view: String,
    pub pk: Vec<u8>,
    pub key: String,
}

/// The first bytes of a [`NamedPut`]: a compressed entry whose plain length
/// is 0, which no entry has (a plain one starts with its view's name).
const NAMED_PUT: [u8; 5] = [COMPRESSED, 0, 0, 0, 0];

fn encode_named_put(view: &str, pk: &[u8], key: &str) -> Vec<u8> {
    let mut bytes = NAMED_PUT.to_vec();
    let named = (view, pk, key);
    bytes.extend_from_slice(&encode(&named));
    bytes
}

/// The named put `bytes` hold, if they hold one rather than an entry.
pub(super) fn decode_named_put(bytes: &[u8]) -> Option<Result<NamedPut, StoreError>> {
    let named = bytes.strip_prefix(&NAMED_PUT)?;
    Some(
        postcard::from_bytes(named).map_err(|e| StoreError::Corrupt {
            what: "outbox entry",
            reason: format!("a put naming its root: {e}"),
        }),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxOp {
    Put { key: String, document: String },
    Delete { key: String },
}

impl OutboxOp {
    /// The key the op writes or deletes: a Redis key, a document id.
    pub fn key(&self) -> &str {
        match self {
            OutboxOp::Put { key, .. } | OutboxOp::Delete { key } => key,
        }
    }
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

/// The first byte of a compressed entry. A plain entry starts with the
/// length of its view's name, which is never empty, so never with this.
const COMPRESSED: u8 = 0;

/// Entries shorter than this are stored plain: deletes, aggregate rows and
/// small documents gain too little to pay for the compression.
const COMPRESS_FROM: usize = 256;

/// What precedes the LZ4 block of a compressed entry: [`COMPRESSED`] and
/// the plain entry's length (u32 LE).
const COMPRESSED_HEADER: usize = 5;

/// How many bytes of document puts a write transaction may leave
/// uncompressed: what the outboxes may hold plain ([`Self::PLAIN_SHARE`] of
/// their budget) less what they hold now. A sink that keeps up drains its
/// entries within milliseconds, so compressing them saves no memory worth
/// its CPU; once sinks fall behind (down, slow, a snapshot's flood), puts
/// are compressed again and the budget holds three to five times as many.
/// Shared by the two threads that compute a transaction's documents.
#[derive(Debug)]
pub struct PlainAllowance(AtomicIsize);

impl PlainAllowance {
    /// The outboxes may hold plain puts up to their budget divided by
    /// this: a quarter of it.
    pub const PLAIN_SHARE: usize = 4;

    /// An allowance of `bytes`.
    pub fn new(bytes: usize) -> PlainAllowance {
        PlainAllowance(AtomicIsize::new(
            isize::try_from(bytes).unwrap_or(isize::MAX),
        ))
    }

    /// No plain puts: every entry large enough to gain is compressed.
    pub fn none() -> PlainAllowance {
        PlainAllowance::new(0)
    }

    /// Whether an entry of `len` bytes may stay plain; if so, it is
    /// counted. Short entries are always plain, as [`encode_entry`] leaves
    /// them.
    fn take(&self, len: usize) -> bool {
        if len < COMPRESS_FROM {
            return true;
        }
        let len = isize::try_from(len).unwrap_or(isize::MAX);
        self.0.fetch_sub(len, Ordering::Relaxed) >= len
    }
}

/// An outbox entry as the store keeps it: postcard, then LZ4 when that is
/// shorter (`COMPRESSED ‖ plain length (u32 LE) ‖ LZ4 block`).
pub(super) fn encode_entry(entry: &OutboxEntry) -> Vec<u8> {
    compress(encode(entry))
}

/// `plain`, an encoded entry, compressed if it is large enough to gain.
fn compress(plain: Vec<u8>) -> Vec<u8> {
    let Some(length) = u32::try_from(plain.len())
        .ok()
        .filter(|_| plain.len() >= COMPRESS_FROM)
    else {
        return plain;
    };
    let mut stored =
        vec![0; COMPRESSED_HEADER + lz4_flex::block::get_maximum_output_size(plain.len())];
    stored[0] = COMPRESSED;
    stored[1..COMPRESSED_HEADER].copy_from_slice(&length.to_le_bytes());
    match lz4_flex::block::compress_into(&plain, &mut stored[COMPRESSED_HEADER..]) {
        Ok(block) if COMPRESSED_HEADER + block < plain.len() => {
            stored.truncate(COMPRESSED_HEADER + block);
            stored
        }
        _ => plain,
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<OutboxEntry, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "outbox entry",
        reason,
    };
    if let Some(named) = decode_named_put(bytes) {
        // Made whole before any sink reads (`engine::logged_puts`).
        let named = named?;
        return Err(corrupt(format!(
            "the put of {:?} (view {}) was not recomputed after the restart",
            named.key, named.view
        )));
    }
    match bytes.split_first() {
        Some((&COMPRESSED, compressed)) => {
            let Some((size, block)) = compressed.split_first_chunk::<4>() else {
                return Err(corrupt("a compressed entry without its length".into()));
            };
            let size = u32::from_le_bytes(*size) as usize;
            // LZ4 expands at most 255-fold: a larger length is damage, and
            // must not make the decoder reserve gigabytes.
            if size > block.len().saturating_mul(255) {
                return Err(corrupt(format!(
                    "a compressed entry of {} bytes claims {size}",
                    block.len()
                )));
            }
            let plain =
                lz4_flex::block::decompress(block, size).map_err(|e| corrupt(e.to_string()))?;
            postcard::from_bytes(&plain).map_err(|e| corrupt(e.to_string()))
        }
        _ => postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string())),
    }
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
pub fn decode_output_key(bytes: &[u8]) -> Result<String, StoreError> {
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
pub(super) mod tests {
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
        let prepared = PreparedOutput::new(
            "order_cache",
            b"7",
            output("{\"id\":7}"),
            &PlainAllowance::none(),
        );
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
        let none = PlainAllowance::none();
        let same = PreparedOutput::new("order_cache", b"7", output("{\"id\":7}"), &none);
        let other = PreparedOutput::new("order_cache", b"7", output("{\"id\":8}"), &none);
        assert!(same.is_recorded_as(&prepared.record));
        assert!(!other.is_recorded_as(&prepared.record));
        // The log's entry names the root and the key, and is no entry a
        // sink could apply.
        assert_eq!(
            decode_named_put(&prepared.logged_entry).unwrap().unwrap(),
            NamedPut {
                view: "order_cache".into(),
                pk: b"7".to_vec(),
                key: "order:7".into(),
            }
        );
        assert!(decode_named_put(&prepared.put_entry).is_none());
        let error = decode(&prepared.logged_entry).unwrap_err().to_string();
        assert!(error.contains("not recomputed"), "{error}");
    }

    /// The put of order `id`'s document, with 40 items: the same field
    /// names over and over, as every nested list of rows has them; large
    /// enough to be stored compressed.
    pub(in crate::state) fn order_put(id: u64) -> OutboxEntry {
        let items: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    "{{\"product_id\":{i},\"quantity\":{},\"unit_price\":\"{i}.99\"}}",
                    i % 7
                )
            })
            .collect();
        OutboxEntry {
            view: "order_cache".into(),
            op: OutboxOp::Put {
                key: format!("order:{id}"),
                document: format!(
                    "{{\"id\":{id},\"status\":\"paid\",\"items\":[{}]}}",
                    items.join(",")
                ),
            },
        }
    }

    #[test]
    fn a_large_entry_is_stored_compressed_and_decodes_to_itself() {
        let entry = order_put(7);
        let plain = encode(&entry);
        let stored = encode_entry(&entry);
        assert_eq!(stored[0], COMPRESSED);
        assert!(
            stored.len() * 2 < plain.len(),
            "{} bytes compressed from {}",
            stored.len(),
            plain.len()
        );
        assert_eq!(decode(&stored).unwrap(), entry);
    }

    /// Puts stay plain while the allowance lasts, and are compressed from
    /// the first that would pass it; both kinds decode to the entry, and the
    /// record does not depend on the kind.
    #[test]
    fn puts_are_plain_within_the_allowance_and_compressed_past_it() {
        let put = |plain: &PlainAllowance| {
            let OutboxOp::Put { key, document } = order_put(7).op else {
                unreachable!("order_put puts")
            };
            let output = StoredOutput { key, document };
            PreparedOutput::new("order_cache", b"7", output, plain)
        };
        let size = encode(&order_put(7)).len();
        let allowance = PlainAllowance::new(2 * size + size / 2);
        let made: Vec<PreparedOutput> = (0..3).map(|_| put(&allowance)).collect();
        let kinds: Vec<bool> = made.iter().map(|p| p.put_entry[0] == COMPRESSED).collect();
        assert_eq!(kinds, [false, false, true]);
        for prepared in &made {
            assert_eq!(decode(&prepared.put_entry).unwrap(), order_put(7));
            assert_eq!(prepared.record, made[0].record);
        }
        assert_eq!(put(&PlainAllowance::none()).put_entry[0], COMPRESSED);
    }

    /// Small entries, and entries written before compression (plain
    /// postcard), are read as they are.
    #[test]
    fn small_and_plain_entries_are_read_as_they_are() {
        let small = OutboxEntry {
            view: "order_cache".into(),
            op: OutboxOp::Delete {
                key: "order:7".into(),
            },
        };
        assert_eq!(encode_entry(&small), encode(&small));
        assert_eq!(decode(&encode_entry(&small)).unwrap(), small);
        let large = order_put(7);
        assert_eq!(decode(&encode(&large)).unwrap(), large);
    }

    /// A damaged compressed entry is an error naming the entry, not a
    /// panic or a huge allocation.
    #[test]
    fn a_damaged_compressed_entry_is_an_error() {
        let stored = encode_entry(&order_put(7));
        let mut claims_too_much = stored.clone();
        claims_too_much[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut cut_short = stored.clone();
        cut_short.truncate(stored.len() / 2);
        for damaged in [claims_too_much, cut_short, vec![COMPRESSED, 1, 0]] {
            let error = decode(&damaged).expect_err("damage is found");
            assert!(error.to_string().contains("outbox entry"), "{error}");
        }
    }
}
