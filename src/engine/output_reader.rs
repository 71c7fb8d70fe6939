//! Every current output of some views, computed from the stored rows at one
//! consistent point: what a sink writes when it rewrites its target (a new
//! index, a Redis that lost its data, a rebuild on demand). The store keeps
//! only each output's key and a digest of its document
//! ([`crate::state::StateWriter::replace_output`]), so documents are
//! computed again here, as the engine computed them.

use std::sync::Arc;

use super::{EngineError, dead_letters, document};
use crate::plan::Plan;
use crate::state::{Store, StoredOutput};

/// Computes outputs for sinks; cheap to clone.
#[derive(Clone)]
pub struct OutputReader {
    plan: Arc<Plan>,
    store: Arc<Store>,
    max_document_bytes: usize,
}

impl OutputReader {
    pub(super) fn new(plan: Arc<Plan>, store: Arc<Store>, max_document_bytes: usize) -> Self {
        OutputReader {
            plan,
            store,
            max_document_bytes,
        }
    }

    /// The store the outputs are read from.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Hands `each_chunk` the output of every root of `views` that has one,
    /// in chunks of `chunk`, all as of one point, and returns the newest
    /// outbox sequence of `sink` at that point: once the target holds these
    /// outputs, it holds every entry up to that sequence.
    pub fn read_all(
        &self,
        sink: &str,
        views: &[String],
        chunk: usize,
        mut each_chunk: impl FnMut(Vec<(String, StoredOutput)>) -> Result<(), EngineError>,
    ) -> Result<u64, EngineError> {
        let reader = self.store.reader()?;
        let sequence = reader.outbox_sequence(sink)?;
        let chunk = chunk.max(1);
        for name in views {
            let Some(view) = self.plan.views.iter().find(|v| &v.name == name) else {
                continue; // not a view of this plan: nothing to write
            };
            let mut batch = Vec::with_capacity(chunk);
            reader.for_each_output_root(name, |pk, _| {
                let output = document::compute_output(&reader, view, pk)?
                    .and_then(|output| dead_letters::within_limit(output, self.max_document_bytes));
                // The engine recorded an output for this root from these
                // very rows, so it computes again; a root that does not has
                // no output to write.
                if let Ok(Some(output)) = output {
                    batch.push((name.clone(), output));
                }
                if batch.len() == chunk {
                    each_chunk(std::mem::take(&mut batch))?;
                }
                Ok::<_, EngineError>(())
            })?;
            if !batch.is_empty() {
                each_chunk(batch)?;
            }
        }
        Ok(sequence)
    }
}
