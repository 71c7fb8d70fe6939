//! What an operator meets: `viewkeeper tail`, secrets kept out of output, a
//! table viewkeeper cannot follow refused at start, a quiet or unrelated
//! database that must not time the replication connection out nor hold WAL,
//! a data directory written by an earlier version, the workload generator
//! leaving alone the rows written beside it, a column renamed under a
//! view, and a generated column read by one.

mod harness;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use harness::{
    PgServer, RedisServer, Service, ServiceSetup, converged, current_wal_lsn, expected_order_cache,
    expected_product_cache, http_get, http_post, redis_matches, scan_keys, shop, slot_confirmed,
    small_shop, view_status, wait_for_view_error, wait_for_view_state, wait_until,
};
use redis::AsyncCommands;
use serde_json::Value;
use sqlx::PgPool;
use viewkeeper::workload::{Mix, Op, Scale, WorkloadOptions};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("views")
}

/// The small shop served with the example views and the admin `token`,
/// converged: its servers, pool, admin port and service.
async fn converged_shop(token: &str) -> (PgServer, RedisServer, PgPool, u16, Service) {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url()).with_admin_token(token);
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;
    (pg, redis, pool, setup.admin_port, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_each_change_as_a_json_line() {
    let pg = PgServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    // A running service's publication, of other tables than tail's views
    // read: tail leaves it alone (it used to set it to its own tables, and
    // the service took a new snapshot; trial 9).
    // And the publication of a tail killed before it could drop it: its
    // temporary slot is gone, so the next tail drops it.
    sqlx::raw_sql(
        "CREATE PUBLICATION viewkeeper FOR TABLE categories;
         CREATE PUBLICATION viewkeeper_tail_999999 FOR TABLE categories",
    )
    .execute(&pool)
    .await
    .expect("a service's publication");
    let mut tail = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["tail", "--database-url", &url])
        .arg("--views")
        .arg(examples())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tail");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = tail.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    wait_until(Duration::from_secs(30), "tail's temporary slot is streaming", || async {
        let active: Option<bool> = sqlx::query_scalar(
            "SELECT active FROM pg_replication_slots WHERE slot_name LIKE 'viewkeeper_tail_%' AND temporary",
        )
        .fetch_optional(&pool)
        .await
        .map_err(|e| e.to_string())?;
        if active == Some(true) { Ok(()) } else { Err(format!("slot active: {active:?}")) }
    })
    .await;

    // The first two in one transaction, each other statement its own (one
    // query's statements would be one transaction).
    let before = lsn(&current_wal_lsn(&pool).await);
    for statement in [
        "BEGIN;
         INSERT INTO customers (id, name, email) VALUES (9001, 'Tail', 't@example.com');
         UPDATE customers SET name = 'Tailed' WHERE id = 9001;
         COMMIT;",
        "UPDATE products SET description = repeat('x', 20000) WHERE id = 1",
        "UPDATE products SET price_cents = price_cents + 1 WHERE id = 1",
        "DELETE FROM customers WHERE id = 9001",
    ] {
        sqlx::raw_sql(statement)
            .execute(&pool)
            .await
            .expect("changes to tail");
    }

    let mut changes: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while changes.len() < 5 && std::time::Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            changes.push(serde_json::from_str(&line).expect("each line is JSON"));
        }
    }
    let published: Vec<String> = sqlx::query_scalar(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables
         WHERE pubname = 'viewkeeper'",
    )
    .fetch_all(&pool)
    .await
    .expect("the service's publication");
    assert_eq!(published, ["public.categories"]);
    // Stopped, tail leaves no publication of its own behind, nor the
    // killed one's.
    let _ = Command::new("kill")
        .args(["-s", "TERM", &tail.id().to_string()])
        .status();
    let _ = tail.wait();
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT pubname::text FROM pg_publication WHERE pubname <> 'viewkeeper'",
    )
    .fetch_all(&pool)
    .await
    .expect("publications");
    assert!(left.is_empty(), "{left:?}");
    let ops: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["table"].as_str().unwrap_or(""),
                c["op"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("public.customers", "insert"),
            ("public.customers", "update"),
            ("public.products", "update"),
            ("public.products", "update"),
            ("public.customers", "delete"),
        ],
        "{changes:#?}"
    );
    assert_eq!(changes[1]["new"]["name"], "Tailed");
    assert_eq!(
        changes[3]["unchanged_toast"],
        serde_json::json!(["description"])
    );
    assert_eq!(changes[4]["old"]["id"], 9001);
    // Each change with its own transaction's commit LSN (they were all
    // printed with the last one's; trial 10).
    let after = lsn(&current_wal_lsn(&pool).await);
    let commit_lsns: Vec<u64> = changes
        .iter()
        .map(|change| lsn(change["commit_lsn"].as_str().expect("a commit LSN")))
        .collect();
    assert_eq!(commit_lsns[0], commit_lsns[1], "{changes:#?}");
    assert!(
        commit_lsns.windows(2).skip(1).all(|pair| pair[0] < pair[1]),
        "{changes:#?}"
    );
    assert!(
        before < commit_lsns[0] && commit_lsns[4] < after,
        "{changes:#?}"
    );
}

/// An LSN as PostgreSQL writes it (`16/B374D848`), as a number.
fn lsn(text: &str) -> u64 {
    let (high, low) = text.split_once('/').expect("an LSN");
    (u64::from_str_radix(high, 16).expect("hex") << 32) | u64::from_str_radix(low, 16).expect("hex")
}

