//! The order of values, used by the comparison operators, IN, BETWEEN, CASE,
//! NULLIF, and by callers that sort arrays (ORDER BY).
//!
//! Numbers compare by value across Int, Numeric and Float; temporal values
//! compare as canonical text after the coarser one is promoted (a date is its
//! midnight, a timestamp without zone is taken as UTC); text compared with a
//! temporal value is read as that kind when it can be, else compared as text.
//! Text compares by code point, like PostgreSQL's "C" collation.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::change::Value;

use super::arith::{decimal_of, float_of, is_number};
use super::cast::boolean_of;
use super::error::Fault;
use super::temporal::{self, TemporalKind};
use super::types::ValueType;

/// The order of two values, as the comparison operators see it; `None` when
/// either is NULL or the two cannot be compared (text with int, any json).
///
/// For sorting, callers place NULLs themselves (PostgreSQL puts them last in
/// ascending order). Numeric NaN sorts above every other number and equals
/// itself, as in PostgreSQL; so does Float NaN.
pub fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    try_compare(a, b).ok().flatten()
}

/// Like [`compare_values`], but incomparable types are an error rather than
/// `None`, which stays reserved for NULL.
pub(crate) fn try_compare(a: &Value, b: &Value) -> Result<Option<Ordering>, Fault> {
    let ordering = match (a, b) {
        (Value::Null, _) | (_, Value::Null) => return Ok(None),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        // Text meeting a boolean is read as one, as PostgreSQL reads a literal.
        (Value::Bool(x), Value::Text(y)) => x.cmp(&boolean_of(y)?),
        (Value::Text(x), Value::Bool(y)) => boolean_of(x)?.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        _ if is_number(a) && is_number(b) => compare_numbers(a, b)?,
        _ if temporal_kind(a).is_some() || temporal_kind(b).is_some() => compare_temporal(a, b)?,
        _ => return Err(incomparable(a, b)),
    };
    Ok(Some(ordering))
}

/// Three-valued `a = b`: `None` when either is NULL.
pub(crate) fn values_equal(a: &Value, b: &Value) -> Result<Option<bool>, Fault> {
    Ok(try_compare(a, b)?.map(Ordering::is_eq))
}

fn incomparable(a: &Value, b: &Value) -> Fault {
    Fault::TypeMismatch(format!(
        "cannot compare {} with {}",
        ValueType::of(a),
        ValueType::of(b)
    ))
}

fn compare_numbers(a: &Value, b: &Value) -> Result<Ordering, Fault> {
    if matches!(a, Value::Float(_)) || matches!(b, Value::Float(_)) {
        Ok(float_order(float_of(a)?, float_of(b)?))
    } else {
        Ok(decimal_of(a)?.total_cmp(&decimal_of(b)?))
    }
}

