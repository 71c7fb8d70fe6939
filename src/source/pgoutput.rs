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

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

use super::pg_text;
use crate::change::{Cell, Change, ChangeKind, Lsn, TableName, Tuple, Value};

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

/// The cached description of one relation, as of its latest Relation message.
#[derive(Debug, Clone)]
pub struct RelationInfo {
    oid: u32,
    table: TableName,
    replica_identity: ReplicaIdentity,
    columns: Vec<RelationColumn>,
    /// Every column name, shared by all tuples of this relation version.
    column_names: Arc<[String]>,
    /// The replica-identity column names, shared by all key-only old tuples.
    key_column_names: Arc<[String]>,
}

impl RelationInfo {
    fn new(body: RelationBody) -> Self {
        // pgoutput leaves the namespace empty for pg_catalog.
        let namespace = if body.namespace.is_empty() {
            "pg_catalog"
        } else {
            body.namespace.as_str()
        };
        let table = TableName::from(format!("{namespace}.{}", body.name));
        let names = |keys_only: bool| {
            let columns = body
                .columns
                .iter()
                .filter(|column| column.is_key || !keys_only);
            columns.map(|column| column.name.clone()).collect()
        };
        let column_names = names(false);
        let key_column_names = names(true);
        RelationInfo {
            oid: body.oid,
            table,
            replica_identity: body.replica_identity,
            columns: body.columns,
            column_names,
            key_column_names,
        }
    }

    pub fn oid(&self) -> u32 {
        self.oid
    }

    /// `schema.name`.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    pub fn replica_identity(&self) -> ReplicaIdentity {
        self.replica_identity
    }

    pub fn columns(&self) -> &[RelationColumn] {
        &self.columns
    }

    /// The replica-identity columns, in column order.
    pub fn key_columns(&self) -> &[String] {
        &self.key_column_names
    }
}

/// The relation cache: the latest description of every relation by OID.
///
/// Feed it every decoded message of the stream, in order. PostgreSQL sends a
/// Relation message before the first change to a table in a session and again
/// after its schema changes, so a later description replaces the earlier one.
#[derive(Debug, Default)]
pub struct Relations {
    by_oid: HashMap<u32, RelationInfo>,
}

impl Relations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn apply_relation(&mut self, body: RelationBody) {
        self.by_oid.insert(body.oid, RelationInfo::new(body));
    }

    pub fn relation(&self, oid: u32) -> Option<&RelationInfo> {
        self.by_oid.get(&oid)
    }

    /// The row changes a message stands for: one for Insert, Update and
    /// Delete, one per relation for Truncate, none for the others (a Relation
    /// message updates the cache).
    ///
    /// A key-only old tuple ('K') becomes a [`Tuple`] of the key columns only,
    /// since the NULLs PostgreSQL sends for the other columns are not values.
    pub fn to_changes(&mut self, message: Message) -> Result<Vec<Change>, DecodeError> {
        match message {
            Message::Relation(body) => {
                self.apply_relation(body);
                Ok(Vec::new())
            }
            Message::Insert(body) => Ok(vec![self.insert_change(body)?]),
            Message::Update(body) => Ok(vec![self.update_change(body)?]),
            Message::Delete(body) => Ok(vec![self.delete_change(body)?]),
            Message::Truncate(body) => self.truncate_changes(body),
            Message::Begin(_)
            | Message::Commit(_)
            | Message::Origin(_)
            | Message::Type(_)
            | Message::LogicalMessage(_) => Ok(Vec::new()),
        }
    }

    fn insert_change(&self, body: InsertBody) -> Result<Change, DecodeError> {
        const MESSAGE: &str = "Insert";
        let relation = self.known(MESSAGE, body.relation_oid)?;
        let new = full_tuple(MESSAGE, relation, body.new)?;
        Ok(Change {
            table: relation.table.clone(),
            kind: ChangeKind::Insert { new },
        })
    }

    fn update_change(&self, body: UpdateBody) -> Result<Change, DecodeError> {
        const MESSAGE: &str = "Update";
        let relation = self.known(MESSAGE, body.relation_oid)?;
        let old = body
            .old
            .map(|old| old_tuple(MESSAGE, relation, old))
            .transpose()?;
        let new = full_tuple(MESSAGE, relation, body.new)?;
        Ok(Change {
            table: relation.table.clone(),
            kind: ChangeKind::Update { old, new },
        })
    }

    fn delete_change(&self, body: DeleteBody) -> Result<Change, DecodeError> {
        const MESSAGE: &str = "Delete";
        let relation = self.known(MESSAGE, body.relation_oid)?;
        let old = old_tuple(MESSAGE, relation, body.old)?;
        Ok(Change {
            table: relation.table.clone(),
            kind: ChangeKind::Delete { old },
        })
    }

    fn truncate_changes(&self, body: TruncateBody) -> Result<Vec<Change>, DecodeError> {
        let truncate = |&oid: &u32| {
            let relation = self.known("Truncate", oid)?;
            Ok(Change {
                table: relation.table.clone(),
                kind: ChangeKind::Truncate,
            })
        };
        body.relation_oids.iter().map(truncate).collect()
    }

    fn known(&self, message: &'static str, oid: u32) -> Result<&RelationInfo, DecodeError> {
        self.relation(oid)
            .ok_or(DecodeError::UnknownRelation { message, oid })
    }
}

