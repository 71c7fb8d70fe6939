//! Static type checking: the type an expression yields given the types of its
//! columns, or an error naming the fragment that does not fit (arithmetic on
//! text, `text < int`, a non-boolean condition, a bad function argument).
//! `viewkeeper check` runs this before any row is seen.

use super::arrays;
use super::cast::CastTarget;
use super::date_parts::{self, DateField};
use super::error::{ExprError, Fault};
use super::functions::Function;
use super::json_field;
use super::json_ops::JsonOp;
use super::node::{ArithmeticOp, CaseBranch, ComparisonOp, Node};
use super::temporal::{self, TemporalKind};
use super::types::{ValueType, common_type, comparable, promote_numeric};
use crate::change::Value;

/// The caller's knowledge of column types.
pub(crate) type ColumnTypes<'a> = &'a dyn Fn(&[String]) -> Option<ValueType>;

pub(crate) fn infer(node: &Node, columns: ColumnTypes) -> Result<ValueType, ExprError> {
    let infer_child = |child: &Node| infer(child, columns);
    match node {
        Node::Column(path) => columns(path).ok_or_else(|| ExprError::UnknownColumn {
            column: path.join("."),
        }),
        Node::Literal(value) => Ok(ValueType::of(value)),
        Node::ArrayLiteral { text, element } => arrays::check_literal(text, *element)
            .map(|()| ValueType::Array(*element))
            .map_err(|message| type_error(node, message)),
        Node::Sign { operand, .. } => numeric_operand(node, infer_child(operand)?),
        Node::Arithmetic { op, left, right } => {
            if matches!(op, ArithmeticOp::Divide | ArithmeticOp::Modulo) {
                refuse_zero_divisor(node, right)?;
            }
            let (left_type, right_type) = (infer_child(left)?, infer_child(right)?);
            if *op == ArithmeticOp::Divide && [left_type, right_type] == [ValueType::Int; 2] {
                refuse_integer_extract(node, left)?;
                refuse_integer_extract(node, right)?;
            }
            match date_arithmetic_type(*op, left_type, right_type) {
                Some(result) => Ok(result),
                None => arithmetic_type(node, op.symbol(), left_type, right_type),
            }
        }
        Node::Concat { left, right } => concat_type(node, infer_child(left)?, infer_child(right)?),
        Node::JsonField {
            operand,
            key,
            as_text,
        } => json_field_type(node, infer_child(operand)?, infer_child(key)?, *as_text),
        Node::JsonOp { op, left, right } => {
            let (left_type, right_type) = (infer_child(left)?, infer_child(right)?);
            json_op_type(node, *op, (left, left_type), (right, right_type))
        }
        Node::ArraySet { op, left, right } => {
            let (left_type, right_type) = (infer_child(left)?, infer_child(right)?);
            arrays::set_op_type(*op, (left, left_type), (right, right_type))
                .map_err(|message| type_error(node, message))
        }
        Node::Quantified { left, right, .. } => {
            let (left_type, right_type) = (infer_child(left)?, infer_child(right)?);
            arrays::quantified_type(left_type, (right, right_type))
                .map_err(|message| type_error(node, message))
        }
        Node::Comparison { op, left, right } => {
            let (left_type, right_type) = (infer_child(left)?, infer_child(right)?);
            if !matches!(op, ComparisonOp::Equal | ComparisonOp::NotEqual) {
                refuse_array_order(node, left_type, right_type)?;
            }
            refuse_special_input(node, left, right_type)?;
            refuse_special_input(node, right, left_type)?;
            refuse_non_boolean_literal(node, left, right_type)?;
            refuse_non_boolean_literal(node, right, left_type)?;
            refuse_quoted_number(node, left, right_type)?;
            refuse_quoted_number(node, right, left_type)?;
            comparison_type(node, left_type, right_type)
        }
        Node::Logical { left, right, .. } => {
            boolean_operand(node, infer_child(left)?)?;
            boolean_operand(node, infer_child(right)?)
        }
        Node::Not(operand) => boolean_operand(node, infer_child(operand)?),
        Node::Cast { operand, target } => cast_type(node, infer_child(operand)?, *target),
        Node::IntRange { operand, .. } => infer_child(operand),
        Node::EnumPlace { operand, .. } => match infer_child(operand)? {
            ValueType::Null => Ok(ValueType::Null),
            _ => Ok(ValueType::Int),
        },
        Node::Call { function, args } => {
            let arg_types = args
                .iter()
                .map(infer_child)
                .collect::<Result<Vec<_>, _>>()?;
            call_type(node, *function, &arg_types)
        }
        Node::Extract {
            field,
            operand,
            date_part,
        } => extract_type(node, *field, infer_child(operand)?, *date_part),
        Node::DateTrunc {
            operand,
            zone: None,
            ..
        } => temporal_operand(node, infer_child(operand)?),
        // Truncated in a zone, any date or timestamp is read as an instant.
        Node::DateTrunc {
            operand,
            zone: Some(_),
            ..
        } => temporal_operand(node, infer_child(operand)?).map(|operand| match operand {
            ValueType::Null => ValueType::Null,
            _ => ValueType::TimestampTz,
        }),
        Node::AtTimeZone { operand, .. } => {
            temporal_operand(node, infer_child(operand)?).map(|operand| match operand {
                ValueType::Null => ValueType::Null,
                ValueType::Timestamp => ValueType::TimestampTz,
                _ => ValueType::Timestamp,
            })
        }
        Node::IsNull { .. }
        | Node::IsBool { .. }
        | Node::IsDistinct { .. }
        | Node::InList { .. }
        | Node::Between { .. }
        | Node::Like { .. }
        | Node::Case { .. } => infer_predicate(node, columns),
    }
}

