//! The aggregation core against recomputation: random inserts, updates and
//! deletes of root rows, applied as retract-old / add-new, must leave every
//! group exactly as a fresh GROUP BY over the surviving rows would be.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::state::keycode::encode_values;

/// A root row: its group and the inputs of the measures under test.
#[derive(Debug, Clone)]
struct Row {
    group: Option<i64>,
    int: Option<i64>,
    numeric: Option<i64>, // hundredths: the input is numeric `n/100`
    /// The numeric written with a third, zero digit (`1.50` or `1.500`):
    /// an equal value of another text.
    wide: bool,
    float: Option<f64>,
    text: Option<String>,
}

const SPECS: [MeasureSpec; 11] = [
    spec(MeasureFunction::Count, false, ValueType::Null),
    spec(MeasureFunction::Count, true, ValueType::Int),
    spec(MeasureFunction::Sum, true, ValueType::Int),
    spec(MeasureFunction::Avg, true, ValueType::Int),
    spec(MeasureFunction::Min, true, ValueType::Int),
    spec(MeasureFunction::Max, true, ValueType::Int),
    spec(MeasureFunction::Sum, true, ValueType::Numeric),
    spec(MeasureFunction::Max, true, ValueType::Numeric),
    spec(MeasureFunction::CountDistinct, true, ValueType::Text),
    spec(MeasureFunction::Min, true, ValueType::Text),
    spec(MeasureFunction::Sum, true, ValueType::Float),
];

const fn spec(function: MeasureFunction, has_input: bool, input_type: ValueType) -> MeasureSpec {
    MeasureSpec {
        function,
        has_input,
        input_type,
        enum_order: None,
    }
}

fn numeric(hundredths: i64) -> Value {
    let sign = if hundredths < 0 { "-" } else { "" };
    let abs = hundredths.unsigned_abs();
    Value::Numeric(format!("{sign}{}.{:02}", abs / 100, abs % 100))
}

fn wide_numeric(hundredths: i64) -> Value {
    match numeric(hundredths) {
        Value::Numeric(text) => Value::Numeric(text + "0"),
        other => other,
    }
}

fn or_null<T>(value: Option<T>, make: impl FnOnce(T) -> Value) -> Value {
    value.map_or(Value::Null, make)
}

impl Row {
    fn contribution(&self) -> Contribution {
        let int = or_null(self.int, Value::Int);
        let numeric = or_null(self.numeric, if self.wide { wide_numeric } else { numeric });
        let text = or_null(self.text.clone(), Value::Text);
        Contribution {
            group: vec![or_null(self.group, Value::Int)],
            inputs: vec![
                Value::Null,
                int.clone(),
                int.clone(),
                int.clone(),
                int.clone(),
                int,
                numeric.clone(),
                numeric,
                text.clone(),
                text,
                or_null(self.float, Value::Float),
            ],
        }
    }
}

/// Groups maintained incrementally, as the engine does.
#[derive(Default)]
struct Incremental(BTreeMap<Vec<u8>, (GroupState, MemoryCounts)>);

impl Incremental {
    fn apply(&mut self, contribution: &Contribution, direction: Direction) {
        let key = encode_values(&contribution.group);
        let (state, counts) = self.0.entry(key.clone()).or_insert_with(|| {
            (
                GroupState::new(contribution.group.clone(), &SPECS),
                MemoryCounts::default(),
            )
        });
        state
            .apply(&SPECS, &contribution.inputs, direction, counts)
            .expect("apply");
        if state.rows == 0 {
            self.0.remove(&key);
        }
    }

    fn rows(&mut self) -> BTreeMap<Vec<u8>, Vec<Value>> {
        self.0
            .iter_mut()
            .map(|(key, (state, counts))| (key.clone(), state.row(&SPECS, counts).expect("row")))
            .collect()
    }
}

/// The same groups computed from scratch, the way SQL's GROUP BY would.
fn recompute(rows: &BTreeMap<u8, Row>) -> BTreeMap<Vec<u8>, Vec<Value>> {
    let mut groups: BTreeMap<Vec<u8>, Vec<&Row>> = BTreeMap::new();
    for row in rows.values() {
        let key = encode_values(&row.contribution().group);
        groups.entry(key).or_default().push(row);
    }
    groups
        .into_iter()
        .map(|(key, members)| (key, expected_row(&members)))
        .collect()
}

