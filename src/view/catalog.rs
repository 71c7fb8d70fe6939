//! The online check of `viewkeeper check`: views against the tables of the live
//! database. Loading the [`Catalog`] from PostgreSQL is done elsewhere; this
//! module only compares, so it is tested with hand-built catalogs.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::error::ViewError;
use super::filter::{PathUse, WHERE_PATH, relation_on_path};
use super::key_collisions::{KeyToken, templates_may_meet};
use super::model::{CacheView, Field, FieldSource, JoinPair, KeyPart, Relation, ViewDef, ViewKind};
use super::shape::child_path;
use super::table::display_table;
use crate::expr::{ColumnPath, Expr, ExprError, ValueType};
use crate::source::pg_text::{equal_as_its_text, sorts_as_its_value, value_type};
use joined::JoinedTables;

/// The tables of the source database that views may read.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// By schema-qualified name (`public.orders`).
    pub tables: HashMap<String, TableInfo>,
    /// The generated columns (`GENERATED ALWAYS AS (…) STORED`) of each
    /// table: PostgreSQL 15's change log does not carry them, so a view
    /// reading one would keep its snapshot value for good.
    pub generated_columns: HashMap<String, HashSet<String>>,
    /// The labels of each enum type, by OID: SQL refuses a literal compared
    /// with an enum column that is none of them.
    pub enum_labels: HashMap<u32, Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    pub columns: Vec<ColumnInfo>,
    /// Primary-key columns in key order; empty when the table has none.
    pub primary_key: Vec<String>,
    /// The columns of each unique index without an expression or a
    /// predicate, the primary key's included.
    pub unique_keys: Vec<BTreeSet<String>>,
}

#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    /// PostgreSQL type OID, for later type checks of joins and filters.
    pub type_oid: u32,
    /// `atttypmod` (`numeric(10,2)`, `varchar(20)`; -1 for none): with the
    /// OID, what the stored values were read as.
    pub type_modifier: i32,
    /// `NOT NULL`: an aggregate's group column over it can be a primary key.
    pub not_null: bool,
    /// Of an enum type (its OID is the database's own).
    pub is_enum: bool,
    /// Of an array type: its elements' type OID (a domain's base type), by
    /// which a cache document writes each element.
    pub array_element: Option<u32>,
    /// The type as PostgreSQL writes it (`format_type`: `lab.mood`,
    /// `integer[]`, `citext`, a domain's own name), for messages.
    pub type_name: String,
}

/// A hint for a name that exists in another case (`dueAt` for `dueat`):
/// view fields match names exactly, and expressions fold unquoted names to
/// lower case, as SQL does; or for a typo (`nme` for `name`).
fn name_hint<'n>(wanted: &str, names: impl Iterator<Item = &'n str> + Clone) -> String {
    if let Some(name) = names.clone().find(|name| name.eq_ignore_ascii_case(wanted)) {
        return format!(
            "; did you mean \"{name}\"? Names match exactly; an expression folds an \
             unquoted name to lower case, so write it there in double quotes"
        );
    }
    // A typo: the nearest name, if it is near enough to be the one meant
    // (a third of its length, at least one edit).
    let allowed = (wanted.chars().count() / 3).max(1);
    names
        .map(|name| (strsim::damerau_levenshtein(wanted, name), name))
        .filter(|&(distance, _)| distance <= allowed)
        .min_by_key(|&(distance, name)| (distance, name))
        .map_or_else(String::new, |(_, name)| {
            format!("; did you mean \"{name}\"?")
        })
}

impl TableInfo {
    fn has_column(&self, name: &str) -> bool {
        self.column(name).is_some()
    }

    fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|column| column.name == name)
    }
}

/// Every error of every view against `catalog`, in view order, with those
/// found across views: an aggregate view writing a table that any view reads,
/// or the table of another aggregate view.
pub fn check_against_catalog(views: &[ViewDef], catalog: &Catalog) -> Vec<ViewError> {
    let mut errors = Vec::new();
    for view in views {
        let mut check = ViewCheck {
            view,
            views,
            catalog,
            errors: Vec::new(),
        };
        match &view.kind {
            ViewKind::Cache(cache) => check.cache_view(cache),
            ViewKind::Search(search) => check.search_view(search),
            ViewKind::Aggregate(aggregate) => check.aggregate_view(aggregate),
        }
        check.errors.sort_by_key(|error| error.line);
        errors.append(&mut check.errors);
    }
    errors
}

