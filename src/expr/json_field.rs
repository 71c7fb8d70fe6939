//! `->` and `->>`: a field of a JSON object by its name, or an element of a
//! JSON array by its index, as JSON (`->`) or as text (`->>`).
//!
//! The value is read from the stored JSON text and returned as its span of
//! that text, which is what PostgreSQL returns: a `json` value keeps its
//! input's text, and a `jsonb` value arrives in jsonb's own output form, in
//! which every nested value is already in that form too (numbers as their
//! numeric text, so `->>` of `1e2` in jsonb is `100`, of `1e2` in json `1e2`).

use std::collections::HashMap;

use serde_json::value::RawValue;

use super::error::Fault;
use super::types::ValueType;
use crate::change::Value;

/// `json -> key` (`as_text` false) or `json ->> key` (`as_text` true): the
/// object's field named `key` (text), or the array's element at `key` (an
/// integer, negative counting from the end). NULL when the value is not an
/// object (array) or has no such field (element), as in PostgreSQL.
pub(super) fn json_field(json: &Value, key: &Value, as_text: bool) -> Result<Value, Fault> {
    let text = match json {
        Value::Null => return Ok(Value::Null),
        Value::Json(text) => text,
        other => return Err(operand_error(ValueType::of(other), as_text)),
    };
    let element = match key {
        Value::Null => return Ok(Value::Null),
        Value::Text(name) => object_field(text, name)?,
        Value::Int(index) => array_element(text, *index)?,
        other => return Err(key_error(ValueType::of(other), as_text)),
    };
    let Some(element) = element else {
        return Ok(Value::Null);
    };
    as_value(text, element.get(), as_text)
}

/// `span`, a value read out of the JSON `text`, as `json` (`as_text`
/// false) or as text: a string unescaped, `null` NULL, anything else its
/// JSON text.
pub(super) fn as_value(text: &str, span: &str, as_text: bool) -> Result<Value, Fault> {
    if !as_text {
        return Ok(Value::Json(span.to_owned()));
    }
    Ok(match span.trim_start().as_bytes().first() {
        Some(b'n') => Value::Null,
        Some(b'"') => Value::Text(serde_json::from_str(span).map_err(invalid(text))?),
        _ => Value::Text(span.to_owned()),
    })
}

/// The operator's symbol.
pub(super) fn symbol(as_text: bool) -> &'static str {
    if as_text { "->>" } else { "->" }
}

pub(super) fn operand_error(found: ValueType, as_text: bool) -> Fault {
    Fault::TypeMismatch(operand_message(symbol(as_text), found))
}

/// What every JSON operator says of a left operand that is not JSON.
pub(super) fn operand_message(symbol: &str, found: ValueType) -> String {
    format!("`{symbol}` needs a json or jsonb operand, found {found}")
}

pub(super) fn key_error(found: ValueType, as_text: bool) -> Fault {
    Fault::TypeMismatch(format!(
        "`{}` takes a field name (text) or an array index (int), found {found}",
        symbol(as_text)
    ))
}

/// The last field named `name` (PostgreSQL's rule for `json` with a name
/// repeated; `jsonb` keeps one), or `None` when `text` is not an object.
pub(super) fn object_field<'a>(text: &'a str, name: &str) -> Result<Option<&'a RawValue>, Fault> {
    if !text.trim_start().starts_with('{') {
        return Ok(None);
    }
    let mut fields: HashMap<String, &RawValue> =
        serde_json::from_str(text).map_err(invalid(text))?;
    Ok(fields.remove(name))
}

