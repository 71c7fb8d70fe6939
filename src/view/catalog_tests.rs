//! Tests of the catalog check with a hand-built catalog of the example shop.

use std::path::Path;

use super::*;
use crate::view::parse_view;

const ORDER_CACHE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/views/order_cache.yaml"
));

fn table(columns: &[&str], primary_key: &[&str]) -> TableInfo {
    TableInfo {
        columns: columns
            .iter()
            .map(|name| ColumnInfo {
                name: (*name).to_owned(),
                type_oid: 25, // text
                type_modifier: -1,
                not_null: false,
                is_enum: false,
                array_element: None,
                type_name: "text".to_owned(),
            })
            .collect(),
        primary_key: primary_key.iter().map(|name| (*name).to_owned()).collect(),
        unique_keys: Vec::new(),
    }
}

fn shop() -> Catalog {
    let mut catalog = Catalog::default();
    let mut add = |name: &str, info: TableInfo| {
        catalog.tables.insert(name.to_owned(), info);
    };
    add(
        "public.orders",
        table(
            &["id", "customer_id", "status", "total_cents", "created_at"],
            &["id"],
        ),
    );
    add("public.customers", table(&["id", "name", "email"], &["id"]));
    add(
        "public.order_items",
        table(
            &["id", "order_id", "product_id", "sku", "quantity"],
            &["id"],
        ),
    );
    add(
        "public.products",
        table(&["id", "name", "price_cents"], &["id"]),
    );
    catalog
}

/// The catalog errors of the example view edited by `edit`, as displayed.
fn check(text: &str, catalog: &Catalog) -> Vec<String> {
    let view = parse_view(Path::new("views/order_cache.yaml"), text).expect("the view parses");
    check_against_catalog(&[view], catalog)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_example_view_matches_the_shop_schema() {
    assert_eq!(check(ORDER_CACHE, &shop()), Vec::<String>::new());
}

#[test]
fn an_unknown_column_in_on_names_file_line_field_and_table() {
    let text = ORDER_CACHE.replace("{ id: customer_id }", "{ id: customer_idd }");
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/order_cache.yaml:14: fields.customer.on: column "customer_idd" does not exist in table orders; did you mean "customer_id"?"#
        ]
    );
}

#[test]
fn the_joined_side_of_on_is_checked_in_the_joined_table() {
    let text = ORDER_CACHE.replace("{ order_id: id }", "{ orderid: id }");
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/order_cache.yaml:18: fields.items.on: column "orderid" does not exist in table order_items; did you mean "order_id"?"#
        ]
    );
}

/// A pair written the other way round is said to be so, once, with the
/// pair to write: it used to be two missing columns without a hint (trial 9).
#[test]
fn a_pair_the_wrong_way_round_is_named_as_such() {
    let text = ORDER_CACHE.replace("{ order_id: id }", "{ id: order_id }");
    assert_eq!(
        check(&text, &shop()),
        [
            "views/order_cache.yaml:18: fields.items.on: the pair is the wrong way round: `on` \
             maps a column of the joined table order_items to a column of orders, so write \
             { order_id: id }"
        ]
    );
}

/// A name that exists in another case gets a hint: view fields match names
/// exactly, and expressions fold unquoted ones to lower case.
#[test]
fn a_name_in_another_case_is_named_in_a_hint() {
    let mut catalog = shop();
    catalog.tables.insert(
        "public.Customers".to_owned(),
        table(&["id", "name", "eMail"], &["id"]),
    );
    catalog.tables.remove("public.customers");
    let hint = |name: &str| {
        format!(
            "; did you mean \"{name}\"? Names match exactly; an expression folds an unquoted \
             name to lower case, so write it there in double quotes"
        )
    };
    assert_eq!(
        check(ORDER_CACHE, &catalog),
        [format!(
            "views/order_cache.yaml:13: fields.customer.one: table \"customers\" does not exist{}",
            hint("Customers")
        )]
    );
    let text = ORDER_CACHE.replace("one: customers", "one: \"Customers\"");
    assert_eq!(
        check(&text, &catalog),
        [format!(
            "views/order_cache.yaml:15: fields.customer.fields.email: column \"email\" does not \
             exist in table Customers{}",
            hint("eMail")
        )]
    );
}

