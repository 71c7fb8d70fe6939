//! The search sink: drains a search view's outbox into its Tantivy index.
//!
//! One sink per search view (each index commits on its own). Entries are fed
//! to the index's writer as they arrive, and committed at most every
//! [`COMMIT_INTERVAL`] (a backlog, after a snapshot say, in full batches back
//! to back): Tantivy indexes them between commits, so a change is searchable
//! well within a second under steady load without a commit per change. The outbox sequence
//! rides in the commit's payload, so a crash between commits loses nothing and
//! replaying committed entries is a no-op. An index without a payload (new,
//! or recreated for a changed definition), or with one of another state
//! store, is first loaded with every stored output.

use std::collections::HashSet;
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
/// The shortest time between two feeds of the writer while a commit waits:
/// fed at every wake (each engine batch, 30-40 a second at 5,000 changes/s),
/// Tantivy's indexing and the sink's reads competed with the engine all the
/// time, and the cache views' p99 latency rose by a quarter (bench/README.md,
/// sixteenth round).
const FEED_INTERVAL: Duration = Duration::from_millis(50);
/// Outbox entries per commit at most.
const ENTRIES_PER_COMMIT: usize = 20_000;

/// What the writer was fed since the last commit: entries up to outbox
/// sequence `sequence`, `ops` of them.
#[derive(Clone, Copy)]
struct Fed {
    sequence: u64,
    ops: usize,
}

