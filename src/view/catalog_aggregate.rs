//! The catalog check of an aggregate view: its root and joined tables exist
//! and have primary keys, every column it names exists, `where` is a
//! boolean condition, each group key has equality (so not json), and each
//! measure's argument fits its function. Across views: the target `table`
//! is read by no view (its own writes would feed back into it) and written
//! by no other aggregate view.

use super::joined::JoinedTables;
use super::{AS_IT_STANDS, TableInfo, ViewCheck, text_of, unequal_type, unsortable_type_but_enum};
use crate::expr::ValueType;
use crate::view::model::{
    AggregateView, Field, FieldSource, GroupKey, Measure, MeasureFunction, ViewDef, ViewKind,
};
use crate::view::shape::child_path;
use crate::view::table::display_table;

impl<'a> ViewCheck<'a> {
    pub(super) fn aggregate_view(&mut self, aggregate: &'a AggregateView) {
        self.target_table(aggregate);
        if self.table(&aggregate.root, "root").is_none() {
            return;
        }
        let tables = JoinedTables {
            root: &aggregate.root,
            joins: &aggregate.joins,
        };
        self.named_joins(tables);
        self.joined_filter(tables, aggregate.filter.as_ref());
        for key in &aggregate.group_by {
            self.group_key(tables, key);
        }
        for measure in &aggregate.measures {
            self.measure(tables, measure, &child_path("measures", &measure.name));
        }
    }

    /// A group key is compared for equality to find its group, and becomes a
    /// column of the target table.
    fn group_key(&mut self, tables: JoinedTables<'a>, key: &GroupKey) {
        let path = child_path("group_by", &key.name);
        self.comparisons(tables, &key.expr, &path);
        self.enum_labels(tables, &key.expr, &path);
        let Some(value_type) = self.joined_type(tables, &key.expr, &path) else {
            return;
        };
        if let Some((column, type_name)) =
            self.column_of_type(tables, key.expr.value_columns(), unequal_type)
        {
            let message = format!(
                "cannot group by column {column} {AS_IT_STANDS}: its type {type_name} would be \
                 grouped by its text, and PostgreSQL finds values of other texts equal; group \
                 by a cast or function of it ({})",
                text_of(&column, &type_name)
            );
            self.error(&path, &path, message);
            return;
        }
        let why = match value_type {
            ValueType::Json
                if self
                    .column_of_type(tables, key.expr.value_columns(), jsonb_type)
                    .is_some() =>
            {
                "PostgreSQL groups jsonb by value (`{\"n\": 1.0}` and `{\"n\": 1}` are one \
                 group), which grouping by its text would not follow"
            }
            ValueType::Json => "json has no equality in PostgreSQL",
            ValueType::Null => "it is always NULL, so its column would have no type",
            _ => return,
        };
        let message = format!("cannot group by `{}`: {why}", key.expr.source());
        self.error(&path, &path, message);
    }

    /// A measure's argument fits its function; errors are said at `path`.
    pub(super) fn measure(&mut self, tables: JoinedTables<'a>, measure: &Measure, path: &str) {
        let Some(arg) = &measure.arg else {
            return;
        };
        // Also inside a `FILTER (WHERE …)`, which the argument holds (trial 28).
        self.enum_labels(tables, arg, path);
        let Some(value_type) = self.joined_type(tables, arg, path) else {
            return;
        };
        if measure.function == MeasureFunction::CountDistinct
            && let Some((column, type_name)) =
                self.column_of_type(tables, arg.value_columns(), unequal_type)
        {
            let message = format!(
                "count_distinct cannot take column {column} {AS_IT_STANDS}: its type {type_name} \
                 would be counted by its text, and PostgreSQL finds values of other texts \
                 equal; count a cast or function of it ({})",
                text_of(&column, &type_name)
            );
            self.error(path, path, message);
            return;
        }
        if matches!(
            measure.function,
            MeasureFunction::Min | MeasureFunction::Max | MeasureFunction::PercentileDisc(_)
        ) && let Some((column, type_name)) =
            self.column_of_type(tables, arg.value_columns(), unsortable_type_but_enum)
        {
            let message = format!(
                "{} cannot take `{}`: column {column} is of type {type_name}, which would be \
                 ordered by its text, not as PostgreSQL orders it",
                measure.function.name(),
                arg.source()
            );
            self.error(path, path, message);
            return;
        }
        // Inside a `FILTER (WHERE …)` or a `CASE` too (trial 31).
        if self.comparisons(tables, arg, path) {
            return;
        }
        let Some(needed) = argument_needed(measure.function, value_type) else {
            return;
        };
        // A column is named by its own type (`text[]`, an enum, which
        // "text" alone would misname), an expression by its value's.
        let found = arg
            .is_column()
            .then(|| self.column_of_type(tables, arg.columns(), described_type))
            .flatten()
            .map_or_else(|| value_type.to_string(), |(_, described)| described);
        let message = format!(
            "{} needs {needed}, but `{}` is {found}",
            measure.function.name(),
            arg.source()
        );
        self.error(path, path, message);
    }