/// A mutating admin command without a token says where one comes from
/// (clap's own message named only the flag), before it calls the service.
#[test]
fn admin_commands_without_a_token_name_the_flag_and_the_variable() {
    for args in [
        &["drop", "gone"][..],
        &["reload"],
        &["rebuild", "order_cache"],
        &["dead-letters", "order_cache", "--retry"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
            .args(args)
            .args(["--admin-addr", "127.0.0.1:1"])
            .env_remove("VIEWKEEPER_ADMIN_TOKEN")
            .output()
            .expect("running viewkeeper");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr.contains("give --admin-token, set VIEWKEEPER_ADMIN_TOKEN"),
            "{args:?}: {stderr}"
        );
    }
}

/// The admin commands take the address and the token from the config file
/// `run` reads, the default one in the working directory or one named
/// with `--config`, where no flag or variable gives them (they ignored it:
/// the seventeenth trial's `status` went to the default port, and `reload`
/// asked for a token the file held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_read_the_config_file() {
    let (_pg, _redis, _pool, admin_port, _service) = converged_shop("file-token").await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("viewkeeper.yaml"),
        format!("admin_addr: 127.0.0.1:{admin_port}\nadmin_token: file-token\n"),
    )
    .expect("config file");
    let viewkeeper = |args: &[&str], cwd: &std::path::Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
            .args(args)
            .current_dir(cwd)
            .env_remove("VIEWKEEPER_ADMIN_TOKEN")
            .env_remove("VIEWKEEPER_ADMIN_ADDR")
            .env_remove("VIEWKEEPER_CONFIG")
            .output()
            .expect("running viewkeeper");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), format!("{stdout}{stderr}"))
    };
    let (ok, out) = viewkeeper(&["status"], dir.path());
    assert!(ok && out.contains("order_cache"), "{out}");
    let (ok, out) = viewkeeper(&["reload"], dir.path());
    assert!(ok, "{out}");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("viewkeeper.yaml");
    let named = ["dead-letters", "order_cache", "--retry", "--config"];
    let (ok, out) = viewkeeper(
        &[&named[..], &[file.to_str().unwrap()]].concat(),
        elsewhere.path(),
    );
    assert!(ok, "{out}");
    // A flag still wins over the file.
    let (ok, out) = viewkeeper(&["reload", "--admin-token", "wrong"], dir.path());
    assert!(!ok && out.contains("401"), "{out}");
}

/// In the URLs' user part, and as a query parameter, which libpq takes
/// too (trial 8: that one was logged in clear). Nothing listens on port 1.
#[test]
fn passwords_never_appear_in_errors_or_logs() {
    let secret = "S3cr3t-Pa55";
    for (database_url, redis_url, shown) in [
        (
            format!("postgres://app:{secret}@127.0.0.1:1/shop"),
            format!("redis://:{secret}@127.0.0.1:1"),
            "app:***@127.0.0.1",
        ),
        (
            format!("postgres://app@127.0.0.1:1/shop?password={secret}"),
            format!("redis://127.0.0.1:1?password={secret}"),
            "shop?password=***",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
            .args(["run", "--database-url", &database_url])
            .args(["--redis-url", &redis_url])
            .args(["--admin-addr", "127.0.0.1:0"])
            .arg("--views")
            .arg(examples())
            .arg("--data-dir")
            .arg(tempfile::tempdir().expect("temp dir").path())
            .output()
            .expect("running viewkeeper");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "nothing listens on port 1");
        assert!(all.contains(shown), "the URL is shown redacted:\n{all}");
        // The failure names the server, as the pool's own error does not,
        // and says why (after `run` waited 30 s for a server starting):
        // the pool said only that no connection could be opened in time.
        assert!(all.contains("PostgreSQL at 127.0.0.1:1/shop"), "{all}");
        assert!(all.contains("Connection refused"), "{all}");
        assert!(!all.contains(secret), "the password leaked:\n{all}");
    }
}

/// Credentials Redis refuses stop `run` at once, before any work, as a
/// wrong PostgreSQL password does, and without the password; the sink
/// retried them forever while the views read `failed` (trial 39). The
/// right password runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_redis_refuses_stop_the_start() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let secret = "Right-Pa55";
    let client = redis::Client::open(redis.url()).expect("a Redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", secret])
        .query_async::<()>(&mut conn)
        .await
        .expect("a password");
    let port = redis.port();
    for redis_url in [
        format!("redis://:Wrong-Pa55@127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}"),
    ] {
        let output = ServiceSetup::new(&url, &redis_url).run_to_exit();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{redis_url}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "127.0.0.1:{port} refuses viewkeeper's credentials"
            )) && stderr.contains("check the user and password in redis_url"),
            "{redis_url}: {stderr}"
        );
        assert!(
            !stderr.contains("Wrong-Pa55"),
            "the password leaked: {stderr}"
        );
    }
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(slots, 0, "no slot was made");

    let setup = ServiceSetup::new(&url, &format!("redis://:{secret}@127.0.0.1:{port}"));
    let mut service = setup.start();
    wait_until(Duration::from_secs(90), "ready", || async {
        match http_get(setup.admin_port, "/ready").await {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    service.assert_running();
}

/// A database that cannot stream changes (PostgreSQL's default
/// `wal_level=replica`) is refused at once with the fix, by `check` (once
/// the files check) and `run`; `run` retried the replication connection
/// for good, and `check` said nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_logical_decoding_is_refused_with_the_fix() {
    let pg = PgServer::start_with_settings(&["wal_level=replica", "max_wal_senders=0"]).await;
    let redis = RedisServer::start().await;
    let (url, _pool) = small_shop(&pg).await;
    let run = ServiceSetup::new(&url, &redis.url()).run_to_exit();
    let check = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["check", "--database-url", &url, "--views"])
        .arg(examples())
        .output()
        .expect("viewkeeper check");
    for output in [run, check] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        for expected in [
            "the database cannot stream changes: wal_level is replica, and logical decoding \
             needs logical (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)",
            "max_wal_senders is 0",
        ] {
            assert!(stderr.contains(expected), "{stderr}");
        }
    }
}

