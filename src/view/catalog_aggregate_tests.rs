//! Tests of the catalog check of aggregate views, with a hand-built catalog
//! of the example shop whose columns have their real PostgreSQL type OIDs.

use std::path::Path;

use crate::view::aggregate::tests::CATEGORY_DAILY_SALES;
use crate::view::{Catalog, ColumnInfo, TableInfo, ViewDef, check_against_catalog, parse_view};

const INT4: u32 = 23;
const INT8: u32 = 20;
const TEXT: u32 = 25;
const NUMERIC: u32 = 1700;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const JSON: u32 = 114;
const JSONB: u32 = 3802;

fn table(columns: &[(&str, u32)]) -> TableInfo {
    TableInfo {
        columns: columns
            .iter()
            .map(|(name, type_oid)| column(name, *type_oid))
            .collect(),
        primary_key: vec!["id".to_owned()],
        unique_keys: Vec::new(),
    }
}

/// A nullable column of the enum type `type_name`.
fn enum_column(name: &str, type_oid: u32, type_name: &str) -> ColumnInfo {
    ColumnInfo {
        is_enum: true,
        array_element: None,
        type_name: type_name.to_owned(),
        ..column(name, type_oid)
    }
}

/// A nullable column of a type that is not an enum.
fn column(name: &str, type_oid: u32) -> ColumnInfo {
    // As PostgreSQL's `format_type` writes them.
    let type_name = match type_oid {
        INT4 => "integer",
        INT8 => "bigint",
        TEXT => "text",
        NUMERIC => "numeric",
        TIMESTAMP => "timestamp without time zone",
        TIMESTAMPTZ => "timestamp with time zone",
        JSON => "json",
        JSONB => "jsonb",
        1186 => "interval",
        _ => "an extension's type",
    }
    .to_owned();
    ColumnInfo {
        name: name.to_owned(),
        type_oid,
        type_modifier: -1,
        not_null: false,
        is_enum: false,
        array_element: None,
        type_name,
    }
}

/// `orders`, `order_items` and `products` of `schemas/shop.sql`, with a
/// numeric, a jsonb and a json column more.
fn shop() -> Catalog {
    let mut catalog = Catalog::default();
    let tables = [
        (
            "public.order_items",
            table(&[
                ("id", INT8),
                ("order_id", INT8),
                ("product_id", INT8),
                ("sku", TEXT),
                ("quantity", INT4),
                ("unit_price_cents", INT8),
                ("discount", NUMERIC),
                ("options", JSONB),
            ]),
        ),
        (
            "public.orders",
            table(&[
                ("id", INT8),
                ("customer_id", INT8),
                ("status", TEXT),
                ("total_cents", INT8),
                ("created_at", TIMESTAMPTZ),
                ("notes", JSON),
            ]),
        ),
        (
            "public.products",
            table(&[
                ("id", INT8),
                ("category_id", INT8),
                ("name", TEXT),
                ("description", TEXT),
                ("price_cents", INT8),
            ]),
        ),
    ];
    for (name, info) in tables {
        catalog.tables.insert(name.to_owned(), info);
    }
    catalog
}

fn view(file: &str, text: &str) -> ViewDef {
    parse_view(Path::new(file), text).expect("the view parses")
}

