//! `joins:` of search and aggregate views: named `one` joins,
//! each hanging from the root row or from an earlier join, and the column
//! paths that reach through them: `column` (of the root) or `join.column`.
//!
//! ```yaml
//! joins:
//!   category: { one: categories, on: { id: category_id } }         # categories.id = root.category_id
//!   parent:   { one: categories, on: { id: category.parent_id } }  # through an earlier join
//! ```
//!
//! `one` joins: each root row meets at most one row of each join, so a
//! column path has a single value (NULL when no row matches, like a LEFT
//! JOIN). A search view may also have `many` joins, hanging from the root or
//! a `one` join, and `one` joins hanging from those (a link table's other
//! side: a player's guilds through its memberships): a field from one takes
//! a value per joined row, and nothing else may read through it (`where`,
//! a computed field).

use super::error::FileReport;
use super::model::{Cardinality, NamedJoin, NamedJoinPair};
use super::node::{Entry, Node};
use super::shape::{self, Mapping, child_path};
use super::table::qualified_table;

const JOINS_PATH: &str = "joins";

const JOIN_KEYS: &[&str] = &["one", "many", "on"];

/// Whether a view kind's joins may be `many`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManyJoins {
    Allowed,
    /// Refused, naming the kind (`aggregate`).
    Refused(&'static str),
}

/// Reads the optional `joins:` of `top`, in definition order; `None` when any
/// join is wrong.
pub(crate) fn read_joins(
    report: &mut FileReport,
    top: &Mapping,
    many: ManyJoins,
) -> Option<Vec<NamedJoin>> {
    let Some(entry) = top.get(JOINS_PATH) else {
        return Some(Vec::new());
    };
    report.locate(JOINS_PATH, entry.key_line);
    let mapping = shape::named_keys(report, &entry.value, JOINS_PATH, "join")?;
    let names: Vec<&str> = mapping.entries.iter().map(|e| e.key.as_str()).collect();
    let mut joins = Vec::new();
    for (index, entry) in mapping.entries.iter().enumerate() {
        let order = JoinOrder {
            earlier: &names[..index],
            later: &names[index + 1..],
            several: &several_rows(&joins),
        };
        joins.extend(read_join(report, entry, &order, many));
    }
    (joins.len() == mapping.entries.len()).then_some(joins)
}

/// The names of the joins that give a root several rows: `many` joins and
/// the joins that hang below one.
fn several_rows(joins: &[NamedJoin]) -> Vec<String> {
    joins
        .iter()
        .filter(|join| gives_several_rows(joins, join))
        .map(|join| join.name.clone())
        .collect()
}

/// Whether `join` gives a root several rows: it is a `many` join, or it
/// hangs, through `one` joins, below one.
pub(crate) fn gives_several_rows(joins: &[NamedJoin], join: &NamedJoin) -> bool {
    let mut at = Some(join);
    // Parents are earlier joins, so the walk ends.
    while let Some(join) = at {
        if join.cardinality == Cardinality::Many {
            return true;
        }
        let parent = join.on.first().and_then(|pair| joined_name(&pair.parent));
        at = parent.and_then(|name| joins.iter().find(|known| known.name == name));
    }
    false
}

/// The names of the joins defined before and after the one being read: its
/// parent side may only name earlier ones; a `many` join's, none that gives
/// several rows.
struct JoinOrder<'a> {
    earlier: &'a [&'a str],
    later: &'a [&'a str],
    several: &'a [String],
}

fn read_join(
    report: &mut FileReport,
    entry: &Entry,
    order: &JoinOrder,
    many: ManyJoins,
) -> Option<NamedJoin> {
    let path = child_path(JOINS_PATH, &entry.key);
    report.locate(&path, entry.key_line);
    let name_ok = check_join_name(report, entry, &path);
    let mut mapping = shape::named_keys(report, &entry.value, &path, "key")?;
    // A missing key is reported at the join's name, not at its first key.
    mapping.line = entry.key_line;
    let refused_many = match many {
        ManyJoins::Refused(kind) => refuse_many(report, &mut mapping, &path, kind),
        ManyJoins::Allowed => false,
    };
    shape::drop_unknown_keys(report, &mut mapping, &path, JOIN_KEYS);
    let target = if refused_many && mapping.get("one").is_none() {
        None
    } else {
        read_target(report, &mapping, &path)
    };
    let cardinality = target.as_ref().map(|(cardinality, _)| *cardinality);
    let on = read_on(report, &mapping, &path, &entry.key, order, cardinality);
    let (cardinality, table) = target?;
    Some(NamedJoin {
        name: name_ok.then(|| entry.key.clone())?,
        table: table?,
        cardinality,
        on: on?,
    })
}

/// Join names are the first part of `join.column` paths, also in `where`,
/// which lower-cases unquoted names.
fn check_join_name(report: &mut FileReport, entry: &Entry, path: &str) -> bool {
    if shape::is_lower_identifier(&entry.key) {
        return true;
    }
    let message = format!(
        "`{}` is not a valid join name: use lowercase letters, digits and `_`, \
         starting with a letter",
        entry.key
    );
    report.error(entry.key_line, path, message);
    false
}

