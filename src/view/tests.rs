//! Tests of whole files and directories: the example view's typed tree, errors
//! across files, several errors of one file. The invalid-file corpus is in
//! `tests/view_corpus.rs`.

use std::fmt::Write;
use std::path::Path;

use super::document::parse_yaml;
use super::model::{Cardinality, Field, FieldSource, KeyPart, MeasureFunction, Relation, ViewKind};
use super::{ViewDef, load_views, parse_view};

const ORDER_CACHE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/views/order_cache.yaml"
));

/// `ORDER_CACHE` with `line` (`limit: 2`) added to its `items` relation.
fn with_items_key(line: &str) -> String {
    ORDER_CACHE.replace(
        "    order_by: id\n",
        &format!("    order_by: id\n    {line}\n"),
    )
}

/// The `items` relation of a view parsed from `ORDER_CACHE`.
fn items_of(view: &ViewDef) -> &Relation {
    let ViewKind::Cache(cache) = &view.kind else {
        panic!("expected a cache view");
    };
    let FieldSource::Relation(items) = &cache.fields[5].source else {
        panic!("expected the items relation");
    };
    items
}

/// The fields as an indented outline, one line a field, so that a whole tree
/// is compared at once and a difference shows where it is.
fn outline(fields: &[Field], depth: usize, out: &mut String) {
    for field in fields {
        let indent = "  ".repeat(depth);
        match &field.source {
            FieldSource::Column(column) => {
                writeln!(out, "{indent}{} <- {column}", field.name).unwrap();
            }
            FieldSource::Computed(expr) => {
                writeln!(out, "{indent}{} <- `{expr}`", field.name).unwrap();
            }
            FieldSource::Relation(relation) => {
                let cardinality = match relation.cardinality {
                    Cardinality::One => "one",
                    Cardinality::Many => "many",
                };
                let on: Vec<String> = relation
                    .on
                    .iter()
                    .map(|pair| format!("{}={}", pair.joined, pair.parent))
                    .collect();
                let order: Vec<String> = relation
                    .order_by
                    .iter()
                    .map(|key| {
                        format!(
                            "{}{}",
                            key.column,
                            if key.descending { " desc" } else { "" }
                        )
                    })
                    .collect();
                writeln!(
                    out,
                    "{indent}{}: {cardinality} {} on {} order_by [{}]",
                    field.name,
                    relation.table,
                    on.join(","),
                    order.join(",")
                )
                .unwrap();
                outline(&relation.fields, depth + 1, out);
            }
        }
    }
}

fn parse(text: &str) -> ViewDef {
    parse_view(Path::new("views/test.yaml"), text).unwrap_or_else(|errors| {
        panic!("unexpected errors: {errors:#?}");
    })
}

