//! The catalog checks that search and aggregate views share: their named
//! joins (tables with primary keys, `on` columns on both sides), and the
//! expressions over the root and the joined tables, whose columns must exist
//! and whose types are then inferred.

use super::{
    TableInfo, ViewCheck, column_value_type, name_columns_read_as_text, ordering_problem,
    reversed_pair, reversed_pair_message, unequal_comparison, unequal_type,
};
use crate::expr::{ColumnPath, Expr, ValueType};
use crate::view::filter::WHERE_PATH;
use crate::view::joins::table_of;
use crate::view::model::{NamedJoin, NamedJoinPair};
use crate::view::shape::child_path;

/// The tables a view's column paths reach: `column` is the root's,
/// `join.column` the join's.
#[derive(Clone, Copy)]
pub(super) struct JoinedTables<'a> {
    /// Schema-qualified.
    pub root: &'a str,
    pub joins: &'a [NamedJoin],
}

impl<'a> ViewCheck<'a> {
    /// The table holding the last column of `path` (the root's, or its
    /// join's), when that table exists.
    pub(super) fn path_table(
        &self,
        tables: JoinedTables<'a>,
        path: &[String],
    ) -> Option<(&'a str, &'a TableInfo)> {
        let name = table_of(tables.root, tables.joins, path)?;
        Some((name, self.catalog.tables.get(name)?))
    }

    /// Each join: the parent side in the root or an earlier join, the joined
    /// side in the joined table, which has a primary key.
    pub(super) fn named_joins(&mut self, tables: JoinedTables<'a>) {
        for join in tables.joins {
            self.named_join(tables, join);
        }
    }

    fn named_join(&mut self, tables: JoinedTables<'a>, join: &NamedJoin) {
        let path = child_path("joins", &join.name);
        let on_path = child_path(&path, "on");
        let reversed = |pair: &&NamedJoinPair| {
            let joined = self.catalog.tables.get(&join.table);
            match (
                self.path_table(tables, &pair.parent),
                pair.parent.last(),
                joined,
            ) {
                (Some((_, parent)), Some(column), Some(joined)) => {
                    reversed_pair((parent, column), (joined, &pair.joined))
                }
                _ => false,
            }
        };
        let reversed: Vec<&NamedJoinPair> = join.on.iter().filter(reversed).collect();
        for pair in &reversed {
            let pair_path = child_path(&on_path, &pair.joined);
            let mut enclosing = pair.parent.clone();
            let parent_column = enclosing.pop().unwrap_or_default();
            enclosing.push(pair.joined.clone());
            let message = reversed_pair_message(
                &join.table,
                "the root or an earlier join",
                &parent_column,
                &enclosing.join("."),
            );
            self.error(&on_path, &pair_path, message);
        }
        let pairs: Vec<&NamedJoinPair> = join
            .on
            .iter()
            .filter(|pair| !reversed.contains(pair))
            .collect();
        for pair in &pairs {
            let pair_path = child_path(&on_path, &pair.joined);
            if let (Some((name, table)), Some(column)) =
                (self.path_table(tables, &pair.parent), pair.parent.last())
            {
                self.column(table, name, column, &on_path, &pair_path);
            }
        }
        let table_path = child_path(&path, join.cardinality.key());
        let Some(joined) = self.table(&join.table, &table_path) else {
            return;
        };
        for pair in pairs {
            let pair_path = child_path(&on_path, &pair.joined);
            self.column(joined, &join.table, &pair.joined, &on_path, &pair_path);
            if let (Some((name, table)), Some(column)) =
                (self.path_table(tables, &pair.parent), pair.parent.last())
            {
                self.join_types(
                    (table, name, column),
                    (joined, &join.table, &pair.joined),
                    &on_path,
                    &pair_path,
                );
            }
        }
    }

