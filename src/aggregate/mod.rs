//! The aggregation core: the running state of one group of an aggregate view,
//! and how one root row's contribution is added to it or retracted from it.
//!
//! Every root row that passes the view's filter contributes its group key and
//! one input per measure. A change retracts the row's old contribution and
//! adds its new one, so each change touches only its groups and nothing is
//! ever recomputed from scratch. Everything here is exact under retraction:
//! counts are integers; sums are exact integers or decimals (floats are
//! summed as the decimals they print as), with infinities and NaN counted
//! apart so they can be taken out again; `min`, `max` and `count_distinct`
//! read a multiset of the group's inputs ([`ValueCounts`]), kept in the state
//! store by the engine and in memory by the tests.
//!
//! This module knows nothing of storage or SQL: the engine stores
//! [`GroupState`]s and renders [`GroupState::row`] into outbox entries.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::change::Value;
use crate::expr::{Decimal, EnumOrder, ValueType, sort_key};
use crate::view::model::MeasureFunction;

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("measure {measure}: {message}")]
    Measure { measure: usize, message: String },
    #[error("aggregate state: {0}")]
    Storage(String),
}

/// What the core needs to know of a measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureSpec {
    pub function: MeasureFunction,
    /// `false` only for `count()`, which counts rows.
    pub has_input: bool,
    /// The static type of the input expression; inputs are converted to it.
    pub input_type: ValueType,
    /// For `min` and `max` of an enum: its order, which they order its
    /// labels by (as PostgreSQL does), not their text.
    pub enum_order: Option<Arc<EnumOrder>>,
}

impl MeasureSpec {
    /// The type of the measure's column.
    pub fn output_type(&self) -> ValueType {
        match (self.function, self.input_type) {
            (MeasureFunction::Count | MeasureFunction::CountDistinct, _) => ValueType::Int,
            (MeasureFunction::Sum | MeasureFunction::Avg, ValueType::Float) => ValueType::Float,
            // As PostgreSQL: sum(bigint) and avg of integers are numeric.
            (MeasureFunction::Sum | MeasureFunction::Avg, _) => ValueType::Numeric,
            (MeasureFunction::Min | MeasureFunction::Max, input) => input,
            // As PostgreSQL's, over `double precision`.
            (MeasureFunction::PercentileCont(_), _) => ValueType::Float,
            (MeasureFunction::PercentileDisc(_), input) => input,
        }
    }

    /// For `min` and `max`: whether the extreme is the last value in
    /// [`sort_key`] order (`max`) or the first.
    fn extreme_is_last(&self) -> Option<bool> {
        match self.function {
            MeasureFunction::Min => Some(false),
            MeasureFunction::Max => Some(true),
            _ => None,
        }
    }

    /// The key `min`, `max` and `count_distinct` keep `input` under, in
    /// the measure's order: an enum label's place in its enum for `min`
    /// and `max` of one, else [`sort_key`].
    fn key(&self, input: &Value) -> Result<Vec<u8>, String> {
        let place;
        let ordered = match &self.enum_order {
            Some(order) => {
                place = order.place(input).map_err(|fault| fault.to_string())?;
                &place
            }
            None => input,
        };
        sort_key(ordered).ok_or_else(|| format!("{} has no order", describe(input)))
    }

    fn keeps_values(&self) -> bool {
        matches!(
            self.function,
            MeasureFunction::Min
                | MeasureFunction::Max
                | MeasureFunction::CountDistinct
                | MeasureFunction::PercentileCont(_)
                | MeasureFunction::PercentileDisc(_)
        )
    }