/// Two instances (their own slots and data directories) with cache views
/// on one Redis: the second's cache views read `failed`, naming the first,
/// and write nothing, until the first stops; then the second takes the
/// keys over at once (a clean stop hands its claim back). Trial 40: the
/// second wrote its documents over the first's, and both read `live`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_waits_for_the_cache_keys_until_the_first_stops() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let first_setup = ServiceSetup::new(&url, &redis.url());
    let mut first = first_setup.start();
    converged(&mut first, &pool, &redis.url(), Duration::from_secs(120)).await;
    let client = redis::Client::open(redis.url()).expect("a Redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    let checkpoint: String = redis::cmd("GET")
        .arg("viewkeeper:checkpoint:viewkeeper")
        .query_async(&mut conn)
        .await
        .expect("the first's checkpoint");
    let first_store = checkpoint.split(':').next().unwrap_or_default().to_owned();

    // The second's cache view holds fewer fields: written over the first's
    // documents, it would show.
    let fewer = tempfile::tempdir().expect("temp dir");
    let product_cache = std::fs::read_to_string(examples().join("product_cache.yaml"))
        .expect("the example view")
        .replace("  description: description\n", "");
    std::fs::write(fewer.path().join("product_cache.yaml"), product_cache).expect("a view");
    let mut second_setup = ServiceSetup::with_views(&url, &redis.url(), fewer.path().to_path_buf());
    second_setup
        .extra_args
        .extend(["--slot".to_owned(), "second".to_owned()]);
    let mut second = second_setup.start();
    let port = second_setup.admin_port;
    let status =
        wait_for_view_state(port, "product_cache", "failed", Duration::from_secs(60)).await;
    let error = status["sink_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "cache keys under `product:` are written by another viewkeeper (state store \
             {first_store} (process {} on ",
            first.pid()
        )),
        "{status:#}"
    );
    sqlx::raw_sql("UPDATE products SET name = name || ' v2' WHERE id % 3 = 0")
        .execute(&pool)
        .await
        .expect("an update");
    converged(&mut first, &pool, &redis.url(), Duration::from_secs(60)).await;
    let first_view = view_status(first_setup.admin_port, "product_cache").await;
    assert_eq!(first_view["state"], "live", "{first_view:#}");

    first.terminate(Duration::from_secs(30)).await;
    wait_for_view_state(port, "product_cache", "live", Duration::from_secs(20)).await;
    // The second's documents, without descriptions.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("product:*")
        .query_async(&mut conn)
        .await
        .expect("the product keys");
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(keys.len() as i64, products);
    wait_until(
        Duration::from_secs(60),
        "the second's documents",
        || async {
            for key in &keys {
                let document: String = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                if document.contains("\"description\"") {
                    return Err(format!("{key} still holds a description: {document}"));
                }
            }
            Ok(())
        },
    )
    .await;
    second.assert_running();
}

/// A second instance given the running one's slot name, with a data
/// directory of its own, took the slot over: it ended the first one's
/// replication session and dropped its slot, and the two then took
/// snapshots in turn (trial 7). It now leaves the slot to the session
/// that holds it, says why, and retries; the first streams on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_slot_leaves_the_first_alone() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let other_redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let mut first = ServiceSetup::new(&url, &redis.url()).start();
    converged(&mut first, &pool, &redis.url(), Duration::from_secs(120)).await;
    let streaming =
        "SELECT pid FROM pg_stat_replication WHERE application_name LIKE 'viewkeeper/%'";
    let walsender: i32 = wait_until(Duration::from_secs(30), "the first streams", || async {
        sqlx::query_scalar::<_, i32>(streaming)
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())
    })
    .await;

    let published = "SELECT schemaname || '.' || tablename FROM pg_publication_tables
                     WHERE pubname = 'viewkeeper' ORDER BY 1";
    let first_tables: Vec<String> = sqlx::query_scalar(published)
        .fetch_all(&pool)
        .await
        .expect("the publication");
    // The second's views read fewer tables: it used to set the shared
    // publication to them before it found the slot taken, and the first
    // then took a new snapshot (trial 9).
    let fewer = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        examples().join("product_cache.yaml"),
        fewer.path().join("product_cache.yaml"),
    )
    .expect("copying a view");
    let second_setup =
        ServiceSetup::with_views(&url, &other_redis.url(), fewer.path().to_path_buf());
    let mut second = second_setup.start();
    wait_until(
        Duration::from_secs(60),
        "the second refuses the slot",
        || async {
            let log = second.log_tail(200);
            if log.contains("replication slot viewkeeper: in use by another session") {
                Ok(())
            } else {
                Err(log)
            }
        },
    )
    .await;
    // Its views read `stalled`, with the reason (they read `building`,
    // though no snapshot was being taken; trial 10).
    wait_until(
        Duration::from_secs(30),
        "the second's views stalled",
        || async {
            let (_, body) = http_get(second_setup.admin_port, "/status").await?;
            let status: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let error = status["source"]["error"].as_str().unwrap_or_default();
            let stalled = status["views"]
                .as_array()
                .is_some_and(|views| views.iter().all(|view| view["state"] == "stalled"));
            if stalled && error.contains("in use by another session") {
                Ok(())
            } else {
                Err(body)
            }
        },
    )
    .await;
    let walsenders: Vec<i32> = sqlx::query_scalar(streaming)
        .fetch_all(&pool)
        .await
        .expect("the walsenders");
    assert_eq!(walsenders, [walsender], "the first's session is the slot's");
    let tables: Vec<String> = sqlx::query_scalar(published)
        .fetch_all(&pool)
        .await
        .expect("the publication");
    assert_eq!(
        tables, first_tables,
        "the first's publication is left alone"
    );
    sqlx::query("UPDATE customers SET name = name || ' (again)' WHERE id = 1")
        .execute(&pool)
        .await
        .expect("a change");
    converged(&mut first, &pool, &redis.url(), Duration::from_secs(60)).await;
    second.assert_running();
    first.assert_running();
    let snapshots = first.log_tail(100_000).matches("snapshot complete").count();
    assert_eq!(snapshots, 1, "{}", first.log_tail(40));
}

