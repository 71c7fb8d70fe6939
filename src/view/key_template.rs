//! Key templates (`order:{id}`): literal text with `{column}` placeholders of
//! root columns. `{{` and `}}` stand for literal braces, so that a Redis Cluster
//! hash tag can be written (`{{order}}:{id}` gives `{order}:42`).

use super::model::{KeyPart, KeyTemplate};

/// Parses a key template; the error says what is wrong and where in the text.
pub fn parse_key_template(source: &str) -> Result<KeyTemplate, String> {
    let parts = split_parts(source)?;
    check_has_placeholder(&parts)?;
    check_placeholders_separated(&parts)?;
    Ok(KeyTemplate {
        source: source.to_owned(),
        parts,
    })
}

fn split_parts(source: &str) -> Result<Vec<KeyPart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = source.char_indices().peekable();
    while let Some((position, c)) = chars.next() {
        match c {
            '{' if chars.next_if(|(_, next)| *next == '{').is_some() => literal.push('{'),
            '}' if chars.next_if(|(_, next)| *next == '}').is_some() => literal.push('}'),
            '}' => return Err(format!("unbalanced `}}` at position {position}")),
            '{' => {
                let column = placeholder(source, position)?;
                for _ in 0..column.chars().count() + 1 {
                    chars.next();
                }
                if !literal.is_empty() {
                    parts.push(KeyPart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(KeyPart::Column(column.to_owned()));
            }
            _ => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(KeyPart::Literal(literal));
    }
    Ok(parts)
}

/// The column named by the placeholder opening at `open` (a `{`).
fn placeholder(source: &str, open: usize) -> Result<&str, String> {
    let rest = &source[open + 1..];
    let unbalanced = || format!("unbalanced `{{` at position {open}: no closing `}}`");
    let close = rest.find('}').ok_or_else(unbalanced)?;
    let column = &rest[..close];
    if column.contains('{') {
        return Err(unbalanced());
    }
    if column.trim().is_empty() {
        return Err(format!(
            "empty placeholder `{{}}` at position {open}: write a root column, as in `{{id}}`"
        ));
    }
    if column.contains(|c: char| c.is_whitespace() || c == '.') {
        return Err(format!(
            "placeholder `{{{column}}}` must be a root column name"
        ));
    }
    Ok(column)
}

fn check_has_placeholder(parts: &[KeyPart]) -> Result<(), String> {
    if parts.iter().any(|part| matches!(part, KeyPart::Column(_))) {
        return Ok(());
    }
    Err(
        "key template has no `{column}` placeholder: every root row would get the same key"
            .to_owned(),
    )
}

/// `{a}{b}` would give rows (1, 12) and (11, 2) the same key `112`.
fn check_placeholders_separated(parts: &[KeyPart]) -> Result<(), String> {
    for pair in parts.windows(2) {
        if let [KeyPart::Column(first), KeyPart::Column(second)] = pair {
            return Err(format!(
                "placeholders `{{{first}}}` and `{{{second}}}` must be separated by literal text, \
                 or two rows could get the same key"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str) -> KeyPart {
        KeyPart::Column(name.to_owned())
    }

    fn literal(text: &str) -> KeyPart {
        KeyPart::Literal(text.to_owned())
    }

    #[test]
    fn splits_literals_and_placeholders() {
        let template = parse_key_template("order:{id}").unwrap();
        assert_eq!(template.source, "order:{id}");
        assert_eq!(template.parts, vec![literal("order:"), column("id")]);
        let template = parse_key_template("{tenant}/x/{id}").unwrap();
        assert_eq!(
            template.parts,
            vec![column("tenant"), literal("/x/"), column("id")]
        );
    }

    #[test]
    fn doubled_braces_are_literal_braces() {
        let template = parse_key_template("{{order}}:{id}").unwrap();
        assert_eq!(template.parts, vec![literal("{order}:"), column("id")]);
    }

    #[test]
    fn rejects_malformed_templates() {
        let cases = [
            ("order:{id", "unbalanced `{` at position 6"),
            ("order:id}", "unbalanced `}` at position 8"),
            ("order:{a{b}", "unbalanced `{` at position 6"),
            ("order:{}", "empty placeholder"),
            ("order:{ }", "empty placeholder"),
            ("order", "no `{column}` placeholder"),
            ("order:{{id}}", "no `{column}` placeholder"),
            ("order:{a.b}", "must be a root column name"),
            ("order:{a}{b}", "must be separated by literal text"),
        ];
        for (source, expected) in cases {
            let error = parse_key_template(source).unwrap_err();
            assert!(error.contains(expected), "{source}: {error}");
        }
    }
}
