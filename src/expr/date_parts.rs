//! `date_trunc` and `extract` / `date_part`: their units and fields, the
//! calendar arithmetic behind them, and their NULL and infinity handling over
//! values. Both work in the database's zone for a `timestamptz` (see
//! `time_zone`) and keep the kind of their input: `date_trunc('month', <timestamptz>)` is a timestamptz.

use crate::change::Value;

use super::cast::temporal_value;
use super::error::Fault;
use super::temporal::{
    DateTime, MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_MINUTE, MICROS_PER_SECOND, TemporalKind,
    civil_from_days, day_of_week, days_from_civil, in_timestamp_range, is_infinite, kind_name,
    parse_value,
};
use super::time_zone::TimeZone;
use super::types::ValueType;

/// A unit of `date_trunc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TruncUnit {
    Second,
    Minute,
    Hour,
    Day,
    /// Back to the ISO week's Monday.
    Week,
    Month,
    Quarter,
    Year,
}

impl TruncUnit {
    pub fn from_name(name: &str) -> Option<TruncUnit> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "second" => TruncUnit::Second,
            "minute" => TruncUnit::Minute,
            "hour" => TruncUnit::Hour,
            "day" => TruncUnit::Day,
            "week" => TruncUnit::Week,
            "month" => TruncUnit::Month,
            "quarter" => TruncUnit::Quarter,
            "year" => TruncUnit::Year,
            _ => return None,
        })
    }
}

impl TruncUnit {
    pub fn name(self) -> &'static str {
        match self {
            TruncUnit::Second => "second",
            TruncUnit::Minute => "minute",
            TruncUnit::Hour => "hour",
            TruncUnit::Day => "day",
            TruncUnit::Week => "week",
            TruncUnit::Month => "month",
            TruncUnit::Quarter => "quarter",
            TruncUnit::Year => "year",
        }
    }
}

/// `date_trunc(unit, value)`.
pub(crate) fn truncate(value: DateTime, unit: TruncUnit) -> DateTime {
    let micros = value.micros_of_day;
    let keep_micros = |step: i64| DateTime {
        days: value.days,
        micros_of_day: micros - micros % step,
    };
    match unit {
        TruncUnit::Second => keep_micros(MICROS_PER_SECOND),
        TruncUnit::Minute => keep_micros(MICROS_PER_MINUTE),
        TruncUnit::Hour => keep_micros(MICROS_PER_HOUR),
        TruncUnit::Day => keep_micros(MICROS_PER_DAY),
        TruncUnit::Week => start_of_day(value.days - (day_of_week(value.days) + 6) % 7),
        TruncUnit::Month => start_of_month(value.days, 1),
        TruncUnit::Quarter => start_of_month(value.days, 3),
        TruncUnit::Year => start_of_month(value.days, 12),
    }
}

fn start_of_day(days: i64) -> DateTime {
    DateTime {
        days,
        micros_of_day: 0,
    }
}

/// The first day of the period of `months_per_period` months holding `days`.
fn start_of_month(days: i64, months_per_period: i64) -> DateTime {
    let (year, month, _) = civil_from_days(days);
    let first_month = (month - 1) / months_per_period * months_per_period + 1;
    start_of_day(days_from_civil(year, first_month, 1))
}

/// A field of `extract` / `date_part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateField {
    Year,
    Quarter,
    Month,
    Day,
    Hour,
    Minute,
    /// 0 = Sunday ... 6 = Saturday.
    DayOfWeek,
    /// 1 = Monday ... 7 = Sunday.
    IsoDayOfWeek,
    DayOfYear,
    /// The ISO 8601 week of the year (1-53; weeks start on Monday, and
    /// week 1 holds the year's first Thursday).
    Week,
    /// The year its ISO week belongs to: 2027-01-01, a Friday, is in week
    /// 53 of 2026.
    IsoYear,
    /// Seconds within the minute, with their fraction: a numeric with six
    /// decimals from `extract`, a float from `date_part`.
    Second,
    /// Seconds since 1970-01-01 00:00 (UTC for a timestamptz): a numeric
    /// with microseconds, not an int.
    Epoch,
}