fn check_views(views: &[ViewDef], catalog: &Catalog) -> Vec<String> {
    check_against_catalog(views, catalog)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn check(text: &str, catalog: &Catalog) -> Vec<String> {
    check_views(&[view("views/sales.yaml", text)], catalog)
}

/// The example with `lines` added at the end of its `measures:`.
fn with_measures(lines: &str) -> String {
    CATEGORY_DAILY_SALES.replace("table:", &format!("{lines}table:"))
}

#[test]
fn the_design_example_matches_the_shop_schema() {
    assert_eq!(check(CATEGORY_DAILY_SALES, &shop()), Vec::<String>::new());
}

#[test]
fn tables_exist_with_primary_keys_and_columns_exist_in_their_own_table() {
    let text = CATEGORY_DAILY_SALES
        .replace("one: products", "one: produkts")
        .replace("on: { id: order_id }", "on: { idd: order_idd }")
        .replace("orders.status", "orders.state")
        .replace("sum(quantity)", "sum(qty)");
    let mut catalog = shop();
    catalog
        .tables
        .get_mut("public.order_items")
        .expect("order_items")
        .primary_key
        .clear();
    assert_eq!(
        check(&text, &catalog),
        [
            "views/sales.yaml:4: root: table order_items has no primary key",
            r#"views/sales.yaml:6: joins.orders.on: column "order_idd" does not exist in table order_items; did you mean "order_id"?"#,
            r#"views/sales.yaml:6: joins.orders.on: column "idd" does not exist in table orders; did you mean "id"?"#,
            r#"views/sales.yaml:7: joins.products.one: table "produkts" does not exist; did you mean "products"?"#,
            r#"views/sales.yaml:8: where: column "state" does not exist in table orders"#,
            r#"views/sales.yaml:14: measures.units: column "qty" does not exist in table order_items"#,
        ]
    );
}

#[test]
fn measures_need_arguments_that_fit_their_function() {
    let fitting = with_measures(
        "  discounts: sum(discount)\n  mean: avg(quantity * 1.5)\n  first_sku: min(sku)\n  \
         last_order: max(orders.created_at)\n  skus: count_distinct(sku)\n  \
         with_options: count(options)\n",
    );
    assert_eq!(check(&fitting, &shop()), Vec::<String>::new());

    let misfits = with_measures(
        "  total: sum(products.name)\n  mean: avg(orders.created_at)\n  \
         first: min(options)\n  kinds: count_distinct(options)\n  never: max(NULL)\n  \
         odd: sum(sku + 1)\n  flag: max(quantity > 1)\n",
    );
    assert_eq!(
        check(&misfits, &shop()),
        [
            "views/sales.yaml:18: measures.total: sum needs a numeric expression (integer, float \
             or numeric), but `products.name` is text",
            "views/sales.yaml:19: measures.mean: avg needs a numeric expression (integer, float \
             or numeric), but `orders.created_at` is timestamp with time zone",
            "views/sales.yaml:20: measures.first: min needs an orderable expression (any type but \
             json and boolean; for a boolean, max(x::int) is 1 when it holds for some row, \
             min(x::int) when for every row), but \
             `options` is jsonb",
            "views/sales.yaml:21: measures.kinds: count_distinct needs an expression with \
             equality (any type but json), but `options` is jsonb",
            "views/sales.yaml:22: measures.never: max needs an orderable expression (any type but \
             json and boolean; for a boolean, max(x::int) is 1 when it holds for some row, \
             min(x::int) when for every row), but \
             `NULL` is null",
            "views/sales.yaml:23: measures.odd: type error in `sku + 1`: cannot apply `+` to text and int",
            "views/sales.yaml:24: measures.flag: max needs an orderable expression (any type but \
             json and boolean; for a boolean, max(x::int) is 1 when it holds for some row, \
             min(x::int) when for every row), but \
             `quantity > 1` is bool",
        ]
    );
}

#[test]
fn group_keys_have_equality_and_a_type() {
    let text = CATEGORY_DAILY_SALES.replace(
        "  category_id: products.category_id\n",
        "  options: options\n  notes: orders.notes\n  nothing: \"null\"\n  odd: \"sku + 1\"\n",
    );
    assert_eq!(
        check(&text, &shop()),
        [
            "views/sales.yaml:11: group_by.options: cannot group by `options`: PostgreSQL groups \
             jsonb by value (`{\"n\": 1.0}` and `{\"n\": 1}` are one group), which grouping by its \
             text would not follow",
            "views/sales.yaml:12: group_by.notes: cannot group by `orders.notes`: json has no \
             equality in PostgreSQL",
            "views/sales.yaml:13: group_by.nothing: cannot group by `null`: it is always NULL, \
             so its column would have no type",
            "views/sales.yaml:14: group_by.odd: type error in `sku + 1`: cannot apply `+` to text and int",
        ]
    );
}

#[test]
fn where_is_a_boolean_condition() {
    let text = CATEGORY_DAILY_SALES.replace("orders.status = 'paid'", "orders.total_cents + 1");
    assert_eq!(
        check(&text, &shop()),
        [
            "views/sales.yaml:8: where: must be a boolean condition, but `orders.total_cents + 1` \
             is int"
        ]
    );
}

#[test]
fn the_target_table_is_read_by_no_view() {
    let into_root = CATEGORY_DAILY_SALES.replace(
        "table: analytics.category_daily_sales",
        "table: public.order_items",
    );
    assert_eq!(
        check(&into_root, &shop()),
        [
            "views/sales.yaml:18: table: table order_items is the root table of this view: an \
             aggregate view must write a table no view reads, or its own writes would feed back \
             into it"
        ]
    );
    let into_category =
        CATEGORY_DAILY_SALES.replace("table: analytics.category_daily_sales", "table: categories");
    let product_cache = "view: product_cache\nkind: cache\nroot: products\nkey: \"p:{id}\"\n\
                         fields:\n  id: id\n  category:\n    one: categories\n    \
                         on: { id: category_id }\n    fields: { name: name }\n";
    let mut catalog = shop();
    catalog.tables.insert(
        "public.categories".into(),
        table(&[("id", INT8), ("name", TEXT)]),
    );
    let views = [
        view("views/product_cache.yaml", product_cache),
        view("views/sales.yaml", &into_category),
    ];
    assert_eq!(
        check_views(&views, &catalog),
        [
            "views/sales.yaml:18: table: table categories is a joined table of view \
             `product_cache`: an aggregate view must write a table no view reads, or its own \
             writes would feed back into it"
        ]
    );
}

/// A table several views read is one message naming them all (trial 25:
/// one line a view).
#[test]
fn a_target_table_many_views_read_is_one_message() {
    let into_orders =
        CATEGORY_DAILY_SALES.replace("table: analytics.category_daily_sales", "table: orders");
    let order_cache = "view: order_cache\nkind: cache\nroot: orders\nkey: \"o:{id}\"\n\
                       fields: { id: id }\n";
    let views = [
        view("views/order_cache.yaml", order_cache),
        view("views/sales.yaml", &into_orders),
    ];
    assert_eq!(
        check_views(&views, &shop()),
        [
            "views/sales.yaml:18: table: table orders is the root table of view `order_cache`, \
             a joined table of this view: an aggregate view must write a table no view reads, \
             or its own writes would feed back into it"
        ]
    );
}

#[test]
fn two_aggregate_views_do_not_share_a_table() {
    let second = CATEGORY_DAILY_SALES.replace("view: category_daily_sales", "view: second");
    let views = [
        view("views/a.yaml", CATEGORY_DAILY_SALES),
        view("views/b.yaml", &second),
    ];
    assert_eq!(
        check_views(&views, &shop()),
        [
            "views/a.yaml:18: table: table analytics.category_daily_sales is also the table of \
             aggregate view `second` (views/b.yaml): each aggregate view needs a table of its own",
            "views/b.yaml:18: table: table analytics.category_daily_sales is also the table of \
             aggregate view `category_daily_sales` (views/a.yaml): each aggregate view needs a \
             table of its own"
        ]
    );
}

/// `min` and `max` of a type whose text sorts otherwise than its values
/// (`'10 days'` before `'2 days'`) are refused; of text and uuid they fit.
#[test]
fn min_and_max_refuse_types_that_would_sort_by_their_text() {
    const INTERVAL: u32 = 1186;
    const UUID: u32 = 2950;
    let mut catalog = shop();
    let items = catalog
        .tables
        .get_mut("public.order_items")
        .expect("order_items");
    for (name, type_oid) in [("wait", INTERVAL), ("batch", UUID)] {
        items.columns.push(column(name, type_oid));
    }
    items.columns.push(enum_column("mood", 16432, "shop.mood"));
    let text = with_measures(
        "  longest: max(wait)\n  first_batch: min(batch)\n  gladdest: max(mood)\n  \
         moods: sum(mood)\n  spelled: max(wait::text)\n  coalesced: min(coalesce(mood, 'x'))\n",
    );
    assert_eq!(
        check(&text, &catalog),
        [
            "views/sales.yaml:18: measures.longest: max cannot take `wait`: column wait is of \
             type interval, which would be ordered by its text, not as PostgreSQL orders it",
            // An enum's `max` orders by its labels' order (the plan's).
            "views/sales.yaml:21: measures.moods: sum needs a numeric expression (integer, float \
             or numeric), but `mood` is shop.mood, an enum (its values are the labels' text)",
        ]
    );
    // Compared in `where`, likewise, for order or equality ('1 day' is
    // '24 hours'); through a cast to text it is text.
    let text = CATEGORY_DAILY_SALES.replace(
        "orders.status = 'paid'",
        "orders.status = 'paid' AND wait::text = '1 day' AND NOT (wait BETWEEN '1 day' AND '2 days')",
    );
    assert_eq!(
        check(&text, &catalog),
        [
            "views/sales.yaml:8: where: cannot compare column wait as it stands (or through coalesce, nullif or CASE, which keep its type): its type \
             interval would be compared by its text, and PostgreSQL finds values of other texts \
             equal ('1 day' and '24 hours' in interval, 'A' and 'a' in citext); compare a cast \
             or function of it (wait::text)"
        ]
    );
    // `greatest` and `least` compare their arguments for order.
    let text = with_measures("  gladdest: max(greatest(mood, mood))\n");
    assert_eq!(
        check(&text, &catalog),
        [
            "views/sales.yaml:18: measures.gladdest: cannot order column mood in greatest, \
             least or op ANY (array): its type shop.mood, an enum, would be ordered by its text, \
             not by its labels' order; compare it with <, >, <=, >= or BETWEEN, which order an \
             enum by its labels"
        ]
    );
    let text = CATEGORY_DAILY_SALES.replace(
        "orders.status = 'paid'",
        "orders.status = 'paid' AND least(mood, mood) = 'x'",
    );
    let errors = check(&text, &catalog);
    assert!(
        errors.len() == 1 && errors[0].contains("where: ") && errors[0].contains("labels' order"),
        "{errors:?}"
    );
    // Ordered with `<` it compares by its labels' order, but only with an
    // enum of its own type.
    let items = catalog.tables.get_mut("public.order_items").unwrap();
    items.columns.push(enum_column("tone", 16433, "shop.tone"));
    let text = CATEGORY_DAILY_SALES.replace(
        "orders.status = 'paid'",
        "orders.status = 'paid' AND mood < tone",
    );
    assert_eq!(
        check(&text, &catalog),
        [
            "views/sales.yaml:8: where: cannot compare column mood (of type shop.mood) with \
             column tone (of type shop.tone) for order: PostgreSQL orders two enums of one type \
             only"
        ]
    );
    let text = CATEGORY_DAILY_SALES.replace(
        "orders.status = 'paid'",
        "orders.status = 'paid' AND mood < mood",
    );
    assert_eq!(check(&text, &catalog), Vec::<String>::new());
}

/// A type whose values may be equal with other texts (citext, here with the
/// OID an extension gets) is refused where it would be compared, grouped,
/// counted distinct or joined as it stands; trial 7 found `'A'` and `'a'`
/// in two groups, a filter matching none of 168 rows, and joins that missed.
/// An enum's text is one per value: it may be compared.
#[test]
fn types_equal_with_other_texts_are_refused_where_compared_as_they_stand() {
    const CITEXT: u32 = 16_390;
    const MOOD: u32 = 16_402;
    let mut catalog = shop();
    let items = catalog
        .tables
        .get_mut("public.order_items")
        .expect("order_items");
    items.columns.push(ColumnInfo {
        type_name: "citext".to_owned(),
        ..column("email", CITEXT)
    });
    items.columns.push(enum_column("mood", MOOD, "mood"));
    let citext = "citext";
    let text = with_measures("  emails: count_distinct(email)\n  moods: count_distinct(mood)\n")
        .replace(
            "orders.status = 'paid'",
            "orders.status = 'paid' AND email IN ('a@b.c') AND mood = 'glad'",
        )
        .replace("category_id: products.category_id", "category_id: email");
    assert_eq!(
        check(&text, &catalog),
        [
            format!(
                "views/sales.yaml:8: where: cannot compare column email as it stands (or through coalesce, nullif or CASE, which keep its type): its type \
                 {citext} would be compared by its text, and PostgreSQL finds values of other \
                 texts equal ('1 day' and '24 hours' in interval, 'A' and 'a' in citext); \
                 compare a cast or function of it (email::text, lower(email))"
            ),
            format!(
                "views/sales.yaml:11: group_by.category_id: cannot group by column email as it \
                 stands (or through coalesce, nullif or CASE, which keep its type): its type \
                 {citext} would be grouped by its text, and PostgreSQL finds \
                 values of other texts equal; group by a cast or function of it (email::text, \
                 lower(email))"
            ),
            format!(
                "views/sales.yaml:18: measures.emails: count_distinct cannot take column email \
                 as it stands (or through coalesce, nullif or CASE, which keep its type): its type {citext} would be counted by its text, and PostgreSQL \
                 finds values of other texts equal; count a cast or function of it \
                 (email::text, lower(email))"
            ),
        ]
    );
    // Through a function it is text, and text compares as PostgreSQL does.
    let text = with_measures("  emails: count_distinct(lower(email))\n")
        .replace(
            "orders.status = 'paid'",
            "orders.status = 'paid' AND lower(email) = 'a@b.c'",
        )
        .replace(
            "category_id: products.category_id",
            "category_id: lower(email)",
        );
    assert_eq!(check(&text, &catalog), Vec::<String>::new());
    // Through coalesce, nullif or CASE it is still citext in PostgreSQL.
    let text = with_measures(
        "  emails: count_distinct(CASE WHEN quantity > 1 THEN email ELSE 'none' END)\n",
    )
    .replace(
        "orders.status = 'paid'",
        "orders.status = 'paid' AND nullif(email, '') = 'a@b.c'",
    )
    .replace(
        "category_id: products.category_id",
        "category_id: coalesce(email, 'none')",
    );
    let refused: Vec<String> = check(&text, &catalog)
        .iter()
        .map(|error| error.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": "))
        .collect();
    assert_eq!(
        refused,
        [
            "views/sales.yaml:8: where",
            "views/sales.yaml:11: group_by.category_id",
            "views/sales.yaml:18: measures.emails",
        ]
    );
    // Joined on it: refused.
    catalog
        .tables
        .get_mut("public.orders")
        .expect("orders")
        .columns
        .push(column("email", CITEXT));
    let text = CATEGORY_DAILY_SALES.replace("{ id: order_id }", "{ email: email }");
    assert_eq!(
        check(&text, &catalog),
        [format!(
            "views/sales.yaml:6: joins.orders.on: cannot join on order_items.email: its type \
             {citext} would be matched by its text, and PostgreSQL finds values of other texts \
             equal ('1 day' and '24 hours' in interval, 'A' and 'a' in citext)"
        )]
    );
}

