//! Outages of the servers around viewkeeper: Redis restarted (losing its data)
//! or down for a while, and PostgreSQL restarted, all while a workload runs.

mod harness;

use std::time::Duration;

use harness::{
    PgServer, RedisServer, ServiceSetup, converged, small_shop, spawn_workload, view_status,
    wait_until,
};
use sqlx::PgPool;
use viewkeeper::workload::{Mix, Op, WorkloadOptions};

const CONVERGE: Duration = Duration::from_secs(120);

/// Waits until `count` more orders exist than `since`: the workload is under way.
async fn orders_grew(pool: &PgPool, since: i64, count: i64) {
    wait_until(
        Duration::from_secs(60),
        "the workload progresses",
        || async {
            let newest: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM orders")
                .fetch_one(pool)
                .await
                .map_err(|e| e.to_string())?;
            if newest >= since + count {
                Ok(newest)
            } else {
                Err(format!("newest order {newest}"))
            }
        },
    )
    .await;
}

async fn newest_order(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM orders")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_without_its_data_and_redis_down_for_a_while() {
    let pg = PgServer::start().await;
    let mut redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    let background = {
        let mut options = WorkloadOptions::new(3_000, 21);
        options.rate = Some(600.0);
        spawn_workload(&pool, options)
    };
    let start = newest_order(&pool).await;
    orders_grew(&pool, start, 30).await;
    redis.restart().await; // without persistence: every key is gone
    orders_grew(&pool, start, 120).await;
    redis.stop().await;
    orders_grew(&pool, start, 200).await;
    service.assert_running();
    redis.start_again().await;
    background.await.expect("workload task");

    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    let log = service.log_tail(100_000);
    assert!(
        log.matches("rewriting every cache document").count() >= 2,
        "the restart and the stop/start both lose Redis's data, and both are rewritten:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run() {
    let mut pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    let background = {
        let mut options = WorkloadOptions::new(2_000, 31);
        options.rate = Some(500.0);
        spawn_workload(&pool, options)
    };
    let start = newest_order(&pool).await;
    orders_grew(&pool, start, 40).await;
    pg.restart().await;
    background.await.expect("workload task");

    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    let log = service.log_tail(100_000);
    assert!(
        log.contains("replication interrupted"),
        "no reconnect happened:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_on_a_live_connection_is_noticed_and_healed() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    let background = {
        // Only new orders: the documents written before the FLUSHALL come
        // back only if viewkeeper rewrites them.
        let mut options = WorkloadOptions::new(400, 41);
        options.rate = Some(200.0);
        options.mix = Mix::only(&[Op::NewOrder]);
        spawn_workload(&pool, options)
    };
    let start = newest_order(&pool).await;
    orders_grew(&pool, start, 40).await;
    // The connection stays up: only the checkpoint read inside each MULTI can
    // tell that the data is gone.
    let client = redis::Client::open(redis.url()).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
    background.await.expect("workload task");

    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    let log = service.log_tail(100_000);
    assert!(log.contains("rewriting every cache document"), "{log}");
    // Reported: the cache views' sink counts the loss in /status.
    let order_cache = view_status(setup.admin_port, "order_cache").await;
    assert!(
        order_cache["sink_data_losses"].as_u64() >= Some(1),
        "{order_cache:#}"
    );
    assert!(
        order_cache["sink_last_data_loss_micros"].is_i64(),
        "{order_cache:#}"
    );
}

/// A sink that cannot keep up for long (Redis stalls writes) must not hold
/// every entry in memory: over the outbox budget the oldest are dropped,
/// and when the sink reads again it finds the gap and rewrites its whole
/// target from the state store, ending where applying them all would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_outbox_outgrew_its_memory_rewrites_its_target() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let mut setup = ServiceSetup::new(&url, &redis.url());
    setup.extra_args = vec!["--outbox-memory-mb".into(), "1".into()];
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    let client = redis::Client::open(redis.url()).expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    // Writes wait until unpaused; reads (and this connection) go on.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(120_000)
        .arg("WRITE")
        .query_async(&mut conn)
        .await
        .expect("CLIENT PAUSE");
    let stats = viewkeeper::workload::run(&pool, &WorkloadOptions::new(4_000, 51))
        .await
        .expect("running the workload");
    assert!(stats.committed > 3_000, "{stats:?}");
    wait_until(
        Duration::from_secs(60),
        "the outboxes go over their budget",
        || {
            let log = service.log_tail(100_000);
            async move {
                if log.contains("over their memory budget") {
                    Ok(())
                } else {
                    Err("within the budget")
                }
            }
        },
    )
    .await;
    let () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut conn)
        .await
        .expect("CLIENT UNPAUSE");

    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    let log = service.log_tail(100_000);
    assert!(
        log.contains("the cache sink fell so far behind"),
        "the gap, not a lost checkpoint, made the sink rewrite:\n{log}"
    );
}
