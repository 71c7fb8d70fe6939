//! The `fields:` of a search view: each a mapping `{ from, type, stored, fast,
//! analyzer }`, becoming one field of the Tantivy schema.
//!
//! - `from`: `column` (of the root) or `join.column`, or an expression over
//!   the root's and its `one` joins' columns;
//! - `type`: `text` (tokenized), `keyword` (one exact term), `i64`, `f64`,
//!   `bool` or `date`;
//! - `stored` (default false): returned with each hit;
//! - `fast` (default false): columnar, for `field:*` and ranges; not for
//!   `text`, whose tokens have no single value;
//! - `analyzer` (only for `text`, default `default`): `default` splits on
//!   non-alphanumerics and lower-cases; `folded` also folds case and
//!   accents in any script; a language name adds its stemmer;
//! - `fuzzy` (only for `text` and `keyword`, default 0): how many edits a
//!   query word may be from a term and still match it, 1 or 2.

use super::error::FileReport;
use super::filter::read_expression;
use super::joins::{check_joined_path, check_single_path, read_column_path};
use super::model::{
    NamedJoin, SearchField, SearchFieldType, SearchSource, StemLanguage, TextAnalyzer,
};
use super::node::{Entry, NodeValue};
use super::shape::{self, Mapping, child_path};

const FIELD_KEYS: &[&str] = &["from", "type", "stored", "fast", "analyzer", "fuzzy"];

/// The most edits `fuzzy` takes: Tantivy's Levenshtein automata go to 2,
/// and more would match most short words.
const MAX_FUZZY: u8 = 2;

/// The name of the Tantivy field holding each document's `id` (untokenized,
/// so that an upsert can delete by it); no view field may take it.
pub const SEARCH_ID_FIELD: &str = "_id";

const TYPES: &[(&str, SearchFieldType)] = &[
    ("text", SearchFieldType::Text(TextAnalyzer::Default)),
    ("keyword", SearchFieldType::Keyword),
    ("i64", SearchFieldType::I64),
    ("f64", SearchFieldType::F64),
    ("bool", SearchFieldType::Bool),
    ("date", SearchFieldType::Date),
];

const LANGUAGES: &[(&str, StemLanguage)] = &[
    ("arabic", StemLanguage::Arabic),
    ("danish", StemLanguage::Danish),
    ("dutch", StemLanguage::Dutch),
    ("english", StemLanguage::English),
    ("finnish", StemLanguage::Finnish),
    ("french", StemLanguage::French),
    ("german", StemLanguage::German),
    ("greek", StemLanguage::Greek),
    ("hungarian", StemLanguage::Hungarian),
    ("italian", StemLanguage::Italian),
    ("norwegian", StemLanguage::Norwegian),
    ("portuguese", StemLanguage::Portuguese),
    ("romanian", StemLanguage::Romanian),
    ("russian", StemLanguage::Russian),
    ("spanish", StemLanguage::Spanish),
    ("swedish", StemLanguage::Swedish),
    ("tamil", StemLanguage::Tamil),
    ("turkish", StemLanguage::Turkish),
];

/// The name a view file uses for `field_type`.
pub(crate) fn type_name(field_type: SearchFieldType) -> &'static str {
    match field_type {
        SearchFieldType::Text(_) => "text",
        SearchFieldType::Keyword => "keyword",
        SearchFieldType::I64 => "i64",
        SearchFieldType::F64 => "f64",
        SearchFieldType::Bool => "bool",
        SearchFieldType::Date => "date",
    }
}

/// Reads the required `fields:` of `top`, in definition order. `from` paths
/// through a join are checked against `joins` when given (`None`: the joins
/// were wrong, and only the paths' shape is checked).
pub(crate) fn read_search_fields(
    report: &mut FileReport,
    top: &Mapping,
    joins: Option<&[NamedJoin]>,
) -> Option<Vec<SearchField>> {
    let entry = top.require(report, "", "fields")?;
    report.locate("fields", entry.key_line);
    let mapping = shape::named_keys(report, &entry.value, "fields", "field")?;
    if mapping.entries.is_empty() {
        report.error(entry.key_line, "fields", "needs at least one field");
        return None;
    }
    let fields: Vec<SearchField> = mapping
        .entries
        .iter()
        .filter_map(|entry| read_field(report, entry, joins))
        .collect();
    (fields.len() == mapping.entries.len()).then_some(fields)
}

