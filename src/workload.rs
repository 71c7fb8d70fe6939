//! The workload generator for the example shop (`schemas/shop.sql`): creates the
//! schema, bulk-loads it at a chosen scale, and runs seeded random transactions
//! that exercise every kind of change viewkeeper must follow — inserts, updates of
//! joined rows, deletes with cascades and SET NULL, filter flips, multi-table
//! transactions, unchanged TOAST columns and TRUNCATE. Tests, benchmarks and the
//! `viewkeeper workload` command all drive it. Depends on sqlx, rand and tokio only.
//!
//! `run` uses one connection at a time; for concurrent load, call it from several
//! tasks with different seeds and add up their [`WorkloadStats`] with `merge`.
//!
//! - `load`: `create_schema` and the bulk `load` at a [`Scale`].
//! - `runner`: one run's state, its transactions and outcomes, picking rows.
//! - `ops`: what each [`Op`] does, as SQL.
//! - `values`: random names, prices, statuses and large texts.

mod load;
mod ops;
mod runner;
mod values;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use sqlx::PgPool;
use tokio::time::Instant;

use runner::{Outcome, Runner};

pub use load::{Scale, create_schema, load};

/// Why the generator could not do what it was asked. Failures of single random
/// transactions are not errors: they are counted in [`WorkloadStats`].
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("invalid workload options: {0}")]
    InvalidOptions(String),
}

fn db_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> WorkloadError {
    move |source| WorkloadError::Database { context, source }
}

// ---------------------------------------------------------------------------
// Options, mix and statistics
// ---------------------------------------------------------------------------

/// One kind of random transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// An order with 1..=5 items; one in five is a draft (filtered out of the cache view).
    NewOrder,
    AddItem,
    NewCustomer,
    NewProduct,
    RenameCustomer,
    ChangeCustomerEmail,
    RenameProduct,
    ChangeProductPrice,
    ChangeProductCategory,
    RenameCategory,
    ChangeItemQuantity,
    /// Moves an item to another order: it leaves one document and enters another.
    MoveItem,
    DeleteItem,
    ChangeItemProduct,
    /// draft ↔ pending ↔ paid, and to or from cancelled.
    ChangeOrderStatus,
    ChangeOrderTotal,
    ReassignOrderCustomer,
    /// Deletes an order; its items go by cascade.
    DeleteOrder,
    /// Deletes a customer; its orders get a NULL customer.
    DeleteCustomer,
    /// Deletes a product; its items get a NULL product.
    DeleteProduct,
    /// Several of the above in one transaction, including an order inserted and
    /// then changed or deleted again before commit.
    MultiTable,
    /// Gives a product a 10–20 KB description holding a unique token.
    LargeDescription,
    /// Updates name or price of a product with a large description, so the
    /// description arrives as an unchanged TOAST column.
    TouchLargeProduct,
    /// `TRUNCATE order_items`. Weight 0 by default; see `truncate_items_at`.
    TruncateItems,
}

/// The relative weights of the ops a run draws from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    pub weights: Vec<(Op, u32)>,
}

impl Default for Mix {
    fn default() -> Mix {
        use Op::*;
        let weights = vec![
            (NewOrder, 14),
            (AddItem, 5),
            (NewCustomer, 3),
            (NewProduct, 2),
            (RenameCustomer, 5),
            (ChangeCustomerEmail, 4),
            (RenameProduct, 4),
            (ChangeProductPrice, 4),
            (ChangeProductCategory, 2),
            (RenameCategory, 2),
            (ChangeItemQuantity, 8),
            (MoveItem, 4),
            (DeleteItem, 4),
            (ChangeItemProduct, 4),
            (ChangeOrderStatus, 12),
            (ChangeOrderTotal, 5),
            (ReassignOrderCustomer, 3),
            (DeleteOrder, 3),
            (DeleteCustomer, 1),
            (DeleteProduct, 1),
            (MultiTable, 6),
            (LargeDescription, 2),
            (TouchLargeProduct, 4),
        ];
        Mix { weights }
    }
}

impl Mix {
    /// The given ops, equally likely.
    pub fn only(ops: &[Op]) -> Mix {
        Mix {
            weights: ops.iter().map(|op| (*op, 1)).collect(),
        }
    }

    /// Sets the weight of `op` (0 removes it).
    pub fn with(mut self, op: Op, weight: u32) -> Mix {
        self.weights.retain(|(existing, _)| *existing != op);
        self.weights.push((op, weight));
        self
    }
}

/// What `run` does.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// How many transactions to attempt (committed, failed or skipped).
    pub transactions: u64,
    /// Target transactions per second; `None` runs as fast as possible.
    pub rate: Option<f64>,
    /// Seeds the generator: the same seed on the same data gives the same run.
    pub seed: u64,
    pub mix: Mix,
    /// At this transaction index, run `TRUNCATE order_items` instead of a random op.
    pub truncate_items_at: Option<u64>,
    /// Set it to end the run early; `run` checks it before each transaction.
    pub stop: Arc<AtomicBool>,
}

