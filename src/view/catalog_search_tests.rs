//! Tests of the catalog check of search views, with a hand-built catalog of
//! the example shop whose columns have their real PostgreSQL type OIDs.

use std::path::Path;

use crate::view::{Catalog, ColumnInfo, TableInfo, check_against_catalog, parse_view};

const PRODUCT_SEARCH: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/views/product_search.yaml"
));

const INT8: u32 = 20;
const TEXT: u32 = 25;
const NUMERIC: u32 = 1700;
const BOOL: u32 = 16;
const TIMESTAMPTZ: u32 = 1184;
const TEXT_ARRAY: u32 = 1009;
const INT8_ARRAY: u32 = 1016;
const NUMERIC_ARRAY: u32 = 1231;

fn table(columns: &[(&str, u32)], primary_key: &[&str]) -> TableInfo {
    TableInfo {
        columns: columns
            .iter()
            .map(|(name, type_oid)| ColumnInfo {
                name: (*name).to_owned(),
                type_oid: *type_oid,
                type_modifier: -1,
                not_null: false,
                is_enum: false,
                array_element: None,
                type_name: pg_type_name(*type_oid),
            })
            .collect(),
        primary_key: primary_key.iter().map(|name| (*name).to_owned()).collect(),
        unique_keys: Vec::new(),
    }
}

/// `products` and `categories` of `schemas/shop.sql`, with a few more
/// columns of other types.
fn shop() -> Catalog {
    let products = table(
        &[
            ("id", INT8),
            ("category_id", INT8),
            ("name", TEXT),
            ("description", TEXT),
            ("price_cents", INT8),
            ("weight_kg", NUMERIC),
            ("in_stock", BOOL),
            ("updated_at", TIMESTAMPTZ),
            ("sku", TEXT),
        ],
        &["id"],
    );
    let categories = table(
        &[("id", INT8), ("name", TEXT), ("parent_id", INT8)],
        &["id"],
    );
    let mut catalog = Catalog::default();
    catalog.tables.insert("public.products".into(), products);
    catalog
        .tables
        .insert("public.categories".into(), categories);
    catalog
}

fn check(text: &str, catalog: &Catalog) -> Vec<String> {
    let view = parse_view(Path::new("views/product_search.yaml"), text).expect("the view parses");
    check_against_catalog(&[view], catalog)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The example with `lines` added at the end of its `fields:`.
fn with_fields(lines: &str) -> String {
    PRODUCT_SEARCH.replace("joins:\n", &format!("{lines}joins:\n"))
}

fn set_column_type(catalog: &mut Catalog, table: &str, column: &str, type_oid: u32) {
    let table = catalog.tables.get_mut(table).expect("a shop table");
    let info = table.columns.iter_mut().find(|info| info.name == column);
    let info = info.expect("a shop column");
    info.type_oid = type_oid;
    info.type_name = pg_type_name(type_oid);
    info.array_element = match type_oid {
        TEXT_ARRAY => Some(TEXT),
        INT8_ARRAY => Some(INT8),
        NUMERIC_ARRAY => Some(NUMERIC),
        _ => None,
    };
}

/// The type as PostgreSQL's `format_type` writes it.
fn pg_type_name(type_oid: u32) -> String {
    match type_oid {
        INT8 => "bigint",
        TEXT => "text",
        NUMERIC => "numeric",
        BOOL => "boolean",
        TIMESTAMPTZ => "timestamp with time zone",
        TEXT_ARRAY => "text[]",
        INT8_ARRAY => "bigint[]",
        NUMERIC_ARRAY => "numeric[]",
        other => panic!("no name for type {other}"),
    }
    .to_owned()
}

#[test]
fn the_example_view_matches_the_shop_schema() {
    assert_eq!(check(PRODUCT_SEARCH, &shop()), Vec::<String>::new());
}

#[test]
fn unknown_tables_are_reported_without_cascading_column_errors() {
    let text = PRODUCT_SEARCH.replace("root: products", "root: produkts");
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/product_search.yaml:4: root: table "produkts" does not exist; did you mean "products"?"#
        ]
    );
    let text = PRODUCT_SEARCH.replace("one: categories", "one: catalog.categories");
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/product_search.yaml:12: joins.category.one: table "catalog.categories" does not exist"#
        ]
    );
}

