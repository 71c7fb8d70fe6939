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

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::state::{Store, StoreError, StoredOutput};

/// Chunks of `(view, output)` pairs from a stored-outputs snapshot.
pub type OutputChunks = mpsc::Receiver<Vec<(String, StoredOutput)>>;

/// Reads every stored output of `views` at one consistent point on a blocking
/// thread and streams them in chunks, for a sink that must rewrite its target
/// from scratch. The task returns the outbox sequence of `sink` that point
/// covers; it ends early (and says why) if the receiver is dropped.
pub fn stream_stored_outputs(
    store: &Arc<Store>,
    sink: &str,
    views: Vec<String>,
    chunk: usize,
) -> (OutputChunks, JoinHandle<Result<u64, StoreError>>) {
    let (chunks_tx, chunks) = mpsc::channel(4);
    let (store, sink) = (Arc::clone(store), sink.to_string());
    let reader = tokio::task::spawn_blocking(move || {
        store.outputs_snapshot(&sink, &views, chunk, |chunk| {
            // A closed channel means the consumer failed; it reports why.
            let _ = chunks_tx.blocking_send(chunk);
            Ok(())
        })
    });
    (chunks, reader)
}
