//! What the plan adds to a checked expression once the columns' types are
//! known, so that each row computes as PostgreSQL would:
//!
//! - The values of `CASE`, `coalesce`, `greatest` and `least` are converted
//!   to the type PostgreSQL gives the whole: `coalesce(rate, 0)` over a
//!   numeric `rate` is the numeric `0` where `rate` is NULL, so `1 +
//!   coalesce(rate, 0) / 100` divides as numerics do
//!   (`1.00000000000000000000`), not as integers.
//! - Integer arithmetic over `smallint` and `integer` operands is refused
//!   past their range, as PostgreSQL computes it in their width (`i + 1`
//!   of an `integer` 2147483647 is "integer out of range", not 2147483648).
//!
//! Both rewrite the tree once, before any row is evaluated.

use super::cast::{CastTarget, IntWidth};
use super::check::{ColumnTypes, infer};
use super::functions::Function;
use super::node::Node;
use super::types::ValueType;
use crate::change::Value;

/// The width of each integer column (`None`: not an integer column).
pub(crate) type ColumnWidths<'a> = &'a dyn Fn(&[String]) -> Option<IntWidth>;

/// Both rewrites of the module, children first.
pub(crate) fn rewrite(node: &mut Node, columns: ColumnTypes, widths: ColumnWidths) {
    for child in node.children_mut() {
        rewrite(child, columns, widths);
    }
    convert_branches(node, columns);
    check_int_range(node, columns, widths);
}

/// Wraps integer arithmetic (and a negation) whose operands are all
/// narrower than `bigint` in a check of their width's range.
fn check_int_range(node: &mut Node, columns: ColumnTypes, widths: ColumnWidths) {
    let computed = matches!(
        node,
        Node::Arithmetic { .. } | Node::Sign { negative: true, .. }
    );
    if !computed || infer(node, columns) != Ok(ValueType::Int) {
        return;
    }
    let width = int_width(node, widths);
    if width < IntWidth::Big {
        let operand = Box::new(std::mem::replace(node, Node::Literal(Value::Null)));
        *node = Node::IntRange { operand, width };
    }
}

/// The width PostgreSQL computes an integer node in: a column's own, an
/// `integer` for a literal that fits one, the widest of an operation's
/// operands. `bigint` where it is not known (a function's result), so
/// that no narrower check is made there.
pub(crate) fn int_width(node: &Node, widths: ColumnWidths) -> IntWidth {
    let widest = |nodes: &mut dyn Iterator<Item = &Node>| {
        nodes
            .map(|node| int_width(node, widths))
            .max()
            .unwrap_or(IntWidth::Big)
    };
    match node {
        Node::Column(path) => widths(path).unwrap_or(IntWidth::Big),
        Node::Literal(Value::Int(value)) if i32::try_from(*value).is_ok() => IntWidth::Regular,
        Node::Sign { operand, .. } => int_width(operand, widths),
        Node::Arithmetic { left, right, .. } => widest(&mut [&**left, &**right].into_iter()),
        Node::Cast {
            target: CastTarget::Integer(width),
            ..
        }
        | Node::IntRange { width, .. } => *width,
        Node::Call {
            function: Function::Coalesce | Function::Greatest | Function::Least | Function::Abs,
            args,
        } => widest(&mut args.iter()),
        Node::Call {
            function: Function::Nullif,
            args,
        } => widest(&mut args.iter().take(1)),
        Node::Case {
            branches,
            otherwise,
            ..
        } => widest(
            &mut branches
                .iter()
                .map(|branch| &branch.then)
                .chain(otherwise.as_deref()),
        ),
        _ => IntWidth::Big,
    }
}

/// Casts the value branches of a `CASE`, `coalesce`, `greatest` or
/// `least` whose type is a narrower number than the whole's (an `int` in
/// a `numeric` or `float` whole, a `numeric` in a `float` one). A node
/// that does not check is left as it is: planning refuses it anyway.
fn convert_branches(node: &mut Node, columns: ColumnTypes) {
    if value_branches(node).is_empty() {
        return;
    }
    let Ok(whole) = infer(node, columns) else {
        return;
    };
    let target = match whole {
        ValueType::Numeric => CastTarget::Numeric(None),
        ValueType::Float => CastTarget::Float,
        _ => return,
    };
    for branch in value_branches(node) {
        let narrower = match infer(branch, columns) {
            Ok(ValueType::Int) => true,
            Ok(ValueType::Numeric) => whole == ValueType::Float,
            _ => false,
        };
        if narrower {
            let operand = Box::new(std::mem::replace(branch, Node::Literal(Value::Null)));
            *branch = Node::Cast { operand, target };
        }
    }
}

/// The sub-expressions whose value may be the node's own.
fn value_branches(node: &mut Node) -> Vec<&mut Node> {
    match node {
        Node::Call {
            function: Function::Coalesce | Function::Greatest | Function::Least,
            args,
        } => args.iter_mut().collect(),
        Node::Case {
            branches,
            otherwise,
            ..
        } => branches
            .iter_mut()
            .map(|branch| &mut branch.then)
            .chain(otherwise.as_deref_mut())
            .collect(),
        _ => Vec::new(),
    }
}
