//! Conversion of sqlparser's function calls, casts, typed literals and
//! `extract` into nodes: resolving names against the closed set of
//! functions, checking arity, and checking literal arguments (a cast of a
//! literal, a `date_trunc` unit) while the author is still looking at them.

use std::sync::Arc;

use sqlparser::ast as sql;

use crate::change::Value;

use super::cast::{self as value_cast, CastTarget, IntWidth, NumericTypmod};
use super::date_parts::{DateField, TruncUnit};
use super::error::ExprError;
use super::functions::{Arity, Function};
use super::node::Node;
use super::parse::{convert, convert_boxed, ident_name, string_literal, unsupported};
use super::temporal::TemporalKind;
use super::time_zone::TimeZone;

/// The aggregates of view measures: named in the error, since an author
/// writing `sum(x)` in a filter deserves more than "unknown function".
const AGGREGATES: [&str; 6] = ["count", "sum", "avg", "min", "max", "count_distinct"];
/// PostgreSQL's functions of the time now: refused with why, where
/// "unknown function" read as a gap to be filled (trial 27).
const CLOCK_FUNCTIONS: [&str; 9] = [
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
];
/// PostgreSQL's limit on a numeric's declared precision.
const MAX_NUMERIC_PRECISION: u64 = 1000;

pub(crate) fn call(
    function: &sql::Function,
    expr: &sql::Expr,
    depth: usize,
) -> Result<Node, ExprError> {
    let name = function_name(function, expr)?;
    let args = plain_arguments(function, expr)?;
    match (name.as_str(), args.as_slice()) {
        ("date", [operand]) => Ok(Node::Cast {
            operand: convert_boxed(operand, depth)?,
            target: CastTarget::Temporal(TemporalKind::Date),
        }),
        ("date_trunc", [unit, operand]) => Ok(Node::DateTrunc {
            unit: named_literal(unit, TruncUnit::from_name, "date_trunc unit", expr)?,
            operand: convert_boxed(operand, depth)?,
            zone: None,
        }),
        ("date_trunc", [unit, operand, zone]) => Ok(Node::DateTrunc {
            unit: named_literal(unit, TruncUnit::from_name, "date_trunc unit", expr)?,
            operand: convert_boxed(operand, depth)?,
            zone: Some(zone_literal(zone, expr)?),
        }),
        ("date_part", [field, operand]) => Ok(Node::Extract {
            field: named_literal(field, DateField::from_name, "date_part field", expr)?,
            operand: convert_boxed(operand, depth)?,
            date_part: true,
        }),
        ("date_trunc", _) => Err(wrong_arity(
            &name,
            Arity {
                min: 2,
                max: Some(3),
            },
            args.len(),
            expr,
        )),
        ("date" | "date_part", _) => {
            let arity = Arity::exactly(if name == "date" { 1 } else { 2 });
            Err(wrong_arity(&name, arity, args.len(), expr))
        }
        _ => named_function(&name, &args, expr, depth),
    }
}

fn named_function(
    name: &str,
    args: &[&sql::Expr],
    expr: &sql::Expr,
    depth: usize,
) -> Result<Node, ExprError> {
    let Some(function) = Function::from_name(name) else {
        if CLOCK_FUNCTIONS.contains(&name) {
            return Err(unsupported(
                // Said before the fragment: "… (…) in `now()`".
                format!(
                    "reading the clock ({name}: a view's value follows from its rows alone, \
                     and would go stale while no row changes; store the time in a column, or \
                     compare with the clock where the view is read)"
                ),
                expr,
            ));
        }
        if AGGREGATES.contains(&name) {
            return Err(unsupported(
                format!("aggregate function {name}() here"),
                expr,
            ));
        }
        return Err(ExprError::UnknownFunction {
            name: name.to_owned(),
            fragment: expr.to_string(),
        });
    };
    if !function.arity().accepts(args.len()) {
        return Err(wrong_arity(name, function.arity(), args.len(), expr));
    }
    let args = args.iter().map(|arg| convert(arg, depth));
    Ok(Node::Call {
        function,
        args: args.collect::<Result<_, _>>()?,
    })
}

fn wrong_arity(name: &str, arity: Arity, found: usize, expr: &sql::Expr) -> ExprError {
    ExprError::WrongArity {
        function: name.to_owned(),
        expected: arity.to_string(),
        found,
        fragment: expr.to_string(),
    }
}

/// A one-part name such as `lower` (schema-qualified names are refused).
fn function_name(function: &sql::Function, expr: &sql::Expr) -> Result<String, ExprError> {
    match function.name.0.as_slice() {
        [sql::ObjectNamePart::Identifier(ident)] => Ok(ident_name(ident)),
        _ => Err(unsupported("qualified function name", expr)),
    }
}

