//! The typed, validated form of a view definition.
//!
//! Reading a view file (`document.rs`, then the module of its kind, e.g.
//! `cache.rs`) turns YAML into a [`ViewDef`]; everything downstream (the plan,
//! the engine, the sinks) reads only these types, never YAML.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::expr::Expr;

/// One view, from one file under `views/`.
#[derive(Debug, Clone)]
pub struct ViewDef {
    pub name: String,
    /// The file it came from, for error messages.
    pub file: PathBuf,
    /// Hash of the file's content: a change means the view must be rebuilt.
    pub definition_hash: String,
    pub kind: ViewKind,
    /// Where each part of the definition is in the file, so that errors found
    /// after parsing (the catalog check, the planner) can still name a line.
    pub locations: Locations,
}

impl ViewDef {
    /// Each table the view reads, with the field path that names it
    /// (`root`, `fields.customer.one`, `joins.products.one`), as errors
    /// about a table point at it.
    pub fn table_paths(&self) -> Vec<(String, &str)> {
        let (root, joins) = match &self.kind {
            ViewKind::Cache(cache) => {
                let mut paths = vec![("root".to_owned(), cache.root.as_str())];
                relation_tables(&cache.fields, "fields", &mut paths);
                return paths;
            }
            ViewKind::Search(search) => (&search.root, &search.joins),
            ViewKind::Aggregate(aggregate) => (&aggregate.root, &aggregate.joins),
        };
        let mut paths = vec![("root".to_owned(), root.as_str())];
        paths.extend(joins.iter().map(|join| {
            let path = format!("joins.{}.{}", join.name, join.cardinality.key());
            (path, join.table.as_str())
        }));
        paths
    }
}

/// The tables of the relations among `fields` (at `path`) and below them.
fn relation_tables<'v>(fields: &'v [Field], path: &str, paths: &mut Vec<(String, &'v str)>) {
    for field in fields {
        if let FieldSource::Relation(relation) = &field.source {
            let at = format!("{path}.{}", field.name);
            paths.push((
                format!("{at}.{}", relation.cardinality.key()),
                relation.table.as_str(),
            ));
            relation_tables(&relation.fields, &format!("{at}.fields"), paths);
        }
    }
}

/// The 1-based line of each part of a view file, by field path.
///
/// Paths are dotted, as in error messages: `root`, `key`, `where`, `fields`,
/// `fields.customer` (the field's key), `fields.customer.one` (its table),
/// `fields.customer.on`, `fields.customer.on.id` (one join pair, by its joined
/// column), `fields.items.order_by`, `fields.items.order_by[1]`,
/// `fields.items.fields.sku`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations(BTreeMap<String, usize>);

impl Locations {
    pub fn insert(&mut self, path: impl Into<String>, line: usize) {
        self.0.insert(path.into(), line);
    }

    /// The line of `path`, or else of its nearest recorded parent path.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.0.get(path) {
                return Some(*line);
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }
}

#[derive(Debug, Clone)]
pub enum ViewKind {
    Cache(CacheView),
    Search(SearchView),
    Aggregate(AggregateView),
}

/// `kind: cache`: one JSON document per qualifying root row, under `key`.
#[derive(Debug, Clone)]
pub struct CacheView {
    /// Root table, schema-qualified (`public.orders`).
    pub root: String,
    pub key: KeyTemplate,
    /// `where`: a root row qualifies when this is true (NULL does not qualify).
    /// Columns are `column` (root) or `relation.column` through `one` relations.
    pub filter: Option<Expr>,
    pub fields: Vec<Field>,
}

/// A key template such as `order:{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyTemplate {
    pub source: String,
    pub parts: Vec<KeyPart>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeyPart {
    Literal(String),
    /// A root column, written as its text form.
    Column(String),
}

/// One output field of a document, in definition order.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub source: FieldSource,
}

#[derive(Debug, Clone)]
pub enum FieldSource {
    /// A column of the enclosing row.
    Column(String),
    /// An expression over the enclosing row's columns and the `one`
    /// relations below it (`quantity * unit_price_cents`,
    /// `customer.name`).
    Computed(crate::expr::Expr),
    /// A nested object (`one`) or array (`many`).
    Relation(Relation),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// Many-to-one: a nested object, or `null` when no row matches (LEFT JOIN).
    One,
    /// One-to-many: a nested array, `[]` when no row matches.
    Many,
}

