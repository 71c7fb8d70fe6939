//! One view file as a whole: YAML syntax, the keys every kind shares (`view`,
//! `kind`, `description`), and the hand-over to the module of its kind
//! (`cache.rs`, `search.rs`, `aggregate.rs`), called from [`read_kind`].

use std::path::Path;

use serde_saphyr::{DuplicateKeyPolicy, Options};
use sha2::{Digest, Sha256};

use super::aggregate::{AGGREGATE_KEYS, read_aggregate_view};
use super::cache::{CACHE_KEYS, read_cache_view};
use super::error::{FileReport, ViewError};
use super::model::{ViewDef, ViewKind};
use super::node::{Node, NodeValue};
use super::search::{SEARCH_KEYS, read_search_view};
use super::shape::{self, Mapping};

/// Parses and checks one view file's text, offline; returns all its errors.
pub fn parse_view(file: &Path, text: &str) -> Result<ViewDef, Vec<ViewError>> {
    let node = parse_yaml(file, text).map_err(|error| vec![error])?;
    let mut report = FileReport::new(file);
    let parts = read_document(&mut report, &node);
    match parts {
        Some((name, kind)) if report.errors.is_empty() => Ok(ViewDef {
            name,
            file: file.to_path_buf(),
            definition_hash: definition_hash(text.as_bytes()),
            kind,
            locations: report.locations,
        }),
        _ => Err(report.into_sorted_errors()),
    }
}

/// SHA-256 of the file's bytes, in hex: stable across builds and platforms,
/// unlike std's `DefaultHasher`.
pub fn definition_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub(crate) fn parse_yaml(file: &Path, text: &str) -> Result<Node, ViewError> {
    let mut options = Options::default();
    // Duplicates reach our visitor, which reports them with their field path.
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    // `on:` is a key of the format and `yes`/`no` may be column names: YAML 1.1
    // would read them as booleans.
    options.strict_booleans = true;
    options.with_snippet = false;
    let node: Node = serde_saphyr::from_str_with_options(text, options).map_err(|error| {
        let line = error.location().map(|location| location.line() as usize);
        ViewError {
            file: file.to_path_buf(),
            line: line.filter(|line| *line > 0),
            field: String::new(),
            message: with_hint(format!(
                "invalid YAML: {}",
                without_location(&error.to_string())
            )),
        }
    })?;
    let lines: Vec<&str> = text.lines().collect();
    if let Some(line) = node.first_cut_by_path_operator(&lines) {
        return Err(ViewError {
            file: file.to_path_buf(),
            line: Some(line),
            field: String::new(),
            message: "after a space, `#` starts a YAML comment, so the expression ends \
                      before `#>`: quote it (write it on the next line after `>-`, or in \
                      double quotes)"
                .to_owned(),
        });
    }
    Ok(node)
}

/// The parser's message, with what to do when the cause is common and its
/// words do not say it: JSON in an expression holds `: `, which YAML reads
/// as the start of a mapping.
fn with_hint(message: String) -> String {
    if message.contains("mapping values are not allowed") {
        format!(
            "{message} (a value that holds `: `, such as JSON in an expression, must be \
             quoted: write it on the next line after `>-`, or in double quotes; or, where \
             this line starts a key, it is indented deeper than the key before it)"
        )
    } else {
        message
    }
}

/// The parser's message without its own "at line L, column C" suffix, since
/// the line is shown in front of every error.
fn without_location(message: &str) -> &str {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(text, _)| text)
}

fn read_document(report: &mut FileReport, node: &Node) -> Option<(String, ViewKind)> {
    if node.value == NodeValue::Null {
        report.file_error("the file holds no view definition");
        return None;
    }
    let top = shape::named_keys(report, node, "", "key")?;
    let name = read_name(report, &top);
    check_description(report, &top);
    let kind = read_kind(report, top);
    Some((name?, kind?))
}

fn read_name(report: &mut FileReport, top: &Mapping) -> Option<String> {
    let entry = top.require(report, "", "view")?;
    report.locate("view", entry.value.line);
    let name = shape::text(report, &entry.value, "view", "a view name")?;
    if !is_view_name(name) {
        let message = format!(
            "`{name}` is not a valid view name: use lowercase letters, digits and `_`, \
             starting with a letter"
        );
        report.error(entry.value.line, "view", message);
        return None;
    }
    Some(name.to_owned())
}

/// View names end up in Redis keys, table names and URLs.
fn is_view_name(name: &str) -> bool {
    shape::is_lower_identifier(name)
}

fn check_description(report: &mut FileReport, top: &Mapping) {
    if let Some(entry) = top.get("description") {
        shape::text(report, &entry.value, "description", "text");
    }
}

fn read_kind(report: &mut FileReport, mut top: Mapping) -> Option<ViewKind> {
    let entry = top.require(report, "", "kind")?;
    report.locate("kind", entry.value.line);
    let kind = shape::text(report, &entry.value, "kind", "a view kind")?;
    match kind {
        "cache" => {
            shape::drop_unknown_keys(report, &mut top, "", CACHE_KEYS);
            read_cache_view(report, &top).map(ViewKind::Cache)
        }
        "search" => {
            shape::drop_unknown_keys(report, &mut top, "", SEARCH_KEYS);
            read_search_view(report, &top).map(ViewKind::Search)
        }
        "aggregate" => {
            shape::drop_unknown_keys(report, &mut top, "", AGGREGATE_KEYS);
            read_aggregate_view(report, &top).map(ViewKind::Aggregate)
        }
        _ => {
            let message =
                format!("unknown kind `{kind}`; expected one of: cache, search, aggregate");
            report.error(entry.value.line, "kind", message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_names_are_lowercase_identifiers() {
        assert!(is_view_name("order_cache"));
        assert!(is_view_name("v2"));
        assert!(!is_view_name("Order"));
        assert!(!is_view_name("2v"));
        assert!(!is_view_name("order-cache"));
        assert!(!is_view_name(""));
    }

    #[test]
    fn hash_is_stable_hex_sha256() {
        assert_eq!(
            definition_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parser_location_suffix_is_dropped() {
        assert_eq!(
            without_location("unclosed quote at line 1, column 4"),
            "unclosed quote"
        );
        assert_eq!(without_location("no location"), "no location");
    }
}
