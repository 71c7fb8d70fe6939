//! Shape checks shared by every part of a view file: mappings with known keys,
//! unique keys, required keys, text values. Each check reports its error with
//! the line and field path, and lets the caller go on with what is usable.

use super::error::FileReport;
use super::node::{Entry, Node, NodeValue};

/// The entries of a mapping whose keys were checked: unknown keys dropped, and
/// of duplicate keys only the first kept.
pub(crate) struct Mapping<'a> {
    /// Line of the mapping itself, where a missing key is reported.
    pub line: usize,
    pub entries: Vec<&'a Entry>,
}

impl<'a> Mapping<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Entry> {
        self.entries.iter().copied().find(|entry| entry.key == key)
    }

    /// The entry under `key`, or an error at the mapping's line and path
    /// (`fields.venue: missing required key `fields``, not
    /// `fields.venue.fields: …`); at the top of the file, at the key's.
    pub fn require(&self, report: &mut FileReport, path: &str, key: &str) -> Option<&'a Entry> {
        let entry = self.get(key);
        if entry.is_none() {
            let message = format!("missing required key `{key}`");
            let at = if path.is_empty() { key } else { path };
            report.error(self.line, at, message);
        }
        entry
    }
}

/// `path.key`, or `key` at the top of the file.
pub(crate) fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Reads a mapping whose keys are fixed by the format (`one`, `on`, ...).
pub(crate) fn fixed_keys<'a>(
    report: &mut FileReport,
    node: &'a Node,
    path: &str,
    allowed: &[&str],
) -> Option<Mapping<'a>> {
    let mut mapping = named_keys(report, node, path, "key")?;
    drop_unknown_keys(report, &mut mapping, path, allowed);
    Some(mapping)
}

/// Reports every key of `mapping` that is not in `allowed`, and drops it.
pub(crate) fn drop_unknown_keys(
    report: &mut FileReport,
    mapping: &mut Mapping,
    path: &str,
    allowed: &[&str],
) {
    mapping.entries.retain(|entry| {
        let known = allowed.contains(&entry.key.as_str());
        if !known {
            let message = format!(
                "unknown key `{}`; allowed keys are: {}",
                entry.key,
                allowed.join(", ")
            );
            report.error(entry.key_line, &child_path(path, &entry.key), message);
        }
        known
    });
}

/// Reads a mapping whose keys are names chosen by the author (field names,
/// join columns); `what` names them in the duplicate error.
pub(crate) fn named_keys<'a>(
    report: &mut FileReport,
    node: &'a Node,
    path: &str,
    what: &str,
) -> Option<Mapping<'a>> {
    let NodeValue::Map(all) = &node.value else {
        let message = format!("expected a mapping, found {}", node.describe());
        report.error(node.line, path, message);
        return None;
    };
    let mut entries: Vec<&Entry> = Vec::with_capacity(all.len());
    for entry in all {
        match entries.iter().find(|kept| kept.key == entry.key) {
            Some(first) => {
                let message = format!(
                    "duplicate {what} `{}`: already given on line {}",
                    entry.key, first.key_line
                );
                report.error(entry.key_line, &child_path(path, &entry.key), message);
            }
            None => entries.push(entry),
        }
    }
    Some(Mapping {
        line: node.line,
        entries,
    })
}

/// The text of a scalar, or an error naming what was found instead.
pub(crate) fn text<'a>(
    report: &mut FileReport,
    node: &'a Node,
    path: &str,
    expected: &str,
) -> Option<&'a str> {
    match &node.value {
        NodeValue::Text(text) => Some(text),
        _ => {
            let message = format!("expected {expected}, found {}", node.describe());
            report.error(node.line, path, message);
            None
        }
    }
}

/// A `true` or `false` scalar (YAML 1.2: `yes` and `no` are text).
pub(crate) fn boolean(report: &mut FileReport, node: &Node, path: &str) -> Option<bool> {
    match &node.value {
        NodeValue::Other(text) if text == "true" => Some(true),
        NodeValue::Other(text) if text == "false" => Some(false),
        _ => {
            let message = format!("expected `true` or `false`, found {}", node.describe());
            report.error(node.line, path, message);
            None
        }
    }
}

/// `[a-z][a-z0-9_]*`: the names viewkeeper writes into keys, table names,
/// URLs and column paths (where unquoted names are lower-cased).
pub(crate) fn is_lower_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A column name of the enclosing table: plain text, not a path.
pub(crate) fn column_name<'a>(
    report: &mut FileReport,
    node: &'a Node,
    path: &str,
) -> Option<&'a str> {
    let name = text(report, node, path, "a column name")?;
    check_column_name(report, node.line, path, name).then_some(name)
}

/// Reports an empty name, or a dotted one: columns of other tables are reached
/// by nesting a relation, never by a path.
pub(crate) fn check_column_name(
    report: &mut FileReport,
    line: usize,
    path: &str,
    name: &str,
) -> bool {
    let message = if name.is_empty() {
        "column name is empty".to_owned()
    } else if name.contains('.') {
        format!("`{name}` is not a column name: to use another table's columns, nest a relation")
    } else {
        return true;
    };
    report.error(line, path, message);
    false
}
