//! One search view's index on disk: opening it, checking its schema, reading
//! its committed position, and handing out its single writer.
//!
//! The directory is a plain Tantivy index (`meta.json`, segment files, lock
//! files), so Tantivy-based tools of the same version can open it read-only;
//! they must register the `stem_<language>` analyzers to parse queries alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tantivy::directory::MmapDirectory;
use tantivy::directory::error::LockError;
use tantivy::indexer::IndexWriterOptions;
use tantivy::schema::{FieldEntry, Schema};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyError};

use super::SearchError;
use super::schema::{IndexSchema, bind, index_schema, register_tokenizers};
use super::writer::IndexWriterHandle;
use crate::view::model::SearchField;

/// A search view's index: searched through its reader, written through the
/// one writer it hands out. Keep one per view and share it (`Arc`): the
/// writer reloads this instance's reader after each commit, so its searches
/// see every commit as soon as `apply` returns.
pub struct SearchIndex {
    /// The view's name, for messages.
    pub(super) view: String,
    pub(super) dir: PathBuf,
    pub(super) index: Index,
    pub(super) schema: IndexSchema,
    /// Reloaded by the writer after each commit (`ReloadPolicy::Manual`), so
    /// a search that follows `apply` sees what it wrote.
    pub(super) reader: IndexReader,
}

impl SearchIndex {
    /// Opens the view's index in `dir`, creating the directory and an empty
    /// index if there is none. An index built from another definition of the
    /// view is refused with [`SearchError::SchemaChanged`].
    pub fn open_or_create(
        dir: &Path,
        view: &str,
        fields: &[SearchField],
    ) -> Result<SearchIndex, SearchError> {
        std::fs::create_dir_all(dir).map_err(|source| SearchError::Io {
            dir: dir.to_owned(),
            source,
        })?;
        let expected = index_schema(fields)?;
        let index = if index_exists(dir)? {
            open_matching(dir, view, &expected)?
        } else {
            tracing::info!(view, dir = %dir.display(), "creating search index");
            Index::create_in_dir(dir, expected.schema.clone()).map_err(tantivy_error(dir))?
        };
        SearchIndex::ready(dir, view, fields, index)
    }

    /// Opens an existing index, creating nothing: for `viewkeeper search`,
    /// which may run beside the service (searching needs no writer lock).
    pub fn open(
        dir: &Path,
        view: &str,
        fields: &[SearchField],
    ) -> Result<SearchIndex, SearchError> {
        if !dir.is_dir() || !index_exists(dir)? {
            return Err(SearchError::Missing {
                view: view.to_owned(),
                dir: dir.to_owned(),
            });
        }
        let index = open_matching(dir, view, &index_schema(fields)?)?;
        SearchIndex::ready(dir, view, fields, index)
    }

    fn ready(
        dir: &Path,
        view: &str,
        fields: &[SearchField],
        index: Index,
    ) -> Result<SearchIndex, SearchError> {
        register_tokenizers(&index, fields);
        // Bind to the schema on disk: its field ids are what documents use.
        let schema = bind(index.schema(), fields)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_error(dir))?;
        Ok(SearchIndex {
            view: view.to_owned(),
            dir: dir.to_owned(),
            index,
            schema,
            reader,
        })
    }

    pub fn view(&self) -> &str {
        &self.view
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the index's writer lock and starts the writer thread.
    ///
    /// `memory_budget_bytes` is shared by the `threads` indexing threads
    /// (at least 15 MB each, Tantivy's minimum); merges also get `threads`
    /// threads. Another writer on the directory, in this process or another,
    /// gives [`SearchError::Locked`]. The lock is an advisory file lock: it
    /// goes with the process, so a crashed process does not block a restart.
    pub fn writer(
        &self,
        memory_budget_bytes: usize,
        threads: usize,
    ) -> Result<IndexWriterHandle, SearchError> {
        let writer = self.tantivy_writer(memory_budget_bytes, threads)?;
        IndexWriterHandle::start(writer, self.schema.clone(), self.reader.clone(), &self.dir)
    }

    pub(super) fn tantivy_writer(
        &self,
        memory_budget_bytes: usize,
        threads: usize,
    ) -> Result<IndexWriter, SearchError> {
        let threads = threads.max(1);
        let options = IndexWriterOptions::builder()
            .memory_budget_per_thread(memory_budget_bytes / threads)
            .num_worker_threads(threads)
            .num_merge_threads(threads)
            .build();
        self.index
            .writer_with_options(options)
            .map_err(|error| match error {
                TantivyError::LockFailure(LockError::LockBusy, _) => SearchError::Locked {
                    dir: self.dir.clone(),
                },
                other => tantivy_error(&self.dir)(other),
            })
    }

    /// The checkpoint of the last commit, from its payload; `None` for an
    /// index never committed to by viewkeeper.
    pub fn checkpoint(&self) -> Result<Option<IndexCheckpoint>, SearchError> {
        let metas = self.index.load_metas().map_err(tantivy_error(&self.dir))?;
        let Some(payload) = metas.payload else {
            return Ok(None);
        };
        match IndexCheckpoint::from_payload(&payload) {
            Some(checkpoint) => Ok(Some(checkpoint)),
            None => Err(SearchError::Payload {
                dir: self.dir.clone(),
                payload,
            }),
        }
    }

    /// Documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Makes commits by another process visible. This process's writer
    /// reloads after each of its commits, so only a reader in another process
    /// (a long-running `viewkeeper search`) needs it.
    pub fn reload(&self) -> Result<(), SearchError> {
        self.reader.reload().map_err(tantivy_error(&self.dir))
    }
}