#[test]
fn root_and_joined_tables_need_a_primary_key() {
    let mut catalog = shop();
    for table in catalog.tables.values_mut() {
        table.primary_key.clear();
    }
    assert_eq!(
        check(PRODUCT_SEARCH, &catalog),
        [
            "views/product_search.yaml:4: root: table products has no primary key",
            "views/product_search.yaml:12: joins.category.one: table categories has no primary key",
        ]
    );
}

#[test]
fn every_column_is_checked_in_its_own_table() {
    let text = with_fields("  parent: { from: parent.name, type: keyword }\n")
        .replace("id: id\n", "id: idd\nwhere: \"category.nam <> 'x'\"\n")
        .replace("from: description", "from: descr")
        .replace("on: { id: category_id }", "on: { idd: category_idd }")
        + "  parent: { one: categories, on: { id: category.parent } }\n";
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/product_search.yaml:5: id: column "idd" does not exist in table products; did you mean "id"?"#,
            r#"views/product_search.yaml:6: where: column "nam" does not exist in table categories; did you mean "name"?"#,
            r#"views/product_search.yaml:9: fields.description.from: column "descr" does not exist in table products"#,
            r#"views/product_search.yaml:14: joins.category.on: column "category_idd" does not exist in table products; did you mean "category_id"?"#,
            r#"views/product_search.yaml:14: joins.category.on: column "idd" does not exist in table categories; did you mean "id"?"#,
            r#"views/product_search.yaml:15: joins.parent.on: column "parent" does not exist in table categories"#,
        ]
    );
}

/// `id` names one root row: the single-column primary key, or a unique
/// column that is NOT NULL (trial 36: a product's `sku`).
#[test]
fn id_is_the_primary_key_or_a_unique_not_null_column() {
    let text = PRODUCT_SEARCH.replace("id: id\n", "id: sku\n");
    assert_eq!(
        check(&text, &shop()),
        [
            "views/product_search.yaml:5: id: `sku` is neither the primary key of table \
             products (`id`) nor a unique key of its own: a search view's `id` names one row"
        ]
    );
    let mut catalog = shop();
    let products = catalog.tables.get_mut("public.products").expect("products");
    products.unique_keys = vec![["sku".to_owned()].into()];
    assert_eq!(
        check(&text, &catalog),
        [
            "views/product_search.yaml:5: id: `sku` is a unique key of table products but may \
             be NULL, and every NULL would be one id: make it NOT NULL, or use the primary key"
        ]
    );
    let products = catalog.tables.get_mut("public.products").expect("products");
    let sku = products
        .columns
        .iter_mut()
        .find(|c| c.name == "sku")
        .expect("sku");
    sku.not_null = true;
    assert_eq!(check(&text, &catalog), Vec::<String>::new());
    // A unique key of several columns names no row by one of them.
    let products = catalog.tables.get_mut("public.products").expect("products");
    products.unique_keys = vec![["sku".to_owned(), "name".to_owned()].into()];
    assert_eq!(check(&text, &catalog).len(), 1);

    let mut catalog = shop();
    let products = catalog.tables.get_mut("public.products").expect("products");
    products.primary_key = vec!["id".into(), "sku".into()];
    assert_eq!(
        check(PRODUCT_SEARCH, &catalog),
        [
            "views/product_search.yaml:5: id: search views need a single-column key as `id` \
             (the primary key, or a unique NOT NULL column), but table products has the \
             composite primary key (id, sku) and no unique `id`"
        ]
    );
}

