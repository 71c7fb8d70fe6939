//! From source text to [`Node`]: sqlparser parses with the PostgreSQL
//! dialect, and this module converts its AST, refusing everything outside
//! the supported subset with the construct's name and the fragment.
//! Function calls, casts and `extract` are converted in `parse_call`.

use sqlparser::ast as sql;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use crate::change::Value;

use super::error::ExprError;
use super::node::{ArithmeticOp, CaseBranch, ComparisonOp, LogicalOp, Node, NodeKind};
use super::numeric::Decimal;
use super::parse_call::{call, cast, extract, typed_string};

/// View expressions are one-liners; the cap keeps pathological input (a
/// chain of thousands of `+`) from costing deep recursion in sqlparser.
pub(crate) const MAX_SOURCE_BYTES: usize = 4096;
/// Nesting depth beyond which an expression is refused, so that evaluation
/// and type checking recurse a bounded number of times.
pub(crate) const MAX_DEPTH: usize = 128;

pub(crate) fn parse_source(source: &str) -> Result<Node, ExprError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(ExprError::TooLong {
            length: source.len(),
            max: MAX_SOURCE_BYTES,
        });
    }
    convert(&parse_sql(source)?, 0)
}

/// One whole expression; trailing tokens (`a b`, `a; drop ...`) are an error.
fn parse_sql(source: &str) -> Result<sql::Expr, ExprError> {
    let syntax_error = |message: String| ExprError::Syntax {
        expression: source.to_owned(),
        message,
    };
    let from_parser = |error: ParserError| syntax_error(error.to_string());
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(source)
        .map_err(from_parser)?;
    let expr = parser.parse_expr().map_err(from_parser)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(syntax_error(format!(
            "unexpected `{}` after the expression at {}",
            next.token, next.span.start
        )));
    }
    Ok(expr)
}

/// Converts one sqlparser node and, recursively, its children.
pub(crate) fn convert(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    if depth > MAX_DEPTH {
        return Err(ExprError::TooDeep { max: MAX_DEPTH });
    }
    let kind = convert_kind(expr, depth + 1)?;
    // Rendered only now: the subtree is known to be shallow.
    Ok(Node {
        kind,
        text: expr.to_string(),
    })
}

pub(crate) fn convert_boxed(expr: &sql::Expr, depth: usize) -> Result<Box<Node>, ExprError> {
    convert(expr, depth).map(Box::new)
}

fn convert_kind(expr: &sql::Expr, depth: usize) -> Result<NodeKind, ExprError> {
    let child = |e: &sql::Expr| convert_boxed(e, depth);
    let is_null = |e: &sql::Expr, negated| {
        Ok(NodeKind::IsNull {
            operand: child(e)?,
            negated,
        })
    };
    let is_bool = |e: &sql::Expr, expected, negated| {
        Ok(NodeKind::IsBool {
            operand: child(e)?,
            expected,
            negated,
        })
    };
    let distinct = |a: &sql::Expr, b: &sql::Expr, negated| {
        Ok(NodeKind::IsDistinct {
            left: child(a)?,
            right: child(b)?,
            negated,
        })
    };
    match expr {
        sql::Expr::Identifier(ident) => Ok(NodeKind::Column(vec![ident_name(ident)])),
        sql::Expr::CompoundIdentifier(idents) => {
            Ok(NodeKind::Column(idents.iter().map(ident_name).collect()))
        }
        sql::Expr::Value(value) => literal(&value.value, expr).map(NodeKind::Literal),
        sql::Expr::Nested(inner) => convert_kind(inner, depth),
        sql::Expr::UnaryOp { op, expr: operand } => unary(*op, operand, expr, depth),
        sql::Expr::BinaryOp { left, op, right } => binary(op, left, right, expr, depth),
        sql::Expr::IsNull(operand) => is_null(operand, false),
        sql::Expr::IsNotNull(operand) => is_null(operand, true),
        sql::Expr::IsTrue(operand) => is_bool(operand, true, false),
        sql::Expr::IsNotTrue(operand) => is_bool(operand, true, true),
        sql::Expr::IsFalse(operand) => is_bool(operand, false, false),
        sql::Expr::IsNotFalse(operand) => is_bool(operand, false, true),
        sql::Expr::IsDistinctFrom(a, b) => distinct(a, b, false),
        sql::Expr::IsNotDistinctFrom(a, b) => distinct(a, b, true),
        sql::Expr::In {
            expr: operand,
            target,
            negated,
            ..
        } => in_list(operand, target, *negated, expr, depth),
        sql::Expr::Between {
            expr: operand,
            negated,
            low,
            high,
        } => Ok(NodeKind::Between {
            operand: child(operand)?,
            low: child(low)?,
            high: child(high)?,
            negated: *negated,
        }),
        sql::Expr::Like { .. } | sql::Expr::ILike { .. } => like(expr, depth),
        sql::Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => case(
            operand.as_deref(),
            conditions,
            else_result.as_deref(),
            depth,
        ),
        sql::Expr::Cast { .. } => cast(expr, depth),
        sql::Expr::TypedString(typed) => typed_string(typed, expr),
        sql::Expr::Function(function) => call(function, expr, depth),
        sql::Expr::Extract {
            field,
            expr: operand,
            ..
        } => extract(field, operand, expr, depth),
        other => Err(unsupported(construct_name(other), other)),
    }
}

