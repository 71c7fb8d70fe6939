//! The main differential test: random workloads while viewkeeper runs, then
//! Redis must hold exactly what plain SQL over the source tables says.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{
    PgServer, RedisServer, ServiceSetup, converged, current_wal_lsn, expected_product_cache,
    redis_matches, served_small_shop, slot_confirmed, small_shop, wait_until,
};
use sqlx::PgPool;
use viewkeeper::workload::{self, WorkloadOptions};

const CONVERGE: Duration = Duration::from_secs(120);

async fn run_workload(pool: &PgPool, options: &WorkloadOptions) {
    let stats = workload::run(pool, options)
        .await
        .expect("running the workload");
    assert!(
        stats.committed * 10 >= options.transactions * 9,
        "too few transactions committed: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workload_with_truncate_toast_and_ddl_converges_to_the_oracle() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();

    let mut first = WorkloadOptions::new(2_500, 7);
    first.truncate_items_at = Some(1_200);
    run_workload(&pool, &first).await;
    // A column added while streaming: later changes carry it in a new relation message.
    sqlx::query("ALTER TABLE orders ADD COLUMN note text DEFAULT 'x'")
        .execute(&pool)
        .await
        .expect("adding a column");
    run_workload(&pool, &WorkloadOptions::new(2_500, 8)).await;

    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    slot_confirmed(&pool, &current_wal_lsn(&pool).await, None, CONVERGE).await;
    let products = expected_product_cache(&pool).await;
    assert!(
        products.values().any(|p| p["description"]
            .as_str()
            .is_some_and(|d| d.len() > 8 * 1024)),
        "the workload must leave at least one TOASTed description over 8 KB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_while_the_workload_runs_converges() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let orders_before: i64 = sqlx::query_scalar("SELECT max(id) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();

    let options = WorkloadOptions::new(3_000, 11);
    let background = {
        let pool = pool.clone();
        let options = options.clone();
        tokio::spawn(async move { run_workload(&pool, &options).await })
    };
    // Start once the workload is visibly under way, so snapshot and stream overlap.
    wait_until(
        Duration::from_secs(60),
        "the workload has started",
        || async {
            let newest: i64 = sqlx::query_scalar("SELECT max(id) FROM orders")
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
            if newest > orders_before + 20 {
                Ok(())
            } else {
                Err(format!("newest order {newest}"))
            }
        },
    )
    .await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    background.await.expect("workload task");

    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_customer_with_thousands_of_orders_updates_every_document() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    sqlx::raw_sql(
        "INSERT INTO customers (id, name, email) VALUES (100000, 'Hot', 'hot@example.com');
         INSERT INTO orders (customer_id, status, total_cents)
             SELECT 100000, 'paid', g FROM generate_series(1, 6000) g;",
    )
    .execute(&pool)
    .await
    .expect("creating a hot customer");
    let mut setup = ServiceSetup::new(&url, &redis.url());
    // Below the fan-out, so most of the orders are refreshed as pending roots.
    setup.extra_args = vec!["--batch-max-roots".into(), "1000".into()];
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    sqlx::query("UPDATE customers SET name = 'Renamed' WHERE id = 100000")
        .execute(&pool)
        .await
        .expect("renaming");
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    let log = service.log_tail(10_000);
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("fan-out beyond batch_max_roots"),
        "the rename was refreshed without pending roots: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_data_directory_is_refused() {
    let (_pg, _redis, _pool, setup, mut first) = served_small_shop(CONVERGE).await;

    // Its own admin port: a taken one would stop it first.
    let beside = ServiceSetup {
        admin_port: harness::free_port(),
        database_url: setup.database_url.clone(),
        redis_url: setup.redis_url.clone(),
        views: setup.views.clone(),
        dir: Arc::clone(&setup.dir),
        extra_args: Vec::new(),
    };
    let second = beside.run_to_exit();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        stderr.contains("locked by another viewkeeper process"),
        "{stderr}"
    );
    first.assert_running();
}

/// Tickets with their comments newest stage first: a `where`, a computed
/// field, a relation's `order_by` and its `max` all order the enums,
/// declared out of alphabetical order.
const TICKET_DOC: &str = "
view: ticket_doc
kind: cache
root: tickets
key: \"ticket:{id}\"
where: \"priority > 'low'\"
fields:
  id: id
  priority: priority
  urgent: \"priority >= 'high'\"
  comments:
    many: comments
    on: { ticket_id: id }
    order_by: [stage desc, id]
    fields: { id: id, stage: stage }
  furthest:
    many: comments
    on: { ticket_id: id }
    measure: max(stage)
";

const TICKET_DOC_SQL: &str = "
    SELECT 'ticket:' || t.id, json_build_object(
        'id', t.id, 'priority', t.priority, 'urgent', t.priority >= 'high',
        'comments', coalesce((SELECT json_agg(json_build_object('id', c.id, 'stage', c.stage)
                                              ORDER BY c.stage DESC, c.id)
                              FROM comments c WHERE c.ticket_id = t.id), '[]'::json),
        'furthest', (SELECT max(c.stage) FROM comments c WHERE c.ticket_id = t.id))::text
    FROM tickets t WHERE t.priority > 'low'";

/// A cache view orders enums by their labels' declared order wherever it
/// orders them (`where`, a computed field, `order_by`, `max`), as
/// PostgreSQL does; a label added among them while running takes its
/// place once the views are planned again with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_view_orders_enums_by_their_labels() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    sqlx::raw_sql(
        "CREATE TYPE priority AS ENUM ('low', 'normal', 'high', 'critical');
         CREATE TYPE stage AS ENUM ('new', 'triaged', 'fixed', 'closed');
         CREATE TABLE tickets (id int PRIMARY KEY, priority priority NOT NULL);
         CREATE TABLE comments (id int PRIMARY KEY, ticket_id int, stage stage);
         INSERT INTO tickets SELECT g, (ARRAY['low', 'normal', 'high', 'critical'])[g % 4 + 1]::priority
             FROM generate_series(1, 40) g;
         INSERT INTO comments SELECT g, g % 40 + 1,
             (ARRAY['new', 'triaged', 'fixed', 'closed', NULL])[g % 5 + 1]::stage
             FROM generate_series(1, 150) g;",
    )
    .execute(&pool)
    .await
    .expect("creating the tickets");
    let views = tempfile::tempdir().expect("temp dir");
    std::fs::write(views.path().join("ticket_doc.yaml"), TICKET_DOC).expect("view file");
    let setup = ServiceSetup::with_views(&url, &redis.url(), views.path().to_path_buf());
    let mut service = setup.start();
    let matches = |what: &'static str| {
        let (pool, redis_url) = (pool.clone(), redis.url());
        wait_until(CONVERGE, what, move || {
            let (pool, redis_url) = (pool.clone(), redis_url.clone());
            async move {
                let expected = documents(&pool).await;
                redis_matches(&redis_url, "ticket:*", &expected).await
            }
        })
    };
    matches("the labels as declared").await;

    sqlx::raw_sql(
        "ALTER TYPE priority ADD VALUE 'blocker' AFTER 'critical';
         ALTER TYPE stage ADD VALUE 'reopened' BEFORE 'fixed';",
    )
    .execute(&pool)
    .await
    .expect("adding labels");
    sqlx::raw_sql(
        "UPDATE tickets SET priority = 'blocker' WHERE id % 7 = 0;
         UPDATE comments SET stage = 'reopened' WHERE id % 6 = 0;",
    )
    .execute(&pool)
    .await
    .expect("using them");
    matches("labels added while running").await;
    service.assert_running();
}

/// The `ticket_doc` documents SQL says there must be.
async fn documents(pool: &PgPool) -> std::collections::BTreeMap<String, serde_json::Value> {
    let rows: Vec<(String, String)> = sqlx::query_as(TICKET_DOC_SQL)
        .fetch_all(pool)
        .await
        .expect("the oracle");
    rows.into_iter()
        .map(|(key, doc)| (key, serde_json::from_str(&doc).expect("JSON")))
        .collect()
}
