//! Building a cache view's output for one root: filter, key and JSON document.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::EngineError;
use super::dead_letters::{Outcome, Poison};
use crate::aggregate::{AggregateError, Direction, GroupState, MemoryCounts, convert_input};
use crate::change::Value;
use crate::expr::{EnumOrder, EvalError, compare_values, parse_array_delimited};
use crate::plan::{
    DocPlan, ExprPlan, FieldPlan, KeyPartPlan, LinkPlan, Lookup, OrderKeyPlan, OutputPlan,
    RelationMeasurePlan, SearchFieldPlan, SearchValuePlan, ViewPlan,
};
use crate::sink::search::check_fits;
use crate::source::pg_text::parse_text;
use crate::state::ReadRows;
use crate::state::keycode::encode_values;
use crate::state::{Row, StoredOutput};
use crate::view::model::{Cardinality, MeasureFunction};

/// The output of the root stored under `pk`, or `None` when the root does not
/// exist or does not pass the view's `where`; a poison when `where` fails.
pub(super) fn compute_output(
    w: &dyn ReadRows,
    view: &ViewPlan,
    pk: &[u8],
) -> Result<Outcome<Option<StoredOutput>>, EngineError> {
    let Some(root) = w.get_row(&view.nodes[0].table, pk)? else {
        return Ok(Ok(None));
    };
    match passes_filter(w, view, &root)? {
        Ok(true) => {}
        Ok(false) => return Ok(Ok(None)),
        Err(poison) => return Ok(Err(poison)),
    }
    let (key, document) = match &view.output {
        OutputPlan::Cache {
            key,
            document: plan,
            ..
        } => {
            let mut document = Vec::with_capacity(512);
            if let Err(poison) = write_document(w, view, plan, &root, &mut document)? {
                return Ok(Err(poison));
            }
            (render_key(key, &root), json_text(document))
        }
        OutputPlan::Search {
            id,
            id_padded,
            fields,
            ..
        } => {
            let document = match build_flat_document(w, view, fields, &root)? {
                Ok(document) => document,
                Err(poison) => return Ok(Err(poison)),
            };
            if let Err(poison) = check_search_fields(fields, &document) {
                return Ok(Err(poison));
            }
            let mut id = root[*id].to_text();
            if *id_padded {
                // A `char(n)`'s padding is not part of its value, as in a
                // cache key.
                id.truncate(id.trim_end_matches(' ').len());
            }
            (id, Json::Object(document).to_string())
        }
        // Not a document: `groups.rs` computes contributions.
        OutputPlan::Aggregate(_) => return Ok(Ok(None)),
    };
    Ok(Ok(Some(StoredOutput { key, document })))
}

/// JSON text written by [`write_document`], which writes only UTF-8.
fn json_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A search document: each field's value from the root or a `one` join,
/// or an array of the non-NULL values of a `many` join's rows (in primary-key
/// order), or computed over the root and its `one` joins.
fn build_flat_document(
    w: &dyn ReadRows,
    view: &ViewPlan,
    fields: &[SearchFieldPlan],
    root: &Row,
) -> Result<Outcome<Map<String, Json>>, EngineError> {
    let mut node_rows = NodeRows::new(root);
    let mut document = Map::with_capacity(fields.len());
    for field in fields {
        let value = match &field.value {
            SearchValuePlan::Column {
                node,
                column,
                padded,
                array_element,
            } => {
                let value = |value: &Value| search_json(value, *padded, *array_element);
                column_values(w, view, &mut node_rows, *node, *column, value)?
            }
            SearchValuePlan::Expr(expr) => node_rows.eval(w, view, expr)?.map(|v| v.to_json()),
        };
        match value {
            Ok(value) => document.insert(field.name.clone(), value),
            Err(error) => {
                let reason = format!("search field `{}`: {error}", field.name);
                return Ok(Err(Poison(reason)));
            }
        };
    }
    Ok(Ok(document))
}

/// The value of `column` of `node` for the root of `rows`, or, for a
/// `many` join or a join below one, the array of the non-NULL values of
/// its rows (in the `many` join's primary-key order).
fn column_values(
    w: &dyn ReadRows,
    view: &ViewPlan,
    rows: &mut NodeRows,
    node: usize,
    column: usize,
    to_json: impl Fn(&Value) -> Json,
) -> Result<Result<Json, EvalError>, EngineError> {
    let Some(many) = many_above(view, node) else {
        if let Err(error) = one_row(w, view, node, &mut rows.0)? {
            return Ok(Err(error));
        }
        return Ok(Ok(match rows.0.get(&node) {
            Some(Some(row)) => to_json(&row[column]),
            _ => Json::Null,
        }));
    };
    // A `many` join's rows hang from its parent's one row.
    let parent = view.nodes[many].parent.unwrap_or(0);
    if let Err(error) = one_row(w, view, parent, &mut rows.0)? {
        return Ok(Err(error));
    }
    let Some(Some(parent_row)) = rows.0.get(&parent) else {
        return Ok(Ok(Json::Array(Vec::new())));
    };
    let many_rows = match related_rows(w, view, many, parent_row)? {
        Ok(many_rows) => many_rows,
        Err(error) => return Ok(Err(error)),
    };
    let mut values = Vec::new();
    for many_row in many_rows {
        let row = match row_below(w, view, many, node, many_row)? {
            Ok(row) => row,
            Err(error) => return Ok(Err(error)),
        };
        if let Some(value) = row.as_ref().map(|row| &row[column])
            && !value.is_null()
        {
            values.push(to_json(value));
        }
    }
    Ok(Ok(Json::Array(values)))
}

