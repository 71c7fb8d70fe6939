//! `kind: search`: the keys of a search view (`root`, `id`, `joins`,
//! `fields`, `where`) and the checks that need nothing but the file. Each
//! qualifying root row becomes one Tantivy document, identified by `id`.
//!
//! ```yaml
//! view: product_search
//! kind: search
//! root: products
//! id: id
//! fields:
//!   name:     { from: name, type: text, stored: true }
//!   category: { from: category.name, type: keyword, stored: true }
//! joins:
//!   category: { one: categories, on: { id: category_id } }
//! ```
//!
//! The fields' own keys are read by `search_fields.rs`, the joins by
//! `joins.rs`.

use super::error::FileReport;
use super::filter::read_where;
use super::joins::{ManyJoins, check_single_path, read_joins};
use super::model::{NamedJoin, SearchView};
use super::search_fields::read_search_fields;
use super::shape::{self, Mapping};
use super::table::read_root;

/// The top-level keys of a search view file, common keys included.
pub(crate) const SEARCH_KEYS: &[&str] = &[
    "view",
    "kind",
    "description",
    "root",
    "id",
    "where",
    "fields",
    "joins",
];

/// Reads the search-specific keys of the file's top mapping.
pub(crate) fn read_search_view(report: &mut FileReport, top: &Mapping) -> Option<SearchView> {
    let root = read_root(report, top);
    let id = read_id(report, top);
    let errors_before_joins = report.errors.len();
    let joins = read_joins(report, top, ManyJoins::Allowed);
    // Paths through a join that was wrong are not checked, so that a broken
    // join is not reported a second time as an unknown one.
    let joins_ok = report.errors.len() == errors_before_joins;
    let known_joins: Option<&[NamedJoin]> = joins.as_deref().filter(|_| joins_ok);
    let fields = read_search_fields(report, top, known_joins);
    let check_path = |path: &[String]| match known_joins {
        Some(joins) => check_single_path(joins, path),
        None => Ok(()),
    };
    let filter = read_where(report, top, &check_path);
    Some(SearchView {
        root: root?,
        id: id?,
        filter: filter?,
        fields: fields?,
        joins: joins?,
    })
}

/// `id: column`: the root column that identifies a document.
fn read_id(report: &mut FileReport, top: &Mapping) -> Option<String> {
    let entry = top.require(report, "", "id")?;
    report.locate("id", entry.value.line);
    shape::column_name(report, &entry.value, "id").map(str::to_owned)
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
