//! The running service: wires source, engine, state store and sinks together.
//!
//! Start-up refuses invalid views (with the `check` messages) before touching
//! anything. Then: snapshot if the state store has no usable position, stream
//! from the position otherwise; on a lost connection, reconnect from the
//! durable position. Sinks run on their own tasks and are woken after every
//! batch once it is durable.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinError, JoinHandle};

use crate::admin::{self, AdminError, AdminShared, AdminState, RunningViews};
use crate::change::{ChangeBatch, ChangeKind, Lsn};
use crate::config::{Config, ConfigError};
use crate::drop_view::Targets;
use crate::engine::{BatchOutcome, Engine, EngineError, OutputReader};
use crate::plan::{KeyPartPlan, OutputPlan, Plan, PlanError, ViewPlan};
use crate::rebuild::{self, Rebuilder};
use crate::reload::{
    self, InvalidView, PlannedViews, PlanningError, Reloader, Restart, WhenNoneChecks,
};
use crate::sink::RewriteSignal;
use crate::sink::aggregate::{self, AggregateSink, AggregateSinkError, TargetTable};
use crate::sink::redis::{self, RedisSink};
use crate::sink::search::{SearchError, SearchIndex, SearchSink};
use crate::source::connection::PgEndpoint;
use crate::source::identity::SourceIdentity;
use crate::source::pgoutput::Relations;
use crate::source::stream::ReplicationStream;
use crate::source::unlogged_rows::{self, RowsCheck};
use crate::source::{SourceError, catalog, snapshot};
use crate::state::{Store, StoreError};
use crate::status::{SinkHealth, StatusBoard, ViewInfo};
use crate::telemetry;
use crate::view::model::ViewKind;
use crate::view::{self, ViewDef, ViewErrors};

/// Memory for each search index's writer (Tantivy flushes a segment when it
/// is used up).
const INDEX_MEMORY_BUDGET: usize = 64 * 1024 * 1024;