/// The `many` join `node` is, or hangs below; `None` when its rows are one
/// per root.
fn many_above(view: &ViewPlan, node: usize) -> Option<usize> {
    let mut at = Some(node);
    while let Some(node) = at {
        if is_many(view, node) {
            return Some(node);
        }
        at = view.nodes[node].parent;
    }
    None
}

/// The row of `node`, a `one` join below `many` (or `many` itself), that
/// `many_row` leads to; `None` when a join on the way finds no row.
fn row_below(
    w: &dyn ReadRows,
    view: &ViewPlan,
    many: usize,
    node: usize,
    many_row: Row,
) -> Result<Result<Option<Row>, EvalError>, EngineError> {
    let mut path = Vec::new();
    let mut at = node;
    while at != many {
        path.push(at);
        at = view.nodes[at].parent.unwrap_or(many);
    }
    let mut row = many_row;
    for &step in path.iter().rev() {
        row = match related_first(w, view, step, &row)? {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(Ok(None)),
            Err(error) => return Ok(Err(error)),
        };
    }
    Ok(Ok(Some(row)))
}

/// A search column's value as the index takes it: a `char(n)`'s without
/// its padding; an array column's as a JSON array of its elements, which
/// the index takes one by one.
fn search_json(value: &Value, padded: bool, array_element: Option<u32>) -> Json {
    match (value, array_element) {
        (Value::Text(text), None) if padded => Json::String(text.trim_end_matches(' ').to_owned()),
        (value, Some(element)) => {
            let mut out = Vec::new();
            write_array(value, element, &mut out);
            let mut array = serde_json::from_slice(&out).unwrap_or_else(|_| value.to_json());
            if padded {
                trim_padding(&mut array);
            }
            array
        }
        (value, None) => value.to_json(),
    }
}

/// A `char(n)[]`'s elements without their padding.
fn trim_padding(value: &mut Json) {
    match value {
        Json::String(text) => text.truncate(text.trim_end_matches(' ').len()),
        Json::Array(values) => values.iter_mut().for_each(trim_padding),
        _ => {}
    }
}

/// Whether `node` is a `many` join.
fn is_many(view: &ViewPlan, node: usize) -> bool {
    view.nodes[node]
        .link
        .as_ref()
        .is_some_and(|link| link.cardinality == Cardinality::Many)
}

/// Refuses a value its search field cannot index (text in a `date`
/// field, say): it would stop the whole index at its sink. Each value of
/// an array (a `many` join's field, an array column) is checked.
fn check_search_fields(fields: &[SearchFieldPlan], document: &Map<String, Json>) -> Outcome<()> {
    for field in fields {
        let refused = |reason| Poison(format!("search field `{}`: {reason}", field.name));
        if let Some(value) = document.get(&field.name) {
            check_fits(field.field_type, value).map_err(refused)?;
        }
    }
    Ok(())
}

fn render_key(parts: &[KeyPartPlan], root: &[Value]) -> String {
    let mut key = String::new();
    for part in parts {
        match part {
            KeyPartPlan::Literal(text) => key.push_str(text),
            KeyPartPlan::Column { column, padded } => {
                let text = root[*column].to_text();
                key.push_str(if *padded {
                    text.trim_end_matches(' ')
                } else {
                    &text
                });
            }
        }
    }
    key
}

/// Evaluates `where` over the root and the `one` relations it names. An
/// expression that fails on this row's values (an overflow, say) is a
/// poison: SQL would raise instead of returning the row.
pub(super) fn passes_filter(
    w: &dyn ReadRows,
    view: &ViewPlan,
    root: &Row,
) -> Result<Outcome<bool>, EngineError> {
    let Some(filter) = &view.filter else {
        return Ok(Ok(true));
    };
    let mut node_rows = NodeRows::new(root);
    let value = node_rows.eval(w, view, filter)?;
    Ok(value
        .and_then(|value| filter.expr.truth(&value))
        .map_err(|error| Poison(format!("`where` failed: {error}"))))
}

/// The rows of one root's join tree, looked up as expressions need them.
pub(super) struct NodeRows(HashMap<usize, Option<Row>>);

impl NodeRows {
    pub fn new(root: &Row) -> NodeRows {
        NodeRows::at(0, root)
    }

    /// The rows below `row`, a row of `node`: what a computed field of
    /// that node's documents reads.
    fn at(node: usize, row: &Row) -> NodeRows {
        NodeRows(HashMap::from([(node, Some(Row::clone(row)))]))
    }