    /// The target table is written by viewkeeper: no view may read it, and
    /// only one aggregate view may write it.
    fn target_table(&mut self, aggregate: &AggregateView) {
        let table = display_table(&aggregate.table);
        let mut messages = Vec::new();
        // One message naming every view that reads it (it was one per view).
        let readers: Vec<String> = self
            .views
            .iter()
            .filter_map(|other| {
                let role = reads_table(other, &aggregate.table)?;
                Some(if std::ptr::eq(other, self.view) {
                    format!("{role} of this view")
                } else {
                    format!("{role} of view `{}`", other.name)
                })
            })
            .collect();
        if !readers.is_empty() {
            messages.push(format!(
                "table {table} is {}: an aggregate view must write a table no view reads, or \
                 its own writes would feed back into it",
                readers.join(", ")
            ));
        }
        // Told at every view naming it: which one is new, and which one's
        // table it already is, the files cannot say (their names' order did).
        let others = self
            .views
            .iter()
            .filter(|v| !std::ptr::eq(*v, self.view) && writes_table(v, &aggregate.table));
        for other in others {
            messages.push(format!(
                "table {table} is also the table of aggregate view `{}` ({}): each aggregate \
                 view needs a table of its own",
                other.name,
                other.file.display()
            ));
        }
        for message in messages {
            self.error("table", "table", message);
        }
    }
}

/// What `function` needs of its argument, when `found` does not fit.
fn argument_needed(function: MeasureFunction, found: ValueType) -> Option<&'static str> {
    let (fits, needed) = match function {
        MeasureFunction::Count => (true, ""),
        MeasureFunction::Sum | MeasureFunction::Avg => (
            found.is_numeric(),
            "a numeric expression (integer, float or numeric)",
        ),
        // PostgreSQL has no `min(boolean)` nor `max(boolean)`.
        MeasureFunction::Min | MeasureFunction::Max => (
            found.is_orderable() && !matches!(found, ValueType::Null | ValueType::Bool),
            "an orderable expression (any type but json and boolean; for a boolean, \
             max(x::int) is 1 when it holds for some row, min(x::int) when for every row)",
        ),
        MeasureFunction::CountDistinct => (
            found != ValueType::Json,
            "an expression with equality (any type but json)",
        ),
        MeasureFunction::PercentileCont(_) => (
            found.is_numeric(),
            "a numeric expression (integer, float or numeric), which it interpolates as a \
             double precision",
        ),
        MeasureFunction::PercentileDisc(_) => (
            found.is_orderable() && found != ValueType::Null,
            "an orderable expression (any type but json)",
        ),
    };
    (!fits).then_some(needed)
}

/// How `view` reads `table`, if it does: `the root` or `a joined table`.
fn reads_table(view: &ViewDef, table: &str) -> Option<&'static str> {
    let mut joined: Vec<&str> = Vec::new();
    let root = match &view.kind {
        ViewKind::Cache(cache) => {
            relation_tables(&cache.fields, &mut joined);
            cache.root.as_str()
        }
        ViewKind::Search(search) => {
            joined.extend(search.joins.iter().map(|join| join.table.as_str()));
            search.root.as_str()
        }
        ViewKind::Aggregate(aggregate) => {
            joined.extend(aggregate.joins.iter().map(|join| join.table.as_str()));
            aggregate.root.as_str()
        }
    };
    if root == table {
        Some("the root table")
    } else if joined.contains(&table) {
        Some("a joined table")
    } else {
        None
    }
}

/// The tables of a cache view's relations, at any depth.
fn relation_tables<'v>(fields: &'v [Field], tables: &mut Vec<&'v str>) {
    for field in fields {
        if let FieldSource::Relation(relation) = &field.source {
            tables.push(&relation.table);
            relation_tables(&relation.fields, tables);
        }
    }
}

fn writes_table(view: &ViewDef, table: &str) -> bool {
    matches!(&view.kind, ViewKind::Aggregate(aggregate) if aggregate.table == table)
}

#[cfg(test)]
#[path = "catalog_aggregate_tests.rs"]
mod tests;

/// A column's type as PostgreSQL names it; an enum's, said to be one whose
/// values are its labels' text.
fn described_type(table: &TableInfo, column: &str) -> Option<String> {
    let info = table.columns.iter().find(|info| info.name == column)?;
    Some(if info.is_enum {
        format!(
            "{}, an enum (its values are the labels' text)",
            info.type_name
        )
    } else {
        info.type_name.clone()
    })
}

/// The type's name when `column` of `table` is a `jsonb`.
fn jsonb_type(table: &TableInfo, column: &str) -> Option<String> {
    let info = table.columns.iter().find(|info| info.name == column)?;
    (info.type_oid == crate::source::pg_text::type_oid::JSONB).then(|| info.type_name.clone())
}
