//! What the running service knows about itself, for `/status`, `/ready` and
//! `viewkeeper status`: whether the initial snapshot is done, the position
//! and commit time of the last applied batch, and each sink's health.
//!
//! The pipeline and the sinks write it; the admin API reads it. Figures that
//! live elsewhere (outbox depths in the state store, the slot in PostgreSQL)
//! are read when a status is asked for, not copied here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::change::Lsn;
use crate::telemetry;

#[derive(Debug)]
pub struct StatusBoard {
    inner: Mutex<Inner>,
    /// Whether the state store holds a complete snapshot, for waiters.
    snapshot_done: watch::Sender<bool>,
}

impl Default for StatusBoard {
    fn default() -> StatusBoard {
        StatusBoard {
            inner: Mutex::default(),
            snapshot_done: watch::Sender::new(false),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    snapshot_done: bool,
    position: Option<Lsn>,
    /// Commit time of the last applied transaction, microseconds since the
    /// Unix epoch.
    last_commit_micros: Option<i64>,
    sinks: BTreeMap<String, SinkState>,
    rebuilds: BTreeMap<String, RebuildState>,
    /// Times each view was recomputed whole from the state store (its first
    /// build, a definition change, a new snapshot), since the service started.
    recomputes: BTreeMap<String, u64>,
    /// Views recomputed whole (or about to be) whose targets do not show it
    /// yet: until their sinks apply the recompute, a target holds what the
    /// view's old definition, or an old snapshot, made (trial 41 read
    /// `live` and found the old columns).
    unapplied_recomputes: BTreeMap<String, Recompute>,
    /// Why the stream stopped, until a batch is applied again (or, for an
    /// error of the connection rather than of the log, until it reconnects).
    replication_error: Option<ReplicationError>,
    /// What creating the snapshot's slot waits for (transactions that were
    /// writing when it began), while it does.
    snapshot_waiting_for: Option<String>,
    /// The commit LSN and time of the oldest transaction that began
    /// arriving and is not applied yet (one arriving while another waits is
    /// not noted: the older one bounds the lag).
    arriving: Option<(Lsn, i64)>,
    /// Partitions new since the last run, or tables rewritten since, whose
    /// rows were not yet told to be the log's or not
    /// ([`crate::source::unlogged_rows`]): decided by a check while
    /// streaming, until which the views may lack an attached partition's
    /// rows or hold a rewritten table's old values.
    rows_unchecked: bool,
    /// A WAL position the views were first seen behind by a status report,
    /// and when (microseconds since the Unix epoch); `None` while they are
    /// not behind.
    seen_behind: Option<(Lsn, i64)>,
}

#[derive(Debug)]
struct ReplicationError {
    message: String,
    /// In the log's contents: reconnecting meets it again.
    in_log: bool,
}

/// A recompute of one view that its target does not show yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recompute {
    /// The pipeline that starts will recompute it (its definition changed).
    Expected,
    /// Recomputed: its target shows it once `sink` has applied its outbox
    /// through `sequence`. `from_snapshot`: a new snapshot recomputed it.
    Through {
        sink: String,
        sequence: u64,
        from_snapshot: bool,
    },
}

/// Rebuilds on demand of one view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildState {
    pub running: bool,
    pub completed: u64,
    /// Why the last rebuild failed, until the next one succeeds.
    pub error: Option<String>,
    /// How far the running rebuild is.
    pub progress: Option<RebuildProgress>,
}

/// Where a running rebuild is: `recomputing` roots from the state store
/// (`rows_done` of `rows_total`), then `rewriting` its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuildProgress {
    pub phase: &'static str,
    pub rows_done: u64,
    pub rows_total: u64,
    pub started_micros: i64,
}

/// [`RebuildProgress`] as `/status` shows it, with rate and ETA.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildProgressReport {
    pub phase: &'static str,
    pub rows_done: u64,
    pub rows_total: u64,
    pub rows_per_second: f64,
    /// Seconds until the rows are done at the rate so far.
    pub eta_seconds: Option<f64>,
}

