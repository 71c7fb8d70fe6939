//! Turning one PostgreSQL column value, as the server prints it, into a typed
//! [`Value`].
//!
//! Owns the mapping from type OID to [`Value`] variant and the canonical forms
//! of temporal values (README, "Value encoding"). Sessions are pinned to
//! `TimeZone=UTC, DateStyle=ISO, extra_float_digits=3`, so the text inputs are
//! ISO dates and timestamps and round-tripping floats. [`parse_binary`] covers
//! the fixed-width binary forms too, for a server that sends binary cells.
//!
//! Nothing here fails: a value that does not parse as its type is kept as
//! [`Value::Text`], so a surprising server setting shows up as text in the
//! cache instead of stopping replication.

use crate::change::Value;

/// Type OIDs of the built-in types this module knows (`pg_type.oid`).
pub mod type_oid {
    pub const BOOL: u32 = 16;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const BOOL_ARRAY: u32 = 1000;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const INT8_ARRAY: u32 = 1016;
    pub const DATE_ARRAY: u32 = 1182;
    pub const UUID_ARRAY: u32 = 2951;
}

use type_oid::*;

use crate::expr::{ArrayElement, ValueType};

/// The SQL name of a built-in type, for log and error messages.
pub fn type_name(type_oid: u32) -> &'static str {
    match type_oid {
        BOOL => "bool",
        NAME => "name",
        INT8 => "int8",
        INT2 => "int2",
        INT4 => "int4",
        TEXT => "text",
        OID => "oid",
        JSON => "json",
        FLOAT4 => "float4",
        FLOAT8 => "float8",
        BPCHAR => "bpchar",
        VARCHAR => "varchar",
        DATE => "date",
        TIMESTAMP => "timestamp",
        TIMESTAMPTZ => "timestamptz",
        NUMERIC => "numeric",
        UUID => "uuid",
        JSONB => "jsonb",
        BOOL_ARRAY => "bool[]",
        INT2_ARRAY => "int2[]",
        INT4_ARRAY => "int4[]",
        TEXT_ARRAY => "text[]",
        VARCHAR_ARRAY => "varchar[]",
        INT8_ARRAY => "int8[]",
        DATE_ARRAY => "date[]",
        UUID_ARRAY => "uuid[]",
        // Arrays whose elements expressions read as text, named all the
        // same where a type change is told (`numeric[]` to `int4[]`).
        1021 => "float4[]",
        1022 => "float8[]",
        1115 => "timestamp[]",
        1185 => "timestamptz[]",
        1231 => "numeric[]",
        3807 => "jsonb[]",
        _ => "other",
    }
}

/// Whether values of `type_oid` sort as viewkeeper sorts them: by value
/// for the types [`value_type`] knows, by their text for the others. Text
/// order is the value's order for strings, `uuid`, `bytea` (hex), `time`
/// and bit strings; not for enums (declaration order), `interval` (`'10
/// days'` sorts before `'2 days'`), `inet`, `money`, `timetz`, arrays or
/// ranges, which `min`, `max` and `order_by` must not take.
pub fn sorts_as_its_value(type_oid: u32) -> bool {
    const BYTEA: u32 = 17;
    const CHAR: u32 = 18;
    const TIME: u32 = 1083;
    const BIT: u32 = 1560;
    const VARBIT: u32 = 1562;
    !value_type(type_oid).is_textual()
        || matches!(
            type_oid,
            TEXT | NAME | BPCHAR | VARCHAR | UUID | BYTEA | CHAR | TIME | BIT | VARBIT
        )
}

