//! The relation cache: pgoutput describes a table once (a Relation message)
//! and then refers to it by OID; row messages become [`Change`]s against the
//! latest description.

use std::collections::HashMap;
use std::sync::Arc;

use super::{
    DecodeError, DeleteBody, InsertBody, Message, OldTuple, RelationBody, RelationColumn,
    ReplicaIdentity, TruncateBody, TupleCell, UpdateBody,
};
use crate::change::{Cell, Change, ChangeKind, TableName, Tuple, Value};
use crate::source::pg_text;

/// The cached description of one relation, as of its latest Relation message.
#[derive(Debug, Clone)]
pub struct RelationInfo {
    oid: u32,
    table: TableName,
    replica_identity: ReplicaIdentity,
    pub(super) columns: Vec<RelationColumn>,
    /// Every column name, shared by all tuples of this relation version.
    column_names: Arc<[String]>,
    /// The replica-identity column names, shared by all key-only old tuples.
    key_column_names: Arc<[String]>,
}

impl RelationInfo {
    pub(super) fn new(body: RelationBody) -> Self {
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

/// The type (OID and modifier) of each column the state store holds, by
/// table and column, as the catalog gave them when the views were planned.
pub type StoredColumnTypes = HashMap<String, HashMap<String, (u32, i32)>>;

/// A stored column that a Relation message describes with another type, or
/// no longer has (dropped or renamed). Neither is a change of any row: the
/// rows stored before hold values of the old type, or of a column the
/// changes no longer carry, and nothing later in the log corrects them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredColumnChange {
    pub table: String,
    pub column: String,
    /// `changed its type`, `was dropped or renamed`.
    pub change: &'static str,
}

/// The first column of `stored` (a table's stored columns, by name) that
/// `now` describes with another type or modifier, or does not have.
fn stored_column_change(
    stored: &HashMap<String, (u32, i32)>,
    now: &RelationInfo,
) -> Option<StoredColumnChange> {
    stored.iter().find_map(|(name, &expected)| {
        let change = match now.columns.iter().find(|c| &c.name == name) {
            None => "was dropped or renamed",
            Some(c) if (c.type_oid, c.type_modifier) != expected => "changed its type",
            Some(_) => return None,
        };
        Some(StoredColumnChange {
            table: now.table.to_string(),
            column: name.clone(),
            change,
        })
    })
}

/// The relation cache: the latest description of every relation by OID.
///
/// Feed it every decoded message of the stream, in order. PostgreSQL sends a
/// Relation message before the first change to a table in a session and again
/// after its schema changes, so a later description replaces the earlier one.
#[derive(Debug, Default)]
pub struct Relations {
    by_oid: HashMap<u32, RelationInfo>,
    /// The base type of each domain type ([`crate::source::catalog::load_domain_bases`]):
    /// a column of a domain is read as its base type.
    domain_bases: HashMap<u32, u32>,
    /// The stored columns' types, to tell when one changes (empty: none watched).
    stored_types: StoredColumnTypes,
    /// A stored column's change seen and not yet taken.
    stored_column_change: Option<StoredColumnChange>,
}

impl Relations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Columns of the domain types in `domain_bases` are read as their base types.
    pub fn with_domain_bases(domain_bases: HashMap<u32, u32>) -> Self {
        Relations {
            domain_bases,
            ..Relations::default()
        }
    }

    /// Watches the columns of `stored_types`: a Relation message that
    /// describes one with another type, or without it, is kept for
    /// [`Relations::take_stored_column_change`].
    pub fn watching(mut self, stored_types: StoredColumnTypes) -> Self {
        self.stored_types = stored_types;
        self
    }

    /// The first stored column seen changed since the last call.
    pub fn take_stored_column_change(&mut self) -> Option<StoredColumnChange> {
        self.stored_column_change.take()
    }

    pub fn apply_relation(&mut self, mut body: RelationBody) {
        for column in &mut body.columns {
            if let Some(&base) = self.domain_bases.get(&column.type_oid) {
                column.type_oid = base;
            }
        }
        let described = RelationInfo::new(body);
        if self.stored_column_change.is_none()
            && let Some(stored) = self.stored_types.get(described.table.as_ref())
        {
            self.stored_column_change = stored_column_change(stored, &described);
        }
        self.by_oid.insert(described.oid, described);
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
