//! PostgreSQL arrays in expressions: `x = ANY(a)` and the other quantified
//! comparisons, containment and overlap (`@>`, `<@`, `&&`), `cardinality`
//! and `array_length`.
//!
//! A row holds an array as PostgreSQL's text of it (`{rock,"hip hop",NULL}`),
//! and so do literals; an operator parses it where it reads it. Only arrays
//! whose elements have one text per value take part ([`ArrayElement`]), so
//! comparing two elements' texts is comparing their values.

use std::fmt;

use super::compare::try_compare;
use super::error::{Fault, quoted};
use super::json_ops::JsonOp;
use super::node::{ComparisonOp, Node};
use super::temporal::{self, TemporalKind};
use super::types::{ValueType, comparable};
use crate::change::Value;

/// The element types of the arrays expressions read as arrays. Other
/// arrays (`numeric[]`, where `'{1.0}'` is `'{1}'`; `float8[]`; `text`
/// in another collation) stay text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArrayElement {
    Bool,
    /// `smallint`, `integer`, `bigint`.
    Int,
    /// `text`, `varchar`.
    Text,
    Uuid,
    Date,
}

impl ArrayElement {
    pub fn name(self) -> &'static str {
        match self {
            ArrayElement::Bool => "boolean[]",
            ArrayElement::Int => "integer[]",
            ArrayElement::Text => "text[]",
            ArrayElement::Uuid => "uuid[]",
            ArrayElement::Date => "date[]",
        }
    }

    /// The type of one element in expressions.
    pub fn value_type(self) -> ValueType {
        match self {
            ArrayElement::Bool => ValueType::Bool,
            ArrayElement::Int => ValueType::Int,
            ArrayElement::Text | ArrayElement::Uuid => ValueType::Text,
            ArrayElement::Date => ValueType::Date,
        }
    }
}

impl fmt::Display for ArrayElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An array's elements in storage order (row-major for several
/// dimensions), NULL elements as `None`, and the length of each dimension
/// (none for an empty array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedArray {
    pub elements: Vec<Option<String>>,
    pub dimensions: Vec<usize>,
}

/// An array's text as PostgreSQL's `array_in` reads it: `{a,"b c",NULL}`,
/// nested braces for more dimensions (`{{1,2},{3,4}}`, each sub-array as
/// long as its siblings), blanks around an unquoted element dropped, `"`
/// and `\` quoting, an unquoted `NULL` (any case) a NULL element, and
/// bounds (`[0:1]={a,b}`) skipped.
pub(crate) fn parse_array(text: &str) -> Result<ParsedArray, String> {
    parse_array_delimited(text, ',')
}

/// [`parse_array`] of an array whose elements are separated by
/// `delimiter`: `;` for `box` (PostgreSQL's `typdelim`), `,` for others.
pub(crate) fn parse_array_delimited(text: &str, delimiter: char) -> Result<ParsedArray, String> {
    let malformed = |detail: &str| format!("malformed array literal {}: {detail}", quoted(text));
    let body = skip_bounds(text.trim_matches(is_blank)).map_err(&malformed)?;
    let mut reader = Reader {
        delimiter,
        chars: body.chars().peekable(),
        elements: Vec::new(),
        lengths: Vec::new(),
        element_depth: None,
    };
    reader.sub_array(0).map_err(&malformed)?;
    reader.skip_blanks();
    if reader.chars.next().is_some() {
        return Err(malformed("junk after the closing brace"));
    }
    let dimensions = if reader.elements.is_empty() {
        Vec::new()
    } else {
        reader.lengths.into_iter().flatten().collect()
    };
    Ok(ParsedArray {
        elements: reader.elements,
        dimensions,
    })
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The text after an array's bounds decoration (`[1:2][0:1]=`), if any.
fn skip_bounds(text: &str) -> Result<&str, &'static str> {
    if !text.starts_with('[') {
        return Ok(text);
    }
    let Some((_, body)) = text.split_once('=') else {
        return Err("array bounds are not followed by =");
    };
    Ok(body.trim_start_matches(is_blank))
}

/// PostgreSQL's `MAXDIM`: also what bounds the reader's recursion.
const MAX_DIMENSIONS: usize = 6;

struct Reader<'a> {
    delimiter: char,
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    elements: Vec<Option<String>>,
    /// The length of each dimension seen so far, outermost first (an
    /// inner one is known before the one around it).
    lengths: Vec<Option<usize>>,
    /// The depth elements were found at: every element's must be the same.
    element_depth: Option<usize>,
}