/// An admin port in use stops `run` before it does anything: it took the
/// snapshot first, and then exited (the thirteenth trial).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_port_in_use_is_refused_before_any_work() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let taken = std::net::TcpListener::bind(("127.0.0.1", setup.admin_port))
        .expect("taking the admin port");
    let output = setup.run_to_exit();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "admin API: cannot listen on 127.0.0.1:{}",
            setup.admin_port
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("another viewkeeper, or another program, listens there"),
        "{stderr}"
    );
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(slots, 0, "no slot was made: {stderr}");
    assert!(!setup.data_dir().exists(), "no state store was made");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_usable_replica_identity_is_refused() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    sqlx::query("ALTER TABLE customers REPLICA IDENTITY NOTHING")
        .execute(&pool)
        .await
        .expect("altering the replica identity");
    let output = ServiceSetup::new(&url, &redis.url()).run_to_exit();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("table public.customers has REPLICA IDENTITY NOTHING"),
        "{stderr}"
    );

    // `check` says the same, in the file of the view that reads it: it
    // passed, and `run` then refused.
    let check = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["check", "--database-url", &url, "--views"])
        .arg(examples())
        .output()
        .expect("viewkeeper check");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "order_cache.yaml:13: fields.customer.one: table public.customers has REPLICA IDENTITY NOTHING"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_or_unrelated_traffic_keeps_the_connection_and_releases_wal() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    sqlx::query("CREATE TABLE audit_log (id bigserial PRIMARY KEY, line text)")
        .execute(&pool)
        .await
        .expect("an unrelated table");
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(60)).await;
    let walsender: i32 = wait_until(Duration::from_secs(30), "viewkeeper streams", || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_replication WHERE application_name LIKE 'viewkeeper/%'",
        )
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())
    })
    .await;

    // Writes only to a table no view reads: the slot must still advance.
    sqlx::query("INSERT INTO audit_log (line) SELECT 'line ' || g FROM generate_series(1, 5000) g")
        .execute(&pool)
        .await
        .expect("unrelated writes");
    let wal_end = current_wal_lsn(&pool).await;
    slot_confirmed(&pool, &wal_end, None, Duration::from_secs(60)).await;

    // The harness sets wal_sender_timeout=10s: the same walsender must live
    // through two timeouts of a quiet database.
    wait_until(
        Duration::from_secs(60),
        "the walsender outlives wal_sender_timeout twice",
        || async {
            let (pid, old_enough): (i32, bool) = sqlx::query_as(
                "SELECT pid, now() - backend_start > interval '21 seconds'
             FROM pg_stat_replication WHERE application_name LIKE 'viewkeeper/%'",
            )
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
            if pid != walsender {
                panic!("the replication connection was replaced ({walsender} → {pid})");
            }
            if old_enough {
                Ok(())
            } else {
                Err("younger than 21 s".to_owned())
            }
        },
    )
    .await;
    service.assert_running();
    assert!(!service.log_tail(10_000).contains("replication interrupted"));
}

/// The small shop served with the example views until they converged, then
/// stopped: its servers, pool and service setup.
async fn shop_converged_then_stopped() -> (PgServer, RedisServer, PgPool, ServiceSetup) {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;
    service.terminate(Duration::from_secs(30)).await;
    (pg, redis, pool, setup)
}

/// A state store written by an earlier version (a redb file) is removed at
/// start and rebuilt by a new snapshot; the sinks,
/// whose checkpoints name the old store, rewrite their targets. Changes made
/// while it was stopped reach every view: a sink that took the old
/// checkpoint for its own would skip the new store's first entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_store_of_an_earlier_format_is_rebuilt_by_a_new_snapshot() {
    let (_pg, redis, pool, setup) = shop_converged_then_stopped().await;

    // What a data directory of an earlier viewkeeper holds: a redb file,
    // which this one cannot read.
    let data_dir = setup.data_dir();
    std::fs::remove_dir_all(data_dir.join("state")).expect("removing the state store");
    std::fs::write(data_dir.join("state.redb"), b"a store of format 2")
        .expect("writing an old store");
    viewkeeper::workload::run(&pool, &WorkloadOptions::new(1_000, 21))
        .await
        .expect("running the workload");

    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;
    let log = std::fs::read_to_string(setup.log_path()).expect("reading the log");
    assert!(
        log.contains("state store written in an earlier format"),
        "the log says why a new snapshot is taken:\n{}",
        service.log_tail(40)
    );
}

