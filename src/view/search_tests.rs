//! Tests of reading search views: the example's typed tree, and the errors of
//! each kind of mistake, with file, line and field path.

use std::path::Path;

use crate::view::model::{
    Cardinality, NamedJoin, NamedJoinPair, SearchField, SearchFieldType, SearchSource, SearchView,
    StemLanguage, TextAnalyzer, ViewDef, ViewKind,
};
use crate::view::parse_view;

const PRODUCT_SEARCH: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/views/product_search.yaml"
));

fn parse(text: &str) -> ViewDef {
    parse_view(Path::new("views/test.yaml"), text)
        .unwrap_or_else(|errors| panic!("unexpected errors: {errors:#?}"))
}

fn search_of(view: &ViewDef) -> &SearchView {
    match &view.kind {
        ViewKind::Search(search) => search,
        other => panic!("expected a search view, got {other:?}"),
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

fn field(name: &str, from: &[&str], field_type: SearchFieldType) -> SearchField {
    SearchField {
        name: name.to_owned(),
        from: SearchSource::Column(path(from)),
        field_type,
        stored: false,
        fast: false,
        fuzzy: 0,
    }
}

/// The example's text with one field line (`name:` … to the end of the line)
/// replaced by `replacement`.
fn with_field(name: &str, replacement: &str) -> String {
    let start = PRODUCT_SEARCH
        .find(&format!("  {name}:"))
        .expect("the field is in the example");
    let end = start + PRODUCT_SEARCH[start..].find('\n').expect("a line end");
    format!(
        "{}{replacement}{}",
        &PRODUCT_SEARCH[..start],
        &PRODUCT_SEARCH[end..]
    )
}

#[test]
fn product_search_example_parses_into_the_expected_model() {
    let view = parse(PRODUCT_SEARCH);
    assert_eq!(view.name, "product_search");
    let search = search_of(&view);
    assert_eq!(search.root, "public.products");
    assert_eq!(search.id, "id");
    assert!(search.filter.is_none());
    let text = SearchFieldType::Text(TextAnalyzer::Default);
    let expected_fields = vec![
        SearchField {
            stored: true,
            ..field("name", &["name"], text)
        },
        field("description", &["description"], text),
        SearchField {
            stored: true,
            ..field("category", &["category", "name"], SearchFieldType::Keyword)
        },
        SearchField {
            stored: true,
            fast: true,
            ..field("price_cents", &["price_cents"], SearchFieldType::I64)
        },
    ];
    assert_eq!(search.fields, expected_fields);
    let expected_joins = vec![NamedJoin {
        name: "category".into(),
        table: "public.categories".into(),
        cardinality: Cardinality::One,
        on: vec![NamedJoinPair {
            joined: "id".into(),
            parent: path(&["category_id"]),
        }],
    }];
    assert_eq!(search.joins, expected_joins);
}

#[test]
fn locations_give_the_line_of_every_part() {
    let view = parse(PRODUCT_SEARCH);
    let line = |path: &str| view.locations.line(path);
    assert_eq!(line("root"), Some(4));
    assert_eq!(line("id"), Some(5));
    assert_eq!(line("fields"), Some(6));
    assert_eq!(line("fields.category.from"), Some(9));
    assert_eq!(line("fields.price_cents.type"), Some(10));
    assert_eq!(line("fields.price_cents.fast"), Some(10));
    assert_eq!(line("joins"), Some(11));
    assert_eq!(line("joins.category.one"), Some(12));
    assert_eq!(line("joins.category.on.id"), Some(12));
}

#[test]
fn every_type_and_analyzer_is_read() {
    let text = with_field(
        "description",
        "  description: { from: description, type: text, analyzer: english }\n  \
         a: { from: x, type: f64 }\n  b: { from: x, type: bool, stored: false }\n  \
         c: { from: x, type: date, fast: true }\n  d: { from: x, type: text, analyzer: default }",
    );
    let view = parse(&text);
    let types: Vec<SearchFieldType> = search_of(&view)
        .fields
        .iter()
        .map(|field| field.field_type)
        .collect();
    assert_eq!(
        types,
        [
            SearchFieldType::Text(TextAnalyzer::Default),
            SearchFieldType::Text(TextAnalyzer::Stemmed(StemLanguage::English)),
            SearchFieldType::F64,
            SearchFieldType::Bool,
            SearchFieldType::Date,
            SearchFieldType::Text(TextAnalyzer::Default),
            SearchFieldType::Keyword,
            SearchFieldType::I64,
        ]
    );
}

#[test]
fn where_resolves_root_columns_and_join_columns() {
    let text = PRODUCT_SEARCH.replace(
        "id: id\n",
        "id: id\nwhere: \"price_cents > 0 and category.name <> 'hidden'\"\n",
    );
    let view = parse(&text);
    let filter = search_of(&view).filter.as_ref().expect("a filter");
    assert_eq!(
        filter.columns(),
        [path(&["price_cents"]), path(&["category", "name"])]
    );

    let unknown = PRODUCT_SEARCH.replace("id: id\n", "id: id\nwhere: \"brand.name = 'x'\"\n");
    assert_eq!(
        errors_of(&unknown),
        ["views/test.yaml:6: where: column `brand.name`: no join named `brand` under `joins:`"]
    );
    let too_deep = PRODUCT_SEARCH.replace("id: id\n", "id: id\nwhere: \"a.b.c = 1\"\n");
    assert_eq!(
        errors_of(&too_deep),
        [
            "views/test.yaml:6: where: column `a.b.c`: write `column` (of the root table) or `join.column`"
        ]
    );
}

#[test]
fn option_mistakes_name_the_option() {
    let text = with_field(
        "name",
        "  name: { from: name, type: text, fast: true, analyzer: klingon }",
    )
    .replace("type: keyword", "type: keyword, analyzer: english")
    .replace("type: i64", "type: integer")
    .replace(
        "{ from: description, type: text }",
        "{ from: description, type: text, stored: yes }",
    );
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:7: fields.name.analyzer: unknown analyzer `klingon`; expected one of: \
             default, folded, arabic, danish, dutch, english, finnish, french, german, greek, hungarian, \
             italian, norwegian, portuguese, romanian, russian, spanish, swedish, tamil, turkish",
            "views/test.yaml:7: fields.name.fast: `fast` is for keyword, i64, f64, bool and date \
             fields, not for `text` (tokenized, so it has no single value): use a `keyword` field \
             to filter on exact values or find the documents with one (`field:*`)",
            "views/test.yaml:8: fields.description.stored: expected `true` or `false`, found text \"yes\"",
            "views/test.yaml:9: fields.category.analyzer: `analyzer` applies only to `text` \
             fields, and this field is `keyword`",
            "views/test.yaml:10: fields.price_cents.type: unknown type `integer`; expected one \
             of: text, keyword, i64, f64, bool, date",
        ]
    );
}

