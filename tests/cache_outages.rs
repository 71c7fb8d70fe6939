//! Outages of the servers around viewkeeper: Redis restarted (losing its data)
//! or down for a while, and PostgreSQL restarted, all while a workload runs.

mod harness;

use std::time::Duration;

use harness::{
    PgServer, RedisServer, ServiceSetup, converged, http_get, index_documents, scan_keys,
    served_small_shop, shop, small_shop, spawn_workload, view_status, wait_until,
};
use sqlx::PgPool;
use viewkeeper::workload::{Mix, Op, Scale, WorkloadOptions};

const CONVERGE: Duration = Duration::from_secs(120);
/// How often the checkpoint is polled after a FLUSHALL: closely, to see
/// what a crash at any moment would leave.
const CHECKPOINT_POLL: Duration = Duration::from_millis(1);

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

/// A connection of the test's own to the Redis at `url`.
async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
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
    let (mut pg, redis, pool, _setup, mut service) = served_small_shop(CONVERGE).await;

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

/// While PostgreSQL is down, `/status`, `/ready` and `/metrics` still
/// answer, the status with the source's error: they waited 30 s for a
/// connection from the pool (trial 27), in the outage an operator most
/// needs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_postgres_is_down() {
    let (mut pg, redis, pool, setup, mut service) = served_small_shop(CONVERGE).await;

    pg.stop_immediate().await;
    let port = setup.admin_port;
    // Well under the pool's 30 s: the status waits 2 s for the database.
    let answer = Duration::from_secs(10);
    let get = |path: &'static str| async move {
        tokio::time::timeout(answer, http_get(port, path))
            .await
            .unwrap_or_else(|_| panic!("{path} did not answer within {answer:?}"))
            .unwrap_or_else(|error| panic!("{path}: {error}"))
    };
    let (code, body) = get("/status").await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    assert!(
        status["source"]["error"].is_string(),
        "no source error while the database is down: {status:#}"
    );
    let (code, _) = get("/metrics").await;
    assert_eq!(code, 200);
    get("/ready").await;

    pg.restart().await;
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_on_a_live_connection_is_noticed_and_healed() {
    let (_pg, redis, pool, setup, mut service) = served_small_shop(CONVERGE).await;

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
    let mut conn = redis_connection(&redis.url()).await;
    // The sink's claims on its key prefixes come back at its next renewal,
    // not with the rewrite: keys are counted without them.
    let claims = "viewkeeper:claim:*";
    let (before, claimed): (u64, Vec<String>) = redis::pipe()
        .atomic()
        .cmd("DBSIZE")
        .cmd("KEYS")
        .arg(claims)
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    let before = before - claimed.len() as u64;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");

    // The checkpoint comes back only with every document: a checkpoint
    // over a partial rewrite would tell a sink restarted in between that
    // the rewrite was done. (The first batch after the FLUSHALL wrote its
    // entries and the checkpoint, and then the rewrite began.)
    let checkpoint_key = "viewkeeper:checkpoint:viewkeeper";
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let size = loop {
        let (checkpoint, size, claimed): (Option<String>, u64, Vec<String>) = redis::pipe()
            .atomic()
            .get(checkpoint_key)
            .cmd("DBSIZE")
            .cmd("KEYS")
            .arg(claims)
            .query_async(&mut conn)
            .await
            .expect("the checkpoint and DBSIZE");
        // The rewrite's marker names no sequence: no checkpoint yet.
        if checkpoint.is_some_and(|c| !c.ends_with(":rewriting")) {
            break size - claimed.len() as u64;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint came back"
        );
        tokio::time::sleep(CHECKPOINT_POLL).await;
    };
    assert!(
        size >= before,
        "the checkpoint came back with {size} keys in Redis, {before} before the FLUSHALL"
    );
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

    // A crash right then loses nothing.
    service.kill().await;
    let mut service = setup.start();
    background.await.expect("workload task");
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
}

/// A FLUSHALL that lands while the sink rewrites Redis after an earlier
/// one: the documents written before it are gone, and the rewrite's end
/// must not set the checkpoint over the gap (the twenty-first trial: 690
/// documents missing for good, every view `live`). Each round catches the
/// rewrite between its first documents and its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushall_during_the_rewrite_is_rewritten_again() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = shop(&pg, &Scale::from_orders(6_000)).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    let mut conn = redis_connection(&redis.url()).await;
    let checkpoint_key = "viewkeeper:checkpoint:viewkeeper";
    let mut caught = 0;
    for _ in 0..20 {
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut conn)
            .await
            .expect("FLUSHALL");
        // The rewrite has written documents but not its checkpoint.
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let (checkpoint, size): (Option<String>, u64) = redis::pipe()
                .atomic()
                .get(checkpoint_key)
                .cmd("DBSIZE")
                .query_async(&mut conn)
                .await
                .expect("the checkpoint and DBSIZE");
            let rewriting = checkpoint
                .as_deref()
                .is_none_or(|c| c.ends_with(":rewriting"));
            if rewriting && size > 10 {
                let () = redis::cmd("FLUSHALL")
                    .query_async(&mut conn)
                    .await
                    .expect("FLUSHALL");
                caught += 1;
                break;
            }
            if !rewriting {
                break; // the rewrite ended before it was caught: again
            }
            assert!(tokio::time::Instant::now() < deadline, "no rewrite began");
            tokio::time::sleep(CHECKPOINT_POLL).await;
        }
        converged(&mut service, &pool, &redis.url(), CONVERGE).await;
        if caught >= 3 {
            break;
        }
    }
    assert!(caught >= 1, "no FLUSHALL landed during a rewrite");
    let log = service.log_tail(100_000);
    assert!(
        log.contains("redis lost its data during the rewrite"),
        "{log}"
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

    let mut conn = redis_connection(&redis.url()).await;
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
        log.contains("outbox entries the cache sink had not read were dropped"),
        "the gap, not a lost checkpoint, made the sink rewrite:\n{log}"
    );
}

