//! What the benchmark reads from a running viewkeeper from the outside, as an
//! operator would: `/ready` and `/metrics` of its admin API, and its memory
//! and CPU time from /proc. Polling waits on conditions with deadlines.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use viewkeeper::change::Lsn;

use crate::harness::{Service, http_get};

/// How often the benchmark asks the service how far it is: fine enough for
/// phases of seconds, light enough not to steal a core from it.
pub const POLL: Duration = Duration::from_millis(50);

/// The parts of `/ready` (the full status, with the readiness as its code)
/// that the phases wait on.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// 200 from `/ready`: snapshot done, every sink reached its target, and
    /// every view's target shows its last recompute.
    pub ready: bool,
    pub snapshot_done: bool,
    /// The position of the last applied batch.
    pub applied: Option<Lsn>,
    /// Entries waiting in each view's outbox, by view kind.
    pub outbox_depths: Vec<(String, u64)>,
    pub lag_bytes: u64,
    pub lag_seconds: f64,
}

impl Status {
    /// Whether every outbox is empty.
    pub fn drained(&self) -> bool {
        self.outbox_depths.iter().all(|(_, depth)| *depth == 0)
    }

    /// Whether every outbox but the aggregate views' is empty: after the
    /// aggregate sink writes its table from the state store's groups (a new
    /// table, as after the initial snapshot), it leaves the entries that
    /// rewrite covered in the outbox until its next batch truncates them, so
    /// there the table itself tells whether it is done.
    pub fn drained_but_aggregates(&self) -> bool {
        (self.outbox_depths.iter()).all(|(kind, depth)| kind == "aggregate" || *depth == 0)
    }
}

pub async fn status(admin_port: u16) -> Result<Status, String> {
    let (code, body) = http_get(admin_port, "/ready").await?;
    let report: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let views = report["views"].as_array().cloned().unwrap_or_default();
    let first = views.first().cloned().unwrap_or_default();
    Ok(Status {
        ready: code == 200,
        snapshot_done: report["snapshot_done"].as_bool().unwrap_or(false),
        applied: first["applied_lsn"].as_str().and_then(Lsn::parse),
        outbox_depths: views
            .iter()
            .map(|v| {
                let kind = v["kind"].as_str().unwrap_or_default().to_owned();
                (kind, v["outbox_depth"].as_u64().unwrap_or(0))
            })
            .collect(),
        lag_bytes: first["lag_bytes"].as_u64().unwrap_or(0),
        lag_seconds: first["lag_seconds"].as_f64().unwrap_or(0.0),
    })
}

/// One sample of `/metrics`: the value of the series `series` (name and
/// labels exactly as Prometheus prints them), 0 while it has none.
pub async fn metric(admin_port: u16, series: &str) -> Result<f64, String> {
    let (code, body) = http_get(admin_port, "/metrics").await?;
    if code != 200 {
        return Err(format!("/metrics answered {code}"));
    }
    Ok(body
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0))
}

/// Polls `/ready` until `done` holds; returns the seconds since `started`.
/// Panics with the service's log when it dies or after `deadline`.
pub async fn wait_for(
    service: &mut Service,
    admin_port: u16,
    started: Instant,
    deadline: Duration,
    what: &str,
    mut done: impl AsyncFnMut(&Status) -> bool,
) -> f64 {
    let mut last = Err("not asked yet".to_owned());
    loop {
        service.assert_running();
        if let Ok(status) = &last
            && done(status).await
        {
            return started.elapsed().as_secs_f64();
        }
        if started.elapsed() > deadline {
            panic!(
                "{what}: not reached after {deadline:?}; last status: {last:?}; log:\n{}",
                service.log_tail(40)
            );
        }
        tokio::time::sleep(POLL).await;
        last = status(admin_port).await;
    }
}

/// The peak resident set size (`VmHWM`) of a running process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// CPU seconds (user + system) a running process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces but ends at the last ')'.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12
    // after ')', which ends field 2.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
