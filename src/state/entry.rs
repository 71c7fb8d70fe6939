//! [`Entry`], one key and value of a store table, as the tables' B+trees
//! hold it, and [`KeyRef`], a key to look entries up by.
//!
//! An entry is 16 bytes in its tree node: the key's first 8 bytes, and a
//! thin pointer to one allocation holding the lengths, the key and the
//! value. A lookup compares its key with about twenty entries on its way
//! down; most of them differ within the first 8 bytes (a name id, then a
//! row's id), so the comparison is decided in the node itself, without
//! following the pointer to memory that is rarely in the cache. Reading
//! the key through the pointer for every comparison was the largest single
//! cost of the engine's thread.
//!
//! The pointer is thin (the lengths live in the allocation, not beside the
//! pointer) so that the prefix costs no memory: a `Box<[u8]>` and a prefix
//! would take 24 bytes a slot, about 60 MiB more at a million order items.
//! Key and value share that one allocation for the same reason: allocated
//! apart, with a map slot each, they took half as much memory again.

use std::cmp::Ordering;
use std::fmt;
use std::ptr::NonNull;

use equivalent::{Comparable, Equivalent};

/// One entry of a table, ordered by key.
pub struct Entry {
    /// The key's first 8 bytes, big-endian, zero-padded ([`key_prefix`]).
    prefix: u64,
    /// `key length ‖ value length` (LEB128) `‖ key ‖ value`, allocated as a
    /// `Box<[u8]>` of exactly that length and owned by this entry alone.
    bytes: NonNull<u8>,
}

// SAFETY: an entry owns its allocation alone and never changes it, as a
// `Box<[u8]>` does; sharing or sending it is as safe as for that box.
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}

/// The first 8 bytes of `key`, as a big-endian number, zeros after a
/// shorter key's end. Two keys whose prefixes differ are in the order of
/// their prefixes: at the first byte that differs either both keys have a
/// byte (the same comparison), or the shorter one has ended, and its zero
/// is below the other's byte, which cannot be zero there without the
/// prefixes being equal up to it. Equal prefixes decide nothing.
#[inline]
fn key_prefix(key: &[u8]) -> u64 {
    let mut padded = [0u8; 8];
    let len = key.len().min(8);
    padded[..len].copy_from_slice(&key[..len]);
    u64::from_be_bytes(padded)
}

