//! Arithmetic over values: `+ - * / %` and unary minus, choosing the exact
//! kind of arithmetic from the operand types.
//!
//! Int with Int is checked i64 arithmetic (overflow is an error, `/`
//! truncates toward zero like PostgreSQL). Any Numeric operand (with no
//! Float) makes it exact decimal arithmetic ([`Decimal`]). Float appears only
//! when an operand is Float.

use crate::change::Value;

use super::error::{Fault, quoted};
use super::node::ArithmeticOp;
use super::numeric::Decimal;
use super::temporal::{self, TemporalKind};
use super::types::ValueType;

pub(crate) fn is_number(value: &Value) -> bool {
    ValueType::of(value).is_numeric()
}

/// An Int or Numeric value as an exact decimal.
pub(crate) fn decimal_of(value: &Value) -> Result<Decimal, Fault> {
    match value {
        Value::Int(int) => Ok(Decimal::from_i64(*int)),
        Value::Numeric(text) => Decimal::parse(text)
            .ok_or_else(|| Fault::InvalidValue(format!("invalid numeric value {}", quoted(text)))),
        Value::Float(float) => Ok(Decimal::from_f64(*float)),
        other => Err(Fault::TypeMismatch(format!(
            "expected a number, found {}",
            ValueType::of(other)
        ))),
    }
}

/// Any numeric value as a float (Int above 2^53 loses precision, as in SQL).
pub(crate) fn float_of(value: &Value) -> Result<f64, Fault> {
    match value {
        Value::Float(float) => Ok(*float),
        Value::Int(int) => Ok(*int as f64),
        other => Ok(decimal_of(other)?.to_f64()),
    }
}

pub(crate) fn numeric_value(decimal: &Decimal) -> Value {
    Value::Numeric(decimal.to_text())
}