#[test]
fn fuzzy_is_a_few_edits_on_a_text_or_keyword_field() {
    let text = with_field("name", "  name: { from: name, type: text, fuzzy: 2 }")
        .replace("type: keyword", "type: keyword, fuzzy: 1");
    let view = parse(&text);
    let fuzzy: Vec<(&str, u8)> = search_of(&view)
        .fields
        .iter()
        .map(|field| (field.name.as_str(), field.fuzzy))
        .collect();
    assert_eq!(
        fuzzy,
        [
            ("name", 2),
            ("description", 0),
            ("category", 1),
            ("price_cents", 0)
        ]
    );
    let text = with_field("name", "  name: { from: name, type: text, fuzzy: 3 }")
        .replace("type: keyword", "type: keyword, fuzzy: yes")
        .replace("type: i64", "type: i64, fuzzy: 1");
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:7: fields.name.fuzzy: expected how many edits a query word may be \
             from a term: 0, 1 or 2, found `3`",
            "views/test.yaml:9: fields.category.fuzzy: expected how many edits a query word may \
             be from a term: 0, 1 or 2, found text \"yes\"",
            "views/test.yaml:10: fields.price_cents.fuzzy: `fuzzy` is for text and keyword \
             fields, not for `i64`: a query word is near a term by its spelling",
        ]
    );
}

#[test]
fn a_field_must_be_a_mapping_with_from_and_type() {
    let text = with_field("name", "  name: name").replace(
        "{ from: description, type: text }",
        "{ type: text, boost: 2 }",
    );
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:7: fields.name: expected a mapping such as `{ from: column, type: \
             text }`, found text \"name\"",
            "views/test.yaml:8: fields.description.boost: unknown key `boost`; allowed keys are: \
             from, type, stored, fast, analyzer, fuzzy",
            "views/test.yaml:8: fields.description: missing required key `from`",
        ]
    );
}

#[test]
fn field_names_are_identifiers_and_never_the_reserved_id() {
    let text = with_field("name", "  _id: { from: name, type: text }")
        .replace("  description:", "  full-text:");
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:7: fields._id: `_id` is reserved: it holds each document's `id`",
            "views/test.yaml:8: fields.full-text: `full-text` is not a valid field name: use \
             letters, digits and `_`, starting with a letter",
        ]
    );
    let duplicate = with_field("description", "  name: { from: description, type: text }");
    assert_eq!(
        errors_of(&duplicate),
        ["views/test.yaml:8: fields.name: duplicate field `name`: already given on line 7"]
    );
}

#[test]
fn from_paths_go_through_known_joins() {
    let text = PRODUCT_SEARCH
        .replace("from: category.name", "from: brand.name")
        .replace("from: description", "from: a.b.c");
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:8: fields.description.from: `a.b.c` is not a column path: write \
             `column` (of the root table) or `join.column` (a column of a join under `joins:`)",
            "views/test.yaml:9: fields.category.from: column `brand.name`: no join named `brand` \
             under `joins:`",
        ]
    );
}

