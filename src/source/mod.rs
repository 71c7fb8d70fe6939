//! Sources of changes. Today: PostgreSQL logical replication with pgoutput.
//!
//! - [`connection`]: connection settings shared by the SQL and replication sessions.
//! - [`catalog`]: tables, columns and primary keys; the publication.
//! - [`snapshot`]: the initial snapshot, consistent with the slot's start.
//! - [`stream`]: the replication stream, cut into [`crate::change::ChangeBatch`]es.
//! - [`pgoutput`], [`pg_text`], [`copy_text`]: wire formats.

pub mod catalog;
pub mod connection;
pub mod copy_text;
pub mod pg_text;
pub mod pgoutput;
pub mod snapshot;
pub mod stream;

use crate::change::Lsn;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("replication connection: {0}")]
    Replication(#[from] pgwire_replication::PgWireError),
    #[error("pgoutput at LSN {lsn}: {error}")]
    Decode {
        lsn: Lsn,
        error: pgoutput::DecodeError,
    },
    #[error("snapshot of table {table}: {reason}")]
    Snapshot { table: String, reason: String },
    #[error("database URL: {0}")]
    Url(String),
    #[error("replication slot {slot}: {reason}")]
    Slot { slot: String, reason: String },
    #[error("the replication stream ended")]
    StreamEnded,
    #[error(
        "column {column} of table {table} {change} (at LSN {lsn}): the rows stored before \
         no longer match the table, so the views are planned again and a new snapshot is taken"
    )]
    StoredColumnChanged {
        table: String,
        column: String,
        change: &'static str,
        lsn: Lsn,
    },
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("engine task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl SourceError {
    /// Whether the error comes from the log's contents (a change that cannot
    /// be decoded or applied), so that reconnecting meets it again; not from
    /// the connection.
    pub fn is_in_the_log(&self) -> bool {
        matches!(self, SourceError::Decode { .. } | SourceError::Engine(_))
    }
}
