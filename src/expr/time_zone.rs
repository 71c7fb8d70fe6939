//! The time zone a `timestamptz` is computed in: the source database's own
//! `TimeZone`, as SQL in its sessions computes, read with the catalog
//! ([`crate::source::catalog::load_time_zone`]). `date()`, `extract`,
//! `date_trunc`, a cast to `timestamp`, and a date, timestamp or literal
//! without an offset compared with a `timestamptz` all take the zone's
//! civil time at that instant, as PostgreSQL does.
//!
//! Like the case mapping, it is process-wide: one process follows one
//! database. Until a database is read it is UTC.

use std::sync::{Arc, RwLock};

use jiff::tz::AmbiguousOffset;

use super::temporal::{DateTime, MICROS_PER_SECOND, days_from_civil};

/// A time zone known by name, from the system's tz database or the one
/// built in (a machine without `tzdata`), or written as a POSIX rule or a
/// bare offset.
#[derive(Debug, Clone)]
pub struct TimeZone {
    name: String,
    /// `None` for UTC, which needs no lookups.
    zone: Option<jiff::tz::TimeZone>,
}

/// Two zones of one name are one zone.
impl PartialEq for TimeZone {
    fn eq(&self, other: &TimeZone) -> bool {
        self.name == other.name
    }
}

static CURRENT: RwLock<Option<Arc<TimeZone>>> = RwLock::new(None);

/// Days of the Gregorian calendar's 400-year cycle, after which dates and
/// the rules of a zone's last transitions repeat.
const DAYS_PER_400_YEARS: i64 = 146_097;

impl TimeZone {
    pub fn utc() -> TimeZone {
        TimeZone {
            name: "UTC".to_owned(),
            zone: None,
        }
    }

