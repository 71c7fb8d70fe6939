//! Evaluation of a parsed expression over one row, with SQL's NULL
//! semantics: three-valued logic, NULL in gives NULL out, and only TRUE
//! selects a CASE branch. Value-level work is delegated (arithmetic, casts,
//! comparison, functions); this module owns the walk and the logic.
//!
//! AND, OR, CASE and COALESCE evaluate lazily from left to right, so
//! `qty <> 0 AND total / qty > 10` never divides by zero.

use crate::change::Value;

use super::arith;
use super::arrays;
use super::cast::{cast, range_checked, text_of};
use super::compare::{try_compare, values_equal};
use super::date_parts::{at_time_zone, extract_value, truncate_value};
use super::error::{EvalError, Fault};
use super::functions::Function;
use super::json_field::json_field;
use super::json_ops;
use super::like::like_matches;
use super::node::{CaseBranch, ComparisonOp, LogicalOp, Node};
use super::types::ValueType;

/// The caller's column lookup: `None` means the row has no such column.
pub(crate) type RowLookup<'a> = &'a dyn Fn(&[String]) -> Option<Value>;

pub(crate) fn evaluate(node: &Node, row: RowLookup) -> Result<Value, EvalError> {
    let eval = |child: &Node| evaluate(child, row);
    let at = |fault: Fault| fault.at(node);
    match node {
        Node::Column(path) => row(path).ok_or_else(|| EvalError::UnknownColumn {
            column: path.join("."),
        }),
        Node::Literal(value) => Ok(value.clone()),
        Node::ArrayLiteral { text, .. } => Ok(Value::Text(text.clone())),
        Node::Sign { negative, operand } => {
            arith::apply_sign(*negative, &eval(operand)?).map_err(at)
        }
        Node::Arithmetic { op, left, right } => {
            arith::apply(*op, &eval(left)?, &eval(right)?).map_err(at)
        }
        Node::Concat { left, right } => concat(&eval(left)?, &eval(right)?).map_err(at),
        Node::JsonField {
            operand,
            key,
            as_text,
        } => json_field(&eval(operand)?, &eval(key)?, *as_text).map_err(at),
        Node::JsonOp { op, left, right } => {
            json_ops::apply(*op, &eval(left)?, &eval(right)?).map_err(at)
        }
        Node::Comparison { op, left, right } => {
            compare(*op, &eval(left)?, &eval(right)?).map_err(at)
        }
        Node::Quantified {
            op,
            all,
            left,
            right,
        } => arrays::quantified(*op, *all, &eval(left)?, &eval(right)?).map_err(at),
        Node::ArraySet { op, left, right } => {
            arrays::set_op(*op, &eval(left)?, &eval(right)?).map_err(at)
        }
        Node::Logical { op, left, right } => logical(*op, left, right, row),
        Node::Not(operand) => Ok(truth_value(truth(operand, &eval(operand)?)?.map(|b| !b))),
        Node::Cast { operand, target } => cast(&eval(operand)?, *target).map_err(at),
        // The fragment is the operand's: the check is not in the source.
        Node::EnumPlace { operand, order } => order.place(&eval(operand)?).map_err(at),
        Node::IntRange { operand, width } => {
            range_checked(eval(operand)?, *width).map_err(|fault| fault.at(operand))
        }
        Node::Call { function, args } => call(node, *function, args, row),
        Node::Extract {
            field,
            operand,
            date_part,
        } => extract_value(&eval(operand)?, *field, *date_part).map_err(at),
        Node::DateTrunc {
            unit,
            operand,
            zone,
        } => truncate_value(&eval(operand)?, *unit, zone.as_deref()).map_err(at),
        Node::AtTimeZone { operand, zone } => at_time_zone(&eval(operand)?, zone).map_err(at),
        Node::IsNull { .. }
        | Node::IsBool { .. }
        | Node::IsDistinct { .. }
        | Node::InList { .. }
        | Node::Between { .. }
        | Node::Like { .. }
        | Node::Case { .. } => evaluate_predicate(node, row),
    }
}