impl DateField {
    pub fn from_name(name: &str) -> Option<DateField> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "year" => DateField::Year,
            "quarter" => DateField::Quarter,
            "month" => DateField::Month,
            "day" => DateField::Day,
            "hour" => DateField::Hour,
            "minute" => DateField::Minute,
            "dow" => DateField::DayOfWeek,
            "isodow" => DateField::IsoDayOfWeek,
            "doy" => DateField::DayOfYear,
            "week" => DateField::Week,
            "isoyear" => DateField::IsoYear,
            "second" => DateField::Second,
            "epoch" => DateField::Epoch,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DateField::Year => "year",
            DateField::Quarter => "quarter",
            DateField::Month => "month",
            DateField::Day => "day",
            DateField::Hour => "hour",
            DateField::Minute => "minute",
            DateField::DayOfWeek => "dow",
            DateField::IsoDayOfWeek => "isodow",
            DateField::DayOfYear => "doy",
            DateField::Week => "week",
            DateField::IsoYear => "isoyear",
            DateField::Second => "second",
            DateField::Epoch => "epoch",
        }
    }

    /// Whether a `date` has this field; PostgreSQL refuses hour, minute
    /// and second.
    pub fn applies_to_date(self) -> bool {
        !matches!(
            self,
            DateField::Hour | DateField::Minute | DateField::Second
        )
    }
}

/// The type of `extract(field from …)` (a numeric for the epoch and
/// seconds, an int otherwise), or of `date_part`, a float for those.
pub(crate) fn field_type(field: DateField, date_part: bool) -> ValueType {
    match (field, date_part) {
        (DateField::Epoch | DateField::Second, false) => ValueType::Numeric,
        (DateField::Epoch | DateField::Second, true) => ValueType::Float,
        _ => ValueType::Int,
    }
}

/// `extract(second from value)`: the seconds within the minute with six
/// decimals, as PostgreSQL writes them; `date_part`'s float.
fn second_value(value: DateTime, date_part: bool) -> Value {
    let micros = value.micros_of_day % MICROS_PER_MINUTE;
    if date_part {
        return Value::Float(micros as f64 / 1e6);
    }
    Value::Numeric(format!(
        "{}.{:06}",
        micros / MICROS_PER_SECOND,
        micros % MICROS_PER_SECOND
    ))
}

/// `extract(epoch from value)`: seconds with six decimals, or whole
/// seconds for a date, as PostgreSQL writes them; `date_part`'s float.
fn epoch_value(value: DateTime, kind: TemporalKind, date_part: bool) -> Value {
    let seconds =
        i128::from(value.days) * 86_400 + i128::from(value.micros_of_day / MICROS_PER_SECOND);
    let micros = value.micros_of_day % MICROS_PER_SECOND;
    if date_part {
        return Value::Float(seconds as f64 + micros as f64 / 1e6);
    }
    if kind == TemporalKind::Date {
        return Value::Numeric(seconds.to_string());
    }
    // Negative instants carry their fraction toward zero: -0.5 s is
    // seconds -1 and 500000 micros, written -0.500000.
    let total = seconds * 1_000_000 + i128::from(micros);
    let sign = if total < 0 { "-" } else { "" };
    let magnitude = total.unsigned_abs();
    Value::Numeric(format!(
        "{sign}{}.{:06}",
        magnitude / 1_000_000,
        magnitude % 1_000_000
    ))
}

/// `extract(field from value)`.
pub(crate) fn extract(value: DateTime, field: DateField) -> i64 {
    let (year, month, day) = civil_from_days(value.days);
    match field {
        // PostgreSQL has no year 0: 1 BC is -1.
        DateField::Year if year < 1 => year - 1,
        DateField::Year => year,
        DateField::Quarter => (month - 1) / 3 + 1,
        DateField::Month => month,
        DateField::Day => day,
        DateField::Hour => value.micros_of_day / MICROS_PER_HOUR,
        DateField::Minute => value.micros_of_day / MICROS_PER_MINUTE % 60,
        DateField::DayOfWeek => day_of_week(value.days),
        DateField::IsoDayOfWeek => (day_of_week(value.days) + 6) % 7 + 1,
        DateField::DayOfYear => value.days - days_from_civil(year, 1, 1) + 1,
        DateField::Week => iso_week(value.days).1,
        DateField::IsoYear => match iso_week(value.days).0 {
            year if year < 1 => year - 1,
            year => year,
        },
        // Whole seconds; `second_value` gives the fraction too.
        DateField::Second => value.micros_of_day / MICROS_PER_SECOND % 60,
        DateField::Epoch => value.days * 86_400 + value.micros_of_day / MICROS_PER_SECOND,
    }
}

/// The ISO 8601 year and week of a day: those of the Thursday of its
/// week, which weeks are counted by.
fn iso_week(days: i64) -> (i64, i64) {
    let monday_based = (day_of_week(days) + 6) % 7;
    let thursday = days - monday_based + 3;
    let (year, _, _) = civil_from_days(thursday);
    (year, (thursday - days_from_civil(year, 1, 1)) / 7 + 1)
}

