//! Output fields of a document: `name: column`, `name: expression` (a
//! computed field), or a relation (`one:`/`many:` a table, `on:` the join,
//! `order_by:`, nested `fields:`) nested to any depth.

use super::aggregate::read_measure;
use super::error::FileReport;
use super::filter::{PathUse, read_expression, relation_on_path};
use super::model::{Cardinality, Field, FieldSource, JoinPair, Measure, OrderKey, Relation};
use super::node::{Entry, Node, NodeValue};
use super::shape::{self, Mapping, child_path};
use super::table::qualified_table;
use crate::expr::{Expr, ExprError};

const RELATION_KEYS: &[&str] = &[
    "one", "many", "on", "order_by", "limit", "where", "fields", "measure", "hidden",
];

/// Reads a `fields:` mapping at `path`, in definition order.
pub(crate) fn read_fields(report: &mut FileReport, node: &Node, path: &str) -> Vec<Field> {
    let Some(mapping) = shape::named_keys(report, node, path, "field") else {
        return Vec::new();
    };
    if mapping.entries.is_empty() {
        report.error(node.line, path, "needs at least one field");
    }
    let fields: Vec<Field> = mapping
        .entries
        .iter()
        .filter_map(|entry| read_field(report, entry, path))
        .collect();
    check_computed_paths(report, &fields, &mapping.entries, path);
    fields
}

/// Each column path of a computed field names a column of this level's
/// row, or one reached through `one` relation fields of this level
/// (`customer.name`), which may come after the computed field.
fn check_computed_paths(report: &mut FileReport, fields: &[Field], entries: &[&Entry], path: &str) {
    for field in fields {
        let FieldSource::Computed(expr) = &field.source else {
            continue;
        };
        let Some(entry) = entries.iter().find(|entry| entry.key == field.name) else {
            continue;
        };
        for column in expr.columns() {
            if let Err(message) = relation_on_path(fields, &column, PathUse::Compute) {
                report.error(entry.value.line, &child_path(path, &field.name), message);
            }
        }
    }
}

fn read_field(report: &mut FileReport, entry: &Entry, fields_path: &str) -> Option<Field> {
    let path = child_path(fields_path, &entry.key);
    report.locate(&path, entry.key_line);
    let name_ok = check_field_name(report, entry, &path);
    let source = match &entry.value.value {
        NodeValue::Map(entries) if is_search_field(entries) => {
            let message = "a cache view's field is `name: column` (`from:` and `type:` are a \
                           search view's), or a relation with `one:` or `many:`";
            report.error(entry.key_line, &path, message);
            return None;
        }
        NodeValue::Map(_) => FieldSource::Relation(read_relation(report, entry, &path)?),
        NodeValue::Text(text) => read_column_or_expression(report, entry, text, &path)?,
        other => {
            let hint = match other {
                NodeValue::Other(_) => {
                    "; a constant is an expression in quotes (`\"1\"`, `\"true\"`, \
                     `\"'text'\"`)"
                }
                _ => "",
            };
            let message = format!(
                "expected a column name, an expression or a relation (a mapping with `one:` or \
                 `many:`), found {}{hint}",
                entry.value.describe()
            );
            report.error(entry.value.line, &path, message);
            return None;
        }
    };
    name_ok.then(|| Field {
        name: entry.key.clone(),
        source,
    })
}

/// `name: column` when the text is a name (letters, digits, `_`, `$`, or
/// words between spaces, as before expressions were allowed here), else
/// `name: expression`. An expression that is a bare column, quoted
/// (`"Order Total"`) or not, is that column.
fn read_column_or_expression(
    report: &mut FileReport,
    entry: &Entry,
    text: &str,
    path: &str,
) -> Option<FieldSource> {
    if text.is_empty() {
        shape::column_name(report, &entry.value, path);
        return None;
    }
    if is_plain_name(text) {
        return Some(FieldSource::Column(text.to_owned()));
    }
    match Expr::parse(text) {
        Ok(expr) => match expr.columns().as_slice() {
            [column] if expr.is_column() && column.len() == 1 => {
                Some(FieldSource::Column(column[0].clone()))
            }
            _ => Some(FieldSource::Computed(expr)),
        },
        Err(_) if is_words(text) => Some(FieldSource::Column(text.to_owned())),
        Err(error) => {
            // Only where the text may have been meant as a name.
            let hint = match error {
                ExprError::Syntax { .. } => {
                    " (a field's value is a column name or an expression over this level's \
                     columns)"
                }
                _ => "",
            };
            let message = format!("invalid expression: {error}{hint}");
            report.error(entry.value.line, path, message);
            None
        }
    }
}

