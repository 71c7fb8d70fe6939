//! The command-line commands `check`, `tail` and `search` (`run` is
//! [`crate::service`]).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use pgwire_replication::ReplicationClient;
use sqlx::PgPool;

use crate::change::Lsn;
use crate::config::Config;
use crate::expr::TimeZone;
use crate::plan::{Lookup, Plan};
use crate::reload;
use crate::service::ServiceError;
use crate::sink::search::{PageRequest, SearchError, SearchIndex};
use crate::source::SourceError;
use crate::source::catalog;
use crate::source::connection::{PgEndpoint, quote_ident};
use crate::source::stream::{BatchLimits, ReplicationStream};
use crate::view::Catalog;
use crate::view::model::{Cardinality, ViewDef, ViewKind};
use crate::view::{self, ViewError, ViewErrors};

/// What `check` found in view files without errors.
pub struct Checked {
    pub views: usize,
    /// What a user should know before running them, located as errors are.
    pub notes: Vec<ViewError>,
}

/// The database `check` checks the views against.
pub struct CheckedDatabase<'a> {
    pub url: &'a str,
    /// Where the aggregate views' tables go, if not the source database.
    pub aggregates_url: Option<&'a str>,
    /// The publication `run` creates or changes.
    pub publication: &'a str,
}