    /// Why one root's `input` (converted to the input type) cannot be
    /// part of this measure, if it cannot: a value `min`, `max` or
    /// `count_distinct` cannot order, or `sum` or `avg` cannot add. Checked
    /// before the root's contribution is stored, so that such a root is a
    /// dead letter: found while its group is updated, the fault would fail
    /// the whole batch, again at every retry.
    pub fn refuses(&self, input: &Value) -> Option<String> {
        if !self.has_input || input.is_null() {
            return None;
        }
        if self.keeps_values()
            && let Err(reason) = self.key(input)
        {
            return Some(reason);
        }
        let summed = matches!(self.function, MeasureFunction::Sum | MeasureFunction::Avg);
        if summed && ExactSum::zero(self.input_type).accepts(input).is_err() {
            return Some(format!("{} is not a number to add", describe(input)));
        }
        if matches!(self.function, MeasureFunction::PercentileCont(_)) && as_float(input).is_none()
        {
            return Some(format!(
                "{} is not a number to interpolate",
                describe(input)
            ));
        }
        None
    }
}

/// A value as a dead letter's reason names it.
fn describe(value: &Value) -> String {
    format!("value `{}`", value.to_text())
}

/// One root row's part in its group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The group key values, in `group_by` order.
    pub group: Vec<Value>,
    /// One input per measure, in `measures` order, converted to the
    /// measure's input type (NULL for `count()`).
    pub inputs: Vec<Value>,
}

/// Adding or retracting a contribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Add,
    Retract,
}

impl Direction {
    fn delta(self) -> i64 {
        match self {
            Direction::Add => 1,
            Direction::Retract => -1,
        }
    }
}

/// The inputs of one sort key of a value-keeping measure: how many, and the
/// texts they came as, each with how many, the latest added last. Equal
/// values may print differently (a numeric's `1.0` and `1.00`, a float's
/// `0` and `-0`): `min` and `max` show a text an input of the group holds
/// now, the latest added, as PostgreSQL's scan usually meets last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyInputs {
    pub count: u64,
    pub texts: Vec<(Value, u64)>,
}

/// How many inputs a key holds after a change, and how many of them have
/// the changed input's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCount {
    pub key: u64,
    pub text: u64,
}

impl KeyInputs {
    /// Adds (`delta` > 0) or retracts inputs of `value`'s text.
    pub fn change(&mut self, value: &Value, delta: i64) -> KeyCount {
        let held = self
            .texts
            .iter()
            .position(|(text, _)| same_text(text, value));
        let text = match held {
            Some(index) if delta > 0 => {
                let (text, count) = self.texts.remove(index);
                let count = count.saturating_add_signed(delta);
                self.texts.push((text, count));
                count
            }
            Some(index) => match self.texts[index].1.saturating_add_signed(delta) {
                0 => {
                    self.texts.remove(index);
                    0
                }
                count => {
                    self.texts[index].1 = count;
                    count
                }
            },
            None if delta > 0 => {
                self.texts.push((value.clone(), delta.unsigned_abs()));
                delta.unsigned_abs()
            }
            None => 0,
        };
        self.count = self.count.saturating_add_signed(delta);
        KeyCount {
            key: self.count,
            text,
        }
    }

    /// The text `min` and `max` show for this key.
    pub fn shown(&self) -> Option<&Value> {
        self.texts.last().map(|(text, _)| text)
    }
}

/// Whether two values of one sort key also print alike.
fn same_text(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(a), Value::Float(b)) => {
            a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()
        }
        _ => a == b,
    }
}

/// The multiset of one group's inputs to each value-keeping measure, ordered
/// by [`sort_key`].
pub trait ValueCounts {
    /// Changes how often the value under `key` occurs for `measure` by
    /// `delta`, and returns the new counts (a key count of 0: the value is
    /// gone).
    fn change(
        &mut self,
        measure: usize,
        key: &[u8],
        value: &Value,
        delta: i64,
    ) -> Result<KeyCount, AggregateError>;
    /// The value with the smallest key, or the largest when `last`, as
    /// [`KeyInputs::shown`]. Takes `&mut self` so that a store buffering its
    /// changes can write them out before it scans.
    fn extreme(&mut self, measure: usize, last: bool) -> Result<Option<Value>, AggregateError>;
    /// The input at `place` (from 0) of `measure`'s inputs in key order,
    /// counting each as often as it occurs, as [`KeyInputs::shown`].
    fn nth(&mut self, measure: usize, place: u64) -> Result<Option<Value>, AggregateError>;
}

