//! `viewkeeper check` and `viewkeeper run` on invalid view files, through the
//! real binary: every error named with file, line and field, and `run`
//! refusing to start with the same messages.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use harness::{PgServer, RedisServer};
use viewkeeper::workload;

fn viewkeeper(args: &[&str], views: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(args)
        .arg("--views")
        .arg(views)
        .env_remove("VIEWKEEPER_DATABASE_URL")
        .output()
        .expect("running viewkeeper")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The aggregate view of DESIGN.md section 3 (`views/category_daily_sales.yaml`).
const CATEGORY_DAILY_SALES: &str = "\
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

fn views_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("writing a view file");
    }
    dir
}

/// A database `shop` with the example schema and no rows: its URL and a pool.
async fn empty_shop(pg: &PgServer) -> (String, sqlx::PgPool) {
    let url = pg.create_database("shop").await;
    let pool = pg.pool("shop").await;
    workload::create_schema(&pool)
        .await
        .expect("creating the shop");
    (url, pool)
}

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("views")
        .join(name);
    std::fs::read_to_string(path).expect("reading an example view")
}

#[test]
fn check_fails_on_every_corpus_file_with_its_documented_message() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/views_invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&corpus).expect("corpus") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("corpus file");
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("each corpus file names its error")
            .to_owned();
        let file_name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let dir = views_dir(&[(&file_name, &text)]);
        let output = viewkeeper(&["check"], dir.path());
        assert!(!output.status.success(), "{file_name} passed check");
        let message = stderr(&output);
        assert!(
            message.contains(&expected),
            "{file_name}: expected `{expected}` in:\n{message}"
        );
        assert!(
            message.contains(&file_name),
            "{file_name}: the message names the file:\n{message}"
        );
        checked += 1;
    }
    assert!(checked >= 12);
}

/// A reader that stops reading (`viewkeeper check | head -0`) ends the
/// output; the command does not panic on the closed pipe.
#[test]
fn a_closed_stdout_ends_the_output_without_a_panic() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("views");
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
            .args(["check", "--views"])
            .arg(&examples)
            .env_remove("VIEWKEEPER_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running viewkeeper");
        // Closed before the views are parsed, so the answer meets a closed pipe.
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("waiting for viewkeeper");
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    }
}

