//! Sort keys: bytes whose order is the order of [`compare_values`] among
//! values of one type, and which are equal exactly when the values compare
//! equal (`1.0` and `1.00`, `-0.0` and `0.0`, two spellings of one instant).
//!
//! The aggregate state keeps the inputs of `min`, `max` and `count_distinct`
//! in a sorted store under these keys, so the smallest value of a group is
//! its first key and distinct values are distinct keys.
//!
//! [`compare_values`]: super::compare_values

use bigdecimal::BigDecimal;

use crate::change::Value;

use super::numeric::Decimal;
use super::temporal::{self, TemporalKind};

/// The sort key of a non-NULL value, or `None` for NULL and json (which has
/// no order) and for a value whose text cannot be read as its type.
pub fn sort_key(value: &Value) -> Option<Vec<u8>> {
    let mut key = Vec::new();
    match value {
        Value::Null | Value::Json(_) => return None,
        Value::Bool(b) => key.push(u8::from(*b)),
        Value::Int(i) => push_i64(&mut key, *i),
        Value::Float(f) => key.extend_from_slice(&float_bits(*f).to_be_bytes()),
        Value::Numeric(text) => numeric_key(&Decimal::parse(text)?, &mut key),
        Value::Text(text) => key.extend_from_slice(text.as_bytes()),
        Value::Date(text) => temporal_key(text, TemporalKind::Date, &mut key)?,
        Value::Timestamp(text) => temporal_key(text, TemporalKind::Timestamp, &mut key)?,
        Value::TimestampTz(text) => temporal_key(text, TemporalKind::TimestampTz, &mut key)?,
    }
    Some(key)
}

/// Flipping the sign bit makes big-endian byte order numeric order.
fn push_i64(key: &mut Vec<u8>, value: i64) {
    key.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
}

/// IEEE bits ordered as numbers: negative values have every bit flipped,
/// positive ones only the sign bit. `-0.0` is `0.0` and every NaN is one NaN,
/// above infinity, as PostgreSQL orders floats.
fn float_bits(value: f64) -> u64 {
    let value = if value == 0.0 {
        0.0
    } else if value.is_nan() {
        f64::NAN
    } else {
        value
    };
    let bits = value.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    }
}

const NEGATIVE_INFINITY: u8 = 0;
const NEGATIVE: u8 = 1;
const ZERO: u8 = 2;
const POSITIVE: u8 = 3;
const INFINITY: u8 = 4;
const NAN: u8 = 5;

/// A class byte, then for finite non-zero values the decimal exponent and the
/// significant digits without trailing zeros (so `1.0` and `1.00` agree),
/// ended by a zero byte so that `1.2` sorts before `1.25`. Negative values
/// store the bytes of their magnitude inverted, which reverses their order.
fn numeric_key(value: &Decimal, key: &mut Vec<u8>) {
    let finite = match value {
        Decimal::NegativeInfinity => return key.push(NEGATIVE_INFINITY),
        Decimal::Infinity => return key.push(INFINITY),
        Decimal::NaN => return key.push(NAN),
        Decimal::Finite(finite) => finite,
    };
    let (digits, exponent) = significant_digits(finite);
    if digits.is_empty() {
        return key.push(ZERO);
    }
    let mut magnitude = Vec::with_capacity(digits.len() + 9);
    push_i64(&mut magnitude, exponent);
    magnitude.extend_from_slice(digits.as_bytes());
    magnitude.push(0);
    if finite.sign() == bigdecimal::num_bigint::Sign::Minus {
        key.push(NEGATIVE);
        key.extend(magnitude.iter().map(|byte| !byte));
    } else {
        key.push(POSITIVE);
        key.extend(magnitude);
    }
}

/// The digits of |value| without leading or trailing zeros, and the power of
/// ten of the first one plus one: 12.5 is ("125", 2), 0.05 is ("5", -1).
fn significant_digits(value: &BigDecimal) -> (String, i64) {
    let (integer, scale) = value.as_bigint_and_exponent();
    let text = integer.magnitude().to_string();
    let trimmed = text.trim_end_matches('0');
    if trimmed.is_empty() {
        return (String::new(), 0);
    }
    let exponent = text.len() as i64 - scale;
    (trimmed.to_owned(), exponent)
}

