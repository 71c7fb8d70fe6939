//! The sinks' outboxes, in memory: per sink, its entries not yet released,
//! in sequence order.
//!
//! They live beside the tables, under their own lock, because sinks read
//! and release them all the time while the engine writes: a sink never
//! waits for a batch to finish. Entries reach them when the transaction
//! that appended them commits (after its redo record is in the log), so a
//! sink never sees an entry a crash could take back. A release is logged
//! with the next commit (or kept by the next checkpoint): one lost in a
//! crash brings entries back that the sink's own checkpoint skips.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// An encoded [`super::OutboxEntry`], shared by the queue and its readers.
pub type EntryBytes = Arc<[u8]>;

/// A change of the outboxes a write transaction made, applied when it commits.
pub enum OutboxChange {
    Append {
        sink: String,
        sequence: u64,
        entry: EntryBytes,
    },
    /// Drop every entry of `sink` (its view was dropped).
    Clear { sink: String },
}

#[derive(Default, Clone)]
pub struct Queue {
    pub entries: VecDeque<(u64, EntryBytes)>,
    /// Entries up to here were released since the last logged release.
    unlogged_release: Option<u64>,
}

impl Queue {
    /// Appends in sequence order; an entry at or before the newest is a
    /// replay of one already here.
    pub fn push(&mut self, sequence: u64, entry: EntryBytes) {
        if self.entries.back().is_none_or(|(last, _)| *last < sequence) {
            self.entries.push_back((sequence, entry));
        }
    }

    pub fn release(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|(seq, _)| *seq <= upto) {
            self.entries.pop_front();
        }
    }
}

/// Every sink's outbox.
#[derive(Default)]
pub struct Outboxes {
    queues: Mutex<HashMap<String, Queue>>,
}

impl Outboxes {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        // A panic elsewhere while holding it left the queues consistent:
        // every method changes them in one step.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies what a committed transaction changed.
    pub fn publish(&self, changes: Vec<OutboxChange>) {
        let mut queues = self.lock();
        for change in changes {
            apply(&mut queues, change);
        }
    }

    /// Up to `limit` entries of `sink` after sequence `after`, in order.
    pub fn after(&self, sink: &str, after: u64, limit: usize) -> Vec<(u64, EntryBytes)> {
        let queues = self.lock();
        let Some(queue) = queues.get(sink) else {
            return Vec::new();
        };
        let start = queue.entries.partition_point(|(seq, _)| *seq <= after);
        queue
            .entries
            .range(start..)
            .take(limit)
            .map(|(seq, entry)| (*seq, Arc::clone(entry)))
            .collect()
    }

    /// Drops the entries of `sink` up to and including `upto`.
    pub fn release(&self, sink: &str, upto: u64) {
        let mut queues = self.lock();
        let queue = queues.entry(sink.to_owned()).or_default();
        queue.release(upto);
        queue.unlogged_release = Some(upto.max(queue.unlogged_release.unwrap_or(0)));
    }

    /// How many entries of `sink` are not released.
    pub fn len(&self, sink: &str) -> u64 {
        self.lock()
            .get(sink)
            .map_or(0, |queue| queue.entries.len() as u64)
    }

    /// The releases not yet logged, to log with the next commit; they are
    /// forgotten here, so a commit that fails loses them (harmlessly).
    pub fn take_unlogged_releases(&self) -> Vec<(String, u64)> {
        let mut queues = self.lock();
        queues
            .iter_mut()
            .filter_map(|(sink, queue)| Some((sink.clone(), queue.unlogged_release.take()?)))
            .collect()
    }

    /// Every queue as it is now, for a checkpoint: entries are shared, not copied.
    pub fn snapshot(&self) -> HashMap<String, Queue> {
        self.lock().clone()
    }

    /// Puts back queues read from a checkpoint.
    pub fn restore(&self, queues: HashMap<String, Queue>) {
        *self.lock() = queues;
    }
}

fn apply(queues: &mut HashMap<String, Queue>, change: OutboxChange) {
    match change {
        OutboxChange::Append {
            sink,
            sequence,
            entry,
        } => {
            queues.entry(sink).or_default().push(sequence, entry);
        }
        OutboxChange::Clear { sink } => {
            queues.remove(&sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(sink: &str, sequence: u64) -> OutboxChange {
        OutboxChange::Append {
            sink: sink.into(),
            sequence,
            entry: Arc::from(sequence.to_be_bytes().as_slice()),
        }
    }

    #[test]
    fn entries_are_read_after_a_sequence_and_released_in_order() {
        let outboxes = Outboxes::default();
        outboxes.publish((1..=5).map(|s| append("a", s)).collect());
        outboxes.publish(vec![append("b", 1)]);
        let seqs = |v: Vec<(u64, EntryBytes)>| v.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert_eq!(seqs(outboxes.after("a", 2, 2)), vec![3, 4]);
        assert_eq!(seqs(outboxes.after("a", 0, 100)), vec![1, 2, 3, 4, 5]);
        outboxes.release("a", 3);
        assert_eq!(outboxes.len("a"), 2);
        assert_eq!(seqs(outboxes.after("a", 0, 100)), vec![4, 5]);
        assert_eq!(outboxes.take_unlogged_releases(), vec![("a".into(), 3)]);
        assert!(outboxes.take_unlogged_releases().is_empty());
        outboxes.publish(vec![OutboxChange::Clear { sink: "a".into() }]);
        assert_eq!(outboxes.len("a"), 0);
        assert_eq!(outboxes.len("b"), 1);
    }
}
