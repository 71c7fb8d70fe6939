//! `kind: aggregate`: the keys of an aggregate view (`root`, `joins`,
//! `where`, `group_by`, `measures`, `table`) and the checks that need nothing
//! but the file. The qualifying root rows are grouped, and each group is one
//! row of `table`, which viewkeeper creates and keeps up to date.
//!
//! ```yaml
//! view: category_daily_sales
//! kind: aggregate
//! root: order_items
//! joins:
//!   orders: { one: orders, on: { id: order_id } }
//! where: "orders.status = 'paid'"
//! group_by:
//!   day: "date(orders.created_at)"        # name: expression
//! measures:
//!   units: sum(quantity)                  # name: function(expression)
//! table: analytics.category_daily_sales
//! ```
//!
//! The names under `group_by` and `measures` are the columns of `table`:
//! plain lowercase identifiers, each used once across both. Expressions reach
//! columns as `column` (of the root) or `join.column`, through the joins read
//! by `joins.rs`; a measure's text is split by `measure.rs`.

use super::error::FileReport;
use super::filter::{PathCheck, read_expression, read_where};
use super::joins::{ManyJoins, check_joined_path, read_joins};
use super::measure::{MeasureCall, split_measure};
use super::model::{AggregateView, GroupKey, Measure, MeasureFunction, NamedJoin};
use super::shape::{self, Mapping, child_path};
use super::table::{created_name_problem, created_table, read_root};
use crate::expr::Expr;

/// The top-level keys of an aggregate view file, common keys included.
pub(crate) const AGGREGATE_KEYS: &[&str] = &[
    "view",
    "kind",
    "description",
    "root",
    "joins",
    "where",
    "group_by",
    "measures",
    "table",
];

const GROUP_BY_PATH: &str = "group_by";
const MEASURES_PATH: &str = "measures";
const TABLE_PATH: &str = "table";

/// Reads the aggregate-specific keys of the file's top mapping.
pub(crate) fn read_aggregate_view(report: &mut FileReport, top: &Mapping) -> Option<AggregateView> {
    let root = read_root(report, top);
    let errors_before_joins = report.errors.len();
    let joins = read_joins(report, top, ManyJoins::Refused("aggregate"));
    // Paths through a join that was wrong are not checked, so that a broken
    // join is not reported a second time as an unknown one.
    let joins_ok = report.errors.len() == errors_before_joins;
    let known_joins: Option<&[NamedJoin]> = joins.as_deref().filter(|_| joins_ok);
    let check_path = |path: &[String]| match known_joins {
        Some(joins) => check_joined_path(joins, path),
        None => Ok(()),
    };
    let filter = read_where(report, top, &check_path);
    let group_entries = column_mapping(report, top, GROUP_BY_PATH, "group key");
    let measure_entries = column_mapping(report, top, MEASURES_PATH, "measure");
    let names_ok = check_column_names(report, group_entries.as_ref(), measure_entries.as_ref());
    let group_by = group_entries.and_then(|m| read_group_by(report, &m, &check_path));
    let measures = measure_entries.and_then(|m| read_measures(report, &m, &check_path));
    let table = read_table(report, top);
    names_ok.then_some(())?;
    Some(AggregateView {
        root: root?,
        joins: joins?,
        filter: filter?,
        group_by: group_by?,
        measures: measures?,
        table: table?,
    })
}

/// The required, non-empty mapping under `key` whose names are columns of
/// the target table; `what` names one entry in messages.
fn column_mapping<'a>(
    report: &mut FileReport,
    top: &Mapping<'a>,
    key: &str,
    what: &str,
) -> Option<Mapping<'a>> {
    let entry = top.require(report, "", key)?;
    report.locate(key, entry.key_line);
    let mapping = shape::named_keys(report, &entry.value, key, what)?;
    if mapping.entries.is_empty() {
        report.error(entry.key_line, key, format!("needs at least one {what}"));
        return None;
    }
    for entry in &mapping.entries {
        report.locate(&child_path(key, &entry.key), entry.key_line);
    }
    Some(mapping)
}

/// Each name is a valid column name, and names one column only: a name under
/// both `group_by` and `measures` is reported where it comes second.
fn check_column_names(
    report: &mut FileReport,
    group_by: Option<&Mapping>,
    measures: Option<&Mapping>,
) -> bool {
    let mut columns: Vec<(&str, &str, usize)> = Vec::new();
    for (key, mapping) in [(GROUP_BY_PATH, group_by), (MEASURES_PATH, measures)] {
        let entries = mapping.map_or(&[][..], |m| &m.entries[..]);
        columns.extend(entries.iter().map(|e| (key, e.key.as_str(), e.key_line)));
    }
    columns.sort_by_key(|(_, _, line)| *line);
    let mut ok = true;
    for (index, (key, name, line)) in columns.iter().enumerate() {
        let path = child_path(key, name);
        let earlier = columns[..index].iter().find(|(_, other, _)| other == name);
        let message = if let Some(problem) = created_name_problem(name) {
            format!("`{name}` is not a valid column name: {problem}")
        } else if let Some((first_key, _, first_line)) = earlier {
            format!(
                "column `{name}` is already defined under `{first_key}` on line {first_line}: \
                 group keys and measures are columns of one table, so their names must differ"
            )
        } else {
            continue;
        };
        report.error(*line, &path, message);
        ok = false;
    }
    ok
}

