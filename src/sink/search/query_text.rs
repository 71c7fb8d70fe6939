//! A query's text as people type it into a search box, before Tantivy's
//! grammar reads it.
//!
//! - An apostrophe inside or at the end of a word (`o'neill`, `d'été`,
//!   `Jones'`) is a letter of it. Tantivy's grammar reads every `'` as the
//!   start or end of a quoted phrase, so `rosé d'été` was a syntax error
//!   (trial 36); such an apostrophe is escaped. One that starts a word
//!   still opens a phrase (`'red wine'`).
//! - `word~1` reads as a fuzzy match in other engines; Tantivy's grammar
//!   takes `~1` as part of the word, which then finds nothing without a
//!   word. It is refused, naming what `~` does here.

use std::borrow::Cow;

use tantivy::query_grammar::{Delimiter, UserInputLeaf};

use super::SearchError;

/// `query` with each apostrophe that belongs to a word escaped (`o\'neill`).
pub(super) fn apostrophes_in_words_escaped(query: &str) -> Cow<'_, str> {
    if !query.contains('\'') {
        return Cow::Borrowed(query);
    }
    let mut escaped = String::with_capacity(query.len() + 4);
    // The quote of the phrase we are in, if any.
    let mut phrase: Option<char> = None;
    let mut previous: Option<char> = None;
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        let after_letter = previous.is_some_and(char::is_alphanumeric);
        let before_letter = chars.peek().is_some_and(|next| next.is_alphanumeric());
        match (phrase, c) {
            (_, '\\') => {
                escaped.push(c);
                if let Some(next) = chars.next() {
                    escaped.push(next);
                    previous = Some(next);
                }
                continue;
            }
            (None, '"') => phrase = Some('"'),
            (Some('"'), '"') => phrase = None,
            // `o'neill`, `Jones'`: a letter of its word.
            (None, '\'') if after_letter => escaped.push('\\'),
            (None, '\'') => phrase = Some('\''),
            // `'rosé d'été'`: between letters, a letter; else the phrase's end.
            (Some('\''), '\'') if after_letter && before_letter => escaped.push('\\'),
            (Some('\''), '\'') => phrase = None,
            _ => {}
        }
        escaped.push(c);
        previous = Some(c);
    }
    Cow::Owned(escaped)
}

/// Refuses `word~1`, a fuzzy match Tantivy's grammar does not have.
pub(super) fn check_no_fuzzy(leaves: &[&UserInputLeaf]) -> Result<(), SearchError> {
    for leaf in leaves {
        let UserInputLeaf::Literal(literal) = leaf else {
            continue;
        };
        let Some((word, distance)) = literal.phrase.rsplit_once('~') else {
            continue;
        };
        let fuzzy = literal.delimiter == Delimiter::None
            && !word.is_empty()
            && distance.chars().all(|c| c.is_ascii_digit());
        if fuzzy {
            return Err(SearchError::Query(format!(
                "`{}`: fuzzy matching is a field's setting (`fuzzy: 1` in the view), not a \
                 query's (`word~1`); `~N` after a quoted phrase is how far apart its words may \
                 be (`\"red wine\"~1`), and a prefix finds words by their start (`{word}*`)",
                literal.phrase
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apostrophes_in_words_are_letters() {
        for (query, expected) in [
            ("o'neill", r"o\'neill"),
            ("rosé d'été", r"rosé d\'été"),
            ("name:d'et*", r"name:d\'et*"),
            ("Jones' wines", r"Jones\' wines"),
            ("'red wine'", "'red wine'"),
            ("'rosé d'été' OR x", r"'rosé d\'été' OR x"),
            (r#""d'été" o'neill"#, r#""d'été" o\'neill"#),
            (r"o\'neill", r"o\'neill"),
            ("no quote", "no quote"),
        ] {
            assert_eq!(apostrophes_in_words_escaped(query), expected, "{query}");
        }
    }
}