impl Reader<'_> {
    fn skip_blanks(&mut self) {
        while self.chars.next_if(|&c| is_blank(c)).is_some() {}
    }

    /// Reads `{…}` at nesting `depth`, recording its length.
    fn sub_array(&mut self, depth: usize) -> Result<(), &'static str> {
        const MIXED: &str = "sub-arrays and elements are mixed";
        if depth == MAX_DIMENSIONS {
            return Err("an array has at most 6 dimensions");
        }
        self.skip_blanks();
        if self.chars.next() != Some('{') {
            return Err("an array is written {a,b}");
        }
        self.skip_blanks();
        let mut length = 0;
        if self.chars.next_if_eq(&'}').is_none() {
            loop {
                self.skip_blanks();
                if self.chars.peek() == Some(&'{') {
                    if self.element_depth.is_some_and(|found| found <= depth) {
                        return Err(MIXED);
                    }
                    self.sub_array(depth + 1)?;
                } else {
                    if *self.element_depth.get_or_insert(depth) != depth {
                        return Err(MIXED);
                    }
                    let element = self.element()?;
                    self.elements.push(element);
                }
                length += 1;
                self.skip_blanks();
                match self.chars.next() {
                    Some(c) if c == self.delimiter => continue,
                    Some('}') => break,
                    _ => return Err("elements are separated by commas"),
                }
            }
        } else if depth > 0 {
            return Err("a sub-array is empty");
        }
        self.record_length(depth, length)
    }

    fn record_length(&mut self, depth: usize, length: usize) -> Result<(), &'static str> {
        if self.lengths.len() <= depth {
            self.lengths.resize(depth + 1, None);
        }
        match self.lengths[depth].replace(length) {
            Some(known) if known != length => {
                Err("sub-arrays must have the same number of elements")
            }
            _ => Ok(()),
        }
    }

    /// One element, quoted or not; `None` for an unquoted `NULL`.
    fn element(&mut self) -> Result<Option<String>, &'static str> {
        let mut element = String::new();
        let mut quoted_or_escaped = false;
        // Length of `element` up to its last character a blank after it
        // cannot drop: trailing blanks of an unquoted element go.
        let mut kept = 0;
        while let Some(&c) = self.chars.peek() {
            match c {
                '}' => break,
                c if c == self.delimiter => break,
                '{' => return Err("a brace inside an element must be quoted"),
                '"' => {
                    self.chars.next();
                    quoted_or_escaped = true;
                    loop {
                        match self.chars.next() {
                            None => return Err("a quote is not closed"),
                            Some('"') => break,
                            Some('\\') => element.push(self.escaped()?),
                            Some(c) => element.push(c),
                        }
                    }
                    kept = element.len();
                }
                '\\' => {
                    self.chars.next();
                    quoted_or_escaped = true;
                    element.push(self.escaped()?);
                    kept = element.len();
                }
                c => {
                    self.chars.next();
                    element.push(c);
                    if !is_blank(c) {
                        kept = element.len();
                    }
                }
            }
        }
        element.truncate(kept);
        if element.is_empty() && !quoted_or_escaped {
            return Err("an element is empty");
        }
        let is_null = !quoted_or_escaped && element.eq_ignore_ascii_case("NULL");
        Ok((!is_null).then_some(element))
    }

    fn escaped(&mut self) -> Result<char, &'static str> {
        self.chars.next().ok_or("it ends in a backslash")
    }
}

/// The array a value holds: `None` for NULL. A literal beside `@>` that
/// is also JSON (`'{}'`) was read as JSON when parsed, and reads as an
/// array here, where the other side is one.
fn array_of(value: &Value) -> Result<Option<ParsedArray>, Fault> {
    match value {
        Value::Null => Ok(None),
        Value::Text(text) | Value::Json(text) => {
            parse_array(text).map(Some).map_err(Fault::InvalidValue)
        }
        other => Err(Fault::TypeMismatch(format!(
            "expected an array, found {}",
            ValueType::of(other)
        ))),
    }
}

/// `left op ANY (array)` (`all` false) or `left op ALL (array)`, with
/// PostgreSQL's NULLs: an empty array gives false (ANY) or true (ALL)
/// whatever `left` is; otherwise a NULL comparison that does not decide
/// the result makes it NULL.
pub(crate) fn quantified(
    op: ComparisonOp,
    all: bool,
    left: &Value,
    array: &Value,
) -> Result<Value, Fault> {
    let Some(array) = array_of(array)? else {
        return Ok(Value::Null);
    };
    let mut unknown = false;
    for element in &array.elements {
        let holds = match (left, element) {
            (Value::Null, _) | (_, None) => None,
            (left, Some(text)) => {
                try_compare(left, &element_value(left, text)?)?.map(|o| op.holds(o))
            }
        };
        match holds {
            Some(holds) if holds != all => return Ok(Value::Bool(holds)),
            Some(_) => {}
            None => unknown = true,
        }
    }
    Ok(if unknown {
        Value::Null
    } else {
        Value::Bool(all)
    })
}