/// Whether two values of `type_oid` are equal in PostgreSQL exactly when
/// viewkeeper finds them equal: by value for the types [`value_type`]
/// knows (`1.0` is `1`), by their text for the others, whose text is one
/// per value for strings, `uuid`, `bytea`, enums, `time`, `timetz`, `inet`,
/// `money`, bit strings and arrays of such. Not for `citext` (`'A'` is
/// `'a'`), `interval` (`'1 day'` is `'24 hours'`), `json`/`jsonb`, ranges,
/// composite and geometric types, arrays of other types (`'{1.0}'` is
/// `'{1}'`), or any type an extension adds, which joins, group keys,
/// `count_distinct` and comparisons in `where` must not take as they are.
pub fn equal_as_its_text(type_oid: u32, is_enum: bool) -> bool {
    const BYTEA: u32 = 17;
    const CHAR: u32 = 18;
    const MONEY: u32 = 790;
    const MACADDR: u32 = 829;
    const INET: u32 = 869;
    const CIDR: u32 = 650;
    const TIME: u32 = 1083;
    const TIMETZ: u32 = 1266;
    const BIT: u32 = 1560;
    const VARBIT: u32 = 1562;
    const MACADDR8: u32 = 774;
    match value_type(type_oid) {
        ValueType::Json => false,
        ValueType::Text => {
            is_enum
                || matches!(
                    type_oid,
                    TEXT | NAME
                        | BPCHAR
                        | VARCHAR
                        | UUID
                        | BYTEA
                        | CHAR
                        | MONEY
                        | MACADDR
                        | MACADDR8
                        | INET
                        | CIDR
                        | TIME
                        | TIMETZ
                        | BIT
                        | VARBIT
                )
        }
        _ => true,
    }
}

/// The expression type values of `type_oid` get from [`parse_text`], for
/// checking expressions against the catalog.
pub fn value_type(type_oid: u32) -> ValueType {
    match type_oid {
        BOOL => ValueType::Bool,
        INT2 | INT4 | INT8 | OID => ValueType::Int,
        FLOAT4 | FLOAT8 => ValueType::Float,
        NUMERIC => ValueType::Numeric,
        DATE => ValueType::Date,
        TIMESTAMP => ValueType::Timestamp,
        TIMESTAMPTZ => ValueType::TimestampTz,
        JSON | JSONB => ValueType::Json,
        BOOL_ARRAY => ValueType::Array(ArrayElement::Bool),
        INT2_ARRAY | INT4_ARRAY | INT8_ARRAY => ValueType::Array(ArrayElement::Int),
        TEXT_ARRAY | VARCHAR_ARRAY => ValueType::Array(ArrayElement::Text),
        UUID_ARRAY => ValueType::Array(ArrayElement::Uuid),
        DATE_ARRAY => ValueType::Array(ArrayElement::Date),
        _ => ValueType::Text,
    }
}

/// Converts the text output of a value of type `type_oid` into a [`Value`].
///
/// Types without a dedicated variant (text, varchar, uuid, enums, arrays…)
/// become [`Value::Text`], and so does a value that does not parse as its type.
pub fn parse_text(type_oid: u32, text: &str) -> Value {
    let typed = match type_oid {
        BOOL => parse_bool(text),
        INT2 | INT4 | INT8 | OID => text.parse().ok().map(Value::Int),
        FLOAT4 | FLOAT8 => parse_float(text).map(Value::Float),
        NUMERIC => Some(Value::Numeric(text.to_owned())),
        DATE => Some(Value::Date(text.to_owned())),
        TIMESTAMP => canonical_timestamp(text).map(Value::Timestamp),
        TIMESTAMPTZ => canonical_timestamptz(text).map(Value::TimestampTz),
        JSON | JSONB => Some(Value::Json(text.to_owned())),
        _ => None,
    };
    typed.unwrap_or_else(|| Value::Text(text.to_owned()))
}

fn parse_bool(text: &str) -> Option<Value> {
    match text {
        "t" => Some(Value::Bool(true)),
        "f" => Some(Value::Bool(false)),
        _ => None,
    }
}

/// PostgreSQL spells the special values `NaN`, `Infinity` and `-Infinity`;
/// Rust's parser accepts those spellings too, case-insensitively.
fn parse_float(text: &str) -> Option<f64> {
    text.parse().ok()
}

/// `2026-11-24 14:03:07.12` → `2026-11-24T14:03:07.120000`.
fn canonical_timestamp(text: &str) -> Option<String> {
    canonical_date_time(text, false)
}

/// `2026-11-24 14:03:07.12+05:30` → `2026-11-24T08:33:07.120000Z`.
fn canonical_timestamptz(text: &str) -> Option<String> {
    canonical_date_time(text, true)
}

