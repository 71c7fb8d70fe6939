//! The text of one measure of an aggregate view, `function(expression)`,
//! split into its function and the text of its argument, which is then
//! parsed as an ordinary expression (`src/expr`).
//!
//! The text is cut with sqlparser's tokenizer, the one expressions are parsed
//! with, so parentheses inside string literals (`sum(length(')'))`) and
//! quoted names never confuse the split. Function names are case-insensitive;
//! `count()` and `count(*)` count rows and have no argument.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::model::{Fraction, MeasureFunction};

/// Every measure function, in the order error messages list them.
pub(crate) const MEASURE_FUNCTIONS: [MeasureFunction; 6] = [
    MeasureFunction::Count,
    MeasureFunction::Sum,
    MeasureFunction::Avg,
    MeasureFunction::Min,
    MeasureFunction::Max,
    MeasureFunction::CountDistinct,
];

/// A measure's function and the text of its argument.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MeasureCall<'a> {
    pub function: MeasureFunction,
    /// The argument's text, trimmed; `None` for `count()` and `count(*)`.
    pub argument: Option<&'a str>,
    /// The condition of `FILTER (WHERE condition)` after the call, trimmed.
    pub filter: Option<&'a str>,
}

/// Splits `text` into its function and argument, or says what is wrong.
pub(crate) fn split_measure(text: &str) -> Result<MeasureCall<'_>, String> {
    let all = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .map_err(|error| format!("invalid measure `{text}`: {error}"))?;
    let tokens: Vec<&TokenWithSpan> = all
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    let (name, open) = match tokens.as_slice() {
        [name, open, ..] if open.token == Token::LParen => match unquoted_word(&name.token) {
            Some(name) => (name, open),
            None => return Err(not_a_call(text)),
        },
        _ => return Err(not_a_call(text)),
    };
    let close =
        closing_paren(&tokens, 1).ok_or_else(|| format!("unbalanced parentheses in `{text}`"))?;
    if let Some(continuous) = percentile_kind(name) {
        return split_percentile(text, continuous, &tokens, close);
    }
    let function = function_named(name).ok_or_else(|| {
        format!(
            "unknown function `{name}`; expected one of: {}",
            function_list()
        )
    })?;
    let filter = filter_clause(text, &tokens[close + 1..])?;
    let inner = &tokens[2..close];
    check_inner_tokens(function, inner)?;
    let start = byte_offset(text, open.span.start) + 1;
    let argument = text[start..byte_offset(text, tokens[close].span.start)].trim();
    match (function, inner) {
        (MeasureFunction::Count, []) => Ok(MeasureCall {
            function,
            argument: None,
            filter,
        }),
        (MeasureFunction::Count, [star]) if star.token == Token::Mul => Ok(MeasureCall {
            function,
            argument: None,
            filter,
        }),
        (_, []) => Err(needs_argument(function)),
        (_, [star]) if star.token == Token::Mul => Err(format!(
            "`{}(*)`: only `count` takes `*`; {}",
            function.name(),
            needs_argument(function)
        )),
        _ => Ok(MeasureCall {
            function,
            argument: Some(argument),
            filter,
        }),
    }
}

/// Whether `name` is a percentile's, and whether it interpolates:
/// `percentile_cont` (true), `percentile_disc` (false).
fn percentile_kind(name: &str) -> Option<bool> {
    match name.to_ascii_lowercase().as_str() {
        "percentile_cont" => Some(true),
        "percentile_disc" => Some(false),
        _ => None,
    }
}

