//! Tests of reading aggregate views: the design's example as a typed tree,
//! and the errors of each kind of mistake, with file, line and field path.

use std::path::Path;

use crate::view::model::{
    AggregateView, Cardinality, MeasureFunction, NamedJoin, NamedJoinPair, ViewDef, ViewKind,
};
use crate::view::parse_view;

/// `views/category_daily_sales.yaml` of DESIGN.md section 3, as written there.
pub(crate) const CATEGORY_DAILY_SALES: &str = "\
# views/category_daily_sales.yaml — an aggregate view, kept in a SQL table
view: category_daily_sales
kind: aggregate
root: order_items
joins:
  orders:   { one: orders,   on: { id: order_id } }     # orders.id = order_items.order_id
  products: { one: products, on: { id: product_id } }
where: \"orders.status = 'paid'\"
group_by:
  day: \"date(orders.created_at)\"
  category_id: products.category_id
measures:
  items: count()
  units: sum(quantity)
  revenue_cents: sum(quantity * unit_price_cents)
  max_unit_price_cents: max(unit_price_cents)
  avg_unit_price_cents: avg(unit_price_cents)
table: analytics.category_daily_sales
";

fn parse(text: &str) -> ViewDef {
    parse_view(Path::new("views/test.yaml"), text)
        .unwrap_or_else(|errors| panic!("unexpected errors: {errors:#?}"))
}

fn aggregate_of(view: &ViewDef) -> &AggregateView {
    match &view.kind {
        ViewKind::Aggregate(aggregate) => aggregate,
        other => panic!("expected an aggregate view, got {other:?}"),
    }
}

fn errors_of(text: &str) -> Vec<String> {
    match parse_view(Path::new("views/test.yaml"), text) {
        Ok(view) => panic!("expected errors, got {view:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| (*part).to_owned()).collect()
}

/// The example with the line starting with `start` replaced by `replacement`.
fn with_line(start: &str, replacement: &str) -> String {
    let begin = CATEGORY_DAILY_SALES
        .find(&format!("\n{start}"))
        .expect("the line is in the example")
        + 1;
    let end = begin
        + CATEGORY_DAILY_SALES[begin..]
            .find('\n')
            .expect("a line end");
    format!(
        "{}{replacement}{}",
        &CATEGORY_DAILY_SALES[..begin],
        &CATEGORY_DAILY_SALES[end..]
    )
}

#[test]
fn the_design_example_parses_into_the_expected_model() {
    let view = parse(CATEGORY_DAILY_SALES);
    assert_eq!(view.name, "category_daily_sales");
    let aggregate = aggregate_of(&view);
    assert_eq!(aggregate.root, "public.order_items");
    assert_eq!(aggregate.table, "analytics.category_daily_sales");
    let join = |name: &str, table: &str, joined: &str, parent: &str| NamedJoin {
        name: name.into(),
        table: table.into(),
        cardinality: Cardinality::One,
        on: vec![NamedJoinPair {
            joined: joined.into(),
            parent: path(&[parent]),
        }],
    };
    assert_eq!(
        aggregate.joins,
        [
            join("orders", "public.orders", "id", "order_id"),
            join("products", "public.products", "id", "product_id"),
        ]
    );
    let filter = aggregate.filter.as_ref().expect("a filter");
    assert_eq!(filter.source(), "orders.status = 'paid'");

    let groups: Vec<(&str, &str)> = aggregate
        .group_by
        .iter()
        .map(|key| (key.name.as_str(), key.expr.source()))
        .collect();
    assert_eq!(
        groups,
        [
            ("day", "date(orders.created_at)"),
            ("category_id", "products.category_id"),
        ]
    );
    assert_eq!(
        aggregate.group_by[1].expr.columns(),
        [path(&["products", "category_id"])]
    );

    let measures: Vec<(&str, MeasureFunction, Option<&str>)> = aggregate
        .measures
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.function,
                m.arg.as_ref().map(|a| a.source()),
            )
        })
        .collect();
    assert_eq!(
        measures,
        [
            ("items", MeasureFunction::Count, None),
            ("units", MeasureFunction::Sum, Some("quantity")),
            (
                "revenue_cents",
                MeasureFunction::Sum,
                Some("quantity * unit_price_cents")
            ),
            (
                "max_unit_price_cents",
                MeasureFunction::Max,
                Some("unit_price_cents")
            ),
            (
                "avg_unit_price_cents",
                MeasureFunction::Avg,
                Some("unit_price_cents")
            ),
        ]
    );
}

