//! Dropping what a removed view left behind (`viewkeeper drop VIEW`,
//! `POST /views/{view}/drop`).
//!
//! Removing a view's file (and reloading) only stops the view: its Redis
//! keys, index or table stay, so that a file removed by mistake costs
//! nothing. Dropping deletes them, then forgets the view in the state store.
//! It refuses a view that is still running, and works from what the store
//! recorded when the view was built, since the file is gone. Targets first,
//! store last: a drop interrupted half-way can simply be run again.

use std::path::PathBuf;
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;

use crate::sink::aggregate::{self, AggregateSinkError};
use crate::source::connection::redact_url;
use crate::state::{Store, StoreError};

/// Keys deleted per Redis command.
const KEYS_PER_DELETE: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("view {0} is running: remove its file and reload the views first")]
    Running(String),
    #[error("the state store has no view named {0:?}")]
    Unknown(String),
    #[error("view {view}: deleting its keys in Redis at {url}: {source}")]
    Redis {
        view: String,
        url: String,
        source: redis::RedisError,
    },
    #[error("view {view}: removing its index {path}: {source}")]
    Index {
        view: String,
        path: String,
        source: std::io::Error,
    },
    #[error("view {view}: {source}")]
    Aggregate {
        view: String,
        source: AggregateSinkError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("state store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Where removed views' data lives.
#[derive(Debug, Clone)]
pub struct Targets {
    pub redis_url: String,
    pub data_dir: PathBuf,
    pub aggregates_url: String,
}

/// What a drop deleted.
#[derive(Debug, Clone, Serialize)]
pub struct Dropped {
    pub view: String,
    pub kind: String,
    pub redis_keys_deleted: u64,
    pub index_removed: Option<String>,
    pub table_dropped: Option<String>,
}

/// Deletes the data of `view`, which must not be among `running`.
pub async fn drop_view(
    targets: &Targets,
    store: &std::sync::Arc<Store>,
    view: &str,
    running: &[String],
) -> Result<Dropped, DropError> {
    if running.iter().any(|name| name == view) {
        return Err(DropError::Running(view.to_owned()));
    }
    let record = store
        .view_record(view)?
        .ok_or_else(|| DropError::Unknown(view.to_owned()))?;
    let mut dropped = Dropped {
        view: view.to_owned(),
        kind: record.kind.clone(),
        redis_keys_deleted: 0,
        index_removed: None,
        table_dropped: None,
    };
    match (record.kind.as_str(), &record.table) {
        ("cache", _) => dropped.redis_keys_deleted = delete_keys(targets, store, view).await?,
        ("search", _) => {
            let dir = targets.data_dir.join("indexes").join(view);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|source| DropError::Index {
                    view: view.to_owned(),
                    path: dir.display().to_string(),
                    source,
                })?;
                dropped.index_removed = Some(dir.display().to_string());
            }
        }
        ("aggregate", Some(table)) => {
            let failed = |source| DropError::Aggregate {
                view: view.to_owned(),
                source,
            };
            let target = aggregate::connect(&targets.aggregates_url)
                .await
                .map_err(failed)?;
            // The hash the view last ran with recognises a table written by
            // a viewkeeper from before tables were marked.
            let definition_hash = store.view_hash(view)?;
            if target
                .drop_table(view, table, definition_hash.as_deref())
                .await
                .map_err(failed)?
            {
                dropped.table_dropped = Some(table.clone());
            } else {
                tracing::warn!(
                    view,
                    table,
                    "the view's table is missing or was not created by viewkeeper: left as it is"
                );
            }
        }
        _ => {}
    }
    // The Redis outbox serves every cache view; the others had their own.
    let own_sink = (record.kind != "cache").then_some(record.sink);
    let (store, name) = (std::sync::Arc::clone(store), view.to_owned());
    tokio::task::spawn_blocking(move || store.write(|w| w.forget_view(&name, own_sink.as_deref())))
        .await??;
    tracing::info!(?dropped, "view dropped");
    Ok(dropped)
}

/// Deletes the key of every stored output of the cache view `view`.
async fn delete_keys(
    targets: &Targets,
    store: &std::sync::Arc<Store>,
    view: &str,
) -> Result<u64, DropError> {
    let failed = |source| DropError::Redis {
        view: view.to_owned(),
        url: redact_url(&targets.redis_url),
        source,
    };
    let (store, name) = (std::sync::Arc::clone(store), view.to_owned());
    let keys = tokio::task::spawn_blocking(move || {
        let mut keys = Vec::new();
        store.reader()?.for_each_output_root(&name, |_, key| {
            keys.push(key);
            Ok::<_, StoreError>(())
        })?;
        Ok::<_, StoreError>(keys)
    })
    .await??;
    if keys.is_empty() {
        return Ok(0);
    }
    let client = redis::Client::open(targets.redis_url.as_str()).map_err(failed)?;
    // As the sink's: the client's default of 500 ms is less than a `DEL` of
    // large documents can take on a busy Redis.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(failed)?;
    let mut deleted = 0;
    for chunk in keys.chunks(KEYS_PER_DELETE) {
        let count: u64 = connection.del(chunk).await.map_err(failed)?;
        deleted += count;
    }
    Ok(deleted)
}
