//! Rebuilding one view on demand (`POST /views/{view}/rebuild`,
//! `viewkeeper rebuild VIEW`), while changes keep flowing into every view.
//!
//! First the engine recomputes every root of the view from the state store,
//! in chunks that interleave with the stream's batches, so stored outputs are
//! exactly what the current rows say. Then the view's sink rewrites its whole
//! target from the stored outputs at one consistent point, in a way readers
//! never see half-done: Redis overwrites every document and then sweeps the
//! keys under the view's key prefix that no output has; a search index gets
//! every document and loses the others in one commit; an aggregate table is
//! refilled in a shadow table renamed into place in one transaction. The
//! sink then goes on from that point of its outbox.
//!
//! A rebuild asked for is recorded in the state store until it ends, so one
//! that a crash or a stop cuts short runs again at the next start: the
//! target it was asked to repair may be half rewritten. Likewise one that a
//! restart of the pipeline (a reload, a rebuild from the source) cuts short:
//! it belongs to the pipeline whose sinks rewrite, so the restarted
//! pipeline runs it again ([`Rebuilder::close`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::engine::Engine;
use crate::sink::RewriteSignal;
use crate::state::Store;
use crate::status::StatusBoard;
use crate::view::ViewDef;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RebuildError {
    #[error("no view named {0:?}")]
    UnknownView(String),
    #[error("view {0} is already being rebuilt")]
    AlreadyRunning(String),
    #[error("could not record the rebuild of view {view}: {reason}")]
    NotRecorded { view: String, reason: String },
    /// Asked for of a pipeline that has just ended: the restarted one
    /// takes it.
    #[error("the pipeline is restarting; the rebuild of view {0} goes to the restarted one")]
    Restarting(String),
}

pub struct Rebuilder {
    engine: Arc<Engine>,
    store: Arc<Store>,
    status: Arc<StatusBoard>,
    /// Whether this pipeline has started: resumed its stream, or taken its
    /// snapshot. The board's snapshot may still be the stopped pipeline's.
    started: watch::Receiver<bool>,
    /// The rewrite signal of each view's sink, by view name (the cache views
    /// share the Redis sink's).
    rewrites: HashMap<String, RewriteSignal>,
    /// The rebuilds running in this pipeline, by view; `None` once the
    /// pipeline has ended ([`Rebuilder::close`]).
    tasks: Mutex<Option<Vec<(String, AbortHandle)>>>,
}