/// `percentile_cont(f) WITHIN GROUP (ORDER BY x)` (or `percentile_disc`),
/// as PostgreSQL writes these ordered-set aggregates, with an optional
/// `FILTER (WHERE …)` after; `close` is the index of the call's `)`.
fn split_percentile<'a>(
    text: &'a str,
    continuous: bool,
    tokens: &[&TokenWithSpan],
    close: usize,
) -> Result<MeasureCall<'a>, String> {
    let name = if continuous {
        "percentile_cont"
    } else {
        "percentile_disc"
    };
    let usage = format!(
        "write `{name}(0.95) WITHIN GROUP (ORDER BY expression)`, a fraction between 0 and 1"
    );
    let fraction = match &tokens[2..close] {
        [number] => match &number.token {
            Token::Number(digits, _) => digits.parse().ok().and_then(Fraction::new),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| format!("`{name}` takes one fraction between 0 and 1: {usage}"))?;
    let after = &tokens[close + 1..];
    let word = |index: usize, expected: &str| {
        after
            .get(index)
            .and_then(|t| unquoted_word(&t.token))
            .is_some_and(|w| w.eq_ignore_ascii_case(expected))
    };
    let opens = after.get(2).is_some_and(|t| t.token == Token::LParen);
    let ordered =
        word(0, "within") && word(1, "group") && opens && word(3, "order") && word(4, "by");
    let end = closing_paren(after, 2).filter(|_| ordered);
    let Some(end) = end.filter(|&end| end > 5) else {
        return Err(format!(
            "`{name}(…)` needs `WITHIN GROUP (ORDER BY expression)`: {usage}"
        ));
    };
    let inner = &after[5..end];
    if inner
        .last()
        .and_then(|t| unquoted_word(&t.token))
        .is_some_and(|w| w.eq_ignore_ascii_case("desc") || w.eq_ignore_ascii_case("asc"))
    {
        return Err(format!(
            "`{name}` orders its inputs ascending only: drop ASC/DESC, and for the order \
             downward take 1 minus the fraction"
        ));
    }
    let function = if continuous {
        MeasureFunction::PercentileCont(fraction)
    } else {
        MeasureFunction::PercentileDisc(fraction)
    };
    check_inner_tokens(function, inner)?;
    let start = byte_offset(text, after[4].span.end);
    let argument = text[start..byte_offset(text, after[end].span.start)].trim();
    let filter = filter_clause(text, &after[end + 1..])?;
    Ok(MeasureCall {
        function,
        argument: Some(argument),
        filter,
    })
}

/// The condition of what follows the call: nothing, or `FILTER (WHERE
/// condition)`, as SQL writes an aggregate over only some rows.
fn filter_clause<'a>(text: &'a str, after: &[&TokenWithSpan]) -> Result<Option<&'a str>, String> {
    let Some(first) = after.first() else {
        return Ok(None);
    };
    let is_word = |index: usize, word: &str| {
        let token = after.get(index).and_then(|t| unquoted_word(&t.token));
        token.is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    let opens = after.get(1).is_some_and(|t| t.token == Token::LParen);
    let last = after.len() - 1;
    let closes_last = closing_paren(after, 1) == Some(last);
    if is_word(0, "filter") && opens && is_word(2, "where") && last > 3 && closes_last {
        let start = byte_offset(text, after[3].span.start);
        let end = byte_offset(text, after[last].span.start);
        return Ok(Some(text[start..end].trim()));
    }
    let start = byte_offset(text, first.span.start);
    Err(format!(
        "a measure is a single `function(expression)`, which only `FILTER (WHERE \
         condition)` may follow: not `{}` after `{}`",
        text[start..].trim(),
        text[..start].trim()
    ))
}

fn not_a_call(text: &str) -> String {
    format!(
        "`{text}` is not a measure: write `function(expression)`, such as `sum(quantity)`, \
         with one of: {}",
        function_list()
    )
}

fn needs_argument(function: MeasureFunction) -> String {
    format!(
        "`{}` needs one expression, such as `{}(quantity)`",
        function.name(),
        function.name()
    )
}

fn function_list() -> String {
    let mut names: Vec<&str> = MEASURE_FUNCTIONS.iter().map(|f| f.name()).collect();
    names.extend([
        "median",
        "percentile_cont(f) WITHIN GROUP (ORDER BY …)",
        "percentile_disc(f) WITHIN GROUP (ORDER BY …)",
    ]);
    names.join(", ")
}

