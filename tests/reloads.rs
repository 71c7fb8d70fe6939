//! Changing the view files of a running service: `POST /views/reload` and
//! `SIGHUP` rebuild a changed view and leave unchanged ones alone, build a
//! new view, stop a removed one (its data stays), and refuse an invalid file
//! with the `check` message while the running views go on; `viewkeeper drop`
//! then deletes what a removed view left behind, and refuses a running view.

mod harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::{
    PgServer, RedisServer, Service, ServiceSetup, converged, expected_product_cache, http_get,
    http_post, redis_documents, small_shop, view_status, wait_for_view_counts, wait_for_view_error,
    wait_for_view_state, wait_until,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use viewkeeper::workload::{self, WorkloadOptions};

const DEADLINE: Duration = Duration::from_secs(120);
const TOKEN: &str = "reload-token-4d1e";

/// A cache view the repository does not have: one key per product name.
const PRODUCT_NAMES: &str = "view: product_names\nkind: cache\nroot: products\n\
    key: \"product_name:{id}\"\nfields:\n  name: name\n";

async fn reload(port: u16) -> (u16, Value) {
    let (code, body) = http_post(port, "/views/reload", Some(TOKEN))
        .await
        .expect("the admin API answers");
    (code, serde_json::from_str(&body).expect("a JSON body"))
}

/// `viewkeeper drop VIEW`: whether it succeeded, and what it printed.
fn drop_with_cli(port: u16, view: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["drop", view, "--admin-addr", &format!("127.0.0.1:{port}")])
        .env("VIEWKEEPER_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("running viewkeeper drop");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// The `product_names` documents SQL says there must be.
async fn expected_product_names(pool: &PgPool) -> BTreeMap<String, Value> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id::bigint, name FROM products")
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(id, name)| (format!("product_name:{id}"), json!({ "name": name })))
        .collect()
}

/// The service on a copy of the repository's views (so that a test may edit
/// them), with the admin token, converged.
async fn start_on_copied_views(
    url: &str,
    redis_url: &str,
    pool: &PgPool,
) -> (tempfile::TempDir, ServiceSetup, Service) {
    let views = tempfile::tempdir().unwrap();
    copy_repository_views(views.path());
    let setup =
        ServiceSetup::with_views(url, redis_url, views.path().to_owned()).with_admin_token(TOKEN);
    let mut service = setup.start();
    converged(&mut service, pool, redis_url, DEADLINE).await;
    (views, setup, service)
}