/// `name: expression` entries, in definition order.
/// PostgreSQL's `INDEX_MAX_KEYS`: the table's key (a primary key or a
/// unique index) holds every group key.
const MAX_GROUP_KEYS: usize = 32;

fn read_group_by(
    report: &mut FileReport,
    mapping: &Mapping,
    check_path: PathCheck,
) -> Option<Vec<GroupKey>> {
    if mapping.entries.len() > MAX_GROUP_KEYS {
        let message = format!(
            "{} group keys: the table's key holds every group key, and PostgreSQL indexes at \
             most {MAX_GROUP_KEYS} columns; group by fewer, or split the view",
            mapping.entries.len()
        );
        report.error(mapping.line, GROUP_BY_PATH, message);
    }
    let mut keys = Vec::new();
    for entry in &mapping.entries {
        let path = child_path(GROUP_BY_PATH, &entry.key);
        let expected = "an expression such as `date(orders.created_at)`";
        let Some(source) = shape::text(report, &entry.value, &path, expected) else {
            continue;
        };
        let expr = read_expression(report, source, entry.value.line, &path, check_path);
        keys.extend(expr.map(|expr| GroupKey {
            name: entry.key.clone(),
            expr,
        }));
    }
    (keys.len() == mapping.entries.len()).then_some(keys)
}

/// `name: function(expression)` entries, in definition order.
fn read_measures(
    report: &mut FileReport,
    mapping: &Mapping,
    check_path: PathCheck,
) -> Option<Vec<Measure>> {
    let mut measures = Vec::new();
    for entry in &mapping.entries {
        let path = child_path(MEASURES_PATH, &entry.key);
        let line = entry.value.line;
        let expected = "a measure such as `sum(quantity)`";
        let Some(source) = shape::text(report, &entry.value, &path, expected) else {
            continue;
        };
        let Some((function, arg)) = read_measure(report, source, line, &path, check_path) else {
            continue;
        };
        measures.push(Measure {
            name: entry.key.clone(),
            function,
            arg,
        });
    }
    (measures.len() == mapping.entries.len()).then_some(measures)
}

/// A measure's `function(argument)`, with an optional `FILTER (WHERE …)`,
/// written on `line` at `path`: its function, and the expression it
/// aggregates (`None` for `count()`). Also a cache view's measure of a
/// `many` relation.
pub(crate) fn read_measure(
    report: &mut FileReport,
    source: &str,
    line: usize,
    path: &str,
    check_path: PathCheck,
) -> Option<(MeasureFunction, Option<Expr>)> {
    let call = match split_measure(source) {
        Ok(call) => call,
        Err(message) => {
            report.error(line, path, message);
            return None;
        }
    };
    // Each part alone first, so that an error names the part it is in.
    let parts = [call.argument, call.filter].into_iter().flatten();
    let checked = parts.map(|part| read_expression(report, part, line, path, check_path));
    if checked.collect::<Vec<_>>().iter().any(Option::is_none) {
        return None;
    }
    let arg = match measure_argument(&call) {
        None => None,
        Some(argument) => Some(read_expression(report, &argument, line, path, check_path)?),
    };
    Some((call.function, arg))
}

/// The argument a measure aggregates: a `FILTER (WHERE c)` leaves NULL
/// where `c` is not true, which every function skips, as SQL's filter
/// leaves the row out: `count() FILTER (WHERE c)` counts `CASE WHEN c THEN
/// 1 END`, `sum(x) FILTER (WHERE c)` sums `CASE WHEN c THEN x END`.
fn measure_argument(call: &MeasureCall) -> Option<String> {
    match (call.argument, call.filter) {
        (argument, None) => argument.map(str::to_owned),
        (argument, Some(filter)) => Some(format!(
            "CASE WHEN ({filter}) THEN ({}) END",
            argument.unwrap_or("1")
        )),
    }
}

/// The required target `table:`, which viewkeeper creates.
fn read_table(report: &mut FileReport, top: &Mapping) -> Option<String> {
    let entry = top.require(report, "", TABLE_PATH)?;
    report.locate(TABLE_PATH, entry.value.line);
    created_table(report, &entry.value, TABLE_PATH)
}

/// Also the home of the design's example, which the catalog tests share.
#[cfg(test)]
#[path = "aggregate_tests.rs"]
pub(crate) mod tests;