/// One level of a cache view's document: its fields, and the table of its
/// rows (the root's, or a relation's), over which its expressions compute.
#[derive(Clone, Copy)]
struct Level<'f, 'a> {
    fields: &'f [Field],
    table: &'a TableInfo,
    table_name: &'f str,
}

/// The check of one view: it knows the view's file and locations, so each
/// error is built with its line from the field path alone.
struct ViewCheck<'a> {
    view: &'a ViewDef,
    /// Every view, for the checks across views (an aggregate's target table).
    views: &'a [ViewDef],
    catalog: &'a Catalog,
    errors: Vec<ViewError>,
}

impl<'a> ViewCheck<'a> {
    fn cache_view(&mut self, cache: &'a CacheView) {
        let Some(root) = self.table(&cache.root, "root") else {
            return;
        };
        self.key_template(cache, root);
        self.keys_of_earlier_views(cache);
        self.fields(&cache.fields, &cache.root, "fields");
        self.filter(cache, root);
    }

    /// The table, or an error when it does not exist or has no primary key
    /// (without one, rows cannot be told apart in the state store).
    fn table(&mut self, name: &str, path: &str) -> Option<&'a TableInfo> {
        let Some(table) = self.catalog.tables.get(name) else {
            let tables = self.catalog.tables.keys().map(|table| display_table(table));
            let hint = name_hint(display_table(name), tables);
            self.error(
                path,
                path,
                format!("table \"{}\" does not exist{hint}", display_table(name)),
            );
            return None;
        };
        if table.primary_key.is_empty() {
            let message = format!("table {} has no primary key", display_table(name));
            self.error(path, path, message);
        }
        Some(table)
    }

    fn key_template(&mut self, cache: &CacheView, root: &TableInfo) {
        for part in &cache.key.parts {
            if let KeyPart::Column(column) = part {
                self.column(root, &cache.root, column, "key", "key");
            }
        }
        let in_key = |column: &String| cache.key.parts.contains(&KeyPart::Column(column.clone()));
        let missing: Vec<&str> = (root.primary_key.iter())
            .filter(|column| !in_key(column))
            .map(String::as_str)
            .collect();
        // A unique key whose columns are NOT NULL names one row as well (a
        // NULL renders as nothing, and NULLs are not equal to each other).
        let by_unique_key = root.unique_keys.iter().any(|key| {
            key.iter()
                .all(|column| in_key(column) && root.column(column).is_some_and(|c| c.not_null))
        });
        if missing.is_empty() || by_unique_key {
            return;
        }
        // A unique key the template names whole, but whose columns may be
        // NULL: say so, as that is the one thing to change.
        let nullable: Vec<&str> = (root.unique_keys.iter())
            .filter(|key| key.iter().all(in_key))
            .flatten()
            .filter(|column| root.column(column).is_some_and(|c| !c.not_null))
            .map(String::as_str)
            .collect();
        let hint = match nullable.as_slice() {
            [] => String::new(),
            columns => format!(
                "; {} of a unique key but may be NULL, and every NULL renders the same key: \
                 make {} NOT NULL",
                match columns {
                    [column] => format!("\"{column}\" is"),
                    _ => format!("{} are", quoted_list(columns)),
                },
                if columns.len() == 1 { "it" } else { "them" }
            ),
        };
        let message = format!(
            "key template must include every primary key column of table {}, missing {} (or \
             every column of a unique key whose columns are NOT NULL): otherwise two rows could \
             get the same key{hint}",
            display_table(&cache.root),
            quoted_list(&missing)
        );
        self.error("key", "key", message);
    }

    /// An error when a cache view before this one may render a key this
    /// one renders: the two would overwrite each other's documents.
    fn keys_of_earlier_views(&mut self, cache: &CacheView) {
        let Some(tokens) = key_tokens(self.catalog, cache) else {
            return;
        };
        let earlier = self
            .views
            .iter()
            .take_while(|other| !std::ptr::eq(*other, self.view));
        for other in earlier {
            let ViewKind::Cache(other_cache) = &other.kind else {
                continue;
            };
            let Some(other_tokens) = key_tokens(self.catalog, other_cache) else {
                continue;
            };
            if templates_may_meet(&tokens, &other_tokens) {
                let message = format!(
                    "key template \"{}\" may render a key of view {} ({}, key \"{}\"): two \
                     views would overwrite each other's documents; give each its own literal \
                     prefix",
                    cache.key.source,
                    other.name,
                    other.file.display(),
                    other_cache.key.source
                );
                self.error("key", "key", message);
                return;
            }
        }
    }

    fn fields(&mut self, fields: &'a [Field], table_name: &str, path: &str) {
        let Some(table) = self.catalog.tables.get(table_name) else {
            return;
        };
        for field in fields {
            let field_path = child_path(path, &field.name);
            match &field.source {
                FieldSource::Column(column) => {
                    self.column(table, table_name, column, &field_path, &field_path)
                }
                FieldSource::Computed(expr) => {
                    let level = Level {
                        fields,
                        table,
                        table_name,
                    };
                    self.computed_field(level, expr, &field_path);
                }
                FieldSource::Relation(relation) => {
                    self.relation(relation, table, table_name, &field_path)
                }
            }
        }
    }

    fn relation(
        &mut self,
        relation: &'a Relation,
        parent: &TableInfo,
        parent_name: &str,
        path: &str,
    ) {
        let on_path = child_path(path, "on");
        // A pair written the other way round (`{ enclosing: joined }`) is
        // one mistake, said as such, not two missing columns.
        let reversed = |pair: &&JoinPair| {
            self.catalog
                .tables
                .get(&relation.table)
                .is_some_and(|joined| reversed_pair((parent, &pair.parent), (joined, &pair.joined)))
        };
        let reversed: Vec<&JoinPair> = relation.on.iter().filter(reversed).collect();
        for pair in &reversed {
            let pair_path = child_path(&on_path, &pair.joined);
            let enclosing = display_table(parent_name);
            let message =
                reversed_pair_message(&relation.table, enclosing, &pair.parent, &pair.joined);
            self.error(&on_path, &pair_path, message);
        }
        let pairs: Vec<&JoinPair> = relation
            .on
            .iter()
            .filter(|pair| !reversed.contains(pair))
            .collect();
        for pair in &pairs {
            let pair_path = child_path(&on_path, &pair.joined);
            self.column(parent, parent_name, &pair.parent, &on_path, &pair_path);
        }
        let table_path = child_path(path, relation.cardinality.key());
        let Some(joined) = self.table(&relation.table, &table_path) else {
            return;
        };
        for pair in pairs {
            let pair_path = child_path(&on_path, &pair.joined);
            self.column(joined, &relation.table, &pair.joined, &on_path, &pair_path);
            self.join_types(
                (parent, parent_name, &pair.parent),
                (joined, &relation.table, &pair.joined),
                &on_path,
                &pair_path,
            );
        }
        let order_path = child_path(path, "order_by");
        for (index, key) in relation.order_by.iter().enumerate() {
            // `order_by[1]` is recorded for lists only; a single key falls back
            // to the line of `order_by`.
            let item_path = format!("{order_path}[{index}]");
            self.column(
                joined,
                &relation.table,
                &key.column,
                &order_path,
                &item_path,
            );
            if column_value_type(joined, &key.column) == Some(ValueType::Json) {
                let message = format!(
                    "cannot order by column \"{}\": viewkeeper does not order json values \
                     (PostgreSQL orders jsonb by kind, size and contents, and json not at all); \
                     order by another column",
                    key.column
                );
                self.error(&order_path, &item_path, message);
            } else if let Some(type_name) = unsortable_type_but_enum(joined, &key.column) {
                let message = format!(
                    "cannot order by column \"{}\": its type {type_name} would be ordered by its \
                     text, not as PostgreSQL orders it",
                    key.column
                );
                self.error(&order_path, &item_path, message);
            }
        }
        self.fields(
            &relation.fields,
            &relation.table,
            &child_path(path, "fields"),
        );
        if let Some(measure) = &relation.measure {
            // Over the joined rows' own columns, as an aggregate view's
            // measure is over its root's.
            let rows = JoinedTables {
                root: &relation.table,
                joins: &[],
            };
            self.measure(rows, measure, &child_path(path, "measure"));
        }
        if let Some(filter) = &relation.filter {
            let level = Level {
                fields: &relation.fields,
                table: joined,
                table_name: &relation.table,
            };
            let where_path = child_path(path, "where");
            if let Some(inferred) =
                self.level_expression(level, filter, &where_path, PathUse::Filter)
            {
                self.condition_result(filter, inferred, &where_path);
            }
        }
    }

    fn filter(&mut self, cache: &CacheView, root: &'a TableInfo) {
        let Some(filter) = &cache.filter else {
            return;
        };
        let level = Level {
            fields: &cache.fields,
            table: root,
            table_name: &cache.root,
        };
        if let Some(inferred) = self.level_expression(level, filter, WHERE_PATH, PathUse::Filter) {
            self.filter_result(filter, inferred);
        }
    }

    /// A computed field: its columns exist and its operands fit together.
    fn computed_field(&mut self, level: Level<'_, 'a>, expr: &Expr, path: &str) {
        if let Some(Err(errors)) = self.level_expression(level, expr, path, PathUse::Compute) {
            for error in errors {
                self.error(path, path, error.to_string());
            }
        }
    }

    /// Checks an expression over one level of a cache view (the root's
    /// `where`, or a computed field of any level), written at `path`: its
    /// columns exist, no column is compared or ordered where SQL would
    /// not, a text compared with an enum is one of its labels. Then its
    /// type is inferred, a missing column fitting any type, so that a
    /// mistake beside it is said too; `None` when a column is missing.
    fn level_expression(
        &mut self,
        level: Level<'_, 'a>,
        expr: &Expr,
        path: &str,
        used: PathUse,
    ) -> Option<Result<ValueType, Vec<ExprError>>> {
        let mut columns_exist = true;
        let mut compared_by_text = false;
        for column_path in expr.columns() {
            // Paths that do not resolve were reported when the file was read.
            let (Ok(relation), Some(column)) = (
                relation_on_path(level.fields, &column_path, used),
                column_path.last(),
            ) else {
                continue;
            };
            let (table, table_name) = match relation {
                None => (Some(level.table), level.table_name),
                Some(relation) => (
                    self.catalog.tables.get(&relation.table),
                    relation.table.as_str(),
                ),
            };
            columns_exist &= table.is_some_and(|table| table.has_column(column));
            if let Some(table) = table
                && relation.is_none()
                && !table.has_column(column)
                && let Some(measure) = measure_field(level.fields, column)
            {
                // Not "no such column" (trial 28): the name is a field.
                let message = format!(
                    "`{measure}` is a measure field of this level, which `where` and computed \
                     fields cannot read: they read the rows' columns, and a measure is a value \
                     of the document only"
                );
                self.error(path, path, message);
                continue;
            }
            if let Some(table) = table {
                self.column(table, table_name, column, path, path);
                if let Some(type_name) = unequal_type(table, column)
                    && expr.compared_columns().contains(&column_path)
                {
                    let message = unequal_comparison(&column_path.join("."), &type_name);
                    self.error(path, path, message);
                    compared_by_text = true;
                }
            }
        }
        let table_of = |column_path: &[String]| self.level_table(level, column_path, used);
        if let Some(message) = ordering_problem(expr, &table_of).filter(|_| !compared_by_text) {
            self.error(path, path, message);
        }
        for (column_path, text) in expr.columns_compared_with_texts() {
            if let Some(table) = self.level_table(level, &column_path, used) {
                self.enum_label(table, &column_path, &text, path);
            }
        }
        let column_type = |column_path: &[String]| {
            let known = self
                .level_table(level, column_path, used)
                .zip(column_path.last())
                .and_then(|(table, column)| column_value_type(table, column));
            Some(known.unwrap_or(ValueType::Null))
        };
        let inferred = expr.infer_type_reporting_all(&column_type);
        match inferred {
            Err(errors) => {
                let table_at = |path: &[String]| self.level_table(level, path, used);
                Some(Err(name_columns_read_as_text(errors, expr, table_at)))
            }
            Ok(_) if !columns_exist => None,
            Ok(value_type) => Some(Ok(value_type)),
        }
    }

    /// The table of a path of an expression over `level`: the level's own,
    /// or a `one` relation's; `None` for a path that does not resolve
    /// (reported when the file was read) or a table that does not exist.
    fn level_table(
        &self,
        level: Level<'_, 'a>,
        path: &[String],
        used: PathUse,
    ) -> Option<&'a TableInfo> {
        match relation_on_path(level.fields, path, used).ok()? {
            None => Some(level.table),
            Some(relation) => self.catalog.tables.get(&relation.table),
        }
    }

    /// A text compared with an enum column must be one of the enum's
    /// labels: SQL refuses any other ("invalid input value for enum"),
    /// where viewkeeper would compare the texts and match nothing (or,
    /// with `<>`, everything: a label renamed under the view did so).
    fn enum_label(&mut self, table: &TableInfo, path: &[String], text: &str, field: &str) {
        let Some(info) = path
            .last()
            .and_then(|column| table.columns.iter().find(|info| &info.name == column))
        else {
            return;
        };
        let Some(labels) = self.catalog.enum_labels.get(&info.type_oid) else {
            return;
        };
        if labels.iter().any(|label| label == text) {
            return;
        }
        const LISTED: usize = 20;
        let mut listed: Vec<String> = labels
            .iter()
            .take(LISTED)
            .map(|label| format!("'{label}'"))
            .collect();
        if labels.len() > LISTED {
            listed.push(format!("and {} more", labels.len() - LISTED));
        }
        let message = format!(
            "'{text}' is not a label of {}, the enum of column {}: PostgreSQL refuses it \
             (invalid input value for enum); its labels are {}",
            info.type_name,
            path.join("."),
            listed.join(", ")
        );
        self.error(field, field, message);
    }

    /// Reports a `where` whose type could not be inferred, or is not boolean.
    fn filter_result(&mut self, filter: &Expr, inferred: Result<ValueType, Vec<ExprError>>) {
        self.condition_result(filter, inferred, WHERE_PATH);
    }

    /// Reports a condition at `path` whose type could not be inferred, or
    /// is not boolean.
    fn condition_result(
        &mut self,
        condition: &Expr,
        inferred: Result<ValueType, Vec<ExprError>>,
        path: &str,
    ) {
        match inferred {
            Ok(ValueType::Bool | ValueType::Null) => {}
            Ok(other) => self.error(
                path,
                path,
                format!(
                    "must be a boolean condition, but `{}` is {}",
                    condition.source(),
                    other.name()
                ),
            ),
            Err(errors) => {
                for error in errors {
                    self.error(path, path, error.to_string());
                }
            }
        }
    }

    /// Reports `column` missing from `table` at field `path`, on the line of
    /// `line_path` (a more precise node, such as one join pair).
    fn column(
        &mut self,
        table: &TableInfo,
        table_name: &str,
        column: &str,
        path: &str,
        line_path: &str,
    ) {
        if !table.has_column(column) {
            let hint = name_hint(column, table.columns.iter().map(|c| c.name.as_str()));
            let message = format!(
                "column \"{column}\" does not exist in table {}{hint}",
                display_table(table_name)
            );
            self.error(path, line_path, message);
        } else if self.is_generated(table_name, column) {
            self.generated_column(table_name, column, path, line_path);
        }
    }

    fn is_generated(&self, table_name: &str, column: &str) -> bool {
        self.catalog
            .generated_columns
            .get(table_name)
            .is_some_and(|generated| generated.contains(column))
    }

    pub(super) fn generated_column(
        &mut self,
        table_name: &str,
        column: &str,
        path: &str,
        line_path: &str,
    ) {
        let message = format!(
            "column \"{column}\" of table {} is a generated column, which PostgreSQL 15 \
             does not send in its change log: the view would keep its first value for good; \
             compute it in the view from the columns it is generated from",
            display_table(table_name)
        );
        self.error(path, line_path, message);
    }

    /// The two columns of one `on` pair (each as its table, the table's name
    /// and the column) have types whose values viewkeeper can match: one
    /// type, or integers with numerics. PostgreSQL refuses most other pairs
    /// (`text = bigint`); the rest (a float with an integer, a date with a
    /// timestamp) it compares after a cast, which viewkeeper's join keys do
    /// not make, so they would match nothing. A column that does not exist
    /// was reported already.
    pub(super) fn join_types(
        &mut self,
        parent: (&TableInfo, &str, &str),
        joined: (&TableInfo, &str, &str),
        path: &str,
        line_path: &str,
    ) {
        for (table, name, column) in [parent, joined] {
            if let Some(type_name) = unequal_type(table, column) {
                let message = format!(
                    "cannot join on {}.{column}: its type {type_name} would be matched by its \
                     text, and PostgreSQL finds values of other texts equal ('1 day' and '24 \
                     hours' in interval, 'A' and 'a' in citext)",
                    display_table(name)
                );
                self.error(path, line_path, message);
                return;
            }
        }
        let (Some(parent_type), Some(joined_type)) = (
            column_value_type(parent.0, parent.2),
            column_value_type(joined.0, joined.2),
        ) else {
            return;
        };
        if let Some(message) = padded_join(parent, joined) {
            self.error(path, line_path, message);
            return;
        }
        let integers = |t: ValueType| matches!(t, ValueType::Int | ValueType::Numeric);
        let same_text_type = parent_type != ValueType::Text
            || texts_compared(
                column_oid(parent.0, parent.2),
                column_oid(joined.0, joined.2),
            );
        if (parent_type == joined_type && same_text_type)
            || (integers(parent_type) && integers(joined_type))
        {
            return;
        }
        let message = format!(
            "cannot join {}.{} ({}) to {}.{} ({}): viewkeeper joins columns of one type, or \
             integer columns with numeric ones",
            display_table(parent.1),
            parent.2,
            column_type_name(parent.0, parent.2, parent_type),
            display_table(joined.1),
            joined.2,
            column_type_name(joined.0, joined.2, joined_type),
        );
        self.error(path, line_path, message);
    }

    fn error(&mut self, path: &str, line_path: &str, message: String) {
        self.errors.push(ViewError {
            file: self.view.file.clone(),
            line: self.view.locations.line(line_path),
            field: path.to_owned(),
            message,
        });
    }
}

