//! From source text to [`Node`]: sqlparser parses with the PostgreSQL
//! dialect, and this module converts its AST, refusing everything outside
//! the supported subset with the construct's name and the fragment.
//! Function calls, casts and `extract` are converted in `parse_call`.
//!
//! sqlparser's `Display` of a fragment is used only for parse errors, on a
//! tree whose depth the token bound keeps small.

use sqlparser::ast as sql;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::change::Value;

use super::arrays::{ArrayElement, SetOp};
use super::error::ExprError;
use super::json_ops::{self, JsonOp, parse_text_array};
use super::node::{ArithmeticOp, CaseBranch, ComparisonOp, LogicalOp, Node};
use super::numeric::Decimal;
use super::parse_call::{
    call, cast, extract, substring_syntax, trim_syntax, typed_string, zone_literal,
};

/// View expressions are one-liners; this bounds the work a pathological one
/// (a megabyte-long string) can cause.
pub(crate) const MAX_SOURCE_BYTES: usize = 4096;
/// At most this many operators, keywords and parentheses. Each level of the
/// syntax tree owns at least one such token, so this also bounds its depth,
/// and with it every recursion over the tree: sqlparser's own `Display`
/// needs several kilobytes of stack per level in debug builds.
pub(crate) const MAX_STRUCTURAL_TOKENS: usize = 100;
/// sqlparser's own nesting limit (its default is 50). Each level of nested
/// function calls costs it tens of kilobytes of stack in a dev build; at 32
/// a parse stays well inside a 2 MiB thread stack, and views still nest
/// twenty calls or thirty parentheses deep.
const MAX_PARSER_RECURSION: usize = 32;

pub(crate) fn parse_source(source: &str) -> Result<Node, ExprError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(ExprError::TooLong {
            length: source.len(),
            max: MAX_SOURCE_BYTES,
        });
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, source)
        .tokenize()
        .map_err(|error| syntax_error(source, error.to_string()))?;
    refuse_between_symmetric(source, &tokens)?;
    let count = count_structural_tokens(&tokens);
    if count > MAX_STRUCTURAL_TOKENS {
        return Err(ExprError::TooComplex {
            count,
            max: MAX_STRUCTURAL_TOKENS,
        });
    }
    convert(&parse_sql(source)?, 0)
}

/// `BETWEEN SYMMETRIC`, which sqlparser reads as a syntax error at the
/// bound (trial 42: "Expected: AND, found: 'verified'"), named as what it is.
fn refuse_between_symmetric(source: &str, tokens: &[Token]) -> Result<(), ExprError> {
    let words = tokens.iter().filter_map(|token| match token {
        Token::Whitespace(_) => None,
        Token::Word(word) if word.quote_style.is_none() => Some(word.value.to_ascii_lowercase()),
        _ => Some(String::new()),
    });
    let mut previous = String::new();
    for word in words {
        if previous == "between" && word == "symmetric" {
            return Err(ExprError::Unsupported {
                construct: "BETWEEN SYMMETRIC (write `x BETWEEN a AND b OR x BETWEEN b AND a`)"
                    .to_owned(),
                fragment: source.to_owned(),
            });
        }
        previous = word;
    }
    Ok(())
}

fn syntax_error(source: &str, message: String) -> ExprError {
    ExprError::Syntax {
        expression: source.to_owned(),
        message,
    }
}

/// The tokens that can give the syntax tree a level: everything but
/// whitespace, literals, plain identifiers, commas and closing parentheses.
fn count_structural_tokens(tokens: &[Token]) -> usize {
    let is_leaf_or_separator = |token: &Token| match token {
        Token::Whitespace(_) | Token::Comma | Token::RParen | Token::EOF => true,
        Token::Number(..) | Token::SingleQuotedString(_) | Token::EscapedStringLiteral(_) => true,
        Token::DollarQuotedString(_) => true,
        Token::Word(word) => word.keyword == Keyword::NoKeyword || word.quote_style.is_some(),
        _ => false,
    };
    tokens.iter().filter(|t| !is_leaf_or_separator(t)).count()
}