fn errors_of(text: &str) -> Vec<String> {
    match parse_view(Path::new("views/test.yaml"), text) {
        Ok(_) => panic!("expected errors"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn order_cache_example_parses_into_the_expected_tree() {
    let view = parse(ORDER_CACHE);
    assert_eq!(view.name, "order_cache");
    assert_eq!(view.definition_hash.len(), 64);
    let ViewKind::Cache(cache) = &view.kind else {
        panic!("expected a cache view");
    };
    assert_eq!(cache.root, "public.orders");
    assert_eq!(cache.key.source, "order:{id}");
    assert_eq!(
        cache.key.parts,
        vec![
            KeyPart::Literal("order:".into()),
            KeyPart::Column("id".into())
        ]
    );
    let filter = cache.filter.as_ref().expect("where is given");
    assert_eq!(filter.source(), "status <> 'draft'");
    let mut tree = String::new();
    outline(&cache.fields, 0, &mut tree);
    let expected = "\
id <- id
status <- status
total_cents <- total_cents
created_at <- created_at
customer: one public.customers on id=customer_id order_by []
  id <- id
  name <- name
  email <- email
items: many public.order_items on order_id=id order_by [id]
  sku <- sku
  quantity <- quantity
  product: one public.products on id=product_id order_by []
    name <- name
";
    assert_eq!(tree, expected);
}

#[test]
fn locations_give_the_line_of_every_part() {
    let view = parse(ORDER_CACHE);
    let line = |path: &str| view.locations.line(path);
    assert_eq!(line("root"), Some(4));
    assert_eq!(line("where"), Some(6));
    assert_eq!(line("fields.customer"), Some(12));
    assert_eq!(line("fields.customer.on"), Some(14));
    assert_eq!(line("fields.customer.on.id"), Some(14));
    assert_eq!(line("fields.items.order_by"), Some(19));
    assert_eq!(line("fields.items.fields.product.on.id"), Some(23));
    // An unrecorded path falls back to its nearest recorded parent.
    assert_eq!(line("fields.customer.fields.nope"), Some(15));
}

#[test]
fn order_by_accepts_a_list_with_directions() {
    let text = ORDER_CACHE.replace("order_by: id", "order_by: [sku desc, id ASC]");
    let view = parse(&text);
    let ViewKind::Cache(cache) = &view.kind else {
        panic!("expected a cache view");
    };
    let mut tree = String::new();
    outline(&cache.fields, 0, &mut tree);
    assert!(tree.contains("order_by [sku desc,id]"), "{tree}");
}

#[test]
fn schema_qualified_tables_are_kept() {
    let view = parse(&ORDER_CACHE.replace("root: orders", "root: sales.orders"));
    let ViewKind::Cache(cache) = &view.kind else {
        panic!("expected a cache view");
    };
    assert_eq!(cache.root, "sales.orders");
}

#[test]
fn several_errors_of_one_file_are_reported_at_once_in_line_order() {
    let text = "\
view: order_cache
kind: cache
root: orders
key: \"order:{id\"
colour: blue
fields:
  id: id
  id: id
  customer:
    one: customers
    many: customers
    on: { id: customer_id }
    fields: { name: name }
";
    let errors = errors_of(text);
    let expected = [
        "views/test.yaml:4: key: unbalanced `{` at position 6",
        "views/test.yaml:5: colour: unknown key `colour`",
        "views/test.yaml:8: fields.id: duplicate field `id`: already given on line 7",
        "views/test.yaml:9: fields.customer: give either `one:`",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (error, expected) in errors.iter().zip(expected) {
        assert!(
            error.starts_with(expected),
            "{error}\n  does not start with\n{expected}"
        );
    }
}

#[test]
fn errors_in_nested_relations_name_the_full_path() {
    let text = ORDER_CACHE.replace(
        "product: { one: products, on: { id: product_id }, fields: { name: name } }",
        "product: { one: products, on: {}, fields: { name: [x] } }",
    );
    let errors = errors_of(&text);
    assert_eq!(
        errors,
        [
            "views/test.yaml:23: fields.items.fields.product.on: needs at least one \
             `joined_column: parent_column` pair",
            "views/test.yaml:23: fields.items.fields.product.fields.name: expected a column \
             name, an expression or a relation (a mapping with `one:` or `many:`), found a list",
        ]
    );
}

#[test]
fn where_paths_resolve_through_one_relations_only() {
    let ok = ORDER_CACHE.replace(
        "where: \"status <> 'draft'\"",
        "where: \"customer.email is not null\"",
    );
    parse(&ok);
    let through_many = ORDER_CACHE.replace("status <> 'draft'", "items.sku = 'x'");
    assert_eq!(
        errors_of(&through_many),
        [
            "views/test.yaml:6: where: column `items.sku`: cannot filter on many relation items \
          (`items` is a `many` relation)"
        ]
    );
    let unknown = ORDER_CACHE.replace("status <> 'draft'", "buyer.email = 'x'");
    assert_eq!(
        errors_of(&unknown),
        [
            "views/test.yaml:6: where: column `buyer.email`: no relation field `buyer` at this level; \
          declare it among this level's fields (`buyer: { one: …, on: …, hidden: true }` when \
          only paths read it)"
        ]
    );
}

#[test]
fn a_field_is_a_column_name_or_an_expression() {
    let text = ORDER_CACHE
        .replace("status: status", "status: \"upper(status)\"")
        .replace(
            "total_cents: total_cents",
            "total_cents: '\"Total Cents\"'\n  net: order total\n  buyer: customer.email",
        )
        .replace("quantity: quantity", "quantity: \"quantity * 2\"");
    let view = parse(&text);
    let ViewKind::Cache(cache) = &view.kind else {
        panic!("expected a cache view");
    };
    let mut tree = String::new();
    outline(&cache.fields, 0, &mut tree);
    // A quoted name and words between spaces are columns; the rest,
    // paths included, are expressions.
    let expected = "\
id <- id
status <- `upper(status)`
total_cents <- Total Cents
net <- order total
buyer <- `customer.email`
created_at <- created_at
customer: one public.customers on id=customer_id order_by []
  id <- id
  name <- name
  email <- email
items: many public.order_items on order_id=id order_by [id]
  sku <- sku
  quantity <- `quantity * 2`
  product: one public.products on id=product_id order_by []
    name <- name
";
    assert_eq!(tree, expected);
}

#[test]
fn computed_fields_read_their_level_and_its_one_relations() {
    let inside_items = ORDER_CACHE.replace("sku: sku", "sku: \"product.name || sku\"");
    parse(&inside_items);
    let errors = |from: &str, to: &str| errors_of(&ORDER_CACHE.replace(from, to));
    assert_eq!(
        errors("id: id\n  status", "id: \"items.sku\"\n  status"),
        [
            "views/test.yaml:8: fields.id: column `items.sku`: `items` is a `many` relation, \
             whose rows give no single value: compute the field inside it, under its `fields:`, \
             or give a relation of the same rows a `measure:` (`count()`, `sum(x)`)"
        ]
    );
    // Inside `items`, the order's columns are not in reach.
    assert_eq!(
        errors("sku: sku", "sku: \"customer.name\""),
        [
            "views/test.yaml:21: fields.items.fields.sku: column `customer.name`: no relation \
             field `customer` at this level; declare it among this level's fields (`customer: \
             { one: …, on: …, hidden: true }` when only paths read it)"
        ]
    );
    assert_eq!(
        errors("sku: sku", "sku: \"sku ||\""),
        [
            "views/test.yaml:21: fields.items.fields.sku: invalid expression: syntax error in \
          `sku ||`: sql parser error: Expected: an expression, found: EOF (a field's value is a column name or an \
          expression over this level's columns)"
        ]
    );
    assert_eq!(
        errors("sku: sku", "sku: \"\""),
        ["views/test.yaml:21: fields.items.fields.sku: column name is empty"]
    );
    // A number in quotes is a constant, not a column named `1` (trial 26);
    // unquoted, YAML reads a number, and the message says to quote it. A
    // name that starts with a digit is still a column.
    let constant = parse(&ORDER_CACHE.replace("sku: sku", "sku: \"1\"\n      x: 2fa_on"));
    let items = items_of(&constant);
    assert!(matches!(&items.fields[0].source, FieldSource::Computed(_)));
    assert!(matches!(&items.fields[1].source, FieldSource::Column(c) if c == "2fa_on"));
    assert_eq!(
        errors("sku: sku", "sku: 1"),
        [
            "views/test.yaml:21: fields.items.fields.sku: expected a column name, an expression \
          or a relation (a mapping with `one:` or `many:`), found `1`; a constant is an \
          expression in quotes (`\"1\"`, `\"true\"`, `\"'text'\"`)"
        ]
    );
    // An expression's own mistake is said without the column-name hint.
    assert_eq!(
        errors("sku: sku", "sku: \"initcap(sku)\""),
        [
            "views/test.yaml:21: fields.items.fields.sku: invalid expression: unknown function \
          `initcap` in `initcap(sku)`"
        ]
    );
}

#[test]
fn a_relation_where_reads_the_relation_and_its_one_relations() {
    let with_where = |condition: &str| with_items_key(&format!("where: \"{condition}\""));
    let view = parse(&with_where("quantity > 1 AND product.name IS NOT NULL"));
    let items = items_of(&view);
    let filter = items.filter.as_ref().expect("the relation's where");
    assert_eq!(filter.source(), "quantity > 1 AND product.name IS NOT NULL");
    assert_eq!(
        errors_of(&with_where("customer.name = 'x'")),
        [
            "views/test.yaml:20: fields.items.where: column `customer.name`: no relation field \
             `customer` at this level; declare it among this level's fields (`customer: { one: …, \
             on: …, hidden: true }` when only paths read it)"
        ]
    );
}

#[test]
fn a_many_relation_may_have_a_limit() {
    let limited = |limit: &str| with_items_key(&format!("limit: {limit}"));
    let view = parse(&limited("2"));
    let items = items_of(&view);
    assert_eq!(items.limit, Some(2));
    for wrong in ["0", "-1", "two", "1.5"] {
        let errors = errors_of(&limited(wrong));
        assert_eq!(errors.len(), 1, "{wrong}: {errors:?}");
        assert!(
            errors[0]
                .starts_with("views/test.yaml:20: fields.items.limit: expected a whole number")
        );
    }
    let on_one = ORDER_CACHE.replace(
        "    on: { id: customer_id }        # customers.id = orders.customer_id\n",
        "    on: { id: customer_id }\n    limit: 1\n",
    );
    assert_eq!(
        errors_of(&on_one),
        [
            "views/test.yaml:15: fields.customer.limit: `limit` is only allowed on a `many` \
          relation: a `one` relation is a single object"
        ]
    );
}

#[test]
fn a_many_relation_may_give_a_measure_instead_of_fields() {
    let fields = ORDER_CACHE
        .find("    fields:\n      sku")
        .expect("items' fields");
    let measured = |measure: &str| format!("{}    measure: {measure}\n", &ORDER_CACHE[..fields]);
    let view = parse(&measured("\"sum(quantity) FILTER (WHERE quantity > 1)\""));
    let items = items_of(&view);
    assert!(items.fields.is_empty());
    let measure = items.measure.as_ref().expect("the measure");
    assert_eq!(measure.name, "items");
    assert_eq!(measure.function, MeasureFunction::Sum);
    assert_eq!(
        measure.arg.as_ref().map(|arg| arg.columns()),
        Some(vec![vec!["quantity".to_owned()]])
    );
    assert!(items_of(&parse(&measured("count()"))).measure.is_some());
    assert_eq!(
        errors_of(&measured("total(quantity)")),
        [
            "views/test.yaml:20: fields.items.measure: unknown function `total`; expected one of: count, sum, avg, min, max, count_distinct, median, percentile_cont(f) WITHIN GROUP (ORDER BY …), percentile_disc(f) WITHIN GROUP (ORDER BY …)"
        ]
    );
    assert_eq!(
        errors_of(&measured("\"sum(product.price)\"")),
        [
            "views/test.yaml:20: fields.items.measure: column `product.price`: a measure reads its relation's own columns only"
        ]
    );
    assert_eq!(
        errors_of(&measured("[count()]")),
        [
            "views/test.yaml:20: fields.items.measure: expected a measure such as `count()` or `sum(quantity)`, found a list"
        ]
    );
    let both = ORDER_CACHE.replace(
        "    fields:\n      sku",
        "    measure: count()\n    fields:\n      sku",
    );
    assert_eq!(
        errors_of(&both),
        [
            "views/test.yaml:20: fields.items.measure: give either `fields:` (the rows' fields) or `measure:` (one value over the rows, such as `count()`), not both"
        ]
    );
    let on_one = ORDER_CACHE.replace(
        "fields: { id: id, name: name, email: email }",
        "measure: count()",
    );
    assert_eq!(
        errors_of(&on_one),
        [
            "views/test.yaml:15: fields.customer.measure: `measure` is only allowed on a `many` relation: a `one` relation is a single object"
        ]
    );
    let neither = ORDER_CACHE.replace("fields: { id: id, name: name, email: email }", "");
    assert_eq!(
        errors_of(&neither),
        [
            "views/test.yaml:12: fields.customer: missing required key `fields` (or `hidden: true`, \
          for a relation that `where` and computed fields read through its path)"
        ]
    );
}

/// `hidden: true` keeps a `one` relation out of the document, for `where`
/// and computed fields to read through (`customer.email`); it needs no
/// `fields:`, and a `many` relation cannot be hidden.
#[test]
fn a_one_relation_may_be_hidden() {
    let hidden = ORDER_CACHE.replace(
        "fields: { id: id, name: name, email: email }",
        "hidden: true",
    );
    let view = parse_view(Path::new("views/test.yaml"), &hidden)
        .unwrap_or_else(|errors| panic!("{errors:#?}"));
    let ViewKind::Cache(cache) = &view.kind else {
        panic!("expected a cache view");
    };
    let customer = cache.fields.iter().find(|field| field.name == "customer");
    match customer.map(|field| &field.source) {
        Some(FieldSource::Relation(relation)) => {
            assert!(
                relation.hidden && relation.fields.is_empty(),
                "{relation:?}"
            )
        }
        other => panic!("expected the customer relation, got {other:?}"),
    }
    assert_eq!(
        errors_of(&with_items_key("hidden: true")),
        [
            "views/test.yaml:20: fields.items.hidden: `hidden` is only for a `one` relation, read \
             by `where` and computed fields (`customer.email`): a `many` relation's rows are read \
             by its own fields only"
        ]
    );
    assert_eq!(
        errors_of(&with_items_key("hidden: yes")),
        ["views/test.yaml:20: fields.items.hidden: expected `true` or `false`, found text \"yes\""]
    );
}

#[test]
fn unknown_kinds_are_refused_without_other_noise() {
    let text = "view: category_daily_sales\nkind: rollup\nroot: order_items\n";
    assert_eq!(
        errors_of(text),
        [
            "views/test.yaml:2: kind: unknown kind `rollup`; expected one of: cache, search, aggregate"
        ]
    );
}

#[test]
fn an_empty_file_is_an_error() {
    assert_eq!(
        errors_of("# nothing here\n"),
        ["views/test.yaml: the file holds no view definition"]
    );
}

#[test]
fn yaml_keys_like_on_and_yes_stay_text() {
    let text = ORDER_CACHE.replace("status: status", "status: yes");
    let view = parse(&text);
    let ViewKind::Cache(cache) = &view.kind else {
        panic!("expected a cache view");
    };
    assert!(matches!(&cache.fields[1].source, FieldSource::Column(c) if c == "yes"));
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn duplicate_view_names_across_files_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", ORDER_CACHE);
    write(dir.path(), "b.yml", ORDER_CACHE);
    let errors = load_views(dir.path()).unwrap_err();
    assert_eq!(errors.0.len(), 2, "{errors}");
    for (error, (file, other)) in errors
        .0
        .iter()
        .zip([("a.yaml", "b.yml"), ("b.yml", "a.yaml")])
    {
        assert_eq!(error.file, dir.path().join(file));
        assert_eq!(error.line, Some(2));
        assert_eq!(error.field, "view");
        assert!(
            error
                .message
                .contains(&dir.path().join(other).display().to_string()),
            "{error}"
        );
    }
}

#[test]
fn errors_of_all_files_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &ORDER_CACHE.replace("root: orders\n", ""),
    );
    write(dir.path(), "b.yaml", "view: [\n");
    write(dir.path(), "c.yaml", ORDER_CACHE);
    write(dir.path(), "notes.txt", "not a view");
    let errors = load_views(dir.path()).unwrap_err();
    let text = errors.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with("a.yaml:2: root: missing required key `root`"),
        "{text}"
    );
    assert!(lines[1].contains("b.yaml:1: invalid YAML:"), "{text}");
}

/// JSON in an unquoted expression is a YAML error whose words do not say
/// why; the message says what to write.
#[test]
fn json_in_an_unquoted_expression_names_the_quoting() {
    let dir = tempfile::tempdir().unwrap();
    let view = ORDER_CACHE.replace(
        "root: orders\n",
        "root: orders\nwhere: doc @> '{\"tier\": \"gold\"}'\n",
    );
    write(dir.path(), "a.yaml", &view);
    let text = load_views(dir.path()).unwrap_err().to_string();
    assert!(text.contains("a.yaml:"), "{text}");
    assert!(text.contains("after `>-`"), "{text}");
    // The same parser message for a key indented under a plain value says
    // that cause too (trial 26: the quoting hint alone misled).
    let indented = ORDER_CACHE.replace("root: orders\n", "root: orders\n  where: \"id > 1\"\n");
    write(dir.path(), "a.yaml", &indented);
    let text = load_views(dir.path()).unwrap_err().to_string();
    assert!(
        text.contains("indented deeper than the key before it"),
        "{text}"
    );
}

/// ` #>` starts a YAML comment: an unquoted `doc #>> '{tier}' = 'gold'`
/// would arrive as `doc`, so it is refused with its line; quoted, or
/// after `>-`, it is read whole.
#[test]
fn a_path_operator_that_yaml_reads_as_a_comment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let with_where =
        |clause: &str| ORDER_CACHE.replace("root: orders\n", &format!("root: orders\n{clause}\n"));
    write(
        dir.path(),
        "a.yaml",
        &with_where("where: doc #>> '{tier}' = 'gold'"),
    );
    let text = load_views(dir.path()).unwrap_err().to_string();
    let line = ORDER_CACHE
        .lines()
        .position(|l| l == "root: orders")
        .unwrap()
        + 2;
    assert!(text.contains(&format!("a.yaml:{line}: ")), "{text}");
    assert!(text.contains("ends before `#>`"), "{text}");

    for quoted in [
        "where: \"doc #>> '{tier}' = 'gold'\"  # a comment",
        "where: >-\n  doc #>> '{tier}' = 'gold'",
        "where: status = 'paid'  # #> in a comment after a value",
    ] {
        let node = parse_yaml(Path::new("a.yaml"), &with_where(quoted));
        assert!(node.is_ok(), "{quoted}: {node:?}");
    }
}

