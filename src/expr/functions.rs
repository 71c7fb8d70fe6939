//! The scalar functions callable by name: lower, upper, length, abs,
//! coalesce, nullif, greatest, least, round, cardinality, array_length, and the text
//! functions btrim, ltrim, rtrim, replace, split_part, left, right and substr
//! (`trim(…)` and `substring(…)` are parsed into them). (`date`,
//! `date_trunc`, `date_part` and `extract` become casts and temporal nodes
//! when parsed.) Each function knows its
//! arity, its result type for type checking, and how to compute its value.

use std::cmp::Ordering;
use std::fmt;

use crate::change::Value;

use super::arith::{decimal_of, numeric_value};
use super::arrays;
use super::case_mapping::CaseMapping;
use super::compare::{try_compare, values_equal};
use super::error::Fault;
use super::types::{ValueType, common_type, comparable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Lower,
    Upper,
    Length,
    Abs,
    /// The first non-NULL argument; arguments after it are not evaluated.
    Coalesce,
    /// NULL when both arguments are equal, else the first.
    Nullif,
    /// The largest / smallest argument, NULLs left out (NULL when all are).
    Greatest,
    Least,
    /// `round(x)` / `round(x, digits)`: half away from zero, exact for numbers.
    Round,
    /// `cardinality(a)`: an array's number of elements.
    Cardinality,
    /// `array_length(a, dimension)`: the length of one of its dimensions.
    ArrayLength,
    /// `btrim(s [, characters])`: `s` without the characters (spaces by
    /// default) at both ends; `ltrim` and `rtrim` at one.
    Btrim,
    Ltrim,
    Rtrim,
    /// `replace(s, from, to)`: every `from` in `s` replaced by `to`.
    Replace,
    /// `split_part(s, delimiter, n)`: the `n`th field (from the end when
    /// negative).
    SplitPart,
    /// `left(s, n)` / `right(s, n)`: the first / last `n` characters (all
    /// but the last / first `-n` when negative).
    Left,
    Right,
    /// `substr(s, start [, count])`: characters from position `start`.
    Substr,
}

/// How many arguments a function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arity {
    pub min: usize,
    pub max: Option<usize>,
}

impl Arity {
    pub const fn exactly(count: usize) -> Arity {
        Arity {
            min: count,
            max: Some(count),
        }
    }

    pub fn accepts(self, count: usize) -> bool {
        count >= self.min && self.max.is_none_or(|max| count <= max)
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) if max == self.min => write!(f, "{max}"),
            Some(max) => write!(f, "{} to {max}", self.min),
            None => write!(f, "at least {}", self.min),
        }
    }
}

