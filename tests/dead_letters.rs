//! Dead letters: a change that cannot be applied to one view (its document is
//! over `max_document_bytes`; an aggregate input overflows bigint) is
//! recorded with its LSN, table, key and reason, counted in `/status` and
//! `/metrics`, listed by `viewkeeper dead-letters VIEW`, and the other roots
//! and views stay current. A retry after a fix in the configuration, or a
//! fix in the data, brings the view back to the SQL oracle.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use harness::{
    PgServer, RedisServer, ServiceSetup, converged, converged_except, expected_order_cache,
    http_get, parse_prometheus, redis_matches, small_shop, wait_for_view_counts, wait_until,
};
use serde_json::Value;
use viewkeeper::workload::{self, Op, WorkloadOptions};

const DEADLINE: Duration = Duration::from_secs(120);
const TOKEN: &str = "dead-letter-token-81c3";

/// `viewkeeper dead-letters VIEW [--retry]` against the service on `port`:
/// what it printed, the retry's answer first when there was one.
fn dead_letters_cli(port: u16, view: &str, retry: bool) -> (Option<Value>, Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_viewkeeper"));
    command
        .args([
            "dead-letters",
            view,
            "--admin-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("VIEWKEEPER_ADMIN_TOKEN", TOKEN);
    if retry {
        command.arg("--retry");
    }
    let output = command.output().expect("running viewkeeper dead-letters");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let mut values = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let first = values.next().expect("a JSON document").expect("JSON");
    match values.next() {
        Some(second) => (Some(first), second.expect("JSON")),
        None => (None, first),
    }
}

/// Keys of the cache documents whose customer is `customer`.
fn orders_of(documents: &std::collections::BTreeMap<String, Value>, customer: i64) -> Vec<String> {
    documents
        .iter()
        .filter(|(_, doc)| doc["customer"]["id"].as_i64() == Some(customer))
        .map(|(key, _)| key.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_changes_land_in_dead_letters_while_the_rest_stays_current() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;

    // A limit well above every document the workload makes (products get
    // descriptions of up to 20 KB), so only the poisoned customer's orders
    // can exceed it.
    let documents = expected_order_cache(&pool).await;
    let largest = documents
        .values()
        .map(|doc| doc.to_string().len())
        .max()
        .expect("orders");
    let limit = (3 * largest).max(64 * 1024);
    let mut setup = ServiceSetup::new(&url, &redis.url());
    setup.extra_args = vec![
        "--max-document-bytes".into(),
        limit.to_string(),
        "--admin-token".into(),
        TOKEN.into(),
    ];
    let port = setup.admin_port;
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;

    // The customer with the most orders in the cache gets a name that makes
    // each of their documents too large.
    let customer = documents
        .values()
        .filter_map(|doc| doc["customer"]["id"].as_i64())
        .max_by_key(|id| orders_of(&documents, *id).len())
        .expect("a customer with orders");
    sqlx::query("UPDATE customers SET name = repeat('x', $1) WHERE id = $2")
        .bind(limit as i32 + 1)
        .bind(customer)
        .execute(&pool)
        .await
        .unwrap();
    // The workload goes on meanwhile (without renaming or deleting customers,
    // which would fix the poison by itself).
    let mut options = WorkloadOptions::new(300, 17);
    options.mix = options
        .mix
        .with(Op::RenameCustomer, 0)
        .with(Op::DeleteCustomer, 0);
    workload::run(&pool, &options).await.expect("workload");

    let poisoned = orders_of(&expected_order_cache(&pool).await, customer);
    assert!(!poisoned.is_empty());
    converged_except(&mut service, &pool, &redis.url(), DEADLINE, &poisoned).await;
    let n = poisoned.len() as u64;
    wait_for_view_counts(
        port,
        "dead_letters",
        &[
            ("category_daily_sales", 0),
            ("order_cache", n),
            ("product_cache", 0),
            ("product_search", 0),
        ],
    )
    .await;

    // Listed with where and why; counted in /metrics.
    let (_, listed) = dead_letters_cli(port, "order_cache", false);
    assert_eq!(listed["total"], n, "{listed:#}");
    let keys: BTreeSet<String> = listed["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|letter| {
            assert_eq!(letter["table"], "public.orders", "{letter:#}");
            assert!(letter["lsn"].as_str().is_some_and(|lsn| lsn.contains('/')));
            let reason = letter["reason"].as_str().unwrap();
            assert!(reason.contains("max_document_bytes"), "{reason}");
            format!(
                "order:{}",
                letter["key"].as_str().unwrap().trim_start_matches("id=")
            )
        })
        .collect();
    assert_eq!(keys, poisoned.iter().cloned().collect());
    let (_, text) = http_get(port, "/metrics").await.unwrap();
    let metrics = parse_prometheus(&text);
    assert_eq!(
        metrics.get("viewkeeper_dead_letters{view=\"order_cache\"}"),
        Some(&(n as f64))
    );
    assert!(metrics["viewkeeper_dead_letters_total{view=\"order_cache\"}"] >= n as f64);

    // A retry without a fix changes nothing, not even where and when each
    // letter began; without the token it is refused.
    let (retry, listed_after) = dead_letters_cli(port, "order_cache", true);
    assert_eq!(retry.unwrap()["still_failing"], n);
    assert_eq!(listed_after["dead_letters"], listed["dead_letters"]);
    let refused = harness::http_post(port, "/views/order_cache/dead-letters/retry", None)
        .await
        .unwrap();
    assert_eq!(refused.0, 401);

    // The fix is in the configuration: a higher limit, then a retry.
    assert!(service.terminate(DEADLINE).await.success());
    setup.extra_args[1] = (limit * 4).to_string();
    let mut service = setup.start();
    let (retry, listed) = dead_letters_cli_when_up(port).await;
    assert_eq!(retry["retried"], n, "{retry:#}");
    assert_eq!(retry["still_failing"], 0, "{retry:#}");
    assert_eq!(listed["total"], 0, "{listed:#}");
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;

    // An aggregate input that overflows bigint (SQL would raise) poisons only
    // its own item: the order's document still shows it.
    let order: i64 = sqlx::query_scalar("SELECT id FROM orders WHERE status = 'paid' LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let item: i64 = sqlx::query_scalar(
        "INSERT INTO order_items (order_id, product_id, sku, quantity, unit_price_cents) \
         VALUES ($1, NULL, 'POISON-SKU', 2000000000, 5000000000) RETURNING id",
    )
    .bind(order)
    .fetch_one(&pool)
    .await
    .unwrap();
    wait_for_view_counts(
        port,
        "dead_letters",
        &[
            ("category_daily_sales", 1),
            ("order_cache", 0),
            ("product_cache", 0),
            ("product_search", 0),
        ],
    )
    .await;
    let (_, listed) = dead_letters_cli(port, "category_daily_sales", false);
    let letter = &listed["dead_letters"][0];
    assert_eq!(letter["table"], "public.order_items", "{letter:#}");
    assert_eq!(letter["key"], format!("id={item}"), "{letter:#}");
    assert!(
        letter["reason"].as_str().unwrap().contains("revenue_cents"),
        "{letter:#}"
    );
    let redis_client = redis::Client::open(redis.url()).unwrap();
    let mut connection = redis_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let document: String = redis::cmd("GET")
        .arg(format!("order:{order}"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(document.contains("POISON-SKU"), "{document}");

    // The fix is in the data: the next change of the row clears the letter.
    sqlx::query("UPDATE order_items SET quantity = 1 WHERE id = $1")
        .bind(item)
        .execute(&pool)
        .await
        .unwrap();
    wait_for_view_counts(
        port,
        "dead_letters",
        &[
            ("category_daily_sales", 0),
            ("order_cache", 0),
            ("product_cache", 0),
            ("product_search", 0),
        ],
    )
    .await;
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;
}

/// Retries `order_cache`'s dead letters once the restarted service answers.
async fn dead_letters_cli_when_up(port: u16) -> (Value, Value) {
    wait_until(DEADLINE, "the restarted service answers", || async {
        http_get(port, "/health").await.map(|_| ())
    })
    .await;
    let (retry, listed) = dead_letters_cli(port, "order_cache", true);
    (retry.expect("the retry's answer"), listed)
}

/// A cache view whose key template can render two rows to one key:
/// `('a:b', 'c')` and `('a', 'b:c')` both give `note:a:b:c`.
const NOTE_CACHE: &str = r#"
view: note_cache
kind: cache
root: notes
key: "note:{ns}:{name}"
fields: { ns: ns, name: name, body: body }
"#;

/// What `note_cache` must hold, as SQL says it: every row's document under
/// its key, and under a key two rows render, the document of the row first
/// in primary-key order (text in byte order, as `COLLATE "C"` sorts it).
async fn expected_notes(pool: &sqlx::PgPool) -> BTreeMap<String, Value> {
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        r#"SELECT DISTINCT ON (key) key, ns, name, body
           FROM (SELECT 'note:' || ns || ':' || name AS key, * FROM notes) n
           ORDER BY key, ns COLLATE "C", name COLLATE "C""#,
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(key, ns, name, body)| {
            let document = serde_json::json!({ "ns": ns, "name": name, "body": body });
            (key, document)
        })
        .collect()
}

async fn execute(pool: &sqlx::PgPool, sql: &'static str) {
    sqlx::query(sql).execute(pool).await.expect(sql);
}

async fn notes_match(pool: &sqlx::PgPool, redis_url: &str, after: &str) {
    let expected = expected_notes(pool).await;
    wait_until(DEADLINE, &format!("note_cache after {after}"), || {
        redis_matches(redis_url, "note:*", &expected)
    })
    .await;
}

/// Two rows whose key template renders one key: the one first in
/// primary-key order holds its document there, whichever came first; the
/// other gets a dead letter naming it, and its document once the first's
/// leaves the key. Before, whichever wrote last won, and deleting either
/// row deleted the other's document; then the first to claim the key kept
/// it, so what a key held depended on the order and batching of commits
/// (the twenty-third trial) and no SQL could say it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rows_rendering_one_key_keep_the_document_of_the_first_in_key_order() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let url = pg.create_database("notes").await;
    let pool = pg.pool("notes").await;
    for sql in [
        "CREATE TABLE notes (ns text, name text, body text, PRIMARY KEY (ns, name))",
        "INSERT INTO notes VALUES ('x', 'y', 'unrelated'), ('a:b', 'c', 'put first')",
    ] {
        execute(&pool, sql).await;
    }
    let views = tempfile::tempdir().expect("temp dir");
    std::fs::write(views.path().join("note_cache.yaml"), NOTE_CACHE).expect("view file");
    let setup = ServiceSetup::with_views(&url, &redis.url(), views.path().to_path_buf())
        .with_admin_token(TOKEN);
    let port = setup.admin_port;
    let mut service = setup.start();
    notes_match(&pool, &redis.url(), "the snapshot").await;

    // ('a', 'b:c') sorts before ('a:b', 'c'): it takes the key over.
    for sql in [
        "INSERT INTO notes VALUES ('a', 'b:c', 'first in key order')",
        "UPDATE notes SET body = 'first in key order, edited' WHERE ns = 'a'",
        "UPDATE notes SET body = 'put first, edited' WHERE ns = 'a:b'",
    ] {
        execute(&pool, sql).await;
        notes_match(&pool, &redis.url(), sql).await;
    }
    wait_for_view_counts(port, "dead_letters", &[("note_cache", 1)]).await;
    let (status, listed) = http_get(port, "/views/note_cache/dead-letters")
        .await
        .expect("the dead letters");
    assert_eq!(status, 200, "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    let letter = &listed["dead_letters"][0];
    assert_eq!(letter["table"], "public.notes", "{letter:#}");
    assert!(
        letter["key"].as_str().unwrap().contains("ns=a:b"),
        "{letter:#}"
    );
    let reason = letter["reason"].as_str().unwrap();
    assert!(
        reason.contains("\"note:a:b:c\"") && reason.contains("name=b:c"),
        "the reason names the key and the row that has it: {reason}"
    );

    // A crash changes nothing: the owner is in the state store.
    service.kill().await;
    let mut service = setup.start();
    execute(&pool, "UPDATE notes SET body = 'again' WHERE ns = 'a'").await;
    notes_match(&pool, &redis.url(), "a restart").await;

    // The owner's key changes: the other gets the key, and loses its
    // letter; the owner's row back under the key takes it again.
    execute(&pool, "UPDATE notes SET ns = 'z' WHERE ns = 'a'").await;
    notes_match(&pool, &redis.url(), "the owner's key change").await;
    wait_for_view_counts(port, "dead_letters", &[("note_cache", 0)]).await;
    execute(&pool, "UPDATE notes SET ns = 'a' WHERE ns = 'z'").await;
    notes_match(&pool, &redis.url(), "the owner's key back").await;
    wait_for_view_counts(port, "dead_letters", &[("note_cache", 1)]).await;

    // Deleted, the owner leaves the key to the other; both rows changed
    // in one transaction come out as SQL says too.
    execute(&pool, "DELETE FROM notes WHERE ns = 'a'").await;
    notes_match(&pool, &redis.url(), "the owner's delete").await;
    wait_for_view_counts(port, "dead_letters", &[("note_cache", 0)]).await;
    execute(
        &pool,
        "WITH a AS (INSERT INTO notes VALUES ('a', 'b:c', 'back') RETURNING 1)
         UPDATE notes SET body = 'put first, once more' WHERE ns = 'a:b'",
    )
    .await;
    notes_match(&pool, &redis.url(), "both rows in one transaction").await;

    // A rebuild recomputes every root from the store: the owner stays.
    let (status, body) = harness::http_post(port, "/views/note_cache/rebuild", Some(TOKEN))
        .await
        .expect("the rebuild");
    assert!(status < 300, "{status} {body}");
    wait_until(DEADLINE, "the rebuild", || async {
        let status = harness::view_status(port, "note_cache").await;
        match status["rebuilds_completed"].as_u64() {
            Some(1) => Ok(()),
            _ => Err(status.to_string()),
        }
    })
    .await;
    execute(
        &pool,
        "UPDATE notes SET body = 'after the rebuild' WHERE ns = 'x'",
    )
    .await;
    notes_match(&pool, &redis.url(), "a rebuild").await;
    service.assert_running();
}

/// A cache view keyed by a unique key that is not the primary key.
const ACCOUNT_CACHE: &str = r#"
view: account_cache
kind: cache
root: accounts
key: "acct:{code}"
fields: { id: id, code: code, name: name }
"#;

/// What `account_cache` must hold, as SQL says it: each row under its code.
async fn expected_accounts(pool: &sqlx::PgPool) -> BTreeMap<String, Value> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT 'acct:' || btrim(code), json_build_object('id', id, 'code', code, 'name', name)::text
         FROM accounts",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(key, document)| (key, serde_json::from_str(&document).unwrap()))
        .collect()
}

async fn accounts_match(pool: &sqlx::PgPool, redis_url: &str, after: &str) {
    let expected = expected_accounts(pool).await;
    wait_until(DEADLINE, &format!("account_cache after {after}"), || {
        redis_matches(redis_url, "acct:*", &expected)
    })
    .await;
}

/// A key by a unique NOT NULL column names one row, as the primary key
/// does (the thirty-second trial had to add `{id}`). Two rows may hold one
/// code in turn within a transaction, when they swap codes: the key is then
/// claimed, and each key ends with its row's document, without a dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_by_a_unique_column_follows_renames_swaps_and_deletes() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let url = pg.create_database("accounts").await;
    let pool = pg.pool("accounts").await;
    for sql in [
        "CREATE TABLE accounts (id bigint PRIMARY KEY, code char(6) NOT NULL, name text,
                                UNIQUE (code) DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO accounts SELECT i, 'A' || i, 'Account ' || i FROM generate_series(1, 20) i",
    ] {
        execute(&pool, sql).await;
    }
    let views = tempfile::tempdir().expect("temp dir");
    std::fs::write(views.path().join("account_cache.yaml"), ACCOUNT_CACHE).expect("view file");
    let setup = ServiceSetup::with_views(&url, &redis.url(), views.path().to_path_buf());
    let port = setup.admin_port;
    let mut service = setup.start();
    accounts_match(&pool, &redis.url(), "the snapshot").await;

    for sql in [
        "UPDATE accounts SET code = 'B1' WHERE id = 1",
        // Swapped in one statement, then by way of a third code.
        "UPDATE accounts SET code = CASE id WHEN 2 THEN 'A3' ELSE 'A2' END WHERE id IN (2, 3)",
        "WITH a AS (UPDATE accounts SET code = 'T' WHERE id = 4 RETURNING 1),
              b AS (UPDATE accounts SET code = 'A4' WHERE id = 5 RETURNING 1)
         UPDATE accounts SET code = 'A5' WHERE id = 4",
        // A rotation over every row, and a code handed from a deleted row.
        "UPDATE accounts SET code = 'R' || ((id % 20) + 1), name = name || '.'",
        "WITH d AS (DELETE FROM accounts WHERE id = 7 RETURNING code)
         UPDATE accounts SET code = (SELECT code FROM d) WHERE id = 8",
        "INSERT INTO accounts VALUES (21, 'R9', 'new')",
    ] {
        execute(&pool, sql).await;
        accounts_match(&pool, &redis.url(), sql).await;
    }
    wait_for_view_counts(port, "dead_letters", &[("account_cache", 0)]).await;
    // A swap's wait within the transaction is neither logged nor counted
    // (trial 33: a warning and a count for every swap).
    let (_, text) = http_get(port, "/metrics").await.unwrap();
    let counted = parse_prometheus(&text)
        .get("viewkeeper_dead_letters_total{view=\"account_cache\"}")
        .copied();
    assert!(counted.unwrap_or(0.0) == 0.0, "{counted:?}");

    // A crash and another rotation: the claims are in the state store.
    service.kill().await;
    let mut service = setup.start();
    execute(&pool, "UPDATE accounts SET code = 'S' || ((id % 21) + 1)").await;
    accounts_match(&pool, &redis.url(), "a restart and a rotation").await;
    wait_for_view_counts(port, "dead_letters", &[("account_cache", 0)]).await;
    service.assert_running();
}