/// One whole expression; trailing tokens (`a b`, `a; drop ...`) are an error.
fn parse_sql(source: &str) -> Result<sql::Expr, ExprError> {
    let from_parser = |error: ParserError| syntax_error(source, error.to_string());
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(MAX_PARSER_RECURSION)
        .try_with_sql(source)
        .map_err(from_parser)?;
    let expr = parser.parse_expr().map_err(from_parser)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        let message = format!(
            "unexpected `{}` after the expression at {}",
            next.token, next.span.start
        );
        return Err(syntax_error(source, message));
    }
    Ok(expr)
}

pub(crate) fn convert_boxed(expr: &sql::Expr, depth: usize) -> Result<Box<Node>, ExprError> {
    convert(expr, depth).map(Box::new)
}

/// Converts one sqlparser node and, recursively, its children. `depth` is
/// checked too, in case the token bound above is ever loosened.
pub(crate) fn convert(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    if depth > MAX_STRUCTURAL_TOKENS {
        return Err(ExprError::TooComplex {
            count: depth,
            max: MAX_STRUCTURAL_TOKENS,
        });
    }
    let depth = depth + 1;
    match expr {
        sql::Expr::Identifier(ident) => Ok(Node::Column(vec![ident_name(ident)])),
        sql::Expr::CompoundIdentifier(idents) => {
            Ok(Node::Column(idents.iter().map(ident_name).collect()))
        }
        sql::Expr::Value(value) => literal(&value.value, expr).map(Node::Literal),
        sql::Expr::Nested(inner) => convert(inner, depth),
        sql::Expr::UnaryOp { op, expr: operand } => unary(*op, operand, expr, depth),
        sql::Expr::BinaryOp { left, op, right } => binary(op, left, right, expr, depth),
        sql::Expr::In { .. } => in_list(expr, depth),
        sql::Expr::Between { .. } => between(expr, depth),
        sql::Expr::Like { .. } | sql::Expr::ILike { .. } => like(expr, depth),
        sql::Expr::Case { .. } => case(expr, depth),
        sql::Expr::Cast { .. } => match array_literal(expr)? {
            Some(literal) => Ok(literal),
            None => cast(expr, depth),
        },
        sql::Expr::Array(_) => match array_literal(expr)? {
            Some(literal) => Ok(literal),
            None => Err(unsupported("an ARRAY[…] of other than literals", expr)),
        },
        sql::Expr::AnyOp {
            left,
            compare_op,
            right,
            ..
        } => quantified(left, compare_op, right, false, expr, depth),
        sql::Expr::AllOp {
            left,
            compare_op,
            right,
        } => quantified(left, compare_op, right, true, expr, depth),
        sql::Expr::TypedString(typed) => typed_string(typed, expr),
        sql::Expr::Function(function) => call(function, expr, depth),
        sql::Expr::Extract { .. } => extract(expr, depth),
        sql::Expr::Trim { .. } => trim_syntax(expr, depth),
        sql::Expr::Substring { .. } => substring_syntax(expr, depth),
        sql::Expr::AtTimeZone {
            timestamp,
            time_zone,
        } => Ok(Node::AtTimeZone {
            operand: convert_boxed(timestamp, depth)?,
            zone: zone_literal(time_zone, expr)?,
        }),
        other => is_test(other, depth),
    }
}

