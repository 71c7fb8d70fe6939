//! Enums compared for order. PostgreSQL orders an enum's values by their
//! labels' declared order (`CREATE TYPE … AS ENUM ('new', 'paid',
//! 'shipped')`, and `ALTER TYPE … ADD VALUE … BEFORE`), not by their text,
//! while a row holds only the label. Once the plan knows which columns are
//! enums and their labels, each comparison for order of an enum (`<`, `<=`,
//! `>`, `>=`, `BETWEEN`) compares its operands' places in that order
//! instead ([`Node::EnumPlace`]); a text literal beside the enum is a label,
//! as PostgreSQL reads it.
//!
//! A label added while the service runs is not among those planned: a row
//! holding it fails to evaluate until the views are planned again with it
//! (the stream checks the labels of the enums the views order, and plans
//! the views again when they change).

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{Fault, quoted};
use super::node::{ComparisonOp, Node};
use crate::change::Value;

/// One enum type's labels, in their order.
#[derive(Debug, PartialEq, Eq)]
pub struct EnumOrder {
    /// The type's OID.
    oid: u32,
    /// The type as PostgreSQL writes it (`shop.status`), for messages.
    type_name: String,
    labels: Vec<String>,
    places: HashMap<String, i64>,
}

impl EnumOrder {
    pub fn new(oid: u32, type_name: &str, labels: Vec<String>) -> EnumOrder {
        let places = labels
            .iter()
            .enumerate()
            .map(|(place, label)| (label.clone(), place as i64))
            .collect();
        EnumOrder {
            oid,
            type_name: type_name.to_owned(),
            labels,
            places,
        }
    }

    pub fn oid(&self) -> u32 {
        self.oid
    }

    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The labels in their order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// A label's place in the order, as an integer (NULL stays NULL).
    pub(crate) fn place(&self, value: &Value) -> Result<Value, Fault> {
        match value {
            Value::Null => Ok(Value::Null),
            Value::Text(label) => match self.places.get(label) {
                Some(place) => Ok(Value::Int(*place)),
                None => Err(Fault::InvalidValue(format!(
                    "{} is not among the labels of enum {} when the views were planned \
                     (added since?): the views are planned again with it within seconds",
                    quoted(label),
                    self.type_name
                ))),
            },
            other => Err(Fault::TypeMismatch(format!(
                "an enum's label must be text, not {other:?}"
            ))),
        }
    }
}

/// The enum order of a column, if it is an enum's.
pub(crate) type ColumnEnums<'a> = &'a dyn Fn(&[String]) -> Option<Arc<EnumOrder>>;

/// Rewrites each comparison for order of an enum in `node` (children
/// first) to compare its operands' places.
pub(crate) fn rewrite(node: &mut Node, enums: ColumnEnums) {
    for child in node.children_mut() {
        rewrite(child, enums);
    }
    let operands: Vec<&mut Node> = match node {
        Node::Comparison { op, left, right }
            if !matches!(op, ComparisonOp::Equal | ComparisonOp::NotEqual) =>
        {
            vec![&mut **left, &mut **right]
        }
        Node::Between {
            operand, low, high, ..
        } => vec![&mut **operand, &mut **low, &mut **high],
        _ => return,
    };
    let Some(order) = operands.iter().find_map(|operand| enum_of(operand, enums)) else {
        return;
    };
    for operand in operands {
        let inner = Box::new(std::mem::replace(operand, Node::Literal(Value::Null)));
        *operand = Node::EnumPlace {
            operand: inner,
            order: Arc::clone(&order),
        };
    }
}

/// The enum whose values `node` may be: a column's, or one through what
/// keeps its type (`coalesce`, `nullif`, `CASE`).
fn enum_of(node: &Node, enums: ColumnEnums) -> Option<Arc<EnumOrder>> {
    node.value_columns()
        .into_iter()
        .find_map(|path| enums(path))
}

/// Every enum order `node` compares by, once each.
pub(crate) fn orders(node: &Node, found: &mut Vec<Arc<EnumOrder>>) {
    if let Node::EnumPlace { order, .. } = node
        && !found.iter().any(|known| known == order)
    {
        found.push(Arc::clone(order));
    }
    for child in node.children() {
        orders(child, found);
    }
}
