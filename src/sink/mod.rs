//! Sinks drain their outbox from the state store into a target.
//!
//! The contract every sink keeps:
//! - entries are applied in outbox order, in batches;
//! - the sequence of the last applied entry is recorded *atomically with the
//!   data* in the target, so after a crash the sink resumes after it and an
//!   entry applied twice changes nothing;
//! - outbox entries are removed from the state store only after the target
//!   has made them durable;
//! - a target that is down makes the sink retry with backoff; the outbox grows
//!   meanwhile and the rest of the service goes on.

pub mod aggregate;
pub mod redis;
pub mod search;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::{EngineError, OutputReader};
use crate::state::{Store, StoreError, StoredOutput};
use crate::status::SinkHealth;

/// The first pause after a failed attempt; it doubles up to the sink's cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Runs a sink until `shutdown` turns true. `attempt` connects and drains
/// the outbox until it fails; a failure is reported to `health`, logged as
/// `sink`'s, and retried after a pause that doubles up to `max_backoff`.
pub async fn retry_until_shutdown<F, Fut, E>(
    sink: &str,
    health: &SinkHealth,
    mut shutdown: watch::Receiver<bool>,
    max_backoff: Duration,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut backoff = FIRST_BACKOFF;
    let mut warnings = RepeatedWarnings::default();
    while !*shutdown.borrow() {
        let result = tokio::select! {
            result = attempt() => result,
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => backoff = FIRST_BACKOFF,
            Err(error) => {
                let error = brief(error.to_string());
                health.failed(&error);
                match warnings.repeats(&error, std::time::Instant::now()) {
                    None => {
                        tracing::warn!(sink, %error, "sink failed; retrying in {backoff:?}")
                    }
                    Some(0) => tracing::debug!(sink, %error, "sink failed again"),
                    Some(times) => tracing::warn!(
                        sink,
                        %error,
                        "sink still failing ({times} more times since the last warning); \
                         retrying in {backoff:?}"
                    ),
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// An error's text cut to its first 1,000 characters, for the log and
/// `/status`: a Redis transaction of a thousand commands refused alike (out
/// of memory) gave one error of 140 KB, in every log line and `/status`.
fn brief(message: String) -> String {
    const MAX_CHARS: usize = 1_000;
    match message.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes more)", &message[..cut], message.len() - cut),
        None => message,
    }
}

/// How often a sink failing with one message says so again at `warn`: a
/// target down for an hour, or a view whose table belongs to someone else,
/// would otherwise log the same line every 10 s.
const REPEATED_WARNING_EVERY: Duration = Duration::from_secs(300);

/// The last failure a sink warned of, to tell a new one from a repeat.
#[derive(Default)]
struct RepeatedWarnings {
    last: Option<(String, std::time::Instant)>,
    /// Repeats of `last` since it was warned of.
    since: u64,
}

impl RepeatedWarnings {
    /// `None` for a failure to warn of as new; else how many times it came
    /// since its last warning, when it is time to warn of it again, or
    /// `Some(0)` for a repeat to log quietly.
    fn repeats(&mut self, message: &str, now: std::time::Instant) -> Option<u64> {
        match &mut self.last {
            Some((last, warned)) if last == message => {
                self.since += 1;
                if now.duration_since(*warned) < REPEATED_WARNING_EVERY {
                    return Some(0);
                }
                *warned = now;
                Some(std::mem::take(&mut self.since))
            }
            _ => {
                self.last = Some((message.to_owned(), now));
                self.since = 0;
                None
            }
        }
    }
}

/// Asks a sink to rewrite its whole target from the state store (a rebuild
/// on demand), and tells when it has. Requests are numbered; a rewrite done
/// after a request was seen covers it and every earlier one.
#[derive(Clone)]
pub struct RewriteSignal {
    requested: Arc<AtomicU64>,
    completed: Arc<watch::Sender<u64>>,
    /// The sink's own wake-up, so an idle sink sees the request at once.
    wake: Arc<Notify>,
}

impl RewriteSignal {
    pub fn new(wake: Arc<Notify>) -> RewriteSignal {
        RewriteSignal {
            requested: Arc::new(AtomicU64::new(0)),
            completed: Arc::new(watch::channel(0).0),
            wake,
        }
    }

    /// Asks for a rewrite; returns the request's number.
    pub fn request(&self) -> u64 {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        ticket
    }

    /// Waits until a rewrite covering request `ticket` has completed.
    pub async fn completed(&self, ticket: u64) {
        let mut completed = self.completed.subscribe();
        let _ = completed.wait_for(|done| *done >= ticket).await;
    }

    /// For the sink: the newest request not yet covered, if any.
    pub fn pending(&self) -> Option<u64> {
        let requested = self.requested.load(Ordering::SeqCst);
        (requested > *self.completed.borrow()).then_some(requested)
    }

    /// For the sink: a rewrite that began after request `ticket` was seen
    /// has completed.
    pub fn finished(&self, ticket: u64) {
        self.completed.send_replace(ticket);
    }
}

/// Chunks of `(view, output)` pairs, all as of one point.
pub type OutputChunks = mpsc::Receiver<Vec<(String, StoredOutput)>>;

/// How often a waiting sink looks at the state store again (for new outbox
/// entries, a snapshot's end, groups built) besides when it is woken.
const WAKE_POLL: Duration = Duration::from_millis(500);

/// Computes every output of `views` at one consistent point on a blocking
/// thread and streams them in chunks, for a sink that must rewrite its target
/// from scratch. The task returns the outbox sequence of `sink` that point
/// covers, or `None` (having sent nothing) until the state store holds a
/// completed snapshot ([`OutputReader::read_all`], which says when a target
/// that is empty need not wait); it ends early (and says why) if the
/// receiver is dropped.
pub fn stream_outputs(
    outputs: &OutputReader,
    sink: &str,
    views: Vec<String>,
    target_is_empty: bool,
    chunk: usize,
) -> (OutputChunks, JoinHandle<Result<Option<u64>, EngineError>>) {
    let (chunks_tx, chunks) = mpsc::channel(4);
    let (outputs, sink) = (outputs.clone(), sink.to_string());
    let reader = tokio::task::spawn_blocking(move || {
        outputs.read_all(&sink, &views, target_is_empty, chunk, |chunk| {
            // A closed channel means the consumer failed; it reports why.
            let _ = chunks_tx.blocking_send(chunk);
            Ok(())
        })
    });
    (chunks, reader)
}

/// Waits until the sink is woken (the service wakes every sink after a
/// batch with outbox entries, when a snapshot ends, after refreshing roots a
/// crash left pending) or [`WAKE_POLL`] has passed: a wake-up some path
/// forgot then delays a sink by that much, never for good.
pub async fn wait_for_wake(wake: &Notify) {
    let _ = tokio::time::timeout(WAKE_POLL, wake.notified()).await;
}

/// For a sink whose full rewrite found no completed snapshot to read from
/// ([`stream_outputs`] gave `None`): says so once per rewrite (`told`), and
/// waits for a wake-up before the next try. The target stays as it is
/// meanwhile: readers keep the documents a previous store wrote, stale but
/// there, until the rewrite replaces them.
pub async fn wait_for_snapshot(sink: &str, told: &mut bool, wake: &Notify) {
    if !std::mem::replace(told, true) {
        tracing::info!(
            sink,
            "full rewrite waits until the state store holds a complete snapshot; \
             the target is left as it is meanwhile"
        );
    }
    wait_for_wake(wake).await;
}

/// Drops the outbox entries of `sink` up to `upto` once its target holds
/// them: after each applied batch, and after a full rewrite (which covers
/// every entry up to the sequence it was read at, so they must not linger
/// and count as waiting).
pub async fn release_outbox<E>(store: &Arc<Store>, sink: &str, upto: u64) -> Result<(), E>
where
    E: From<StoreError> + From<tokio::task::JoinError>,
{
    let (store, sink) = (Arc::clone(store), sink.to_owned());
    tokio::task::spawn_blocking(move || store.truncate_outbox(&sink, upto)).await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_is_cut_where_a_character_ends() {
        assert_eq!(brief("refused".into()), "refused");
        let long = "OOM command not allowed é; ".repeat(1_000);
        let cut = brief(long.clone());
        let kept = cut.split('…').next().unwrap();
        assert_eq!(kept.chars().count(), 1_000);
        assert!(long.starts_with(kept));
        assert!(cut.ends_with(&format!("({} bytes more)", long.len() - kept.len())));
    }

    #[test]
    fn a_repeated_failure_is_warned_of_once_per_period_and_a_new_one_at_once() {
        let start = std::time::Instant::now();
        let mut warnings = RepeatedWarnings::default();
        assert_eq!(warnings.repeats("down", start), None);
        assert_eq!(
            warnings.repeats("down", start + Duration::from_secs(10)),
            Some(0)
        );
        assert_eq!(
            warnings.repeats("down", start + Duration::from_secs(20)),
            Some(0)
        );
        let later = start + REPEATED_WARNING_EVERY;
        assert_eq!(warnings.repeats("down", later), Some(3));
        assert_eq!(
            warnings.repeats("down", later + Duration::from_secs(10)),
            Some(0)
        );
        assert_eq!(
            warnings.repeats("refused", later + Duration::from_secs(20)),
            None
        );
        assert_eq!(
            warnings.repeats("down", later + Duration::from_secs(30)),
            None
        );
    }
}