    /// The value of `expr` over these rows; a column of a `one` node with no
    /// matching row is NULL, as in a LEFT JOIN.
    pub fn eval(
        &mut self,
        w: &dyn ReadRows,
        view: &ViewPlan,
        expr: &ExprPlan,
    ) -> Result<Result<Value, EvalError>, EngineError> {
        for &(node, _) in expr.columns.values() {
            if let Err(error) = one_row(w, view, node, &mut self.0)? {
                return Ok(Err(error));
            }
        }
        let lookup = |path: &[String]| -> Option<Value> {
            let (node, column) = expr.columns.get(path)?;
            Some(match self.0.get(node) {
                Some(Some(row)) => match &row[*column] {
                    Value::Text(text) if expr.padded.contains(path) => {
                        Value::Text(text.trim_end_matches(' ').to_owned())
                    }
                    value => value.clone(),
                },
                _ => Value::Null,
            })
        };
        Ok(expr.expr.eval(&lookup))
    }
}

/// The row of a `one` node for the current root, filling `rows` parent
/// first; the error of a relation's `where` that fails on a row.
fn one_row(
    w: &dyn ReadRows,
    view: &ViewPlan,
    node: usize,
    rows: &mut HashMap<usize, Option<Row>>,
) -> Result<Result<(), EvalError>, EngineError> {
    if rows.contains_key(&node) {
        return Ok(Ok(()));
    }
    let Some(parent) = view.nodes[node].parent else {
        return Ok(Ok(()));
    };
    if let Err(error) = one_row(w, view, parent, rows)? {
        return Ok(Err(error));
    }
    let row = match rows.get(&parent) {
        Some(Some(parent_row)) => match related_first(w, view, node, parent_row)? {
            Ok(row) => row,
            Err(error) => return Ok(Err(error)),
        },
        _ => None,
    };
    rows.insert(node, row);
    Ok(Ok(()))
}

/// The rows of relation `node` joined to `parent_row`, in primary-key
/// order, that pass the relation's `where` (all of them without one).
fn related_rows(
    w: &dyn ReadRows,
    view: &ViewPlan,
    node: usize,
    parent_row: &[Value],
) -> Result<Result<Vec<Row>, EvalError>, EngineError> {
    let plan = &view.nodes[node];
    let link = plan.link.as_ref().expect("a relation node has a link");
    let rows = children(w, &plan.table, link, parent_row)?;
    match &plan.filter {
        None => Ok(Ok(rows)),
        Some(filter) => passing_rows(w, view, node, filter, rows, usize::MAX),
    }
}

/// The first of [`related_rows`]: a `one` relation's row. Without a
/// `where`, only that row is read.
fn related_first(
    w: &dyn ReadRows,
    view: &ViewPlan,
    node: usize,
    parent_row: &[Value],
) -> Result<Result<Option<Row>, EvalError>, EngineError> {
    let plan = &view.nodes[node];
    let link = plan.link.as_ref().expect("a relation node has a link");
    let Some(filter) = &plan.filter else {
        return first_child(w, &plan.table, link, parent_row).map(Ok);
    };
    let rows = children(w, &plan.table, link, parent_row)?;
    let first = passing_rows(w, view, node, filter, rows, 1)?;
    Ok(first.map(|rows| rows.into_iter().next()))
}

/// Up to `most` of `rows` (of relation `node`) for which `filter` is true.
fn passing_rows(
    w: &dyn ReadRows,
    view: &ViewPlan,
    node: usize,
    filter: &ExprPlan,
    rows: Vec<Row>,
    most: usize,
) -> Result<Result<Vec<Row>, EvalError>, EngineError> {
    let mut kept = Vec::new();
    for row in rows {
        if kept.len() == most {
            break;
        }
        match passes_relation_filter(w, view, node, filter, &row)? {
            Ok(true) => kept.push(row),
            Ok(false) => {}
            Err(error) => return Ok(Err(error)),
        }
    }
    Ok(Ok(kept))
}

fn passes_relation_filter(
    w: &dyn ReadRows,
    view: &ViewPlan,
    node: usize,
    filter: &ExprPlan,
    row: &Row,
) -> Result<Result<bool, EvalError>, EngineError> {
    let value = NodeRows::at(node, row).eval(w, view, filter)?;
    Ok(value.and_then(|value| filter.expr.truth(&value)))
}

/// A relation's `where` that failed on a joined row: SQL would raise.
fn relation_failed(view: &ViewPlan, node: usize, error: &EvalError) -> Poison {
    Poison(format!("`{}.where` failed: {error}", view.nodes[node].path))
}

