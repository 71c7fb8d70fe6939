//! The index, its writer and its queries together, on temporary directories.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::test_views::{field, product_fields};
use super::*;
use crate::view::model::{SearchField, SearchFieldType, TextAnalyzer};

const BUDGET: usize = 20_000_000;

fn open(dir: &Path) -> SearchIndex {
    SearchIndex::open_or_create(dir, "product_search", &product_fields()).expect("opens")
}

fn upsert(id: &str, document: Value) -> IndexOp {
    let Value::Object(document) = document else {
        panic!("test documents are objects")
    };
    IndexOp::Upsert {
        id: id.to_owned(),
        document,
    }
}

/// The checkpoint of this module's commits: one store, sequence `sequence`.
fn at(sequence: u64) -> IndexCheckpoint {
    IndexCheckpoint {
        store_id: "0123456789abcdef".into(),
        sequence,
    }
}

fn delete(id: &str) -> IndexOp {
    IndexOp::Delete { id: id.to_owned() }
}

fn ids(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|hit| hit.id.as_str()).collect()
}

fn all_ids(index: &SearchIndex) -> Vec<String> {
    let hits = index.all_documents().expect("lists");
    hits.into_iter().map(|hit| hit.id).collect()
}

/// A new index of `view` with `fields` in `dir`, and its writer.
fn index_with_writer(
    dir: &Path,
    view: &str,
    fields: &[SearchField],
) -> (SearchIndex, IndexWriterHandle) {
    let index = SearchIndex::open_or_create(dir, view, fields).expect("opens");
    let writer = index.writer(BUDGET, 1).expect("writer");
    (index, writer)
}

/// A page in the order of `sort`.
fn sorted_by(sort: SearchSort, offset: usize, limit: usize) -> PageRequest {
    PageRequest {
        offset,
        limit,
        sort: Some(sort),
        facets: None,
    }
}

/// The ids of every document in the order of `sort`, joined by commas.
fn sorted_ids(index: &SearchIndex, sort: &str) -> String {
    let sort = SearchSort::parse(sort).expect("a sort");
    let page = index
        .search_page("*", &sorted_by(sort, 0, 10))
        .expect("searches");
    ids(&page.hits).join(",")
}

fn search_ids(index: &SearchIndex, query: &str) -> Vec<String> {
    let hits = index.search(query, 10).expect("searches");
    let mut found: Vec<String> = hits.into_iter().map(|hit| hit.id).collect();
    found.sort();
    found
}

/// Three products, committed as sequence 1.
fn catalog(index: &SearchIndex) -> IndexWriterHandle {
    let writer = index.writer(BUDGET, 1).expect("writer");
    let ops = vec![
        upsert(
            "1",
            json!({"name": "Trail shoe", "description": "Built for running on rocks",
                   "category": "Shoes", "price_cents": 8900, "in_stock": true,
                   "updated_at": "2026-11-24T14:03:07.120000Z"}),
        ),
        upsert(
            "2",
            json!({"name": "Rain jacket", "description": "Keeps you dry on a run",
                   "category": "Jackets", "price_cents": 12000, "in_stock": false}),
        ),
        upsert(
            "3",
            json!({"name": "Wool socks", "description": "Warm feet",
                   "category": "Shoes accessories", "price_cents": 900}),
        ),
    ];
    writer.apply(ops, at(1)).expect("applies");
    writer
}

#[test]
fn an_upsert_replaces_the_document_with_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let writer = catalog(&index);
    let renamed = upsert("2", json!({"name": "Storm jacket", "price_cents": 15000}));
    writer.apply(vec![renamed.clone()], at(2)).expect("applies");
    writer.apply(vec![renamed], at(3)).expect("replays");
    assert_eq!(all_ids(&index), ["1", "2", "3"]);
    assert_eq!(search_ids(&index, "storm"), ["2"]);
    assert!(search_ids(&index, "rain").is_empty());
    let hits = index.search("storm", 10).expect("searches");
    assert_eq!(
        Value::Object(hits[0].fields.clone()),
        json!({"name": "Storm jacket", "price_cents": 15000})
    );
}

#[test]
fn ops_on_one_id_in_one_batch_apply_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let writer = catalog(&index);
    let ops = vec![
        upsert("4", json!({"name": "first"})),
        upsert("4", json!({"name": "second"})),
        upsert("1", json!({"name": "gone soon"})),
        delete("1"),
    ];
    writer.apply(ops, at(2)).expect("applies");
    assert_eq!(all_ids(&index), ["2", "3", "4"]);
    assert_eq!(search_ids(&index, "second"), ["4"]);
    assert!(search_ids(&index, "first").is_empty());
}

#[test]
fn a_delete_removes_the_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let writer = catalog(&index);
    writer
        .apply(vec![delete("1"), delete("no such id")], at(2))
        .expect("applies");
    assert_eq!(all_ids(&index), ["2", "3"]);
    assert_eq!(index.num_docs(), 2);
    assert!(search_ids(&index, "trail").is_empty());
}

#[test]
fn the_sequence_rides_in_the_commit_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    assert_eq!(index.checkpoint().expect("reads"), None);
    let writer = catalog(&index);
    writer
        .apply(Vec::new(), at(41))
        .expect("an empty batch still commits");
    assert_eq!(index.checkpoint().expect("reads"), Some(at(41)));
    writer.close().expect("closes");
    drop(index);

    let reopened = open(dir.path());
    assert_eq!(reopened.checkpoint().expect("reads"), Some(at(41)));
    assert_eq!(all_ids(&reopened), ["1", "2", "3"]);
}

