//! Documents between viewkeeper's JSON encoding and Tantivy's.
//!
//! In: values as the engine writes them (README, "Value encoding"): numbers,
//! `numeric` as decimal strings, non-finite floats as `"NaN"`/`"Infinity"`,
//! dates and timestamps as ISO text, `null` for a missing value.
//! Out: stored fields as JSON, dates as RFC 3339 instants in UTC.

use serde_json::{Map, Value};
use tantivy::TantivyDocument;
use tantivy::schema::OwnedValue;

use super::SearchError;
use super::schema::{BoundField, IndexSchema};
use super::temporal::{format_instant, parse_instant};
use crate::view::model::SearchFieldType;

/// Converts one view document; keys the view does not define are refused,
/// since they mean the engine and the index disagree about the view.
pub fn to_tantivy(
    schema: &IndexSchema,
    id: &str,
    document: &Map<String, Value>,
) -> Result<TantivyDocument, SearchError> {
    let mut converted = TantivyDocument::new();
    converted.add_text(schema.id, id);
    if let Some(unknown) = document
        .keys()
        .find(|key| !schema.fields.iter().any(|field| &field.name == *key))
    {
        return Err(value_error(id, unknown, "not a field of the view"));
    }
    for field in &schema.fields {
        let values = match document.get(&field.name) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(values)) if field.many => values.iter().collect(),
            Some(value) => vec![value],
        };
        for value in values.into_iter().filter(|value| !value.is_null()) {
            add_value(&mut converted, field, value)
                .map_err(|reason| value_error(id, &field.name, &reason))?;
        }
    }
    Ok(converted)
}

fn value_error(id: &str, field: &str, reason: &str) -> SearchError {
    SearchError::Document {
        id: id.to_owned(),
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Adds one non-null value; the error says why it does not fit.
fn add_value(doc: &mut TantivyDocument, field: &BoundField, value: &Value) -> Result<(), String> {
    let target = field.field;
    match field.field_type {
        SearchFieldType::Text(_) | SearchFieldType::Keyword => {
            doc.add_text(target, as_text(value)?)
        }
        SearchFieldType::I64 => doc.add_i64(target, as_i64(value)?),
        SearchFieldType::F64 => doc.add_f64(target, as_f64(value)?),
        SearchFieldType::Bool => doc.add_bool(target, as_bool(value)?),
        SearchFieldType::Date => doc.add_date(target, as_instant(value)?),
    }
    Ok(())
}

/// Why `value` would not fit a field of `field_type`, if it would not:
/// the engine checks documents with it, so such a value becomes a dead
/// letter before it reaches (and stops) the index.
pub fn check_fits(field_type: SearchFieldType, value: &Value) -> Result<(), String> {
    match field_type {
        _ if value.is_null() => Ok(()),
        SearchFieldType::Text(_) | SearchFieldType::Keyword => as_text(value).map(drop),
        SearchFieldType::I64 => as_i64(value).map(drop),
        SearchFieldType::F64 => as_f64(value).map(drop),
        SearchFieldType::Bool => as_bool(value).map(drop),
        SearchFieldType::Date => as_instant(value).map(drop),
    }
}

/// Strings as they are; anything else (numbers, `true`, a `json` column's
/// objects and arrays) as its JSON text. An array is one value here: a
/// `many` join's values are split before ([`to_tantivy`]).
fn as_text(value: &Value) -> Result<String, String> {
    Ok(match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    })
}

/// A JSON integer, or an integer in a string (a `numeric` with no fraction).
fn as_i64(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| format!("{number} is not a 64-bit integer")),
        Value::String(text) => text
            .parse()
            .map_err(|_| format!("{text:?} is not a 64-bit integer")),
        other => Err(format!("expected an integer, got {other}")),
    }
}

/// A JSON number, or a decimal string (`numeric`, or a non-finite float
/// spelled as PostgreSQL does: `NaN`, `Infinity`, `-Infinity`).
fn as_f64(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(number) => number
            .as_f64()
            .ok_or_else(|| format!("{number} is not a number")),
        Value::String(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number")),
        other => Err(format!("expected a number, got {other}")),
    }
}

fn as_bool(value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("expected true or false, got {value}"))
}

fn as_instant(value: &Value) -> Result<tantivy::DateTime, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("expected a date or timestamp string, got {value}"))?;
    parse_instant(text)
}

/// The id and stored fields of a stored document, in the view's field order.
pub fn from_tantivy(schema: &IndexSchema, doc: &TantivyDocument) -> (String, Map<String, Value>) {
    let id = doc
        .get_first(schema.id)
        .and_then(|value| match OwnedValue::from(value) {
            OwnedValue::Str(id) => Some(id),
            _ => None,
        })
        .unwrap_or_default();
    let mut fields = Map::new();
    for field in schema.fields.iter().filter(|field| field.stored) {
        if field.many {
            let values = doc.get_all(field.field);
            let values: Vec<Value> = values.map(|v| to_json(OwnedValue::from(v))).collect();
            fields.insert(field.name.clone(), Value::Array(values));
        } else if let Some(value) = doc.get_first(field.field) {
            fields.insert(field.name.clone(), to_json(OwnedValue::from(value)));
        }
    }
    (id, fields)
}