/// The IS, IN, BETWEEN, LIKE and CASE forms.
fn infer_predicate(node: &Node, columns: ColumnTypes) -> Result<ValueType, ExprError> {
    let infer_child = |child: &Node| infer(child, columns);
    match node {
        Node::IsBool { operand, .. } => boolean_operand(node, infer_child(operand)?),
        Node::IsDistinct { left, right, .. } => {
            let (left_type, right_type) = (infer_child(left)?, infer_child(right)?);
            refuse_special_input(node, left, right_type)?;
            refuse_special_input(node, right, left_type)?;
            comparison_type(node, left_type, right_type)
        }
        Node::IsNull { operand, .. } => infer_child(operand).map(|_| ValueType::Bool),
        Node::InList { operand, list, .. } => in_list_type(node, operand, list, columns),
        Node::Between {
            operand, low, high, ..
        } => {
            let operand = infer_child(operand)?;
            refuse_array_order(node, operand, ValueType::Null)?;
            refuse_special_input(node, low, operand)?;
            refuse_special_input(node, high, operand)?;
            comparison_type(node, operand, infer_child(low)?)?;
            comparison_type(node, operand, infer_child(high)?)
        }
        Node::Like {
            operand, pattern, ..
        } => like_type(node, infer_child(operand)?, infer_child(pattern)?),
        Node::Case {
            operand,
            branches,
            otherwise,
        } => case_type(
            node,
            operand.as_deref(),
            branches,
            otherwise.as_deref(),
            columns,
        ),
        // Unreachable: `infer` sends only the forms above here.
        other => Err(type_error(other, "not a predicate".into())),
    }
}

fn cast_type(node: &Node, from: ValueType, target: CastTarget) -> Result<ValueType, ExprError> {
    if target.accepts(from) {
        Ok(target.result_type())
    } else {
        let message = format!("cannot cast {from} to {}", target.result_type());
        Err(type_error(node, message))
    }
}

fn call_type(node: &Node, function: Function, args: &[ValueType]) -> Result<ValueType, ExprError> {
    function
        .result_type(args)
        .map_err(|message| type_error(node, message))
}

/// A jsonb operator's type; `@>` and `<@` with an array on either side
/// are the arrays' operators.
fn json_op_type(
    node: &Node,
    op: JsonOp,
    (left, left_type): (&Node, ValueType),
    (right, right_type): (&Node, ValueType),
) -> Result<ValueType, ExprError> {
    let message = match arrays::set_op_of(op) {
        Some(set_op)
            if matches!(left_type, ValueType::Array(_))
                || matches!(right_type, ValueType::Array(_)) =>
        {
            arrays::set_op_type(set_op, (left, left_type), (right, right_type))
        }
        Some(_) => not_json_literal(left)
            .or_else(|| not_json_literal(right))
            .map_or_else(|| op.result_type(left_type, right_type), Err),
        None => op.result_type(left_type, right_type),
    };
    message.map_err(|message| type_error(node, message))
}