/// An index committed by a version that wrote the sequence alone names no
/// store, so its sink loads it anew; a payload viewkeeper never writes is
/// refused with the index's directory.
#[test]
fn a_payload_without_a_store_names_none_and_a_foreign_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let commit_payload = |payload: &str| {
        let mut writer = index.tantivy_writer(BUDGET, 1).expect("writer");
        let mut prepared = writer.prepare_commit().expect("prepares");
        prepared.set_payload(payload);
        prepared.commit().expect("commits");
    };
    commit_payload("41");
    let earlier = index.checkpoint().expect("reads").expect("a checkpoint");
    assert_eq!((earlier.store_id.as_str(), earlier.sequence), ("", 41));

    commit_payload("not a checkpoint");
    let error = index.checkpoint().expect_err("refused");
    assert!(
        matches!(&error, SearchError::Payload { payload, .. } if payload == "not a checkpoint"),
        "{error}"
    );
}

#[test]
fn work_not_committed_before_a_crash_is_lost_and_committed_work_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    drop(catalog(&index));
    // A writer that dies between commits: ops queued, never committed.
    let crashed = index.tantivy_writer(BUDGET, 1).expect("writer");
    crashed.delete_term(tantivy::Term::from_field_text(index.schema.id, "1"));
    let doc = super::document::to_tantivy(&index.schema, "9", &Map::new()).expect("converts");
    crashed.add_document(doc).expect("queues");
    drop(crashed);
    drop(index);

    let reopened = open(dir.path());
    assert_eq!(reopened.checkpoint().expect("reads"), Some(at(1)));
    assert_eq!(all_ids(&reopened), ["1", "2", "3"]);
    let writer = reopened.writer(BUDGET, 1).expect("the lock was released");
    writer.apply(vec![delete("2")], at(2)).expect("applies");
    assert_eq!(all_ids(&reopened), ["1", "3"]);
}

#[test]
fn a_document_that_does_not_fit_fails_its_whole_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let writer = catalog(&index);
    let ops = vec![delete("1"), upsert("5", json!({"price_cents": "abc"}))];
    let error = writer.apply(ops, at(2)).expect_err("refused");
    assert!(
        matches!(&error, SearchError::Document { id, field, .. } if id == "5" && field == "price_cents"),
        "{error}"
    );
    assert!(!error.is_retriable());
    // Nothing of the batch is applied, now or by the next commit.
    writer.apply(Vec::new(), at(2)).expect("applies");
    assert_eq!(all_ids(&index), ["1", "2", "3"]);
}

#[test]
fn fed_ops_are_visible_and_durable_only_with_the_next_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let writer = catalog(&index);
    writer
        .feed(vec![upsert("4", json!({"name": "Head lamp"})), delete("1")])
        .expect("feeds");
    writer
        .feed(vec![upsert("4", json!({"name": "Tent"}))])
        .expect("feeds");
    assert_eq!(
        all_ids(&index),
        ["1", "2", "3"],
        "nothing before the commit"
    );
    assert_eq!(index.checkpoint().expect("reads"), Some(at(1)));

    writer.commit(at(3)).expect("commits");
    assert_eq!(all_ids(&index), ["2", "3", "4"]);
    assert_eq!(search_ids(&index, "tent"), ["4"], "a later feed replaces");
    assert!(search_ids(&index, "lamp").is_empty());
    writer.close().expect("closes");
    drop(index);
    let reopened = open(dir.path());
    assert_eq!(reopened.checkpoint().expect("reads"), Some(at(3)));
    assert_eq!(all_ids(&reopened), ["2", "3", "4"]);
}

#[test]
fn discarding_drops_what_was_fed_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let writer = catalog(&index);
    writer.discard().expect("nothing to discard is fine");
    writer
        .feed(vec![delete("2"), upsert("5", json!({"name": "Stove"}))])
        .expect("feeds");
    // A feed refused for a document that does not fit leaves the earlier
    // feed queued; the sink discards it before feeding again.
    let error = writer
        .feed(vec![upsert("6", json!({"price_cents": "abc"}))])
        .expect_err("refused");
    assert!(
        matches!(&error, SearchError::Document { id, .. } if id == "6"),
        "{error}"
    );
    writer.discard().expect("discards");
    writer.commit(at(2)).expect("commits");
    assert_eq!(all_ids(&index), ["1", "2", "3"]);
    assert_eq!(index.checkpoint().expect("reads"), Some(at(2)));
    writer
        .feed(vec![delete("3")])
        .expect("the writer takes ops after a discard");
    writer.commit(at(3)).expect("commits");
    assert_eq!(all_ids(&index), ["1", "2"]);
}

#[test]
fn a_stemmed_field_matches_other_forms_of_a_word() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    assert_eq!(search_ids(&index, "description:run"), ["1", "2"]);
    assert_eq!(search_ids(&index, "description:running"), ["1", "2"]);
    // `name` uses the default analyzer: no stemming there.
    assert!(search_ids(&index, "name:shoes").is_empty());
    assert_eq!(search_ids(&index, "name:shoe"), ["1"]);
}

#[test]
fn a_keyword_matches_only_its_exact_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    assert_eq!(search_ids(&index, "category:Shoes"), ["1"]);
    assert_eq!(search_ids(&index, "category:\"Shoes accessories\""), ["3"]);
    assert!(search_ids(&index, "category:shoes").is_empty());
}

#[test]
fn boolean_operators_phrases_and_ranges_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    assert_eq!(search_ids(&index, "price_cents:[900 TO 8900]"), ["1", "3"]);
    assert_eq!(search_ids(&index, "price_cents:{900 TO *}"), ["1", "2"]);
    assert_eq!(search_ids(&index, "jacket OR socks"), ["2", "3"]);
    assert_eq!(search_ids(&index, "description:run AND NOT jacket"), ["1"]);
    let grouped = "(trail OR jacket OR socks) AND NOT (dry OR warm)";
    assert_eq!(search_ids(&index, grouped), ["1"]);
    assert_eq!(search_ids(&index, "description:run NOT jacket"), ["1"]);
    assert_eq!(search_ids(&index, "+description:run -jacket"), ["1"]);
    assert_eq!(search_ids(&index, "\"wool socks\""), ["3"]);
    assert!(search_ids(&index, "\"socks wool\"").is_empty());
    assert_eq!(search_ids(&index, "in_stock:true"), ["1"]);
    let dated = "updated_at:[2026-11-24T00:00:00Z TO 2026-11-25T00:00:00Z]";
    assert_eq!(search_ids(&index, dated), ["1"]);
}