/// A group's value multisets in memory: for a group computed at once (a
/// cache view's measure of a relation's rows), and for the tests.
#[derive(Default)]
pub struct MemoryCounts(BTreeMap<(usize, Vec<u8>), KeyInputs>);

impl ValueCounts for MemoryCounts {
    fn change(
        &mut self,
        measure: usize,
        key: &[u8],
        value: &Value,
        delta: i64,
    ) -> Result<KeyCount, AggregateError> {
        let entry = self.0.entry((measure, key.to_vec())).or_default();
        if entry.count.checked_add_signed(delta).is_none() {
            return Err(AggregateError::Storage(format!(
                "measure {measure}: a value retracted more often than added"
            )));
        }
        let count = entry.change(value, delta);
        if count.key == 0 {
            self.0.remove(&(measure, key.to_vec()));
        }
        Ok(count)
    }

    fn extreme(&mut self, measure: usize, last: bool) -> Result<Option<Value>, AggregateError> {
        let mut range = self
            .0
            .range((measure, Vec::new())..(measure + 1, Vec::new()));
        let found = if last {
            range.next_back()
        } else {
            range.next()
        };
        Ok(found.and_then(|(_, inputs)| inputs.shown().cloned()))
    }

    fn nth(&mut self, measure: usize, place: u64) -> Result<Option<Value>, AggregateError> {
        let mut passed = 0u64;
        for (_, inputs) in self
            .0
            .range((measure, Vec::new())..(measure + 1, Vec::new()))
        {
            passed += inputs.count;
            if place < passed {
                return Ok(inputs.shown().cloned());
            }
        }
        Ok(None)
    }
}

/// The running state of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub group: Vec<Value>,
    /// Contributing rows: the group exists while this is above zero.
    pub rows: u64,
    pub measures: Vec<MeasureState>,
}

/// Per measure: how many non-NULL inputs, and what else it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureState {
    pub values: u64,
    /// Distinct inputs (`count_distinct`).
    pub distinct: u64,
    /// The current value of `min` and `max`.
    pub extreme: Extreme,
    /// For `sum` and `avg`.
    pub sum: Option<ExactSum>,
}

/// The running extreme of a `min` or `max` measure, so that a group's row
/// needs no scan of its values unless the value that held it left.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum Extreme {
    /// Not known: the value that held it was retracted (or the measure has
    /// no extreme). The row scans the values for it.
    #[default]
    Unknown,
    /// The extreme's sort key and value, the text the store shows for the
    /// key ([`KeyInputs::shown`]): the latest equal input added.
    Known { key: Vec<u8>, value: Value },
}

impl Extreme {
    /// Follows one input of the measure: `count` is how often its key and
    /// its text occur now, `values` how many inputs the measure holds now.
    fn follow(
        &mut self,
        direction: Direction,
        key: &[u8],
        input: &Value,
        count: KeyCount,
        values: u64,
        last: bool,
    ) {
        let beyond_or_at = |held: &[u8]| if last { key >= held } else { key <= held };
        match (direction, &*self) {
            (Direction::Add, _) if values == 1 => self.hold(key, input),
            (Direction::Add, Extreme::Known { key: held, .. }) if beyond_or_at(held) => {
                self.hold(key, input)
            }
            // The key is gone, or the text shown is: another equal input's
            // text is shown now, which a scan finds.
            (Direction::Retract, Extreme::Known { key: held, value })
                if held == key
                    && (count.key == 0 || count.text == 0 && same_text(value, input)) =>
            {
                *self = Extreme::Unknown
            }
            _ => {}
        }
    }