/// Why a text literal beside `@>` or `<@` is not the JSON the other side
/// needs (a literal that is JSON was read as JSON when parsed).
fn not_json_literal(side: &Node) -> Option<String> {
    let Node::Literal(Value::Text(text)) = side else {
        return None;
    };
    let error = serde_json::from_str::<&serde_json::value::RawValue>(text).err()?;
    Some(format!(
        "{} is not valid JSON: {error}",
        Node::Literal(Value::Text(text.clone()))
    ))
}

/// A divisor that reads no column and is zero (`x / 0`, `x % (2 - 2)`)
/// fails every row: refused when the view is loaded, not dead-lettered
/// row by row.
fn refuse_zero_divisor(node: &Node, divisor: &Node) -> Result<(), ExprError> {
    if !divisor.columns().is_empty() {
        return Ok(());
    }
    let zero = match super::eval::evaluate(divisor, &|_| None) {
        Ok(Value::Int(n)) => n == 0,
        Ok(Value::Float(f)) => f == 0.0,
        Ok(Value::Numeric(text)) => text
            .trim_start_matches(['-', '+'])
            .chars()
            .all(|c| c == '0' || c == '.'),
        _ => false,
    };
    if zero {
        Err(ExprError::ZeroDivisor {
            fragment: node.to_string(),
        })
    } else {
        Ok(())
    }
}

/// An `extract` (or `date_part`) divided as an integer: PostgreSQL's
/// `extract` gives a numeric and `date_part` a float, so there
/// `extract(month from d) / 2` is 3.5, where viewkeeper's integer field
/// would give 3. Refused with the casts that say which is meant. (A
/// remainder is the same integer either way.)
fn refuse_integer_extract(node: &Node, operand: &Node) -> Result<(), ExprError> {
    let Node::Extract { date_part, .. } = operand else {
        return Ok(());
    };
    let (function, gives) = if *date_part {
        ("date_part", "float")
    } else {
        ("extract", "numeric")
    };
    Err(type_error(
        node,
        format!(
            "PostgreSQL's {function} gives a {gives}, so `/` there does not divide integers \
             (`extract(month from d) / 2` is 3.5); cast it: `({operand})::int` for an integer \
             quotient, `({operand})::numeric` for an exact one"
        ),
    ))
}

fn type_error(node: &Node, message: String) -> ExprError {
    ExprError::Type {
        fragment: node.to_string(),
        message,
    }
}

fn numeric_operand(node: &Node, operand: ValueType) -> Result<ValueType, ExprError> {
    if operand.is_numeric() || operand == ValueType::Null {
        Ok(operand)
    } else {
        Err(type_error(
            node,
            format!("expected a number, found {operand}"),
        ))
    }
}

fn arithmetic_type(
    node: &Node,
    symbol: &str,
    left: ValueType,
    right: ValueType,
) -> Result<ValueType, ExprError> {
    let fits = |t: ValueType| t.is_numeric() || t == ValueType::Null;
    match (left, right) {
        (ValueType::Null, ValueType::Null) => Ok(ValueType::Null),
        (ValueType::Null, other) | (other, ValueType::Null) if fits(other) => Ok(other),
        _ if fits(left) && fits(right) => Ok(promote_numeric(left, right)),
        _ => {
            let temporal =
                |t: ValueType| matches!(t, ValueType::Timestamp | ValueType::TimestampTz);
            // Their difference is an interval, which expressions lack.
            let hint = if symbol == "-" && temporal(left) && temporal(right) {
                " (an interval, which expressions do not have: `extract(epoch from a) - \
                 extract(epoch from b)` is the seconds between them)"
            } else {
                ""
            };
            Err(type_error(
                node,
                format!("cannot apply `{symbol}` to {left} and {right}{hint}"),
            ))
        }
    }
}

/// `date - date` (the days between, an int), `date ± int` and `int +
/// date` (a date), as PostgreSQL has them; `None` for other operands.
fn date_arithmetic_type(op: ArithmeticOp, left: ValueType, right: ValueType) -> Option<ValueType> {
    use ValueType::{Date, Int};
    match (op, left, right) {
        (ArithmeticOp::Subtract, Date, Date) => Some(Int),
        (ArithmeticOp::Add | ArithmeticOp::Subtract, Date, Int) => Some(Date),
        (ArithmeticOp::Add, Int, Date) => Some(Date),
        _ => None,
    }
}