/// A new state store finds the cache full but no checkpoint (the key was
/// deleted, or a new slot names another): it keeps the documents readable
/// until its snapshot is complete. It swept every key at start, before the
/// snapshot (the seventeenth trial's cache sat empty for 4.5 s), since no
/// checkpoint was taken to mean an empty target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_store_keeps_a_cache_without_checkpoint_until_its_snapshot() {
    let (_pg, redis, pool, setup) = shop_converged_then_stopped().await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    std::fs::remove_dir_all(setup.data_dir()).expect("removing the data directory");
    sqlx::query("SELECT pg_drop_replication_slot('viewkeeper')")
        .execute(&pool)
        .await
        .expect("dropping the slot");
    let _: () = redis::cmd("DEL")
        .arg("viewkeeper:checkpoint:viewkeeper")
        .query_async(&mut conn)
        .await
        .unwrap();
    let documents: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert!(documents > 100, "{documents}");

    // The snapshot cannot read a source table while this lock is held.
    let mut locker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE order_items IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let earlier_log = std::fs::read(setup.log_path()).map_or(0, |log| log.len());
    let mut service = setup.start();
    wait_until(
        Duration::from_secs(60),
        "the cache sink decides",
        || async {
            let log = std::fs::read(setup.log_path()).unwrap_or_default();
            let log = String::from_utf8_lossy(log.get(earlier_log..).unwrap_or_default());
            if log.contains("full rewrite waits until the state store holds a complete snapshot")
                || log.contains("redis rewritten from the state store")
            {
                Ok(())
            } else {
                Err(service.log_tail(5))
            }
        },
    )
    .await;
    // Counted without the sink's claims on its key prefixes.
    let (held, claims): (usize, Vec<String>) = redis::pipe()
        .atomic()
        .cmd("DBSIZE")
        .cmd("KEYS")
        .arg("viewkeeper:claim:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held - claims.len(), documents, "{}", service.log_tail(20));
    locker.rollback().await.unwrap();
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;
}

/// A data directory restored from a backup holds a store behind the slot,
/// while the targets hold what the store wrote after the backup, under its
/// id, at outbox sequences the restored store counts again: every sink took
/// the new snapshot's entries for applied, and Redis and the table stayed
/// wrong with every view `live` (trial 16). The start now gives the store a
/// new id, so each sink rewrites its target after the new snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_restored_from_a_backup_converges() {
    let (_pg, redis, pool, setup) = shop_converged_then_stopped().await;
    let data_dir = setup.data_dir();
    let backup = tempfile::tempdir().expect("a directory for the backup");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let status = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .expect("running cp");
        assert!(status.success(), "copying {}", from.display());
    };
    copy(&data_dir, backup.path());

    let run_workload = |transactions, seed| {
        let pool = pool.clone();
        async move {
            viewkeeper::workload::run(&pool, &WorkloadOptions::new(transactions, seed))
                .await
                .expect("running the workload")
        }
    };
    let mut service = setup.start();
    run_workload(1_500, 31).await;
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;
    service.terminate(Duration::from_secs(30)).await;

    std::fs::remove_dir_all(&data_dir).expect("removing the data directory");
    copy(&backup.path().join("data"), &data_dir);
    let mut service = setup.start();
    run_workload(500, 32).await;
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;
    let log = service.log_tail(100_000);
    assert!(
        log.contains("the slot is past the state store"),
        "the start says why it takes a new snapshot:\n{log}"
    );
}

/// Rows with ids below 1 are written beside the workload (the end-to-end
/// benchmark's latency markers) and must outlive it unchanged, even once
/// every row the workload could pick is gone: picking then wraps around to
/// the lowest id, which must not be theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workload_never_touches_rows_with_ids_below_one() {
    let pg = PgServer::start().await;
    let (_, pool) = small_shop(&pg).await;
    sqlx::query("DELETE FROM products WHERE id > 3")
        .execute(&pool)
        .await
        .expect("leaving three products");
    sqlx::query("INSERT INTO products (id, name, description, price_cents) VALUES (-1, 'Marker', 'vkmarker', 100)")
        .execute(&pool)
        .await
        .expect("a marker product");
    let mut options = WorkloadOptions::new(60, 5);
    options.mix = Mix::only(&[Op::RenameProduct, Op::DeleteProduct]);
    viewkeeper::workload::run(&pool, &options)
        .await
        .expect("running the workload");

    let products: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM products ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("reading the products");
    assert_eq!(
        products,
        vec![(-1, "Marker".to_owned())],
        "the workload deleted every product it may pick, and only those"
    );
}

/// A column a view reads, renamed while running: that view no longer
/// checks, so it stops and `/status` says why (`check`'s message, naming
/// its file), while the other views go on; before, the column read NULL
/// and the rows stored before kept their values for good. Renamed back and
/// reloaded, the view runs again from a new snapshot and matches SQL, the
/// updates made meanwhile included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_renamed_under_a_view_stops_that_view_until_it_checks_again() {
    const TOKEN: &str = "rename-token-91c2";
    let (_pg, redis, pool, port, mut service) = converged_shop(TOKEN).await;
    let deadline = Duration::from_secs(120);

    for sql in [
        "ALTER TABLE customers RENAME COLUMN email TO mail",
        "UPDATE customers SET mail = 'renamed-' || id || '@example.com'",
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.expect(sql);
    }
    let needles = [
        "order_cache.yaml",
        "column \"email\" does not exist in table customers",
    ];
    wait_for_view_error(port, "order_cache", &needles, deadline).await;
    assert_eq!(http_get(port, "/ready").await.unwrap().0, 503);
    // The log names where in the log the change was seen (a relation
    // description's own start is 0: the transaction's LSN stands for it).
    let log = service.log_tail(100_000);
    assert!(
        log.contains("column email of table public.customers was dropped or renamed (at LSN")
            && !log.contains("(at LSN 0/0)"),
        "{log}"
    );
    // The other views go on.
    sqlx::raw_sql("UPDATE products SET name = name || ' (renamed)' WHERE id % 3 = 0")
        .execute(&pool)
        .await
        .expect("renaming products");
    wait_until(deadline, "product_cache matches SQL", || async {
        let expected = expected_product_cache(&pool).await;
        redis_matches(&redis.url(), "product:*", &expected).await
    })
    .await;
    service.assert_running();

    sqlx::raw_sql("ALTER TABLE customers RENAME COLUMN mail TO email")
        .execute(&pool)
        .await
        .expect("renaming back");
    let (code, body) = http_post(port, "/views/reload", Some(TOKEN)).await.unwrap();
    assert_eq!(code, 200, "{body}");
    converged(&mut service, &pool, &redis.url(), deadline).await;
    // Back, it is rebuilt whole (its sink left out its entries while it
    // stopped): `rebuilding` until that ends.
    wait_for_view_state(port, "order_cache", "live", deadline).await;
}

