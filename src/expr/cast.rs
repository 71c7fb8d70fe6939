//! Casts (`x::int`, `CAST(x AS numeric(10,2))`, `date(x)`, `DATE '...'`):
//! the target types, which conversions exist, and how values convert.
//! Every failure is an error naming the value, never a silent NULL.

use crate::change::Value;

use super::arith::decimal_of;
use super::error::{Fault, quoted};
use super::json_ops;
use super::numeric::Decimal;
use super::temporal::{self, TemporalKind};
use super::time_zone::TimeZone;
use super::types::ValueType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CastTarget {
    Text,
    Bool,
    /// `double precision` (`float8`).
    Float,
    Integer(IntWidth),
    /// `numeric`, or `numeric(precision, scale)` which rounds to `scale`.
    Numeric(Option<NumericTypmod>),
    Temporal(TemporalKind),
}

/// The integer types, all held as i64 but range-checked as PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum IntWidth {
    /// `smallint`, `int2`
    Small,
    /// `int`, `integer`, `int4`
    Regular,
    /// `bigint`, `int8`
    Big,
}

impl IntWidth {
    /// The width of an integer of `bytes` (2, 4, or else 8).
    pub fn of_bytes(bytes: u8) -> IntWidth {
        match bytes {
            2 => IntWidth::Small,
            4 => IntWidth::Regular,
            _ => IntWidth::Big,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NumericTypmod {
    pub precision: u64,
    pub scale: u64,
}

impl IntWidth {
    fn type_name(self) -> &'static str {
        match self {
            IntWidth::Small => "smallint",
            IntWidth::Regular => "integer",
            IntWidth::Big => "bigint",
        }
    }

    fn range_checked(self, value: i64) -> Result<i64, Fault> {
        let fits = match self {
            IntWidth::Small => i16::try_from(value).is_ok(),
            IntWidth::Regular => i32::try_from(value).is_ok(),
            IntWidth::Big => true,
        };
        if fits {
            Ok(value)
        } else {
            Err(Fault::OutOfRange(self.type_name()))
        }
    }
}

impl CastTarget {
    pub fn result_type(self) -> ValueType {
        match self {
            CastTarget::Text => ValueType::Text,
            CastTarget::Bool => ValueType::Bool,
            CastTarget::Float => ValueType::Float,
            CastTarget::Integer(_) => ValueType::Int,
            CastTarget::Numeric(_) => ValueType::Numeric,
            CastTarget::Temporal(TemporalKind::Date) => ValueType::Date,
            CastTarget::Temporal(TemporalKind::Timestamp) => ValueType::Timestamp,
            CastTarget::Temporal(TemporalKind::TimestampTz) => ValueType::TimestampTz,
        }
    }

    /// PostgreSQL's name of the type, as its errors write it.
    fn type_name(self) -> &'static str {
        match self {
            CastTarget::Text => "text",
            CastTarget::Bool => "boolean",
            CastTarget::Float => "double precision",
            CastTarget::Integer(width) => width.type_name(),
            CastTarget::Numeric(_) => "numeric",
            CastTarget::Temporal(kind) => temporal::kind_name(kind),
        }
    }

    /// Whether a value of type `from` can be cast to this target at all.
    pub fn accepts(self, from: ValueType) -> bool {
        use ValueType as T;
        match self {
            _ if from == T::Null || from == T::Text => true,
            CastTarget::Text => true,
            // PostgreSQL casts only `integer` of the integers; `bigint` and
            // `smallint` columns are held alike here, and cast as it would.
            // A JSON number or boolean casts as jsonb's does.
            CastTarget::Bool => matches!(from, T::Bool | T::Int | T::Json),
            CastTarget::Float => from.is_numeric() || from == T::Json,
            CastTarget::Integer(_) => from.is_numeric() || matches!(from, T::Bool | T::Json),
            CastTarget::Numeric(_) => from.is_numeric() || from == T::Json,
            CastTarget::Temporal(_) => from.is_temporal(),
        }
    }
}

/// `value::target`; NULL stays NULL.
pub(crate) fn cast(value: &Value, target: CastTarget) -> Result<Value, Fault> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if !target.accepts(ValueType::of(value)) {
        return Err(Fault::TypeMismatch(format!(
            "cannot cast {} to {}",
            ValueType::of(value),
            target.result_type()
        )));
    }
    if let (Value::Json(json), target) = (value, target)
        && target != CastTarget::Text
    {
        return cast(
            &json_ops::scalar_for_cast(json, target.type_name())?,
            target,
        );
    }
    match target {
        CastTarget::Text => Ok(Value::Text(text_of(value))),
        CastTarget::Bool => to_bool(value).map(Value::Bool),
        CastTarget::Float => to_float(value).map(Value::Float),
        CastTarget::Integer(width) => to_integer(value, width).map(Value::Int),
        CastTarget::Numeric(typmod) => to_numeric(value, typmod),
        CastTarget::Temporal(kind) => to_temporal(value, kind),
    }
}

