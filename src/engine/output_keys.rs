//! Keys claimed by one root: a cache view whose key template may give two
//! rows one key (`keys_may_collide` in [`crate::plan`]) writes a document
//! only under a key its root owns, which is the root first in primary-key
//! order among those rendering the key. The others get a dead letter naming
//! it, rather than overwriting its document (and deleting it when their
//! row goes); one gets its output once the owner's output leaves the key.

use super::EngineError;
use super::dead_letters::{self, Outcome, Poison};
use crate::plan::{Plan, ViewPlan};
use crate::state::{Claim, PreparedOutput, ReadRows, Released, StateWriter};

/// A computed document after claiming its key.
pub(super) struct Claimed {
    /// The document when the root owns its key; a poison naming the owner
    /// when another root does.
    pub computed: Outcome<Option<PreparedOutput>>,
    /// Whether the key is newly the root's.
    pub newly_claimed: bool,
    /// The root the key was taken over from, whose output must go once
    /// this root's document is put ([`give_up`]).
    pub taken_from: Option<Vec<u8>>,
    /// The poison is a wait for the key
    /// ([`dead_letters::settle_waiting_for_key`]).
    pub waits_for_key: bool,
}

/// Claims the key of the document computed for root `pk`.
pub(super) fn claim(
    w: &mut StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    pk: &[u8],
    computed: Outcome<Option<PreparedOutput>>,
) -> Result<Claimed, EngineError> {
    let unclaimed = |computed| Claimed {
        computed,
        newly_claimed: false,
        taken_from: None,
        waits_for_key: false,
    };
    let Ok(Some(output)) = &computed else {
        return Ok(unclaimed(computed));
    };
    match w.claim_output_key(&view.name, &output.key, pk)? {
        Claim::Owned { new } => Ok(Claimed {
            computed,
            newly_claimed: new,
            taken_from: None,
            waits_for_key: false,
        }),
        Claim::TakenOver { previous } => Ok(Claimed {
            computed,
            newly_claimed: true,
            taken_from: Some(previous),
            waits_for_key: false,
        }),
        Claim::Taken { owner } => {
            if w.get_row(&view.nodes[0].table, &owner)?.is_none() {
                // The owner's row is gone in this batch, whose refresh of
                // it (after this root's) releases the key to the roots
                // waiting: this one waits without a dead letter, which
                // would name no row and be gone within the batch.
                return Ok(unclaimed(Ok(None)));
            }
            let reason = taken_reason(w, plan, view, &output.key, &owner)?;
            Ok(Claimed {
                waits_for_key: true,
                ..unclaimed(Err(Poison(reason)))
            })
        }
    }
}

/// `previous` lost `key` to `owner`, whose document is put: its output
/// goes without deleting the key, and it waits with a dead letter naming
/// the owner (none when its row is gone in this batch, whose refresh of it
/// follows and would remove the letter).
pub(super) fn give_up(
    w: &mut StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    previous: &[u8],
    owner: &[u8],
    key: &str,
) -> Result<(), EngineError> {
    w.replace_output(&view.name, previous, None)?;
    if w.get_row(&view.nodes[0].table, previous)?.is_some() {
        let reason = Err(Poison(taken_reason(w, plan, view, key, owner)?));
        dead_letters::settle_waiting_for_key::<()>(w, plan, view, previous, reason)?;
    }
    Ok(())
}

/// The dead letter of a root whose document would have `key`, which
/// `owner` holds.
fn taken_reason(
    w: &StateWriter,
    plan: &Plan,
    view: &ViewPlan,
    key: &str,
    owner: &[u8],
) -> Result<String, EngineError> {
    let owner = dead_letters::root_key_text(w, plan, &view.nodes[0].table, owner)?;
    let why = if view.keys_may_collide() {
        "the key template gives both rows this key (a placeholder's value holds the text \
         between placeholders)"
    } else {
        "the key's columns are a unique key, which two rows hold at once only within a \
         transaction, or if the unique constraint was dropped"
    };
    Ok(format!(
        "key \"{key}\" is also the key of the row {owner}, which holds it as the first of \
         such rows in primary-key order: {why}; this row gets its document once the other \
         row's leaves the key"
    ))
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
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::change::{Cell, Change, ChangeBatch, ChangeKind, Lsn, Tuple, Value};
    use crate::engine::Engine;
    use crate::plan::Plan;
    use crate::state::keycode::encode_values;
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
                unique_keys: Vec::new(),
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
        /// document of the row first in key order among those rendering
        /// it, no other key is held, and each other row has a dead letter.
        /// Also across
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
            // A rebuild recomputes every root: the owners stay.
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

    /// The root first in key order takes a key over from the one put
    /// first. A root waiting for a key whose owner's row is deleted in the
    /// batch that also changes the root takes the key with no dead letter
    /// told on the way (the twenty-third trial: it named no row, and was
    /// gone by the batch's end).
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
        let first = (1, 0); // ("a:b", "c"), put first
        let lower = (0, 1); // ("a", "b:c"), first in key order: it takes the key
        let mut rows = BTreeMap::new();
        apply(2, vec![Op::Put(first, 1)], &mut rows);
        apply(3, vec![Op::Put(lower, 2)], &mut rows);
        assert_eq!(engine.store.dead_letter_count("note_cache").unwrap(), 1);
        check_held(&engine, &rows).unwrap();

        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            apply(4, vec![Op::Delete(lower), Op::Put(first, 3)], &mut rows);
        });
        let told = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!told.contains("dead letter"), "{told}");
        check_held(&engine, &rows).unwrap();
    }

    /// Every key a row of `rows` renders holds the document of the row
    /// first in primary-key order among those rendering it, as the outbox
    /// leaves Redis; no other key is held; each other row has a dead letter.
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
        // Key → (the first encoded primary key rendering it, its document).
        let mut owners: BTreeMap<String, (Vec<u8>, serde_json::Value)> = BTreeMap::new();
        for (&pk, body) in rows {
            let encoded = encode_values(&[
                Value::Text(NAMESPACES[pk.0].into()),
                Value::Text(NAMES[pk.1].into()),
            ]);
            let document = serde_json::json!({
                "ns": NAMESPACES[pk.0], "name": NAMES[pk.1], "body": body.to_string(),
            });
            let owner = owners
                .entry(rendered(pk))
                .or_insert((encoded.clone(), document.clone()));
            if encoded < owner.0 {
                *owner = (encoded, document);
            }
        }
        let keys: Vec<&String> = held.keys().collect();
        prop_assert_eq!(keys, owners.keys().collect::<Vec<_>>());
        for (key, document) in &held {
            let document: serde_json::Value = serde_json::from_str(document).unwrap();
            prop_assert_eq!(
                &document,
                &owners[key].1,
                "{} holds another row's document",
                key
            );
        }
        let waiting = rows.len() - owners.len();
        prop_assert_eq!(
            engine.store.dead_letter_count("note_cache").unwrap(),
            waiting as u64
        );
        Ok(())
    }
}