impl Rebuilder {
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<Store>,
        status: Arc<StatusBoard>,
        started: watch::Receiver<bool>,
        rewrites: HashMap<String, RewriteSignal>,
    ) -> Rebuilder {
        Rebuilder {
            engine,
            store,
            status,
            started,
            rewrites,
            tasks: Mutex::new(Some(Vec::new())),
        }
    }

    /// Starts rebuilding `view` in the background; its progress shows in the
    /// status (`rebuilding`, then `rebuilds_completed` or `rebuild_error`).
    pub async fn start(self: &Arc<Self>, view: &str) -> Result<(), RebuildError> {
        let rewrite = self.mark_started(view)?;
        self.record_asked(view, false).await?;
        if self.spawn(view, rewrite) {
            Ok(())
        } else {
            Err(RebuildError::Restarting(view.to_owned()))
        }
    }

    /// Ends this pipeline's rebuilds, which its sinks would never finish
    /// once it has stopped: each is marked not running, and stays recorded
    /// in the store for the restarted pipeline to run again (see
    /// [`Rebuilder::resume`]). Rebuilds asked for from now on are refused
    /// with [`RebuildError::Restarting`].
    pub fn close(&self) {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .unwrap_or_default();
        for (view, task) in tasks {
            if !task.is_finished() {
                task.abort();
                self.status.rebuild_handed_over(&view);
                tracing::info!(%view, "rebuild cut short by a restart of the pipeline: it runs again there");
            }
        }
    }

    /// Runs `task`, the rebuild of `view`, unless the pipeline has ended
    /// (then `view` is marked not running, and `false` returned).
    fn run_task(&self, view: &str, task: impl Future<Output = ()> + Send + 'static) -> bool {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(tasks) = tasks.as_mut() else {
            self.status.rebuild_handed_over(view);
            return false;
        };
        tasks.retain(|(_, task)| !task.is_finished());
        tasks.push((view.to_owned(), tokio::spawn(task).abort_handle()));
        true
    }

    /// Runs again the rebuilds the store says were asked for and did not
    /// finish before the last stop ([`Store::rebuilds_asked`]), at start. A
    /// rebuild from the source needs this start to take a new snapshot
    /// ([`Store::forget_position`]); the store still records a view that
    /// does not run now, for the start that runs it.
    pub fn resume(self: &Arc<Self>, asked: &[(String, bool)]) {
        for (view, from_source) in asked {
            let resumed = self.mark_started(view).map(|rewrite| {
                if *from_source {
                    self.rewrite_after_snapshot(view.clone())
                } else {
                    self.spawn(view, rewrite)
                }
            });
            match resumed {
                Ok(false) => {}
                Ok(true) => tracing::info!(
                    %view,
                    from_source,
                    "a rebuild asked for before the last stop did not finish: running it again"
                ),
                // Set apart or removed: the record stays for the start
                // that runs the view.
                Err(RebuildError::UnknownView(_)) => tracing::debug!(
                    %view,
                    "a rebuild asked for waits until its view runs"
                ),
                Err(error) => tracing::warn!(
                    %view,
                    %error,
                    "a rebuild asked for before the last stop did not finish and cannot run now"
                ),
            }
        }
    }

    /// Marks a rebuild `--from-source` of `view` as started; the caller
    /// then restarts the pipeline from a new snapshot, and the new pipeline's
    /// rebuilder finishes it ([`Rebuilder::rewrite_after_snapshot`]).
    pub async fn start_from_source(&self, view: &str) -> Result<(), RebuildError> {
        self.mark_started(view)?;
        self.record_asked(view, true).await
    }

    /// The rewrite signal of `view`'s sink, once `view` is marked rebuilding.
    fn mark_started(&self, view: &str) -> Result<RewriteSignal, RebuildError> {
        let Some(rewrite) = self.rewrites.get(view).cloned() else {
            return Err(RebuildError::UnknownView(view.to_owned()));
        };
        if !self.status.rebuild_started(view) {
            return Err(RebuildError::AlreadyRunning(view.to_owned()));
        }
        Ok(rewrite)
    }

    /// Records the rebuild of `view` as asked for until it ends; if that
    /// fails, the rebuild does not start.
    async fn record_asked(&self, view: &str, from_source: bool) -> Result<(), RebuildError> {
        let (store, name) = (Arc::clone(&self.store), view.to_owned());
        let recorded =
            tokio::task::spawn_blocking(move || store.mark_rebuild_asked(&name, from_source))
                .await
                .map_err(|e| e.to_string())
                .and_then(|stored| stored.map_err(|e| e.to_string()));
        recorded.map_err(|reason| {
            self.status.rebuild_finished(view, Some(reason.clone()));
            RebuildError::NotRecorded {
                view: view.to_owned(),
                reason,
            }
        })
    }

    fn spawn(self: &Arc<Self>, view: &str, rewrite: RewriteSignal) -> bool {
        let (this, name) = (Arc::clone(self), view.to_owned());
        self.run_task(view, async move {
            let view = name;
            tracing::info!(%view, "rebuild started");
            let error = this.rebuild(&view, &rewrite).await.err();
            match &error {
                None => tracing::info!(%view, "rebuild done"),
                Some(error) => tracing::error!(%view, %error, "rebuild failed"),
            }
            this.finish(&view, error).await;
        })
    }

    /// The rebuild of `view` ended: it is no longer asked for, and the
    /// status shows how it ended.
    pub async fn finish(&self, view: &str, error: Option<String>) {
        let (store, name) = (Arc::clone(&self.store), view.to_owned());
        let cleared = tokio::task::spawn_blocking(move || store.clear_rebuild_asked(&name)).await;
        if let Ok(Err(error)) = cleared {
            // Still recorded: the next start runs it again, which is only work.
            tracing::warn!(%view, %error, "could not record the end of the rebuild");
        }
        self.status.rebuild_finished(view, error);
    }

    /// Finishes a rebuild `--from-source` once the pipeline restarted on a
    /// new snapshot (which recomputed every view from the source's rows):
    /// rewrites `view`'s whole target, so that what the snapshot removed is
    /// swept. The rebuild was marked started when it was asked for.
    pub fn rewrite_after_snapshot(self: &Arc<Self>, view: String) -> bool {
        let this = Arc::clone(self);
        self.run_task(&view.clone(), async move {
            this.status.rebuild_progress(&view, "snapshotting", 0, 0);
            this.status.wait_for_snapshot().await;
            let error = match this.rewrites.get(&view) {
                Some(rewrite) => {
                    this.status.rebuild_progress(&view, "rewriting", 0, 0);
                    let ticket = rewrite.request();
                    rewrite.completed(ticket).await;
                    None
                }
                None => Some(format!("view {view} is no longer loaded")),
            };
            match &error {
                None => tracing::info!(%view, "rebuild from source done"),
                Some(error) => tracing::error!(%view, %error, "rebuild from source failed"),
            }
            this.finish(&view, error).await;
        })
    }

    async fn rebuild(&self, view: &str, rewrite: &RewriteSignal) -> Result<(), String> {
        // Asked for while a snapshot is being taken: recomputing from its
        // partial rows would be work its end does again, and the sink's
        // rewrite waits for that end anyway. Likewise before this pipeline
        // has started: resumed at a restart that then takes a snapshot, a
        // rebuild recomputed over no rows, and sent the view's target a
        // delete of every document before the snapshot put them back.
        let mut started = self.started.clone();
        if !*started.borrow() || !self.status.snapshot().snapshot_done {
            self.status.rebuild_progress(view, "waiting", 0, 0);
            let _ = started.wait_for(|started| *started).await;
        }
        if !self.status.snapshot().snapshot_done {
            // The start's replay or a snapshot: none is taken for this
            // rebuild, which reads the state store.
            self.status.rebuild_progress(view, "waiting", 0, 0);
            self.status.wait_for_snapshot().await;
        }
        let (engine, name) = (Arc::clone(&self.engine), view.to_owned());
        let status = Arc::clone(&self.status);
        let outcome = tokio::task::spawn_blocking(move || {
            engine.recompute_view(&name, &mut |done, total| {
                status.rebuild_progress(&name, "recomputing", done, total)
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if let Some(outcome) = outcome {
            tracing::info!(
                view,
                roots = outcome.roots_refreshed,
                "rebuild: view recomputed from the state store"
            );
        }
        let (done, total) = self
            .status
            .snapshot()
            .rebuilds
            .get(view)
            .and_then(|state| state.progress.as_ref())
            .map_or((0, 0), |progress| (progress.rows_done, progress.rows_total));
        self.status.rebuild_progress(view, "rewriting", done, total);
        let ticket = rewrite.request();
        rewrite.completed(ticket).await;
        Ok(())
    }
}

/// Whether a rebuild from the source that was cut short runs again at this
/// start, which must then take a new snapshot: only for a view that runs
/// now. One set apart or removed since keeps its record for the start that
/// runs it, and costs this one no snapshot.
pub fn resumes_from_source(asked: &[(String, bool)], running: &[ViewDef]) -> bool {
    asked
        .iter()
        .any(|(view, from_source)| *from_source && running.iter().any(|def| &def.name == view))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cache_view(name: &str) -> ViewDef {
        let text = format!(
            "view: {name}\nkind: cache\nroot: orders\nkey: \"{name}:{{id}}\"\nfields: {{ id: id }}\n"
        );
        crate::view::parse_view(Path::new("views/test.yaml"), &text).expect("a view")
    }

    #[test]
    fn only_a_running_views_rebuild_from_source_takes_a_snapshot() {
        let running = [cache_view("orders"), cache_view("items")];
        let asked = |view: &str, from_source| vec![(view.to_owned(), from_source)];
        assert!(resumes_from_source(&asked("orders", true), &running));
        assert!(!resumes_from_source(&asked("orders", false), &running));
        assert!(!resumes_from_source(&asked("removed", true), &running));
        assert!(!resumes_from_source(&[], &running));
    }
}