/// The positional arguments of a plain call: no FILTER, OVER, DISTINCT,
/// ORDER BY, named arguments or `*`.
fn plain_arguments<'a>(
    function: &'a sql::Function,
    expr: &sql::Expr,
) -> Result<Vec<&'a sql::Expr>, ExprError> {
    let decorated = function.filter.is_some()
        || function.over.is_some()
        || function.null_treatment.is_some()
        || !function.within_group.is_empty()
        || !matches!(function.parameters, sql::FunctionArguments::None);
    let list = match &function.args {
        _ if decorated => return Err(unsupported("window or filtered function call", expr)),
        sql::FunctionArguments::None => return Ok(Vec::new()),
        sql::FunctionArguments::Subquery(_) => return Err(unsupported("subquery", expr)),
        sql::FunctionArguments::List(list) => list,
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(unsupported("DISTINCT or ORDER BY in a function call", expr));
    }
    let positional = |arg: &'a sql::FunctionArg| match arg {
        sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(arg)) => Ok(arg),
        _ => Err(unsupported("named or wildcard argument", expr)),
    };
    list.args.iter().map(positional).collect()
}

/// A string-literal argument naming a unit or field, such as `'month'`.
fn named_literal<T>(
    arg: &sql::Expr,
    from_name: fn(&str) -> Option<T>,
    what: &str,
    expr: &sql::Expr,
) -> Result<T, ExprError> {
    let name = match arg {
        sql::Expr::Value(value) => string_literal(&value.value),
        _ => None,
    };
    name.and_then(from_name)
        .ok_or_else(|| ExprError::InvalidLiteral {
            fragment: expr.to_string(),
            message: format!("{what} must be a string literal naming a supported one, not {arg}"),
        })
}

/// A time zone named by a string literal (`'America/New_York'`, `'UTC'`),
/// as `AT TIME ZONE` and `date_trunc` take it.
pub(crate) fn zone_literal(arg: &sql::Expr, expr: &sql::Expr) -> Result<Arc<TimeZone>, ExprError> {
    let name = match arg {
        sql::Expr::Value(value) => string_literal(&value.value),
        _ => None,
    };
    let Some(name) = name else {
        return Err(ExprError::InvalidLiteral {
            fragment: expr.to_string(),
            message: format!(
                "the time zone must be a string literal ('America/New_York', 'UTC'), not {arg}"
            ),
        });
    };
    TimeZone::named(name)
        .map(Arc::new)
        .ok_or_else(|| ExprError::InvalidLiteral {
            fragment: expr.to_string(),
            message: format!("time zone {name:?} is neither in the tz database nor a POSIX rule"),
        })
}

pub(crate) fn extract(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    let sql::Expr::Extract {
        field,
        expr: operand,
        ..
    } = expr
    else {
        return Err(unsupported("this kind of expression", expr));
    };
    let field = DateField::from_name(&field.to_string())
        .ok_or_else(|| unsupported(format!("extract field {field}"), expr))?;
    Ok(Node::Extract {
        field,
        operand: convert_boxed(operand, depth)?,
        date_part: false,
    })
}

pub(crate) fn cast(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    let sql::Expr::Cast {
        kind,
        expr: operand,
        data_type,
        format,
    } = expr
    else {
        return Err(unsupported("this kind of expression", expr));
    };
    if !matches!(kind, sql::CastKind::Cast | sql::CastKind::DoubleColon) || format.is_some() {
        return Err(unsupported("this form of cast", expr));
    }
    let target = cast_target(data_type, expr)?;
    let operand = convert(operand, depth)?;
    check_literal_cast(&operand, target, expr)?;
    Ok(Node::Cast {
        operand: Box::new(operand),
        target,
    })
}

/// `DATE '2024-01-01'` and the like: a cast of a text literal.
pub(crate) fn typed_string(typed: &sql::TypedString, expr: &sql::Expr) -> Result<Node, ExprError> {
    let target = cast_target(&typed.data_type, expr)?;
    let text = string_literal(&typed.value.value)
        .ok_or_else(|| unsupported("this kind of typed literal", expr))?;
    let operand = Node::Literal(Value::Text(text.to_owned()));
    check_literal_cast(&operand, target, expr)?;
    Ok(Node::Cast {
        operand: Box::new(operand),
        target,
    })
}