/// What each commit of viewkeeper's records in its payload: the state
/// store whose outbox the index follows, and the outbox sequence it covers.
/// An index whose checkpoint names another store (the state store was
/// replaced, or started anew in a new format) is loaded again from this one:
/// its sequence numbers mean nothing here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCheckpoint {
    pub store_id: String,
    pub sequence: u64,
}

impl IndexCheckpoint {
    pub(super) fn to_payload(&self) -> String {
        format!("{}:{}", self.store_id, self.sequence)
    }

    /// Versions before the store id wrote the sequence alone: such an
    /// index names no store (an empty id), so it is loaded again.
    fn from_payload(payload: &str) -> Option<IndexCheckpoint> {
        let (store_id, sequence) = payload.rsplit_once(':').unwrap_or(("", payload));
        Some(IndexCheckpoint {
            store_id: store_id.to_owned(),
            sequence: sequence.parse().ok()?,
        })
    }
}

fn index_exists(dir: &Path) -> Result<bool, SearchError> {
    let directory = MmapDirectory::open(dir).map_err(|error| SearchError::Index {
        dir: dir.to_owned(),
        source: error.into(),
    })?;
    Index::exists(&directory).map_err(|error| SearchError::Index {
        dir: dir.to_owned(),
        source: error.into(),
    })
}

/// Opens the index in `dir` and checks it has the expected schema.
fn open_matching(dir: &Path, view: &str, expected: &IndexSchema) -> Result<Index, SearchError> {
    let index = Index::open_in_dir(dir).map_err(tantivy_error(dir))?;
    let differences = schema_differences(&index.schema(), &expected.schema);
    if differences.is_empty() {
        return Ok(index);
    }
    Err(SearchError::SchemaChanged {
        view: view.to_owned(),
        dir: dir.to_owned(),
        differences: differences.join("; "),
    })
}

/// Field by field, by name: the order of fields does not matter, since
/// documents are bound to the schema on disk.
fn schema_differences(on_disk: &Schema, expected: &Schema) -> Vec<String> {
    let by_name = |schema: &Schema| -> BTreeMap<String, FieldEntry> {
        schema
            .fields()
            .map(|(_, entry)| (entry.name().to_owned(), entry.clone()))
            .collect()
    };
    let (on_disk, expected) = (by_name(on_disk), by_name(expected));
    let mut differences = Vec::new();
    for (name, entry) in &expected {
        match on_disk.get(name) {
            None => differences.push(format!("field `{name}` is new")),
            Some(existing) if existing != entry => differences.push(format!(
                "field `{name}` was {}, is now {}",
                describe(existing),
                describe(entry)
            )),
            Some(_) => {}
        }
    }
    for name in on_disk.keys().filter(|name| !expected.contains_key(*name)) {
        differences.push(format!("field `{name}` was removed"));
    }
    differences
}

/// A field's type and options in Tantivy's own JSON, as in `meta.json`.
fn describe(entry: &FieldEntry) -> String {
    serde_json::to_value(entry)
        .map(|mut json| {
            json.as_object_mut().map(|object| object.remove("name"));
            json.to_string()
        })
        .unwrap_or_else(|_| format!("{entry:?}"))
}

pub(super) fn tantivy_error(dir: &Path) -> impl Fn(TantivyError) -> SearchError + '_ {
    move |source| SearchError::Index {
        dir: dir.to_owned(),
        source,
    }
}
