//! Documents between viewkeeper's JSON encoding and Tantivy's.
//!
//! In: values as the engine writes them (README, "Value encoding"): numbers,
//! `numeric` as decimal strings, non-finite floats as `"NaN"`/`"Infinity"`,
//! dates and timestamps as ISO text, arrays as JSON arrays, `null` for a
//! missing value. Indexed: each scalar in its field's Tantivy type. Out:
//! the stored fields as they came in, kept whole in `_source`.

use serde_json::{Map, Value};
use tantivy::TantivyDocument;
use tantivy::schema::OwnedValue;

use super::SearchError;
use super::schema::{BoundField, IndexSchema};
use super::temporal::index_instant;
use crate::view::model::SearchFieldType;

/// Converts one view document; keys the view does not define are refused,
/// since they mean the engine and the index disagree about the view.
///
/// An array is its values: each scalar inside it (at any depth, NULLs
/// left out) is one value of the field, so `tags:red` finds `{red,blue}`,
/// as `'red' = ANY(tags)` does. Arrays come from a `many` join (a value
/// per joined row), an array column, or a `json` column.
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
    let mut source = Map::new();
    for field in &schema.fields {
        let value = match document.get(&field.name) {
            None | Some(Value::Null) => continue,
            Some(value) => value,
        };
        for value in scalars(value) {
            add_value(&mut converted, field, value)
                .map_err(|reason| value_error(id, &field.name, &reason))?;
        }
        if field.stored {
            source.insert(field.name.clone(), value.clone());
        }
    }
    converted.add_text(schema.source, Value::Object(source).to_string());
    Ok(converted)
}

/// The non-NULL scalars of a value: itself, or those inside an array.
fn scalars(value: &Value) -> Vec<&Value> {
    fn collect<'v>(value: &'v Value, into: &mut Vec<&'v Value>) {
        match value {
            Value::Null => {}
            Value::Array(values) => values.iter().for_each(|value| collect(value, into)),
            scalar => into.push(scalar),
        }
    }
    let mut found = Vec::new();
    collect(value, &mut found);
    found
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
    scalars(value)
        .into_iter()
        .try_for_each(|value| match field_type {
            SearchFieldType::Text(_) | SearchFieldType::Keyword => as_text(value).map(drop),
            SearchFieldType::I64 => as_i64(value).map(drop),
            SearchFieldType::F64 => as_f64(value).map(drop),
            SearchFieldType::Bool => as_bool(value).map(drop),
            SearchFieldType::Date => as_instant(value).map(drop),
        })
}

/// Strings as they are; anything else (numbers, `true`, a `json` column's
/// objects) as its JSON text. Arrays are split before ([`to_tantivy`]).
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
    index_instant(text)
}

/// The id and stored fields of a stored document, in the view's field
/// order, as the engine wrote them (from `_source`).
pub fn from_tantivy(schema: &IndexSchema, doc: &TantivyDocument) -> (String, Map<String, Value>) {
    let text = |field| {
        doc.get_first(field)
            .and_then(|value| match OwnedValue::from(value) {
                OwnedValue::Str(text) => Some(text),
                _ => None,
            })
    };
    let id = text(schema.id).unwrap_or_default();
    let mut source: Map<String, Value> = text(schema.source)
        .and_then(|source| serde_json::from_str(&source).ok())
        .unwrap_or_default();
    let fields = schema
        .fields
        .iter()
        .filter_map(|field| Some((field.name.clone(), source.remove(&field.name)?)))
        .collect();
    (id, fields)
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

    /// What is indexed of each field of a converted document.
    fn indexed(document: Value) -> Result<Map<String, Value>, SearchError> {
        let schema = index_schema(&product_fields())?;
        let Value::Object(document) = document else {
            panic!("test documents are objects")
        };
        let converted = to_tantivy(&schema, "p1", &document)?;
        let values = |field: &BoundField| {
            let values = converted.get_all(field.field);
            values
                .map(|value| index_json(OwnedValue::from(value)))
                .collect()
        };
        Ok(schema
            .fields
            .iter()
            .map(|field| (field.name.clone(), Value::Array(values(field))))
            .filter(|(_, values)| values != &json!([]))
            .collect())
    }

    fn index_json(value: OwnedValue) -> Value {
        match value {
            OwnedValue::Str(text) => json!(text),
            OwnedValue::I64(number) => json!(number),
            OwnedValue::F64(number) => json!(number.to_string()),
            OwnedValue::Bool(flag) => json!(flag),
            OwnedValue::Date(instant) => json!(instant.into_timestamp_micros()),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Hits show the stored fields as the engine wrote them; the index
    /// holds each in its own type.
    #[test]
    fn values_arrive_as_viewkeeper_encodes_them() {
        let document = json!({
            "name": "Trail shoe",
            "description": "light",
            "category": 42,
            "price_cents": "1250",
            "weight": "12.50",
            "in_stock": true,
            "released": "1970-01-02",
            "updated_at": "1970-01-01T00:00:01.120000Z",
            "listed_at": "1970-01-01T00:00:01.120000",
        });
        let mut stored = document.clone();
        stored
            .as_object_mut()
            .map(|fields| fields.remove("description"));
        assert_eq!(
            Value::Object(round_trip(document.clone()).expect("converts")),
            stored
        );
        assert_eq!(
            Value::Object(indexed(document).expect("converts")),
            json!({
                "name": ["Trail shoe"],
                "description": ["light"],
                "category": ["42"],
                "price_cents": [1250],
                "weight": ["12.5"],
                "in_stock": [true],
                "released": [86_400_000_000_i64],
                "updated_at": [1_120_000],
                "listed_at": [1_120_000],
            })
        );
    }

    /// An array is its values, at any depth, NULLs left out: a `many`
    /// join's rows, an array column's elements, a `json` array's items (an
    /// object inside it is its JSON text). A hit shows the array itself.
    #[test]
    fn an_array_is_indexed_as_its_values() {
        let document = json!({
            "name": ["Trail", null, "Road"],
            "category": [["a", "b"], [{"x": [true]}, null]],
            "price_cents": [900, null, "1250"],
            "released": [],
        });
        assert_eq!(
            Value::Object(round_trip(document.clone()).expect("converts")),
            document
        );
        assert_eq!(
            Value::Object(indexed(document).expect("converts")),
            json!({
                "name": ["Trail", "Road"],
                "category": ["a", "b", r#"{"x":[true]}"#],
                "price_cents": [900, 1250],
            })
        );
        let refused = json!({"price_cents": [1, "one"]});
        let error = indexed(refused).expect_err("refused");
        assert!(error.to_string().contains("\"one\""), "{error}");
    }

    /// A date beyond the index's years is indexed at the index's first or
    /// last instant, and shown as written.
    #[test]
    fn a_date_beyond_the_index_is_kept() {
        let document =
            json!({"released": "infinity", "updated_at": ["0044-03-15 BC", "9999-12-31"]});
        assert_eq!(
            Value::Object(round_trip(document.clone()).expect("converts")),
            document
        );
        assert_eq!(
            Value::Object(indexed(document).expect("converts")),
            json!({
                "released": [tantivy::DateTime::MAX.into_timestamp_micros()],
                "updated_at": [
                    tantivy::DateTime::MIN.into_timestamp_micros(),
                    tantivy::DateTime::MAX.into_timestamp_micros()
                ],
            })
        );
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
            (json!({"released": "soon"}), "released"),
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