impl Function {
    pub fn from_name(name: &str) -> Option<Function> {
        Some(match name {
            "lower" => Function::Lower,
            "upper" => Function::Upper,
            "length" | "char_length" => Function::Length,
            "abs" => Function::Abs,
            "coalesce" => Function::Coalesce,
            "nullif" => Function::Nullif,
            "greatest" => Function::Greatest,
            "least" => Function::Least,
            "round" => Function::Round,
            "cardinality" => Function::Cardinality,
            "array_length" => Function::ArrayLength,
            "btrim" => Function::Btrim,
            "ltrim" => Function::Ltrim,
            "rtrim" => Function::Rtrim,
            "replace" => Function::Replace,
            "split_part" => Function::SplitPart,
            "left" => Function::Left,
            "right" => Function::Right,
            "substr" | "substring" => Function::Substr,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Function::Lower => "lower",
            Function::Upper => "upper",
            Function::Length => "length",
            Function::Abs => "abs",
            Function::Coalesce => "coalesce",
            Function::Nullif => "nullif",
            Function::Greatest => "greatest",
            Function::Least => "least",
            Function::Round => "round",
            Function::Cardinality => "cardinality",
            Function::ArrayLength => "array_length",
            Function::Btrim => "btrim",
            Function::Ltrim => "ltrim",
            Function::Rtrim => "rtrim",
            Function::Replace => "replace",
            Function::SplitPart => "split_part",
            Function::Left => "left",
            Function::Right => "right",
            Function::Substr => "substr",
        }
    }

    pub fn arity(self) -> Arity {
        match self {
            Function::Lower
            | Function::Upper
            | Function::Length
            | Function::Abs
            | Function::Cardinality => Arity::exactly(1),
            Function::Coalesce | Function::Greatest | Function::Least => {
                Arity { min: 1, max: None }
            }
            Function::Nullif | Function::ArrayLength | Function::Left | Function::Right => {
                Arity::exactly(2)
            }
            Function::Replace | Function::SplitPart => Arity::exactly(3),
            Function::Round | Function::Btrim | Function::Ltrim | Function::Rtrim => Arity {
                min: 1,
                max: Some(2),
            },
            Function::Substr => Arity {
                min: 2,
                max: Some(3),
            },
        }
    }
}

impl Function {
    /// The result type for arguments of these types, or why they do not fit.
    pub fn result_type(self, args: &[ValueType]) -> Result<ValueType, String> {
        use ValueType as T;
        let first = args.first().copied().unwrap_or(T::Null);
        let second = args.get(1).copied().unwrap_or(T::Null);
        match self {
            Function::Lower | Function::Upper => {
                self.require(args, is_text_or_null(first), "text", T::Text)
            }
            Function::Length => self.require(args, is_text_or_null(first), "text", T::Int),
            Function::Abs => self.require(
                args,
                first.is_numeric() || first == T::Null,
                "a number",
                first,
            ),
            Function::Coalesce => coalesce_type(args).ok_or_else(|| {
                format!("coalesce arguments have no common type: {}", describe(args))
            }),
            Function::Greatest | Function::Least => {
                let common = coalesce_type(args).ok_or_else(|| {
                    format!(
                        "{} arguments have no common type: {}",
                        self.name(),
                        describe(args)
                    )
                })?;
                self.require(args, common.is_orderable(), "values with an order", common)
            }
            Function::Nullif => {
                let result = if first == T::Null { second } else { first };
                self.require(
                    args,
                    comparable(first, second),
                    "two comparable values",
                    result,
                )
            }
            Function::Cardinality => {
                let is_array = matches!(first, T::Array(_) | T::Null);
                self.require(args, is_array, "an array", T::Int)
            }
            Function::ArrayLength => {
                let fits =
                    matches!(first, T::Array(_) | T::Null) && matches!(second, T::Int | T::Null);
                self.require(args, fits, "(array, int)", T::Int)
            }
            Function::Btrim | Function::Ltrim | Function::Rtrim | Function::Replace => {
                let all_text = args.iter().all(|&t| is_text_or_null(t));
                self.require(args, all_text, "text arguments", T::Text)
            }
            Function::SplitPart => {
                let fits = is_text_or_null(first)
                    && is_text_or_null(second)
                    && matches!(args.get(2), Some(T::Int | T::Null));
                self.require(args, fits, "(text, text, int)", T::Text)
            }
            Function::Left | Function::Right => {
                let fits = is_text_or_null(first) && matches!(second, T::Int | T::Null);
                self.require(args, fits, "(text, int)", T::Text)
            }
            Function::Substr => {
                let fits = is_text_or_null(first)
                    && args[1..].iter().all(|t| matches!(t, T::Int | T::Null));
                self.require(args, fits, "(text, int) or (text, int, int)", T::Text)
            }
            Function::Round => round_type(args).ok_or_else(|| {
                format!(
                    "round expects (number) or (int/numeric, int), found {}",
                    describe(args)
                )
            }),
        }
    }

