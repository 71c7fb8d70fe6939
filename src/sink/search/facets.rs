//! Facet counts: for each field asked, how many matching documents hold
//! each of its values, the most frequent first; or, for numbers and dates,
//! how many fall in each bucket, in the buckets' order. A shop's filter
//! sidebar ("Books (12), Toys (3)"; "0–10 € (4), 10–20 € (9)"; "2025 (31)")
//! in the same request as the page of hits.
//!
//! Counted from the fast columns, over the query's matches (not only the
//! page): a `keyword`, `i64` or `bool` field by value; an `i64` or `f64`
//! field by buckets of a width (`price_cents:1000`); a `date` field by
//! `year`, `quarter`, `month`, `week` or `day` in UTC (`opened:year`). A document with several
//! values (a `many` join's field, an array column) counts once in each
//! distinct value or bucket, so the counts may add up to more than the
//! matches; a document without a value counts in none.

use std::collections::HashMap;

use serde_json::{Value, json};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DateTime, DocId, Score, SegmentOrdinal, SegmentReader};

use super::SearchError;
use super::schema::IndexSchema;
use crate::view::model::SearchFieldType;

/// Values listed per field when the request does not say.
pub const DEFAULT_FACET_LIMIT: usize = 10;
/// The most values listed per field.
pub const MAX_FACET_LIMIT: usize = 1_000;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The facets to count, and how many values to list for each.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetRequest {
    pub facets: Vec<FacetSpec>,
    pub limit: usize,
}

/// One facet: a field, by value or by buckets (`price_cents:1000`).
#[derive(Debug, Clone, PartialEq)]
pub struct FacetSpec {
    /// As asked, the facet's name in the answer.
    pub text: String,
    pub field: String,
    pub buckets: Option<Buckets>,
}

/// How a number's or a date's values are grouped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Buckets {
    /// `[n × width, (n + 1) × width)`, named by its lower bound.
    Width(f64),
    /// A UTC calendar year, quarter, month, week or day, named `2026`,
    /// `2026-Q1`, `2026-03`, `2026-03-02` (a week by its Monday, as
    /// PostgreSQL's `date_trunc('week', …)` gives it) and `2026-03-01`.
    Year,
    Quarter,
    Month,
    Week,
    Day,
}

impl FacetRequest {
    /// `category,in_stock,price_cents:1000,opened:year`: facets separated by
    /// commas, each a field name, and a bucket after a colon.
    pub fn parse(facets: &str, limit: Option<usize>) -> Result<FacetRequest, SearchError> {
        let limit = limit.unwrap_or(DEFAULT_FACET_LIMIT);
        if limit == 0 || limit > MAX_FACET_LIMIT {
            return Err(SearchError::Facet(format!(
                "`facet_limit` is from 1 to {MAX_FACET_LIMIT}, not {limit}"
            )));
        }
        let mut specs: Vec<FacetSpec> = Vec::new();
        for text in facets.split(',').map(str::trim) {
            let spec = FacetSpec::parse(text, facets)?;
            if !specs.iter().any(|known| known.text == spec.text) {
                specs.push(spec);
            }
        }
        Ok(FacetRequest {
            facets: specs,
            limit,
        })
    }
}

impl FacetSpec {
    fn parse(text: &str, all: &str) -> Result<FacetSpec, SearchError> {
        let (field, buckets) = match text.split_once(':') {
            None => (text, None),
            Some((field, bucket)) => (field, Some(Buckets::parse(field, bucket)?)),
        };
        if field.is_empty() {
            return Err(SearchError::Facet(format!(
                "`facets` names fields separated by commas, each with a bucket after a colon \
                 for a number or a date (`category,price_cents:1000,opened:year`), not {all:?}"
            )));
        }
        Ok(FacetSpec {
            text: text.to_owned(),
            field: field.to_owned(),
            buckets,
        })
    }
}

impl Buckets {
    fn parse(field: &str, bucket: &str) -> Result<Buckets, SearchError> {
        match bucket.to_ascii_lowercase().as_str() {
            "year" => return Ok(Buckets::Year),
            "quarter" => return Ok(Buckets::Quarter),
            "month" => return Ok(Buckets::Month),
            "week" => return Ok(Buckets::Week),
            "day" => return Ok(Buckets::Day),
            _ => {}
        }
        match bucket.parse::<f64>() {
            Ok(width) if width.is_finite() && width > 0.0 => Ok(Buckets::Width(width)),
            _ => Err(SearchError::Facet(format!(
                "facet {field}:{bucket}: a bucket is a positive width for a number \
                 (`price:1000`), or `year`, `quarter`, `month`, `week` or `day` for a date \
                 (`born:year`)"
            ))),
        }
    }
}