impl RebuildProgress {
    fn report(&self, now_micros: i64) -> RebuildProgressReport {
        let seconds = (now_micros - self.started_micros).max(1) as f64 / 1e6;
        let rate = self.rows_done as f64 / seconds;
        let left = self.rows_total.saturating_sub(self.rows_done) as f64;
        RebuildProgressReport {
            phase: self.phase,
            rows_done: self.rows_done,
            rows_total: self.rows_total,
            rows_per_second: rate,
            eta_seconds: (rate > 0.0).then(|| left / rate),
        }
    }
}

/// The last thing a sink reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkState {
    pub reachable: bool,
    /// The last error, until the sink next succeeds.
    pub error: Option<String>,
    /// Times the sink found its target had lost what it wrote (Redis
    /// restarted without persistence, FLUSHALL) and rewrote it all.
    pub data_losses: u64,
    pub last_data_loss_micros: Option<i64>,
    /// Rewriting its whole target after finding it had lost its data: the
    /// target lacks documents until it is done.
    pub rewriting_lost_data: bool,
}

/// A copy of the board at one moment.
#[derive(Debug, Clone, Default)]
pub struct StatusSnapshot {
    pub snapshot_done: bool,
    pub position: Option<Lsn>,
    pub last_commit_micros: Option<i64>,
    pub sinks: BTreeMap<String, SinkState>,
    pub rebuilds: BTreeMap<String, RebuildState>,
    pub recomputes: BTreeMap<String, u64>,
    pub unapplied_recomputes: BTreeMap<String, Recompute>,
    pub replication_error: Option<String>,
    pub snapshot_waiting_for: Option<String>,
    pub rows_unchecked: bool,
    /// The oldest transaction arriving and not applied: commit LSN and time.
    pub arriving: Option<(Lsn, i64)>,
}