/// `left op right`; NULL with a number (or NULL) gives NULL.
pub(crate) fn apply(op: ArithmeticOp, left: &Value, right: &Value) -> Result<Value, Fault> {
    if matches!(left, Value::Date(_)) || matches!(right, Value::Date(_)) {
        return date_arithmetic(op, left, right);
    }
    let both_numeric_or_null = [left, right].iter().all(|v| v.is_null() || is_number(v));
    if !both_numeric_or_null {
        return Err(Fault::TypeMismatch(format!(
            "cannot apply `{}` to {} and {}",
            op.symbol(),
            ValueType::of(left),
            ValueType::of(right)
        )));
    }
    match (left, right) {
        (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
        (Value::Int(a), Value::Int(b)) => int_arithmetic(op, *a, *b).map(Value::Int),
        (Value::Float(_), _) | (_, Value::Float(_)) => {
            float_arithmetic(op, float_of(left)?, float_of(right)?).map(Value::Float)
        }
        _ => decimal_arithmetic(op, &decimal_of(left)?, &decimal_of(right)?)
            .map(|d| numeric_value(&d)),
    }
}

/// `date - date` (the days between), `date ± int` and `int + date`;
/// `infinity` plus or minus days stays itself, and two infinite dates have
/// no difference (PostgreSQL: "cannot subtract infinite dates").
fn date_arithmetic(op: ArithmeticOp, left: &Value, right: &Value) -> Result<Value, Fault> {
    let days = |text: &str| -> Result<Option<i64>, Fault> {
        if temporal::is_infinite(text) {
            return Ok(None);
        }
        Ok(Some(temporal::parse_value(text, TemporalKind::Date)?.days))
    };
    let shifted = |date: &str, by: i64| -> Result<Value, Fault> {
        let Some(start) = days(date)? else {
            return Ok(Value::Date(date.trim().to_owned()));
        };
        let moved = start.checked_add(by).ok_or(Fault::OutOfRange("date"))?;
        temporal::date_in_range(moved)?;
        let date = temporal::DateTime {
            days: moved,
            micros_of_day: 0,
        };
        Ok(Value::Date(date.format(TemporalKind::Date)))
    };
    match (op, left, right) {
        (_, Value::Null, _) | (_, _, Value::Null) => Ok(Value::Null),
        (ArithmeticOp::Subtract, Value::Date(a), Value::Date(b)) => match (days(a)?, days(b)?) {
            (Some(a), Some(b)) => Ok(Value::Int(a - b)),
            _ => Err(Fault::InvalidValue(
                "cannot subtract infinite dates".to_owned(),
            )),
        },
        (ArithmeticOp::Add, Value::Date(date), Value::Int(by))
        | (ArithmeticOp::Add, Value::Int(by), Value::Date(date)) => shifted(date, *by),
        (ArithmeticOp::Subtract, Value::Date(date), Value::Int(by)) => {
            shifted(date, by.checked_neg().ok_or(Fault::OutOfRange("date"))?)
        }
        _ => Err(Fault::TypeMismatch(format!(
            "cannot apply `{}` to {} and {}",
            op.symbol(),
            ValueType::of(left),
            ValueType::of(right)
        ))),
    }
}

fn int_arithmetic(op: ArithmeticOp, a: i64, b: i64) -> Result<i64, Fault> {
    if b == 0 && matches!(op, ArithmeticOp::Divide | ArithmeticOp::Modulo) {
        return Err(Fault::DivisionByZero);
    }
    let result = match op {
        ArithmeticOp::Add => a.checked_add(b),
        ArithmeticOp::Subtract => a.checked_sub(b),
        ArithmeticOp::Multiply => a.checked_mul(b),
        ArithmeticOp::Divide => a.checked_div(b),
        // Only i64::MIN % -1 fails in Rust; its remainder is 0, as in PostgreSQL.
        ArithmeticOp::Modulo => Some(a.checked_rem(b).unwrap_or(0)),
    };
    result.ok_or(Fault::OutOfRange("bigint"))
}

/// IEEE arithmetic, except that PostgreSQL's errors are kept: division by
/// zero, and a finite computation overflowing to infinity.
fn float_arithmetic(op: ArithmeticOp, a: f64, b: f64) -> Result<f64, Fault> {
    let result = match op {
        ArithmeticOp::Add => a + b,
        ArithmeticOp::Subtract => a - b,
        ArithmeticOp::Multiply => a * b,
        ArithmeticOp::Divide if b == 0.0 => return Err(Fault::DivisionByZero),
        ArithmeticOp::Divide => a / b,
        ArithmeticOp::Modulo => {
            return Err(Fault::TypeMismatch("`%` is not defined for float".into()));
        }
    };
    if result.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(Fault::OutOfRange("double precision"));
    }
    Ok(result)
}

fn decimal_arithmetic(op: ArithmeticOp, a: &Decimal, b: &Decimal) -> Result<Decimal, Fault> {
    match op {
        ArithmeticOp::Add => a.add(b),
        ArithmeticOp::Subtract => a.subtract(b),
        ArithmeticOp::Multiply => a.multiply(b),
        ArithmeticOp::Divide => a.divide(b),
        ArithmeticOp::Modulo => a.remainder(b),
    }
}