/// The counts of one facet's values, the most frequent first (ties by
/// value), or its buckets in order.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetCounts {
    pub facet: String,
    pub counts: Vec<(Value, u64)>,
    /// How many other values matching documents hold, left out by the limit.
    pub more: usize,
}

impl FacetCounts {
    /// `{"values": [{"value": …, "count": …}], "more": …}`.
    pub fn to_json(&self) -> Value {
        let values: Vec<Value> = self
            .counts
            .iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect();
        json!({"values": values, "more": self.more})
    }
}

/// How a facet's values are read from its fast column and named.
#[derive(Debug, Clone, Copy)]
enum FacetKind {
    Keyword,
    Bool,
    I64,
    /// Buckets of an `i64`'s values, of an integer width.
    I64Width(i64),
    F64Width(f64),
    /// Buckets of a date's values; each value's bucket is a number (the
    /// year, or quarters, months, weeks or days since an origin).
    Date(Buckets),
}

/// The facets of `request` as `schema` can count them, or why not.
fn facet_kinds(
    schema: &IndexSchema,
    request: &FacetRequest,
) -> Result<Vec<(String, String, FacetKind)>, SearchError> {
    let countable = || {
        let names: Vec<&str> = schema
            .fields
            .iter()
            .filter(|bound| {
                schema.is_fast(bound) && !matches!(bound.field_type, SearchFieldType::Text(_))
            })
            .map(|bound| bound.name.as_str())
            .collect();
        if names.is_empty() {
            "none (give a keyword, i64, f64, bool or date field `fast: true`)".to_owned()
        } else {
            names.join(", ")
        }
    };
    request
        .facets
        .iter()
        .map(|spec| {
            let name = &spec.field;
            let Some(bound) = schema.fields.iter().find(|bound| &bound.name == name) else {
                return Err(SearchError::Facet(format!(
                    "cannot count values of {name:?}: no such field in this view; fields to \
                     count: {}",
                    countable()
                )));
            };
            let kind = kind_of(bound.field_type, spec)?;
            if !schema.is_fast(bound) {
                return Err(SearchError::Facet(format!(
                    "cannot count values of {name}: it is not a fast field; give it `fast: \
                     true` in the view file"
                )));
            }
            Ok((spec.text.clone(), name.clone(), kind))
        })
        .collect()
}

fn kind_of(field_type: SearchFieldType, spec: &FacetSpec) -> Result<FacetKind, SearchError> {
    let name = &spec.field;
    let refused = |why: &str| {
        Err(SearchError::Facet(format!(
            "cannot count values of {name}: {why}"
        )))
    };
    match (field_type, spec.buckets) {
        (SearchFieldType::Text(_), _) => {
            refused("a text field holds words, not values to count (a keyword field has them)")
        }
        (SearchFieldType::Keyword, None) => Ok(FacetKind::Keyword),
        (SearchFieldType::Bool, None) => Ok(FacetKind::Bool),
        (SearchFieldType::I64, None) => Ok(FacetKind::I64),
        (SearchFieldType::I64, Some(Buckets::Width(width))) => {
            if width.fract() == 0.0 && width <= i64::MAX as f64 {
                Ok(FacetKind::I64Width(width as i64))
            } else {
                refused(&format!(
                    "an i64 field's bucket width is a whole number, not {width}"
                ))
            }
        }
        (SearchFieldType::F64, Some(Buckets::Width(width))) => Ok(FacetKind::F64Width(width)),
        (SearchFieldType::F64, None) => refused(&format!(
            "an f64 field is counted by buckets of a width: `{name}:10` counts [0, 10), [10, 20), …"
        )),
        (SearchFieldType::Date, Some(Buckets::Width(_)) | None) => refused(&format!(
            "a date field is counted by `year`, `quarter`, `month`, `week` or `day`: \
             `{name}:month`"
        )),
        (SearchFieldType::Date, Some(unit)) => Ok(FacetKind::Date(unit)),
        (SearchFieldType::Keyword | SearchFieldType::Bool, Some(_)) => {
            refused("only numbers and dates have buckets; a keyword or bool is counted by value")
        }
        (SearchFieldType::I64, Some(_)) => {
            refused(&format!("an i64 field's buckets are a width: `{name}:100`"))
        }
        (SearchFieldType::F64, Some(_)) => {
            refused(&format!("an f64 field's buckets are a width: `{name}:0.5`"))
        }
    }
}