/// Writes a cache document as compact JSON text, fields in the view's
/// order: straight into `out`, because building a `serde_json` tree first
/// cost an allocation per field and per nested object of every root. A
/// computed field that fails on this row's values (an overflow, say) is a
/// poison: SQL would raise instead of returning the row.
fn write_document(
    w: &dyn ReadRows,
    view: &ViewPlan,
    doc: &DocPlan,
    row: &Row,
    out: &mut Vec<u8>,
) -> Result<Outcome<()>, EngineError> {
    // Made at the first computed field: most documents have none.
    let mut node_rows: Option<NodeRows> = None;
    out.push(b'{');
    let written = doc
        .fields
        .iter()
        .filter(|field| !matches!(field, FieldPlan::Relation { hidden: true, .. }));
    for (index, field) in written.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let (FieldPlan::Column { name, .. }
        | FieldPlan::Computed { name, .. }
        | FieldPlan::Relation { name, .. }) = field;
        write_json_string(name, out);
        out.push(b':');
        match field {
            FieldPlan::Column {
                column,
                array_element: None,
                ..
            } => row[*column].write_json(out),
            FieldPlan::Column {
                column,
                array_element: Some(element),
                ..
            } => write_array(&row[*column], *element, out),
            FieldPlan::Computed {
                name,
                expr,
                array_element,
            } => {
                let rows = node_rows.get_or_insert_with(|| NodeRows::at(doc.node, row));
                match rows.eval(w, view, expr)? {
                    Ok(value) => match array_element {
                        Some(element) => write_array(&value, *element, out),
                        None => value.write_json(out),
                    },
                    Err(error) => {
                        let field = field_path(view, doc.node, name);
                        return Ok(Err(Poison(format!("field `{field}` failed: {error}"))));
                    }
                }
            }
            FieldPlan::Relation {
                node,
                cardinality,
                order_by,
                limit,
                document,
                measure,
                ..
            } => match cardinality {
                Cardinality::One => match related_first(w, view, *node, row)? {
                    Ok(Some(child)) => {
                        if let Err(poison) = write_document(w, view, document, &child, out)? {
                            return Ok(Err(poison));
                        }
                    }
                    Ok(None) => out.extend_from_slice(b"null"),
                    Err(error) => return Ok(Err(relation_failed(view, *node, &error))),
                },
                Cardinality::Many => {
                    let mut rows = match related_rows(w, view, *node, row)? {
                        Ok(rows) => rows,
                        Err(error) => return Ok(Err(relation_failed(view, *node, &error))),
                    };
                    sort_rows(&mut rows, order_by);
                    if let Some(limit) = limit {
                        rows.truncate(*limit);
                    }
                    if let Some(measure) = measure {
                        match measure_of_rows(w, view, *node, measure, &rows)? {
                            Ok(value) => value.write_json(out),
                            Err(poison) => return Ok(Err(poison)),
                        }
                        continue;
                    }
                    out.push(b'[');
                    for (position, child) in rows.iter().enumerate() {
                        if position > 0 {
                            out.push(b',');
                        }
                        if let Err(poison) = write_document(w, view, document, child, out)? {
                            return Ok(Err(poison));
                        }
                    }
                    out.push(b']');
                }
            },
        }
    }
    out.push(b'}');
    Ok(Ok(()))
}

/// Where the view file declares the field `name` of the document at
/// `node` (`fields.items.fields.line_total`), as `check` names it: a
/// nested field's name alone does not say which relation it is in.
fn field_path(view: &ViewPlan, node: usize, name: &str) -> String {
    match node {
        0 => format!("fields.{name}"),
        _ => format!("{}.fields.{name}", view.nodes[node].path),
    }
}

/// A `many` relation's measure over its kept `rows`, as a scalar subquery
/// gives it: `count()` of no rows is 0, the other functions' NULL. An
/// input that fails on a row's values, or that its function cannot take,
/// is a poison: SQL would raise.
fn measure_of_rows(
    w: &dyn ReadRows,
    view: &ViewPlan,
    node: usize,
    plan: &RelationMeasurePlan,
    rows: &[Row],
) -> Result<Outcome<Value>, EngineError> {
    let measure = &plan.measure;
    let failed = |error: &dyn std::fmt::Display| {
        Poison(format!(
            "`{}.measure` failed: {error}",
            view.nodes[node].path
        ))
    };
    let specs = std::slice::from_ref(&measure.spec);
    let mut group = GroupState::new(Vec::new(), specs);
    let mut counts = MemoryCounts::default();
    let mut infinite_input = false;
    for row in rows {
        let input = match &measure.input {
            None => Value::Null,
            Some(input) => match NodeRows::at(node, row).eval(w, view, input)? {
                Ok(value) => convert_input(value, measure.spec.input_type),
                Err(error) => return Ok(Err(failed(&error))),
            },
        };
        infinite_input |= matches!(input, Value::Float(f) if f.is_infinite());
        if let Some(reason) = measure.spec.refuses(&input) {
            return Ok(Err(failed(&reason)));
        }
        let added = group.apply(specs, &[input], Direction::Add, &mut counts);
        if let Err(error) = added {
            return Ok(Err(failed(&reason(error))));
        }
    }
    let value = match group.row(specs, &mut counts) {
        Ok(mut values) => values.pop().unwrap_or(Value::Null),
        Err(error) => return Ok(Err(failed(&reason(error)))),
    };
    let summed = matches!(
        measure.spec.function,
        MeasureFunction::Sum | MeasureFunction::Avg
    );
    Ok(match value {
        Value::Numeric(sum) if plan.sum_is_bigint => match sum.parse::<i64>() {
            Ok(sum) => Ok(Value::Int(sum)),
            Err(_) => Err(failed(&"bigint out of range")),
        },
        // PostgreSQL's float sum raises where finite inputs overflow (trial
        // 28); infinite inputs give an infinite sum there too.
        Value::Float(total) if summed && total.is_infinite() && !infinite_input => {
            Err(failed(&"value out of range: overflow"))
        }
        value => Ok(value),
    })
}