/// Reports and drops `many:`; true when it was there.
fn refuse_many(report: &mut FileReport, mapping: &mut Mapping, path: &str, kind: &str) -> bool {
    let Some(many) = mapping.get("many") else {
        return false;
    };
    let message = format!(
        "`many` joins are not allowed in {kind} views: each root row must meet at most one \
         joined row, so write `one: TABLE` (a many-to-one join)"
    );
    report.error(many.key_line, &child_path(path, "many"), message);
    mapping.entries.retain(|entry| entry.key != "many");
    true
}

/// `one: TABLE` or (where allowed) `many: TABLE`: the cardinality, and the
/// table when its name is valid.
fn read_target(
    report: &mut FileReport,
    mapping: &Mapping,
    path: &str,
) -> Option<(Cardinality, Option<String>)> {
    let (key, cardinality) = match (mapping.get("one"), mapping.get("many")) {
        (Some(_), Some(many)) => {
            let message = "give either `one:` or `many:`, not both";
            report.error(many.key_line, &child_path(path, "many"), message);
            return None;
        }
        (None, Some(_)) => ("many", Cardinality::Many),
        _ => ("one", Cardinality::One),
    };
    let entry = mapping.require(report, path, key)?;
    let table_path = child_path(path, key);
    report.locate(&table_path, entry.value.line);
    Some((
        cardinality,
        qualified_table(report, &entry.value, &table_path),
    ))
}

/// `on: { joined_column: parent, ... }`, at least one pair, every parent from
/// the same table: the root, or one earlier join.
fn read_on(
    report: &mut FileReport,
    mapping: &Mapping,
    path: &str,
    name: &str,
    order: &JoinOrder,
    cardinality: Option<Cardinality>,
) -> Option<Vec<NamedJoinPair>> {
    let on = mapping.require(report, path, "on")?;
    let on_path = child_path(path, "on");
    report.locate(&on_path, on.key_line);
    let pairs = shape::named_keys(report, &on.value, &on_path, "join column")?;
    if pairs.entries.is_empty() {
        let message = "needs at least one `joined_column: parent_column` pair";
        report.error(on.key_line, &on_path, message);
        return None;
    }
    let read: Vec<NamedJoinPair> = pairs
        .entries
        .iter()
        .filter_map(|pair| read_pair(report, pair, &on_path, name, order, cardinality))
        .collect();
    if read.len() != pairs.entries.len() {
        return None;
    }
    one_parent_table(report, &read, on.key_line, &on_path).then_some(read)
}

fn read_pair(
    report: &mut FileReport,
    pair: &Entry,
    on_path: &str,
    name: &str,
    order: &JoinOrder,
    cardinality: Option<Cardinality>,
) -> Option<NamedJoinPair> {
    let pair_path = child_path(on_path, &pair.key);
    report.locate(&pair_path, pair.key_line);
    let joined_ok = shape::check_column_name(report, pair.key_line, on_path, &pair.key);
    let parent = read_column_path(report, &pair.value, on_path)?;
    if let Err(message) = check_parent(&parent, name, order, cardinality) {
        report.error(pair.value.line, on_path, message);
        return None;
    }
    joined_ok.then(|| NamedJoinPair {
        joined: pair.key.clone(),
        parent,
    })
}

/// A parent is a root column or a column of an earlier join; a `many`
/// join's parent gives one row per root (arrays do not nest).
fn check_parent(
    parent: &[String],
    name: &str,
    order: &JoinOrder,
    cardinality: Option<Cardinality>,
) -> Result<(), String> {
    let [join, _column] = parent else {
        return Ok(());
    };
    let path = parent.join(".");
    if cardinality == Some(Cardinality::Many) && order.several.contains(join) {
        Err(format!(
            "`{path}`: join `{join}` gives several rows per root (a `many` join, or a join \
             below one), and a `many` join below it would nest their values; hang this join \
             from the root or a `one` join of the root"
        ))
    } else if order.earlier.contains(&join.as_str()) {
        Ok(())
    } else if join == name {
        Err(format!("`{path}`: a join cannot join on its own columns"))
    } else if order.later.contains(&join.as_str()) {
        Err(format!(
            "`{path}`: join `{join}` is defined after `{name}`; a join's parent side is a \
             root column or a column of an earlier join"
        ))
    } else {
        Err(format!("`{path}`: {}", unknown_join(join)))
    }
}

/// The planner hangs each join below a single parent table.
fn one_parent_table(
    report: &mut FileReport,
    pairs: &[NamedJoinPair],
    line: usize,
    on_path: &str,
) -> bool {
    let first_parent = joined_name(&pairs[0].parent);
    if pairs
        .iter()
        .all(|pair| joined_name(&pair.parent) == first_parent)
    {
        return true;
    }
    let message =
        "all parent columns of a join must come from one table: the root, or one earlier join";
    report.error(line, on_path, message);
    false
}

