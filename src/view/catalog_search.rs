//! The catalog check of a search view: its root and joined tables exist and
//! have primary keys, every column it names exists, `id` is the root's
//! single-column primary key, each field's type fits its column's PostgreSQL
//! type, and `where` is a boolean condition.

use super::{TableInfo, ViewCheck, column_value_type};
use crate::expr::ValueType;
use crate::view::filter::WHERE_PATH;
use crate::view::joins::table_of;
use crate::view::model::{NamedJoin, SearchField, SearchFieldType, SearchView};
use crate::view::search_fields::type_name;
use crate::view::shape::child_path;
use crate::view::table::display_table;

impl<'a> ViewCheck<'a> {
    pub(super) fn search_view(&mut self, search: &'a SearchView) {
        let Some(root) = self.table(&search.root, "root") else {
            return;
        };
        self.search_id(search, root);
        for join in &search.joins {
            self.named_join(search, join);
        }
        for field in &search.fields {
            self.search_field(search, field);
        }
        self.search_filter(search);
    }

    /// The table holding the last column of `path` (the root's, or its
    /// join's), when that table exists.
    fn path_table(
        &self,
        search: &'a SearchView,
        path: &[String],
    ) -> Option<(&'a str, &'a TableInfo)> {
        let name = table_of(&search.root, &search.joins, path)?;
        Some((name, self.catalog.tables.get(name)?))
    }

    /// Documents are replaced by `id`: it must name one root row, and only
    /// the primary key is sure to (and to be in every change PostgreSQL sends).
    fn search_id(&mut self, search: &SearchView, root: &TableInfo) {
        if !root.has_column(&search.id) {
            self.column(root, &search.root, &search.id, "id", "id");
            return;
        }
        let table = display_table(&search.root);
        let message = match root.primary_key.as_slice() {
            [] => return,
            [key] if *key == search.id => return,
            [key] => format!(
                "`{}` is not the primary key of table {table}: search views use the root's \
                 primary key as `id`, here `{key}`",
                search.id
            ),
            composite => format!(
                "search views need a single-column primary key as `id`, but table {table} \
                 has the composite primary key ({})",
                composite.join(", ")
            ),
        };
        self.error("id", "id", message);
    }

    /// The parent side in the root or an earlier join, the joined side in
    /// the joined table.
    fn named_join(&mut self, search: &'a SearchView, join: &NamedJoin) {
        let path = child_path("joins", &join.name);
        let on_path = child_path(&path, "on");
        for pair in &join.on {
            let pair_path = child_path(&on_path, &pair.joined);
            if let (Some((name, table)), Some(column)) =
                (self.path_table(search, &pair.parent), pair.parent.last())
            {
                self.column(table, name, column, &on_path, &pair_path);
            }
        }
        let Some(joined) = self.table(&join.table, &child_path(&path, "one")) else {
            return;
        };
        for pair in &join.on {
            let pair_path = child_path(&on_path, &pair.joined);
            self.column(joined, &join.table, &pair.joined, &on_path, &pair_path);
        }
    }

    fn search_field(&mut self, search: &'a SearchView, field: &SearchField) {
        let path = child_path("fields", &field.name);
        let (Some((table_name, table)), Some(column)) =
            (self.path_table(search, &field.from), field.from.last())
        else {
            return;
        };
        let from_path = child_path(&path, "from");
        let Some(column_type) = column_value_type(table, column) else {
            self.column(table, table_name, column, &from_path, &from_path);
            return;
        };
        if !column_fits(field.field_type, column_type) {
            let type_path = child_path(&path, "type");
            let message = format!(
                "{} needs {}, but {}.{column} is {column_type}",
                type_name(field.field_type),
                column_needed(field.field_type),
                display_table(table_name)
            );
            self.error(&type_path, &type_path, message);
        }
    }

    /// Columns exist in the table of their join; then, when everything else
    /// is right, the condition's type.
    fn search_filter(&mut self, search: &'a SearchView) {
        let Some(filter) = &search.filter else {
            return;
        };
        for path in filter.columns() {
            if let (Some((name, table)), Some(column)) =
                (self.path_table(search, &path), path.last())
            {
                self.column(table, name, column, WHERE_PATH, WHERE_PATH);
            }
        }
        if !self.errors.is_empty() {
            return;
        }
        let column_type = |path: &[String]| {
            let (_, table) = self.path_table(search, path)?;
            column_value_type(table, path.last()?)
        };
        let inferred = filter.infer_type(&column_type);
        self.filter_result(filter, inferred);
    }
}

/// Whether a column of PostgreSQL type `column` can fill a field of `field_type`.
fn column_fits(field_type: SearchFieldType, column: ValueType) -> bool {
    match field_type {
        SearchFieldType::Text(_) | SearchFieldType::Keyword => true,
        SearchFieldType::I64 => column == ValueType::Int,
        SearchFieldType::F64 => column.is_numeric(),
        SearchFieldType::Bool => column == ValueType::Bool,
        SearchFieldType::Date => column.is_temporal(),
    }
}

/// The columns `field_type` accepts, for the mismatch message.
fn column_needed(field_type: SearchFieldType) -> &'static str {
    match field_type {
        SearchFieldType::Text(_) | SearchFieldType::Keyword => "a column",
        SearchFieldType::I64 => "an integer column",
        SearchFieldType::F64 => "a numeric column (integer, float or numeric)",
        SearchFieldType::Bool => "a boolean column",
        SearchFieldType::Date => "a date, timestamp or timestamptz column",
    }
}

#[cfg(test)]
#[path = "catalog_search_tests.rs"]
mod tests;
