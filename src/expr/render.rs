//! Writes a [`Node`] back as SQL, for the fragments that type and evaluation
//! errors point at. Rendering happens only when an error is reported, so
//! nodes carry no text; parentheses are added where precedence needs them.

use std::fmt::{self, Display, Formatter};

use crate::change::Value;

use super::cast::{CastTarget, IntWidth};
use super::node::{ComparisonOp, LogicalOp, Node};
use super::temporal::kind_name;

/// Binding strength, loosest first, following PostgreSQL's operator table.
fn precedence(node: &Node) -> u8 {
    match node {
        Node::Logical {
            op: LogicalOp::Or, ..
        } => 1,
        Node::Logical {
            op: LogicalOp::And, ..
        } => 2,
        Node::Not(_) => 3,
        Node::Comparison { .. } | Node::IsNull { .. } | Node::IsBool { .. } => 4,
        Node::Quantified { .. } => 4,
        Node::IsDistinct { .. } | Node::InList { .. } | Node::Between { .. } => 4,
        Node::Like { .. } => 4,
        Node::Concat { .. } | Node::JsonField { .. } | Node::JsonOp { .. } => 5,
        Node::ArraySet { .. } => 5,
        Node::Arithmetic { op, .. } if matches!(op.symbol(), "+" | "-") => 6,
        Node::Arithmetic { .. } => 7,
        Node::Sign { .. } => 8,
        // A negative literal reads like a unary minus: `-(-5)`, `(-5)::text`.
        Node::Literal(value) if value.to_text().starts_with('-') => 8,
        Node::IntRange { operand, .. } | Node::EnumPlace { operand, .. } => precedence(operand),
        _ => 9,
    }
}

/// A child written inside a parent of binding strength `parent`; `strict`
/// for right operands of left-associative operators (`a - (b - c)`).
struct Operand<'a> {
    node: &'a Node,
    parent: u8,
    strict: bool,
}

impl Display for Operand<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let own = precedence(self.node);
        if own < self.parent || (self.strict && own == self.parent) {
            write!(f, "({})", self.node)
        } else {
            write!(f, "{}", self.node)
        }
    }
}

fn left<'a>(node: &'a Node, parent: &Node) -> Operand<'a> {
    Operand {
        node,
        parent: precedence(parent),
        strict: false,
    }
}

fn right<'a>(node: &'a Node, parent: &Node) -> Operand<'a> {
    Operand {
        node,
        parent: precedence(parent),
        strict: true,
    }
}

fn not(negated: bool) -> &'static str {
    if negated { "NOT " } else { "" }
}

impl Display for Node {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Node::Column(path) => write_path(f, path),
            Node::Literal(value) => write_literal(f, value),
            Node::ArrayLiteral { text, element } => {
                write_literal(f, &Value::Text(text.clone()))?;
                write!(f, "::{element}")
            }
            Node::Sign { negative, operand } => {
                write!(
                    f,
                    "{}{}",
                    if *negative { "-" } else { "+" },
                    right(operand, self)
                )
            }
            Node::Arithmetic {
                op,
                left: l,
                right: r,
            } => write_binary(f, self, l, op.symbol(), r),
            Node::Concat { left: l, right: r } => write_binary(f, self, l, "||", r),
            Node::JsonField {
                operand,
                key,
                as_text,
            } => {
                let symbol = super::json_field::symbol(*as_text);
                write!(f, "{} {symbol} {}", left(operand, self), right(key, self))
            }
            Node::JsonOp {
                op,
                left: l,
                right: r,
            } => write_binary(f, self, l, op.symbol(), r),
            Node::Comparison {
                op,
                left: l,
                right: r,
            } => {
                // Comparisons do not chain in SQL: parenthesise on both sides.
                write!(
                    f,
                    "{} {} {}",
                    right(l, self),
                    comparison_symbol(*op),
                    right(r, self)
                )
            }
            Node::Quantified {
                op,
                all,
                left: l,
                right: r,
            } => {
                let quantifier = if *all { "ALL" } else { "ANY" };
                let symbol = comparison_symbol(*op);
                write!(f, "{} {symbol} {quantifier} ({r})", right(l, self))
            }
            Node::ArraySet {
                op,
                left: l,
                right: r,
            } => write_binary(f, self, l, op.symbol(), r),
            Node::Logical {
                op,
                left: l,
                right: r,
            } => {
                let word = if *op == LogicalOp::And { "AND" } else { "OR" };
                write!(f, "{} {word} {}", left(l, self), right(r, self))
            }
            Node::Not(operand) => write!(f, "NOT {}", left(operand, self)),
            _ => write_predicate_or_call(f, self),
        }
    }
}