/// A column name as written before expressions: one word of name
/// characters (`2fa_enabled` too), but not of digits alone (`1` is a
/// number).
fn is_plain_name(text: &str) -> bool {
    !text.chars().all(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// Name characters and single spaces between them (`order total`), which
/// no expression is.
fn is_words(text: &str) -> bool {
    text.split(' ').all(is_plain_name)
}

/// A mapping written as a search view's field (`{ from: column, type: … }`)
/// rather than a relation: told as one error, not as four missing keys.
fn is_search_field(entries: &[Entry]) -> bool {
    let has = |key: &str| entries.iter().any(|entry| entry.key == key);
    has("from") && !has("one") && !has("many")
}

/// Field names become JSON keys and, for relations, the first part of `where`
/// column paths (`customer.email`): a dot would make those paths ambiguous.
fn check_field_name(report: &mut FileReport, entry: &Entry, path: &str) -> bool {
    let problem = if entry.key.is_empty() {
        "field name is empty"
    } else if entry.key.contains('.') {
        "field name must not contain `.`"
    } else {
        return true;
    };
    report.error(entry.key_line, path, problem);
    false
}

fn read_relation(report: &mut FileReport, entry: &Entry, path: &str) -> Option<Relation> {
    let mut mapping = shape::fixed_keys(report, &entry.value, path, RELATION_KEYS)?;
    // A missing key is reported at the field's name, not at its first key.
    mapping.line = entry.key_line;
    // Every part is read even when another is wrong, so that all errors show.
    let target = read_target(report, &mapping, entry, path);
    let on = read_join(report, &mapping, path);
    let cardinality = target.as_ref().map(|(cardinality, _)| *cardinality);
    let order_by = read_order_by(report, &mapping, cardinality, path);
    let limit = read_limit(report, &mapping, cardinality, path);
    let hidden = read_hidden(report, &mapping, cardinality, path);
    let contents = read_contents(report, &mapping, entry, cardinality, hidden, path);
    let fields = contents.as_ref().map_or(&[][..], |(fields, _)| fields);
    let filter = read_relation_where(report, &mapping, fields, path);
    let (cardinality, table) = target?;
    let (fields, measure) = contents?;
    Some(Relation {
        cardinality,
        table: table?,
        on: on?,
        order_by: order_by?,
        limit: limit?,
        fields,
        measure,
        filter: filter?,
        hidden: hidden?,
    })
}

/// `hidden: true`: a `one` relation read by `where` and computed fields
/// (`customer.email`) but not written in the document. A `many` relation's
/// rows are read by its own fields only, so hiding one would hide all it
/// gives.
fn read_hidden(
    report: &mut FileReport,
    mapping: &Mapping,
    cardinality: Option<Cardinality>,
    path: &str,
) -> Option<bool> {
    let Some(entry) = mapping.get("hidden") else {
        return Some(false);
    };
    let hidden_path = child_path(path, "hidden");
    report.locate(&hidden_path, entry.key_line);
    let hidden = shape::boolean(report, &entry.value, &hidden_path)?;
    if hidden && cardinality == Some(Cardinality::Many) {
        let message = "`hidden` is only for a `one` relation, read by `where` and computed \
                       fields (`customer.email`): a `many` relation's rows are read by its own \
                       fields only";
        report.error(entry.key_line, &hidden_path, message);
        return None;
    }
    Some(hidden)
}

/// What a relation gives: its rows' `fields:`, or (a `many` relation
/// only) one `measure:` over its rows.
fn read_contents(
    report: &mut FileReport,
    mapping: &Mapping,
    entry: &Entry,
    cardinality: Option<Cardinality>,
    hidden: Option<bool>,
    path: &str,
) -> Option<(Vec<Field>, Option<Box<Measure>>)> {
    match (mapping.get("fields"), mapping.get("measure")) {
        // A hidden relation is read through its paths, not its fields.
        (None, None) if hidden == Some(true) => Some((Vec::new(), None)),
        (Some(_), Some(measure)) => {
            let message = "give either `fields:` (the rows' fields) or `measure:` (one value \
                           over the rows, such as `count()`), not both";
            report.error(measure.key_line, &child_path(path, "measure"), message);
            None
        }
        (None, Some(_)) => {
            let measure = read_relation_measure(report, mapping, &entry.key, cardinality, path)?;
            Some((Vec::new(), Some(Box::new(measure))))
        }
        (Some(_), None) => Some((read_nested_fields(report, mapping, path)?, None)),
        (None, None) => {
            let message = match cardinality {
                Some(Cardinality::Many) => {
                    "missing required key `fields` (the rows' fields), or `measure:` (one \
                     value over the rows, such as `count()`)"
                }
                _ => {
                    "missing required key `fields` (or `hidden: true`, for a relation that \
                     `where` and computed fields read through its path)"
                }
            };
            report.error(mapping.line, path, message);
            None
        }
    }
}

/// The `measure:` of a `many` relation, such as `sum(quantity) FILTER
/// (WHERE quantity > 0)`: over the joined rows' own columns.
fn read_relation_measure(
    report: &mut FileReport,
    mapping: &Mapping,
    name: &str,
    cardinality: Option<Cardinality>,
    path: &str,
) -> Option<Measure> {
    let (entry, measure_path) =
        many_only_entry(report, mapping, cardinality, path, "measure").ok()??;
    let expected = "a measure such as `count()` or `sum(quantity)`";
    let source = shape::text(report, &entry.value, &measure_path, expected)?;
    let check_path = |column: &[String]| -> Result<(), String> {
        match column {
            [_] => Ok(()),
            _ => Err(format!(
                "column `{}`: a measure reads its relation's own columns only",
                column.join(".")
            )),
        }
    };
    let line = entry.value.line;
    let (function, arg) = read_measure(report, source, line, &measure_path, &check_path)?;
    Some(Measure {
        name: name.to_owned(),
        function,
        arg,
    })
}

/// The optional `where:` of a relation: `Some(None)` when it is absent,
/// `None` when it is wrong. Its paths start at the relation's row.
fn read_relation_where(
    report: &mut FileReport,
    mapping: &Mapping,
    fields: &[Field],
    path: &str,
) -> Option<Option<Expr>> {
    let Some(entry) = mapping.get("where") else {
        return Some(None);
    };
    let where_path = child_path(path, "where");
    report.locate(&where_path, entry.value.line);
    let source = shape::text(report, &entry.value, &where_path, "an expression")?;
    let check_path = |column: &[String]| -> Result<(), String> {
        relation_on_path(fields, column, PathUse::Filter).map(drop)
    };
    read_expression(report, source, entry.value.line, &where_path, &check_path).map(Some)
}

fn read_nested_fields(
    report: &mut FileReport,
    mapping: &Mapping,
    path: &str,
) -> Option<Vec<Field>> {
    let entry = mapping.get("fields")?;
    let fields_path = child_path(path, "fields");
    report.locate(&fields_path, entry.key_line);
    Some(read_fields(report, &entry.value, &fields_path))
}

/// Exactly one of `one: TABLE` and `many: TABLE`: the cardinality, and the
/// table when its name is valid.
fn read_target(
    report: &mut FileReport,
    mapping: &Mapping,
    entry: &Entry,
    path: &str,
) -> Option<(Cardinality, Option<String>)> {
    let (key, cardinality) = match (mapping.get("one"), mapping.get("many")) {
        (Some(_), None) => ("one", Cardinality::One),
        (None, Some(_)) => ("many", Cardinality::Many),
        (Some(_), Some(_)) => {
            let message =
                "give either `one:` (a nested object) or `many:` (a nested array), not both";
            report.error(entry.key_line, path, message);
            return None;
        }
        (None, None) => {
            let message =
                "a relation needs `one: TABLE` (a nested object) or `many: TABLE` (a nested array)";
            report.error(entry.key_line, path, message);
            return None;
        }
    };
    let table_node = &mapping.get(key)?.value;
    let table_path = child_path(path, key);
    report.locate(&table_path, table_node.line);
    let table = qualified_table(report, table_node, &table_path);
    Some((cardinality, table))
}

/// `on: { joined_column: parent_column, ... }`, at least one pair.
fn read_join(report: &mut FileReport, mapping: &Mapping, path: &str) -> Option<Vec<JoinPair>> {
    let on = mapping.require(report, path, "on")?;
    let on_path = child_path(path, "on");
    report.locate(&on_path, on.key_line);
    let pairs = shape::named_keys(report, &on.value, &on_path, "join column")?;
    if pairs.entries.is_empty() {
        let message = "needs at least one `joined_column: parent_column` pair";
        report.error(on.key_line, &on_path, message);
        return None;
    }
    let mut join = Vec::new();
    for pair in &pairs.entries {
        report.locate(&child_path(&on_path, &pair.key), pair.key_line);
        let joined_ok = shape::check_column_name(report, pair.key_line, &on_path, &pair.key);
        let parent = shape::column_name(report, &pair.value, &on_path);
        if let (true, Some(parent)) = (joined_ok, parent) {
            join.push(JoinPair {
                joined: pair.key.clone(),
                parent: parent.to_owned(),
            });
        }
    }
    (join.len() == pairs.entries.len()).then_some(join)
}

/// `order_by: col`, `col desc`, or a list of those; only for `many`.
fn read_order_by(
    report: &mut FileReport,
    mapping: &Mapping,
    cardinality: Option<Cardinality>,
    path: &str,
) -> Option<Vec<OrderKey>> {
    let (entry, order_path) = match many_only_entry(report, mapping, cardinality, path, "order_by")
    {
        Ok(Some(found)) => found,
        Ok(None) => return Some(Vec::new()),
        Err(Refused) => return None,
    };
    match &entry.value.value {
        NodeValue::List(items) => read_order_list(report, items, &order_path),
        _ => read_order_key(report, &entry.value, &order_path).map(|key| vec![key]),
    }
}

/// The optional `limit:` of a `many` relation: a positive whole number.
fn read_limit(
    report: &mut FileReport,
    mapping: &Mapping,
    cardinality: Option<Cardinality>,
    path: &str,
) -> Option<Option<usize>> {
    let (entry, limit_path) = match many_only_entry(report, mapping, cardinality, path, "limit") {
        Ok(Some(found)) => found,
        Ok(None) => return Some(None),
        Err(Refused) => return None,
    };
    let limit = match &entry.value.value {
        NodeValue::Other(text) => text.parse::<usize>().ok().filter(|limit| *limit > 0),
        _ => None,
    };
    if limit.is_none() {
        let message = format!(
            "expected a whole number of rows, at least 1, found {}",
            entry.value.describe()
        );
        report.error(entry.value.line, &limit_path, message);
    }
    limit.map(Some)
}

/// A key that was refused, and reported.
struct Refused;

/// The entry under `key` with its path, for a key only a `many` relation may
/// have: on a `one` relation it is reported and refused.
fn many_only_entry<'a>(
    report: &mut FileReport,
    mapping: &Mapping<'a>,
    cardinality: Option<Cardinality>,
    path: &str,
    key: &str,
) -> Result<Option<(&'a Entry, String)>, Refused> {
    let Some(entry) = mapping.get(key) else {
        return Ok(None);
    };
    let key_path = child_path(path, key);
    report.locate(&key_path, entry.key_line);
    if cardinality == Some(Cardinality::One) {
        let message = format!(
            "`{key}` is only allowed on a `many` relation: a `one` relation is a single object"
        );
        report.error(entry.key_line, &key_path, message);
        return Err(Refused);
    }
    Ok(Some((entry, key_path)))
}

fn read_order_list(report: &mut FileReport, items: &[Node], path: &str) -> Option<Vec<OrderKey>> {
    let mut keys = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        report.locate(&item_path, item.line);
        keys.extend(read_order_key(report, item, &item_path));
    }
    (keys.len() == items.len()).then_some(keys)
}

/// `column`, `column asc` or `column desc`.
fn read_order_key(report: &mut FileReport, node: &Node, path: &str) -> Option<OrderKey> {
    let text = shape::text(
        report,
        node,
        path,
        "`column`, `column asc` or `column desc`",
    )?;
    let words: Vec<&str> = text.split_whitespace().collect();
    let descending = match words.as_slice() {
        [column, ..] if !shape::check_column_name(report, node.line, path, column) => return None,
        [_] => Some(false),
        [_, direction] if direction.eq_ignore_ascii_case("asc") => Some(false),
        [_, direction] if direction.eq_ignore_ascii_case("desc") => Some(true),
        _ => None,
    };
    let Some(descending) = descending else {
        let message = format!("`{text}` is not `column`, `column asc` or `column desc`");
        report.error(node.line, path, message);
        return None;
    };
    Some(OrderKey {
        column: words[0].to_owned(),
        descending,
    })
}
