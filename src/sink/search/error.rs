//! Everything that can go wrong with a search index, and whether retrying helps.

use std::path::PathBuf;

use tantivy::TantivyError;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Tantivy failed on a healthy-looking index: I/O, a full disk, a writer
    /// thread that died. Retrying with backoff may succeed.
    #[error("search index {}: {source}", dir.display())]
    Index {
        dir: PathBuf,
        #[source]
        source: TantivyError,
    },

    #[error("search index {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "search index {} is in use by another viewkeeper process (it holds the index's writer \
         lock); stop that process, or give this one its own data directory",
        dir.display()
    )]
    Locked { dir: PathBuf },

    #[error(
        "search index {} was built for another definition of view `{view}` ({differences}); \
         it must be rebuilt: rebuild the view, or stop viewkeeper and remove the directory",
        dir.display()
    )]
    SchemaChanged {
        view: String,
        dir: PathBuf,
        /// What differs, field by field, for the operator.
        differences: String,
    },

    /// `SearchIndex::open` of a directory that holds no index.
    #[error("no search index for view `{view}` in {}", dir.display())]
    Missing { view: String, dir: PathBuf },

    /// The view's fields cannot form a Tantivy schema. `viewkeeper check`
    /// should have refused the view file already.
    #[error("search field `{field}`: {reason}")]
    InvalidField { field: String, reason: String },

    /// A document value does not fit its field's type.
    #[error("search document {id:?}, field `{field}`: {reason}")]
    Document {
        id: String,
        field: String,
        reason: String,
    },

    /// The commit payload is not a checkpoint (a state store id and an
    /// outbox sequence): the directory holds an index viewkeeper did not write.
    #[error(
        "search index {} has commit payload {payload:?}, not a viewkeeper checkpoint",
        dir.display()
    )]
    Payload { dir: PathBuf, payload: String },

    /// A malformed query, with the query parser's message (HTTP 400).
    #[error("malformed query: {0}")]
    Query(String),

    /// A sort the view cannot take (HTTP 400): the query may be fine.
    #[error("{0}")]
    Sort(String),

    /// Facets the view cannot count (HTTP 400): the query may be fine.
    #[error("{0}")]
    Facet(String),

    /// The writer thread is gone (it panicked, or the handle was closed):
    /// drop the handle and take a new writer.
    #[error("the writer thread of search index {} has stopped", dir.display())]
    WriterStopped { dir: PathBuf },
}

impl SearchError {
    /// Whether the same call may succeed later without anyone changing
    /// anything: true for I/O and Tantivy failures, false for errors that need
    /// an operator (lock, schema, foreign payload) or a fixed input
    /// (a document or query that does not fit).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            SearchError::Index { .. } | SearchError::Io { .. } | SearchError::WriterStopped { .. }
        )
    }
}