fn unquoted_word(token: &Token) -> Option<&str> {
    match token {
        Token::Word(word) if word.quote_style.is_none() => Some(&word.value),
        _ => None,
    }
}

fn function_named(name: &str) -> Option<MeasureFunction> {
    let name = name.to_ascii_lowercase();
    if name == "median" {
        return Fraction::new(0.5).map(MeasureFunction::PercentileCont);
    }
    MEASURE_FUNCTIONS.into_iter().find(|f| f.name() == name)
}

/// The index of the parenthesis that closes the one at index `open`.
fn closing_paren(tokens: &[&TokenWithSpan], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate().skip(open) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// Refuses `count(distinct x)`, `sum(a, b)` and an aggregate inside the
/// argument, which the expression parser would name less helpfully.
fn check_inner_tokens(function: MeasureFunction, inner: &[&TokenWithSpan]) -> Result<(), String> {
    let name = function.name();
    let first_word = inner.first().and_then(|t| unquoted_word(&t.token));
    if first_word.is_some_and(|word| word.eq_ignore_ascii_case("distinct")) {
        return Err(format!(
            "`{name}(distinct ...)` is not supported: write `count_distinct(expression)` to \
             count distinct values"
        ));
    }
    let mut depth = 0usize;
    let mut arguments = 1;
    for (index, token) in inner.iter().enumerate() {
        match &token.token {
            // `ARRAY['a', 'b']` holds commas of its own, as a call does.
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => arguments += 1,
            other => {
                let called = inner
                    .get(index + 1)
                    .is_some_and(|t| t.token == Token::LParen);
                if let Some(nested) = unquoted_word(other).and_then(function_named)
                    && called
                {
                    return Err(format!(
                        "aggregates cannot be nested: `{}(...)` inside `{name}(...)`; \
                         the argument is an expression over one row",
                        nested.name()
                    ));
                }
            }
        }
    }
    if arguments > 1 {
        return Err(format!(
            "`{name}` takes one expression, found {arguments} arguments"
        ));
    }
    Ok(())
}

/// The byte offset of a tokenizer location (1-based line and column, in
/// characters) in `text`.
fn byte_offset(text: &str, location: Location) -> usize {
    let (mut line, mut column) = (1, 1);
    for (offset, c) in text.char_indices() {
        if line == location.line && column == location.column {
            return offset;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(function: MeasureFunction, argument: Option<&str>) -> MeasureCall<'_> {
        MeasureCall {
            function,
            argument,
            filter: None,
        }
    }

    /// `percentile_cont`/`percentile_disc` as PostgreSQL writes them, and
    /// `median(x)`; a fraction outside 0..1, a missing `WITHIN GROUP` or a
    /// direction are told.
    #[test]
    fn percentiles_are_split_as_ordered_set_aggregates() {
        let fraction = |value| Fraction::new(value).unwrap();
        let split = |text| split_measure(text).unwrap();
        assert_eq!(
            split("percentile_cont(0.95) WITHIN GROUP (ORDER BY delay * 2)"),
            call(
                MeasureFunction::PercentileCont(fraction(0.95)),
                Some("delay * 2")
            )
        );
        assert_eq!(
            split("Percentile_Disc(1) within group (order by (a)) FILTER (WHERE b > 0)"),
            MeasureCall {
                function: MeasureFunction::PercentileDisc(fraction(1.0)),
                argument: Some("(a)"),
                filter: Some("b > 0"),
            }
        );
        assert_eq!(
            split("median(price)"),
            call(
                MeasureFunction::PercentileCont(fraction(0.5)),
                Some("price")
            )
        );
        for (text, error) in [
            (
                "percentile_cont(1.5) WITHIN GROUP (ORDER BY x)",
                "one fraction between 0 and 1",
            ),
            (
                "percentile_cont(x) WITHIN GROUP (ORDER BY x)",
                "one fraction between 0 and 1",
            ),
            (
                "percentile_cont(0.5)",
                "needs `WITHIN GROUP (ORDER BY expression)`",
            ),
            (
                "percentile_disc(0.5) WITHIN GROUP (ORDER BY x DESC)",
                "ascending only",
            ),
        ] {
            let message = split_measure(text).unwrap_err();
            assert!(message.contains(error), "{text}: {message}");
        }
    }

    #[test]
    fn functions_and_arguments_are_split() {
        use MeasureFunction::*;
        let cases = [
            ("count()", call(Count, None)),
            ("count(*)", call(Count, None)),
            ("COUNT ( * )", call(Count, None)),
            ("count(sku)", call(Count, Some("sku"))),
            ("sum(quantity)", call(Sum, Some("quantity"))),
            (
                "Sum( quantity * unit_price_cents )",
                call(Sum, Some("quantity * unit_price_cents")),
            ),
            ("avg((a + b) / 2)", call(Avg, Some("(a + b) / 2"))),
            ("min(coalesce(a, b))", call(Min, Some("coalesce(a, b)"))),
            ("max(length(')'))", call(Max, Some("length(')')"))),
            (
                "count_distinct(\"Sku(\")",
                call(CountDistinct, Some("\"Sku(\"")),
            ),
            ("sum(\n  x\n)", call(Sum, Some("x"))),
            ("max(name || 'é')", call(Max, Some("name || 'é'"))),
            (
                "count_distinct(tags && ARRAY['a', 'b'])",
                call(CountDistinct, Some("tags && ARRAY['a', 'b']")),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(split_measure(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn a_filter_clause_gives_its_condition() {
        use MeasureFunction::*;
        let filtered = |function, argument, filter| MeasureCall {
            function,
            argument,
            filter: Some(filter),
        };
        let cases = [
            (
                "count() FILTER (WHERE status = 'paid')",
                filtered(Count, None, "status = 'paid'"),
            ),
            (
                "sum(quantity) filter ( where (a > 1) AND f(')') )",
                filtered(Sum, Some("quantity"), "(a > 1) AND f(')')"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(split_measure(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn each_mistake_is_named() {
        let cases = [
            (
                "quantity",
                "`quantity` is not a measure: write `function(expression)`",
            ),
            ("\"sum\"(x)", "is not a measure"),
            (
                "total(x)",
                "unknown function `total`; expected one of: count, sum, avg, min, max, count_distinct, median, percentile_cont(f) WITHIN GROUP (ORDER BY …), percentile_disc(f) WITHIN GROUP (ORDER BY …)",
            ),
            (
                "sum()",
                "`sum` needs one expression, such as `sum(quantity)`",
            ),
            ("avg(*)", "`avg(*)`: only `count` takes `*`"),
            ("sum(a, b)", "`sum` takes one expression, found 2 arguments"),
            (
                "sum(max(x))",
                "aggregates cannot be nested: `max(...)` inside `sum(...)`",
            ),
            ("sum(1 + COUNT (x))", "`count(...)` inside `sum(...)`"),
            ("count(distinct sku)", "write `count_distinct(expression)`"),
            (
                "sum(a) / count()",
                "which only `FILTER (WHERE condition)` may follow: not `/ count()` after `sum(a)`",
            ),
            (
                "sum(a) FILTER (WHERE)",
                "not `FILTER (WHERE)` after `sum(a)`",
            ),
            ("sum(a) FILTER (x > 1)", "not `FILTER (x > 1)`"),
            ("count() FILTER (WHERE a) + 1", "not `FILTER (WHERE a) + 1`"),
            ("sum(a", "unbalanced parentheses in `sum(a`"),
            ("sum('a)", "invalid measure `sum('a)`"),
        ];
        for (text, expected) in cases {
            let error = split_measure(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_column_named_like_a_function_is_not_a_nested_call() {
        assert_eq!(
            split_measure("sum(count)"),
            Ok(call(MeasureFunction::Sum, Some("count")))
        );
    }
}
