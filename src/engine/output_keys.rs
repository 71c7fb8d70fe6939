//! Keys claimed by one root: a cache view whose key template may give two
//! rows one key (`keys_may_collide` in [`crate::plan`]) writes a document
//! only under a key its root owns. The second root to render a key gets a
//! dead letter naming the first, rather than overwriting its document (and
//! deleting it when the second row goes); it gets its output once the
//! first root's output leaves the key.

use super::EngineError;
use super::dead_letters::{self, Outcome, Poison};
use crate::plan::{Plan, ViewPlan};
use crate::state::{Claim, PreparedOutput, ReadRows, Released, StateWriter};

/// Claims the key of the document computed for root `pk`: the document
/// stands when the root owns the key, and is a poison naming the owner when
/// another root does. Also says whether the key is newly the root's.
pub(super) fn claim(
    w: &mut StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    pk: &[u8],
    computed: Outcome<Option<PreparedOutput>>,
) -> Result<(Outcome<Option<PreparedOutput>>, bool), EngineError> {
    let Ok(Some(output)) = &computed else {
        return Ok((computed, false));
    };
    match w.claim_output_key(&view.name, &output.key, pk)? {
        Claim::Owned { new } => Ok((computed, new)),
        Claim::Taken { owner } => {
            if w.get_row(&view.nodes[0].table, &owner)?.is_none() {
                // The owner's row is gone in this batch, whose refresh of
                // it (after this root's, in key order) releases the key to
                // the roots waiting: this one waits without a dead letter,
                // which would name no row and be gone within the batch.
                return Ok((Ok(None), false));
            }
            let owner = dead_letters::root_key_text(w, plan, &view.nodes[0].table, &owner)?;
            let reason = format!(
                "key \"{}\" is already the key of the row {owner}: the key template gives both \
                 rows this key (a placeholder's value holds the text between placeholders); \
                 this row gets its document once the other row's leaves the key",
                output.key
            );
            Ok((Err(Poison(reason)), false))
        }
    }
}

