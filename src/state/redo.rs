//! The redo record of a write transaction: the changes it made, in order,
//! as the write-ahead log keeps them ([`super::wal`]) and as replaying the
//! log applies them again.
//!
//! Each operation is a tag byte and its fields; byte strings and numbers
//! are LEB128-prefixed and LEB128-encoded. Table changes name the table by
//! its byte ([`Table`]); outbox operations name the sink.

use super::tables::Table;

const PUT: u8 = 1;
const DELETE: u8 = 2;
const CLEAR_RANGE: u8 = 3;
const OUTBOX_APPEND: u8 = 4;
const OUTBOX_TRUNCATE: u8 = 5;
const OUTBOX_CLEAR: u8 = 6;
const CLEAR: u8 = 7;

/// One logged change.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Put {
        table: Table,
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        table: Table,
        key: &'a [u8],
    },
    ClearRange {
        table: Table,
        start: &'a [u8],
        end: &'a [u8],
    },
    /// Every entry of the table was removed.
    Clear {
        table: Table,
    },
    /// An entry appended to a sink's outbox.
    OutboxAppend {
        sink: &'a str,
        sequence: u64,
        entry: &'a [u8],
    },
    /// A sink's entries up to `upto` were released.
    OutboxTruncate {
        sink: &'a str,
        upto: u64,
    },
    /// Every entry of a sink's outbox was dropped (its view was).
    OutboxClear {
        sink: &'a str,
    },
}

/// Encodes operations one after another, into pieces of about
/// [`PIECE_BYTES`]: a batch's record grows to tens of MiB, and one buffer
/// doubling its way there copied itself at every step and touched fresh
/// pages for each copy (a tenth of the engine thread's time).
#[derive(Default)]
pub struct RedoWriter {
    /// Pieces filled, in order.
    full: Vec<Vec<u8>>,
    /// The piece being filled: the record's end.
    current: Vec<u8>,
    /// Emptied pieces kept for the next transaction.
    spare: Vec<Vec<u8>>,
}

/// A piece is closed once it holds this much (an operation is never
/// split, so a piece may hold more).
const PIECE_BYTES: usize = 1024 * 1024;

/// Empty pieces kept between transactions hold at most this much room:
/// keeping a whole batch's worth would be memory held for nothing between
/// batches.
const KEPT_CAPACITY: usize = 16 * 1024 * 1024;

impl RedoWriter {
    /// Empties the record for the next transaction, keeping some of its
    /// pieces (up to [`KEPT_CAPACITY`]) so a batch does not fault in fresh
    /// pages for all of its record again.
    pub fn reset(&mut self) {
        let pieces = self
            .full
            .drain(..)
            .chain([std::mem::take(&mut self.current)]);
        let mut kept: usize = self.spare.iter().map(Vec::capacity).sum();
        for mut piece in pieces {
            if kept + piece.capacity() <= KEPT_CAPACITY && piece.capacity() <= PIECE_BYTES * 2 {
                kept += piece.capacity();
                piece.clear();
                self.spare.push(piece);
            }
        }
    }

    /// The piece to write the next operation into.
    fn piece(&mut self) -> &mut Vec<u8> {
        if self.current.len() >= PIECE_BYTES || self.current.capacity() == 0 {
            let next = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(PIECE_BYTES));
            let closed = std::mem::replace(&mut self.current, next);
            if !closed.is_empty() {
                self.full.push(closed);
            }
        }
        &mut self.current
    }

    pub fn push(&mut self, op: &Op<'_>) {
        let out = self.piece();
        match op {
            Op::Put { table, key, value } => {
                out.extend_from_slice(&[PUT, *table as u8]);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            Op::Delete { table, key } => {
                out.extend_from_slice(&[DELETE, *table as u8]);
                put_bytes(out, key);
            }
            Op::ClearRange { table, start, end } => {
                out.extend_from_slice(&[CLEAR_RANGE, *table as u8]);
                put_bytes(out, start);
                put_bytes(out, end);
            }
            Op::Clear { table } => out.extend_from_slice(&[CLEAR, *table as u8]),
            Op::OutboxAppend {
                sink,
                sequence,
                entry,
            } => {
                out.push(OUTBOX_APPEND);
                put_bytes(out, sink.as_bytes());
                put_u64(out, *sequence);
                put_bytes(out, entry);
            }
            Op::OutboxTruncate { sink, upto } => {
                out.push(OUTBOX_TRUNCATE);
                put_bytes(out, sink.as_bytes());
                put_u64(out, *upto);
            }
            Op::OutboxClear { sink } => {
                out.push(OUTBOX_CLEAR);
                put_bytes(out, sink.as_bytes());
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.full.is_empty()
    }

    /// The record's bytes, in pieces, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.full
            .iter()
            .chain([&self.current])
            .map(Vec::as_slice)
            .filter(|piece| !piece.is_empty())
    }

    /// The record's length in bytes.
    pub fn len(&self) -> usize {
        self.pieces().map(<[u8]>::len).sum()
    }

    /// The record in one buffer.
    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.pieces().flatten().copied().collect()
    }
}