impl Cardinality {
    /// The key a view file names the joined table under.
    pub fn key(self) -> &'static str {
        match self {
            Cardinality::One => "one",
            Cardinality::Many => "many",
        }
    }
}

/// A joined table. `on` pairs are (column of the joined table, column of the
/// enclosing row): `on: { id: customer_id }` is `customers.id = orders.customer_id`.
#[derive(Debug, Clone)]
pub struct Relation {
    pub cardinality: Cardinality,
    /// Joined table, schema-qualified.
    pub table: String,
    pub on: Vec<JoinPair>,
    /// Only for `many`: the array order. Ties and an empty list fall back to
    /// the joined table's primary key.
    pub order_by: Vec<OrderKey>,
    /// Only for `many`: at most this many rows, the first in `order_by`.
    pub limit: Option<usize>,
    /// Empty for a relation with a `measure`.
    pub fields: Vec<Field>,
    /// Only for `many`, instead of `fields`: one value over the joined rows
    /// (`count()`, `sum(quantity)`), as a scalar subquery gives it; its
    /// name is the field's.
    pub measure: Option<Box<Measure>>,
    /// `where:`, over the joined row and its own `one` relations: only
    /// joined rows for which it is true count, as in `LEFT JOIN … ON … AND
    /// <where>`.
    pub filter: Option<crate::expr::Expr>,
    /// Only for `one`: read by `where` and computed fields through its
    /// path, but not written in the document.
    pub hidden: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinPair {
    /// Column of the joined (child) table.
    pub joined: String,
    /// Column of the enclosing (parent) row.
    pub parent: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub column: String,
    pub descending: bool,
}

/// `kind: search`: one Tantivy document per qualifying root row, in an index
/// viewkeeper owns and serves.
#[derive(Debug, Clone)]
pub struct SearchView {
    /// Root table, schema-qualified.
    pub root: String,
    /// The root column whose value identifies a document (its primary key,
    /// or a single-column unique key).
    pub id: String,
    /// `where`, as for cache views; columns are `column` or `join.column`.
    pub filter: Option<Expr>,
    /// In definition order.
    pub fields: Vec<SearchField>,
    /// Named `one` joins, in definition order; a join's `on` parent columns
    /// are root columns, or `join.column` of an earlier join.
    pub joins: Vec<NamedJoin>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchField {
    pub name: String,
    pub from: SearchSource,
    pub field_type: SearchFieldType,
    /// Returned with hits.
    pub stored: bool,
    /// Columnar: for sorting, range queries and facets.
    pub fast: bool,
    /// How many edits (a letter added, removed, changed, or two swapped) a
    /// query word may be from a term of this `text` or `keyword` field and
    /// still match it: 0 (exact), 1 or 2.
    pub fuzzy: u8,
}

/// Where a search field's values come from.
#[derive(Debug, Clone)]
pub enum SearchSource {
    /// `column` of the root or `join.column`: `["category", "name"]`;
    /// through a `many` join, a value per joined row.
    Column(Vec<String>),
    /// An expression over the root's columns and its `one` joins'
    /// (`"coalesce(nickname, name)"`, `"nullif(valid_to, 'infinity')"`).
    Expr(Expr),
}

impl SearchSource {
    /// The column paths it reads.
    pub fn columns(&self) -> Vec<Vec<String>> {
        match self {
            SearchSource::Column(path) => vec![path.clone()],
            SearchSource::Expr(expr) => expr.columns(),
        }
    }
}

impl PartialEq for SearchSource {
    fn eq(&self, other: &SearchSource) -> bool {
        match (self, other) {
            (SearchSource::Column(a), SearchSource::Column(b)) => a == b,
            (SearchSource::Expr(a), SearchSource::Expr(b)) => a.source() == b.source(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchFieldType {
    /// Tokenized full text.
    Text(TextAnalyzer),
    /// One untokenized term: exact filters and facets.
    Keyword,
    I64,
    F64,
    Bool,
    /// A `date`, `timestamp` or `timestamptz` column.
    Date,
}

/// How `text` fields are tokenized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextAnalyzer {
    /// Tantivy's `default`: split on non-alphanumerics, lower-case, drop
    /// tokens over 40 bytes.
    Default,
    /// Case and accents folded in any script (`Ingénieur` is found by
    /// `ingenieur`, `Σωκράτης` by `ΣΩΚΡΆΤΗΣ`, and the other way round).
    Folded,
    /// `default`, then a Snowball stemmer for the language.
    Stemmed(StemLanguage),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StemLanguage {
    Arabic,
    Danish,
    Dutch,
    English,
    Finnish,
    French,
    German,
    Greek,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Spanish,
    Swedish,
    Tamil,
    Turkish,
}

/// A named join (`joins:` of search and aggregate views): `one`, or in a
/// search view also `many`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedJoin {
    pub name: String,
    /// Joined table, schema-qualified.
    pub table: String,
    /// `Many` only in a search view, whose fields from it take a value per
    /// joined row.
    pub cardinality: Cardinality,
    /// `joined` is a column of the joined table; `parent` is a root column,
    /// or `join.column` of an earlier join (`["category", "parent_id"]`).
    pub on: Vec<NamedJoinPair>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamedJoinPair {
    pub joined: String,
    pub parent: Vec<String>,
}

/// `kind: aggregate`: one row per group of qualifying root rows, in a SQL
/// table viewkeeper creates and keeps up to date incrementally.
#[derive(Debug, Clone)]
pub struct AggregateView {
    /// Root table, schema-qualified: each of its rows counts once in a group.
    pub root: String,
    /// Named `one` joins, in definition order, as for search views.
    pub joins: Vec<NamedJoin>,
    /// `where`, as for search views; columns are `column` or `join.column`.
    pub filter: Option<Expr>,
    /// The group columns, in definition order: the target table's key.
    pub group_by: Vec<GroupKey>,
    /// The measure columns, in definition order.
    pub measures: Vec<Measure>,
    /// Target table, schema-qualified (`analytics.category_daily_sales`).
    pub table: String,
}

/// `name: expression` under `group_by:`.
#[derive(Debug, Clone)]
pub struct GroupKey {
    pub name: String,
    pub expr: Expr,
}

/// `name: function(expression)` under `measures:`.
#[derive(Debug, Clone)]
pub struct Measure {
    pub name: String,
    pub function: MeasureFunction,
    /// `None` only for `count()` (also written `count(*)`): every row counts.
    pub arg: Option<Expr>,
}

/// The aggregate functions. Like SQL's, all but `count()` skip NULL inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureFunction {
    /// `count()` rows, or `count(expr)` non-NULL values.
    Count,
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
    /// `percentile_cont(f) WITHIN GROUP (ORDER BY x)` (`median(x)` is
    /// `f` = 0.5): the value at `f` of the sorted inputs, interpolated.
    PercentileCont(Fraction),
    /// `percentile_disc(f) WITHIN GROUP (ORDER BY x)`: the first input at
    /// or past `f` of the sorted inputs.
    PercentileDisc(Fraction),
}

/// A fraction between 0 and 1, as a percentile's argument.
#[derive(Debug, Clone, Copy)]
pub struct Fraction(f64);

impl Fraction {
    /// `value`, if it is between 0 and 1.
    pub fn new(value: f64) -> Option<Fraction> {
        (0.0..=1.0).contains(&value).then_some(Fraction(value))
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl PartialEq for Fraction {
    fn eq(&self, other: &Fraction) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Fraction {}

impl MeasureFunction {
    /// The name as view files write it.
    pub fn name(self) -> &'static str {
        match self {
            MeasureFunction::Count => "count",
            MeasureFunction::Sum => "sum",
            MeasureFunction::Avg => "avg",
            MeasureFunction::Min => "min",
            MeasureFunction::Max => "max",
            MeasureFunction::CountDistinct => "count_distinct",
            MeasureFunction::PercentileCont(_) => "percentile_cont",
            MeasureFunction::PercentileDisc(_) => "percentile_disc",
        }
    }
}