/// A value's text in casts and `||`: the canonical forms of `change.rs`, and
/// PostgreSQL's spelling of the float specials.
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::Float(float) if float.is_infinite() => if *float > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_owned(),
        Value::Float(float) if float.is_nan() => "NaN".to_owned(),
        other => other.to_text(),
    }
}

fn to_float(value: &Value) -> Result<f64, Fault> {
    match value {
        Value::Float(float) => Ok(*float),
        // As PostgreSQL's int8 to float8: the nearest double.
        Value::Int(int) => Ok(*int as f64),
        Value::Numeric(text) | Value::Text(text) => parse_float8(text),
        other => Err(Fault::TypeMismatch(format!(
            "cannot cast {} to float",
            ValueType::of(other)
        ))),
    }
}

/// PostgreSQL's `float8in`: surrounding whitespace ignored, `NaN`,
/// `Infinity` and `inf` in any case, and a value too large or too small
/// for a double refused rather than made infinite or zero.
fn parse_float8(text: &str) -> Result<f64, Fault> {
    let trimmed = trim_space(text);
    let invalid = || {
        Fault::InvalidValue(format!(
            "invalid input syntax for type double precision: {}",
            quoted(text)
        ))
    };
    // Rust reads what strtod does but hexadecimal, and no more.
    let float: f64 = trimmed.parse().map_err(|_| invalid())?;
    let unsigned = trimmed.trim_start_matches(['+', '-']);
    let special = ["inf", "infinity", "nan"]
        .iter()
        .any(|word| unsigned.eq_ignore_ascii_case(word));
    let mantissa = unsigned.split(['e', 'E']).next().unwrap_or_default();
    let underflow = float == 0.0 && mantissa.chars().any(|c| matches!(c, '1'..='9'));
    if !special && (float.is_infinite() || underflow) {
        return Err(Fault::InvalidValue(format!(
            "{} is out of range for type double precision",
            quoted(trimmed)
        )));
    }
    Ok(float)
}

/// `text` without the whitespace around it that PostgreSQL's number and
/// boolean inputs ignore (`isspace`: vertical tab and form feed too).
fn trim_space(text: &str) -> &str {
    text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
}

fn to_bool(value: &Value) -> Result<bool, Fault> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::Int(int) => Ok(*int != 0),
        Value::Text(text) => boolean_of(text),
        other => Err(Fault::TypeMismatch(format!(
            "cannot cast {} to bool",
            ValueType::of(other)
        ))),
    }
}

/// Text read as a boolean, as a cast and a comparison with one read it; an
/// error in PostgreSQL's words when it is none.
pub(crate) fn boolean_of(text: &str) -> Result<bool, Fault> {
    parse_bool(text).ok_or_else(|| {
        Fault::InvalidValue(format!(
            "invalid input syntax for type boolean: {}",
            quoted(text)
        ))
    })
}

/// PostgreSQL's `boolin`: surrounding whitespace ignored, any case, and any
/// unambiguous prefix of `true`, `false`, `yes`, `no`, or `on`, `off`
/// (two letters at least), `1` or `0`.
fn parse_bool(text: &str) -> Option<bool> {
    let word = trim_space(text).to_ascii_lowercase();
    let prefix_of = |whole: &str, at_least: usize| {
        word.len() >= at_least.max(1) && whole.starts_with(word.as_str())
    };
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || word == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || word == "0" {
        Some(false)
    } else {
        None
    }
}

