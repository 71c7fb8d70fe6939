//! The benchmark's yardstick: how fast plain Tantivy indexes the same
//! documents, with nothing of viewkeeper around it.

use std::path::Path;
use std::time::Instant;

use serde_json::{Map, Value};
use tantivy::TantivyDocument;

use super::SearchError;
use super::document::to_tantivy;
use super::index::{SearchIndex, tantivy_error};
use crate::view::model::SearchField;

/// Indexes `documents` into a new index in `dir` (which must hold none) with
/// a bare loop: same schema and writer settings as viewkeeper's, `add_document`
/// only (no deletes), one commit at the end. Returns documents per second.
///
/// JSON conversion happens before the clock starts: the figure is Tantivy's
/// own ceiling, which viewkeeper's rate (conversion, deletes, outbox, batched
/// commits) can approach but not pass.
pub fn bare_indexing_rate(
    dir: &Path,
    fields: &[SearchField],
    documents: &[(String, Map<String, Value>)],
    memory_budget_bytes: usize,
    threads: usize,
) -> Result<f64, SearchError> {
    let index = SearchIndex::open_or_create(dir, "bare-indexing-loop", fields)?;
    if index.num_docs() > 0 {
        return Err(SearchError::Io {
            dir: dir.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the bare indexing loop needs an empty index",
            ),
        });
    }
    let converted = documents
        .iter()
        .map(|(id, document)| to_tantivy(&index.schema, id, document))
        .collect::<Result<Vec<TantivyDocument>, _>>()?;
    let mut writer = index.tantivy_writer(memory_budget_bytes, threads)?;
    let started = Instant::now();
    for document in converted {
        writer.add_document(document).map_err(tantivy_error(dir))?;
    }
    writer.commit().map_err(tantivy_error(dir))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(documents.len() as f64 / seconds.max(f64::EPSILON))
}