/// The IS, IN, BETWEEN, LIKE and CASE forms.
fn evaluate_predicate(node: &Node, row: RowLookup) -> Result<Value, EvalError> {
    let eval = |child: &Node| evaluate(child, row);
    let at = |fault: Fault| fault.at(node);
    match node {
        Node::IsNull { operand, negated } => Ok(Value::Bool(eval(operand)?.is_null() != *negated)),
        Node::IsBool {
            operand,
            expected,
            negated,
        } => {
            let is_expected = truth(operand, &eval(operand)?)? == Some(*expected);
            Ok(Value::Bool(is_expected != *negated))
        }
        Node::IsDistinct {
            left,
            right,
            negated,
        } => is_distinct(&eval(left)?, &eval(right)?, *negated).map_err(at),
        Node::InList {
            operand,
            list,
            negated,
        } => in_list(node, operand, list, *negated, row),
        Node::Between {
            operand,
            low,
            high,
            negated,
        } => between(&eval(operand)?, &eval(low)?, &eval(high)?, *negated).map_err(at),
        Node::Like {
            operand,
            pattern,
            escape,
            case_insensitive,
            negated,
        } => {
            let matched = like(&eval(operand)?, &eval(pattern)?, *escape, *case_insensitive);
            Ok(truth_value(matched.map_err(at)?.map(|m| m != *negated)))
        }
        Node::Case {
            operand,
            branches,
            otherwise,
        } => case(operand.as_deref(), branches, otherwise.as_deref(), row),
        // Unreachable: `evaluate` sends only the forms above here.
        other => Err(EvalError::TypeMismatch {
            fragment: other.to_string(),
            message: "not a predicate".into(),
        }),
    }
}

/// A boolean operand as SQL's three values: `None` is NULL (unknown).
pub(crate) fn truth(node: &Node, value: &Value) -> Result<Option<bool>, EvalError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(flag) => Ok(Some(*flag)),
        other => Err(
            Fault::TypeMismatch(format!("expected bool, found {}", ValueType::of(other))).at(node),
        ),
    }
}

fn truth_value(truth: Option<bool>) -> Value {
    truth.map_or(Value::Null, Value::Bool)
}