/// `cache`'s key template with each placeholder as its column's type;
/// `None` when its root or a column is not in `catalog` (reported apart).
fn key_tokens<'c>(catalog: &Catalog, cache: &'c CacheView) -> Option<Vec<KeyToken<'c>>> {
    let root = catalog.tables.get(&cache.root)?;
    cache
        .key
        .parts
        .iter()
        .map(|part| match part {
            KeyPart::Literal(text) => Some(KeyToken::Literal(text)),
            KeyPart::Column(name) => root
                .columns
                .iter()
                .find(|column| &column.name == name)
                .map(|column| KeyToken::Value(column.type_oid)),
        })
        .collect()
}

/// `column`'s SQL type name (`uuid`, `int4`), or else as PostgreSQL writes
/// it (an enum's `shop.mood`), or else its expression type.
fn column_type_name(table: &TableInfo, column: &str, value_type: ValueType) -> String {
    match crate::source::pg_text::type_name(column_oid(table, column)) {
        "other" => table
            .columns
            .iter()
            .find(|info| info.name == column && !info.type_name.is_empty())
            .map_or_else(|| value_type.to_string(), |info| info.type_name.clone()),
        name => name.to_owned(),
    }
}

/// The expression type of `column`'s PostgreSQL type, if the column exists.
/// Why `where` may not compare `column` (of type `type_name`) for order.
pub(super) fn unsortable_comparison(column: &str, type_name: &str) -> String {
    format!(
        "cannot compare column {column} with <, >, <=, >= or BETWEEN: its type {type_name} \
         would be compared by its text, not as PostgreSQL compares it; compare it for \
         equality only"
    )
}

