//! The admin HTTP API (axum): health, readiness, status, Prometheus metrics,
//! search over the views' indexes, rebuilds and dead letters.
//!
//! Binds to 127.0.0.1 by default (`admin_addr`). Read-only endpoints need no
//! token; mutating ones (rebuilds, dead-letter retries) need `Authorization: Bearer <admin_token>`,
//! and are refused when no token is configured.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, watch};

use crate::change::Lsn;
use crate::drop_view::{self, DropError, Targets};
use crate::engine::Engine;
use crate::rebuild::{RebuildError, Rebuilder};
use crate::reload::{ReloadError, Reloader};
use crate::sink::search::{PageRequest, SearchError, SearchIndex};
use crate::state::{DeadLetter, Store};
use crate::status::{StatusBoard, StatusReport, ViewInfo};

/// Hits returned when a query gives no `limit`.
const DEFAULT_LIMIT: usize = 10;
/// The largest `limit` a query may ask for.
const MAX_LIMIT: usize = 1_000;
/// How deep a query may page (`offset + limit`): each page ranks every
/// hit before it, so a deeper page costs more memory and time than its own
/// hits are worth (Elasticsearch's `max_result_window` has the same).
const MAX_PAGE_END: usize = 10_000;
/// Dead letters listed when the request gives no `limit`.
const DEFAULT_DEAD_LETTERS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin API: cannot listen on {addr}: {source}{}", in_use_hint(.source))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What an address in use most often means here.
fn in_use_hint(error: &std::io::Error) -> &'static str {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        " (another viewkeeper, or another program, listens there: stop it, or set admin_addr)"
    } else {
        ""
    }
}

/// What stays for the life of the process.
pub struct AdminShared {
    pub status: Arc<StatusBoard>,
    pub store: Arc<Store>,
    pub pool: PgPool,
    pub slot: String,
    /// Renders `/metrics`; `None` when no recorder could be installed.
    pub metrics: Option<PrometheusHandle>,
    /// What mutating calls must present as `Authorization: Bearer …`;
    /// `None` refuses them all.
    pub admin_token: Option<Arc<str>>,
    pub reloader: Arc<Reloader>,
    /// Where removed views' data is, for `drop`.
    pub drop_targets: Targets,
}

/// What the running views provide; replaced when the views are reloaded.
pub struct RunningViews {
    pub views: Vec<ViewInfo>,
    /// The index of every search view, by view name.
    pub search_indexes: HashMap<String, Arc<SearchIndex>>,
    pub rebuilder: Arc<Rebuilder>,
    /// Retries dead letters.
    pub engine: Arc<Engine>,
    /// Wakes every sink (after a retry wrote outbox entries).
    pub wake_sinks: Vec<Arc<Notify>>,
}

/// What the handlers can reach.
#[derive(Clone)]
pub struct AdminState {
    shared: Arc<AdminShared>,
    running: Arc<RwLock<Arc<RunningViews>>>,
    /// Counts the replacements of `running`, for a call that must wait for
    /// the restarted pipeline.
    replaced: watch::Sender<u64>,
}

impl AdminState {
    pub fn new(shared: AdminShared, running: RunningViews) -> AdminState {
        AdminState {
            shared: Arc::new(shared),
            running: Arc::new(RwLock::new(Arc::new(running))),
            replaced: watch::Sender::new(0),
        }
    }

    /// Serves the views of a reloaded pipeline from now on.
    pub fn replace_running(&self, running: RunningViews) {
        *self.running.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(running);
        self.replaced.send_modify(|count| *count += 1);
    }

    /// The pipeline being replaced has stopped: its rebuilds go to the next.
    pub fn pipeline_stopped(&self) {
        self.running().rebuilder.close();
    }

    fn running(&self) -> Arc<RunningViews> {
        Arc::clone(&self.running.read().unwrap_or_else(|p| p.into_inner()))
    }
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/views/{view}/search", get(search))
        .route("/views/reload", post(reload))
        .route("/views/{view}/rebuild", post(rebuild))
        .route("/views/{view}/drop", post(drop))
        .route("/views/{view}/dead-letters", get(dead_letters))
        .route("/views/{view}/dead-letters/retry", post(retry_dead_letters))
        .with_state(state)
}

