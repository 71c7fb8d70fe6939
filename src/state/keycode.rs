//! Order-preserving, self-delimiting byte encoding of values, for state-store keys.
//!
//! Keys are a name id ([`super::names`]) followed by encoded values (join
//! values, primary key). Each encoded value ends in a terminator that no value's bytes
//! can contain, so a prefix of whole values selects exactly the keys that start
//! with those values, and integers sort numerically.
//!
//! Numerics are keyed by value, as PostgreSQL's `=` compares them ([`numeric_key`]):
//! join keys, primary keys and aggregate group keys match when the values
//! are equal, whatever their scale or the other side's integer type.

use std::borrow::Cow;

use crate::change::Value;

const NULL: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
/// Zero; a negative integer of `n` bytes is tagged `INT_ZERO - n`, a
/// positive one `INT_ZERO + n` (`n` from 1 to 8).
const INT_ZERO: u8 = 0x14;
const FLOAT: u8 = 0x20;
const TEXT: u8 = 0x30;

/// Appends the encoding of `value` to `out`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int(i) => encode_int(*i, out),
        Value::Float(f) => {
            // Keyed by value, as PostgreSQL compares: `-0` equals `0` (one
            // group, one join key), and every NaN equals every other.
            let f = if *f == 0.0 {
                0.0
            } else if f.is_nan() {
                f64::NAN
            } else {
                *f
            };
            out.push(FLOAT);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Numeric(s) => match numeric_key(s) {
            NumericKey::Integer(i) => encode_int(i, out),
            NumericKey::Text(text) => {
                out.push(TEXT);
                encode_bytes(text.as_bytes(), out);
            }
        },
        Value::Text(s)
        | Value::Date(s)
        | Value::Timestamp(s)
        | Value::TimestampTz(s)
        | Value::Json(s) => {
            out.push(TEXT);
            encode_bytes(s.as_bytes(), out);
        }
    }
}

/// How a numeric is keyed.
#[derive(Debug, PartialEq, Eq)]
enum NumericKey<'a> {
    /// An integral value within an `i64`: keyed as that integer, so `1.00`
    /// matches a `bigint` 1.
    Integer(i64),
    /// Any other: its plain digits without trailing fraction zeros (`1.50`
    /// is `1.5`), or the text itself when it is not plain decimal digits
    /// (`NaN`, `Infinity`).
    Text(Cow<'a, str>),
}

/// A numeric's key form: the same for every spelling of one value, as
/// PostgreSQL's `=` on numerics ignores the scale (`1`, `1.0` and `1.00` are
/// one group, and each joins the others).
fn numeric_key(text: &str) -> NumericKey<'_> {
    let trimmed = text.trim();
    let (negative, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let plain = |digits: &str| digits.bytes().all(|b| b.is_ascii_digit());
    if (integer.is_empty() && fraction.is_empty()) || !plain(integer) || !plain(fraction) {
        return NumericKey::Text(Cow::Borrowed(text));
    }
    let integer = integer.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    if fraction.is_empty() {
        if integer.is_empty() {
            return NumericKey::Integer(0);
        }
        let signed = format!("{sign}{integer}");
        return match signed.parse() {
            Ok(value) => NumericKey::Integer(value),
            Err(_) => NumericKey::Text(Cow::Owned(signed)),
        };
    }
    let integer = if integer.is_empty() { "0" } else { integer };
    NumericKey::Text(Cow::Owned(format!("{sign}{integer}.{fraction}")))
}

/// An integer in as few bytes as its magnitude needs, after a tag that
/// says how many and its sign: numeric order is byte order, and an id
/// below 16 million takes 4 bytes instead of 9, so keys are shorter to
/// store, copy and compare. A negative integer's bytes are those of
/// `!i` (its magnitude less one) inverted, so a larger magnitude sorts
/// first.
fn encode_int(i: i64, out: &mut Vec<u8>) {
    if i == 0 {
        out.push(INT_ZERO);
        return;
    }
    let magnitude = if i > 0 { i as u64 } else { !(i as u64) };
    let len = (8 - magnitude.leading_zeros() as usize / 8).max(1);
    let bytes = if i > 0 { magnitude } else { !magnitude }.to_be_bytes();
    let tag = if i > 0 {
        INT_ZERO + len as u8
    } else {
        INT_ZERO - len as u8
    };
    out.push(tag);
    out.extend_from_slice(&bytes[8 - len..]);
}