/// When the only view stops checking while running, the service stays up
/// with it `failed` (and no slot holding WAL back) until a reload finds it
/// checking: it used to exit, and a supervisor's restart failed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_view_broken_under_a_running_service_waits_for_a_reload() {
    const TOKEN: &str = "only-view-token-77d0";
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let views = tempfile::tempdir().expect("a views directory");
    std::fs::copy(
        examples().join("product_cache.yaml"),
        views.path().join("product_cache.yaml"),
    )
    .expect("copying the view");
    let setup = ServiceSetup::with_views(&url, &redis.url(), views.path().to_path_buf())
        .with_admin_token(TOKEN);
    let mut service = setup.start();
    let port = setup.admin_port;
    let deadline = Duration::from_secs(120);
    let product_cache_matches = || async {
        let expected = expected_product_cache(&pool).await;
        redis_matches(&redis.url(), "product:*", &expected).await
    };
    wait_until(deadline, "product_cache matches SQL", product_cache_matches).await;

    for sql in [
        "ALTER TABLE products RENAME COLUMN name TO title",
        "UPDATE products SET title = title || ' (renamed)' WHERE id % 2 = 0",
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.expect(sql);
    }
    let needles = ["column \"name\" does not exist"];
    wait_for_view_error(port, "product_cache", &needles, deadline).await;
    service.assert_running();
    assert_eq!(http_get(port, "/ready").await.unwrap().0, 503);
    wait_until(
        deadline,
        "no slot holds WAL back while nothing runs",
        || async {
            let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots")
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
            if slots == 0 {
                Ok(())
            } else {
                Err(format!("{slots} slots"))
            }
        },
    )
    .await;

    sqlx::raw_sql("ALTER TABLE products RENAME COLUMN title TO name")
        .execute(&pool)
        .await
        .expect("renaming back");
    let (code, body) = http_post(port, "/views/reload", Some(TOKEN)).await.unwrap();
    assert_eq!(code, 200, "{body}");
    // The view was there all along, set apart: it is back, not new.
    let outcome: serde_json::Value = serde_json::from_str(&body).expect("the reload's answer");
    assert_eq!(
        outcome["changed"],
        serde_json::json!(["product_cache"]),
        "{body}"
    );
    assert_eq!(outcome["added"], serde_json::json!([]), "{body}");
    wait_until(
        deadline,
        "product_cache matches SQL again",
        product_cache_matches,
    )
    .await;
    // Back, it is rebuilt whole: `rebuilding` until that ends.
    wait_for_view_state(port, "product_cache", "live", deadline).await;
    service.assert_running();
}

/// A table the views read, dropped while running, leaves the publication
/// without a word in the stream: the views that read it stop (they no
/// longer check), the others go on, and once the table is back a reload
/// runs them again from a new snapshot of the new table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_under_its_views_stops_them_until_it_is_back() {
    const TOKEN: &str = "drop-table-token-5e1a";
    let (_pg, redis, pool, port, mut service) = converged_shop(TOKEN).await;
    let deadline = Duration::from_secs(120);

    sqlx::raw_sql(
        "CREATE TABLE categories_kept AS SELECT * FROM categories;
         DROP TABLE categories CASCADE;",
    )
    .execute(&pool)
    .await
    .expect("dropping categories");
    wait_for_view_error(port, "product_cache", &["categories"], deadline).await;
    assert!(
        service
            .log_tail(100_000)
            .contains("table public.categories is no longer in publication viewkeeper (dropped")
    );
    // The views that do not read it go on.
    sqlx::raw_sql("UPDATE orders SET status = 'cancelled' WHERE id % 4 = 0 AND status = 'paid'")
        .execute(&pool)
        .await
        .expect("cancelling orders");
    wait_until(deadline, "order_cache matches SQL", || async {
        let expected = expected_order_cache(&pool).await;
        redis_matches(&redis.url(), "order:*", &expected).await
    })
    .await;
    service.assert_running();

    sqlx::raw_sql(
        "CREATE TABLE categories (id bigserial PRIMARY KEY, name text NOT NULL);
         INSERT INTO categories SELECT id, name || ' (back)' FROM categories_kept;",
    )
    .execute(&pool)
    .await
    .expect("creating categories again");
    let (code, body) = http_post(port, "/views/reload", Some(TOKEN)).await.unwrap();
    assert_eq!(code, 200, "{body}");
    converged(&mut service, &pool, &redis.url(), deadline).await;
    wait_for_view_state(port, "product_cache", "live", deadline).await;

    // A table renamed leaves the publication under its old name: the
    // message names the new one (the nineteenth trial: it said dropped).
    sqlx::raw_sql("ALTER TABLE categories RENAME TO kinds")
        .execute(&pool)
        .await
        .expect("renaming categories");
    wait_for_view_error(port, "product_cache", &["categories"], deadline).await;
    assert!(
        service
            .log_tail(100_000)
            .contains("table public.categories is no longer in publication viewkeeper (renamed to public.kinds)"),
        "{}",
        service.log_tail(20)
    );
}

