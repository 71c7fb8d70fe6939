//! Every current output of some views, computed from the stored rows at one
//! consistent point: what a sink writes when it rewrites its target (a new
//! index, a Redis that lost its data, a rebuild on demand). The store keeps
//! only each output's key and a digest of its document
//! ([`crate::state::StateWriter::replace_output`]), so documents are
//! computed again here, as the engine computed them.

use std::sync::Arc;

use super::{EngineError, dead_letters, document};
use crate::plan::Plan;
use crate::state::{StateReader, Store, StoredOutput};

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
    ///
    /// Returns `None`, having read nothing, until the store holds a
    /// completed snapshot (a source position), the first one included, in
    /// the plan's layout. The
    /// rows are partial before it: documents computed from them would differ
    /// from the outputs the snapshot's end diffs against, and a sink that
    /// wrote them would keep them where the diff finds nothing to change.
    /// And a store that is still empty (a new data directory) would give a
    /// sink none at all: it would empty a target that another store filled,
    /// and readers would find nothing there for the whole snapshot. The sink
    /// waits instead and leaves its target as it is meanwhile.
    ///
    /// Except for a target that holds nothing a sink wrote
    /// (`target_is_empty`: no checkpoint at all) while no view has an output
    /// yet: there is nothing to keep readable, and the sink fills it from
    /// the outbox as the first snapshot goes, instead of computing every
    /// document a second time after it.
    pub fn read_all(
        &self,
        sink: &str,
        views: &[String],
        target_is_empty: bool,
        chunk: usize,
        mut each_chunk: impl FnMut(Vec<(String, StoredOutput)>) -> Result<(), EngineError>,
    ) -> Result<Option<u64>, EngineError> {
        // Read first: the layout only ever changes to the plan's (narrowed
        // rows, a new snapshot's start), so a reader made after it holds rows
        // of at least that layout.
        let rows_fit = self.store.layout()?.as_deref() == Some(self.plan.layout().as_str());
        let reader = self.store.reader()?;
        if !reader.rows_complete()? {
            let fill_as_it_goes = target_is_empty && !any_has_outputs(&reader, views)?;
            if !fill_as_it_goes {
                return Ok(None);
            }
        } else if !rows_fit {
            // Rows stored for other columns (the view files changed while
            // stopped): the start narrows them or takes a new snapshot
            // first.
            return Ok(None);
        }
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
        Ok(Some(sequence))
    }
}