/// Escapes 0x00 as 0x00 0xFF and terminates with 0x00 0x00, which keeps byte
/// order and makes the component self-delimiting.
fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Encodes a sequence of values as one key part.
pub fn encode_values<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        encode_value(value, &mut out);
    }
    out
}

/// The smallest key greater than every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xFF; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<u8> {
        encode_values(&[Value::Numeric(text.into())])
    }

    /// Numerics are keyed by value: every spelling of one value is one key,
    /// and an integral value is the key of the integer it equals.
    #[test]
    fn numerics_are_keyed_by_value() {
        for same in [
            &["1", "1.0", "1.00", "+1", "01.000"][..],
            &["0", "0.00", "-0", "-0.0"],
            &["-12.50", "-12.5", "-012.500"],
            &["0.5", ".50", "00.5"],
        ] {
            let keys: Vec<Vec<u8>> = same.iter().map(|text| numeric(text)).collect();
            assert!(keys.windows(2).all(|w| w[0] == w[1]), "{same:?}");
        }
        assert_eq!(numeric("1.00"), encode_values(&[Value::Int(1)]));
        assert_eq!(numeric("-7.0"), encode_values(&[Value::Int(-7)]));
        assert_ne!(numeric("1.5"), numeric("15"));
        assert_ne!(numeric("1.05"), numeric("1.5"));
        // Past an i64, and the special values: by their text.
        assert_eq!(
            numeric("99999999999999999999.00"),
            numeric("99999999999999999999")
        );
        assert_eq!(
            numeric("NaN"),
            encode_values(&[Value::Numeric("NaN".into())])
        );
        assert_ne!(numeric("Infinity"), numeric("-Infinity"));
    }

    /// Floats too: both zeros are one key, every NaN is one key.
    #[test]
    fn floats_are_keyed_by_value() {
        let float = |f: f64| encode_values(&[Value::Float(f)]);
        assert_eq!(float(-0.0), float(0.0));
        assert_eq!(float(f64::NAN), float(-f64::NAN));
        assert_ne!(float(f64::MIN_POSITIVE), float(0.0));
        assert_ne!(float(f64::INFINITY), float(f64::NEG_INFINITY));
    }

    #[test]
    fn integers_sort_numerically() {
        let numbers = [
            i64::MIN,
            i64::MIN + 1,
            -(1 << 40),
            -65_537,
            -65_536,
            -257,
            -256,
            -255,
            -2,
            -1,
            0,
            1,
            255,
            256,
            65_535,
            65_536,
            1 << 40,
            i64::MAX - 1,
            i64::MAX,
        ];
        let keys: Vec<Vec<u8>> = numbers
            .iter()
            .map(|i| encode_values([&Value::Int(*i)]))
            .collect();
        for (pair, numbers) in keys.windows(2).zip(numbers.windows(2)) {
            assert!(
                pair[0] < pair[1],
                "{} then {}: {pair:?}",
                numbers[0],
                numbers[1]
            );
        }
    }

    #[test]
    fn integers_take_the_bytes_their_magnitude_needs() {
        let len = |i: i64| encode_values([&Value::Int(i)]).len();
        assert_eq!(len(0), 1);
        assert_eq!(len(-1), 2);
        assert_eq!(len(255), 2);
        assert_eq!(len(-256), 2);
        assert_eq!(len(1_000_000), 4);
        assert_eq!(len(i64::MAX), 9);
        assert_eq!(len(i64::MIN), 9);
    }

    #[test]
    fn an_integer_followed_by_more_values_stays_in_order() {
        let key = |i: i64, j: i64| encode_values([&Value::Int(i), &Value::Int(j)]);
        assert!(key(1, 1_000) < key(2, 0));
        assert!(key(255, 0) < key(256, 0));
        assert!(key(-1, 5) < key(0, -5));
    }

    #[test]
    fn a_prefix_of_whole_values_does_not_match_longer_text() {
        let ab = encode_values([&Value::Text("ab".into()), &Value::Int(1)]);
        let a = encode_values([&Value::Text("a".into())]);
        assert!(!ab.starts_with(&a));
        let ab_prefix = encode_values([&Value::Text("ab".into())]);
        assert!(ab.starts_with(&ab_prefix) && ab < prefix_end(&ab_prefix));
    }

    #[test]
    fn embedded_zero_bytes_stay_distinct() {
        let a = encode_values([&Value::Text("a\0b".into())]);
        let b = encode_values([&Value::Text("a".into()), &Value::Text("b".into())]);
        assert_ne!(a, b);
    }
}