/// A view may not read a generated column, which PostgreSQL 15 does not
/// send in its change log: its documents kept the snapshot's value while
/// the column changed. `check` and `run` refuse it, naming the column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_reading_a_generated_column_is_refused() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    sqlx::raw_sql(
        "CREATE TABLE gauges (id int PRIMARY KEY, a int,
                              doubled int GENERATED ALWAYS AS (a * 2) STORED)",
    )
    .execute(&pool)
    .await
    .expect("creating gauges");
    let views = tempfile::tempdir().expect("a views directory");
    std::fs::write(
        views.path().join("gauge_cache.yaml"),
        "view: gauge_cache\nkind: cache\nroot: gauges\nkey: \"gauge:{id}\"\n\
         fields: { a: a, doubled: doubled }\n",
    )
    .expect("the view file");
    let refused = |output: std::process::Output| {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let named = stderr.contains("gauge_cache.yaml")
            && stderr.contains("column \"doubled\" of table gauges is a generated column");
        assert!(!output.status.success() && named, "{stderr}");
    };
    refused(
        Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
            .args(["check", "--database-url", &url, "--views"])
            .arg(views.path())
            .output()
            .expect("running viewkeeper check"),
    );
    let setup = ServiceSetup::with_views(&url, &redis.url(), views.path().to_path_buf());
    refused(setup.run_to_exit());
}

/// A table's replica identity changed while running to one that does not
/// name its primary key: a delete then cannot be applied, and the stream
/// stops on it at every reconnect. That is visible: `/status` names the
/// error, and the LSN of the commit the change came by, in `source.error`
/// and shows the views `stalled`, and `/ready` says
/// 503 (they said `live` and 200). Setting the identity back and
/// rebuilding from source repairs it, as the error says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_identity_without_the_key_stalls_the_stream_visibly() {
    const TOKEN: &str = "identity-token-3b7e";
    let (_pg, redis, pool, port, mut service) = converged_shop(TOKEN).await;
    let deadline = Duration::from_secs(120);

    for sql in [
        "UPDATE customers SET email = 'c' || id || '@example.com' WHERE email IS NULL",
        "ALTER TABLE customers ALTER COLUMN email SET NOT NULL",
        "CREATE UNIQUE INDEX customers_email_identity ON customers (email)",
        "ALTER TABLE customers REPLICA IDENTITY USING INDEX customers_email_identity",
        "INSERT INTO customers (id, name, email) VALUES (9100, 'Gone', 'gone@example.com')",
        "DELETE FROM customers WHERE id = 9100",
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.expect(sql);
    }
    wait_until(deadline, "the stall in /status", || async {
        let (_, body) = http_get(port, "/status").await?;
        let status: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let error = status["source"]["error"].as_str().unwrap_or_default();
        let stalled = status["views"]
            .as_array()
            .is_some_and(|views| views.iter().all(|view| view["state"] == "stalled"));
        if error.contains("primary-key column id is missing from a change committed")
            && error.contains(" by LSN ")
            && error.contains("REPLICA IDENTITY DEFAULT")
            && stalled
        {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await;
    assert_eq!(http_get(port, "/ready").await.unwrap().0, 503);

    sqlx::raw_sql("ALTER TABLE customers REPLICA IDENTITY DEFAULT")
        .execute(&pool)
        .await
        .expect("the identity back");
    let path = "/views/order_cache/rebuild?from_source=true";
    let (code, body) = http_post(port, path, Some(TOKEN)).await.unwrap();
    assert!(code < 300, "{code} {body}");
    converged(&mut service, &pool, &redis.url(), deadline).await;
    // The rebuild's rewrite of the target may still show as `rebuilding`
    // a moment after `/ready` turns 200.
    wait_until(deadline, "/ready again, order_cache live", || async {
        let ready = http_get(port, "/ready").await?.0;
        let state = view_status(port, "order_cache").await["state"].clone();
        match (ready, state.as_str()) {
            (200, Some("live")) => Ok(()),
            _ => Err(format!("/ready {ready}, order_cache {state}")),
        }
    })
    .await;
}

/// A table rewritten by `ALTER TABLE` after the snapshot's point, before
/// the snapshot copies it: its rows are invisible to the snapshot, which
/// copied it as empty, and the views served that as live until the
/// rewrite check took a new snapshot (the twenty-first trial: 11,262
/// documents deleted for 10-15 s, `/ready` 200). The snapshot now refuses
/// the table and takes a new one at once; a `VACUUM FULL` meanwhile is
/// copied as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_rewritten_while_the_snapshot_copies_is_not_copied_empty() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    // Enough rows that the snapshot reaches `products`, copied last, well
    // after the rewrite below.
    let (url, pool) = shop(&pg, &Scale::from_orders(20_000)).await;
    const TOKEN: &str = "rewrite-token-3b8e";
    let setup = ServiceSetup::new(&url, &redis.url()).with_admin_token(TOKEN);
    let mut service = setup.start();
    snapshot_point_taken(&setup, &service, 1).await;
    sqlx::raw_sql("ALTER TABLE products ADD COLUMN popularity float8 DEFAULT random()")
        .execute(&pool)
        .await
        .expect("rewriting products");
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;

    // `VACUUM FULL` gives a new data file too, but keeps the rows visible
    // to the snapshot: copied, at no new snapshot's cost.
    let path = "/views/order_cache/rebuild?from_source=true";
    let (code, body) = http_post(setup.admin_port, path, Some(TOKEN))
        .await
        .unwrap();
    assert!(code < 300, "{code} {body}");
    snapshot_point_taken(&setup, &service, 3).await;
    sqlx::raw_sql("VACUUM FULL products")
        .execute(&pool)
        .await
        .expect("VACUUM FULL");
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;

    let log = std::fs::read_to_string(setup.log_path()).expect("the log");
    let copied_empty = log
        .lines()
        .filter(|line| line.contains("table copied"))
        .filter(|line| line.contains("public.products") && line.contains("rows=0"))
        .count();
    assert_eq!(copied_empty, 0, "{}", service.log_tail(30));
    let refused = "table public.products was rewritten by ALTER TABLE after the snapshot began";
    assert_eq!(log.matches(refused).count(), 1, "{}", service.log_tail(40));
    assert_eq!(
        log.matches("replication slot created; copying tables")
            .count(),
        3,
        "the ALTER's snapshot, the one after it, the rebuild's:\n{}",
        service.log_tail(40)
    );
}

/// Waits until the log shows the `count`th snapshot's point taken.
async fn snapshot_point_taken(setup: &ServiceSetup, service: &Service, count: usize) {
    wait_until(
        Duration::from_secs(60),
        "the snapshot's point is taken",
        || async {
            let log = std::fs::read_to_string(setup.log_path()).unwrap_or_default();
            if log
                .matches("replication slot created; copying tables")
                .count()
                >= count
            {
                Ok(())
            } else {
                Err(service.log_tail(3))
            }
        },
    )
    .await;
}

/// The Redis sink's checkpoint key for the default slot.
const CHECKPOINT_KEY: &str = "viewkeeper:checkpoint:viewkeeper";

/// `viewkeeper retire` with this setup's flags and `flags`, to completion.
fn retire(setup: &ServiceSetup, flags: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .arg("retire")
        .args(flags)
        .args(["--database-url", &setup.database_url])
        .args(["--redis-url", &setup.redis_url])
        .arg("--views")
        .arg(&setup.views)
        .arg("--data-dir")
        .arg(setup.data_dir())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running viewkeeper retire")
}

/// What a retire leaves: whether the slot, the publication, the data
/// directory, the cache keys and the aggregate table are there.
async fn retire_remains(
    pool: &PgPool,
    redis: &mut redis::aio::MultiplexedConnection,
    setup: &ServiceSetup,
) -> (bool, bool, bool, usize, bool) {
    let exists = |sql: &'static str| async move {
        sqlx::query_scalar::<_, bool>(sql)
            .fetch_one(pool)
            .await
            .expect("asking the catalog")
    };
    let slot =
        exists("SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'viewkeeper')")
            .await;
    let publication =
        exists("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'viewkeeper')").await;
    let table = exists("SELECT to_regclass('analytics.category_daily_sales') IS NOT NULL").await;
    let mut keys = 0;
    for pattern in ["order:*", "product:*"] {
        keys += scan_keys(redis, pattern)
            .await
            .expect("scanning keys")
            .len();
    }
    (slot, publication, setup.data_dir().exists(), keys, table)
}