fn old_tuple(
    message: &'static str,
    relation: &RelationInfo,
    old: OldTuple,
) -> Result<Tuple, DecodeError> {
    match old {
        OldTuple::Key(cells) => key_tuple(message, relation, cells),
        OldTuple::Full(cells) => full_tuple(message, relation, cells),
    }
}

fn full_tuple(
    message: &'static str,
    relation: &RelationInfo,
    cells: Vec<TupleCell>,
) -> Result<Tuple, DecodeError> {
    check_column_count(message, relation, &cells)?;
    let cells = cells
        .into_iter()
        .zip(&relation.columns)
        .map(|(cell, column)| to_cell(message, relation, column, cell))
        .collect::<Result<_, _>>()?;
    Ok(Tuple {
        columns: Arc::clone(&relation.column_names),
        cells,
    })
}

fn key_tuple(
    message: &'static str,
    relation: &RelationInfo,
    cells: Vec<TupleCell>,
) -> Result<Tuple, DecodeError> {
    check_column_count(message, relation, &cells)?;
    let key_cells = cells
        .into_iter()
        .zip(&relation.columns)
        .filter(|(_, column)| column.is_key)
        .map(|(cell, column)| to_cell(message, relation, column, cell))
        .collect::<Result<_, _>>()?;
    Ok(Tuple {
        columns: Arc::clone(&relation.key_column_names),
        cells: key_cells,
    })
}

fn check_column_count(
    message: &'static str,
    relation: &RelationInfo,
    cells: &[TupleCell],
) -> Result<(), DecodeError> {
    if cells.len() == relation.columns.len() {
        return Ok(());
    }
    Err(DecodeError::ColumnCountMismatch {
        message,
        table: relation.table.clone(),
        expected: relation.columns.len(),
        found: cells.len(),
    })
}