#[test]
fn field_types_fit_the_column_types() {
    let fitting = with_fields(
        "  weight: { from: weight_kg, type: f64 }\n  \
         price: { from: price_cents, type: f64 }\n  \
         in_stock: { from: in_stock, type: bool }\n  \
         updated: { from: updated_at, type: date }\n  \
         category_id: { from: category_id, type: keyword }\n",
    );
    assert_eq!(check(&fitting, &shop()), Vec::<String>::new());

    let mut catalog = shop();
    set_column_type(&mut catalog, "public.products", "price_cents", TEXT);
    assert_eq!(
        check(PRODUCT_SEARCH, &catalog),
        [
            "views/product_search.yaml:10: fields.price_cents.type: i64 needs an integer column, \
             but products.price_cents is text"
        ]
    );

    let misfits = with_fields(
        "  weight: { from: weight_kg, type: i64 }\n  \
         in_stock: { from: category.id, type: bool }\n  \
         updated: { from: name, type: date }\n  \
         ratio: { from: category.name, type: f64 }\n",
    );
    assert_eq!(
        check(&misfits, &shop()),
        [
            "views/product_search.yaml:11: fields.weight.type: i64 needs an integer column, but \
             products.weight_kg is numeric",
            "views/product_search.yaml:12: fields.in_stock.type: bool needs a boolean column, but \
             categories.id is bigint",
            "views/product_search.yaml:13: fields.updated.type: date needs a date, timestamp or \
             timestamptz column, but products.name is text",
            "views/product_search.yaml:14: fields.ratio.type: f64 needs a numeric column (integer, \
             float or numeric), but categories.name is text",
        ]
    );
    // An array is named as such (trial 10: text[] read as text).
    set_column_type(&mut catalog, "public.products", "price_cents", TEXT_ARRAY);
    assert_eq!(
        check(PRODUCT_SEARCH, &catalog),
        [
            "views/product_search.yaml:10: fields.price_cents.type: i64 needs an integer column, \
             but products.price_cents is text[]"
        ]
    );
    // An array's elements are the field's values.
    set_column_type(&mut catalog, "public.products", "price_cents", INT8_ARRAY);
    assert_eq!(check(PRODUCT_SEARCH, &catalog), Vec::<String>::new());
}

#[test]
fn where_is_type_checked_through_the_joins() {
    let with_where = |filter: &str| {
        PRODUCT_SEARCH.replace("id: id\n", &format!("id: id\nwhere: \"{filter}\"\n"))
    };
    let fine = with_where("in_stock AND category.name <> 'hidden' AND updated_at >= '2026-01-01'");
    assert_eq!(check(&fine, &shop()), Vec::<String>::new());
    assert_eq!(
        check(&with_where("price_cents + 1"), &shop()),
        [
            "views/product_search.yaml:6: where: must be a boolean condition, but \
             `price_cents + 1` is int"
        ]
    );
    let errors = check(&with_where("category.name > 5"), &shop());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("views/product_search.yaml:6: where: "),
        "{errors:?}"
    );
}

/// A computed field is checked as `where` is: its columns exist, and its
/// type fits the field's.
#[test]
fn a_computed_field_is_type_checked() {
    let fine = with_fields(
        "  label: { from: \"upper(name) || ' ' || coalesce(category.name, '')\", type: text }\n  \
         doubled: { from: \"price_cents * 2\", type: i64, fast: true }\n",
    );
    assert_eq!(check(&fine, &shop()), Vec::<String>::new());
    let wrong = with_fields(
        "  label: { from: \"upper(name)\", type: i64 }\n  \
         gone: { from: \"lower(category.nme)\", type: text }\n",
    );
    assert_eq!(
        check(&wrong, &shop()),
        [
            "views/product_search.yaml:11: fields.label.type: i64 needs an integer, but \
             `upper(name)` is text",
            "views/product_search.yaml:12: fields.gone.from: column \"nme\" does not exist in \
             table categories; did you mean \"name\"?",
        ]
    );
    // An array expressions read as its text is named as such (trial 33).
    let mut catalog = shop();
    set_column_type(
        &mut catalog,
        "public.products",
        "price_cents",
        NUMERIC_ARRAY,
    );
    let counted = with_fields("  sizes: { from: \"cardinality(price_cents)\", type: i64 }\n");
    let errors = check(&counted, &catalog);
    let cardinality = errors
        .iter()
        .find(|e| e.contains("cardinality expects an array"));
    assert!(
        cardinality.is_some_and(|error| error.contains(
            "`price_cents` is numeric[], which expressions read as its text: only arrays \
                 of booleans, integers, text, uuids and dates are arrays to them"
        )),
        "{errors:?}"
    );
}
