//! The search sink: drains a search view's outbox into its Tantivy index.
//!
//! One sink per search view (each index commits on its own). Entries are
//! applied in batches: a commit at most every [`COMMIT_INTERVAL`], with every
//! entry that arrived meanwhile, so a change is searchable well within a
//! second under steady load without a commit per change; a backlog (after a
//! snapshot, say) is committed in full batches back to back. The outbox sequence
//! rides in the commit's payload, so a crash between commits loses nothing and
//! replaying committed entries is a no-op. An index without a payload (new,
//! or recreated for a changed definition), or with one of another state
//! store, is first loaded with every stored output.

use std::sync::Arc;
use std::time::Duration;

use crate::status::SinkHealth;
use serde_json::{Map, Value};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{IndexCheckpoint, IndexOp, IndexWriterHandle, SearchError, SearchIndex};
use crate::engine::{EngineError, OutputReader};
use crate::sink::RewriteSignal;
use crate::state::{OutboxEntry, OutboxOp, OutboxRead, Store, StoreError};

/// The shortest time between two commits of one index.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// Outbox entries per commit at most.
const ENTRIES_PER_COMMIT: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum SearchSinkError {
    #[error(transparent)]
    Index(#[from] SearchError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outputs(#[from] EngineError),
    #[error("view {view}: stored document for {id} is not a JSON object")]
    Document { view: String, id: String },
    #[error("index task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub struct SearchSink {
    view: String,
    /// The outbox name: `search:{view}`.
    sink: String,
    store: Arc<Store>,
    /// The state store's id, recorded with each commit.
    store_id: String,
    /// Computes the documents of a full load.
    outputs: OutputReader,
    index: Arc<SearchIndex>,
    writer: Arc<IndexWriterHandle>,
    /// Held by a commit until its blocking task has let go of the writer.
    committing: Arc<tokio::sync::Mutex<()>>,
    rewrites: RewriteSignal,
}

impl SearchSink {
    pub fn new(
        view: String,
        sink: String,
        store_id: String,
        outputs: OutputReader,
        index: Arc<SearchIndex>,
        writer: IndexWriterHandle,
        rewrites: RewriteSignal,
    ) -> SearchSink {
        SearchSink {
            view,
            sink,
            store: Arc::clone(outputs.store()),
            store_id,
            outputs,
            index,
            writer: Arc::new(writer),
            committing: Arc::default(),
            rewrites,
        }
    }

    /// Drains the outbox until `shutdown` turns true, retrying failures.
    pub async fn run(self, wake: Arc<Notify>, health: SinkHealth, shutdown: watch::Receiver<bool>) {
        let label = self.sink.clone();
        crate::sink::retry_until_shutdown(
            &label,
            &health,
            shutdown,
            Duration::from_secs(10),
            || self.drain(&wake, &health),
        )
        .await;
        // A commit cut short by the shutdown goes on on a blocking thread,
        // holding the writer and with it the index's lock. The next
        // pipeline (after a reload or a rebuild from source) opens the
        // index as soon as this task ends, so it ends only after that
        // commit; dropping `self` then releases the lock.
        drop(self.committing.lock().await);
    }

    async fn drain(&self, wake: &Notify, health: &SinkHealth) -> Result<(), SearchSinkError> {
        let mut applied = match self.index.checkpoint()? {
            Some(checkpoint) if checkpoint.store_id == self.store_id => checkpoint.sequence,
            _ => self.load_all(wake).await?,
        };
        health.ok();
        let mut last_commit = Instant::now() - COMMIT_INTERVAL;
        let mut backlog = false;
        loop {
            if let Some(ticket) = self.rewrites.pending() {
                applied = self.load_all(wake).await?;
                self.rewrites.finished(ticket);
            }
            // Batching by time: entries arriving meanwhile join this commit.
            // A backlog (the last read was full) is drained without pausing.
            if !backlog {
                tokio::time::sleep_until(last_commit + COMMIT_INTERVAL).await;
            }
            let (store, sink, after) = (Arc::clone(&self.store), self.sink.clone(), applied);
            let read = tokio::task::spawn_blocking(move || {
                store.outbox_after(&sink, after, ENTRIES_PER_COMMIT)
            })
            .await??;
            let OutboxRead::Entries(entries) = read else {
                tracing::warn!(
                    view = %self.view,
                    "the search sink fell so far behind that its outbox entries were dropped: \
                     loading the index anew"
                );
                applied = self.load_all(wake).await?;
                continue;
            };
            backlog = entries.len() == ENTRIES_PER_COMMIT;
            let Some(&(last, _)) = entries.last() else {
                crate::sink::wait_for_wake(wake).await;
                continue;
            };
            let ops = entries
                .into_iter()
                .map(|(_, entry)| self.index_op(entry))
                .collect::<Result<Vec<_>, _>>()?;
            self.commit(ops, last).await?;
            last_commit = Instant::now();
            applied = last;
            health.ok();
            crate::sink::release_outbox::<SearchSinkError>(&self.store, &self.sink, last).await?;
        }
    }

    async fn commit(&self, ops: Vec<IndexOp>, sequence: u64) -> Result<(), SearchSinkError> {
        let count = ops.len();
        let writer = Arc::clone(&self.writer);
        let checkpoint = IndexCheckpoint {
            store_id: self.store_id.clone(),
            sequence,
        };
        let committing = Arc::clone(&self.committing).lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let applied = writer.apply(ops, checkpoint);
            drop(writer);
            drop(committing);
            applied
        })
        .await??;
        crate::telemetry::record_sink_applied("search", count);
        Ok(())
    }

    fn index_op(&self, entry: OutboxEntry) -> Result<IndexOp, SearchSinkError> {
        Ok(match entry.op {
            OutboxOp::Put { key, document } => IndexOp::Upsert {
                document: self.parse(&key, &document)?,
                id: key,
            },
            OutboxOp::Delete { key } => IndexOp::Delete { id: key },
        })
    }

    fn parse(&self, id: &str, document: &str) -> Result<Map<String, Value>, SearchSinkError> {
        match serde_json::from_str(document) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(SearchSinkError::Document {
                view: self.view.clone(),
                id: id.to_string(),
            }),
        }
    }

    /// Writes every output into the index and deletes every other
    /// document, in one commit (searches see the old index until it, the
    /// new one after), and returns the outbox sequence that covers. For a
    /// new index, and for a rebuild on demand. While a snapshot is being
    /// taken, waits for its end first.
    async fn load_all(&self, wake: &Notify) -> Result<u64, SearchSinkError> {
        let (mut ops, sequence) = loop {
            let (mut chunks, reader) = crate::sink::stream_outputs(
                &self.outputs,
                &self.sink,
                vec![self.view.clone()],
                ENTRIES_PER_COMMIT,
            );
            let mut ops = Vec::new();
            while let Some(chunk) = chunks.recv().await {
                for (_, output) in chunk {
                    let document = self.parse(&output.key, &output.document)?;
                    ops.push(IndexOp::Upsert {
                        id: output.key,
                        document,
                    });
                }
            }
            match reader.await?? {
                Some(sequence) => break (ops, sequence),
                None => crate::sink::wait_for_wake(wake).await,
            }
        };
        let documents = ops.len();
        let index = Arc::clone(&self.index);
        let indexed = tokio::task::spawn_blocking(move || index.all_documents()).await??;
        let stored: std::collections::HashSet<&str> = ops
            .iter()
            .filter_map(|op| match op {
                IndexOp::Upsert { id, .. } => Some(id.as_str()),
                IndexOp::Delete { .. } => None,
            })
            .collect();
        let extra: Vec<IndexOp> = indexed
            .into_iter()
            .filter(|hit| !stored.contains(hit.id.as_str()))
            .map(|hit| IndexOp::Delete { id: hit.id })
            .collect();
        ops.extend(extra);
        self.commit(ops, sequence).await?;
        crate::sink::release_outbox::<SearchSinkError>(&self.store, &self.sink, sequence).await?;
        tracing::info!(view = %self.view, documents, sequence, "search index loaded from the state store");
        Ok(sequence)
    }
}