/// Outputs computed in one time zone are built again in another: the
/// database's zone, when not UTC, is part of the definition of a view that
/// computes with a timestamptz (`date(orders.created_at)`). Where the
/// database's zone is one viewkeeper does not know, `check` notes that the
/// view computes in UTC.
#[test]
fn the_time_zone_is_part_of_the_definition_of_views_computing_with_a_timestamptz() {
    use crate::commands::time_zone_notes;
    use crate::plan::Plan;

    let view = parse_view(Path::new("views/sales.yaml"), CATEGORY_DAILY_SALES)
        .unwrap_or_else(|errors| panic!("{errors:#?}"));
    let views = std::slice::from_ref(&view);
    let in_utc = Plan::build(views, &shop()).expect("a plan");
    // The table's layout follows, in every zone (the next test).
    let layout = in_utc.views[0]
        .definition_hash
        .strip_prefix(&view.definition_hash)
        .expect("the file's hash first");
    assert!(layout.starts_with("+table="), "{layout}");
    let in_new_york =
        crate::expr::in_zone("America/New_York", || Plan::build(views, &shop())).expect("a plan");
    assert_eq!(
        in_new_york.views[0].definition_hash,
        format!(
            "{}+time_zone=America/New_York{layout}",
            view.definition_hash
        )
    );

    assert_eq!(
        time_zone_notes(views, &in_new_york, "America/New_York"),
        vec![]
    );
    let notes = time_zone_notes(views, &in_utc, "Mars/Olympus_Mons");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        (notes[0].field.as_str(), notes[0].line),
        ("group_by.day", Some(10))
    );
    assert!(
        notes[0]
            .message
            .contains("orders.created_at in UTC: this database's TimeZone Mars/Olympus_Mons"),
        "{}",
        notes[0].message
    );

    // Over a timestamp, a computation depends on the zone only where it
    // makes a timestamptz (here a cast, compared with an instant).
    let mut catalog = shop();
    catalog
        .tables
        .get_mut("public.orders")
        .expect("orders")
        .columns
        .push(column("paid_at", TIMESTAMP));
    let over_timestamp = |filter: &str| {
        let text = CATEGORY_DAILY_SALES
            .replace("date(orders.created_at)", "date(orders.paid_at)")
            .replace("orders.status = 'paid'", filter);
        let view = parse_view(Path::new("views/sales.yaml"), &text)
            .unwrap_or_else(|errors| panic!("{errors:#?}"));
        let plan = crate::expr::in_zone("America/New_York", || {
            Plan::build(std::slice::from_ref(&view), &catalog)
        })
        .expect("a plan");
        let planned = &plan.views[0].definition_hash;
        let without_layout = planned.split("+table=").next().unwrap_or(planned);
        (view.definition_hash, without_layout.to_owned())
    };
    let (written, planned) = over_timestamp("orders.paid_at > '2024-01-01'");
    assert_eq!(planned, written);
    let (written, planned) =
        over_timestamp("orders.paid_at::timestamptz > '2024-01-01T00:00:00Z'::timestamptz");
    assert_eq!(planned, format!("{written}+time_zone=America/New_York"));

    // Whether a timestamptz is NULL does not depend on the zone (trial 35
    // found `closed_at IS NULL` listed as computing in the database's zone).
    let in_new_york = |filter: &str| {
        let text = CATEGORY_DAILY_SALES
            .replace("date(orders.created_at)", "orders.status")
            .replace("orders.status = 'paid'", filter);
        let view = parse_view(Path::new("views/sales.yaml"), &text)
            .unwrap_or_else(|errors| panic!("{errors:#?}"));
        crate::expr::in_zone("America/New_York", || {
            Plan::build(std::slice::from_ref(&view), &shop())
        })
        .expect("a plan")
        .zone_computations()
        .len()
    };
    assert_eq!(in_new_york("orders.created_at IS NOT NULL"), 0);
    assert_eq!(in_new_york("NOT (orders.created_at IS NULL)"), 0);
    assert_eq!(
        in_new_york("orders.created_at IS NULL OR date(orders.created_at) > '2024-01-01'"),
        1
    );
}

