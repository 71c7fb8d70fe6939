//! View-file expressions: filters (`where: "status <> 'draft'"`), group keys
//! (`date(orders.created_at)`) and the inner expressions of measures
//! (`quantity * unit_price_cents`), in a small SQL subset that evaluates
//! exactly as PostgreSQL would over one row. The language is documented in
//! `docs/expressions.md`.
//!
//! Pipeline: [`Expr::parse`] runs sqlparser (PostgreSQL dialect) and converts
//! its AST into our own tree, refusing anything outside the subset;
//! [`Expr::infer_type`] checks types against the columns' types before any
//! row is seen; [`Expr::eval`] evaluates over a row. Nothing here panics on
//! any input or any row value: every failure is an [`ExprError`] or an
//! [`EvalError`].
//!
//! Map of the module:
//! - `parse`, `parse_call`: source text → `node::Node`
//! - `check`: static types; `types`: [`ValueType`] and its rules
//! - `eval`: the walk over a row, with three-valued logic
//! - `arith`, `numeric`: Int / exact Numeric / Float arithmetic
//! - `compare`: the order of values ([`compare_values`])
//! - `cast`, `functions`, `like`, `temporal`, `date_parts`: the rest
//! - `arrays`: `= ANY (a)`, `@>`/`<@`/`&&` over arrays, `cardinality`
//! - `case_mapping`: `lower`/`upper` as the source database maps case
//! - `time_zone`: the zone a `timestamptz` is computed in, the database's
//! - `enum_order`: enums compared for order by their labels' order
//! - `render`: nodes back to SQL, for error messages
//! - `sort_key`: byte keys in value order, for aggregates' min/max/distinct

mod arith;
mod arrays;
mod case_mapping;
mod cast;
mod check;
mod common_type;
mod compare;
mod date_parts;
mod enum_order;
mod error;
mod eval;
mod functions;
mod json_field;
mod json_ops;
mod like;
mod node;
mod numeric;
mod parse;
mod parse_call;
mod render;
mod sort_key;
mod temporal;
mod time_zone;
mod types;

use std::fmt;
use std::sync::Arc;

use crate::change::Value;

pub use arrays::ArrayElement;
pub(crate) use arrays::parse_array_delimited;
pub use case_mapping::CaseMapping;
pub use compare::compare_values;
pub use enum_order::EnumOrder;
pub use error::{EvalError, ExprError};
pub use sort_key::sort_key;
pub use time_zone::TimeZone;
#[cfg(test)]
pub(crate) use time_zone::tests::in_zone;
pub use types::ValueType;

/// Exact sums and averages of aggregate measures use PostgreSQL's numeric rules.
pub(crate) use numeric::Decimal;

/// A timestamp (`with_zone`: a timestamptz) as PostgreSQL writes one that
/// the source's fast path leaves (a BC value, `0044-03-15 12:00:00+00 BC`),
/// in viewkeeper's form (`0044-03-15T12:00:00.000000Z BC`); `None` when it
/// does not read as one.
pub(crate) fn canonical_timestamp(text: &str, with_zone: bool) -> Option<String> {
    let kind = if with_zone {
        temporal::TemporalKind::TimestampTz
    } else {
        temporal::TemporalKind::Timestamp
    };
    temporal::parse(text, kind).map(|instant| instant.format(kind))
}

/// Whether `text` reads as a date or timestamp PostgreSQL holds: BC values,
/// years past 9999 and `±infinity` included.
pub(crate) fn reads_as_instant(text: &str) -> bool {
    temporal::order_key(text, temporal::TemporalKind::TimestampTz).is_some()
}

/// Whether `text` (a date or timestamp as PostgreSQL writes it, `infinity`
/// and BC years too) falls before or after 1970-01-01; `None` if it is no
/// date or timestamp.
pub(crate) fn instant_beside_epoch(text: &str) -> Option<std::cmp::Ordering> {
    let key = |text| temporal::order_key(text, temporal::TemporalKind::TimestampTz);
    Some(key(text)?.cmp(&key("1970-01-01")?))
}