/// `IS [NOT] NULL`, `IS [NOT] TRUE/FALSE`, `IS [NOT] DISTINCT FROM`; any
/// other construct is unsupported.
fn is_test(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    let child = |e: &sql::Expr| convert_boxed(e, depth);
    let is_bool = |e: &sql::Expr, expected, negated| {
        let operand = child(e)?;
        Ok(Node::IsBool {
            operand,
            expected,
            negated,
        })
    };
    let distinct = |a: &sql::Expr, b: &sql::Expr, negated| {
        let (left, right) = (child(a)?, child(b)?);
        Ok(Node::IsDistinct {
            left,
            right,
            negated,
        })
    };
    match expr {
        sql::Expr::IsNull(e) => Ok(Node::IsNull {
            operand: child(e)?,
            negated: false,
        }),
        sql::Expr::IsNotNull(e) => Ok(Node::IsNull {
            operand: child(e)?,
            negated: true,
        }),
        sql::Expr::IsTrue(e) => is_bool(e, true, false),
        sql::Expr::IsNotTrue(e) => is_bool(e, true, true),
        sql::Expr::IsFalse(e) => is_bool(e, false, false),
        sql::Expr::IsNotFalse(e) => is_bool(e, false, true),
        sql::Expr::IsDistinctFrom(a, b) => distinct(a, b, false),
        sql::Expr::IsNotDistinctFrom(a, b) => distinct(a, b, true),
        sql::Expr::CompoundFieldAccess { access_chain, .. }
            if access_chain
                .iter()
                .any(|access| matches!(access, sql::AccessExpr::Subscript(_))) =>
        {
            Err(unsupported(
                "array subscripts (compare with = ANY(…), or test with @>)",
                expr,
            ))
        }
        sql::Expr::CompoundFieldAccess { root, .. } => {
            // `user.email`: `user` is a keyword (a function), so the dot
            // reads as field access rather than a relation's column.
            let root = root.to_string().to_lowercase();
            let construct = format!(
                "field access (if `{root}` names a relation or column, it is an SQL keyword: \
                 write it in double quotes, as in \"{root}\".column)"
            );
            Err(unsupported(construct, expr))
        }
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
        sql::Expr::AtTimeZone { .. } => "AT TIME ZONE",
        sql::Expr::Interval(_) => "interval",
        sql::Expr::JsonAccess { .. } => "field access",
        sql::Expr::SimilarTo { .. } | sql::Expr::RLike { .. } => "regular expression match",
        sql::Expr::Tuple(_) => "row constructor",
        sql::Expr::Wildcard(_) | sql::Expr::QualifiedWildcard(..) => "wildcard",
        sql::Expr::Collate { .. } => "COLLATE",
        sql::Expr::IsUnknown(_) | sql::Expr::IsNotUnknown(_) => "IS UNKNOWN",
        sql::Expr::Position { .. } => "string function syntax",
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
) -> Result<Node, ExprError> {
    match op {
        // Folded so that -9223372036854775808 is an Int, not a negated overflow.
        sql::UnaryOperator::Minus
            if let sql::Expr::Value(value) = operand
                && let sql::Value::Number(digits, _) = &value.value =>
        {
            number_literal(digits, true, expr).map(Node::Literal)
        }
        sql::UnaryOperator::Minus | sql::UnaryOperator::Plus => Ok(Node::Sign {
            negative: op == sql::UnaryOperator::Minus,
            operand: convert_boxed(operand, depth)?,
        }),
        sql::UnaryOperator::Not => Ok(Node::Not(convert_boxed(operand, depth)?)),
        other => Err(unsupported(format!("operator `{other}`"), expr)),
    }
}

/// The binary operators of the subset, grouped by what they do.
enum BinaryKind {
    Arithmetic(ArithmeticOp),
    Comparison(ComparisonOp),
    Logical(LogicalOp),
    Concat,
    JsonField { as_text: bool },
    Json(JsonOp),
    Array(SetOp),
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
        B::Arrow => BinaryKind::JsonField { as_text: false },
        B::LongArrow => BinaryKind::JsonField { as_text: true },
        B::HashArrow => BinaryKind::Json(JsonOp::Path { as_text: false }),
        B::HashLongArrow => BinaryKind::Json(JsonOp::Path { as_text: true }),
        B::Question => BinaryKind::Json(JsonOp::HasKey),
        B::QuestionPipe => BinaryKind::Json(JsonOp::HasKeys { all: false }),
        B::QuestionAnd => BinaryKind::Json(JsonOp::HasKeys { all: true }),
        B::AtArrow => BinaryKind::Json(JsonOp::Contains),
        B::ArrowAt => BinaryKind::Json(JsonOp::ContainedBy),
        B::PGOverlap => BinaryKind::Array(SetOp::Overlaps),
        _ => return None,
    })
}