/// A bare NOT NULL root column as a group key makes the table's key a
/// primary key, also when quoted (`"checkIn"`, whose source is not its
/// name): it used to be taken as nullable, and the table got `UNIQUE NULLS
/// NOT DISTINCT` (trial 9).
#[test]
fn a_quoted_not_null_root_column_is_a_key_that_cannot_be_null() {
    use crate::plan::{OutputPlan, Plan};

    let mut catalog = Catalog::default();
    let not_null = |name: &str, type_oid| ColumnInfo {
        not_null: true,
        ..column(name, type_oid)
    };
    catalog.tables.insert(
        "public.stays".to_owned(),
        TableInfo {
            columns: vec![
                not_null("id", INT8),
                not_null("checkIn", 1082),
                column("room", INT8),
            ],
            primary_key: vec!["id".to_owned()],
            unique_keys: Vec::new(),
        },
    );
    let text = "view: stays_by_day\nkind: aggregate\nroot: stays\n\
                group_by: { day: '\"checkIn\"', room: room }\nmeasures: { n: count() }\n\
                table: stays_by_day\n";
    let view = parse_view(Path::new("views/stays.yaml"), text)
        .unwrap_or_else(|errors| panic!("{errors:#?}"));
    let plan = Plan::build(std::slice::from_ref(&view), &catalog).expect("a plan");
    let OutputPlan::Aggregate(aggregate) = &plan.views[0].output else {
        panic!("an aggregate view");
    };
    let nullable: Vec<bool> = aggregate.group.iter().map(|key| key.nullable).collect();
    assert_eq!(nullable, [false, true]);
}

