//! The sinks' outboxes, in memory: per sink, its entries not yet released,
//! in sequence order.
//!
//! They live beside the tables, under their own lock, because sinks read
//! and release them all the time while the engine writes: a sink never
//! waits for a batch to finish. Entries reach them when the transaction
//! that appended them is durable (its redo record synced, see
//! [`super::durability`]), so a sink never sees an entry a crash could take
//! back. A release is logged
//! with the next commit (or kept by the next checkpoint): one lost in a
//! crash brings entries back that the sink's own checkpoint skips.
//!
//! Memory bounds them: when all queues together hold more than their
//! budget (a sink down for long, or far behind), the oldest entries of the
//! largest are dropped. The sink notices the gap when it next reads
//! ([`OutboxGap`]) and rewrites its whole target from the state store,
//! which ends in the same state as applying every entry would have.

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
    entries: VecDeque<(u64, EntryBytes)>,
    /// The bytes of `entries`.
    bytes: usize,
    /// The newest sequence ever appended (dropped or released ones too).
    newest: u64,
    /// Entries up to here were released since the last logged release.
    unlogged_release: Option<u64>,
    /// Entries were dropped, and said so, since the sink last found a gap:
    /// the next drops, until then, need not be said again.
    drops_reported: bool,
}

impl Queue {
    pub fn entries(&self) -> &VecDeque<(u64, EntryBytes)> {
        &self.entries
    }

    /// Appends in sequence order; an entry at or before the newest is a
    /// replay of one already here.
    pub fn push(&mut self, sequence: u64, entry: EntryBytes) {
        if sequence <= self.newest {
            return;
        }
        self.newest = sequence;
        self.bytes += entry.len();
        self.entries.push_back((sequence, entry));
    }

    /// Where entry `sequence` is, if it is here.
    fn position(&self, sequence: u64) -> Option<usize> {
        self.entries
            .binary_search_by_key(&sequence, |(seq, _)| *seq)
            .ok()
    }

    pub fn release(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|(seq, _)| *seq <= upto) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, entry)) = self.entries.pop_front() {
            self.bytes -= entry.len();
        }
    }

    /// Whether entries after `after` were dropped: a reader at `after` would
    /// miss them. (Entries up to a sink's own position are the only ones it
    /// releases, so any other hole is a drop.)
    fn missing_after(&self, after: u64) -> bool {
        match self.entries.front() {
            Some((first, _)) => *first > after.saturating_add(1),
            None => self.newest > after,
        }
    }
}

/// Entries after the position a sink asked from were dropped to bound
/// memory: the sink must rewrite its target from the state store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxGap;

/// All outboxes together hold at most this many bytes unless configured
/// (`outbox_memory_mb`).
pub const DEFAULT_OUTBOX_BUDGET: usize = 256 * 1024 * 1024;

/// Every sink's outbox.
#[derive(Default)]
pub struct Outboxes {
    queues: Mutex<HashMap<String, Queue>>,
    /// The bytes all queues may hold together.
    budget: usize,
}