#[test]
fn unknown_tables_are_reported_without_cascading_column_errors() {
    let text = ORDER_CACHE
        .replace("root: orders", "root: orderz")
        .replace("one: customers", "one: clients");
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/order_cache.yaml:4: root: table "orderz" does not exist; did you mean "orders"?"#
        ]
    );
    let text = ORDER_CACHE.replace("one: customers", "one: crm.clients");
    assert_eq!(
        check(&text, &shop()),
        [r#"views/order_cache.yaml:13: fields.customer.one: table "crm.clients" does not exist"#]
    );
}

#[test]
fn root_and_joined_tables_need_a_primary_key() {
    let mut catalog = shop();
    catalog
        .tables
        .get_mut("public.customers")
        .unwrap()
        .primary_key
        .clear();
    catalog
        .tables
        .get_mut("public.orders")
        .unwrap()
        .primary_key
        .clear();
    assert_eq!(
        check(ORDER_CACHE, &catalog),
        [
            "views/order_cache.yaml:4: root: table orders has no primary key",
            "views/order_cache.yaml:13: fields.customer.one: table customers has no primary key",
        ]
    );
}

#[test]
fn the_key_template_must_cover_the_root_primary_key() {
    let text = ORDER_CACHE.replace("order:{id}", "order:{customer_id}");
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/order_cache.yaml:5: key: key template must include every primary key column of table orders, missing "id" (or every column of a unique key whose columns are NOT NULL): otherwise two rows could get the same key"#
        ]
    );
    let mut catalog = shop();
    catalog.tables.get_mut("public.orders").unwrap().primary_key =
        vec!["id".into(), "customer_id".into()];
    let text = ORDER_CACHE.replace("order:{id}", "order:{id}:{customer_id}");
    assert_eq!(check(&text, &catalog), Vec::<String>::new());
}

/// A unique key names one row as the primary key does, once its columns
/// are NOT NULL (NULLs are not equal to each other, and render as nothing).
#[test]
fn the_key_template_may_cover_a_unique_not_null_key_instead() {
    let text = ORDER_CACHE.replace("order:{id}", "order:{customer_id}");
    let mut catalog = shop();
    let orders = catalog.tables.get_mut("public.orders").unwrap();
    orders.unique_keys = vec![["customer_id".to_owned()].into(), ["id".to_owned()].into()];
    assert_eq!(
        check(&text, &catalog),
        [
            r#"views/order_cache.yaml:5: key: key template must include every primary key column of table orders, missing "id" (or every column of a unique key whose columns are NOT NULL): otherwise two rows could get the same key; "customer_id" is of a unique key but may be NULL, and every NULL renders the same key: make it NOT NULL"#
        ]
    );
    let orders = catalog.tables.get_mut("public.orders").unwrap();
    for column in orders
        .columns
        .iter_mut()
        .filter(|c| c.name == "customer_id")
    {
        column.not_null = true;
    }
    assert_eq!(check(&text, &catalog), Vec::<String>::new());
}

#[test]
fn key_template_columns_must_exist() {
    let text = ORDER_CACHE.replace("order:{id}", "order:{id}:{tenant}");
    assert_eq!(
        check(&text, &shop()),
        [r#"views/order_cache.yaml:5: key: column "tenant" does not exist in table orders"#]
    );
}

#[test]
fn where_columns_are_checked_in_the_table_of_their_relation() {
    let text = ORDER_CACHE.replace(
        "status <> 'draft'",
        "statuz <> 'draft' and customer.emial is not null",
    );
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/order_cache.yaml:6: where: column "statuz" does not exist in table orders; did you mean "status"?"#,
            r#"views/order_cache.yaml:6: where: column "emial" does not exist in table customers; did you mean "email"?"#,
        ]
    );
}