#[test]
fn check_passes_the_examples_and_reports_duplicate_names_and_all_errors() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views");
    let output = viewkeeper(&["check"], &examples);
    assert!(output.status.success(), "{}", stderr(&output));

    let order_cache = example("order_cache.yaml");
    let bad_key = order_cache.replace("key: \"order:{id}\"", "key: \"order:{id\"");
    let dir = views_dir(&[
        ("a.yaml", &order_cache),
        ("b.yaml", &order_cache),
        (
            "c.yaml",
            &bad_key.replace("view: order_cache", "view: third"),
        ),
    ]);
    let message = stderr(&viewkeeper(&["check"], dir.path()));
    // Each file is named, with the other: which is the new one, the files
    // do not tell (trial 40).
    for (file, other) in [("a.yaml", "b.yaml"), ("b.yaml", "a.yaml")] {
        let said = format!("{file}:2: view: view name \"order_cache\" is also used by ");
        let line = message
            .lines()
            .find(|line| line.contains(&said))
            .unwrap_or_else(|| panic!("{file} is not named: {message}"));
        assert!(
            line.contains(other) && line.ends_with("each view needs a name of its own"),
            "{message}"
        );
    }
    assert!(message.contains("c.yaml:5: key:"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tables_and_columns_fail_check_and_run_with_file_line_and_field() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = empty_shop(&pg).await;

    let order_cache = example("order_cache.yaml");
    let bad_column = order_cache.replace("on: { id: customer_id }", "on: { id: customer_idd }");
    let bad_table = example("product_cache.yaml").replace("one: categories", "one: categoriez");
    let dir = views_dir(&[
        ("order_cache.yaml", &bad_column),
        ("product_cache.yaml", &bad_table),
    ]);

    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    let file = dir.path().join("order_cache.yaml");
    assert!(
        message.contains(&format!(
            "{}:14: fields.customer.on: column \"customer_idd\" does not exist in table orders; \
             did you mean \"customer_id\"?",
            file.display()
        )),
        "{message}"
    );
    assert!(
        message.contains(
            "product_cache.yaml:13: fields.category.one: table \"categoriez\" does not exist; \
             did you mean \"categories\"?"
        ),
        "{message}"
    );

    // A file that does not read offline does not hide the database errors
    // of the others: one run reports both.
    let broken_yaml = views_dir(&[
        ("order_cache.yaml", &bad_column),
        ("broken.yaml", "view: broken\nkind: cache\nroot: [orders\n"),
    ]);
    let output = viewkeeper(&["check", "--database-url", &url], broken_yaml.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("broken.yaml"), "{message}");
    assert!(message.contains("customer_idd"), "{message}");

    let data = tempfile::tempdir().expect("temp dir");
    let run = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["run", "--database-url", &url, "--redis-url", &redis.url()])
        .arg("--views")
        .arg(dir.path())
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("running viewkeeper");
    assert!(!run.status.success(), "run started with invalid views");
    let refused = stderr(&run);
    assert!(refused.contains("invalid views, not running"), "{refused}");
    assert!(refused.contains("customer_idd"), "{refused}");
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(slots, 0, "a refused start must not create a slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_views_are_type_checked_against_the_database() {
    let pg = PgServer::start().await;
    let (url, _pool) = empty_shop(&pg).await;

    let fine = views_dir(&[("category_daily_sales.yaml", CATEGORY_DAILY_SALES)]);
    let output = viewkeeper(&["check", "--database-url", &url], fine.path());
    assert!(output.status.success(), "{}", stderr(&output));

    let sum_of_text = CATEGORY_DAILY_SALES.replace(
        "  items: count()\n",
        "  items: count()\n  total: sum(products.name)\n",
    );
    let dir = views_dir(&[("category_daily_sales.yaml", &sum_of_text)]);
    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    assert!(!output.status.success(), "a sum over text passed check");
    let message = stderr(&output);
    let file = dir.path().join("category_daily_sales.yaml");
    assert!(
        message.contains(&format!(
            "{}:13: measures.total: sum needs a numeric expression (integer, float or \
             numeric), but `products.name` is text",
            file.display()
        )),
        "{message}"
    );
}

/// An aggregate view of orders by status, written to `table` (its line 6).
fn orders_by_status_into(table: &str) -> String {
    format!(
        "view: orders_by_status\nkind: aggregate\nroot: orders\ngroup_by: {{ status: status }}\n\
         measures: {{ n: count() }}\ntable: {table}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_an_aggregate_table_viewkeeper_did_not_create() {
    let pg = PgServer::start().await;
    let (url, pool) = empty_shop(&pg).await;
    sqlx::raw_sql(
        "CREATE TABLE important (id int PRIMARY KEY, payload text); \
         INSERT INTO important VALUES (1, 'customer data')",
    )
    .execute(&pool)
    .await
    .expect("creating the user's table");
    let view = &orders_by_status_into("important");
    let dir = views_dir(&[("orders_by_status.yaml", view)]);
    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    assert!(!output.status.success(), "a user's table passed check");
    let message = stderr(&output);
    let file = dir.path().join("orders_by_status.yaml");
    assert!(
        message.contains(&format!(
            "{}:6: table: table public.important exists and was not created by viewkeeper; \
             choose another `table:` or drop it",
            file.display()
        )),
        "{message}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM important")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1, "check leaves the table alone");

    // Beside a file with errors of its own, it is still reported.
    let with_broken = views_dir(&[
        ("orders_by_status.yaml", view),
        ("broken.yaml", "view: broken\nkind: cache\nroot: [orders\n"),
    ]);
    let output = viewkeeper(&["check", "--database-url", &url], with_broken.path());
    let message = stderr(&output);
    assert!(message.contains("broken.yaml"), "{message}");
    assert!(
        message.contains("was not created by viewkeeper"),
        "{message}"
    );

    // A table with viewkeeper's mark is its own, and a missing one it creates.
    sqlx::raw_sql(
        "COMMENT ON TABLE important IS \
         'viewkeeper aggregate table of view orders_by_status: viewkeeper drops or replaces \
         only tables with this mark'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    sqlx::raw_sql("DROP TABLE important")
        .execute(&pool)
        .await
        .unwrap();
    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));

    // A SQLite target that does not exist yet holds no table, and `check`
    // leaves no file behind (it created an empty one).
    let sqlite = dir.path().join("aggregates.db");
    let sqlite_url = format!("sqlite://{}", sqlite.display());
    let check_into = |target: &str, views: &Path| {
        viewkeeper(
            &["check", "--database-url", &url, "--aggregates-url", target],
            views,
        )
    };
    let output = check_into(&sqlite_url, dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!sqlite.exists(), "check created {}", sqlite.display());

    // One in a directory that does not exist could never be opened: `check`
    // says so (it passed, and `run` retried "unable to open database file").
    let missing = dir.path().join("no-such-dir");
    let unopenable = format!("sqlite://{}/aggregates.db", missing.display());
    let output = check_into(&unopenable, dir.path());
    assert!(!output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("the directory {} of", missing.display())),
        "{}",
        stderr(&output)
    );

    // A name SQLite keeps for itself (run's sink failed on it), at its line.
    let reserved = views_dir(&[(
        "orders_by_status.yaml",
        &view.replace("table: important", "table: sqlite_orders"),
    )]);
    let output = check_into(&sqlite_url, reserved.path());
    assert!(!output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "{}:6: table: SQLite keeps table names beginning with `sqlite_` for itself, and \
             sqlite_orders is one",
            reserved.path().join("orders_by_status.yaml").display()
        )),
        "{}",
        stderr(&output)
    );
}

