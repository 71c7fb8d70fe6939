//! What an operator watches: `/ready`, `/status` and `viewkeeper status`
//! (views, lag, outboxes, slot), `/metrics` in Prometheus text with counters
//! that move under load, a sink outage that shows as not ready, and SIGTERM
//! that exits cleanly with nothing lost on restart.

mod harness;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use harness::{
    PgServer, RedisServer, ServiceSetup, converged, expected_order_cache, http_get,
    parse_prometheus, redis_matches, small_shop, wait_until,
};
use serde_json::Value;
use viewkeeper::workload::{self, WorkloadOptions};

const DEADLINE: Duration = Duration::from_secs(90);

/// Every example view with nothing left in its outbox.
const DRAINED: [(&str, u64); 4] = [
    ("category_daily_sales", 0),
    ("order_cache", 0),
    ("product_cache", 0),
    ("product_search", 0),
];

async fn get_json(port: u16, path: &str) -> Result<(u16, Value), String> {
    let (code, body) = http_get(port, path).await?;
    let json = serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))?;
    Ok((code, json))
}

/// Waits until `/ready` answers 200.
async fn wait_ready(port: u16, what: &str) {
    wait_until(DEADLINE, what, || async {
        match get_json(port, "/ready").await? {
            (200, _) => Ok(()),
            (code, body) => Err(format!("{code}: {body}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_readiness_and_a_clean_sigterm() {
    let pg = PgServer::start().await;
    let mut redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let port = setup.admin_port;
    let mut service = setup.start();

    wait_ready(port, "/ready answers 200").await;

    let (code, status) = get_json(port, "/status").await.unwrap();
    assert_eq!(code, 200);
    let views = status["views"].as_array().expect("views");
    let kinds: BTreeMap<&str, &str> = views
        .iter()
        .map(|v| (v["view"].as_str().unwrap(), v["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("category_daily_sales", "aggregate"),
            ("order_cache", "cache"),
            ("product_cache", "cache"),
            ("product_search", "search"),
        ])
    );
    assert!(views.iter().all(|v| v["state"] == "live"), "{status:#}");
    // Every sink's first full write covers its outbox: nothing stays waiting.
    harness::wait_for_view_counts(port, "outbox_depth", &DRAINED).await;
    assert_eq!(status["source"]["slot"], "viewkeeper");
    assert!(
        status["source"]["retained_wal_bytes"].is_u64(),
        "{status:#}"
    );

    // The CLI prints the same document.
    let output = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["status", "--admin-addr", &format!("127.0.0.1:{port}")])
        .output()
        .expect("running viewkeeper status");
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(printed["views"].as_array().map(Vec::len), Some(4));

    // Counters move under load; gauges are present.
    let (code, text) = http_get(port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let before = parse_prometheus(&text);
    workload::run(&pool, &WorkloadOptions::new(400, 9))
        .await
        .expect("workload");
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;
    let after = wait_until(DEADLINE, "the change counter moves", || async {
        let (_, text) = http_get(port, "/metrics").await?;
        let after = parse_prometheus(&text);
        let changes = |m: &BTreeMap<String, f64>| m.get("viewkeeper_changes_total").copied();
        if changes(&after) > changes(&before) {
            Ok(after)
        } else {
            Err(format!(
                "changes_total {:?} -> {:?}",
                changes(&before),
                changes(&after)
            ))
        }
    })
    .await;
    // Killed once every outbox is drained: the entries the sinks released
    // since the last commit come back with the store, and each sink,
    // resuming from its checkpoint, releases them again (trial 8: they
    // stayed counted, and held, until the next change).
    harness::wait_for_view_counts(port, "outbox_depth", &DRAINED).await;
    service.kill().await;
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;
    harness::wait_for_view_counts(port, "outbox_depth", &DRAINED).await;
    for series in [
        "viewkeeper_batches_total",
        "viewkeeper_batch_seconds_count",
        "viewkeeper_source_lag_bytes",
        "viewkeeper_retained_wal_bytes",
        "viewkeeper_outbox_depth{sink=\"redis\"}",
        "viewkeeper_sink_applied_total{sink=\"redis\"}",
        // By the outbox's name, as `outbox_depth`: per view (trial 40).
        "viewkeeper_sink_applied_total{sink=\"aggregate:category_daily_sales\"}",
    ] {
        assert!(
            after.contains_key(series),
            "no {series} in /metrics: {after:?}"
        );
    }

    // Ready again after the restart, before Redis goes: a 503 read before
    // the resumed stream reported its position was taken for Redis's, and
    // the views read `building` (CI saw it).
    wait_ready(port, "/ready answers 200 after the restart").await;

    // Redis down: not ready, the cache views fail, the others stay live.
    redis.stop().await;
    wait_until(DEADLINE, "/ready says 503 while Redis is down", || async {
        workload::run(&pool, &WorkloadOptions::new(5, 10))
            .await
            .map_err(|e| e.to_string())?;
        match get_json(port, "/ready").await? {
            (503, status) => Ok(status),
            (code, _) => Err(format!("still {code}")),
        }
    })
    .await;
    let (_, status) = get_json(port, "/status").await.unwrap();
    for view in status["views"].as_array().unwrap() {
        let expected = if view["kind"] == "cache" {
            "failed"
        } else {
            "live"
        };
        assert_eq!(view["state"], expected, "{view:#}");
    }
    redis.start_again().await;
    wait_ready(port, "/ready is 200 again").await;

    // SIGTERM: a clean exit, then a restart that loses nothing.
    let exit = service.terminate(Duration::from_secs(15)).await;
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    workload::run(&pool, &WorkloadOptions::new(300, 12))
        .await
        .expect("workload while stopped");
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_aggregate_target_fails_its_view_only_and_keeps_its_password() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let mut setup = ServiceSetup::new(&url, &redis.url());
    let unreachable = format!(
        "postgres://analyst:s3cret-pw@127.0.0.1:{}/analytics",
        harness::free_port()
    );
    setup.extra_args = vec!["--aggregates-url".into(), unreachable];
    let port = setup.admin_port;
    let mut service = setup.start();

    let status = wait_until(
        DEADLINE,
        "the aggregate view is reported failed",
        || async {
            let (_, status) = get_json(port, "/status").await?;
            let failed: Vec<&str> = status["views"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["state"] == "failed")
                .filter_map(|v| v["view"].as_str())
                .collect();
            if failed == ["category_daily_sales"] {
                Ok(status)
            } else {
                Err(format!("failed views: {failed:?}"))
            }
        },
    )
    .await;
    // The cache views carry on.
    workload::run(&pool, &WorkloadOptions::new(200, 4))
        .await
        .expect("workload");
    wait_until(DEADLINE, "order_cache matches its oracle", || async {
        let expected = expected_order_cache(&pool).await;
        redis_matches(&redis.url(), "order:*", &expected).await
    })
    .await;
    let text = status.to_string() + &service.log_tail(200);
    assert!(!text.contains("s3cret-pw"), "the password leaked:\n{text}");
    service.assert_running();
}
