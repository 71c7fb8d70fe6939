//! The change model: what a source emits and the engine consumes.
//!
//! A [`ChangeBatch`] holds row [`Change`]s of whole committed transactions, in
//! commit order, and the [`Lsn`] up to which they are complete. Values are typed
//! ([`Value`]) as soon as they leave the source, so the engine, the state store
//! and the sinks never parse PostgreSQL text again.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A PostgreSQL log sequence number: a byte position in the write-ahead log.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl Lsn {
    /// Parses PostgreSQL's `X/Y` notation.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        Some(Lsn((hi << 32) | lo))
    }
}

/// One typed column value.
///
/// Temporal values are kept in their canonical text form (see the README's
/// "Value encoding"), which sorts and compares correctly as text; numerics are
/// kept as PostgreSQL's exact decimal text, never as a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(#[serde(with = "float_serde")] f64),
    /// `numeric`, exactly as PostgreSQL prints it (`12.50`, `NaN`).
    Numeric(String),
    Text(String),
    /// `date`: `YYYY-MM-DD`.
    Date(String),
    /// `timestamp` without time zone: `YYYY-MM-DDTHH:MM:SS.ffffff`.
    Timestamp(String),
    /// `timestamptz` as an instant in UTC: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    TimestampTz(String),
    /// `json` / `jsonb`: the JSON text.
    Json(String),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as it is written into a JSON document (README, "Value encoding").
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => float_to_json(*f),
            Value::Numeric(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s) => J::String(s.clone()),
            Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::String(s.clone())),
        }
    }

    /// Appends the value to a JSON text, as [`Value::to_json`] would
    /// serialize, without building the tree first; but a `json` value is
    /// written as PostgreSQL sent it, every digit of its numbers kept.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing into a Vec cannot fail, nor serializing these values.
        let _ = match self {
            Value::Null => {
                out.extend_from_slice(b"null");
                Ok(())
            }
            Value::Bool(b) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" });
                Ok(())
            }
            Value::Int(i) => {
                let _ = write!(out, "{i}");
                Ok(())
            }
            Value::Numeric(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s) => serde_json::to_writer(&mut *out, s.as_str()),
            Value::Json(s) => {
                write_raw_json(s, out);
                Ok(())
            }
            // PostgreSQL's JSON keeps the sign of a zero; a JSON number
            // from an integer cannot.
            Value::Float(f) if *f == 0.0 && f.is_sign_negative() => {
                out.extend_from_slice(b"-0");
                Ok(())
            }
            Value::Float(_) => serde_json::to_writer(&mut *out, &self.to_json()),
        };
    }

    /// The value as text, for key templates and logs.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if !f.is_finite() => non_finite_text(*f).to_string(),
            Value::Float(f) => f.to_string(),
            Value::Numeric(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s)
            | Value::Json(s) => s.clone(),
        }
    }
}

/// A `json`/`jsonb` value embedded as PostgreSQL wrote it: its numbers keep
/// every digit and their scale (`12.50`, `12345678901234567890.1`, `1e309`),
/// which a parse into `f64`s would round or refuse. Text that is not JSON
/// (never sent by PostgreSQL for these types) is embedded as a string, as
/// [`Value::to_json`] does.
fn write_raw_json(text: &str, out: &mut Vec<u8>) {
    match serde_json::from_str::<&serde_json::value::RawValue>(text) {
        Ok(raw) => out.extend_from_slice(raw.get().as_bytes()),
        Err(_) => {
            let _ = serde_json::to_writer(&mut *out, text);
        }
    }
}

/// A float as PostgreSQL's `to_json` writes it: integral values without a
/// fraction (`3`, not `3.0`), non-finite values as strings.
fn float_to_json(f: f64) -> serde_json::Value {
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() < EXACT_INTEGERS {
        return serde_json::Value::from(f as i64);
    }
    serde_json::Number::from_f64(f)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(non_finite_text(f).to_string()))
}

/// PostgreSQL's spelling of the floats JSON numbers cannot hold.
fn non_finite_text(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// How [`Value::Float`] is serialized. In JSON (an aggregate view's group
/// rows in its outbox) a float JSON numbers cannot hold is written as
/// PostgreSQL spells it, `"NaN"`, `"Infinity"` or `"-Infinity"`: serde_json
/// would write `null`, which does not read back as a float, and the view's
/// sink would stop at that entry. Formats that are not human-readable
/// (postcard, in the state store) keep the bare `f64`.
mod float_serde {
    use std::fmt;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(f: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() && !f.is_finite() {
            serializer.serialize_str(super::non_finite_text(*f))
        } else {
            serializer.serialize_f64(*f)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(NumberOrSpelling)
        } else {
            f64::deserialize(deserializer)
        }
    }

    struct NumberOrSpelling;

    impl de::Visitor<'_> for NumberOrSpelling {
        type Value = f64;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
        }

        fn visit_f64<E>(self, value: f64) -> Result<f64, E> {
            Ok(value)
        }

        fn visit_i64<E>(self, value: i64) -> Result<f64, E> {
            Ok(value as f64)
        }

        fn visit_u64<E>(self, value: u64) -> Result<f64, E> {
            Ok(value as f64)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<f64, E> {
            match value {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
            }
        }
    }
}

