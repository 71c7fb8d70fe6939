//! Whether a cache view's key template can give two root rows one key.
//!
//! A key is its placeholders' values as text between the template's
//! literals. `{tenant}:{id}` cannot give two rows one key when `id` is an
//! integer: an integer holds no `:`, so the last `:` of the key ends
//! `tenant`. `{ns}:{name}` over two text columns can: `("a:b", "c")` and
//! `("a", "b:c")` both give `a:b:c`, and the two rows would write and
//! delete one Redis key. The engine checks every key such a view claims
//! (`engine::output_keys`); views whose templates are proven safe here skip
//! that check and its index.

use super::KeyPartPlan;
use crate::source::pg_text::type_oid::{
    BOOL, DATE, FLOAT4, FLOAT8, INT2, INT4, INT8, NUMERIC, OID, TIMESTAMP, TIMESTAMPTZ, UUID,
};

/// Whether `parts`, a key template over root columns of the types
/// `column_types` (by stored column), may render two different rows to one
/// key. `false` only when every key can be split back into its values.
pub fn keys_may_collide(parts: &[KeyPartPlan], column_types: &[u32]) -> bool {
    // The literals before the first and after the last placeholder are the
    // same in every key; what is left alternates placeholder and literal
    // (the parser refuses two placeholders side by side).
    let first = parts
        .iter()
        .position(|p| matches!(p, KeyPartPlan::Column(_)));
    let last = parts
        .iter()
        .rposition(|p| matches!(p, KeyPartPlan::Column(_)));
    let (Some(first), Some(last)) = (first, last) else {
        return false;
    };
    let inner = &parts[first..=last];
    let placeholders: Vec<u32> = inner
        .iter()
        .filter_map(|part| match part {
            KeyPartPlan::Column(column) => Some(column_types.get(*column).copied().unwrap_or(0)),
            KeyPartPlan::Literal(_) => None,
        })
        .collect();
    let literals: Vec<&str> = inner
        .iter()
        .filter_map(|part| match part {
            KeyPartPlan::Literal(text) => Some(text.as_str()),
            KeyPartPlan::Column(_) => None,
        })
        .collect();
    if placeholders.len() != literals.len() + 1 {
        return true; // not the alternation the parser makes: assume the worst
    }
    // Placeholder `i` is delimited from the left when the literal after it
    // holds a character its values never hold: the first such character
    // ends it. From the right likewise, with the literal before it. When
    // all but one are delimited, the one left is what lies between.
    let from_left = placeholders
        .iter()
        .zip(&literals)
        .take_while(|(oid, literal)| holds_foreign_character(literal, **oid))
        .count();
    let from_right = placeholders
        .iter()
        .skip(1)
        .zip(&literals)
        .rev()
        .take_while(|(oid, literal)| holds_foreign_character(literal, **oid))
        .count();
    from_left + from_right + 1 < placeholders.len()
}

/// Whether `literal` holds a character no value of type `oid` renders.
fn holds_foreign_character(literal: &str, oid: u32) -> bool {
    literal.chars().any(|c| !may_render(oid, c))
}

/// Whether a value of type `oid` may hold `c` as key text
/// ([`crate::change::Value::to_text`]). Any character for text, `char(n)`,
/// enums, arrays, JSON and every other type (a domain is read as its base
/// type). Generous on purpose: `NaN`, `Infinity`, `BC` and `infinity` are
/// letters.
fn may_render(oid: u32, c: char) -> bool {
    match oid {
        BOOL => c.is_ascii_lowercase(),
        INT2 | INT4 | INT8 | OID => c.is_ascii_digit() || c == '-',
        UUID => c.is_ascii_hexdigit() || c == '-',
        FLOAT4 | FLOAT8 | NUMERIC => c.is_ascii_alphanumeric() || "-+.".contains(c),
        DATE | TIMESTAMP | TIMESTAMPTZ => c.is_ascii_alphanumeric() || "-+:. ".contains(c),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::pg_text::type_oid::{TEXT, VARCHAR};

    /// Parts of `template`, its placeholders numbered in order.
    fn parts(template: &str) -> Vec<KeyPartPlan> {
        let mut parts = Vec::new();
        let mut column = 0;
        for (n, piece) in template.split(['{', '}']).enumerate() {
            if n % 2 == 1 {
                parts.push(KeyPartPlan::Column(column));
                column += 1;
            } else if !piece.is_empty() {
                parts.push(KeyPartPlan::Literal(piece.to_owned()));
            }
        }
        parts
    }

    #[test]
    fn one_placeholder_never_collides() {
        assert!(!keys_may_collide(&parts("order:{id}"), &[TEXT]));
        assert!(!keys_may_collide(&parts("{id}"), &[TEXT]));
    }

    #[test]
    fn two_text_columns_around_any_literal_may_collide() {
        assert!(keys_may_collide(&parts("{ns}:{name}"), &[TEXT, TEXT]));
        assert!(keys_may_collide(
            &parts("k:{ns}/{name}:v"),
            &[VARCHAR, TEXT]
        ));
    }

    #[test]
    fn a_literal_one_side_cannot_hold_delimits_it() {
        // The last `:` ends the tenant; the first `:` ends an integer.
        assert!(!keys_may_collide(&parts("{tenant}:{id}"), &[TEXT, INT8]));
        assert!(!keys_may_collide(&parts("{id}:{tenant}"), &[INT4, TEXT]));
        assert!(!keys_may_collide(
            &parts("{day}/{n}/{tag}"),
            &[DATE, INT4, TEXT]
        ));
        assert!(!keys_may_collide(
            &parts("{a}|{b}|{c}"),
            &[UUID, TEXT, BOOL]
        ));
    }

    #[test]
    fn a_literal_both_sides_may_hold_does_not() {
        // `-` is an integer's sign and a date's separator.
        assert!(keys_may_collide(&parts("{a}-{b}"), &[INT4, INT4]));
        assert!(keys_may_collide(
            &parts("{at}:{name}"),
            &[TIMESTAMPTZ, TEXT]
        ));
        // One text column between two delimited ends is fine; two are not.
        assert!(!keys_may_collide(
            &parts("{a}:{b}:{c}"),
            &[INT4, TEXT, INT4]
        ));
        assert!(keys_may_collide(
            &parts("{a}:{b}:{c}:{d}"),
            &[INT4, TEXT, TEXT, INT4]
        ));
    }
}