fn expected_row(members: &[&Row]) -> Vec<Value> {
    let ints: Vec<i64> = members.iter().filter_map(|r| r.int).collect();
    let numerics: Vec<i64> = members.iter().filter_map(|r| r.numeric).collect();
    let texts: Vec<&String> = members.iter().filter_map(|r| r.text.as_ref()).collect();
    let floats: Vec<f64> = members.iter().filter_map(|r| r.float).collect();
    let int_sum: i64 = ints.iter().sum();
    let int_avg = (!ints.is_empty()).then(|| {
        Decimal::from_i64(int_sum)
            .divide(&Decimal::from_i64(ints.len() as i64))
            .expect("divide")
            .to_text()
    });
    let float_sum = floats
        .iter()
        .map(|f| Decimal::from_f64(*f))
        .try_fold(Decimal::from_i64(0), |sum, f| sum.add(&f))
        .expect("sum");
    let distinct: BTreeSet<&String> = texts.iter().copied().collect();
    vec![
        Value::Int(members.len() as i64),
        Value::Int(ints.len() as i64),
        when(!ints.is_empty(), || Value::Numeric(int_sum.to_string())),
        int_avg.map_or(Value::Null, Value::Numeric),
        or_null(ints.iter().min().copied(), Value::Int),
        or_null(ints.iter().max().copied(), Value::Int),
        when(!numerics.is_empty(), || numeric(numerics.iter().sum())),
        or_null(numerics.iter().max().copied(), numeric),
        Value::Int(distinct.len() as i64),
        or_null(texts.iter().min().map(|t| (*t).clone()), Value::Text),
        when(!floats.is_empty(), || Value::Float(float_sum.to_f64())),
    ]
}

fn when(condition: bool, value: impl FnOnce() -> Value) -> Value {
    if condition { value() } else { Value::Null }
}