fn read_field(
    report: &mut FileReport,
    entry: &Entry,
    joins: Option<&[NamedJoin]>,
) -> Option<SearchField> {
    let path = child_path("fields", &entry.key);
    report.locate(&path, entry.key_line);
    let name_ok = check_field_name(report, entry, &path);
    let mut mapping = field_mapping(report, entry, &path)?;
    mapping.line = entry.key_line;
    let from = read_from(report, &mapping, &path, joins);
    let field_type = read_type(report, &mapping, &path);
    let analyzer = read_analyzer(report, &mapping, &path, field_type);
    let stored = read_flag(report, &mapping, &path, "stored");
    let fast = read_flag(report, &mapping, &path, "fast");
    let fast = fast.filter(|fast| check_fast(report, &mapping, &path, field_type, *fast));
    let fuzzy = read_fuzzy(report, &mapping, &path, field_type);
    let field_type = match (field_type?, analyzer?) {
        (SearchFieldType::Text(_), Some(analyzer)) => SearchFieldType::Text(analyzer),
        (field_type, _) => field_type,
    };
    Some(SearchField {
        name: name_ok.then(|| entry.key.clone())?,
        from: from?,
        field_type,
        stored: stored?,
        fast: fast?,
        fuzzy: fuzzy?,
    })
}

/// `fuzzy: 0`, `1` or `2`, on a `text` or `keyword` field (a number or a
/// date has no spelling to be near).
fn read_fuzzy(
    report: &mut FileReport,
    mapping: &Mapping,
    path: &str,
    field_type: Option<SearchFieldType>,
) -> Option<u8> {
    let Some(entry) = mapping.get("fuzzy") else {
        return Some(0);
    };
    let fuzzy_path = child_path(path, "fuzzy");
    report.locate(&fuzzy_path, entry.value.line);
    let edits = match &entry.value.value {
        NodeValue::Other(text) => text.parse::<u8>().ok().filter(|edits| *edits <= MAX_FUZZY),
        _ => None,
    };
    let Some(edits) = edits else {
        let message = format!(
            "expected how many edits a query word may be from a term: 0, 1 or {MAX_FUZZY}, \
             found {}",
            entry.value.describe()
        );
        report.error(entry.value.line, &fuzzy_path, message);
        return None;
    };
    match field_type {
        Some(SearchFieldType::Text(_) | SearchFieldType::Keyword) | None => Some(edits),
        Some(other) => {
            let message = format!(
                "`fuzzy` is for text and keyword fields, not for `{}`: a query word is near \
                 a term by its spelling",
                type_name(other)
            );
            report.error(entry.value.line, &fuzzy_path, message);
            None
        }
    }
}

/// Field names are written in queries (`category:books`): plain identifiers,
/// and never the reserved `_id`.
fn check_field_name(report: &mut FileReport, entry: &Entry, path: &str) -> bool {
    let message = if entry.key == SEARCH_ID_FIELD {
        format!("`{SEARCH_ID_FIELD}` is reserved: it holds each document's `id`")
    } else if !is_field_name(&entry.key) {
        format!(
            "`{}` is not a valid field name: use letters, digits and `_`, starting with a letter",
            entry.key
        )
    } else {
        return true;
    };
    report.error(entry.key_line, path, message);
    false
}

fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A search field is always a mapping: its type has no sensible default.
fn field_mapping<'a>(report: &mut FileReport, entry: &'a Entry, path: &str) -> Option<Mapping<'a>> {
    if !matches!(entry.value.value, NodeValue::Map(_)) {
        let message = format!(
            "expected a mapping such as `{{ from: column, type: text }}`, found {}",
            entry.value.describe()
        );
        report.error(entry.value.line, path, message);
        return None;
    }
    shape::fixed_keys(report, &entry.value, path, FIELD_KEYS)
}

fn read_from(
    report: &mut FileReport,
    mapping: &Mapping,
    path: &str,
    joins: Option<&[NamedJoin]>,
) -> Option<SearchSource> {
    let entry = mapping.require(report, path, "from")?;
    let from_path = child_path(path, "from");
    report.locate(&from_path, entry.value.line);
    let expected = "`column`, `join.column` or an expression";
    let text = shape::text(report, &entry.value, &from_path, expected)?;
    if !is_column_path(text) {
        // Through `one` joins only, as `where`: a `many` join's rows give
        // no single value to compute with.
        let check_path = |column: &[String]| match joins {
            Some(joins) => check_single_path(joins, column),
            None => Ok(()),
        };
        return read_expression(report, text, entry.value.line, &from_path, &check_path)
            .map(SearchSource::Expr);
    }
    let from = read_column_path(report, &entry.value, &from_path)?;
    if let Some(Err(message)) = joins.map(|joins| check_joined_path(joins, &from)) {
        report.error(entry.value.line, &from_path, message);
        return None;
    }
    Some(SearchSource::Column(from))
}