/// Non-finite floats become strings, as viewkeeper writes them elsewhere.
fn to_json(value: OwnedValue) -> Value {
    match value {
        OwnedValue::Str(text) => Value::String(text),
        OwnedValue::I64(number) => Value::from(number),
        OwnedValue::U64(number) => Value::from(number),
        OwnedValue::F64(number) => serde_json::Number::from_f64(number)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(non_finite_text(number).to_owned())),
        OwnedValue::Bool(flag) => Value::Bool(flag),
        OwnedValue::Date(instant) => Value::String(format_instant(instant)),
        _ => Value::Null,
    }
}

fn non_finite_text(number: f64) -> &'static str {
    if number.is_nan() {
        "NaN"
    } else if number > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sink::search::schema::index_schema;
    use crate::sink::search::test_views::product_fields;

    fn round_trip(document: Value) -> Result<Map<String, Value>, SearchError> {
        let schema = index_schema(&product_fields())?;
        let Value::Object(document) = document else {
            panic!("test documents are objects")
        };
        let converted = to_tantivy(&schema, "p1", &document)?;
        let (id, fields) = from_tantivy(&schema, &converted);
        assert_eq!(id, "p1");
        Ok(fields)
    }

    #[test]
    fn values_arrive_as_viewkeeper_encodes_them() {
        let fields = round_trip(json!({
            "name": "Trail shoe",
            "category": 42,
            "price_cents": "1250",
            "weight": "12.50",
            "in_stock": true,
            "released": "2026-11-24",
            "updated_at": "2026-11-24T14:03:07.120000Z",
            "listed_at": "2026-11-24T14:03:07.120000",
        }))
        .expect("converts");
        assert_eq!(
            Value::Object(fields),
            json!({
                "name": "Trail shoe",
                "category": "42",
                "price_cents": 1250,
                "weight": 12.5,
                "in_stock": true,
                "released": "2026-11-24T00:00:00.000000Z",
                "updated_at": "2026-11-24T14:03:07.120000Z",
                "listed_at": "2026-11-24T14:03:07.120000Z",
            })
        );
    }

    /// A `json` column's array or object in a text or keyword field is its
    /// JSON text (an array was a dead letter: "expected one value").
    #[test]
    fn json_arrays_and_objects_are_their_text() {
        let fields = round_trip(json!({"name": ["a", {"b": 1}], "category": {"x": [true]}}))
            .expect("converts");
        assert_eq!(
            Value::Object(fields),
            json!({"name": r#"["a",{"b":1}]"#, "category": r#"{"x":[true]}"#})
        );
    }

    /// A `many` join's field takes each value of its array, and a hit
    /// shows them as an array, in order; an array in a field that is not a
    /// `many` join's stays one text.
    #[test]
    fn a_many_join_field_holds_each_value_of_its_array() {
        let mut fields = product_fields();
        for field in fields
            .iter_mut()
            .filter(|f| f.name == "name" || f.name == "price_cents")
        {
            field.many = true;
        }
        let schema = index_schema(&fields).expect("a schema");
        let document = json!({"name": ["Trail", "Road"], "price_cents": [900, null, "1250"],
                              "category": ["a", "b"]});
        let Value::Object(document) = document else {
            unreachable!()
        };
        let converted = to_tantivy(&schema, "p1", &document).expect("converts");
        let (_, stored) = from_tantivy(&schema, &converted);
        assert_eq!(
            Value::Object(stored),
            json!({"name": ["Trail", "Road"], "category": r#"["a","b"]"#,
                   "price_cents": [900, 1250]})
        );
        let refused = json!({"price_cents": [1, "one"]});
        let Value::Object(refused) = refused else {
            unreachable!()
        };
        assert!(to_tantivy(&schema, "p1", &refused).is_err());
    }

    #[test]
    fn nulls_are_omitted_and_non_finite_floats_are_strings() {
        let fields =
            round_trip(json!({"name": null, "weight": "NaN", "price_cents": 3})).expect("converts");
        assert_eq!(
            Value::Object(fields),
            json!({"price_cents": 3, "weight": "NaN"})
        );
        let fields = round_trip(json!({"weight": "-Infinity"})).expect("converts");
        assert_eq!(fields["weight"], json!("-Infinity"));
    }

    #[test]
    fn a_value_that_does_not_fit_names_the_document_and_field() {
        let cases = [
            (json!({"price_cents": "abc"}), "price_cents"),
            (json!({"price_cents": 1.5}), "price_cents"),
            (json!({"weight": "twelve"}), "weight"),
            (json!({"in_stock": "yes"}), "in_stock"),
            (json!({"released": "infinity"}), "released"),
            (json!({"released": 20261124}), "released"),
            (json!({"colour": "red"}), "colour"),
        ];
        for (document, expected_field) in cases {
            let error = round_trip(document.clone()).expect_err("refused");
            let SearchError::Document { id, field, .. } = &error else {
                panic!("{document}: unexpected error {error}")
            };
            assert_eq!((id.as_str(), field.as_str()), ("p1", expected_field));
        }
    }
}