/// An element read as the value compared with it: a number as a number,
/// a boolean as one, a date as one, anything else as its text. The type
/// check has made sure the element type compares with `left`'s.
fn element_value(left: &Value, text: &str) -> Result<Value, Fault> {
    let unreadable = || {
        Fault::InvalidValue(format!(
            "array element {} does not read as {}",
            quoted(text),
            ValueType::of(left)
        ))
    };
    Ok(match left {
        Value::Int(_) | Value::Float(_) | Value::Numeric(_) => {
            Value::Int(text.parse().map_err(|_| unreadable())?)
        }
        Value::Bool(_) => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(unreadable()),
        },
        Value::Date(_) | Value::Timestamp(_) | Value::TimestampTz(_) => {
            Value::Date(text.to_owned())
        }
        _ => Value::Text(text.to_owned()),
    })
}

/// Which of PostgreSQL's array set operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOp {
    /// `a @> b`: every non-NULL element of `b` is in `a`.
    Contains,
    /// `a <@ b`: every non-NULL element of `a` is in `b`.
    ContainedBy,
    /// `a && b`: an element is in both.
    Overlaps,
}

impl SetOp {
    pub fn symbol(self) -> &'static str {
        match self {
            SetOp::Contains => "@>",
            SetOp::ContainedBy => "<@",
            SetOp::Overlaps => "&&",
        }
    }
}

/// The array operator a jsonb operator is too, if any: `@>` and `<@`.
pub(crate) fn set_op_of(op: JsonOp) -> Option<SetOp> {
    match op {
        JsonOp::Contains => Some(SetOp::Contains),
        JsonOp::ContainedBy => Some(SetOp::ContainedBy),
        _ => None,
    }
}

/// `left @> right`, `<@` or `&&` over two arrays, by their elements'
/// texts, whatever their dimensions. A NULL element matches nothing, not
/// even another NULL, as in PostgreSQL (so `'{NULL}' @> '{NULL}'` is false).
pub(crate) fn set_op(op: SetOp, left: &Value, right: &Value) -> Result<Value, Fault> {
    let (Some(left), Some(right)) = (array_of(left)?, array_of(right)?) else {
        return Ok(Value::Null);
    };
    let holds = match op {
        SetOp::Contains => contains(&left, &right),
        SetOp::ContainedBy => contains(&right, &left),
        SetOp::Overlaps => right
            .elements
            .iter()
            .flatten()
            .any(|element| left.elements.iter().flatten().any(|e| e == element)),
    };
    Ok(Value::Bool(holds))
}

/// Whether each element of `inner` is a non-NULL element of `outer`.
/// (PostgreSQL's `@>` is false as soon as `inner` holds a NULL.)
fn contains(outer: &ParsedArray, inner: &ParsedArray) -> bool {
    inner.elements.iter().all(|element| {
        element
            .as_ref()
            .is_some_and(|element| outer.elements.iter().flatten().any(|e| e == element))
    })
}

/// `cardinality(a)`: how many elements, over all dimensions; 0 for an
/// empty array.
pub(crate) fn cardinality(array: &Value) -> Result<Value, Fault> {
    Ok(match array_of(array)? {
        None => Value::Null,
        Some(array) => Value::Int(array.elements.len() as i64),
    })
}

/// `array_length(a, dimension)`: the length of that dimension (counted
/// from 1), NULL for an empty array or a dimension it does not have.
pub(crate) fn array_length(array: &Value, dimension: &Value) -> Result<Value, Fault> {
    let (Some(array), Value::Int(dimension)) = (array_of(array)?, dimension) else {
        return Ok(Value::Null);
    };
    let length = usize::try_from(*dimension - 1)
        .ok()
        .and_then(|index| array.dimensions.get(index));
    Ok(length.map_or(Value::Null, |&length| Value::Int(length as i64)))
}

