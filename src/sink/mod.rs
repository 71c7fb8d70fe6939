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

pub mod redis;
pub mod search;
