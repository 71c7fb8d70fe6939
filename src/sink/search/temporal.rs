//! Dates and timestamps between viewkeeper's text forms and Tantivy instants.
//!
//! Tantivy has one date type, an instant in UTC (i64 nanoseconds, so years
//! 1678 to 2261). A `date` becomes its midnight UTC and a `timestamp` (no
//! zone) is taken as UTC, as DESIGN.md section 3 does for `date(ts)`.
//! A query's value beyond those years is refused ([`parse_instant`]); a
//! document's is held at the end of time it lies at ([`index_instant`]).

use std::cmp::Ordering;

use tantivy::DateTime;
use tantivy::time::OffsetDateTime;
use tantivy::time::format_description::well_known::Rfc3339;

/// Where a date is that the index cannot hold as itself.
pub const BEYOND_THE_INDEX: &str = "beyond the instants the index holds \
    (1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z, whole seconds)";

/// Parses `2026-11-24`, `2026-11-24T14:03:07.120000` or
/// `2026-11-24T14:03:07.120000Z` (any RFC 3339 offset is accepted).
pub fn parse_instant(text: &str) -> Result<DateTime, String> {
    let rfc3339 = if is_date(text) {
        format!("{text}T00:00:00Z")
    } else if has_zone(text) {
        text.to_owned()
    } else {
        format!("{text}Z")
    };
    let outside = || format!("{text:?} is {BEYOND_THE_INDEX}");
    let instant = OffsetDateTime::parse(&rfc3339, &Rfc3339).map_err(|_| {
        // A value PostgreSQL holds that RFC 3339 cannot say (a BC date, a
        // year past 9999) is out of the index's range, as 2300 is.
        if crate::expr::reads_as_instant(text) {
            outside()
        } else {
            format!("{text:?} is not a date or timestamp")
        }
    })?;
    DateTime::try_from_utc(instant).ok_or_else(outside)
}

fn is_date(text: &str) -> bool {
    text.len() == 10 && !text.contains('T')
}

/// A zone is `Z` or an offset after the time of day: `+05:30`, `-08:00`.
fn has_zone(text: &str) -> bool {
    let Some((_, time_of_day)) = text.split_once(['T', 't']) else {
        return false;
    };
    time_of_day.ends_with(['Z', 'z']) || time_of_day.contains(['+', '-'])
}

/// A value as a date field indexes it: its instant, or, for a value
/// beyond the index's years (`infinity`, a BC date, `9999-12-31`), the
/// first or last instant the index holds, so that ranges and sorts place
/// it where PostgreSQL orders it. Hits show the value as written (the
/// `_source` field), not this instant.
pub fn index_instant(text: &str) -> Result<DateTime, String> {
    parse_instant(text).or_else(|reason| match crate::expr::instant_beside_epoch(text) {
        Some(Ordering::Less) => Ok(DateTime::MIN),
        Some(Ordering::Greater) => Ok(DateTime::MAX),
        _ => Err(reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        parse_instant(text)
            .map(DateTime::into_timestamp_micros)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn the_three_forms_parse_as_utc_instants() {
        assert_eq!(micros("1970-01-02"), 86_400_000_000);
        assert_eq!(micros("1970-01-01T00:00:01.500000"), 1_500_000);
        assert_eq!(micros("1970-01-01T00:00:01.500000Z"), 1_500_000);
        assert_eq!(micros("1970-01-01T01:00:01.5+01:00"), 1_500_000);
    }

    #[test]
    fn special_and_out_of_range_values_are_refused() {
        for text in [
            "infinity",
            "-infinity",
            "10000-01-01T00:00:00.000000",
            "",
            "2026-13-01",
        ] {
            assert!(parse_instant(text).is_err(), "{text}");
        }
        // Every value PostgreSQL holds beyond the index's years gives one reason.
        for far in [
            "2300-01-01",
            "200000-01-01T00:00:00.000000Z",
            "0044-03-15 BC",
            "infinity",
        ] {
            let reason = parse_instant(far).expect_err("beyond i64 nanoseconds");
            assert!(reason.contains(BEYOND_THE_INDEX), "{reason}");
        }
        let garbage = parse_instant("2026-13-01").expect_err("no month 13");
        assert!(garbage.contains("not a date"), "{garbage}");
    }

    /// Beyond the index's years, a value takes the instant at that end, so
    /// ranges and sorts order it as PostgreSQL does; what is no date stays
    /// refused.
    #[test]
    fn values_beyond_the_index_take_its_first_or_last_instant() {
        for late in [
            "infinity",
            "9999-12-31",
            "2300-01-01T10:00:00.000000Z",
            "10000-01-01",
        ] {
            assert_eq!(index_instant(late), Ok(DateTime::MAX), "{late}");
        }
        for early in ["-infinity", "0044-03-15 BC", "1500-01-01"] {
            assert_eq!(index_instant(early), Ok(DateTime::MIN), "{early}");
        }
        assert_eq!(index_instant("1970-01-02"), parse_instant("1970-01-02"));
        assert!(index_instant("2026-13-01").is_err());
        assert!(index_instant("soon").is_err());
    }
}
