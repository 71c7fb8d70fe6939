//! Outbox puts read back from the log after a restart, made whole before
//! any sink reads them. The log keeps a put as the root it is the output of
//! and its key, not its document (documents were the largest part of what
//! it carried, and so set how often a checkpoint slowed the engine), so
//! each is computed again here from the stored rows, as the engine
//! computed it.
//!
//! Why the document of now is right in the place of the one logged: a
//! root's output record (key and document digest) is written in the same
//! transaction as each of its puts, and an entry is a final effect. So when
//! the rows give the output recorded now, putting it early is what the
//! root's last put does anyway. When the root's recorded output has another
//! key, or none, a later entry deleted the key (and any later put of it
//! follows), so a delete here ends the same. When the rows do not give the
//! recorded output (a snapshot cut short, a view whose definition changed
//! while stopped, a view no longer planned), the entries up to this one are
//! dropped, and the sink rewrites its target from the state store, as it
//! does after entries were dropped for memory.

use super::{EngineError, dead_letters, document};
use crate::plan::Plan;
use crate::state::{
    LoggedPut, PlainAllowance, PreparedOutput, SettledPut, StateReader, Store, output_record_key,
};

/// How the logged puts of a start were settled.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SettledPuts {
    pub recomputed: usize,
    pub deleted: usize,
    /// Puts the rows could not give again: their sinks rewrite their targets.
    pub unknown: usize,
    /// Puts dropped before they were reached, with an older unknown one or
    /// for the outboxes' memory budget: their sinks rewrite their targets.
    pub dropped: usize,
}

/// Makes every logged put of the store whole; a no-op once they all are
/// (every start after the first of a process, and a store that was closed
/// after a checkpoint). Starts a checkpoint when it computed any, which
/// keeps them whole for the next start.
pub(super) fn settle(
    store: &Store,
    plan: &Plan,
    max_document_bytes: usize,
) -> Result<SettledPuts, EngineError> {
    let mut logged = store.logged_puts()?;
    let mut settled = SettledPuts::default();
    if logged.is_empty() {
        return Ok(settled);
    }
    // Newest first: when the outboxes outgrow their budget again as entries
    // become whole (a sink far behind before the crash), the oldest entries
    // are dropped before they are computed for nothing; and a put the rows
    // no longer give drops the older ones with it.
    logged.sort_by(|a, b| (&b.sink, b.sequence).cmp(&(&a.sink, a.sequence)));
    // Rows stored for other views' columns (the view files changed while
    // stopped) do not fit this plan: nothing is computed from them before
    // the start narrows them or takes a new snapshot.
    let rows_fit = store.layout()?.as_deref() == Some(plan.layout().as_str());
    let reader = store.reader()?;
    for put in &logged {
        if !store.outbox_holds(&put.sink, put.sequence) {
            settled.dropped += 1;
            continue;
        }
        let outcome = if rows_fit {
            settle_one(&reader, plan, put, max_document_bytes)?
        } else {
            SettledPut::Unknown
        };
        match &outcome {
            SettledPut::Put(_) => settled.recomputed += 1,
            SettledPut::Delete => settled.deleted += 1,
            SettledPut::Unknown => {
                settled.unknown += 1;
                let why = if rows_fit {
                    "it does not match the stored rows (a snapshot cut short, or a view \
                     changed or removed while stopped)"
                } else {
                    "the views read other columns than the stored rows hold"
                };
                tracing::warn!(
                    sink = %put.sink,
                    view = %put.put.view,
                    key = %put.put.key,
                    "an outbox put read back from the state log cannot be computed again: \
                     {why}; this and the sink's older entries are dropped, and it rewrites \
                     its target from the state store"
                );
            }
        }
        store.settle_logged_put(put, outcome);
    }
    if settled.recomputed + settled.deleted > 0 {
        store.start_checkpoint_now()?;
    }
    tracing::info!(
        recomputed = settled.recomputed,
        deleted = settled.deleted,
        unknown = settled.unknown,
        dropped = settled.dropped,
        "outbox puts read back from the state log made whole"
    );
    Ok(settled)
}

