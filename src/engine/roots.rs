//! Finding the root rows a changed row belongs to, by walking its view's join
//! tree upwards through the join indexes.

use std::collections::BTreeSet;

use super::{EngineError, Touched};
use crate::change::Value;
use crate::plan::{
    DocPlan, ExprPlan, FieldPlan, KeyPartPlan, Lookup, NodePlan, OutputPlan, Plan, SearchValuePlan,
    TablePlan, ViewPlan,
};
use crate::state::ReadRows;
use crate::state::keycode::encode_values;

/// Records every root (of every view) that `row` of `table` is part of.
pub(super) fn touch(
    w: &dyn ReadRows,
    plan: &Plan,
    table: &TablePlan,
    row: &[Value],
    touched: &mut Touched,
) -> Result<(), EngineError> {
    touch_occurrences(w, plan, table, &table.occurrences, row, touched)
}

/// Records the roots that `row` is part of through the given occurrences of
/// its table.
pub(super) fn touch_occurrences(
    w: &dyn ReadRows,
    plan: &Plan,
    table: &TablePlan,
    occurrences: &[(usize, usize)],
    row: &[Value],
    touched: &mut Touched,
) -> Result<(), EngineError> {
    for &(view, node) in occurrences {
        let nodes = &plan.views[view].nodes;
        let roots = match nodes[node].parent {
            None => vec![encode_values(&row[..table.primary_key_len])],
            Some(_) => walk_up(w, nodes, node, row)?,
        };
        touched.add(view, roots);
    }
    Ok(())
}

/// The occurrences of `table` whose roots an update from `before` to `after`
/// (same primary key) can change: those that read a column whose value
/// changed. An occurrence reading none of them gives every root the same
/// output as before, so its roots need no refresh: a product's new price
/// refreshes the product's own documents, not the orders that show only its
/// name (tens of orders per product, each rebuilt with all its items).
pub(super) fn changed_occurrences(
    plan: &Plan,
    table: &TablePlan,
    before: &[Value],
    after: &[Value],
) -> Vec<(usize, usize)> {
    let changed: Vec<usize> = (0..before.len().min(after.len()))
        .filter(|&c| before[c] != after[c])
        .collect();
    if changed.is_empty() || before.len() != after.len() {
        return table.occurrences.clone();
    }
    let occurrences = table.occurrences.iter().copied();
    occurrences
        .filter(|&(view, node)| {
            let reads = columns_read(&plan.views[view], node);
            changed.iter().any(|column| reads.contains(column))
        })
        .collect()
}

/// Every stored column of `node` that a root's output depends on: the join
/// columns to its parent and children, and every column the filter, the key,
/// the document, the search fields or the group keys and measures name.
fn columns_read(view: &ViewPlan, node: usize) -> BTreeSet<usize> {
    let mut reads = BTreeSet::new();
    for (index, plan) in view.nodes.iter().enumerate() {
        let Some(link) = &plan.link else { continue };
        if index == node {
            reads.extend(&link.child_columns);
        }
        if plan.parent == Some(node) {
            reads.extend(&link.parent_columns);
        }
    }
    let mut expression = |expr: &ExprPlan| {
        let columns = expr.columns.values();
        reads.extend(columns.filter(|(n, _)| *n == node).map(|(_, c)| *c));
    };
    if let Some(filter) = &view.filter {
        expression(filter);
    }
    // A relation's `where` reads its own row and its `one` relations'.
    for filter in view.nodes.iter().filter_map(|plan| plan.filter.as_ref()) {
        expression(filter);
    }
    match &view.output {
        OutputPlan::Cache { key, document, .. } => {
            if node == 0 {
                for part in key {
                    if let KeyPartPlan::Column { column, .. } = part {
                        reads.insert(*column);
                    }
                }
            }
            document_reads(document, node, &mut reads);
        }
        OutputPlan::Search { id, fields, .. } => {
            if node == 0 {
                reads.insert(*id);
            }
            for field in fields {
                match &field.value {
                    SearchValuePlan::Column {
                        node: read, column, ..
                    } if *read == node => {
                        reads.insert(*column);
                    }
                    SearchValuePlan::Column { .. } => {}
                    SearchValuePlan::Expr(expr) => {
                        let columns = expr.columns.values();
                        reads.extend(columns.filter(|(n, _)| *n == node).map(|(_, c)| *c));
                    }
                }
            }
        }
        OutputPlan::Aggregate(aggregate) => {
            let mut expression = |expr: &ExprPlan| {
                let columns = expr.columns.values();
                reads.extend(columns.filter(|(n, _)| *n == node).map(|(_, c)| *c));
            };
            aggregate.group.iter().for_each(|key| expression(&key.expr));
            let inputs = aggregate.measures.iter().filter_map(|m| m.input.as_ref());
            inputs.for_each(expression);
        }
    }
    reads
}

/// The columns of `node` a cache document (and its nested relations) shows,
/// orders by or measures.
fn document_reads(document: &DocPlan, node: usize, reads: &mut BTreeSet<usize>) {
    for field in &document.fields {
        match field {
            FieldPlan::Column { column, .. } if document.node == node => {
                reads.insert(*column);
            }
            FieldPlan::Column { .. } => {}
            FieldPlan::Computed { expr, .. } => {
                let columns = expr.columns.values();
                reads.extend(columns.filter(|(n, _)| *n == node).map(|(_, c)| *c));
            }
            FieldPlan::Relation {
                node: related,
                order_by,
                document: nested,
                measure,
                ..
            } => {
                if *related == node {
                    reads.extend(order_by.iter().map(|key| key.column));
                    if let Some(input) = measure.as_ref().and_then(|m| m.measure.input.as_ref()) {
                        reads.extend(input.columns.values().map(|(_, column)| *column));
                    }
                }
                document_reads(nested, node, reads);
            }
        }
    }
}

/// The primary keys of the roots above `row`, a row at `node` (not the
/// root). Rows are read only on the way: a root is known by its key, and
/// a key naming no row refreshes to no output, which is right.
fn walk_up(
    w: &dyn ReadRows,
    nodes: &[NodePlan],
    mut node: usize,
    row: &[Value],
) -> Result<Vec<Vec<u8>>, EngineError> {
    let mut keys = parent_keys(w, nodes, node, row)?;
    // Up to the root, whose row has no parent.
    while let Some(parent) = nodes[node].parent
        && nodes[parent].parent.is_some()
    {
        let mut above = Vec::new();
        for pk in &keys {
            if let Some(parent_row) = w.get_row(&nodes[parent].table, pk)? {
                above.extend(parent_keys(w, nodes, parent, &parent_row)?);
            }
        }
        keys = above;
        node = parent;
    }
    Ok(keys)
}

/// The primary keys of the rows that `row`, a row at `node`, joins to in
/// the node's parent: none when a join column is NULL.
fn parent_keys(
    w: &dyn ReadRows,
    nodes: &[NodePlan],
    node: usize,
    row: &[Value],
) -> Result<Vec<Vec<u8>>, EngineError> {
    let (Some(parent), Some(link)) = (nodes[node].parent, &nodes[node].link) else {
        return Ok(Vec::new());
    };
    let values: Vec<&Value> = link.child_columns.iter().map(|&c| &row[c]).collect();
    if values.iter().any(|v| v.is_null()) {
        return Ok(Vec::new());
    }
    let key = encode_values(values);
    Ok(match &link.parents {
        Lookup::PrimaryKey => vec![key],
        Lookup::Index(index) => w.index_lookup(&nodes[parent].table, index, &key)?.to_vec(),
    })
}
