//! The replication stream: pgoutput messages in, [`ChangeBatch`]es out.
//!
//! Transactions arrive whole and in commit order. Several are grouped into one
//! batch (up to a size, or until a short wait passes) so the state store
//! commits once per batch, not once per transaction. A transaction too large
//! to hold is handed over in parts that carry no position; only its commit
//! moves the position.

use std::time::Duration;

use pgwire_replication::{Lsn as WireLsn, ReplicationClient, ReplicationEvent};
use tokio::time::Instant;

use super::SourceError;
use super::connection::PgEndpoint;
use super::pgoutput::{Relations, decode};
use crate::change::{Change, ChangeBatch, Lsn};

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// How batches are cut.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// A batch closes at the first commit after this many changes.
    pub max_changes: usize,
    /// A batch closes this long after its first commit.
    pub max_wait: Duration,
    /// A single transaction larger than this is handed over in parts.
    pub max_transaction_part: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_changes: 20_000,
            max_wait: Duration::from_millis(20),
            max_transaction_part: 50_000,
        }
    }
}

pub struct ReplicationStream {
    client: ReplicationClient,
    relations: Relations,
    limits: BatchLimits,
    /// Transactions whose commit is at or before this position were applied
    /// already (the server may resend them after a reconnect): skip them.
    applied_through: Lsn,
    /// Changes of the transaction being received.
    transaction: Vec<Change>,
    /// Whether the current transaction was already applied and is skipped.
    skipping: bool,
    /// Between a Begin and its Commit.
    in_transaction: bool,
    /// The commit LSN of the transaction being received, for messages
    /// whose own start the server leaves at 0 (a relation description).
    transaction_lsn: Lsn,
    /// A batch of whole transactions waiting to be returned.
    ready: ChangeBatch,
    /// Told of each transaction that begins arriving, with its commit LSN
    /// and time (microseconds since the Unix epoch): the views are behind
    /// it from then on, whatever keepalives say ([`Self::on_arrival`]).
    arrival: Option<Box<dyn Fn(Lsn, i64) + Send + Sync>>,
    /// When `ready` is handed over even if it is not full. A field, not a
    /// local of `next_batch`, so that a caller may drop a pending
    /// `next_batch` (to do other work) without losing the deadline.
    deadline: Option<Instant>,
}

impl ReplicationStream {
    /// Starts streaming `publication` from `slot` after `position`, which is
    /// durable in the state store. `relations` reads domains as their base
    /// types and watches the stored columns' types
    /// ([`SourceError::StoredColumnChanged`]).
    pub async fn start(
        endpoint: &PgEndpoint,
        slot: &str,
        publication: &str,
        position: Lsn,
        limits: BatchLimits,
        relations: Relations,
    ) -> Result<ReplicationStream, SourceError> {
        let config = endpoint
            .replication_config(slot, publication)
            .with_start_lsn(WireLsn::from_u64(position.0))
            .with_ack_lsn(WireLsn::from_u64(position.0));
        let mut client = ReplicationClient::connect(config).await?;
        client.wait_started().await?;
        let mut stream = Self::from_started(client, position, limits);
        stream.relations = relations;
        Ok(stream)
    }

    /// Wraps a session that has already started streaming (as `tail` does
    /// with its temporary slot).
    pub fn from_started(
        client: ReplicationClient,
        position: Lsn,
        limits: BatchLimits,
    ) -> ReplicationStream {
        ReplicationStream {
            client,
            relations: Relations::new(),
            limits,
            applied_through: position,
            transaction: Vec::new(),
            skipping: false,
            in_transaction: false,
            transaction_lsn: Lsn(0),
            ready: ChangeBatch::default(),
            deadline: None,
            arrival: None,
        }
    }

    /// Calls `arrival` with the commit LSN and time of every transaction
    /// that begins arriving and was not applied before.
    pub fn on_arrival(mut self, arrival: impl Fn(Lsn, i64) + Send + Sync + 'static) -> Self {
        self.arrival = Some(Box::new(arrival));
        self
    }

    /// The commit LSN (its `Begin`'s final LSN) of the transaction received
    /// last: with `max_changes` 1, each batch handed over at a commit holds
    /// that transaction alone, and a part of a large one is of it too.
    pub fn transaction_lsn(&self) -> Lsn {
        self.transaction_lsn
    }

    /// Tells PostgreSQL that everything up to `position` is durable, so the
    /// slot may release that WAL.
    pub fn confirm(&self, position: Lsn) {
        self.client
            .update_applied_lsn(WireLsn::from_u64(position.0));
    }

    /// Waits for the next batch: at least one whole transaction (or one part
    /// of a very large one). Cancel-safe: dropping the future loses nothing,
    /// and the next call goes on where it stopped.
    pub async fn next_batch(&mut self) -> Result<ChangeBatch, SourceError> {
        self.receive(true).await
    }

