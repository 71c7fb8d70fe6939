//! Search views: after a random workload (product and category renames,
//! deletes, large descriptions) the index holds exactly one document per
//! product with current stored values, and it answers queries over HTTP and
//! on the command line; malformed queries get a 400 with the parser's message.

mod harness;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use harness::{
    PgServer, RedisServer, ServiceSetup, converged, http_get, served_small_shop, small_shop,
    wait_until,
};
use serde_json::Value;
use viewkeeper::workload::{self, WorkloadOptions};

const CONVERGE: Duration = Duration::from_secs(120);

/// The `vktoken…` word the workload writes into large descriptions.
fn unique_token(description: &str) -> Option<String> {
    let start = description.find("vktoken")?;
    Some(
        description[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect(),
    )
}

fn hit_ids(body: &str) -> Vec<String> {
    let response: Value = serde_json::from_str(body).expect("a JSON response");
    response["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| hit["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_matches_the_oracle_and_answers_queries() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    let stats = workload::run(&pool, &WorkloadOptions::new(2_500, 17))
        .await
        .expect("workload");
    assert!(stats.committed > 2_000, "{stats:?}");
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    // A token written into exactly one product's description finds it alone.
    let (id, description): (i64, String) = sqlx::query_as(
        "SELECT id, description FROM products WHERE description LIKE '%vktoken%' ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("the workload writes large descriptions with tokens");
    let token = unique_token(&description).expect("a token");
    let (status, body) = http_get(
        setup.admin_port,
        &format!("/views/product_search/search?q=description:{token}&limit=5"),
    )
    .await
    .expect("a search over HTTP");
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_ids(&body), [id.to_string()], "{body}");

    // The command line reads the same index while the service runs.
    assert_eq!(cli_search(&setup, &token), [id.to_string()]);

    // Queries the parser refuses are the client's mistake, never a 500.
    for bad in ["price_cents:[1%20TO", "nosuchfield:x", "%22unclosed"] {
        let (status, body) = http_get(
            setup.admin_port,
            &format!("/views/product_search/search?q={bad}"),
        )
        .await
        .expect("a search over HTTP");
        assert_eq!(status, 400, "{bad}: {body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    let (status, _) = http_get(setup.admin_port, "/views/nope/search?q=x")
        .await
        .unwrap();
    assert_eq!(status, 404);
    // A limit of 0 gets no hits (it got one); one above the largest is
    // refused (it was cut to it without a word).
    let search =
        |limit: &str| format!("/views/product_search/search?q=description:{token}&limit={limit}");
    let (status, body) = http_get(setup.admin_port, &search("0")).await.unwrap();
    assert_eq!(
        (status, hit_ids(&body)),
        (200, Vec::<String>::new()),
        "{body}"
    );
    let (status, body) = http_get(setup.admin_port, &search("5000")).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`limit` is at most 1000, not 5000"), "{body}");

    // Pages: `offset` skips the best hits, `total` counts every match, and
    // a page past the deepest allowed is refused. (That pages neither skip
    // nor repeat a hit is the unit test's: a merge between two requests
    // here may reorder documents of equal score.)
    let (products,): (i64,) = sqlx::query_as("SELECT count(*) FROM products")
        .fetch_one(&pool)
        .await
        .unwrap();
    let products = products as usize;
    assert!(products > 50, "{products}");
    let page = |offset: usize| format!("/views/product_search/search?q=*&limit=50&offset={offset}");
    for offset in [0, products - 1, products] {
        let (status, body) = http_get(setup.admin_port, &page(offset)).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let response: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(response["total"], Value::from(products), "{body}");
        assert_eq!(hit_ids(&body).len(), 50.min(products - offset), "{body}");
    }
    let port = setup.admin_port;
    let refused = |path: String, message: &'static str| async move {
        let (status, body) = http_get(port, &path).await.unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(message), "{body}");
    };
    refused(page(9_999), "`offset` + `limit` is at most 10000").await;
    // A parameter the API does not take is refused, not ignored (the
    // nineteenth trial's `sort=` answered 200, ranked by score).
    refused(
        "/views/product_search/search?q=*&order=name".into(),
        "unknown query parameter `order`; this call takes one of `q`, `limit`",
    )
    .await;
    // `sort=` orders the hits by a fast field, as SQL's ORDER BY would
    // (ties in the index's order, so the prices are compared).
    let (status, body) = http_get(
        setup.admin_port,
        "/views/product_search/search?q=*&sort=price_cents:desc&limit=20&offset=5",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let response: Value = serde_json::from_str(&body).unwrap();
    let prices: Vec<i64> = response["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| {
            hit["fields"]["price_cents"]
                .as_i64()
                .expect("a stored price")
        })
        .collect();
    let expected: Vec<(i64,)> = sqlx::query_as(
        "SELECT price_cents FROM products ORDER BY price_cents DESC LIMIT 20 OFFSET 5",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<i64> = expected.into_iter().map(|(price,)| price).collect();
    assert_eq!(prices, expected, "{body}");
    refused(
        "/views/product_search/search?q=*&sort=name".into(),
        "cannot sort by name: a text field",
    )
    .await;

    // A search view that stops checking (a column it reads renamed) is told
    // as failed, not as no view at all (the fourteenth trial's 404).
    // (Seen when a change to the table comes through the log.)
    for sql in [
        "ALTER TABLE products RENAME COLUMN description TO descr",
        "UPDATE products SET descr = descr || ' ' WHERE id % 5 = 0",
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.expect(sql);
    }
    let body = wait_until(CONVERGE, "product_search is told as failed", || async {
        let (status, body) = http_get(setup.admin_port, "/views/product_search/search?q=x").await?;
        if status == 503 {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    })
    .await;
    let error: Value = serde_json::from_str(&body).expect("a JSON error");
    let error = error["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("search view \"product_search\" is failed")
            && error.contains("column \"description\" does not exist"),
        "{body}"
    );
    sqlx::raw_sql("ALTER TABLE products RENAME COLUMN descr TO description")
        .execute(&pool)
        .await
        .expect("renaming back");
    service.assert_running();

    // ... and after it stopped, also beside a broken view file, which
    // does not keep this view's index from being read (it refused).
    service.kill().await;
    assert_eq!(cli_search(&setup, &token), [id.to_string()]);
    let views = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        setup.views.join("product_search.yaml"),
        views.path().join("product_search.yaml"),
    )
    .expect("copying the view");
    std::fs::write(views.path().join("broken.yaml"), "view: [\n").expect("a broken file");
    let beside_broken = ServiceSetup {
        views: views.path().to_path_buf(),
        ..setup
    };
    assert_eq!(cli_search(&beside_broken, &token), [id.to_string()]);
}

/// `viewkeeper search product_search QUERY`: the ids of the hits it prints.
fn cli_search(setup: &ServiceSetup, query: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["search", "product_search", query])
        .arg("--views")
        .arg(&setup.views)
        .arg("--data-dir")
        .arg(setup.data_dir())
        .output()
        .expect("viewkeeper search");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    hit_ids(&stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_category_is_searchable_within_a_second() {
    let (_pg, _redis, pool, setup, _service) = served_small_shop(CONVERGE).await;

    let category: i64 = sqlx::query_scalar(
        "SELECT category_id FROM products WHERE category_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products WHERE category_id = $1")
        .bind(category)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE categories SET name = 'Zeppelins' WHERE id = $1")
        .bind(category)
        .execute(&pool)
        .await
        .unwrap();
    let found = wait_until(
        Duration::from_secs(1),
        "the renamed category is searchable",
        || async {
            let (_, body) = http_get(
                setup.admin_port,
                "/views/product_search/search?q=category:Zeppelins&limit=1000",
            )
            .await?;
            let ids = hit_ids(&body);
            if ids.len() as i64 == products {
                Ok(ids)
            } else {
                Err(format!("{} of {products}", ids.len()))
            }
        },
    )
    .await;
    assert_eq!(found.len() as i64, products);
}

const NOTES_SCHEMA: &str = "
    CREATE TABLE authors (id bigint PRIMARY KEY, name text);
    CREATE TABLE notes (id bigint PRIMARY KEY, author_id bigint, body text, pinned boolean,
                        rating numeric(6,2), written timestamptz, day date, tags jsonb,
                        code char(5), labels text[], due date);
    INSERT INTO authors VALUES (1, 'Ada'), (2, 'Grace');
    INSERT INTO notes VALUES
        (1, 1, 'She runs every morning', true, 4.50, '2026-03-01 08:00:00+01', '2026-03-01',
         '[\"rain\"]', NULL, '{red,blue}', 'infinity'),
        (2, 2, 'Running late again', false, 2.25, '2025-12-31 23:30:00-02', '2025-12-31',
         '\"late\"', NULL, '{NULL,\"dark green\"}', '2026-02-01'),
        (3, 1, 'A quiet walk', NULL, NULL, NULL, NULL, '[]', NULL, '{}', '-infinity'),
        (4, NULL, NULL, true, 5, '2026-06-01 00:00:00+00', '2026-06-01', NULL, NULL,
         '{red}', '9999-12-31');
    CREATE TABLE comments (id bigint PRIMARY KEY, note_id bigint, body text, stars int);
    INSERT INTO comments VALUES
        (1, 1, 'Lovely morning light', 5), (2, 1, 'Too early for me', NULL),
        (3, 2, 'Relatable', 4), (4, 2, NULL, 2), (5, 4, 'No body to this note', 1);";

const NOTE_SEARCH: &str = r#"
view: note_search
kind: search
root: notes
id: id
where: "body IS NOT NULL"
fields:
  body:    { from: body, type: text, analyzer: english, stored: true }
  pinned:  { from: pinned, type: bool, stored: true, fast: true }
  rating:  { from: rating, type: f64, stored: true, fast: true }
  written: { from: written, type: date, stored: true, fast: true }
  day:     { from: day, type: date, stored: true }
  author:  { from: author.name, type: keyword, stored: true, fast: true }
  tags:    { from: tags, type: text, stored: true }
  comments: { from: comments.body, type: text, stored: true }
  stars:   { from: comments.stars, type: i64, stored: true, fast: true }
  code:    { from: code, type: keyword, stored: true }
  labels:  { from: labels, type: keyword, stored: true, fast: true }
  due:     { from: due, type: date, stored: true, fast: true }
  label:   { from: "upper(coalesce(author.name, 'anon')) || ': ' || body", type: keyword, stored: true }
  open_due: { from: "nullif(due, 'infinity')", type: date, stored: true, fast: true }
  doubled: { from: "rating * 2", type: f64, stored: true }
joins:
  author: { one: authors, on: { id: author_id } }
  comments: { many: comments, on: { note_id: id } }
"#;

/// The stored fields of `note_search`, as plain SQL says, in the values'
/// JSON encoding (README, "Value encoding"): a `numeric` as its text, a
/// `timestamptz` as its instant in UTC with 6 fraction digits, a `date` as
/// written (`infinity` too), NULL fields absent, a jsonb value and an array
/// column as JSON, a `many` join's field as the array of its rows'
/// non-NULL values in key order, a `char(n)` without its padding.
const NOTES_ORACLE: &str = r#"
    SELECT n.id::text, json_strip_nulls(json_build_object(
        'body', n.body, 'pinned', n.pinned, 'rating', n.rating::text,
        'written', to_char(n.written AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'day', n.day::text, 'author', a.name, 'tags', n.tags,
        'comments', coalesce((SELECT json_agg(c.body ORDER BY c.id) FROM comments c
                              WHERE c.note_id = n.id AND c.body IS NOT NULL), '[]'),
        'stars', coalesce((SELECT json_agg(c.stars ORDER BY c.id) FROM comments c
                           WHERE c.note_id = n.id AND c.stars IS NOT NULL), '[]'),
        'code', n.code::text, 'labels', n.labels, 'due', n.due::text,
        'label', upper(coalesce(a.name, 'anon')) || ': ' || n.body,
        'open_due', nullif(n.due, 'infinity')::text, 'doubled', (n.rating * 2)::text))::text
    FROM notes n LEFT JOIN authors a ON a.id = n.author_id
    WHERE n.body IS NOT NULL"#;

/// The ids of the notes a SQL condition selects, in id order.
async fn sql_ids(pool: &sqlx::PgPool, condition: &str) -> Vec<String> {
    let query = format!(
        "SELECT id::text FROM notes WHERE body IS NOT NULL AND ({condition}) ORDER BY id::text"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(query))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|error| panic!("{condition}: {error}"))
}

/// A facet's counts by value's text, as the search API gives them.
async fn search_facet(port: u16, query: &str, facet: &str) -> BTreeMap<String, u64> {
    let path =
        format!("/views/note_search/search?q={query}&limit=0&facets={facet}&facet_limit=1000");
    let (status, body) = http_get(port, &path).await.expect("a search over HTTP");
    assert_eq!(status, 200, "{path}: {body}");
    let page: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(page["facets"][facet]["more"], 0, "{body}");
    let values = page["facets"][facet]["values"].as_array().expect("values");
    values
        .iter()
        .map(|entry| {
            let text = match &entry["value"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (text, entry["count"].as_u64().expect("a count"))
        })
        .collect()
}

/// Matching notes by value, as SQL counts them: `values` selects each
/// note's id and one value's text per row.
async fn sql_facet(pool: &sqlx::PgPool, values: &str, condition: &str) -> BTreeMap<String, u64> {
    let query = format!(
        "SELECT v.value, count(DISTINCT v.id) FROM ({values}) AS v(id, value)
         JOIN notes ON notes.id = v.id
         WHERE notes.body IS NOT NULL AND ({condition}) AND v.value IS NOT NULL
         GROUP BY v.value"
    );
    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|error| panic!("{values}: {error}"));
    rows.into_iter()
        .map(|(value, count)| (value, count as u64))
        .collect()
}

async fn search_ids(port: u16, query: &str) -> Vec<String> {
    view_search_ids(port, "note_search", query).await
}

/// The ids of the hits of `view` for `query`, sorted.
async fn view_search_ids(port: u16, view: &str, query: &str) -> Vec<String> {
    let (status, body) = http_get(port, &format!("/views/{view}/search?q={query}&limit=100"))
        .await
        .expect("a search over HTTP");
    assert_eq!(status, 200, "{query}: {body}");
    let mut ids = hit_ids(&body);
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stemming_booleans_floats_dates_and_joins_go_through_the_whole_pipeline() {
    let pg = PgServer::start().await;
    let url = pg.create_database("notes").await;
    let pool = pg.pool("notes").await;
    sqlx::raw_sql(NOTES_SCHEMA)
        .execute(&pool)
        .await
        .expect("the notes schema");
    let views = tempfile::tempdir().expect("a views directory");
    std::fs::write(views.path().join("note_search.yaml"), NOTE_SEARCH).expect("the view");
    // No cache view: Redis is never contacted.
    let setup = ServiceSetup::with_views(&url, "redis://127.0.0.1:1", views.path().to_path_buf());
    let mut service = setup.start();
    sqlx::raw_sql(
        "UPDATE authors SET name = 'Ada L' WHERE id = 1;
         UPDATE notes SET body = 'Running in the rain', tags = '[[\"deep\"]]' WHERE id = 3;
         INSERT INTO notes VALUES (5, 2, 'Walks and runs', false, 3.75, '2026-01-15 12:00:00+00', '2026-01-15');
         INSERT INTO comments VALUES (6, 5, 'Rainy walks are best', 5), (7, 3, 'Quiet indeed', 3);
         UPDATE comments SET note_id = 5 WHERE id = 3;
         UPDATE comments SET body = 'Early birds' WHERE id = 2;
         DELETE FROM comments WHERE id = 1;
         UPDATE notes SET code = 'ZZ9' WHERE id IN (1, 5);
         UPDATE notes SET code = 'A B' WHERE id = 2;
         UPDATE notes SET labels = '{red,NULL,red}', due = '9999-12-31',
                          written = '2026-01-15 12:00:00.25+00' WHERE id = 5;
         UPDATE notes SET labels = '{{blue,red},{NULL,teal}}' WHERE id = 3;",
    )
    .execute(&pool)
    .await
    .expect("changes while streaming");

    service.assert_running();
    index_matches(&pool, &setup, "note_search", NOTES_ORACLE, "the changes").await;

    let port = setup.admin_port;
    // The service's reader reloads just after the commit the files show.
    wait_until(
        CONVERGE,
        "the service's searcher sees the commit",
        || async {
            match search_ids(port, "body:running").await {
                ids if ids == ["1", "2", "3", "5"] => Ok(()),
                ids => Err(format!("english stems run/runs/running: {ids:?}")),
            }
        },
    )
    .await;
    assert_eq!(search_ids(port, "pinned:true").await, ["1"]);
    assert_eq!(search_ids(port, "rating:[3%20TO%205]").await, ["1", "5"]);
    // Note 2 was written at 2025-12-31 23:30-02, which is 2026-01-01 01:30 UTC.
    assert_eq!(
        search_ids(port, "written:[2026-01-01T00:00:00Z%20TO%20*]").await,
        ["1", "2", "5"]
    );
    // A bare date is its midnight in UTC, as a `date` column is indexed.
    assert_eq!(search_ids(port, "day:2026-03-01").await, ["1"]);
    assert_eq!(
        search_ids(port, "day:[2026-01-01%20TO%20*]").await,
        ["1", "5"]
    );
    assert_eq!(
        search_ids(port, "day:IN%20[2025-12-31%202026-01-15]").await,
        ["2", "5"]
    );
    assert_eq!(search_ids(port, "author:%22Ada%20L%22").await, ["1", "3"]);
    // A `many` join's field matches any of its rows' values.
    assert_eq!(search_ids(port, "comments:rainy").await, ["5"]);
    assert_eq!(search_ids(port, "comments:relatable").await, ["5"]);
    assert_eq!(search_ids(port, "stars:[5%20TO%205]").await, ["5"]);
    assert_eq!(search_ids(port, "stars:[2%20TO%203]").await, ["2", "3"]);
    // A `char(5)` holding `ZZ9  ` is found as SQL's `code = 'ZZ9'` finds it.
    assert_eq!(search_ids(port, "code:ZZ9").await, ["1", "5"]);
    assert_eq!(search_ids(port, "code:%22A%20B%22").await, ["2"]);
    // An array column is its elements, as `= ANY` reads it; a date beyond
    // the index's years (`infinity`, `9999-12-31`) is at its end of time.
    for (query, condition) in [
        ("labels:red", "'red' = ANY(labels)"),
        ("labels:%22dark%20green%22", "'dark green' = ANY(labels)"),
        ("labels:NULL", "'NULL' = ANY(labels)"),
        (
            "*%20-labels:red",
            "NOT coalesce('red' = ANY(labels), false)",
        ),
        ("due:[2026-01-01%20TO%20*]", "due >= '2026-01-01'"),
        ("due:[*%20TO%202026-01-01}", "due < '2026-01-01'"),
        ("due:[2100-01-01%20TO%20*]", "due >= '2100-01-01'"),
        // A date on a fast field matches to the microsecond.
        (
            "written:%222026-01-15T12:00:00Z%22",
            "written = '2026-01-15 12:00:00+00'",
        ),
        (
            "written:%222026-01-15T12:00:00.25Z%22",
            "written = '2026-01-15 12:00:00.25+00'",
        ),
        // Prefixes, as LIKE 'x%' finds them.
        (
            "author:Ad*",
            "(SELECT name FROM authors WHERE id = author_id) LIKE 'Ad%'",
        ),
        (
            "labels:da*",
            "EXISTS (SELECT FROM unnest(labels) AS l WHERE l LIKE 'da%')",
        ),
        (
            "comments:rel*",
            "EXISTS (SELECT FROM comments c WHERE c.note_id = notes.id AND c.body ~* '\\mrel')",
        ),
        // Computed fields, as SQL computes them.
        (
            "open_due:[2100-01-01%20TO%20*]",
            "nullif(due, 'infinity') >= '2100-01-01'",
        ),
        ("doubled:[5%20TO%2010]", "rating * 2 BETWEEN 5 AND 10"),
        (
            "label:%22ADA%20L:%20Running%20in%20the%20rain%22",
            "upper(coalesce((SELECT name FROM authors WHERE id = author_id), 'anon')) || ': ' \
             || body = 'ADA L: Running in the rain'",
        ),
    ] {
        assert_eq!(
            search_ids(port, query).await,
            sql_ids(&pool, condition).await,
            "{query} against {condition}"
        );
    }
    // Facet counts are SQL's count(DISTINCT id) by value over the matches,
    // for a bool, a `one` join's keyword, a `many` join's i64 and an array
    // column's elements.
    for (query, condition) in [
        ("*", "true"),
        ("rating:[3%20TO%205]", "rating BETWEEN 3 AND 5"),
    ] {
        for (facet, values) in [
            ("pinned", "SELECT n.id, n.pinned::text FROM notes n"),
            (
                "author",
                "SELECT n.id, a.name FROM notes n JOIN authors a ON a.id = n.author_id",
            ),
            (
                "stars",
                "SELECT n.id, c.stars::text FROM notes n JOIN comments c ON c.note_id = n.id",
            ),
            (
                "labels",
                "SELECT n.id, l FROM notes n, unnest(n.labels) AS l",
            ),
            // Buckets: of an i64's values by a width, of a date's by
            // month, quarter and week (named by its Monday).
            (
                "stars:2",
                "SELECT n.id, (floor(c.stars / 2.0) * 2)::bigint::text
                 FROM notes n JOIN comments c ON c.note_id = n.id",
            ),
            (
                "written:month",
                "SELECT n.id, to_char(n.written AT TIME ZONE 'UTC', 'YYYY-MM') FROM notes n",
            ),
            (
                "written:quarter",
                "SELECT n.id, to_char(n.written AT TIME ZONE 'UTC', 'YYYY-\"Q\"Q') FROM notes n",
            ),
            (
                "written:week",
                "SELECT n.id, date_trunc('week', n.written AT TIME ZONE 'UTC')::date::text
                 FROM notes n",
            ),
        ] {
            assert_eq!(
                search_facet(port, query, facet).await,
                sql_facet(&pool, values, condition).await,
                "facet {facet} of {query}"
            );
        }
    }
    // The CLI counts as the API does, and refuses a field that is not fast.
    let cli = |facets: &str| {
        Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
            .args([
                "search",
                "note_search",
                "*",
                "--limit",
                "0",
                "--facets",
                facets,
            ])
            .arg("--views")
            .arg(&setup.views)
            .arg("--data-dir")
            .arg(setup.data_dir())
            .output()
            .expect("viewkeeper search")
    };
    let counted = cli("labels,pinned");
    assert!(counted.status.success(), "{counted:?}");
    let printed: Value = serde_json::from_slice(&counted.stdout).expect("JSON");
    let (_, body) = http_get(
        port,
        "/views/note_search/search?q=*&limit=0&facets=labels,pinned",
    )
    .await
    .expect("a search over HTTP");
    let served: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(printed["facets"], served["facets"], "{body}");
    let refused = cli("code");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("code: it is not a fast field"),
        "{stderr}"
    );
    // A bound beyond the index's instants is refused: the index holds
    // `infinity` and `9999-12-31` alike at its last instant, so it could
    // not tell which are after it (trial 33 found none or all).
    let (status, body) = http_get(
        port,
        "/views/note_search/search?q=due:[2300-01-01%20TO%20*]",
    )
    .await
    .expect("a search over HTTP");
    assert!(
        status == 400 && body.contains("beyond the instants the index holds"),
        "{status} {body}"
    );
    // Several keys, each breaking the ties of the one before, NULLs last.
    let (_, body) = http_get(
        port,
        "/views/note_search/search?q=*&sort=pinned:desc,rating:desc,written&limit=10",
    )
    .await
    .expect("a sorted search");
    let by_sql: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM notes WHERE body IS NOT NULL
         ORDER BY pinned DESC NULLS LAST, rating DESC NULLS LAST, written NULLS LAST, id",
    )
    .fetch_all(&pool)
    .await
    .expect("the notes in order");
    assert_eq!(hit_ids(&body), by_sql, "sorted by three keys: {body}");
    // Sorted, values beyond 2261 tie at the end: their order among
    // themselves is the index's.
    let (_, body) = http_get(port, "/views/note_search/search?q=*&sort=due:asc&limit=10")
        .await
        .expect("a sorted search");
    let by_sql: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM notes WHERE body IS NOT NULL
         ORDER BY least(due, '2262-01-01') NULLS LAST, id",
    )
    .fetch_all(&pool)
    .await
    .expect("the notes by due");
    let beyond: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM notes WHERE body IS NOT NULL AND due >= '2262-01-01' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("the notes due beyond 2261");
    let (mut sorted, tied) = (hit_ids(&body), by_sql.len() - beyond.len()..);
    sorted[tied.clone()].sort();
    assert_eq!(sorted, by_sql, "sorted by due: {body}");
    assert_eq!(by_sql[tied], beyond, "the notes due beyond 2261 are last");
}

const ACCOUNT_SEARCH: &str = r#"
view: account_search
kind: search
root: accounts
id: code
fields:
  name: { from: name, type: text, stored: true }
"#;

/// Waits until the index of `view` holds the documents `oracle` selects
/// (each row an id and its document's JSON), after `step`.
async fn index_matches(
    pool: &sqlx::PgPool,
    setup: &ServiceSetup,
    view: &str,
    oracle: &'static str,
    step: &str,
) {
    let what = format!("the index of {view} matches SQL after {step}");
    wait_until(CONVERGE, &what, || {
        let pool = pool.clone();
        let (views, data_dir) = (setup.views.clone(), setup.data_dir());
        async move {
            let rows: Vec<(String, String)> = sqlx::query_as(oracle)
                .fetch_all(&pool)
                .await
                .map_err(|e| e.to_string())?;
            let expected = rows
                .into_iter()
                .map(|(id, doc)| (id, serde_json::from_str(&doc).expect("oracle JSON")))
                .collect();
            let actual = harness::index_documents(&views, &data_dir, view)?;
            let differences = harness::diff_documents(&expected, &actual);
            if differences.is_empty() {
                Ok(())
            } else {
                Err(differences.join("\n"))
            }
        }
    })
    .await;
}

/// The accounts' documents, by code.
const ACCOUNTS_ORACLE: &str =
    "SELECT code::text, json_build_object('name', name)::text FROM accounts";

/// A search view's `id` may be a unique NOT NULL column (trial 36: a
/// product's `sku`, a `char(10)`), as a cache key may: two rows may hold one
/// code in turn within a transaction, so each id is claimed, and each ends
/// with its row's document, without a dead letter. A `char(n)` id is
/// without its padding, as `code::text` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_by_a_unique_column_follows_renames_swaps_and_deletes() {
    let pg = PgServer::start().await;
    let url = pg.create_database("accounts").await;
    let pool = pg.pool("accounts").await;
    sqlx::raw_sql(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, code char(6) NOT NULL, name text,
                                UNIQUE (code) DEFERRABLE INITIALLY DEFERRED);
         INSERT INTO accounts SELECT i, 'A' || i, 'Account ' || i FROM generate_series(1, 20) i;",
    )
    .execute(&pool)
    .await
    .expect("the accounts");
    let views = tempfile::tempdir().expect("a views directory");
    std::fs::write(views.path().join("account_search.yaml"), ACCOUNT_SEARCH).expect("the view");
    let setup = ServiceSetup::with_views(&url, "redis://127.0.0.1:1", views.path().to_path_buf());
    let port = setup.admin_port;
    let mut service = setup.start();
    index_matches(
        &pool,
        &setup,
        "account_search",
        ACCOUNTS_ORACLE,
        "the snapshot",
    )
    .await;
    for sql in [
        "UPDATE accounts SET code = 'B1' WHERE id = 1",
        "UPDATE accounts SET code = CASE id WHEN 2 THEN 'A3' ELSE 'A2' END WHERE id IN (2, 3)",
        "UPDATE accounts SET code = 'R' || ((id % 20) + 1), name = name || '.'",
        "WITH d AS (DELETE FROM accounts WHERE id = 7 RETURNING code)
         UPDATE accounts SET code = (SELECT code FROM d) WHERE id = 8",
        "INSERT INTO accounts VALUES (21, 'R9', 'new')",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect(sql);
        index_matches(&pool, &setup, "account_search", ACCOUNTS_ORACLE, sql).await;
    }
    harness::wait_for_view_counts(port, "dead_letters", &[("account_search", 0)]).await;
    // A crash and another rotation: the claims are in the state store.
    service.kill().await;
    let mut service = setup.start();
    sqlx::raw_sql("UPDATE accounts SET code = 'S' || ((id % 21) + 1)")
        .execute(&pool)
        .await
        .expect("a rotation");
    let step = "a restart and a rotation";
    index_matches(&pool, &setup, "account_search", ACCOUNTS_ORACLE, step).await;
    harness::wait_for_view_counts(port, "dead_letters", &[("account_search", 0)]).await;
    service.assert_running();
}