/// A named join's pair the wrong way round is said to be so, with the pair
/// to write (trial 9 met it in a cache view's `on`).
#[test]
fn a_named_join_pair_the_wrong_way_round_is_named_as_such() {
    let text = CATEGORY_DAILY_SALES.replace("{ id: order_id }", "{ order_id: id }");
    assert_eq!(
        check(&text, &shop()),
        [
            "views/sales.yaml:6: joins.orders.on: the pair is the wrong way round: `on` maps a \
             column of the joined table orders to a column of the root or an earlier join, so \
             write { id: order_id }"
        ]
    );
}

/// The example shop with an enum column `mood` (type `shop.mood`, of
/// `labels` in their order) on `order_items`.
fn shop_with_moods(labels: &[&str]) -> Catalog {
    const MOOD: u32 = 16_402;
    let mut catalog = shop();
    let items = catalog
        .tables
        .get_mut("public.order_items")
        .expect("order_items");
    items.columns.push(enum_column("mood", MOOD, "shop.mood"));
    let labels = labels.iter().map(|label| label.to_string()).collect();
    catalog.enum_labels.insert(MOOD, labels);
    catalog
}

/// An aggregate's `where` (over the root and its joins) refuses a text that
/// is none of an enum column's labels, as SQL does.
#[test]
fn a_text_compared_with_an_enum_in_an_aggregate_where_must_be_a_label() {
    let catalog = shop_with_moods(&["glad", "sad"]);
    let glad = CATEGORY_DAILY_SALES.replace(
        "orders.status = 'paid'",
        "orders.status = 'paid' AND mood = 'glad'",
    );
    assert_eq!(check(&glad, &catalog), Vec::<String>::new());
    let happy = glad.replace("mood = 'glad'", "mood <> 'happy'");
    assert_eq!(
        check(&happy, &catalog),
        [
            "views/sales.yaml:8: where: 'happy' is not a label of shop.mood, the enum of column \
             mood: PostgreSQL refuses it (invalid input value for enum); its labels are 'glad', \
             'sad'"
        ]
    );
}

