//! Tests of the pgoutput decoder and the relation cache.

use std::sync::Arc;

use super::*;
use crate::change::{Cell, Change, ChangeKind, Tuple, Value};
use crate::source::pg_text::type_oid::{INT4, INT8, JSONB, NUMERIC, TEXT, TIMESTAMPTZ};

/// Builds message bytes the way the server writes them.
#[derive(Default)]
struct Wire(Vec<u8>);

impl Wire {
    fn tag(tag: u8) -> Self {
        Wire(vec![tag])
    }
    fn byte(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }
    fn i16(mut self, value: i16) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn i32(mut self, value: i32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn i64(mut self, value: i64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn string(mut self, value: &str) -> Self {
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(0);
        self
    }
    fn bytes(mut self, value: &[u8]) -> Self {
        self.0.extend_from_slice(value);
        self
    }
    /// A TupleData part: `None` is NULL, `Some("\u{0}toast")` unchanged TOAST.
    fn tuple(self, cells: &[Option<&str>]) -> Self {
        cells
            .iter()
            .fold(self.i16(cells.len() as i16), |wire, cell| match cell {
                None => wire.byte(b'n'),
                Some("\u{0}toast") => wire.byte(b'u'),
                Some(text) => wire
                    .byte(b't')
                    .i32(text.len() as i32)
                    .bytes(text.as_bytes()),
            })
    }
}

const ORDERS: i32 = 16_384;

/// `public.orders (id int8 key, note text, total numeric, at timestamptz)`.
fn orders_relation() -> Vec<u8> {
    let columns = [
        (1, "id", INT8),
        (0, "note", TEXT),
        (0, "total", NUMERIC),
        (0, "at", TIMESTAMPTZ),
    ];
    let wire = Wire::tag(b'R')
        .i32(ORDERS)
        .string("public")
        .string("orders")
        .byte(b'd');
    columns
        .iter()
        .fold(
            wire.i16(columns.len() as i16),
            |wire, (flags, name, oid)| wire.byte(*flags).string(name).i32(*oid as i32).i32(-1),
        )
        .0
}

fn orders_with_extra_column() -> Vec<u8> {
    let mut wire = Wire::tag(b'R')
        .i32(ORDERS)
        .string("public")
        .string("orders")
        .byte(b'f')
        .i16(2);
    wire = wire.byte(1).string("id").i32(INT8 as i32).i32(-1);
    wire.byte(0).string("meta").i32(JSONB as i32).i32(-1).0
}

fn insert(cells: &[Option<&str>]) -> Vec<u8> {
    Wire::tag(b'I').i32(ORDERS).byte(b'N').tuple(cells).0
}

const ROW: [Option<&str>; 4] = [
    Some("7"),
    Some("hi"),
    Some("12.50"),
    Some("2026-11-24 14:03:07.12+00"),
];
const KEY_ONLY: [Option<&str>; 4] = [Some("7"), None, None, None];

fn sample_messages() -> Vec<Vec<u8>> {
    vec![
        Wire::tag(b'B').i64(0x16_B374_D848).i64(1_000_000).i32(42).0,
        Wire::tag(b'C').byte(0).i64(10).i64(20).i64(30).0,
        Wire::tag(b'O').i64(5).string("upstream").0,
        orders_relation(),
        Wire::tag(b'Y')
            .i32(90_000)
            .string("public")
            .string("mood")
            .0,
        insert(&ROW),
        Wire::tag(b'U').i32(ORDERS).byte(b'N').tuple(&ROW).0,
        Wire::tag(b'U')
            .i32(ORDERS)
            .byte(b'K')
            .tuple(&KEY_ONLY)
            .byte(b'N')
            .tuple(&ROW)
            .0,
        Wire::tag(b'U')
            .i32(ORDERS)
            .byte(b'O')
            .tuple(&ROW)
            .byte(b'N')
            .tuple(&ROW)
            .0,
        Wire::tag(b'D').i32(ORDERS).byte(b'K').tuple(&KEY_ONLY).0,
        Wire::tag(b'D')
            .i32(ORDERS)
            .byte(b'O')
            .tuple(&[Some("7"), Some("\u{0}toast"), None, None])
            .0,
        Wire::tag(b'T').i32(2).byte(3).i32(ORDERS).i32(ORDERS).0,
        Wire::tag(b'M')
            .byte(1)
            .i64(99)
            .string("app")
            .i32(3)
            .bytes(b"abc")
            .0,
    ]
}

fn primed() -> Relations {
    let mut relations = Relations::new();
    let Ok(Message::Relation(body)) = decode(&orders_relation()) else {
        panic!("relation decodes")
    };
    relations.apply_relation(body);
    relations
}

fn changes(relations: &mut Relations, bytes: &[u8]) -> Vec<Change> {
    relations.to_changes(decode(bytes).unwrap()).unwrap()
}

fn values(tuple: &Tuple) -> Vec<Value> {
    let value = |cell: &Cell| match cell {
        Cell::Value(value) => value.clone(),
        Cell::UnchangedToast => Value::Text("<toast>".into()),
    };
    tuple.cells.iter().map(value).collect()
}

fn typed_row() -> Vec<Value> {
    vec![
        Value::Int(7),
        Value::Text("hi".into()),
        Value::Numeric("12.50".into()),
        Value::TimestampTz("2026-11-24T14:03:07.120000Z".into()),
    ]
}

#[test]
fn decodes_transaction_framing() {
    let [begin, commit, origin, ..] = &sample_messages()[..] else {
        unreachable!()
    };
    let expected_begin = BeginBody {
        final_lsn: Lsn(0x16_B374_D848),
        commit_time: PgTimestamp(1_000_000),
        xid: 42,
    };
    assert_eq!(decode(begin), Ok(Message::Begin(expected_begin)));
    let expected_commit = CommitBody {
        flags: 0,
        commit_lsn: Lsn(10),
        end_lsn: Lsn(20),
        commit_time: PgTimestamp(30),
    };
    assert_eq!(decode(commit), Ok(Message::Commit(expected_commit)));
    let expected_origin = OriginBody {
        commit_lsn: Lsn(5),
        name: "upstream".into(),
    };
    assert_eq!(decode(origin), Ok(Message::Origin(expected_origin)));
    assert_eq!(PgTimestamp(0).unix_micros(), 946_684_800_000_000);
}

#[test]
fn decodes_relation_type_truncate_and_logical_message() {
    let Ok(Message::Relation(relation)) = decode(&orders_relation()) else {
        panic!()
    };
    assert_eq!(
        (relation.oid, relation.name.as_str()),
        (ORDERS as u32, "orders")
    );
    assert_eq!(relation.replica_identity, ReplicaIdentity::Default);
    let expected = RelationColumn {
        is_key: true,
        name: "id".into(),
        type_oid: INT8,
        type_modifier: -1,
    };
    assert_eq!(relation.columns[0], expected);
    assert!(!relation.columns[1].is_key);
    let samples = sample_messages();
    let expected_type = TypeBody {
        oid: 90_000,
        namespace: "public".into(),
        name: "mood".into(),
    };
    assert_eq!(decode(&samples[4]), Ok(Message::Type(expected_type)));
    let oids = vec![ORDERS as u32; 2];
    let truncate = TruncateBody {
        cascade: true,
        restart_identity: true,
        relation_oids: oids,
    };
    assert_eq!(decode(&samples[11]), Ok(Message::Truncate(truncate)));
    let message = LogicalMessageBody {
        transactional: true,
        lsn: Lsn(99),
        prefix: "app".into(),
        content: b"abc".to_vec(),
    };
    assert_eq!(decode(&samples[12]), Ok(Message::LogicalMessage(message)));
}

/// A description that gives a stored column another type, or lacks it
/// (dropped or renamed), is kept for the stream, which plans the views
/// again and takes a new snapshot; the same types, another table, or a
/// column not stored are not.
#[test]
fn a_stored_column_described_changed_is_reported_once() {
    let relation = |bytes: &[u8]| {
        let Message::Relation(body) = decode(bytes).expect("decodes") else {
            panic!("a Relation message")
        };
        body
    };
    let stored = |total_modifier: i32| {
        let columns = [
            ("id".to_string(), (INT8, -1)),
            ("total".to_string(), (NUMERIC, total_modifier)),
        ];
        StoredColumnTypes::from([("public.orders".to_string(), columns.into())])
    };
    let change = |change| StoredColumnChange {
        table: "public.orders".into(),
        column: "total".into(),
        change,
    };
    let mut relations = Relations::new().watching(stored(-1));
    relations.apply_relation(relation(&orders_relation()));
    assert_eq!(relations.take_stored_column_change(), None);
    // `orders` without `total`, as after `DROP COLUMN` or `RENAME COLUMN`.
    relations.apply_relation(relation(&orders_with_extra_column()));
    let dropped = change("was dropped or renamed");
    assert_eq!(relations.take_stored_column_change(), Some(dropped));

    let mut relations = Relations::new().watching(stored(12 << 16 | 3));
    relations.apply_relation(relation(&orders_relation()));
    let retyped = change("changed its type");
    assert_eq!(relations.take_stored_column_change(), Some(retyped));
    assert_eq!(relations.take_stored_column_change(), None);

    let other_table = StoredColumnTypes::from([(
        "public.customers".to_string(),
        [("total".to_string(), (TEXT, -1))].into(),
    )]);
    let mut relations = Relations::new().watching(other_table);
    relations.apply_relation(relation(&orders_relation()));
    assert_eq!(relations.take_stored_column_change(), None);
}

#[test]
fn decodes_every_kind_of_tuple_cell() {
    let bytes = Wire::tag(b'I')
        .i32(1)
        .byte(b'N')
        .i16(4)
        .byte(b'n')
        .byte(b'u');
    let bytes = bytes
        .byte(b't')
        .i32(2)
        .bytes(b"hi")
        .byte(b'b')
        .i32(1)
        .bytes(&[9])
        .0;
    let Ok(Message::Insert(insert)) = decode(&bytes) else {
        panic!()
    };
    let expected = [
        TupleCell::Null,
        TupleCell::UnchangedToast,
        TupleCell::Text("hi".into()),
        TupleCell::Binary(vec![9]),
    ];
    assert_eq!(insert.new, expected);
}

#[test]
fn errors_name_the_message_and_the_problem() {
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        decode(b"Z"),
        Err(DecodeError::UnknownMessageType { found: b'Z' })
    );
    let truncated = decode(&Wire::tag(b'B').i64(1).0).unwrap_err();
    assert_eq!(
        truncated.to_string(),
        "Begin message ends early: commit timestamp needs 8 bytes, 0 left"
    );
    let bad_name = decode(&Wire::tag(b'R').i32(1).string("public").bytes(b"\xff\0").0).unwrap_err();
    assert_eq!(
        bad_name,
        DecodeError::InvalidUtf8 {
            message: "Relation",
            field: "relation name"
        }
    );
    let unterminated = decode(&Wire::tag(b'Y').i32(1).bytes(b"public").0).unwrap_err();
    assert_eq!(
        unterminated,
        DecodeError::UnterminatedString {
            message: "Type",
            field: "namespace"
        }
    );
    let bad_marker = decode(&Wire::tag(b'D').i32(1).byte(b'N').tuple(&[None]).0).unwrap_err();
    assert!(
        bad_marker
            .to_string()
            .starts_with("Delete message: expected old tuple marker"),
        "{bad_marker}"
    );
    let bad_kind = decode(&Wire::tag(b'I').i32(1).byte(b'N').i16(1).byte(b'x').0).unwrap_err();
    assert!(matches!(
        bad_kind,
        DecodeError::UnexpectedByte {
            message: "Insert",
            found: b'x',
            ..
        }
    ));
    let negative = decode(&Wire::tag(b'T').i32(-1).byte(0).0).unwrap_err();
    assert_eq!(
        negative.to_string(),
        "Truncate message: relation count is negative (-1)"
    );
    let trailing = decode(&Wire::tag(b'O').i64(5).string("x").byte(0).0).unwrap_err();
    assert_eq!(
        trailing,
        DecodeError::TrailingBytes {
            message: "Origin",
            count: 1
        }
    );
}

#[test]
fn huge_claimed_counts_fail_without_allocating() {
    let truncate = decode(&Wire::tag(b'T').i32(i32::MAX).byte(0).i32(1).0);
    assert!(matches!(
        truncate,
        Err(DecodeError::Truncated {
            message: "Truncate",
            ..
        })
    ));
    let content = decode(&Wire::tag(b'M').byte(0).i64(1).string("p").i32(i32::MAX).0);
    assert!(matches!(
        content,
        Err(DecodeError::Truncated {
            message: "Message",
            ..
        })
    ));
}

/// xorshift64: deterministic noise without a dependency.
fn noise(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Decodes and converts, which must return, never panic.
fn exercise(relations: &mut Relations, bytes: &[u8]) -> bool {
    let decoded = decode(bytes);
    if let Ok(message) = decoded.clone() {
        let _ = relations.to_changes(message);
    }
    decoded.is_ok()
}

#[test]
fn never_panics_on_prefixes_mutations_or_noise() {
    let mut relations = primed();
    let mut seed = 0x9E37_79B9_7F4A_7C15;
    for message in sample_messages() {
        assert!(exercise(&mut relations, &message));
        for cut in 0..message.len() {
            assert!(
                !exercise(&mut relations, &message[..cut]),
                "prefix of {cut} bytes decoded"
            );
        }
        for _ in 0..2_000 {
            let mut mutated = message.clone();
            let position = noise(&mut seed) as usize % mutated.len();
            mutated[position] = noise(&mut seed) as u8;
            exercise(&mut relations, &mutated);
        }
    }
    for _ in 0..20_000 {
        let length = noise(&mut seed) as usize % 64;
        let mut bytes: Vec<u8> = (0..length).map(|_| noise(&mut seed) as u8).collect();
        if let Some(first) = bytes.first_mut() {
            *first = b"BCORYIUDTM"[*first as usize % 10];
        }
        exercise(&mut relations, &bytes);
    }
}

#[test]
fn relation_messages_fill_the_cache_and_produce_no_change() {
    let mut relations = Relations::new();
    assert_eq!(changes(&mut relations, &orders_relation()), Vec::new());
    let info = relations.relation(ORDERS as u32).unwrap();
    assert_eq!(&**info.table(), "public.orders");
    assert_eq!(info.key_columns(), ["id"]);
    assert_eq!(info.replica_identity().as_char(), 'd');
    assert_eq!(info.columns().len(), 4);
}

#[test]
fn insert_becomes_a_typed_tuple_sharing_column_names() {
    let mut relations = primed();
    let first = changes(&mut relations, &insert(&ROW));
    let second = changes(&mut relations, &insert(&ROW));
    let [
        Change {
            table,
            kind: ChangeKind::Insert { new },
        },
    ] = &first[..]
    else {
        panic!("{first:?}")
    };
    assert_eq!(&**table, "public.orders");
    assert_eq!(values(new), typed_row());
    assert_eq!(&*new.columns, ["id", "note", "total", "at"]);
    let ChangeKind::Insert { new: other } = &second[0].kind else {
        panic!()
    };
    assert!(Arc::ptr_eq(&new.columns, &other.columns));
}

#[test]
fn update_carries_the_old_tuple_only_when_sent() {
    let mut relations = primed();
    let samples = sample_messages();
    let plain = changes(&mut relations, &samples[6]);
    assert!(
        matches!(&plain[0].kind, ChangeKind::Update { old: None, new } if values(new) == typed_row())
    );
    let key = changes(&mut relations, &samples[7]);
    let ChangeKind::Update { old: Some(old), .. } = &key[0].kind else {
        panic!("{key:?}")
    };
    assert_eq!(&*old.columns, ["id"]);
    assert_eq!(values(old), [Value::Int(7)]);
    let full = changes(&mut relations, &samples[8]);
    let ChangeKind::Update { old: Some(old), .. } = &full[0].kind else {
        panic!("{full:?}")
    };
    assert_eq!(values(old), typed_row());
}

#[test]
fn delete_keeps_key_columns_or_the_full_row() {
    let mut relations = primed();
    let samples = sample_messages();
    let key = changes(&mut relations, &samples[9]);
    let ChangeKind::Delete { old } = &key[0].kind else {
        panic!("{key:?}")
    };
    assert_eq!(
        (&*old.columns, values(old)),
        (&["id".to_owned()][..], vec![Value::Int(7)])
    );
    let full = changes(&mut relations, &samples[10]);
    let ChangeKind::Delete { old } = &full[0].kind else {
        panic!("{full:?}")
    };
    assert_eq!(old.get("note"), Some(&Cell::UnchangedToast));
    assert_eq!(old.get("total"), Some(&Cell::Value(Value::Null)));
}

#[test]
fn truncate_becomes_one_change_per_relation() {
    let mut relations = primed();
    let truncated = changes(&mut relations, &sample_messages()[11]);
    assert_eq!(truncated.len(), 2);
    assert!(
        truncated
            .iter()
            .all(|c| c.kind == ChangeKind::Truncate && &*c.table == "public.orders")
    );
}

#[test]
fn changes_for_unknown_relations_are_errors_naming_the_oid() {
    let mut relations = Relations::new();
    let error = relations
        .to_changes(decode(&insert(&ROW)).unwrap())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Insert message for relation OID 16384, which no Relation message has described"
    );
    let truncate = decode(&Wire::tag(b'T').i32(1).byte(0).i32(77).0).unwrap();
    assert_eq!(
        relations.to_changes(truncate),
        Err(DecodeError::UnknownRelation {
            message: "Truncate",
            oid: 77
        })
    );
}

#[test]
fn a_later_relation_message_replaces_the_description() {
    let mut relations = primed();
    let before = changes(&mut relations, &insert(&ROW));
    changes(&mut relations, &orders_with_extra_column());
    let after = changes(&mut relations, &insert(&[Some("8"), Some(r#"{"a":1}"#)]));
    let ChangeKind::Insert { new } = &after[0].kind else {
        panic!()
    };
    assert_eq!(&*new.columns, ["id", "meta"]);
    assert_eq!(
        values(new),
        [Value::Int(8), Value::Json(r#"{"a":1}"#.into())]
    );
    let ChangeKind::Insert { new: old_version } = &before[0].kind else {
        panic!()
    };
    assert!(!Arc::ptr_eq(&new.columns, &old_version.columns));
    assert_eq!(
        relations
            .relation(ORDERS as u32)
            .unwrap()
            .replica_identity(),
        ReplicaIdentity::Full
    );
}

#[test]
fn tuple_width_must_match_the_relation() {
    let mut relations = primed();
    let error = relations
        .to_changes(decode(&insert(&[Some("1")])).unwrap())
        .unwrap_err();
    let expected = DecodeError::ColumnCountMismatch {
        message: "Insert",
        table: "public.orders".into(),
        expected: 4,
        found: 1,
    };
    assert_eq!(error, expected);
}

#[test]
fn binary_cells_convert_when_possible() {
    let mut relations = Relations::new();
    let relation = Wire::tag(b'R')
        .i32(1)
        .string("")
        .string("t")
        .byte(b'n')
        .i16(2);
    let relation = relation
        .byte(0)
        .string("n")
        .i32(INT4 as i32)
        .i32(-1)
        .byte(0)
        .string("x")
        .i32(NUMERIC as i32)
        .i32(-1);
    changes(&mut relations, &relation.0);
    assert_eq!(&**relations.relation(1).unwrap().table(), "pg_catalog.t");
    let row = |numeric: u8| {
        let wire = Wire::tag(b'I')
            .i32(1)
            .byte(b'N')
            .i16(2)
            .byte(b'b')
            .i32(4)
            .bytes(&5i32.to_be_bytes());
        wire.byte(numeric).0
    };
    let converted = changes(&mut relations, &row(b'n'));
    let ChangeKind::Insert { new } = &converted[0].kind else {
        panic!()
    };
    assert_eq!(values(new), [Value::Int(5), Value::Null]);
    let mut unsupported = row(b'b');
    unsupported.extend_from_slice(&[0, 0, 0, 1, 0]);
    let error = relations
        .to_changes(decode(&unsupported).unwrap())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("column x (type numeric, OID 1700)"),
        "{error}"
    );
}