impl Fed {
    /// Nothing fed since a commit at `sequence`.
    fn at(sequence: u64) -> Fed {
        Fed { sequence, ops: 0 }
    }
}

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
    /// Held by a call on the writer until its blocking task has let go of
    /// the writer.
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
        // A writer call (a commit, say) cut short by the shutdown goes on on
        // a blocking thread, holding the writer and with it the index's
        // lock. The next pipeline (after a reload or a rebuild from source)
        // opens the index as soon as this task ends, so it ends only after
        // that call; dropping `self` then releases the lock.
        drop(self.committing.lock().await);
    }

    async fn drain(&self, wake: &Notify, health: &SinkHealth) -> Result<(), SearchSinkError> {
        // A run of this loop that failed may have fed ops it never committed;
        // this one feeds again from the last commit.
        self.on_writer(|writer| writer.discard()).await?;
        let committed = match self.index.checkpoint()? {
            Some(checkpoint) if checkpoint.store_id == self.store_id => checkpoint.sequence,
            // A new index has nothing to keep searchable while a first
            // snapshot fills it; another store's waits for this one's.
            checkpoint => self.load_all(wake, checkpoint.is_none()).await?,
        };
        // After a crash the store may bring back entries committed before.
        crate::sink::release_outbox::<SearchSinkError>(&self.store, &self.sink, committed).await?;
        health.ok();
        // Entries are fed to the writer as they arrive, and committed at
        // most every `COMMIT_INTERVAL`: Tantivy indexes them meanwhile, so a
        // commit is left with little to do.
        let mut fed = Fed::at(committed);
        let mut last_commit = Instant::now() - COMMIT_INTERVAL;
        let mut next_feed = Instant::now();
        loop {
            if let Some(ticket) = self.rewrites.pending() {
                fed = Fed::at(self.load_all(wake, false).await?);
                self.rewrites.finished(ticket);
            }
            let commit_due = last_commit + COMMIT_INTERVAL;
            if fed.ops > 0 && (Instant::now() >= commit_due || fed.ops >= ENTRIES_PER_COMMIT) {
                self.commit(fed.sequence, fed.ops).await?;
                fed = Fed::at(fed.sequence);
                last_commit = Instant::now();
                health.ok();
                crate::sink::release_outbox::<SearchSinkError>(
                    &self.store,
                    &self.sink,
                    fed.sequence,
                )
                .await?;
                continue;
            }
            if fed.ops > 0 && Instant::now() < next_feed {
                tokio::time::sleep_until(next_feed.min(commit_due)).await;
                continue;
            }
            let (store, sink, after) = (Arc::clone(&self.store), self.sink.clone(), fed.sequence);
            let limit = ENTRIES_PER_COMMIT - fed.ops;
            let read = tokio::task::spawn_blocking(move || store.outbox_after(&sink, after, limit))
                .await??;
            let OutboxRead::Entries(entries) = read else {
                tracing::warn!(
                    view = %self.view,
                    "outbox entries the search sink had not read were dropped (it fell behind \
                     the outboxes' memory budget, they could not be recomputed after a \
                     restart, or the index went back to an older commit): loading the index \
                     anew"
                );
                fed = Fed::at(self.load_all(wake, false).await?);
                continue;
            };
            let Some(&(last, _)) = entries.last() else {
                if fed.ops > 0 {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep_until(commit_due) => {}
                    }
                } else {
                    crate::sink::wait_for_wake(wake).await;
                }
                continue;
            };
            let count = entries.len();
            let ops = self.index_ops(entries)?;
            self.on_writer(move |writer| writer.feed(ops)).await?;
            // A backlog (the read was full) is fed without pausing.
            next_feed = if count == limit {
                Instant::now()
            } else {
                Instant::now() + FEED_INTERVAL
            };
            fed = Fed {
                sequence: last,
                ops: fed.ops + count,
            };
        }
    }

    /// Commits what was fed, up to outbox sequence `sequence` (`ops` entries).
    async fn commit(&self, sequence: u64, ops: usize) -> Result<(), SearchSinkError> {
        let checkpoint = self.checkpoint(sequence);
        self.on_writer(move |writer| writer.commit(checkpoint))
            .await?;
        crate::telemetry::record_sink_applied(&self.sink, ops);
        Ok(())
    }

    /// A commit's payload: this sink's state store, up to `sequence`.
    fn checkpoint(&self, sequence: u64) -> IndexCheckpoint {
        IndexCheckpoint {
            store_id: self.store_id.clone(),
            sequence,
        }
    }

    /// Runs `call` on a blocking thread, holding `committing` until that
    /// thread has let go of the writer.
    async fn on_writer<F>(&self, call: F) -> Result<(), SearchSinkError>
    where
        F: FnOnce(&IndexWriterHandle) -> Result<(), SearchError> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let committing = Arc::clone(&self.committing).lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let done = call(&writer);
            drop(writer);
            drop(committing);
            done
        })
        .await??;
        Ok(())
    }

    /// The index ops of a read of the outbox, in order, each id's last.
    fn index_ops(&self, entries: Vec<(u64, OutboxEntry)>) -> Result<Vec<IndexOp>, SearchSinkError> {
        latest_per_key(entries)
            .map(|entry| self.index_op(entry))
            .collect()
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
    /// new index, and for a rebuild on demand. Until the state store holds
    /// a completed snapshot (a new store's first one included), waits,
    /// leaving the index as it is, unless the index is new
    /// ([`crate::sink::stream_outputs`]).
    async fn load_all(&self, wake: &Notify, index_is_new: bool) -> Result<u64, SearchSinkError> {
        let mut told = false;
        let (mut ops, sequence) = loop {
            let (mut chunks, reader) = crate::sink::stream_outputs(
                &self.outputs,
                &self.sink,
                vec![self.view.clone()],
                index_is_new,
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
                None => crate::sink::wait_for_snapshot(&self.sink, &mut told, wake).await,
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
        let count = ops.len();
        let checkpoint = self.checkpoint(sequence);
        // What was fed and not committed would survive the load where the
        // load's documents do not replace it: a document deleted since.
        self.on_writer(move |writer| {
            writer.discard()?;
            writer.apply(ops, checkpoint)
        })
        .await?;
        crate::telemetry::record_sink_applied(&self.sink, count);
        crate::sink::release_outbox::<SearchSinkError>(&self.store, &self.sink, sequence).await?;
        tracing::info!(view = %self.view, documents, sequence, "search index loaded from the state store");
        Ok(sequence)
    }
}

/// `entries` in order, without those a later entry on the same key
/// replaces: only the last op on an id decides what the commit holds, and
/// the earlier ones would only cost Tantivy work (a category renamed twice
/// between two commits re-indexes its products once).
fn latest_per_key(entries: Vec<(u64, OutboxEntry)>) -> impl Iterator<Item = OutboxEntry> {
    let mut seen = HashSet::with_capacity(entries.len());
    let mut latest = vec![false; entries.len()];
    for (at, (_, entry)) in entries.iter().enumerate().rev() {
        latest[at] = seen.insert(entry.op.key());
    }
    entries
        .into_iter()
        .zip(latest)
        .filter(|(_, latest)| *latest)
        .map(|((_, entry), _)| entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sequence: u64, op: OutboxOp) -> (u64, OutboxEntry) {
        let view = "product_search".to_owned();
        (sequence, OutboxEntry { view, op })
    }

    fn put(key: &str, document: &str) -> OutboxOp {
        OutboxOp::Put {
            key: key.to_owned(),
            document: document.to_owned(),
        }
    }

    fn delete(key: &str) -> OutboxOp {
        OutboxOp::Delete {
            key: key.to_owned(),
        }
    }

    #[test]
    fn only_the_last_op_on_each_key_is_kept_in_order() {
        let entries = vec![
            entry(1, put("a", "1")),
            entry(2, put("b", "1")),
            entry(3, put("a", "2")),
            entry(4, delete("b")),
            entry(5, put("c", "1")),
            entry(6, delete("a")),
            entry(7, put("a", "3")),
        ];
        let ops: Vec<OutboxOp> = latest_per_key(entries).map(|entry| entry.op).collect();
        assert_eq!(ops, [delete("b"), put("c", "1"), put("a", "3")]);
    }
}