fn settle_one(
    reader: &StateReader,
    plan: &Plan,
    logged: &LoggedPut,
    max_document_bytes: usize,
) -> Result<SettledPut, EngineError> {
    let put = &logged.put;
    let Some(view) = plan.views.iter().find(|view| view.name == put.view) else {
        return Ok(SettledPut::Unknown);
    };
    let Some(record) = reader.output_record(&put.view, &put.pk)? else {
        return Ok(SettledPut::Delete);
    };
    if output_record_key(record)? != put.key {
        return Ok(SettledPut::Delete);
    }
    let output = document::compute_output(reader, view, &put.pk)?
        .and_then(|output| dead_letters::within_limit(output, max_document_bytes))
        .ok()
        .flatten()
        .map(|output| PreparedOutput::new(&view.name, &put.pk, output, &PlainAllowance::none()));
    let recorded = output
        .as_ref()
        .is_some_and(|output| output.is_recorded_as(record));
    // A root left pending by a fan-out past `batch_max_roots` is refreshed
    // before the stream goes on, from these rows: that refresh puts this
    // output, or deletes the key when the rows give another or none.
    let refreshed_next = !recorded && reader.is_pending(&put.view, &put.pk)?;
    Ok(match output {
        Some(output) if recorded || (refreshed_next && output.key == put.key) => {
            SettledPut::Put(output)
        }
        _ if refreshed_next => SettledPut::Delete,
        _ => SettledPut::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::change::{Cell, Change, ChangeBatch, ChangeKind, Lsn, Tuple, Value};
    use crate::engine::Engine;
    use crate::engine::output_reader::tests::{engine, engine_with, snapshot_taken, wider_engine};
    use crate::state::{OutboxEntry, OutboxOp, OutboxRead, StoreError, StoreOptions};
    use crate::view::Catalog;

    const SINK: &str = crate::sink::redis::SINK;

    fn thing(cells: Vec<Value>) -> Tuple {
        Tuple {
            columns: ["id", "name"][..cells.len()]
                .iter()
                .map(|c| c.to_string())
                .collect(),
            cells: cells.into_iter().map(Cell::Value).collect(),
        }
    }

    /// Renames thing 2 and deletes thing 3, in one transaction.
    fn rename_two_delete_three(engine: &Engine) {
        let change = |kind| Change {
            table: "public.things".into(),
            kind,
        };
        let batch = ChangeBatch {
            changes: vec![
                change(ChangeKind::Update {
                    old: None,
                    new: thing(vec![Value::Int(2), Value::Text("bee".into())]),
                }),
                change(ChangeKind::Delete {
                    old: thing(vec![Value::Int(3)]),
                }),
            ],
            commit_end: Some(Lsn(2)),
            commit_time_micros: 0,
        };
        engine.apply(&batch).unwrap();
    }

    fn outbox(engine: &Engine) -> OutboxRead {
        engine.store.outbox_after(SINK, 0, usize::MAX).unwrap()
    }

    fn put(key: &str, document: &str) -> OutboxEntry {
        OutboxEntry {
            view: "thing_cache".into(),
            op: OutboxOp::Put {
                key: key.into(),
                document: document.into(),
            },
        }
    }

    fn delete(key: &str) -> OutboxEntry {
        OutboxEntry {
            view: "thing_cache".into(),
            op: OutboxOp::Delete { key: key.into() },
        }
    }

    fn log_bytes(dir: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        for file in std::fs::read_dir(dir.join("state")).unwrap() {
            let path = file.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("wal-")
            {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        bytes
    }

    /// The log holds no document; after a restart, each put is the root's
    /// document computed from the rows, or a delete when the root's output
    /// is gone, and the sink reads what it would have read without the
    /// restart, but for earlier documents of a root, which its later puts
    /// replace anyway.
    #[test]
    fn a_restart_makes_each_logged_put_whole_from_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        snapshot_taken(&engine, &["ant", "bug", "cicada"]);
        rename_two_delete_three(&engine);
        // An empty commit after the batch's makes its entries durable, so
        // readable.
        engine.store.write(|_| Ok::<_, StoreError>(())).unwrap();
        let OutboxRead::Entries(before) = outbox(&engine) else {
            panic!("a gap before the restart");
        };
        let documents: Vec<&str> = before
            .iter()
            .filter_map(|(_, entry)| match &entry.op {
                OutboxOp::Put { document, .. } => Some(document.as_str()),
                OutboxOp::Delete { .. } => None,
            })
            .collect();
        assert_eq!(documents.len(), 4, "{before:?}");
        let log = log_bytes(dir.path());
        for document in documents {
            assert!(
                !log.windows(document.len())
                    .any(|w| w == document.as_bytes()),
                "the log holds {document}"
            );
        }
        drop(engine);

        let engine = self::engine(dir.path());
        assert_eq!(engine.store.logged_puts().unwrap().len(), 4);
        let settled = engine.settle_logged_puts().unwrap();
        assert_eq!(
            settled,
            SettledPuts {
                recomputed: 3,
                deleted: 1,
                ..SettledPuts::default()
            }
        );
        let OutboxRead::Entries(after) = outbox(&engine) else {
            panic!("a gap after the restart");
        };
        // Thing 2's first put is its document of now, and thing 3's put a
        // delete; the rest is as it was.
        let expected: Vec<(u64, OutboxEntry)> = before
            .into_iter()
            .map(|(sequence, entry)| {
                let entry = match entry.op.key() {
                    "thing:2" if matches!(entry.op, OutboxOp::Put { .. }) => {
                        put("thing:2", r#"{"id":2,"name":"bee"}"#)
                    }
                    "thing:3" => delete("thing:3"),
                    _ => entry,
                };
                (sequence, entry)
            })
            .collect();
        assert_eq!(after, expected);
        assert!(engine.store.logged_puts().unwrap().is_empty());
        assert_eq!(engine.settle_logged_puts().unwrap(), SettledPuts::default());
        drop(engine);

        // The checkpoint the settle started keeps them whole: the next
        // start computes nothing again, and its sink reads the same.
        let engine = self::engine(dir.path());
        assert!(engine.store.logged_puts().unwrap().is_empty());
        assert_eq!(engine.settle_logged_puts().unwrap(), SettledPuts::default());
        let OutboxRead::Entries(again) = outbox(&engine) else {
            panic!("a gap after the second restart");
        };
        assert_eq!(again, expected);
    }

    /// A put whose root's recorded output the rows no longer give (a
    /// snapshot was cut short, the view is no longer planned) drops the
    /// entries up to it: its sink finds a gap, and rewrites its target from
    /// the state store.
    #[test]
    fn a_put_the_rows_no_longer_give_makes_its_sink_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        snapshot_taken(&engine, &["ant", "bug"]);
        // A new snapshot begins (it clears the rows), and the process dies.
        engine.begin_snapshot("").unwrap();
        drop(engine);
        let engine = self::engine(dir.path());
        // The newest put is not given, and drops the older one with it.
        let settled = engine.settle_logged_puts().unwrap();
        assert_eq!((settled.unknown, settled.dropped), (1, 1));
        assert!(matches!(outbox(&engine), OutboxRead::Gap));
        drop(engine);

        let dir = tempfile::tempdir().unwrap();
        let engine = self::engine(dir.path());
        snapshot_taken(&engine, &["ant", "bug"]);
        drop(engine);
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let without_views = Plan::build(&[], &Catalog::default()).unwrap();
        let engine = Engine::new(Arc::new(without_views), Arc::new(store));
        let settled = engine.settle_logged_puts().unwrap();
        assert_eq!((settled.unknown, settled.dropped), (1, 1));
        assert!(matches!(outbox(&engine), OutboxRead::Gap));
    }

    /// Puts that become whole past the outboxes' budget are settled newest
    /// first, and the oldest dropped without being computed: the sink
    /// rewrites its target, as after any overflow.
    #[test]
    fn puts_past_the_outbox_budget_are_dropped_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        // Names that do not compress: each document keeps about 1 KB.
        let names: Vec<String> = (0..20u64)
            .map(|n| {
                (0..250u64)
                    .map(|i| format!("{:04x}", (n * 7_919 + i * 104_729) % 65_521))
                    .collect()
            })
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        snapshot_taken(&engine, &names);
        drop(engine);

        // Room for the twenty named puts, and for about five documents.
        let options = StoreOptions {
            outbox_budget_bytes: 5_000,
            ..StoreOptions::default()
        };
        let engine = engine_with(dir.path(), &options);
        let settled = engine.settle_logged_puts().unwrap();
        assert_eq!(settled.recomputed + settled.dropped, 20, "{settled:?}");
        assert!(settled.dropped > 0 && settled.recomputed > 0, "{settled:?}");
        assert!(matches!(outbox(&engine), OutboxRead::Gap));
        // What is left is the newest entries, whole.
        let kept = (0..20)
            .find_map(
                |after| match engine.store.outbox_after(SINK, after, 100).unwrap() {
                    OutboxRead::Entries(entries) => Some(entries),
                    OutboxRead::Gap => None,
                },
            )
            .expect("the newest entries are kept");
        assert_eq!(kept.last().map(|(sequence, _)| *sequence), Some(20));
        for (_, entry) in kept {
            let OutboxOp::Put { document, .. } = entry.op else {
                panic!("a put became {entry:?}");
            };
            assert!(document.len() > 1_000, "{document}");
        }
    }

    /// Rows stored for other columns than the plan's (view files changed
    /// while stopped) are not computed from: the rows do not fit the plan,
    /// and reading them as if they did panicked (the sixteenth trial). The
    /// puts are dropped, and the sink rewrites its target once the start
    /// has narrowed the rows or taken a new snapshot.
    #[test]
    fn puts_over_rows_of_another_layout_are_not_computed() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        snapshot_taken(&engine, &["ant", "bug"]);
        drop(engine);
        let engine = wider_engine(dir.path());
        let settled = engine.settle_logged_puts().unwrap();
        assert_eq!((settled.unknown, settled.dropped), (1, 1));
        assert!(matches!(outbox(&engine), OutboxRead::Gap));
    }

    /// A root a fan-out left pending (past `batch_max_roots`) has rows newer
    /// than its recorded output, and is refreshed before the stream goes
    /// on: its put becomes its document of these rows, not a reason to
    /// rewrite the whole target (the crash test's small `batch_max_roots`
    /// made every restart rewrite).
    #[test]
    fn a_pending_root_puts_its_document_of_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        snapshot_taken(&engine, &["ant", "bug"]);
        // Thing 2 renamed, its refresh left for later, and the process dies.
        let pk = crate::state::keycode::encode_values(&[Value::Int(2)]);
        engine
            .store
            .write(|w| {
                w.put_row(
                    "public.things",
                    &pk,
                    &[Value::Int(2), Value::Text("bee".into())],
                )?;
                w.add_pending("thing_cache", &pk)
            })
            .unwrap();
        drop(engine);

        let engine = self::engine(dir.path());
        let settled = engine.settle_logged_puts().unwrap();
        assert_eq!(
            settled,
            SettledPuts {
                recomputed: 2,
                ..SettledPuts::default()
            }
        );
        let OutboxRead::Entries(entries) = outbox(&engine) else {
            panic!("a gap");
        };
        let documents: Vec<OutboxEntry> = entries.into_iter().map(|(_, entry)| entry).collect();
        assert!(documents.contains(&put("thing:2", r#"{"id":2,"name":"bee"}"#)));
        assert!(documents.contains(&put("thing:1", r#"{"id":1,"name":"ant"}"#)));
    }
}