fn copy_repository_views(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("views");
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_rebuild_what_changed_and_drop_removes_what_is_left() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let (views, setup, mut service) = start_on_copied_views(&url, &redis.url(), &pool).await;
    let port = setup.admin_port;
    let all_once = [
        ("category_daily_sales", 1),
        ("order_cache", 1),
        ("product_cache", 1),
        ("product_search", 1),
    ];
    wait_for_view_counts(port, "recomputes", &all_once).await;

    // Unchanged files: nothing to do. Without the token: refused.
    let (code, outcome) = reload(port).await;
    assert_eq!(code, 200, "{outcome}");
    assert_eq!(outcome["changed"], json!([]), "{outcome}");
    assert_eq!(outcome["unchanged"].as_array().map(Vec::len), Some(4));
    let (code, _) = http_post(port, "/views/reload", None).await.unwrap();
    assert_eq!(code, 401);

    // An invalid file is refused with the check message; the views go on.
    let broken = views.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "view: broken\nkind: cache\nroot: no_such_table\nkey: \"b:{id}\"\nfields: { id: id }\n",
    )
    .unwrap();
    let (code, refused) = reload(port).await;
    assert_eq!(code, 422, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("broken.yaml") && message.contains("no_such_table"),
        "{message}"
    );
    std::fs::remove_file(&broken).unwrap();

    // So is an aggregate view whose table belongs to someone else, as
    // `check` refuses it: accepted, it sat `failed` with `/ready` 503.
    sqlx::raw_sql("CREATE TABLE someone_elses (x int)")
        .execute(&pool)
        .await
        .unwrap();
    let foreign = views.path().join("foreign.yaml");
    std::fs::write(
        &foreign,
        "view: foreign\nkind: aggregate\nroot: orders\ngroup_by: { status: status }\n\
         measures: { n: count() }\ntable: someone_elses\n",
    )
    .unwrap();
    let (code, refused) = reload(port).await;
    assert_eq!(code, 422, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("foreign.yaml") && message.contains("was not created by viewkeeper"),
        "{message}"
    );
    std::fs::remove_file(&foreign).unwrap();
    workload::run(&pool, &WorkloadOptions::new(100, 31))
        .await
        .expect("workload");
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;
    wait_for_view_counts(port, "recomputes", &all_once).await;

    // SIGHUP after one file changed, one was added and one removed: only
    // the changed and the new view are computed.
    let product_cache = views.path().join("product_cache.yaml");
    let mut text = std::fs::read_to_string(&product_cache).unwrap();
    text.push_str("# touched: the definition hash changes\n");
    std::fs::write(&product_cache, text).unwrap();
    std::fs::write(views.path().join("product_names.yaml"), PRODUCT_NAMES).unwrap();
    std::fs::remove_file(views.path().join("product_search.yaml")).unwrap();
    service.hang_up();
    wait_for_view_counts(
        port,
        "recomputes",
        &[
            ("category_daily_sales", 1),
            ("order_cache", 1),
            ("product_cache", 2),
            ("product_names", 1),
        ],
    )
    .await;
    workload::run(&pool, &WorkloadOptions::new(200, 32))
        .await
        .expect("workload");
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;
    wait_until(DEADLINE, "product_names matches SQL", || async {
        let expected = expected_product_names(&pool).await;
        let actual = redis_documents(&redis.url(), "product_name:*").await;
        if actual == expected {
            Ok(())
        } else {
            Err(format!(
                "{} documents, {} expected",
                actual.len(),
                expected.len()
            ))
        }
    })
    .await;
    // The removed view stopped, and its index is still there.
    let index = setup.data_dir().join("indexes").join("product_search");
    assert!(index.exists());

    // Drop: refused for a running view; deletes a removed view's data once.
    let (ok, text) = drop_with_cli(port, "order_cache");
    assert!(!ok && text.contains("running"), "{text}");
    let (ok, text) = drop_with_cli(port, "product_search");
    assert!(ok, "{text}");
    assert!(!index.exists());
    let (ok, text) = drop_with_cli(port, "product_search");
    assert!(!ok && text.contains("no view named"), "{text}");

    // Removing a cache view and the aggregate view, then dropping them,
    // deletes their keys and their table.
    let gauge_lines = |metrics: &str| -> Vec<String> {
        metrics
            .lines()
            .filter(|line| {
                let gauge = ["viewkeeper_dead_letters{", "viewkeeper_outbox_depth{"]
                    .iter()
                    .any(|name| line.starts_with(name));
                gauge && (line.contains("product_names") || line.contains("category_daily_sales"))
            })
            .map(str::to_owned)
            .collect()
    };
    let (_, metrics) = http_get(port, "/metrics").await.expect("/metrics");
    assert_eq!(gauge_lines(&metrics).len(), 3, "{metrics}");
    std::fs::remove_file(views.path().join("product_names.yaml")).unwrap();
    std::fs::remove_file(views.path().join("category_daily_sales.yaml")).unwrap();
    let (code, outcome) = reload(port).await;
    assert_eq!(code, 200, "{outcome}");
    assert_eq!(
        outcome["removed"],
        json!(["category_daily_sales", "product_names"])
    );
    // The reload answers once the removed views stopped: a drop right
    // after it finds them gone.
    let (ok, text) = drop_with_cli(port, "category_daily_sales");
    assert!(ok, "{text}");
    wait_for_view_counts(
        port,
        "recomputes",
        &[("order_cache", 1), ("product_cache", 2)],
    )
    .await;
    assert!(
        !redis_documents(&redis.url(), "product_name:*")
            .await
            .is_empty()
    );
    let (ok, text) = drop_with_cli(port, "product_names");
    assert!(ok, "{text}");
    assert!(
        redis_documents(&redis.url(), "product_name:*")
            .await
            .is_empty()
    );
    let table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('analytics.category_daily_sales')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(table, None);
    // Their gauges leave /metrics (they stayed at their last values).
    wait_until(DEADLINE, "the removed views' gauges are gone", || async {
        let (_, metrics) = http_get(port, "/metrics").await?;
        let left = gauge_lines(&metrics);
        if left.is_empty() {
            Ok(())
        } else {
            Err(left.join("\n"))
        }
    })
    .await;

    // The remaining views are current.
    workload::run(&pool, &WorkloadOptions::new(100, 33))
        .await
        .expect("workload");
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;
}