/// SQL AND: FALSE wins over NULL.
pub(crate) fn and3(left: Option<bool>, right: Option<bool>) -> Option<bool> {
    match (left, right) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// SQL OR: TRUE wins over NULL.
pub(crate) fn or3(left: Option<bool>, right: Option<bool>) -> Option<bool> {
    match (left, right) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn logical(op: LogicalOp, left: &Node, right: &Node, row: RowLookup) -> Result<Value, EvalError> {
    let left_truth = truth(left, &evaluate(left, row)?)?;
    let decided = match op {
        LogicalOp::And => left_truth == Some(false),
        LogicalOp::Or => left_truth == Some(true),
    };
    if decided {
        return Ok(truth_value(left_truth));
    }
    let right_truth = truth(right, &evaluate(right, row)?)?;
    Ok(truth_value(match op {
        LogicalOp::And => and3(left_truth, right_truth),
        LogicalOp::Or => or3(left_truth, right_truth),
    }))
}

fn compare(op: ComparisonOp, left: &Value, right: &Value) -> Result<Value, Fault> {
    let ordering = try_compare(left, right)?;
    Ok(truth_value(ordering.map(|o| op.holds(o))))
}

fn concat(left: &Value, right: &Value) -> Result<Value, Fault> {
    let texty = |v: &Value| matches!(v, Value::Text(_) | Value::Null);
    if !texty(left) && !texty(right) {
        return Err(Fault::TypeMismatch(format!(
            "`||` needs a text operand, found {} and {}",
            ValueType::of(left),
            ValueType::of(right)
        )));
    }
    if left.is_null() || right.is_null() {
        return Ok(Value::Null);
    }
    Ok(Value::Text(text_of(left) + &text_of(right)))
}

fn is_distinct(left: &Value, right: &Value, negated: bool) -> Result<Value, Fault> {
    let distinct = match (left.is_null(), right.is_null()) {
        (true, true) => false,
        (true, false) | (false, true) => true,
        (false, false) => values_equal(left, right)? != Some(true),
    };
    Ok(Value::Bool(distinct != negated))
}

/// `x IN (a, b, ...)`: TRUE on a match; otherwise NULL if `x` or any item
/// is NULL (the NULL might have matched), else FALSE. NOT IN negates that.
fn in_list(
    node: &Node,
    operand: &Node,
    list: &[Node],
    negated: bool,
    row: RowLookup,
) -> Result<Value, EvalError> {
    let needle = evaluate(operand, row)?;
    let mut unknown = needle.is_null();
    for item in list {
        let item = evaluate(item, row)?;
        match values_equal(&needle, &item).map_err(|fault| fault.at(node))? {
            Some(true) => return Ok(Value::Bool(!negated)),
            Some(false) => {}
            None => unknown = true,
        }
    }
    Ok(if unknown {
        Value::Null
    } else {
        Value::Bool(negated)
    })
}

fn between(value: &Value, low: &Value, high: &Value, negated: bool) -> Result<Value, Fault> {
    let holds = |op: ComparisonOp, bound: &Value| {
        try_compare(value, bound).map(|ordering| ordering.map(|o| op.holds(o)))
    };
    let inside = and3(
        holds(ComparisonOp::GreaterOrEqual, low)?,
        holds(ComparisonOp::LessOrEqual, high)?,
    );
    Ok(truth_value(inside.map(|inside| inside != negated)))
}

fn like(
    text: &Value,
    pattern: &Value,
    escape: Option<char>,
    case_insensitive: bool,
) -> Result<Option<bool>, Fault> {
    match (text, pattern) {
        (Value::Null, _) | (_, Value::Null) => Ok(None),
        (Value::Text(text), Value::Text(pattern)) => {
            like_matches(text, pattern, escape, case_insensitive).map(Some)
        }
        (text, pattern) => Err(Fault::TypeMismatch(format!(
            "LIKE needs text, found {} and pattern {}",
            ValueType::of(text),
            ValueType::of(pattern)
        ))),
    }
}

fn case(
    operand: Option<&Node>,
    branches: &[CaseBranch],
    otherwise: Option<&Node>,
    row: RowLookup,
) -> Result<Value, EvalError> {
    let subject = operand.map(|o| evaluate(o, row)).transpose()?;
    for branch in branches {
        let when = evaluate(&branch.when, row)?;
        let chosen = match &subject {
            Some(subject) => values_equal(subject, &when).map_err(|f| f.at(&branch.when))?,
            None => truth(&branch.when, &when)?,
        };
        if chosen == Some(true) {
            return evaluate(&branch.then, row);
        }
    }
    otherwise.map_or(Ok(Value::Null), |o| evaluate(o, row))
}

fn call(
    node: &Node,
    function: Function,
    args: &[Node],
    row: RowLookup,
) -> Result<Value, EvalError> {
    if function == Function::Coalesce {
        for arg in args {
            let value = evaluate(arg, row)?;
            if !value.is_null() {
                return Ok(value);
            }
        }
        return Ok(Value::Null);
    }
    let values = args
        .iter()
        .map(|arg| evaluate(arg, row))
        .collect::<Result<Vec<_>, _>>()?;
    function.call(&values).map_err(|fault| fault.at(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const U: Option<bool> = None;

    #[test]
    fn and_truth_table() {
        let table = [
            (T, T, T),
            (T, F, F),
            (T, U, U),
            (F, T, F),
            (F, F, F),
            (F, U, F),
            (U, T, U),
            (U, F, F),
            (U, U, U),
        ];
        for (left, right, expected) in table {
            assert_eq!(and3(left, right), expected, "{left:?} AND {right:?}");
        }
    }

    #[test]
    fn or_truth_table() {
        let table = [
            (T, T, T),
            (T, F, T),
            (T, U, T),
            (F, T, T),
            (F, F, F),
            (F, U, U),
            (U, T, T),
            (U, F, U),
            (U, U, U),
        ];
        for (left, right, expected) in table {
            assert_eq!(or3(left, right), expected, "{left:?} OR {right:?}");
        }
    }

    #[test]
    fn concat_joins_text_forms_and_propagates_null() {
        let text = |t: &str| Value::Text(t.into());
        assert_eq!(concat(&text("#"), &Value::Int(7)), Ok(text("#7")));
        assert_eq!(concat(&text("a"), &Value::Null), Ok(Value::Null));
        assert!(concat(&Value::Int(1), &Value::Int(2)).is_err());
    }

    #[test]
    fn is_distinct_treats_null_as_a_value() {
        assert_eq!(
            is_distinct(&Value::Null, &Value::Null, false),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            is_distinct(&Value::Null, &Value::Int(1), false),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            is_distinct(&Value::Int(1), &Value::Numeric("1.0".into()), true),
            Ok(Value::Bool(true))
        );
    }
}
