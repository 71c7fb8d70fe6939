//! The Redis sink: cache-view documents as JSON strings under their keys.
//!
//! Each batch of outbox entries is one `MULTI`/`EXEC` that also sets the
//! checkpoint key to `{store id}:{sequence}`, but only over the checkpoint
//! the sink left (a small script). If the checkpoint is missing
//! (Redis lost its data: a restart without persistence, a FLUSHALL) or names
//! another store (the data directory was replaced), the sink rewrites every
//! stored output from the state store, then continues from the outbox; the
//! checkpoint key holds a marker while it does, and a rewrite that finds
//! the marker gone at its end (a FLUSHALL meanwhile) starts over. A
//! rewrite waits until the state store holds a completed snapshot: until
//! then Redis keeps what it has, which a new store's empty rows would sweep.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::status::SinkHealth;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::{Notify, watch};

use crate::engine::{EngineError, OutputReader};
use crate::sink::RewriteSignal;
use crate::source::connection::redact_url;
use crate::state::{OutboxEntry, OutboxOp, OutboxRead, Store, StoreError};
use crate::telemetry;

/// The outbox name of this sink.
pub const SINK: &str = "redis";
/// Sets the checkpoint `KEYS[1]` to `ARGV[2]` only if it holds `ARGV[1]`,
/// and says whether it did (1 or 0): the last command of each batch's
/// `MULTI` ([`RedisSink::apply`]), and the end of a rewrite.
const SET_CHECKPOINT_IF: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";
/// Outbox entries per MULTI/EXEC.
const ENTRIES_PER_BATCH: usize = 1_000;
/// Keys per SCAN step when sweeping stale documents.
const SWEEP_SCAN_COUNT: usize = 1_000;
/// How often an idle sink checks that Redis still has its checkpoint.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How long a claim on the cache views' key prefixes stands unless renewed:
/// what a second instance waits after the first is killed.
const CLAIM_TTL: Duration = Duration::from_secs(30);
/// The start of every claim key: `viewkeeper:claim:<key prefix>`.
const CLAIM_KEY_PREFIX: &str = "viewkeeper:claim:";
/// How often the sink renews its claim while it runs.
const CLAIM_RENEWAL: Duration = Duration::from_secs(5);
/// Claims the keys `KEYS` (one per key prefix) for the state store
/// `ARGV[1]`, each holding `ARGV[2]` for `ARGV[3]` ms, when none is another
/// store's (a value not starting with `ARGV[1]` and a space) other than
/// `ARGV[4]` (a holder known dead); else claims nothing and returns the
/// other's value. All or none, in one step.
const CLAIM_KEYS: &str = "local mine = ARGV[1] .. ' ' \
     for _, key in ipairs(KEYS) do \
       local holder = redis.call('GET', key) \
       if holder and string.sub(holder, 1, string.len(mine)) ~= mine and holder ~= ARGV[4] \
       then return holder end \
     end \
     for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[2], 'PX', ARGV[3]) end \
     return false";
/// Deletes the claim keys `KEYS` that are the store `ARGV[1]`'s.
const RELEASE_KEYS: &str = "local mine = ARGV[1] .. ' ' \
     for _, key in ipairs(KEYS) do \
       local holder = redis.call('GET', key) \
       if holder and string.sub(holder, 1, string.len(mine)) == mine then redis.call('DEL', key) end \
     end \
     return 0";

#[derive(Debug, thiserror::Error)]
pub enum RedisSinkError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outputs(#[from] EngineError),
    #[error("state store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error(
        "redis {url} refuses viewkeeper's credentials ({error}): check the user and password \
         in redis_url"
    )]
    Credentials {
        url: String,
        #[source]
        error: redis::RedisError,
    },
    /// Another viewkeeper's claim on a key prefix stands: retried, so this
    /// one takes the keys over once the other stops.
    #[error(
        "cache keys under {prefixes} are written by another viewkeeper ({holder}), whose claim \
         stands in Redis: two instances cannot share cache keys, as each would write over the \
         other's documents. This one waits, and takes the keys over when the other stops (its \
         claim lapses {}s after it ends, at once if it stops cleanly); to run both, give one of \
         them another key template or Redis database",
        CLAIM_TTL.as_secs()
    )]
    Contested { prefixes: String, holder: String },
}