/// PostgreSQL's float order: NaN equals NaN and sorts above everything; -0 = 0.
fn float_order(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn temporal_kind(value: &Value) -> Option<TemporalKind> {
    match value {
        Value::Date(_) => Some(TemporalKind::Date),
        Value::Timestamp(_) => Some(TemporalKind::Timestamp),
        Value::TimestampTz(_) => Some(TemporalKind::TimestampTz),
        _ => None,
    }
}

/// Compares two values of which at least one is temporal and the other is
/// temporal or text, in the finer of their kinds: as instants where both
/// read as one (not as text: `0044-03-15 BC` is before `0001-01-01`,
/// `12024-01-01` after `2024-01-01`).
fn compare_temporal(a: &Value, b: &Value) -> Result<Ordering, Fault> {
    let kind = temporal_kind(a).max(temporal_kind(b));
    if let (Some(kind), Some(a_text), Some(b_text)) = (kind, temporal_text(a), temporal_text(b))
        && let (Some(a_key), Some(b_key)) = (
            temporal::order_key(a_text, kind),
            temporal::order_key(b_text, kind),
        )
    {
        return Ok(a_key.cmp(&b_key));
    }
    match (comparison_text(a, kind), comparison_text(b, kind)) {
        (Some(a_text), Some(b_text)) => Ok(a_text.cmp(&b_text)),
        _ => Err(incomparable(a, b)),
    }
}

fn temporal_text(value: &Value) -> Option<&str> {
    match value {
        Value::Text(text)
        | Value::Date(text)
        | Value::Timestamp(text)
        | Value::TimestampTz(text) => Some(text),
        _ => None,
    }
}

/// The canonical text of `value` as `kind`; text that does not read as a
/// date or timestamp (`'infinity'`, `'2024'`) is compared as it is.
fn comparison_text(value: &Value, kind: Option<TemporalKind>) -> Option<Cow<'_, str>> {
    let kind = kind?;
    let (text, own_kind) = match value {
        Value::Text(text) => (text, None),
        Value::Date(text) | Value::Timestamp(text) | Value::TimestampTz(text) => {
            (text, temporal_kind(value))
        }
        _ => return None,
    };
    if own_kind == Some(kind) {
        return Some(Cow::Borrowed(text));
    }
    match temporal::parse(text, kind) {
        Some(parsed) => Some(Cow::Owned(parsed.format(kind))),
        None => Some(Cow::Borrowed(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: Value, b: Value) -> Option<Ordering> {
        compare_values(&a, &b)
    }

    fn numeric(text: &str) -> Value {
        Value::Numeric(text.into())
    }

    #[test]
    fn numbers_compare_by_value_across_types() {
        assert_eq!(cmp(Value::Int(2), numeric("2.00")), Some(Ordering::Equal));
        assert_eq!(cmp(numeric("10.5"), Value::Int(11)), Some(Ordering::Less));
        assert_eq!(
            cmp(Value::Float(0.5), numeric("0.25")),
            Some(Ordering::Greater)
        );
        assert_eq!(
            cmp(numeric("NaN"), Value::Int(i64::MAX)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            cmp(Value::Float(f64::NAN), Value::Float(f64::NAN)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            cmp(Value::Float(-0.0), Value::Int(0)),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn null_and_incomparable_types_have_no_order() {
        assert_eq!(cmp(Value::Null, Value::Int(1)), None);
        assert_eq!(cmp(Value::Text("1".into()), Value::Int(1)), None);
        assert_eq!(cmp(Value::Json("1".into()), Value::Json("1".into())), None);
        assert!(try_compare(&Value::Bool(true), &Value::Int(1)).is_err());
        assert_eq!(
            try_compare(&Value::Null, &Value::Json("{}".into())),
            Ok(None)
        );
    }

    #[test]
    fn malformed_numeric_is_an_error_not_an_order() {
        assert!(try_compare(&numeric("12abc"), &Value::Int(1)).is_err());
    }

    #[test]
    fn temporal_values_compare_in_the_finer_kind() {
        let midnight = Value::TimestampTz("2024-01-01T00:00:00.000000Z".into());
        assert_eq!(
            cmp(Value::Date("2024-01-01".into()), midnight.clone()),
            Some(Ordering::Equal)
        );
        let noon = Value::Timestamp("2024-01-01T12:00:00.000000".into());
        assert_eq!(cmp(noon, midnight), Some(Ordering::Greater));
    }

    /// By instant, not by text: BC years before AD ones, and years past
    /// 9999 after the others.
    #[test]
    fn dates_of_every_era_compare_by_day() {
        let date = |t: &str| Value::Date(t.into());
        assert_eq!(
            cmp(date("0044-03-15 BC"), date("0001-01-01")),
            Some(Ordering::Less)
        );
        assert_eq!(
            cmp(date("0044-03-15 BC"), date("0001-03-15 BC")),
            Some(Ordering::Less)
        );
        assert_eq!(
            cmp(date("12024-01-01"), date("2024-01-01")),
            Some(Ordering::Greater)
        );
        assert_eq!(
            cmp(date("12024-01-01"), Value::Text("9999-12-31".into())),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn text_is_read_as_the_temporal_kind_it_meets() {
        let ts = Value::TimestampTz("2024-01-01T10:00:00.000000Z".into());
        let text = |t: &str| Value::Text(t.into());
        assert_eq!(
            cmp(ts.clone(), text("2024-01-01 12:00+02")),
            Some(Ordering::Equal)
        );
        assert_eq!(cmp(ts.clone(), text("2024-01-01")), Some(Ordering::Greater));
        assert_eq!(cmp(ts.clone(), text("infinity")), Some(Ordering::Less));
        assert_eq!(
            cmp(text("2024-01-01 23:59"), Value::Date("2024-01-01".into())),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn text_and_booleans_order_naturally() {
        assert_eq!(
            cmp(Value::Text("B".into()), Value::Text("a".into())),
            Some(Ordering::Less)
        );
        assert_eq!(
            cmp(Value::Bool(false), Value::Bool(true)),
            Some(Ordering::Less)
        );
    }
}