#[test]
fn field_and_order_by_columns_are_checked_at_every_depth() {
    let text = ORDER_CACHE
        .replace("order_by: id", "order_by: position")
        .replace("fields: { name: name } }", "fields: { name: title } }");
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/order_cache.yaml:19: fields.items.order_by: column "position" does not exist in table order_items"#,
            r#"views/order_cache.yaml:23: fields.items.fields.product.fields.name: column "title" does not exist in table products"#,
        ]
    );
}

/// An array ordered by a column whose text sorts otherwise than its
/// values (an enum, an interval) would list its items out of order.
#[test]
fn order_by_refuses_types_that_would_sort_by_their_text() {
    let mut catalog = shop();
    let mut add_column = |table: &str, name: &str, type_oid: u32, type_name: &str| {
        let table = catalog.tables.get_mut(table).expect("a shop table");
        table.columns.push(ColumnInfo {
            name: name.to_owned(),
            type_oid,
            type_modifier: -1,
            not_null: false,
            is_enum: false,
            array_element: None,
            type_name: type_name.to_owned(),
        });
    };
    add_column("public.order_items", "wait", 1186, "interval");
    add_column("public.orders", "lead_time", 1186, "interval");
    add_column("public.order_items", "options", 3802, "jsonb");
    let text = ORDER_CACHE.replace("order_by: id", "order_by: wait desc");
    assert_eq!(
        check(&text, &catalog),
        [
            r#"views/order_cache.yaml:19: fields.items.order_by: cannot order by column "wait": its type interval would be ordered by its text, not as PostgreSQL orders it"#
        ]
    );
    // A json column was passed, and its array came out in primary-key
    // order (trial 10).
    let text = ORDER_CACHE.replace("order_by: id", "order_by: options");
    assert_eq!(
        check(&text, &catalog),
        [
            r#"views/order_cache.yaml:19: fields.items.order_by: cannot order by column "options": viewkeeper does not order json values (PostgreSQL orders jsonb by kind, size and contents, and json not at all); order by another column"#
        ]
    );
    let text = ORDER_CACHE.replace("status <> 'draft'", "lead_time > '2 days'");
    assert_eq!(
        check(&text, &catalog),
        [
            "views/order_cache.yaml:6: where: cannot compare column lead_time as it stands (or through coalesce, nullif or CASE, which keep its type): its \
             type interval would be compared by its text, and PostgreSQL finds values of other \
             texts equal ('1 day' and '24 hours' in interval, 'A' and 'a' in citext); compare a \
             cast or function of it (lead_time::text)"
        ]
    );
}

#[test]
fn order_by_list_items_are_located_one_by_one() {
    let text = ORDER_CACHE.replace("order_by: id", "order_by:\n      - sku\n      - rank desc");
    assert_eq!(
        check(&text, &shop()),
        [
            r#"views/order_cache.yaml:21: fields.items.order_by: column "rank" does not exist in table order_items"#
        ]
    );
}

