//! Applying row changes to the state store: stored rows and join indexes.

use super::{EngineError, Touched, roots};
use crate::change::{Cell, Change, ChangeKind, Tuple, Value};
use crate::plan::{IndexPlan, Plan, TablePlan};
use crate::state::keycode::encode_values;
use crate::state::{ReadRows, StateWriter, packing_order};

/// Applies one change and records the roots it touches, before and after.
pub(super) fn apply_change(
    w: &mut StateWriter,
    plan: &Plan,
    change: &Change,
    touched: &mut Touched,
) -> Result<(), EngineError> {
    let Some(table) = plan.table(&change.table) else {
        return Ok(()); // a table no view reads
    };
    match &change.kind {
        ChangeKind::Insert { new } => upsert(w, plan, table, None, new, touched),
        ChangeKind::Update { old, new } => upsert(w, plan, table, old.as_ref(), new, touched),
        ChangeKind::Delete { old } => {
            let pk = primary_key(table, old)?;
            remove(w, plan, table, &pk, touched)
        }
        ChangeKind::Truncate => {
            for pk in w.table_keys(&table.name)? {
                remove(w, plan, table, &pk, touched)?;
            }
            Ok(())
        }
    }
}

/// Stores snapshot rows (already in stored-column order) with their index
/// entries, both sorted and inserted in [`packing_order`], which leaves
/// the store's B+tree leaves full.
pub(super) fn insert_snapshot_rows(
    w: &mut StateWriter,
    table: &TablePlan,
    rows: &[Vec<Value>],
) -> Result<(), EngineError> {
    let mut keyed: Vec<(Vec<u8>, &Vec<Value>)> = rows
        .iter()
        .map(|row| (encode_values(&row[..table.primary_key_len]), row))
        .collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut entries: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
    for (pk, row) in &keyed {
        for (number, index) in table.indexes.iter().enumerate() {
            if let Some(values) = index_values(index, row) {
                entries.push((number, values, pk.clone()));
            }
        }
    }
    for (pk, row) in packing_order(&keyed) {
        w.put_row(&table.name, pk, row)?;
    }
    entries.sort_unstable();
    for (number, values, pk) in packing_order(&entries) {
        w.index_insert(&table.name, &table.indexes[*number].name, values, pk)?;
    }
    Ok(())
}

fn upsert(
    w: &mut StateWriter,
    plan: &Plan,
    table: &TablePlan,
    old: Option<&Tuple>,
    new: &Tuple,
    touched: &mut Touched,
) -> Result<(), EngineError> {
    let new_pk = primary_key(table, new)?;
    let old_pk = match old {
        Some(old) => primary_key(table, old)?,
        None => new_pk.clone(),
    };
    let before = w.get_row(&table.name, &old_pk)?;
    let row = project(table, new, before.as_deref());
    if old_pk == new_pk && before.as_deref() == Some(row.as_slice()) {
        return Ok(()); // nothing a view reads has changed
    }
    // The same row with new values touches only the views that read a
    // changed column; a row that moves to another key touches all.
    let occurrences = match &before {
        Some(before) if old_pk == new_pk => roots::changed_occurrences(plan, table, before, &row),
        _ => table.occurrences.clone(),
    };
    if let Some(before) = &before {
        roots::touch_occurrences(w, plan, table, &occurrences, before, touched)?;
    }
    if old_pk == new_pk {
        // Index entries whose columns kept their values stay as they are.
        if let Some(before) = &before {
            reindex_row(w, table, &new_pk, before, &row)?;
        } else {
            index_row(w, table, &new_pk, &row, true)?;
        }
    } else {
        if let Some(before) = &before {
            index_row(w, table, &old_pk, before, false)?;
            w.delete_row(&table.name, &old_pk)?;
        }
        // A row already stored under the new key is replaced: unindex it too.
        if let Some(replaced) = w.get_row(&table.name, &new_pk)? {
            roots::touch(w, plan, table, &replaced, touched)?;
            index_row(w, table, &new_pk, &replaced, false)?;
        }
        index_row(w, table, &new_pk, &row, true)?;
    }
    w.put_row(&table.name, &new_pk, &row)?;
    roots::touch_occurrences(w, plan, table, &occurrences, &row, touched)
}

