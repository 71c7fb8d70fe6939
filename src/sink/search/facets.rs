//! Facet counts: for each field asked, how many matching documents hold
//! each of its values, the most frequent first. A shop's filter sidebar
//! ("Books (12), Toys (3)") in the same request as the page of hits.
//!
//! Counted from the fast columns, over the query's matches (not only the
//! page): a `keyword`, `i64` or `bool` field with `fast: true`. A document
//! with several values (a `many` join's field, an array column) counts once
//! for each distinct one, so the counts may add up to more than the
//! matches; a document without a value counts for none.

use std::collections::HashMap;

use serde_json::{Value, json};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::SearchError;
use super::schema::IndexSchema;
use crate::view::model::SearchFieldType;

/// Values listed per field when the request does not say.
pub const DEFAULT_FACET_LIMIT: usize = 10;
/// The most values listed per field.
pub const MAX_FACET_LIMIT: usize = 1_000;

/// The fields to count values of, and how many values to list for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetRequest {
    pub fields: Vec<String>,
    pub limit: usize,
}

impl FacetRequest {
    /// `category,in_stock`: field names separated by commas.
    pub fn parse(fields: &str, limit: Option<usize>) -> Result<FacetRequest, SearchError> {
        let limit = limit.unwrap_or(DEFAULT_FACET_LIMIT);
        if limit == 0 || limit > MAX_FACET_LIMIT {
            return Err(SearchError::Facet(format!(
                "`facet_limit` is from 1 to {MAX_FACET_LIMIT}, not {limit}"
            )));
        }
        let mut names: Vec<String> = Vec::new();
        for name in fields.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(SearchError::Facet(format!(
                    "`facets` names fields separated by commas (`category,in_stock`), not \
                     {fields:?}"
                )));
            }
            if !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        }
        Ok(FacetRequest {
            fields: names,
            limit,
        })
    }
}

/// The counts of one field's values, the most frequent first, ties by
/// value.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetCounts {
    pub field: String,
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

/// How a field's values are read from its fast column.
#[derive(Debug, Clone, Copy)]
enum FacetKind {
    Keyword,
    I64,
    Bool,
}

/// The fields of `request` as facets of `schema`: each must be a fast
/// `keyword`, `i64` or `bool` field.
fn facet_kinds(
    schema: &IndexSchema,
    request: &FacetRequest,
) -> Result<Vec<(String, FacetKind)>, SearchError> {
    let countable = || {
        let names: Vec<&str> = schema
            .fields
            .iter()
            .filter(|bound| schema.is_fast(bound) && kind_of(bound.field_type).is_some())
            .map(|bound| bound.name.as_str())
            .collect();
        if names.is_empty() {
            "none (give a keyword, i64 or bool field `fast: true`)".to_owned()
        } else {
            names.join(", ")
        }
    };
    request
        .fields
        .iter()
        .map(|name| {
            let Some(bound) = schema.fields.iter().find(|bound| &bound.name == name) else {
                return Err(SearchError::Facet(format!(
                    "cannot count values of {name:?}: no such field in this view; fields to \
                     count: {}",
                    countable()
                )));
            };
            let Some(kind) = kind_of(bound.field_type) else {
                return Err(SearchError::Facet(format!(
                    "cannot count values of {name}: only keyword, i64 and bool fields have \
                     values to count; fields to count: {}",
                    countable()
                )));
            };
            if !schema.is_fast(bound) {
                return Err(SearchError::Facet(format!(
                    "cannot count values of {name}: it is not a fast field; give it `fast: \
                     true` in the view file"
                )));
            }
            Ok((name.clone(), kind))
        })
        .collect()
}

fn kind_of(field_type: SearchFieldType) -> Option<FacetKind> {
    match field_type {
        SearchFieldType::Keyword => Some(FacetKind::Keyword),
        SearchFieldType::I64 => Some(FacetKind::I64),
        SearchFieldType::Bool => Some(FacetKind::Bool),
        SearchFieldType::Text(_) | SearchFieldType::F64 | SearchFieldType::Date => None,
    }
}

/// A collector of the counts of each asked field's values, checked against
/// the schema first.
pub(super) struct FacetCollector {
    fields: Vec<(String, FacetKind)>,
    limit: usize,
}

impl FacetCollector {
    pub(super) fn new(
        schema: &IndexSchema,
        request: &FacetRequest,
    ) -> Result<FacetCollector, SearchError> {
        Ok(FacetCollector {
            fields: facet_kinds(schema, request)?,
            limit: request.limit,
        })
    }
}