/// A cache view of customers keyed by `template`.
fn customer_cache(template: &str) -> String {
    format!(
        "view: customer_cache\nkind: cache\nroot: customers\nkey: \"{template}\"\n\
         fields: {{ id: id, name: name, email: email }}\n"
    )
}

/// `check` notes a key template that may give two rows one key, at its
/// line, and none for a template whose values cannot hold its separator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_notes_a_key_template_that_may_give_two_rows_one_key() {
    let pg = PgServer::start().await;
    let (url, _pool) = empty_shop(&pg).await;
    for (template, noted) in [
        ("customer:{name}:{id}", false),
        ("customer:{id}:{name}", false),
        ("customer:{name}:{email}:{id}", true),
        ("customer:{id}-{name}-{email}", true),
    ] {
        let dir = views_dir(&[("customer_cache.yaml", &customer_cache(template))]);
        let output = viewkeeper(&["check", "--database-url", &url], dir.path());
        assert!(output.status.success(), "{template}: {}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let note = format!(
            "note: {}:4: key: the key template may give two rows one key",
            dir.path().join("customer_cache.yaml").display()
        );
        assert_eq!(stdout.contains(&note), noted, "{template}: {stdout}");
        assert!(
            stdout.contains("1 view(s) OK in ")
                && stdout.contains(", against the database's tables, columns and types"),
            "{template}: {stdout}"
        );
    }
}