impl Outboxes {
    pub fn new(budget: usize) -> Outboxes {
        Outboxes {
            queues: Mutex::default(),
            budget,
        }
    }

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
        self.keep_to_budget(&mut queues);
    }

    /// Drops the oldest entries of the largest queues until all fit the budget.
    fn keep_to_budget(&self, queues: &mut HashMap<String, Queue>) {
        let mut total: usize = queues.values().map(|queue| queue.bytes).sum();
        while total > self.budget {
            let Some((sink, largest)) = queues.iter_mut().max_by_key(|(_, queue)| queue.bytes)
            else {
                return;
            };
            let before = largest.bytes;
            let mut dropped = 0;
            while largest.bytes > 0 && total - (before - largest.bytes) > self.budget {
                largest.pop_front();
                dropped += 1;
            }
            if largest.drops_reported {
                tracing::debug!(sink = %sink, dropped, "outbox entries dropped");
            } else {
                largest.drops_reported = true;
                tracing::warn!(
                    sink = %sink,
                    dropped,
                    budget_mib = self.budget >> 20,
                    "outboxes over their memory budget: the oldest entries were dropped, \
                     and this sink will rewrite its target from the state store (further \
                     drops before it does are logged at debug level)"
                );
            }
            total -= before - largest.bytes;
        }
    }

    /// Up to `limit` entries of `sink` after sequence `after`, in order, or
    /// [`OutboxGap`] when some of those were dropped.
    pub fn after(
        &self,
        sink: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EntryBytes)>, OutboxGap> {
        let mut queues = self.lock();
        let Some(queue) = queues.get_mut(sink) else {
            return Ok(Vec::new());
        };
        if queue.missing_after(after) {
            queue.drops_reported = false;
            return Err(OutboxGap);
        }
        let start = queue.entries.partition_point(|(seq, _)| *seq <= after);
        Ok(queue
            .entries
            .range(start..)
            .take(limit)
            .map(|(seq, entry)| (*seq, Arc::clone(entry)))
            .collect())
    }

    /// Drops the entries of `sink` up to and including `upto`.
    pub fn release(&self, sink: &str, upto: u64) {
        let mut queues = self.lock();
        let queue = queues.entry(sink.to_owned()).or_default();
        queue.release(upto);
        queue.unlogged_release = Some(upto.max(queue.unlogged_release.unwrap_or(0)));
    }

    /// The bytes of puts a transaction may leave uncompressed now
    /// ([`super::PlainAllowance`]).
    pub fn plain_allowance(&self) -> usize {
        let held: usize = self.lock().values().map(|queue| queue.bytes).sum();
        (self.budget / super::PlainAllowance::PLAIN_SHARE).saturating_sub(held)
    }

    /// The sequence of `sink`'s oldest entry not released, if any.
    pub fn oldest(&self, sink: &str) -> Option<u64> {
        let queues = self.lock();
        queues
            .get(sink)?
            .entries
            .front()
            .map(|(sequence, _)| *sequence)
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

    /// Every entry that is still as the log keeps it, a put naming its root
    /// (read back after a restart), by sink and sequence.
    pub fn named_puts(&self) -> Vec<(String, u64, EntryBytes)> {
        let queues = self.lock();
        let mut named = Vec::new();
        for (sink, queue) in queues.iter() {
            for (sequence, entry) in &queue.entries {
                if super::outbox::decode_named_put(entry).is_some() {
                    named.push((sink.clone(), *sequence, Arc::clone(entry)));
                }
            }
        }
        named
    }

    /// Whether `sink`'s entry `sequence` is still here.
    pub fn holds(&self, sink: &str, sequence: u64) -> bool {
        self.lock()
            .get(sink)
            .is_some_and(|queue| queue.position(sequence).is_some())
    }

    /// Puts `entry` in the place of `sink`'s entry `sequence`, if it is
    /// still there.
    pub fn replace(&self, sink: &str, sequence: u64, entry: EntryBytes) {
        let mut queues = self.lock();
        let Some(queue) = queues.get_mut(sink) else {
            return;
        };
        let Some(at) = queue.position(sequence) else {
            return;
        };
        let old = std::mem::replace(&mut queue.entries[at].1, entry);
        queue.bytes = queue.bytes - old.len() + queue.entries[at].1.len();
        self.keep_to_budget(&mut queues);
    }

    /// Drops `sink`'s entries up to and including `through`, as the budget
    /// drops them: a sink reading from before them finds a gap, and
    /// rewrites its target from the state store.
    pub fn drop_through(&self, sink: &str, through: u64) {
        if let Some(queue) = self.lock().get_mut(sink) {
            // Not a release: none is logged, and the sink's position stays.
            queue.release(through);
        }
    }

    /// Every queue as it is now, for a checkpoint: entries are shared, not copied.
    pub fn snapshot(&self) -> HashMap<String, Queue> {
        self.lock().clone()
    }

    /// Puts back queues read from the disk, with the newest sequence each
    /// sink was given (from the store's meta table).
    pub fn restore(&self, mut queues: HashMap<String, Queue>, newest: HashMap<String, u64>) {
        for (sink, sequence) in newest {
            let queue = queues.entry(sink).or_default();
            queue.newest = queue.newest.max(sequence);
        }
        self.keep_to_budget(&mut queues);
        *self.lock() = queues;
    }
}

