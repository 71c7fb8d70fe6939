//! The index's single writer, on a thread of its own.
//!
//! Tantivy's `IndexWriter` blocks (a full indexing queue, a commit's fsyncs),
//! so it lives on a dedicated thread and the handle's calls send it commands
//! and wait for the reply. Call them from blocking context
//! (`tokio::task::spawn_blocking`), never from an async task directly.
//!
//! Ops can be fed ahead of their commit ([`IndexWriterHandle::feed`]):
//! Tantivy indexes them on its own thread as they come, so a commit has
//! only the last ones and the segment's serialization left to do, instead
//! of every document since the last commit.

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
    /// Queues the changes; they become durable and visible with the next
    /// commit.
    Feed { changes: Vec<Change>, reply: Reply },
    /// Commits what was fed, with the checkpoint as the payload.
    Commit {
        checkpoint: IndexCheckpoint,
        reply: Reply,
    },
    /// Drops what was fed since the last commit.
    Discard { reply: Reply },
    /// Feed and commit in one.
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
        let changes = self.prepare_all(ops)?;
        self.request(|reply| Command::Apply {
            changes,
            checkpoint,
            reply,
        })
    }

    /// Queues `ops` in order for the next [`commit`](Self::commit), which
    /// makes them durable and visible together with everything fed before
    /// it. A document that does not fit the schema fails all of `ops`
    /// before any reaches the writer, and leaves what was fed before
    /// queued: call [`discard`](Self::discard) before feeding again from the
    /// last commit's checkpoint. A failure inside the writer drops
    /// everything fed since the last commit.
    pub fn feed(&self, ops: Vec<IndexOp>) -> Result<(), SearchError> {
        let changes = self.prepare_all(ops)?;
        self.request(|reply| Command::Feed { changes, reply })
    }

    /// Commits everything fed since the last commit, with `checkpoint` as
    /// the payload, as [`apply`](Self::apply) does.
    pub fn commit(&self, checkpoint: IndexCheckpoint) -> Result<(), SearchError> {
        self.request(|reply| Command::Commit { checkpoint, reply })
    }

    /// Drops everything fed since the last commit (nothing to do when
    /// nothing was).
    pub fn discard(&self) -> Result<(), SearchError> {
        self.request(|reply| Command::Discard { reply })
    }

    /// Waits for running merges to finish, then stops the writer thread and
    /// releases the lock: for a clean shutdown.
    pub fn close(mut self) -> Result<(), SearchError> {
        let result = self.request(|reply| Command::Close { reply });
        self.stop_thread();
        result
    }

    fn prepare_all(&self, ops: Vec<IndexOp>) -> Result<Vec<Change>, SearchError> {
        ops.into_iter().map(|op| self.prepare(op)).collect()
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
fn serve(writer: IndexWriter, reader: IndexReader, dir: &Path, commands: mpsc::Receiver<Command>) {
    let mut thread = WriterThread {
        writer,
        reader,
        dir,
        fed: 0,
    };
    for command in commands {
        match command {
            Command::Feed { changes, reply } => {
                let _ = reply.send(thread.feed(changes));
            }
            Command::Commit { checkpoint, reply } => {
                let _ = reply.send(thread.commit(checkpoint));
            }
            Command::Discard { reply } => {
                let _ = reply.send(thread.discard());
            }
            Command::Apply {
                changes,
                checkpoint,
                reply,
            } => {
                let applied = thread
                    .feed(changes)
                    .and_then(|()| thread.commit(checkpoint));
                let _ = reply.send(applied);
            }
            Command::Close { reply } => {
                let closed = thread
                    .writer
                    .wait_merging_threads()
                    .map_err(tantivy_error(dir));
                let _ = reply.send(closed);
                return;
            }
        }
    }
}

struct WriterThread<'d> {
    writer: IndexWriter,
    reader: IndexReader,
    dir: &'d Path,
    /// Ops queued since the last commit or rollback.
    fed: usize,
}

impl WriterThread<'_> {
    /// Deletes come before adds for each id, so an upsert replaces; each
    /// op's delete sees the adds of earlier ops, fed in this call or
    /// before.
    fn feed(&mut self, changes: Vec<Change>) -> Result<(), SearchError> {
        self.fed += changes.len();
        for change in changes {
            self.writer.delete_term(change.id);
            if let Some(document) = change.document
                && let Err(error) = self.writer.add_document(document)
            {
                // Drop what was queued, so that no later commit makes part
                // of it durable.
                self.rollback();
                return Err(tantivy_error(self.dir)(error));
            }
        }
        Ok(())
    }

    fn commit(&mut self, checkpoint: IndexCheckpoint) -> Result<(), SearchError> {
        let started = Instant::now();
        let committed = self.writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&checkpoint.to_payload());
            prepared.commit()
        });
        if let Err(error) = committed {
            self.rollback();
            return Err(tantivy_error(self.dir)(error));
        }
        let ops = std::mem::take(&mut self.fed);
        self.reader.reload().map_err(tantivy_error(self.dir))?;
        tracing::debug!(
            dir = %self.dir.display(),
            ops,
            sequence = checkpoint.sequence,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index committed"
        );
        Ok(())
    }

    fn discard(&mut self) -> Result<(), SearchError> {
        if self.fed > 0 {
            self.writer.rollback().map_err(tantivy_error(self.dir))?;
            self.fed = 0;
        }
        Ok(())
    }

    fn rollback(&mut self) {
        match self.writer.rollback() {
            Ok(_) => self.fed = 0,
            Err(rollback) => {
                tracing::error!(dir = %self.dir.display(), %rollback, "search writer rollback failed");
            }
        }
    }
}