/// Counts by value, one map per asked field.
type ValueCounts = Vec<HashMap<FacetValue, u64>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum FacetValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl FacetValue {
    fn to_json(&self) -> Value {
        match self {
            FacetValue::Bool(value) => json!(value),
            FacetValue::Int(value) => json!(value),
            FacetValue::Text(value) => json!(value),
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
        let columns = self
            .fields
            .iter()
            .map(|(name, kind)| {
                Ok(match kind {
                    FacetKind::Keyword => FacetColumn::Keyword(fast.str(name)?),
                    FacetKind::I64 => FacetColumn::I64(fast.column_opt(name)?),
                    FacetKind::Bool => FacetColumn::Bool(fast.column_opt(name)?),
                })
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(SegmentFacets {
            fields: columns.into_iter().map(SegmentField::new).collect(),
            seen: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<ValueCounts>) -> tantivy::Result<Vec<FacetCounts>> {
        let mut merged: ValueCounts = self.fields.iter().map(|_| HashMap::new()).collect();
        for segment in segments {
            for (total, counts) in merged.iter_mut().zip(segment) {
                for (value, count) in counts {
                    *total.entry(value).or_default() += count;
                }
            }
        }
        Ok(self
            .fields
            .iter()
            .zip(merged)
            .map(|((name, _), counts)| self.ranked(name, counts))
            .collect())
    }
}

impl FacetCollector {
    fn ranked(&self, field: &str, counts: HashMap<FacetValue, u64>) -> FacetCounts {
        let mut counts: Vec<(FacetValue, u64)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let more = counts.len().saturating_sub(self.limit);
        counts.truncate(self.limit);
        FacetCounts {
            field: field.to_owned(),
            counts: counts
                .into_iter()
                .map(|(value, count)| (value.to_json(), count))
                .collect(),
            more,
        }
    }
}

/// A field's fast column in one segment; `None` where no document of the
/// segment has a value.
enum FacetColumn {
    Keyword(Option<StrColumn>),
    I64(Option<Column<i64>>),
    Bool(Option<Column<bool>>),
}

/// One field's counts in one segment. A keyword's are kept by its term
/// ordinal, whose text is looked up once per value at the end.
struct SegmentField {
    column: FacetColumn,
    by_ordinal: HashMap<u64, u64>,
}

impl SegmentField {
    fn new(column: FacetColumn) -> SegmentField {
        SegmentField {
            column,
            by_ordinal: HashMap::new(),
        }
    }

    /// Counts each distinct value of `doc` once; `seen` is scratch space.
    fn count(&mut self, doc: DocId, seen: &mut Vec<u64>) {
        seen.clear();
        match &self.column {
            FacetColumn::Keyword(Some(column)) => seen.extend(column.term_ords(doc)),
            FacetColumn::I64(Some(column)) => {
                // Sign-flipped, so that the order of the bits is the order
                // of the values.
                seen.extend(column.values_for_doc(doc).map(|v| (v as u64) ^ (1 << 63)));
            }
            FacetColumn::Bool(Some(column)) => {
                seen.extend(column.values_for_doc(doc).map(u64::from));
            }
            FacetColumn::Keyword(None) | FacetColumn::I64(None) | FacetColumn::Bool(None) => {}
        }
        seen.sort_unstable();
        seen.dedup();
        for &value in seen.iter() {
            *self.by_ordinal.entry(value).or_default() += 1;
        }
    }

    fn harvest(self) -> HashMap<FacetValue, u64> {
        let mut counts = HashMap::with_capacity(self.by_ordinal.len());
        let mut text = String::new();
        for (key, count) in self.by_ordinal {
            let value = match &self.column {
                // An ordinal of the column's own dictionary is always found;
                // one that is not is left uncounted.
                FacetColumn::Keyword(Some(column)) => match column.ord_to_str(key, &mut text) {
                    Ok(true) => FacetValue::Text(std::mem::take(&mut text)),
                    _ => continue,
                },
                FacetColumn::I64(_) => FacetValue::Int((key ^ (1 << 63)) as i64),
                FacetColumn::Bool(_) => FacetValue::Bool(key != 0),
                FacetColumn::Keyword(None) => continue,
            };
            counts.insert(value, count);
        }
        counts
    }
}

pub(super) struct SegmentFacets {
    fields: Vec<SegmentField>,
    /// The values of the document at hand, to count each once.
    seen: Vec<u64>,
}

impl SegmentCollector for SegmentFacets {
    type Fruit = ValueCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        for field in &mut self.fields {
            field.count(doc, &mut self.seen);
        }
    }

    fn harvest(self) -> ValueCounts {
        self.fields.into_iter().map(SegmentField::harvest).collect()
    }
}
