//! Order-preserving, self-delimiting byte encoding of values, for state-store keys.
//!
//! Keys are a name id ([`super::names`]) followed by encoded values (join
//! values, primary key). Each encoded value ends in a terminator that no value's bytes
//! can contain, so a prefix of whole values selects exactly the keys that start
//! with those values, and integers sort numerically.

use crate::change::Value;

const NULL: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
const INT: u8 = 0x04;
const FLOAT: u8 = 0x05;
const TEXT: u8 = 0x06;

/// Appends the encoding of `value` to `out`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int(i) => {
            out.push(INT);
            // Flipping the sign bit makes big-endian byte order numeric order.
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Numeric(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Timestamp(s)
        | Value::TimestampTz(s)
        | Value::Json(s) => {
            out.push(TEXT);
            encode_bytes(s.as_bytes(), out);
        }
    }
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

    #[test]
    fn integers_sort_numerically() {
        let keys: Vec<Vec<u8>> = [-5i64, -1, 0, 1, 300, i64::MAX]
            .iter()
            .map(|i| encode_values([&Value::Int(*i)]))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
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