/// A date on a fast field matches to the microsecond, as SQL's `=` does,
/// not the whole second the inverted index keeps.
#[test]
fn a_date_on_a_fast_field_matches_to_the_microsecond() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    for (query, expected) in [
        ("updated_at:\"2026-11-24T14:03:07.12Z\"", &["1"][..]),
        ("updated_at:\"2026-11-24T15:03:07.12+01:00\"", &["1"]),
        ("updated_at:\"2026-11-24T14:03:07Z\"", &[]),
        ("updated_at:\"2026-11-24T14:03:07.5Z\"", &[]),
        (
            "updated_at:IN [2026-01-01 \"2026-11-24T14:03:07.12Z\"]",
            &["1"],
        ),
        ("updated_at:IN [\"2026-11-24T14:03:07Z\"]", &[]),
        ("updated_at:2026-11-24", &[]),
        (
            "name:trail AND NOT updated_at:\"2026-11-24T14:03:07.12Z\"",
            &[],
        ),
    ] {
        assert_eq!(search_ids(&index, query), expected, "{query}");
    }
}

#[test]
fn hits_carry_score_and_every_stored_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    let hits = index.search("trail", 10).expect("searches");
    assert_eq!(ids(&hits), ["1"]);
    assert!(hits[0].score.is_some_and(|score| score > 0.0));
    assert_eq!(
        Value::Object(hits[0].fields.clone()),
        json!({"name": "Trail shoe", "category": "Shoes", "price_cents": 8900,
               "in_stock": true, "updated_at": "2026-11-24T14:03:07.120000Z"})
    );
    assert_eq!(hits[0].to_json()["id"], json!("1"));
    assert!(index.search("trail", 0).expect("searches").is_empty());
    assert_eq!(index.search("*", usize::MAX).expect("searches").len(), 3);
}

/// Pages follow the whole ranking without a gap or a repeat, and each
/// says how many match in all, also past the last hit and for a limit of 0.
#[test]
fn pages_follow_the_ranking_and_count_every_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    let query = "trail OR jacket OR socks";
    let owned_ids =
        |hits: &[Hit]| -> Vec<String> { ids(hits).into_iter().map(str::to_owned).collect() };
    let ranked = owned_ids(&index.search(query, 10).expect("searches"));
    assert_eq!(ranked.len(), 3, "{ranked:?}");
    let page = |offset, limit| {
        index
            .search_page(
                query,
                &PageRequest {
                    offset,
                    limit,
                    ..PageRequest::default()
                },
            )
            .expect("searches")
    };
    let mut paged = Vec::new();
    for offset in 0..3 {
        let one = page(offset, 1);
        assert_eq!(one.total, 3);
        paged.extend(owned_ids(&one.hits));
    }
    assert_eq!(paged, ranked);
    assert_eq!(owned_ids(&page(1, 10).hits), ranked[1..]);
    for (offset, limit) in [(3, 10), (usize::MAX, 10), (0, 0)] {
        let empty = page(offset, limit);
        assert_eq!((empty.total, empty.hits.len()), (3, 0), "{offset} {limit}");
    }
    assert_eq!(
        page(0, 1).to_json("catalog")["total"],
        json!(3),
        "the JSON carries the total"
    );
}

/// `sort=` orders the hits by a fast field's value (documents without one
/// last, either way), pages through that order, and has no score.
#[test]
fn hits_may_be_sorted_by_a_fast_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    let sorted = |query: &str, sort: &str, offset, limit| {
        let sort = SearchSort::parse(sort).expect("a sort");
        let page = index
            .search_page(query, &sorted_by(sort, offset, limit))
            .expect("searches");
        assert!(page.hits.iter().all(|hit| hit.score.is_none()));
        assert_eq!(page.to_json("catalog")["hits"][0]["score"], Value::Null);
        (page.total, ids(&page.hits).join(","))
    };
    assert_eq!(sorted("*", "price_cents", 0, 10), (3, "3,1,2".into()));
    assert_eq!(sorted("*", "price_cents:desc", 0, 10), (3, "2,1,3".into()));
    assert_eq!(sorted("*", "price_cents:asc", 1, 1), (3, "1".into()));
    assert_eq!(sorted("*", "category:desc", 0, 10), (3, "3,1,2".into()));
    assert_eq!(
        sorted("jacket OR socks", "category", 0, 10),
        (2, "2,3".into())
    );
    // Only document 1 has an `updated_at`; the others come after it.
    assert_eq!(sorted("*", "updated_at", 0, 1), (3, "1".into()));
    assert_eq!(sorted("*", "updated_at:desc", 0, 1), (3, "1".into()));

    let refused = |sort: &str| {
        let error = SearchSort::parse(sort)
            .and_then(|sort| index.search_page("*", &sorted_by(sort, 0, 10)))
            .expect_err("refused");
        assert!(matches!(error, SearchError::Sort(_)), "{error}");
        error.to_string()
    };
    let fields = "fields to sort by: category, price_cents, in_stock, updated_at";
    assert!(
        refused("name").contains("a text field holds words"),
        "{}",
        refused("name")
    );
    assert!(refused("name").contains(fields), "{}", refused("name"));
    assert!(
        refused("weight").contains("give it `fast: true`"),
        "{}",
        refused("weight")
    );
    assert!(
        refused("colour").contains("no such field"),
        "{}",
        refused("colour")
    );
    assert!(refused("price_cents:up").contains("expected `asc` or `desc`"));
    assert!(refused(":desc").contains("needs a field name"));
    assert!(!refused("weight").contains("malformed query"));
    assert_eq!(sorted("*", "price_cents:DESC", 0, 10), (3, "2,1,3".into()));
}