    fn require(
        self,
        args: &[ValueType],
        ok: bool,
        wanted: &str,
        result: ValueType,
    ) -> Result<ValueType, String> {
        if ok {
            Ok(result)
        } else {
            Err(format!(
                "{} expects {wanted}, found {}",
                self.name(),
                describe(args)
            ))
        }
    }
}

fn is_text_or_null(t: ValueType) -> bool {
    matches!(t, ValueType::Text | ValueType::Null)
}

fn describe(args: &[ValueType]) -> String {
    let names: Vec<&str> = args.iter().map(|t| t.name()).collect();
    format!("({})", names.join(", "))
}

fn coalesce_type(args: &[ValueType]) -> Option<ValueType> {
    args.iter()
        .try_fold(ValueType::Null, |common, &t| common_type(common, t))
}

fn round_type(args: &[ValueType]) -> Option<ValueType> {
    use ValueType as T;
    match args {
        [T::Float] => Some(T::Float),
        [T::Int | T::Numeric | T::Null] => Some(T::Numeric),
        [T::Int | T::Numeric | T::Null, T::Int | T::Null] => Some(T::Numeric),
        _ => None,
    }
}

impl Function {
    /// Computes the function over evaluated arguments (for COALESCE, the
    /// caller evaluates lazily and passes only what it needed).
    pub fn call(self, args: &[Value]) -> Result<Value, Fault> {
        match self {
            Function::Coalesce => Ok(args
                .iter()
                .find(|v| !v.is_null())
                .cloned()
                .unwrap_or(Value::Null)),
            Function::Nullif => nullif(args),
            Function::Greatest => extreme(args, Ordering::Greater),
            Function::Least => extreme(args, Ordering::Less),
            _ if args.iter().any(Value::is_null) => Ok(Value::Null),
            Function::Lower => map_text(args, |text| CaseMapping::current().lower(text)),
            Function::Upper => map_text(args, |text| CaseMapping::current().upper(text)),
            Function::Length => length(args),
            Function::Abs => abs(args),
            Function::Round => round(args),
            Function::Cardinality => arrays::cardinality(first_arg(args)),
            Function::ArrayLength => {
                arrays::array_length(first_arg(args), args.get(1).unwrap_or(&Value::Null))
            }
            Function::Btrim => trim(args, true, true),
            Function::Ltrim => trim(args, true, false),
            Function::Rtrim => trim(args, false, true),
            Function::Replace => replace(args),
            Function::SplitPart => split_part(args),
            Function::Left => left_or_right(args, true),
            Function::Right => left_or_right(args, false),
            Function::Substr => substr(args),
        }
    }
}

/// `greatest` (`wanted` Greater) or `least`: the first of the non-NULL
/// arguments that none beats.
fn extreme(args: &[Value], wanted: Ordering) -> Result<Value, Fault> {
    let mut best: Option<&Value> = None;
    for value in args.iter().filter(|value| !value.is_null()) {
        best = match best {
            Some(current) if try_compare(value, current)? != Some(wanted) => Some(current),
            _ => Some(value),
        };
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

fn text_arg(args: &[Value], index: usize) -> Result<&str, Fault> {
    match args.get(index).unwrap_or(&Value::Null) {
        Value::Text(text) => Ok(text),
        other => Err(expected("text", other)),
    }
}

fn int_arg(args: &[Value], index: usize) -> Result<i64, Fault> {
    match args.get(index).unwrap_or(&Value::Null) {
        Value::Int(int) => Ok(*int),
        other => Err(expected("int", other)),
    }
}

/// `btrim`, `ltrim` and `rtrim`: any of the given characters (a space by
/// default) removed from the chosen ends.
fn trim(args: &[Value], start: bool, end: bool) -> Result<Value, Fault> {
    let text = text_arg(args, 0)?;
    let characters = if args.len() > 1 {
        text_arg(args, 1)?
    } else {
        " "
    };
    let strip = |c: char| characters.contains(c);
    let mut trimmed = text;
    if start {
        trimmed = trimmed.trim_start_matches(strip);
    }
    if end {
        trimmed = trimmed.trim_end_matches(strip);
    }
    Ok(Value::Text(trimmed.to_owned()))
}

/// PostgreSQL leaves the text as it is when `from` is empty.
fn replace(args: &[Value]) -> Result<Value, Fault> {
    let (text, from, to) = (text_arg(args, 0)?, text_arg(args, 1)?, text_arg(args, 2)?);
    if from.is_empty() {
        return Ok(Value::Text(text.to_owned()));
    }
    Ok(Value::Text(text.replace(from, to)))
}

/// Fields are counted from 1, or from the end when `n` is negative; a
/// field past the last is empty; an empty delimiter makes the whole text
/// the one field; `n` = 0 is PostgreSQL's error.
fn split_part(args: &[Value]) -> Result<Value, Fault> {
    let (text, delimiter, n) = (text_arg(args, 0)?, text_arg(args, 1)?, int_arg(args, 2)?);
    if n == 0 {
        return Err(Fault::InvalidValue(
            "split_part's field position must not be zero".to_owned(),
        ));
    }
    let fields: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else if delimiter.is_empty() {
        vec![text]
    } else {
        text.split(delimiter).collect()
    };
    let index = if n > 0 {
        usize::try_from(n - 1).ok()
    } else {
        usize::try_from(n.unsigned_abs())
            .ok()
            .and_then(|back| fields.len().checked_sub(back))
    };
    let field = index.and_then(|index| fields.get(index)).copied();
    Ok(Value::Text(field.unwrap_or_default().to_owned()))
}

/// `left(s, n)` (`first`) or `right(s, n)`, counted in characters.
fn left_or_right(args: &[Value], first: bool) -> Result<Value, Fault> {
    let (text, n) = (text_arg(args, 0)?, int_arg(args, 1)?);
    let length = text.chars().count() as i64;
    let kept = if n >= 0 {
        n.min(length)
    } else {
        (length + n).max(0)
    };
    let skipped = if first { 0 } else { length - kept };
    let part = text.chars().skip(skipped as usize).take(kept as usize);
    Ok(Value::Text(part.collect()))
}

/// Characters from 1-based position `start` (which may be before the
/// text), `count` of them when given; a negative count is PostgreSQL's
/// error.
fn substr(args: &[Value]) -> Result<Value, Fault> {
    let (text, start) = (text_arg(args, 0)?, int_arg(args, 1)?);
    let end = match args.get(2) {
        None => i64::MAX,
        Some(_) => {
            let count = int_arg(args, 2)?;
            if count < 0 {
                return Err(Fault::InvalidValue(
                    "negative substring length not allowed".to_owned(),
                ));
            }
            start.saturating_add(count)
        }
    };
    let first = start.max(1);
    if end <= first {
        return Ok(Value::Text(String::new()));
    }
    let part = text
        .chars()
        .skip((first - 1) as usize)
        .take(usize::try_from(end - first).unwrap_or(usize::MAX));
    Ok(Value::Text(part.collect()))
}

fn first_arg(args: &[Value]) -> &Value {
    args.first().unwrap_or(&Value::Null)
}

fn expected(what: &str, found: &Value) -> Fault {
    Fault::TypeMismatch(format!("expected {what}, found {}", ValueType::of(found)))
}

fn nullif(args: &[Value]) -> Result<Value, Fault> {
    let first = first_arg(args);
    let second = args.get(1).unwrap_or(&Value::Null);
    match values_equal(first, second)? {
        Some(true) => Ok(Value::Null),
        _ => Ok(first.clone()),
    }
}

fn map_text(args: &[Value], map: fn(&str) -> String) -> Result<Value, Fault> {
    Ok(Value::Text(map(text_arg(args, 0)?)))
}

/// Length in characters, as PostgreSQL counts them (not bytes).
fn length(args: &[Value]) -> Result<Value, Fault> {
    Ok(Value::Int(text_arg(args, 0)?.chars().count() as i64))
}

fn abs(args: &[Value]) -> Result<Value, Fault> {
    match first_arg(args) {
        Value::Int(int) => int
            .checked_abs()
            .map(Value::Int)
            .ok_or(Fault::OutOfRange("bigint")),
        Value::Float(float) => Ok(Value::Float(float.abs())),
        Value::Numeric(_) => Ok(numeric_value(&decimal_of(first_arg(args))?.abs())),
        other => Err(expected("a number", other)),
    }
}

fn round(args: &[Value]) -> Result<Value, Fault> {
    let digits = match args.get(1) {
        None => 0,
        Some(Value::Int(digits)) => *digits,
        Some(other) => return Err(expected("int digits", other)),
    };
    match first_arg(args) {
        // PostgreSQL's round(double precision) rounds half to even (rint).
        Value::Float(float) if args.len() == 1 => Ok(Value::Float(float.round_ties_even())),
        value @ (Value::Int(_) | Value::Numeric(_)) => {
            Ok(numeric_value(&decimal_of(value)?.round(digits)?))
        }
        other => Err(expected("int or numeric", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(function: Function, args: &[Value]) -> Result<Value, Fault> {
        function.call(args)
    }

    fn num(text: &str) -> Value {
        Value::Numeric(text.into())
    }

    #[test]
    fn strict_functions_return_null_for_null() {
        for function in [
            Function::Lower,
            Function::Length,
            Function::Abs,
            Function::Round,
        ] {
            assert_eq!(call(function, &[Value::Null]), Ok(Value::Null));
        }
        assert_eq!(
            call(Function::Round, &[num("1.5"), Value::Null]),
            Ok(Value::Null)
        );
    }

    #[test]
    fn text_functions_count_characters_not_bytes() {
        assert_eq!(
            call(Function::Length, &[Value::Text("héllo".into())]),
            Ok(Value::Int(5))
        );
        assert_eq!(
            call(Function::Upper, &[Value::Text("straße".into())]),
            Ok(Value::Text("STRASSE".into()))
        );
        assert!(call(Function::Lower, &[Value::Int(1)]).is_err());
    }

    #[test]
    fn abs_and_round_are_exact_and_checked() {
        assert_eq!(
            call(Function::Abs, &[Value::Int(i64::MIN)]),
            Err(Fault::OutOfRange("bigint"))
        );
        assert_eq!(call(Function::Abs, &[num("-1.50")]), Ok(num("1.50")));
        assert_eq!(
            call(Function::Round, &[num("2.345"), Value::Int(2)]),
            Ok(num("2.35"))
        );
        assert_eq!(
            call(Function::Round, &[Value::Int(15), Value::Int(-1)]),
            Ok(num("20"))
        );
        assert_eq!(
            call(Function::Round, &[Value::Float(2.5)]),
            Ok(Value::Float(2.0))
        );
        assert!(call(Function::Round, &[Value::Float(2.5), Value::Int(1)]).is_err());
    }

    #[test]
    fn coalesce_and_nullif() {
        assert_eq!(
            call(Function::Coalesce, &[Value::Null, Value::Int(2)]),
            Ok(Value::Int(2))
        );
        assert_eq!(call(Function::Coalesce, &[Value::Null]), Ok(Value::Null));
        assert_eq!(
            call(Function::Nullif, &[Value::Int(1), num("1.0")]),
            Ok(Value::Null)
        );
        assert_eq!(
            call(Function::Nullif, &[Value::Int(1), Value::Null]),
            Ok(Value::Int(1))
        );
        assert!(call(Function::Nullif, &[Value::Int(1), Value::Text("1".into())]).is_err());
    }

    #[test]
    fn result_types_check_arguments() {
        use ValueType as T;
        assert_eq!(
            Function::Round.result_type(&[T::Int, T::Int]),
            Ok(T::Numeric)
        );
        assert_eq!(Function::Round.result_type(&[T::Float]), Ok(T::Float));
        assert!(Function::Round.result_type(&[T::Text]).is_err());
        assert_eq!(
            Function::Coalesce.result_type(&[T::Null, T::Int, T::Numeric]),
            Ok(T::Numeric)
        );
        assert!(Function::Coalesce.result_type(&[T::Text, T::Int]).is_err());
        assert!(Function::Length.result_type(&[T::Int]).is_err());
        assert_eq!(
            Function::Nullif.result_type(&[T::Text, T::Text]),
            Ok(T::Text)
        );
    }

    #[test]
    fn arity_describes_itself() {
        assert!(Function::Round.arity().accepts(2));
        assert!(!Function::Round.arity().accepts(3));
        assert!(Function::Coalesce.arity().accepts(9));
        assert_eq!(Function::Round.arity().to_string(), "1 to 2");
        assert_eq!(Function::Coalesce.arity().to_string(), "at least 1");
    }
}