    fn hold(&mut self, key: &[u8], value: &Value) {
        *self = Extreme::Known {
            key: key.to_vec(),
            value: value.clone(),
        };
    }
}

/// A sum that can be taken apart again exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExactSum {
    Integer(i128),
    /// Finite part as decimal text, and the non-finite inputs counted.
    Decimal {
        finite: String,
        /// How many finite inputs show each scale (digits after the point):
        /// PostgreSQL's sum shows the largest scale of the inputs summed, so
        /// `1.00` once `1.0000` is retracted, which the running text alone
        /// would keep at four digits.
        scales: BTreeMap<u16, u64>,
        infinities: u64,
        negative_infinities: u64,
        nans: u64,
    },
}

impl GroupState {
    pub fn new(group: Vec<Value>, specs: &[MeasureSpec]) -> GroupState {
        let measures = specs
            .iter()
            .map(|spec| MeasureState {
                values: 0,
                distinct: 0,
                extreme: Extreme::Unknown,
                sum: matches!(spec.function, MeasureFunction::Sum | MeasureFunction::Avg)
                    .then(|| ExactSum::zero(spec.input_type)),
            })
            .collect();
        GroupState {
            group,
            rows: 0,
            measures,
        }
    }

    /// Adds or retracts one contribution of this group.
    pub fn apply(
        &mut self,
        specs: &[MeasureSpec],
        inputs: &[Value],
        direction: Direction,
        counts: &mut dyn ValueCounts,
    ) -> Result<(), AggregateError> {
        self.rows = step(self.rows, direction);
        for (index, ((spec, state), input)) in
            specs.iter().zip(&mut self.measures).zip(inputs).enumerate()
        {
            if spec.has_input && input.is_null() {
                continue;
            }
            state.values = step(state.values, direction);
            let fail = |message: String| AggregateError::Measure {
                measure: index,
                message,
            };
            if let Some(sum) = &mut state.sum {
                sum.apply(input, direction).map_err(fail)?;
            }
            if spec.keeps_values() {
                let key = spec.key(input).map_err(fail)?;
                let count = counts.change(index, &key, input, direction.delta())?;
                match (direction, count.key) {
                    (Direction::Add, 1) => state.distinct += 1,
                    (Direction::Retract, 0) => state.distinct = state.distinct.saturating_sub(1),
                    _ => {}
                }
                if let Some(last) = spec.extreme_is_last() {
                    state
                        .extreme
                        .follow(direction, &key, input, count, state.values, last);
                }
            }
        }
        Ok(())
    }

    /// The measure values of the group's row, in `measures` order. An
    /// extreme not known is scanned for, and kept.
    pub fn row(
        &mut self,
        specs: &[MeasureSpec],
        counts: &mut dyn ValueCounts,
    ) -> Result<Vec<Value>, AggregateError> {
        let mut row = Vec::with_capacity(specs.len());
        for (index, (spec, state)) in specs.iter().zip(&mut self.measures).enumerate() {
            let value = match spec.function {
                MeasureFunction::Count if spec.has_input => int(state.values),
                MeasureFunction::Count => int(self.rows),
                MeasureFunction::CountDistinct => int(state.distinct),
                _ if state.values == 0 => Value::Null,
                MeasureFunction::Min | MeasureFunction::Max => match &state.extreme {
                    Extreme::Known { value, .. } => value.clone(),
                    Extreme::Unknown => {
                        let last = spec.function == MeasureFunction::Max;
                        match counts.extreme(index, last)? {
                            Some(value) => {
                                if let Ok(key) = spec.key(&value) {
                                    state.extreme.hold(&key, &value);
                                }
                                value
                            }
                            None => Value::Null,
                        }
                    }
                },
                MeasureFunction::PercentileCont(fraction) => {
                    percentile_cont(fraction.value(), state.values, index, counts)?
                }
                MeasureFunction::PercentileDisc(fraction) => {
                    // PostgreSQL's: the first input whose place reaches
                    // the fraction of the inputs.
                    let place = (fraction.value() * state.values as f64).ceil() as u64;
                    counts.nth(index, place.max(1) - 1)?.unwrap_or(Value::Null)
                }
                MeasureFunction::Sum | MeasureFunction::Avg => {
                    let sum = state.sum.as_ref().ok_or_else(|| AggregateError::Measure {
                        measure: index,
                        message: "no running sum".into(),
                    })?;
                    if spec.function == MeasureFunction::Sum {
                        sum.total(spec.input_type)
                    } else {
                        sum.mean(state.values, spec.input_type)
                    }
                    .map_err(|message| AggregateError::Measure {
                        measure: index,
                        message,
                    })?
                }
            };
            row.push(value);
        }
        Ok(row)
    }
}