/// How long a start waits for Redis to answer before leaving it to the
/// sink, which retries.
const CREDENTIALS_CHECK_WAIT: Duration = Duration::from_secs(5);

/// Refuses credentials the Redis at `url` rejects, as a start refuses a
/// wrong PostgreSQL password: no retry can help, and the sink retried them
/// forever while the views read `failed` (trial 39). A Redis that does not
/// answer (down, or starting beside viewkeeper) is left to the sink.
pub async fn check_credentials(url: &str) -> Result<(), RedisSinkError> {
    let client = redis::Client::open(url)?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await
    };
    match tokio::time::timeout(CREDENTIALS_CHECK_WAIT, ping).await {
        Ok(Err(error)) if refuses_credentials(&error) => Err(RedisSinkError::Credentials {
            url: redact_url(url),
            error,
        }),
        _ => Ok(()),
    }
}

/// A wrong password (or a password where Redis has none), or none where
/// Redis wants one.
fn refuses_credentials(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("NOAUTH" | "WRONGPASS"))
}

pub struct RedisSink {
    url: String,
    store: Arc<Store>,
    /// Computes the documents of a full rewrite.
    outputs: OutputReader,
    /// Names of the cache views whose outputs this sink owns.
    views: Vec<String>,
    checkpoint_key: String,
    /// Identifies the state store, so a checkpoint written from another one is
    /// not mistaken for ours.
    store_id: String,
    /// Last sequence applied, published for status and tests.
    applied: watch::Sender<u64>,
    /// The literal start of each cache view's key template (`order:`): keys
    /// under it belong to viewkeeper, and a rewrite deletes those that no
    /// stored output has.
    key_prefixes: Vec<String>,
    rewrites: RewriteSignal,
}

impl RedisSink {
    pub fn new(
        url: String,
        outputs: OutputReader,
        views: Vec<String>,
        key_prefixes: Vec<String>,
        checkpoint_key: String,
        store_id: String,
        rewrites: RewriteSignal,
    ) -> RedisSink {
        RedisSink {
            url,
            store: Arc::clone(outputs.store()),
            outputs,
            views,
            checkpoint_key,
            store_id,
            applied: watch::channel(0).0,
            key_prefixes,
            rewrites,
        }
    }

    /// The sequence of the last entry known to be applied.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Drains the outbox until `shutdown` turns true, reconnecting as needed.
    pub async fn run(self, wake: Arc<Notify>, health: SinkHealth, shutdown: watch::Receiver<bool>) {
        let label = format!("redis ({})", redact_url(&self.url));
        crate::sink::retry_until_shutdown(
            &label,
            &health,
            shutdown,
            Duration::from_secs(5),
            || self.connect_and_drain(&wake, &health),
        )
        .await;
        // A clean stop hands the keys over at once, not when the claim
        // lapses; a Redis that does not answer soon leaves it to lapse.
        let release = tokio::time::timeout(Duration::from_secs(2), self.release_claim());
        if let Ok(Err(error)) = release.await {
            tracing::debug!(%error, "the claim on the cache keys was left to lapse");
        }
    }

    /// The Redis keys that claim the cache views' key prefixes.
    fn claim_keys(&self) -> Vec<String> {
        self.key_prefixes
            .iter()
            .map(|prefix| format!("{CLAIM_KEY_PREFIX}{prefix}"))
            .collect()
    }