fn to_cell(
    message: &'static str,
    relation: &RelationInfo,
    column: &RelationColumn,
    cell: TupleCell,
) -> Result<Cell, DecodeError> {
    let value = match cell {
        TupleCell::Null => Value::Null,
        TupleCell::UnchangedToast => return Ok(Cell::UnchangedToast),
        TupleCell::Text(text) => pg_text::parse_text(column.type_oid, &text),
        TupleCell::Binary(bytes) => {
            pg_text::parse_binary(column.type_oid, &bytes).ok_or_else(|| {
                DecodeError::UnsupportedBinaryValue {
                    message,
                    table: relation.table.clone(),
                    column: column.name.clone(),
                    type_oid: column.type_oid,
                    type_name: pg_text::type_name(column.type_oid),
                }
            })?
        }
    };
    Ok(Cell::Value(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::pg_text::type_oid::{INT4, INT8, JSONB, NUMERIC, TEXT, TIMESTAMPTZ};

    /// Builds message bytes the way the server writes them.
    #[derive(Default)]
    struct Wire(Vec<u8>);

    impl Wire {
        fn tag(tag: u8) -> Self {
            Wire(vec![tag])
        }
        fn byte(mut self, value: u8) -> Self {
            self.0.push(value);
            self
        }
        fn i16(mut self, value: i16) -> Self {
            self.0.extend_from_slice(&value.to_be_bytes());
            self
        }
        fn i32(mut self, value: i32) -> Self {
            self.0.extend_from_slice(&value.to_be_bytes());
            self
        }
        fn i64(mut self, value: i64) -> Self {
            self.0.extend_from_slice(&value.to_be_bytes());
            self
        }
        fn string(mut self, value: &str) -> Self {
            self.0.extend_from_slice(value.as_bytes());
            self.0.push(0);
            self
        }
        fn bytes(mut self, value: &[u8]) -> Self {
            self.0.extend_from_slice(value);
            self
        }
        /// A TupleData part: `None` is NULL, `Some("\u{0}toast")` unchanged TOAST.
        fn tuple(self, cells: &[Option<&str>]) -> Self {
            cells
                .iter()
                .fold(self.i16(cells.len() as i16), |wire, cell| match cell {
                    None => wire.byte(b'n'),
                    Some("\u{0}toast") => wire.byte(b'u'),
                    Some(text) => wire
                        .byte(b't')
                        .i32(text.len() as i32)
                        .bytes(text.as_bytes()),
                })
        }
    }

    const ORDERS: i32 = 16_384;

    /// `public.orders (id int8 key, note text, total numeric, at timestamptz)`.
    fn orders_relation() -> Vec<u8> {
        let columns = [
            (1, "id", INT8),
            (0, "note", TEXT),
            (0, "total", NUMERIC),
            (0, "at", TIMESTAMPTZ),
        ];
        let wire = Wire::tag(b'R')
            .i32(ORDERS)
            .string("public")
            .string("orders")
            .byte(b'd');
        columns
            .iter()
            .fold(
                wire.i16(columns.len() as i16),
                |wire, (flags, name, oid)| wire.byte(*flags).string(name).i32(*oid as i32).i32(-1),
            )
            .0
    }

    fn orders_with_extra_column() -> Vec<u8> {
        let mut wire = Wire::tag(b'R')
            .i32(ORDERS)
            .string("public")
            .string("orders")
            .byte(b'f')
            .i16(2);
        wire = wire.byte(1).string("id").i32(INT8 as i32).i32(-1);
        wire.byte(0).string("meta").i32(JSONB as i32).i32(-1).0
    }

    fn insert(cells: &[Option<&str>]) -> Vec<u8> {
        Wire::tag(b'I').i32(ORDERS).byte(b'N').tuple(cells).0
    }

    const ROW: [Option<&str>; 4] = [
        Some("7"),
        Some("hi"),
        Some("12.50"),
        Some("2026-11-24 14:03:07.12+00"),
    ];
    const KEY_ONLY: [Option<&str>; 4] = [Some("7"), None, None, None];

    fn sample_messages() -> Vec<Vec<u8>> {
        vec![
            Wire::tag(b'B').i64(0x16_B374_D848).i64(1_000_000).i32(42).0,
            Wire::tag(b'C').byte(0).i64(10).i64(20).i64(30).0,
            Wire::tag(b'O').i64(5).string("upstream").0,
            orders_relation(),
            Wire::tag(b'Y')
                .i32(90_000)
                .string("public")
                .string("mood")
                .0,
            insert(&ROW),
            Wire::tag(b'U').i32(ORDERS).byte(b'N').tuple(&ROW).0,
            Wire::tag(b'U')
                .i32(ORDERS)
                .byte(b'K')
                .tuple(&KEY_ONLY)
                .byte(b'N')
                .tuple(&ROW)
                .0,
            Wire::tag(b'U')
                .i32(ORDERS)
                .byte(b'O')
                .tuple(&ROW)
                .byte(b'N')
                .tuple(&ROW)
                .0,
            Wire::tag(b'D').i32(ORDERS).byte(b'K').tuple(&KEY_ONLY).0,
            Wire::tag(b'D')
                .i32(ORDERS)
                .byte(b'O')
                .tuple(&[Some("7"), Some("\u{0}toast"), None, None])
                .0,
            Wire::tag(b'T').i32(2).byte(3).i32(ORDERS).i32(ORDERS).0,
            Wire::tag(b'M')
                .byte(1)
                .i64(99)
                .string("app")
                .i32(3)
                .bytes(b"abc")
                .0,
        ]
    }

    fn primed() -> Relations {
        let mut relations = Relations::new();
        let Ok(Message::Relation(body)) = decode(&orders_relation()) else {
            panic!("relation decodes")
        };
        relations.apply_relation(body);
        relations
    }

    fn changes(relations: &mut Relations, bytes: &[u8]) -> Vec<Change> {
        relations.to_changes(decode(bytes).unwrap()).unwrap()
    }

    fn values(tuple: &Tuple) -> Vec<Value> {
        let value = |cell: &Cell| match cell {
            Cell::Value(value) => value.clone(),
            Cell::UnchangedToast => Value::Text("<toast>".into()),
        };
        tuple.cells.iter().map(value).collect()
    }

    fn typed_row() -> Vec<Value> {
        vec![
            Value::Int(7),
            Value::Text("hi".into()),
            Value::Numeric("12.50".into()),
            Value::TimestampTz("2026-11-24T14:03:07.120000Z".into()),
        ]
    }

    #[test]
    fn decodes_transaction_framing() {
        let [begin, commit, origin, ..] = &sample_messages()[..] else {
            unreachable!()
        };
        let expected_begin = BeginBody {
            final_lsn: Lsn(0x16_B374_D848),
            commit_time: PgTimestamp(1_000_000),
            xid: 42,
        };
        assert_eq!(decode(begin), Ok(Message::Begin(expected_begin)));
        let expected_commit = CommitBody {
            flags: 0,
            commit_lsn: Lsn(10),
            end_lsn: Lsn(20),
            commit_time: PgTimestamp(30),
        };
        assert_eq!(decode(commit), Ok(Message::Commit(expected_commit)));
        let expected_origin = OriginBody {
            commit_lsn: Lsn(5),
            name: "upstream".into(),
        };
        assert_eq!(decode(origin), Ok(Message::Origin(expected_origin)));
        assert_eq!(PgTimestamp(0).unix_micros(), 946_684_800_000_000);
    }

    #[test]
    fn decodes_relation_type_truncate_and_logical_message() {
        let Ok(Message::Relation(relation)) = decode(&orders_relation()) else {
            panic!()
        };
        assert_eq!(
            (relation.oid, relation.name.as_str()),
            (ORDERS as u32, "orders")
        );
        assert_eq!(relation.replica_identity, ReplicaIdentity::Default);
        let expected = RelationColumn {
            is_key: true,
            name: "id".into(),
            type_oid: INT8,
            type_modifier: -1,
        };
        assert_eq!(relation.columns[0], expected);
        assert!(!relation.columns[1].is_key);
        let samples = sample_messages();
        let expected_type = TypeBody {
            oid: 90_000,
            namespace: "public".into(),
            name: "mood".into(),
        };
        assert_eq!(decode(&samples[4]), Ok(Message::Type(expected_type)));
        let oids = vec![ORDERS as u32; 2];
        let truncate = TruncateBody {
            cascade: true,
            restart_identity: true,
            relation_oids: oids,
        };
        assert_eq!(decode(&samples[11]), Ok(Message::Truncate(truncate)));
        let message = LogicalMessageBody {
            transactional: true,
            lsn: Lsn(99),
            prefix: "app".into(),
            content: b"abc".to_vec(),
        };
        assert_eq!(decode(&samples[12]), Ok(Message::LogicalMessage(message)));
    }

    #[test]
    fn decodes_every_kind_of_tuple_cell() {
        let bytes = Wire::tag(b'I')
            .i32(1)
            .byte(b'N')
            .i16(4)
            .byte(b'n')
            .byte(b'u');
        let bytes = bytes
            .byte(b't')
            .i32(2)
            .bytes(b"hi")
            .byte(b'b')
            .i32(1)
            .bytes(&[9])
            .0;
        let Ok(Message::Insert(insert)) = decode(&bytes) else {
            panic!()
        };
        let expected = [
            TupleCell::Null,
            TupleCell::UnchangedToast,
            TupleCell::Text("hi".into()),
            TupleCell::Binary(vec![9]),
        ];
        assert_eq!(insert.new, expected);
    }

    #[test]
    fn errors_name_the_message_and_the_problem() {
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode(b"Z"),
            Err(DecodeError::UnknownMessageType { found: b'Z' })
        );
        let truncated = decode(&Wire::tag(b'B').i64(1).0).unwrap_err();
        assert_eq!(
            truncated.to_string(),
            "Begin message ends early: commit timestamp needs 8 bytes, 0 left"
        );
        let bad_name =
            decode(&Wire::tag(b'R').i32(1).string("public").bytes(b"\xff\0").0).unwrap_err();
        assert_eq!(
            bad_name,
            DecodeError::InvalidUtf8 {
                message: "Relation",
                field: "relation name"
            }
        );
        let unterminated = decode(&Wire::tag(b'Y').i32(1).bytes(b"public").0).unwrap_err();
        assert_eq!(
            unterminated,
            DecodeError::UnterminatedString {
                message: "Type",
                field: "namespace"
            }
        );
        let bad_marker = decode(&Wire::tag(b'D').i32(1).byte(b'N').tuple(&[None]).0).unwrap_err();
        assert!(
            bad_marker
                .to_string()
                .starts_with("Delete message: expected old tuple marker"),
            "{bad_marker}"
        );
        let bad_kind = decode(&Wire::tag(b'I').i32(1).byte(b'N').i16(1).byte(b'x').0).unwrap_err();
        assert!(matches!(
            bad_kind,
            DecodeError::UnexpectedByte {
                message: "Insert",
                found: b'x',
                ..
            }
        ));
        let negative = decode(&Wire::tag(b'T').i32(-1).byte(0).0).unwrap_err();
        assert_eq!(
            negative.to_string(),
            "Truncate message: relation count is negative (-1)"
        );
        let trailing = decode(&Wire::tag(b'O').i64(5).string("x").byte(0).0).unwrap_err();
        assert_eq!(
            trailing,
            DecodeError::TrailingBytes {
                message: "Origin",
                count: 1
            }
        );
    }

    #[test]
    fn huge_claimed_counts_fail_without_allocating() {
        let truncate = decode(&Wire::tag(b'T').i32(i32::MAX).byte(0).i32(1).0);
        assert!(matches!(
            truncate,
            Err(DecodeError::Truncated {
                message: "Truncate",
                ..
            })
        ));
        let content = decode(&Wire::tag(b'M').byte(0).i64(1).string("p").i32(i32::MAX).0);
        assert!(matches!(
            content,
            Err(DecodeError::Truncated {
                message: "Message",
                ..
            })
        ));
    }

    /// xorshift64: deterministic noise without a dependency.
    fn noise(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Decodes and converts, which must return, never panic.
    fn exercise(relations: &mut Relations, bytes: &[u8]) -> bool {
        let decoded = decode(bytes);
        if let Ok(message) = decoded.clone() {
            let _ = relations.to_changes(message);
        }
        decoded.is_ok()
    }

    #[test]
    fn never_panics_on_prefixes_mutations_or_noise() {
        let mut relations = primed();
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        for message in sample_messages() {
            assert!(exercise(&mut relations, &message));
            for cut in 0..message.len() {
                assert!(
                    !exercise(&mut relations, &message[..cut]),
                    "prefix of {cut} bytes decoded"
                );
            }
            for _ in 0..2_000 {
                let mut mutated = message.clone();
                let position = noise(&mut seed) as usize % mutated.len();
                mutated[position] = noise(&mut seed) as u8;
                exercise(&mut relations, &mutated);
            }
        }
        for _ in 0..20_000 {
            let length = noise(&mut seed) as usize % 64;
            let mut bytes: Vec<u8> = (0..length).map(|_| noise(&mut seed) as u8).collect();
            if let Some(first) = bytes.first_mut() {
                *first = b"BCORYIUDTM"[*first as usize % 10];
            }
            exercise(&mut relations, &bytes);
        }
    }

    #[test]
    fn relation_messages_fill_the_cache_and_produce_no_change() {
        let mut relations = Relations::new();
        assert_eq!(changes(&mut relations, &orders_relation()), Vec::new());
        let info = relations.relation(ORDERS as u32).unwrap();
        assert_eq!(&**info.table(), "public.orders");
        assert_eq!(info.key_columns(), ["id"]);
        assert_eq!(info.replica_identity().as_char(), 'd');
        assert_eq!(info.columns().len(), 4);
    }

    #[test]
    fn insert_becomes_a_typed_tuple_sharing_column_names() {
        let mut relations = primed();
        let first = changes(&mut relations, &insert(&ROW));
        let second = changes(&mut relations, &insert(&ROW));
        let [
            Change {
                table,
                kind: ChangeKind::Insert { new },
            },
        ] = &first[..]
        else {
            panic!("{first:?}")
        };
        assert_eq!(&**table, "public.orders");
        assert_eq!(values(new), typed_row());
        assert_eq!(&*new.columns, ["id", "note", "total", "at"]);
        let ChangeKind::Insert { new: other } = &second[0].kind else {
            panic!()
        };
        assert!(Arc::ptr_eq(&new.columns, &other.columns));
    }

    #[test]
    fn update_carries_the_old_tuple_only_when_sent() {
        let mut relations = primed();
        let samples = sample_messages();
        let plain = changes(&mut relations, &samples[6]);
        assert!(
            matches!(&plain[0].kind, ChangeKind::Update { old: None, new } if values(new) == typed_row())
        );
        let key = changes(&mut relations, &samples[7]);
        let ChangeKind::Update { old: Some(old), .. } = &key[0].kind else {
            panic!("{key:?}")
        };
        assert_eq!(&*old.columns, ["id"]);
        assert_eq!(values(old), [Value::Int(7)]);
        let full = changes(&mut relations, &samples[8]);
        let ChangeKind::Update { old: Some(old), .. } = &full[0].kind else {
            panic!("{full:?}")
        };
        assert_eq!(values(old), typed_row());
    }

    #[test]
    fn delete_keeps_key_columns_or_the_full_row() {
        let mut relations = primed();
        let samples = sample_messages();
        let key = changes(&mut relations, &samples[9]);
        let ChangeKind::Delete { old } = &key[0].kind else {
            panic!("{key:?}")
        };
        assert_eq!(
            (&*old.columns, values(old)),
            (&["id".to_owned()][..], vec![Value::Int(7)])
        );
        let full = changes(&mut relations, &samples[10]);
        let ChangeKind::Delete { old } = &full[0].kind else {
            panic!("{full:?}")
        };
        assert_eq!(old.get("note"), Some(&Cell::UnchangedToast));
        assert_eq!(old.get("total"), Some(&Cell::Value(Value::Null)));
    }

    #[test]
    fn truncate_becomes_one_change_per_relation() {
        let mut relations = primed();
        let truncated = changes(&mut relations, &sample_messages()[11]);
        assert_eq!(truncated.len(), 2);
        assert!(
            truncated
                .iter()
                .all(|c| c.kind == ChangeKind::Truncate && &*c.table == "public.orders")
        );
    }

    #[test]
    fn changes_for_unknown_relations_are_errors_naming_the_oid() {
        let mut relations = Relations::new();
        let error = relations
            .to_changes(decode(&insert(&ROW)).unwrap())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Insert message for relation OID 16384, which no Relation message has described"
        );
        let truncate = decode(&Wire::tag(b'T').i32(1).byte(0).i32(77).0).unwrap();
        assert_eq!(
            relations.to_changes(truncate),
            Err(DecodeError::UnknownRelation {
                message: "Truncate",
                oid: 77
            })
        );
    }

    #[test]
    fn a_later_relation_message_replaces_the_description() {
        let mut relations = primed();
        let before = changes(&mut relations, &insert(&ROW));
        changes(&mut relations, &orders_with_extra_column());
        let after = changes(&mut relations, &insert(&[Some("8"), Some(r#"{"a":1}"#)]));
        let ChangeKind::Insert { new } = &after[0].kind else {
            panic!()
        };
        assert_eq!(&*new.columns, ["id", "meta"]);
        assert_eq!(
            values(new),
            [Value::Int(8), Value::Json(r#"{"a":1}"#.into())]
        );
        let ChangeKind::Insert { new: old_version } = &before[0].kind else {
            panic!()
        };
        assert!(!Arc::ptr_eq(&new.columns, &old_version.columns));
        assert_eq!(
            relations
                .relation(ORDERS as u32)
                .unwrap()
                .replica_identity(),
            ReplicaIdentity::Full
        );
    }

    #[test]
    fn tuple_width_must_match_the_relation() {
        let mut relations = primed();
        let error = relations
            .to_changes(decode(&insert(&[Some("1")])).unwrap())
            .unwrap_err();
        let expected = DecodeError::ColumnCountMismatch {
            message: "Insert",
            table: "public.orders".into(),
            expected: 4,
            found: 1,
        };
        assert_eq!(error, expected);
    }

    #[test]
    fn binary_cells_convert_when_possible() {
        let mut relations = Relations::new();
        let relation = Wire::tag(b'R')
            .i32(1)
            .string("")
            .string("t")
            .byte(b'n')
            .i16(2);
        let relation = relation
            .byte(0)
            .string("n")
            .i32(INT4 as i32)
            .i32(-1)
            .byte(0)
            .string("x")
            .i32(NUMERIC as i32)
            .i32(-1);
        changes(&mut relations, &relation.0);
        assert_eq!(&**relations.relation(1).unwrap().table(), "pg_catalog.t");
        let row = |numeric: u8| {
            let wire = Wire::tag(b'I')
                .i32(1)
                .byte(b'N')
                .i16(2)
                .byte(b'b')
                .i32(4)
                .bytes(&5i32.to_be_bytes());
            wire.byte(numeric).0
        };
        let converted = changes(&mut relations, &row(b'n'));
        let ChangeKind::Insert { new } = &converted[0].kind else {
            panic!()
        };
        assert_eq!(values(new), [Value::Int(5), Value::Null]);
        let mut unsupported = row(b'b');
        unsupported.extend_from_slice(&[0, 0, 0, 1, 0]);
        let error = relations
            .to_changes(decode(&unsupported).unwrap())
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("column x (type numeric, OID 1700)"),
            "{error}"
        );
    }
}