/// A cache view over a table no repository view reads: adding it needs a
/// new snapshot.
const NOTE_CACHE: &str = "view: note_cache\nkind: cache\nroot: notes\n\
    key: \"note:{id}\"\nfields:\n  body: body\n";

/// A reload whose views need a table the state store does not hold takes a
/// new snapshot, and `/status` and `/ready` say so until it ends (they said
/// `live` and 200 while the tables were copied again). The snapshot is held
/// by an open transaction, so the test sees it without racing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_needs_a_new_snapshot_reports_building_until_it_ends() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    sqlx::raw_sql(
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);
         INSERT INTO notes SELECT n, 'note ' || n FROM generate_series(1, 50) n;
         CREATE TABLE open_writes (n int);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (views, setup, mut service) = start_on_copied_views(&url, &redis.url(), &pool).await;
    let port = setup.admin_port;
    wait_for_view_state(port, "order_cache", "live", DEADLINE).await;

    // A transaction that wrote and stays open: the new slot waits for it
    // before it exports its snapshot.
    let mut open = pool.begin().await.unwrap();
    sqlx::raw_sql("INSERT INTO open_writes VALUES (1)")
        .execute(&mut *open)
        .await
        .unwrap();
    let blocker: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *open)
        .await
        .unwrap();
    std::fs::write(views.path().join("note_cache.yaml"), NOTE_CACHE).unwrap();
    let (code, outcome) = reload(port).await;
    assert_eq!(code, 200, "{outcome}");
    wait_until(DEADLINE, "every view building, /ready 503", || async {
        let (ready, body) = http_get(port, "/ready").await?;
        let status: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        let states: BTreeMap<String, String> = status["views"]
            .as_array()
            .ok_or("no views in /ready")?
            .iter()
            .map(|v| (v["view"].to_string(), v["state"].to_string()))
            .collect();
        let all_building = states.len() == 5 && states.values().all(|s| s == "\"building\"");
        if ready == 503 && all_building {
            Ok(())
        } else {
            Err(format!("/ready {ready}, states {states:?}"))
        }
    })
    .await;
    // The log names what the snapshot waits for.
    let named = format!("backend pid {blocker} (");
    wait_until(DEADLINE, "the log naming the open transaction", || async {
        let log = service.log_tail(50);
        if log.contains("creating the replication slot waits") && log.contains(&named) {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    // So does `/status` (it said nothing, the twenty-second trial).
    let status = http_get(port, "/status").await.unwrap().1;
    let status: Value = serde_json::from_str(&status).unwrap();
    let waiting_for = status["source"]["waiting_for"].as_str().unwrap_or_default();
    assert!(waiting_for.contains(&named), "{status:#}");
    // When it began, which stays true between two reports.
    assert!(
        waiting_for.contains("transaction open since 20") && waiting_for.contains(" UTC, "),
        "{status:#}"
    );
    open.commit().await.unwrap();

    wait_until(DEADLINE, "/ready 200 after the new snapshot", || async {
        match http_get(port, "/ready").await? {
            (200, _) => Ok(()),
            (code, body) => Err(format!("{code}: {body}")),
        }
    })
    .await;
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;
    let status = http_get(port, "/status").await.unwrap().1;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["source"]["waiting_for"], Value::Null, "{status:#}");
    let notes = redis_documents(&redis.url(), "note:*").await;
    assert_eq!(notes.len(), 50);
    assert_eq!(notes["note:7"], json!({ "body": "note 7" }));
}

/// A view that stopped because it no longer checks (a column it reads was
/// renamed) is removed by removing its file and reloading: it sat `failed`,
/// with `/ready` 503, and `drop` refused it as running, until a restart
/// (the twenty-third trial).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_no_longer_checks_is_removed_by_a_reload() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let (views, setup, mut service) = start_on_copied_views(&url, &redis.url(), &pool).await;
    let port = setup.admin_port;
    assert!(!redis_documents(&redis.url(), "product:*").await.is_empty());

    // The stream finds the rename at the next row of the table.
    sqlx::raw_sql(
        "ALTER TABLE products RENAME COLUMN description TO details;
         UPDATE products SET details = details || '.' WHERE id = 1",
    )
    .execute(&pool)
    .await
    .expect("renaming a column product_cache reads");
    wait_for_view_error(port, "product_cache", &["description"], DEADLINE).await;
    wait_for_view_error(port, "product_search", &["description"], DEADLINE).await;

    // product_search reads the column too.
    for file in ["product_cache.yaml", "product_search.yaml"] {
        std::fs::remove_file(views.path().join(file)).unwrap();
    }
    let (code, outcome) = reload(port).await;
    assert_eq!(code, 200, "{outcome}");
    let removed = json!(["product_cache", "product_search"]);
    assert_eq!(outcome["removed"], removed, "{outcome}");
    let (_, status) = http_get(port, "/status").await.expect("/status");
    assert!(!status.contains("\"product_cache\""), "{status}");
    wait_until(DEADLINE, "/ready says 200", || async {
        match http_get(port, "/ready").await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let (dropped, printed) = drop_with_cli(port, "product_cache");
    assert!(dropped, "{printed}");
    assert!(redis_documents(&redis.url(), "product:*").await.is_empty());
    service.assert_running();
}

/// `viewkeeper reload` with `flags`, against the service on `port`.
fn reload_command(port: u16, flags: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_viewkeeper"));
    command
        .arg("reload")
        .args(flags)
        .args(["--admin-addr", &format!("127.0.0.1:{port}")])
        .env("VIEWKEEPER_ADMIN_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// Pauses (`Some(ms)`) or resumes the writes of the Redis at `url`.
async fn pause_redis_writes(url: &str, pause: Option<u64>) {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut command = redis::cmd("CLIENT");
    match pause {
        Some(ms) => command.arg("PAUSE").arg(ms).arg("WRITE"),
        None => command.arg("UNPAUSE"),
    };
    let _: () = command.query_async(&mut conn).await.unwrap();
}

/// The `product_cache` documents SQL says there must be, with the field
/// `name` named `renamed`.
async fn expected_renamed_products(pool: &PgPool, renamed: &str) -> BTreeMap<String, Value> {
    expected_product_cache(pool)
        .await
        .into_iter()
        .map(|(key, mut document)| {
            let fields = document.as_object_mut().unwrap();
            let name = fields.remove("name").unwrap();
            fields.insert(renamed.to_owned(), name);
            (key, document)
        })
        .collect()
}

/// A view a reload changed reads `rebuilding`, and `/ready` says 503,
/// until its target shows the new definition: trial 41 read `live` and
/// `/ready` 200 while its table still had the old columns. Redis, paused
/// for writes, holds the old documents meanwhile. `reload --wait` returns
/// once the target shows it, and says which views it still waits for
/// when its `--timeout` ends first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_view_reads_rebuilding_until_its_target_shows_it() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let (views, setup, _service) = start_on_copied_views(&url, &redis.url(), &pool).await;
    let port = setup.admin_port;
    let counts = |product_cache| {
        [
            ("category_daily_sales", 1),
            ("order_cache", 1),
            ("product_cache", product_cache),
            ("product_search", 1),
        ]
    };
    wait_for_view_counts(port, "recomputes", &counts(1)).await;
    wait_until(DEADLINE, "/ready says 200", || async {
        match http_get(port, "/ready").await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let file = views.path().join("product_cache.yaml");
    let rename = |from: &str, to: &str| {
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace(&format!("  {from}: name\n"), &format!("  {to}: name\n")),
        )
        .unwrap();
    };
    rename("name", "title");
    pause_redis_writes(&redis.url(), Some(60_000)).await;
    let mut waiting = reload_command(port, &["--wait"]).spawn().unwrap();
    wait_for_view_counts(port, "recomputes", &counts(2)).await;
    let status = view_status(port, "product_cache").await;
    assert_eq!(status["state"], "rebuilding", "{status}");
    let (ready, _) = http_get(port, "/ready").await.unwrap();
    assert_eq!(ready, 503);
    assert!(waiting.try_wait().unwrap().is_none(), "reload --wait waits");

    pause_redis_writes(&redis.url(), None).await;
    let output = wait_until(DEADLINE, "reload --wait returns", || {
        let done = waiting.try_wait().unwrap();
        async move { done.ok_or("still waiting") }
    })
    .await;
    let stderr = std::io::read_to_string(waiting.stderr.take().unwrap()).unwrap();
    assert!(output.success(), "{stderr}");
    assert!(stderr.contains("reloaded views live after"), "{stderr}");
    // Read at once: the wait ended when the target showed the new definition.
    assert_eq!(
        redis_documents(&redis.url(), "product:*").await,
        expected_renamed_products(&pool, "title").await
    );

    rename("title", "label");
    pause_redis_writes(&redis.url(), Some(60_000)).await;
    let timed_out = reload_command(port, &["--wait", "--timeout", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&timed_out.stderr);
    assert!(!timed_out.status.success());
    assert!(
        stderr.contains("still not live after 2 s: product_cache (rebuilding)"),
        "{stderr}"
    );
    pause_redis_writes(&redis.url(), None).await;
    wait_for_view_state(port, "product_cache", "live", DEADLINE).await;
    assert_eq!(
        redis_documents(&redis.url(), "product:*").await,
        expected_renamed_products(&pool, "label").await
    );
}

/// A cache view over specimens whose order is not cancelled.
const SPECIMEN_CACHE: &str = "view: specimen_cache\nkind: cache\nroot: specimens\n\
    key: \"spec:{accession}\"\nwhere: \"ord.status <> 'cancelled'\"\n\
    fields:\n  accession: accession\n  volume: volume\n  \
    ord: { one: orders, on: { id: order_id }, hidden: true }\n";

/// The `specimen_cache` documents SQL says there must be, once the label
/// is `canceled`.
async fn expected_specimens(pool: &PgPool) -> BTreeMap<String, Value> {
    let rows: Vec<(String, i32)> = sqlx::query_as(
        "SELECT s.accession, s.volume FROM specimens s JOIN lab_orders o ON o.id = s.order_id \
         WHERE o.status <> 'canceled'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(accession, volume)| {
            let document = json!({ "accession": accession, "volume": volume });
            (format!("spec:{accession}"), document)
        })
        .collect()
}

/// Waits until `view`'s sink has entries it has not applied (its Redis is
/// paused for writes): the engine has the changes, its target not.
async fn changes_wait_in_the_outbox(port: u16, view: &str) {
    wait_until(DEADLINE, "the changes wait in the outbox", || async {
        match view_status(port, view).await["outbox_depth"].as_u64() {
            Some(depth) if depth > 0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// A view set apart (an enum label its `where` names was renamed) while
/// its sink was behind lost the entries the sink had not applied: the next
/// pipeline's Redis sink leaves out the entries of views it does not run,
/// and the stored outputs said they were written. Fixed and reloaded, its
/// recompute found nothing to write, and it read `live` over deleted,
/// missing and stale documents (trial 42). A view set apart, or removed
/// and put back, is now rebuilt whole (its target rewritten) when it runs
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_stopped_while_its_sink_was_behind_is_rewritten_when_it_returns() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    sqlx::raw_sql(
        "CREATE TYPE order_status AS ENUM ('ordered', 'collected', 'cancelled');
         CREATE TABLE lab_orders (id int PRIMARY KEY, status order_status NOT NULL);
         CREATE TABLE specimens (accession text PRIMARY KEY, order_id int, volume int);
         INSERT INTO lab_orders SELECT g, (ARRAY['ordered', 'collected', 'cancelled'])[g % 3 + 1]::order_status
             FROM generate_series(1, 30) g;
         INSERT INTO specimens SELECT 'S' || g, g % 30 + 1, g FROM generate_series(1, 60) g;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let views = tempfile::tempdir().unwrap();
    let file = views.path().join("specimen_cache.yaml");
    std::fs::write(&file, SPECIMEN_CACHE.replace("orders", "lab_orders")).unwrap();
    std::fs::write(
        views.path().join("lab_order_doc.yaml"),
        "view: lab_order_doc\nkind: cache\nroot: lab_orders\nkey: \"lab_order:{id}\"\n\
         fields: { id: id }\n",
    )
    .unwrap();
    let setup = ServiceSetup::with_views(&url, &redis.url(), views.path().to_owned())
        .with_admin_token(TOKEN);
    let _service = setup.start();
    let port = setup.admin_port;
    wait_for_view_state(port, "specimen_cache", "live", DEADLINE).await;
    wait_for_view_counts(
        port,
        "outbox_depth",
        &[("lab_order_doc", 0), ("specimen_cache", 0)],
    )
    .await;

    // The sink falls behind: the changes wait in its outbox.
    pause_redis_writes(&redis.url(), Some(60_000)).await;
    sqlx::raw_sql(
        "DELETE FROM specimens WHERE accession IN ('S2', 'S3');
         UPDATE specimens SET volume = 999 WHERE accession = 'S8';
         INSERT INTO specimens VALUES ('S100', 1, 100), ('S101', 2, 101);",
    )
    .execute(&pool)
    .await
    .unwrap();
    changes_wait_in_the_outbox(port, "specimen_cache").await;
    sqlx::query("ALTER TYPE order_status RENAME VALUE 'cancelled' TO 'canceled'")
        .execute(&pool)
        .await
        .unwrap();
    wait_for_view_error(port, "specimen_cache", &["'cancelled'"], DEADLINE).await;
    pause_redis_writes(&redis.url(), None).await;

    std::fs::write(
        &file,
        SPECIMEN_CACHE
            .replace("orders", "lab_orders")
            .replace("'cancelled'", "'canceled'"),
    )
    .unwrap();
    let (code, outcome) = reload(port).await;
    assert_eq!(code, 200, "{outcome}");
    let specimens_match = |what: &'static str| {
        let (pool, redis_url) = (pool.clone(), redis.url());
        wait_until(DEADLINE, what, move || {
            let (pool, redis_url) = (pool.clone(), redis_url.clone());
            async move {
                let expected = expected_specimens(&pool).await;
                harness::redis_matches(&redis_url, "spec:*", &expected).await
            }
        })
    };
    specimens_match("the returned view matches SQL").await;

    // Likewise a view whose file is removed, then put back as it was.
    let text = std::fs::read_to_string(&file).unwrap();
    pause_redis_writes(&redis.url(), Some(60_000)).await;
    sqlx::raw_sql(
        "DELETE FROM specimens WHERE accession IN ('S4', 'S5');
         UPDATE specimens SET volume = 998 WHERE accession = 'S9';",
    )
    .execute(&pool)
    .await
    .unwrap();
    changes_wait_in_the_outbox(port, "specimen_cache").await;
    std::fs::remove_file(&file).unwrap();
    let (code, outcome) = reload(port).await;
    assert_eq!(
        outcome["removed"],
        json!(["specimen_cache"]),
        "{code} {outcome}"
    );
    pause_redis_writes(&redis.url(), None).await;
    std::fs::write(&file, text).unwrap();
    let (code, outcome) = reload(port).await;
    assert_eq!(
        outcome["added"],
        json!(["specimen_cache"]),
        "{code} {outcome}"
    );
    specimens_match("the view put back matches SQL").await;
}