/// Validates the view files (and, with a database, their tables and
/// columns, that no aggregate view names a table someone else made, in
/// `aggregates_url` or else the source database, and that the role may
/// replicate them). Returns the number of valid views and notes on them,
/// or every error found.
pub async fn check(
    views_dir: &Path,
    database: Option<CheckedDatabase<'_>>,
) -> Result<Checked, ServiceError> {
    let (views, mut errors) = view::load_views_reporting(views_dir).map_err(ServiceError::Views)?;
    let mut notes = Vec::new();
    // Reported once the files check: they are what `check` is run for.
    let mut replication = Ok(());
    if let Some(CheckedDatabase {
        url,
        aggregates_url,
        publication,
    }) = database
    {
        let pool = connect(url).await?;
        replication = catalog::check_replication_settings(&pool).await;
        let catalog = catalog::load_catalog(&pool).await?;
        // The files that read are checked against the database even when
        // others do not: one run reports every error.
        errors.extend(view::check_against_catalog(&views, &catalog));
        errors.extend(replica_identities(&views, &pool).await?);
        // The plan needs views that passed; their tables are asked after,
        // whatever the other files' errors.
        let passed: Vec<ViewDef> = views
            .iter()
            .filter(|view| !errors.iter().any(|error| error.file == view.file))
            .cloned()
            .collect();
        if !passed.is_empty() {
            let plan = Plan::build(&passed, &catalog)?;
            let tables: BTreeSet<String> = plan.tables.keys().cloned().collect();
            if replication.is_ok() {
                replication = catalog::check_publication_rights(&pool, publication, &tables).await;
            }

            errors.extend(
                reload::foreign_tables(&passed, &plan, aggregates_url.unwrap_or(url)).await?,
            );
            notes = key_collision_notes(&passed, &plan);
            notes.extend(one_join_notes(&passed, &plan, &catalog));
            notes.extend(unread_join_notes(&passed, &plan));
            if let Some(zone) = catalog::database_time_zone(&pool).await? {
                notes.extend(time_zone_notes(&passed, &plan, &zone));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ServiceError::Views(ViewErrors(errors)));
    }
    replication?;
    Ok(Checked {
        views: views.len(),
        notes,
    })
}

/// A note for every `one` join whose columns are not a unique key of the
/// joined table: the row a document shows is then the lowest-keyed of
/// several, which is rarely what was meant, and a change to any of them
/// refreshes every document that joins them.
fn one_join_notes(views: &[ViewDef], plan: &Plan, catalog: &Catalog) -> Vec<ViewError> {
    let mut notes = Vec::new();
    for view in &plan.views {
        let Some(def) = views.iter().find(|def| def.name == view.name) else {
            continue;
        };
        for node in &view.nodes {
            let Some(link) = &node.link else { continue };
            let Some(table) = plan.tables.get(&node.table) else {
                continue;
            };
            if link.cardinality != Cardinality::One || link.children == Lookup::PrimaryKey {
                continue;
            }
            let columns: BTreeSet<String> = link
                .child_columns
                .iter()
                .filter_map(|&column| table.columns.get(column).cloned())
                .collect();
            let unique = catalog
                .tables
                .get(&node.table)
                .is_some_and(|table| table.unique_keys.iter().any(|key| key.is_subset(&columns)));
            if unique {
                continue;
            }
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            let field = format!("{}.on", node.path);
            // An aggregate view has no `many` joins (trial 11: the advice
            // was given to it too).
            let way_out = match def.kind {
                ViewKind::Cache(_) => "join on a unique key, or make the relation `many`",
                ViewKind::Search(_) => "join on a unique key, or make the join `many`",
                ViewKind::Aggregate(_) => "join on a unique key",
            };
            notes.push(ViewError {
                file: def.file.clone(),
                line: def.locations.line(&field),
                field,
                message: format!(
                    "a `one` join to {} on ({}) is not a unique key of that table: where \
                     several rows match, the one with the lowest primary key is kept, and a change to \
                     any of them refreshes every document that joins them; {way_out}",
                    view::display_table(&node.table),
                    columns.join(", ")
                ),
            });
        }
    }
    notes
}

/// A note at every join of a search or aggregate view that nothing reads:
/// it shows nothing, and every change to its table still refreshes the
/// roots that join the changed rows.
fn unread_join_notes(views: &[ViewDef], plan: &Plan) -> Vec<ViewError> {
    let mut notes = Vec::new();
    for view in &plan.views {
        let Some(def) = views.iter().find(|def| def.name == view.name) else {
            continue;
        };
        for node in view.unread_joins() {
            notes.push(ViewError {
                file: def.file.clone(),
                line: def.locations.line(&node.path),
                field: node.path.clone(),
                message: format!(
                    "nothing in the view reads this join (no field, `where`, group key or \
                     measure, nor a join through it): it shows nothing, but every change to \
                     {} still refreshes the roots that join the changed rows; remove it",
                    view::display_table(&node.table)
                ),
            });
        }
    }
    notes
}

/// A note at each view that computes with a `timestamptz` column, when the
/// database's own `TimeZone` names no zone viewkeeper knows: the view
/// computes in UTC, and its results differ from what SQL gives in the
/// database's sessions.
pub fn time_zone_notes(views: &[ViewDef], plan: &Plan, zone: &str) -> Vec<ViewError> {
    if TimeZone::named(zone).is_some() {
        return Vec::new();
    }
    plan.zone_computations()
        .into_iter()
        .filter_map(|computed| {
            let def = views.iter().find(|def| def.name == computed.view)?;
            Some(ViewError {
                file: def.file.clone(),
                line: def.locations.line(&computed.field),
                message: unknown_zone_note(&computed.what, zone),
                field: computed.field,
            })
        })
        .collect()
}

/// What a view computing with `what` (a `timestamptz`) should know on a
/// database whose `TimeZone` is `zone`, a zone viewkeeper does not know.
fn unknown_zone_note(what: &str, zone: &str) -> String {
    format!(
        "computes with {what} in UTC: this database's TimeZone {zone} \
         is neither in the tz database nor a POSIX rule, so date(), extract, date_trunc and \
         literals without an offset give what SQL gives in a UTC session"
    )
}

/// A note at the key template of every view whose template may give two
/// rows one key (known from the columns' types, so with a database only).
fn key_collision_notes(views: &[ViewDef], plan: &Plan) -> Vec<ViewError> {
    plan.views
        .iter()
        .filter(|view| view.keys_may_collide())
        .filter_map(|view| views.iter().find(|def| def.name == view.name))
        .map(|def| ViewError {
            file: def.file.clone(),
            line: def.locations.line("key"),
            field: "key".to_owned(),
            message: crate::plan::KEYS_MAY_COLLIDE.to_owned(),
        })
        .collect()
}

/// An error where each view file names a table whose changes the log does
/// not carry whole (UNLOGGED, or a replica identity without the primary
/// key): `run` would not start. Every file's, also one with other errors.
async fn replica_identities(
    views: &[ViewDef],
    pool: &PgPool,
) -> Result<Vec<ViewError>, ServiceError> {
    let tables = views
        .iter()
        .flat_map(|view| view.table_paths())
        .map(|(_, table)| table.to_owned())
        .collect();
    let mut errors = Vec::new();
    for catalog::UnusableTable { table, message, .. } in
        catalog::unusable_tables(pool, &tables).await?
    {
        for view in views {
            for (field, _) in view.table_paths().into_iter().filter(|(_, t)| *t == table) {
                errors.push(ViewError {
                    file: view.file.clone(),
                    line: view.locations.line(&field),
                    field,
                    message: message.clone(),
                });
            }
        }
    }
    Ok(errors)
}

async fn connect(database_url: &str) -> Result<PgPool, ServiceError> {
    let endpoint = PgEndpoint::parse(database_url)?;
    Ok(endpoint.connect_pool(2, std::time::Duration::ZERO).await?)
}

/// Prints every change to the views' tables as one JSON line, from now on,
/// through a temporary slot and a publication of its own (a running
/// service's, which may name other tables, is left alone), both gone when
/// `tail` exits: at the end of its output, on Ctrl-C or `SIGTERM`.
pub async fn tail(config: &Config, out: &mut impl Write) -> Result<(), ServiceError> {
    let views = view::load_views(&config.views).map_err(ServiceError::Views)?;
    let endpoint = PgEndpoint::parse(config.database_url()?)?;
    let pool = connect(config.database_url()?).await?;
    let plan = Plan::build(&views, &catalog::load_catalog(&pool).await?)?;
    let tables: BTreeSet<String> = plan.tables.keys().cloned().collect();
    let publication = format!("{}_tail_{}", config.publication, std::process::id());
    catalog::drop_publications_of_ended_tails(&pool, &config.publication, &config.slot).await?;
    catalog::ensure_publication(&pool, &publication, &tables).await?;
    let terminated = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => terminate.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    let tailed = tokio::select! {
        tailed = print_changes(config, &endpoint, &publication, out) => tailed,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminated => Ok(()),
    };
    if let Err(error) = catalog::drop_publication(&pool, &publication).await {
        tracing::warn!(%publication, %error, "could not drop tail's publication");
    }
    tailed
}

/// The changes `publication` carries from now on, each a JSON line on
/// `out`, until `out` closes.
async fn print_changes(
    config: &Config,
    endpoint: &PgEndpoint,
    publication: &str,
    out: &mut impl Write,
) -> Result<(), ServiceError> {
    let slot = format!("{}_tail_{}", config.slot, std::process::id());
    let mut session =
        ReplicationClient::connect_gated(endpoint.replication_config(&slot, publication))
            .await
            .map_err(SourceError::from)?;
    session
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing')",
            quote_ident(&slot)
        ))
        .await
        .map_err(SourceError::from)?;
    session.start().await.map_err(SourceError::from)?;
    session.wait_started().await.map_err(SourceError::from)?;
    // One transaction a batch, so that each change is printed with its own
    // transaction's commit LSN (they were printed with the batch's last).
    let limits = BatchLimits {
        max_changes: 1,
        ..config.batch
    };
    let mut stream = ReplicationStream::from_started(session, Lsn(0), limits);
    loop {
        let batch = stream.next_batch().await?;
        let commit_lsn = stream.transaction_lsn();
        for change in &batch.changes {
            // A closed stdout (`tail | head`) ends the command quietly.
            if writeln!(out, "{}", change.to_json_line(commit_lsn)).is_err() {
                return Ok(());
            }
        }
        let _ = out.flush();
        if let Some(position) = batch.commit_end {
            stream.confirm(position);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchCommandError {
    #[error(transparent)]
    Views(#[from] ViewErrors),
    #[error("no search view named {view:?} in {dir}")]
    UnknownView { view: String, dir: String },
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// `viewkeeper search VIEW QUERY`: the page of hits, with how many match in
/// all and the facets' counts, as JSON, read from
/// the index in the data directory; works whether or not the service runs
/// (it never takes the writer lock).
pub fn search(
    views_dir: &Path,
    data_dir: &Path,
    view: &str,
    query: &str,
    page: &PageRequest,
) -> Result<serde_json::Value, SearchCommandError> {
    // Another file's errors do not keep this view's index from being read;
    // when this view is not among the files that read, they may say why.
    let (views, errors) = view::load_views_reporting(views_dir)?;
    let found = views.iter().find_map(|def| match &def.kind {
        ViewKind::Search(search) if def.name == view => Some(&search.fields),
        _ => None,
    });
    let fields = match found {
        Some(fields) => fields,
        None if !errors.is_empty() => return Err(ViewErrors(errors).into()),
        None => {
            return Err(SearchCommandError::UnknownView {
                view: view.to_string(),
                dir: views_dir.display().to_string(),
            });
        }
    };
    let index = SearchIndex::open(&data_dir.join("indexes").join(view), view, fields)?;
    Ok(index.search_page(query, page)?.to_json(view))
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("admin API at {addr}: {message}")]
    Request { addr: String, message: String },
    #[error("view {view}: {message}")]
    Rebuild { view: String, message: String },
    #[error("dead letters of view {view}: {message}")]
    DeadLetters { view: String, message: String },
    #[error("dropping view {view}: {message}")]
    Drop { view: String, message: String },
    #[error("reloading the views: {message}")]
    Reload { message: String },
}

/// `GET /status` of the service whose admin API listens on `admin_addr`,
/// pretty-printed. A service that is not ready still answers (with 503 on
/// `/ready`, not here).
pub fn status(admin_addr: &str) -> Result<String, StatusError> {
    let fail = |message: String| StatusError::Request {
        addr: admin_addr.to_owned(),
        message,
    };
    let body = status_json(admin_addr).map_err(fail)?;
    serde_json::to_string_pretty(&body).map_err(|e| fail(e.to_string()))
}

fn status_json(admin_addr: &str) -> Result<serde_json::Value, String> {
    let text = ureq::get(&format!("http://{admin_addr}/status"))
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
}

/// What `/status` says of one view's rebuilds.
struct RebuildView {
    state: String,
    /// Why the view is not `live`, if `/status` says: its sink's error, or
    /// the stream's.
    not_live_because: Option<String>,
    completed: u64,
    error: Option<String>,
    /// (phase, rows done, rows in all) of the running rebuild.
    progress: Option<(String, u64, u64)>,
}

fn rebuild_view(admin_addr: &str, view: &str) -> Result<RebuildView, String> {
    let status = status_json(admin_addr)?;
    let entry = status["views"]
        .as_array()
        .and_then(|views| views.iter().find(|v| v["view"] == view))
        .ok_or_else(|| format!("no view named {view:?}"))?;
    let progress = &entry["rebuild"];
    let not_live_because = entry["sink_error"]
        .as_str()
        .or(status["source"]["error"].as_str())
        .map(str::to_owned);
    Ok(RebuildView {
        state: entry["state"].as_str().unwrap_or("unknown").to_owned(),
        not_live_because,
        completed: entry["rebuilds_completed"].as_u64().unwrap_or(0),
        error: entry["rebuild_error"].as_str().map(str::to_owned),
        progress: progress["phase"].as_str().map(|phase| {
            (
                phase.to_owned(),
                progress["rows_done"].as_u64().unwrap_or(0),
                progress["rows_total"].as_u64().unwrap_or(0),
            )
        }),
    })
}

/// A progress bar on stderr (drawn only on a terminal): rows, rate, ETA.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>11} [{bar:40}] {human_pos}/{human_len} rows  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `POST /views/{view}/rebuild`, then follows `/status` until the rebuild
/// is done, with a progress bar, reporting the outcome on `progress`.
pub fn rebuild(
    admin_addr: &str,
    token: &str,
    view: &str,
    from_source: bool,
    progress: &mut impl Write,
) -> Result<(), StatusError> {
    let request = |message: String| StatusError::Request {
        addr: admin_addr.to_owned(),
        message,
    };
    let failed = |message: String| StatusError::Rebuild {
        view: view.to_owned(),
        message,
    };
    let before = rebuild_view(admin_addr, view).map_err(request)?.completed;
    let started = std::time::Instant::now();
    let path = format!("/views/{view}/rebuild?from_source={from_source}");
    let (code, body) = admin_post(admin_addr, &path, token).map_err(request)?;
    if code != 202 {
        return Err(failed(format!("{code}: {body}")));
    }
    let _ = writeln!(progress, "rebuilding {view}…");
    let bar = progress_bar();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        // The rebuild was accepted, so it is recorded: a service that stops
        // answering (stopped, or killed) runs it again at its next start.
        let now = rebuild_view(admin_addr, view).map_err(|message| {
            bar.abandon();
            failed(format!(
                "the service at {admin_addr} stopped answering while rebuilding ({message}); \
                 the rebuild is recorded and runs again when the service starts"
            ))
        })?;
        if let Some((phase, done, total)) = now.progress {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(phase);
        }
        if now.completed > before {
            bar.finish_and_clear();
            let seconds = started.elapsed().as_secs_f64();
            let because = match (&now.not_live_because, now.state.as_str()) {
                (Some(reason), state) if state != "live" => format!(" ({reason})"),
                _ => String::new(),
            };
            let _ = writeln!(
                progress,
                "{view} rebuilt in {seconds:.1} s; state {}{because}",
                now.state
            );
            return Ok(());
        }
        if let (Some(error), false) = (now.error, now.state == "rebuilding") {
            bar.abandon();
            return Err(failed(error));
        }
    }
}

/// A mutating admin call: its status code and body, whatever the code.
fn admin_post(admin_addr: &str, path: &str, token: &str) -> Result<(u16, String), String> {
    let response = ureq::post(&format!("http://{admin_addr}{path}"))
        .header("Authorization", &format!("Bearer {token}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_empty()
        .map_err(|e| e.to_string())?;
    let code = response.status().as_u16();
    let body = response.into_body().read_to_string().unwrap_or_default();
    Ok((code, body))
}

/// `viewkeeper dead-letters VIEW`: the view's dead letters, pretty-printed;
/// with a token (`--retry`), retries them first and prints what that did.
pub fn dead_letters(
    admin_addr: &str,
    view: &str,
    retry_with_token: Option<&str>,
    limit: usize,
) -> Result<String, StatusError> {
    let request = |message: String| StatusError::Request {
        addr: admin_addr.to_owned(),
        message,
    };
    let failed = |message: String| StatusError::DeadLetters {
        view: view.to_owned(),
        message,
    };
    let mut out = String::new();
    if let Some(token) = retry_with_token {
        let (code, body) = admin_post(
            admin_addr,
            &format!("/views/{view}/dead-letters/retry"),
            token,
        )
        .map_err(request)?;
        if code != 200 {
            return Err(failed(format!("{code}: {body}")));
        }
        out.push_str(&body);
        out.push('\n');
    }
    let response = ureq::get(&format!(
        "http://{admin_addr}/views/{view}/dead-letters?limit={limit}"
    ))
    .config()
    .http_status_as_error(false)
    .build()
    .call()
    .map_err(|e| request(e.to_string()))?;
    let code = response.status().as_u16();
    let body = response.into_body().read_to_string().unwrap_or_default();
    if code != 200 {
        return Err(failed(format!("{code}: {body}")));
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| request(format!("not JSON: {e}")))?;
    out.push_str(&serde_json::to_string_pretty(&json).map_err(|e| request(e.to_string()))?);
    Ok(out)
}

/// `viewkeeper drop VIEW`: what the service deleted, pretty-printed.
pub fn drop(admin_addr: &str, token: &str, view: &str) -> Result<String, StatusError> {
    admin_call(admin_addr, &format!("/views/{view}/drop"), token, 200).map_err(|message| {
        StatusError::Drop {
            view: view.to_owned(),
            message,
        }
    })
}

/// `viewkeeper reload`: what the service found in the view files.
pub fn reload(admin_addr: &str, token: &str) -> Result<String, StatusError> {
    admin_call(admin_addr, "/views/reload", token, 200)
        .map_err(|message| StatusError::Reload { message })
}

/// `viewkeeper reload --wait`: follows `/status` after a reload, whose
/// answer is `outcome`, until every view it added or changed reads `live`
/// (its target shows the new definition), telling on `progress` what it
/// waits for. A view that reads `failed` ends the wait with its error; so
/// does `timeout`.
pub fn wait_for_reloaded_views(
    admin_addr: &str,
    outcome: &str,
    timeout: Option<std::time::Duration>,
    progress: &mut impl Write,
) -> Result<(), StatusError> {
    let failed = |message: String| StatusError::Reload { message };
    let outcome: serde_json::Value =
        serde_json::from_str(outcome).map_err(|e| failed(format!("not JSON: {e}")))?;
    let waited: Vec<String> = ["added", "changed"]
        .iter()
        .flat_map(|list| outcome[list].as_array().cloned().unwrap_or_default())
        .filter_map(|view| view.as_str().map(str::to_owned))
        .collect();
    let started = std::time::Instant::now();
    let mut told = String::new();
    loop {
        let status = status_json(admin_addr).map_err(|message| StatusError::Request {
            addr: admin_addr.to_owned(),
            message,
        })?;
        let views = status["views"].as_array().cloned().unwrap_or_default();
        let mut waiting = Vec::new();
        for name in &waited {
            let Some(view) = views.iter().find(|view| view["view"] == name.as_str()) else {
                continue; // dropped by a later reload
            };
            match view["state"].as_str().unwrap_or("unknown") {
                "live" => {}
                "failed" => {
                    let why = view["view_error"]
                        .as_str()
                        .or(view["sink_error"].as_str())
                        .unwrap_or("no reason given");
                    return Err(failed(format!("view {name} failed: {why}")));
                }
                state => waiting.push(format!("{name} ({state})")),
            }
        }
        if waiting.is_empty() {
            let seconds = started.elapsed().as_secs_f64();
            let _ = writeln!(progress, "reloaded views live after {seconds:.1} s");
            return Ok(());
        }
        let line = format!("waiting for {}", waiting.join(", "));
        if line != told {
            let _ = writeln!(progress, "{line}");
            told = line;
        }
        if timeout.is_some_and(|timeout| started.elapsed() >= timeout) {
            return Err(failed(format!(
                "still not live after {:.0} s: {}",
                started.elapsed().as_secs_f64(),
                waiting.join(", ")
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A mutating call expected to answer `expected`: its JSON body, pretty.
fn admin_call(admin_addr: &str, path: &str, token: &str, expected: u16) -> Result<String, String> {
    let (code, body) = admin_post(admin_addr, path, token)
        .map_err(|e| format!("admin API at {admin_addr}: {e}"))?;
    if code != expected {
        return Err(format!("{code}: {}", error_message(&body)));
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}"))?;
    serde_json::to_string_pretty(&json).map_err(|e| e.to_string())
}

/// The `error` of an admin API error body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}