/// Binds the admin API's address: first thing at start, so that a port in
/// use stops `run` before it does any work.
pub async fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener, AdminError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })
}

/// Serves the admin API on `listener` until `shutdown` turns true.
pub fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    mut shutdown: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    if let Ok(local) = listener.local_addr() {
        tracing::info!(addr = %local, "admin API listening");
    }
    async move {
        let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        });
        if let Err(error) = server.await {
            tracing::error!(%error, "admin API stopped");
        }
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn current_report(state: &AdminState) -> StatusReport {
    let shared = &state.shared;
    crate::status::report(
        &shared.status,
        &state.running().views,
        &shared.store,
        &shared.pool,
        &shared.slot,
    )
    .await
}

/// 200 once the initial snapshot is done and every sink reached its target;
/// 503 otherwise, with the status that says why.
async fn ready(State(state): State<AdminState>) -> Response {
    let report = current_report(&state).await;
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

async fn status(State(state): State<AdminState>) -> Json<StatusReport> {
    Json(current_report(&state).await)
}

/// Prometheus text format. The gauges read at scrape time (lag, outbox
/// depths) are refreshed first.
async fn metrics(State(state): State<AdminState>) -> Response {
    let _ = current_report(&state).await;
    let body = state
        .shared
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Whether the request carries the configured token; if not, why. The
/// comparison takes the same time wherever the tokens differ (digests of
/// equal length are compared in constant time), so timing says nothing about
/// the token.
fn authorized(state: &AdminState, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(expected) = &state.shared.admin_token else {
        return Err(
            "mutating calls are refused: no admin token is configured (admin_token, VIEWKEEPER_ADMIN_TOKEN)",
        );
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .ok_or("missing `Authorization: Bearer <token>`")?;
    let matches = Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes()));
    if bool::from(matches) {
        Ok(())
    } else {
        Err("wrong admin token")
    }
}

/// The token of a `Bearer` credential; the scheme's name is
/// case-insensitive (RFC 9110, 11.1), so `bearer t` presents `t` too.
fn bearer_token(credentials: &str) -> Option<&str> {
    let (scheme, token) = credentials.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RebuildParams {
    /// Re-snapshot from PostgreSQL instead of recomputing from the state store.
    #[serde(default)]
    from_source: bool,
}

/// Starts rebuilding one view; 202 at once, progress in `/status`.
async fn rebuild(
    State(state): State<AdminState>,
    Path(view): Path<String>,
    JsonQuery(params): JsonQuery<RebuildParams>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, why.into());
    }
    let (rebuilder, started) = start_rebuild(&state, &view, params.from_source).await;
    match started {
        Ok(()) => {}
        Err(e @ RebuildError::Restarting(_)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        Err(e @ RebuildError::UnknownView(_)) => {
            return error(StatusCode::NOT_FOUND, e.to_string());
        }
        Err(e @ RebuildError::AlreadyRunning(_)) => {
            return error(StatusCode::CONFLICT, e.to_string());
        }
        Err(e @ RebuildError::NotRecorded { .. }) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    }
    if params.from_source
        && let Err(e) = state.shared.reloader.restart_from_source(&view).await
    {
        rebuilder.finish(&view, Some(e.to_string())).await;
        return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "view": view, "state": "rebuilding", "from_source": params.from_source })),
    )
        .into_response()
}