/// `->-`, `->>+` and the like, which PostgreSQL reads as `->` or `->>`
/// and a signed key: whether it is `->>`, and whether the sign is `-`.
fn json_field_with_sign(op: &sql::BinaryOperator) -> Option<(bool, bool)> {
    let sql::BinaryOperator::Custom(op) = op else {
        return None;
    };
    let (arrow, sign) = op.split_at(op.len().checked_sub(1)?);
    let as_text = match arrow {
        "->" => false,
        "->>" => true,
        _ => return None,
    };
    match sign {
        "-" => Some((as_text, true)),
        "+" => Some((as_text, false)),
        _ => None,
    }
}

fn binary(
    op: &sql::BinaryOperator,
    left: &sql::Expr,
    right: &sql::Expr,
    expr: &sql::Expr,
    depth: usize,
) -> Result<Node, ExprError> {
    if let Some((as_text, negative)) = json_field_with_sign(op) {
        // PostgreSQL ends an operator before a trailing `+` or `-` (`->>-1`
        // is `->> -1`); sqlparser reads them as one operator.
        return Ok(Node::JsonField {
            operand: convert_boxed(left, depth)?,
            key: Box::new(Node::Sign {
                negative,
                operand: convert_boxed(right, depth)?,
            }),
            as_text,
        });
    }
    let kind = binary_kind(op).ok_or_else(|| unsupported(format!("operator `{op}`"), expr))?;
    if let BinaryKind::Json(op) = kind {
        return json_operator(op, left, right, depth);
    }
    let (left, right) = (convert_boxed(left, depth)?, convert_boxed(right, depth)?);
    Ok(match kind {
        BinaryKind::Arithmetic(op) => Node::Arithmetic { op, left, right },
        BinaryKind::Comparison(op) => Node::Comparison { op, left, right },
        BinaryKind::Logical(op) => Node::Logical { op, left, right },
        BinaryKind::Concat => Node::Concat { left, right },
        BinaryKind::JsonField { as_text } => Node::JsonField {
            operand: left,
            key: right,
            as_text,
        },
        BinaryKind::Json(op) => Node::JsonOp { op, left, right },
        BinaryKind::Array(op) => Node::ArraySet { op, left, right },
    })
}

/// `left op ANY (right)` or `left op ALL (right)`, `op` a comparison.
fn quantified(
    left: &sql::Expr,
    op: &sql::BinaryOperator,
    right: &sql::Expr,
    all: bool,
    expr: &sql::Expr,
    depth: usize,
) -> Result<Node, ExprError> {
    let Some(BinaryKind::Comparison(op)) = binary_kind(op) else {
        return Err(unsupported(
            format!("operator `{op}` before ANY or ALL"),
            expr,
        ));
    };
    Ok(Node::Quantified {
        op,
        all,
        left: convert_boxed(left, depth)?,
        right: convert_boxed(right, depth)?,
    })
}

/// An array written as a literal, with its element type: `ARRAY['a',
/// 'b']` (of literals only, their type the elements'), `'{a,b}'::text[]`
/// or `ARRAY[1, 2]::int[]`; `None` for anything else.
fn array_literal(expr: &sql::Expr) -> Result<Option<Node>, ExprError> {
    match expr {
        sql::Expr::Cast {
            expr: inner,
            data_type: sql::DataType::Array(definition),
            ..
        } => {
            let text = match &**inner {
                sql::Expr::Value(value) => string_literal(&value.value).map(str::to_owned),
                sql::Expr::Array(array) => Some(array_constructor(array, expr)?.0),
                _ => None,
            };
            let Some(text) = text else {
                return Ok(None);
            };
            let element = cast_element(definition).ok_or_else(|| {
                unsupported(
                    "an array of other than text, varchar, integers, boolean, uuid or date",
                    expr,
                )
            })?;
            Ok(Some(Node::ArrayLiteral { text, element }))
        }
        sql::Expr::Array(array) => {
            let (text, element) = array_constructor(array, expr)?;
            Ok(Some(Node::ArrayLiteral { text, element }))
        }
        _ => Ok(None),
    }
}

