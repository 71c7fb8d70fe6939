//! Retiring an instance for good (`viewkeeper retire`): removing what `run`
//! made that outlives it. The slot matters most: the primary keeps every
//! byte of WAL written since the instance last read for as long as its slot
//! exists, and stopping viewkeeper does not drop it (a restart must find it).
//!
//! Refused while the instance runs: its data directory is locked, or a
//! session streams from its slot (perhaps from another machine). Without
//! `--yes` it only says what it would do. The targets (when dropped) go
//! first, while the state store still says what they are; then the
//! publication, the slot, and last the data directory: a retire cut short
//! is run again and finds what is left.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redis::AsyncCommands;
use sqlx::PgPool;

use crate::config::Config;
use crate::drop_view::{self, DropError, Targets};
use crate::source::SourceError;
use crate::source::catalog::{self, SlotState};
use crate::source::connection::{PgEndpoint, redact_url};
use crate::state::{Store, StoreError, StoreOptions, ViewRecord};

/// The directories of a data directory that viewkeeper writes; anything
/// else there is not its own and stays.
const OWN_DIRS: [&str; 2] = ["state", "indexes"];

#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error(
        "the instance is running: its data directory {path} is locked by another viewkeeper \
         process; stop it first"
    )]
    DataDirInUse { path: String },
    #[error(
        "the instance is running: a session streams from slot {slot} (PID {pid} on the \
         database server, application {application:?}, from {client}); stop it first"
    )]
    SlotInUse {
        slot: String,
        pid: i32,
        application: String,
        client: String,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Drop(#[from] DropError),
    #[error("the Redis checkpoint key {key} at {url}: {source}")]
    RedisCheckpoint {
        key: String,
        url: String,
        source: redis::RedisError,
    },
    #[error("removing {path}: {source}")]
    Remove {
        path: String,
        source: std::io::Error,
    },
    #[error("state store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What to remove besides the slot and the data directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetireOptions {
    /// Delete the views' Redis keys and aggregate tables too.
    pub drop_targets: bool,
    /// Leave the publication (another consumer reads it).
    pub keep_publication: bool,
    /// Do it; otherwise only say what would be done.
    pub confirmed: bool,
}

/// One thing a retire removes or leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    DropSlot {
        slot: String,
        retained_wal_bytes: Option<i64>,
    },
    NoSlot(String),
    DropPublication(String),
    KeepPublication(String),
    NoPublication(String),
    DropTarget {
        view: String,
        kind: String,
        table: Option<String>,
    },
    KeepTarget {
        view: String,
        kind: String,
        table: Option<String>,
    },
    RemoveDataDir {
        path: PathBuf,
    },
    NoDataDir(PathBuf),
    /// `--drop-targets` without a state store to say what they are.
    TargetsUnknown(PathBuf),
}

impl Step {
    /// The step as a line, in the future (`done` false) or the past.
    pub fn describe(&self, done: bool) -> String {
        let tense = |would: &str, did: &str| if done { did } else { would }.to_owned();
        match self {
            Step::DropSlot {
                slot,
                retained_wal_bytes,
            } => {
                let held = retained_wal_bytes
                    .map(|bytes| format!(", which held {} of WAL on the primary", mebibytes(bytes)))
                    .unwrap_or_default();
                format!("{} replication slot {slot}{held}", tense("drop", "dropped"))
            }
            Step::NoSlot(slot) => format!("replication slot {slot}: none"),
            Step::DropPublication(name) => {
                format!("{} publication {name}", tense("drop", "dropped"))
            }
            Step::KeepPublication(name) => format!(
                "{} publication {name} (--keep-publication)",
                tense("keep", "kept")
            ),
            Step::NoPublication(name) => format!("publication {name}: none"),
            Step::DropTarget { view, kind, table } => format!(
                "{} {}",
                tense("delete", "deleted"),
                target_of(view, kind, table.as_deref())
            ),
            Step::KeepTarget { view, kind, table } => format!(
                "{} {} (--drop-targets deletes it)",
                tense("keep", "kept"),
                target_of(view, kind, table.as_deref())
            ),
            Step::RemoveDataDir { path } => format!(
                "{} the state store and search indexes in {}",
                tense("remove", "removed"),
                path.display()
            ),
            Step::NoDataDir(path) => format!("data directory {}: none", path.display()),
            Step::TargetsUnknown(path) => format!(
                "no state store in {} to say what the views' targets are: drop their Redis keys \
                 and tables by hand",
                path.display()
            ),
        }
    }
}

/// What a view's target is, in words.
fn target_of(view: &str, kind: &str, table: Option<&str>) -> String {
    match (kind, table) {
        ("cache", _) => format!("the Redis keys of cache view {view}"),
        ("aggregate", Some(table)) => format!("table {table} of aggregate view {view}"),
        _ => format!("the target of {kind} view {view}"),
    }
}