/// Whether `text`, an element of an array of `element`, is written as
/// PostgreSQL prints that type (`t`, `42`, a lower-case uuid), which is
/// what comparing elements by their texts needs of a literal.
pub(crate) fn canonical_element(element: ArrayElement, text: &str) -> Result<(), String> {
    let printed = match element {
        ArrayElement::Text => return Ok(()),
        ArrayElement::Bool => match text.to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" | "y" => "t".to_owned(),
            "f" | "false" | "no" | "off" | "0" | "n" => "f".to_owned(),
            _ => return Err(format!("{} is not a boolean", quoted(text))),
        },
        ArrayElement::Int => match text.trim().parse::<i64>() {
            Ok(number) => number.to_string(),
            Err(_) => return Err(format!("{} is not an integer", quoted(text))),
        },
        ArrayElement::Uuid => text.to_ascii_lowercase(),
        ArrayElement::Date => match temporal::parse(text, TemporalKind::Date) {
            Some(date) => date.format(TemporalKind::Date),
            None => return Err(format!("{} is not a date (write YYYY-MM-DD)", quoted(text))),
        },
    };
    if printed == text {
        Ok(())
    } else {
        Err(format!(
            "elements are compared by their text, and PostgreSQL prints {} as {}: write that",
            quoted(text),
            quoted(&printed)
        ))
    }
}

/// The type of `left op right` over arrays (`@>`, `<@`, `&&`): both
/// arrays of one element type, or one a literal of the other's type.
pub(crate) fn set_op_type(
    op: SetOp,
    (left, left_type): (&Node, ValueType),
    (right, right_type): (&Node, ValueType),
) -> Result<ValueType, String> {
    let element = match (left_type, right_type) {
        (ValueType::Array(l), ValueType::Array(r)) if l != r => {
            return Err(format!("`{}` cannot compare {l} with {r}", op.symbol()));
        }
        (ValueType::Array(element), _) | (_, ValueType::Array(element)) => element,
        _ => {
            return Err(format!(
                "`{}` needs two arrays, found {left_type} and {right_type}",
                op.symbol()
            ));
        }
    };
    for (side, side_type) in [(left, left_type), (right, right_type)] {
        match (side_type, literal_text(side)) {
            (_, Some(text)) => check_literal(text, element)?,
            (ValueType::Array(_) | ValueType::Null, None) => {}
            _ => {
                return Err(format!(
                    "`{}` needs two arrays, found {left_type} and {right_type}",
                    op.symbol()
                ));
            }
        }
    }
    Ok(ValueType::Bool)
}

/// The type of `left op ANY (right)` or `ALL`: `right` an array whose
/// elements compare with `left`, or a literal whose elements read as
/// `left`'s type.
pub(crate) fn quantified_type(
    left: ValueType,
    (right, right_type): (&Node, ValueType),
) -> Result<ValueType, String> {
    let element = match (right_type, literal_text(right)) {
        (ValueType::Array(element), text) => {
            if let Some(text) = text {
                check_literal(text, element)?;
            }
            element
        }
        (ValueType::Null, _) => return Ok(ValueType::Bool),
        (_, Some(text)) => {
            let Some(element) = element_of(left) else {
                return Err(format!(
                    "ANY and ALL compare a boolean, number, text or date with an array's \
                     elements, found {left}"
                ));
            };
            check_literal(text, element)?;
            element
        }
        _ => {
            return Err(format!(
                "ANY and ALL need an array on their right, found {right_type} (arrays of text, \
                 varchar, integers, booleans, uuids and dates are arrays here; an enum's, a \
                 numeric[] or a float[] is its text)"
            ));
        }
    };
    if comparable(left, element.value_type()) {
        Ok(ValueType::Bool)
    } else {
        Err(format!(
            "cannot compare {left} with the elements of {element}"
        ))
    }
}

/// The text of a literal operand, which may be an array's.
pub(crate) fn literal_text(node: &Node) -> Option<&str> {
    match node {
        Node::Literal(Value::Text(text) | Value::Json(text)) | Node::ArrayLiteral { text, .. } => {
            Some(text)
        }
        _ => None,
    }
}

/// The element type a literal array compared with a value of `left`'s
/// type reads its elements as.
fn element_of(left: ValueType) -> Option<ArrayElement> {
    Some(match left {
        ValueType::Bool => ArrayElement::Bool,
        ValueType::Int | ValueType::Float | ValueType::Numeric => ArrayElement::Int,
        ValueType::Text => ArrayElement::Text,
        ValueType::Date | ValueType::Timestamp | ValueType::TimestampTz => ArrayElement::Date,
        _ => return None,
    })
}

/// A literal array's text checked to parse, each element as `element`
/// prints it.
pub(crate) fn check_literal(text: &str, element: ArrayElement) -> Result<(), String> {
    let array = parse_array(text)?;
    array
        .elements
        .iter()
        .flatten()
        .try_for_each(|text| canonical_element(element, text))
}

#[cfg(test)]
mod tests;