/// `ARRAY[…]` of literals as an array's text, with the elements' type
/// (text when every one is NULL, as in PostgreSQL).
fn array_constructor(
    array: &sql::Array,
    expr: &sql::Expr,
) -> Result<(String, ArrayElement), ExprError> {
    let mut element_type = None;
    let mut elements = Vec::with_capacity(array.elem.len());
    for element in &array.elem {
        if matches!(element, sql::Expr::Array(_)) {
            // Not an element: an array of arrays has two dimensions.
            return Err(unsupported(
                "ARRAY[…] of arrays (write '{{1,2},{3,4}}')",
                expr,
            ));
        }
        let (text, kind) = match convert(element, 0)? {
            Node::Literal(Value::Null) => (None, None),
            Node::Literal(Value::Bool(flag)) => (
                Some(if flag { "t" } else { "f" }.to_owned()),
                Some(ArrayElement::Bool),
            ),
            Node::Literal(Value::Int(number)) => {
                (Some(number.to_string()), Some(ArrayElement::Int))
            }
            Node::Literal(Value::Text(text)) => (Some(text), Some(ArrayElement::Text)),
            _ => {
                return Err(unsupported(
                    "an ARRAY[…] of other than text, integer, boolean or NULL literals",
                    expr,
                ));
            }
        };
        if let Some(kind) = kind
            && *element_type.get_or_insert(kind) != kind
        {
            return Err(unsupported(
                "an ARRAY[…] of literals of several types",
                expr,
            ));
        }
        elements.push(text);
    }
    let text = json_ops::text_array_literal(&elements);
    Ok((text, element_type.unwrap_or(ArrayElement::Text)))
}

/// The element type of a cast to an array (`text[]`, `int[]`), if it is
/// one whose arrays expressions read.
fn cast_element(definition: &sql::ArrayElemTypeDef) -> Option<ArrayElement> {
    use sql::DataType as T;
    let (sql::ArrayElemTypeDef::SquareBracket(inner, _)
    | sql::ArrayElemTypeDef::AngleBracket(inner)
    | sql::ArrayElemTypeDef::Qualified(inner, _)) = definition
    else {
        return None;
    };
    Some(match &**inner {
        T::Text | T::Varchar(_) | T::CharacterVarying(_) | T::String(_) => ArrayElement::Text,
        T::Int(_)
        | T::Integer(_)
        | T::Int2(_)
        | T::Int4(_)
        | T::Int8(_)
        | T::SmallInt(_)
        | T::BigInt(_) => ArrayElement::Int,
        T::Bool | T::Boolean => ArrayElement::Bool,
        T::Uuid => ArrayElement::Uuid,
        T::Date => ArrayElement::Date,
        _ => return None,
    })
}

/// A jsonb operator, its literal operands read as PostgreSQL types an
/// untyped literal there: a path or key list as a text array, the other
/// side of a containment as JSON.
fn json_operator(
    op: JsonOp,
    left: &sql::Expr,
    right: &sql::Expr,
    depth: usize,
) -> Result<Node, ExprError> {
    // A literal that is not JSON may be an array's (`tags @> '{rock}'`):
    // the type check tells which the other side needs.
    let json_side = |side: &sql::Expr| match json_literal(side) {
        Some(text) => Ok(Box::new(Node::Literal(Value::Json(text)))),
        None => convert_boxed(side, depth),
    };
    let (left, right) = match op {
        JsonOp::Contains | JsonOp::ContainedBy => (json_side(left)?, json_side(right)?),
        JsonOp::Path { .. } | JsonOp::HasKeys { .. } => {
            (convert_boxed(left, depth)?, text_array_literal(op, right)?)
        }
        JsonOp::HasKey => (convert_boxed(left, depth)?, convert_boxed(right, depth)?),
    };
    Ok(Node::JsonOp { op, left, right })
}