/// `l symbol r`, for a left-associative operator `node`.
fn write_binary(
    f: &mut Formatter<'_>,
    node: &Node,
    l: &Node,
    symbol: &str,
    r: &Node,
) -> fmt::Result {
    write!(f, "{} {symbol} {}", left(l, node), right(r, node))
}

fn write_predicate_or_call(f: &mut Formatter<'_>, node: &Node) -> fmt::Result {
    match node {
        Node::IsNull { operand, negated } => {
            write!(f, "{} IS {}NULL", right(operand, node), not(*negated))
        }
        Node::IsBool {
            operand,
            expected,
            negated,
        } => {
            let value = if *expected { "TRUE" } else { "FALSE" };
            write!(f, "{} IS {}{value}", right(operand, node), not(*negated))
        }
        Node::IsDistinct {
            left: l,
            right: r,
            negated,
        } => {
            write!(
                f,
                "{} IS {}DISTINCT FROM {}",
                right(l, node),
                not(*negated),
                right(r, node)
            )
        }
        Node::InList {
            operand,
            list,
            negated,
        } => {
            write!(f, "{} {}IN (", right(operand, node), not(*negated))?;
            write_list(f, list)?;
            f.write_str(")")
        }
        Node::Between {
            operand,
            low,
            high,
            negated,
        } => write!(
            f,
            "{} {}BETWEEN {} AND {}",
            right(operand, node),
            not(*negated),
            right(low, node),
            right(high, node)
        ),
        Node::Like { .. } => write_like(f, node),
        Node::Case { .. } => write_case(f, node),
        // Not written in the source: the operand as it was.
        Node::IntRange { operand, .. } | Node::EnumPlace { operand, .. } => {
            write!(f, "{operand}")
        }
        _ => write_call(f, node),
    }
}

fn write_call(f: &mut Formatter<'_>, node: &Node) -> fmt::Result {
    match node {
        Node::Cast { operand, target } => {
            write!(f, "{}::", left(operand, node))?;
            write_cast_target(f, *target)
        }
        Node::Call { function, args } => {
            write!(f, "{}(", function.name())?;
            write_list(f, args)?;
            f.write_str(")")
        }
        Node::Extract {
            field,
            operand,
            date_part: false,
        } => write!(f, "extract({} from {operand})", field.name()),
        Node::Extract {
            field,
            operand,
            date_part: true,
        } => write!(f, "date_part('{}', {operand})", field.name()),
        Node::DateTrunc {
            unit,
            operand,
            zone: None,
        } => write!(f, "date_trunc('{}', {operand})", unit.name()),
        Node::DateTrunc {
            unit,
            operand,
            zone: Some(zone),
        } => write!(
            f,
            "date_trunc('{}', {operand}, '{}')",
            unit.name(),
            zone.name()
        ),
        Node::AtTimeZone { operand, zone } => {
            write!(f, "{operand} AT TIME ZONE '{}'", zone.name())
        }
        other => write!(f, "{other}"),
    }
}

fn write_like(f: &mut Formatter<'_>, node: &Node) -> fmt::Result {
    let Node::Like {
        operand,
        pattern,
        escape,
        case_insensitive,
        negated,
    } = node
    else {
        return Ok(());
    };
    let keyword = if *case_insensitive { "ILIKE" } else { "LIKE" };
    write!(
        f,
        "{} {}{keyword} {}",
        right(operand, node),
        not(*negated),
        right(pattern, node)
    )?;
    match escape {
        Some('\\') => Ok(()),
        Some(escape) => write!(f, " ESCAPE {}", quote_text(&escape.to_string())),
        None => f.write_str(" ESCAPE ''"),
    }
}

fn write_case(f: &mut Formatter<'_>, node: &Node) -> fmt::Result {
    let Node::Case {
        operand,
        branches,
        otherwise,
    } = node
    else {
        return Ok(());
    };
    f.write_str("CASE")?;
    if let Some(operand) = operand {
        write!(f, " {operand}")?;
    }
    for branch in branches {
        write!(f, " WHEN {} THEN {}", branch.when, branch.then)?;
    }
    if let Some(otherwise) = otherwise {
        write!(f, " ELSE {otherwise}")?;
    }
    f.write_str(" END")
}

fn write_list(f: &mut Formatter<'_>, nodes: &[Node]) -> fmt::Result {
    for (index, node) in nodes.iter().enumerate() {
        if index > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{node}")?;
    }
    Ok(())
}

fn comparison_symbol(op: ComparisonOp) -> &'static str {
    match op {
        ComparisonOp::Equal => "=",
        ComparisonOp::NotEqual => "<>",
        ComparisonOp::Less => "<",
        ComparisonOp::LessOrEqual => "<=",
        ComparisonOp::Greater => ">",
        ComparisonOp::GreaterOrEqual => ">=",
    }
}