/// Why `expr` may not compare a column for order, if it may not (`table_of`
/// gives the table of a column path): a type PostgreSQL orders otherwise
/// than by its text (`interval`, `citext`); an enum where its labels'
/// order cannot apply (`greatest`, `least`, `op ANY (array)`); or an enum
/// compared with another enum, or with a value that is neither one of its
/// labels nor of its type, for which PostgreSQL has no operator.
pub(super) fn ordering_problem<'t>(
    expr: &Expr,
    table_of: &dyn Fn(&[String]) -> Option<&'t TableInfo>,
) -> Option<String> {
    let column_type = |path: &[String], check: fn(&TableInfo, &str) -> Option<String>| {
        check(table_of(path)?, path.last()?)
    };
    for path in expr.ordered_columns() {
        if let Some(type_name) = column_type(&path, unsortable_type_but_enum) {
            return Some(unsortable_comparison(&path.join("."), &type_name));
        }
    }
    for path in expr.unplaced_ordered_columns() {
        if let Some(type_name) = column_type(&path, enum_type) {
            return Some(format!(
                "cannot order column {} in greatest, least or op ANY (array): its type \
                 {type_name}, an enum, would be ordered by its text, not by its labels' order; \
                 compare it with <, >, <=, >= or BETWEEN, which order an enum by its labels",
                path.join(".")
            ));
        }
    }
    for operands in expr.placed_orderings() {
        // By OID: a domain over an enum is that enum here, as in PostgreSQL.
        let enums_of = |columns: &[ColumnPath]| -> Vec<(String, String, u32)> {
            columns
                .iter()
                .filter_map(|path| {
                    let info = table_of(path)?.column(path.last()?)?;
                    info.is_enum
                        .then(|| (path.join("."), info.type_name.clone(), info.type_oid))
                })
                .collect()
        };
        let enums: Vec<(String, String, u32)> = operands
            .iter()
            .flat_map(|(columns, _)| enums_of(columns))
            .collect();
        let Some((column, type_name, oid)) = enums.first() else {
            continue;
        };
        if let Some((other, other_type, _)) = enums.iter().find(|(_, _, o)| o != oid) {
            return Some(format!(
                "cannot compare column {column} (of type {type_name}) with column {other} (of \
                 type {other_type}) for order: PostgreSQL orders two enums of one type only"
            ));
        }
        if operands
            .iter()
            .any(|(columns, literal)| !literal && enums_of(columns).is_empty())
        {
            return Some(format!(
                "cannot compare column {column} of type {type_name} for order with a value \
                 that is neither one of its labels (a text literal) nor of its type: \
                 PostgreSQL has no such operator; compare it with a label, or cast both to \
                 text to compare their texts"
            ));
        }
    }
    None
}

