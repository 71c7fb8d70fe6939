//! Each case's expected value is what PostgreSQL 15's `array_in` and
//! array operators give for the same operands.

use super::*;

fn parsed(text: &str) -> ParsedArray {
    parse_array(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn array_text_reads_as_array_in_reads_it() {
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(parsed("{}").elements, Vec::<Option<String>>::new());
    assert_eq!(parsed(" { } ").dimensions, Vec::<usize>::new());
    let array = parsed(r#"{a, b c ,"d,e", NULL,"NULL",\ x,"q\"\\"}"#);
    assert_eq!(
        array.elements,
        vec![
            some("a"),
            some("b c"),
            some("d,e"),
            None,
            some("NULL"),
            some(" x"),
            some("q\"\\"),
        ]
    );
    assert_eq!(array.dimensions, vec![7]);
    assert_eq!(parsed("{{{{{{1}}}}}}").dimensions, vec![1; 6]);
    let matrix = parsed("{{1,2,3},{4,5,6}}");
    assert_eq!(matrix.dimensions, vec![2, 3]);
    assert_eq!(matrix.elements.len(), 6);
    assert_eq!(parsed("[0:1]={a,b}").dimensions, vec![2]);
    assert_eq!(parsed(r#"{"{a}"}"#).elements, vec![some("{a}")]);
    for bad in [
        "a",
        "{a",
        "{a,}",
        "{,a}",
        "{a,,b}",
        r#"{"a}"#,
        "{a\\}",
        "{{1,2},{3}}",
        "{{1},2}",
        "{1,{2}}",
        "{{}}",
        "{a}b",
        "[1:2]{a,b}",
        "{{{{{{{1}}}}}}}",
        &"{".repeat(100_000),
    ] {
        let error = parse_array(bad).unwrap_err();
        assert!(
            error.starts_with("malformed array literal"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn quantified_comparisons_follow_postgres_nulls() {
    let text = |s: &str| Value::Text(s.to_owned());
    let any = |left: Value, array: &str| {
        quantified(ComparisonOp::Equal, false, &left, &text(array)).unwrap()
    };
    let all_differ = |left: Value, array: &str| {
        quantified(ComparisonOp::NotEqual, true, &left, &text(array)).unwrap()
    };
    assert_eq!(any(Value::Int(2), "{1,2}"), Value::Bool(true));
    assert_eq!(any(Value::Int(3), "{1,NULL}"), Value::Null);
    assert_eq!(any(Value::Int(1), "{1,NULL}"), Value::Bool(true));
    assert_eq!(any(Value::Null, "{}"), Value::Bool(false));
    assert_eq!(any(Value::Null, "{1}"), Value::Null);
    assert_eq!(any(Value::Bool(true), "{f,t}"), Value::Bool(true));
    assert_eq!(
        any(Value::Date("2024-02-29".into()), "{2024-02-29}"),
        Value::Bool(true)
    );
    assert_eq!(all_differ(Value::Int(3), "{1,2}"), Value::Bool(true));
    assert_eq!(all_differ(Value::Int(3), "{1,NULL}"), Value::Null);
    assert_eq!(all_differ(Value::Int(1), "{1,NULL}"), Value::Bool(false));
    assert_eq!(all_differ(Value::Null, "{}"), Value::Bool(true));
    assert_eq!(
        quantified(ComparisonOp::Equal, false, &Value::Int(1), &Value::Null),
        Ok(Value::Null)
    );
    let error = quantified(ComparisonOp::Equal, false, &Value::Int(1), &text("{x}")).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"array element "x" does not read as int"#
    );
}

#[test]
fn containment_and_overlap_skip_null_elements() {
    let text = |s: &str| Value::Text(s.to_owned());
    let holds = |op, left: &str, right: &str| set_op(op, &text(left), &text(right)).unwrap();
    let yes = Value::Bool(true);
    let no = Value::Bool(false);
    assert_eq!(holds(SetOp::Contains, "{1,2,NULL}", "{2,1,1}"), yes);
    assert_eq!(holds(SetOp::Contains, "{1,NULL}", "{NULL}"), no);
    assert_eq!(holds(SetOp::Contains, "{{1,2},{3,4}}", "{4}"), yes);
    assert_eq!(holds(SetOp::ContainedBy, "{}", "{}"), yes);
    assert_eq!(holds(SetOp::ContainedBy, "{a,b}", "{a}"), no);
    assert_eq!(holds(SetOp::Overlaps, "{NULL}", "{NULL}"), no);
    assert_eq!(holds(SetOp::Overlaps, "{a,b}", "{c,b}"), yes);
    assert_eq!(
        set_op(SetOp::Overlaps, &Value::Null, &text("{a}")),
        Ok(Value::Null)
    );
}

#[test]
fn literal_elements_must_be_as_postgres_prints_them() {
    assert!(canonical_element(ArrayElement::Int, "-12").is_ok());
    assert!(canonical_element(ArrayElement::Int, "+12").is_err());
    assert!(canonical_element(ArrayElement::Int, "x").is_err());
    assert!(canonical_element(ArrayElement::Bool, "f").is_ok());
    assert!(canonical_element(ArrayElement::Bool, "yes").is_err());
    assert!(canonical_element(ArrayElement::Uuid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").is_err());
    assert!(canonical_element(ArrayElement::Date, "2024-01-05").is_ok());
    assert!(canonical_element(ArrayElement::Date, "2024-1-5").is_err());
    assert!(canonical_element(ArrayElement::Text, " anything ").is_ok());
}