#[test]
fn loads_views_in_file_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.yaml", ORDER_CACHE);
    write(
        dir.path(),
        "a.yaml",
        &ORDER_CACHE.replace("view: order_cache", "view: first"),
    );
    let views = load_views(dir.path()).unwrap();
    let names: Vec<&str> = views.iter().map(|view| view.name.as_str()).collect();
    assert_eq!(names, ["first", "order_cache"]);
}

#[test]
fn an_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let errors = load_views(dir.path()).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert!(errors.0[0].message.contains("no view files"), "{errors}");
}

#[test]
fn a_broken_relation_is_not_reported_again_by_where() {
    let text = ORDER_CACHE
        .replace("status <> 'draft'", "customer.email is not null")
        .replace("one: customers", "one: customers\n    many: customers");
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains(":12: fields.customer: give either"),
        "{errors:#?}"
    );
}

/// A relation without `fields` is told at the relation's path (the twelfth
/// trial read `fields.customer.fields: missing required key `fields`` as a
/// doubled path).
#[test]
fn a_relation_without_fields_is_told_at_the_relation() {
    let text = ORDER_CACHE.replace("    fields: { id: id, name: name, email: email }\n", "");
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:12: fields.customer: missing required key `fields` (or `hidden: true`, \
          for a relation that `where` and computed fields read through its path)"
        ]
    );
}

/// A relative views directory that does not read is named with the path
/// tried: it is the working directory's, not the config file's.
#[test]
fn a_missing_relative_views_directory_names_the_path_tried() {
    let errors = load_views(Path::new("no-such-views-dir")).expect_err("refused");
    let message = errors.to_string();
    let tried = std::env::current_dir().unwrap().join("no-such-views-dir");
    assert!(
        message.contains(&format!(
            "cannot read the views directory {} (a relative path is read from the working \
             directory, not from the config file's)",
            tried.display()
        )),
        "{message}"
    );
}
