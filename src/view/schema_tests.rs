//! Tests of `schemas/view.schema.json`, the schema editors use to autocomplete
//! and flag view files. A small structural checker (no `pattern`, no formats:
//! a full validator crate is too heavy for this) runs the example view and a few
//! invalid ones through it, so that the schema and the format stay in step.

use std::path::Path;

use serde_json::{Map, Value};

use super::aggregate::tests::CATEGORY_DAILY_SALES;
use super::document::parse_yaml;
use super::node::{Node, NodeValue};

const SCHEMA: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schemas/view.schema.json"
));
const ORDER_CACHE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/views/order_cache.yaml"
));
const PRODUCT_SEARCH: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/views/product_search.yaml"
));

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("the schema is valid JSON")
}

/// The YAML file as the JSON value an editor's YAML plugin would validate.
fn yaml_as_json(text: &str) -> Value {
    let node = parse_yaml(Path::new("test.yaml"), text).expect("valid YAML");
    node_as_json(&node)
}

fn node_as_json(node: &Node) -> Value {
    match &node.value {
        NodeValue::Null => Value::Null,
        NodeValue::Text(text) => Value::String(text.clone()),
        NodeValue::Other(text) => scalar_as_json(text),
        NodeValue::List(items) => Value::Array(items.iter().map(node_as_json).collect()),
        NodeValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|entry| (entry.key.clone(), node_as_json(&entry.value)))
                .collect(),
        ),
    }
}

/// A boolean or a number as JSON, the way an editor's YAML plugin reads it.
fn scalar_as_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Whether `value` satisfies `schema`, for the keywords this schema uses.
fn satisfies(root: &Value, schema: &Value, value: &Value) -> bool {
    let Some(keywords) = schema.as_object() else {
        return schema.as_bool().unwrap_or(false);
    };
    keywords
        .iter()
        .all(|(keyword, argument)| keyword_holds(root, keywords, keyword, argument, value))
}

fn keyword_holds(
    root: &Value,
    keywords: &Map<String, Value>,
    keyword: &str,
    argument: &Value,
    value: &Value,
) -> bool {
    let all = |schemas: &Value| {
        schemas
            .as_array()
            .is_some_and(|list| list.iter().all(|schema| satisfies(root, schema, value)))
    };
    let matching = |schemas: &Value| {
        schemas.as_array().map_or(0, |list| {
            list.iter()
                .filter(|schema| satisfies(root, schema, value))
                .count()
        })
    };
    match keyword {
        "$ref" => satisfies(root, resolve(root, argument), value),
        "type" => type_matches(argument, value),
        "enum" => argument.as_array().is_some_and(|list| list.contains(value)),
        "const" => argument == value,
        "minLength" => value
            .as_str()
            .is_none_or(|text| text.chars().count() as u64 >= argument.as_u64().unwrap_or(0)),
        "required" => object_has_all(argument, value),
        "minimum" => value
            .as_f64()
            .is_none_or(|number| number >= argument.as_f64().unwrap_or(f64::MIN)),
        "minProperties" => value
            .as_object()
            .is_none_or(|object| object.len() as u64 >= argument.as_u64().unwrap_or(0)),
        "properties" | "additionalProperties" => properties_hold(root, keywords, value),
        "items" => value
            .as_array()
            .is_none_or(|items| items.iter().all(|item| satisfies(root, argument, item))),
        "allOf" => all(argument),
        "oneOf" => matching(argument) == 1,
        "not" => !satisfies(root, argument, value),
        "if" => {
            let branch = if satisfies(root, argument, value) {
                "then"
            } else {
                "else"
            };
            let branch = keywords.get(branch).unwrap_or(&Value::Bool(true));
            satisfies(root, branch, value)
        }
        _ => true,
    }
}

fn resolve<'a>(root: &'a Value, reference: &Value) -> &'a Value {
    let pointer = reference.as_str().and_then(|r| r.strip_prefix('#'));
    pointer
        .and_then(|pointer| root.pointer(pointer))
        .unwrap_or_else(|| panic!("unresolved $ref {reference}"))
}

fn type_matches(expected: &Value, value: &Value) -> bool {
    match expected.as_str() {
        Some("string") => value.is_string(),
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        other => panic!("type {other:?} is not used by the view schema"),
    }
}

fn object_has_all(required: &Value, value: &Value) -> bool {
    let (Some(object), Some(required)) = (value.as_object(), required.as_array()) else {
        return true;
    };
    required
        .iter()
        .all(|key| key.as_str().is_some_and(|key| object.contains_key(key)))
}