/// How long a rebuild asked for while the pipeline restarts waits for the
/// restarted one.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts the rebuild of `view` in the running pipeline, or, when that one
/// has just stopped, in the restarted one once it runs (where a rebuild
/// already running is this one, resumed from the store's record).
async fn start_rebuild(
    state: &AdminState,
    view: &str,
    from_source: bool,
) -> (Arc<Rebuilder>, Result<(), RebuildError>) {
    let mut replaced = state.replaced.subscribe();
    replaced.borrow_and_update();
    let mut restarted = false;
    loop {
        let rebuilder = Arc::clone(&state.running().rebuilder);
        let started = if from_source {
            rebuilder.start_from_source(view).await
        } else {
            rebuilder.start(view).await
        };
        match started {
            Err(RebuildError::Restarting(_))
                if tokio::time::timeout(RESTART_WAIT, replaced.changed())
                    .await
                    .is_ok_and(|changed| changed.is_ok()) =>
            {
                restarted = true;
            }
            Err(RebuildError::AlreadyRunning(_)) if restarted => return (rebuilder, Ok(())),
            started => return (rebuilder, started),
        }
    }
}

/// Reads the view files again: 200 with what was added, changed, removed
/// and unchanged (the pipeline restarts on them unless nothing changed);
/// 422 with the `check` messages when a file is invalid, and nothing changes.
async fn reload(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(why) = authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, why.into());
    }
    match state.shared.reloader.reload().await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e @ ReloadError::Refused(_)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e @ ReloadError::Stopping) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Deletes what a removed view left behind: 200 with what was deleted,
/// 409 while the view still runs, 404 for a view the store never built.
async fn drop(
    State(state): State<AdminState>,
    Path(view): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, why.into());
    }
    let running: Vec<String> = state
        .running()
        .views
        .iter()
        .map(|info| info.name.clone())
        .collect();
    let shared = &state.shared;
    match drop_view::drop_view(&shared.drop_targets, &shared.store, &view, &running).await {
        Ok(dropped) => Json(dropped).into_response(),
        Err(e @ DropError::Running(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ DropError::Unknown(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<usize>,
}

/// The dead letters of one view (the first `limit`, in primary-key order)
/// and how many there are.
async fn dead_letters(
    State(state): State<AdminState>,
    Path(view): Path<String>,
    JsonQuery(params): JsonQuery<ListParams>,
) -> Response {
    if !state.running().views.iter().any(|info| info.name == view) {
        return error(StatusCode::NOT_FOUND, format!("no view named {view:?}"));
    }
    let limit = params.limit.unwrap_or(DEFAULT_DEAD_LETTERS);
    let store = Arc::clone(&state.shared.store);
    let name = view.clone();
    let listed = tokio::task::spawn_blocking(move || store.dead_letters(&name, limit)).await;
    match listed {
        Ok(Ok((letters, total))) => Json(json!({
            "view": view,
            "total": total,
            "dead_letters": letters.iter().map(dead_letter_json).collect::<Vec<_>>(),
        }))
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn dead_letter_json(letter: &DeadLetter) -> serde_json::Value {
    json!({
        "lsn": letter.lsn.map(|lsn| Lsn(lsn).to_string()),
        "table": letter.table,
        "key": letter.key,
        "reason": letter.reason,
        "recorded_at_micros": letter.recorded_at_micros,
    })
}

/// Refreshes every dead-lettered root of the view now (after a fix); 200
/// with how many were retried and how many still fail.
async fn retry_dead_letters(
    State(state): State<AdminState>,
    Path(view): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, why.into());
    }
    let running = state.running();
    let engine = Arc::clone(&running.engine);
    let name = view.clone();
    let retried = tokio::task::spawn_blocking(move || engine.retry_dead_letters(&name)).await;
    match retried {
        Ok(Ok(Some(outcome))) => {
            if outcome.outbox_entries > 0 {
                for wake in &running.wake_sinks {
                    wake.notify_one();
                }
            }
            Json(json!({
                "view": view,
                "retried": outcome.retried,
                "still_failing": outcome.still_failing,
            }))
            .into_response()
        }
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no view named {view:?}")),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    /// `field`, `field:asc` or `field:desc`, up to three separated by
    /// commas: fast fields' order in place of the score's.
    sort: Option<String>,
    /// `category,in_stock`: fast fields whose values to count over the
    /// matches.
    facets: Option<String>,
    /// Values listed per facet, the most frequent first.
    facet_limit: Option<usize>,
}

async fn search(
    State(state): State<AdminState>,
    Path(view): Path<String>,
    JsonQuery(params): JsonQuery<SearchParams>,
) -> Response {
    let running = state.running();
    let Some(index) = running.search_indexes.get(&view).cloned() else {
        // A search view that does not run (its file no longer checks) is
        // not "no view": say why it is not served.
        let not_running = running
            .views
            .iter()
            .find(|info| info.name == view && info.kind == "search")
            .and_then(|info| info.error.as_ref());
        return match not_running {
            Some(why) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "search view {view:?} is failed and not served until a reload finds it \
                     checking again: {why}"
                ),
            ),
            None => error(
                StatusCode::NOT_FOUND,
                format!("no search view named {view:?}"),
            ),
        };
    };
    let Some(query) = params.q.filter(|q| !q.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the query parameter `q` is required".into(),
        );
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`limit` is at most {MAX_LIMIT}, not {limit}"),
        );
    }
    let offset = params.offset.unwrap_or(0);
    if offset.saturating_add(limit) > MAX_PAGE_END {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "`offset` + `limit` is at most {MAX_PAGE_END}, not {offset} + {limit}: narrow \
                 the query instead of paging deeper"
            ),
        );
    }
    let page = PageRequest::parse(
        offset,
        limit,
        params.sort.as_deref(),
        params.facets.as_deref(),
        params.facet_limit,
    );
    let page = match page {
        Ok(page) => page,
        Err(refused) => return error(StatusCode::BAD_REQUEST, refused.to_string()),
    };
    let result = tokio::task::spawn_blocking(move || index.search_page(&query, &page)).await;
    match result {
        Ok(Ok(page)) => Json(page.to_json(&view)).into_response(),
        Ok(Err(e @ (SearchError::Query(_) | SearchError::Sort(_) | SearchError::Facet(_)))) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Query parameters, refused as every other error of the API is: `400` with
/// a JSON `error` (axum's own `Query` answers in plain text). The structs
/// deny unknown parameters: `sort=` or `from-source=` misspelt would
/// otherwise be ignored without a word.
struct JsonQuery<T>(T);

impl<T, S> FromRequestParts<S> for JsonQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(params)) => Ok(JsonQuery(params)),
            Err(rejection) => Err(error(
                StatusCode::BAD_REQUEST,
                query_error(&rejection.body_text()),
            )),
        }
    }
}