#[test]
fn where_is_type_checked_against_column_types() {
    let mut catalog = shop();
    let orders = catalog.tables.get_mut("public.orders").expect("orders");
    for column in &mut orders.columns {
        column.type_oid = match column.name.as_str() {
            "id" | "customer_id" | "total_cents" => 20,
            "created_at" => 1184,
            _ => 25,
        };
    }
    // The columns joined to the ids, of their type.
    retype(&mut catalog, "public.customers", "id", 20);
    retype(&mut catalog, "public.order_items", "order_id", 20);
    let compare_text_with_number =
        ORDER_CACHE.replace("where: \"status <> 'draft'\"", "where: \"status > 5\"");
    let errors = check(&compare_text_with_number, &catalog);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("views/order_cache.yaml:6: where: "),
        "{errors:?}"
    );

    // Each operand of AND and OR is checked alone: every mistake is said at
    // once (the second showed only once the first was fixed; trial 10).
    let two_mistakes = ORDER_CACHE.replace(
        "where: \"status <> 'draft'\"",
        "where: \"status > 5 AND (total_cents > 0 OR created_at > '2026-02-30')\"",
    );
    let errors = check(&two_mistakes, &catalog);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("`status > 5`"), "{errors:?}");
    assert!(errors[1].contains("2026-02 has no day 30"), "{errors:?}");
    // Beside a misspelt field: each is reported (the `where` was not, the
    // twelfth trial).
    let three_mistakes = two_mistakes.replace("  status: status", "  status: statu");
    let errors = check(&three_mistakes, &catalog);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("`status > 5`"), "{errors:?}");
    assert!(errors[2].contains("\"statu\" does not exist"), "{errors:?}");

    // A column that does not exist hides no type error beside it (it
    // did, the twenty-fifth trial).
    let unknown_beside = ORDER_CACHE.replace(
        "where: \"status <> 'draft'\"",
        "where: \"stat = 'paid' AND created_at > 5\"",
    );
    let errors = check(&unknown_beside, &catalog);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("\"stat\" does not exist"), "{errors:?}");
    assert!(errors[1].contains("`created_at > 5`"), "{errors:?}");

    let not_boolean =
        ORDER_CACHE.replace("where: \"status <> 'draft'\"", "where: \"total_cents + 1\"");
    assert_eq!(
        check(&not_boolean, &catalog),
        [
            "views/order_cache.yaml:6: where: must be a boolean condition, but `total_cents + 1` is int"
        ]
    );
    let fine = ORDER_CACHE.replace(
        "where: \"status <> 'draft'\"",
        "where: \"created_at >= '2026-01-01' AND total_cents > 100\"",
    );
    assert_eq!(check(&fine, &catalog), Vec::<String>::new());
}

#[test]
fn computed_fields_are_checked_as_where_is_at_their_level() {
    let mut catalog = shop();
    retype(&mut catalog, "public.order_items", "quantity", 23);
    retype(&mut catalog, "public.products", "price_cents", 20);
    let fine = ORDER_CACHE
        .replace(
            "sku: sku",
            "sku: sku\n      line_cents: \"quantity * product.price_cents\"",
        )
        .replace(
            "id: id\n  status",
            "id: id\n  who: \"upper(customer.name)\"\n  status",
        );
    assert_eq!(check(&fine, &catalog), Vec::<String>::new());

    let wrong = ORDER_CACHE
        .replace(
            "sku: sku",
            "sku: sku\n      line_cents: \"quantity * product.prise_cents\"",
        )
        .replace(
            "id: id\n  status",
            "id: id\n  who: \"upper(customer.name) + 1\"\n  status",
        );
    let errors = check(&wrong, &catalog);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("views/order_cache.yaml:9: fields.who: ")
            && errors[0].contains("`upper(customer.name) + 1`"),
        "{errors:?}"
    );
    assert_eq!(
        errors[1],
        "views/order_cache.yaml:23: fields.items.fields.line_cents: column \"prise_cents\" does \
         not exist in table products; did you mean \"price_cents\"?"
    );
}

#[test]
fn a_relation_where_is_a_condition_over_its_level() {
    let mut catalog = shop();
    retype(&mut catalog, "public.order_items", "quantity", 23);
    let with_where = |condition: &str| {
        ORDER_CACHE.replace(
            "    order_by: id\n",
            &format!("    order_by: id\n    where: \"{condition}\"\n"),
        )
    };
    assert_eq!(
        check(&with_where("quantity > 1 AND product.name <> ''"), &catalog),
        Vec::<String>::new()
    );
    assert_eq!(
        check(&with_where("quantity + 1"), &catalog),
        [
            "views/order_cache.yaml:20: fields.items.where: must be a boolean condition, but \
             `quantity + 1` is int"
        ]
    );
    assert_eq!(
        check(&with_where("product.nme <> ''"), &catalog),
        [
            "views/order_cache.yaml:20: fields.items.where: column \"nme\" does not exist in \
             table products; did you mean \"name\"?"
        ]
    );
}