fn remove(
    w: &mut StateWriter,
    plan: &Plan,
    table: &TablePlan,
    pk: &[u8],
    touched: &mut Touched,
) -> Result<(), EngineError> {
    let Some(before) = w.get_row(&table.name, pk)? else {
        return Ok(()); // already gone: a replay
    };
    roots::touch(w, plan, table, &before, touched)?;
    index_row(w, table, pk, &before, false)?;
    w.delete_row(&table.name, pk)?;
    Ok(())
}

/// The encoded primary key of a row image.
fn primary_key(table: &TablePlan, tuple: &Tuple) -> Result<Vec<u8>, EngineError> {
    let mut values = Vec::with_capacity(table.primary_key_len);
    for column in &table.columns[..table.primary_key_len] {
        match tuple.get(column) {
            Some(Cell::Value(value)) => values.push(value.clone()),
            _ => {
                return Err(EngineError::MissingKey {
                    table: table.name.clone(),
                    column: column.clone(),
                    at: Default::default(),
                });
            }
        }
    }
    Ok(encode_values(&values))
}

/// The stored columns of a new row image. A column the image does not carry
/// (unchanged TOAST, or a column the relation no longer has) keeps the value
/// stored before, never NULL.
fn project(table: &TablePlan, tuple: &Tuple, before: Option<&[Value]>) -> Vec<Value> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| match tuple.get(column) {
            Some(Cell::Value(value)) => value.clone(),
            Some(Cell::UnchangedToast) | None => match before {
                Some(before) => before[i].clone(),
                None => {
                    tracing::warn!(
                        table = %table.name,
                        column = %column,
                        "a change carries no value for a column and no earlier row is stored; using NULL"
                    );
                    Value::Null
                }
            },
        })
        .collect()
}

/// Adds or removes a row's join index entries. NULLs never join, so rows with
/// a NULL in the indexed columns get no entry.
pub(super) fn index_row(
    w: &mut StateWriter,
    table: &TablePlan,
    pk: &[u8],
    row: &[Value],
    insert: bool,
) -> Result<(), EngineError> {
    for index in &table.indexes {
        set_index_entry(w, table, index, pk, row, insert)?;
    }
    Ok(())
}

/// Moves the index entries of a row updated in place from `before` to
/// `after`, leaving alone those whose columns kept their values (an item's
/// new quantity keeps its order and product entries).
fn reindex_row(
    w: &mut StateWriter,
    table: &TablePlan,
    pk: &[u8],
    before: &[Value],
    after: &[Value],
) -> Result<(), EngineError> {
    for index in &table.indexes {
        if index.columns.iter().all(|&c| before.get(c) == after.get(c)) {
            continue;
        }
        set_index_entry(w, table, index, pk, before, false)?;
        set_index_entry(w, table, index, pk, after, true)?;
    }
    Ok(())
}

fn set_index_entry(
    w: &mut StateWriter,
    table: &TablePlan,
    index: &IndexPlan,
    pk: &[u8],
    row: &[Value],
    insert: bool,
) -> Result<(), EngineError> {
    let Some(key) = index_values(index, row) else {
        return Ok(());
    };
    if insert {
        w.index_insert(&table.name, &index.name, &key, pk)?;
    } else {
        w.index_remove(&table.name, &index.name, &key, pk)?;
    }
    Ok(())
}

/// The encoded values of `row` in `index`'s columns, or `None` when one is
/// NULL: NULL joins nothing, so it has no entry.
fn index_values(index: &IndexPlan, row: &[Value]) -> Option<Vec<u8>> {
    let values: Vec<&Value> = index.columns.iter().map(|&c| &row[c]).collect();
    if values.iter().any(|v| v.is_null()) {
        return None;
    }
    Some(encode_values(values))
}