#[test]
fn locations_give_the_line_of_every_part() {
    let view = parse(CATEGORY_DAILY_SALES);
    let line = |path: &str| view.locations.line(path);
    assert_eq!(line("root"), Some(4));
    assert_eq!(line("joins.products.one"), Some(7));
    assert_eq!(line("where"), Some(8));
    assert_eq!(line("group_by"), Some(9));
    assert_eq!(line("group_by.day"), Some(10));
    assert_eq!(line("group_by.category_id"), Some(11));
    assert_eq!(line("measures"), Some(12));
    assert_eq!(line("measures.items"), Some(13));
    assert_eq!(line("measures.avg_unit_price_cents"), Some(17));
    assert_eq!(line("table"), Some(18));
}

#[test]
fn functions_are_case_insensitive_and_count_takes_a_star_or_an_expression() {
    let text = with_line(
        "  items:",
        "  items: COUNT(*)\n  skus: Count_Distinct( products.sku )\n  \
         priced: count(unit_price_cents)\n  cheapest: min (unit_price_cents)",
    );
    let view = parse(&text);
    let measures = &aggregate_of(&view).measures;
    let summary: Vec<(MeasureFunction, Option<&str>)> = measures[..4]
        .iter()
        .map(|m| (m.function, m.arg.as_ref().map(|a| a.source())))
        .collect();
    assert_eq!(
        summary,
        [
            (MeasureFunction::Count, None),
            (MeasureFunction::CountDistinct, Some("products.sku")),
            (MeasureFunction::Count, Some("unit_price_cents")),
            (MeasureFunction::Min, Some("unit_price_cents")),
        ]
    );
}

#[test]
fn measure_mistakes_are_named_at_their_measure() {
    let text = with_line(
        "  items:",
        "  items: total(quantity)\n  a: sum()\n  b: sum(max(quantity))\n  c: quantity\n  \
         d: count(distinct quantity)\n  e: sum(quantity +)\n  f: 5",
    );
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:13: measures.items: unknown function `total`; expected one of: \
             count, sum, avg, min, max, count_distinct, median, percentile_cont(f) WITHIN GROUP \
             (ORDER BY …), percentile_disc(f) WITHIN GROUP (ORDER BY …)",
            "views/test.yaml:14: measures.a: `sum` needs one expression, such as `sum(quantity)`",
            "views/test.yaml:15: measures.b: aggregates cannot be nested: `max(...)` inside \
             `sum(...)`; the argument is an expression over one row",
            "views/test.yaml:16: measures.c: `quantity` is not a measure: write \
             `function(expression)`, such as `sum(quantity)`, with one of: count, sum, avg, \
             min, max, count_distinct, median, percentile_cont(f) WITHIN GROUP (ORDER BY …), \
             percentile_disc(f) WITHIN GROUP (ORDER BY …)",
            "views/test.yaml:17: measures.d: `count(distinct ...)` is not supported: write \
             `count_distinct(expression)` to count distinct values",
            "views/test.yaml:18: measures.e: invalid expression: syntax error in `quantity +`: \
             sql parser error: Expected: an expression, found: EOF",
            "views/test.yaml:19: measures.f: expected a measure such as `sum(quantity)`, found `5`",
        ]
    );
}

/// The table's key holds every group key, and PostgreSQL indexes at most
/// 32 columns: more was accepted, and the view's sink failed for good at
/// its first write (the twenty-fourth trial).
#[test]
fn at_most_32_group_keys() {
    // `count` keys before the example's own two.
    let with_keys = |count: usize| {
        let keys: String = (0..count)
            .map(|n| format!("  k{n}: quantity + {n}\n"))
            .collect();
        with_line(
            "  category_id:",
            &format!("{keys}  category_id: products.category_id"),
        )
    };
    assert_eq!(
        errors_of(&with_keys(32)),
        [
            "views/test.yaml:10: group_by: 34 group keys: the table's key holds every group key, \
             and PostgreSQL indexes at most 32 columns; group by fewer, or split the view"
        ]
    );
    parse(&with_keys(30));
}