/// A column value as a source delivers it: pgoutput sends "unchanged" for a
/// TOASTed column that an UPDATE did not touch; it must be filled from the
/// state store, never taken as NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Value(Value),
    UnchangedToast,
}

/// A row image as a source delivers it: column names (shared by every tuple of
/// one relation version) and one cell per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuple {
    pub columns: Arc<[String]>,
    pub cells: Vec<Cell>,
}

impl Tuple {
    pub fn get(&self, column: &str) -> Option<&Cell> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.cells.get(index)
    }
}

/// A table name, always schema-qualified (`public.orders`).
pub type TableName = Arc<str>;

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    Insert {
        new: Tuple,
    },
    /// `old` is the before-image when the table's replica identity sends one
    /// (`FULL`, or the key when it changed); otherwise the engine takes the
    /// before-image from the state store.
    Update {
        old: Option<Tuple>,
        new: Tuple,
    },
    /// `old` holds at least the replica-identity columns.
    Delete {
        old: Tuple,
    },
    Truncate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: TableName,
    pub kind: ChangeKind,
}

/// Changes of one or more whole transactions, in commit order.
#[derive(Debug, Clone, Default)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    /// End LSN of the last commit in the batch: once the batch is durable, the
    /// source may release the WAL up to here. `None` for a part of a
    /// transaction too large to hold at once, whose position is not yet final.
    pub commit_end: Option<Lsn>,
    /// Commit time of the last transaction, microseconds since the Unix epoch.
    pub commit_time_micros: i64,
}

impl Tuple {
    /// `{column: value}`, and the columns that arrived as unchanged TOAST.
    /// The tuple as a JSON object (a `json` value as PostgreSQL sent it),
    /// and the columns whose unchanged TOAST value it does not carry.
    fn write_json<'t>(&'t self, out: &mut Vec<u8>) -> Vec<&'t str> {
        let mut unchanged = Vec::new();
        out.push(b'{');
        let mut first = true;
        for (column, cell) in self.columns.iter().zip(&self.cells) {
            match cell {
                Cell::Value(value) => {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    write_json_string(column, out);
                    out.push(b':');
                    value.write_json(out);
                }
                Cell::UnchangedToast => unchanged.push(column.as_str()),
            }
        }
        out.push(b'}');
        unchanged
    }
}