/// Releases `key`, which root `pk`'s output no longer has.
pub(super) fn release(
    w: &mut StateWriter,
    view: &ViewPlan,
    pk: &[u8],
    key: &str,
) -> Result<Released, EngineError> {
    if !view.claims_keys() {
        return Ok(Released::unclaimed());
    }
    Ok(w.release_output_key(&view.name, key, pk)?)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;
    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::change::{Cell, Change, ChangeBatch, ChangeKind, Lsn, Tuple, Value};
    use crate::engine::Engine;
    use crate::plan::Plan;
    use crate::state::{OutboxOp, OutboxRead, Store, StoreOptions};
    use crate::view::{Catalog, ColumnInfo, TableInfo, parse_view};

    const NOTE_CACHE: &str = "view: note_cache
kind: cache
root: notes
key: \"note:{ns}:{name}\"
fields: { ns: ns, name: name, body: body }
";
    const TABLE: &str = "public.notes";
    /// Values whose keys meet: `("a", "b:c")` and `("a:b", "c")` are both
    /// `note:a:b:c`; `("a", "b")` is alone.
    const NAMESPACES: [&str; 3] = ["a", "a:b", "b"];
    const NAMES: [&str; 3] = ["c", "b:c", "b"];

    type Pk = (usize, usize);

    #[derive(Debug, Clone)]
    enum Op {
        Put(Pk, u8),
        Delete(Pk),
        Move(Pk, Pk),
    }

    fn op() -> impl Strategy<Value = Op> {
        let pk = || (0..NAMESPACES.len(), 0..NAMES.len());
        prop_oneof![
            3 => (pk(), any::<u8>()).prop_map(|(pk, body)| Op::Put(pk, body)),
            1 => pk().prop_map(Op::Delete),
            2 => (pk(), pk()).prop_map(|(from, to)| Op::Move(from, to)),
        ]
    }

    fn engine(dir: &Path) -> Engine {
        let text = |name: &str| ColumnInfo {
            name: name.to_owned(),
            type_oid: 25,
            type_modifier: -1,
            not_null: name != "body",
            is_enum: false,
            array_element: None,
            type_name: "text".to_owned(),
        };
        let mut catalog = Catalog::default();
        catalog.tables.insert(
            TABLE.to_owned(),
            TableInfo {
                columns: vec![text("ns"), text("name"), text("body")],
                primary_key: vec!["ns".to_owned(), "name".to_owned()],
            },
        );
        let view = parse_view(Path::new("views/note_cache.yaml"), NOTE_CACHE).unwrap();
        let plan = Plan::build(&[view], &catalog).unwrap();
        assert!(plan.views[0].claims_keys());
        let store = Store::open(dir, &StoreOptions::default()).unwrap();
        Engine::new(Arc::new(plan), Arc::new(store))
    }

    fn tuple(values: &[&str]) -> Tuple {
        let columns: &[&str] = &["ns", "name", "body"][..values.len()];
        Tuple {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            cells: values
                .iter()
                .map(|v| Cell::Value(Value::Text(v.to_string())))
                .collect(),
        }
    }

    fn row((ns, name): Pk, body: u8) -> Tuple {
        tuple(&[NAMESPACES[ns], NAMES[name], &body.to_string()])
    }

    fn key_of((ns, name): Pk) -> Tuple {
        tuple(&[NAMESPACES[ns], NAMES[name]])
    }

    fn rendered((ns, name): Pk) -> String {
        format!("note:{}:{}", NAMESPACES[ns], NAMES[name])
    }

    /// The change `op` makes to `rows`, if it makes one.
    fn change(rows: &mut BTreeMap<Pk, u8>, op: Op) -> Option<ChangeKind> {
        Some(match op {
            Op::Put(pk, body) => match rows.insert(pk, body) {
                None => ChangeKind::Insert { new: row(pk, body) },
                Some(_) => ChangeKind::Update {
                    old: None,
                    new: row(pk, body),
                },
            },
            Op::Delete(pk) => {
                rows.remove(&pk)?;
                ChangeKind::Delete { old: key_of(pk) }
            }
            Op::Move(from, to) => {
                if from == to || rows.contains_key(&to) {
                    return None;
                }
                let body = rows.remove(&from)?;
                rows.insert(to, body);
                ChangeKind::Update {
                    old: Some(key_of(from)),
                    new: row(to, body),
                }
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the order of inserts, deletes and key changes, and
        /// however they are batched: every key a row renders holds the
        /// document of one row rendering it, no other key is held, and each
        /// row beyond the first of its key has a dead letter. Also across
        /// restarts, after which the outbox's puts, logged by the root they
        /// name, are recomputed from the rows.
        #[test]
        fn a_key_holds_one_of_its_rows_documents_and_the_rest_wait(
            batches in prop::collection::vec(
                (prop::collection::vec(op(), 1..4), prop::bool::weighted(0.2)),
                1..30,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut engine = engine(dir.path());
            engine.begin_snapshot("").unwrap();
            engine.finish_snapshot(Lsn(1)).unwrap();
            let mut rows = BTreeMap::new();
            for (n, (ops, restart)) in batches.into_iter().enumerate() {
                if restart {
                    drop(engine);
                    engine = self::engine(dir.path());
                    let settled = engine.settle_logged_puts().unwrap();
                    prop_assert_eq!(settled.unknown, 0);
                }
                let changes = ops
                    .into_iter()
                    .filter_map(|op| change(&mut rows, op))
                    .map(|kind| Change { table: TABLE.into(), kind })
                    .collect();
                let batch = ChangeBatch {
                    changes,
                    commit_end: Some(Lsn(2 + n as u64)),
                    commit_time_micros: 0,
                };
                engine.apply(&batch).unwrap();
            }
            check_held(&engine, &rows)?;
            // A rebuild recomputes every root in key order: it keeps the owners.
            engine.recompute_view("note_cache", &mut |_, _| {}).unwrap();
            check_held(&engine, &rows)?;
        }
    }

    /// A writer of log lines into memory, to read what a batch told.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A root waiting for a key whose owner's row is deleted in the batch
    /// that also changes the root (refreshed first: it comes first in key
    /// order) takes the key with no dead letter told on the way: it named
    /// no row, and was gone by the batch's end (the twenty-third trial).
    #[test]
    fn a_root_whose_keys_owner_goes_in_its_batch_is_told_no_dead_letter() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        engine.begin_snapshot("").unwrap();
        engine.finish_snapshot(Lsn(1)).unwrap();
        let apply = |lsn: u64, ops: Vec<Op>, rows: &mut BTreeMap<Pk, u8>| {
            let changes = ops
                .into_iter()
                .filter_map(|op| change(rows, op))
                .map(|kind| Change {
                    table: TABLE.into(),
                    kind,
                })
                .collect();
            let batch = ChangeBatch {
                changes,
                commit_end: Some(Lsn(lsn)),
                commit_time_micros: 0,
            };
            engine.apply(&batch).unwrap();
        };
        let owner = (1, 0); // ("a:b", "c")
        let waiting = (0, 1); // ("a", "b:c")
        let mut rows = BTreeMap::new();
        apply(2, vec![Op::Put(owner, 1)], &mut rows);
        apply(3, vec![Op::Put(waiting, 2)], &mut rows);
        assert_eq!(engine.store.dead_letter_count("note_cache").unwrap(), 1);

        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            apply(4, vec![Op::Delete(owner), Op::Put(waiting, 3)], &mut rows);
        });
        let told = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!told.contains("dead letter"), "{told}");
        check_held(&engine, &rows).unwrap();
    }

    /// Every key a row of `rows` renders holds the document of one row
    /// rendering it, as the outbox leaves Redis; no other key is held; each
    /// row beyond the first of its key has a dead letter.
    fn check_held(engine: &Engine, rows: &BTreeMap<Pk, u8>) -> Result<(), TestCaseError> {
        // A durable commit makes every batch's entries readable.
        engine
            .store
            .write(|_| Ok::<_, crate::state::StoreError>(()))
            .unwrap();
        let mut held = BTreeMap::new();
        let OutboxRead::Entries(entries) = engine
            .store
            .outbox_after(crate::sink::redis::SINK, 0, usize::MAX)
            .unwrap()
        else {
            panic!("the outbox overflowed");
        };
        for (_, entry) in entries {
            match entry.op {
                OutboxOp::Put { key, document } => {
                    held.insert(key, document);
                }
                OutboxOp::Delete { key } => {
                    held.remove(&key);
                }
            }
        }
        let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (&pk, body) in rows {
            let document = serde_json::json!({
                "ns": NAMESPACES[pk.0], "name": NAMES[pk.1], "body": body.to_string(),
            });
            by_key
                .entry(rendered(pk))
                .or_default()
                .insert(document.to_string());
        }
        let keys: Vec<&String> = held.keys().collect();
        prop_assert_eq!(keys, by_key.keys().collect::<Vec<_>>());
        for (key, document) in &held {
            let document: serde_json::Value = serde_json::from_str(document).unwrap();
            prop_assert!(
                by_key[key].contains(&document.to_string()),
                "{} holds {}, none of {:?}",
                key,
                document,
                by_key[key]
            );
        }
        let waiting = rows.len() - by_key.len();
        prop_assert_eq!(
            engine.store.dead_letter_count("note_cache").unwrap(),
            waiting as u64
        );
        Ok(())
    }
}