/// What went wrong in a measure, without the measure's number.
fn reason(error: AggregateError) -> String {
    match error {
        AggregateError::Measure { message, .. } => message,
        other => other.to_string(),
    }
}

/// An array column as a JSON array, nested by dimension, each element as
/// a value of its element type (README, "Value encoding"); bounds are
/// dropped, as `to_json` drops them. A text that is no array in braces
/// (`int2vector`'s `1 2`) stays a string.
fn write_array(value: &Value, element: u32, out: &mut Vec<u8>) {
    let Value::Text(text) = value else {
        return value.write_json(out);
    };
    let Ok(array) = parse_array_delimited(text, array_delimiter(element)) else {
        return value.write_json(out);
    };
    let mut elements = array.elements.iter();
    write_dimension(&array.dimensions, element, &mut elements, out);
}

/// The character between an array's elements: PostgreSQL's `typdelim`
/// of the element type, which is `;` for `box` and `,` for every other
/// built-in type.
fn array_delimiter(element: u32) -> char {
    const BOX: u32 = 603;
    if element == BOX { ';' } else { ',' }
}

fn write_dimension<'a>(
    dimensions: &[usize],
    element: u32,
    elements: &mut impl Iterator<Item = &'a Option<String>>,
    out: &mut Vec<u8>,
) {
    out.push(b'[');
    let Some((&length, inner)) = dimensions.split_first() else {
        out.push(b']');
        return;
    };
    for position in 0..length {
        if position > 0 {
            out.push(b',');
        }
        if !inner.is_empty() {
            write_dimension(inner, element, elements, out);
            continue;
        }
        match elements.next() {
            Some(Some(text)) => parse_text(element, text).write_json(out),
            _ => out.extend_from_slice(b"null"),
        }
    }
    out.push(b']');
}

fn write_json_string(text: &str, out: &mut Vec<u8>) {
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(out, text);
}