#[test]
fn a_relation_measure_is_checked_over_the_relation_rows() {
    let mut catalog = shop();
    retype(&mut catalog, "public.order_items", "quantity", 23); // integer
    let fields = ORDER_CACHE
        .find("    fields:\n      sku")
        .expect("items' fields");
    let measured =
        |measure: &str| format!("{}    measure: \"{measure}\"\n", &ORDER_CACHE[..fields]);
    for fine in [
        "count()",
        "sum(quantity) FILTER (WHERE sku <> '')",
        "max(sku)",
    ] {
        assert_eq!(
            check(&measured(fine), &catalog),
            Vec::<String>::new(),
            "{fine}"
        );
    }
    assert_eq!(
        check(&measured("sum(sku)"), &catalog),
        [
            "views/order_cache.yaml:20: fields.items.measure: sum needs a numeric expression \
             (integer, float or numeric), but `sku` is text"
        ]
    );
    // `where` cannot read a measure, and says so (trial 28: "no such column").
    let filtered = measured("count()").replace("status <> 'draft'", "items > 0");
    assert_eq!(
        check(&filtered, &catalog),
        [
            "views/order_cache.yaml:6: where: `items` is a measure field of this level, which \
             `where` and computed fields cannot read: they read the rows' columns, and a measure \
             is a value of the document only"
        ]
    );
    assert_eq!(
        check(&measured("avg(quantty)"), &catalog),
        [
            "views/order_cache.yaml:20: fields.items.measure: column \"quantty\" does not exist \
             in table order_items; did you mean \"quantity\"?"
        ]
    );
}

/// Sets the type of `column` of `table` in `catalog`.
fn retype(catalog: &mut Catalog, table: &str, column: &str, type_oid: u32) {
    let info = catalog.tables.get_mut(table).expect("a shop table");
    let column = info.columns.iter_mut().find(|c| c.name == column);
    column.expect("a shop column").type_oid = type_oid;
}

/// A join of columns whose values viewkeeper cannot match (PostgreSQL
/// refuses `text = bigint`) names both columns and types; an integer joins
/// a numeric.
#[test]
fn join_columns_of_types_that_do_not_match_are_refused() {
    const TEXT: u32 = 25;
    const INT8: u32 = 20;
    const INT4: u32 = 23;
    const NUMERIC: u32 = 1700;
    let mut catalog = shop();
    retype(&mut catalog, "public.orders", "customer_id", TEXT);
    retype(&mut catalog, "public.customers", "id", INT8);
    assert_eq!(
        check(ORDER_CACHE, &catalog),
        vec![
            "views/order_cache.yaml:14: fields.customer.on: cannot join orders.customer_id (text) \
             to customers.id (int8): viewkeeper joins columns of one type, or integer columns \
             with numeric ones"
                .to_owned()
        ]
    );
    // Named by their SQL types: a uuid is not the text it is read as.
    retype(&mut catalog, "public.orders", "customer_id", 2950);
    let errors = check(ORDER_CACHE, &catalog);
    assert!(
        errors[0].contains("orders.customer_id (uuid) to customers.id (int8)"),
        "{errors:?}"
    );
    retype(&mut catalog, "public.orders", "customer_id", NUMERIC);
    retype(&mut catalog, "public.customers", "id", INT4);
    assert_eq!(check(ORDER_CACHE, &catalog), Vec::<String>::new());
    // Both held as text, but SQL has no `uuid = text` (the twelfth trial's
    // join passed); the string types compare with each other.
    retype(&mut catalog, "public.orders", "customer_id", 2950);
    retype(&mut catalog, "public.customers", "id", TEXT);
    let errors = check(ORDER_CACHE, &catalog);
    assert!(
        errors[0].contains("orders.customer_id (uuid) to customers.id (text)"),
        "{errors:?}"
    );
    const VARCHAR: u32 = 1043;
    retype(&mut catalog, "public.orders", "customer_id", VARCHAR);
    assert_eq!(check(ORDER_CACHE, &catalog), Vec::<String>::new());
}

