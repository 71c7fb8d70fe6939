//! Searching a view's index with Tantivy's query syntax, and listing it whole.
//!
//! Syntax (Tantivy's query parser): terms and `"phrases"` over the view's
//! text and keyword fields (keywords match whole and case-sensitively);
//! `AND`, `OR`, `NOT`, `+must`, `-must_not` and parentheses, terms without an
//! operator being OR-ed; `a AND NOT b` works, a query of negations only is
//! refused; `field:term`, `in_stock:true`; ranges `price_cents:[100 TO 500]`,
//! `{100 TO *}` on numeric and date fields (dates in RFC 3339,
//! `released:[2026-01-01T00:00:00Z TO *]`, or bare, `released:2026-01-01`,
//! meaning its midnight in UTC; on a fast field, to the microsecond);
//! `field:*` or `field:[* TO *]` for documents with a value in a fast field;
//! prefixes, `caf*` and `"cafe de fl"*` (the `prefix` module).

use serde_json::{Map, Value};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::query::{AllQuery, Query, QueryParser, QueryParserError};
use tantivy::query_grammar::{self, Occur, UserInputAst, UserInputBound, UserInputLeaf};
use tantivy::schema::Field;
use tantivy::{DocAddress, Searcher, TantivyDocument};

use super::SearchError;
use super::document::from_tantivy;
use super::facets::{FacetCollector, FacetCounts, FacetRequest};
use super::index::{SearchIndex, tantivy_error};
use super::prefix::{prefix_of, prefixes_as_patterns};
use super::query_text::{apostrophes_in_words_escaped, check_no_fuzzy};
use super::schema::IndexSchema;
use super::sort::{SearchSort, SortKey, sorted};
use super::temporal::{BEYOND_THE_INDEX, parse_instant};
use crate::view::model::SearchFieldType;

/// One matching document.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    /// Tantivy's BM25 score; 1.0 in [`SearchIndex::all_documents`], none
    /// when the hits are sorted by a field (no score is computed).
    pub score: Option<f32>,
    /// Every stored field the document has, in the view's field order.
    pub fields: Map<String, Value>,
}

impl Hit {
    /// `{"id": …, "score": …, "fields": {…}}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"id": self.id, "score": self.score, "fields": self.fields})
    }
}

/// One page of a query's matches.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// How many documents match, over every page.
    pub total: usize,
    /// The page's hits, best first.
    pub hits: Vec<Hit>,
    /// The counts of the asked fields' values over every match.
    pub facets: Option<Vec<FacetCounts>>,
}

/// Which page of the matches to return, in which order, with which counts.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub offset: usize,
    pub limit: usize,
    /// Up to three fast fields' order in place of the score's.
    pub sort: Option<SearchSort>,
    pub facets: Option<FacetRequest>,
}

impl PageRequest {
    /// The best `limit` matches.
    pub fn first(limit: usize) -> PageRequest {
        PageRequest {
            limit,
            ..PageRequest::default()
        }
    }

    /// A page as the CLI's options and the API's parameters give it: `sort`
    /// as [`SearchSort::parse`] reads it, `facets` as [`FacetRequest::parse`].
    pub fn parse(
        offset: usize,
        limit: usize,
        sort: Option<&str>,
        facets: Option<&str>,
        facet_limit: Option<usize>,
    ) -> Result<PageRequest, SearchError> {
        if facet_limit.is_some() && facets.is_none() {
            return Err(SearchError::Facet(
                "a facet limit goes with facets, the fields whose values to count".into(),
            ));
        }
        Ok(PageRequest {
            offset,
            limit,
            sort: sort.map(SearchSort::parse).transpose()?,
            facets: facets
                .map(|fields| FacetRequest::parse(fields, facet_limit))
                .transpose()?,
        })
    }
}