/// A temporal value's text and kind; `None` for NULL.
fn temporal_parts(value: &Value) -> Result<Option<(&str, TemporalKind)>, Fault> {
    match value {
        Value::Null => Ok(None),
        Value::Date(text) => Ok(Some((text, TemporalKind::Date))),
        Value::Timestamp(text) => Ok(Some((text, TemporalKind::Timestamp))),
        Value::TimestampTz(text) => Ok(Some((text, TemporalKind::TimestampTz))),
        other => Err(Fault::TypeMismatch(format!(
            "expected a date or timestamp, found {}",
            ValueType::of(other)
        ))),
    }
}

/// `date_trunc(unit, value)`, of the same kind as `value`; `infinity`
/// stays itself. A date truncated to hours or minutes is unchanged. With
/// a `zone` (`date_trunc(unit, value, 'zone')`), `value` is read as an
/// instant and truncated in that zone.
pub(crate) fn truncate_value(
    value: &Value,
    unit: TruncUnit,
    zone: Option<&TimeZone>,
) -> Result<Value, Fault> {
    let Some((text, kind)) = temporal_parts(value)? else {
        return Ok(Value::Null);
    };
    if let Some(zone) = zone {
        let instant = as_instant(text, kind)?;
        let truncated = match instant {
            Some(instant) => {
                truncate_instant(instant, unit, zone).format(TemporalKind::TimestampTz)
            }
            None => text.trim().to_owned(),
        };
        return Ok(Value::TimestampTz(truncated));
    }
    if is_infinite(text) {
        return Ok(value.clone());
    }
    let parsed = parse_value(text, kind)?;
    let truncated = match kind {
        // PostgreSQL truncates a date as a timestamptz at its midnight,
        // which keeps its date in any zone.
        TemporalKind::Date => truncate(in_timestamp_range(parsed)?, unit),
        TemporalKind::Timestamp => truncate(parsed, unit),
        TemporalKind::TimestampTz => truncate_instant(parsed, unit, &TimeZone::current()),
    };
    Ok(temporal_value(truncated.format(kind), kind))
}

/// `value AT TIME ZONE zone`: a timestamp's instant read in `zone` (a
/// timestamptz), or the civil time in `zone` of any other date or
/// timestamp, read as an instant (a timestamp). `infinity` stays itself.
pub(crate) fn at_time_zone(value: &Value, zone: &TimeZone) -> Result<Value, Fault> {
    let Some((text, kind)) = temporal_parts(value)? else {
        return Ok(Value::Null);
    };
    if kind == TemporalKind::Timestamp {
        let instant = match is_infinite(text) {
            true => text.trim().to_owned(),
            false => zone
                .to_instant(parse_value(text, kind)?)
                .format(TemporalKind::TimestampTz),
        };
        return Ok(Value::TimestampTz(instant));
    }
    let local = match as_instant(text, kind)? {
        Some(instant) => {
            in_timestamp_range(zone.to_local(instant))?.format(TemporalKind::Timestamp)
        }
        None => text.trim().to_owned(),
    };
    Ok(Value::Timestamp(local))
}

/// A date or timestamp read as an instant, as PostgreSQL casts it to a
/// `timestamptz` (a civil time in the database's zone); `None` for
/// `infinity`.
fn as_instant(text: &str, kind: TemporalKind) -> Result<Option<DateTime>, Fault> {
    if is_infinite(text) {
        return Ok(None);
    }
    let parsed = parse_value(text, kind)?;
    Ok(Some(match kind {
        TemporalKind::TimestampTz => parsed,
        TemporalKind::Date | TemporalKind::Timestamp => {
            in_timestamp_range(TimeZone::current().to_instant(parsed))?
        }
    }))
}

/// `date_trunc(unit, instant)` in `zone`. To the hour or finer the
/// instant's own offset is kept (in a repeated hour, the hour of the same
/// offset); to the day or coarser the truncated civil time is read in the
/// zone again, as PostgreSQL does.
fn truncate_instant(instant: DateTime, unit: TruncUnit, zone: &TimeZone) -> DateTime {
    let local = zone.to_local(instant);
    let truncated = truncate(local, unit);
    match unit {
        TruncUnit::Second | TruncUnit::Minute | TruncUnit::Hour => {
            let offset = (local.days - instant.days) * MICROS_PER_DAY + local.micros_of_day
                - instant.micros_of_day;
            truncated.shifted(-offset)
        }
        TruncUnit::Day
        | TruncUnit::Week
        | TruncUnit::Month
        | TruncUnit::Quarter
        | TruncUnit::Year => zone.to_instant(truncated),
    }
}