pub(crate) fn unsupported(construct: impl Into<String>, expr: &sql::Expr) -> ExprError {
    ExprError::Unsupported {
        construct: construct.into(),
        fragment: expr.to_string(),
    }
}

/// A readable name for a construct outside the subset.
fn construct_name(expr: &sql::Expr) -> &'static str {
    match expr {
        sql::Expr::Subquery(_) | sql::Expr::Exists { .. } => "subquery",
        sql::Expr::AnyOp { .. } | sql::Expr::AllOp { .. } => "ANY/ALL",
        sql::Expr::AtTimeZone { .. } => "AT TIME ZONE",
        sql::Expr::Interval(_) => "interval",
        sql::Expr::Array(_) => "array",
        sql::Expr::JsonAccess { .. } | sql::Expr::CompoundFieldAccess { .. } => "field access",
        sql::Expr::SimilarTo { .. } | sql::Expr::RLike { .. } => "regular expression match",
        sql::Expr::Tuple(_) => "row constructor",
        sql::Expr::Wildcard(_) | sql::Expr::QualifiedWildcard(..) => "wildcard",
        sql::Expr::Collate { .. } => "COLLATE",
        sql::Expr::IsUnknown(_) | sql::Expr::IsNotUnknown(_) => "IS UNKNOWN",
        sql::Expr::Substring { .. } | sql::Expr::Trim { .. } | sql::Expr::Position { .. } => {
            "string function syntax"
        }
        sql::Expr::Ceil { .. } | sql::Expr::Floor { .. } => "ceil/floor",
        _ => "this kind of expression",
    }
}