const PLAYER_SEARCH: &str = r#"
view: player_search
kind: search
root: players
id: id
fields:
  handle:  { from: handle, type: text, stored: true }
  guilds:  { from: guild.name, type: keyword, stored: true, fast: true }
  regions: { from: region.name, type: keyword, stored: true }
  roles:   { from: memberships.role, type: keyword, stored: true }
joins:
  memberships: { many: memberships, on: { player_id: id } }
  guild:  { one: guilds, on: { id: memberships.guild_id } }
  region: { one: regions, on: { code: guild.region_code } }
"#;

/// `player_search`'s documents as SQL says: each field through the link
/// table is the array of the non-NULL values its rows lead to, in the
/// memberships' key order.
const PLAYERS_ORACLE: &str = r#"
    SELECT p.id::text, json_build_object(
        'handle', p.handle,
        'guilds', coalesce((SELECT json_agg(g.name ORDER BY m.player_id, m.guild_id)
                            FROM memberships m JOIN guilds g ON g.id = m.guild_id
                            WHERE m.player_id = p.id AND g.name IS NOT NULL), '[]'),
        'regions', coalesce((SELECT json_agg(r.name ORDER BY m.player_id, m.guild_id)
                             FROM memberships m JOIN guilds g ON g.id = m.guild_id
                             JOIN regions r ON r.code = g.region_code
                             WHERE m.player_id = p.id AND r.name IS NOT NULL), '[]'),
        'roles', coalesce((SELECT json_agg(m.role ORDER BY m.player_id, m.guild_id)
                           FROM memberships m
                           WHERE m.player_id = p.id AND m.role IS NOT NULL), '[]'))::text
    FROM players p"#;