/// `extract(field from value)` as an Int, or `date_part('field', value)`,
/// which reads a date as a timestamp. PostgreSQL has no finite field of
/// `infinity`: that gives NULL here.
pub(crate) fn extract_value(
    value: &Value,
    field: DateField,
    date_part: bool,
) -> Result<Value, Fault> {
    let Some((text, kind)) = temporal_parts(value)? else {
        return Ok(Value::Null);
    };
    if field == DateField::Epoch {
        // The instant, not its civil time in the database's zone; the
        // epoch of `infinity` is `Infinity`, as in PostgreSQL.
        if is_infinite(text) {
            let negative = text.trim().starts_with('-');
            return Ok(match (date_part, negative) {
                (true, false) => Value::Float(f64::INFINITY),
                (true, true) => Value::Float(f64::NEG_INFINITY),
                (false, false) => Value::Numeric("Infinity".to_owned()),
                (false, true) => Value::Numeric("-Infinity".to_owned()),
            });
        }
        return Ok(epoch_value(parse_value(text, kind)?, kind, date_part));
    }
    if kind == TemporalKind::Date && date_part && !is_infinite(text) {
        let as_timestamp = in_timestamp_range(parse_value(text, kind)?)?;
        if field == DateField::Second {
            return Ok(second_value(as_timestamp, true));
        }
        return Ok(Value::Int(extract(as_timestamp, field)));
    }
    if kind == TemporalKind::Date && !field.applies_to_date() {
        return Err(Fault::TypeMismatch(format!(
            "{} has no {} field",
            kind_name(kind),
            field.name()
        )));
    }
    if is_infinite(text) {
        return Ok(Value::Null);
    }
    let mut parsed = parse_value(text, kind)?;
    if kind == TemporalKind::TimestampTz {
        parsed = TimeZone::current().to_local(parsed);
    }
    if field == DateField::Second {
        return Ok(second_value(parsed, date_part));
    }
    Ok(Value::Int(extract(parsed, field)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TemporalKind::*;

    fn at(text: &str, kind: TemporalKind) -> DateTime {
        super::super::temporal::parse(text, kind)
            .unwrap_or_else(|| panic!("bad test timestamp {text}"))
    }

    fn truncated(text: &str, kind: TemporalKind, unit: TruncUnit) -> String {
        truncate(at(text, kind), unit).format(kind)
    }

    #[test]
    fn date_trunc_of_timestamptz_stays_timestamptz() {
        let ts = "2024-03-17T13:45:12.345678Z";
        assert_eq!(
            truncated(ts, TimestampTz, TruncUnit::Month),
            "2024-03-01T00:00:00.000000Z"
        );
        assert_eq!(
            truncated(ts, TimestampTz, TruncUnit::Year),
            "2024-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            truncated(ts, TimestampTz, TruncUnit::Quarter),
            "2024-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            truncated(ts, TimestampTz, TruncUnit::Day),
            "2024-03-17T00:00:00.000000Z"
        );
        assert_eq!(
            truncated(ts, TimestampTz, TruncUnit::Hour),
            "2024-03-17T13:00:00.000000Z"
        );
        assert_eq!(
            truncated(ts, TimestampTz, TruncUnit::Minute),
            "2024-03-17T13:45:00.000000Z"
        );
        assert_eq!(
            truncated(ts, TimestampTz, TruncUnit::Second),
            "2024-03-17T13:45:12.000000Z"
        );
    }

    #[test]
    fn week_truncates_to_iso_monday() {
        // 2024-03-17 is a Sunday: its ISO week began on Monday 2024-03-11.
        assert_eq!(
            truncated("2024-03-17T23:00:00.000000", Timestamp, TruncUnit::Week),
            "2024-03-11T00:00:00.000000"
        );
        assert_eq!(truncated("2024-03-11", Date, TruncUnit::Week), "2024-03-11");
        assert_eq!(truncated("2025-01-01", Date, TruncUnit::Week), "2024-12-30");
    }

    #[test]
    fn extract_reads_fields() {
        let value = at("2024-03-17T13:45:12.000000Z", TimestampTz);
        let field = |f| extract(value, f);
        assert_eq!(field(DateField::Year), 2024);
        assert_eq!(field(DateField::Quarter), 1);
        assert_eq!(field(DateField::Month), 3);
        assert_eq!(field(DateField::Day), 17);
        assert_eq!(field(DateField::Hour), 13);
        assert_eq!(field(DateField::Minute), 45);
        assert_eq!(field(DateField::DayOfWeek), 0);
        assert_eq!(field(DateField::IsoDayOfWeek), 7);
        assert_eq!(field(DateField::DayOfYear), 31 + 29 + 17);
        assert_eq!(field(DateField::Week), 11);
        assert_eq!(field(DateField::IsoYear), 2024);
        assert_eq!(field(DateField::Second), 12);
        // ISO weeks cross years: (date, week, its year).
        for (date, week, year) in [
            ("2027-01-01", 53, 2026),
            ("2024-12-30", 1, 2025),
            ("2021-01-03", 53, 2020),
            ("2021-01-04", 1, 2021),
            ("2026-01-01", 1, 2026),
            ("2025-12-28", 52, 2025),
        ] {
            let day = at(date, Date);
            assert_eq!(
                (
                    extract(day, DateField::Week),
                    extract(day, DateField::IsoYear)
                ),
                (week, year),
                "{date}"
            );
        }
        // No year 0, as in PostgreSQL.
        assert_eq!(extract(at("0001-12-31 BC", Date), DateField::Year), -1);
        assert_eq!(extract(at("0044-03-15 BC", Date), DateField::Year), -44);
    }

    #[test]
    fn unit_and_field_names_are_case_insensitive() {
        assert_eq!(TruncUnit::from_name("Month"), Some(TruncUnit::Month));
        assert_eq!(TruncUnit::from_name("fortnight"), None);
        assert_eq!(DateField::from_name("DOW"), Some(DateField::DayOfWeek));
        assert_eq!(DateField::from_name("EPOCH"), Some(DateField::Epoch));
        assert_eq!(DateField::from_name("millennium"), None);
    }

    #[test]
    fn value_functions_keep_kind_and_pass_null_and_infinity() {
        let tz = Value::TimestampTz("2024-03-17T13:45:12.345678Z".into());
        assert_eq!(
            truncate_value(&tz, TruncUnit::Month, None),
            Ok(Value::TimestampTz("2024-03-01T00:00:00.000000Z".into()))
        );
        assert_eq!(
            truncate_value(&Value::Null, TruncUnit::Month, None),
            Ok(Value::Null)
        );
        let infinite = Value::Timestamp("infinity".into());
        assert_eq!(
            truncate_value(&infinite, TruncUnit::Day, None),
            Ok(infinite.clone())
        );
        assert_eq!(
            extract_value(&infinite, DateField::Year, false),
            Ok(Value::Null)
        );
        assert_eq!(
            extract_value(&tz, DateField::Hour, false),
            Ok(Value::Int(13))
        );
        let date = Value::Date("2024-01-01".into());
        assert!(extract_value(&date, DateField::Hour, false).is_err());
        assert!(extract_value(&date, DateField::Second, false).is_err());
        assert_eq!(
            extract_value(&date, DateField::Second, true),
            Ok(Value::Float(0.0))
        );
        let seen = Value::Timestamp("2026-01-02T03:04:05.500000".into());
        assert_eq!(
            extract_value(&seen, DateField::Second, false),
            Ok(Value::Numeric("5.500000".into()))
        );
        assert_eq!(
            extract_value(&seen, DateField::Second, true),
            Ok(Value::Float(5.5))
        );
        let text = Value::Text("2024-01-01".into());
        assert!(extract_value(&text, DateField::Year, false).is_err());
        assert!(truncate_value(&Value::Date("2024-99-01".into()), TruncUnit::Day, None).is_err());
    }

    /// As PostgreSQL 15 answers: `extract(year from '300000-01-01'::date)`
    /// is 300000, while `date_part` and `date_trunc`, which read a date as
    /// a timestamp, fail ("date out of range for timestamp"), and
    /// `date_part('hour', date)` is 0 where `extract` refuses it.
    #[test]
    fn date_part_and_date_trunc_read_a_date_as_a_timestamp() {
        let far = Value::Date("300000-01-01".into());
        assert_eq!(
            extract_value(&far, DateField::Year, false),
            Ok(Value::Int(300_000))
        );
        let out_of_range = Err(Fault::OutOfRange("timestamp"));
        assert_eq!(extract_value(&far, DateField::Year, true), out_of_range);
        assert_eq!(truncate_value(&far, TruncUnit::Month, None), out_of_range);
        let last = Value::Date("294276-12-31".into());
        assert_eq!(
            extract_value(&last, DateField::Year, true),
            Ok(Value::Int(294_276))
        );
        let date = Value::Date("2024-03-05".into());
        assert_eq!(
            extract_value(&date, DateField::Hour, true),
            Ok(Value::Int(0))
        );
        assert_eq!(
            extract_value(&Value::Date("infinity".into()), DateField::Year, true),
            Ok(Value::Null)
        );
    }
}
