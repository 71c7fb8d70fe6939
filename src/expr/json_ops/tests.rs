//! Each case's expected value is what PostgreSQL 15 gives for the same
//! jsonb operands.

use super::*;

fn json(text: &str) -> Value {
    Value::Json(text.into())
}

fn text(text: &str) -> Value {
    Value::Text(text.into())
}

fn apply_ok(op: JsonOp, left: &str, right: Value) -> Value {
    apply(op, &json(left), &right).unwrap_or_else(|e| panic!("{left} {}: {e:?}", op.symbol()))
}

fn path(doc: &str, steps: &str, as_text: bool) -> Value {
    apply_ok(JsonOp::Path { as_text }, doc, text(steps))
}

fn contains(outer: &str, inner: &str) -> bool {
    apply_ok(JsonOp::Contains, outer, json(inner)) == Value::Bool(true)
}

#[test]
fn a_text_array_literal_reads_as_array_in_reads_it() {
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(parse_text_array("{}"), Ok(vec![]));
    assert_eq!(parse_text_array(" { } "), Ok(vec![]));
    assert_eq!(
        parse_text_array(r#"{a, b c ,"d,e", NULL,"NULL",\ x,"q\"\\"}"#),
        Ok(vec![
            some("a"),
            some("b c"),
            some("d,e"),
            None,
            some("NULL"),
            some(" x"),
            some("q\"\\"),
        ])
    );
    assert_eq!(parse_text_array(r#"{""}"#), Ok(vec![some("")]));
    for bad in [
        "a", "{a", "{a,}", "{,a}", "{a,,b}", r#"{"a}"#, "{{a}}", "{a\\}",
    ] {
        let error = parse_text_array(bad).unwrap_err();
        assert!(
            error.starts_with("malformed array literal"),
            "{bad}: {error}"
        );
    }
    let elements = vec![some("a,b"), None, some(r#"q"\"#), some("")];
    assert_eq!(
        parse_text_array(&text_array_literal(&elements)),
        Ok(elements)
    );
}

#[test]
fn a_path_reads_fields_and_elements() {
    let doc = r#"{"a": {"b": [1, 2.50], "c": null}, "s": "x\u00e9", "a b": 3, "": 4}"#;
    assert_eq!(path(doc, "{a,b,1}", false), json("2.50"));
    assert_eq!(path(doc, "{a,b,-1}", true), text("2.50"));
    assert_eq!(path(doc, "{a, b , \" 0\"}", true), text("1"));
    assert_eq!(path(doc, "{a,b,+0}", true), text("1"));
    assert_eq!(path(doc, "{a,b,01}", true), text("2.50"));
    assert_eq!(path(doc, "{s}", true), text("xé"));
    assert_eq!(path(doc, "{s}", false), json(r#""x\u00e9""#));
    assert_eq!(path(doc, "{a b}", true), text("3"));
    assert_eq!(path(doc, r#"{""}"#, true), text("4"));
    assert_eq!(path(doc, "{a,c}", false), json("null"));
    assert_eq!(path(doc, "{a,c}", true), Value::Null);
    assert_eq!(path(doc, "{}", false), json(doc));
    assert_eq!(path(r#""x""#, "{}", true), text("x"));
    for missing in [
        "{a,b,2}",
        "{a,b,1.0}",
        "{a,b,1x}",
        "{a,b,99999999999}",
        "{a,x}",
        "{s,0}",
        "{a,b,0,0}",
        "{NULL}",
        "{a,NULL}",
    ] {
        assert_eq!(path(doc, missing, false), Value::Null, "{missing}");
    }
    // A scalar is not an array of itself on a path, as it is for `->`.
    assert_eq!(path(r#""x""#, "{0}", false), Value::Null);
}

#[test]
fn key_tests_look_at_the_top_level() {
    let has = |doc: &str, key: &str| apply_ok(JsonOp::HasKey, doc, text(key));
    assert_eq!(has(r#"{"a": 1}"#, "a"), Value::Bool(true));
    assert_eq!(has(r#"{"a": {"b": 1}}"#, "b"), Value::Bool(false));
    assert_eq!(has(r#"["foo", 1]"#, "foo"), Value::Bool(true));
    assert_eq!(has(r#"[["foo"]]"#, "foo"), Value::Bool(false));
    assert_eq!(has(r#""foo""#, "foo"), Value::Bool(true));
    assert_eq!(has("1", "1"), Value::Bool(false));
    let keys =
        |doc: &str, all: bool, list: &str| apply_ok(JsonOp::HasKeys { all }, doc, text(list));
    assert_eq!(keys(r#"{"a": 1}"#, false, "{a,b}"), Value::Bool(true));
    assert_eq!(keys(r#"{"a": 1}"#, true, "{a,b}"), Value::Bool(false));
    assert_eq!(keys(r#"{"a": 1}"#, false, "{}"), Value::Bool(false));
    assert_eq!(keys(r#"{"a": 1}"#, true, "{}"), Value::Bool(true));
    assert_eq!(keys(r#"{"a": 1}"#, false, "{NULL,a}"), Value::Bool(true));
    assert_eq!(keys(r#"{"a": 1}"#, true, "{NULL,a}"), Value::Bool(true));
    assert_eq!(
        apply(JsonOp::HasKey, &json("{}"), &Value::Null),
        Ok(Value::Null)
    );
}

#[test]
fn containment_follows_jsonb() {
    assert!(contains(r#"["foo", "bar"]"#, r#""foo""#));
    assert!(!contains(r#""foo""#, r#"["foo"]"#));
    assert!(contains("[1, [2, 3]]", "[[3]]"));
    assert!(!contains("[1, [2, 3]]", "[3]"));
    assert!(contains(r#"{"a": 1.0}"#, r#"{"a": 1}"#));
    assert!(contains("1e2", "100"));
    assert!(!contains(r#"{"a": [1, 2]}"#, r#"{"a": 2}"#));
    assert!(contains(r#"{"a": [1, 2]}"#, r#"{"a": [2]}"#));
    assert!(contains(r#"{"a": {"b": 1, "c": 2}}"#, r#"{"a": {}}"#));
    assert!(!contains(r#"{"a": {"b": 1}}"#, r#"{"a": []}"#));
    assert!(!contains("[]", "{}"));
    assert!(!contains("{}", "[]"));
    assert!(!contains("1", "[1]"));
    assert!(contains("[1]", "1"));
    assert!(contains("[1, 2]", "[1, 1, 1]"));
    assert!(contains(r#"[{"a": 1, "b": 2}]"#, r#"[{"a": 1}]"#));
    assert!(contains(r#"{"a": "x"}"#, r#"{"a": "\u0078"}"#));
    assert!(!contains(r#"{"a": null}"#, r#"{"a": false}"#));
    // jsonb keeps the last value of a repeated name.
    assert!(!contains(r#"{"a": 1, "a": 2}"#, r#"{"a": 1}"#));
    assert_eq!(
        apply_ok(
            JsonOp::ContainedBy,
            r#"{"a": 1}"#,
            json(r#"{"a": 1, "b": 2}"#)
        ),
        Value::Bool(true)
    );
}

#[test]
fn a_cast_reads_a_number_or_a_boolean() {
    assert_eq!(
        scalar_for_cast(" 1e2", "numeric"),
        Ok(Value::Numeric("1e2".into()))
    );
    assert_eq!(scalar_for_cast("true", "boolean"), Ok(Value::Bool(true)));
    for (input, type_name, kind) in [
        (r#""1""#, "numeric", "string"),
        ("null", "integer", "null"),
        ("[1]", "numeric", "array"),
        ("{}", "double precision", "object"),
        ("1", "boolean", "numeric"),
        ("false", "bigint", "boolean"),
    ] {
        assert_eq!(
            scalar_for_cast(input, type_name),
            Err(Fault::InvalidValue(format!(
                "cannot cast jsonb {kind} to type {type_name}"
            ))),
            "{input}"
        );
    }
}