/// The text of a string literal, or of one cast to `json` or `jsonb`,
/// that is JSON; `None` for any other operand.
fn json_literal(side: &sql::Expr) -> Option<String> {
    let text = match side {
        sql::Expr::Value(value) => string_literal(&value.value),
        sql::Expr::Cast {
            expr: inner,
            data_type: sql::DataType::JSON | sql::DataType::JSONB,
            ..
        } => match &**inner {
            sql::Expr::Value(value) => string_literal(&value.value),
            _ => None,
        },
        _ => None,
    };
    let text = text?;
    serde_json::from_str::<&serde_json::value::RawValue>(text).ok()?;
    Some(text.to_owned())
}

/// The path of `#>` or the keys of `?|` as a text array literal: written
/// `'{a,0}'`, `'{a,0}'::text[]` or `ARRAY['a', '0']`.
fn text_array_literal(op: JsonOp, side: &sql::Expr) -> Result<Box<Node>, ExprError> {
    fn string(expr: &sql::Expr) -> Option<&str> {
        match expr {
            sql::Expr::Value(value) => string_literal(&value.value),
            _ => None,
        }
    }
    let elements = match side {
        sql::Expr::Cast {
            expr: inner,
            data_type: sql::DataType::Array(_),
            ..
        } => string(inner).map(parse_text_array),
        sql::Expr::Array(array) => array
            .elem
            .iter()
            .map(|element| match element {
                sql::Expr::Value(value) if value.value == sql::Value::Null => Some(None),
                other => string(other).map(|text| Some(text.to_owned())),
            })
            .collect::<Option<Vec<_>>>()
            .map(Ok),
        other => string(other).map(parse_text_array),
    };
    let Some(elements) = elements else {
        return Err(unsupported(
            format!(
                "a `{}` operand that is not a text array literal (write '{{a,b}}' or ARRAY['a','b'])",
                op.symbol()
            ),
            side,
        ));
    };
    let elements = elements.map_err(|message| ExprError::InvalidLiteral {
        fragment: side.to_string(),
        message,
    })?;
    Ok(Box::new(Node::Literal(Value::Text(
        json_ops::text_array_literal(&elements),
    ))))
}

fn in_list(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    let sql::Expr::In {
        expr: operand,
        target,
        negated,
        ..
    } = expr
    else {
        return Err(unsupported("this kind of expression", expr));
    };
    let sql::InTarget::List(items) = target else {
        return Err(unsupported("subquery", expr));
    };
    let list = items.iter().map(|item| convert(item, depth));
    Ok(Node::InList {
        operand: convert_boxed(operand, depth)?,
        list: list.collect::<Result<_, _>>()?,
        negated: *negated,
    })
}

fn between(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    let sql::Expr::Between {
        expr: operand,
        negated,
        low,
        high,
    } = expr
    else {
        return Err(unsupported("this kind of expression", expr));
    };
    Ok(Node::Between {
        operand: convert_boxed(operand, depth)?,
        low: convert_boxed(low, depth)?,
        high: convert_boxed(high, depth)?,
        negated: *negated,
    })
}

fn like(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
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
    Ok(Node::Like {
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

fn case(expr: &sql::Expr, depth: usize) -> Result<Node, ExprError> {
    let sql::Expr::Case {
        operand,
        conditions,
        else_result,
        ..
    } = expr
    else {
        return Err(unsupported("this kind of expression", expr));
    };
    let optional =
        |e: &Option<Box<sql::Expr>>| e.as_deref().map(|e| convert_boxed(e, depth)).transpose();
    let branch = |when: &sql::CaseWhen| {
        Ok(CaseBranch {
            when: convert(&when.condition, depth)?,
            then: convert(&when.result, depth)?,
        })
    };
    Ok(Node::Case {
        operand: optional(operand)?,
        branches: conditions.iter().map(branch).collect::<Result<_, _>>()?,
        otherwise: optional(else_result)?,
    })
}
