//! The jsonb operators besides `->` and `->>`: paths (`#>`, `#>>`), key
//! tests (`?`, `?|`, `?&`) and containment (`@>`, `<@`), and what a cast
//! reads of a JSON scalar (`(doc -> 'n')::numeric`).
//!
//! Each follows PostgreSQL's jsonb: a path step into an array reads an
//! index, a key test looks at the top level only, and containment compares
//! numbers by value and strings after unescaping. A path or a key list is
//! a text array, written as a literal (`'{a,0}'`, `ARRAY['a','b']`) and
//! read once when the view is parsed.

use std::collections::HashMap;

use serde_json::value::RawValue;

use super::arrays;
use super::error::{Fault, quoted};
use super::json_field;
use super::numeric::Decimal;
use super::types::ValueType;
use crate::change::Value;

/// Operators whose right operand is not a single key (`->`, `->>` are in
/// [`json_field`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonOp {
    /// `#>` (`as_text` false) or `#>>`: the value at a path.
    Path { as_text: bool },
    /// `?`: a top-level key, or a string element, is there.
    HasKey,
    /// `?|` (`all` false) or `?&`: any (every) key of a text array is there.
    HasKeys { all: bool },
    /// `@>`: the left value contains the right one.
    Contains,
    /// `<@`: the left value is contained in the right one.
    ContainedBy,
}

impl JsonOp {
    pub fn symbol(self) -> &'static str {
        match self {
            JsonOp::Path { as_text: false } => "#>",
            JsonOp::Path { as_text: true } => "#>>",
            JsonOp::HasKey => "?",
            JsonOp::HasKeys { all: false } => "?|",
            JsonOp::HasKeys { all: true } => "?&",
            JsonOp::Contains => "@>",
            JsonOp::ContainedBy => "<@",
        }
    }

    /// The type of the result, or the message that refuses the operands.
    pub fn result_type(self, left: ValueType, right: ValueType) -> Result<ValueType, String> {
        let json_or_null = |t: ValueType| matches!(t, ValueType::Json | ValueType::Null);
        if !json_or_null(left) {
            return Err(json_field::operand_message(self.symbol(), left));
        }
        let right_fits = match self {
            JsonOp::HasKey => matches!(right, ValueType::Text | ValueType::Null),
            JsonOp::Contains | JsonOp::ContainedBy => json_or_null(right),
            // A literal, checked when parsed.
            JsonOp::Path { .. } | JsonOp::HasKeys { .. } => true,
        };
        if !right_fits {
            let wanted = match self {
                JsonOp::HasKey => "text",
                _ => "json or jsonb",
            };
            return Err(format!(
                "`{}` needs {wanted} on its right, found {right}",
                self.symbol()
            ));
        }
        Ok(match self {
            JsonOp::Path { as_text: true } => ValueType::Text,
            JsonOp::Path { as_text: false } => ValueType::Json,
            _ => ValueType::Bool,
        })
    }
}

/// `left op right`; NULL on either side gives NULL.
pub(crate) fn apply(op: JsonOp, left: &Value, right: &Value) -> Result<Value, Fault> {
    if left.is_null() || right.is_null() {
        return Ok(Value::Null);
    }
    // An array is text (`{a,b}`), where JSON is `Value::Json`: `@>` and
    // `<@` with text on either side are the arrays' operators.
    if let Some(set_op) = arrays::set_op_of(op)
        && (matches!(left, Value::Text(_)) || matches!(right, Value::Text(_)))
    {
        return arrays::set_op(set_op, left, right);
    }
    let Value::Json(text) = left else {
        return Err(Fault::TypeMismatch(json_field::operand_message(
            op.symbol(),
            ValueType::of(left),
        )));
    };
    match (op, right) {
        (JsonOp::Path { as_text }, Value::Text(path)) => {
            let path = parse_text_array(path).map_err(Fault::InvalidValue)?;
            path_value(text, &path, as_text)
        }
        (JsonOp::HasKey, Value::Text(key)) => Ok(Value::Bool(Tree::parse(text)?.has_key(key))),
        (JsonOp::HasKeys { all }, Value::Text(keys)) => {
            let keys = parse_text_array(keys).map_err(Fault::InvalidValue)?;
            let tree = Tree::parse(text)?;
            // NULL elements are skipped, as PostgreSQL skips them.
            let mut present = keys.iter().flatten().map(|key| tree.has_key(key));
            Ok(Value::Bool(if all {
                present.all(|found| found)
            } else {
                present.any(|found| found)
            }))
        }
        (JsonOp::Contains | JsonOp::ContainedBy, Value::Json(other)) => {
            let (outer, inner) = match op {
                JsonOp::Contains => (text, other),
                _ => (other, text),
            };
            Ok(Value::Bool(
                Tree::parse(outer)?.contains_top(&Tree::parse(inner)?),
            ))
        }
        (op, other) => Err(Fault::TypeMismatch(format!(
            "`{}` cannot take {} on its right",
            op.symbol(),
            ValueType::of(other)
        ))),
    }
}

