//! The YAML document as a plain tree whose every node remembers its line.
//!
//! View files are read in two steps: serde-saphyr turns the text into this tree
//! (only YAML syntax errors stop here), then the format modules walk the tree and
//! collect every format error with its line. A generic tree, rather than derived
//! structs, is what lets validation report all errors at once and keep the line of
//! every key and value (serde's `untagged`/`flatten` would lose them).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    /// The 1-based column, in characters, the node starts at.
    pub column: usize,
    pub value: NodeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Text(String),
    /// A boolean or a number, kept as text only to name it in error messages.
    Other(String),
    Map(Vec<Entry>),
    List(Vec<Node>),
}

/// One `key: value` pair of a mapping, in file order; duplicates are kept so
/// that the format modules can report them with their line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_line: usize,
    pub value: Node,
}

impl Node {
    /// The first plain (unquoted) text in this tree that a YAML comment cut
    /// short because the comment began with `#>`: jsonb's path operator,
    /// which after a space YAML reads as the start of a comment, so `doc
    /// #>> '{a}'` arrives as `doc`. Its line, given the file's lines.
    pub fn first_cut_by_path_operator(&self, lines: &[&str]) -> Option<usize> {
        match &self.value {
            NodeValue::Text(text) => {
                let line = lines.get(self.line.checked_sub(1)?)?;
                let rest: String = line.chars().skip(self.column.saturating_sub(1)).collect();
                // A quoted or block scalar is not where it starts on its
                // line; a plain one is, and the comment follows it.
                let after = rest.strip_prefix(text.as_str())?;
                let comment = after.trim_start();
                (comment.len() < after.len() && comment.starts_with("#>")).then_some(self.line)
            }
            NodeValue::Map(entries) => entries
                .iter()
                .find_map(|entry| entry.value.first_cut_by_path_operator(lines)),
            NodeValue::List(items) => items
                .iter()
                .find_map(|item| item.first_cut_by_path_operator(lines)),
            NodeValue::Null | NodeValue::Other(_) => None,
        }
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            NodeValue::Null => "nothing".to_owned(),
            NodeValue::Text(text) => format!("text \"{text}\""),
            NodeValue::Other(text) => format!("`{text}`"),
            NodeValue::Map(_) => "a mapping".to_owned(),
            NodeValue::List(_) => "a list".to_owned(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(deserializer)?;
        Ok(Node {
            line: spanned.referenced.line() as usize,
            column: spanned.referenced.column() as usize,
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Text(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Text(text))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Other(value.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Other(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<NodeValue, E> {
        Ok(NodeValue::Other(value.to_string()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<NodeValue, E> {
        Ok(NodeValue::Other(value.to_string()))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<NodeValue, E> {
        Ok(NodeValue::Other(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Other(value.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry {
                key: key_text(&key),
                key_line: key.line,
                value,
            });
        }
        Ok(NodeValue::Map(entries))
    }
}

/// Keys are compared as text: `1:` and `"1":` name the same field.
fn key_text(key: &Node) -> String {
    match &key.value {
        NodeValue::Text(text) | NodeValue::Other(text) => text.clone(),
        NodeValue::Null => String::new(),
        other => format!("{other:?}"),
    }
}
