//! The `where` filter of a view: an expression over the root row and the rows
//! joined to it. Each kind says which column paths resolve: for a cache view,
//! a root column (`status`) or a column reached through `one` relation fields
//! (`customer.email`, `customer.address.city`); a `many` relation has several
//! rows per root, so a filter through it would have no single value and is
//! refused. Search and aggregate views resolve paths through their named
//! joins (`joins.rs`); aggregate views also read their group keys and
//! measures' arguments with [`read_expression`].

use crate::expr::Expr;

use super::error::FileReport;
use super::model::{Cardinality, Field, FieldSource, Relation};
use super::shape::{self, Mapping};

pub(crate) const WHERE_PATH: &str = "where";

/// Says why a column path of the filter does not resolve, if it does not.
pub(crate) type PathCheck<'a> = &'a dyn Fn(&[String]) -> Result<(), String>;

/// Reads the optional `where:` of `top`: `Some(None)` when it is absent,
/// `None` when it is wrong. Every column path is passed to `check_path`.
pub(crate) fn read_where(
    report: &mut FileReport,
    top: &Mapping,
    check_path: PathCheck,
) -> Option<Option<Expr>> {
    let Some(entry) = top.get(WHERE_PATH) else {
        return Some(None);
    };
    report.locate(WHERE_PATH, entry.value.line);
    let source = shape::text(report, &entry.value, WHERE_PATH, "an expression")?;
    read_expression(report, source, entry.value.line, WHERE_PATH, check_path).map(Some)
}

/// Parses `source`, written on `line` at field `path`, and passes every
/// column path to `check_path`; `None` after reporting what is wrong.
pub(crate) fn read_expression(
    report: &mut FileReport,
    source: &str,
    line: usize,
    path: &str,
    check_path: PathCheck,
) -> Option<Expr> {
    let expr = match Expr::parse(source) {
        Ok(expr) => expr,
        Err(error) => {
            report.error(line, path, format!("invalid expression: {error}"));
            return None;
        }
    };
    let mut resolved = true;
    for column in expr.columns() {
        if let Err(message) = check_path(&column) {
            report.error(line, path, message);
            resolved = false;
        }
    }
    resolved.then_some(expr)
}

/// The check of a cache view's filter paths: through `one` relation fields.
pub(crate) fn through_relations(fields: &[Field], path: &[String]) -> Result<(), String> {
    filter_relation(fields, path).map(|_| ())
}

/// What a column path is read for, which says why a `many` relation on it
/// is refused.
#[derive(Clone, Copy)]
pub(crate) enum PathUse {
    Filter,
    Compute,
}

/// The relation whose table holds the last column of a `where` path, or
/// `None` when it is a root column.
pub(crate) fn filter_relation<'a>(
    fields: &'a [Field],
    path: &[String],
) -> Result<Option<&'a Relation>, String> {
    relation_on_path(fields, path, PathUse::Filter)
}

/// The relation whose table holds the last column of `path`, walked from
/// the level of `fields` through `one` relation fields, or `None` when it
/// is a column of that level's row.
pub(crate) fn relation_on_path<'a>(
    fields: &'a [Field],
    path: &[String],
    used: PathUse,
) -> Result<Option<&'a Relation>, String> {
    let Some((_column, relation_names)) = path.split_last() else {
        return Ok(None);
    };
    let mut fields = fields;
    let mut relation = None;
    for name in relation_names {
        let found = step_into(fields, name, used)
            .map_err(|why| format!("column `{}`: {why}", path.join(".")))?;
        fields = &found.fields;
        relation = Some(found);
    }
    Ok(relation)
}

fn step_into<'a>(fields: &'a [Field], name: &str, used: PathUse) -> Result<&'a Relation, String> {
    let field = fields.iter().find(|field| field.name == name);
    match field.map(|field| &field.source) {
        None => Err(format!(
            "no relation field `{name}` at this level; declare it among this level's fields \
             (`{name}: {{ one: …, on: …, hidden: true }}` when only paths read it)"
        )),
        Some(FieldSource::Column(_) | FieldSource::Computed(_)) => {
            Err(format!("`{name}` is a column field, not a relation"))
        }
        Some(FieldSource::Relation(relation)) if relation.cardinality == Cardinality::Many => {
            Err(match used {
                PathUse::Filter => {
                    format!("cannot filter on many relation items (`{name}` is a `many` relation)")
                }
                PathUse::Compute => format!(
                    "`{name}` is a `many` relation, whose rows give no single value: compute \
                     the field inside it, under its `fields:`, or give a relation of the same \
                     rows a `measure:` (`count()`, `sum(x)`)"
                ),
            })
        }
        Some(FieldSource::Relation(relation)) => Ok(relation),
    }
}