/// An integer value refused past `width`'s range, as PostgreSQL refuses
/// `integer` arithmetic that overflows; any other value as it is.
pub(crate) fn range_checked(value: Value, width: IntWidth) -> Result<Value, Fault> {
    match value {
        Value::Int(int) => width.range_checked(int).map(Value::Int),
        other => Ok(other),
    }
}

fn to_integer(value: &Value, width: IntWidth) -> Result<i64, Fault> {
    let wide = match value {
        Value::Int(int) => *int,
        Value::Bool(flag) => i64::from(*flag),
        Value::Float(float) => float_to_i64(*float)?,
        Value::Text(text) => text.trim().parse().map_err(|_| {
            Fault::InvalidValue(format!(
                "invalid input syntax for type {}: {}",
                width.type_name(),
                quoted(text)
            ))
        })?,
        other => decimal_of(other)?
            .to_i64_rounded()
            .ok_or(Fault::OutOfRange(width.type_name()))?,
    };
    width.range_checked(wide)
}

/// Rounded half to even, as PostgreSQL's float-to-integer casts do.
fn float_to_i64(float: f64) -> Result<i64, Fault> {
    let rounded = float.round_ties_even();
    // i64::MAX as f64 rounds up to 2^63, which no longer fits.
    if rounded.is_finite() && rounded >= i64::MIN as f64 && rounded < i64::MAX as f64 {
        Ok(rounded as i64)
    } else {
        Err(Fault::OutOfRange("bigint"))
    }
}

fn to_numeric(value: &Value, typmod: Option<NumericTypmod>) -> Result<Value, Fault> {
    let decimal = match value {
        Value::Text(text) => Decimal::parse(text).ok_or_else(|| {
            Fault::InvalidValue(format!(
                "invalid input syntax for type numeric: {}",
                quoted(text)
            ))
        })?,
        other => decimal_of(other)?,
    };
    let decimal = match typmod {
        Some(typmod) => apply_typmod(&decimal, typmod)?,
        None => decimal,
    };
    Ok(Value::Numeric(decimal.to_text()))
}

/// Rounds to the declared scale and refuses values with more integer
/// digits than the precision leaves (PostgreSQL's "numeric field overflow").
fn apply_typmod(decimal: &Decimal, typmod: NumericTypmod) -> Result<Decimal, Fault> {
    let scale = i64::try_from(typmod.scale).map_err(|_| Fault::OutOfRange("numeric"))?;
    let rounded = decimal.round(scale)?;
    if rounded == Decimal::NaN {
        return Ok(rounded);
    }
    let limit = Decimal::parse(&format!(
        "1e{}",
        typmod.precision.saturating_sub(typmod.scale)
    ))
    .ok_or(Fault::OutOfRange("numeric"))?;
    if rounded.abs().total_cmp(&limit).is_ge() {
        return Err(Fault::OutOfRange("numeric field"));
    }
    Ok(rounded)
}

fn to_temporal(value: &Value, kind: TemporalKind) -> Result<Value, Fault> {
    let text = match value {
        Value::Text(text)
        | Value::Date(text)
        | Value::Timestamp(text)
        | Value::TimestampTz(text) => text,
        other => {
            return Err(Fault::TypeMismatch(format!(
                "cannot cast {}",
                ValueType::of(other)
            )));
        }
    };
    let canonical = if temporal::is_infinite(text.trim()) {
        text.trim().to_owned()
    } else if let (Value::TimestampTz(text), TemporalKind::Date | TemporalKind::Timestamp) =
        (value, kind)
    {
        // An instant's date and time are those of the database's zone.
        let instant = temporal::parse_value(text, TemporalKind::TimestampTz)?;
        TimeZone::current().to_local(instant).format(kind)
    } else {
        temporal::parse_value(text, kind)?.format(kind)
    };
    Ok(temporal_value(canonical, kind))
}