/// Numeric results may differ in trailing zeros only (`3.00` vs `3`).
fn normalized(rows: BTreeMap<Vec<u8>, Vec<Value>>) -> BTreeMap<Vec<u8>, Vec<String>> {
    rows.into_iter()
        .map(|(key, values)| {
            let texts = values
                .iter()
                .map(|value| match value {
                    Value::Numeric(text) => Decimal::parse(text)
                        .and_then(|d| sort_key(&Value::Numeric(d.to_text())))
                        .map_or_else(|| text.clone(), |k| format!("{k:?}")),
                    other => format!("{other:?}"),
                })
                .collect();
            (key, texts)
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u8, Row),
    Delete(u8),
}

fn row_strategy() -> impl Strategy<Value = Row> {
    (
        prop::option::weighted(0.9, 0..4i64),
        prop::option::weighted(0.8, -50..50i64),
        prop::option::weighted(0.8, -50..50i64),
        prop::option::weighted(
            0.8,
            prop_oneof![Just(0.1), Just(-2.5), Just(1e15), Just(3.0)],
        ),
        prop::option::weighted(0.8, "[a-c]{0,2}"),
        any::<bool>(),
    )
        .prop_map(|(group, int, numeric, float, text, wide)| Row {
            group,
            int,
            numeric,
            wide,
            float,
            text,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..12u8, row_strategy()).prop_map(|(id, row)| Op::Upsert(id, row)),
        1 => (0..12u8).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn incremental_groups_equal_recomputed_groups(ops in prop::collection::vec(op_strategy(), 1..80)) {
        let mut table: BTreeMap<u8, Row> = BTreeMap::new();
        let mut groups = Incremental::default();
        for op in ops {
            let (id, new) = match op {
                Op::Upsert(id, row) => (id, Some(row)),
                Op::Delete(id) => (id, None),
            };
            if let Some(old) = table.remove(&id) {
                groups.apply(&old.contribution(), Direction::Retract);
            }
            if let Some(new) = new {
                groups.apply(&new.contribution(), Direction::Add);
                table.insert(id, new);
            }
            let rows = groups.rows();
            prop_assert_eq!(normalized(rows.clone()), normalized(recompute(&table)));
            prop_assert!(max_numeric_is_held(&rows, &table));
        }
    }
}

/// Each group's `max` of the numerics is the text of one of its rows' now
/// (a `1.00` retracted while an equal `1.000` stays leaves `1.000`).
fn max_numeric_is_held(rows: &BTreeMap<Vec<u8>, Vec<Value>>, table: &BTreeMap<u8, Row>) -> bool {
    rows.iter().all(|(key, row)| {
        row[7].is_null()
            || table.values().any(|member| {
                let contribution = member.contribution();
                &encode_values(&contribution.group) == key && contribution.inputs[7] == row[7]
            })
    })
}

/// A retracted input equal to the extreme, whose text other inputs still
/// hold, leaves the extreme known: no scan of the group's values.
#[test]
fn retracting_one_of_equal_extremes_needs_no_scan() {
    let specs = [spec(MeasureFunction::Max, true, ValueType::Int)];
    let mut state = GroupState::new(vec![], &specs);
    let mut counts = MemoryCounts::default();
    for value in [9, 9, 5] {
        let input = [Value::Int(value)];
        state
            .apply(&specs, &input, Direction::Add, &mut counts)
            .unwrap();
    }
    let input = [Value::Int(9)];
    state
        .apply(&specs, &input, Direction::Retract, &mut counts)
        .unwrap();
    assert!(matches!(
        &state.measures[0].extreme,
        Extreme::Known {
            value: Value::Int(9),
            ..
        }
    ));
    state
        .apply(&specs, &input, Direction::Retract, &mut counts)
        .unwrap();
    assert_eq!(state.measures[0].extreme, Extreme::Unknown);
    assert_eq!(state.row(&specs, &mut counts).unwrap(), [Value::Int(5)]);
}

/// As PostgreSQL 15 answers, for inputs 1.0, 1.00 and 5.5 with 1.0 then
/// deleted: `min` is 1.00, which a row holds (trial 8: it was 1.0); and
/// after every row's text changes scale (`ALTER COLUMN … TYPE
/// numeric(7,3)`), the new text.
#[test]
fn min_shows_the_text_of_an_input_still_held() {
    let specs = [spec(MeasureFunction::Min, true, ValueType::Numeric)];
    let mut state = GroupState::new(vec![], &specs);
    let mut counts = MemoryCounts::default();
    let mut apply = |value: &str, direction| {
        let input = [Value::Numeric(value.into())];
        state.apply(&specs, &input, direction, &mut counts).unwrap();
        state.row(&specs, &mut counts).unwrap()[0].clone()
    };
    apply("1.0", Direction::Add);
    apply("1.00", Direction::Add);
    apply("5.5", Direction::Add);
    assert_eq!(
        apply("1.0", Direction::Retract),
        Value::Numeric("1.00".into())
    );
    apply("1.0", Direction::Add);
    // The rows change scale one by one: each retracts its old text.
    apply("1.00", Direction::Retract);
    apply("1.000", Direction::Add);
    apply("1.0", Direction::Retract);
    assert_eq!(
        apply("1.000", Direction::Add),
        Value::Numeric("1.000".into())
    );
}

#[test]
fn deleting_the_maximum_yields_the_next_largest() {
    let specs = [spec(MeasureFunction::Max, true, ValueType::Int)];
    let mut state = GroupState::new(vec![Value::Int(1)], &specs);
    let mut counts = MemoryCounts::default();
    for value in [5, 9, 7] {
        state
            .apply(&specs, &[Value::Int(value)], Direction::Add, &mut counts)
            .unwrap();
    }
    assert_eq!(state.row(&specs, &mut counts).unwrap(), vec![Value::Int(9)]);
    state
        .apply(&specs, &[Value::Int(9)], Direction::Retract, &mut counts)
        .unwrap();
    assert_eq!(state.row(&specs, &mut counts).unwrap(), vec![Value::Int(7)]);
}

/// `min` and `max` of an enum order its labels by their places in the
/// enum, not their text; a label the plan does not know is refused, so the
/// root is a dead letter until the views are planned with it.
#[test]
fn min_and_max_of_an_enum_follow_its_labels_order() {
    let labels = ["todo", "doing", "review", "done"];
    let order = std::sync::Arc::new(crate::expr::EnumOrder::new(
        1,
        "stage",
        labels.iter().map(|label| label.to_string()).collect(),
    ));
    let ordered = |function| MeasureSpec {
        enum_order: Some(std::sync::Arc::clone(&order)),
        ..spec(function, true, ValueType::Text)
    };
    let specs = [ordered(MeasureFunction::Min), ordered(MeasureFunction::Max)];
    let mut state = GroupState::new(vec![Value::Int(1)], &specs);
    let mut counts = MemoryCounts::default();
    let text = |label: &str| Value::Text(label.to_owned());
    for label in ["review", "doing", "done", "todo"] {
        let inputs = [text(label), text(label)];
        state
            .apply(&specs, &inputs, Direction::Add, &mut counts)
            .unwrap();
    }
    assert_eq!(
        state.row(&specs, &mut counts).unwrap(),
        [text("todo"), text("done")]
    );
    for label in ["todo", "done"] {
        let inputs = [text(label), text(label)];
        state
            .apply(&specs, &inputs, Direction::Retract, &mut counts)
            .unwrap();
    }
    assert_eq!(
        state.row(&specs, &mut counts).unwrap(),
        [text("doing"), text("review")]
    );
    let refused = specs[1].refuses(&text("blocked")).unwrap_or_default();
    assert!(
        refused.contains("\"blocked\" is not among the labels of enum stage"),
        "{refused}"
    );
}

#[test]
fn infinities_are_retracted_exactly() {
    let specs = [spec(MeasureFunction::Sum, true, ValueType::Numeric)];
    let mut state = GroupState::new(vec![], &specs);
    let mut counts = MemoryCounts::default();
    let mut apply = |value: &str, direction| {
        state
            .apply(
                &specs,
                &[Value::Numeric(value.into())],
                direction,
                &mut counts,
            )
            .unwrap();
        state.row(&specs, &mut counts).unwrap()[0].clone()
    };
    assert_eq!(apply("1.5", Direction::Add), Value::Numeric("1.5".into()));
    assert_eq!(
        apply("Infinity", Direction::Add),
        Value::Numeric("Infinity".into())
    );
    assert_eq!(
        apply("-Infinity", Direction::Add),
        Value::Numeric("NaN".into())
    );
    assert_eq!(
        apply("Infinity", Direction::Retract),
        Value::Numeric("-Infinity".into())
    );
    assert_eq!(
        apply("-Infinity", Direction::Retract),
        Value::Numeric("1.5".into())
    );
}

#[test]
fn integer_sums_and_averages_are_numeric_like_postgresql() {
    let specs = [
        spec(MeasureFunction::Sum, true, ValueType::Int),
        spec(MeasureFunction::Avg, true, ValueType::Int),
    ];
    let mut state = GroupState::new(vec![], &specs);
    let mut counts = MemoryCounts::default();
    for value in [1, 2, 2] {
        let inputs = [Value::Int(value), Value::Int(value)];
        state
            .apply(&specs, &inputs, Direction::Add, &mut counts)
            .unwrap();
    }
    assert_eq!(
        state.row(&specs, &mut counts).unwrap(),
        vec![
            Value::Numeric("5".into()),
            // PostgreSQL: SELECT avg(x) FROM (VALUES (1),(2),(2)) v(x)
            Value::Numeric("1.6666666666666667".into()),
        ]
    );
}

/// PostgreSQL's sum and avg show the largest scale among the inputs they
/// hold; a running sum that kept every scale it ever added showed `3.5000`
/// after its only four-digit input was retracted.
#[test]
fn a_sum_shows_the_largest_scale_of_the_inputs_it_holds() {
    let specs = [
        spec(MeasureFunction::Sum, true, ValueType::Numeric),
        spec(MeasureFunction::Avg, true, ValueType::Numeric),
    ];
    let mut state = GroupState::new(vec![], &specs);
    let mut counts = MemoryCounts::default();
    let mut apply = |state: &mut GroupState, text: &str, direction| {
        let input = Value::Numeric(text.into());
        let inputs = [input.clone(), input];
        state
            .apply(&specs, &inputs, direction, &mut counts)
            .unwrap();
        state.row(&specs, &mut counts).unwrap()
    };
    let numerics =
        |sum: &str, avg: &str| vec![Value::Numeric(sum.into()), Value::Numeric(avg.into())];
    apply(&mut state, "1.0000", Direction::Add);
    assert_eq!(
        apply(&mut state, "2.5", Direction::Add),
        numerics("3.5000", "1.7500000000000000")
    );
    apply(&mut state, "1.0000", Direction::Retract);
    // PostgreSQL: SELECT sum(x), avg(x) FROM (VALUES (1.00), (2.5)) v(x);
    // with 1.0000 for 1.00 the sum is 3.5000.
    assert_eq!(
        apply(&mut state, "1.00", Direction::Add),
        numerics("3.50", "1.7500000000000000")
    );
    assert_eq!(
        apply(&mut state, "Infinity", Direction::Add),
        numerics("Infinity", "Infinity")
    );
}

/// A root's input that a measure could not order or add is refused before
/// its contribution is stored (the root becomes a dead letter), and every
/// value PostgreSQL sends for the input's type is accepted.
#[test]
fn inputs_a_measure_cannot_order_or_add_are_refused() {
    let min_date = spec(MeasureFunction::Min, true, ValueType::Date);
    for date in ["0044-03-15 BC", "5874897-12-31", "infinity", "2024-02-29"] {
        assert_eq!(min_date.refuses(&Value::Date(date.into())), None, "{date}");
    }
    assert_eq!(min_date.refuses(&Value::Null), None);
    let unreadable = min_date.refuses(&Value::Date("soon".into()));
    assert_eq!(unreadable.as_deref(), Some("value `soon` has no order"));

    let sum = spec(MeasureFunction::Sum, true, ValueType::Numeric);
    assert_eq!(sum.refuses(&Value::Numeric("-12.50".into())), None);
    assert_eq!(sum.refuses(&Value::Numeric("NaN".into())), None);
    assert!(sum.refuses(&Value::Numeric("twelve".into())).is_some());
    let count = spec(MeasureFunction::Count, false, ValueType::Int);
    assert_eq!(count.refuses(&Value::Null), None);
}
