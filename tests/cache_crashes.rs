//! Crash safety: viewkeeper is killed with SIGKILL at random points during the
//! snapshot and while streaming, restarted each time, and must still converge
//! to the SQL oracle with nothing missing and nothing left over.

mod harness;

use std::time::Duration;

use harness::{
    PgServer, RedisServer, ServiceSetup, converged, current_wal_lsn, shop, slot_confirmed,
    spawn_workload, wait_until,
};
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use viewkeeper::workload::{Scale, WorkloadOptions};

const CONVERGE: Duration = Duration::from_secs(180);

async fn confirmed_flush_lsn(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'viewkeeper'",
    )
    .fetch_optional(pool)
    .await
    .expect("reading the slot")
    .flatten()
}

/// Lets the service run for a random while: the crash point. This is not a
/// synchronization wait; any point is as good as another.
async fn random_crash_point(rng: &mut impl Rng, range_ms: std::ops::Range<u64>) {
    let crash_point = Duration::from_millis(rng.random_range(range_ms));
    tokio::time::sleep(crash_point).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_snapshot_and_streaming_still_converges() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    // Large enough that the snapshot takes a while to copy and process.
    let (url, pool) = shop(&pg, &Scale::from_orders(30_000)).await;
    let seed = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    eprintln!("crash points seeded with {seed}");
    let mut setup = ServiceSetup::new(&url, &redis.url());
    // Small, so that busy batches defer roots and kills also land between a
    // batch and the refresh of its pending roots; and so that the state
    // store writes checkpoints all along, and kills land during them too.
    setup.extra_args = vec![
        "--batch-max-roots".into(),
        "200".into(),
        "--state-checkpoint-mb".into(),
        "1".into(),
    ];

    let mut kills_during_snapshot = 0;
    for _ in 0..3 {
        let mut service = setup.start();
        random_crash_point(&mut rng, 300..2_500).await;
        if !service.log_tail(10_000).contains("snapshot complete") {
            kills_during_snapshot += 1;
        }
        service.kill().await;
    }
    assert!(
        kills_during_snapshot >= 1,
        "no kill landed during the snapshot"
    );

    let background = {
        let mut options = WorkloadOptions::new(4_000, seed);
        options.truncate_items_at = Some(3_000);
        spawn_workload(&pool, options)
    };
    let mut service = setup.start();
    wait_until(CONVERGE, "the first snapshot completes", || {
        let log = service.log_tail(100_000);
        async move {
            if log.contains("streaming") {
                Ok(())
            } else {
                Err("still snapshotting")
            }
        }
    })
    .await;
    let after_snapshot = confirmed_flush_lsn(&pool).await.expect("the slot exists");
    for _ in 0..3 {
        random_crash_point(&mut rng, 500..3_000).await;
        service.kill().await;
        service = setup.start();
    }
    let stats = background.await.expect("workload task");
    assert!(stats.committed > 3_000, "{stats:?}");

    converged(&mut service, &pool, &redis.url(), CONVERGE).await;
    assert!(
        setup.data_dir().join("state").join("checkpoint").exists(),
        "the state store wrote no checkpoint: the test did not cover them"
    );
    let wal_end = current_wal_lsn(&pool).await;
    slot_confirmed(&pool, &wal_end, Some(&after_snapshot), CONVERGE).await;
}