/// A search field may read through a `many` join's `one` joins, a link
/// table's other side (trials 38 and 39: a player's guild names through
/// its memberships; a paper's authors through its authorships): a value per
/// link row, in its key order, kept as the far rows are renamed, links
/// move, and a join on the way finds no row. `check` refused such a join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_reads_through_a_link_table() {
    let pg = PgServer::start().await;
    let url = pg.create_database("game").await;
    let pool = pg.pool("game").await;
    sqlx::raw_sql(
        "CREATE TABLE regions (code text PRIMARY KEY, name text);
         CREATE TABLE guilds (id int PRIMARY KEY, name text, region_code text);
         CREATE TABLE players (id int PRIMARY KEY, handle text);
         CREATE TABLE memberships (player_id int, guild_id int, role text,
                                   PRIMARY KEY (player_id, guild_id));
         INSERT INTO regions VALUES ('eu', 'Europe'), ('na', 'North America');
         INSERT INTO guilds VALUES (1, 'Night Owls', 'eu'), (2, 'Red Foxes', 'na'),
                                   (3, 'Lone Wolves', NULL);
         INSERT INTO players VALUES (1, 'ada'), (2, 'grace'), (3, 'linus');
         INSERT INTO memberships VALUES (1, 1, 'lead'), (1, 2, NULL), (2, 2, 'member'),
                                        (2, 3, 'member');",
    )
    .execute(&pool)
    .await
    .expect("the game schema");
    let views = tempfile::tempdir().expect("a views directory");
    std::fs::write(views.path().join("player_search.yaml"), PLAYER_SEARCH).expect("the view");
    let setup = ServiceSetup::with_views(&url, "redis://127.0.0.1:1", views.path().to_path_buf());
    let port = setup.admin_port;
    let mut service = setup.start();
    index_matches(
        &pool,
        &setup,
        "player_search",
        PLAYERS_ORACLE,
        "the snapshot",
    )
    .await;
    for sql in [
        "UPDATE guilds SET name = 'Red Foxes II' WHERE id = 2",
        "UPDATE regions SET name = 'Europa' WHERE code = 'eu'",
        "UPDATE guilds SET region_code = 'eu' WHERE id = 3",
        "UPDATE memberships SET guild_id = 3 WHERE player_id = 1 AND guild_id = 2",
        "INSERT INTO memberships VALUES (3, 1, 'member'), (3, 9, 'ghost')",
        "INSERT INTO guilds VALUES (9, 'Late Guild', 'na')",
        "DELETE FROM guilds WHERE id = 1",
        "DELETE FROM regions WHERE code = 'na'",
        "UPDATE memberships SET player_id = 2 WHERE player_id = 3 AND guild_id = 9",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect(sql);
        index_matches(&pool, &setup, "player_search", PLAYERS_ORACLE, sql).await;
    }
    // A guild's name finds its members.
    wait_until(CONVERGE, "the searcher sees the last commit", || async {
        match view_search_ids(port, "player_search", "guilds:%22Lone%20Wolves%22").await {
            ids if ids == ["1", "2"] => Ok(()),
            ids => Err(format!("{ids:?}")),
        }
    })
    .await;
    service.assert_running();
}