/// An `f64` sort orders a `NaN` above `Infinity`, as PostgreSQL does (it
/// fell among the values: trial 29), and `-Infinity` first.
#[test]
fn a_float_sort_puts_nan_above_infinity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fields = [field("score", SearchFieldType::F64, true, true)];
    let (index, writer) = index_with_writer(dir.path(), "scores", &fields);
    let scores = [
        ("1", json!(2.5)),
        ("2", json!("NaN")),
        ("3", json!("Infinity")),
        ("4", json!(-1)),
        ("5", json!("-Infinity")),
        ("6", json!(4.75)),
        ("7", json!(null)),
    ];
    let ops = scores
        .into_iter()
        .map(|(id, score)| upsert(id, json!({ "score": score })))
        .collect();
    writer.apply(ops, at(1)).expect("applies");
    let sorted = |sort: &str| sorted_ids(&index, sort);
    assert_eq!(sorted("score"), "5,4,1,6,3,2,7");
    assert_eq!(sorted("score:desc"), "2,3,6,1,4,5,7");
}

#[test]
fn a_malformed_query_is_a_query_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    for query in [
        "price_cents:abc",
        "no_such_field:x",
        "name:(",
        "price_cents:[1 TO",
        "NOT jacket",
    ] {
        match index.search(query, 10) {
            Err(SearchError::Query(message)) => assert!(!message.is_empty()),
            other => panic!("{query}: expected a query error, got {other:?}"),
        }
    }
}

/// Dates beyond the index's instants are held at its ends, found by ranges
/// within them and sorted last (or first); a query value beyond them is
/// refused, as the index could only take it as the end, which they share.
#[test]
fn dates_beyond_the_index_are_at_its_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let writer = catalog(&index);
    let beyond = vec![
        upsert(
            "4",
            json!({"name": "Old map", "updated_at": "0044-03-15 BC"}),
        ),
        upsert("5", json!({"name": "Open loan", "updated_at": "infinity"})),
        upsert("6", json!({"name": "Far loan", "updated_at": "9999-12-31"})),
    ];
    writer.apply(beyond, at(2)).expect("applies");
    for (query, expected) in [
        ("updated_at:[2026-01-01 TO *]", &["1", "5", "6"][..]),
        ("updated_at:[2262-04-11 TO *]", &["5", "6"]),
        ("updated_at:[* TO 1677-09-22}", &["4"]),
        ("updated_at:[* TO 2026-01-01}", &["4"]),
        ("updated_at:[1677-09-22 TO 2262-04-11}", &["1"]),
    ] {
        assert_eq!(search_ids(&index, query), expected, "{query}");
    }
    for query in [
        "updated_at:[2300-01-01 TO *]",
        "updated_at:infinity",
        "updated_at:\"9999-12-31\"",
        "updated_at:IN [2026-01-01 \"-infinity\"]",
        "released:[* TO 1500-01-01]",
    ] {
        match index.search(query, 10) {
            Err(SearchError::Query(message)) => {
                assert!(
                    message.contains("beyond the instants the index holds"),
                    "{message}"
                )
            }
            other => panic!("{query}: expected a query error, got {other:?}"),
        }
    }
    let sort = SearchSort::parse("updated_at").expect("a sort");
    let page = index
        .search_page("*", &sorted_by(sort, 0, 10))
        .expect("sorted");
    assert_eq!(ids(&page.hits)[..2], ["4", "1"]);
}

/// A value a typed field cannot hold is named with its field, and an
/// unknown field with the fields there are: Tantivy's own messages name
/// neither, and for a float field speak of "only excluding terms".
#[test]
fn a_query_error_names_the_field_and_value_at_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    for (query, expected) in [
        (
            "trail AND price_cents:[10 TO ten]",
            r#"field "price_cents" takes an integer, not "ten""#,
        ),
        (
            "price_cents:IN [1 two three]",
            r#"field "price_cents" takes an integer, not "two", "three""#,
        ),
        (
            "in_stock:maybe",
            r#"field "in_stock" takes true or false, not "maybe""#,
        ),
        (
            "updated_at:[yesterday TO *]",
            r#"field "updated_at" takes a date (2026-01-31) or an RFC 3339 date-time (2026-01-31T00:00:00Z), not "yesterday""#,
        ),
        (
            "updated_at:[2026-01-01 TO someday]",
            r#"field "updated_at" takes a date (2026-01-31) or an RFC 3339 date-time (2026-01-31T00:00:00Z), not "someday""#,
        ),
        (
            "colour:red",
            "no field \"colour\" in this view; its fields: name, description, category, \
             price_cents, weight, in_stock, released, updated_at, listed_at",
        ),
        (
            "weight:heavy",
            r#"field "weight" takes a number, not "heavy""#,
        ),
        (
            "-category:Books",
            "a query of exclusions only (`-field:value`) has nothing to exclude from: add `*` \
             for every document, as in `* -field:value` (`* -field:*` for the documents \
             without a value)",
        ),
    ] {
        match index.search(query, 10) {
            Err(SearchError::Query(message)) => assert_eq!(message, expected, "{query}"),
            other => panic!("{query}: expected a query error, got {other:?}"),
        }
    }
}