    /// The zone a `TimeZone` setting names; `None` when neither the tz
    /// database nor a POSIX rule knows it.
    pub fn named(name: &str) -> Option<TimeZone> {
        if is_utc(name) {
            return Some(TimeZone {
                name: name.to_owned(),
                zone: None,
            });
        }
        // A number is hours east of Greenwich, as PostgreSQL reads it
        // first; any other bare offset (`+05:30`) is a POSIX rule without a
        // name, hours west.
        if let Some(hours) = name.trim().parse::<f64>().ok().filter(|h| h.abs() < 24.0) {
            let offset = jiff::tz::Offset::from_seconds((hours * 3600.0).round() as i32).ok()?;
            return Some(TimeZone {
                name: name.to_owned(),
                zone: Some(jiff::tz::TimeZone::fixed(offset)),
            });
        }
        let zone = jiff::tz::TimeZone::get(name)
            .or_else(|_| jiff::tz::TimeZone::posix(name))
            .or_else(|_| jiff::tz::TimeZone::posix(&format!("<UNNAMED>{name}")))
            .ok()?;
        Some(TimeZone {
            name: name.to_owned(),
            zone: Some(zone),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_utc(&self) -> bool {
        self.zone.is_none()
    }

    /// Makes `self` the zone every expression computes in from now on.
    pub fn set_current(self) {
        let mut current = CURRENT
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Some(Arc::new(self));
    }

    pub fn current() -> Arc<TimeZone> {
        #[cfg(test)]
        if let Some(zone) = tests::IN_THIS_THREAD.with(|zone| zone.borrow().clone()) {
            return zone;
        }
        let current = CURRENT
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        current.clone().unwrap_or_else(|| Arc::new(TimeZone::utc()))
    }

    /// The civil time at `instant` (a UTC one).
    pub(crate) fn to_local(&self, instant: DateTime) -> DateTime {
        let Some(zone) = &self.zone else {
            return instant;
        };
        let offset =
            jiff::Timestamp::from_microsecond(micros_since_epoch(within_jiff_range(instant)))
                .map_or(0, |timestamp| zone.to_offset(timestamp).seconds());
        instant.shifted(i64::from(offset) * MICROS_PER_SECOND)
    }

    /// The instant of `local`, a civil time in this zone. A time skipped by
    /// a change to summer time takes the offset before it, and a time that
    /// happens twice the offset after the change, as PostgreSQL chooses
    /// (`'2024-03-10 02:30'` is 03:30 EDT in New York, `'2024-11-03
    /// 01:30'` is 01:30 EST).
    pub(crate) fn to_instant(&self, local: DateTime) -> DateTime {
        let Some(zone) = &self.zone else {
            return local;
        };
        let offset = civil(within_jiff_range(local))
            .map(|civil| match zone.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset,
                AmbiguousOffset::Gap { before, .. } => before,
                AmbiguousOffset::Fold { after, .. } => after,
            })
            .map_or(0, |offset| offset.seconds());
        local.shifted(-i64::from(offset) * MICROS_PER_SECOND)
    }
}

/// Whether `zone` (a `TimeZone` setting) is UTC under one of its names.
pub fn is_utc(zone: &str) -> bool {
    let zone = zone.strip_prefix("Etc/").unwrap_or(zone);
    [
        "UTC",
        "UCT",
        "GMT",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Zulu",
        "Universal",
        "Greenwich",
    ]
    .iter()
    .any(|utc| zone.eq_ignore_ascii_case(utc))
}

/// Where jiff, which knows the years -9999 to 9999 (a timestamp's go to
/// 294276), finds the offset of `value`: a later one moved back by whole
/// 400-year cycles, as a zone's rules past its last transition repeat each
/// year and the calendar every 400 years; an earlier one at jiff's first
/// day, before every zone's first transition.
fn within_jiff_range(value: DateTime) -> DateTime {
    let first_day = days_from_civil(-9998, 1, 1);
    let last_day = days_from_civil(9998, 12, 31);
    if value.days < first_day {
        return DateTime {
            days: first_day,
            micros_of_day: 0,
        };
    }
    let cycles = ((value.days - last_day).max(0) + DAYS_PER_400_YEARS - 1) / DAYS_PER_400_YEARS;
    DateTime {
        days: value.days - cycles * DAYS_PER_400_YEARS,
        ..value
    }
}

fn micros_since_epoch(value: DateTime) -> i64 {
    value.days * super::temporal::MICROS_PER_DAY + value.micros_of_day
}

fn civil(value: DateTime) -> Option<jiff::civil::DateTime> {
    let (year, month, day) = super::temporal::civil_from_days(value.days);
    let seconds = value.micros_of_day / MICROS_PER_SECOND;
    let nanos = (value.micros_of_day % MICROS_PER_SECOND) * 1_000;
    jiff::civil::DateTime::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(seconds / 3600).ok()?,
        i8::try_from(seconds / 60 % 60).ok()?,
        i8::try_from(seconds % 60).ok()?,
        i32::try_from(nanos).ok()?,
    )
    .ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::change::Value;
    use crate::expr::cast::{CastTarget, cast};
    use crate::expr::date_parts::{DateField, TruncUnit, extract_value, truncate_value};
    use crate::expr::temporal::TemporalKind;

    thread_local! {
        /// A zone for this thread's expressions only, so that tests in
        /// other zones can run beside the rest (which expect UTC).
        pub(super) static IN_THIS_THREAD: RefCell<Option<Arc<TimeZone>>> =
            const { RefCell::new(None) };
    }

    /// Runs `run` with `zone` as this thread's current zone.
    pub(crate) fn in_zone<T>(zone: &str, run: impl FnOnce() -> T) -> T {
        let zone = TimeZone::named(zone).expect("a known zone");
        IN_THIS_THREAD.with(|current| *current.borrow_mut() = Some(Arc::new(zone)));
        let result = run();
        IN_THIS_THREAD.with(|current| *current.borrow_mut() = None);
        result
    }

    fn tz(text: &str) -> Value {
        Value::TimestampTz(text.to_owned())
    }

    fn as_tz(text: &str) -> String {
        match cast(
            &Value::Text(text.to_owned()),
            CastTarget::Temporal(TemporalKind::TimestampTz),
        ) {
            Ok(Value::TimestampTz(text)) => text,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn truncated(unit: TruncUnit, text: &str) -> String {
        match truncate_value(&tz(text), unit, None) {
            Ok(Value::TimestampTz(text)) => text,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn field(field: DateField, text: &str) -> i64 {
        match extract_value(&tz(text), field, false) {
            Ok(Value::Int(value)) => value,
            other => panic!("{text}: {other:?}"),
        }
    }

    /// Each answer is PostgreSQL 15's, in a session of that zone.
    #[test]
    fn new_york_around_both_changes_of_2024() {
        in_zone("America/New_York", || {
            // A skipped time takes the offset before; a repeated one the one after.
            assert_eq!(as_tz("2024-03-10 02:30"), "2024-03-10T07:30:00.000000Z");
            assert_eq!(as_tz("2024-11-03 01:30"), "2024-11-03T06:30:00.000000Z");
            assert_eq!(as_tz("2024-11-03 01:30-04"), "2024-11-03T05:30:00.000000Z");
            // To the hour, the repeated hour keeps its own offset.
            let hour = |text| truncated(TruncUnit::Hour, text);
            assert_eq!(hour("2024-11-03T06:30:00Z"), "2024-11-03T06:00:00.000000Z");
            assert_eq!(hour("2024-11-03T05:30:00Z"), "2024-11-03T05:00:00.000000Z");
            // To the day, the midnight of the zone.
            let day = |text| truncated(TruncUnit::Day, text);
            assert_eq!(day("2024-11-03T12:00:00Z"), "2024-11-03T04:00:00.000000Z");
            assert_eq!(day("2024-03-10T12:00:00Z"), "2024-03-10T05:00:00.000000Z");
            assert_eq!(day("2024-03-10T03:00:00Z"), "2024-03-09T05:00:00.000000Z");
            assert_eq!(
                truncated(TruncUnit::Month, "2024-07-01T03:00:00Z"),
                "2024-06-01T04:00:00.000000Z"
            );
            assert_eq!(field(DateField::Hour, "2024-03-10T12:00:00Z"), 8);
            assert_eq!(field(DateField::Day, "2024-03-10T03:00:00Z"), 9);
            let date = cast(
                &tz("2024-03-10T03:00:00.000000Z"),
                CastTarget::Temporal(TemporalKind::Date),
            );
            assert_eq!(date, Ok(Value::Date("2024-03-09".into())));
            let local = cast(
                &tz("2024-11-03T06:30:00.000000Z"),
                CastTarget::Temporal(TemporalKind::Timestamp),
            );
            assert_eq!(
                local,
                Ok(Value::Timestamp("2024-11-03T01:30:00.000000".into()))
            );
            let midnight = cast(
                &Value::Date("2024-03-10".into()),
                CastTarget::Temporal(TemporalKind::TimestampTz),
            );
            assert_eq!(
                midnight,
                Ok(Value::TimestampTz("2024-03-10T05:00:00.000000Z".into()))
            );
            // A date or a literal compared with an instant is the zone's midnight.
            let before_midnight = tz("2024-03-10T04:59:00.000000Z");
            for day in [
                Value::Date("2024-03-10".into()),
                Value::Text("2024-03-10".into()),
            ] {
                assert_eq!(
                    crate::expr::compare_values(&before_midnight, &day),
                    Some(std::cmp::Ordering::Less)
                );
            }
        });
    }

    /// Local mean time before the zone's first rule (offsets in seconds),
    /// summer time in a year past jiff's 9999, an offset of half an hour
    /// and a change of half an hour, and a POSIX rule.
    #[test]
    fn offsets_of_other_eras_and_zones() {
        in_zone("America/New_York", || {
            assert_eq!(field(DateField::Hour, "1800-07-01T12:00:00Z"), 7);
            assert_eq!(field(DateField::Minute, "1800-07-01T12:00:00Z"), 3);
            assert_eq!(field(DateField::Hour, "100000-07-01T12:00:00Z"), 8);
            assert_eq!(field(DateField::Hour, "100000-01-01T12:00:00Z"), 7);
            assert_eq!(
                as_tz("0044-03-15 12:00 BC"),
                "0044-03-15T16:56:02.000000Z BC"
            );
        });
        in_zone("Asia/Kolkata", || {
            assert_eq!(
                truncated(TruncUnit::Hour, "2024-01-01T10:45:00Z"),
                "2024-01-01T10:30:00.000000Z"
            );
            assert_eq!(field(DateField::Minute, "2024-01-01T10:45:00Z"), 15);
        });
        in_zone("Australia/Lord_Howe", || {
            assert_eq!(
                truncated(TruncUnit::Day, "2024-04-07T12:00:00Z"),
                "2024-04-06T13:00:00.000000Z"
            );
            assert_eq!(as_tz("2024-04-07 01:45"), "2024-04-06T15:15:00.000000Z");
        });
        for (setting, hour) in [("UTC+3", 7), ("+03:00", 7), ("+03", 13), ("-3.5", 6)] {
            in_zone(setting, || {
                assert_eq!(
                    field(DateField::Hour, "2024-01-01T10:00:00Z"),
                    hour,
                    "{setting}"
                );
            });
        }
    }

    #[test]
    fn names_of_utc_need_no_lookups_and_unknown_names_are_none() {
        for name in ["UTC", "Etc/UTC", "GMT", "zulu"] {
            assert!(
                TimeZone::named(name).is_some_and(|zone| zone.is_utc()),
                "{name}"
            );
        }
        assert!(TimeZone::named("America/New_York").is_some_and(|zone| !zone.is_utc()));
        assert!(TimeZone::named("Mars/Olympus_Mons").is_none());
    }
}