/// A collector of the counts of each asked facet, checked against the
/// schema first.
pub(super) struct FacetCollector {
    /// Each facet's name as asked, its field and its kind.
    facets: Vec<(String, String, FacetKind)>,
    limit: usize,
}

impl FacetCollector {
    pub(super) fn new(
        schema: &IndexSchema,
        request: &FacetRequest,
    ) -> Result<FacetCollector, SearchError> {
        Ok(FacetCollector {
            facets: facet_kinds(schema, request)?,
            limit: request.limit,
        })
    }
}

/// Counts by value, one map per asked facet.
type ValueCounts = Vec<HashMap<FacetValue, u64>>;

/// A value or a bucket's number, as counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum FacetValue {
    Bool(bool),
    Int(i64),
    Text(String),
    /// An `f64` bucket's number, `floor(value / width)`, in the monotonic
    /// `u64` form ([`float_key`]): beyond `i64` for large values or small
    /// widths (`1e19`, a width of `1e-300`).
    Float(u64),
}

impl FacetValue {
    /// The value as the answer names it: a bucket by its lower bound or its
    /// calendar name.
    fn to_json(&self, kind: FacetKind) -> Value {
        match (self, kind) {
            (FacetValue::Int(n), FacetKind::I64Width(width)) => json!(n.saturating_mul(width)),
            (FacetValue::Float(key), FacetKind::F64Width(width)) => {
                json!(float_of_key(*key) * width)
            }
            (FacetValue::Int(n), FacetKind::Date(unit)) => json!(calendar_name(*n, unit)),
            (FacetValue::Bool(value), _) => json!(value),
            (FacetValue::Int(value), _) => json!(value),
            (FacetValue::Text(value), _) => json!(value),
            (FacetValue::Float(key), _) => json!(float_of_key(*key)),
        }
    }
}