/// `#>` and `#>>`: each step reads an object's field by name or an array's
/// element by index (negative from the end); a step into a scalar, a
/// missing field, an index that is not an integer, or a NULL step gives
/// NULL. An empty path gives the whole value.
fn path_value(text: &str, path: &[Option<String>], as_text: bool) -> Result<Value, Fault> {
    let mut current: Option<Box<RawValue>> = None;
    for step in path {
        let Some(step) = step else {
            return Ok(Value::Null);
        };
        let span = current.as_deref().map_or(text, RawValue::get);
        let next = match span.trim_start().as_bytes().first() {
            Some(b'{') => json_field::object_field(span, step)?,
            Some(b'[') => match array_index(step) {
                Some(index) => json_field::array_element(span, index)?,
                None => None,
            },
            _ => None,
        };
        let Some(next) = next else {
            return Ok(Value::Null);
        };
        current = Some(next.to_owned());
    }
    let span = current.as_deref().map_or(text, RawValue::get);
    json_field::as_value(text, span, as_text)
}

/// A path step read as an array index as PostgreSQL reads it (`strtol`
/// into an `int`: leading blanks and a sign allowed, nothing after the
/// digits), or `None`.
fn array_index(step: &str) -> Option<i64> {
    let trimmed = step.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    trimmed.parse::<i32>().ok().map(i64::from)
}

/// A one-dimensional text array literal (`{a,"b c",NULL}`), as PostgreSQL's
/// `array_in` reads it ([`arrays::parse_array`]).
pub(crate) fn parse_text_array(text: &str) -> Result<Vec<Option<String>>, String> {
    let array = arrays::parse_array(text)?;
    if array.dimensions.len() > 1 {
        return Err(format!(
            "malformed array literal {}: only one-dimensional arrays are read",
            quoted(text)
        ));
    }
    Ok(array.elements)
}

/// A text array written back as a literal that [`parse_text_array`] reads.
pub(crate) fn text_array_literal(elements: &[Option<String>]) -> String {
    let written: Vec<String> = elements
        .iter()
        .map(|element| match element {
            None => "NULL".to_owned(),
            Some(text) => {
                let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{escaped}\"")
            }
        })
        .collect();
    format!("{{{}}}", written.join(","))
}

/// A JSON value read whole, with numbers kept exact so that containment
/// compares them by value (`1.0` matches `1`) as jsonb does.
enum Tree {
    Null,
    Bool(bool),
    Number(Decimal),
    String(String),
    Array(Vec<Tree>),
    /// jsonb keeps the last of a repeated name.
    Object(HashMap<String, Tree>),
}

impl Tree {
    fn parse(text: &str) -> Result<Tree, Fault> {
        let raw: &RawValue = serde_json::from_str(text).map_err(json_field::invalid(text))?;
        Tree::from_raw(raw)
    }

    fn from_raw(raw: &RawValue) -> Result<Tree, Fault> {
        let text = raw.get();
        let invalid = json_field::invalid(text);
        Ok(match text.as_bytes().first() {
            Some(b'{') => {
                let fields: HashMap<String, &RawValue> =
                    serde_json::from_str(text).map_err(invalid)?;
                let mut object = HashMap::with_capacity(fields.len());
                for (name, value) in fields {
                    object.insert(name, Tree::from_raw(value)?);
                }
                Tree::Object(object)
            }
            Some(b'[') => {
                let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(invalid)?;
                Tree::Array(
                    elements
                        .into_iter()
                        .map(Tree::from_raw)
                        .collect::<Result<_, _>>()?,
                )
            }
            Some(b'"') => Tree::String(serde_json::from_str(text).map_err(invalid)?),
            Some(b't') => Tree::Bool(true),
            Some(b'f') => Tree::Bool(false),
            Some(b'n') => Tree::Null,
            _ => Tree::Number(Decimal::parse(text).ok_or_else(|| {
                Fault::InvalidValue(format!("not a JSON number: {}", quoted(text)))
            })?),
        })
    }

