//! The catalog check of a search view: its root and joined tables exist and
//! have primary keys, every column it names exists, `id` is the root's
//! single-column primary key, each field's type fits its column's PostgreSQL
//! type, and `where` is a boolean condition. Joins and `where` are checked
//! by `catalog_joins.rs`, shared with aggregate views.

use super::joined::JoinedTables;
use super::{TableInfo, ViewCheck, column_value_type};
use crate::expr::Expr;
use crate::expr::ValueType;
use crate::source::pg_text::value_type;
use crate::view::model::{SearchField, SearchFieldType, SearchSource, SearchView};
use crate::view::search_fields::type_name;
use crate::view::shape::child_path;
use crate::view::table::display_table;

impl<'a> ViewCheck<'a> {
    pub(super) fn search_view(&mut self, search: &'a SearchView) {
        let Some(root) = self.table(&search.root, "root") else {
            return;
        };
        let tables = JoinedTables {
            root: &search.root,
            joins: &search.joins,
        };
        self.search_id(search, root);
        self.named_joins(tables);
        for field in &search.fields {
            self.search_field(tables, field);
        }
        self.joined_filter(tables, search.filter.as_ref());
    }

    /// Documents are replaced by `id`: it must name one root row, as a
    /// single-column primary key does, or a single-column unique key that is
    /// NOT NULL (NULLs are not equal to each other, and would all render as
    /// one id).
    fn search_id(&mut self, search: &SearchView, root: &TableInfo) {
        if !root.has_column(&search.id) {
            self.column(root, &search.root, &search.id, "id", "id");
            return;
        }
        let id = &search.id;
        let table = display_table(&search.root);
        let unique = root
            .unique_keys
            .iter()
            .any(|key| key.len() == 1 && key.contains(id));
        let not_null = root.column(id).is_some_and(|column| column.not_null);
        let message = match root.primary_key.as_slice() {
            [] => return,
            [key] if key == id => return,
            _ if unique && not_null => return,
            _ if unique => format!(
                "`{id}` is a unique key of table {table} but may be NULL, and every NULL would \
                 be one id: make it NOT NULL, or use the primary key"
            ),
            [key] => format!(
                "`{id}` is neither the primary key of table {table} (`{key}`) nor a unique \
                 key of its own: a search view's `id` names one row"
            ),
            composite => format!(
                "search views need a single-column key as `id` (the primary key, or a unique \
                 NOT NULL column), but table {table} has the composite primary key ({}) and no \
                 unique `{id}`",
                composite.join(", ")
            ),
        };
        self.error("id", "id", message);
    }

    fn search_field(&mut self, tables: JoinedTables<'a>, field: &SearchField) {
        match &field.from {
            SearchSource::Column(from) => self.search_column(tables, field, from),
            SearchSource::Expr(expr) => self.search_expr(tables, field, expr),
        }
    }

    /// A computed field: its columns exist, it compares as PostgreSQL
    /// does, and its type fits the field's.
    fn search_expr(&mut self, tables: JoinedTables<'a>, field: &SearchField, expr: &Expr) {
        let path = child_path("fields", &field.name);
        let from_path = child_path(&path, "from");
        self.comparisons(tables, expr, &from_path);
        self.enum_labels(tables, expr, &from_path);
        let Some(value_type) = self.joined_type(tables, expr, &from_path) else {
            return;
        };
        if !column_fits(field.field_type, value_type) {
            let type_path = child_path(&path, "type");
            let message = format!(
                "{} needs {}, but `{}` is {value_type}",
                type_name(field.field_type),
                value_needed(field.field_type),
                expr.source()
            );
            self.error(&type_path, &type_path, message);
        }
    }

    fn search_column(&mut self, tables: JoinedTables<'a>, field: &SearchField, from: &[String]) {
        let path = child_path("fields", &field.name);
        let (Some((table_name, table)), Some(column)) =
            (self.path_table(tables, from), from.last())
        else {
            return;
        };
        let from_path = child_path(&path, "from");
        let Some(column_type) = column_value_type(table, column) else {
            self.column(table, table_name, column, &from_path, &from_path);
            return;
        };
        // An array column's elements are the field's values.
        let column_type = table
            .columns
            .iter()
            .find(|info| info.name == *column)
            .and_then(|info| info.array_element)
            .map_or(column_type, value_type);
        if !column_fits(field.field_type, column_type) {
            let type_path = child_path(&path, "type");
            // As PostgreSQL names it: `text[]` read as `text` before.
            let column_type = table
                .columns
                .iter()
                .find(|info| info.name == *column)
                .map_or_else(|| column_type.to_string(), |info| info.type_name.clone());
            let message = format!(
                "{} needs {}, but {}.{column} is {column_type}",
                type_name(field.field_type),
                column_needed(field.field_type),
                display_table(table_name)
            );
            self.error(&type_path, &type_path, message);
        }
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

/// The values `field_type` accepts, for a computed field's mismatch.
fn value_needed(field_type: SearchFieldType) -> &'static str {
    match field_type {
        SearchFieldType::Text(_) | SearchFieldType::Keyword => "a value",
        SearchFieldType::I64 => "an integer",
        SearchFieldType::F64 => "a number (integer, float or numeric)",
        SearchFieldType::Bool => "a boolean",
        SearchFieldType::Date => "a date, timestamp or timestamptz",
    }
}

#[cfg(test)]
#[path = "catalog_search_tests.rs"]
mod tests;