impl StatusBoard {
    pub fn new() -> Arc<StatusBoard> {
        Arc::new(StatusBoard::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state store holds a complete snapshot: the views are live.
    pub fn snapshot_done(&self, position: Lsn) {
        let mut inner = self.lock();
        inner.snapshot_done = true;
        inner.position = Some(position);
        inner.arriving = inner.arriving.filter(|(commit, _)| *commit > position);
        self.snapshot_done.send_replace(true);
    }

    /// Whether partitions new since the last run wait for their first check
    /// while streaming: the views are `building`, and not ready, until then.
    pub fn rows_unchecked(&self, unchecked: bool) {
        self.lock().rows_unchecked = unchecked;
    }

    /// A new snapshot is being taken: the views are building again.
    pub fn snapshot_started(&self) {
        self.lock().snapshot_done = false;
        self.snapshot_done.send_replace(false);
    }

    /// Returns once the state store holds a complete snapshot.
    pub async fn wait_for_snapshot(&self) {
        let mut done = self.snapshot_done.subscribe();
        let _ = done.wait_for(|done| *done).await;
    }

    /// A transaction that commits at `commit` (at `commit_micros`) began
    /// arriving: until a batch is applied through it, the views are behind
    /// it, though keepalives may have moved the slot near its commit (they
    /// carry how far PostgreSQL has read, and it sends a transaction only
    /// once it has read its commit).
    pub fn arriving(&self, commit: Lsn, commit_micros: i64) {
        let mut inner = self.lock();
        if inner.position.is_none_or(|applied| applied < commit) {
            inner.arriving.get_or_insert((commit, commit_micros));
        }
    }

    /// A batch was applied up to `position`, committed at `commit_micros`.
    pub fn applied(&self, position: Option<Lsn>, commit_micros: Option<i64>) {
        let mut inner = self.lock();
        inner.replication_error = None;
        if position.is_some() {
            inner.position = position;
        }
        if let (Some(applied), Some((commit, _))) = (position, inner.arriving)
            && applied >= commit
        {
            inner.arriving = None;
        }
        if commit_micros.is_some() {
            inner.last_commit_micros = commit_micros;
        }
    }

    /// The stream stopped on `error` and will reconnect: the views stay as
    /// of the last applied batch until one is applied again. `error` must
    /// not hold secrets (source errors name URLs only redacted).
    /// `in_log`: the error is in the log's contents, so reconnecting meets
    /// it again.
    pub fn replication_failed(&self, error: &dyn std::fmt::Display, in_log: bool) {
        self.lock().replication_error = Some(ReplicationError {
            message: error.to_string(),
            in_log,
        });
    }

    /// What creating the snapshot's slot waits for, or `None` once it does
    /// not (or no longer) wait.
    pub fn snapshot_waits_for(&self, waiting_for: Option<String>) {
        self.lock().snapshot_waiting_for = waiting_for;
    }

    /// The stream is connected again: an error of the connection is over.
    pub fn replication_connected(&self) {
        let mut inner = self.lock();
        if inner.replication_error.as_ref().is_some_and(|e| !e.in_log) {
            inner.replication_error = None;
        }
    }

    /// A handle for the sink named `sink` (its outbox name) to report with.
    pub fn sink(self: &Arc<Self>, sink: &str) -> SinkHealth {
        self.lock().sinks.entry(sink.to_owned()).or_default();
        SinkHealth {
            board: Arc::clone(self),
            sink: sink.to_owned(),
        }
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let inner = self.lock();
        StatusSnapshot {
            snapshot_done: inner.snapshot_done,
            position: inner.position,
            last_commit_micros: inner.last_commit_micros,
            sinks: inner.sinks.clone(),
            rebuilds: inner.rebuilds.clone(),
            recomputes: inner.recomputes.clone(),
            unapplied_recomputes: inner.unapplied_recomputes.clone(),
            replication_error: inner.replication_error.as_ref().map(|e| e.message.clone()),
            snapshot_waiting_for: inner.snapshot_waiting_for.clone(),
            rows_unchecked: inner.rows_unchecked,
            arriving: inner.arriving,
        }
    }

    /// The pipeline about to start recomputes `views` (their definitions
    /// changed), and runs only `running`: the views that no longer run
    /// are forgotten here.
    pub fn recomputes_expected(&self, views: &[String], running: &[String]) {
        let mut inner = self.lock();
        inner
            .unapplied_recomputes
            .retain(|view, _| running.contains(view));
        for view in views {
            inner
                .unapplied_recomputes
                .insert(view.clone(), Recompute::Expected);
        }
    }

    /// Views were recomputed whole from the state store: each with its
    /// sink and the newest sequence of that sink's outbox after it.
    pub fn recomputed(&self, views: &[(String, String, u64)], from_snapshot: bool) {
        let mut inner = self.lock();
        for (view, sink, sequence) in views {
            *inner.recomputes.entry(view.clone()).or_default() += 1;
            let recompute = Recompute::Through {
                sink: sink.clone(),
                sequence: *sequence,
                from_snapshot,
            };
            inner.unapplied_recomputes.insert(view.clone(), recompute);
        }
    }

    /// `view`'s target shows `recompute`, unless a newer one came since.
    fn recompute_applied(&self, view: &str, recompute: &Recompute) {
        let mut inner = self.lock();
        if inner.unapplied_recomputes.get(view) == Some(recompute) {
            inner.unapplied_recomputes.remove(view);
        }
    }

    /// Forgets sinks other than `sinks` (their views were removed), so that
    /// readiness does not wait for them.
    pub fn retain_sinks(&self, sinks: &[String]) {
        self.lock().sinks.retain(|sink, _| sinks.contains(sink));
    }

    /// Starts a rebuild of `view`; `false` if one is already running.
    pub fn rebuild_started(&self, view: &str) -> bool {
        let mut inner = self.lock();
        let state = inner.rebuilds.entry(view.to_owned()).or_default();
        !std::mem::replace(&mut state.running, true)
    }

    /// The running rebuild of `view` is in `phase`, `done` of `total` rows.
    pub fn rebuild_progress(&self, view: &str, phase: &'static str, done: u64, total: u64) {
        let mut inner = self.lock();
        let state = inner.rebuilds.entry(view.to_owned()).or_default();
        let started_micros = match &state.progress {
            Some(progress) => progress.started_micros,
            None => now_micros(),
        };
        state.progress = Some(RebuildProgress {
            phase,
            rows_done: done,
            rows_total: total,
            started_micros,
        });
    }

    /// The rebuild of `view` stopped without ending: a restarted pipeline
    /// runs it again.
    pub fn rebuild_handed_over(&self, view: &str) {
        let mut inner = self.lock();
        let state = inner.rebuilds.entry(view.to_owned()).or_default();
        state.running = false;
        state.progress = None;
    }

    pub fn rebuild_finished(&self, view: &str, error: Option<String>) {
        let mut inner = self.lock();
        let state = inner.rebuilds.entry(view.to_owned()).or_default();
        state.running = false;
        state.progress = None;
        if error.is_none() {
            state.completed += 1;
        }
        state.error = error;
    }
}

/// How one sink reports its health.
#[derive(Debug, Clone)]
pub struct SinkHealth {
    board: Arc<StatusBoard>,
    sink: String,
}

impl SinkHealth {
    /// The sink reached its target and applied (or had nothing to apply).
    pub fn ok(&self) {
        let mut inner = self.board.lock();
        let state = inner.sinks.entry(self.sink.clone()).or_default();
        state.reachable = true;
        state.error = None;
    }

    /// The sink found its target without its data and is rewriting it: it
    /// reached the target, so an error from before (the target down while
    /// it restarted empty) is over. A sink that finds the loss again before
    /// that rewrite ended (it failed, and its retry starts over) counts no
    /// second loss.
    pub fn data_lost(&self) {
        let mut inner = self.board.lock();
        let state = inner.sinks.entry(self.sink.clone()).or_default();
        state.reachable = true;
        state.error = None;
        if state.rewriting_lost_data {
            return;
        }
        telemetry::record_sink_data_loss(&self.sink);
        state.data_losses += 1;
        state.last_data_loss_micros = Some(now_micros());
        state.rewriting_lost_data = true;
    }

    /// The rewrite after a data loss is done: the target holds everything.
    pub fn rewritten(&self) {
        let mut inner = self.board.lock();
        let state = inner.sinks.entry(self.sink.clone()).or_default();
        state.rewriting_lost_data = false;
    }

    /// The sink failed and will retry. `error` must not hold secrets: the
    /// sinks' errors name URLs only in their redacted form.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        telemetry::record_sink_error(&self.sink);
        let mut inner = self.board.lock();
        let state = inner.sinks.entry(self.sink.clone()).or_default();
        state.reachable = false;
        state.error = Some(error.to_string());
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// What `/status` reports about one view.
#[derive(Debug, Clone, Serialize)]
pub struct ViewReport {
    pub view: String,
    pub kind: &'static str,
    /// `building` (a snapshot), `live`, `rebuilding`, or `failed` (its sink
    /// cannot reach its target and retries, or `view_error` says why the
    /// view does not run).
    pub state: &'static str,
    /// Why the view does not run: its file no longer checks against the
    /// database (`check`'s messages). It runs again once it checks, the
    /// next time the views are planned (a reload, a start, a schema change
    /// the service follows); its targets keep what they held.
    pub view_error: Option<String>,
    /// The source position the view's outputs include.
    pub applied_lsn: Option<String>,
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<f64>,
    /// Outbox entries its sink has not applied yet.
    pub outbox_depth: u64,
    /// Roots without an output because it could not be made (see
    /// `viewkeeper dead-letters VIEW`).
    pub dead_letters: u64,
    /// Times the view was recomputed whole from the state store since the
    /// service started (first build, changed definition, new snapshot).
    pub recomputes: u64,
    /// Rebuilds on demand completed since the service started.
    pub rebuilds_completed: u64,
    /// The running rebuild's phase, rows, rate and ETA.
    pub rebuild: Option<RebuildProgressReport>,
    pub rebuild_error: Option<String>,
    pub sink: String,
    pub sink_error: Option<String>,
    /// Times its sink found the target had lost viewkeeper's data and
    /// rewrote it (self-healing), and when it last did.
    pub sink_data_losses: u64,
    pub sink_last_data_loss_micros: Option<i64>,
}

impl ViewReport {
    /// A view that does not run, with why.
    fn not_running(view: &ViewInfo) -> ViewReport {
        ViewReport {
            view: view.name.clone(),
            kind: view.kind,
            state: "failed",
            view_error: view.error.clone(),
            applied_lsn: None,
            lag_bytes: None,
            lag_seconds: None,
            outbox_depth: 0,
            dead_letters: 0,
            recomputes: 0,
            rebuilds_completed: 0,
            rebuild: None,
            rebuild_error: None,
            sink: view.sink.clone(),
            sink_error: None,
            sink_data_losses: 0,
            sink_last_data_loss_micros: None,
        }
    }
}

/// What `/status` reports about the replication source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub slot: String,
    pub confirmed_lsn: Option<String>,
    pub current_wal_lsn: Option<String>,
    /// WAL the slot keeps on the primary (current position − restart LSN).
    pub retained_wal_bytes: Option<u64>,
    pub error: Option<String>,
    /// What a snapshot's slot creation waits for, while it does.
    pub waiting_for: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub ready: bool,
    pub snapshot_done: bool,
    pub views: Vec<ViewReport>,
    pub source: SourceReport,
}

/// One view as the status needs it: name, kind and outbox.
#[derive(Debug, Clone)]
pub struct ViewInfo {
    pub name: String,
    pub kind: &'static str,
    pub sink: String,
    /// Why the view is not running: its file no longer checks against the
    /// database.
    pub error: Option<String>,
}

/// Confirmed LSN, current WAL LSN, retained bytes.
type SlotRow = (Option<String>, String, Option<i64>);

/// How long a status waits for the slot's figures. The pool waits 30 s for
/// a connection while the database is down, and `/status`, `/ready` and
/// `/metrics` hung that long in the very outage an operator looks at
/// (trial 27).
const SOURCE_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the slot's figures; errors are reported, not raised: a status is
/// wanted most when something is wrong.
async fn source_report(pool: &sqlx::PgPool, slot: &str) -> SourceReport {
    let query = sqlx::query_as(
        "SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text, \
                pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 \
         FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool);
    let row: Result<Option<SlotRow>, String> =
        match tokio::time::timeout(SOURCE_ANSWER_TIMEOUT, query).await {
            Ok(row) => row.map_err(|error| error.to_string()),
            Err(_) => Err(format!(
                "the source database did not answer within {} s",
                SOURCE_ANSWER_TIMEOUT.as_secs()
            )),
        };
    let mut report = SourceReport {
        slot: slot.to_owned(),
        confirmed_lsn: None,
        current_wal_lsn: None,
        retained_wal_bytes: None,
        error: None,
        waiting_for: None,
    };
    match row {
        Ok(Some((confirmed, current, retained))) => {
            report.confirmed_lsn = confirmed;
            report.current_wal_lsn = Some(current);
            report.retained_wal_bytes = retained.and_then(|b| u64::try_from(b).ok());
        }
        Ok(None) => report.error = Some(format!("replication slot {slot} does not exist")),
        Err(error) => report.error = Some(error),
    }
    report
}

impl StatusBoard {
    /// How far behind the views are: WAL bytes from what they reflect to
    /// `current`, and seconds since the oldest commit they lack.
    ///
    /// The slot's confirmed position also moves on keepalives past WAL no
    /// view reads (other tables, the aggregate sink's own writes):
    /// whichever of it and the applied position is further is how far the
    /// views are, unless a transaction is arriving. Keepalives then carry
    /// how far PostgreSQL has read, which is near that transaction's
    /// commit though none of it is applied (a large one takes seconds to
    /// arrive): the applied position counts, and the time since its commit.
    ///
    /// Behind with nothing arriving, the commit they lack (if any: the WAL
    /// may be another table's) is not known yet. The seconds count from the
    /// later of the last applied commit and the first report that saw them
    /// behind the position they still lack: after an idle minute, the first
    /// write read as a minute behind for as long as it took to arrive
    /// (trial 10).
    fn lag(
        &self,
        current: Option<Lsn>,
        confirmed: Option<Lsn>,
        now_micros: i64,
    ) -> (Option<u64>, Option<f64>) {
        let mut inner = self.lock();
        let caught_up_to = match inner.arriving {
            Some(_) => inner.position,
            None => inner
                .position
                .max(confirmed.filter(|_| inner.position.is_some())),
        };
        let lag_bytes = match (current, caught_up_to) {
            (Some(current), Some(applied)) => Some(current.0.saturating_sub(applied.0)),
            _ => None,
        };
        inner.seen_behind = match (current, caught_up_to, inner.seen_behind) {
            (Some(current), Some(caught_up), seen) if current > caught_up => match seen {
                Some((lacking, since)) if caught_up < lacking => Some((lacking, since)),
                _ => Some((current, now_micros)),
            },
            _ => None,
        };
        let behind_since = match inner.arriving {
            Some((_, commit_micros)) => Some(commit_micros),
            None => inner
                .last_commit_micros
                .max(inner.seen_behind.map(|(_, since)| since)),
        };
        let lag_seconds = lag_bytes.map(|bytes| match behind_since {
            Some(since) if bytes > 0 => (now_micros - since).max(0) as f64 / 1e6,
            _ => 0.0,
        });
        (lag_bytes, lag_seconds)
    }
}

/// The whole status, and the gauges of `/metrics` set to the same figures.
pub async fn report(
    board: &StatusBoard,
    views: &[ViewInfo],
    store: &crate::state::Store,
    pool: &sqlx::PgPool,
    slot: &str,
) -> StatusReport {
    let snapshot = board.snapshot();
    let mut source = source_report(pool, slot).await;
    if let Some(error) = &snapshot.replication_error {
        source.error = Some(error.clone());
    }
    source.waiting_for = snapshot.snapshot_waiting_for.clone();
    let current = source.current_wal_lsn.as_deref().and_then(Lsn::parse);
    let confirmed = source.confirmed_lsn.as_deref().and_then(Lsn::parse);
    let (lag_bytes, lag_seconds) = board.lag(current, confirmed, now_micros());
    if let Some(bytes) = lag_bytes {
        telemetry::record_source_lag(bytes, lag_seconds.unwrap_or(0.0));
    }
    if let Some(retained) = source.retained_wal_bytes {
        telemetry::record_retained_wal(retained);
    }
    let unapplied = unapplied_recomputes(board, &snapshot, store);
    let mut reports = Vec::with_capacity(views.len());
    for view in views.iter().filter(|view| view.error.is_some()) {
        reports.push(ViewReport::not_running(view));
    }
    for view in views.iter().filter(|view| view.error.is_none()) {
        let outbox_depth = store.outbox_pending(&view.sink).unwrap_or(0);
        telemetry::record_outbox_depth(&view.sink, outbox_depth);
        let dead_letters = store.dead_letter_count(&view.name).unwrap_or(0);
        telemetry::record_dead_letter_count(&view.name, dead_letters);
        let sink = snapshot.sinks.get(&view.sink).cloned().unwrap_or_default();
        let rebuild = snapshot
            .rebuilds
            .get(&view.name)
            .cloned()
            .unwrap_or_default();
        let (done, total) = rebuild
            .progress
            .as_ref()
            .map_or((0, 0), |progress| (progress.rows_done, progress.rows_total));
        telemetry::record_rebuild_progress(&view.name, done, total);
        let state = view_state(&snapshot, &sink, &rebuild, unapplied.get(&view.name));
        reports.push(ViewReport {
            view: view.name.clone(),
            kind: view.kind,
            state,
            view_error: None,
            applied_lsn: snapshot.position.map(|lsn| lsn.to_string()),
            lag_bytes,
            lag_seconds,
            outbox_depth,
            dead_letters,
            recomputes: snapshot.recomputes.get(&view.name).copied().unwrap_or(0),
            rebuilds_completed: rebuild.completed,
            rebuild: rebuild
                .progress
                .as_ref()
                .map(|progress| progress.report(now_micros())),
            rebuild_error: rebuild.error,
            sink: view.sink.clone(),
            sink_error: sink.error,
            sink_data_losses: sink.data_losses,
            sink_last_data_loss_micros: sink.last_data_loss_micros,
        });
    }
    reports.sort_by(|a, b| a.view.cmp(&b.view));
    let all_running = views.iter().all(|view| view.error.is_none());
    StatusReport {
        ready: is_ready(&snapshot) && all_running && unapplied.is_empty(),
        snapshot_done: snapshot.snapshot_done,
        views: reports,
        source,
    }
}

/// The recomputes each view's target does not show yet, by view: whether
/// each came from a snapshot. Those whose sinks have applied them are
/// forgotten on the board.
fn unapplied_recomputes(
    board: &StatusBoard,
    snapshot: &StatusSnapshot,
    store: &crate::state::Store,
) -> BTreeMap<String, bool> {
    let mut unapplied = BTreeMap::new();
    for (view, recompute) in &snapshot.unapplied_recomputes {
        match recompute {
            Recompute::Expected => {
                unapplied.insert(view.clone(), false);
            }
            Recompute::Through {
                sink,
                sequence,
                from_snapshot,
            } => {
                if store.outbox_released_through(sink, *sequence) {
                    board.recompute_applied(view, recompute);
                } else {
                    unapplied.insert(view.clone(), *from_snapshot);
                }
            }
        }
    }
    unapplied
}

/// A running view's `state` in `/status`; `unapplied`: its target does not
/// show its last recompute yet (`true`: a snapshot's).
fn view_state(
    snapshot: &StatusSnapshot,
    sink: &SinkState,
    rebuild: &RebuildState,
    unapplied: Option<&bool>,
) -> &'static str {
    let stalled = snapshot.replication_error.is_some();
    match (snapshot.snapshot_done, sink.error.is_some()) {
        (_, true) => "failed",
        // Also before the first snapshot: a slot another instance
        // holds stops the snapshot as it stops the stream.
        (_, false) if stalled => "stalled",
        (false, false) => "building",
        (true, false) if snapshot.rows_unchecked || unapplied == Some(&true) => "building",
        (true, false) if rebuild.running || sink.rewriting_lost_data || unapplied.is_some() => {
            "rebuilding"
        }
        (true, false) => "live",
    }
}

/// Whether every view's target holds what the source says, as far as the
/// board knows (the views that do not run aside).
fn is_ready(snapshot: &StatusSnapshot) -> bool {
    let sinks_whole = snapshot
        .sinks
        .values()
        .all(|sink| sink.reachable && !sink.rewriting_lost_data);
    snapshot.snapshot_done
        && !snapshot.rows_unchecked
        && sinks_whole
        && snapshot.replication_error.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink rewriting a target that lost its data (Redis after
    /// `FLUSHALL`) makes its views `rebuilding` and the service not ready
    /// until it is done: they read `live`, and `/ready` 200, over an empty
    /// Redis (the fourteenth trial).
    #[test]
    fn a_sink_rewriting_lost_data_is_rebuilding_and_not_ready() {
        let board = StatusBoard::new();
        board.snapshot_done(Lsn(100));
        let health = SinkHealth {
            board: Arc::clone(&board),
            sink: "redis".to_owned(),
        };
        health.ok();
        let state = |board: &StatusBoard| {
            let snapshot = board.snapshot();
            let sink = snapshot.sinks.get("redis").cloned().unwrap_or_default();
            (
                view_state(&snapshot, &sink, &RebuildState::default(), None),
                is_ready(&snapshot),
            )
        };
        assert_eq!(state(&board), ("live", true));
        health.data_lost();
        assert_eq!(state(&board), ("rebuilding", false));
        // Redis down, then back without its data (trial 38 read `failed`,
        // with the old connection error, through the whole rewrite).
        health.rewritten();
        health.failed(&"redis: Connection refused");
        assert_eq!(state(&board), ("failed", false));
        health.data_lost();
        assert_eq!(state(&board), ("rebuilding", false));
        health.ok();
        assert_eq!(
            state(&board),
            ("rebuilding", false),
            "a write is not the rewrite's end"
        );
        health.rewritten();
        assert_eq!(state(&board), ("live", true));
    }

    /// One loss is counted once, however often the sink's rewrite is
    /// retried before it ends (the fourteenth trial saw one `FLUSHALL`
    /// count two); a loss after the rewrite is another.
    #[test]
    fn a_data_loss_is_counted_once_until_its_rewrite_ends() {
        let board = StatusBoard::new();
        let health = SinkHealth {
            board: Arc::clone(&board),
            sink: "redis".to_owned(),
        };
        let losses = |board: &StatusBoard| {
            board
                .snapshot()
                .sinks
                .get("redis")
                .map_or(0, |sink| sink.data_losses)
        };
        health.data_lost();
        health.failed(&"connection reset");
        health.data_lost();
        assert_eq!(losses(&board), 1);
        health.rewritten();
        health.data_lost();
        assert_eq!(losses(&board), 2);
    }

    /// A lost connection is over once the stream reconnects; a change that
    /// cannot be applied is met again at every reconnect, and is over only
    /// once a batch is applied.
    /// While a large transaction arrives, keepalives move the slot near its
    /// commit: the lag read 240 bytes for 12 s while none of its 148,500
    /// changes was applied, and counted seconds from the commit before it
    /// (trial 7). It counts from the applied position and the arriving
    /// commit's time until a batch is applied through it.
    #[test]
    fn a_transaction_arriving_counts_from_what_is_applied() {
        let board = StatusBoard::new();
        board.snapshot_done(Lsn(1_000));
        board.applied(Some(Lsn(1_000)), Some(5_000_000));
        let (current, near_commit) = (Some(Lsn(90_000_100)), Some(Lsn(90_000_000)));
        // Idle, or unrelated WAL: the confirmed position counts, and the
        // seconds from the first report that saw the views behind it (the
        // last commit was 15 s before).
        let idle = board.lag(current, near_commit, 20_000_000);
        assert_eq!(idle, (Some(100), Some(0.0)));
        let still = board.lag(current, near_commit, 22_000_000);
        assert_eq!(still, (Some(100), Some(2.0)));
        // Caught up with it, behind later WAL: counted from this report.
        let later = board.lag(Some(Lsn(90_000_300)), current, 23_000_000);
        assert_eq!(later, (Some(200), Some(0.0)));
        assert_eq!(
            board.lag(current, current, 23_500_000),
            (Some(0), Some(0.0))
        );
        let idle = board.lag(current, near_commit, 20_000_000);
        assert_eq!(idle, (Some(100), Some(0.0)));

        board.arriving(Lsn(90_000_050), 19_000_000);
        board.arriving(Lsn(90_000_080), 19_500_000); // a later one: the older bounds
        let arriving = board.lag(current, near_commit, 20_000_000);
        assert_eq!(arriving, (Some(89_999_100), Some(1.0)));

        board.applied(None, None); // a part of it applied: still arriving
        assert_eq!(board.lag(current, near_commit, 20_000_000), arriving);
        // Applied through it, still behind what reports saw since 20 s.
        board.applied(Some(Lsn(90_000_090)), Some(19_500_000));
        assert_eq!(
            board.lag(current, near_commit, 21_000_000),
            (Some(10), Some(1.0))
        );
        // A transaction applied before (resent after a reconnect) is not arriving.
        board.arriving(Lsn(90_000_050), 19_000_000);
        assert_eq!(board.snapshot().arriving, None);
    }

    #[test]
    fn a_replication_error_lasts_as_long_as_its_cause() {
        let board = StatusBoard::default();
        board.replication_failed(&"connection refused", false);
        assert!(board.snapshot().replication_error.is_some());
        board.replication_connected();
        assert_eq!(board.snapshot().replication_error, None);

        board.replication_failed(&"primary-key column id is missing", true);
        board.replication_connected();
        assert!(board.snapshot().replication_error.is_some());
        board.applied(Some(Lsn(7)), None);
        assert_eq!(board.snapshot().replication_error, None);
    }

    #[test]
    fn rebuild_progress_reports_rate_and_eta() {
        let progress = RebuildProgress {
            phase: "recomputing",
            rows_done: 2_000,
            rows_total: 10_000,
            started_micros: 0,
        };
        let report = progress.report(4_000_000);
        assert_eq!(report.rows_per_second, 500.0);
        assert_eq!(report.eta_seconds, Some(16.0));
        let stalled = RebuildProgress {
            rows_done: 0,
            ..progress
        };
        assert_eq!(stalled.report(4_000_000).eta_seconds, None);
    }

    #[test]
    fn a_finished_rebuild_has_no_progress() {
        let board = StatusBoard::new();
        assert!(board.rebuild_started("v"));
        board.rebuild_progress("v", "recomputing", 5, 10);
        let snapshot = board.snapshot();
        assert_eq!(
            snapshot.rebuilds["v"]
                .progress
                .as_ref()
                .map(|p| p.rows_done),
            Some(5)
        );
        board.rebuild_finished("v", None);
        let snapshot = board.snapshot();
        assert_eq!(snapshot.rebuilds["v"].progress, None);
        assert_eq!(snapshot.rebuilds["v"].completed, 1);
    }
}