/// `char` columns join when they have one length, whose padding both
/// sides' values share; of two lengths (or none), PostgreSQL matches
/// `'AB      '` with `'AB   '` and viewkeeper would not, so it is refused.
#[test]
fn char_columns_of_different_lengths_are_refused_as_join_columns() {
    const BPCHAR: u32 = 1042;
    let mut catalog = shop();
    let set_char = |catalog: &mut Catalog, table: &str, column: &str, length: Option<i32>| {
        retype(catalog, table, column, BPCHAR);
        let info = catalog.tables.get_mut(table).expect("a shop table");
        let info = info
            .columns
            .iter_mut()
            .find(|c| c.name == column)
            .expect("a column");
        info.type_modifier = length.map_or(-1, |n| n + 4);
        info.type_name = length.map_or("bpchar".to_owned(), |n| format!("character({n})"));
    };
    set_char(&mut catalog, "public.orders", "customer_id", Some(5));
    set_char(&mut catalog, "public.customers", "id", Some(5));
    assert_eq!(check(ORDER_CACHE, &catalog), Vec::<String>::new());
    set_char(&mut catalog, "public.orders", "customer_id", Some(8));
    let errors = check(ORDER_CACHE, &catalog);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(
            "fields.customer.on: cannot join orders.customer_id (character(8)) to \
             customers.id (character(5)): PostgreSQL compares char values without their padding"
        ),
        "{errors:?}"
    );
    set_char(&mut catalog, "public.orders", "customer_id", None);
    set_char(&mut catalog, "public.customers", "id", None);
    let errors = check(ORDER_CACHE, &catalog);
    assert!(
        errors[0].contains("(bpchar) to customers.id (bpchar)"),
        "{errors:?}"
    );
}

/// A second cache view whose key template may render the first's keys is
/// refused at its `key`, naming the first: the two would overwrite each
/// other's documents. A template with its own prefix passes.
#[test]
fn a_cache_view_whose_keys_may_be_another_views_is_refused() {
    let variant = |key: &str| {
        let text = ORDER_CACHE
            .replace("view: order_cache", "view: order_cache_v2")
            .replace("key: \"order:{id}\"", &format!("key: \"{key}\""));
        parse_view(Path::new("views/order_cache_v2.yaml"), &text).expect("the view parses")
    };
    let first = parse_view(Path::new("views/order_cache.yaml"), ORDER_CACHE).unwrap();
    let errors = |key: &str| -> Vec<String> {
        check_against_catalog(&[first.clone(), variant(key)], &shop())
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        errors("order:{id}:v2"),
        [
            "views/order_cache_v2.yaml:5: key: key template \"order:{id}:v2\" may render a key \
             of view order_cache (views/order_cache.yaml, key \"order:{id}\"): two views would \
             overwrite each other's documents; give each its own literal prefix"
        ]
    );
    assert_eq!(errors("order-v2:{id}"), Vec::<String>::new());
}