/// A refused query string said in the API's words, not axum's and serde's
/// (`Failed to deserialize query string: sort: unknown field `sort`, …`,
/// which the twenty-seventh trial met).
fn query_error(rejection: &str) -> String {
    let detail = rejection
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(rejection);
    match detail.split_once("unknown field ") {
        Some((_, unknown)) => format!(
            "unknown query parameter {}",
            unknown.replacen(", expected", "; this call takes", 1)
        ),
        None => match detail.split_once(": ") {
            // serde's words for `limit=-1` or `limit=ten` (trial 37).
            Some((name, why)) if why.contains("invalid digit") || why.contains("too large") => {
                format!("query parameter `{name}` takes a whole number (0 or more)")
            }
            _ => format!("invalid query parameter {detail}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, query_error};

    #[test]
    fn a_refused_query_string_is_said_in_the_api_words() {
        assert_eq!(
            query_error(
                "Failed to deserialize query string: sort: unknown field `sort`, expected one of \
                 `q`, `limit`, `offset`"
            ),
            "unknown query parameter `sort`; this call takes one of `q`, `limit`, `offset`"
        );
        assert_eq!(
            query_error("Failed to deserialize query string: limit: invalid digit found in string"),
            "query parameter `limit` takes a whole number (0 or more)"
        );
        assert_eq!(
            query_error("Failed to deserialize query string: from_source: invalid boolean"),
            "invalid query parameter from_source: invalid boolean"
        );
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        assert_eq!(bearer_token("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("BEARER  s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("Basic czNjcmV0"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