/// `percentile_cont` of `values` inputs, as PostgreSQL computes it: the
/// inputs at the places below and above `fraction` of the way through
/// them, interpolated in `double precision`.
fn percentile_cont(
    fraction: f64,
    values: u64,
    measure: usize,
    counts: &mut dyn ValueCounts,
) -> Result<Value, AggregateError> {
    let place = fraction * (values - 1) as f64;
    let (first, second) = (place.floor() as u64, place.ceil() as u64);
    let value_at = |counts: &mut dyn ValueCounts, place: u64| -> Result<f64, AggregateError> {
        let value = counts.nth(measure, place)?;
        value
            .as_ref()
            .and_then(as_float)
            .ok_or_else(|| AggregateError::Measure {
                measure,
                message: format!("no number at place {place} of {values}: {value:?}"),
            })
    };
    let low = value_at(counts, first)?;
    if second == first {
        return Ok(Value::Float(low));
    }
    let high = value_at(counts, second)?;
    Ok(Value::Float(low + (place - first as f64) * (high - low)))
}

/// A number as `double precision`, as PostgreSQL casts it.
fn as_float(value: &Value) -> Option<f64> {
    match value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Numeric(text) => Decimal::parse(text).map(|d| d.to_f64()),
        _ => None,
    }
}

fn step(count: u64, direction: Direction) -> u64 {
    match direction {
        Direction::Add => count + 1,
        Direction::Retract => count.saturating_sub(1),
    }
}

fn int(count: u64) -> Value {
    Value::Int(i64::try_from(count).unwrap_or(i64::MAX))
}

/// Converts an input to the measure's static type: an integer literal in a
/// numeric expression (`coalesce(price, 0)`) evaluates to an integer, but
/// must be summed and compared as the numeric it stands for.
pub fn convert_input(value: Value, input_type: ValueType) -> Value {
    match (value, input_type) {
        (Value::Int(i), ValueType::Numeric) => Value::Numeric(i.to_string()),
        (Value::Int(i), ValueType::Float) => Value::Float(i as f64),
        (Value::Numeric(text), ValueType::Float) => {
            Value::Float(Decimal::parse(&text).map_or(f64::NAN, |d| d.to_f64()))
        }
        (value, _) => value,
    }
}

/// A number added to a decimal sum.
fn decimal_input(input: &Value) -> Result<Decimal, String> {
    match input {
        Value::Float(f) => Ok(Decimal::from_f64(*f)),
        Value::Numeric(text) | Value::Text(text) => {
            Decimal::parse(text).ok_or_else(|| format!("`{text}` is not a number"))
        }
        Value::Int(i) => Ok(Decimal::from_i64(*i)),
        other => Err(format!("expected a number, got {other:?}")),
    }
}

impl ExactSum {
    fn zero(input_type: ValueType) -> ExactSum {
        match input_type {
            ValueType::Int => ExactSum::Integer(0),
            _ => ExactSum::Decimal {
                finite: "0".into(),
                scales: BTreeMap::new(),
                infinities: 0,
                negative_infinities: 0,
                nans: 0,
            },
        }
    }