/// Whether any root of `views` has a stored output.
fn any_has_outputs(reader: &StateReader, views: &[String]) -> Result<bool, EngineError> {
    for view in views {
        if reader.has_outputs(view)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::Path;

    use super::*;
    use crate::change::{Lsn, Value};
    use crate::engine::Engine;
    use crate::view::{Catalog, ColumnInfo, TableInfo, parse_view};

    const THING_CACHE: &str = "view: thing_cache
kind: cache
root: things
key: \"thing:{id}\"
fields: { id: id, name: name }
";

    /// An engine of one cache view, `thing_cache`, over `public.things`
    /// (`id`, `name`), on a store in `dir`.
    pub(in crate::engine) fn engine(dir: &Path) -> Engine {
        engine_with(dir, &crate::state::StoreOptions::default())
    }

    /// [`engine`] on a store opened with `options`.
    pub(in crate::engine) fn engine_with(
        dir: &Path,
        options: &crate::state::StoreOptions,
    ) -> Engine {
        let store = Store::open(dir, options).unwrap();
        Engine::new(Arc::new(things_plan(false)), Arc::new(store))
    }

    /// An engine whose `thing_cache` also reads a column `size`, on the store
    /// in `dir`: a view file changed while viewkeeper was stopped.
    pub(in crate::engine) fn wider_engine(dir: &Path) -> Engine {
        let store = Store::open(dir, &crate::state::StoreOptions::default()).unwrap();
        Engine::new(Arc::new(things_plan(true)), Arc::new(store))
    }

    /// `thing_cache` over `public.things`, reading its column `size` too
    /// when `with_size`.
    fn things_plan(with_size: bool) -> Plan {
        let column = |name: &str, type_oid| ColumnInfo {
            name: name.to_owned(),
            type_oid,
            type_modifier: -1,
            not_null: true,
            is_enum: false,
            array_element: None,
            type_name: format!("type {type_oid}"),
        };
        let mut catalog = Catalog::default();
        catalog.tables.insert(
            "public.things".to_owned(),
            TableInfo {
                columns: vec![column("id", 20), column("name", 25), column("size", 20)],
                primary_key: vec!["id".to_owned()],
                unique_keys: Vec::new(),
            },
        );
        let file = if with_size {
            THING_CACHE.replace("name: name }", "name: name, size: size }")
        } else {
            THING_CACHE.to_owned()
        };
        let view = parse_view(Path::new("views/thing_cache.yaml"), &file).unwrap();
        Plan::build(&[view], &catalog).unwrap()
    }

    /// A whole snapshot of a thing per name, with ids from 1, at LSN 1.
    pub(in crate::engine) fn snapshot_taken(engine: &Engine, names: &[&str]) {
        engine.begin_snapshot("").unwrap();
        snapshot_rows(engine, names);
        engine.finish_snapshot(Lsn(1)).unwrap();
    }

    /// Loads a thing per name, with ids from 1.
    pub(in crate::engine) fn snapshot_rows(engine: &Engine, names: &[&str]) {
        let rows: Vec<Vec<Value>> = (1..)
            .zip(names)
            .map(|(id, name)| vec![Value::Int(id), Value::Text((*name).to_owned())])
            .collect();
        engine.load_snapshot_rows("public.things", &rows).unwrap();
    }

    /// What a rewrite reads for a target that holds documents.
    fn read_all(reader: &OutputReader) -> Option<(u64, Vec<String>)> {
        read_all_into(reader, false)
    }

    fn read_all_into(reader: &OutputReader, target_is_empty: bool) -> Option<(u64, Vec<String>)> {
        let mut keys = Vec::new();
        let views = ["thing_cache".to_owned()];
        let sequence = reader
            .read_all("redis", &views, target_is_empty, 10, |chunk| {
                keys.extend(chunk.into_iter().map(|(_, output)| output.key));
                Ok(())
            })
            .unwrap();
        sequence.map(|sequence| (sequence, keys))
    }

    /// Until a snapshot is complete the rows are partial or missing: a sink
    /// that rewrote its target from them would keep documents the
    /// snapshot's end, which diffs against the stored outputs, never
    /// corrects, or empty a target another store filled.
    #[test]
    fn nothing_is_read_for_a_rewrite_until_a_snapshot_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let reader = engine.output_reader();
        // A new store: nothing is read before its first snapshot either, so
        // that a sink does not empty a target another store filled.
        assert_eq!(read_all(&reader), None);
        // An empty target has nothing to keep: its sink fills it from the
        // outbox as the first snapshot goes.
        assert_eq!(read_all_into(&reader, true), Some((0, Vec::new())));
        engine.begin_snapshot("").unwrap();
        snapshot_rows(&engine, &["a", "b"]);
        assert_eq!(read_all(&reader), None);
        engine.finish_snapshot(Lsn(1)).unwrap();
        let whole = Some((2, vec!["thing:1".to_owned(), "thing:2".to_owned()]));
        assert_eq!(read_all(&reader), whole);

        // A new snapshot (the slot was lost, the views need new columns)
        // clears the rows first, and has loaded only part of them here.
        engine.begin_snapshot("").unwrap();
        snapshot_rows(&engine, &["a"]);
        assert_eq!(read_all(&reader), None);
        // The views have outputs: even an empty target waits for the rows.
        assert_eq!(read_all_into(&reader, true), None);
        snapshot_rows(&engine, &["a", "b"]);
        engine.finish_snapshot(Lsn(2)).unwrap();
        assert_eq!(read_all(&reader), whole);
    }

    /// Rows stored for other columns than the plan's (the view files changed
    /// while stopped, and the start has not yet narrowed the rows or begun a
    /// new snapshot) are not read for a rewrite: computing documents from
    /// them read past their end.
    #[test]
    fn nothing_is_read_for_a_rewrite_from_rows_of_another_layout() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        snapshot_taken(&engine, &["a", "b"]);
        drop(engine);
        let wider = wider_engine(dir.path());
        assert_eq!(read_all(&wider.output_reader()), None);
    }
}