    /// Reads on while the engine applies the previous batch, with no
    /// deadline: what arrives meanwhile becomes the next batch as soon as the
    /// engine is free ([`Self::take_ready`]). Batches so grow with the lag
    /// instead of staying one deadline long, and each one's commit pays for
    /// more changes. Returns a batch only when one is full. Cancel-safe.
    pub async fn read_while_busy(&mut self) -> Result<ChangeBatch, SourceError> {
        self.receive(false).await
    }

    /// Receives until a batch must be handed over; when `on_deadline`, also
    /// once `ready` has waited `max_wait` since its first commit.
    async fn receive(&mut self, on_deadline: bool) -> Result<ChangeBatch, SourceError> {
        loop {
            let event = match self.deadline.filter(|_| on_deadline) {
                None => self.client.recv().await?,
                Some(at) => match tokio::time::timeout_at(at, self.client.recv()).await {
                    Ok(event) => event?,
                    Err(_) => {
                        self.deadline = None;
                        return Ok(std::mem::take(&mut self.ready));
                    }
                },
            };
            let Some(event) = event else {
                return Err(SourceError::StreamEnded);
            };
            if let Some(batch) = self.on_event(event)? {
                // Every batch handed over empties `ready`.
                self.deadline = None;
                return Ok(batch);
            }
            if self.deadline.is_none() && self.ready.commit_end.is_some() {
                self.deadline = Some(Instant::now() + self.limits.max_wait);
            }
        }
    }

    /// The whole transactions received so far, if there are any.
    pub fn take_ready(&mut self) -> Option<ChangeBatch> {
        self.ready.commit_end?;
        self.deadline = None;
        Some(std::mem::take(&mut self.ready))
    }

    /// Handles one event; returns a batch when one must be handed over now.
    fn on_event(&mut self, event: ReplicationEvent) -> Result<Option<ChangeBatch>, SourceError> {
        match event {
            ReplicationEvent::Begin {
                final_lsn,
                commit_time_micros,
                ..
            } => {
                self.transaction.clear();
                self.in_transaction = true;
                self.transaction_lsn = Lsn(final_lsn.as_u64());
                self.skipping = self.transaction_lsn < self.applied_through;
                if let Some(arrival) = self.arrival.as_ref().filter(|_| !self.skipping) {
                    arrival(
                        self.transaction_lsn,
                        commit_time_micros + PG_EPOCH_OFFSET_MICROS,
                    );
                }
            }
            ReplicationEvent::XLogData {
                wal_start, data, ..
            } => {
                let message = decode(&data).map_err(|error| SourceError::Decode {
                    lsn: Lsn(wal_start.as_u64()),
                    error,
                })?;
                let changes =
                    self.relations
                        .to_changes(message)
                        .map_err(|error| SourceError::Decode {
                            lsn: Lsn(wal_start.as_u64()),
                            error,
                        })?;
                // Checked before any change of the table's new shape is
                // handed over: those would be stored beside rows of the old.
                if let Some(change) = self.relations.take_stored_column_change() {
                    let lsn = match wal_start.as_u64() {
                        0 => self.transaction_lsn,
                        start => Lsn(start),
                    };
                    return Err(SourceError::StoredColumnChanged {
                        table: change.table,
                        column: change.column,
                        change: change.change,
                        lsn,
                    });
                }
                if !self.skipping {
                    self.transaction.extend(changes);
                    if self.transaction.len() >= self.limits.max_transaction_part {
                        return Ok(Some(self.transaction_part()));
                    }
                }
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                let end = Lsn(end_lsn.as_u64());
                if !self.skipping && end > self.applied_through {
                    self.ready.changes.append(&mut self.transaction);
                    self.ready.commit_end = Some(end);
                    self.ready.commit_time_micros = commit_time_micros + PG_EPOCH_OFFSET_MICROS;
                    self.applied_through = end;
                }
                self.transaction.clear();
                self.skipping = false;
                self.in_transaction = false;
                if self.ready.changes.len() >= self.limits.max_changes {
                    return Ok(Some(std::mem::take(&mut self.ready)));
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => return Ok(self.idle_advance(wal_end)),
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(None)
    }

    /// When nothing is in flight, a keepalive's WAL end is a position with no
    /// unapplied commit before it: an empty batch carrying it lets the slot
    /// advance even when every write goes to tables no view reads.
    fn idle_advance(&mut self, wal_end: WireLsn) -> Option<ChangeBatch> {
        let wal_end = Lsn(wal_end.as_u64());
        let idle = !self.in_transaction && self.ready.commit_end.is_none();
        if !idle || wal_end <= self.applied_through {
            return None;
        }
        self.applied_through = wal_end;
        Some(ChangeBatch {
            changes: Vec::new(),
            commit_end: Some(wal_end),
            commit_time_micros: 0,
        })
    }

    /// Hands over the whole transactions received so far, or else a part of
    /// the current large transaction, which carries no position.
    fn transaction_part(&mut self) -> ChangeBatch {
        if self.ready.commit_end.is_some() {
            return std::mem::take(&mut self.ready);
        }
        ChangeBatch {
            changes: std::mem::take(&mut self.transaction),
            commit_end: None,
            commit_time_micros: 0,
        }
    }
}