/// Names and dots only (`name`, `category.name`; `a.b.c` too, which is
/// then refused as a path): anything else is an expression.
fn is_column_path(text: &str) -> bool {
    text.split('.').all(|part| {
        part.chars().any(|c| !c.is_ascii_digit())
            && part
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$'))
    })
}

fn read_type(report: &mut FileReport, mapping: &Mapping, path: &str) -> Option<SearchFieldType> {
    let entry = mapping.require(report, path, "type")?;
    let type_path = child_path(path, "type");
    report.locate(&type_path, entry.value.line);
    let name = shape::text(report, &entry.value, &type_path, "a field type")?;
    let found = TYPES.iter().find(|(known, _)| *known == name);
    if found.is_none() {
        let names: Vec<&str> = TYPES.iter().map(|(name, _)| *name).collect();
        let message = format!(
            "unknown type `{name}`; expected one of: {}",
            names.join(", ")
        );
        report.error(entry.value.line, &type_path, message);
    }
    found.map(|(_, field_type)| *field_type)
}

/// `Some(None)` when no analyzer is given. The name is checked only when the
/// field is (or may be) `text`: on another type the key itself is the error.
fn read_analyzer(
    report: &mut FileReport,
    mapping: &Mapping,
    path: &str,
    field_type: Option<SearchFieldType>,
) -> Option<Option<TextAnalyzer>> {
    let Some(entry) = mapping.get("analyzer") else {
        return Some(None);
    };
    let analyzer_path = child_path(path, "analyzer");
    report.locate(&analyzer_path, entry.value.line);
    if let Some(other) = field_type.filter(|t| !matches!(t, SearchFieldType::Text(_))) {
        let message = format!(
            "`analyzer` applies only to `text` fields, and this field is `{}`",
            type_name(other)
        );
        report.error(entry.value.line, &analyzer_path, message);
        return None;
    }
    let name = shape::text(report, &entry.value, &analyzer_path, "an analyzer name")?;
    let analyzer = analyzer_named(name);
    if analyzer.is_none() {
        let languages: Vec<&str> = LANGUAGES.iter().map(|(name, _)| *name).collect();
        let message = format!(
            "unknown analyzer `{name}`; expected one of: default, folded, {}",
            languages.join(", ")
        );
        report.error(entry.value.line, &analyzer_path, message);
    }
    analyzer.map(Some)
}

fn analyzer_named(name: &str) -> Option<TextAnalyzer> {
    match name {
        "default" => return Some(TextAnalyzer::Default),
        "folded" => return Some(TextAnalyzer::Folded),
        _ => {}
    }
    let (_, language) = LANGUAGES.iter().find(|(known, _)| *known == name)?;
    Some(TextAnalyzer::Stemmed(*language))
}

/// `stored` or `fast`: false unless given.
fn read_flag(report: &mut FileReport, mapping: &Mapping, path: &str, key: &str) -> Option<bool> {
    let Some(entry) = mapping.get(key) else {
        return Some(false);
    };
    let flag_path = child_path(path, key);
    report.locate(&flag_path, entry.value.line);
    shape::boolean(report, &entry.value, &flag_path)
}

/// `fast: true` is refused on `text`: a tokenized field has no single value
/// to hold in a column.
fn check_fast(
    report: &mut FileReport,
    mapping: &Mapping,
    path: &str,
    field_type: Option<SearchFieldType>,
    fast: bool,
) -> bool {
    let is_text = matches!(field_type, Some(SearchFieldType::Text(_)));
    let Some(entry) = mapping.get("fast").filter(|_| fast && is_text) else {
        return true;
    };
    let message = "`fast` is for keyword, i64, f64, bool and date fields, not for `text` \
                   (tokenized, so it has no single value): use a `keyword` field to \
                   filter on exact values or find the documents with one (`field:*`)";
    report.error(entry.value.line, &child_path(path, "fast"), message);
    false
}
