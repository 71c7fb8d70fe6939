//! The index's single writer, on a thread of its own.
//!
//! Tantivy's `IndexWriter` blocks (a full indexing queue, a commit's fsyncs),
//! so it lives on a dedicated thread and [`IndexWriterHandle::apply`] sends it
//! batches and waits for the reply. Call `apply` from blocking context
//! (`tokio::task::spawn_blocking`), never from an async task directly.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::{Map, Value};
use tantivy::{IndexReader, IndexWriter, TantivyDocument, Term};

use super::SearchError;
use super::document::to_tantivy;
use super::index::{IndexCheckpoint, tantivy_error};
use super::schema::IndexSchema;

/// One outbox entry for a search view.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexOp {
    /// Replaces the document with this id, or adds it.
    Upsert {
        id: String,
        document: Map<String, Value>,
    },
    /// Removes the document with this id, if any.
    Delete { id: String },
}

/// An op ready for the writer: the id term to delete, then the document to
/// add (for an upsert).
struct Change {
    id: Term,
    document: Option<TantivyDocument>,
}

type Reply = mpsc::SyncSender<Result<(), SearchError>>;

enum Command {
    Apply {
        changes: Vec<Change>,
        checkpoint: IndexCheckpoint,
        reply: Reply,
    },
    /// Waits for running merges, then ends the thread.
    Close { reply: Reply },
}

/// Owns the writer thread; dropping it ends the thread (without waiting for
/// merges, which the next writer resumes) and releases the index lock.
pub struct IndexWriterHandle {
    /// `None` once closing, so the thread sees the channel end.
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    /// To convert documents on the caller's thread, off the writer's.
    schema: IndexSchema,
    dir: PathBuf,
}

impl IndexWriterHandle {
    pub(super) fn start(
        writer: IndexWriter,
        schema: IndexSchema,
        reader: IndexReader,
        dir: &Path,
    ) -> Result<IndexWriterHandle, SearchError> {
        let (commands, receiver) = mpsc::channel();
        let thread_dir = dir.to_owned();
        let thread = std::thread::Builder::new()
            .name("search-writer".to_owned())
            .spawn(move || serve(writer, reader, &thread_dir, receiver))
            .map_err(|source| SearchError::Io {
                dir: dir.to_owned(),
                source,
            })?;
        Ok(IndexWriterHandle {
            commands: Some(commands),
            thread: Some(thread),
            schema,
            dir: dir.to_owned(),
        })
    }

    /// Applies `ops` in order and commits them with `checkpoint` as the commit
    /// payload, in one Tantivy commit: after `Ok`, the ops and the checkpoint
    /// are durable together and visible to searches. After `Err`, the batch
    /// is committed whole or not at all (only a failed reader reload follows
    /// a commit): [`SearchIndex::checkpoint`] tells which, and
    /// applying it again is harmless. A document that does not fit the schema
    /// fails the whole batch before any op reaches the writer. Blocks for the
    /// commit (tens of milliseconds): batch ops rather than commit each.
    ///
    /// [`SearchIndex::checkpoint`]: super::SearchIndex::checkpoint
    pub fn apply(&self, ops: Vec<IndexOp>, checkpoint: IndexCheckpoint) -> Result<(), SearchError> {
        let changes = ops
            .into_iter()
            .map(|op| self.prepare(op))
            .collect::<Result<Vec<_>, _>>()?;
        self.request(|reply| Command::Apply {
            changes,
            checkpoint,
            reply,
        })
    }

    /// Waits for running merges to finish, then stops the writer thread and
    /// releases the lock: for a clean shutdown.
    pub fn close(mut self) -> Result<(), SearchError> {
        let result = self.request(|reply| Command::Close { reply });
        self.stop_thread();
        result
    }

    fn prepare(&self, op: IndexOp) -> Result<Change, SearchError> {
        let (id, document) = match op {
            IndexOp::Upsert { id, document } => {
                let converted = to_tantivy(&self.schema, &id, &document)?;
                (id, Some(converted))
            }
            IndexOp::Delete { id } => (id, None),
        };
        Ok(Change {
            id: Term::from_field_text(self.schema.id, &id),
            document,
        })
    }

    fn request(&self, command: impl FnOnce(Reply) -> Command) -> Result<(), SearchError> {
        let stopped = || SearchError::WriterStopped {
            dir: self.dir.clone(),
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let commands = self.commands.as_ref().ok_or_else(stopped)?;
        commands.send(command(reply)).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    fn stop_thread(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "search writer thread panicked");
        }
    }
}

impl Drop for IndexWriterHandle {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The writer thread: one command at a time, until the handle goes away.
fn serve(
    mut writer: IndexWriter,
    reader: IndexReader,
    dir: &Path,
    commands: mpsc::Receiver<Command>,
) {
    for command in commands {
        match command {
            Command::Apply {
                changes,
                checkpoint,
                reply,
            } => {
                let _ = reply.send(commit_batch(&mut writer, &reader, changes, checkpoint, dir));
            }
            Command::Close { reply } => {
                let closed = writer.wait_merging_threads().map_err(tantivy_error(dir));
                let _ = reply.send(closed);
                return;
            }
        }
    }
}

fn commit_batch(
    writer: &mut IndexWriter,
    reader: &IndexReader,
    changes: Vec<Change>,
    checkpoint: IndexCheckpoint,
    dir: &Path,
) -> Result<(), SearchError> {
    let started = Instant::now();
    let count = changes.len();
    if let Err(error) = write_and_commit(writer, changes, &checkpoint) {
        // Drop what this batch queued, so that no later commit makes half of
        // it durable.
        if let Err(rollback) = writer.rollback() {
            tracing::error!(dir = %dir.display(), %rollback, "search writer rollback failed");
        }
        return Err(tantivy_error(dir)(error));
    }
    reader.reload().map_err(tantivy_error(dir))?;
    tracing::debug!(
        dir = %dir.display(),
        ops = count,
        sequence = checkpoint.sequence,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "search index committed"
    );
    Ok(())
}

/// Deletes come before adds for each id, so an upsert replaces; each op's
/// delete sees the adds of earlier ops in the same batch.
fn write_and_commit(
    writer: &mut IndexWriter,
    changes: Vec<Change>,
    checkpoint: &IndexCheckpoint,
) -> tantivy::Result<()> {
    for change in changes {
        writer.delete_term(change.id);
        if let Some(document) = change.document {
            writer.add_document(document)?;
        }
    }
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&checkpoint.to_payload());
    prepared.commit()?;
    Ok(())
}