impl Change {
    /// One JSON object per change of the transaction committed at
    /// `commit_lsn`, as `viewkeeper tail` prints it: every value as a
    /// document holds it (a `json` value's text as PostgreSQL sent it).
    pub fn to_json_line(&self, commit_lsn: Lsn) -> String {
        let (op, old, new) = match &self.kind {
            ChangeKind::Insert { new } => ("insert", None, Some(new)),
            ChangeKind::Update { old, new } => ("update", old.as_ref(), Some(new)),
            ChangeKind::Delete { old } => ("delete", Some(old), None),
            ChangeKind::Truncate => ("truncate", None, None),
        };
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"commit_lsn\":");
        write_json_string(&commit_lsn.to_string(), &mut out);
        out.extend_from_slice(b",\"table\":");
        write_json_string(&self.table, &mut out);
        out.extend_from_slice(b",\"op\":");
        write_json_string(op, &mut out);
        out.extend_from_slice(b",\"old\":");
        match old {
            Some(old) => {
                old.write_json(&mut out);
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"new\":");
        let unchanged = match new {
            Some(new) => new.write_json(&mut out),
            None => {
                out.extend_from_slice(b"null");
                Vec::new()
            }
        };
        out.extend_from_slice(b",\"unchanged_toast\":");
        // Serializing a list of strings into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &unchanged);
        out.push(b'}');
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

fn write_json_string(text: &str, out: &mut Vec<u8>) {
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tail` prints a `json` value as PostgreSQL sent it: `1e2` was
    /// `100.0` and `\u00e9` was `é`.
    #[test]
    fn a_change_line_keeps_json_text_and_names_unchanged_toast() {
        let change = Change {
            table: "public.t".into(),
            kind: ChangeKind::Update {
                old: None,
                new: Tuple {
                    columns: vec!["id".to_owned(), "doc".to_owned(), "big".to_owned()].into(),
                    cells: vec![
                        Cell::Value(Value::Int(7)),
                        Cell::Value(Value::Json(r#"{"n":1e2,"s":"caf\u00e9"}"#.into())),
                        Cell::UnchangedToast,
                    ],
                },
            },
        };
        let line = change.to_json_line(Lsn(0x16_B374_D848));
        assert_eq!(
            line,
            r#"{"commit_lsn":"16/B374D848","table":"public.t","op":"update","old":null,"new":{"id":7,"doc":{"n":1e2,"s":"caf\u00e9"}},"unchanged_toast":["big"]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(parsed["new"]["doc"]["s"], "café");
    }

    #[test]
    fn lsn_round_trips_through_postgres_notation() {
        let lsn = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn::parse("nonsense"), None);
    }

    /// Group rows go through JSON in an aggregate view's outbox, and rows
    /// through postcard in the state store: every float must come back
    /// bit for bit, or as NaN.
    #[test]
    fn every_float_round_trips_through_json_and_postcard() {
        let floats = [
            0.0,
            -0.0,
            1.5,
            9.951350818154413,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for float in floats {
            let value = Value::Float(float);
            let json = serde_json::to_string(&value).expect("serializes");
            let from_json: Value = serde_json::from_str(&json).expect(&json);
            let stored = postcard::to_allocvec(&value).expect("serializes");
            let from_postcard: Value = postcard::from_bytes(&stored).expect("deserializes");
            for back in [from_json, from_postcard] {
                let Value::Float(back) = back else {
                    panic!("{json} came back as {back:?}")
                };
                assert!(
                    back.to_bits() == float.to_bits() || (back.is_nan() && float.is_nan()),
                    "{float:?} came back as {back:?} from {json}"
                );
            }
        }
        assert_eq!(
            serde_json::to_string(&Value::Float(f64::NEG_INFINITY)).expect("serializes"),
            r#"{"Float":"-Infinity"}"#
        );
        let error = serde_json::from_str::<Value>(r#"{"Float":"lots"}"#).expect_err("refused");
        assert!(error.to_string().contains("lots"), "{error}");
    }

    #[test]
    fn written_json_equals_the_serialized_tree() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Float(3.0),
            Value::Float(f64::NAN),
            Value::Numeric("12.50".into()),
            Value::Text("quote \" back\\slash \u{1} é".into()),
            Value::TimestampTz("2026-01-02T03:04:05.000006Z".into()),
            Value::Json("not json".into()),
        ];
        for value in values {
            let mut written = Vec::new();
            value.write_json(&mut written);
            assert_eq!(
                written,
                value.to_json().to_string().into_bytes(),
                "{value:?}"
            );
        }
        // A zero keeps its sign, as in PostgreSQL's `to_json`.
        for (zero, text) in [(-0.0, "-0"), (0.0, "0")] {
            let mut written = Vec::new();
            Value::Float(zero).write_json(&mut written);
            assert_eq!(written, text.as_bytes());
        }
        // JSON is written as PostgreSQL sent it, spaces included.
        let json = Value::Json(r#"{"b": [1, 2.5], "a": null}"#.into());
        let mut written = Vec::new();
        json.write_json(&mut written);
        let read: serde_json::Value = serde_json::from_slice(&written).expect("JSON");
        assert_eq!(read, json.to_json());
    }

    /// A `jsonb` number keeps every digit and its scale in a document: one
    /// read through an `f64` was rounded (`1.2345678901234567e+19`), lost
    /// its trailing zero, or, past a float's range, turned the whole value
    /// into a string.
    #[test]
    fn json_numbers_are_written_with_every_digit() {
        for text in [
            r#"{"n": 12345678901234567890.123456789, "p": 12.50}"#,
            r#"{"big": 18446744073709551616, "m": 1e309, "tiny": -0.000000000000000000001}"#,
            "[1.10, -0, 3]",
            "7.000",
        ] {
            let mut written = Vec::new();
            Value::Json(text.into()).write_json(&mut written);
            assert_eq!(String::from_utf8(written).expect("UTF-8"), text);
        }
    }

    #[test]
    fn integral_floats_have_no_fraction_like_postgres_json() {
        assert_eq!(Value::Float(3.0).to_json().to_string(), "3");
        assert_eq!(Value::Float(-2.5).to_json().to_string(), "-2.5");
        assert_eq!(Value::Float(1e300).to_json().to_string(), "1e+300");
    }

    #[test]
    fn non_finite_floats_are_spelled_like_postgres() {
        assert_eq!(
            Value::Float(f64::INFINITY).to_json(),
            serde_json::json!("Infinity")
        );
        assert_eq!(Value::Float(f64::NAN).to_text(), "NaN");
    }

    #[test]
    fn numerics_keep_every_digit_in_json() {
        let v = Value::Numeric("123456789012345678901234.5678".into());
        assert_eq!(
            v.to_json(),
            serde_json::json!("123456789012345678901234.5678")
        );
    }
}
