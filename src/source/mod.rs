//! Sources of changes. Today: PostgreSQL logical replication with pgoutput.
//!
//! - [`connection`]: connection settings shared by the SQL and replication sessions.
//! - [`catalog`]: tables, columns and primary keys; the publication.
//! - [`identity`]: which tables and columns the stored rows came from.
//! - [`snapshot`]: the initial snapshot, consistent with the slot's start.
//! - [`stream`]: the replication stream, cut into [`crate::change::ChangeBatch`]es.
//! - [`pgoutput`], [`pg_text`], [`copy_text`]: wire formats.

pub mod catalog;
pub mod connection;
pub mod copy_text;
pub mod identity;
pub mod pg_text;
pub mod pgoutput;
pub mod snapshot;
pub mod stream;
pub mod unlogged_rows;

use crate::change::Lsn;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("PostgreSQL: {}", sql_error_text(.0))]
    Sql(#[from] sqlx::Error),
    #[error("PostgreSQL at {address}: {}", sql_error_text(.source))]
    Connect {
        /// `host:port/database`, without the user or password.
        address: String,
        source: sqlx::Error,
    },
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
    #[error("{action} publication {publication}: {}{}", sql_error_text(.source), publication_hint(.source, .statement))]
    Publication {
        /// `creating`, `changing`.
        action: &'static str,
        publication: String,
        /// The statement that failed, for someone who may run it.
        statement: String,
        source: sqlx::Error,
    },
    #[error("the replication stream ended")]
    StreamEnded,
    #[error("the database cannot stream changes: {0}")]
    CannotReplicate(String),
    #[error("viewkeeper's role cannot make its publication: {0}")]
    PublicationRights(String),
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
    #[error(
        "table {table} is no longer in publication {publication} ({why}): the rows stored \
         before may no longer match it, so the views are planned again and a new snapshot is \
         taken"
    )]
    TableLeftPublication {
        table: String,
        publication: String,
        /// `renamed to …`, or `dropped, perhaps created again`.
        why: String,
    },
    #[error(
        "{changed}, and the log holds none of it: the rows stored before may no longer match, \
         so the views are planned again and a new snapshot is taken"
    )]
    UnloggedChange { changed: String },
    #[error(
        "{changed}. Its changes since may be missing from the views: once it is fixed, a new \
         snapshot is taken"
    )]
    UnusablePartition { changed: String },
    #[error(
        "the database's TimeZone is now {now}, and the views computing with a timestamptz \
         computed in {was}: they are built again in {now}"
    )]
    TimeZoneChanged { was: String, now: String },
    #[error(
        "the labels of enum {type_name} changed ({now}, where the views were planned with \
         {was}): the views that compare it for order are planned again, and computed again \
         from the state store"
    )]
    EnumLabelsChanged {
        type_name: String,
        was: String,
        now: String,
    },
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("engine task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What to do when the role may not create or change the publication: the
/// statement, for a role that may.
fn publication_hint(error: &sqlx::Error, statement: &str) -> String {
    let denied = error
        .as_database_error()
        .and_then(|database| database.code())
        .is_some_and(|code| code == "42501");
    if denied {
        format!(
            ". viewkeeper's role needs CREATE on the database and must own the views' tables; \
             or a role that may runs `{statement}`, and viewkeeper uses the publication as it is"
        )
    } else {
        String::new()
    }
}

/// A SQL error as its reader wants it: the server's message with its
/// SQLSTATE, detail and hint. sqlx adds " at line N", a line of
/// PostgreSQL's own C source that reads like a line of the user's files;
/// and its pool timeout says nothing of what to check.
pub fn sql_error_text(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(database) => {
            match database.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                Some(pg) => {
                    let mut text = format!("{} (SQLSTATE {})", pg.message(), pg.code());
                    if let Some(detail) = pg.detail() {
                        text.push_str(&format!("; {detail}"));
                    }
                    if let Some(hint) = pg.hint() {
                        text.push_str(&format!("; hint: {hint}"));
                    }
                    text
                }
                None => database.message().to_owned(),
            }
        }
        sqlx::Error::PoolTimedOut => "no connection could be opened in time: is the server \
                                      running, and reachable at the URL's host and port?"
            .to_owned(),
        other => other.to_string(),
    }
}

impl SourceError {
    /// Whether the error comes from the log's contents (a change that cannot
    /// be decoded or applied), so that reconnecting meets it again; not from
    /// the connection.
    pub fn is_in_the_log(&self) -> bool {
        matches!(
            self,
            SourceError::Decode { .. }
                | SourceError::Engine(_)
                | SourceError::UnusablePartition { .. }
        )
    }

    /// Whether the source's tables changed under the views, so that they
    /// are planned against the catalog again and a new snapshot is taken.
    pub fn needs_new_plan(&self) -> bool {
        matches!(
            self,
            SourceError::StoredColumnChanged { .. }
                | SourceError::TableLeftPublication { .. }
                | SourceError::UnloggedChange { .. }
        )
    }

    /// Whether the views are planned again and built again from the state
    /// store, without a new snapshot: what they compute changed, not the
    /// rows.
    pub fn needs_new_outputs(&self) -> bool {
        matches!(
            self,
            SourceError::TimeZoneChanged { .. } | SourceError::EnumLabelsChanged { .. }
        )
    }
}