/// Rows of `table` joined to `parent_row` through `link`, in primary-key order.
fn children(
    w: &dyn ReadRows,
    table: &str,
    link: &LinkPlan,
    parent_row: &[Value],
) -> Result<Vec<Row>, EngineError> {
    let Some(key) = link_key(link, parent_row) else {
        return Ok(Vec::new());
    };
    let keys = match &link.children {
        Lookup::PrimaryKey => Arc::from([key]),
        Lookup::Index(index) => w.index_lookup(table, index, &key)?,
    };
    let mut rows = Vec::with_capacity(keys.len());
    for pk in keys.iter() {
        if let Some(row) = w.get_row(table, pk)? {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The row of `table` with the lowest primary key among those joined to
/// `parent_row` through `link`: a `one` join's row. Only that row is read,
/// found by one step into the join index, however many rows match.
fn first_child(
    w: &dyn ReadRows,
    table: &str,
    link: &LinkPlan,
    parent_row: &[Value],
) -> Result<Option<Row>, EngineError> {
    let Some(key) = link_key(link, parent_row) else {
        return Ok(None);
    };
    let pk = match &link.children {
        Lookup::PrimaryKey => key,
        Lookup::Index(index) => match w.index_first(table, index, &key)? {
            Some(pk) => pk,
            None => return Ok(None),
        },
    };
    Ok(w.get_row(table, &pk)?)
}

/// The encoded values `link` looks the joined rows up by, or `None` when
/// one of them is NULL: NULL joins nothing.
fn link_key(link: &LinkPlan, parent_row: &[Value]) -> Option<Vec<u8>> {
    let values: Vec<&Value> = link
        .parent_columns
        .iter()
        .map(|&c| &parent_row[c])
        .collect();
    if values.iter().any(|v| v.is_null()) {
        return None;
    }
    Some(encode_values(values))
}

/// Sorts like PostgreSQL's ORDER BY: NULLs last ascending, first descending;
/// an enum by its labels' places; ties keep primary-key order (the sort is
/// stable).
fn sort_rows(rows: &mut [Row], order_by: &[OrderKeyPlan]) {
    if order_by.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        for key in order_by {
            let (a, b) = (&a[key.column], &b[key.column]);
            let ordering = match &key.enum_order {
                Some(order) => compare_nulls_last(&label_place(order, a), &label_place(order, b)),
                None => compare_nulls_last(a, b),
            };
            let ordering = if key.descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
}

/// A label's place in its enum; one added since the plan (which the views
/// are planned again for within seconds) after every known one.
fn label_place(order: &EnumOrder, label: &Value) -> Value {
    order
        .place(label)
        .unwrap_or(Value::Int(order.labels().len() as i64))
}

fn compare_nulls_last(a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => compare_values(a, b).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use super::{render_key, write_array};
    use crate::change::{Cell, Change, ChangeBatch, ChangeKind, Lsn, Tuple, Value};
    use crate::engine::Engine;
    use crate::plan::{KeyPartPlan, Plan};
    use crate::state::{OutboxOp, OutboxRead, Store, StoreError, StoreOptions};
    use crate::view::{Catalog, ColumnInfo, TableInfo, parse_view};

    const LINE_CACHE: &str = "view: line_cache
kind: cache
root: lines
key: \"line:{id}\"
fields:
  id: id
  per_unit: \"100 / qty\"
  label: \"product.code || '-' || note\"
  product: { one: products, on: { id: product_id }, where: \"code <> 'X'\", fields: { name: name } }
";

    /// An engine of `view` (a cache view over `lines` and `products`).
    fn line_engine(dir: &Path, view: &str) -> (Engine, Arc<Store>) {
        let column = |name: &str, type_oid| ColumnInfo {
            name: name.to_owned(),
            type_oid,
            type_modifier: -1,
            not_null: false,
            is_enum: false,
            array_element: None,
            type_name: format!("type {type_oid}"),
        };
        let mut catalog = Catalog::default();
        catalog.tables.insert(
            "public.lines".to_owned(),
            TableInfo {
                columns: vec![
                    column("id", 20),
                    column("qty", 23),
                    column("note", 25),
                    column("product_id", 20),
                    column("weight", 701),
                ],
                primary_key: vec!["id".to_owned()],
                unique_keys: Vec::new(),
            },
        );
        catalog.tables.insert(
            "public.products".to_owned(),
            TableInfo {
                columns: vec![column("id", 20), column("name", 25), column("code", 25)],
                primary_key: vec!["id".to_owned()],
                unique_keys: Vec::new(),
            },
        );
        let view = parse_view(Path::new("views/test.yaml"), view).unwrap();
        let plan = Plan::build(&[view], &catalog).unwrap();
        let store = Arc::new(Store::open(dir, &StoreOptions::default()).unwrap());
        (Engine::new(Arc::new(plan), Arc::clone(&store)), store)
    }

    /// What the cache holds after the outbox's entries so far.
    fn documents(store: &Store) -> Vec<(String, String)> {
        // A durable commit makes every batch's entries readable.
        store.write(|_| Ok::<_, StoreError>(())).unwrap();
        let OutboxRead::Entries(entries) = store
            .outbox_after(crate::sink::redis::SINK, 0, usize::MAX)
            .unwrap()
        else {
            panic!("the outbox overflowed");
        };
        let mut held = BTreeMap::new();
        for (_, entry) in entries {
            match entry.op {
                OutboxOp::Put { key, document } => held.insert(key, document),
                OutboxOp::Delete { key } => held.remove(&key),
            };
        }
        held.into_iter().collect()
    }

    /// A computed field is its expression's value over its level's row and
    /// the `one` relations below it; a change to a column only it reads
    /// refreshes it; a value that fails to compute sets its root aside as
    /// a dead letter, as SQL would raise. A relation's `where` leaves its
    /// rows out.
    #[test]
    fn computed_fields_and_relation_filters_compute_refresh_and_set_failing_roots_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, store) = line_engine(dir.path(), LINE_CACHE);
        let text = |t: &str| Value::Text(t.to_owned());
        // Rows as the state store holds them: the columns the views read,
        // in the plan's order.
        let stored = |table: &str, names: &[&str], rows: &[Vec<Value>]| -> Vec<Vec<Value>> {
            let columns = &engine.plan().tables[table].columns;
            rows.iter()
                .map(|row| {
                    let at = |c: &String| names.iter().position(|n| n == c).unwrap();
                    columns.iter().map(|c| row[at(c)].clone()).collect()
                })
                .collect()
        };
        engine.begin_snapshot("").unwrap();
        let lines = [
            vec![Value::Int(1), Value::Int(4), text("a"), Value::Int(7)],
            vec![Value::Int(2), Value::Int(0), text("b"), Value::Int(7)],
            vec![Value::Int(3), Value::Null, text("c"), Value::Int(8)],
        ];
        let lines = stored("public.lines", &["id", "qty", "note", "product_id"], &lines);
        engine.load_snapshot_rows("public.lines", &lines).unwrap();
        let products = [vec![Value::Int(7), text("pen"), text("P")]];
        let products = stored("public.products", &["id", "name", "code"], &products);
        engine
            .load_snapshot_rows("public.products", &products)
            .unwrap();
        engine.finish_snapshot(Lsn(1)).unwrap();
        let expected = |code: &str| {
            vec![
                (
                    "line:1".to_owned(),
                    format!(
                        r#"{{"id":1,"per_unit":25,"label":"{code}-a","product":{{"name":"pen"}}}}"#
                    ),
                ),
                (
                    "line:3".to_owned(),
                    r#"{"id":3,"per_unit":null,"label":null,"product":null}"#.to_owned(),
                ),
            ]
        };
        assert_eq!(documents(&store), expected("P"));
        let (letters, total) = store.dead_letters("line_cache", 10).unwrap();
        assert_eq!(total, 1);
        assert_eq!(letters[0].key, "id=2");
        assert!(
            letters[0].reason.contains("field `fields.per_unit` failed")
                && letters[0].reason.contains("division by zero"),
            "{}",
            letters[0].reason
        );

        // `code` is in no field of `product`: only `label` reads it.
        let tuple = |values: Vec<Value>| Tuple {
            columns: Arc::from(["id".to_owned(), "name".to_owned(), "code".to_owned()]),
            cells: values.into_iter().map(Cell::Value).collect(),
        };
        let batch = ChangeBatch {
            changes: vec![Change {
                table: Arc::from("public.products"),
                kind: ChangeKind::Update {
                    old: None,
                    new: tuple(vec![Value::Int(7), text("pen"), text("Q")]),
                },
            }],
            commit_end: Some(Lsn(2)),
            commit_time_micros: 0,
        };
        engine.apply(&batch).unwrap();
        assert_eq!(documents(&store), expected("Q"));

        // The relation's `where` leaves the product out, for the field
        // that reads through it too, as `LEFT JOIN … ON … AND code <> 'X'`.
        let mut batch = batch;
        batch.changes[0].kind = ChangeKind::Update {
            old: None,
            new: tuple(vec![Value::Int(7), text("pen"), text("X")]),
        };
        batch.commit_end = Some(Lsn(3));
        engine.apply(&batch).unwrap();
        let documents = documents(&store);
        assert_eq!(
            documents[0].1,
            r#"{"id":1,"per_unit":25,"label":null,"product":null}"#
        );
    }

    const PRODUCT_LINES: &str = "
view: product_lines
kind: cache
root: products
key: \"p:{id}\"
fields:
  id: id
  units: { many: lines, on: { product_id: id }, measure: sum(qty) }
  noted: { many: lines, on: { product_id: id }, where: \"note <> ''\", measure: count() }
  mass: { many: lines, on: { product_id: id }, measure: sum(weight) }
";

    /// A measure over a relation's rows is the scalar subquery's value (a
    /// `sum` of no rows or only NULLs is `null`, a `count` of none `0`); a
    /// change to a column only the measure or its relation's `where` reads
    /// refreshes it; a float sum of finite values past `float8`'s range
    /// sets its root aside, as PostgreSQL raises "value out of range".
    #[test]
    fn a_relation_measure_is_computed_and_refreshed_from_the_columns_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, store) = line_engine(dir.path(), PRODUCT_LINES);
        let text = |t: &str| Value::Text(t.to_owned());
        let names = ["id", "qty", "note", "product_id", "weight"];
        let values = |id, qty: Option<i64>, note: &str, product, weight| {
            let qty = qty.map_or(Value::Null, Value::Int);
            let weight = Value::Float(weight);
            vec![Value::Int(id), qty, text(note), Value::Int(product), weight]
        };
        let stored = |table: &str, names: &[&str], row: Vec<Value>| -> Vec<Value> {
            let columns = &engine.plan().tables[table].columns;
            let at = |c: &String| names.iter().position(|n| n == c).unwrap();
            columns.iter().map(|c| row[at(c)].clone()).collect()
        };
        engine.begin_snapshot("").unwrap();
        let lines = [
            values(1, Some(4), "a", 7, 1.5),
            values(2, Some(3), "", 7, 2.5),
            values(3, None, "c", 8, 1.5e308),
        ];
        let lines: Vec<Vec<Value>> = lines
            .into_iter()
            .map(|row| stored("public.lines", &names, row))
            .collect();
        engine.load_snapshot_rows("public.lines", &lines).unwrap();
        let products: Vec<Vec<Value>> = [7, 8, 9]
            .into_iter()
            .map(|id| vec![Value::Int(id), text("pen"), text("P")])
            .map(|row| stored("public.products", &["id", "name", "code"], row))
            .collect();
        engine
            .load_snapshot_rows("public.products", &products)
            .unwrap();
        engine.finish_snapshot(Lsn(1)).unwrap();
        let float = |f: f64| {
            let mut out = Vec::new();
            Value::Float(f).write_json(&mut out);
            String::from_utf8(out).unwrap()
        };
        let document = |id: i64, units: &str, noted: i64, mass: &str| {
            (
                format!("p:{id}"),
                format!(r#"{{"id":{id},"units":{units},"noted":{noted},"mass":{mass}}}"#),
            )
        };
        let (seven, eight) = (float(4.0), float(1.5e308));
        assert_eq!(
            documents(&store),
            [
                document(7, "7", 1, &seven),
                document(8, "null", 1, &eight),
                document(9, "null", 0, "null")
            ]
        );

        // `qty` is read by the measure only, `note` by the `where` only.
        let change = |kind: fn(Tuple) -> ChangeKind, row: Vec<Value>| Change {
            table: Arc::from("public.lines"),
            kind: kind(Tuple {
                columns: Arc::from(names.map(str::to_owned)),
                cells: row.into_iter().map(Cell::Value).collect(),
            }),
        };
        let update = |new| ChangeKind::Update { old: None, new };
        let batch = ChangeBatch {
            changes: vec![
                change(update, values(1, Some(10), "a", 7, 1.5)),
                change(update, values(2, Some(3), "b", 7, 2.5)),
            ],
            commit_end: Some(Lsn(2)),
            commit_time_micros: 0,
        };
        engine.apply(&batch).unwrap();
        assert_eq!(
            documents(&store),
            [
                document(7, "13", 2, &seven),
                document(8, "null", 1, &eight),
                document(9, "null", 0, "null")
            ]
        );

        // Two finite weights whose sum is past `float8`'s range.
        let insert = |new| ChangeKind::Insert { new };
        let batch = ChangeBatch {
            changes: vec![change(insert, values(4, None, "d", 8, 1.5e308))],
            commit_end: Some(Lsn(3)),
            commit_time_micros: 0,
        };
        engine.apply(&batch).unwrap();
        assert_eq!(
            documents(&store),
            [document(7, "13", 2, &seven), document(9, "null", 0, "null")]
        );
        let (letters, _) = store.dead_letters("product_lines", 10).unwrap();
        assert!(
            letters[0]
                .reason
                .contains("`fields.mass.measure` failed: value out of range"),
            "{}",
            letters[0].reason
        );
    }

    /// A `char(n)` placeholder leaves its padding out, as `'br:' || code`
    /// does in SQL; another text keeps its spaces.
    #[test]
    fn a_key_leaves_out_the_padding_of_a_char_column() {
        let parts = [
            KeyPartPlan::Literal("br:".to_owned()),
            KeyPartPlan::Column {
                column: 0,
                padded: true,
            },
            KeyPartPlan::Literal(":".to_owned()),
            KeyPartPlan::Column {
                column: 1,
                padded: false,
            },
        ];
        let root = [Value::Text("B02 ".to_owned()), Value::Text("x ".to_owned())];
        assert_eq!(render_key(&parts, &root), "br:B02:x ");
    }

    fn array_json(element: u32, text: &str) -> String {
        let mut out = Vec::new();
        write_array(&Value::Text(text.to_owned()), element, &mut out);
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    #[test]
    fn an_array_is_written_as_its_elements_values() {
        const BOOL: u32 = 16;
        const INT4: u32 = 23;
        const TEXT: u32 = 25;
        const FLOAT8: u32 = 701;
        const NUMERIC: u32 = 1700;
        const TIMESTAMPTZ: u32 = 1184;
        const JSONB: u32 = 3802;
        let cases = [
            (
                TEXT,
                r#"{rock,"hip hop",NULL,"NULL","a\"b"}"#,
                r#"["rock","hip hop",null,"NULL","a\"b"]"#,
            ),
            (INT4, "{}", "[]"),
            (INT4, "[0:1]={7,-8}", "[7,-8]"),
            (INT4, "{{1,2},{3,NULL}}", "[[1,2],[3,null]]"),
            (BOOL, "{t,f}", "[true,false]"),
            (
                FLOAT8,
                "{1.5,3,NaN,-Infinity}",
                r#"[1.5,3,"NaN","-Infinity"]"#,
            ),
            (NUMERIC, "{12.50,NaN}", r#"["12.50","NaN"]"#),
            (
                TIMESTAMPTZ,
                r#"{"2026-11-24 14:03:07.12+00"}"#,
                r#"["2026-11-24T14:03:07.120000Z"]"#,
            ),
            (JSONB, r#"{"{\"a\": [1, 2]}",7}"#, r#"[{"a": [1, 2]},7]"#),
            // An enum's or another type's elements are their text.
            (16_402, "{happy,sad}", r#"["happy","sad"]"#),
            // `int2vector` is an array type written without braces.
            (21, "1 2", r#""1 2""#),
            // `box` elements are separated by `;`.
            (
                603,
                r#"{"(1,1),(0,0)";"(2,2),(1,1)"}"#,
                r#"["(1,1),(0,0)","(2,2),(1,1)"]"#,
            ),
            (
                603,
                "{(1,1),(0,0);(2,2),(1,1)}",
                r#"["(1,1),(0,0)","(2,2),(1,1)"]"#,
            ),
        ];
        for (element, text, expected) in cases {
            assert_eq!(array_json(element, text), expected, "{text}");
        }
        let mut out = Vec::new();
        write_array(&Value::Null, TEXT, &mut out);
        assert_eq!(out, b"null");
    }
}