    /// Claims (or renews the claim on) every key prefix of the cache
    /// views, for [`CLAIM_TTL`]; [`RedisSinkError::Contested`] while
    /// another viewkeeper's claim on one stands.
    async fn claim(&self, conn: &mut ConnectionManager) -> Result<(), RedisSinkError> {
        let keys = self.claim_keys();
        if keys.is_empty() {
            return Ok(());
        }
        let host = host_name();
        let holder = format!(
            "{} (process {} on {host})",
            self.store_id,
            std::process::id()
        );
        // A holder that was killed on this machine (its data directory
        // then deleted, say) is not waited for.
        let mut dead = String::new();
        loop {
            let other: Option<String> = redis::cmd("EVAL")
                .arg(CLAIM_KEYS)
                .arg(keys.len())
                .arg(&keys)
                .arg(&self.store_id)
                .arg(&holder)
                .arg(CLAIM_TTL.as_millis() as u64)
                .arg(&dead)
                .query_async(&mut *conn)
                .await?;
            match other {
                None => return Ok(()),
                Some(other) if dead.is_empty() && is_dead_here(&other, &host) => dead = other,
                Some(other) => {
                    return Err(RedisSinkError::Contested {
                        prefixes: self
                            .key_prefixes
                            .iter()
                            .map(|prefix| format!("`{prefix}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        holder: format!("state store {other}"),
                    });
                }
            }
        }
    }

    /// Deletes this store's claims.
    async fn release_claim(&self) -> Result<(), RedisSinkError> {
        let keys = self.claim_keys();
        if keys.is_empty() {
            return Ok(());
        }
        let client = redis::Client::open(self.url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("EVAL")
            .arg(RELEASE_KEYS)
            .arg(keys.len())
            .arg(&keys)
            .arg(&self.store_id)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn connect_and_drain(
        &self,
        wake: &Notify,
        health: &SinkHealth,
    ) -> Result<(), RedisSinkError> {
        let client = redis::Client::open(self.url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_number_of_retries(1);
        let mut conn = ConnectionManager::new_with_config(client, config).await?;
        self.claim(&mut conn).await?;
        let mut claimed = std::time::Instant::now();
        let mut applied = self.recover_position(&mut conn, wake, health).await?;
        health.ok();
        loop {
            if claimed.elapsed() >= CLAIM_RENEWAL {
                self.claim(&mut conn).await?;
                claimed = std::time::Instant::now();
            }
            if let Some(ticket) = self.rewrites.pending() {
                applied = self.rewrite_all(&mut conn, wake, false).await?;
                self.applied.send_replace(applied);
                self.rewrites.finished(ticket);
            }
            let after = applied;
            let store = Arc::clone(&self.store);
            let read = tokio::task::spawn_blocking(move || {
                store.outbox_after(SINK, after, ENTRIES_PER_BATCH)
            })
            .await??;
            let OutboxRead::Entries(entries) = read else {
                tracing::warn!(
                    "outbox entries the cache sink had not read were dropped (it fell behind \
                     the outboxes' memory budget, they could not be recomputed after a \
                     restart, or Redis went back to an older checkpoint: restored from an \
                     older backup, or failed over to a replica behind): rewriting every cache \
                     document"
                );
                applied = self.rewrite_all(&mut conn, wake, false).await?;
                self.applied.send_replace(applied);
                continue;
            };
            let Some(&(last, _)) = entries.last() else {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_CHECK) => {
                        if self.read_checkpoint(&mut conn).await? != Some(applied) {
                            applied = self.recover_position(&mut conn, wake, health).await?;
                        }
                    }
                }
                continue;
            };
            let previous = self.apply(&mut conn, &entries, applied, last).await?;
            if previous != Some(applied) {
                // Redis lost its data between two batches (a FLUSHALL, or a
                // restart the connection survived by reconnecting).
                applied = self
                    .rewrite_lost_data(&mut conn, wake, health, true)
                    .await?;
                continue;
            }
            applied = last;
            health.ok();
            self.applied.send_replace(applied);
            telemetry::record_sink_applied(SINK, entries.len());
            super::release_outbox::<RedisSinkError>(&self.store, SINK, last).await?;
        }
    }

    /// One MULTI/EXEC: the entries, and the checkpoint moved only if it is
    /// the one of `expected`. Returns the checkpoint found before, read in
    /// the same transaction, so a Redis that lost its data (or was restored
    /// from an older copy) is noticed even across a silent reconnect; and
    /// the checkpoint is not written over the loss, which would tell a sink
    /// restarted during the rewrite that follows that it was done.
    async fn apply(
        &self,
        conn: &mut ConnectionManager,
        entries: &[(u64, OutboxEntry)],
        expected: u64,
        last: u64,
    ) -> Result<Option<u64>, RedisSinkError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.get(&self.checkpoint_key);
        // Entries of a cache view removed since they were written are left
        // out: its keys are `viewkeeper drop`'s to delete, not to write.
        for (_, entry) in entries.iter().filter(|(_, e)| self.views.contains(&e.view)) {
            match &entry.op {
                OutboxOp::Put { key, document } => pipe.set(key, document).ignore(),
                OutboxOp::Delete { key } => pipe.del(key).ignore(),
            };
        }
        // A script as small as this one costs what a SET does; the whole
        // batch as a script copied every document into Lua, and drained
        // 40% slower.
        pipe.cmd("EVAL")
            .arg(SET_CHECKPOINT_IF)
            .arg(1)
            .arg(&self.checkpoint_key)
            .arg(self.checkpoint_value(expected))
            .arg(self.checkpoint_value(last))
            .ignore();
        let (previous,): (Option<String>,) = pipe.query_async(conn).await?;
        Ok(previous.and_then(|value| self.parse_checkpoint(&value)))
    }

    fn checkpoint_value(&self, sequence: u64) -> String {
        format!("{}:{}", self.store_id, sequence)
    }

    /// What the checkpoint key holds while a rewrite runs: no sequence, so
    /// a sink that starts meanwhile rewrites again.
    fn rewrite_marker(&self) -> String {
        format!("{}:rewriting", self.store_id)
    }

    /// The sequence Redis has applied, or `None` if it has no checkpoint of
    /// this store.
    async fn read_checkpoint(
        &self,
        conn: &mut ConnectionManager,
    ) -> Result<Option<u64>, RedisSinkError> {
        let value: Option<String> = conn.get(&self.checkpoint_key).await?;
        Ok(value.and_then(|v| self.parse_checkpoint(&v)))
    }

    /// The sequence in a checkpoint value, if this store wrote it.
    fn parse_checkpoint(&self, value: &str) -> Option<u64> {
        let (store_id, sequence) = value.rsplit_once(':')?;
        (store_id == self.store_id).then(|| sequence.parse().ok())?
    }

    /// Where to resume: Redis's checkpoint, or, when it has none of ours, the
    /// point a full rewrite from the stored outputs reaches.
    async fn recover_position(
        &self,
        conn: &mut ConnectionManager,
        wake: &Notify,
        health: &SinkHealth,
    ) -> Result<u64, RedisSinkError> {
        let value: Option<String> = conn.get(&self.checkpoint_key).await?;
        if let Some(sequence) = value.as_deref().and_then(|v| self.parse_checkpoint(v)) {
            // After a crash the store may bring back entries applied before.
            super::release_outbox::<RedisSinkError>(&self.store, SINK, sequence).await?;
            self.applied.send_replace(sequence);
            return Ok(sequence);
        }
        // No checkpoint and no key of these views: Redis holds nothing any
        // store's sink wrote (or lost it all), so a first snapshot may fill
        // it as it goes. Keys without a checkpoint (it was deleted, or
        // another checkpoint key names this target) stay readable until a
        // complete snapshot replaces them: sweeping them before it emptied
        // the cache for as long as the snapshot took.
        let target_is_empty = value.is_none() && !self.holds_view_keys(conn).await?;
        self.rewrite_lost_data(conn, wake, health, target_is_empty)
            .await
    }

    /// Rewrites every document after Redis lost them (or before the first
    /// write ever) and returns the outbox sequence the rewrite covers.
    async fn rewrite_lost_data(
        &self,
        conn: &mut ConnectionManager,
        wake: &Notify,
        health: &SinkHealth,
        target_is_empty: bool,
    ) -> Result<u64, RedisSinkError> {
        let store = Arc::clone(&self.store);
        let produced =
            tokio::task::spawn_blocking(move || store.last_outbox_sequence(SINK)).await??;
        if produced > 0 {
            tracing::warn!(
                checkpoint_key = %self.checkpoint_key,
                "redis has no checkpoint of this state store: rewriting every cache document"
            );
            health.data_lost();
        }
        let sequence = self.rewrite_all(conn, wake, target_is_empty).await?;
        health.rewritten();
        self.applied.send_replace(sequence);
        Ok(sequence)
    }

    /// Writes every stored output, read at one consistent point, then sweeps
    /// the keys none has and sets the checkpoint to the outbox sequence of
    /// that point: a key that stays is overwritten, never missing meanwhile.
    /// Until the state store holds a completed snapshot (a new store's first
    /// one included), waits, leaving Redis as it is, unless `target_is_empty`
    /// ([`super::stream_outputs`]).
    async fn rewrite_all(
        &self,
        conn: &mut ConnectionManager,
        wake: &Notify,
        target_is_empty: bool,
    ) -> Result<u64, RedisSinkError> {
        let mut told = false;
        loop {
            // A FLUSHALL during the rewrite deletes this marker with the
            // documents written so far: the rewrite's end must not set the
            // checkpoint over them (the twenty-first trial lost 690 documents
            // for good that way). It is set with the first write, so a
            // rewrite that waits for a snapshot leaves Redis as it is.
            let mut marked = false;
            let (mut chunks, reader) = super::stream_outputs(
                &self.outputs,
                SINK,
                self.views.clone(),
                target_is_empty,
                ENTRIES_PER_BATCH,
            );
            let mut written = 0usize;
            let mut keys = HashSet::new();
            while let Some(chunk) = chunks.recv().await {
                let mut pipe = redis::pipe();
                if !std::mem::replace(&mut marked, true) {
                    pipe.set(&self.checkpoint_key, self.rewrite_marker())
                        .ignore();
                }
                for (_, output) in &chunk {
                    pipe.set(&output.key, &output.document).ignore();
                }
                pipe.query_async::<()>(conn).await?;
                written += chunk.len();
                keys.extend(chunk.into_iter().map(|(_, output)| output.key));
            }
            match reader.await?? {
                Some(sequence) => {
                    if !marked {
                        let _: () = conn
                            .set(&self.checkpoint_key, self.rewrite_marker())
                            .await?;
                    }
                    if self.finish_rewrite(conn, &keys, written, sequence).await? {
                        return Ok(sequence);
                    }
                    tracing::warn!(
                        checkpoint_key = %self.checkpoint_key,
                        "redis lost its data during the rewrite (a FLUSHALL, or a restart): \
                         rewriting every cache document again"
                    );
                }
                None => super::wait_for_snapshot(SINK, &mut told, wake).await,
            }
        }
    }

    /// Sweeps what a rewrite did not write, and records the sequence it
    /// covers, unless Redis lost the rewrite's marker meanwhile: then the
    /// documents written before the loss are gone too, and it returns false.
    async fn finish_rewrite(
        &self,
        conn: &mut ConnectionManager,
        keys: &HashSet<String>,
        written: usize,
        sequence: u64,
    ) -> Result<bool, RedisSinkError> {
        let swept = self.sweep(conn, keys).await?;
        let set: i64 = redis::cmd("EVAL")
            .arg(SET_CHECKPOINT_IF)
            .arg(1)
            .arg(&self.checkpoint_key)
            .arg(self.rewrite_marker())
            .arg(self.checkpoint_value(sequence))
            .query_async(conn)
            .await?;
        if set == 0 {
            return Ok(false);
        }
        super::release_outbox::<RedisSinkError>(&self.store, SINK, sequence).await?;
        tracing::info!(
            documents = written,
            swept,
            sequence,
            "redis rewritten from the state store"
        );
        Ok(true)
    }

    /// viewkeeper's own keys, which a key prefix may cover (`{id}` covers
    /// every key): its checkpoint and the claims.
    fn is_bookkeeping(&self, key: &str) -> bool {
        key == self.checkpoint_key || key.starts_with(CLAIM_KEY_PREFIX)
    }

    /// Whether any key is under a cache view's key prefix.
    async fn holds_view_keys(&self, conn: &mut ConnectionManager) -> Result<bool, RedisSinkError> {
        for prefix in &self.key_prefixes {
            let pattern = format!("{}*", glob_escape(prefix));
            let mut cursor: u64 = 0;
            loop {
                let (next, found) = scan_page(conn, &pattern, cursor).await?;
                if found.iter().any(|key| !self.is_bookkeeping(key)) {
                    return Ok(true);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(false)
    }

    /// Deletes every key under a cache view's key prefix that is not in
    /// `keep` (the stored outputs): documents of roots deleted while the
    /// data was elsewhere, or left by another deployment. Returns how many.
    async fn sweep(
        &self,
        conn: &mut ConnectionManager,
        keep: &HashSet<String>,
    ) -> Result<usize, RedisSinkError> {
        let mut swept = 0;
        for prefix in &self.key_prefixes {
            let pattern = format!("{}*", glob_escape(prefix));
            let mut cursor: u64 = 0;
            loop {
                let (next, found) = scan_page(conn, &pattern, cursor).await?;
                let stale: Vec<&String> = found
                    .iter()
                    .filter(|key| !keep.contains(*key) && !self.is_bookkeeping(key))
                    .collect();
                if !stale.is_empty() {
                    let _: () = conn.del(&stale).await?;
                    swept += stale.len();
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(swept)
    }
}

/// This machine's name, as claims record it; empty when unknown.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// Whether the claim `holder` (`<store> (process <pid> on <host>)`) was
/// made by a process of this machine that is gone.
fn is_dead_here(holder: &str, host: &str) -> bool {
    let Some((_, rest)) = holder.split_once(" (process ") else {
        return false;
    };
    let Some((pid, there)) = rest.trim_end_matches(')').split_once(" on ") else {
        return false;
    };
    !host.is_empty()
        && there == host
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| pid != std::process::id() && !is_running(pid))
}

/// Whether process `pid` of this machine runs: a killed process not yet
/// reaped by its parent is a zombie, and is not (trial 41: a restart after
/// `kill -9` waited for the dead holder's claim, and said another
/// viewkeeper held the keys).
fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state …`: the name may hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// One `SCAN` step over the keys matching `pattern`: the next cursor (0 at
/// the end) and the keys found.
async fn scan_page(
    conn: &mut ConnectionManager,
    pattern: &str,
    cursor: u64,
) -> Result<(u64, Vec<String>), RedisSinkError> {
    Ok(redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SWEEP_SCAN_COUNT)
        .query_async(conn)
        .await?)
}

/// `prefix` with Redis glob characters escaped, for `SCAN MATCH`.
fn glob_escape(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim of a process that is gone from this machine is not waited
    /// for; one of a live process, of another machine, or unreadable is.
    #[test]
    fn a_claim_is_dead_only_when_its_process_is_gone_from_this_machine() {
        let host = "build-7";
        let mut exited = std::process::Command::new("true")
            .spawn()
            .expect("a process");
        let gone = exited.id();
        exited.wait().expect("it exits");
        let alive = std::process::id();
        let claim = |pid: u32, host: &str| format!("00ab (process {pid} on {host})");
        assert!(is_dead_here(&claim(gone, host), host));
        assert!(!is_dead_here(&claim(alive, host), host));
        assert!(!is_dead_here(&claim(gone, "elsewhere"), host));
        assert!(!is_dead_here(&claim(gone, host), ""));
        assert!(!is_dead_here("00ab", host));
        assert!(!is_dead_here("00ab (process x on build-7)", host));
    }

    /// A process killed and not yet reaped by its parent (a zombie) is
    /// gone; it was taken for a live holder (trial 41).
    #[test]
    fn a_killed_process_not_yet_reaped_is_gone() {
        let host = "build-7";
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("a process");
        let claim = format!("00ab (process {} on {host})", child.id());
        assert!(!is_dead_here(&claim, host));
        child.kill().expect("killing it");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while is_running(child.id()) {
            assert!(std::time::Instant::now() < deadline, "it became a zombie");
            std::thread::yield_now();
        }
        assert!(is_dead_here(&claim, host));
        child.wait().expect("reaping it");
    }
}