#[test]
fn an_index_built_for_another_definition_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    let mut changed = product_fields();
    changed[3].field_type = SearchFieldType::F64;
    changed.pop();
    changed.push(field("colour", SearchFieldType::Keyword, true, false));
    let error = SearchIndex::open_or_create(dir.path(), "product_search", &changed)
        .err()
        .expect("refused");
    let message = error.to_string();
    for expected in [
        "`price_cents` was",
        "`colour` is new",
        "`listed_at` was removed",
        "rebuilt",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert!(matches!(error, SearchError::SchemaChanged { .. }));

    // Reordering fields changes nothing Tantivy stores.
    let mut reordered = product_fields();
    reordered.reverse();
    SearchIndex::open_or_create(dir.path(), "product_search", &reordered).expect("opens");
}

#[test]
fn a_second_writer_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let writer = index.writer(BUDGET, 1).expect("writer");
    let error = open(dir.path()).writer(BUDGET, 1).err().expect("refused");
    assert!(matches!(error, SearchError::Locked { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("in use by another viewkeeper process")
    );
    drop(writer);
    index.writer(BUDGET, 1).expect("free again");
}

#[test]
fn opening_without_creating_needs_an_existing_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("product_search");
    let error = SearchIndex::open(&missing, "product_search", &product_fields())
        .err()
        .expect("refused");
    assert!(matches!(error, SearchError::Missing { .. }), "{error}");
    assert!(!missing.exists());
    drop(catalog(&open(&missing)));
    let reader = SearchIndex::open(&missing, "product_search", &product_fields()).expect("opens");
    assert_eq!(reader.num_docs(), 3);
}

#[test]
fn field_names_tantivy_cannot_take_are_refused() {
    let text = SearchFieldType::Text(TextAnalyzer::Default);
    for names in [
        vec!["_id"],
        vec!["a.b"],
        vec![""],
        vec!["-x"],
        vec!["a", "a"],
    ] {
        let fields: Vec<_> = names
            .iter()
            .map(|name| field(name, text, false, false))
            .collect();
        let error = index_schema(&fields).expect_err("refused");
        assert!(
            matches!(error, SearchError::InvalidField { .. }),
            "{names:?}"
        );
    }
}

#[test]
fn the_bare_loop_indexes_every_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let documents: Vec<(String, Map<String, Value>)> = (0..500)
        .map(|n| {
            let Value::Object(doc) = json!({"name": format!("product {n}"), "price_cents": n})
            else {
                unreachable!()
            };
            (n.to_string(), doc)
        })
        .collect();
    let rate =
        bare_indexing_rate(dir.path(), &product_fields(), &documents, BUDGET, 1).expect("indexes");
    assert!(rate > 0.0);
    assert_eq!(open(dir.path()).num_docs(), 500);
}

/// The environment variable that makes `writer_process_for_lock_tests` act.
const CHILD_DIR: &str = "VIEWKEEPER_SEARCH_TEST_CHILD_DIR";
const CHILD_READY: &str = "search-writer-child-ready";

/// Run by `a_killed_process_leaves_no_lock_behind` as a child process: takes
/// the writer, commits sequence 7, then waits to be killed. Otherwise a no-op.
#[test]
fn writer_process_for_lock_tests() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let index = open(Path::new(&dir));
    let writer = catalog(&index);
    writer.apply(vec![delete("3")], at(7)).expect("applies");
    println!("{CHILD_READY}");
    let mut wait_for_eof = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut wait_for_eof);
}

#[test]
fn a_killed_process_leaves_no_lock_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, module) = module_path!().split_once("::").expect("crate::module");
    let child_test = format!("{module}::writer_process_for_lock_tests");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", &child_test, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawns");
    if !child_is_ready(&mut child) {
        let _ = child.kill();
        panic!("the child process did not take the writer in time");
    }

    let index = open(dir.path());
    let error = index.writer(BUDGET, 1).err().expect("refused");
    assert!(matches!(error, SearchError::Locked { .. }), "{error}");

    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let writer = index
        .writer(BUDGET, 1)
        .expect("a dead process holds no lock");
    assert_eq!(index.checkpoint().expect("reads"), Some(at(7)));
    writer.apply(Vec::new(), at(8)).expect("commits");
    assert_eq!(all_ids(&index), ["1", "2"]);
}

/// Whether the child says it holds the writer, within a deadline. libtest
/// prints the child's line after `test … ... ` on the same line.
fn child_is_ready(child: &mut std::process::Child) -> bool {
    let stdout = child.stdout.take().expect("piped");
    let (ready, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let found = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(CHILD_READY));
        let _ = ready.send(found);
    });
    wait.recv_timeout(Duration::from_secs(60)).unwrap_or(false)
}

#[test]
fn handles_and_indexes_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<SearchIndex>();
    shareable::<IndexWriterHandle>();
    shareable::<SearchError>();
}

/// `field:*` and `field:[* TO *]` find the documents with a value in a
/// fast field (the range found none); on another field the query is
/// refused with the fix, not failed as the index's error.
#[test]
fn has_a_value_queries_need_a_fast_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    assert_eq!(search_ids(&index, "in_stock:*"), ["1", "2"]);
    assert_eq!(search_ids(&index, "in_stock:[* TO *]"), ["1", "2"]);
    assert_eq!(search_ids(&index, "* -in_stock:[* TO *]"), ["3"]);
    assert_eq!(search_ids(&index, "price_cents:[* TO *]").len(), 3);
    for (query, expected) in [
        (
            "name:*",
            "`name:*` (documents with a value in name) needs a fast field: a text field \
             cannot be one (a keyword field can)",
        ),
        (
            "weight:[* TO *]",
            "`weight:*` (documents with a value in weight) needs a fast field: give weight \
             `fast: true` in the view file",
        ),
    ] {
        match index.search(query, 10) {
            Err(SearchError::Query(message)) => assert_eq!(message, expected, "{query}"),
            other => panic!("{query}: {other:?}"),
        }
    }
}