impl Collector for FacetCollector {
    type Fruit = Vec<FacetCounts>;
    type Child = SegmentFacets;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentFacets> {
        let fast = reader.fast_fields();
        let facets = self
            .facets
            .iter()
            .map(|(_, field, kind)| {
                let column = match kind {
                    FacetKind::Keyword => FacetColumn::Keyword(fast.str(field)?),
                    FacetKind::Bool => FacetColumn::Bool(fast.column_opt(field)?),
                    FacetKind::I64 | FacetKind::I64Width(_) => {
                        FacetColumn::I64(fast.column_opt(field)?)
                    }
                    FacetKind::F64Width(_) => FacetColumn::F64(fast.column_opt(field)?),
                    FacetKind::Date(_) => FacetColumn::Date(fast.column_opt(field)?),
                };
                Ok(SegmentFacet {
                    column,
                    kind: *kind,
                    by_key: HashMap::new(),
                })
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(SegmentFacets {
            facets,
            seen: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<ValueCounts>) -> tantivy::Result<Vec<FacetCounts>> {
        let mut merged: ValueCounts = self.facets.iter().map(|_| HashMap::new()).collect();
        for segment in segments {
            for (total, counts) in merged.iter_mut().zip(segment) {
                for (value, count) in counts {
                    *total.entry(value).or_default() += count;
                }
            }
        }
        Ok(self
            .facets
            .iter()
            .zip(merged)
            .map(|((name, _, kind), counts)| self.ranked(name, *kind, counts))
            .collect())
    }
}

impl FacetCollector {
    /// Values by count, the most frequent first; buckets in order.
    fn ranked(
        &self,
        facet: &str,
        kind: FacetKind,
        counts: HashMap<FacetValue, u64>,
    ) -> FacetCounts {
        let mut counts: Vec<(FacetValue, u64)> = counts.into_iter().collect();
        match kind {
            FacetKind::Keyword | FacetKind::Bool | FacetKind::I64 => {
                counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            }
            FacetKind::I64Width(_) | FacetKind::F64Width(_) | FacetKind::Date(_) => {
                counts.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
        let more = counts.len().saturating_sub(self.limit);
        counts.truncate(self.limit);
        FacetCounts {
            facet: facet.to_owned(),
            counts: counts
                .into_iter()
                .map(|(value, count)| (value.to_json(kind), count))
                .collect(),
            more,
        }
    }
}

/// A field's fast column in one segment; `None` where no document of the
/// segment has a value.
enum FacetColumn {
    Keyword(Option<StrColumn>),
    Bool(Option<Column<bool>>),
    I64(Option<Column<i64>>),
    F64(Option<Column<f64>>),
    Date(Option<Column<DateTime>>),
}

/// One facet's counts in one segment, by a key of each value: a keyword's
/// term ordinal (whose text is looked up once per value, at the end), a
/// number's or bucket's number with its sign bit flipped, so that the keys'
/// order is the numbers'.
struct SegmentFacet {
    column: FacetColumn,
    kind: FacetKind,
    by_key: HashMap<u64, u64>,
}

fn key_of(n: i64) -> u64 {
    (n as u64) ^ (1 << 63)
}

fn number_of(key: u64) -> i64 {
    (key ^ (1 << 63)) as i64
}

impl SegmentFacet {
    /// Counts each distinct value (or bucket) of `doc` once; `seen` is
    /// scratch space.
    fn count(&mut self, doc: DocId, seen: &mut Vec<u64>) {
        seen.clear();
        match (&self.column, self.kind) {
            (FacetColumn::Keyword(Some(column)), _) => seen.extend(column.term_ords(doc)),
            (FacetColumn::Bool(Some(column)), _) => {
                seen.extend(column.values_for_doc(doc).map(u64::from));
            }
            (FacetColumn::I64(Some(column)), FacetKind::I64Width(width)) => {
                seen.extend(
                    column
                        .values_for_doc(doc)
                        .map(|v| key_of(v.div_euclid(width))),
                );
            }
            (FacetColumn::I64(Some(column)), _) => {
                seen.extend(column.values_for_doc(doc).map(key_of));
            }
            (FacetColumn::F64(Some(column)), FacetKind::F64Width(width)) => {
                // NaN and the infinities are in no bucket, nor a value
                // whose bucket number is past f64's range.
                seen.extend(
                    column
                        .values_for_doc(doc)
                        .map(|v| (v / width).floor())
                        .filter(|n| n.is_finite())
                        .map(float_key),
                );
            }
            (FacetColumn::Date(Some(column)), FacetKind::Date(unit)) => {
                seen.extend(
                    column
                        .values_for_doc(doc)
                        .map(|date| key_of(calendar_number(date.into_timestamp_micros(), unit))),
                );
            }
            _ => {}
        }
        seen.sort_unstable();
        seen.dedup();
        for &key in seen.iter() {
            *self.by_key.entry(key).or_default() += 1;
        }
    }

    fn harvest(self) -> HashMap<FacetValue, u64> {
        let mut counts = HashMap::with_capacity(self.by_key.len());
        let mut text = String::new();
        for (key, count) in self.by_key {
            let value = match &self.column {
                // An ordinal of the column's own dictionary is always found;
                // one that is not is left uncounted.
                FacetColumn::Keyword(Some(column)) => match column.ord_to_str(key, &mut text) {
                    Ok(true) => FacetValue::Text(std::mem::take(&mut text)),
                    _ => continue,
                },
                FacetColumn::Keyword(None) => continue,
                FacetColumn::Bool(_) => FacetValue::Bool(key != 0),
                FacetColumn::F64(_) => FacetValue::Float(key),
                FacetColumn::I64(_) | FacetColumn::Date(_) => FacetValue::Int(number_of(key)),
            };
            counts.insert(value, count);
        }
        counts
    }
}

/// `n` as a `u64` whose order is the numbers' order (`-0` and `0` are one
/// bucket, `0`).
fn float_key(n: f64) -> u64 {
    let bits = (n + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn float_of_key(key: u64) -> f64 {
    let bits = if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    };
    f64::from_bits(bits)
}

/// Days from 1970-01-01, a Thursday, back to the Monday before it.
const EPOCH_AFTER_MONDAY: i64 = 3;

/// The bucket of an instant: its UTC year, quarters or months since year
/// 0, or weeks or days since the epoch (weeks from Monday 1969-12-29).
fn calendar_number(micros: i64, unit: Buckets) -> i64 {
    let days = micros.div_euclid(MICROS_PER_DAY);
    // Per matching value: the calendar only for the units that need it.
    let year_and_month = || {
        let (year, month, _) = civil_from_days(days);
        (year, month)
    };
    match unit {
        Buckets::Year => year_and_month().0,
        Buckets::Quarter => {
            let (year, month) = year_and_month();
            year * 4 + (month - 1) / 3
        }
        Buckets::Month => {
            let (year, month) = year_and_month();
            year * 12 + month - 1
        }
        Buckets::Week => (days + EPOCH_AFTER_MONDAY).div_euclid(7),
        Buckets::Day | Buckets::Width(_) => days,
    }
}

/// A bucket's name: `2026`, `2026-Q1`, `2026-03`, `2026-03-02` (a week's
/// Monday) or `2026-03-01`.
fn calendar_name(number: i64, unit: Buckets) -> String {
    let date = |days: i64| {
        let (year, month, day) = civil_from_days(days);
        format!("{year:04}-{month:02}-{day:02}")
    };
    match unit {
        Buckets::Year => format!("{number:04}"),
        Buckets::Quarter => format!("{:04}-Q{}", number.div_euclid(4), number.rem_euclid(4) + 1),
        Buckets::Month => {
            let (year, month) = (number.div_euclid(12), number.rem_euclid(12) + 1);
            format!("{year:04}-{month:02}")
        }
        Buckets::Week => date(number * 7 - EPOCH_AFTER_MONDAY),
        Buckets::Day | Buckets::Width(_) => date(number),
    }
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(super) struct SegmentFacets {
    facets: Vec<SegmentFacet>,
    /// The keys of the document at hand, to count each once.
    seen: Vec<u64>,
}

impl SegmentCollector for SegmentFacets {
    type Fruit = ValueCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        for facet in &mut self.facets {
            facet.count(doc, &mut self.seen);
        }
    }

    fn harvest(self) -> ValueCounts {
        self.facets.into_iter().map(SegmentFacet::harvest).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_bucket_keys_order_as_the_numbers() {
        let numbers = [-1e300, -2.5, -1.0, 0.0, 1e-300, 1.0, 1e19, 1e300];
        let keys: Vec<u64> = numbers.iter().map(|&n| float_key(n)).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{keys:?}");
        for n in numbers {
            assert_eq!(float_of_key(float_key(n)), n);
        }
        assert_eq!(float_key(-0.0), float_key(0.0));
    }

    #[test]
    fn calendar_buckets_are_utc_years_quarters_months_weeks_and_days() {
        let micros = |days: i64| days * MICROS_PER_DAY + 1;
        // 2026-03-01 (a Sunday) is day 20,513; 1969-12-31 is day -1.
        for (days, year, quarter, month, week, day) in [
            (
                20_513,
                "2026",
                "2026-Q1",
                "2026-03",
                "2026-02-23",
                "2026-03-01",
            ),
            (
                20_514,
                "2026",
                "2026-Q1",
                "2026-03",
                "2026-03-02",
                "2026-03-02",
            ),
            (-1, "1969", "1969-Q4", "1969-12", "1969-12-29", "1969-12-31"),
            (-4, "1969", "1969-Q4", "1969-12", "1969-12-22", "1969-12-28"),
            (0, "1970", "1970-Q1", "1970-01", "1969-12-29", "1970-01-01"),
            (
                11_016,
                "2000",
                "2000-Q1",
                "2000-02",
                "2000-02-28",
                "2000-02-29",
            ),
            (
                20_636,
                "2026",
                "2026-Q3",
                "2026-07",
                "2026-06-29",
                "2026-07-02",
            ),
        ] {
            let name = |unit| calendar_name(calendar_number(micros(days), unit), unit);
            let units = [
                Buckets::Year,
                Buckets::Quarter,
                Buckets::Month,
                Buckets::Week,
                Buckets::Day,
            ];
            assert_eq!(
                units.map(name),
                [year, quarter, month, week, day].map(str::to_owned),
                "day {days}"
            );
        }
        assert_eq!(calendar_number(-1, Buckets::Day), -1, "before the epoch");
    }
}
