//! When a commit is durable, and what waits for it: the outbox entries it
//! appended, which reach the sinks only then, and whoever confirms its
//! source position.
//!
//! A commit appends its frame to the log. A durable commit ([`super::Store::write`])
//! syncs the file before it returns. A pipelined one ([`super::Store::write_pipelined`],
//! the engine's batches) hands the sync to this module's thread and returns
//! at once, so the engine computes the next batch while the disk flushes
//! the last (docs/decisions.md, "A batch's sync overlaps the next batch").
//!
//! Until a sync covers its frame a commit is *unsynced*: its outbox entries
//! wait here, not in the [`Outboxes`], so a sink never sees an entry a
//! crash could take back, and readers outside the writer wait for the sync
//! (the store's `lock_durable`). Entries are published in commit order,
//! under one lock, whichever thread's sync covered them.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use tokio::sync::watch;

use super::StoreError;
use super::outboxes::{OutboxChange, Outboxes};

/// The number of a commit since the store was opened, in commit order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitNumber(u64);

impl CommitNumber {
    /// The commit after this one.
    pub(super) fn next(self) -> CommitNumber {
        CommitNumber(self.0 + 1)
    }
}

/// How far the log is known to be on disk.
#[derive(Clone, Debug, Default)]
struct Synced {
    /// Every commit up to this one is durable.
    upto: CommitNumber,
    /// A sync failed: what is written since may not be on disk, and the
    /// store takes no more commits.
    failed: Option<String>,
}

/// The outboxes, the commits waiting for a sync, and how far syncs reached.
pub(super) struct Durability {
    outboxes: Outboxes,
    unsynced: Mutex<VecDeque<(CommitNumber, Vec<OutboxChange>)>>,
    synced: watch::Sender<Synced>,
}

impl Durability {
    pub fn new(outboxes: Outboxes) -> Durability {
        Durability {
            outboxes,
            unsynced: Mutex::default(),
            synced: watch::Sender::new(Synced::default()),
        }
    }

    pub fn outboxes(&self) -> &Outboxes {
        &self.outboxes
    }

    fn lock_unsynced(&self) -> MutexGuard<'_, VecDeque<(CommitNumber, Vec<OutboxChange>)>> {
        // Every change under this lock is one push or pop: a panic leaves it whole.
        self.unsynced.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds what `commit` appended to the outboxes until it is durable.
    pub fn hold(&self, commit: CommitNumber, outbox: Vec<OutboxChange>) {
        if !outbox.is_empty() {
            self.lock_unsynced().push_back((commit, outbox));
        }
    }

    /// Every commit up to `upto` is on disk: publishes their outbox entries,
    /// in commit order, and wakes whoever waits for them.
    pub fn made_durable(&self, upto: CommitNumber) {
        let mut unsynced = self.lock_unsynced();
        while unsynced.front().is_some_and(|(commit, _)| *commit <= upto) {
            if let Some((_, outbox)) = unsynced.pop_front() {
                self.outboxes.publish(outbox);
            }
        }
        drop(unsynced);
        self.synced.send_if_modified(|synced| {
            let newer = upto > synced.upto;
            synced.upto = synced.upto.max(upto);
            newer
        });
    }

    /// Whether every commit up to `commit` is durable.
    pub fn is_durable(&self, commit: CommitNumber) -> bool {
        self.synced.borrow().upto >= commit
    }

    /// A sync failed: every commit and wait from now on fails with `reason`.
    pub fn fail(&self, reason: String) {
        self.synced
            .send_modify(|synced| synced.failed = Some(reason));
    }

    /// The error every commit and wait returns once a sync has failed.
    pub fn failure(&self) -> Option<StoreError> {
        let reason = self.synced.borrow().failed.clone()?;
        Some(StoreError::SyncFailed { reason })
    }

    /// Waits until `commit` is durable.
    pub async fn wait(&self, commit: CommitNumber) -> Result<(), StoreError> {
        let mut synced = self.synced.subscribe();
        // The sender lives as long as `self`: the wait cannot end unanswered.
        let _ = synced
            .wait_for(|synced| synced.upto >= commit || synced.failed.is_some())
            .await;
        self.failure().map_or(Ok(()), Err)
    }
}

/// One sync for the thread: every frame written to `file` before it was
/// asked for, which holds every commit up to `upto`.
struct SyncRequest {
    file: Arc<File>,
    path: PathBuf,
    upto: CommitNumber,
}

/// The thread that syncs the log for pipelined commits.
pub(super) struct Syncer {
    requests: Option<mpsc::Sender<SyncRequest>>,
}