/// [`unsortable_type`] of a column that is not an enum's: an enum compared
/// for order, or in `min` and `max`, orders by its labels' places.
pub(super) fn unsortable_type_but_enum(table: &TableInfo, column: &str) -> Option<String> {
    match table.column(column)?.is_enum {
        true => None,
        false => unsortable_type(table, column),
    }
}

/// The type of a column that is an enum's, as PostgreSQL names it.
fn enum_type(table: &TableInfo, column: &str) -> Option<String> {
    let info = table.column(column)?;
    info.is_enum.then(|| info.type_name.clone())
}

/// Whether a join pair names a column missing from its side, where the
/// pair the other way round names two that exist: written `{ enclosing:
/// joined }`.
pub(super) fn reversed_pair(parent: (&TableInfo, &str), joined: (&TableInfo, &str)) -> bool {
    let ((parent, parent_column), (joined, joined_column)) = (parent, joined);
    !(parent.has_column(parent_column) && joined.has_column(joined_column))
        && parent.has_column(joined_column)
        && joined.has_column(parent_column)
}

/// What to say of a pair [`reversed_pair`] found: what `on` maps, and the
/// pair to write (`{ joined_column: parent_column }`).
pub(super) fn reversed_pair_message(
    joined_table: &str,
    enclosing: &str,
    joined_column: &str,
    parent_column: &str,
) -> String {
    format!(
        "the pair is the wrong way round: `on` maps a column of the joined table {} to a \
         column of {enclosing}, so write {{ {joined_column}: {parent_column} }}",
        display_table(joined_table)
    )
}