    /// `where`: its columns exist, and it is a boolean condition.
    pub(super) fn joined_filter(&mut self, tables: JoinedTables<'a>, filter: Option<&Expr>) {
        let Some(filter) = filter else {
            return;
        };
        self.comparisons(tables, filter, WHERE_PATH);
        self.enum_labels(tables, filter, WHERE_PATH);
        // A missing column fits any type here, so that a mistake beside it
        // is said too (trial 25).
        let columns_exist = self.columns_exist(tables, filter, WHERE_PATH);
        let column_type =
            |path: &[String]| Some(self.path_type(tables, path).unwrap_or(ValueType::Null));
        let table_at = |path: &[String]| self.path_table(tables, path).map(|(_, table)| table);
        match filter.infer_type_reporting_all(&column_type) {
            Ok(_) if !columns_exist => {}
            Err(errors) => {
                let errors = name_columns_read_as_text(errors, filter, table_at);
                self.filter_result(filter, Err(errors));
            }
            inferred => self.filter_result(filter, inferred),
        }
    }

    /// The comparisons in `expr` compare as PostgreSQL does: a column whose
    /// type has an equality or an order of its own (`citext`, `interval`)
    /// is not compared by its text, and an enum is ordered only where its
    /// labels' order applies ([`ordering_problem`]); the first that would
    /// not is reported at `path`, and `true` returned. Wherever a comparison
    /// stands: a `where`, a `CASE` in a group key, a measure's `FILTER`
    /// (trial 31: those compared an enum by its labels' text).
    pub(super) fn comparisons(
        &mut self,
        tables: JoinedTables<'a>,
        expr: &Expr,
        path: &str,
    ) -> bool {
        let table_of = |path: &[String]| self.path_table(tables, path).map(|(_, table)| table);
        let message = if let Some((column, type_name)) =
            self.column_of_type(tables, expr.compared_columns(), unequal_type)
        {
            unequal_comparison(&column, &type_name)
        } else if let Some(message) = ordering_problem(expr, &table_of) {
            message
        } else {
            return false;
        };
        self.error(path, path, message);
        true
    }

    /// Each text compared with an enum column in `expr` is one of its
    /// labels; the others are reported at `field`.
    pub(super) fn enum_labels(&mut self, tables: JoinedTables<'a>, expr: &Expr, field: &str) {
        for (path, text) in expr.columns_compared_with_texts() {
            if let Some((_, table)) = self.path_table(tables, &path) {
                self.enum_label(table, &path, &text, field);
            }
        }
    }

    /// The type of `expr`, or `None` after reporting at `path` a column
    /// that does not exist or a type error.
    pub(super) fn joined_type(
        &mut self,
        tables: JoinedTables<'a>,
        expr: &Expr,
        path: &str,
    ) -> Option<ValueType> {
        if !self.columns_exist(tables, expr, path) {
            return None;
        }
        match expr.infer_type(&|column| self.path_type(tables, column)) {
            Ok(value_type) => Some(value_type),
            Err(error) => {
                let table_at = |path: &[String]| self.path_table(tables, path).map(|(_, t)| t);
                for error in name_columns_read_as_text(vec![error], expr, table_at) {
                    self.error(path, path, error.to_string());
                }
                None
            }
        }
    }

    /// Whether every column of `expr` exists; a missing column is reported
    /// at `path`, a missing table was reported with its join.
    fn columns_exist(&mut self, tables: JoinedTables<'a>, expr: &Expr, path: &str) -> bool {
        let mut all_exist = true;
        for column_path in expr.columns() {
            let (Some((name, table)), Some(column)) =
                (self.path_table(tables, &column_path), column_path.last())
            else {
                all_exist = false;
                continue;
            };
            if !table.has_column(column) {
                self.column(table, name, column, path, path);
                all_exist = false;
            } else if self.is_generated(name, column) {
                self.generated_column(name, column, path, path);
                all_exist = false;
            }
        }
        all_exist
    }

    /// The first of `columns` whose type `type_check` names (as
    /// [`super::unsortable_type`] or [`unequal_type`] do), with that name.
    pub(super) fn column_of_type(
        &self,
        tables: JoinedTables<'a>,
        columns: Vec<ColumnPath>,
        type_check: fn(&TableInfo, &str) -> Option<String>,
    ) -> Option<(String, String)> {
        columns.into_iter().find_map(|path| {
            let (_, table) = self.path_table(tables, &path)?;
            let type_name = type_check(table, path.last()?)?;
            Some((path.join("."), type_name))
        })
    }

    fn path_type(&self, tables: JoinedTables<'a>, path: &[String]) -> Option<ValueType> {
        let (_, table) = self.path_table(tables, path)?;
        column_value_type(table, path.last()?)
    }
}
