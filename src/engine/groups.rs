//! Aggregate views in the engine: a root's output is its contribution to
//! one group (stored like any other output, so the next change can retract
//! it), computed from rows like a document ([`contribution`], on either of
//! the engine's threads); storing it retracts the old contribution and adds the new one
//! to the group states; before the transaction commits, every group it
//! changed is appended to the view's outbox as its complete new row, or as a
//! delete when no row is left in it. Outbox entries are final rows, not
//! deltas, so a sink that applies one twice changes nothing.

use super::EngineError;
use super::dead_letters::{self, Outcome, Poison};
use super::document::{NodeRows, passes_filter};
use crate::aggregate::{Contribution, Direction, GroupState, MeasureSpec, convert_input};
use crate::change::Value;
use crate::plan::{AggregatePlan, OutputPlan, Plan, ViewPlan};
use crate::state::{OutboxEntry, OutboxOp, ReadRows, StateWriter, StoredGroup};

/// Stores a root's recomputed contribution (or its dead letter), moving it
/// between groups if it changed. Outbox entries come later, from
/// [`append_changed_groups`].
pub(super) fn store_contribution(
    w: &mut StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    aggregate: &AggregatePlan,
    pk: &[u8],
    computed: Outcome<Option<Contribution>>,
) -> Result<(), EngineError> {
    let new = dead_letters::settle(w, plan, view, pk, computed)?;
    let old = w.get_contribution(&view.name, pk)?;
    if new == old {
        return Ok(());
    }
    let specs = aggregate.specs();
    if let Some(old) = &old {
        move_contribution(w, &view.name, &specs, old, Direction::Retract)?;
    }
    match &new {
        Some(new) => {
            move_contribution(w, &view.name, &specs, new, Direction::Add)?;
            w.put_contribution(&view.name, pk, new)?;
        }
        None => w.delete_output(&view.name, pk)?,
    }
    Ok(())
}

/// The root's group key and measure inputs, or `None` when the root is gone
/// or does not pass `where`; a poison when a key or input fails to evaluate
/// on this row (an overflow, say), as SQL would raise.
pub(super) fn contribution(
    w: &dyn ReadRows,
    view: &ViewPlan,
    aggregate: &AggregatePlan,
    pk: &[u8],
) -> Result<Outcome<Option<Contribution>>, EngineError> {
    let Some(root) = w.get_row(&view.nodes[0].table, pk)? else {
        return Ok(Ok(None));
    };
    match passes_filter(w, view, &root)? {
        Ok(true) => {}
        Ok(false) => return Ok(Ok(None)),
        Err(poison) => return Ok(Err(poison)),
    }
    let mut rows = NodeRows::new(&root);
    let mut group = Vec::with_capacity(aggregate.group.len());
    for key in &aggregate.group {
        match rows.eval(w, view, &key.expr)? {
            Ok(value) => group.push(value),
            Err(error) => return Ok(Err(failed(&key.name, &error))),
        }
    }
    let key_bytes: usize = group.iter().map(text_bytes).sum();
    if key_bytes > MAX_GROUP_KEY_BYTES {
        return Ok(Err(Poison(format!(
            "the group's key is {key_bytes} bytes, more than the {MAX_GROUP_KEY_BYTES} the \
             table's unique index over the group columns can hold"
        ))));
    }
    let mut inputs = Vec::with_capacity(aggregate.measures.len());
    for measure in &aggregate.measures {
        let Some(input) = &measure.input else {
            inputs.push(Value::Null);
            continue;
        };
        match rows.eval(w, view, input)? {
            Ok(value) => {
                let input = convert_input(value, measure.spec.input_type);
                if let Some(reason) = measure.spec.refuses(&input) {
                    return Ok(Err(failed(&measure.name, &reason)));
                }
                inputs.push(input);
            }
            Err(error) => return Ok(Err(failed(&measure.name, &error))),
        }
    }
    Ok(Ok(Some(Contribution { group, inputs })))
}

/// The most a group's values may hold together. The table keeps a unique
/// index over the group columns, whose rows PostgreSQL's B-tree caps at
/// 2,704 bytes (after compressing what it can): one larger key failed
/// every write of the view's table, and so held every other group back.
/// A root over it is a dead letter instead.
const MAX_GROUP_KEY_BYTES: usize = 2_600;

/// About what a group value takes in the table (its text, or a number's
/// few bytes).
fn text_bytes(value: &Value) -> usize {
    match value {
        Value::Numeric(text)
        | Value::Text(text)
        | Value::Date(text)
        | Value::Timestamp(text)
        | Value::TimestampTz(text)
        | Value::Json(text) => text.len(),
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 8,
    }
}

fn failed(column: &str, error: &dyn std::fmt::Display) -> Poison {
    Poison(format!("column {column}: {error}"))
}

fn move_contribution(
    w: &mut StateWriter,
    view: &str,
    specs: &[MeasureSpec],
    contribution: &Contribution,
    direction: Direction,
) -> Result<(), EngineError> {
    let key = w.group_key(view, &contribution.group)?;
    let mut stored = w.take_group(&key)?.unwrap_or_else(|| StoredGroup {
        state: GroupState::new(contribution.group.clone(), specs),
        row: None,
    });
    stored.state.apply(
        specs,
        &contribution.inputs,
        direction,
        &mut w.group_values(&key),
    )?;
    w.put_group(&key, stored);
    w.mark_group_changed(view, key);
    Ok(())
}

/// Appends the new row of every group changed in this transaction to its
/// view's outbox, in group-key order, and returns how many entries.
pub(super) fn append_changed_groups(
    w: &mut StateWriter,
    plan: &Plan,
) -> Result<usize, EngineError> {
    let mut entries = 0;
    for (view_name, key) in w.take_changed_groups() {
        let Some(view) = plan.views.iter().find(|view| view.name == view_name) else {
            continue;
        };
        let OutputPlan::Aggregate(aggregate) = &view.output else {
            continue;
        };
        let Some(mut stored) = w.get_group(&key)? else {
            continue;
        };
        let op = if stored.state.rows == 0 {
            w.delete_group(&key)?;
            match stored.row {
                Some(_) => OutboxOp::Delete {
                    key: values_json(&stored.state.group),
                },
                None => continue, // created and emptied before the sink saw it
            }
        } else {
            let measures = stored
                .state
                .row(&aggregate.specs(), &mut w.group_values(&key))?;
            let row: Vec<Value> = stored.state.group.iter().cloned().chain(measures).collect();
            if stored.row.as_ref() == Some(&row) {
                continue;
            }
            let op = OutboxOp::Put {
                key: values_json(&stored.state.group),
                document: values_json(&row),
            };
            stored.row = Some(row);
            w.put_group(&key, stored);
            op
        };
        let entry = OutboxEntry {
            view: view.name.clone(),
            op,
        };
        w.append_outbox(&view.sink, &entry)?;
        entries += 1;
    }
    Ok(entries)
}

/// Values as JSON keeping their types (a numeric stays apart from text), as
/// the aggregate sink reads them back with [`values_from_json`].
pub fn values_json(values: &[Value]) -> String {
    serde_json::to_string(values).unwrap_or_default()
}

pub fn values_from_json(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    serde_json::from_str(text)
}