/// Two cache views that may render one key are refused at the later one's
/// key, naming the other; with the column's type known, `order:{id}:v2`
/// over a bigint `id` cannot meet `order:{id}` and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_a_second_cache_view_that_may_write_the_first_ones_keys() {
    let pg = PgServer::start().await;
    let (url, _pool) = empty_shop(&pg).await;
    let order_cache = example("order_cache.yaml");
    let copy = |key: &str| {
        order_cache
            .replace("view: order_cache", "view: order_copy")
            .replace("key: \"order:{id}\"", &format!("key: \"{key}\""))
    };
    let apart = views_dir(&[
        ("order_cache.yaml", &order_cache),
        ("order_copy.yaml", &copy("order:{id}:v2")),
    ]);
    let output = viewkeeper(&["check", "--database-url", &url], apart.path());
    assert!(output.status.success(), "{}", stderr(&output));

    let same = views_dir(&[
        ("order_cache.yaml", &order_cache),
        ("order_copy.yaml", &copy("order:{id}")),
    ]);
    let output = viewkeeper(&["check", "--database-url", &url], same.path());
    assert!(!output.status.success(), "two views writing one key passed");
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "{}:5: key: key template \"order:{{id}}\" may render a key of view order_cache",
            same.path().join("order_copy.yaml").display()
        )),
        "{message}"
    );
}

/// A server error reads as PostgreSQL's message with its SQLSTATE, not
/// with sqlx's "at line N" (a line of PostgreSQL's C source, which reads
/// like a line of the view file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_is_the_servers_message_and_sqlstate() {
    let pg = PgServer::start().await;
    let views = views_dir(&[("order_cache.yaml", &example("order_cache.yaml"))]);
    let output = viewkeeper(&["check", "--database-url", &pg.url("nodb")], views.path());
    assert!(!output.status.success(), "a missing database passed");
    let message = stderr(&output);
    assert!(
        message.contains("database \"nodb\" does not exist (SQLSTATE 3D000)"),
        "{message}"
    );
    assert!(!message.contains(" at line "), "{message}");
}

/// `check` notes a `one` join whose columns are not a unique key of the
/// joined table (the lowest-keyed match is kept), at the join's line, and
/// not one on a primary key or a unique index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_notes_a_one_join_that_is_not_on_a_unique_key() {
    let pg = PgServer::start().await;
    let (url, pool) = empty_shop(&pg).await;
    let view = "view: buyer_cache\nkind: cache\nroot: orders\nkey: \"buyer:{id}\"\n\
                fields:\n  id: id\n  buyer: { one: customers, on: { email: status }, \
                fields: { name: name } }\n";
    let dir = views_dir(&[("buyer_cache.yaml", view)]);
    let noted = |stdout: &str| stdout.contains("a `one` join to customers on (email) is not");

    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(noted(&stdout), "{stdout}");
    assert!(
        stdout.contains("buyer_cache.yaml:7: fields.buyer.on: a `one` join"),
        "{stdout}"
    );
    assert!(stdout.contains("or make the relation `many`"), "{stdout}");
    // A search view's join may be `many` (its fields take every row's value).
    let search = "view: buyer_search\nkind: search\nroot: orders\nid: id\n\
                  fields:\n  buyer: { from: buyer.name, type: text }\n\
                  joins:\n  buyer: { one: customers, on: { email: status } }\n";
    let search_dir = views_dir(&[("buyer_search.yaml", search)]);
    let output = viewkeeper(&["check", "--database-url", &url], search_dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success() && noted(&stdout), "{stdout}");
    assert!(stdout.contains("or make the join `many`"), "{stdout}");

    sqlx::raw_sql("CREATE UNIQUE INDEX customers_email ON customers (email)")
        .execute(&pool)
        .await
        .unwrap();
    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success() && !noted(&stdout), "{stdout}");

    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views");
    let output = viewkeeper(&["check", "--database-url", &url], &examples);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && !stdout.contains("note:"),
        "{stdout}"
    );
}