    /// Whether `input` is a number this sum adds.
    fn accepts(&self, input: &Value) -> Result<(), String> {
        match (self, input) {
            (ExactSum::Integer(_), Value::Int(_)) => Ok(()),
            (ExactSum::Integer(_), _) => Err(format!("expected an integer, got {input:?}")),
            (ExactSum::Decimal { .. }, _) => decimal_input(input).map(drop),
        }
    }

    fn apply(&mut self, input: &Value, direction: Direction) -> Result<(), String> {
        match self {
            ExactSum::Integer(sum) => {
                let Value::Int(value) = input else {
                    return Err(format!("expected an integer, got {input:?}"));
                };
                let value = i128::from(*value) * i128::from(direction.delta());
                *sum = sum.checked_add(value).ok_or("integer sum out of range")?;
            }
            ExactSum::Decimal {
                finite,
                scales,
                infinities,
                negative_infinities,
                nans,
            } => {
                let value = decimal_input(input)?;
                let counter = match value {
                    Decimal::Infinity => infinities,
                    Decimal::NegativeInfinity => negative_infinities,
                    Decimal::NaN => nans,
                    Decimal::Finite(_) => {
                        let current = decimal(finite)?;
                        let next = match direction {
                            Direction::Add => current.add(&value),
                            Direction::Retract => current.subtract(&value),
                        }
                        .map_err(|fault| fault.to_string())?;
                        let scale = u16::try_from(value.display_scale()).unwrap_or(u16::MAX);
                        let count = scales.entry(scale).or_default();
                        *count = step(*count, direction);
                        if *count == 0 {
                            scales.remove(&scale);
                        }
                        // Exact: no input left shows more digits than the largest scale.
                        let shown = scales.last_key_value().map_or(0, |(scale, _)| *scale);
                        let next = next
                            .round(i64::from(shown))
                            .map_err(|fault| fault.to_string())?;
                        *finite = next.to_text();
                        return Ok(());
                    }
                };
                *counter = step(*counter, direction);
            }
        }
        Ok(())
    }

    /// The sum as PostgreSQL's `sum` returns it: numeric for integers and
    /// numerics, a float for floats.
    fn total(&self, input_type: ValueType) -> Result<Value, String> {
        let total = self.as_decimal()?;
        Ok(typed(total, input_type))
    }

    /// `sum / count`, divided at PostgreSQL's numeric division scale.
    fn mean(&self, count: u64, input_type: ValueType) -> Result<Value, String> {
        let total = self.as_decimal()?;
        if input_type == ValueType::Float {
            return Ok(Value::Float(total.to_f64() / count as f64));
        }
        let count = Decimal::from_i64(i64::try_from(count).map_err(|e| e.to_string())?);
        let mean = total.divide(&count).map_err(|fault| fault.to_string())?;
        Ok(Value::Numeric(mean.to_text()))
    }

    fn as_decimal(&self) -> Result<Decimal, String> {
        match self {
            ExactSum::Integer(sum) => decimal(&sum.to_string()),
            ExactSum::Decimal {
                finite,
                infinities,
                negative_infinities,
                nans,
                ..
            } => Ok(
                match (*nans > 0, *infinities > 0, *negative_infinities > 0) {
                    (true, _, _) | (false, true, true) => Decimal::NaN,
                    (false, true, false) => Decimal::Infinity,
                    (false, false, true) => Decimal::NegativeInfinity,
                    (false, false, false) => decimal(finite)?,
                },
            ),
        }
    }
}

fn decimal(text: &str) -> Result<Decimal, String> {
    Decimal::parse(text).ok_or_else(|| format!("corrupt running sum `{text}`"))
}

fn typed(value: Decimal, input_type: ValueType) -> Value {
    match input_type {
        ValueType::Float => Value::Float(value.to_f64()),
        _ => Value::Numeric(value.to_text()),
    }
}