/// An enum ordered in a group key or a measure (a `CASE`, a `FILTER`)
/// orders by its labels' order, as in a `where` (trial 31: `result >
/// 'pass'` there grouped by the labels' text; it was refused since, and is
/// now compared by the labels' places); `least` still is refused.
#[test]
fn an_enum_ordered_in_a_group_key_or_a_measure_orders_by_its_labels() {
    let catalog = shop_with_moods(&["sad", "glad"]);
    let ordered = CATEGORY_DAILY_SALES
        .replace(
            "  category_id: products.category_id",
            "  category_id: products.category_id\n  \
             upbeat: \"CASE WHEN mood >= 'glad' THEN 'up' ELSE 'down' END\"",
        )
        .replace(
            "  items: count()",
            "  items: count()\n  glad: \"count() FILTER (WHERE mood > 'sad')\"",
        );
    assert_eq!(check(&ordered, &catalog), Vec::<String>::new());
    // `min` and `max` order it by its labels too; a text beside it in
    // `coalesce` is one of its labels, as PostgreSQL reads it.
    let extremes = ordered.replace(
        "  items: count()",
        "  items: count()\n  saddest: min(mood)\n  gladdest: max(coalesce(mood, 'glad'))",
    );
    assert_eq!(check(&extremes, &catalog), Vec::<String>::new());
    // Nor in `nullif` (trial 42: a label renamed away left such a view
    // running, on a meaning SQL refuses).
    let typo = extremes.replace("coalesce(mood, 'glad')", "nullif(mood, 'happy')");
    let errors = check(&typo, &catalog);
    assert!(
        errors.len() == 1 && errors[0].contains("'happy' is not a label of shop.mood"),
        "{errors:?}"
    );
    let typo = extremes.replace("coalesce(mood, 'glad')", "coalesce(mood, 'happy')");
    assert_eq!(
        check(&typo, &catalog),
        [
            "views/sales.yaml:16: measures.gladdest: 'happy' is not a label of shop.mood, the \
             enum of column mood: PostgreSQL refuses it (invalid input value for enum); its \
             labels are 'sad', 'glad'"
        ]
    );
    // A domain over the enum is the enum.
    let mut domains = catalog.clone();
    let items = domains.tables.get_mut("public.order_items").unwrap();
    items
        .columns
        .push(enum_column("mood_too", 16_402, "shop.mood_domain"));
    let mixed = ordered.replace("mood > 'sad'", "mood > mood_too");
    assert_eq!(check(&mixed, &domains), Vec::<String>::new());
    let least = ordered.replace("mood > 'sad'", "least(mood, 'glad') = 'sad'");
    let errors = check(&least, &catalog);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("views/sales.yaml:15: measures.glad: cannot order column mood"),
        "{errors:#?}"
    );
}

