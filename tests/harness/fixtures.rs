//! Fixtures the tests share: the loaded example shop, and the replication
//! slot's progress.

use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use viewkeeper::workload::{self, Scale, WorkloadOptions, WorkloadStats};

use super::{PgServer, RedisServer, Service, ServiceSetup, converged, wait_until};

/// A database `shop` with the example schema and `Scale::small()` loaded.
pub async fn small_shop(pg: &PgServer) -> (String, PgPool) {
    shop(pg, &Scale::small()).await
}

/// Servers, a small shop and a service over it with the example views,
/// converged within `deadline`: the start of most service tests.
pub async fn served_small_shop(
    deadline: Duration,
) -> (PgServer, RedisServer, PgPool, ServiceSetup, Service) {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), deadline).await;
    (pg, redis, pool, setup, service)
}

/// A database `shop` with the example schema loaded at `scale`.
pub async fn shop(pg: &PgServer, scale: &Scale) -> (String, PgPool) {
    let url = pg.create_database("shop").await;
    let pool = pg.pool("shop").await;
    workload::create_schema(&pool)
        .await
        .expect("creating the shop");
    workload::load(&pool, scale)
        .await
        .expect("loading the shop");
    (url, pool)
}

pub async fn current_wal_lsn(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await
        .expect("reading the WAL position")
}

/// Waits until the `viewkeeper` slot has confirmed everything up to `lsn`
/// (and, if given, moved past `after`).
pub async fn slot_confirmed(pool: &PgPool, lsn: &str, after: Option<&str>, deadline: Duration) {
    wait_until(deadline, "the slot confirms the WAL position", || async {
        let confirmed: Option<Option<bool>> = sqlx::query_scalar(
            "SELECT confirmed_flush_lsn >= $1::pg_lsn AND confirmed_flush_lsn > $2::pg_lsn
             FROM pg_replication_slots WHERE slot_name = 'viewkeeper'",
        )
        .bind(lsn)
        .bind(after.unwrap_or("0/0"))
        .fetch_optional(pool)
        .await
        .map_err(|e| e.to_string())?;
        match confirmed {
            Some(Some(true)) => Ok(()),
            other => Err(format!("confirmed: {other:?}")),
        }
    })
    .await
}

/// Runs the workload on its own task, for tests that act while it runs.
pub fn spawn_workload(pool: &PgPool, options: WorkloadOptions) -> JoinHandle<WorkloadStats> {
    let pool = pool.clone();
    tokio::spawn(async move { workload::run(&pool, &options).await.expect("the workload") })
}
