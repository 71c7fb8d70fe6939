//! The search sink's index side: one Tantivy index per search view, which
//! viewkeeper writes and serves.
//!
//! - `schema`: a view's fields as a Tantivy schema, plus the `_id` field and
//!   the `stem_<language>` analyzers;
//! - `folding`: the `folded` analyzer, case and accents folded in any script;
//! - `index`: [`SearchIndex`], the index on disk: open, check the schema,
//!   read the committed checkpoint;
//! - `writer`: [`IndexWriterHandle`], the single writer on its own thread:
//!   batches of [`IndexOp`] committed with their [`IndexCheckpoint`] (state
//!   store id and outbox sequence) as the payload;
//! - `document`, `temporal`: viewkeeper's JSON values to Tantivy's and back;
//! - `query`: [`SearchIndex::search`] with Tantivy's query syntax;
//! - `query_text`: a search box's text made fit for the grammar (apostrophes
//!   in words), and `word~1` refused;
//! - `facets`: the counts of fast fields' values over a query's matches;
//! - `prefix`: `caf*` and `"cafe de fl"*`, rewritten into queries Tantivy builds;
//! - `sort`: `sort=`, the hits by up to three fast fields' values;
//! - `ceiling`: [`bare_indexing_rate`], the benchmark's yardstick;
//! - `sink`: [`SearchSink`], the outbox drain loop that feeds the writer.
//!
//! The outbox sequence rides in the commit payload, so the data and the
//! position become durable together: after a crash the sink resumes after
//! [`SearchIndex::checkpoint`], and an upsert or delete applied twice
//! changes nothing (an upsert deletes by `_id`, then adds). The payload
//! names the state store too: an index written from another one is loaded
//! anew.

mod ceiling;
mod document;
mod error;
mod facets;
mod folding;
mod index;
mod prefix;
mod query;
mod query_text;
mod schema;
mod sink;
mod sort;
mod temporal;
mod writer;

pub use ceiling::bare_indexing_rate;
pub use document::check_fits;
pub use error::SearchError;
pub use facets::{DEFAULT_FACET_LIMIT, FacetCounts, FacetRequest, MAX_FACET_LIMIT};
pub use index::{IndexCheckpoint, SearchIndex};
pub use query::{Hit, PageRequest, SearchPage};
pub use schema::{ID_FIELD, IndexSchema, index_schema};
pub use sink::{COMMIT_INTERVAL, SearchSink};
pub use sort::{MAX_SORT_KEYS, SearchSort, SortKey};
pub use writer::{IndexOp, IndexWriterHandle};

#[cfg(test)]
mod test_views;
#[cfg(test)]
mod tests;