/// `||` joins text with anything that has a text form, but at least one
/// side must be text (PostgreSQL refuses `1 || 2`).
fn concat_type(node: &Node, left: ValueType, right: ValueType) -> Result<ValueType, ExprError> {
    let texty = |t: ValueType| matches!(t, ValueType::Text | ValueType::Null);
    if texty(left) || texty(right) {
        Ok(ValueType::Text)
    } else {
        Err(type_error(
            node,
            format!("`||` needs a text operand, found {left} and {right}"),
        ))
    }
}

fn json_field_type(
    node: &Node,
    operand: ValueType,
    key: ValueType,
    as_text: bool,
) -> Result<ValueType, ExprError> {
    let refused = |fault| match fault {
        Fault::TypeMismatch(message) => type_error(node, message),
        other => type_error(node, other.to_string()),
    };
    if !matches!(operand, ValueType::Json | ValueType::Null) {
        return Err(refused(json_field::operand_error(operand, as_text)));
    }
    if !matches!(key, ValueType::Text | ValueType::Int | ValueType::Null) {
        return Err(refused(json_field::key_error(key, as_text)));
    }
    Ok(if as_text {
        ValueType::Text
    } else {
        ValueType::Json
    })
}

/// An error when `literal` is text compared with a boolean that PostgreSQL
/// would not read as one (`flag = 'maybe'`): every row would fail.
fn refuse_non_boolean_literal(
    node: &Node,
    literal: &Node,
    against: ValueType,
) -> Result<(), ExprError> {
    match literal {
        Node::Literal(Value::Text(text)) if against == ValueType::Bool => {
            super::cast::boolean_of(text)
                .map(drop)
                .map_err(|fault| type_error(node, fault.to_string()))
        }
        _ => Ok(()),
    }
}

