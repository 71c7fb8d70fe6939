//! [`RowCache`]: decoded rows kept from one write transaction to the next,
//! shared by the writer and the reader that computes outputs beside it.
//!
//! At 5,000 changes/s a transaction holds about 150 changes, and most rows
//! its roots read (a product for each of its orders, a customer for each of
//! hers) were read by the transactions before it. A cache that lived one
//! transaction found each of them anew: a B-tree descent and a decode, a
//! fifth of the engine's CPU.
//!
//! What keeps it true: the writer is the only one that changes rows, and
//! it updates a cached row when it writes it, and empties the cache when it
//! clears rows wholesale or rolls a transaction back. A reader on another
//! thread sees the tables as of its making, so it uses the cache only while
//! no row has been written since: every row write moves the cache's
//! generation on, and a reader made at another generation reads around it.
//! A reader checks the generation under the shard's lock and the writer moves
//! it before taking that lock, so a reader's row stored after a write is
//! refused, and one stored before is replaced by the writer's.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::{FixedState, RandomState};

use super::read_cache::Row;
use crate::change::Value;

/// Shards, so that the engine's thread and its helper seldom wait for each
/// other's lock.
const SHARDS: usize = 16;

/// Rows kept before a shard starts over: bounds memory when a transaction
/// reads a whole table (a truncate, a rebuild) or the stream wanders over
/// more rows than are hot. About 50 MiB of example shop rows in all.
const MAX_ROWS_PER_SHARD: usize = 200_000 / SHARDS;

/// Full row key (`table ‖ primary key`) → the row, or `None`: known absent.
type Shard = HashMap<Vec<u8>, Option<Row>, RandomState>;

pub(super) struct RowCache {
    shards: Box<[Mutex<Shard>]>,
    /// Picks a key's shard; the shards' own maps hash with other seeds.
    shard_hasher: FixedState,
    /// Row writes and clears so far.
    generation: AtomicU64,
}

/// Whose reads a [`RowCache`] serves.
#[derive(Clone, Copy)]
pub(super) enum Reading {
    /// The writer's: the cache follows its writes.
    Writer,
    /// A reader's whose tables are as of this generation.
    AsOf(u64),
}

impl RowCache {
    pub fn new() -> RowCache {
        RowCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_hasher: FixedState::default(),
            generation: AtomicU64::new(0),
        }
    }

    /// The generation a reader made now reads at.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The cached row under `key`: `None` when not cached (or not for
    /// `reading`), `Some(None)` when known to be absent.
    pub fn get(&self, key: &[u8], reading: Reading) -> Option<Option<Row>> {
        let shard = self.shard(key);
        if !self.serves(reading) {
            return None;
        }
        shard.get(key).cloned()
    }

    /// Keeps `row`, read from the tables, under `key`.
    pub fn insert(&self, key: Vec<u8>, row: Option<Row>, reading: Reading) {
        let mut shard = self.shard(&key);
        if !self.serves(reading) {
            return;
        }
        if shard.len() >= MAX_ROWS_PER_SHARD {
            shard.clear();
        }
        shard.insert(key, row);
    }

    /// The writer wrote `row` under `key` (`None`: deleted it). A row not
    /// cached is not added: a snapshot writes millions.
    pub fn written(&self, key: &[u8], row: Option<&[Value]>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(slot) = self.shard(key).get_mut(key) {
            *slot = row.map(Row::from);
        }
    }

    /// Rows were removed wholesale, or a transaction's writes undone.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for shard in &self.shards {
            lock(shard).clear();
        }
    }

    /// Whether cached rows are the ones `reading` would read from its
    /// tables; asked under the shard's lock (see the module's comment).
    fn serves(&self, reading: Reading) -> bool {
        match reading {
            Reading::Writer => true,
            Reading::AsOf(generation) => generation == self.generation(),
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let n = self.shard_hasher.hash_one(key) as usize % SHARDS;
        lock(&self.shards[n])
    }
}

/// A shard's map is whole between any two statements, so a panic elsewhere
/// while holding its lock leaves nothing half done.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}