/// `retire` refuses a running instance; without `--yes` it only says what
/// it would do; with it, it drops the slot (which would hold WAL on the
/// primary for good), the publication and the data directory, and with
/// `--drop-targets` the cache keys and the aggregate table too. Run again,
/// it finds nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_removes_what_an_instance_leaves_once_it_is_stopped() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), Duration::from_secs(120)).await;
    let mut conn = redis::Client::open(redis.url())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");

    let refused = retire(&setup, &["--yes", "--drop-targets"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("the instance is running") && stderr.contains("stop it first"),
        "{stderr}"
    );
    // From another machine, say: the slot is streamed from.
    let elsewhere = retire(&ServiceSetup::new(&url, &redis.url()), &["--yes"]);
    let stderr = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(!elsewhere.status.success());
    assert!(
        stderr.contains("a session streams from slot viewkeeper") && stderr.contains("PID"),
        "{stderr}"
    );
    service.terminate(Duration::from_secs(30)).await;
    let everything = retire_remains(&pool, &mut conn, &setup).await;
    assert!(
        matches!(everything, (true, true, true, keys, true) if keys > 0),
        "{everything:?}"
    );
    let checkpoint: Option<String> = conn.get(CHECKPOINT_KEY).await.expect("reading it");
    assert!(checkpoint.is_some());

    let dry_run = retire(&setup, &["--drop-targets"]);
    let stdout = String::from_utf8_lossy(&dry_run.stdout);
    assert!(!dry_run.status.success(), "a dry run exits with 1");
    for line in [
        "viewkeeper retire would (run it again with --yes to do it):",
        "- delete the Redis keys of cache view order_cache",
        "- delete table analytics.category_daily_sales of aggregate view category_daily_sales",
        "- drop publication viewkeeper",
        "- drop replication slot viewkeeper, which held ",
        "- remove the state store and search indexes in ",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
    assert_eq!(retire_remains(&pool, &mut conn, &setup).await, everything);

    let retired = retire(&setup, &["--yes", "--drop-targets"]);
    let stdout = String::from_utf8_lossy(&retired.stdout);
    assert!(
        retired.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&retired.stderr)
    );
    assert!(
        stdout.contains("- dropped replication slot viewkeeper"),
        "{stdout}"
    );
    assert_eq!(
        retire_remains(&pool, &mut conn, &setup).await,
        (false, false, false, 0, false)
    );
    let checkpoint: Option<String> = conn
        .get(CHECKPOINT_KEY)
        .await
        .expect("reading the checkpoint key");
    assert_eq!(checkpoint, None);

    let again = retire(&setup, &["--yes", "--drop-targets"]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    for line in [
        "publication viewkeeper: none",
        "replication slot viewkeeper: none",
        ": none",
        "no state store in ",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
}