/// How a column stands where its type is kept ([`crate::expr::Expr::value_columns`]).
pub(super) const AS_IT_STANDS: &str = "as it stands (or through coalesce, nullif or CASE, \
     which keep its type)";

/// Why `column` (of type `type_name`) may not be compared as it stands.
pub(super) fn unequal_comparison(column: &str, type_name: &str) -> String {
    format!(
        "cannot compare column {column} {AS_IT_STANDS}: its type {type_name} would be compared \
         by its text, and PostgreSQL finds values of other texts equal ('1 day' and '24 \
         hours' in interval, 'A' and 'a' in citext); compare a cast or function of it \
         ({})",
        text_of(column, type_name)
    )
}

/// What to write instead of a column whose values may be equal with other
/// texts: its text, and for `citext` its lower case (`lower` takes text,
/// not an `interval`, say: trial 39).
pub(super) fn text_of(column: &str, type_name: &str) -> String {
    if type_name == "citext" || type_name.ends_with(".citext") {
        format!("{column}::text, lower({column})")
    } else {
        format!("{column}::text")
    }
}

/// The type of `column` of `table` when two of its values may be equal with
/// other texts ([`equal_as_its_text`]), as PostgreSQL names it.
pub(super) fn unequal_type(table: &TableInfo, column: &str) -> Option<String> {
    let info = table.column(column)?;
    let name = match info.type_oid {
        oid if equal_as_its_text(oid, info.is_enum) => return None,
        // Refused by type: json has no equality.
        oid if value_type(oid) == ValueType::Json => return None,
        _ => info.type_name.clone(),
    };
    Some(name)
}