    fn is_scalar(&self) -> bool {
        !matches!(self, Tree::Array(_) | Tree::Object(_))
    }

    /// `?`: an object's key, a string element of an array, or the string
    /// itself.
    fn has_key(&self, key: &str) -> bool {
        match self {
            Tree::Object(fields) => fields.contains_key(key),
            Tree::Array(elements) => elements
                .iter()
                .any(|element| matches!(element, Tree::String(s) if s == key)),
            Tree::String(s) => s == key,
            _ => false,
        }
    }

    /// `@>` at the top level, where jsonb holds a scalar as an array of
    /// itself: an array contains a scalar it has as an element, but a
    /// scalar contains no array.
    fn contains_top(&self, other: &Tree) -> bool {
        match (self, other) {
            (Tree::Array(elements), scalar) if scalar.is_scalar() => {
                elements.iter().any(|element| element.scalar_equals(scalar))
            }
            (scalar, other) if scalar.is_scalar() && other.is_scalar() => {
                scalar.scalar_equals(other)
            }
            _ => self.contains(other),
        }
    }

    /// jsonb's deep containment below the top level: an object contains
    /// another whose every field it has, with a value containing that
    /// field's value; an array contains another each of whose elements
    /// matches one of its own (a scalar by equality, a container by
    /// containment of the same kind).
    fn contains(&self, other: &Tree) -> bool {
        match (self, other) {
            (Tree::Object(fields), Tree::Object(wanted)) => wanted.iter().all(|(name, value)| {
                fields
                    .get(name)
                    .is_some_and(|field| field.contains_value(value))
            }),
            (Tree::Array(elements), Tree::Array(wanted)) => wanted
                .iter()
                .all(|value| elements.iter().any(|element| element.contains_value(value))),
            _ => false,
        }
    }

    /// One value against another of the same place: scalars are equal,
    /// containers of one kind contain.
    fn contains_value(&self, wanted: &Tree) -> bool {
        if self.is_scalar() || wanted.is_scalar() {
            self.scalar_equals(wanted)
        } else {
            self.contains(wanted)
        }
    }

    fn scalar_equals(&self, other: &Tree) -> bool {
        match (self, other) {
            (Tree::Null, Tree::Null) => true,
            (Tree::Bool(a), Tree::Bool(b)) => a == b,
            (Tree::Number(a), Tree::Number(b)) => a.total_cmp(b).is_eq(),
            (Tree::String(a), Tree::String(b)) => a == b,
            _ => false,
        }
    }
}

/// What a cast reads of a JSON value: the number of a JSON number, or the
/// boolean of `true`/`false`; any other kind is refused in PostgreSQL's
/// words (`cannot cast jsonb string to type integer`).
pub(crate) fn scalar_for_cast(text: &str, type_name: &str) -> Result<Value, Fault> {
    let trimmed = text.trim();
    let refuse =
        |kind: &str| Fault::InvalidValue(format!("cannot cast jsonb {kind} to type {type_name}"));
    let wants_bool = type_name == "boolean";
    match trimmed.as_bytes().first() {
        Some(b't' | b'f') if wants_bool => Ok(Value::Bool(trimmed.starts_with('t'))),
        Some(b't' | b'f') => Err(refuse("boolean")),
        Some(b'n') => Err(refuse("null")),
        Some(b'"') => Err(refuse("string")),
        Some(b'[') => Err(refuse("array")),
        Some(b'{') => Err(refuse("object")),
        Some(_) if wants_bool => Err(refuse("numeric")),
        Some(_) => Ok(Value::Numeric(trimmed.to_owned())),
        None => Err(Fault::InvalidValue(format!(
            "not valid JSON: {}",
            quoted(text)
        ))),
    }
}

#[cfg(test)]
mod tests;
