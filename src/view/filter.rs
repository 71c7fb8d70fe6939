//! The `where` filter of a cache view: its column paths must name a root column
//! (`status`) or a column reached through `one` relation fields (`customer.email`,
//! `customer.address.city`). A `many` relation has several rows per root, so a
//! filter through it would have no single value: it is refused.

use crate::expr::Expr;

use super::error::FileReport;
use super::model::{Cardinality, Field, FieldSource, Relation};

pub(crate) const WHERE_PATH: &str = "where";

/// Parses the filter and checks that each column path resolves through
/// `fields` (when given: `None` checks the syntax only).
pub(crate) fn read_filter(
    report: &mut FileReport,
    source: &str,
    line: usize,
    fields: Option<&[Field]>,
) -> Option<Expr> {
    let expr = match Expr::parse(source) {
        Ok(expr) => expr,
        Err(error) => {
            report.error(line, WHERE_PATH, format!("invalid expression: {error}"));
            return None;
        }
    };
    let Some(fields) = fields else {
        return Some(expr);
    };
    let mut resolved = true;
    for path in expr.columns() {
        if let Err(message) = filter_relation(fields, &path) {
            report.error(line, WHERE_PATH, message);
            resolved = false;
        }
    }
    resolved.then_some(expr)
}

/// The relation whose table holds the last column of `path`, or `None` when it
/// is a root column.
pub(crate) fn filter_relation<'a>(
    fields: &'a [Field],
    path: &[String],
) -> Result<Option<&'a Relation>, String> {
    let Some((_column, relation_names)) = path.split_last() else {
        return Ok(None);
    };
    let mut fields = fields;
    let mut relation = None;
    for name in relation_names {
        let found =
            step_into(fields, name).map_err(|why| format!("column `{}`: {why}", path.join(".")))?;
        fields = &found.fields;
        relation = Some(found);
    }
    Ok(relation)
}

fn step_into<'a>(fields: &'a [Field], name: &str) -> Result<&'a Relation, String> {
    let field = fields.iter().find(|field| field.name == name);
    match field.map(|field| &field.source) {
        None => Err(format!("no relation field `{name}` at this level")),
        Some(FieldSource::Column(_)) => Err(format!("`{name}` is a column field, not a relation")),
        Some(FieldSource::Relation(relation)) if relation.cardinality == Cardinality::Many => Err(
            format!("cannot filter on many relation items (`{name}` is a `many` relation)"),
        ),
        Some(FieldSource::Relation(relation)) => Ok(relation),
    }
}