impl Syncer {
    /// Starts the thread; it ends when the syncer is dropped and its queue
    /// is empty. If it cannot start, [`Syncer::request`] says so and the
    /// caller syncs itself.
    pub fn start(durability: Arc<Durability>) -> Syncer {
        let (requests, queue) = mpsc::channel::<SyncRequest>();
        let started = std::thread::Builder::new()
            .name("state-sync".into())
            .spawn(move || sync_requests(&queue, &durability));
        match started {
            Ok(_) => Syncer {
                requests: Some(requests),
            },
            Err(error) => {
                tracing::warn!(%error, "could not start the state store's sync thread: commits sync inline");
                Syncer { requests: None }
            }
        }
    }

    /// Asks for `file` (at `path`) to be synced, which makes every commit up
    /// to `upto` durable; false when the thread is not running.
    pub fn request(&self, file: Arc<File>, path: PathBuf, upto: CommitNumber) -> bool {
        let request = SyncRequest { file, path, upto };
        self.requests
            .as_ref()
            .is_some_and(|requests| requests.send(request).is_ok())
    }
}

/// The sync thread's loop. Requests that queued up while a sync ran are
/// folded into one, the newest: it covers every frame the others do, in the
/// same file, since a new log file is begun only after an inline sync that
/// made every commit before it durable.
fn sync_requests(queue: &mpsc::Receiver<SyncRequest>, durability: &Durability) {
    while let Ok(mut request) = queue.recv() {
        while let Ok(newer) = queue.try_recv() {
            request = newer;
        }
        match request.file.sync_data() {
            Ok(()) => durability.made_durable(request.upto),
            Err(error) => {
                let reason = format!("syncing {}: {error}", request.path.display());
                tracing::error!(%reason, "the state store's log could not be synced; it takes no more commits");
                durability.fail(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::outboxes::tests::append;

    fn sequences(durability: &Durability) -> Vec<u64> {
        let entries = durability.outboxes().after("s", 0, usize::MAX).unwrap();
        entries.into_iter().map(|(sequence, _)| sequence).collect()
    }

    /// Held entries reach the outboxes only once a sync covers their
    /// commit, in commit order; a wait returns once its commit is covered.
    #[test]
    fn entries_are_published_in_order_once_durable() {
        let durability = Durability::new(Outboxes::new(usize::MAX));
        durability.hold(CommitNumber(1), vec![append("s", 1)]);
        durability.hold(CommitNumber(2), vec![append("s", 2), append("s", 3)]);
        durability.hold(CommitNumber(3), vec![append("s", 4)]);
        assert_eq!(sequences(&durability), Vec::<u64>::new());
        assert!(!durability.is_durable(CommitNumber(1)));

        durability.made_durable(CommitNumber(2));
        assert_eq!(sequences(&durability), vec![1, 2, 3]);
        assert!(durability.is_durable(CommitNumber(2)));
        assert!(!durability.is_durable(CommitNumber(3)));

        // A sync that finishes late, covering less, changes nothing.
        durability.made_durable(CommitNumber(1));
        assert!(durability.is_durable(CommitNumber(2)));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(durability.wait(CommitNumber(2))).unwrap();
        durability.made_durable(CommitNumber(3));
        assert_eq!(sequences(&durability), vec![1, 2, 3, 4]);
        runtime.block_on(durability.wait(CommitNumber(3))).unwrap();
    }

    /// A failed sync ends every wait with an error that names it, and its
    /// commit's entries are never published.
    #[test]
    fn a_failed_sync_fails_the_waits() {
        let durability = Durability::new(Outboxes::new(usize::MAX));
        durability.hold(CommitNumber(1), vec![append("s", 1)]);
        durability.fail("syncing /data/state/wal-1: Input/output error".into());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let error = runtime
            .block_on(durability.wait(CommitNumber(1)))
            .unwrap_err();
        assert!(
            error.to_string().contains("wal-1: Input/output error"),
            "{error}"
        );
        assert!(durability.failure().is_some());
        assert_eq!(sequences(&durability), Vec::<u64>::new());
    }

    /// The thread syncs a real file and publishes what it covers.
    #[test]
    fn the_sync_thread_makes_commits_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = Arc::new(File::create(&path).unwrap());
        let durability = Arc::new(Durability::new(Outboxes::new(usize::MAX)));
        let syncer = Syncer::start(Arc::clone(&durability));
        durability.hold(CommitNumber(1), vec![append("s", 1)]);
        assert!(syncer.request(file, path, CommitNumber(1)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                durability.wait(CommitNumber(1)),
            )
            .await
            .expect("the sync thread answered within 10 s")
            .unwrap();
        });
        assert_eq!(sequences(&durability), vec![1]);
    }
}
