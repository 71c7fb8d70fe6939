//! Finding the root rows a changed row belongs to, by walking its view's join
//! tree upwards through the join indexes.

use super::{EngineError, Touched};
use crate::change::Value;
use crate::plan::{Lookup, Plan, TablePlan};
use crate::state::StateWriter;
use crate::state::keycode::encode_values;

/// Records every root (of every view) that `row` of `table` is part of.
pub(super) fn touch(
    w: &StateWriter,
    plan: &Plan,
    table: &TablePlan,
    row: &[Value],
    touched: &mut Touched,
) -> Result<(), EngineError> {
    for &(view, node) in &table.occurrences {
        let pk = encode_values(&row[..table.primary_key_len]);
        let roots = walk_up(w, plan, view, node, vec![(pk, row.to_vec())])?;
        touched.entry(view).or_default().extend(roots);
    }
    Ok(())
}

/// From rows at `node`, the primary keys of the roots above them.
fn walk_up(
    w: &StateWriter,
    plan: &Plan,
    view: usize,
    mut node: usize,
    mut frontier: Vec<(Vec<u8>, Vec<Value>)>,
) -> Result<Vec<Vec<u8>>, EngineError> {
    let nodes = &plan.views[view].nodes;
    while let (Some(parent), Some(link)) = (nodes[node].parent, &nodes[node].link) {
        let parent_table = &nodes[parent].table;
        let mut next = Vec::new();
        for (_, row) in &frontier {
            let values: Vec<&Value> = link.child_columns.iter().map(|&c| &row[c]).collect();
            if values.iter().any(|v| v.is_null()) {
                continue;
            }
            let key = encode_values(values);
            let parent_keys = match &link.parents {
                Lookup::PrimaryKey => vec![key],
                Lookup::Index(index) => w.index_lookup(parent_table, index, &key)?,
            };
            for pk in parent_keys {
                if let Some(parent_row) = w.get_row(parent_table, &pk)? {
                    next.push((pk, parent_row));
                }
            }
        }
        frontier = next;
        node = parent;
    }
    Ok(frontier.into_iter().map(|(pk, _)| pk).collect())
}