/// -infinity, then instants by (day, microsecond of day), then infinity.
fn temporal_key(text: &str, kind: TemporalKind, key: &mut Vec<u8>) -> Option<()> {
    let (class, days, micros_of_day) = temporal::order_key(text, kind)?;
    key.push((class + 1) as u8);
    if class == 0 {
        push_i64(key, days);
        push_i64(key, micros_of_day);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::compare_values;

    fn assert_same_order(values: &[Value]) {
        for a in values {
            for b in values {
                let expected = compare_values(a, b).expect("comparable");
                let actual = sort_key(a).cmp(&sort_key(b));
                assert_eq!(actual, expected, "{a:?} vs {b:?}");
            }
        }
    }

    fn numerics(texts: &[&str]) -> Vec<Value> {
        texts.iter().map(|t| Value::Numeric((*t).into())).collect()
    }

    #[test]
    fn numerics_sort_by_value_and_equal_values_share_a_key() {
        assert_same_order(&numerics(&[
            "-Infinity",
            "-1000",
            "-12.5",
            "-1.25",
            "-1.2",
            "-1",
            "-0.05",
            "0",
            "0.00",
            "0.05",
            "0.5",
            "1",
            "1.0",
            "1.00",
            "1.2",
            "1.25",
            "9.99",
            "10",
            "12.5",
            "1000",
            "Infinity",
            "NaN",
        ]));
    }

    #[test]
    fn floats_sort_by_value_with_one_zero_and_one_nan() {
        let floats: Vec<Value> = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            2.5,
            f64::INFINITY,
            f64::NAN,
        ]
        .into_iter()
        .map(Value::Float)
        .collect();
        assert_same_order(&floats);
    }

    #[test]
    fn integers_text_and_booleans_keep_their_order() {
        assert_same_order(&[
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(0),
            Value::Int(7),
        ]);
        assert_same_order(&[
            Value::Text("".into()),
            Value::Text("a".into()),
            Value::Text("ab".into()),
            Value::Text("é".into()),
        ]);
        assert_same_order(&[Value::Bool(false), Value::Bool(true)]);
    }

    #[test]
    fn instants_sort_by_time_whatever_their_spelling() {
        let stamps: Vec<Value> = [
            "-infinity",
            "0099-01-01T00:00:00.000000Z",
            "2024-01-05T10:00:00.000000Z",
            "2024-01-05T10:00:00.500000Z",
            "infinity",
        ]
        .into_iter()
        .map(|t| Value::TimestampTz(t.into()))
        .collect();
        assert_same_order(&stamps);
        let other_zone = Value::TimestampTz("2024-01-05T12:00:00+02:00".into());
        assert_eq!(sort_key(&stamps[2]), sort_key(&other_zone));
        // Years past 9999 sort by value, not as text.
        let far = Value::TimestampTz("12024-01-01T00:00:00.000000Z".into());
        assert!(sort_key(&far) > sort_key(&stamps[3]) && sort_key(&far) < sort_key(&stamps[4]));
    }

    /// Every date PostgreSQL holds has a key: BC dates, as PostgreSQL
    /// writes them, and years of up to seven digits.
    #[test]
    fn dates_of_every_era_sort_by_day() {
        let dates: Vec<Value> = [
            "-infinity",
            "4714-11-24 BC",
            "0044-03-15 BC",
            "0001-12-31 BC",
            "0001-01-01",
            "2024-01-01",
            "262144-01-01",
            "1000000-01-01",
            "5874897-12-31",
            "infinity",
        ]
        .into_iter()
        .map(|t| Value::Date(t.into()))
        .collect();
        assert!(dates.iter().all(|d| sort_key(d).is_some()), "{dates:?}");
        assert_same_order(&dates);
        let keys: Vec<_> = dates.iter().map(sort_key).collect();
        assert!(keys.is_sorted(), "{dates:?}");
    }

    #[test]
    fn null_and_json_have_no_key() {
        assert_eq!(sort_key(&Value::Null), None);
        assert_eq!(sort_key(&Value::Json("{}".into())), None);
    }
}