/// Appends `n` in LEB128: 7 bits a byte, low bits first, the high bit set
/// on every byte but the last. Keys and most values are under 128 bytes,
/// so both lengths usually take a byte each.
fn write_length(n: usize, out: &mut Vec<u8>) {
    let mut n = n;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

impl Entry {
    pub fn new(key: &[u8], value: &[u8]) -> Entry {
        let mut bytes = Vec::with_capacity(4 + key.len() + value.len());
        write_length(key.len(), &mut bytes);
        write_length(value.len(), &mut bytes);
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        Entry::owning(key_prefix(key), bytes.into_boxed_slice())
    }

    /// Takes over `bytes` (lengths, key and value); `Drop` frees them.
    fn owning(prefix: u64, bytes: Box<[u8]>) -> Entry {
        Entry {
            prefix,
            bytes: NonNull::from(Box::leak(bytes)).cast::<u8>(),
        }
    }

    /// The length written at `*at`, moving `*at` past it.
    #[inline]
    fn read_length(&self, at: &mut usize) -> usize {
        let mut n = 0usize;
        let mut shift = 0;
        loop {
            // SAFETY: the allocation starts with two complete lengths
            // written by `write_length`; `*at` never passes their last byte.
            let byte = unsafe { *self.bytes.as_ptr().add(*at) };
            *at += 1;
            n |= usize::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    }

    /// The header's length, the key's and the value's.
    #[inline]
    fn layout(&self) -> (usize, usize, usize) {
        let mut at = 0;
        let key = self.read_length(&mut at);
        let value = self.read_length(&mut at);
        (at, key, value)
    }

    /// The whole allocation, and where the key starts and ends in it.
    #[inline]
    fn bytes(&self) -> (&[u8], usize, usize) {
        let (header, key, value) = self.layout();
        // SAFETY: the allocation is a boxed slice of exactly this length
        // (`owning`), alive as long as `self`.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.bytes.as_ptr(), header + key + value) };
        (bytes, header, header + key)
    }

    #[inline]
    pub fn key(&self) -> &[u8] {
        let (bytes, start, end) = self.bytes();
        &bytes[start..end]
    }

    pub fn value(&self) -> &[u8] {
        let (bytes, _, key_end) = self.bytes();
        &bytes[key_end..]
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let len = self.bytes().0.len();
        let slice = std::ptr::slice_from_raw_parts_mut(self.bytes.as_ptr(), len);
        // SAFETY: `slice` is the box `owning` leaked, and this entry is its
        // only owner.
        drop(unsafe { Box::from_raw(slice) });
    }
}

impl Clone for Entry {
    fn clone(&self) -> Entry {
        Entry::owning(self.prefix, Box::from(self.bytes().0))
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key())
            .field("value", &self.value())
            .finish()
    }
}

/// Byte order of two keys, as `<[u8]>::cmp` gives it, without a call to
/// `memcmp` for each: keys are short and share their first bytes.
#[inline]
fn compare_keys(a: &[u8], b: &[u8]) -> Ordering {
    let common = a.len().min(b.len());
    let (mut a_rest, mut b_rest) = (&a[..common], &b[..common]);
    while let (Some((a_word, a_next)), Some((b_word, b_next))) = (
        a_rest.split_first_chunk::<8>(),
        b_rest.split_first_chunk::<8>(),
    ) {
        let (a_word, b_word) = (u64::from_be_bytes(*a_word), u64::from_be_bytes(*b_word));
        if a_word != b_word {
            return a_word.cmp(&b_word);
        }
        (a_rest, b_rest) = (a_next, b_next);
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// A key to look entries up by, with its prefix worked out once.
pub struct KeyRef<'k> {
    key: &'k [u8],
    prefix: u64,
}

impl<'k> KeyRef<'k> {
    pub fn new(key: &'k [u8]) -> KeyRef<'k> {
        KeyRef {
            key,
            prefix: key_prefix(key),
        }
    }
}

impl Equivalent<Entry> for KeyRef<'_> {
    fn equivalent(&self, entry: &Entry) -> bool {
        self.prefix == entry.prefix && self.key == entry.key()
    }
}

impl Comparable<Entry> for KeyRef<'_> {
    #[inline]
    fn compare(&self, entry: &Entry) -> Ordering {
        match self.prefix.cmp(&entry.prefix) {
            Ordering::Equal => compare_keys(self.key, entry.key()),
            decided => decided,
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.key() == other.key()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match self.prefix.cmp(&other.prefix) {
            Ordering::Equal => compare_keys(self.key(), other.key()),
            decided => decided,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_keys_and_values_apart_whatever_their_length() {
        for key_len in [0, 1, 8, 127, 128, 0x3FFF, 0x4000, 0xFFFF, 0x1_0000] {
            for value_len in [0, 1, 127, 128, 0x4000] {
                let key: Vec<u8> = (0..key_len).map(|i| i as u8).collect();
                let value = vec![0xA5u8; value_len];
                let entry = Entry::new(&key, &value);
                assert_eq!(entry.key(), key.as_slice(), "key of {key_len} bytes");
                assert_eq!(
                    entry.value(),
                    value.as_slice(),
                    "value of {value_len} bytes"
                );
                let copy = entry.clone();
                drop(entry);
                assert_eq!(
                    (copy.key(), copy.value()),
                    (key.as_slice(), value.as_slice())
                );
            }
        }
    }

    /// Keys that differ only past their prefix, only in its padding, or
    /// only in length, around every length near 8.
    const KEYS: [&[u8]; 14] = [
        b"",
        b"\x00",
        b"\x00\x00",
        b"\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x01",
        b"\x01",
        b"\x01\x00",
        b"\x01\x02\x03\x04\x05\x06\x07\x08\xff",
        b"\x01\x02\x03\x04\x05\x06\x07\x09",
        b"abcdefg",
        b"abcdefghijklmnopq",
        b"abcdefghijklmnopr",
        b"\xff",
    ];

    /// The store's order is byte order, whatever the lengths, looked up or
    /// inserted.
    #[test]
    fn keys_compare_in_byte_order() {
        for a in KEYS {
            for b in KEYS {
                let (entry_a, entry_b) = (Entry::new(a, b"x"), Entry::new(b, b""));
                assert_eq!(compare_keys(a, b), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(entry_a.cmp(&entry_b), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(KeyRef::new(a).compare(&entry_b), a.cmp(b));
                assert_eq!(KeyRef::new(a).equivalent(&entry_b), a == b);
            }
        }
    }
}