/// A new data directory (a lost disk, a new host) means a new state store,
/// empty until a new snapshot fills it, while Redis still holds what the old
/// store wrote. Every cache document must stay readable meanwhile: a sink's
/// full rewrite waits for the snapshot, then overwrites and sweeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_directory_keeps_every_document_readable_through_its_snapshot() {
    restart_on_a_new_state_store(Lost::DataDirectory).await;
}

/// The same with only the state store lost (its directory deleted, as the
/// store's own messages suggest for a store beyond repair): the search index
/// survives, written from the old store, and no document leaves it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_state_store_keeps_every_document_and_search_hit_through_its_snapshot() {
    restart_on_a_new_state_store(Lost::StateStore).await;
}

/// What is deleted between two runs.
#[derive(Clone, Copy, PartialEq)]
enum Lost {
    /// `<data_dir>`: the state store and the search indexes.
    DataDirectory,
    /// `<data_dir>/state` alone.
    StateStore,
}

/// Runs viewkeeper until it has caught up, stops it, deletes `lost`, and
/// starts it again; from before that start until `/ready` says the views are
/// live again, a reader keeps looking up every key the cache views had (and,
/// when the index survived, every id it had), and must find each every time.
/// Then everything equals the SQL oracle.
async fn restart_on_a_new_state_store(lost: Lost) {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    // Large enough that the snapshot takes a while to read through.
    let (url, pool) = shop(&pg, &Scale::from_orders(2_000)).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    let exit = service.terminate(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}\n{}", service.log_tail(40));
    let before_restart = service.log_tail(100_000).len();

    let mut conn = redis_connection(&redis.url()).await;
    let mut keys = scan_keys(&mut conn, "order:*").await.unwrap();
    keys.extend(scan_keys(&mut conn, "product:*").await.unwrap());
    assert!(keys.len() > 1_000, "{} keys", keys.len());
    let search_ids: Vec<String> = match lost {
        Lost::DataDirectory => Vec::new(),
        Lost::StateStore => index_documents(&setup.views, &setup.data_dir(), "product_search")
            .expect("reading the index")
            .into_keys()
            .collect(),
    };
    assert!(lost == Lost::DataDirectory || !search_ids.is_empty());
    let gone = match lost {
        Lost::DataDirectory => setup.data_dir(),
        Lost::StateStore => setup.data_dir().join("state"),
    };
    std::fs::remove_dir_all(&gone).expect("deleting the state store");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reader = {
        let (views, data_dir) = (setup.views.clone(), setup.data_dir());
        tokio::spawn(async move {
            let mut reads = 0;
            while !*stopped.borrow() {
                if !search_ids.is_empty() {
                    let (views, data_dir) = (views.clone(), data_dir.clone());
                    let indexed = tokio::task::spawn_blocking(move || {
                        index_documents(&views, &data_dir, "product_search")
                    })
                    .await
                    .unwrap()?;
                    if let Some(id) = search_ids.iter().find(|id| !indexed.contains_key(*id)) {
                        return Err(format!(
                            "read {reads}: product {id} missing from the index ({} documents)",
                            indexed.len()
                        ));
                    }
                }
                for chunk in keys.chunks(500) {
                    let values: Vec<Option<String>> = redis::cmd("MGET")
                        .arg(chunk)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    if let Some((key, _)) = chunk.iter().zip(&values).find(|(_, v)| v.is_none()) {
                        return Err(format!("read {reads}: {key} missing"));
                    }
                }
                reads += 1;
            }
            Ok(reads)
        })
    };
    let mut service = setup.start();
    let port = setup.admin_port;
    wait_until(CONVERGE, "the service is ready again", || {
        service.assert_running();
        async move {
            match http_get(port, "/ready").await? {
                (200, _) => Ok(()),
                (code, body) => Err(format!("{code} {body}")),
            }
        }
    })
    .await;
    let _ = stop.send(true); // a reader that found a document missing has stopped already
    let reads = reader
        .await
        .unwrap()
        .expect("a reader finds every document while the new snapshot runs");
    assert!(reads > 0);
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    // The rewrite came after the copy, not before it.
    let log = service.log_tail(100_000);
    let log = &log[before_restart.min(log.len())..];
    let copied = log
        .find("copying tables")
        .expect("a new snapshot was taken");
    let rewritten = log
        .find("redis rewritten from the state store")
        .expect("redis was rewritten");
    assert!(copied < rewritten, "{log}");
}