fn mebibytes(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// What a retire did, or would do (`done` false).
#[derive(Debug)]
pub struct Retirement {
    pub done: bool,
    pub steps: Vec<Step>,
}

/// Retires the instance `config` describes: see the module's comment.
pub async fn retire(config: &Config, options: RetireOptions) -> Result<Retirement, RetireError> {
    let endpoint = PgEndpoint::parse(config.database_url()?)?;
    let pool = endpoint.connect_pool(1, std::time::Duration::ZERO).await?;
    // The store first: opening it is what proves no process here has it.
    let store = open_store(&config.data_dir, &config.store).await?;
    let slot = catalog::slot_state(&pool, &config.slot).await?;
    if let Some(SlotState {
        holder: Some((pid, application, client)),
        ..
    }) = &slot
    {
        return Err(RetireError::SlotInUse {
            slot: config.slot.clone(),
            pid: *pid,
            application: application.clone(),
            client: client.clone(),
        });
    }
    let records = match &store {
        Some(store) => {
            let store = Arc::clone(store);
            tokio::task::spawn_blocking(move || store.view_records()).await??
        }
        None => Vec::new(),
    };
    let steps = plan_steps(config, options, &pool, slot, &records, store.is_some()).await?;
    if !options.confirmed {
        return Ok(Retirement { done: false, steps });
    }
    if let (Some(store), true) = (&store, options.drop_targets) {
        drop_targets(config, store, &records).await?;
    }
    drop(store);
    if !options.keep_publication {
        catalog::drop_publications_of_ended_tails(&pool, &config.publication, &config.slot).await?;
        catalog::drop_publication(&pool, &config.publication).await?;
    }
    // No session held it above; one that started since is refused, not
    // ended: no session is named as this command.
    catalog::drop_slot(&pool, &config.slot, "viewkeeper retire").await?;
    remove_data_dir(&config.data_dir)?;
    Ok(Retirement { done: true, steps })
}

/// The store in `data_dir`, if there is one; one a running process holds
/// is refused.
async fn open_store(
    data_dir: &Path,
    options: &StoreOptions,
) -> Result<Option<Arc<Store>>, RetireError> {
    if !data_dir.join("state").exists() {
        return Ok(None);
    }
    let (dir, options) = (data_dir.to_path_buf(), options.clone());
    let opened = tokio::task::spawn_blocking(move || Store::open(&dir, &options)).await?;
    match opened {
        Ok(store) => Ok(Some(Arc::new(store))),
        Err(StoreError::Locked { .. }) => Err(RetireError::DataDirInUse {
            path: data_dir.display().to_string(),
        }),
        Err(error) => Err(error.into()),
    }
}

async fn plan_steps(
    config: &Config,
    options: RetireOptions,
    pool: &PgPool,
    slot: Option<SlotState>,
    records: &[(String, ViewRecord)],
    has_store: bool,
) -> Result<Vec<Step>, RetireError> {
    let mut steps = Vec::new();
    if options.drop_targets && !has_store {
        steps.push(Step::TargetsUnknown(config.data_dir.clone()));
    }
    for (view, record) in records {
        // A search view's index lives in the data directory, removed below.
        if record.kind == "search" {
            continue;
        }
        // A table elsewhere than the source database is named with where.
        let table = match (&record.table, &config.aggregates_url) {
            (Some(table), Some(url)) => Some(format!("{table} in {}", redact_url(url))),
            (table, _) => table.clone(),
        };
        let (view, kind) = (view.clone(), record.kind.clone());
        steps.push(if options.drop_targets {
            Step::DropTarget { view, kind, table }
        } else {
            Step::KeepTarget { view, kind, table }
        });
    }
    let publication = config.publication.clone();
    steps.push(if !catalog::publication_exists(pool, &publication).await? {
        Step::NoPublication(publication)
    } else if options.keep_publication {
        Step::KeepPublication(publication)
    } else {
        Step::DropPublication(publication)
    });
    steps.push(match slot {
        Some(slot) => Step::DropSlot {
            slot: config.slot.clone(),
            retained_wal_bytes: slot.retained_wal_bytes,
        },
        None => Step::NoSlot(config.slot.clone()),
    });
    steps.push(if has_store {
        Step::RemoveDataDir {
            path: config.data_dir.clone(),
        }
    } else {
        Step::NoDataDir(config.data_dir.clone())
    });
    Ok(steps)
}

/// Deletes every view's target, as `drop` does for a removed view, and
/// the Redis checkpoint this store wrote.
async fn drop_targets(
    config: &Config,
    store: &Arc<Store>,
    records: &[(String, ViewRecord)],
) -> Result<(), RetireError> {
    let targets = Targets {
        redis_url: config.redis_url.clone(),
        data_dir: config.data_dir.clone(),
        aggregates_url: config.aggregates_url()?.to_owned(),
    };
    for (view, _) in records {
        drop_view::drop_view(&targets, store, view, &[]).await?;
    }
    if records.iter().any(|(_, record)| record.kind == "cache") {
        let id = {
            let store = Arc::clone(store);
            tokio::task::spawn_blocking(move || store.id()).await??
        };
        delete_own_checkpoint(&config.redis_url, &config.redis_checkpoint_key, &id).await?;
    }
    Ok(())
}

/// Deletes the Redis sink's checkpoint key if this store wrote it.
async fn delete_own_checkpoint(url: &str, key: &str, store_id: &str) -> Result<(), RetireError> {
    let failed = |source| RetireError::RedisCheckpoint {
        key: key.to_owned(),
        url: redact_url(url),
        source,
    };
    let client = redis::Client::open(url).map_err(failed)?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(failed)?;
    let value: Option<String> = connection.get(key).await.map_err(failed)?;
    if value.is_some_and(|value| value.starts_with(&format!("{store_id}:"))) {
        let _: () = connection.del(key).await.map_err(failed)?;
    }
    Ok(())
}

/// Removes viewkeeper's directories in `data_dir`, then `data_dir` itself
/// if nothing else is left in it.
fn remove_data_dir(data_dir: &Path) -> Result<(), RetireError> {
    let removing = |path: &Path| {
        let path = path.display().to_string();
        move |source| RetireError::Remove { path, source }
    };
    for name in OWN_DIRS {
        let dir = data_dir.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(removing(&dir))?;
        }
    }
    let empty = std::fs::read_dir(data_dir)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(false);
    if empty {
        std::fs::remove_dir(data_dir).map_err(removing(data_dir))?;
    }
    Ok(())
}