/// `check` says where each file names a table whose changes the log does
/// not carry whole, also in a file with other errors (trial 31: a
/// relation to a table without a primary key hid them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_unlogged_tables_beside_other_errors() {
    let pg = PgServer::start().await;
    let (url, pool) = empty_shop(&pg).await;
    sqlx::raw_sql(
        "CREATE TABLE order_notes (order_id bigint, note text);
         CREATE UNLOGGED TABLE order_stamps (id bigint PRIMARY KEY, order_id bigint);
         CREATE TABLE order_marks (id bigint PRIMARY KEY, order_id bigint);
         ALTER TABLE order_marks REPLICA IDENTITY NOTHING;",
    )
    .execute(&pool)
    .await
    .expect("the tables");
    let view = "view: noted_cache\nkind: cache\nroot: orders\nkey: \"noted:{id}\"\n\
                fields:\n  id: id\n  \
                notes: { many: order_notes, on: { order_id: id }, fields: { note: note } }\n  \
                stamps: { many: order_stamps, on: { order_id: id }, fields: { id: id } }\n  \
                marks: { many: order_marks, on: { order_id: id }, fields: { id: id } }\n";
    let dir = views_dir(&[("noted_cache.yaml", view)]);
    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    assert!(!output.status.success(), "{}", stderr(&output));
    let message = stderr(&output);
    for expected in [
        "noted_cache.yaml:7: fields.notes.many: table order_notes has no primary key",
        "noted_cache.yaml:8: fields.stamps.many: table public.order_stamps is UNLOGGED",
        "noted_cache.yaml:9: fields.marks.many: table public.order_marks has REPLICA IDENTITY \
         NOTHING",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
}

/// `check` notes a join of a search or aggregate view that nothing reads
/// (a trial's `many` join was accepted silently), at the join's line, and
/// not one that a field reads through a join below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_notes_a_join_nothing_reads() {
    let pg = PgServer::start().await;
    let (url, _pool) = empty_shop(&pg).await;
    let search = "view: item_search\nkind: search\nroot: order_items\nid: id\n\
                  fields:\n  sku: { from: sku, type: keyword }\n  \
                  buyer: { from: buyer.name, type: text }\n\
                  joins:\n  order: { one: orders, on: { id: order_id } }\n  \
                  buyer: { one: customers, on: { id: order.customer_id } }\n  \
                  product: { one: products, on: { id: product_id } }\n  \
                  siblings: { many: order_items, on: { order_id: order_id } }\n";
    let dir = views_dir(&[("item_search.yaml", search)]);
    let output = viewkeeper(&["check", "--database-url", &url], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let unread: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("nothing in the view reads this join"))
        .collect();
    assert_eq!(unread.len(), 2, "{stdout}");
    assert!(
        unread[0].contains("item_search.yaml:11: joins.product:"),
        "{stdout}"
    );
    assert!(
        unread[1].contains("item_search.yaml:12: joins.siblings:"),
        "{stdout}"
    );
    assert!(
        unread[1].contains("every change to order_items"),
        "{stdout}"
    );
}

/// On a database whose own `TimeZone` is not UTC, views compute in that
/// zone (`aggregate_views::views_compute_in_the_database_time_zone`), and
/// `check` has nothing to note; it used to note each view computing with a
/// `timestamptz`, which computed in UTC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_takes_a_database_in_another_time_zone_without_a_note() {
    let pg = PgServer::start().await;
    let (url, pool) = empty_shop(&pg).await;
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views");
    sqlx::raw_sql("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET TimeZone = %L', current_database(), 'America/New_York'); END $$")
        .execute(&pool)
        .await
        .unwrap();
    let output = viewkeeper(&["check", "--database-url", &url], &examples);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stdout.contains("note:"), "{stdout}");
}

