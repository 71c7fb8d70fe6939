//! The two error types of the expression language: [`ExprError`] when a view
//! file's expression is rejected (parsing or type checking), [`EvalError`] when
//! evaluating an accepted expression over one row fails.

use std::fmt;

use thiserror::Error;

use super::node::Node;

/// Why an expression was rejected: when the view is loaded, never on a row.
/// Variants name the offending fragment (as sqlparser renders it) or column,
/// so a view author can find it in the file; all are permanent until the
/// view file changes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExprError {
    #[error("syntax error in `{expression}`: {message}")]
    Syntax { expression: String, message: String },
    #[error("expression is {length} bytes long; at most {max} are allowed")]
    TooLong { length: usize, max: usize },
    #[error(
        "expression is too complex: {count} operators, keywords and parentheses; at most {max} are allowed"
    )]
    TooComplex { count: usize, max: usize },
    #[error("unsupported construct: {construct} in `{fragment}`")]
    Unsupported { construct: String, fragment: String },
    #[error("invalid literal `{fragment}`: {message}")]
    InvalidLiteral { fragment: String, message: String },
    #[error("unknown function `{name}` in `{fragment}`")]
    UnknownFunction { name: String, fragment: String },
    #[error("function {function} takes {expected} argument(s), found {found} in `{fragment}`")]
    WrongArity {
        function: String,
        expected: String,
        found: usize,
        fragment: String,
    },
    #[error("unknown column `{column}`")]
    UnknownColumn { column: String },
    #[error("type error in `{fragment}`: {message}")]
    Type { fragment: String, message: String },
    #[error(
        "division by zero in `{fragment}`: its divisor is always zero, so PostgreSQL raises \
         division_by_zero for every row that computes it"
    )]
    ZeroDivisor { fragment: String },
}

/// Why evaluating an expression over one row failed. Like PostgreSQL, this is
/// an error rather than a silent NULL: a view must not quietly drop a row.
///
/// Every variant is permanent for that row and view: evaluation is pure, so
/// a retry fails the same way. The change belongs on the view's dead-letter
/// list (with this message), while the other views go on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    /// The row has no such column (the caller's column lookup returned `None`).
    #[error("unknown column `{column}`")]
    UnknownColumn { column: String },
    /// A value of the wrong type reached an operator or function; type checking
    /// with `infer_type` catches these before any row is seen.
    #[error("type mismatch in `{fragment}`: {message}")]
    TypeMismatch { fragment: String, message: String },
    #[error("division by zero in `{fragment}`")]
    DivisionByZero { fragment: String },
    /// A result does not fit its type (`bigint`, `integer`, `numeric`, ...).
    #[error("{type_name} out of range in `{fragment}`")]
    OutOfRange {
        fragment: String,
        type_name: &'static str,
    },
    /// A value could not be read or converted (a cast of `'abc'` to int, a
    /// malformed date, a LIKE pattern ending in its escape character).
    #[error("invalid value in `{fragment}`: {message}")]
    InvalidValue { fragment: String, message: String },
}

/// A failure found by a value-level operation, before it knows which part of
/// the expression it belongs to; [`Fault::at`] attaches that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    TypeMismatch(String),
    DivisionByZero,
    OutOfRange(&'static str),
    InvalidValue(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::TypeMismatch(message) | Fault::InvalidValue(message) => f.write_str(message),
            Fault::DivisionByZero => f.write_str("division by zero"),
            Fault::OutOfRange(type_name) => write!(f, "{type_name} out of range"),
        }
    }
}

impl Fault {
    /// The evaluation error for this fault, located at `node`.
    pub(crate) fn at(self, node: &Node) -> EvalError {
        let fragment = node.to_string();
        match self {
            Fault::TypeMismatch(message) => EvalError::TypeMismatch { fragment, message },
            Fault::DivisionByZero => EvalError::DivisionByZero { fragment },
            Fault::OutOfRange(type_name) => EvalError::OutOfRange {
                fragment,
                type_name,
            },
            Fault::InvalidValue(message) => EvalError::InvalidValue { fragment, message },
        }
    }
}

/// A value quoted for an error message, cut short so that a huge row value
/// cannot flood a log line.
pub(crate) fn quoted(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("\"{}...\"", &text[..cut]),
        None => format!("\"{text}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_cut_short_on_a_char_boundary() {
        assert_eq!(quoted("abc"), "\"abc\"");
        let long = "é".repeat(100);
        assert_eq!(quoted(&long), format!("\"{}...\"", "é".repeat(40)));
    }
}