/// A text compared with an enum column must be one of its labels, as SQL
/// refuses any other: a typo matched nothing (the thirteenth trial), and a
/// label renamed under `status <> 'cancelled'` made it match every row.
#[test]
fn a_text_compared_with_an_enum_must_be_one_of_its_labels() {
    const STATUS: u32 = 90_001;
    let mut catalog = shop();
    retype(&mut catalog, "public.orders", "status", STATUS);
    let orders = catalog.tables.get_mut("public.orders").unwrap();
    let status = orders.columns.iter_mut().find(|c| c.name == "status");
    let status = status.unwrap();
    status.is_enum = true;
    status.type_name = "shop.status".to_owned();
    catalog
        .enum_labels
        .insert(STATUS, vec!["draft".to_owned(), "paid".to_owned()]);
    assert_eq!(check(ORDER_CACHE, &catalog), Vec::<String>::new());
    let typo = ORDER_CACHE.replace(
        "where: \"status <> 'draft'\"",
        "where: \"status IN ('paid', 'payed') OR 'drafted' = status OR status = ANY('{draft,bogus}')\"",
    );
    assert_eq!(
        check(&typo, &catalog),
        [
            "views/order_cache.yaml:6: where: 'payed' is not a label of shop.status, the enum of \
             column status: PostgreSQL refuses it (invalid input value for enum); its labels are \
             'draft', 'paid'",
            "views/order_cache.yaml:6: where: 'drafted' is not a label of shop.status, the enum of \
             column status: PostgreSQL refuses it (invalid input value for enum); its labels are \
             'draft', 'paid'",
            "views/order_cache.yaml:6: where: 'bogus' is not a label of shop.status, the enum of \
             column status: PostgreSQL refuses it (invalid input value for enum); its labels are \
             'draft', 'paid'"
        ]
    );
    // Inside a relation measure's `FILTER` too (trial 28: it passed).
    let items = ORDER_CACHE
        .find("    fields:\n      sku")
        .expect("items' fields");
    let measured = format!(
        "{}    measure: \"count() FILTER (WHERE sku = 'paid' OR 'payed' = sku)\"\n",
        &ORDER_CACHE[..items]
    );
    let order_items = catalog.tables.get_mut("public.order_items").unwrap();
    let sku = order_items.columns.iter_mut().find(|c| c.name == "sku");
    let sku = sku.unwrap();
    (sku.type_oid, sku.is_enum, sku.type_name) = (STATUS, true, "shop.status".to_owned());
    assert_eq!(
        check(&measured, &catalog),
        [
            "views/order_cache.yaml:20: fields.items.measure: 'payed' is not a label of \
             shop.status, the enum of column sku: PostgreSQL refuses it (invalid input value for \
             enum); its labels are 'draft', 'paid'"
        ]
    );
    // Ordered there by its labels' order (trial 31: it counted by the
    // labels' text, and ordering was refused since), but not with a value
    // of another type, nor in `greatest`.
    let ordered = measured.replace("sku = 'paid' OR 'payed' = sku", "sku > 'draft'");
    assert_eq!(check(&ordered, &catalog), Vec::<String>::new());
    for (condition, error) in [
        (
            "sku > sku::text",
            "cannot compare column sku of type shop.status for order with a value that is \
             neither one of its labels (a text literal) nor of its type",
        ),
        (
            "greatest(sku, 'paid') = 'paid'",
            "cannot order column sku in greatest, least or op ANY (array)",
        ),
    ] {
        let errors = check(
            &measured.replace("sku = 'paid' OR 'payed' = sku", condition),
            &catalog,
        );
        assert_eq!(errors.len(), 1, "{condition}: {errors:?}");
        assert!(errors[0].contains(error), "{errors:?}");
    }
    // A typo in a label compared for order, and a time that is no literal
    // viewkeeper reads: both told (the second was hidden by the first, the
    // twelfth trial).
    retype(&mut catalog, "public.orders", "created_at", 1184);
    let three = ORDER_CACHE.replace(
        "where: \"status <> 'draft'\"",
        "where: \"status > 'drafts' AND created_at > 'today'\"",
    );
    let errors = check(&three, &catalog);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("'drafts' is not a label"), "{errors:?}");
    assert!(errors[1].contains("'today'"), "{errors:?}");
    // A type error over an enum names the enum, which the checker reads as
    // text (trial 30: "cannot compare text with int" about an enum).
    let numbered = ORDER_CACHE.replace("where: \"status <> 'draft'\"", "where: \"status = 5\"");
    assert_eq!(
        check(&numbered, &catalog),
        [
            "views/order_cache.yaml:6: where: type error in `status = 5`: cannot compare text \
             with int (`status` is the enum shop.status: compare it with one of its labels, in \
             quotes)"
        ]
    );
    // A pattern is no label.
    let pattern = ORDER_CACHE.replace(
        "where: \"status <> 'draft'\"",
        "where: \"status::text LIKE 'dr%'\"",
    );
    assert_eq!(check(&pattern, &catalog), Vec::<String>::new());
}
