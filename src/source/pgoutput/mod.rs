//! Decoding pgoutput logical replication messages (protocol version 1) and
//! turning their row messages into [`Change`]s.
//!
//! Owns two steps. [`decode`] reads the payload of one XLogData message into a
//! [`Message`], checking every length against the input, so truncated or
//! garbage input is a [`DecodeError`], never a panic. [`Relations`] is the
//! relation cache: pgoutput describes a table once (a Relation message) and
//! then refers to it by OID, so row messages can only be understood against
//! the latest description of their relation.
//!
//! Transaction framing (Begin, Commit) and batching are the caller's: here
//! they decode, but produce no change.

use thiserror::Error;

mod relations;

pub use relations::{RelationInfo, Relations, StoredColumnChange, StoredColumnTypes};

use crate::change::{Lsn, TableName};

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Begin(BeginBody),
    Commit(CommitBody),
    Origin(OriginBody),
    Relation(RelationBody),
    Type(TypeBody),
    Insert(InsertBody),
    Update(UpdateBody),
    Delete(DeleteBody),
    Truncate(TruncateBody),
    /// A `pg_logical_emit_message` message ('M').
    LogicalMessage(LogicalMessageBody),
}

/// A server timestamp: microseconds since PostgreSQL's epoch, 2000-01-01 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    /// Microseconds between the Unix epoch and PostgreSQL's.
    const UNIX_OFFSET_MICROS: i64 = 946_684_800_000_000;

    /// Microseconds since the Unix epoch, as [`crate::change::ChangeBatch`] keeps them.
    pub fn unix_micros(self) -> i64 {
        self.0.saturating_add(Self::UNIX_OFFSET_MICROS)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BeginBody {
    /// LSN of the transaction's commit record.
    pub final_lsn: Lsn,
    pub commit_time: PgTimestamp,
    pub xid: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommitBody {
    /// Unused by PostgreSQL so far; kept to show what was sent.
    pub flags: u8,
    pub commit_lsn: Lsn,
    /// The position up to which the transaction is complete: what the source
    /// confirms once the transaction is durable downstream.
    pub end_lsn: Lsn,
    pub commit_time: PgTimestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OriginBody {
    pub commit_lsn: Lsn,
    pub name: String,
}

/// Replica identity of a table (`pg_class.relreplident`): which old values
/// Update and Delete messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// 'd': the primary key.
    Default,
    /// 'n': nothing.
    Nothing,
    /// 'f': every column.
    Full,
    /// 'i': the columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'd' => Some(Self::Default),
            b'n' => Some(Self::Nothing),
            b'f' => Some(Self::Full),
            b'i' => Some(Self::Index),
            _ => None,
        }
    }

    /// The letter PostgreSQL uses for it.
    pub fn as_char(self) -> char {
        match self {
            Self::Default => 'd',
            Self::Nothing => 'n',
            Self::Full => 'f',
            Self::Index => 'i',
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationBody {
    pub oid: u32,
    /// Empty for `pg_catalog`.
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    /// In the order the cells of every tuple of this relation follow.
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn {
    /// Part of the replica identity (flag bit 1).
    pub is_key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// Describes a non-built-in type before a relation that uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeBody {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InsertBody {
    pub relation_oid: u32,
    pub new: Vec<TupleCell>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateBody {
    pub relation_oid: u32,
    /// Present when the replica identity is FULL, or when the key changed.
    pub old: Option<OldTuple>,
    pub new: Vec<TupleCell>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeleteBody {
    pub relation_oid: u32,
    pub old: OldTuple,
}

/// The before-image in an Update or Delete.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple {
    /// 'K': the replica-identity columns hold the old key; PostgreSQL sends the
    /// other columns as NULL, which says nothing about their values.
    Key(Vec<TupleCell>),
    /// 'O': the whole old row (replica identity FULL).
    Full(Vec<TupleCell>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TruncateBody {
    pub cascade: bool,
    pub restart_identity: bool,
    pub relation_oids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogicalMessageBody {
    pub transactional: bool,
    pub lsn: Lsn,
    pub prefix: String,
    pub content: Vec<u8>,
}

/// One column of a TupleData part.
#[derive(Debug, Clone, PartialEq)]
pub enum TupleCell {
    Null,
    /// A TOASTed value the change did not touch; its value is not sent.
    UnchangedToast,
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty pgoutput message")]
    Empty,
    #[error("unknown pgoutput message type {:?} ({found:#04x})", char::from(*found))]
    UnknownMessageType { found: u8 },
    #[error("{message} message ends early: {field} needs {needed} bytes, {available} left")]
    Truncated {
        message: &'static str,
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{message} message: {field} has no NUL terminator")]
    UnterminatedString {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message} message: {field} is not valid UTF-8")]
    InvalidUtf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message} message: {field} is negative ({value})")]
    Negative {
        message: &'static str,
        field: &'static str,
        value: i32,
    },
    #[error("{message} message: expected {expected}, found {:?} ({found:#04x})", char::from(*found))]
    UnexpectedByte {
        message: &'static str,
        expected: &'static str,
        found: u8,
    },
    #[error("{message} message: {count} bytes left over after the last field")]
    TrailingBytes { message: &'static str, count: usize },
    #[error("{message} message for relation OID {oid}, which no Relation message has described")]
    UnknownRelation { message: &'static str, oid: u32 },
    #[error(
        "{message} message for {table}: tuple has {found} columns, the relation has {expected}"
    )]
    ColumnCountMismatch {
        message: &'static str,
        table: TableName,
        expected: usize,
        found: usize,
    },
    #[error(
        "{message} message for {table}: binary value of column {column} (type {type_name}, OID {type_oid}) \
         cannot be converted; request text format"
    )]
    UnsupportedBinaryValue {
        message: &'static str,
        table: TableName,
        column: String,
        type_oid: u32,
        type_name: &'static str,
    },
}

/// Decodes the payload of one XLogData message.
pub fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let (&tag, body) = data.split_first().ok_or(DecodeError::Empty)?;
    let (message, decode_body) =
        body_decoder(tag).ok_or(DecodeError::UnknownMessageType { found: tag })?;
    let mut reader = Reader {
        message,
        rest: body,
    };
    let decoded = decode_body(&mut reader)?;
    reader.finish()?;
    Ok(decoded)
}

type BodyDecoder = fn(&mut Reader<'_>) -> Result<Message, DecodeError>;

/// The message's name (for errors) and the decoder of its body.
fn body_decoder(tag: u8) -> Option<(&'static str, BodyDecoder)> {
    Some(match tag {
        b'B' => ("Begin", decode_begin),
        b'C' => ("Commit", decode_commit),
        b'O' => ("Origin", decode_origin),
        b'R' => ("Relation", decode_relation),
        b'Y' => ("Type", decode_type),
        b'I' => ("Insert", decode_insert),
        b'U' => ("Update", decode_update),
        b'D' => ("Delete", decode_delete),
        b'T' => ("Truncate", decode_truncate),
        b'M' => ("Message", decode_logical_message),
        _ => return None,
    })
}

fn decode_begin(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(Message::Begin(BeginBody {
        final_lsn: reader.lsn("final LSN")?,
        commit_time: PgTimestamp(reader.i64("commit timestamp")?),
        xid: reader.u32("xid")?,
    }))
}

fn decode_commit(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(Message::Commit(CommitBody {
        flags: reader.u8("flags")?,
        commit_lsn: reader.lsn("commit LSN")?,
        end_lsn: reader.lsn("end LSN")?,
        commit_time: PgTimestamp(reader.i64("commit timestamp")?),
    }))
}

fn decode_origin(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(Message::Origin(OriginBody {
        commit_lsn: reader.lsn("origin commit LSN")?,
        name: reader.string("origin name")?,
    }))
}

fn decode_relation(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let oid = reader.u32("relation OID")?;
    let namespace = reader.string("namespace")?;
    let name = reader.string("relation name")?;
    let identity_byte = reader.u8("replica identity")?;
    let replica_identity =
        ReplicaIdentity::from_byte(identity_byte).ok_or(DecodeError::UnexpectedByte {
            message: reader.message,
            expected: "replica identity d, n, f or i",
            found: identity_byte,
        })?;
    let column_count = reader.count16("column count")?;
    let columns = (0..column_count)
        .map(|_| decode_relation_column(reader))
        .collect::<Result<_, _>>()?;
    Ok(Message::Relation(RelationBody {
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    }))
}

fn decode_relation_column(reader: &mut Reader<'_>) -> Result<RelationColumn, DecodeError> {
    const KEY_FLAG: u8 = 1;
    Ok(RelationColumn {
        is_key: reader.u8("column flags")? & KEY_FLAG != 0,
        name: reader.string("column name")?,
        type_oid: reader.u32("column type OID")?,
        type_modifier: reader.i32("column type modifier")?,
    })
}

fn decode_type(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(Message::Type(TypeBody {
        oid: reader.u32("type OID")?,
        namespace: reader.string("namespace")?,
        name: reader.string("type name")?,
    }))
}

fn decode_insert(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let relation_oid = reader.u32("relation OID")?;
    reader.expect_byte(b'N', "new tuple marker 'N'")?;
    let new = decode_tuple(reader)?;
    Ok(Message::Insert(InsertBody { relation_oid, new }))
}

fn decode_update(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let relation_oid = reader.u32("relation OID")?;
    let old = match reader.u8("tuple marker")? {
        b'N' => None,
        b'K' => Some(OldTuple::Key(decode_tuple(reader)?)),
        b'O' => Some(OldTuple::Full(decode_tuple(reader)?)),
        found => return Err(reader.unexpected("tuple marker 'K', 'O' or 'N'", found)),
    };
    if old.is_some() {
        reader.expect_byte(b'N', "new tuple marker 'N'")?;
    }
    let new = decode_tuple(reader)?;
    Ok(Message::Update(UpdateBody {
        relation_oid,
        old,
        new,
    }))
}

fn decode_delete(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let relation_oid = reader.u32("relation OID")?;
    let old = match reader.u8("tuple marker")? {
        b'K' => OldTuple::Key(decode_tuple(reader)?),
        b'O' => OldTuple::Full(decode_tuple(reader)?),
        found => return Err(reader.unexpected("old tuple marker 'K' or 'O'", found)),
    };
    Ok(Message::Delete(DeleteBody { relation_oid, old }))
}

fn decode_truncate(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    const CASCADE: u8 = 1;
    const RESTART_IDENTITY: u8 = 2;
    let relation_count = reader.count32("relation count")?;
    let options = reader.u8("options")?;
    // Capacity from what the input can hold, not from the count it claims.
    let mut relation_oids = Vec::with_capacity(relation_count.min(reader.rest.len() / 4));
    for _ in 0..relation_count {
        relation_oids.push(reader.u32("relation OID")?);
    }
    Ok(Message::Truncate(TruncateBody {
        cascade: options & CASCADE != 0,
        restart_identity: options & RESTART_IDENTITY != 0,
        relation_oids,
    }))
}

fn decode_logical_message(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    const TRANSACTIONAL: u8 = 1;
    let flags = reader.u8("flags")?;
    let lsn = reader.lsn("message LSN")?;
    let prefix = reader.string("prefix")?;
    let length = reader.count32("content length")?;
    let content = reader.take("content", length)?.to_vec();
    Ok(Message::LogicalMessage(LogicalMessageBody {
        transactional: flags & TRANSACTIONAL != 0,
        lsn,
        prefix,
        content,
    }))
}

fn decode_tuple(reader: &mut Reader<'_>) -> Result<Vec<TupleCell>, DecodeError> {
    let column_count = reader.count16("tuple column count")?;
    (0..column_count).map(|_| decode_cell(reader)).collect()
}

fn decode_cell(reader: &mut Reader<'_>) -> Result<TupleCell, DecodeError> {
    match reader.u8("column kind")? {
        b'n' => Ok(TupleCell::Null),
        b'u' => Ok(TupleCell::UnchangedToast),
        b't' => {
            let bytes = reader.counted_bytes("text column value")?;
            let text =
                std::str::from_utf8(bytes).map_err(|_| reader.invalid_utf8("text column value"))?;
            Ok(TupleCell::Text(text.to_owned()))
        }
        b'b' => Ok(TupleCell::Binary(
            reader.counted_bytes("binary column value")?.to_vec(),
        )),
        found => Err(reader.unexpected("column kind 'n', 'u', 't' or 'b'", found)),
    }
}

/// Reads big-endian fields off the front of a message body; every read checks
/// the length first and names the message and field when it falls short.
struct Reader<'a> {
    message: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < needed {
            return Err(DecodeError::Truncated {
                message: self.message,
                field,
                needed,
                available: self.rest.len(),
            });
        }
        let (taken, rest) = self.rest.split_at(needed);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(field, N)?);
        Ok(array)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    fn lsn(&mut self, field: &'static str) -> Result<Lsn, DecodeError> {
        Ok(Lsn(u64::from_be_bytes(self.array(field)?)))
    }

    fn count16(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let value = self.i16(field)?;
        usize::try_from(value).map_err(|_| self.negative(field, value.into()))
    }

    fn count32(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let value = self.i32(field)?;
        usize::try_from(value).map_err(|_| self.negative(field, value))
    }

    /// An Int32 length followed by that many bytes.
    fn counted_bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let length = self.count32(field)?;
        self.take(field, length)
    }

    /// A NUL-terminated UTF-8 string.
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let nul = self.rest.iter().position(|&b| b == 0);
        let nul = nul.ok_or(DecodeError::UnterminatedString {
            message: self.message,
            field,
        })?;
        let bytes = self.take(field, nul + 1)?;
        let text = std::str::from_utf8(&bytes[..nul]).map_err(|_| self.invalid_utf8(field))?;
        Ok(text.to_owned())
    }

    fn expect_byte(
        &mut self,
        expected_byte: u8,
        expected: &'static str,
    ) -> Result<(), DecodeError> {
        match self.u8(expected)? {
            found if found == expected_byte => Ok(()),
            found => Err(self.unexpected(expected, found)),
        }
    }

    fn unexpected(&self, expected: &'static str, found: u8) -> DecodeError {
        DecodeError::UnexpectedByte {
            message: self.message,
            expected,
            found,
        }
    }

    fn negative(&self, field: &'static str, value: i32) -> DecodeError {
        DecodeError::Negative {
            message: self.message,
            field,
            value,
        }
    }

    fn invalid_utf8(&self, field: &'static str) -> DecodeError {
        DecodeError::InvalidUtf8 {
            message: self.message,
            field,
        }
    }

    /// Protocol version 1 fixes every message's length, so bytes left over
    /// mean the message was misread: refuse it rather than guess.
    fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                message: self.message,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