/// `folded` finds a word whatever its accents, in the document or the
/// query (the nineteenth trial: `Ingenieur` did not find `Ingénieur`); the
/// default analyzer keeps them apart.
#[test]
fn a_folded_field_matches_words_whatever_their_accents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fields = vec![
        field(
            "title",
            SearchFieldType::Text(TextAnalyzer::Folded),
            true,
            false,
        ),
        field(
            "plain",
            SearchFieldType::Text(TextAnalyzer::Default),
            true,
            false,
        ),
    ];
    let (index, writer) = index_with_writer(dir.path(), "jobs", &fields);
    let ops = vec![
        upsert(
            "1",
            json!({"title": "Ingénieur logiciel", "plain": "Ingénieur"}),
        ),
        upsert(
            "2",
            json!({"title": "Ingenieur Straße", "plain": "Ingenieur"}),
        ),
        // The thirty-fourth trial: a capitalised final sigma and a dotted
        // capital I missed; and an accent as a combining mark split a word.
        upsert(
            "3",
            json!({"title": "Σωκράτης İsmail Inge\u{301}nieure", "plain": "Σωκράτης"}),
        ),
    ];
    writer.apply(ops, at(1)).expect("applies");
    assert_eq!(search_ids(&index, "title:ΣΩΚΡΆΤΗΣ"), ["3"]);
    assert_eq!(search_ids(&index, "title:σωκρατης"), ["3"]);
    assert_eq!(search_ids(&index, "title:ismail"), ["3"]);
    assert_eq!(search_ids(&index, "title:İSMAİL"), ["3"]);
    assert_eq!(search_ids(&index, "title:ingenieure"), ["3"]);
    assert_eq!(search_ids(&index, "title:İSM*"), ["3"]);
    assert_eq!(search_ids(&index, "title:σωκ*"), ["3"]);
    assert_eq!(search_ids(&index, "plain:σωκράτης"), ["3"]);
    assert_eq!(search_ids(&index, "title:ingenieur"), ["1", "2"]);
    assert_eq!(search_ids(&index, "title:INGÉNIEUR"), ["1", "2"]);
    assert_eq!(search_ids(&index, "title:strasse"), ["2"]);
    assert_eq!(search_ids(&index, "plain:ingenieur"), ["2"]);
    // Reopened, as the CLI's search opens it: the analyzer is registered again.
    drop(writer);
    let reopened = SearchIndex::open_or_create(dir.path(), "jobs", &fields).expect("reopens");
    assert_eq!(search_ids(&reopened, "ingénieur"), ["1", "2"]);
}