/// How often the stream checks the tables the views read for what their
/// change log does not show ([`Pipeline::unlogged_change`]).
const SOURCE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long a start waits for a PostgreSQL that cannot be reached yet (one
/// starting beside it).
const SERVER_START_WAIT: Duration = Duration::from_secs(30);

/// How long a check waits for the stream to pass the read of a new
/// partition's rows; the next check asks again.
const NEW_PARTITION_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid views, not running:\n{0}")]
    Views(ViewErrors),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("not starting: {}", .0.join("; "))]
    ReplicaIdentity(Vec<String>),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error(transparent)]
    Aggregate(#[from] AggregateSinkError),
    #[error(transparent)]
    Redis(#[from] crate::sink::redis::RedisSinkError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

impl From<PlanningError> for ServiceError {
    fn from(error: PlanningError) -> ServiceError {
        match error {
            PlanningError::Catalog(error) => ServiceError::Source(error),
            PlanningError::Invalid(errors) => ServiceError::Views(errors),
            PlanningError::Plan(error) => ServiceError::Plan(error),
            PlanningError::Target(error) => ServiceError::Aggregate(error),
        }
    }
}

/// What every pipeline of this process shares, across view reloads.
struct Context {
    config: Config,
    endpoint: PgEndpoint,
    pool: PgPool,
    store: Arc<Store>,
    status: Arc<StatusBoard>,
}

/// The source → engine → sinks pipeline for one set of views.
struct Pipeline {
    config: Config,
    endpoint: PgEndpoint,
    pool: PgPool,
    store: Arc<Store>,
    engine: Arc<Engine>,
    /// One per sink, woken after each durable batch that fed it.
    wake_sinks: Vec<Arc<Notify>>,
    status: Arc<StatusBoard>,
    /// Tables whose `TRUNCATE` the stream brought since the last check of
    /// the source's tables: their partitions' new data files are explained.
    truncated_since_check: std::sync::Mutex<BTreeSet<String>>,
    /// Rewritten tables whose last comparison found a row stored otherwise
    /// ([`unlogged_rows::check_rewritten_table`]): a second one in a row
    /// takes them as changed.
    rewrites_differed: std::sync::Mutex<BTreeSet<String>>,
    /// Told once the pipeline has resumed its stream or taken its snapshot:
    /// what the rebuilds resumed at its start wait for.
    started: watch::Sender<bool>,
}

/// A batch the engine is applying on a blocking thread.
struct Applying {
    handle: JoinHandle<Result<BatchOutcome, EngineError>>,
    changes: usize,
    commit_end: Option<Lsn>,
    commit_time: Option<i64>,
    started: Instant,
}

/// A batch the engine has committed, until its commit is durable: only
/// then is its position confirmed and are the sinks woken for it.
struct Committed {
    outcome: BatchOutcome,
    commit_end: Option<Lsn>,
    commit_time: Option<i64>,
}

impl Applying {
    /// Waits for the batch in `applying`; never finishes when there is none.
    async fn finished(
        applying: &mut Option<Applying>,
    ) -> Result<Result<BatchOutcome, EngineError>, JoinError> {
        match applying {
            Some(applying) => (&mut applying.handle).await,
            None => std::future::pending().await,
        }
    }
}

/// A running pipeline with its sink tasks, until it is stopped for a
/// shutdown or a reload.
struct Generation {
    pipeline: Pipeline,
    sink_tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

/// Runs until `shutdown` turns true.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<(), ServiceError> {
    let views = view::load_views(&config.views).map_err(ServiceError::Views)?;
    let listener = admin::listen(config.admin_addr).await?;
    let endpoint = PgEndpoint::parse(config.database_url()?)?;
    let pool = endpoint.connect_pool(4, SERVER_START_WAIT).await?;
    catalog::check_replication_settings(&pool).await?;
    let planned = reload::plan_runnable_views(&views, &pool, WhenNoneChecks::Fail).await?;
    log_time_zone(&pool, &planned).await;
    if planned
        .plan
        .views
        .iter()
        .any(|view| view.sink == redis::SINK)
    {
        redis::check_credentials(&config.redis_url).await?;
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServiceError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    for setting in &config.ignored_settings {
        tracing::warn!(setting, "setting no longer used by this version: ignored");
    }
    let store = Arc::new(Store::open(&config.data_dir, &config.store)?);
    renew_if_restored(&pool, &config.slot, &store).await?;
    let endpoint = endpoint.for_store(&store.id()?);
    let rebuilds_asked = store.rebuilds_asked()?;
    if rebuild::resumes_from_source(&rebuilds_asked, &planned.runnable) {
        // A rebuild from the source cut short: this start takes its snapshot.
        store.forget_position()?;
    }
    let (reloader, mut restarts) = Reloader::new(
        config.views.clone(),
        pool.clone(),
        config.aggregates_url()?.to_owned(),
        &planned,
    );
    let reloader = Arc::new(reloader);
    let context = Context {
        endpoint,
        pool: pool.clone(),
        store: Arc::clone(&store),
        status: StatusBoard::new(),
        config,
    };
    expect_recomputes(&context, &planned)?;
    let (mut generation, running) = Generation::start(&context, planned).await?;
    running.rebuilder.resume(&rebuilds_asked);
    let admin = AdminState::new(
        AdminShared {
            status: Arc::clone(&context.status),
            store,
            pool,
            slot: context.config.slot.clone(),
            metrics: telemetry::install_recorder(),
            admin_token: context.config.admin_token.clone().map(Arc::from),
            reloader: Arc::clone(&reloader),
            drop_targets: Targets {
                redis_url: context.config.redis_url.clone(),
                data_dir: context.config.data_dir.clone(),
                aggregates_url: context.config.aggregates_url()?.to_owned(),
            },
        },
        running,
    );
    let server = tokio::spawn(admin::serve(listener, admin.clone(), shutdown.clone()));
    tokio::spawn(reload_on_sighup(Arc::clone(&reloader), shutdown.clone()));
    let mut views = views;
    while let Some(mut restart) = generation.run(&mut shutdown, &mut restarts).await {
        admin.pipeline_stopped();
        let running_notice = restart.take_running_notice();
        let (next_views, planned, from_source) = prepare_restart(&context, views, restart).await?;
        reloader.set_running(&planned).await;
        expect_recomputes(&context, &planned)?;
        let (started, running) = Generation::start(&context, planned).await?;
        // The rebuilds the stopped pipeline cut short, then the one this
        // restart is for.
        let mut asked = context.store.rebuilds_asked()?;
        asked.retain(|(view, _)| Some(view) != from_source.as_ref());
        running.rebuilder.resume(&asked);
        if let Some(view) = from_source {
            running.rebuilder.rewrite_after_snapshot(view);
        }
        admin.replace_running(running);
        if let Some(notice) = running_notice {
            let _ = notice.send(());
        }
        generation = started;
        views = next_views;
    }
    let _ = server.await;
    tracing::info!("viewkeeper stopped");
    Ok(())
}

/// Tells the board which views the pipeline about to start recomputes
/// (their definitions changed since their outputs were built), so that
/// they read `rebuilding` from now until their targets show it, not `live`
/// while they still show the old definition.
fn expect_recomputes(context: &Context, planned: &PlannedViews) -> Result<(), StoreError> {
    let mut changed = Vec::new();
    for view in &planned.plan.views {
        if context.store.view_hash(&view.name)?.as_deref() != Some(view.definition_hash.as_str()) {
            changed.push(view.name.clone());
        }
    }
    let running: Vec<String> = planned.plan.views.iter().map(|v| v.name.clone()).collect();
    context.status.recomputes_expected(&changed, &running);
    Ok(())
}

/// The views and plan the next pipeline runs, and the view to rewrite once
/// its snapshot is done (a rebuild `--from-source`, which also makes the
/// next start take a new snapshot).
async fn prepare_restart(
    context: &Context,
    views: Vec<ViewDef>,
    restart: Restart,
) -> Result<(Vec<ViewDef>, PlannedViews, Option<String>), ServiceError> {
    match restart {
        Restart::Views(next) => {
            tracing::info!(
                views = next.plan.views.len(),
                "view files changed: restarting the pipeline on them"
            );
            let planned = PlannedViews {
                runnable: next.views.clone(),
                plan: next.plan,
                invalid: Vec::new(),
            };
            Ok((next.views, planned, None))
        }
        Restart::FromSource { view } => {
            tracing::info!(%view, "rebuild from source: restarting from a new snapshot");
            let planned = plan_for_new_snapshot(context, &views).await?;
            Ok((views, planned, Some(view)))
        }
        Restart::SourceChanged => {
            let planned = plan_for_new_snapshot(context, &views).await?;
            Ok((views, planned, None))
        }
        Restart::OutputsChanged => {
            // The views whose definition hash the new plan changed are
            // built again from the state store as the pipeline starts.
            let planned =
                reload::plan_runnable_views(&views, &context.pool, WhenNoneChecks::RunNone).await?;
            Ok((views, planned, None))
        }
    }
}

/// Plans `views` against the catalog as it is now (those that no longer
/// check are set apart), and makes the next pipeline start from a new slot
/// and snapshot: no WAL from before is read again, so no older description
/// of a table is seen again either.
async fn plan_for_new_snapshot(
    context: &Context,
    views: &[ViewDef],
) -> Result<PlannedViews, ServiceError> {
    let planned =
        reload::plan_runnable_views(views, &context.pool, WhenNoneChecks::RunNone).await?;
    let store = Arc::clone(&context.store);
    tokio::task::spawn_blocking(move || store.forget_position())
        .await
        .map_err(SourceError::from)??;
    context.status.snapshot_started();
    Ok(planned)
}

/// A store behind its slot lost commits it had made durable: the data
/// directory was restored from a backup (or another copy of it ran on the
/// slot). Its sinks' targets hold what the lost commits wrote, under the
/// store's id, at outbox sequences it counts again from where the copy
/// stopped: they would skip its next entries as applied. Before any sink
/// starts, the store takes a new id (every sink then rewrites its target)
/// and forgets its position (a new snapshot).
async fn renew_if_restored(pool: &PgPool, slot: &str, store: &Store) -> Result<(), ServiceError> {
    let Some(position) = store.position()? else {
        return Ok(());
    };
    match catalog::slot_confirmed_lsn(pool, slot).await? {
        Some(confirmed) if confirmed > position => {
            tracing::warn!(
                %confirmed,
                %position,
                "the slot is past the state store (a data directory restored from a backup?): \
                 new snapshot, and every target rewritten from it"
            );
            store.renew_id()?;
        }
        _ => {}
    }
    Ok(())
}

/// Reloads the view files on every `SIGHUP`, logging what it did.
async fn reload_on_sighup(reloader: Arc<Reloader>, mut shutdown: watch::Receiver<bool>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /views/reload");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        match reloader.reload().await {
            Ok(outcome) => tracing::info!(?outcome, "SIGHUP: view files reloaded"),
            Err(error) => tracing::error!(%error, "SIGHUP"),
        }
    }
}

/// Says, at start, which zone views compute a `timestamptz` in, and which
/// views compute in UTC because the database's zone is not one viewkeeper
/// knows (as `check` notes).
async fn log_time_zone(pool: &PgPool, planned: &PlannedViews) {
    let computing = planned.plan.zone_computations();
    if computing.is_empty() {
        return;
    }
    let zone = match catalog::database_time_zone(pool).await {
        Ok(zone) => zone,
        Err(error) => {
            tracing::debug!(%error, "could not read the database's TimeZone");
            return;
        }
    };
    let current = crate::expr::TimeZone::current();
    let views: Vec<&str> = computing.iter().map(|c| c.view.as_str()).collect();
    tracing::info!(
        zone = current.name(),
        views = views.join(","),
        "views computing with a timestamptz compute in the database's time zone"
    );
    let Some(zone) = zone else { return };
    for note in crate::commands::time_zone_notes(&planned.runnable, &planned.plan, &zone) {
        tracing::warn!(file = %note.file.display(), field = %note.field, "{}", note.message);
    }
}

impl Generation {
    /// Checks the tables, starts the sinks of the runnable views, and
    /// readies the pipeline; also returns what the admin API serves of the
    /// views, those that do not run with why.
    async fn start(
        context: &Context,
        planned: PlannedViews,
    ) -> Result<(Generation, RunningViews), ServiceError> {
        let PlannedViews {
            runnable: views,
            plan,
            invalid,
        } = planned;
        for view in &invalid {
            tracing::error!(
                view = %view.view.name,
                error = %view.error,
                "the view no longer checks against the database: not running it (the others \
                 run); it runs again once it checks, the next time the views are planned (a \
                 reload, a start, a schema change viewkeeper follows)"
            );
        }
        let views = views.as_slice();
        let Context {
            config,
            store,
            status,
            pool,
            ..
        } = context;
        // A view built before that does not run now (set apart, or its file
        // removed) keeps its stored outputs, but its sink no longer applies
        // its outbox entries (the Redis sink leaves out the entries of views
        // it does not run, and moves its checkpoint past them), nor writes
        // it in a rewrite: entries the stopped pipeline had not delivered
        // yet are lost, while the stored outputs say they were. Once the
        // view runs again, a recompute diffs against those outputs and finds
        // nothing to write, so its target kept stale documents (trial 42).
        // A rebuild asked for now, durably, runs when the view runs again
        // ([`Rebuilder::resume`]) and rewrites its whole target; `drop`
        // forgets it with the view.
        let running: BTreeSet<String> = plan.views.iter().map(|v| v.name.clone()).collect();
        let store_now = Arc::clone(store);
        tokio::task::spawn_blocking(move || {
            let asked: BTreeSet<String> = store_now
                .rebuilds_asked()?
                .into_iter()
                .map(|(view, _)| view)
                .collect();
            for (view, _) in store_now.view_records()? {
                if !running.contains(&view) && !asked.contains(&view) {
                    store_now.mark_rebuild_asked(&view, false)?;
                }
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(SourceError::from)??;
        let plan = Arc::new(plan);
        let tables: BTreeSet<String> = plan.tables.keys().cloned().collect();
        // No table when no view checks any more: nothing is replicated.
        if !tables.is_empty() {
            let unusable = catalog::unusable_tables(pool, &tables).await?;
            if !unusable.is_empty() {
                let messages = unusable
                    .into_iter()
                    .map(|unusable| unusable.message)
                    .collect();
                return Err(ServiceError::ReplicaIdentity(messages));
            }
        }
        let engine = Arc::new(
            Engine::new(Arc::clone(&plan), Arc::clone(store))
                .with_max_document_bytes(config.max_document_bytes)
                .with_batch_max_roots(config.batch_max_roots),
        );
        // Before any sink reads its outbox.
        let settling = Arc::clone(&engine);
        tokio::task::spawn_blocking(move || settling.settle_logged_puts())
            .await
            .map_err(SourceError::from)?
            .map_err(SourceError::from)?;
        let (stop, stopped) = watch::channel(false);
        let started = watch::Sender::new(false);
        let outputs = engine.output_reader();
        let mut sinks = start_search_sinks(views, config, &outputs, status, &stopped)?;
        start_aggregate_sinks(&plan, config, store, status, &stopped, &mut sinks).await?;
        start_redis_sink(&plan, config, store, &outputs, status, &stopped, &mut sinks)?;
        let sink_names: Vec<String> = plan.views.iter().map(|v| v.sink.clone()).collect();
        status.retain_sinks(&sink_names);
        let running = RunningViews {
            views: view_infos(&plan, &invalid),
            search_indexes: std::mem::take(&mut sinks.indexes),
            rebuilder: Arc::new(Rebuilder::new(
                Arc::clone(&engine),
                Arc::clone(store),
                Arc::clone(status),
                started.subscribe(),
                std::mem::take(&mut sinks.rewrites),
            )),
            engine: Arc::clone(&engine),
            wake_sinks: sinks.wakes.clone(),
        };
        tracing::info!(
            views = plan.views.len(),
            tables = tables.len(),
            "viewkeeper started"
        );
        for view in plan.views.iter().filter(|view| view.keys_may_collide()) {
            tracing::info!(view = %view.name, "{}", crate::plan::KEYS_MAY_COLLIDE);
        }
        let pipeline = Pipeline {
            config: config.clone(),
            endpoint: context.endpoint.clone(),
            pool: pool.clone(),
            store: Arc::clone(store),
            engine,
            wake_sinks: sinks.wakes,
            status: Arc::clone(status),
            truncated_since_check: Default::default(),
            rewrites_differed: Default::default(),
            started,
        };
        let generation = Generation {
            pipeline,
            sink_tasks: sinks.tasks,
            stop,
            stopped,
        };
        Ok((generation, running))
    }

    /// Replicates until `shutdown` or a restart is asked for, then stops
    /// between batches and waits for the sinks to stop; returns the
    /// restart, if that is why it stopped.
    async fn run(
        self,
        shutdown: &mut watch::Receiver<bool>,
        restarts: &mut mpsc::Receiver<Restart>,
    ) -> Option<Restart> {
        let Generation {
            pipeline,
            sink_tasks,
            stop,
            mut stopped,
        } = self;
        let replicate = pipeline.replicate(&mut stopped);
        tokio::pin!(replicate);
        let mut replicating = true;
        let next = tokio::select! {
            restart = &mut replicate => {
                replicating = false;
                restart
            }
            _ = shutdown.wait_for(|stop| *stop) => None,
            next = restarts.recv() => next,
        };
        let _ = stop.send(true);
        if replicating {
            replicate.await;
        }
        // Stopping may have left a batch applying on a blocking thread.
        let engine = Arc::clone(&pipeline.engine);
        let _ = tokio::task::spawn_blocking(move || engine.wait_until_idle()).await;
        for task in sink_tasks {
            let _ = task.await;
        }
        next
    }
}

/// The running sinks: their tasks, how to wake them, and the search indexes
/// the admin API serves.
#[derive(Default)]
struct Sinks {
    tasks: Vec<JoinHandle<()>>,
    wakes: Vec<Arc<Notify>>,
    indexes: HashMap<String, Arc<SearchIndex>>,
    /// How to ask each view's sink for a full rewrite, by view name.
    rewrites: HashMap<String, RewriteSignal>,
}

/// What every sink is started with: its wake-up after each committed batch,
/// its health on the status board, and its rewrite signal for rebuilds.
struct SinkWiring {
    wake: Arc<Notify>,
    health: SinkHealth,
    rewrites: RewriteSignal,
}

impl Sinks {
    /// The wiring of the sink draining outbox `outbox` for `views`.
    fn wire(&mut self, status: &Arc<StatusBoard>, outbox: &str, views: &[String]) -> SinkWiring {
        let wake = Arc::new(Notify::new());
        let rewrites = RewriteSignal::new(Arc::clone(&wake));
        for view in views {
            self.rewrites.insert(view.clone(), rewrites.clone());
        }
        self.wakes.push(Arc::clone(&wake));
        SinkWiring {
            wake,
            health: status.sink(outbox),
            rewrites,
        }
    }

    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }
}

/// Opens (or creates) the index of every search view, takes its writer, and
/// starts its sink. An index built for another definition is recreated: its
/// sink then loads every stored output into it.
fn start_search_sinks(
    views: &[ViewDef],
    config: &Config,
    outputs: &OutputReader,
    status: &Arc<StatusBoard>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Sinks, ServiceError> {
    let mut sinks = Sinks::default();
    let store_id = outputs.store().id()?;
    for view in views {
        let ViewKind::Search(search) = &view.kind else {
            continue;
        };
        let dir = config.data_dir.join("indexes").join(&view.name);
        let index = match SearchIndex::open_or_create(&dir, &view.name, &search.fields) {
            Err(SearchError::SchemaChanged { differences, .. }) => {
                tracing::info!(
                    view = %view.name,
                    %differences,
                    "the index was laid out for other search fields (the view changed, or an \
                     older viewkeeper wrote it): recreating it, then filling it from the stored \
                     outputs"
                );
                std::fs::remove_dir_all(&dir).map_err(|source| ServiceError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
                SearchIndex::open_or_create(&dir, &view.name, &search.fields)?
            }
            other => other?,
        };
        let index = Arc::new(index);
        let writer = index.writer(INDEX_MEMORY_BUDGET, 1)?;
        let outbox = format!("search:{}", view.name);
        let wiring = sinks.wire(status, &outbox, std::slice::from_ref(&view.name));
        let sink = SearchSink::new(
            view.name.clone(),
            outbox,
            store_id.clone(),
            outputs.clone(),
            Arc::clone(&index),
            writer,
            wiring.rewrites,
        );
        sinks.spawn(sink.run(wiring.wake, wiring.health, shutdown.clone()));
        sinks.indexes.insert(view.name.clone(), index);
    }
    Ok(sinks)
}

/// Starts the one Redis sink of every cache view, if there is any.
fn start_redis_sink(
    plan: &Plan,
    config: &Config,
    store: &Arc<Store>,
    outputs: &OutputReader,
    status: &Arc<StatusBoard>,
    shutdown: &watch::Receiver<bool>,
    sinks: &mut Sinks,
) -> Result<(), ServiceError> {
    let cache_views: Vec<&ViewPlan> = plan
        .views
        .iter()
        .filter(|v| v.sink == redis::SINK)
        .collect();
    if cache_views.is_empty() {
        return Ok(());
    }
    let key_prefixes = cache_views
        .iter()
        .filter_map(|view| match &view.output {
            OutputPlan::Cache { key, .. } => match key.first() {
                Some(KeyPartPlan::Literal(prefix)) if !prefix.is_empty() => Some(prefix.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let names: Vec<String> = cache_views.iter().map(|v| v.name.clone()).collect();
    let wiring = sinks.wire(status, redis::SINK, &names);
    let sink = RedisSink::new(
        config.redis_url.clone(),
        outputs.clone(),
        names,
        key_prefixes,
        config.redis_checkpoint_key.clone(),
        store.id()?,
        wiring.rewrites,
    );
    sinks.spawn(sink.run(wiring.wake, wiring.health, shutdown.clone()));
    Ok(())
}

/// Connects to the aggregates database (once, shared by every aggregate
/// view) and starts one sink per aggregate view.
async fn start_aggregate_sinks(
    plan: &Plan,
    config: &Config,
    store: &Arc<Store>,
    status: &Arc<StatusBoard>,
    shutdown: &watch::Receiver<bool>,
    sinks: &mut Sinks,
) -> Result<(), ServiceError> {
    let tables: Vec<TargetTable> = plan
        .views
        .iter()
        .filter_map(|view| match &view.output {
            OutputPlan::Aggregate(output) => Some(TargetTable::of(view, output)),
            _ => None,
        })
        .collect();
    if tables.is_empty() {
        return Ok(());
    }
    let target = aggregate::connect(config.aggregates_url()?).await?;
    let store_id = store.id()?;
    for table in tables {
        let outbox = aggregate::sink_name(&table.view);
        let wiring = sinks.wire(status, &outbox, std::slice::from_ref(&table.view));
        let sink = AggregateSink::new(
            table,
            Arc::clone(store),
            store_id.clone(),
            Arc::clone(&target),
            wiring.rewrites,
        );
        sinks.spawn(sink.run(wiring.wake, wiring.health, shutdown.clone()));
    }
    Ok(())
}

/// Name, kind and outbox of every view, for `/status`; and why each of
/// `invalid` does not run.
fn view_infos(plan: &Plan, invalid: &[InvalidView]) -> Vec<ViewInfo> {
    let running = plan.views.iter().map(|view| ViewInfo {
        name: view.name.clone(),
        kind: view.kind(),
        sink: view.sink.clone(),
        error: None,
    });
    let not_running = invalid.iter().map(|invalid| ViewInfo {
        name: invalid.view.name.clone(),
        kind: match invalid.view.kind {
            ViewKind::Cache(_) => "cache",
            ViewKind::Search(_) => "search",
            ViewKind::Aggregate(_) => "aggregate",
        },
        sink: String::new(),
        error: Some(invalid.error.clone()),
    });
    running.chain(not_running).collect()
}

impl Pipeline {
    fn wake_all_sinks(&self) {
        for wake in &self.wake_sinks {
            wake.notify_one();
        }
    }

    /// Snapshot or resume, then stream; reconnect with backoff on failure.
    /// Returns the restart the stream found it needs, if it stopped for one.
    async fn replicate(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Restart> {
        if self.engine.plan().tables.is_empty() {
            tracing::error!(
                "no view checks against the database any more: nothing runs until a reload \
                 finds the views checking (see view_error in /status)"
            );
            // Unread, the slot would hold the database's WAL back meanwhile;
            // the views start again from a new snapshot and slot.
            let own = self.endpoint.replication_application();
            if let Err(error) = catalog::drop_slot(&self.pool, &self.config.slot, own).await {
                tracing::warn!(%error, slot = %self.config.slot, "dropping the unused slot");
            }
            let _ = shutdown.wait_for(|stop| *stop).await;
            return None;
        }
        let mut backoff = Duration::from_millis(200);
        while !*shutdown.borrow() {
            let result = tokio::select! {
                result = self.stream_once() => result,
                _ = shutdown.changed() => return None,
            };
            match result {
                Ok(()) => return None,
                Err(ServiceError::Source(error)) if error.needs_new_plan() => {
                    tracing::warn!(%error, "planning the views again");
                    return Some(Restart::SourceChanged);
                }
                Err(ServiceError::Source(error)) if error.needs_new_outputs() => {
                    // Not a failure: the database's settings changed.
                    tracing::info!(reason = %error, "planning the views again");
                    return Some(Restart::OutputsChanged);
                }
                Err(error) => {
                    tracing::error!(%error, "replication interrupted; reconnecting in {backoff:?}");
                    let in_log = matches!(&error, ServiceError::Source(e) if e.is_in_the_log());
                    self.status.replication_failed(&error, in_log);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return None,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        None
    }

    async fn stream_once(&self) -> Result<(), ServiceError> {
        // Another instance streaming from this slot reads this publication
        // too: it is left as it is until the slot is this instance's.
        let own = self.endpoint.replication_application();
        catalog::refuse_slot_of_another(&self.pool, &self.config.slot, own).await?;
        if let Some(unusable) = self.unusable_partitions().await? {
            // Its changes since it became so may be missing: once it is
            // fixed, the stream starts again from a new snapshot. (Here, as
            // no batch is in flight that would record a position again.)
            let store = Arc::clone(&self.store);
            tokio::task::spawn_blocking(move || store.forget_position())
                .await
                .map_err(SourceError::from)??;
            return Err(unusable.into());
        }
        let tables: BTreeSet<String> = self.engine.plan().tables.keys().cloned().collect();
        catalog::ensure_publication(&self.pool, &self.config.publication, &tables).await?;
        let refreshed = self
            .engine
            .run(|engine| engine.refresh_pending())
            .await
            .map_err(SourceError::from)?
            .map_err(SourceError::from)?;
        // Roots a crash left pending: their entries wait for the sinks like a batch's.
        if refreshed.outbox_entries > 0 {
            self.wake_all_sinks();
        }
        let position = match self.resume_position().await? {
            Some(position) => {
                let engine = Arc::clone(&self.engine);
                let rebuilt = tokio::task::spawn_blocking(move || {
                    let views = engine.rebuild_changed_views()?;
                    engine.recompute_ends(&views)
                })
                .await
                .map_err(SourceError::from)?
                .map_err(SourceError::from)?;
                if !rebuilt.is_empty() {
                    let views: Vec<&String> = rebuilt.iter().map(|(view, _, _)| view).collect();
                    tracing::info!(
                        ?views,
                        "view definitions changed: rebuilt from the state store"
                    );
                    self.status.recomputed(&rebuilt, false);
                    self.wake_all_sinks();
                }
                self.status.snapshot_done(position);
                self.started.send_replace(true);
                position
            }
            None => {
                // A reload or a lost slot may need a new snapshot too, not
                // only the first start: the views are not current until it
                // ends, whatever an earlier snapshot said.
                self.status.snapshot_started();
                let position = snapshot::take_snapshot(
                    &self.endpoint,
                    &self.pool,
                    &self.config.slot,
                    &self.config.publication,
                    Arc::clone(&self.engine),
                    &self.status,
                )
                .await?;
                let engine = Arc::clone(&self.engine);
                let views = tokio::task::spawn_blocking(move || {
                    let views: Vec<String> =
                        engine.plan().views.iter().map(|v| v.name.clone()).collect();
                    engine.recompute_ends(&views)
                })
                .await
                .map_err(SourceError::from)?
                .map_err(SourceError::from)?;
                self.status.recomputed(&views, true);
                self.wake_all_sinks();
                self.status.snapshot_done(position);
                self.started.send_replace(true);
                position
            }
        };
        tracing::info!(%position, slot = %self.config.slot, "streaming");
        let stream = ReplicationStream::start(
            &self.endpoint,
            &self.config.slot,
            &self.config.publication,
            position,
            self.config.batch,
            Relations::with_domain_bases(catalog::load_domain_bases(&self.pool).await?)
                // No stored column is generated (views may not read one),
                // so every one is in the stream's relation descriptions.
                .watching(self.engine.plan().stored_column_types()),
        )
        .await?;
        let status = Arc::clone(&self.status);
        let stream = stream.on_arrival(move |commit, micros| status.arriving(commit, micros));
        self.status.replication_connected();
        self.apply_stream(stream).await
    }

    /// Applies batches in order as the stream hands them over. While the
    /// engine applies one (on a blocking thread), the stream goes on
    /// receiving and decoding on the runtime, and everything received by the
    /// time the engine is free becomes the next batch: under load, batches
    /// grow instead of queueing. At most one full batch waits, read ahead.
    /// The engine starts the next batch while the last one's commit is
    /// synced; a batch is confirmed once it is durable.
    async fn apply_stream(&self, mut stream: ReplicationStream) -> Result<(), ServiceError> {
        let mut applying: Option<Applying> = None;
        let mut read_ahead: Option<ChangeBatch> = None;
        let mut committed: VecDeque<Committed> = VecDeque::new();
        let mut source_checks = tokio::time::interval_at(
            tokio::time::Instant::now() + SOURCE_CHECK_EVERY,
            SOURCE_CHECK_EVERY,
        );
        // A check runs beside the batches, not between them: its catalog
        // queries would hold every batch back while they wait.
        let mut checking: Option<Pin<Box<dyn Future<Output = Option<SourceError>> + Send + '_>>> =
            None;
        let ordering_enums = self.engine.plan().views_ordering_enums();
        let mut dead_letters = self.dead_letters_of(&ordering_enums);
        loop {
            // A TRUNCATE gives partitions new data files: checked at once,
            // they are the TRUNCATE's, not another's after it. So is a new
            // dead letter of a view that orders an enum: its row may hold a
            // label added since the plan, which the check plans in (trial
            // 42: the row was missing for 5 s while the view read `live`).
            let now_dead = self.dead_letters_of(&ordering_enums);
            let truncated = !self
                .truncated_since_check
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            if truncated || now_dead > dead_letters {
                source_checks.reset_immediately();
            }
            dead_letters = now_dead;
            let busy = applying.is_some();
            let oldest = committed.front().map(|batch| batch.outcome.commit);
            tokio::select! {
                applied = Applying::finished(&mut applying) => {
                    let done = applying.take().expect("a batch was being applied");
                    committed.push_back(Self::batch_committed(done, applied)?);
                    applying = read_ahead
                        .take()
                        .or_else(|| stream.take_ready())
                        .map(|batch| self.start_applying(batch));
                }
                durable = self.store.wait_durable(oldest.unwrap_or_default()), if oldest.is_some() => {
                    durable?;
                    if let Some(batch) = committed.pop_front() {
                        self.batch_durable(&stream, batch);
                    }
                }
                _ = source_checks.tick(), if checking.is_none() => {
                    checking = Some(Box::pin(self.unlogged_change()));
                }
                found = async { checking.as_mut().expect("a check runs").await },
                    if checking.is_some() =>
                {
                    checking = None;
                    if let Some(error) = found {
                        self.finish_applying(&stream, applying, committed).await?;
                        return Err(error.into());
                    }
                }
                batch = async {
                    if busy {
                        stream.read_while_busy().await
                    } else {
                        stream.next_batch().await
                    }
                }, if read_ahead.is_none() => {
                    let batch = match batch {
                        Ok(batch) => batch,
                        Err(error) => {
                            self.finish_applying(&stream, applying, committed).await?;
                            return Err(error.into());
                        }
                    };
                    match applying {
                        None => applying = Some(self.start_applying(batch)),
                        Some(_) => read_ahead = Some(batch),
                    }
                }
            }
        }
    }

    /// Before the stream stops: the batch being applied commits whatever
    /// happens, so it is waited for, and every committed batch confirmed, so
    /// that what comes next resumes after them.
    async fn finish_applying(
        &self,
        stream: &ReplicationStream,
        applying: Option<Applying>,
        mut committed: VecDeque<Committed>,
    ) -> Result<(), ServiceError> {
        if let Some(mut done) = applying {
            let applied = (&mut done.handle).await;
            committed.push_back(Self::batch_committed(done, applied)?);
        }
        self.confirm_committed(stream, committed).await
    }

    /// A change to the tables the views read that the stream will never
    /// show: a table that left the publication (dropped; a table created
    /// again under its name is another table, which no publication names;
    /// or taken out by hand), or one of [`Pipeline::unlogged_source_changes`].
    /// A failed query says nothing: the next check asks again.
    async fn unlogged_change(&self) -> Option<SourceError> {
        match self.unlogged_change_or_error().await {
            Ok(change) => change,
            Err(error) => {
                tracing::debug!(%error, "checking the source's tables");
                None
            }
        }
    }

    async fn unlogged_change_or_error(&self) -> Result<Option<SourceError>, ServiceError> {
        if let Some(unusable) = self.unusable_partitions().await? {
            return Ok(Some(unusable));
        }
        let publication = &self.config.publication;
        let published = catalog::published_tables(&self.pool, publication).await?;
        let tables = &self.engine.plan().tables;
        if let Some(table) = tables.keys().find(|table| !published.contains(*table)) {
            return Ok(Some(SourceError::TableLeftPublication {
                table: table.clone(),
                publication: publication.clone(),
                why: self.why_table_left(table).await?,
            }));
        }
        let truncated = std::mem::take(
            &mut *self
                .truncated_since_check
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let changed = self.unlogged_source_changes(&truncated, true).await?;
        if !changed.is_empty() {
            return Ok(Some(SourceError::UnloggedChange {
                changed: changed.join("; "),
            }));
        }
        if let Some(changed) = self.time_zone_change().await? {
            return Ok(Some(changed));
        }
        self.enum_labels_change().await
    }

    /// Why `table` is gone from the publication, as far as the catalog
    /// tells: the table whose rows are stored (by OID) under another name,
    /// or no longer there.
    async fn why_table_left(&self, table: &str) -> Result<String, ServiceError> {
        let stored = self.store.source_identity()?;
        let oid = stored
            .as_deref()
            .and_then(SourceIdentity::from_text)
            .and_then(|identity| identity.oid_of(table));
        let now_named: Option<String> = match oid {
            Some(oid) => sqlx::query_scalar(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::int8::oid",
            )
            .bind(i64::from(oid))
            .fetch_optional(&self.pool)
            .await
            .map_err(SourceError::from)?,
            None => None,
        };
        Ok(match now_named {
            Some(name) if name != table => format!("renamed to {name}"),
            Some(_) => "taken out of it".to_owned(),
            None => "dropped, perhaps created again".to_owned(),
        })
    }

    /// The database's `TimeZone` when it is no longer the one the views
    /// computing with a `timestamptz` were planned in. (A reload plans in
    /// the new one too, and sees those views changed; but one refused for a
    /// broken file must not leave them in the old one.)
    async fn time_zone_change(&self) -> Result<Option<SourceError>, ServiceError> {
        let plan = self.engine.plan();
        if plan.zone_computations().is_empty() {
            return Ok(None);
        }
        let now = catalog::load_time_zone(&self.pool).await?;
        Ok(
            (now != *plan.time_zone).then(|| SourceError::TimeZoneChanged {
                was: plan.time_zone.name().to_owned(),
                now: now.name().to_owned(),
            }),
        )
    }

    /// The first enum the views compare for order whose labels are no
    /// longer those they were planned with (a label added, or the labels
    /// reordered by a dump and restore): a row holding a new label fails
    /// until the views are planned again. (A label renamed away is the
    /// source identity's, and takes a new snapshot.)
    async fn enum_labels_change(&self) -> Result<Option<SourceError>, ServiceError> {
        let orders = self.engine.plan().enum_orders();
        if orders.is_empty() {
            return Ok(None);
        }
        let labels = catalog::load_enum_labels(&self.pool).await?;
        Ok(orders.into_iter().find_map(|order| {
            let now = labels
                .get(&order.oid())
                .map(Vec::as_slice)
                .unwrap_or_default();
            (now != order.labels()).then(|| SourceError::EnumLabelsChanged {
                type_name: order.type_name().to_owned(),
                was: order.labels().join(", "),
                now: now.join(", "),
            })
        }))
    }

    /// The dead letters of `views`, in all.
    fn dead_letters_of(&self, views: &[String]) -> u64 {
        views
            .iter()
            .map(|view| self.store.dead_letter_count(view).unwrap_or(0))
            .sum()
    }

    fn start_applying(&self, batch: ChangeBatch) -> Applying {
        let truncated = batch
            .changes
            .iter()
            .filter(|change| matches!(change.kind, ChangeKind::Truncate));
        for change in truncated {
            self.truncated_since_check
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(change.table.to_string());
        }
        Applying {
            changes: batch.changes.len(),
            commit_end: batch.commit_end,
            commit_time: (batch.commit_time_micros > 0).then_some(batch.commit_time_micros),
            started: Instant::now(),
            handle: self.engine.spawn_apply(batch),
        }
    }

    /// Records a batch the engine has committed.
    fn batch_committed(
        done: Applying,
        applied: Result<Result<BatchOutcome, EngineError>, JoinError>,
    ) -> Result<Committed, ServiceError> {
        let outcome = applied
            .map_err(SourceError::from)?
            .map_err(SourceError::from)?;
        telemetry::record_batch(done.changes, &outcome, done.started.elapsed());
        Ok(Committed {
            outcome,
            commit_end: done.commit_end,
            commit_time: done.commit_time,
        })
    }

    /// Reports a batch the store has made durable, confirms its position,
    /// and wakes the sinks for its outbox entries.
    fn batch_durable(&self, stream: &ReplicationStream, batch: Committed) {
        self.status.applied(batch.commit_end, batch.commit_time);
        if let Some(position) = batch.commit_end {
            stream.confirm(position);
        }
        if batch.outcome.outbox_entries > 0 {
            self.wake_all_sinks();
        }
    }

    /// Waits until every batch in `committed` is durable, and reports them.
    async fn confirm_committed(
        &self,
        stream: &ReplicationStream,
        committed: VecDeque<Committed>,
    ) -> Result<(), ServiceError> {
        if let Some(last) = committed.back() {
            self.store.wait_durable(last.outcome.commit).await?;
        }
        for batch in committed {
            self.batch_durable(stream, batch);
        }
        Ok(())
    }

    /// What changed in the tables the views read since their rows were
    /// stored, with nothing of it in the log ([`SourceIdentity`]): tables
    /// or columns created again, partitions detached, truncated, or
    /// attached holding rows, tables rewritten with other values. When
    /// nothing did, the tables as they are now are recorded (a store
    /// written before this was recorded takes them as they are). A table
    /// in `truncated`, and its partitions, may have new data files: the log
    /// holds that `TRUNCATE`.
    ///
    /// A partition new since holds rows either attached (not in the log)
    /// or inserted since it joined (in the log), and a table rewritten
    /// (a new data file) holds its rows as they were or changed (`ALTER
    /// COLUMN … TYPE … USING`), which only comparing them with the stored
    /// ones tells apart, once the stream has passed them: with `streaming`
    /// false (at start) that is left for the checks made while streaming,
    /// and the tables are not recorded until it is done.
    async fn unlogged_source_changes(
        &self,
        truncated: &BTreeSet<String>,
        streaming: bool,
    ) -> Result<Vec<String>, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(SourceError::from)?;
        let current = SourceIdentity::load(&mut conn, self.engine.plan()).await?;
        drop(conn);
        let stored = self.store.source_identity()?;
        let mut undecided = false;
        let mut changed = Vec::new();
        if let Some(stored) = stored.as_deref().and_then(SourceIdentity::from_text) {
            changed = stored.changed_since(&current, truncated);
            for (table, partition) in stored.partitions_added(&current) {
                if !changed.is_empty() || !streaming {
                    undecided = true;
                    break;
                }
                match self.check_new_partition(table, partition).await? {
                    RowsCheck::Logged { rows } => tracing::info!(
                        %partition,
                        %table,
                        rows,
                        "new partition: its rows came through the log"
                    ),
                    RowsCheck::Unlogged(reason) => changed.push(reason),
                    RowsCheck::Undecided => undecided = true,
                }
            }
            for table in stored.tables_rewritten(&current, truncated) {
                if !changed.is_empty() || !streaming {
                    undecided = true;
                    break;
                }
                match self.check_rewritten_table(table).await? {
                    RowsCheck::Logged { .. } => {}
                    RowsCheck::Unlogged(reason) => changed.push(reason),
                    RowsCheck::Undecided => undecided = true,
                }
            }
        }
        // At start, the views may lack an attached partition's rows, or
        // hold a rewritten table's old values, until a check while
        // streaming decides.
        self.status.rows_unchecked(undecided && changed.is_empty());
        let current = current.to_text();
        if changed.is_empty() && !undecided && stored.as_deref() != Some(current.as_str()) {
            // A write waits for the engine's batch in progress.
            let store = Arc::clone(&self.store);
            tokio::task::spawn_blocking(move || store.set_source_identity(&current))
                .await
                .map_err(SourceError::from)??;
        }
        Ok(changed)
    }

    /// A partition whose changes the stream cannot all apply (unlogged, or a
    /// replica identity without the primary key), as the start refuses for
    /// the tables themselves: the stream stops on it, and does not start
    /// again until it is fixed (the views `stalled`, with the reason).
    async fn unusable_partitions(&self) -> Result<Option<SourceError>, ServiceError> {
        let tables: BTreeSet<String> = self.engine.plan().tables.keys().cloned().collect();
        let unusable: Vec<String> = catalog::unusable_tables(&self.pool, &tables)
            .await?
            .into_iter()
            .filter(|unusable| unusable.partition)
            .map(|unusable| unusable.message)
            .collect();
        Ok(
            (!unusable.is_empty()).then(|| SourceError::UnusablePartition {
                changed: unusable.join("; "),
            }),
        )
    }

    /// Whether the rows of `table`, rewritten since they were stored, are
    /// all stored as they are: a first difference is taken as undecided,
    /// a second one in a row as a change.
    async fn check_rewritten_table(&self, table: &str) -> Result<RowsCheck, ServiceError> {
        let Some(plan) = self.engine.plan().table(table) else {
            return Ok(RowsCheck::Undecided);
        };
        let check =
            unlogged_rows::check_rewritten_table(&self.pool, &self.store, plan, NEW_PARTITION_WAIT)
                .await?;
        let mut differed = self
            .rewrites_differed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match check {
            RowsCheck::Logged { rows } => {
                differed.remove(table);
                tracing::info!(
                    %table,
                    rows,
                    "table rewritten (VACUUM FULL, CLUSTER or an ALTER TABLE the views do not see, say): its rows are stored as they are"
                );
                Ok(check)
            }
            RowsCheck::Unlogged(_) if differed.remove(table) => Ok(check),
            RowsCheck::Unlogged(_) => {
                // A row may have changed while it was compared: once more.
                differed.insert(table.to_owned());
                tracing::info!(%table, "table rewritten, and a row differs: compared again");
                Ok(RowsCheck::Undecided)
            }
            RowsCheck::Undecided => Ok(RowsCheck::Undecided),
        }
    }

    /// Whether the rows of `partition`, new in `table`, came through the log.
    async fn check_new_partition(
        &self,
        table: &str,
        partition: &str,
    ) -> Result<RowsCheck, ServiceError> {
        let Some(table) = self.engine.plan().table(table) else {
            return Ok(RowsCheck::Undecided);
        };
        Ok(unlogged_rows::check_new_partition(
            &self.pool,
            &self.store,
            table,
            partition,
            NEW_PARTITION_WAIT,
        )
        .await?)
    }

    /// The stored position, if streaming can continue from it: the state was
    /// built for the current views from the tables and columns there are
    /// now, and the slot still holds everything after it. Otherwise `None`:
    /// a new snapshot is needed.
    async fn resume_position(&self) -> Result<Option<Lsn>, ServiceError> {
        let Some(position) = self.store.position()? else {
            return Ok(None);
        };
        let stored_layout = self.store.layout()?.unwrap_or_default();
        if stored_layout != self.engine.plan().layout() {
            let engine = Arc::clone(&self.engine);
            let changes = self.engine.plan().layout_changes(&stored_layout);
            let narrowed =
                tokio::task::spawn_blocking(move || engine.narrow_layout(&stored_layout))
                    .await
                    .map_err(SourceError::from)?
                    .map_err(SourceError::from)?;
            if !narrowed {
                tracing::warn!(
                    changed = %changes.join("; "),
                    "the views need columns the state store does not hold as they are now: \
                     new snapshot"
                );
                return Ok(None);
            }
            tracing::info!("the views need fewer columns: stored rows narrowed, no new snapshot");
        }
        let changed = self
            .unlogged_source_changes(&BTreeSet::new(), false)
            .await?;
        if !changed.is_empty() {
            tracing::warn!(
                changed = %changed.join("; "),
                "the tables the views read changed while viewkeeper was not streaming \
                 (stopped, or reconnecting), and the log holds none of it: new snapshot"
            );
            return Ok(None);
        }
        match catalog::slot_confirmed_lsn(&self.pool, &self.config.slot).await? {
            None => {
                tracing::warn!(slot = %self.config.slot, "replication slot is missing: new snapshot");
                Ok(None)
            }
            Some(confirmed) if confirmed > position => {
                tracing::warn!(%confirmed, %position, "the slot is past the state store: new snapshot");
                Ok(None)
            }
            Some(_) => Ok(Some(position)),
        }
    }
}