impl SearchPage {
    /// `{"view": …, "total": …, "hits": [{"id": …, "score": …, "fields": {…}}]}`,
    /// and `"facets": {field: {"values": [{"value": …, "count": …}], "more": …}}`
    /// when asked, as the CLI and HTTP API print it.
    pub fn to_json(&self, view: &str) -> Value {
        let mut page = serde_json::json!({
            "view": view,
            "total": self.total,
            "hits": self.hits.iter().map(Hit::to_json).collect::<Vec<_>>(),
        });
        if let Some(facets) = &self.facets {
            let by_field: Map<String, Value> = facets
                .iter()
                .map(|facet| (facet.facet.clone(), facet.to_json()))
                .collect();
            page["facets"] = Value::Object(by_field);
        }
        page
    }
}

impl SearchIndex {
    /// The best `limit` matches of `query`, best first. A query the parser
    /// refuses gives [`SearchError::Query`] with the parser's message.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, SearchError> {
        Ok(self.search_page(query, &PageRequest::first(limit))?.hits)
    }

    /// The matches of `query` ranked `offset + 1` to `offset + limit`, by
    /// score or by `sort`, how many match in all, and the asked facets'
    /// counts over them.
    pub fn search_page(&self, query: &str, page: &PageRequest) -> Result<SearchPage, SearchError> {
        let sort_keys = page
            .sort
            .as_ref()
            .map(|sort| self.sort_keys(sort))
            .transpose()?;
        let facets = page
            .facets
            .as_ref()
            .map(|request| FacetCollector::new(&self.schema, request))
            .transpose()?;
        let parsed = self.parse(query)?;
        let searcher = self.reader.searcher();
        let facets = facets
            .map(|collector| searcher.search(&parsed, &collector))
            .transpose()
            .map_err(tantivy_error(&self.dir))?;
        let (offset, limit) = (page.offset, page.limit);
        // TopDocs refuses 0 and preallocates for `limit`: bound it by what
        // the index holds past the offset.
        let held = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
        let limit = limit.min(held.saturating_sub(offset));
        if limit == 0 {
            let total = searcher
                .search(&parsed, &Count)
                .map_err(tantivy_error(&self.dir))?;
            return Ok(SearchPage {
                total,
                hits: Vec::new(),
                facets,
            });
        }
        let top = TopDocs::with_limit(limit).and_offset(offset);
        let (total, ranked) = match sort_keys {
            Some(keys) => {
                let (total, addresses) =
                    sorted(&searcher, &parsed, top, &keys).map_err(tantivy_error(&self.dir))?;
                (total, addresses.into_iter().map(|a| (None, a)).collect())
            }
            None => {
                let (total, scored) = searcher
                    .search(&parsed, &(Count, top.order_by_score()))
                    .map_err(tantivy_error(&self.dir))?;
                let ranked: Vec<_> = scored.into_iter().map(|(s, a)| (Some(s), a)).collect();
                (total, ranked)
            }
        };
        let hits = ranked
            .into_iter()
            .map(|(score, address)| self.hit(&searcher, address, score))
            .collect::<Result<_, _>>()?;
        Ok(SearchPage {
            total,
            hits,
            facets,
        })
    }

    /// The keys of `sort`, each with whether its field is a keyword; each
    /// field must be fast and not text (a text field is not one value to
    /// order by).
    fn sort_keys<'s>(&self, sort: &'s SearchSort) -> Result<Vec<(&'s SortKey, bool)>, SearchError> {
        let names = || {
            let fast = self.schema.fields.iter().filter(|bound| {
                self.schema.is_fast(bound) && !matches!(bound.field_type, SearchFieldType::Text(_))
            });
            let names: Vec<&str> = fast.map(|bound| bound.name.as_str()).collect();
            if names.is_empty() {
                "none (give a keyword, i64, f64, bool or date field `fast: true`)".to_owned()
            } else {
                names.join(", ")
            }
        };
        let mut keys = Vec::with_capacity(sort.keys.len());
        for key in &sort.keys {
            let Some(bound) = self.schema.fields.iter().find(|b| b.name == key.field) else {
                return Err(SearchError::Sort(format!(
                    "cannot sort by {:?}: no such field in this view; fields to sort by: {}",
                    key.field,
                    names()
                )));
            };
            let name = &bound.name;
            if let SearchFieldType::Text(_) = bound.field_type {
                return Err(SearchError::Sort(format!(
                    "cannot sort by {name}: a text field holds words, not one value (a keyword \
                     field can); fields to sort by: {}",
                    names()
                )));
            }
            if !self.schema.is_fast(bound) {
                return Err(SearchError::Sort(format!(
                    "cannot sort by {name}: it is not a fast field; give it `fast: true` in the \
                     view file"
                )));
            }
            keys.push((key, bound.field_type == SearchFieldType::Keyword));
        }
        Ok(keys)
    }

    /// Every document, ordered by id: for tests that compare the whole index
    /// with an SQL oracle, and for debugging. Loads everything in memory.
    pub fn all_documents(&self) -> Result<Vec<Hit>, SearchError> {
        let searcher = self.reader.searcher();
        let addresses = searcher
            .search(&AllQuery, &DocSetCollector)
            .map_err(tantivy_error(&self.dir))?;
        let mut hits = addresses
            .into_iter()
            .map(|address| self.hit(&searcher, address, Some(1.0)))
            .collect::<Result<Vec<_>, _>>()?;
        hits.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(hits)
    }

    /// Tantivy's parser, plus two repairs. A group of only negations (the
    /// `NOT b` of `a AND NOT b`) matches nothing in Tantivy, since a Boolean
    /// query without a positive clause has no documents to exclude from; it
    /// is given "all documents" to exclude from. A query of only negations
    /// stays an error, as Tantivy has it. And `field:[* TO *]`, which
    /// matches nothing in Tantivy, is `field:*`: the documents with a value
    /// in the field, which Tantivy finds for fast fields only (others are
    /// refused here, instead of failing the search as the index's error).
    fn parse(&self, query: &str) -> Result<Box<dyn Query>, SearchError> {
        let query = &*apostrophes_in_words_escaped(query);
        let mut parser = QueryParser::for_index(&self.index, default_fields(&self.schema));
        // For the patterns prefixes become; a query's own are refused below.
        parser.allow_regexes();
        for field in self.schema.fields.iter().filter(|field| field.fuzzy > 0) {
            // A swap of two letters is one edit, as a typo is.
            parser.set_field_fuzzy(field.field, false, field.fuzzy, true);
        }
        let refused = |error: QueryParserError| SearchError::Query(error.to_string());
        // The strict parse gives the parser's error messages; the grammar's
        // own parse, which the repairs need, only says "syntax error".
        let explained = |error| SearchError::Query(self.explain(&parser, query, error));
        let strict = parser.parse_query(query);
        let Ok(ast) = query_grammar::parse_query(query) else {
            return strict.map_err(explained);
        };
        check_no_patterns(&ast)?;
        check_no_fuzzy(&leaves(&ast))?;
        self.check_dates_within_the_index(&ast)?;
        let dated = leaves(&ast)
            .into_iter()
            .any(|leaf| self.has_bare_date(leaf));
        let prefixed = leaves(&ast)
            .into_iter()
            .any(|leaf| prefix_of(leaf).is_some());
        let parsed = match strict {
            Ok(parsed) => Some(parsed),
            // The strict parse refuses a bare date and a one-word phrase
            // prefix, which are repaired below.
            Err(_) if dated || prefixed => None,
            Err(error) => return Err(explained(error)),
        };
        let unbounded = leaves(&ast).into_iter().any(is_unbounded_range);
        let ast = map_leaves(ast, &unbounded_range_as_exists);
        let ast = map_leaves(ast, &|leaf| self.bare_dates_as_instants(leaf));
        let fast_date_terms = leaves(&ast)
            .into_iter()
            .any(|leaf| self.is_fast_date_term(leaf));
        let ast = self.fast_date_terms_as_ranges(ast);
        self.check_exists_fields(&ast)?;
        let ast = prefixes_as_patterns(&self.index, &self.schema, ast)?;
        match parsed {
            _ if has_negative_group(&ast) => parser
                .build_query_from_user_input_ast(exclude_from_all(ast))
                .map_err(refused),
            Some(parsed) if !unbounded && !fast_date_terms && !prefixed => Ok(parsed),
            _ => parser
                .build_query_from_user_input_ast(ast)
                .map_err(explained),
        }
    }

    /// Whether `leaf` gives a date field a bare date (`2026-01-31`).
    fn has_bare_date(&self, leaf: &UserInputLeaf) -> bool {
        leaf_values(leaf).is_some_and(|(name, values)| {
            self.is_date_field(name) && values.into_iter().any(is_bare_date)
        })
    }

    /// `leaf` with each bare date given to a date field as its midnight in
    /// UTC, which is how a `date` column is indexed (Tantivy's parser takes
    /// RFC 3339 date-times only).
    fn bare_dates_as_instants(&self, leaf: UserInputLeaf) -> UserInputLeaf {
        let instant = |value: String| {
            if is_bare_date(&value) {
                format!("{value}T00:00:00Z")
            } else {
                value
            }
        };
        let bound = |bound: UserInputBound| match bound {
            UserInputBound::Inclusive(value) => UserInputBound::Inclusive(instant(value)),
            UserInputBound::Exclusive(value) => UserInputBound::Exclusive(instant(value)),
            UserInputBound::Unbounded => UserInputBound::Unbounded,
        };
        match leaf {
            UserInputLeaf::Literal(mut literal)
                if literal
                    .field_name
                    .as_deref()
                    .is_some_and(|name| self.is_date_field(name)) =>
            {
                literal.phrase = instant(literal.phrase);
                UserInputLeaf::Literal(literal)
            }
            UserInputLeaf::Range {
                field: Some(field),
                lower,
                upper,
            } if self.is_date_field(&field) => UserInputLeaf::Range {
                field: Some(field),
                lower: bound(lower),
                upper: bound(upper),
            },
            UserInputLeaf::Set {
                field: Some(field),
                elements,
            } if self.is_date_field(&field) => UserInputLeaf::Set {
                field: Some(field),
                elements: elements.into_iter().map(instant).collect(),
            },
            other => other,
        }
    }

    /// Whether `leaf` is a term or a set of terms on a fast date field.
    fn is_fast_date_term(&self, leaf: &UserInputLeaf) -> bool {
        let field = match leaf {
            UserInputLeaf::Literal(literal) => literal.field_name.as_deref(),
            UserInputLeaf::Set { field, .. } => field.as_deref(),
            _ => None,
        };
        field.is_some_and(|name| {
            self.schema.fields.iter().any(|field| {
                field.name == name
                    && field.field_type == SearchFieldType::Date
                    && self.schema.is_fast(field)
            })
        })
    }

    /// `ast` with each term on a fast date field a range from the instant
    /// to itself, and a set of them each such range: the inverted index
    /// holds dates to the second, the fast column to the microsecond, and
    /// ranges on a fast field read the column, so that a value matches
    /// only its own microsecond, as SQL's `=` does.
    fn fast_date_terms_as_ranges(&self, ast: UserInputAst) -> UserInputAst {
        let point = |field: &str, value: String| UserInputLeaf::Range {
            field: Some(field.to_owned()),
            lower: UserInputBound::Inclusive(value.clone()),
            upper: UserInputBound::Inclusive(value),
        };
        match ast {
            UserInputAst::Clause(clauses) => UserInputAst::Clause(
                clauses
                    .into_iter()
                    .map(|(occur, child)| (occur, self.fast_date_terms_as_ranges(child)))
                    .collect(),
            ),
            UserInputAst::Boost(child, boost) => {
                UserInputAst::Boost(Box::new(self.fast_date_terms_as_ranges(*child)), boost)
            }
            UserInputAst::Leaf(leaf) if self.is_fast_date_term(&leaf) => match *leaf {
                UserInputLeaf::Literal(literal) => {
                    let field = literal.field_name.unwrap_or_default();
                    UserInputAst::Leaf(Box::new(point(&field, literal.phrase)))
                }
                UserInputLeaf::Set {
                    field: Some(field),
                    elements,
                } => UserInputAst::Clause(
                    elements
                        .into_iter()
                        .map(|value| {
                            let leaf = UserInputAst::Leaf(Box::new(point(&field, value)));
                            (Some(Occur::Should), leaf)
                        })
                        .collect(),
                ),
                other => UserInputAst::Leaf(Box::new(other)),
            },
            leaf => leaf,
        }
    }

    /// Refuses a date beyond the instants the index holds (`infinity`,
    /// `2300-01-01`): Tantivy's parser would take it as the nearest one it
    /// holds, where documents' values beyond it are held too
    /// ([`super::temporal::index_instant`]), and find all of them or none.
    fn check_dates_within_the_index(&self, ast: &UserInputAst) -> Result<(), SearchError> {
        for leaf in leaves(ast) {
            let Some((name, values)) = leaf_values(leaf) else {
                continue;
            };
            if !self.is_date_field(name) {
                continue;
            }
            let beyond = values.into_iter().find(|value| {
                parse_instant(value).is_err() && crate::expr::instant_beside_epoch(value).is_some()
            });
            if let Some(value) = beyond {
                return Err(SearchError::Query(format!(
                    "field {name:?}: {value:?} is {BEYOND_THE_INDEX}. A document's value beyond \
                     them (infinity, 9999-12-31, a BC date) is held at the nearer end: \
                     `{name}:[2262-04-11 TO *]` finds the later ones, `{name}:[* TO \
                     1677-09-22}}` the earlier ones"
                )));
            }
        }
        Ok(())
    }

    fn is_date_field(&self, name: &str) -> bool {
        self.schema
            .fields
            .iter()
            .any(|field| field.name == name && field.field_type == SearchFieldType::Date)
    }

    /// Refuses `field:*` on a field that is not fast, naming the fix.
    fn check_exists_fields(&self, ast: &UserInputAst) -> Result<(), SearchError> {
        let not_fast = |name: &str| {
            self.schema
                .fields
                .iter()
                .find(|bound| bound.name == name && !self.schema.is_fast(bound))
        };
        let refused = leaves(ast).into_iter().find_map(|leaf| match leaf {
            UserInputLeaf::Exists { field } => not_fast(field),
            _ => None,
        });
        let Some(bound) = refused else {
            return Ok(());
        };
        let name = &bound.name;
        let fix = match bound.field_type {
            SearchFieldType::Text(_) => "a text field cannot be one (a keyword field can)".into(),
            _ => format!("give {name} `fast: true` in the view file"),
        };
        Err(SearchError::Query(format!(
            "`{name}:*` (documents with a value in {name}) needs a fast field: {fix}"
        )))
    }

    /// The parser's error, in words that name the field and value at fault
    /// where Tantivy's do not (its message for a float field's bad value
    /// even speaks of excluding terms).
    fn explain(&self, parser: &QueryParser, query: &str, error: QueryParserError) -> String {
        let explained = match &error {
            QueryParserError::FieldDoesNotExist(name) => Some(format!(
                "no field {name:?} in this view; its fields: {}",
                self.schema
                    .fields
                    .iter()
                    .map(|field| field.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            QueryParserError::AllButQueryForbidden => Some(
                "a query of exclusions only (`-field:value`) has nothing to exclude from: add \
                 `*` for every document, as in `* -field:value` (`* -field:*` for the \
                 documents without a value)"
                    .to_owned(),
            ),
            QueryParserError::ExpectedInt(_)
            | QueryParserError::ExpectedFloat(_)
            | QueryParserError::ExpectedBool(_)
            | QueryParserError::DateFormatError(_) => query_grammar::parse_query(query)
                .ok()
                .map(|ast| map_leaves(ast, &|leaf| self.bare_dates_as_instants(leaf)))
                .and_then(|ast| self.value_at_fault(parser, &ast)),
            _ => None,
        };
        explained.unwrap_or_else(|| error.to_string())
    }

    /// The first leaf of `ast` the parser refuses on its own, as "field
    /// `f` holds numbers: `v` is not one".
    fn value_at_fault(&self, parser: &QueryParser, ast: &UserInputAst) -> Option<String> {
        match ast {
            UserInputAst::Clause(clauses) => clauses
                .iter()
                .find_map(|(_, child)| self.value_at_fault(parser, child)),
            UserInputAst::Boost(child, _) => self.value_at_fault(parser, child),
            UserInputAst::Leaf(leaf) => {
                let (name, values) = leaf_values(leaf)?;
                let field = self.schema.fields.iter().find(|f| f.name == name)?;
                let expected = match field.field_type {
                    SearchFieldType::I64 => "an integer",
                    SearchFieldType::F64 => "a number",
                    SearchFieldType::Bool => "true or false",
                    SearchFieldType::Date => {
                        "a date (2026-01-31) or an RFC 3339 date-time (2026-01-31T00:00:00Z)"
                    }
                    SearchFieldType::Text(_) | SearchFieldType::Keyword => return None,
                };
                let refused = |leaf: UserInputLeaf| {
                    let alone = UserInputAst::Leaf(Box::new(leaf));
                    parser.build_query_from_user_input_ast(alone).is_err()
                };
                if !refused(UserInputLeaf::clone(leaf)) {
                    return None;
                }
                // Only the values the field refuses: `[10 TO ten]` blames `ten`.
                let shown = values
                    .iter()
                    .filter(|value| refused(single_value(leaf, value)))
                    .map(|value| format!("{value:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(format!("field {name:?} takes {expected}, not {shown}"))
            }
        }
    }

    fn hit(
        &self,
        searcher: &Searcher,
        address: DocAddress,
        score: Option<f32>,
    ) -> Result<Hit, SearchError> {
        let document: TantivyDocument = searcher.doc(address).map_err(tantivy_error(&self.dir))?;
        let (id, fields) = from_tantivy(&self.schema, &document);
        Ok(Hit { id, score, fields })
    }
}

/// Bare terms search the text and keyword fields.
fn default_fields(schema: &IndexSchema) -> Vec<Field> {
    schema
        .fields
        .iter()
        .filter(|field| {
            matches!(
                field.field_type,
                SearchFieldType::Text(_) | SearchFieldType::Keyword
            )
        })
        .map(|field| field.field)
        .collect()
}

/// Refuses a query's own regular expression (`name:/ca.*/`): Tantivy's
/// parser takes one only when allowed, which it is for prefixes alone.
fn check_no_patterns(ast: &UserInputAst) -> Result<(), SearchError> {
    match leaves(ast)
        .into_iter()
        .find(|leaf| matches!(leaf, UserInputLeaf::Regex { .. }))
    {
        Some(_) => Err(SearchError::Query(
            "regular expressions (`field:/…/`) are not supported; a prefix is (`caf*`, \
             `name:\"cafe de fl\"*`)"
                .into(),
        )),
        None => Ok(()),
    }
}

/// The field a leaf names and the values it gives it (a range's bounds).
fn leaf_values(leaf: &UserInputLeaf) -> Option<(&str, Vec<&str>)> {
    match leaf {
        UserInputLeaf::Literal(literal) => Some((
            literal.field_name.as_deref()?,
            vec![literal.phrase.as_str()],
        )),
        UserInputLeaf::Range {
            field,
            lower,
            upper,
        } => {
            let bounds = [lower, upper].into_iter().filter_map(|bound| match bound {
                UserInputBound::Inclusive(value) | UserInputBound::Exclusive(value) => {
                    Some(value.as_str())
                }
                UserInputBound::Unbounded => None,
            });
            Some((field.as_deref()?, bounds.collect()))
        }
        UserInputLeaf::Set { field, elements } => Some((
            field.as_deref()?,
            elements.iter().map(String::as_str).collect(),
        )),
        UserInputLeaf::All | UserInputLeaf::Exists { .. } | UserInputLeaf::Regex { .. } => None,
    }
}

fn is_negative_group(clauses: &[(Option<Occur>, UserInputAst)]) -> bool {
    clauses
        .iter()
        .all(|(occur, _)| *occur == Some(Occur::MustNot))
}

fn has_negative_group(ast: &UserInputAst) -> bool {
    match ast {
        UserInputAst::Clause(clauses) => {
            is_negative_group(clauses) || clauses.iter().any(|(_, child)| has_negative_group(child))
        }
        UserInputAst::Boost(child, _) => has_negative_group(child),
        UserInputAst::Leaf(_) => false,
    }
}

fn is_unbounded_range(leaf: &UserInputLeaf) -> bool {
    matches!(
        leaf,
        UserInputLeaf::Range {
            field: Some(_),
            lower: UserInputBound::Unbounded,
            upper: UserInputBound::Unbounded,
        }
    )
}

fn unbounded_range_as_exists(leaf: UserInputLeaf) -> UserInputLeaf {
    match leaf {
        UserInputLeaf::Range {
            field: Some(field),
            lower: UserInputBound::Unbounded,
            upper: UserInputBound::Unbounded,
        } => UserInputLeaf::Exists { field },
        other => other,
    }
}

/// `leaf` with `value` as its one value: a term, a range from it up, or a
/// set of it alone.
fn single_value(leaf: &UserInputLeaf, value: &str) -> UserInputLeaf {
    match leaf {
        UserInputLeaf::Range { field, .. } => UserInputLeaf::Range {
            field: field.clone(),
            lower: UserInputBound::Inclusive(value.to_owned()),
            upper: UserInputBound::Unbounded,
        },
        UserInputLeaf::Set { field, .. } => UserInputLeaf::Set {
            field: field.clone(),
            elements: vec![value.to_owned()],
        },
        other => other.clone(),
    }
}

/// Whether `value` is a date alone, `YYYY-MM-DD`.
fn is_bare_date(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(at, byte)| match at {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

/// Every leaf of `ast`, left to right.
fn leaves(ast: &UserInputAst) -> Vec<&UserInputLeaf> {
    match ast {
        UserInputAst::Clause(clauses) => clauses
            .iter()
            .flat_map(|(_, child)| leaves(child))
            .collect(),
        UserInputAst::Boost(child, _) => leaves(child),
        UserInputAst::Leaf(leaf) => vec![leaf],
    }
}

/// `ast` with each leaf replaced by `map` of it.
fn map_leaves(ast: UserInputAst, map: &dyn Fn(UserInputLeaf) -> UserInputLeaf) -> UserInputAst {
    match ast {
        UserInputAst::Clause(clauses) => UserInputAst::Clause(
            clauses
                .into_iter()
                .map(|(occur, child)| (occur, map_leaves(child, map)))
                .collect(),
        ),
        UserInputAst::Boost(child, boost) => {
            UserInputAst::Boost(Box::new(map_leaves(*child, map)), boost)
        }
        UserInputAst::Leaf(leaf) => UserInputAst::Leaf(Box::new(map(*leaf))),
    }
}

/// Adds "all documents" as a required clause to every group of negations.
fn exclude_from_all(ast: UserInputAst) -> UserInputAst {
    match ast {
        UserInputAst::Clause(clauses) => {
            let negative = is_negative_group(&clauses);
            let mut clauses: Vec<_> = clauses
                .into_iter()
                .map(|(occur, child)| (occur, exclude_from_all(child)))
                .collect();
            if negative {
                clauses.push((
                    Some(Occur::Must),
                    UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
                ));
            }
            UserInputAst::Clause(clauses)
        }
        UserInputAst::Boost(child, boost) => {
            UserInputAst::Boost(Box::new(exclude_from_all(*child)), boost)
        }
        leaf => leaf,
    }
}