/// The type of `column` of `table` when it does not sort as its value
/// ([`sorts_as_its_value`]), as PostgreSQL names it.
pub(super) fn unsortable_type(table: &TableInfo, column: &str) -> Option<String> {
    let info = table.column(column)?;
    let name = match info.type_oid {
        oid if sorts_as_its_value(oid) => return None,
        // PostgreSQL orders an enum by its labels' order, not their text.
        _ if info.is_enum => format!(
            "{}, an enum (PostgreSQL orders it by its labels' order)",
            info.type_name
        ),
        _ => info.type_name.clone(),
    };
    Some(name)
}

fn column_oid(table: &TableInfo, column: &str) -> u32 {
    table
        .columns
        .iter()
        .find(|info| info.name == column)
        .map_or(0, |info| info.type_oid)
}

/// Whether PostgreSQL compares values of two types viewkeeper holds as
/// text: the string types with each other, any other (`uuid`, an enum,
/// `inet`) only with itself. `uuid = text` is an error in SQL, which
/// viewkeeper's join on the texts would have answered.
/// Why a join of two `char` columns cannot be matched, if it cannot.
/// PostgreSQL compares `char` values without their padding, while a join
/// key holds the padded value: two columns of one length pad alike (`'AB'`
/// is `'AB   '` on both sides of a `char(5)` join), but `char(5)` and
/// `char(8)`, or a `bpchar` of no length (unpadded, yet `'AB '` equals
/// `'AB'`), would match nothing where SQL matches.
fn padded_join(
    parent: (&TableInfo, &str, &str),
    joined: (&TableInfo, &str, &str),
) -> Option<String> {
    const BPCHAR: u32 = 1042;
    let (parent_info, joined_info) = (parent.0.column(parent.2)?, joined.0.column(joined.2)?);
    if parent_info.type_oid != BPCHAR || joined_info.type_oid != BPCHAR {
        return None;
    }
    if parent_info.type_modifier == joined_info.type_modifier && parent_info.type_modifier >= 0 {
        return None;
    }
    Some(format!(
        "cannot join {}.{} ({}) to {}.{} ({}): PostgreSQL compares char values without their \
         padding, and viewkeeper matches them padded, which works for two columns of one \
         length only; give both the same length (`ALTER TABLE … ALTER COLUMN … TYPE \
         char(n)`), or make them text",
        display_table(parent.1),
        parent.2,
        parent_info.type_name,
        display_table(joined.1),
        joined.2,
        joined_info.type_name,
    ))
}