fn properties_hold(root: &Value, keywords: &Map<String, Value>, value: &Value) -> bool {
    let Some(object) = value.as_object() else {
        return true;
    };
    let empty = Map::new();
    let properties = keywords
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let additional = keywords
        .get("additionalProperties")
        .unwrap_or(&Value::Bool(true));
    object.iter().all(|(key, item)| match properties.get(key) {
        Some(schema) => satisfies(root, schema, item),
        None => satisfies(root, additional, item),
    })
}

fn validates(text: &str) -> bool {
    let schema = schema();
    satisfies(&schema, &schema, &yaml_as_json(text))
}

#[test]
fn the_schema_is_draft_2020_12() {
    assert_eq!(
        schema()["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

/// Editors show these descriptions while completing: none may be missing.
fn assert_every_property_is_described(schema: &Value, path: &str) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::Object(properties)) = object.get("properties") {
                for (name, property) in properties {
                    assert!(
                        property.get("description").is_some(),
                        "{path}.{name} has no description"
                    );
                }
            }
            // `if` only tests values: its `properties` declare nothing.
            for (key, child) in object.iter().filter(|(key, _)| *key != "if") {
                assert_every_property_is_described(child, &format!("{path}.{key}"));
            }
        }
        Value::Array(items) => {
            for item in items {
                assert_every_property_is_described(item, path);
            }
        }
        _ => {}
    }
}

#[test]
fn every_property_has_a_description() {
    assert_every_property_is_described(&schema(), "");
}

#[test]
fn the_kind_enum_lists_every_kind() {
    assert_eq!(
        schema()["properties"]["kind"]["enum"],
        serde_json::json!(["cache", "search", "aggregate"])
    );
}

#[test]
fn the_example_view_satisfies_the_schema() {
    assert!(validates(ORDER_CACHE));
    // With a computed field, a relation's `where` and a `limit`.
    let every_option = ORDER_CACHE
        .replace("status: status", "status: \"upper(status)\"")
        .replace(
            "order_by: id",
            "order_by: id\n    limit: 5\n    where: \"quantity > 0\"",
        );
    assert!(validates(&every_option));
    assert!(validates(&measured_items()));
    // A hidden `one` relation needs no fields.
    assert!(validates(&ORDER_CACHE.replace(
        "fields: { id: id, name: name, email: email }",
        "hidden: true"
    )));
}

/// The example with a measure in place of the `items` relation's fields.
fn measured_items() -> String {
    let fields = ORDER_CACHE
        .find("    fields:\n      sku")
        .expect("items' fields");
    format!("{}    measure: \"sum(quantity)\"\n", &ORDER_CACHE[..fields])
}

#[test]
fn the_search_example_satisfies_the_schema() {
    assert!(validates(PRODUCT_SEARCH));
    let every_option = PRODUCT_SEARCH
        .replace(
            "type: text }",
            "type: text, analyzer: english, fast: false }",
        )
        .replace(
            "id: id\n",
            "id: id\ndescription: products\nwhere: \"price_cents > 0\"\n",
        );
    assert!(validates(&every_option), "{every_option}");
}

#[test]
fn invalid_search_views_do_not_satisfy_the_schema() {
    let cases = [
        PRODUCT_SEARCH.replace("id: id\n", ""),
        PRODUCT_SEARCH.replace("id: id\n", "id: id\nkey: \"p:{id}\"\n"),
        PRODUCT_SEARCH.replace("type: text, stored: true", "type: text, fast: true"),
        PRODUCT_SEARCH.replace("type: keyword", "type: keyword, analyzer: english"),
        PRODUCT_SEARCH.replace("type: text }", "type: text, analyzer: klingon }"),
        PRODUCT_SEARCH.replace("type: i64", "type: integer"),
        PRODUCT_SEARCH.replace("stored: true }", "stored: \"yes\" }"),
        PRODUCT_SEARCH.replace("{ from: description, type: text }", "description"),
        PRODUCT_SEARCH.replace("{ from: description, type: text }", "{ type: text }"),
        PRODUCT_SEARCH.replace("type: i64,", "type: i64, boost: 2,"),
        PRODUCT_SEARCH.replace("one: categories", "one: categories, many: categories"),
        PRODUCT_SEARCH.replace("on: { id: category_id }", "on: {}"),
    ];
    for text in cases {
        assert!(!validates(&text), "the schema accepts:\n{text}");
    }
}

