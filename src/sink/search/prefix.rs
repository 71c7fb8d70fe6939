//! Prefix queries, for search as you type: `caf*` finds `Café` and
//! `cafeteria`, `name:"cafe de fl"*` the phrase whose last word starts so.
//!
//! Tantivy's parser reads `caf*` as the word `caf` (its tokenizer drops the
//! `*`), which finds nothing and says nothing, and refuses `"caf"*` since a
//! phrase prefix of one word is no phrase. So the query's prefixes are
//! rewritten before the query is built: the text before the `*` goes through
//! the field's own analyzer, as a document's text does, so that `İst*` is
//! `ist` on a `folded` field; one word becomes a pattern over the field's
//! terms (`ist.*`), several a phrase prefix. A prefix without a field is
//! tried on every default field, as a word is.

use tantivy::Index;
use tantivy::query_grammar::{Delimiter, Occur, UserInputAst, UserInputLeaf, UserInputLiteral};

use super::SearchError;
use super::schema::IndexSchema;
use crate::view::model::SearchFieldType;

/// The text a prefix leaf asks for, and the field it names: `caf*`
/// unquoted, or a quoted phrase followed by `*`.
pub(super) fn prefix_of(leaf: &UserInputLeaf) -> Option<(Option<&str>, &str)> {
    let UserInputLeaf::Literal(literal) = leaf else {
        return None;
    };
    let field = literal.field_name.as_deref();
    if literal.prefix {
        return Some((field, &literal.phrase));
    }
    let text = literal.phrase.strip_suffix('*')?;
    let plain = literal.delimiter == Delimiter::None && !text.is_empty() && !text.contains('*');
    plain.then_some((field, text))
}

/// `ast` with each prefix leaf as the query over terms that Tantivy builds:
/// a pattern for one word, a phrase prefix for several; on each default
/// field where none is named.
pub(super) fn prefixes_as_patterns(
    index: &Index,
    schema: &IndexSchema,
    ast: UserInputAst,
) -> Result<UserInputAst, SearchError> {
    Ok(match ast {
        UserInputAst::Clause(clauses) => UserInputAst::Clause(
            clauses
                .into_iter()
                .map(|(occur, child)| Ok((occur, prefixes_as_patterns(index, schema, child)?)))
                .collect::<Result<_, SearchError>>()?,
        ),
        UserInputAst::Boost(child, boost) => UserInputAst::Boost(
            Box::new(prefixes_as_patterns(index, schema, *child)?),
            boost,
        ),
        UserInputAst::Leaf(leaf) => match prefix_of(&leaf) {
            Some((Some(field), text)) => prefix_on(index, schema, field, text)?,
            Some((None, text)) => {
                let fields = schema
                    .fields
                    .iter()
                    .filter(|bound| has_words(bound.field_type));
                let clauses = fields
                    .map(|bound| {
                        Ok((
                            Some(Occur::Should),
                            prefix_on(index, schema, &bound.name, text)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, SearchError>>()?;
                UserInputAst::Clause(clauses)
            }
            None => UserInputAst::Leaf(leaf),
        },
    })
}

fn has_words(field_type: SearchFieldType) -> bool {
    matches!(
        field_type,
        SearchFieldType::Text(_) | SearchFieldType::Keyword
    )
}

/// The prefix `text` on the field `name`.
fn prefix_on(
    index: &Index,
    schema: &IndexSchema,
    name: &str,
    text: &str,
) -> Result<UserInputAst, SearchError> {
    // An unknown field is left to the parser, which names the fields.
    let Some(bound) = schema.fields.iter().find(|bound| bound.name == name) else {
        return Ok(literal(name, text, false));
    };
    if !has_words(bound.field_type) {
        return Err(SearchError::Query(format!(
            "field {name:?}: a prefix (`{text}*`) matches the words of a text or keyword field; \
             for a number or a date, give a range (`{name}:[a TO b]`)"
        )));
    }
    let mut analyzer = index
        .tokenizer_for_field(bound.field)
        .map_err(|error| SearchError::Query(error.to_string()))?;
    let mut words = Vec::new();
    analyzer
        .token_stream(text)
        .process(&mut |token| words.push(token.text.clone()));
    Ok(match words.as_slice() {
        [] => {
            return Err(SearchError::Query(format!(
                "field {name:?}: the prefix {text:?} has no word to start with (its analyzer \
                 keeps letters and digits)"
            )));
        }
        [word] => UserInputAst::Leaf(Box::new(UserInputLeaf::Regex {
            field: Some(name.to_owned()),
            pattern: format!("{}.*", escaped(word)),
        })),
        _ => literal(name, text, true),
    })
}

fn literal(name: &str, text: &str, prefix: bool) -> UserInputAst {
    UserInputAst::Leaf(Box::new(UserInputLeaf::Literal(UserInputLiteral {
        field_name: Some(name.to_owned()),
        phrase: text.to_owned(),
        delimiter: Delimiter::DoubleQuotes,
        slop: 0,
        prefix,
    })))
}

/// `word` as a pattern that matches it literally.
fn escaped(word: &str) -> String {
    let mut pattern = String::with_capacity(word.len());
    for c in word.chars() {
        if "\\.+*?()|[]{}^$#&-~\"".contains(c) {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}
