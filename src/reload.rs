//! Reloading the view files while the service runs (`SIGHUP`,
//! `POST /views/reload`), and the other reasons to restart the pipeline: a
//! rebuild `--from-source`, a stored column changed under the views.
//!
//! The files are read and checked against the catalog first, exactly as
//! `viewkeeper check` and a start would: an invalid set is refused with
//! those messages and the running views are not touched. A set whose every
//! file hashes as the running one is a no-op. Otherwise the service stops
//! its pipeline between batches and starts it again on the new views (see
//! `service::run`): a changed file's view is recomputed from the state store,
//! a new file's view is built, a removed file's view stops (its data stays
//! until `viewkeeper drop VIEW`), and unchanged views resume where they were
//! without recomputing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc};

use crate::plan::{OutputPlan, Plan, PlanError};
use crate::sink::aggregate::{self, AggregateSinkError, TableOwner, TargetTable};
use crate::source::{SourceError, catalog};
use crate::view::{self, ViewDef, ViewError, ViewErrors};

#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    #[error(transparent)]
    Catalog(#[from] SourceError),
    #[error("{0}")]
    Invalid(ViewErrors),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Target(#[from] AggregateSinkError),
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("views not reloaded, the running views are unchanged:\n{0}")]
    Refused(PlanningError),
    #[error("views not reloaded: the service is stopping")]
    Stopping,
}

/// Loads the catalog, checks the views against it, and plans them.
pub async fn plan_views(views: &[ViewDef], pool: &PgPool) -> Result<Plan, PlanningError> {
    let catalog = catalog::load_catalog(pool).await?;
    let errors = view::check_against_catalog(views, &catalog);
    if !errors.is_empty() {
        return Err(PlanningError::Invalid(ViewErrors(errors)));
    }
    Ok(Plan::build(views, &catalog)?)
}