fn write_cast_target(f: &mut Formatter<'_>, target: CastTarget) -> fmt::Result {
    match target {
        CastTarget::Text => f.write_str("text"),
        CastTarget::Bool => f.write_str("boolean"),
        CastTarget::Float => f.write_str("double precision"),
        CastTarget::Integer(IntWidth::Small) => f.write_str("smallint"),
        CastTarget::Integer(IntWidth::Regular) => f.write_str("integer"),
        CastTarget::Integer(IntWidth::Big) => f.write_str("bigint"),
        CastTarget::Numeric(None) => f.write_str("numeric"),
        CastTarget::Numeric(Some(typmod)) => {
            write!(f, "numeric({}, {})", typmod.precision, typmod.scale)
        }
        CastTarget::Temporal(kind) => f.write_str(kind_name(kind)),
    }
}

/// Plain lower-case names as they are; anything else double-quoted.
fn write_path(f: &mut Formatter<'_>, path: &[String]) -> fmt::Result {
    for (index, part) in path.iter().enumerate() {
        if index > 0 {
            f.write_str(".")?;
        }
        let plain = part
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if plain {
            f.write_str(part)?;
        } else {
            write!(f, "\"{}\"", part.replace('"', "\"\""))?;
        }
    }
    Ok(())
}

fn write_literal(f: &mut Formatter<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::Null => f.write_str("NULL"),
        Value::Bool(true) => f.write_str("TRUE"),
        Value::Bool(false) => f.write_str("FALSE"),
        Value::Int(_) | Value::Float(_) | Value::Numeric(_) => f.write_str(&value.to_text()),
        other => f.write_str(&quote_text(&other.to_text())),
    }
}

fn quote_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use crate::expr::Expr;

    /// Parses, renders, and checks that the rendering reads back the same.
    fn rendered(source: &str) -> String {
        let expr = Expr::parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        let text = expr.root.to_string();
        let again = Expr::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(again.root, expr.root, "{source} rendered as {text}");
        text
    }

    #[test]
    fn renders_with_only_the_parentheses_precedence_needs() {
        assert_eq!(rendered("a / b"), "a / b");
        assert_eq!(rendered("(a + b) * c - (d - e)"), "(a + b) * c - (d - e)");
        assert_eq!(
            rendered("a = 1 OR b = 2 AND NOT c"),
            "a = 1 OR b = 2 AND NOT c"
        );
        assert_eq!(rendered("(a OR b) AND c"), "(a OR b) AND c");
        assert_eq!(rendered("-(a + 1)"), "-(a + 1)");
        assert_eq!(rendered("'x' || a || 'y'"), "'x' || a || 'y'");
    }

    #[test]
    fn renders_every_construct() {
        assert_eq!(
            rendered(r#""Mixed".col IS NOT NULL"#),
            r#""Mixed".col IS NOT NULL"#
        );
        assert_eq!(
            rendered("a IN (1, 'it''s', NULL)"),
            "a IN (1, 'it''s', NULL)"
        );
        assert_eq!(
            rendered("a NOT BETWEEN 1.50 AND 2"),
            "a NOT BETWEEN 1.50 AND 2"
        );
        assert_eq!(
            rendered("a ILIKE 'x!%' ESCAPE '!'"),
            "a ILIKE 'x!%' ESCAPE '!'"
        );
        assert_eq!(rendered("a IS DISTINCT FROM b"), "a IS DISTINCT FROM b");
        assert_eq!(rendered("a IS NOT TRUE"), "a IS NOT TRUE");
        assert_eq!(
            rendered("CASE a WHEN 1 THEN 'x' ELSE 'y' END"),
            "CASE a WHEN 1 THEN 'x' ELSE 'y' END"
        );
        assert_eq!(rendered("CAST(a AS numeric(10,2))"), "a::numeric(10, 2)");
        assert_eq!(rendered("date(a)"), "a::date");
        assert_eq!(rendered("round(a, 2)"), "round(a, 2)");
        assert_eq!(rendered("EXTRACT(DOW FROM a)"), "extract(dow from a)");
        assert_eq!(rendered("date_trunc('Month', a)"), "date_trunc('month', a)");
        assert_eq!(
            rendered("TIMESTAMPTZ '2024-01-01'"),
            "'2024-01-01'::timestamptz"
        );
        assert_eq!(
            rendered("d #>> ARRAY['a', NULL] ?| '{x}'"),
            r#"d #>> '{"a",NULL}' ?| '{"x"}'"#
        );
        assert_eq!(
            rendered(r#"d @> '{"a": 1}'::jsonb AND d ? k"#),
            r#"d @> '{"a": 1}' AND d ? k"#
        );
    }
}