/// The element at `index`, or `None` when `text` is an object or has no
/// such element. A scalar is read as an array of itself alone, as jsonb
/// stores it: `'"x"'::jsonb -> 0` is `"x"` (for a `json` scalar PostgreSQL
/// gives NULL; the two types arrive here alike, and jsonb is the common one).
pub(super) fn array_element(text: &str, index: i64) -> Result<Option<&RawValue>, Fault> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return Ok(None);
    }
    if !trimmed.starts_with('[') {
        let scalar: &RawValue = serde_json::from_str(text).map_err(invalid(text))?;
        return Ok(matches!(index, 0 | -1).then_some(scalar));
    }
    let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(invalid(text))?;
    let position = if index < 0 {
        i64::try_from(elements.len())
            .ok()
            .and_then(|len| len.checked_add(index))
    } else {
        Some(index)
    };
    Ok(position
        .and_then(|position| usize::try_from(position).ok())
        .and_then(|position| elements.get(position).copied()))
}

pub(super) fn invalid(text: &str) -> impl Fn(serde_json::Error) -> Fault + '_ {
    move |error| {
        let shown: String = text.chars().take(80).collect();
        Fault::InvalidValue(format!("not valid JSON ({error}): {shown}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        Value::Json(text.into())
    }

    fn text(text: &str) -> Value {
        Value::Text(text.into())
    }

    fn field(doc: &str, key: Value, as_text: bool) -> Value {
        json_field(&json(doc), &key, as_text).unwrap()
    }

    #[test]
    fn a_field_comes_as_its_json_span_or_its_text() {
        let doc = r#"{"a": {"b": [1, 2.50]}, "s": "x\"\u00e9", "n": null, "e": 1e2, "t": true}"#;
        assert_eq!(field(doc, text("a"), false), json(r#"{"b": [1, 2.50]}"#));
        assert_eq!(field(doc, text("a"), true), text(r#"{"b": [1, 2.50]}"#));
        assert_eq!(field(doc, text("s"), false), json(r#""x\"\u00e9""#));
        assert_eq!(field(doc, text("s"), true), text("x\"é"));
        assert_eq!(field(doc, text("n"), false), json("null"));
        assert_eq!(field(doc, text("n"), true), Value::Null);
        assert_eq!(field(doc, text("e"), true), text("1e2"));
        assert_eq!(field(doc, text("t"), true), text("true"));
        assert_eq!(field(doc, text("missing"), true), Value::Null);
        assert_eq!(field(doc, Value::Int(0), true), Value::Null);
        assert_eq!(field(doc, Value::Null, true), Value::Null);
    }

    #[test]
    fn a_repeated_name_gives_its_last_value() {
        assert_eq!(field(r#"{"a": 1, "a": 2}"#, text("a"), true), text("2"));
    }

    #[test]
    fn an_element_is_found_by_index_from_either_end() {
        let doc = r#"["x", [true], 3]"#;
        assert_eq!(field(doc, Value::Int(0), true), text("x"));
        assert_eq!(field(doc, Value::Int(1), false), json("[true]"));
        assert_eq!(field(doc, Value::Int(-1), true), text("3"));
        assert_eq!(field(doc, Value::Int(-3), true), text("x"));
        assert_eq!(field(doc, Value::Int(3), true), Value::Null);
        assert_eq!(field(doc, Value::Int(-4), true), Value::Null);
        assert_eq!(field(doc, Value::Int(i64::MIN), true), Value::Null);
        assert_eq!(field(doc, text("0"), true), Value::Null);
    }

    /// As jsonb has it.
    #[test]
    fn a_scalar_is_an_array_of_itself() {
        assert_eq!(field(r#""s""#, Value::Int(0), true), text("s"));
        assert_eq!(field("3", Value::Int(-1), false), json("3"));
        assert_eq!(field("3", Value::Int(1), false), Value::Null);
    }

    #[test]
    fn scalars_have_no_fields_and_null_gives_null() {
        assert_eq!(field("3", text("a"), true), Value::Null);
        assert_eq!(field(r#"{"a": 1}"#, Value::Int(0), true), Value::Null);
        assert_eq!(json_field(&Value::Null, &text("a"), true), Ok(Value::Null));
        assert!(json_field(&text("{}"), &text("a"), true).is_err());
        assert!(json_field(&json("{}"), &Value::Bool(true), true).is_err());
    }
}