/// An error at the `table` field of every aggregate view whose table exists
/// in the target database and was not created by viewkeeper, or whose name
/// SQLite keeps for itself: `run` would not start that view.
pub async fn foreign_tables(
    views: &[ViewDef],
    plan: &Plan,
    aggregates_url: &str,
) -> Result<Vec<ViewError>, AggregateSinkError> {
    let tables: Vec<(TargetTable, &ViewDef)> = plan
        .views
        .iter()
        .filter_map(|view| match &view.output {
            OutputPlan::Aggregate(output) => {
                let def = views.iter().find(|def| def.name == view.name)?;
                Some((TargetTable::of(view, output), def))
            }
            _ => None,
        })
        .collect();
    let at_table = |def: &ViewDef, message: String| ViewError {
        file: def.file.clone(),
        line: def.locations.line("table"),
        field: "table".to_owned(),
        message,
    };
    let mut errors = Vec::new();
    if aggregates_url.starts_with("sqlite:") {
        for (table, def) in &tables {
            if let Some(reason) = aggregate::sqlite::reserved_name_reason(&table.name) {
                errors.push(at_table(def, reason));
            }
        }
    }
    if tables.is_empty() {
        return Ok(errors);
    }
    let Some(target) = aggregate::connect_existing(aggregates_url).await? else {
        return Ok(errors);
    };
    for (table, def) in tables {
        match target.owner(&table).await {
            Ok(TableOwner::Someone) => {
                let reason = aggregate::foreign_table_reason(&target.table_name(&table.name));
                errors.push(at_table(def, reason));
            }
            Ok(_) => {}
            // The view's own fault, not the database's: said at its file,
            // and the other views are asked still (trial 39).
            Err(error) if error.is_permission_denied() => {
                let reason = format!(
                    "{error}: the role needs USAGE on the table's schema to read it, and \
                     CREATE on the schema (or the database, for a new schema) to make it"
                );
                errors.push(at_table(def, reason));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(errors)
}

/// A view whose file reads but that no longer checks against the database
/// (a column it reads was dropped or renamed, or changed to a type it
/// cannot use): it is not run, and `/status` shows it `failed` with `error`.
#[derive(Debug, Clone)]
pub struct InvalidView {
    pub view: ViewDef,
    pub error: String,
}

/// The views that check against the catalog, planned, and those that do
/// not.
pub struct PlannedViews {
    pub runnable: Vec<ViewDef>,
    pub plan: Plan,
    pub invalid: Vec<InvalidView>,
}

/// Whether planning may leave no view to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WhenNoneChecks {
    /// At start: `run` refuses, with every view's errors.
    Fail,
    /// While running (the database changed under the views): the service
    /// stays up, every view `failed`, until a reload finds them checking.
    RunNone,
}

/// Plans the views that check against the catalog and sets the others
/// apart, so one view broken by a change in the database does not stop the
/// others. When none checks, fails as [`plan_views`] does, or plans none.
pub async fn plan_runnable_views(
    views: &[ViewDef],
    pool: &PgPool,
    when_none_checks: WhenNoneChecks,
) -> Result<PlannedViews, PlanningError> {
    let catalog = catalog::load_catalog(pool).await?;
    let errors = view::check_against_catalog(views, &catalog);
    let (runnable, invalid): (Vec<ViewDef>, Vec<ViewDef>) = views
        .iter()
        .cloned()
        .partition(|view| !errors.iter().any(|error| error.file == view.file));
    if runnable.is_empty() && !invalid.is_empty() && when_none_checks == WhenNoneChecks::Fail {
        return Err(PlanningError::Invalid(ViewErrors(errors)));
    }
    let plan = Plan::build(&runnable, &catalog)?;
    let invalid = invalid
        .into_iter()
        .map(|view| {
            let messages: Vec<String> = errors
                .iter()
                .filter(|error| error.file == view.file)
                .map(ToString::to_string)
                .collect();
            InvalidView {
                error: messages.join("\n"),
                view,
            }
        })
        .collect();
    Ok(PlannedViews {
        runnable,
        plan,
        invalid,
    })
}

/// New views for the pipeline, checked and planned.
pub struct NewViews {
    pub views: Vec<ViewDef>,
    pub plan: Plan,
    /// Told once the pipeline runs them (and no longer runs removed ones),
    /// so that the reload answers then: a `drop` right after it must not
    /// find a removed view still running.
    pub running: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Why the pipeline must stop and start again.
pub enum Restart {
    /// The view files changed.
    Views(NewViews),
    /// `rebuild --from-source`: the same views from a new snapshot, after
    /// which `view`'s target is rewritten.
    FromSource { view: String },
    /// A column the state store holds changed its type, or was dropped or
    /// renamed, or a table the views read left the publication (dropped,
    /// perhaps created again): the same views, planned against the catalog
    /// again (a view that no longer checks is set apart and does not run),
    /// from a new snapshot.
    SourceChanged,
    /// What the same views compute from the same rows changed (the
    /// database's `TimeZone`): the views planned again, and those whose
    /// definition changed built again from the state store.
    OutputsChanged,
}

/// What a reload found, by view name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadOutcome {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

impl ReloadOutcome {
    /// Whether the pipeline must restart on the new views.
    pub fn applies(&self) -> bool {
        !(self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty())
    }
}

pub struct Reloader {
    views_dir: PathBuf,
    pool: PgPool,
    /// Where the aggregate views' tables are, to refuse a view whose table
    /// belongs to someone else, as `check` does.
    aggregates_url: String,
    /// The views last handed to the pipeline. The lock also keeps two
    /// reloads from interleaving.
    running: Mutex<RunningViews>,
    requests: mpsc::Sender<Restart>,
}

/// What a reload compares the view files with.
#[derive(Debug, Default)]
struct RunningViews {
    /// Name → definition hash of the views that run.
    hashes: BTreeMap<String, String>,
    /// The views set apart because they no longer checked: one that checks
    /// again comes back `changed`, not `added`.
    set_apart: BTreeSet<String>,
}

impl RunningViews {
    fn of(planned: &PlannedViews) -> RunningViews {
        RunningViews {
            hashes: hashes(&planned.plan),
            set_apart: planned
                .invalid
                .iter()
                .map(|invalid| invalid.view.name.clone())
                .collect(),
        }
    }
}

impl Reloader {
    /// A reloader for the service now running `planned`'s views, and where
    /// the pipeline receives the new views it accepts.
    pub fn new(
        views_dir: PathBuf,
        pool: PgPool,
        aggregates_url: String,
        planned: &PlannedViews,
    ) -> (Reloader, mpsc::Receiver<Restart>) {
        let (requests, received) = mpsc::channel(1);
        let reloader = Reloader {
            views_dir,
            pool,
            aggregates_url,
            running: Mutex::new(RunningViews::of(planned)),
            requests,
        };
        (reloader, received)
    }

    /// Reads and checks the view files; hands them to the pipeline when
    /// they differ from the running ones.
    pub async fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        let mut running = self.running.lock().await;
        let views = view::load_views(&self.views_dir)
            .map_err(|errors| ReloadError::Refused(PlanningError::Invalid(errors)))?;
        let plan = plan_views(&views, &self.pool)
            .await
            .map_err(ReloadError::Refused)?;
        let foreign = foreign_tables(&views, &plan, &self.aggregates_url)
            .await
            .map_err(|error| ReloadError::Refused(error.into()))?;
        if !foreign.is_empty() {
            return Err(ReloadError::Refused(PlanningError::Invalid(ViewErrors(
                foreign,
            ))));
        }
        let next = hashes(&plan);
        let outcome = compare(&running, &next);
        if outcome.applies() {
            let (told, started) = tokio::sync::oneshot::channel();
            let views = NewViews {
                views,
                plan,
                running: Some(told),
            };
            self.requests
                .send(Restart::Views(views))
                .await
                .map_err(|_| ReloadError::Stopping)?;
            *running = RunningViews {
                hashes: next,
                set_apart: BTreeSet::new(),
            };
            // The restart takes the lock itself ([`Reloader::set_running`]).
            drop(running);
            started.await.map_err(|_| ReloadError::Stopping)?;
        }
        Ok(outcome)
    }
}

impl Restart {
    /// Who waits to hear that the pipeline runs the new views, if anyone.
    pub fn take_running_notice(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        match self {
            Restart::Views(views) => views.running.take(),
            _ => None,
        }
    }
}

impl Reloader {
    /// Takes `views` as the running ones: after a restart that set views
    /// apart that no longer check, a reload of the same files brings back
    /// those that check again.
    pub async fn set_running(&self, planned: &PlannedViews) {
        *self.running.lock().await = RunningViews::of(planned);
    }

    /// Asks the pipeline to restart from a new snapshot and then rewrite
    /// `view`'s target (`rebuild --from-source`).
    pub async fn restart_from_source(&self, view: &str) -> Result<(), ReloadError> {
        let _running = self.running.lock().await;
        self.requests
            .send(Restart::FromSource {
                view: view.to_owned(),
            })
            .await
            .map_err(|_| ReloadError::Stopping)
    }
}

/// The planned views' definition hashes, which count what the files do
/// not say: the database's time zone, for the views computing in it.
fn hashes(plan: &Plan) -> BTreeMap<String, String> {
    plan.views
        .iter()
        .map(|view| (view.name.clone(), view.definition_hash.clone()))
        .collect()
}

fn compare(running: &RunningViews, next: &BTreeMap<String, String>) -> ReloadOutcome {
    let mut outcome = ReloadOutcome::default();
    for (name, hash) in next {
        match running.hashes.get(name) {
            None if running.set_apart.contains(name) => outcome.changed.push(name.clone()),
            None => outcome.added.push(name.clone()),
            Some(old) if old != hash => outcome.changed.push(name.clone()),
            Some(_) => outcome.unchanged.push(name.clone()),
        }
    }
    // A view set apart whose file is gone is removed too: it showed
    // `failed` (and `/ready` 503) until a restart, and `drop` refused it.
    let mut removed: BTreeSet<&String> = running.hashes.keys().collect();
    removed.extend(&running.set_apart);
    outcome.removed = removed
        .into_iter()
        .filter(|name| !next.contains_key(*name))
        .cloned()
        .collect();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_reload_sorts_views_into_added_changed_removed_and_unchanged() {
        let running = RunningViews {
            hashes: map(&[("a", "1"), ("b", "2"), ("c", "3")]),
            // Set apart as it no longer checked: back, it is not new.
            set_apart: BTreeSet::from(["e".to_owned(), "f".to_owned()]),
        };
        let next = map(&[("a", "1"), ("b", "9"), ("d", "4"), ("e", "5")]);
        let outcome = compare(&running, &next);
        assert_eq!(outcome.added, ["d"]);
        assert_eq!(outcome.changed, ["b", "e"]);
        // `f` no longer checked, and its file is gone.
        assert_eq!(outcome.removed, ["c", "f"]);
        assert_eq!(outcome.unchanged, ["a"]);
        assert!(outcome.applies());
        let all_check = RunningViews {
            hashes: running.hashes.clone(),
            set_apart: BTreeSet::new(),
        };
        assert!(!compare(&all_check, &running.hashes).applies());
    }
}