/// Read from a real catalog: a citext column (an extension's type, whose
/// `'A'` equals `'a'`) compared as it stands is refused, with the way out;
/// an enum's column compares as its labels and is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_comparing_citext_as_it_stands_and_takes_enums() {
    let pg = PgServer::start().await;
    let (url, pool) = empty_shop(&pg).await;
    for sql in [
        "CREATE EXTENSION citext",
        "CREATE TYPE mood AS ENUM ('glad', 'sad')",
        "ALTER TABLE customers ADD COLUMN contact citext, ADD COLUMN mood mood",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    let people = |filter: &str| {
        format!(
            "view: people\nkind: cache\nroot: customers\nkey: \"person:{{id}}\"\n\
             where: \"{filter}\"\nfields: {{ id: id, contact: contact, mood: mood }}\n"
        )
    };
    let taken = views_dir(&[(
        "people.yaml",
        &people("mood = 'glad' AND lower(contact) = 'a@b.c'"),
    )]);
    let output = viewkeeper(&["check", "--database-url", &url], taken.path());
    assert!(output.status.success(), "{}", stderr(&output));

    let refused = views_dir(&[(
        "people.yaml",
        &people("mood = 'glad' AND contact = 'a@b.c'"),
    )]);
    let output = viewkeeper(&["check", "--database-url", &url], refused.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(
            "people.yaml:5: where: cannot compare column contact as it stands (or through coalesce, nullif or CASE, which keep its type): its type citext would"
        ),
        "{message}"
    );
    assert!(
        message.contains("compare a cast or function of it (contact::text, lower(contact))"),
        "{message}"
    );
    assert!(!message.contains("column mood"), "{message}");

    // Ordered by its labels with `>`; in `greatest` it would be by its
    // text, refused, and named as the database names it, not by its OID.
    let ordered = views_dir(&[("people.yaml", &people("mood > 'glad'"))]);
    let output = viewkeeper(&["check", "--database-url", &url], ordered.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let greatest = views_dir(&[("people.yaml", &people("greatest(mood, 'sad') = 'sad'"))]);
    let output = viewkeeper(&["check", "--database-url", &url], greatest.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("its type mood, an enum, would be ordered by its text"),
        "{message}"
    );

    // A text that is none of its labels: SQL refuses it, and the view
    // would have matched nothing (the thirteenth trial's typo).
    let typo = views_dir(&[("people.yaml", &people("mood IN ('glad', 'sda')"))]);
    let output = viewkeeper(&["check", "--database-url", &url], typo.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(
            "people.yaml:5: where: 'sda' is not a label of mood, the enum of column mood: \
             PostgreSQL refuses it (invalid input value for enum); its labels are 'glad', 'sad'"
        ),
        "{message}"
    );
}

/// `check` refuses a role that `run` would find unable to create or change
/// its publication, naming what is missing and the statement a role that
/// may can run; it passes once such a publication exists. It used to pass,
/// and `run` failed with "permission denied for database shop" or "must be
/// owner of table …", naming no operation (trial 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_a_role_that_could_not_make_the_publication() {
    let pg = PgServer::start().await;
    let (url, pool) = empty_shop(&pg).await;
    sqlx::raw_sql(
        "CREATE ROLE limited LOGIN REPLICATION;
         REVOKE CREATE ON DATABASE shop FROM PUBLIC;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO limited",
    )
    .execute(&pool)
    .await
    .expect("a limited role");
    let limited = url.replace("postgres@", "limited@");
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views");
    let output = viewkeeper(&["check", "--database-url", &limited], &examples);
    let message = stderr(&output);
    assert!(!output.status.success(), "{message}");
    for expected in [
        "viewkeeper's role cannot make its publication: role limited may not create publication \
         viewkeeper (GRANT CREATE ON DATABASE shop TO limited)",
        "role limited does not own public.categories, public.customers, public.order_items, \
         public.orders, public.products",
        r#"CREATE PUBLICATION "viewkeeper" FOR TABLE "public"."categories", "public"."customers", "public"."order_items", "public"."orders", "public"."products" WITH (publish_via_partition_root = true)"#,
    ] {
        assert!(message.contains(expected), "{message}");
    }

    sqlx::raw_sql(
        "CREATE PUBLICATION viewkeeper FOR TABLE categories, customers, order_items, orders, products
         WITH (publish_via_partition_root = true)",
    )
    .execute(&pool)
    .await
    .expect("the publication, made by its owner");
    let output = viewkeeper(&["check", "--database-url", &limited], &examples);
    assert!(output.status.success(), "{}", stderr(&output));

    // An aggregate table in a schema the role may not use is said at its
    // file, beside the other files' errors; `check` stopped at it with the
    // bare SQL error and checked nothing after it (trial 39).
    sqlx::raw_sql("CREATE SCHEMA locked")
        .execute(&pool)
        .await
        .expect("a schema the role may not use");
    let view = &orders_by_status_into("locked.orders_by_status");
    let dir = views_dir(&[
        ("orders_by_status.yaml", view),
        ("broken.yaml", "view: broken\nkind: cache\nroot: [orders\n"),
    ]);
    let output = viewkeeper(&["check", "--database-url", &limited], dir.path());
    let message = stderr(&output);
    assert!(!output.status.success(), "{message}");
    let file = dir.path().join("orders_by_status.yaml");
    assert!(
        message.contains(&format!(
            "{}:6: table: aggregate table locked.orders_by_status: permission denied for schema \
             locked (SQLSTATE 42501): the role needs USAGE on the table's schema to read it, and \
             CREATE on the schema (or the database, for a new schema) to make it",
            file.display()
        )),
        "{message}"
    );
    assert!(message.contains("broken.yaml"), "{message}");
}