#[test]
fn the_search_keys_are_required_and_the_others_refused() {
    let text = PRODUCT_SEARCH
        .replace("id: id\n", "key: \"product:{id}\"\n")
        .replace("root: products\n", "");
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:2: root: missing required key `root`",
            "views/test.yaml:2: id: missing required key `id`",
            "views/test.yaml:4: key: unknown key `key`; allowed keys are: view, kind, \
             description, root, id, where, fields, joins",
        ]
    );
}

#[test]
fn a_join_is_one_or_many_not_both() {
    let text = PRODUCT_SEARCH.replace("one: categories", "one: categories, many: categories");
    assert_eq!(
        errors_of(&text),
        ["views/test.yaml:12: joins.category.many: give either `one:` or `many:`, not both"]
    );
}

#[test]
fn joins_chain_through_earlier_joins_only() {
    let chained = format!(
        "{PRODUCT_SEARCH}  parent: {{ one: categories, on: {{ id: category.parent_id }} }}\n"
    );
    let view = parse(&chained);
    let parent = &search_of(&view).joins[1];
    assert_eq!(parent.on[0].parent, path(&["category", "parent_id"]));

    let forward = PRODUCT_SEARCH.replace(
        "joins:\n",
        "joins:\n  parent: { one: categories, on: { id: category.parent_id } }\n",
    );
    assert_eq!(
        errors_of(&forward),
        [
            "views/test.yaml:12: joins.parent.on: `category.parent_id`: join `category` is \
             defined after `parent`; a join's parent side is a root column or a column of an \
             earlier join"
        ]
    );
    let mixed = format!(
        "{PRODUCT_SEARCH}  parent: {{ one: categories, on: {{ id: category.parent_id, x: y }} }}\n"
    );
    assert_eq!(
        errors_of(&mixed),
        [
            "views/test.yaml:13: joins.parent.on: all parent columns of a join must come from \
             one table: the root, or one earlier join"
        ]
    );
}

#[test]
fn a_broken_join_is_not_reported_again_by_the_paths_through_it() {
    let text = PRODUCT_SEARCH
        .replace("on: { id: category_id }", "on: {}")
        .replace("id: id\n", "id: id\nwhere: \"category.name <> 'x'\"\n");
    assert_eq!(
        errors_of(&text),
        [
            "views/test.yaml:13: joins.category.on: needs at least one `joined_column: \
             parent_column` pair"
        ]
    );
}

/// A `many` join's fields take a value per joined row; nothing else may
/// read through it.
#[test]
fn a_many_join_feeds_fields_only() {
    let reviews = "joins:\n  reviews: { many: reviews, on: { product_id: id } }\n";
    let with_reviews = |field: &str| {
        PRODUCT_SEARCH.replace("joins:\n", reviews).replacen(
            "fields:\n",
            &format!("fields:\n  {field}\n"),
            1,
        )
    };
    let view = parse(&with_reviews("review: { from: reviews.body, type: text }"));
    let search = search_of(&view);
    assert!(search.fields.iter().any(|f| f.name == "review"));
    let join = search
        .joins
        .iter()
        .find(|j| j.name == "reviews")
        .expect("the join");
    assert_eq!(join.cardinality, Cardinality::Many);
    let mut filtered = with_reviews("review: { from: reviews.body, type: text }");
    filtered = filtered.replace("id: id\n", "id: id\nwhere: \"reviews.stars > 3\"\n");
    assert_eq!(
        errors_of(&filtered),
        [
            "views/test.yaml:6: where: column `reviews.stars`: `reviews` is a `many` join, whose \
             rows give no single value; only a search field of that one column (`from: \
             reviews.stars`) may read through it"
        ]
    );
    // Nor may a computed field.
    let computed = with_reviews("review: { from: \"upper(reviews.body)\", type: text }");
    assert_eq!(
        errors_of(&computed),
        [
            "views/test.yaml:7: fields.review.from: column `reviews.body`: `reviews` is a `many` \
             join, whose rows give no single value; only a search field of that one column \
             (`from: reviews.body`) may read through it"
        ]
    );
}

/// A `from` that is not a column path is an expression over the root and
/// its `one` joins.
#[test]
fn a_field_may_be_computed() {
    let text = PRODUCT_SEARCH.replacen(
        "fields:\n",
        "fields:\n  label: { from: \"coalesce(category.name, 'none') || ' ' || name\", type: text }\n",
        1,
    );
    let view = parse(&text);
    let label = search_of(&view)
        .fields
        .iter()
        .find(|f| f.name == "label")
        .expect("the field");
    let SearchSource::Expr(expr) = &label.from else {
        panic!("an expression: {label:?}")
    };
    assert_eq!(
        expr.columns(),
        [path(&["category", "name"]), path(&["name"])]
    );
    let broken = PRODUCT_SEARCH.replacen(
        "fields:\n",
        "fields:\n  label: { from: \"upper(name\", type: text }\n",
        1,
    );
    let errors = errors_of(&broken);
    assert!(
        errors.len() == 1
            && errors[0].starts_with("views/test.yaml:7: fields.label.from: invalid expression"),
        "{errors:?}"
    );
}