#[test]
fn invalid_views_do_not_satisfy_the_schema() {
    let cases = [
        ORDER_CACHE.replace("root: orders\n", ""),
        ORDER_CACHE.replace("kind: cache", "kind: table"),
        ORDER_CACHE.replace("view: order_cache", "view: order_cache\nttl: 5"),
        ORDER_CACHE.replace("one: customers", "one: customers\n    many: customers"),
        ORDER_CACHE.replace("one: customers", "one: customers\n    order_by: id"),
        ORDER_CACHE.replace("one: customers", "one: customers\n    limit: 1"),
        ORDER_CACHE.replace("order_by: id", "order_by: id\n    limit: 0"),
        ORDER_CACHE.replace("one: customers", "one: customers\n    join: left"),
        ORDER_CACHE.replace("on: { id: customer_id }", "on: {}"),
        ORDER_CACHE.replace("sku: sku", "sku: [sku]"),
        ORDER_CACHE.replace("root: orders", "root: orders\nid: id"),
        ORDER_CACHE.replace(
            "root: orders",
            "root: orders\njoins: { c: { one: customers, on: { id: customer_id } } }",
        ),
        ORDER_CACHE.replace("id: id", "id: { from: id, type: i64 }"),
        // A measure beside fields, on a `one` relation, and neither.
        ORDER_CACHE.replace(
            "    fields:\n      sku",
            "    measure: count()\n    fields:\n      sku",
        ),
        ORDER_CACHE.replace(
            "fields: { id: id, name: name, email: email }",
            "measure: count()",
        ),
        ORDER_CACHE.replace("fields: { id: id, name: name, email: email }", ""),
        // A hidden `many` relation, and a hidden one with a measure.
        ORDER_CACHE.replace("order_by: id", "order_by: id\n    hidden: true"),
        ORDER_CACHE.replace(
            "fields: { id: id, name: name, email: email }",
            "hidden: true\n    measure: count()",
        ),
        ORDER_CACHE.replace(
            "fields: { id: id, name: name, email: email }",
            "hidden: false",
        ),
    ];
    for text in cases {
        assert!(!validates(&text), "the schema accepts:\n{text}");
    }
}

#[test]
fn the_aggregate_example_satisfies_the_schema() {
    assert!(validates(CATEGORY_DAILY_SALES));
    // An aggregate view's joins are `one` joins; a search view's may be `many`.
    assert!(!validates(
        &CATEGORY_DAILY_SALES.replace("one: products", "many: products")
    ));
    assert!(validates(
        &PRODUCT_SEARCH.replace("one: categories", "many: categories")
    ));
}

/// The aggregate example with `measures: {}`.
fn without_measures() -> String {
    let start = CATEGORY_DAILY_SALES.find("measures:").expect("measures");
    let end = CATEGORY_DAILY_SALES.find("table:").expect("table");
    format!(
        "{}measures: {{}}\n{}",
        &CATEGORY_DAILY_SALES[..start],
        &CATEGORY_DAILY_SALES[end..]
    )
}

#[test]
fn invalid_aggregate_views_do_not_satisfy_the_schema() {
    let cases = [
        CATEGORY_DAILY_SALES.replace("table: analytics.category_daily_sales\n", ""),
        CATEGORY_DAILY_SALES.replace("group_by:\n", "groups:\n"),
        CATEGORY_DAILY_SALES.replace("root: order_items\n", "root: order_items\nid: id\n"),
        CATEGORY_DAILY_SALES.replace(
            "root: order_items\n",
            "root: order_items\nkey: \"x:{id}\"\n",
        ),
        CATEGORY_DAILY_SALES.replace("  items: count()\n", "  items: 5\n"),
        CATEGORY_DAILY_SALES.replace("  units: sum(quantity)\n", "  units: { sum: quantity }\n"),
        CATEGORY_DAILY_SALES.replace("one: products", "many: products"),
        CATEGORY_DAILY_SALES.replace(
            "table: analytics.category_daily_sales\n",
            "table: analytics.category_daily_sales\nfields: { id: id }\n",
        ),
        without_measures(),
    ];
    for text in cases {
        assert!(!validates(&text), "the schema accepts:\n{text}");
    }
}

#[test]
fn other_kinds_refuse_the_aggregate_keys() {
    for key in ["group_by: { a: a }", "measures: { n: count() }", "table: t"] {
        let cache = ORDER_CACHE.replace("root: orders\n", &format!("root: orders\n{key}\n"));
        assert!(!validates(&cache), "the schema accepts:\n{cache}");
        let search =
            PRODUCT_SEARCH.replace("root: products\n", &format!("root: products\n{key}\n"));
        assert!(!validates(&search), "the schema accepts:\n{search}");
    }
}
