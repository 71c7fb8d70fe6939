//! Which keys a cache view's key template can render: whether two root
//! rows of one view may get one key, and whether two views may write one key.
//!
//! A key is its placeholders' values as text between the template's
//! literals, and each column type renders from a known set of characters.
//! `{tenant}:{id}` cannot give two rows one key when `id` is an integer: an
//! integer holds no `:`, so the last `:` of the key ends `tenant`.
//! `{ns}:{name}` over two text columns can: `("a:b", "c")` and `("a", "b:c")`
//! both give `a:b:c`, and the two rows would write and delete one Redis key.
//! The engine checks every key of such a view as a root claims it
//! (`engine::output_keys`); views whose templates are proven safe here skip
//! that check and its index. Two views whose templates may render one key
//! would overwrite each other's documents: `check` refuses the second.

use crate::source::pg_text::type_oid::{
    BOOL, DATE, FLOAT4, FLOAT8, INT2, INT4, INT8, NUMERIC, OID, TIMESTAMP, TIMESTAMPTZ, UUID,
};

/// A key template with each placeholder as the type of its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyToken<'t> {
    Literal(&'t str),
    /// A value of a column of this type OID.
    Value(u32),
}

/// Whether `tokens` may render two different rows to one key. `false` only
/// when every key can be split back into its values.
pub fn keys_may_collide(tokens: &[KeyToken]) -> bool {
    // The literals before the first and after the last placeholder are the
    // same in every key; what is left alternates placeholder and literal
    // (the parser refuses two placeholders side by side).
    let first = tokens.iter().position(|t| matches!(t, KeyToken::Value(_)));
    let last = tokens.iter().rposition(|t| matches!(t, KeyToken::Value(_)));
    let (Some(first), Some(last)) = (first, last) else {
        return false;
    };
    let inner = &tokens[first..=last];
    let placeholders: Vec<u32> = inner
        .iter()
        .filter_map(|token| match token {
            KeyToken::Value(oid) => Some(*oid),
            KeyToken::Literal(_) => None,
        })
        .collect();
    let literals: Vec<&str> = inner
        .iter()
        .filter_map(|token| match token {
            KeyToken::Literal(text) => Some(*text),
            KeyToken::Value(_) => None,
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

/// Whether some key is rendered by both `a` and `b` (values of any length,
/// the empty one included, which errs toward "yes").
pub fn templates_may_meet(a: &[KeyToken], b: &[KeyToken]) -> bool {
    let (a, b) = (atoms(a), atoms(b));
    // States are positions in both; a value may end at once, or stay and
    // take a character the other side's character or value also takes.
    // Both values taking one character leads back to the same state, so it
    // needs no step of its own.
    let mut seen = vec![vec![false; b.len() + 1]; a.len() + 1];
    let mut todo = vec![(0, 0)];
    while let Some((i, j)) = todo.pop() {
        if std::mem::replace(&mut seen[i][j], true) {
            continue;
        }
        if (i, j) == (a.len(), b.len()) {
            return true;
        }
        let mut next = Vec::with_capacity(3);
        if let Some(Atom::Value(_)) = a.get(i) {
            next.push((i + 1, j));
        }
        if let Some(Atom::Value(_)) = b.get(j) {
            next.push((i, j + 1));
        }
        match (a.get(i), b.get(j)) {
            (Some(Atom::Char(x)), Some(Atom::Char(y))) if x == y => next.push((i + 1, j + 1)),
            (Some(Atom::Char(c)), Some(Atom::Value(oid))) if may_render(*oid, *c) => {
                next.push((i + 1, j))
            }
            (Some(Atom::Value(oid)), Some(Atom::Char(c))) if may_render(*oid, *c) => {
                next.push((i, j + 1))
            }
            _ => {}
        }
        todo.extend(next.into_iter().filter(|&(i, j)| !seen[i][j]));
    }
    false
}

/// One character of a literal, or a value of any length.
#[derive(Debug, Clone, Copy)]
enum Atom {
    Char(char),
    Value(u32),
}

fn atoms(tokens: &[KeyToken]) -> Vec<Atom> {
    let mut atoms = Vec::new();
    for token in tokens {
        match token {
            KeyToken::Literal(text) => atoms.extend(text.chars().map(Atom::Char)),
            KeyToken::Value(oid) => atoms.push(Atom::Value(*oid)),
        }
    }
    atoms
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

    /// The tokens of `template`, its placeholders of `types` in order.
    fn tokens<'t>(template: &'t str, types: &[u32]) -> Vec<KeyToken<'t>> {
        let mut tokens = Vec::new();
        let mut types = types.iter();
        for (n, piece) in template.split(['{', '}']).enumerate() {
            if n % 2 == 1 {
                tokens.push(KeyToken::Value(
                    *types.next().expect("a type per placeholder"),
                ));
            } else if !piece.is_empty() {
                tokens.push(KeyToken::Literal(piece));
            }
        }
        tokens
    }

    fn collide(template: &str, types: &[u32]) -> bool {
        keys_may_collide(&tokens(template, types))
    }

    #[test]
    fn one_placeholder_never_collides() {
        assert!(!collide("order:{id}", &[TEXT]));
        assert!(!collide("{id}", &[TEXT]));
    }

    #[test]
    fn two_text_columns_around_any_literal_may_collide() {
        assert!(collide("{ns}:{name}", &[TEXT, TEXT]));
        assert!(collide("k:{ns}/{name}:v", &[VARCHAR, TEXT]));
    }

    #[test]
    fn a_literal_one_side_cannot_hold_delimits_it() {
        // The last `:` ends the tenant; the first `:` ends an integer.
        assert!(!collide("{tenant}:{id}", &[TEXT, INT8]));
        assert!(!collide("{id}:{tenant}", &[INT4, TEXT]));
        assert!(!collide("{day}/{n}/{tag}", &[DATE, INT4, TEXT]));
        assert!(!collide("{a}|{b}|{c}", &[UUID, TEXT, BOOL]));
    }

    #[test]
    fn a_literal_both_sides_may_hold_does_not() {
        // `-` is an integer's sign and a date's separator.
        assert!(collide("{a}-{b}", &[INT4, INT4]));
        assert!(collide("{at}:{name}", &[TIMESTAMPTZ, TEXT]));
        // One text column between two delimited ends is fine; two are not.
        assert!(!collide("{a}:{b}:{c}", &[INT4, TEXT, INT4]));
        assert!(collide("{a}:{b}:{c}:{d}", &[INT4, TEXT, TEXT, INT4]));
    }

    fn meet(a: (&str, &[u32]), b: (&str, &[u32])) -> bool {
        templates_may_meet(&tokens(a.0, a.1), &tokens(b.0, b.1))
    }

    #[test]
    fn templates_meet_where_one_key_fits_both() {
        assert!(meet(("order:{id}", &[INT8]), ("order:{id}", &[INT4])));
        assert!(meet(("order:{id}", &[TEXT]), ("order:{id}:v2", &[INT8])));
        assert!(meet(("{a}:x", &[TEXT]), ("y:{b}", &[TEXT])));
        assert!(meet(("o:{a}:{b}", &[INT4, TEXT]), ("o:{c}", &[TEXT])));
    }

    #[test]
    fn templates_apart_by_a_literal_or_a_type_do_not_meet() {
        assert!(!meet(("order:{id}", &[INT8]), ("order_item:{id}", &[INT8])));
        assert!(!meet(("order:{id}", &[INT8]), ("order:{id}:v2", &[INT8])));
        assert!(!meet(("{a}:x", &[INT4]), ("{b}:y", &[TEXT])));
    }
}