/// `±infinity` is kept as PostgreSQL wrote it. A BC value (once it has
/// parsed), and an instant that shifting to UTC moves from 1 AD into 1 BC,
/// take the form expressions write (`0044-03-15T12:00:00.000000Z BC`), or
/// stay as written when that cannot say them (an offset with seconds).
fn canonical_date_time(text: &str, with_offset: bool) -> Option<String> {
    if matches!(text, "infinity" | "-infinity") {
        return Some(text.to_owned());
    }
    let (body, before_christ) = match text.strip_suffix(" BC") {
        Some(body) => (body, true),
        None => (text, false),
    };
    let mut cursor = Cursor::new(body);
    let local = cursor.date_time(before_christ)?;
    let offset_seconds = if with_offset {
        cursor.utc_offset_seconds()?
    } else {
        0
    };
    if !cursor.at_end() {
        return None;
    }
    let utc = local
        .shifted_by_seconds(-offset_seconds)
        .filter(|_| !before_christ);
    let Some(utc) = utc else {
        let canonical = crate::expr::canonical_timestamp(text, with_offset);
        return Some(canonical.unwrap_or_else(|| text.to_owned()));
    };
    let zone_suffix = if with_offset { "Z" } else { "" };
    Some(format!("{}{zone_suffix}", utc.to_iso()))
}

/// A calendar date and wall-clock time, without a zone.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DateTime {
    year: i64,
    month: u32,
    day: u32,
    seconds_of_day: i64,
    micros: u32,
}

impl DateTime {
    fn to_iso(self) -> String {
        let hour = self.seconds_of_day / 3600;
        let minute = self.seconds_of_day / 60 % 60;
        let second = self.seconds_of_day % 60;
        format!(
            "{:04}-{:02}-{:02}T{hour:02}:{minute:02}:{second:02}.{:06}",
            self.year, self.month, self.day, self.micros
        )
    }

    /// The same instant `delta` seconds later, or `None` before year 1.
    fn shifted_by_seconds(self, delta: i64) -> Option<DateTime> {
        let days = days_from_civil(self.year, self.month, self.day);
        let total = days * SECONDS_PER_DAY + self.seconds_of_day + delta;
        let (year, month, day) = civil_from_days(total.div_euclid(SECONDS_PER_DAY));
        (year >= 1).then_some(DateTime {
            year,
            month,
            day,
            seconds_of_day: total.rem_euclid(SECONDS_PER_DAY),
            micros: self.micros,
        })
    }
}