pub(crate) fn temporal_value(text: String, kind: TemporalKind) -> Value {
    match kind {
        TemporalKind::Date => Value::Date(text),
        TemporalKind::Timestamp => Value::Timestamp(text),
        TemporalKind::TimestampTz => Value::TimestampTz(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIGINT: CastTarget = CastTarget::Integer(IntWidth::Big);
    const INTEGER: CastTarget = CastTarget::Integer(IntWidth::Regular);
    const DATE: CastTarget = CastTarget::Temporal(TemporalKind::Date);

    fn text(t: &str) -> Value {
        Value::Text(t.into())
    }

    #[test]
    fn integer_casts_round_and_range_check() {
        assert_eq!(cast(&text(" 42 "), BIGINT), Ok(Value::Int(42)));
        assert_eq!(
            cast(&Value::Numeric("2.5".into()), BIGINT),
            Ok(Value::Int(3))
        );
        assert_eq!(cast(&Value::Float(2.5), BIGINT), Ok(Value::Int(2)));
        assert_eq!(cast(&Value::Bool(true), INTEGER), Ok(Value::Int(1)));
        assert_eq!(
            cast(&Value::Int(3_000_000_000), INTEGER),
            Err(Fault::OutOfRange("integer"))
        );
        assert_eq!(
            cast(&Value::Float(1e19), BIGINT),
            Err(Fault::OutOfRange("bigint"))
        );
        assert_eq!(
            cast(&Value::Float(f64::NAN), BIGINT),
            Err(Fault::OutOfRange("bigint"))
        );
        assert!(matches!(
            cast(&text("abc"), BIGINT),
            Err(Fault::InvalidValue(_))
        ));
    }

    #[test]
    fn numeric_casts_keep_digits_and_apply_typmod() {
        let numeric = CastTarget::Numeric(None);
        assert_eq!(
            cast(&text("1.50"), numeric),
            Ok(Value::Numeric("1.50".into()))
        );
        assert_eq!(
            cast(&Value::Int(7), numeric),
            Ok(Value::Numeric("7".into()))
        );
        let money = CastTarget::Numeric(Some(NumericTypmod {
            precision: 5,
            scale: 2,
        }));
        assert_eq!(
            cast(&text("12.345"), money),
            Ok(Value::Numeric("12.35".into()))
        );
        assert_eq!(
            cast(&text("999.995"), money),
            Err(Fault::OutOfRange("numeric field"))
        );
        assert!(cast(&Value::Bool(true), numeric).is_err());
    }

    #[test]
    fn temporal_casts_convert_between_kinds() {
        let tz = CastTarget::Temporal(TemporalKind::TimestampTz);
        let ts = Value::TimestampTz("2024-05-06T23:30:00.000000Z".into());
        assert_eq!(cast(&ts, DATE), Ok(Value::Date("2024-05-06".into())));
        assert_eq!(
            cast(&Value::Date("2024-05-06".into()), tz),
            Ok(Value::TimestampTz("2024-05-06T00:00:00.000000Z".into()))
        );
        assert_eq!(
            cast(&text("2024-05-06 10:00+02"), tz),
            Ok(Value::TimestampTz("2024-05-06T08:00:00.000000Z".into()))
        );
        assert_eq!(
            cast(&Value::Timestamp("infinity".into()), DATE),
            Ok(Value::Date("infinity".into()))
        );
        assert!(matches!(
            cast(&text("2024-02-30"), DATE),
            Err(Fault::InvalidValue(_))
        ));
        assert!(matches!(
            cast(&Value::Int(20240506), DATE),
            Err(Fault::TypeMismatch(_))
        ));
    }

    #[test]
    fn text_casts_use_canonical_forms() {
        assert_eq!(cast(&Value::Bool(true), CastTarget::Text), Ok(text("true")));
        assert_eq!(
            cast(&Value::Float(f64::INFINITY), CastTarget::Text),
            Ok(text("Infinity"))
        );
        assert_eq!(
            cast(&Value::Date("2024-05-06".into()), CastTarget::Text),
            Ok(text("2024-05-06"))
        );
        assert_eq!(cast(&Value::Null, CastTarget::Text), Ok(Value::Null));
    }
}