/// An aggregate table is made for its columns' types and its key's kind,
/// which come from the source's columns: they are part of the view's
/// definition, so a column whose type changed rebuilds the view and
/// rewrites its table (an `int` become `numeric(6,2)` had `7.75` rounded
/// into the table's `bigint` 8, the fourteenth trial).
#[test]
fn an_aggregate_tables_layout_is_part_of_its_definition() {
    const NUMERIC: u32 = 1700;
    let view = parse_view(Path::new("views/sales.yaml"), CATEGORY_DAILY_SALES)
        .unwrap_or_else(|errors| panic!("{errors:#?}"));
    let hash = |catalog: &Catalog| {
        crate::plan::Plan::build(std::slice::from_ref(&view), catalog)
            .expect("a plan")
            .views[0]
            .definition_hash
            .clone()
    };
    let before = hash(&shop());
    assert!(before.starts_with(&view.definition_hash), "{before}");
    let mut catalog = shop();
    let items = catalog
        .tables
        .get_mut("public.order_items")
        .expect("order_items");
    let price = items
        .columns
        .iter_mut()
        .find(|c| c.name == "unit_price_cents");
    price.expect("unit_price_cents").type_oid = NUMERIC;
    let after = hash(&catalog);
    assert!(before.contains("max_unit_price_cents:int"), "{before}");
    assert!(after.contains("max_unit_price_cents:numeric"), "{after}");
}