const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`); we keep our own rather than pull in a date crate.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // Both casts are of small non-negative numbers: day 1..=31, month 1..=12.
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads the ISO text forms PostgreSQL prints; every method returns `None`
/// as soon as the text stops matching, which sends the value to the
/// [`Value::Text`] fallback.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            rest: text.as_bytes(),
        }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let matched = self.rest.first() == Some(&byte);
        if matched {
            self.rest = &self.rest[1..];
        }
        matched
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Between `min` and `max` ASCII digits, with how many were read.
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let count = self
            .rest
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if count < min {
            return None;
        }
        let value = self.rest[..count]
            .iter()
            .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'));
        self.rest = &self.rest[count..];
        Some((value, count))
    }

    fn number(
        &mut self,
        min: usize,
        max: usize,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let (value, _) = self.digits(min, max)?;
        range.contains(&value).then_some(value)
    }

    /// `YYYY-MM-DD HH:MM:SS[.f…]`; years past 9999 print with more digits.
    /// A BC year N is year 1 - N of the proleptic calendar, so 1 BC is a leap
    /// year.
    fn date_time(&mut self, before_christ: bool) -> Option<DateTime> {
        let year = self.number(4, 6, 1..=999_999)?;
        self.expect(b'-')?;
        let month = self.number(2, 2, 1..=12)? as u32;
        self.expect(b'-')?;
        let calendar_year = if before_christ { 1 - year } else { year };
        let max_day = days_in_month(calendar_year, month);
        let day = self.number(2, 2, 1..=i64::from(max_day))? as u32;
        self.expect(b' ')?;
        let hour = self.number(2, 2, 0..=23)?;
        self.expect(b':')?;
        let minute = self.number(2, 2, 0..=59)?;
        self.expect(b':')?;
        let second = self.number(2, 2, 0..=59)?;
        let micros = self.fraction_micros()?;
        let seconds_of_day = hour * 3600 + minute * 60 + second;
        Some(DateTime {
            year,
            month,
            day,
            seconds_of_day,
            micros,
        })
    }

    /// An optional `.f` of 1 to 6 digits, scaled to microseconds; PostgreSQL
    /// drops trailing zeros, so `.12` means 120000 µs.
    fn fraction_micros(&mut self) -> Option<u32> {
        if !self.eat(b'.') {
            return Some(0);
        }
        let (value, count) = self.digits(1, 6)?;
        let scale = 10i64.pow(6 - count as u32);
        u32::try_from(value * scale).ok()
    }

    /// `±HH`, `±HH:MM` or `±HH:MM:SS` (historical local-mean-time zones),
    /// as seconds east of UTC.
    fn utc_offset_seconds(&mut self) -> Option<i64> {
        let sign = match self.rest.first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.rest = &self.rest[1..];
        let hours = self.number(2, 2, 0..=15)?;
        let minutes = if self.eat(b':') {
            self.number(2, 2, 0..=59)?
        } else {
            0
        };
        let seconds = if self.eat(b':') {
            self.number(2, 2, 0..=59)?
        } else {
            0
        };
        Some(sign * (hours * 3600 + minutes * 60 + seconds))
    }
}

/// Converts the binary send form of a value into a [`Value`], for the
/// fixed-width and text-like built-in types; `None` for any other type
/// (numeric, arrays, enums…) or a malformed value, which the caller reports.
pub fn parse_binary(type_oid: u32, bytes: &[u8]) -> Option<Value> {
    match type_oid {
        BOOL => match bytes {
            [0] => Some(Value::Bool(false)),
            [1] => Some(Value::Bool(true)),
            _ => None,
        },
        INT2 => Some(Value::Int(
            i16::from_be_bytes(bytes.try_into().ok()?).into(),
        )),
        INT4 => Some(Value::Int(
            i32::from_be_bytes(bytes.try_into().ok()?).into(),
        )),
        INT8 => Some(Value::Int(i64::from_be_bytes(bytes.try_into().ok()?))),
        OID => Some(Value::Int(
            u32::from_be_bytes(bytes.try_into().ok()?).into(),
        )),
        FLOAT4 => Some(Value::Float(
            f32::from_be_bytes(bytes.try_into().ok()?).into(),
        )),
        FLOAT8 => Some(Value::Float(f64::from_be_bytes(bytes.try_into().ok()?))),
        TEXT | VARCHAR | BPCHAR | NAME => Some(Value::Text(utf8(bytes)?)),
        JSON => Some(Value::Json(utf8(bytes)?)),
        // jsonb's send form is a format version byte (1) and the JSON text.
        JSONB => match bytes.split_first()? {
            (1, json) => Some(Value::Json(utf8(json)?)),
            _ => None,
        },
        UUID => Some(Value::Text(format_uuid(bytes.try_into().ok()?))),
        DATE => binary_date(i32::from_be_bytes(bytes.try_into().ok()?)),
        TIMESTAMP => {
            binary_timestamp(i64::from_be_bytes(bytes.try_into().ok()?)).map(Value::Timestamp)
        }
        TIMESTAMPTZ => binary_timestamp(i64::from_be_bytes(bytes.try_into().ok()?))
            .map(|utc| Value::TimestampTz(format!("{utc}Z"))),
        _ => None,
    }
}

fn utf8(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

fn format_uuid(bytes: [u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Days between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;

/// `date` is sent as days since 2000-01-01; `i32::MAX`/`MIN` are ±infinity.
fn binary_date(pg_days: i32) -> Option<Value> {
    let text = match pg_days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        _ => {
            let (year, month, day) = civil_from_days(i64::from(pg_days) + PG_EPOCH_DAYS);
            if year < 1 {
                return None;
            }
            format!("{year:04}-{month:02}-{day:02}")
        }
    };
    Some(Value::Date(text))
}

/// Timestamps are sent as microseconds since 2000-01-01 00:00:00 (UTC for
/// `timestamptz`); `i64::MAX`/`MIN` are ±infinity, kept unsuffixed.
fn binary_timestamp(pg_micros: i64) -> Option<String> {
    match pg_micros {
        i64::MAX => return Some("infinity".to_owned()),
        i64::MIN => return Some("-infinity".to_owned()),
        _ => {}
    }
    let seconds = pg_micros.div_euclid(1_000_000);
    let micros = pg_micros.rem_euclid(1_000_000) as u32;
    let epoch = DateTime {
        year: 2000,
        month: 1,
        day: 1,
        seconds_of_day: 0,
        micros,
    };
    Some(epoch.shifted_by_seconds(seconds)?.to_iso())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[test]
    fn booleans_and_integers() {
        assert_eq!(parse_text(BOOL, "t"), Value::Bool(true));
        assert_eq!(parse_text(BOOL, "f"), Value::Bool(false));
        assert_eq!(parse_text(BOOL, "yes"), text("yes"));
        assert_eq!(parse_text(INT2, "-32768"), Value::Int(-32768));
        assert_eq!(parse_text(INT4, "42"), Value::Int(42));
        assert_eq!(
            parse_text(INT8, "-9223372036854775808"),
            Value::Int(i64::MIN)
        );
        assert_eq!(parse_text(OID, "4294967295"), Value::Int(4_294_967_295));
        assert_eq!(parse_text(INT4, "12abc"), text("12abc"));
        assert_eq!(
            parse_text(INT8, "9223372036854775808"),
            text("9223372036854775808")
        );
    }

    #[test]
    fn floats_including_special_values() {
        assert_eq!(
            parse_text(FLOAT8, "0.30000000000000004"),
            Value::Float(0.30000000000000004)
        );
        assert_eq!(parse_text(FLOAT4, "1.5e+10"), Value::Float(1.5e10));
        assert_eq!(parse_text(FLOAT8, "Infinity"), Value::Float(f64::INFINITY));
        assert_eq!(
            parse_text(FLOAT8, "-Infinity"),
            Value::Float(f64::NEG_INFINITY)
        );
        assert!(matches!(parse_text(FLOAT4, "NaN"), Value::Float(f) if f.is_nan()));
        assert_eq!(parse_text(FLOAT8, "one"), text("one"));
    }

    #[test]
    fn numeric_date_and_json_are_kept_verbatim() {
        let digits = "123456789012345678901234.5678";
        assert_eq!(parse_text(NUMERIC, digits), Value::Numeric(digits.into()));
        assert_eq!(parse_text(NUMERIC, "NaN"), Value::Numeric("NaN".into()));
        assert_eq!(
            parse_text(DATE, "2024-02-29"),
            Value::Date("2024-02-29".into())
        );
        assert_eq!(parse_text(DATE, "infinity"), Value::Date("infinity".into()));
        assert_eq!(
            parse_text(JSON, r#"{"a": 1}"#),
            Value::Json(r#"{"a": 1}"#.into())
        );
        assert_eq!(parse_text(JSONB, "[1, 2]"), Value::Json("[1, 2]".into()));
    }

    #[test]
    fn other_types_are_text() {
        for oid in [TEXT, VARCHAR, BPCHAR, UUID, NAME, 16_384, 1007] {
            assert_eq!(parse_text(oid, "x y"), text("x y"));
        }
    }

    #[test]
    fn timestamp_fractions_of_every_length_become_six_digits() {
        let cases = [
            ("2026-11-24 14:03:07", "2026-11-24T14:03:07.000000"),
            ("2026-11-24 14:03:07.1", "2026-11-24T14:03:07.100000"),
            ("2026-11-24 14:03:07.12", "2026-11-24T14:03:07.120000"),
            ("2026-11-24 14:03:07.123", "2026-11-24T14:03:07.123000"),
            ("2026-11-24 14:03:07.1234", "2026-11-24T14:03:07.123400"),
            ("2026-11-24 14:03:07.12345", "2026-11-24T14:03:07.123450"),
            ("2026-11-24 14:03:07.123456", "2026-11-24T14:03:07.123456"),
            ("2026-11-24 14:03:07.000001", "2026-11-24T14:03:07.000001"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_text(TIMESTAMP, input),
                Value::Timestamp(expected.into()),
                "{input}"
            );
            let with_zone = format!("{input}+00");
            let utc = format!("{expected}Z");
            assert_eq!(
                parse_text(TIMESTAMPTZ, &with_zone),
                Value::TimestampTz(utc),
                "{input}"
            );
        }
    }

    #[test]
    fn timestamp_infinities_stay_and_bc_values_take_the_expressions_form() {
        for special in ["infinity", "-infinity"] {
            assert_eq!(
                parse_text(TIMESTAMP, special),
                Value::Timestamp(special.into())
            );
            assert_eq!(
                parse_text(TIMESTAMPTZ, special),
                Value::TimestampTz(special.into())
            );
        }
        assert_eq!(
            parse_text(TIMESTAMP, "0044-03-15 12:00:00.5 BC"),
            Value::Timestamp("0044-03-15T12:00:00.500000 BC".into())
        );
        assert_eq!(
            parse_text(TIMESTAMPTZ, "0044-03-15 12:00:00+02 BC"),
            Value::TimestampTz("0044-03-15T10:00:00.000000Z BC".into())
        );
        // 1 AD at 01:00+02 is 23:00 on the last day of 1 BC in UTC.
        assert_eq!(
            parse_text(TIMESTAMPTZ, "0001-01-01 01:00:00+02"),
            Value::TimestampTz("0001-12-31T23:00:00.000000Z BC".into())
        );
        assert_eq!(
            parse_text(TIMESTAMP, "0001-02-29 00:00:00 BC"),
            Value::Timestamp("0001-02-29T00:00:00.000000 BC".into())
        );
        for garbage in ["soon BC", "0002-02-29 00:00:00 BC", "0044-03-15 BC"] {
            assert_eq!(parse_text(TIMESTAMP, garbage), text(garbage));
        }
    }

    #[test]
    fn timestamps_past_year_9999_keep_their_digits() {
        let value = parse_text(TIMESTAMP, "10000-01-01 00:00:00");
        assert_eq!(
            value,
            Value::Timestamp("10000-01-01T00:00:00.000000".into())
        );
    }

    #[test]
    fn malformed_timestamps_fall_back_to_text() {
        for bad in [
            "",
            "2026-11-24",
            "2026-11-24T14:03:07",
            "2026-13-01 00:00:00",
            "2026-02-29 00:00:00",
            "2026-11-24 24:00:00",
            "2026-11-24 14:03:07.",
            "2026-11-24 14:03:07.1234567",
            "2026-11-24 14:03:07+00",
            "26-11-24 14:03:07",
            "2026-11-24 14:03:07 garbage",
        ] {
            assert_eq!(parse_text(TIMESTAMP, bad), text(bad), "{bad:?}");
        }
        for bad in [
            "2026-11-24 14:03:07",
            "2026-11-24 14:03:07+",
            "2026-11-24 14:03:07+5",
            "2026-11-24 14:03:07+00:",
        ] {
            assert_eq!(parse_text(TIMESTAMPTZ, bad), text(bad), "{bad:?}");
        }
    }

    fn utc(input: &str) -> Value {
        parse_text(TIMESTAMPTZ, input)
    }

    fn instant(expected: &str) -> Value {
        Value::TimestampTz(expected.into())
    }

    #[test]
    fn timestamptz_offsets_convert_to_utc() {
        assert_eq!(
            utc("2026-11-24 14:03:07.12+05:30"),
            instant("2026-11-24T08:33:07.120000Z")
        );
        assert_eq!(
            utc("2026-11-24 14:03:07-07"),
            instant("2026-11-24T21:03:07.000000Z")
        );
        assert_eq!(
            utc("1900-01-01 00:00:00+00:53:28"),
            instant("1899-12-31T23:06:32.000000Z")
        );
    }

    #[test]
    fn timestamptz_offsets_roll_over_days_months_and_years() {
        assert_eq!(
            utc("2026-12-31 22:00:00-03"),
            instant("2027-01-01T01:00:00.000000Z")
        );
        assert_eq!(
            utc("2027-01-01 01:00:00+02"),
            instant("2026-12-31T23:00:00.000000Z")
        );
        assert_eq!(
            utc("2026-04-30 23:30:00-01"),
            instant("2026-05-01T00:30:00.000000Z")
        );
        assert_eq!(
            utc("2026-03-01 00:15:00.5+01"),
            instant("2026-02-28T23:15:00.500000Z")
        );
    }

    #[test]
    fn timestamptz_offsets_respect_leap_years() {
        assert_eq!(
            utc("2024-03-01 01:00:00+05"),
            instant("2024-02-29T20:00:00.000000Z")
        );
        assert_eq!(
            utc("2024-02-29 23:00:00-02"),
            instant("2024-03-01T01:00:00.000000Z")
        );
        assert_eq!(
            utc("2000-03-01 00:00:00+01"),
            instant("2000-02-29T23:00:00.000000Z")
        );
        assert_eq!(
            utc("1900-03-01 00:00:00+01"),
            instant("1900-02-28T23:00:00.000000Z")
        );
        assert_eq!(
            utc("2024-02-29 12:00:00+00"),
            instant("2024-02-29T12:00:00.000000Z")
        );
    }

    #[test]
    fn shifting_before_year_one_gives_a_bc_instant() {
        assert_eq!(
            utc("0001-01-01 00:30:00+01"),
            instant("0001-12-31T23:30:00.000000Z BC")
        );
    }

    #[test]
    fn any_prefix_of_any_value_parses_without_panicking() {
        let samples = [
            "2026-11-24 14:03:07.123456+05:30:15 BC",
            "-Infinity",
            "1.5e+10",
            "tÿpé ✓",
        ];
        let oids = [
            BOOL,
            INT2,
            INT8,
            FLOAT4,
            NUMERIC,
            DATE,
            TIMESTAMP,
            TIMESTAMPTZ,
            JSONB,
            TEXT,
        ];
        for sample in samples {
            let prefixes = sample.char_indices().map(|(end, _)| &sample[..end]);
            for prefix in prefixes.chain([sample]) {
                for oid in oids {
                    let _ = parse_text(oid, prefix);
                    let _ = parse_binary(oid, prefix.as_bytes());
                }
            }
        }
    }

    #[test]
    fn civil_date_arithmetic_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in (-800_000..800_000).step_by(997) {
            let (year, month, day) = civil_from_days(days);
            assert!(day <= days_in_month(year, month));
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }

    #[test]
    fn binary_values_of_simple_types() {
        assert_eq!(parse_binary(BOOL, &[1]), Some(Value::Bool(true)));
        assert_eq!(
            parse_binary(INT2, &(-2i16).to_be_bytes()),
            Some(Value::Int(-2))
        );
        assert_eq!(parse_binary(INT4, &7i32.to_be_bytes()), Some(Value::Int(7)));
        assert_eq!(
            parse_binary(INT8, &i64::MAX.to_be_bytes()),
            Some(Value::Int(i64::MAX))
        );
        assert_eq!(
            parse_binary(OID, &u32::MAX.to_be_bytes()),
            Some(Value::Int(u32::MAX.into()))
        );
        assert_eq!(
            parse_binary(FLOAT8, &2.5f64.to_be_bytes()),
            Some(Value::Float(2.5))
        );
        assert_eq!(parse_binary(TEXT, "héllo".as_bytes()), Some(text("héllo")));
        assert_eq!(
            parse_binary(JSONB, b"\x01{}"),
            Some(Value::Json("{}".into()))
        );
        let uuid = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        assert_eq!(
            parse_binary(UUID, &uuid),
            Some(text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
        );
    }

    #[test]
    fn binary_temporal_values() {
        assert_eq!(
            parse_binary(DATE, &0i32.to_be_bytes()),
            Some(Value::Date("2000-01-01".into()))
        );
        assert_eq!(
            parse_binary(DATE, &(-1i32).to_be_bytes()),
            Some(Value::Date("1999-12-31".into()))
        );
        assert_eq!(
            parse_binary(DATE, &i32::MAX.to_be_bytes()),
            Some(Value::Date("infinity".into()))
        );
        let micros = 1_500_000i64 + 86_400_000_000 * 60;
        let expected = "2000-03-01T00:00:01.500000";
        assert_eq!(
            parse_binary(TIMESTAMP, &micros.to_be_bytes()),
            Some(Value::Timestamp(expected.into()))
        );
        let before_epoch = parse_binary(TIMESTAMPTZ, &(-1i64).to_be_bytes());
        assert_eq!(before_epoch, Some(instant("1999-12-31T23:59:59.999999Z")));
    }

    #[test]
    fn malformed_or_unsupported_binary_values_are_refused() {
        assert_eq!(parse_binary(BOOL, &[2]), None);
        assert_eq!(parse_binary(INT4, &[0, 1]), None);
        assert_eq!(parse_binary(TEXT, &[0xff]), None);
        assert_eq!(parse_binary(JSONB, b"\x02{}"), None);
        assert_eq!(parse_binary(NUMERIC, &[0; 8]), None);
        assert_eq!(
            parse_binary(DATE, &i32::MIN.wrapping_add(1).to_be_bytes()),
            None
        );
    }
}
