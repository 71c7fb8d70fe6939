//! The values of `CASE`, `coalesce`, `greatest` and `least` converted to
//! the type PostgreSQL gives the whole: `coalesce(rate, 0)` over a numeric
//! `rate` is the numeric `0` where `rate` is NULL, so `1 + coalesce(rate,
//! 0) / 100` divides as numerics do (`1.00000000000000000000`), not as
//! integers. The branches' types are known once the columns' are, so this
//! rewrites a checked expression, once, before any row is evaluated.

use super::cast::CastTarget;
use super::check::{ColumnTypes, infer};
use super::functions::Function;
use super::node::Node;
use super::types::ValueType;
use crate::change::Value;

/// `node` with each value branch whose type is a narrower number than the
/// whole's (an `int` in a `numeric` or `float` whole, a `numeric` in a
/// `float` one) cast to the whole's type. A node that does not check is
/// left as it is: planning refuses it anyway.
pub(crate) fn convert_branches(node: &mut Node, columns: ColumnTypes) {
    for child in node.children_mut() {
        convert_branches(child, columns);
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