/// A column reference: `["status"]`, `["orders", "status"]`. Unquoted
/// names are lower-cased, quoted ones (`"Status"`) kept as written.
pub type ColumnPath = Vec<String>;

/// A parsed expression, ready to be checked and evaluated any number of times.
#[derive(Debug, Clone)]
pub struct Expr {
    /// The text as the view file wrote it, for messages and definition hashes.
    source: String,
    root: node::Node,
}

impl Expr {
    /// Parses one expression of the subset. The error names what is wrong
    /// and the fragment it is in (`unsupported construct: subquery in ...`).
    pub fn parse(source: &str) -> Result<Expr, ExprError> {
        Ok(Expr {
            source: source.to_owned(),
            root: parse::parse_source(source)?,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every column referenced, deduplicated, in order of first appearance:
    /// what the state store must keep for this expression.
    pub fn columns(&self) -> Vec<ColumnPath> {
        self.root.columns()
    }

    /// The columns whose values it reads, not only whether they are NULL
    /// ([`node::Node::columns_beyond_nullness`]).
    pub fn columns_beyond_nullness(&self) -> Vec<ColumnPath> {
        self.root.columns_beyond_nullness()
    }

    /// The columns compared for order as they stand ([`node::Node::ordered_columns`]).
    pub fn ordered_columns(&self) -> Vec<ColumnPath> {
        self.root.ordered_columns()
    }

    /// The columns compared for order where an enum's could not compare
    /// by its labels' places ([`node::Node::unplaced_ordered_columns`]).
    pub fn unplaced_ordered_columns(&self) -> Vec<ColumnPath> {
        self.root.unplaced_ordered_columns()
    }

    /// Each comparison for order where enums compare by their labels'
    /// places, its operands' columns and whether each is a literal
    /// ([`node::Node::placed_orderings`]).
    pub fn placed_orderings(&self) -> Vec<Vec<(Vec<ColumnPath>, bool)>> {
        self.root.placed_orderings()
    }

    /// The columns compared with another value as they stand
    /// ([`node::Node::compared_columns`]).
    pub fn compared_columns(&self) -> Vec<ColumnPath> {
        self.root.compared_columns()
    }

    /// Each column compared with a text literal, and the literal
    /// ([`node::Node::columns_compared_with_texts`]).
    pub fn columns_compared_with_texts(&self) -> Vec<(ColumnPath, String)> {
        self.root.columns_compared_with_texts()
    }

    /// Whether a `timestamptz` is made in it from something else
    /// ([`node::Node::makes_timestamptz`]).
    pub fn makes_timestamptz(&self) -> bool {
        self.root.makes_timestamptz()
    }

    /// Whether the expression is one column and nothing else.
    pub fn is_column(&self) -> bool {
        matches!(self.root, node::Node::Column(_))
    }

    /// The columns whose value, of their own type, this expression's value
    /// may be ([`node::Node::value_columns`]): a bare column, or one through
    /// `coalesce`, `nullif` or `CASE`.
    pub fn value_columns(&self) -> Vec<ColumnPath> {
        self.root.value_columns().into_iter().cloned().collect()
    }

    /// The expression as rows are evaluated with it, given the columns'
    /// types and the bytes of the integer ones (`smallint` 2, `integer` 4,
    /// `bigint` 8): the values of its `CASE`s, `coalesce`s, `greatest`s and
    /// `least`s converted to the type of the whole, and its `smallint` and
    /// `integer` arithmetic refused past their range, as PostgreSQL
    /// computes them ([`common_type`]).
    pub fn with_sql_types(
        &self,
        column_type: &dyn Fn(&[String]) -> Option<ValueType>,
        integer_bytes: &dyn Fn(&[String]) -> Option<u8>,
    ) -> Expr {
        let width = |path: &[String]| integer_bytes(path).map(cast::IntWidth::of_bytes);
        let mut root = self.root.clone();
        common_type::rewrite(&mut root, column_type, &width);
        Expr {
            source: self.source.clone(),
            root,
        }
    }

    /// The expression with each comparison for order of an enum comparing
    /// the labels' places in the enum's order ([`enum_order`]), given each
    /// enum column's order.
    pub fn with_enum_orders(&self, enums: &dyn Fn(&[String]) -> Option<Arc<EnumOrder>>) -> Expr {
        let mut root = self.root.clone();
        enum_order::rewrite(&mut root, enums);
        Expr {
            source: self.source.clone(),
            root,
        }
    }

    /// The enum orders it compares by ([`Expr::with_enum_orders`]).
    pub fn enum_orders(&self) -> Vec<Arc<EnumOrder>> {
        let mut found = Vec::new();
        enum_order::orders(&self.root, &mut found);
        found
    }

    /// Whether PostgreSQL computes this integer expression narrower than
    /// `bigint` (in a `smallint` or an `integer`), given the bytes of the
    /// integer columns as for [`Expr::with_sql_types`]: its `sum` is then a
    /// `bigint`, where a `bigint`'s is a `numeric`.
    pub fn is_narrow_integer(&self, integer_bytes: &dyn Fn(&[String]) -> Option<u8>) -> bool {
        let width = |path: &[String]| integer_bytes(path).map(cast::IntWidth::of_bytes);
        common_type::int_width(&self.root, &width) < cast::IntWidth::Big
    }

    /// Whether the two are the same tree, as parsed or rewritten.
    pub fn same_tree(&self, other: &Expr) -> bool {
        self.root == other.root
    }

    /// The value over one row. `row` returns a column's value, or `None` if
    /// the row has no such column ([`EvalError::UnknownColumn`]).
    pub fn eval(&self, row: &dyn Fn(&[String]) -> Option<Value>) -> Result<Value, EvalError> {
        eval::evaluate(&self.root, row)
    }

    /// WHERE semantics: the row qualifies only if the value is TRUE (not
    /// FALSE, not NULL). A non-boolean value is an error.
    pub fn is_satisfied(
        &self,
        row: &dyn Fn(&[String]) -> Option<Value>,
    ) -> Result<bool, EvalError> {
        self.truth(&self.eval(row)?)
    }

    /// WHERE semantics of a value this expression evaluated to.
    pub fn truth(&self, value: &Value) -> Result<bool, EvalError> {
        Ok(eval::truth(&self.root, value)? == Some(true))
    }

    /// [`Expr::infer_type`], or the type errors of each operand of its
    /// `AND`s and `OR`s, each checked alone: a `where` with two mistakes
    /// says both at once (the second showed only once the first was fixed).
    pub fn infer_type_reporting_all(
        &self,
        column_type: &dyn Fn(&[String]) -> Option<ValueType>,
    ) -> Result<ValueType, Vec<ExprError>> {
        let first = match self.infer_type(column_type) {
            Ok(value_type) => return Ok(value_type),
            Err(first) => first,
        };
        let errors: Vec<ExprError> = self
            .root
            .logical_operands()
            .into_iter()
            .filter_map(|operand| check::infer(operand, column_type).err())
            .collect();
        // None in the operands: the error is in how they are joined.
        Err(if errors.is_empty() {
            vec![first]
        } else {
            errors
        })
    }

    /// The result type given the columns' types (`None` = no such column),
    /// or the first type error found. A measure's inner expression is
    /// summable when this is [`ValueType::is_numeric`].
    pub fn infer_type(
        &self,
        column_type: &dyn Fn(&[String]) -> Option<ValueType>,
    ) -> Result<ValueType, ExprError> {
        check::infer(&self.root, column_type)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