/// A cast of a literal fails now, not on the first row.
fn check_literal_cast(
    operand: &Node,
    target: CastTarget,
    expr: &sql::Expr,
) -> Result<(), ExprError> {
    let Node::Literal(value) = operand else {
        return Ok(());
    };
    value_cast::cast(value, target)
        .map(|_| ())
        .map_err(|fault| ExprError::InvalidLiteral {
            fragment: expr.to_string(),
            message: fault.to_string(),
        })
}

fn cast_target(data_type: &sql::DataType, expr: &sql::Expr) -> Result<CastTarget, ExprError> {
    use sql::DataType as D;
    use sql::TimezoneInfo as Zone;
    Ok(match data_type {
        D::Text | D::Varchar(None) | D::CharacterVarying(None) => CastTarget::Text,
        D::Bool | D::Boolean => CastTarget::Bool,
        D::Float8 | D::DoublePrecision => CastTarget::Float,
        D::SmallInt(None) | D::Int2(None) => CastTarget::Integer(IntWidth::Small),
        D::Int(None) | D::Integer(None) | D::Int4(None) => CastTarget::Integer(IntWidth::Regular),
        D::BigInt(None) | D::Int8(None) => CastTarget::Integer(IntWidth::Big),
        D::Numeric(info) | D::Decimal(info) | D::Dec(info) => {
            CastTarget::Numeric(numeric_typmod(info, expr)?)
        }
        D::Date => CastTarget::Temporal(TemporalKind::Date),
        D::Timestamp(None, Zone::None | Zone::WithoutTimeZone) => {
            CastTarget::Temporal(TemporalKind::Timestamp)
        }
        D::Timestamp(None, Zone::Tz | Zone::WithTimeZone) => {
            CastTarget::Temporal(TemporalKind::TimestampTz)
        }
        other => return Err(unsupported(format!("cast to {other}"), expr)),
    })
}

fn numeric_typmod(
    info: &sql::ExactNumberInfo,
    expr: &sql::Expr,
) -> Result<Option<NumericTypmod>, ExprError> {
    let (precision, scale) = match info {
        sql::ExactNumberInfo::None => return Ok(None),
        sql::ExactNumberInfo::Precision(precision) => (*precision, 0),
        sql::ExactNumberInfo::PrecisionAndScale(precision, scale) => (*precision, *scale),
    };
    let scale = u64::try_from(scale)
        .ok()
        .filter(|scale| *scale <= precision);
    match scale {
        Some(scale) if (1..=MAX_NUMERIC_PRECISION).contains(&precision) => {
            Ok(Some(NumericTypmod { precision, scale }))
        }
        _ => Err(ExprError::InvalidLiteral {
            fragment: expr.to_string(),
            message: format!(
                "numeric precision must be 1 to {MAX_NUMERIC_PRECISION} and scale 0 to precision"
            ),
        }),
    }
}

/// `trim([both | leading | trailing] [characters from] s)` and `trim(s,
/// characters)`: PostgreSQL's `btrim`, `ltrim` or `rtrim`.
pub(crate) fn trim_syntax(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    let sql::Expr::Trim {
        trim_where,
        trim_what,
        expr: operand,
        trim_characters,
    } = expr
    else {
        unreachable!("trim_syntax is called on TRIM")
    };
    let function = match trim_where {
        None | Some(sql::TrimWhereField::Both) => Function::Btrim,
        Some(sql::TrimWhereField::Leading) => Function::Ltrim,
        Some(sql::TrimWhereField::Trailing) => Function::Rtrim,
    };
    let mut args = vec![convert(operand, depth)?];
    match (trim_what, trim_characters.as_deref()) {
        (Some(characters), None) => args.push(convert(characters, depth)?),
        (None, Some([characters])) => args.push(convert(characters, depth)?),
        (None, None) => {}
        _ => return Err(unsupported("this form of trim".to_owned(), expr)),
    }
    Ok(Node::Call { function, args })
}

/// `substring(s from start for count)`, `substring(s, start, count)` and
/// `substr(…)`: PostgreSQL's `substr`; without a start, from the first
/// character.
pub(crate) fn substring_syntax(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    let sql::Expr::Substring {
        expr: operand,
        substring_from,
        substring_for,
        ..
    } = expr
    else {
        unreachable!("substring_syntax is called on SUBSTRING")
    };
    let start = match substring_from {
        Some(start) => convert(start, depth)?,
        None => Node::Literal(Value::Int(1)),
    };
    let mut args = vec![convert(operand, depth)?, start];
    if let Some(count) = substring_for {
        args.push(convert(count, depth)?);
    }
    Ok(Node::Call {
        function: Function::Substr,
        args,
    })
}
