//! Dates and timestamps: reading them (canonical form or what a view author
//! types), writing the canonical forms of `change.rs`, and the calendar work
//! behind `date_trunc` and `extract`. A `timestamptz` is an instant, kept
//! in UTC; its date and fields are those of the database's time zone at
//! that instant (`time_zone`).

use super::error::{Fault, quoted};
use super::time_zone::TimeZone;

/// Which canonical form a temporal value takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TemporalKind {
    /// `YYYY-MM-DD`
    Date,
    /// `YYYY-MM-DDTHH:MM:SS.ffffff`
    Timestamp,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`
    TimestampTz,
}

pub(crate) const MICROS_PER_SECOND: i64 = 1_000_000;
pub(crate) const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
pub(crate) const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
pub(crate) const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_SHIFT_DAYS: i64 = 719_468;
const DAYS_PER_400_YEARS: i64 = 146_097;
/// PostgreSQL's last representable year (of a `date`; a timestamp's ends at
/// 294276); larger ones are refused on input.
const MAX_YEAR: i64 = 5_874_897;
/// A timestamp's last year.
const MAX_TIMESTAMP_YEAR: i64 = 294_276;
/// PostgreSQL's first representable year, 4714 BC (of a `date`).
const MAX_YEAR_BC: i64 = 4_714;
/// How PostgreSQL marks a year before 1 AD, after the value.
const BC_SUFFIX: &str = " BC";

/// A civil date and time of day, without zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    /// Days since 1970-01-01 (negative before).
    pub days: i64,
    pub micros_of_day: i64,
}

/// PostgreSQL's `infinity` and `-infinity`, which pass through truncation.
pub(crate) fn is_infinite(text: &str) -> bool {
    matches!(text, "infinity" | "-infinity")
}

/// Reads a date or timestamp as written by PostgreSQL, by `change.rs`, or by a
/// view author: `YYYY-MM-DD` (four to seven year digits), optionally followed by `T` or a space and
/// `HH:MM[:SS[.ffffff]]`, optionally followed by `Z` or an offset `±HH[[:]MM]`,
/// and by ` BC` for a year before 1 AD.
/// For `TimestampTz` the offset is applied (none means the database's time
/// zone); for the other kinds it is ignored, as PostgreSQL does.
pub(crate) fn parse(text: &str, kind: TemporalKind) -> Option<DateTime> {
    let text = text.trim();
    let (text, before_christ) = match text.strip_suffix(BC_SUFFIX) {
        Some(text) => (text, true),
        None => (text, false),
    };
    let (days, rest) = parse_date_prefix(text, before_christ)?;
    let (micros_of_day, rest) = match rest.strip_prefix(['T', 't', ' ']) {
        Some(time) => parse_time_prefix(time)?,
        None => (0, rest),
    };
    let offset_micros = parse_offset(rest)?;
    let local = DateTime {
        days,
        micros_of_day,
    };
    match kind {
        TemporalKind::TimestampTz => Some(match offset_micros {
            Some(offset_micros) => local.shifted(-offset_micros),
            None => TimeZone::current().to_instant(local),
        }),
        // A date read from a timestamp's text keeps only its day.
        TemporalKind::Date => Some(DateTime {
            micros_of_day: 0,
            ..local
        }),
        TemporalKind::Timestamp => Some(local),
    }
}

/// Where `text` falls in time as `kind`: `-infinity` first, then instants
/// by (day, microsecond of day), then `infinity`; `None` when it does not
/// read as one. Compared as a tuple, this is PostgreSQL's order, where the
/// text is not (BC years, years past 9999).
pub(crate) fn order_key(text: &str, kind: TemporalKind) -> Option<(i8, i64, i64)> {
    match text.trim() {
        "-infinity" => Some((-1, 0, 0)),
        "infinity" => Some((1, 0, 0)),
        finite => parse(finite, kind).map(|instant| (0, instant.days, instant.micros_of_day)),
    }
}

impl DateTime {
    /// Moved by less than a few days' worth of microseconds (a zone offset);
    /// days and time of day are kept apart so that no product can overflow.
    pub(crate) fn shifted(self, micros: i64) -> DateTime {
        let micros_of_day = self.micros_of_day + micros;
        DateTime {
            days: self.days + micros_of_day.div_euclid(MICROS_PER_DAY),
            micros_of_day: micros_of_day.rem_euclid(MICROS_PER_DAY),
        }
    }

    /// The canonical text of this value as `kind`; a year before 1 AD
    /// is written as PostgreSQL does, counted back from 1 BC and marked after.
    pub fn format(self, kind: TemporalKind) -> String {
        let (year, month, day) = civil_from_days(self.days);
        let (year, era) = if year < 1 {
            (1 - year, BC_SUFFIX)
        } else {
            (year, "")
        };
        let date = format!("{year:04}-{month:02}-{day:02}");
        if kind == TemporalKind::Date {
            return format!("{date}{era}");
        }
        let seconds = self.micros_of_day / MICROS_PER_SECOND;
        let time = format!(
            "{:02}:{:02}:{:02}.{:06}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            self.micros_of_day % MICROS_PER_SECOND
        );
        let zone = if kind == TemporalKind::TimestampTz {
            "Z"
        } else {
            ""
        };
        format!("{date}T{time}{zone}{era}")
    }
}

/// A BC year N is year 1 - N of the proleptic calendar, so 1 BC is a leap
/// year.
fn parse_date_prefix(text: &str, before_christ: bool) -> Option<(i64, &str)> {
    let (written_year, rest) = take_digits(text, 4, 7)?;
    let (month, rest) = take_digits(rest.strip_prefix('-')?, 2, 2)?;
    let (day, rest) = take_digits(rest.strip_prefix('-')?, 2, 2)?;
    let (last_year, year) = if before_christ {
        (MAX_YEAR_BC, 1 - written_year)
    } else {
        (MAX_YEAR, written_year)
    };
    let valid = (1..=last_year).contains(&written_year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day);
    valid.then(|| (days_from_civil(year, month, day), rest))
}

fn parse_time_prefix(text: &str) -> Option<(i64, &str)> {
    let (hour, rest) = take_digits(text, 1, 2)?;
    let (minute, mut rest) = take_digits(rest.strip_prefix(':')?, 2, 2)?;
    let mut second = 0;
    if let Some(after_colon) = rest.strip_prefix(':') {
        (second, rest) = take_digits(after_colon, 2, 2)?;
    }
    let mut fraction_micros = 0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        (fraction_micros, rest) = parse_fraction(after_dot)?;
    }
    let valid = hour < 24 && minute < 60 && second < 60;
    let micros = hour * MICROS_PER_HOUR + minute * MICROS_PER_MINUTE + second * MICROS_PER_SECOND;
    valid.then_some((micros + fraction_micros, rest))
}

/// One to six fraction digits, as microseconds.
fn parse_fraction(text: &str) -> Option<(i64, &str)> {
    let (digits, rest) = split_digits(text);
    if digits.is_empty() || digits.len() > 6 {
        return None;
    }
    let padded = format!("{digits:0<6}");
    Some((padded.parse().ok()?, rest))
}

/// `Z`, `±HH`, `±HHMM` or `±HH:MM` (spaces before it allowed), in
/// microseconds, or `""`: no offset (`Some(None)`).
fn parse_offset(text: &str) -> Option<Option<i64>> {
    let text = text.trim_start();
    if text.is_empty() {
        return Some(None);
    }
    if text.eq_ignore_ascii_case("z") {
        return Some(Some(0));
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, rest) = take_digits(rest, 2, 2)?;
    let (minutes, rest) = match rest.strip_prefix(':').unwrap_or(rest) {
        "" => (0, ""),
        minutes => take_digits(minutes, 2, 2)?,
    };
    let valid = rest.is_empty() && hours <= 15 && minutes < 60;
    valid.then_some(Some(
        sign * (hours * MICROS_PER_HOUR + minutes * MICROS_PER_MINUTE),
    ))
}

/// Between `min` and `max` leading ASCII digits as a number, and the rest.
fn take_digits(text: &str, min: usize, max: usize) -> Option<(i64, &str)> {
    let (digits, rest) = split_digits(text);
    if digits.len() < min || digits.len() > max {
        return None;
    }
    Some((digits.parse().ok()?, rest))
}

fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Why text that starts as a date, `YYYY-MM-DD`, names no day: the month
/// or the day does not exist (`2026-02-30`). `None` for any other text.
pub(crate) fn impossible_date(text: &str) -> Option<String> {
    let mut parts = text.trim().splitn(3, '-');
    let year = parts.next()?;
    let month = parts.next()?;
    let day: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if year.len() < 4
        || month.len() != 2
        || day.len() != 2
        || !all_digits(year)
        || !all_digits(month)
    {
        return None;
    }
    let (year, month, day): (i64, i64, i64) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&month) {
        return Some(format!("there is no month {month:02}"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Some(format!("{year:04}-{month:02} has no day {day:02}"));
    }
    None
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, which needs no tables and no loops).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_400_YEARS + day_of_era - EPOCH_SHIFT_DAYS
}

/// The inverse of [`days_from_civil`]: (year, month, day).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + EPOCH_SHIFT_DAYS;
    let era = shifted.div_euclid(DAYS_PER_400_YEARS);
    let day_of_era = shifted - era * DAYS_PER_400_YEARS;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// 0 for Sunday through 6 for Saturday, as PostgreSQL's `dow`.
pub(crate) fn day_of_week(days: i64) -> i64 {
    // 1970-01-01 was a Thursday.
    (days + 4).rem_euclid(7)
}

/// Reads a row's temporal value, failing with the value in the message.
pub(crate) fn parse_value(text: &str, kind: TemporalKind) -> Result<DateTime, Fault> {
    let value = parse(text, kind).ok_or_else(|| {
        Fault::InvalidValue(format!(
            "invalid {} value {}",
            kind_name(kind),
            quoted(text)
        ))
    })?;
    match kind {
        TemporalKind::Date => Ok(value),
        TemporalKind::Timestamp | TemporalKind::TimestampTz => in_timestamp_range(value),
    }
}

/// `days` (since 1970-01-01), if a `date` can hold them: from 4714-11-24
/// BC to 5874897-12-31, as in PostgreSQL ("date out of range").
pub(crate) fn date_in_range(days: i64) -> Result<i64, Fault> {
    let first = days_from_civil(1 - MAX_YEAR_BC, 11, 24);
    let last = days_from_civil(MAX_YEAR, 12, 31);
    if (first..=last).contains(&days) {
        Ok(days)
    } else {
        Err(Fault::OutOfRange("date"))
    }
}

/// `value`, if a timestamp can hold it: a date past 294276 AD cannot
/// (PostgreSQL: "date out of range for timestamp"), so casting it, or
/// `date_trunc` and `date_part`, which read a date as a timestamp, fail.
pub(crate) fn in_timestamp_range(value: DateTime) -> Result<DateTime, Fault> {
    if value.days > days_from_civil(MAX_TIMESTAMP_YEAR, 12, 31) {
        return Err(Fault::OutOfRange("timestamp"));
    }
    Ok(value)
}

pub(crate) fn kind_name(kind: TemporalKind) -> &'static str {
    match kind {
        TemporalKind::Date => "date",
        TemporalKind::Timestamp => "timestamp",
        TemporalKind::TimestampTz => "timestamptz",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TemporalKind::*;

    fn at(text: &str, kind: TemporalKind) -> DateTime {
        parse(text, kind).unwrap_or_else(|| panic!("bad test timestamp {text}"))
    }

    #[test]
    fn canonical_forms_round_trip() {
        for (text, kind) in [
            ("2024-02-29", Date),
            ("1969-12-31T23:59:59.999999", Timestamp),
            ("2024-03-10T08:05:00.000100Z", TimestampTz),
            ("0001-01-01", Date),
            ("12024-01-01", Date),
            ("5874897-12-31", Date),
            ("0001-12-31 BC", Date),
            ("4714-11-24 BC", Date),
            ("0044-03-15T12:00:00.000000 BC", Timestamp),
            ("0001-02-29T23:00:00.000000Z BC", TimestampTz),
        ] {
            assert_eq!(at(text, kind).format(kind), text);
        }
    }

    #[test]
    fn author_written_forms_are_accepted() {
        assert_eq!(
            at("2024-01-05 10:30", Timestamp).format(Timestamp),
            "2024-01-05T10:30:00.000000"
        );
        assert_eq!(
            at(" 2024-01-05 ", TimestampTz).format(TimestampTz),
            "2024-01-05T00:00:00.000000Z"
        );
        assert_eq!(
            at("2024-01-05T01:00:00.5+02", TimestampTz).format(TimestampTz),
            "2024-01-04T23:00:00.500000Z"
        );
        assert_eq!(
            at("2024-01-05 23:00-01:30", TimestampTz).format(TimestampTz),
            "2024-01-06T00:30:00.000000Z"
        );
        assert_eq!(
            at("2024-01-05 23:00+05", Timestamp).format(Timestamp),
            "2024-01-05T23:00:00.000000"
        );
        assert_eq!(at("2024-01-05T23:00:00Z", Date).format(Date), "2024-01-05");
        // As PostgreSQL writes BC timestamps with a zone.
        assert_eq!(
            at("0044-03-15 12:00:00+02 BC", TimestampTz).format(TimestampTz),
            "0044-03-15T10:00:00.000000Z BC"
        );
    }

    /// 1 BC directly precedes 1 AD, and is a leap year (year 0 of the
    /// proleptic calendar), as in PostgreSQL.
    #[test]
    fn bc_dates_count_back_from_1_bc() {
        let first_ad = at("0001-01-01", Date).days;
        assert_eq!(at("0001-12-31 BC", Date).days, first_ad - 1);
        assert_eq!(at("0001-01-01 BC", Date).days, first_ad - 366);
        assert!(
            parse("0002-02-29 BC", Date).is_none(),
            "2 BC is not a leap year"
        );
        assert!(
            parse("4714-11-23 BC", Date).is_some_and(|d| d.days < at("4714-11-24 BC", Date).days)
        );
        assert!(parse("4715-01-01 BC", Date).is_none());
        assert!(parse("0000-01-01", Date).is_none());
        assert!(parse("5874898-01-01", Date).is_none());
    }

    #[test]
    fn malformed_or_impossible_dates_are_refused() {
        for bad in [
            "",
            "2024",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-01-32",
            "24-01-01",
            "2024-01-01T24:00",
            "2024-01-01T10:60",
            "2024-01-01 10:00:00.1234567",
            "2024-01-01 10:00 CET",
            "2024-01-01x",
            "infinity",
            "-2024-01-01",
            "2024-01-01T",
        ] {
            assert_eq!(parse(bad, TimestampTz), None, "{bad}");
        }
    }

    #[test]
    fn calendar_conversion_is_exact_across_eras() {
        for days in [-800_000, -1, 0, 59, 60, 11_016, 2_932_896, 106_000_000] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