fn apply(queues: &mut HashMap<String, Queue>, change: OutboxChange) {
    match change {
        OutboxChange::Append {
            sink,
            sequence,
            entry,
        } => queues.entry(sink).or_default().push(sequence, entry),
        OutboxChange::Clear { sink } => {
            queues.remove(&sink);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An entry of `sink` at `sequence`, holding the sequence's bytes.
    pub(in crate::state) fn append(sink: &str, sequence: u64) -> OutboxChange {
        OutboxChange::Append {
            sink: sink.into(),
            sequence,
            entry: Arc::from(sequence.to_be_bytes().as_slice()),
        }
    }

    fn seqs(read: Result<Vec<(u64, EntryBytes)>, OutboxGap>) -> Vec<u64> {
        read.unwrap().into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn entries_are_read_after_a_sequence_and_released_in_order() {
        let outboxes = Outboxes::new(DEFAULT_OUTBOX_BUDGET);
        outboxes.publish((1..=5).map(|s| append("a", s)).collect());
        outboxes.publish(vec![append("b", 1)]);
        assert_eq!(seqs(outboxes.after("a", 2, 2)), vec![3, 4]);
        assert_eq!(seqs(outboxes.after("a", 0, 100)), vec![1, 2, 3, 4, 5]);
        outboxes.release("a", 3);
        assert_eq!(outboxes.len("a"), 2);
        assert_eq!(seqs(outboxes.after("a", 3, 100)), vec![4, 5]);
        assert_eq!(outboxes.take_unlogged_releases(), vec![("a".into(), 3)]);
        assert!(outboxes.take_unlogged_releases().is_empty());
        outboxes.publish(vec![OutboxChange::Clear { sink: "a".into() }]);
        assert_eq!(outboxes.len("a"), 0);
        assert_eq!(outboxes.len("b"), 1);
    }

    /// Puts may stay plain up to a share of the budget, less what every
    /// queue holds; released entries give it back.
    #[test]
    fn the_plain_allowance_is_a_share_of_the_budget_less_what_is_held() {
        let share = 8 * 100;
        let outboxes = Outboxes::new(share * crate::state::PlainAllowance::PLAIN_SHARE);
        assert_eq!(outboxes.plain_allowance(), share);
        outboxes.publish((1..=10).map(|s| append("a", s)).collect());
        outboxes.publish((1..=20).map(|s| append("b", s)).collect());
        assert_eq!(outboxes.plain_allowance(), share - 8 * 30);
        outboxes.publish((21..=100).map(|s| append("b", s)).collect());
        assert_eq!(outboxes.plain_allowance(), 0);
        outboxes.release("b", 100);
        assert_eq!(outboxes.plain_allowance(), share - 8 * 10);
    }

    /// Over the budget, the largest queue loses its oldest entries, and a
    /// reader from before them is told of the gap, not handed what is left.
    #[test]
    fn entries_over_the_budget_are_dropped_and_their_readers_told() {
        let outboxes = Outboxes::new(8 * 5);
        outboxes.publish((1..=4).map(|s| append("big", s)).collect());
        outboxes.publish(vec![append("small", 1)]);
        outboxes.publish(vec![append("big", 5), append("big", 6)]);
        assert_eq!(outboxes.len("big"), 4);
        assert_eq!(outboxes.after("big", 0, 10), Err(OutboxGap));
        assert_eq!(outboxes.after("big", 1, 10), Err(OutboxGap));
        assert_eq!(seqs(outboxes.after("big", 2, 10)), vec![3, 4, 5, 6]);
        assert_eq!(seqs(outboxes.after("small", 0, 10)), vec![1]);
        // A sink that rewrote its target up to 6 releases, and reads on.
        outboxes.release("big", 6);
        assert!(seqs(outboxes.after("big", 6, 10)).is_empty());
        assert_eq!(outboxes.after("big", 5, 10), Err(OutboxGap));
    }

    /// Drops are reported once until the sink finds the gap, not once per
    /// write (thousands of warnings while a sink is down).
    #[test]
    fn drops_are_reported_once_until_the_sink_finds_the_gap() {
        let outboxes = Outboxes::new(8 * 2);
        let reported = |outboxes: &Outboxes| outboxes.lock()["a"].drops_reported;
        outboxes.publish((1..=3).map(|s| append("a", s)).collect());
        assert!(reported(&outboxes));
        outboxes.publish(vec![append("a", 4)]);
        assert!(reported(&outboxes));
        assert_eq!(outboxes.after("a", 0, 10), Err(OutboxGap));
        assert!(!reported(&outboxes));
    }
}