/// `facets` counts the matches' values of fast fields, over every match and
/// every segment, a document with several values once for each distinct
/// one; fields that have no values to count are refused by name.
#[test]
fn facets_count_the_values_of_every_match() {
    use SearchFieldType::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let fields = vec![
        field("title", Text(TextAnalyzer::Default), true, false),
        field("tags", Keyword, true, true),
        field("stars", I64, true, true),
        field("open", Bool, true, true),
        field("city", Keyword, true, false),
        field("rating", F64, true, true),
        field("since", Date, true, true),
    ];
    let (index, writer) = index_with_writer(dir.path(), "shops", &fields);
    let first = vec![
        upsert(
            "1",
            json!({"title": "corner cafe", "tags": ["coffee", "cake", "coffee"], "stars": 4,
                   "open": true, "rating": [4.5, 4.9, 3.0], "since": "2025-12-31T23:59:59Z"}),
        ),
        upsert(
            "2",
            json!({"title": "night cafe", "tags": ["coffee"], "stars": -1, "open": false,
                   "rating": [-0.5, "NaN", "Infinity", 1e19], "since": "2026-01-01T00:00:00Z"}),
        ),
    ];
    writer.apply(first, at(1)).expect("applies");
    // A second commit, a second segment; and a deleted document that must
    // not count.
    let second = vec![
        upsert(
            "3",
            json!({"title": "tea room", "tags": ["tea", "cake"], "stars": 4,
                   "since": ["2026-03-01T00:00:00Z", "1960-05-01T00:00:00Z"]}),
        ),
        upsert(
            "4",
            json!({"title": "cafe bar", "tags": [], "stars": 5, "open": true}),
        ),
        upsert(
            "5",
            json!({"title": "closed cafe", "tags": ["coffee"], "stars": 4}),
        ),
        IndexOp::Delete { id: "5".into() },
    ];
    writer.apply(second, at(2)).expect("applies");
    let facets = |query: &str, fields: &str, limit: Option<usize>| {
        let page = PageRequest::parse(0, 1, None, Some(fields), limit).expect("a page");
        let page = index.search_page(query, &page).expect("searches");
        page.to_json("shops")["facets"].clone()
    };
    assert_eq!(
        facets("*", "tags,stars,open", None),
        json!({
            "tags": {"values": [
                {"value": "cake", "count": 2},
                {"value": "coffee", "count": 2},
                {"value": "tea", "count": 1},
            ], "more": 0},
            "stars": {"values": [
                {"value": 4, "count": 2},
                {"value": -1, "count": 1},
                {"value": 5, "count": 1},
            ], "more": 0},
            "open": {"values": [
                {"value": true, "count": 2},
                {"value": false, "count": 1},
            ], "more": 0},
        })
    );
    // Numbers by buckets of a width, named by their lower bound; dates by
    // UTC years, months or days; in the buckets' order.
    assert_eq!(
        facets("*", "stars:5,rating:1,since:year,since:month", Some(2)),
        json!({
            "stars:5": {"values": [
                {"value": -5, "count": 1},
                {"value": 0, "count": 2},
            ], "more": 1},
            "rating:1": {"values": [
                {"value": -1.0, "count": 1},
                {"value": 3.0, "count": 1},
            ], "more": 2},
            "since:year": {"values": [
                {"value": "1960", "count": 1},
                {"value": "2025", "count": 1},
            ], "more": 1},
            "since:month": {"values": [
                {"value": "1960-05", "count": 1},
                {"value": "2025-12", "count": 1},
            ], "more": 2},
        })
    );
    assert_eq!(
        facets("*", "since:day", Some(10))["since:day"]["values"],
        json!([
            {"value": "1960-05-01", "count": 1},
            {"value": "2025-12-31", "count": 1},
            {"value": "2026-01-01", "count": 1},
            {"value": "2026-03-01", "count": 1},
        ])
    );
    assert_eq!(
        facets("*", "rating:1", Some(10))["rating:1"]["values"],
        json!([
            {"value": -1.0, "count": 1},
            {"value": 3.0, "count": 1},
            {"value": 4.0, "count": 1},
            {"value": 1e19, "count": 1},
        ]),
        "4.5 and 4.9 count once; NaN and Infinity in no bucket; 1e19 past i64 in its own"
    );
    // A width far smaller than the values (trial 36: every price vanished);
    // a bound is `floor(value / width) * width`, as close as floats get.
    // 1e19 / 1e-300 is past f64's range: in no bucket, as NaN is.
    let tiny = facets("*", "rating:1e-300", Some(2))["rating:1e-300"].clone();
    let bounds: Vec<f64> = tiny["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|entry| entry["value"].as_f64().expect("a number"))
        .collect();
    assert!(
        bounds.len() == 2
            && (bounds[0] + 0.5).abs() < 1e-12
            && (bounds[1] - 3.0).abs() < 1e-12
            && tiny["more"] == 2,
        "{tiny}"
    );
    // Over the matches of the query, not the page of hits alone.
    assert_eq!(
        facets("cafe", "tags", Some(1)),
        json!({"tags": {"values": [{"value": "coffee", "count": 2}], "more": 1}})
    );
    let without_facets = index
        .search_page("*", &PageRequest::first(1))
        .expect("searches")
        .to_json("shops");
    assert!(without_facets.get("facets").is_none(), "{without_facets}");

    let refused = |fields: &str, limit: Option<usize>| {
        let error = PageRequest::parse(0, 1, None, Some(fields), limit)
            .and_then(|page| index.search_page("*", &page))
            .expect_err("refused");
        assert!(matches!(error, SearchError::Facet(_)), "{error}");
        error.to_string()
    };
    let countable = "fields to count: tags, stars, open, rating, since";
    assert!(refused("colour", None).contains(countable));
    assert!(refused("title", None).contains("a text field holds words"));
    assert!(refused("rating", None).contains("`rating:10` counts [0, 10)"));
    assert!(refused("since", None).contains("`since:month`"));
    assert!(refused("since:7", None).contains("`since:month`"));
    assert!(refused("stars:0.5", None).contains("a whole number, not 0.5"));
    assert!(refused("stars:fortnight", None).contains("a positive width"));
    assert!(refused("stars:week", None).contains("buckets are a width: `stars:100`"));
    assert!(refused("stars:-2", None).contains("a positive width"));
    assert!(refused("tags:10", None).contains("only numbers and dates have buckets"));
    assert!(refused("city", None).contains("give it `fast: true`"));
    assert!(refused("tags,,open", None).contains("separated by commas"));
    assert!(refused("tags", Some(0)).contains("from 1 to 1000"));
    let alone = PageRequest::parse(0, 1, None, None, Some(5)).expect_err("refused");
    assert!(alone.to_string().contains("goes with facets"), "{alone}");
}

/// `caf*` is a prefix: one word's is matched against the field's terms,
/// several words' as a phrase whose last word starts so; Tantivy alone read
/// `tra*` as the word `tra` (the thirty-fifth trial: nothing found, nothing
/// said) and refused `"ja"*`.
#[test]
fn a_prefix_finds_the_words_it_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(dir.path());
    let _writer = catalog(&index);
    assert_eq!(search_ids(&index, "tra*"), ["1"]);
    assert_eq!(search_ids(&index, "name:ja*"), ["2"]);
    assert_eq!(
        search_ids(&index, "name:JA*"),
        ["2"],
        "analyzed as the field is"
    );
    assert_eq!(search_ids(&index, r#"name:"ja"*"#), ["2"]);
    assert_eq!(search_ids(&index, r#"name:"rain ja"*"#), ["2"]);
    assert!(search_ids(&index, r#"name:"wool ja"*"#).is_empty());
    assert_eq!(search_ids(&index, "category:Sho*"), ["1", "3"]);
    assert!(
        search_ids(&index, "category:sho*").is_empty(),
        "keywords are exact"
    );
    assert_eq!(search_ids(&index, "* -name:tr*"), ["2", "3"]);
    assert_eq!(search_ids(&index, "name:w* OR category:Jack*"), ["2", "3"]);
    assert_eq!(search_ids(&index, "in_stock:true AND sho*"), ["1"]);
    for (query, refusal) in [
        ("price_cents:12*", "for a number or a date, give a range"),
        ("name:/ra.*/", "regular expressions"),
        (r#"name:"-"*"#, "has no word to start with"),
    ] {
        match index.search(query, 10) {
            Err(SearchError::Query(message)) => {
                assert!(message.contains(refusal), "{query}: {message}")
            }
            other => panic!("{query}: expected a query error, got {other:?}"),
        }
    }
}

/// `sort=stars:desc,name`: each key breaks the ties of the one before, a
/// document without a value last at every key, across segments (a
/// keyword's rank in one segment's dictionary does not compare with
/// another's, its text does).
#[test]
fn hits_may_be_sorted_by_several_fields() {
    use SearchFieldType::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let fields = vec![
        field("stars", I64, true, true),
        field("name", Keyword, true, true),
        field("price", F64, true, true),
    ];
    let (index, writer) = index_with_writer(dir.path(), "shops", &fields);
    let first = vec![
        upsert("1", json!({"stars": 4, "name": "Mocca", "price": 3.5})),
        upsert("2", json!({"stars": 5, "name": "Zest", "price": 2.0})),
        upsert("3", json!({"stars": 4, "name": "Beans", "price": 3.5})),
    ];
    writer.apply(first, at(1)).expect("applies");
    let second = vec![
        upsert("4", json!({"stars": 4, "name": "Brew", "price": 1.0})),
        upsert("5", json!({"name": "Alpha", "price": 3.5})),
        upsert("6", json!({"stars": 4, "price": 3.5})),
    ];
    writer.apply(second, at(2)).expect("applies");
    // A segment where no document has a price or a name.
    writer
        .apply(vec![upsert("7", json!({"stars": 1}))], at(3))
        .expect("applies");
    let sorted = |sort: &str| sorted_ids(&index, sort);
    // Ties left over keep the index's order, which a merge changes: every
    // sort here ends with a key that tells the documents apart.
    assert_eq!(sorted("name:desc,stars"), "2,1,4,3,5,7,6");
    assert_eq!(sorted("stars:desc,name"), "2,3,4,1,6,7,5");
    assert_eq!(sorted("stars:desc, name:desc"), "2,1,4,3,6,7,5");
    assert_eq!(sorted("price:desc,stars,name"), "3,1,6,5,2,4,7");
    assert_eq!(sorted("price,name:desc"), "4,2,1,3,5,6,7");
    let refused = |sort: &str| {
        let error = SearchSort::parse(sort)
            .and_then(|sort| index.search_page("*", &sorted_by(sort, 0, 10)))
            .expect_err("refused");
        assert!(matches!(error, SearchError::Sort(_)), "{error}");
        error.to_string()
    };
    assert!(refused("stars,name,price,stars").contains("at most 3 fields"));
    assert!(refused("stars,").contains("a field name for each key"));
    assert!(refused("stars,colour").contains("no such field"));
}

/// What a search box receives: an apostrophe inside a word is a letter of
/// it, not a quote (trial 36: `rosé d'été` was a syntax error), and
/// `word~1`, fuzzy elsewhere, is refused rather than finding nothing.
#[test]
fn a_query_is_read_as_typed_into_a_search_box() {
    use SearchFieldType::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let fields = vec![field("name", Text(TextAnalyzer::Folded), true, false)];
    let (index, writer) = index_with_writer(dir.path(), "wines", &fields);
    let ops = vec![
        upsert("1", json!({"name": "Rosé d'été"})),
        upsert("2", json!({"name": "O'Neill Vineyards"})),
        upsert("3", json!({"name": "Rioja Reserva"})),
    ];
    writer.apply(ops, at(1)).expect("applies");
    assert_eq!(search_ids(&index, "o'neill"), ["2"]);
    assert_eq!(search_ids(&index, "rosé d'été"), ["1"]);
    assert_eq!(search_ids(&index, "name:d'et*"), ["1"]);
    assert_eq!(search_ids(&index, "'rose d'ete'"), ["1"]);
    assert_eq!(search_ids(&index, "O'Neill' OR rioja"), ["2", "3"]);
    match index.search("name:rioja~1", 10) {
        Err(SearchError::Query(message)) => {
            assert!(message.contains("fuzzy matching"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(search_ids(&index, "\"rioja reserva\"~1"), ["3"]);
    // A lookup by id, as the README gives it.
    assert_eq!(search_ids(&index, "_id:\"2\""), ["2"]);
}

/// A field with `fuzzy: n` matches query words up to n edits from its
/// terms (a swap of two letters is one), as a typed handle or name has
/// them (trials 31 and 39); other fields stay exact, also in one query.
#[test]
fn a_fuzzy_field_matches_words_a_few_edits_away() {
    use SearchFieldType::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let fields = vec![
        SearchField {
            fuzzy: 1,
            ..field("handle", Keyword, true, false)
        },
        SearchField {
            fuzzy: 2,
            ..field("bio", Text(TextAnalyzer::Folded), true, false)
        },
        field("guild", Text(TextAnalyzer::Default), true, false),
    ];
    let (index, writer) = index_with_writer(dir.path(), "players", &fields);
    let ops = vec![
        upsert(
            "1",
            json!({"handle": "shadowfax", "bio": "Ranger of the north", "guild": "owls"}),
        ),
        upsert(
            "2",
            json!({"handle": "shadowcat", "bio": "Sniper, café regular", "guild": "foxes"}),
        ),
        upsert(
            "3",
            json!({"handle": "gandalf", "bio": "Wizard", "guild": "owls"}),
        ),
    ];
    writer.apply(ops, at(1)).expect("applies");
    // One edit: a letter changed, dropped, or two swapped.
    assert_eq!(search_ids(&index, "handle:shadowfox"), ["1"]);
    assert_eq!(search_ids(&index, "handle:gandlf"), ["3"]);
    assert_eq!(search_ids(&index, "handle:gnadalf"), ["3"]);
    // Two edits are past this field's one.
    assert_eq!(search_ids(&index, "handle:shadofox"), Vec::<String>::new());
    // Two on the text field, after its analyzer folds the word.
    assert_eq!(search_ids(&index, "bio:snyper"), ["2"]);
    assert_eq!(search_ids(&index, "bio:CAFFE"), ["2"]);
    assert_eq!(search_ids(&index, "bio:wizzrd"), ["3"]);
    // A field without `fuzzy` is exact, beside a fuzzy one.
    assert_eq!(search_ids(&index, "guild:owl"), Vec::<String>::new());
    assert_eq!(search_ids(&index, "guild:owls AND handle:gandalv"), ["3"]);
}