fn texts_compared(a: u32, b: u32) -> bool {
    const STRINGS: [u32; 3] = [
        25,   /* text */
        1043, /* varchar */
        19,   /* name */
    ];
    a == b || (STRINGS.contains(&a) && STRINGS.contains(&b))
}

fn column_value_type(table: &TableInfo, column: &str) -> Option<ValueType> {
    let info = table.column(column)?;
    Some(value_type(info.type_oid))
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key that named the joined table: `one` or `many`.
/// The field named `name` among `fields`, if it is a relation's measure.
fn measure_field<'f>(fields: &'f [Field], name: &str) -> Option<&'f str> {
    fields.iter().find_map(|field| match &field.source {
        FieldSource::Relation(relation) if field.name == name && relation.measure.is_some() => {
            Some(field.name.as_str())
        }
        _ => None,
    })
}

/// `errors` with the columns read as text that each type error's fragment
/// reads named: expressions read an enum as its label's text, and an array
/// of another element type than theirs (`numeric[]`) as the array's text,
/// so "cannot compare text with int" over an enum, or "cardinality expects
/// an array, found (text)" over a `numeric[]`, left its reader looking for
/// a text.
pub(super) fn name_columns_read_as_text<'t>(
    errors: Vec<ExprError>,
    expr: &Expr,
    table_at: impl Fn(&[String]) -> Option<&'t TableInfo>,
) -> Vec<ExprError> {
    let read_as_text: Vec<(String, String)> = expr
        .columns()
        .into_iter()
        .filter_map(|path| {
            let column = table_at(&path)?.column(path.last()?)?;
            let name = path.join(".");
            let why = if column.is_enum {
                format!(
                    "`{name}` is the enum {}: compare it with one of its labels, in quotes",
                    column.type_name
                )
            } else if column.array_element.is_some()
                && value_type(column.type_oid) == ValueType::Text
            {
                format!(
                    "`{name}` is {}, which expressions read as its text: only arrays of \
                     booleans, integers, text, uuids and dates are arrays to them",
                    column.type_name
                )
            } else {
                return None;
            };
            Some((name, why))
        })
        .collect();
    errors
        .into_iter()
        .map(|error| match error {
            ExprError::Type {
                fragment,
                mut message,
            } => {
                let read: Vec<&str> = read_as_text
                    .iter()
                    .filter(|(path, _)| fragment.contains(path.as_str()))
                    .map(|(_, why)| why.as_str())
                    .collect();
                if !read.is_empty() {
                    message.push_str(&format!(" ({})", read.join("; ")));
                }
                ExprError::Type { fragment, message }
            }
            other => other,
        })
        .collect()
}

#[path = "catalog_joins.rs"]
mod joined;

#[path = "catalog_search.rs"]
mod search;

#[path = "catalog_aggregate.rs"]
mod aggregate;

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