/// Unquoted identifiers fold to lower case, as in PostgreSQL.
pub(crate) fn ident_name(ident: &sql::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn literal(value: &sql::Value, expr: &sql::Expr) -> Result<Value, ExprError> {
    match value {
        sql::Value::Number(digits, _) => number_literal(digits, false, expr),
        sql::Value::Boolean(flag) => Ok(Value::Bool(*flag)),
        sql::Value::Null => Ok(Value::Null),
        other => string_literal(other)
            .map(|text| Value::Text(text.to_owned()))
            .ok_or_else(|| unsupported("this kind of literal", expr)),
    }
}

/// The text of a string literal (`'...'`, `E'...'`, `$$...$$`).
pub(crate) fn string_literal(value: &sql::Value) -> Option<&str> {
    match value {
        sql::Value::SingleQuotedString(text) | sql::Value::EscapedStringLiteral(text) => Some(text),
        sql::Value::DollarQuotedString(dollar) => Some(&dollar.value),
        _ => None,
    }
}

/// Integers that fit i64 are Int; other numbers (`1.50`, `1e3`, beyond
/// i64) are exact Numeric, as PostgreSQL types its literals.
fn number_literal(digits: &str, negative: bool, expr: &sql::Expr) -> Result<Value, ExprError> {
    let signed = if negative {
        format!("-{digits}")
    } else {
        digits.to_owned()
    };
    if let Ok(int) = signed.parse::<i64>() {
        return Ok(Value::Int(int));
    }
    match Decimal::parse(&signed) {
        Some(decimal) => Ok(Value::Numeric(decimal.to_text())),
        None => Err(ExprError::InvalidLiteral {
            fragment: expr.to_string(),
            message: "not a decimal number within numeric range".into(),
        }),
    }
}

fn unary(
    op: sql::UnaryOperator,
    operand: &sql::Expr,
    expr: &sql::Expr,
    depth: usize,
) -> Result<NodeKind, ExprError> {
    match op {
        // Folded so that -9223372036854775808 is an Int, not a negated overflow.
        sql::UnaryOperator::Minus
            if let sql::Expr::Value(value) = operand
                && let sql::Value::Number(digits, _) = &value.value =>
        {
            number_literal(digits, true, expr).map(NodeKind::Literal)
        }
        sql::UnaryOperator::Minus | sql::UnaryOperator::Plus => Ok(NodeKind::Sign {
            negative: op == sql::UnaryOperator::Minus,
            operand: convert_boxed(operand, depth)?,
        }),
        sql::UnaryOperator::Not => Ok(NodeKind::Not(convert_boxed(operand, depth)?)),
        other => Err(unsupported(format!("operator `{other}`"), expr)),
    }
}

/// The binary operators of the subset, grouped by what they do.
enum BinaryKind {
    Arithmetic(ArithmeticOp),
    Comparison(ComparisonOp),
    Logical(LogicalOp),
    Concat,
}

fn binary_kind(op: &sql::BinaryOperator) -> Option<BinaryKind> {
    use sql::BinaryOperator as B;
    Some(match op {
        B::Plus => BinaryKind::Arithmetic(ArithmeticOp::Add),
        B::Minus => BinaryKind::Arithmetic(ArithmeticOp::Subtract),
        B::Multiply => BinaryKind::Arithmetic(ArithmeticOp::Multiply),
        B::Divide => BinaryKind::Arithmetic(ArithmeticOp::Divide),
        B::Modulo => BinaryKind::Arithmetic(ArithmeticOp::Modulo),
        B::Eq => BinaryKind::Comparison(ComparisonOp::Equal),
        B::NotEq => BinaryKind::Comparison(ComparisonOp::NotEqual),
        B::Lt => BinaryKind::Comparison(ComparisonOp::Less),
        B::LtEq => BinaryKind::Comparison(ComparisonOp::LessOrEqual),
        B::Gt => BinaryKind::Comparison(ComparisonOp::Greater),
        B::GtEq => BinaryKind::Comparison(ComparisonOp::GreaterOrEqual),
        B::And => BinaryKind::Logical(LogicalOp::And),
        B::Or => BinaryKind::Logical(LogicalOp::Or),
        B::StringConcat => BinaryKind::Concat,
        _ => return None,
    })
}

fn binary(
    op: &sql::BinaryOperator,
    left: &sql::Expr,
    right: &sql::Expr,
    expr: &sql::Expr,
    depth: usize,
) -> Result<NodeKind, ExprError> {
    let kind = binary_kind(op).ok_or_else(|| unsupported(format!("operator `{op}`"), expr))?;
    let (left, right) = (convert_boxed(left, depth)?, convert_boxed(right, depth)?);
    Ok(match kind {
        BinaryKind::Arithmetic(op) => NodeKind::Arithmetic { op, left, right },
        BinaryKind::Comparison(op) => NodeKind::Comparison { op, left, right },
        BinaryKind::Logical(op) => NodeKind::Logical { op, left, right },
        BinaryKind::Concat => NodeKind::Concat { left, right },
    })
}

fn in_list(
    operand: &sql::Expr,
    target: &sql::InTarget,
    negated: bool,
    expr: &sql::Expr,
    depth: usize,
) -> Result<NodeKind, ExprError> {
    let sql::InTarget::List(items) = target else {
        return Err(unsupported("subquery", expr));
    };
    Ok(NodeKind::InList {
        operand: convert_boxed(operand, depth)?,
        list: items
            .iter()
            .map(|item| convert(item, depth))
            .collect::<Result<_, _>>()?,
        negated,
    })
}

fn like(expr: &sql::Expr, depth: usize) -> Result<NodeKind, ExprError> {
    let (sql::Expr::Like {
        negated,
        any,
        expr: operand,
        pattern,
        escape_char,
    }
    | sql::Expr::ILike {
        negated,
        any,
        expr: operand,
        pattern,
        escape_char,
    }) = expr
    else {
        return Err(unsupported("this kind of expression", expr));
    };
    if *any {
        return Err(unsupported("LIKE ANY", expr));
    }
    let escape = match escape_char.as_deref() {
        None => Some('\\'),
        Some(escape) => escape_character(escape, expr)?,
    };
    Ok(NodeKind::Like {
        operand: convert_boxed(operand, depth)?,
        pattern: convert_boxed(pattern, depth)?,
        escape,
        case_insensitive: matches!(expr, sql::Expr::ILike { .. }),
        negated: *negated,
    })
}

/// `ESCAPE 'c'`; `ESCAPE ''` turns escaping off.
fn escape_character(escape: &sql::Expr, expr: &sql::Expr) -> Result<Option<char>, ExprError> {
    let invalid = |message: &str| ExprError::InvalidLiteral {
        fragment: expr.to_string(),
        message: message.to_owned(),
    };
    let sql::Expr::Value(value) = escape else {
        return Err(invalid("ESCAPE takes a string literal"));
    };
    let text =
        string_literal(&value.value).ok_or_else(|| invalid("ESCAPE takes a string literal"))?;
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(None),
        (Some(escape), None) => Ok(Some(escape)),
        _ => Err(invalid("ESCAPE takes a single character")),
    }
}

fn case(
    operand: Option<&sql::Expr>,
    conditions: &[sql::CaseWhen],
    otherwise: Option<&sql::Expr>,
    depth: usize,
) -> Result<NodeKind, ExprError> {
    let branch = |when: &sql::CaseWhen| {
        Ok(CaseBranch {
            when: convert(&when.condition, depth)?,
            then: convert(&when.result, depth)?,
        })
    };
    Ok(NodeKind::Case {
        operand: operand.map(|o| convert_boxed(o, depth)).transpose()?,
        branches: conditions.iter().map(branch).collect::<Result<_, _>>()?,
        otherwise: otherwise.map(|o| convert_boxed(o, depth)).transpose()?,
    })
}
