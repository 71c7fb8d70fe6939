//! `kind: cache`: the keys of a cache view (`root`, `key`, `where`, `fields`)
//! and the checks that need nothing but the file.

use super::error::FileReport;
use super::fields::read_fields;
use super::filter::{read_where, through_relations};
use super::key_template::parse_key_template;
use super::model::{CacheView, KeyTemplate};
use super::shape::{self, Mapping};
use super::table::read_root;

/// The top-level keys of a cache view file, common keys included.
pub(crate) const CACHE_KEYS: &[&str] = &[
    "view",
    "kind",
    "description",
    "root",
    "key",
    "where",
    "fields",
];

/// Reads the cache-specific keys of the file's top mapping.
pub(crate) fn read_cache_view(report: &mut FileReport, top: &Mapping) -> Option<CacheView> {
    let root = read_root(report, top);
    let key = read_key(report, top);
    let errors_before_fields = report.errors.len();
    let fields = top.require(report, "", "fields").map(|entry| {
        report.locate("fields", entry.key_line);
        read_fields(report, &entry.value, "fields")
    });
    // `where` paths are resolved through the fields; when some fields were
    // wrong, only the expression's syntax is checked, so that a broken relation
    // is not reported a second time as an unknown one.
    let fields_ok = report.errors.len() == errors_before_fields;
    let resolvable = fields.as_deref().filter(|_| fields_ok);
    let check_path = |path: &[String]| resolvable.map_or(Ok(()), |f| through_relations(f, path));
    let filter = read_where(report, top, &check_path);
    Some(CacheView {
        root: root?,
        key: key?,
        filter: filter?,
        fields: fields?,
    })
}

fn read_key(report: &mut FileReport, top: &Mapping) -> Option<KeyTemplate> {
    let entry = top.require(report, "", "key")?;
    report.locate("key", entry.value.line);
    let source = shape::text(
        report,
        &entry.value,
        "key",
        "a key template such as `order:{id}`",
    )?;
    parse_key_template(source)
        .map_err(|message| report.error(entry.value.line, "key", message))
        .ok()
}