/// A number in quotes compared with a number: PostgreSQL reads the
/// literal as one, viewkeeper types it text, so the message says what to
/// write rather than only that int and text do not compare.
fn refuse_quoted_number(node: &Node, literal: &Node, against: ValueType) -> Result<(), ExprError> {
    match literal {
        Node::Literal(Value::Text(text))
            if against.is_numeric() && super::Decimal::parse(text.trim()).is_some() =>
        {
            Err(type_error(
                node,
                format!(
                    "cannot compare {against} with text: write the number without quotes ({})",
                    text.trim()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Text PostgreSQL reads as a date or time of its own choosing. A view
/// compares text that is not a date with a date as text, so `at > 'epoch'`
/// would quietly differ from SQL; and the clock-relative ones would need a
/// view to change with the time.
const SPECIAL_TEMPORAL_INPUTS: [&str; 6] =
    ["epoch", "now", "today", "tomorrow", "yesterday", "allballs"];

/// An error when `literal` is a special date/time input used as a value of
/// the temporal type `against`.
fn refuse_special_input(node: &Node, literal: &Node, against: ValueType) -> Result<(), ExprError> {
    let Node::Literal(Value::Text(text)) = literal else {
        return Ok(());
    };
    let word = text.trim().to_ascii_lowercase();
    let kind = match against {
        ValueType::Date => TemporalKind::Date,
        ValueType::Timestamp => TemporalKind::Timestamp,
        ValueType::TimestampTz => TemporalKind::TimestampTz,
        _ => return Ok(()),
    };
    if SPECIAL_TEMPORAL_INPUTS.contains(&word.as_str()) {
        return Err(type_error(
            node,
            format!(
                "'{text}' is one of PostgreSQL's special date/time inputs, which a view does \
                 not read: write the value itself (as '1970-01-01' for 'epoch'); 'now', \
                 'today', 'tomorrow' and 'yesterday' change with the clock, which a view \
                 cannot follow"
            ),
        ));
    }
    // Text a view cannot read as a date would be compared as text, where
    // PostgreSQL reads many more forms ('2026-3-29', 'March 29, 2026') or
    // refuses the value ('2026-02-30').
    if temporal::is_infinite(word.as_str()) || temporal::parse(text, kind).is_some() {
        return Ok(());
    }
    if let Some(reason) = temporal::impossible_date(text) {
        return Err(type_error(
            node,
            format!(
                "'{text}' is not a {}: {reason}, as PostgreSQL would say",
                temporal::kind_name(kind)
            ),
        ));
    }
    Err(type_error(
        node,
        format!(
            "'{text}' is not a {} a view reads: write it as YYYY-MM-DD (2026-03-29), with \
             HH:MM:SS and an offset for a timestamp (2026-03-29 14:30:00+02), or \
             'infinity'",
            temporal::kind_name(kind)
        ),
    ))
}

/// Arrays compare for equality only: PostgreSQL orders them element by
/// element, which their texts do not follow (`{10}` sorts before `{9}`).
fn refuse_array_order(node: &Node, left: ValueType, right: ValueType) -> Result<(), ExprError> {
    match [left, right]
        .into_iter()
        .find(|t| matches!(t, ValueType::Array(_)))
    {
        Some(array) => Err(type_error(
            node,
            format!("cannot order {array} values; compare arrays for equality only"),
        )),
        None => Ok(()),
    }
}

fn comparison_type(node: &Node, left: ValueType, right: ValueType) -> Result<ValueType, ExprError> {
    if comparable(left, right) {
        Ok(ValueType::Bool)
    } else {
        Err(type_error(
            node,
            format!("cannot compare {left} with {right}"),
        ))
    }
}

fn boolean_operand(node: &Node, operand: ValueType) -> Result<ValueType, ExprError> {
    match operand {
        ValueType::Bool | ValueType::Null => Ok(ValueType::Bool),
        other => Err(type_error(node, format!("expected bool, found {other}"))),
    }
}

fn in_list_type(
    node: &Node,
    operand: &Node,
    list: &[Node],
    columns: ColumnTypes,
) -> Result<ValueType, ExprError> {
    let operand = infer(operand, columns)?;
    for item in list {
        refuse_special_input(node, item, operand)?;
        comparison_type(node, operand, infer(item, columns)?)?;
    }
    Ok(ValueType::Bool)
}

fn like_type(node: &Node, operand: ValueType, pattern: ValueType) -> Result<ValueType, ExprError> {
    let texty = |t: ValueType| matches!(t, ValueType::Text | ValueType::Null);
    if texty(operand) && texty(pattern) {
        Ok(ValueType::Bool)
    } else {
        Err(type_error(
            node,
            format!("LIKE needs text, found {operand} and pattern {pattern}"),
        ))
    }
}

fn case_type(
    node: &Node,
    operand: Option<&Node>,
    branches: &[CaseBranch],
    otherwise: Option<&Node>,
    columns: ColumnTypes,
) -> Result<ValueType, ExprError> {
    let operand = operand.map(|o| infer(o, columns)).transpose()?;
    let mut result = ValueType::Null;
    for branch in branches {
        let when = infer(&branch.when, columns)?;
        match operand {
            Some(operand) => comparison_type(&branch.when, operand, when)?,
            None => boolean_operand(&branch.when, when)?,
        };
        result = unify_branch(node, result, infer(&branch.then, columns)?)?;
    }
    match otherwise {
        Some(otherwise) => unify_branch(node, result, infer(otherwise, columns)?),
        None => Ok(result),
    }
}

fn unify_branch(node: &Node, so_far: ValueType, next: ValueType) -> Result<ValueType, ExprError> {
    common_type(so_far, next).ok_or_else(|| {
        type_error(
            node,
            format!("CASE results have no common type: {so_far} and {next}"),
        )
    })
}

fn temporal_operand(node: &Node, operand: ValueType) -> Result<ValueType, ExprError> {
    if operand.is_temporal() || operand == ValueType::Null {
        Ok(operand)
    } else {
        Err(type_error(
            node,
            format!("expected a date or timestamp, found {operand}"),
        ))
    }
}

fn extract_type(
    node: &Node,
    field: DateField,
    operand: ValueType,
    date_part: bool,
) -> Result<ValueType, ExprError> {
    temporal_operand(node, operand)?;
    if operand == ValueType::Date && !date_part && !field.applies_to_date() {
        return Err(type_error(
            node,
            format!("a date has no {} field", field.name()),
        ));
    }
    Ok(date_parts::field_type(field, date_part))
}
