//! Table names as views write them (`orders`, `sales.orders`) and as the model
//! keeps them: always schema-qualified, `public` when no schema is given, the
//! way PostgreSQL resolves an unqualified name with the default search path.

use super::error::FileReport;
use super::node::Node;
use super::shape::{self, Mapping};

const DEFAULT_SCHEMA: &str = "public";

/// The required `root:` table of a view file's top mapping.
pub(crate) fn read_root(report: &mut FileReport, top: &Mapping) -> Option<String> {
    let entry = top.require(report, "", "root")?;
    report.locate("root", entry.value.line);
    qualified_table(report, &entry.value, "root")
}

/// The schema-qualified name of the table named by `node`.
pub(crate) fn qualified_table(report: &mut FileReport, node: &Node, path: &str) -> Option<String> {
    let name = shape::text(report, node, path, "a table name")?;
    match qualify(name) {
        Ok(qualified) => Some(qualified),
        Err(message) => {
            report.error(node.line, path, message);
            None
        }
    }
}

/// PostgreSQL silently truncates longer identifiers (`NAMEDATALEN` - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The schema-qualified name of a table that viewkeeper creates (an
/// aggregate view's `table`), named by `node`: `table` or `schema.table` of
/// plain identifiers, which every tool reads the same way without quoting.
pub(crate) fn created_table(report: &mut FileReport, node: &Node, path: &str) -> Option<String> {
    let name = shape::text(report, node, path, "a table name")?;
    let parts: Vec<&str> = name.split('.').collect();
    let problem = match parts.as_slice() {
        [_] | [_, _] => parts.iter().find_map(|part| created_name_problem(part)),
        _ => Some("write `table` or `schema.table`"),
    };
    if let Some(problem) = problem {
        let message =
            format!("`{name}` is not a valid name for the table viewkeeper creates: {problem}");
        report.error(node.line, path, message);
        return None;
    }
    qualify(name).ok()
}

/// Why `name` cannot name a table or column that viewkeeper creates, if it
/// cannot.
pub(crate) fn created_name_problem(name: &str) -> Option<&'static str> {
    if !shape::is_lower_identifier(name) {
        Some("use lowercase letters, digits and `_`, starting with a letter")
    } else if name.len() > MAX_IDENTIFIER_BYTES {
        Some("PostgreSQL truncates names longer than 63 bytes")
    } else {
        None
    }
}

fn qualify(name: &str) -> Result<String, String> {
    let parts: Vec<&str> = name.split('.').collect();
    let valid_part = |part: &&str| !part.is_empty() && !part.contains(char::is_whitespace);
    match parts.as_slice() {
        [table] if valid_part(table) => Ok(format!("{DEFAULT_SCHEMA}.{table}")),
        [schema, table] if valid_part(schema) && valid_part(table) => Ok(name.to_owned()),
        _ => Err(format!(
            "`{name}` is not a table name: write `table` or `schema.table`"
        )),
    }
}

/// The name as a person would write it: `orders` for `public.orders`.
pub fn display_table(qualified: &str) -> &str {
    qualified
        .strip_prefix(DEFAULT_SCHEMA)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(qualified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unqualified_names_resolve_to_public() {
        assert_eq!(qualify("orders").unwrap(), "public.orders");
        assert_eq!(qualify("sales.orders").unwrap(), "sales.orders");
        assert!(qualify("a.b.c").is_err());
        assert!(qualify(".orders").is_err());
        assert!(qualify("").is_err());
    }

    #[test]
    fn created_names_are_short_lowercase_identifiers() {
        assert_eq!(created_name_problem("category_daily_sales"), None);
        assert_eq!(created_name_problem(&"a".repeat(63)), None);
        assert!(created_name_problem(&"a".repeat(64)).is_some());
        for bad in [
            "Sales",
            "2024_sales",
            "_sales",
            "daily-sales",
            "",
            "\"sales\"",
        ] {
            assert!(created_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn display_drops_only_the_default_schema() {
        assert_eq!(display_table("public.orders"), "orders");
        assert_eq!(display_table("sales.orders"), "sales.orders");
        assert_eq!(display_table("publicity.x"), "publicity.x");
    }
}