/// A `column` or `join.column` path written at `node`, as its parts.
pub(crate) fn read_column_path(
    report: &mut FileReport,
    node: &Node,
    path: &str,
) -> Option<Vec<String>> {
    let text = shape::text(report, node, path, "`column` or `join.column`")?;
    split_column_path(text)
        .map_err(|message| report.error(node.line, path, message))
        .ok()
}

fn split_column_path(text: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = text.split('.').collect();
    let well_formed = parts.len() <= 2
        && parts
            .iter()
            .all(|part| !part.is_empty() && !part.contains(char::is_whitespace));
    if !well_formed {
        return Err(format!(
            "`{text}` is not a column path: write `column` (of the root table) or \
             `join.column` (a column of a join under `joins:`)"
        ));
    }
    Ok(parts.into_iter().map(str::to_owned).collect())
}

/// Whether a `column` or `join.column` path has one value per root: it
/// resolves through `joins`, and not through a `many` one (what `where`
/// reads).
pub(crate) fn check_single_path(joins: &[NamedJoin], path: &[String]) -> Result<(), String> {
    check_joined_path(joins, path)?;
    match joined_name(path).and_then(|name| joins.iter().find(|join| join.name == name)) {
        Some(join) if gives_several_rows(joins, join) => {
            let what = if join.cardinality == Cardinality::Many {
                "a `many` join"
            } else {
                "below a `many` join"
            };
            Err(format!(
                "column `{}`: `{}` is {what}, whose rows give no single value; only a search \
                 field of that one column (`from: {}`) may read through it",
                path.join("."),
                join.name,
                path.join(".")
            ))
        }
        _ => Ok(()),
    }
}

/// Whether a `column` or `join.column` path resolves through `joins`.
pub(crate) fn check_joined_path(joins: &[NamedJoin], path: &[String]) -> Result<(), String> {
    match path {
        [_column] => Ok(()),
        [join, _column] if joins.iter().any(|known| &known.name == join) => Ok(()),
        [join, _column] => Err(format!(
            "column `{}`: {}",
            path.join("."),
            unknown_join(join)
        )),
        _ => Err(format!(
            "column `{}`: write `column` (of the root table) or `join.column`",
            path.join(".")
        )),
    }
}

fn unknown_join(name: &str) -> String {
    format!("no join named `{name}` under `joins:`")
}

/// The join a path goes through: `None` for a root column.
pub(crate) fn joined_name(path: &[String]) -> Option<&str> {
    match path {
        [join, _column] => Some(join),
        _ => None,
    }
}

/// The table holding the last column of `path`: the root, or the join's;
/// `None` when the path names no join of `joins`.
pub(crate) fn table_of<'a>(
    root: &'a str,
    joins: &'a [NamedJoin],
    path: &[String],
) -> Option<&'a str> {
    match joined_name(path) {
        None => Some(root),
        Some(name) => joins
            .iter()
            .find(|join| join.name == name)
            .map(|join| join.table.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| (*part).to_owned()).collect()
    }

    #[test]
    fn column_paths_have_one_or_two_parts() {
        assert_eq!(split_column_path("name").unwrap(), strings(&["name"]));
        assert_eq!(
            split_column_path("category.name").unwrap(),
            strings(&["category", "name"])
        );
        for bad in ["", "a.b.c", ".name", "category.", "a b"] {
            assert!(split_column_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_parent_names_the_root_or_an_earlier_join() {
        let several = strings(&["reviews"]);
        let order = JoinOrder {
            earlier: &["category", "reviews"],
            later: &["brand"],
            several: &several,
        };
        let check =
            |path: &[&str]| check_parent(&strings(path), "parent", &order, Some(Cardinality::Many));
        assert!(check(&["category_id"]).is_ok());
        assert!(check(&["category", "parent_id"]).is_ok());
        assert!(
            check(&["brand", "id"])
                .unwrap_err()
                .contains("defined after")
        );
        assert!(check(&["parent", "id"]).unwrap_err().contains("its own"));
        assert!(
            check(&["reviews", "id"])
                .unwrap_err()
                .contains("gives several rows per root")
        );
        // A `one` join may hang from it: a link table's other side.
        let one = check_parent(&strings(&["reviews", "id"]), "parent", &order, None);
        assert!(one.is_ok(), "{one:?}");
        assert!(
            check(&["shop", "id"])
                .unwrap_err()
                .contains("no join named")
        );
    }

    #[test]
    fn paths_resolve_to_the_table_of_their_join() {
        let joins = [NamedJoin {
            name: "category".into(),
            table: "public.categories".into(),
            cardinality: Cardinality::One,
            on: Vec::new(),
        }];
        let table = |path: &[&str]| table_of("public.products", &joins, &strings(path));
        assert_eq!(table(&["name"]), Some("public.products"));
        assert_eq!(table(&["category", "name"]), Some("public.categories"));
        assert_eq!(table(&["brand", "name"]), None);
        assert!(check_joined_path(&joins, &strings(&["category", "name"])).is_ok());
        assert!(check_joined_path(&joins, &strings(&["brand", "name"])).is_err());
    }
}
