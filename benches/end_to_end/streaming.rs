//! Phase 2, streaming throughput: the highest rate of source changes at which
//! the lag stays bounded is the rate at which viewkeeper works off a backlog
//! (below it, any lag shrinks; above it, it grows). So the workload
//! generator writes a backlog while every consumer is stopped, and each
//! consumer then reads the same slot contents alone: `pg_recvlogical`
//! decoding pgoutput to /dev/null (the ceiling: PostgreSQL's own decoding
//! and sending), viewkeeper with the cache views alone, and with all views.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use viewkeeper::change::Lsn;
use viewkeeper::workload::{WorkloadOptions, WorkloadStats};

use crate::harness::{Service, spawn_workload};
use crate::{Deployment, probe};

/// The ceiling's slot, created just before the backlog so it holds exactly
/// the backlog's changes.
const CEILING_SLOT: &str = "ceiling";
/// The publication the all-views instance created: every table a view reads.
const PUBLICATION: &str = "viewkeeper";
/// Concurrent generator connections: enough to keep PostgreSQL busy on two
/// cores, as several application servers would.
pub const CONNECTIONS: u64 = 4;
const SEED: u64 = 6_000;
const DEADLINE: Duration = Duration::from_secs(30 * 60);
const CHANGES: &str = "viewkeeper_changes_total";

/// The changes waiting in the slots.
#[derive(Debug, Clone)]
pub struct Backlog {
    /// A position inside the last transaction (an end marker, after the
    /// workload): a consumer that applied a batch at or past it has applied
    /// the whole backlog.
    pub end: Lsn,
    pub end_text: String,
    /// Workload transactions committed (and rolled back: conflicts between
    /// the connections, counted by the generator, not in the slots).
    pub committed: u64,
    pub failed: u64,
    /// How long the generator took, with no consumer running.
    pub seconds: f64,
}

/// Creates the ceiling slot, runs `transactions` of the default mix on
/// [`CONNECTIONS`] connections as fast as they go, and ends with a marker.
pub async fn write_backlog(pool: &PgPool, transactions: u64) -> Backlog {
    sqlx::query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
        .bind(CEILING_SLOT)
        .execute(pool)
        .await
        .expect("creating the ceiling slot");
    let started = Instant::now();
    let runs: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let share = transactions / CONNECTIONS + u64::from(i < transactions % CONNECTIONS);
            spawn_workload(pool, WorkloadOptions::new(share, SEED + i))
        })
        .collect();
    let mut stats = WorkloadStats::default();
    for run in runs {
        stats.merge(&run.await.expect("a workload task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let end_text = end_marker(pool).await;
    Backlog {
        end: Lsn::parse(&end_text).expect("an LSN"),
        end_text,
        committed: stats.committed,
        failed: stats.failed,
        seconds,
    }
}

/// Commits one more change and returns a WAL position inside its
/// transaction, after its change and before its commit record.
async fn end_marker(pool: &PgPool) -> String {
    let mut txn = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO categories (name) VALUES ('end of the backlog')")
        .execute(&mut *txn)
        .await
        .expect("the end marker");
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut *txn)
        .await
        .expect("the WAL position");
    txn.commit().await.expect("commit");
    lsn
}

/// The ceiling: seconds for `pg_recvlogical` to receive the backlog from the
/// ceiling slot with viewkeeper's pgoutput options, written to /dev/null. It
/// stops at the first message past the end marker's position.
pub async fn decode_seconds(database_url: &str, backlog: &Backlog) -> f64 {
    let started = Instant::now();
    let output = tokio::process::Command::new("pg_recvlogical")
        .args(["--dbname", database_url, "--slot", CEILING_SLOT, "--start"])
        .args(["--endpos", &backlog.end_text, "--no-loop", "--file", "-"])
        .args(["-o", "proto_version=1", "-o", "messages=true"])
        .args(["-o", &format!("publication_names={PUBLICATION}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("running pg_recvlogical");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "pg_recvlogical failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    seconds
}

/// One instance working off the backlog.
#[derive(Debug, Clone, Default)]
pub struct CatchUp {
    /// From process start until the backlog is applied and every outbox
    /// drained into its target.
    pub seconds: f64,
    /// Row changes applied (the backlog's size as viewkeeper counts it).
    pub changes: u64,
    /// CPU the process used meanwhile, in seconds (2 cores: at most 2 per
    /// second of wall time).
    pub cpu_seconds: f64,
    pub peak_rss: u64,
}

impl CatchUp {
    pub fn rate(&self) -> f64 {
        self.changes as f64 / self.seconds
    }
}

/// Starts `deployment` on its data directory (left at the end of its
/// snapshot) and waits until it has applied the backlog; returns it running.
/// With `perf_output`, the process is profiled meanwhile.
pub async fn catch_up(
    deployment: &Deployment,
    backlog: &Backlog,
    perf_output: Option<&Path>,
) -> (Service, CatchUp) {
    let port = deployment.setup.admin_port;
    let started = Instant::now();
    let mut service = deployment.setup.start();
    let mut perf = perf_output.map(|path| start_perf(service.pid(), path));
    let what = format!("{}: the backlog applied", deployment.name);
    let seconds = probe::wait_for(&mut service, port, started, DEADLINE, &what, async |s| {
        s.applied >= Some(backlog.end) && s.drained()
    })
    .await;
    let cpu_seconds = probe::cpu_seconds(service.pid());
    if let Some(perf) = perf.as_mut() {
        stop_perf(perf).await;
    }
    let changes = probe::metric(port, CHANGES)
        .await
        .expect("reading /metrics") as u64;
    let peak_rss = probe::peak_rss_bytes(service.pid());
    let run = CatchUp {
        seconds,
        changes,
        cpu_seconds,
        peak_rss,
    };
    (service, run)
}

/// `perf record` of one process with call graphs (DWARF unwinding: release
/// builds have no frame pointers), sampling CPU time 250 times a second (DWARF unwinding at that rate
/// takes most of a core: a profiled run's figures are not the benchmark's).
fn start_perf(pid: u32, output: &Path) -> tokio::process::Child {
    tokio::process::Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "250",
            "--call-graph",
            "dwarf",
        ])
        .args(["-p", &pid.to_string(), "-o"])
        .arg(output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting perf record")
}

/// SIGINT makes `perf record` write its data and exit.
async fn stop_perf(perf: &mut tokio::process::Child) {
    if let Some(pid) = perf.id() {
        let _ = std::process::Command::new("kill")
            .args(["-s", "INT", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(120), perf.wait()).await;
}