#[test]
fn group_keys_are_expressions() {
    let text = with_line(
        "  category_id:",
        "  category_id: sum(quantity)\n  month: date_trunc('month')\n  flag: [a]",
    );
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:11: group_by.category_id: invalid expression: unsupported \
             construct: aggregate function sum() here in `sum(quantity)`",
            "views/test.yaml:12: group_by.month: invalid expression: function date_trunc takes \
             2 to 3 argument(s), found 1 in `date_trunc('month')`",
            "views/test.yaml:13: group_by.flag: expected an expression such as \
             `date(orders.created_at)`, found a list",
        ]
    );
}

#[test]
fn column_names_are_identifiers_used_once_across_group_by_and_measures() {
    let text = with_line(
        "  items:",
        "  Items: count()\n  day: count()\n  units: count()",
    );
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:13: measures.Items: `Items` is not a valid column name: use \
             lowercase letters, digits and `_`, starting with a letter",
            "views/test.yaml:14: measures.day: column `day` is already defined under \
             `group_by` on line 10: group keys and measures are columns of one table, so their \
             names must differ",
            "views/test.yaml:16: measures.units: duplicate measure `units`: already given on \
             line 15",
        ]
    );
    let long = format!("  {}: count()", "c".repeat(64));
    let message = errors_of(&with_line("  items:", &long)).join("\n");
    assert!(
        message.contains("PostgreSQL truncates names longer than 63 bytes"),
        "{message}"
    );
}

#[test]
fn the_aggregate_keys_are_required_and_the_others_refused() {
    let text = CATEGORY_DAILY_SALES
        .replace(
            "table: analytics.category_daily_sales\n",
            "key: \"x:{id}\"\n",
        )
        .replace("root: order_items\n", "");
    let text = with_line_in(&text, "group_by:", "ordering:");
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:2: root: missing required key `root`",
            "views/test.yaml:2: group_by: missing required key `group_by`",
            "views/test.yaml:2: table: missing required key `table`",
            "views/test.yaml:8: ordering: unknown key `ordering`; allowed keys are: view, kind, \
             description, root, joins, where, group_by, measures, table",
            "views/test.yaml:17: key: unknown key `key`; allowed keys are: view, kind, \
             description, root, joins, where, group_by, measures, table",
        ]
    );
    let empty = with_line("group_by:", "group_by: {}\nunused:");
    let message = errors_of(&empty).join("\n");
    assert!(
        message.contains("views/test.yaml:9: group_by: needs at least one group key"),
        "{message}"
    );
}

fn with_line_in(text: &str, start: &str, replacement: &str) -> String {
    text.replacen(&format!("\n{start}"), &format!("\n{replacement}"), 1)
}

#[test]
fn column_paths_go_through_known_joins() {
    let text = CATEGORY_DAILY_SALES
        .replace("products.category_id", "brands.category_id")
        .replace("orders.status = 'paid'", "a.b.c = 'paid'")
        .replace("sum(quantity)", "sum(shop.quantity)");
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:8: where: column `a.b.c`: write `column` (of the root table) or \
             `join.column`",
            "views/test.yaml:11: group_by.category_id: column `brands.category_id`: no join \
             named `brands` under `joins:`",
            "views/test.yaml:14: measures.units: column `shop.quantity`: no join named `shop` \
             under `joins:`",
        ]
    );
}

#[test]
fn a_broken_join_is_not_reported_again_by_the_paths_through_it() {
    let text = CATEGORY_DAILY_SALES.replace(
        "{ one: products, on: { id: product_id } }",
        "{ many: products, on: { id: product_id } }",
    );
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:7: joins.products.many: `many` joins are not allowed in aggregate \
             views: each root row must meet at most one joined row, so write `one: TABLE` (a \
             many-to-one join)"
        ]
    );
}

#[test]
fn the_target_table_has_a_plain_name() {
    let cases = [
        (
            "Analytics.Sales",
            "use lowercase letters, digits and `_`, starting with a letter",
        ),
        ("a.b.c", "write `table` or `schema.table`"),
        (
            "\"sales\"",
            "use lowercase letters, digits and `_`, starting with a letter",
        ),
    ];
    for (name, problem) in cases {
        let text = with_line("table:", &format!("table: '{name}'"));
        assert_eq!(
            errors_of(&text),
            [format!(
                "views/test.yaml:18: table: `{name}` is not a valid name for the table \
                 viewkeeper creates: {problem}"
            )]
        );
    }
    let unqualified = parse(&with_line("table:", "table: daily_sales"));
    assert_eq!(aggregate_of(&unqualified).table, "public.daily_sales");
}