impl WorkloadOptions {
    pub fn new(transactions: u64, seed: u64) -> WorkloadOptions {
        WorkloadOptions {
            transactions,
            rate: None,
            seed,
            mix: Mix::default(),
            truncate_items_at: None,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Rows that committed statements reported as inserted, updated or deleted
/// (rows changed by cascades, SET NULL and TRUNCATE are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl RowCounts {
    fn add(&mut self, other: RowCounts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadStats {
    pub committed: u64,
    /// Rolled back on a database error: a foreign key race with a concurrent run,
    /// a deadlock, a lost connection.
    pub failed: u64,
    /// Rolled back because the op found nothing to act on (e.g. no items left).
    pub skipped: u64,
    /// Committed transactions per op.
    pub committed_by_op: BTreeMap<Op, u64>,
    pub rows: RowCounts,
    /// The last database error, to explain `failed`.
    pub last_error: Option<String>,
    /// True when `stop` ended the run before `transactions` were attempted.
    pub stopped_early: bool,
    pub elapsed: Duration,
}

impl WorkloadStats {
    /// Adds up the stats of runs that went on concurrently.
    pub fn merge(&mut self, other: &WorkloadStats) {
        self.committed += other.committed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        for (op, n) in &other.committed_by_op {
            *self.committed_by_op.entry(*op).or_default() += n;
        }
        self.rows.add(other.rows);
        self.last_error = other.last_error.clone().or(self.last_error.take());
        self.stopped_early |= other.stopped_early;
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    fn record(&mut self, op: Op, outcome: &Outcome) {
        match outcome {
            Outcome::Committed(rows) => {
                self.committed += 1;
                *self.committed_by_op.entry(op).or_default() += 1;
                self.rows.add(*rows);
            }
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed(error) => {
                self.failed += 1;
                self.last_error = Some(format!("{op:?}: {error}"));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The run loop
// ---------------------------------------------------------------------------

/// Runs `opts.transactions` random transactions, one at a time. A transaction
/// that fails is rolled back and counted; only a closed pool ends the run early
/// with an error.
pub async fn run(pool: &PgPool, opts: &WorkloadOptions) -> Result<WorkloadStats, WorkloadError> {
    let draw = validate(opts)?;
    let mut runner = Runner::new(pool, opts.seed).await?;
    let started = Instant::now();
    let mut stats = WorkloadStats::default();
    for index in 0..opts.transactions {
        pace(started, index, opts.rate).await;
        if opts.stop.load(Ordering::Relaxed) {
            stats.stopped_early = true;
            break;
        }
        let op = match opts.truncate_items_at {
            Some(at) if at == index => Op::TruncateItems,
            _ => opts.mix.weights[draw.sample(&mut runner.rng)].0,
        };
        let outcome = runner.transaction(op, index).await;
        stats.record(op, &outcome);
        back_off_if_unreachable(&outcome).await?;
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

fn validate(opts: &WorkloadOptions) -> Result<WeightedIndex<u32>, WorkloadError> {
    if let Some(rate) = opts.rate.filter(|rate| !(rate.is_finite() && *rate > 0.0)) {
        return Err(WorkloadError::InvalidOptions(format!(
            "rate {rate} is not a positive number"
        )));
    }
    WeightedIndex::new(opts.mix.weights.iter().map(|(_, weight)| *weight))
        .map_err(|error| WorkloadError::InvalidOptions(format!("mix weights: {error}")))
}

/// Waits for the transaction's slot in the schedule, so a run keeps its average
/// rate even when some transactions are slow.
async fn pace(started: Instant, index: u64, rate: Option<f64>) {
    if let Some(rate) = rate {
        tokio::time::sleep_until(started + Duration::from_secs_f64(index as f64 / rate)).await;
    }
}

/// While the database is unreachable (restarting in a test), slow down instead
/// of burning through the remaining transactions in a few milliseconds.
async fn back_off_if_unreachable(outcome: &Outcome) -> Result<(), WorkloadError> {
    match outcome {
        Outcome::Failed(sqlx::Error::PoolClosed) => Err(WorkloadError::Database {
            context: "running the workload",
            source: sqlx::Error::PoolClosed,
        }),
        Outcome::Failed(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_with_replaces_a_weight() {
        let mix = Mix::only(&[Op::NewOrder, Op::DeleteItem]).with(Op::NewOrder, 5);
        assert_eq!(mix.weights, vec![(Op::DeleteItem, 1), (Op::NewOrder, 5)]);
    }
}