/// A server that refuses the connection is told at once, with the reason:
/// `check` waited 30 s for the pool, and then said only that no connection
/// could be opened in time (the twelfth trial). Nothing listens on port 1.
#[test]
fn check_tells_a_refused_connection_with_its_reason() {
    let output = viewkeeper(
        &["check", "--database-url", "postgres://app@127.0.0.1:1/shop"],
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views"),
    );
    let message = stderr(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        message.contains(
            "PostgreSQL at 127.0.0.1:1/shop: error communicating with database: \
             Connection refused"
        ),
        "{message}"
    );
}

/// `check` takes the views directory and the database from the config file
/// `run` reads (the default one in the working directory, or `--config`),
/// and says when it checked without a database (it said only "OK").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_the_config_file_and_says_when_it_is_offline() {
    let pg = PgServer::start().await;
    let (url, _pool) = empty_shop(&pg).await;
    let views = views_dir(&[("category_daily_sales.yaml", CATEGORY_DAILY_SALES)]);
    let dir = tempfile::tempdir().expect("temp dir");
    let check = |args: &[&str], config: String| {
        std::fs::write(dir.path().join("viewkeeper.yaml"), config).expect("config file");
        Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
            .arg("check")
            .args(args)
            .current_dir(dir.path())
            .env_remove("VIEWKEEPER_DATABASE_URL")
            .env_remove("VIEWKEEPER_VIEWS")
            .env_remove("VIEWKEEPER_CONFIG")
            .output()
            .expect("running viewkeeper")
    };
    let views_line = format!("views: {}\n", views.path().display());

    let offline = check(&[], views_line.clone());
    let stdout = String::from_utf8_lossy(&offline.stdout);
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert!(stdout.contains("note: no database URL"), "{stdout}");
    assert!(stdout.contains("1 view(s) OK"), "{stdout}");
    assert!(!stdout.contains("against the database"), "{stdout}");

    // With the file's database, a view over a missing table is refused.
    let broken = CATEGORY_DAILY_SALES.replace("root: order_items", "root: order_itemz");
    std::fs::write(views.path().join("category_daily_sales.yaml"), broken).expect("view");
    let online = check(&[], format!("{views_line}database_url: {url}\n"));
    assert!(!online.status.success());
    assert!(
        stderr(&online).contains("order_itemz"),
        "{}",
        stderr(&online)
    );

    // `--config` names a file elsewhere.
    let file = dir.path().join("viewkeeper.yaml");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let named = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["check", "--config"])
        .arg(&file)
        .current_dir(elsewhere.path())
        .env_remove("VIEWKEEPER_DATABASE_URL")
        .env_remove("VIEWKEEPER_VIEWS")
        .output()
        .expect("running viewkeeper");
    assert!(stderr(&named).contains("order_itemz"), "{}", stderr(&named));
}
