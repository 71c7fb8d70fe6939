//! `sort=`: the hits in the order of up to three fast fields' values
//! (`sort=stars:desc,name`), each key breaking the ties of the one before,
//! in place of their score.
//!
//! Every key reads its field's fast column in the `u64` form Tantivy keeps
//! there, whose order is the values' order: integers and dates by value,
//! `false` before `true`, an `f64`'s `NaN` above `Infinity` (as PostgreSQL
//! orders it; Tantivy's own float sort put a `NaN` among the values, trial
//! 29), a keyword by its term's rank in the segment's dictionary, that is
//! by its bytes. A document with several values sorts by its first. A
//! document without a value comes last whichever the order, as `NULLS
//! LAST`.

use tantivy::collector::sort_key::NaturalComparator;
use tantivy::collector::{Count, SegmentSortKeyComputer, SortKeyComputer, TopDocs};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::Query;
use tantivy::{DocAddress, DocId, Order, Score, Searcher, SegmentReader};

use super::SearchError;

/// The most keys a sort may have.
pub const MAX_SORT_KEYS: usize = 3;

/// `sort=`: the fields to order the hits by, the first first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchSort {
    pub keys: Vec<SortKey>,
}

/// One field of a sort and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

impl SearchSort {
    /// `field`, `field:asc` or `field:desc` (the order in any case), up to
    /// three separated by commas: `stars:desc,name`.
    pub fn parse(text: &str) -> Result<SearchSort, SearchError> {
        let keys = text
            .split(',')
            .map(|key| SortKey::parse(key.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.len() > MAX_SORT_KEYS {
            return Err(SearchError::Sort(format!(
                "a sort has at most {MAX_SORT_KEYS} fields, not {} ({text:?})",
                keys.len()
            )));
        }
        Ok(SearchSort { keys })
    }
}

impl SortKey {
    fn parse(text: &str) -> Result<SortKey, SearchError> {
        let (field, descending) = match text.rsplit_once(':') {
            Some((field, order)) if order.eq_ignore_ascii_case("asc") => (field, false),
            Some((field, order)) if order.eq_ignore_ascii_case("desc") => (field, true),
            Some((_, order)) => {
                return Err(SearchError::Sort(format!(
                    "sort order `{order}`: expected `asc` or `desc` (`price:desc`)"
                )));
            }
            None => (text, false),
        };
        if field.is_empty() {
            return Err(SearchError::Sort(
                "a sort needs a field name for each key (`price`, `price:desc`, or \
                 `stars:desc,name`)"
                    .into(),
            ));
        }
        Ok(SortKey {
            field: field.to_owned(),
            descending,
        })
    }

    fn order(&self) -> Order {
        if self.descending {
            Order::Desc
        } else {
            Order::Asc
        }
    }
}

/// The page `top` of the matches of `query` in the order of `keys`, each
/// with whether its field is a keyword; ties in index order.
pub(super) fn sorted(
    searcher: &Searcher,
    query: &dyn Query,
    top: TopDocs,
    keys: &[(&SortKey, bool)],
) -> tantivy::Result<(usize, Vec<DocAddress>)> {
    let key = |n: usize| {
        let (key, keyword): (&SortKey, bool) = keys[n];
        (FieldKey::new(&key.field, keyword), key.order())
    };
    fn addresses<K>((total, found): (usize, Vec<(K, DocAddress)>)) -> (usize, Vec<DocAddress>) {
        (
            total,
            found.into_iter().map(|(_, address)| address).collect(),
        )
    }
    match keys.len() {
        1 => searcher
            .search(query, &(Count, top.order_by(key(0))))
            .map(addresses),
        2 => searcher
            .search(query, &(Count, top.order_by((key(0), key(1)))))
            .map(addresses),
        _ => searcher
            .search(query, &(Count, top.order_by((key(0), key(1), key(2)))))
            .map(addresses),
    }
}

/// A field's sort key in every segment, kept as the column's `u64` until
/// the segments' pages are merged, where a keyword's rank becomes its text
/// (ranks of two segments do not compare).
#[derive(Debug, Clone)]
struct FieldKey {
    field: String,
    keyword: bool,
}

/// A key's value across segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SortValue {
    Number(u64),
    Text(String),
}

impl FieldKey {
    fn new(field: &str, keyword: bool) -> FieldKey {
        FieldKey {
            field: field.to_owned(),
            keyword,
        }
    }
}

impl SortKeyComputer for FieldKey {
    type SortKey = Option<SortValue>;
    type Child = SegmentFieldKey;
    type Comparator = NaturalComparator;

    fn segment_sort_key_computer(&self, reader: &SegmentReader) -> tantivy::Result<Self::Child> {
        let fast = reader.fast_fields();
        // A segment where no document has a value has no column: every
        // document's key is then none.
        Ok(if self.keyword {
            let dictionary = fast.str(&self.field)?;
            SegmentFieldKey {
                column: dictionary.as_ref().map(|column| column.ords().clone()),
                dictionary,
            }
        } else {
            SegmentFieldKey {
                column: fast.u64_lenient(&self.field)?.map(|(column, _)| column),
                dictionary: None,
            }
        })
    }
}

pub(super) struct SegmentFieldKey {
    column: Option<Column<u64>>,
    /// A keyword's terms, to name its ranks.
    dictionary: Option<StrColumn>,
}

impl SegmentSortKeyComputer for SegmentFieldKey {
    type SortKey = Option<SortValue>;
    type SegmentSortKey = Option<u64>;
    type SegmentComparator = NaturalComparator;

    fn segment_sort_key(&mut self, doc: DocId, _score: Score) -> Option<u64> {
        self.column.as_ref()?.first(doc)
    }

    fn convert_segment_sort_key(&self, key: Option<u64>) -> Option<SortValue> {
        let key = key?;
        let Some(dictionary) = &self.dictionary else {
            return Some(SortValue::Number(key));
        };
        let mut text = String::new();
        // A rank of the segment's own dictionary is always found.
        match dictionary.ord_to_str(key, &mut text) {
            Ok(true) => Some(SortValue::Text(text)),
            _ => None,
        }
    }
}