/// Unary minus (`negative`) or plus.
pub(crate) fn apply_sign(negative: bool, value: &Value) -> Result<Value, Fault> {
    match value {
        Value::Null => Ok(Value::Null),
        _ if !negative && is_number(value) => Ok(value.clone()),
        Value::Int(int) => int
            .checked_neg()
            .map(Value::Int)
            .ok_or(Fault::OutOfRange("bigint")),
        Value::Float(float) => Ok(Value::Float(-float)),
        Value::Numeric(_) => Ok(numeric_value(&decimal_of(value)?.negate())),
        other => Err(Fault::TypeMismatch(format!(
            "cannot apply unary `{}` to {}",
            if negative { "-" } else { "+" },
            ValueType::of(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ArithmeticOp::*;

    fn num(text: &str) -> Value {
        Value::Numeric(text.into())
    }

    #[test]
    fn int_arithmetic_is_checked() {
        assert_eq!(
            apply(Add, &Value::Int(2), &Value::Int(3)),
            Ok(Value::Int(5))
        );
        assert_eq!(
            apply(Add, &Value::Int(i64::MAX), &Value::Int(1)),
            Err(Fault::OutOfRange("bigint"))
        );
        assert_eq!(
            apply(Multiply, &Value::Int(i64::MIN), &Value::Int(-1)),
            Err(Fault::OutOfRange("bigint"))
        );
        assert_eq!(
            apply(Divide, &Value::Int(i64::MIN), &Value::Int(-1)),
            Err(Fault::OutOfRange("bigint"))
        );
        assert_eq!(
            apply(Subtract, &Value::Int(i64::MIN), &Value::Int(1)),
            Err(Fault::OutOfRange("bigint"))
        );
        assert_eq!(
            apply_sign(true, &Value::Int(i64::MIN)),
            Err(Fault::OutOfRange("bigint"))
        );
    }

    #[test]
    fn int_division_truncates_toward_zero() {
        assert_eq!(
            apply(Divide, &Value::Int(7), &Value::Int(2)),
            Ok(Value::Int(3))
        );
        assert_eq!(
            apply(Divide, &Value::Int(-7), &Value::Int(2)),
            Ok(Value::Int(-3))
        );
        assert_eq!(
            apply(Modulo, &Value::Int(-7), &Value::Int(2)),
            Ok(Value::Int(-1))
        );
        assert_eq!(
            apply(Modulo, &Value::Int(i64::MIN), &Value::Int(-1)),
            Ok(Value::Int(0))
        );
    }

    #[test]
    fn division_by_zero_is_an_error_for_every_type() {
        for zero in [Value::Int(0), num("0.0"), Value::Float(0.0)] {
            assert_eq!(
                apply(Divide, &Value::Int(1), &zero),
                Err(Fault::DivisionByZero),
                "{zero:?}"
            );
        }
        assert_eq!(
            apply(Modulo, &Value::Int(1), &Value::Int(0)),
            Err(Fault::DivisionByZero)
        );
    }

    #[test]
    fn numeric_operands_make_arithmetic_exact() {
        assert_eq!(apply(Add, &num("0.1"), &num("0.2")), Ok(num("0.3")));
        assert_eq!(
            apply(Multiply, &num("2.50"), &Value::Int(2)),
            Ok(num("5.00"))
        );
        assert_eq!(
            apply(Subtract, &Value::Int(1), &num("0.01")),
            Ok(num("0.99"))
        );
        assert_eq!(
            apply(Divide, &Value::Int(10), &num("4")),
            Ok(num("2.5000000000000000"))
        );
        assert_eq!(apply_sign(true, &num("1.50")), Ok(num("-1.50")));
    }

    #[test]
    fn float_appears_only_with_a_float_operand() {
        assert_eq!(
            apply(Add, &Value::Float(0.5), &num("0.25")),
            Ok(Value::Float(0.75))
        );
        assert_eq!(
            apply(Multiply, &Value::Float(1e308), &Value::Int(10)),
            Err(Fault::OutOfRange("double precision"))
        );
        assert!(apply(Modulo, &Value::Float(1.0), &Value::Int(1)).is_err());
    }

    #[test]
    fn null_propagates_and_text_is_refused() {
        assert_eq!(apply(Add, &Value::Null, &Value::Int(1)), Ok(Value::Null));
        assert_eq!(apply(Add, &Value::Null, &Value::Null), Ok(Value::Null));
        assert!(apply(Add, &Value::Null, &Value::Text("a".into())).is_err());
        assert!(apply(Add, &Value::Text("1".into()), &Value::Int(1)).is_err());
        assert!(apply_sign(false, &Value::Bool(true)).is_err());
        assert!(apply(Add, &num("abc"), &Value::Int(1)).is_err());
    }
}