/// Decodes the operations of a record, in order; an undecodable one ends
/// it with an error saying what is wrong.
pub struct RedoReader<'a> {
    bytes: &'a [u8],
}

impl<'a> RedoReader<'a> {
    pub fn new(bytes: &'a [u8]) -> RedoReader<'a> {
        RedoReader { bytes }
    }

    fn next_op(&mut self) -> Result<Op<'a>, String> {
        let tag = self.byte()?;
        Ok(match tag {
            PUT => Op::Put {
                table: self.table()?,
                key: self.bytes()?,
                value: self.bytes()?,
            },
            DELETE => Op::Delete {
                table: self.table()?,
                key: self.bytes()?,
            },
            CLEAR_RANGE => Op::ClearRange {
                table: self.table()?,
                start: self.bytes()?,
                end: self.bytes()?,
            },
            CLEAR => Op::Clear {
                table: self.table()?,
            },
            OUTBOX_APPEND => Op::OutboxAppend {
                sink: self.text()?,
                sequence: self.u64()?,
                entry: self.bytes()?,
            },
            OUTBOX_TRUNCATE => Op::OutboxTruncate {
                sink: self.text()?,
                upto: self.u64()?,
            },
            OUTBOX_CLEAR => Op::OutboxClear { sink: self.text()? },
            other => return Err(format!("unknown operation {other}")),
        })
    }

    fn byte(&mut self) -> Result<u8, String> {
        let (&first, rest) = self.bytes.split_first().ok_or("record ends early")?;
        self.bytes = rest;
        Ok(first)
    }

    fn table(&mut self) -> Result<Table, String> {
        let byte = self.byte()?;
        Table::from_byte(byte).ok_or_else(|| format!("unknown table {byte}"))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let (value, used) = take_u64(self.bytes).ok_or("bad number")?;
        self.bytes = &self.bytes[used..];
        Ok(value)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.u64()?).map_err(|_| "length overflows")?;
        if len > self.bytes.len() {
            return Err(format!(
                "a field of {len} bytes where {} remain",
                self.bytes.len()
            ));
        }
        let (field, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(field)
    }

    fn text(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| e.to_string())
    }
}

impl<'a> Iterator for RedoReader<'a> {
    type Item = Result<Op<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.is_empty() {
            return None;
        }
        let op = self.next_op();
        if op.is_err() {
            self.bytes = &[]; // nothing after an undecodable operation can be trusted
        }
        Some(op)
    }
}

pub fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The number at the start of `bytes` and how many bytes it took.
pub fn take_u64(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7F);
        if i == 9 && bits > 1 {
            return None; // more than 64 bits
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_reads_back_as_written() {
        let ops = [
            Op::Put {
                table: Table::Rows,
                key: b"k",
                value: &[0u8; 300],
            },
            Op::Delete {
                table: Table::Names,
                key: b"",
            },
            Op::ClearRange {
                table: Table::GroupValues,
                start: b"a",
                end: b"b",
            },
            Op::Clear {
                table: Table::JoinIndex,
            },
            Op::OutboxAppend {
                sink: "redis",
                sequence: u64::MAX,
                entry: b"{}",
            },
            Op::OutboxTruncate {
                sink: "search:p",
                upto: 129,
            },
            Op::OutboxClear { sink: "x" },
        ];
        let mut writer = RedoWriter::default();
        for op in &ops {
            writer.push(op);
        }
        let bytes = writer.to_bytes();
        let read: Vec<Op> = RedoReader::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, ops);
    }

    /// A record of many pieces reads back whole, and again after a reset
    /// that kept some of them.
    #[test]
    fn a_record_longer_than_a_piece_reads_back_in_order() {
        let value = vec![7u8; 100_000];
        let mut writer = RedoWriter::default();
        for round in 0..2 {
            let keys: Vec<String> = (0..50).map(|n| format!("{round}:{n}")).collect();
            for key in &keys {
                writer.push(&Op::Put {
                    table: Table::Rows,
                    key: key.as_bytes(),
                    value: &value,
                });
            }
            assert!(writer.pieces().count() > 1, "{} bytes", writer.len());
            let bytes = writer.to_bytes();
            assert_eq!(bytes.len(), writer.len());
            let read: Vec<Op> = RedoReader::new(&bytes).collect::<Result<_, _>>().unwrap();
            let read_keys: Vec<&[u8]> = read
                .iter()
                .map(|op| match op {
                    Op::Put { key, .. } => *key,
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            let written: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            assert_eq!(read_keys, written);
            writer.reset();
            assert!(writer.is_empty());
            let kept: usize = writer.spare.iter().map(Vec::capacity).sum();
            assert!(kept <= KEPT_CAPACITY);
        }
    }

    #[test]
    fn a_cut_record_is_an_error_not_a_panic() {
        let mut writer = RedoWriter::default();
        writer.push(&Op::Put {
            table: Table::Rows,
            key: b"key",
            value: b"value",
        });
        let bytes = writer.to_bytes();
        for cut in 1..bytes.len() {
            let read: Vec<_> = RedoReader::new(&bytes[..cut]).collect();
            assert!(read.last().unwrap().is_err(), "cut at {cut}");
        }
        assert!(RedoReader::new(&[99]).next().unwrap().is_err());
    }
}
