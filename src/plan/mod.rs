//! The plan: what each source table feeds, derived from the views and the catalog.
//!
//! For every table it fixes the columns the state store keeps (primary key
//! first), the join indexes to maintain, and where the table occurs in each
//! view's join tree. For every view it resolves names to column positions once,
//! so the engine never looks a name up per row.

mod layout_changes;
mod tree;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::aggregate::MeasureSpec;
use crate::expr::{ColumnPath, EnumOrder, Expr, TimeZone, ValueType};
use crate::source::pg_text::{type_oid, value_type};
use crate::source::pgoutput::StoredColumnTypes;
use crate::view::key_collisions::{KeyToken, keys_may_collide};
use crate::view::model::{
    AggregateView, Cardinality, Field, FieldSource, KeyPart, Measure, MeasureFunction,
    SearchFieldType, SearchSource, SearchView, ViewDef, ViewKind,
};
use crate::view::{Catalog, TableInfo};
use tree::JoinTree;
pub use tree::TreeError;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("view {view}: table {table} is not in the database")]
    UnknownTable { view: String, table: String },
    #[error("view {view}: table {table} has no primary key")]
    NoPrimaryKey { view: String, table: String },
    #[error("view {view}: column {column} of table {table} is not in the database")]
    UnknownColumn {
        view: String,
        table: String,
        column: String,
    },
    #[error("view {view}: {error}")]
    Tree { view: String, error: TreeError },
    #[error("view {view}: `{expr}`: {error}")]
    Type {
        view: String,
        expr: String,
        error: String,
    },
}

/// What a view that claims its keys ([`ViewPlan::claims_keys`]) means for
/// its rows, as `check` and the start's log say it.
pub const KEYS_MAY_COLLIDE: &str = "the key template may give two rows one key (a \
    placeholder's value may hold the text between placeholders): each key is owned by the \
    first row that renders it, and another row rendering it gets a dead letter until the key \
    is free; placeholders separated by text their columns' values cannot hold (`:` after an \
    integer, say) avoid it";

#[derive(Debug)]
pub struct Plan {
    /// By schema-qualified name.
    pub tables: BTreeMap<String, TablePlan>,
    pub views: Vec<ViewPlan>,
    /// The zone the views compute a `timestamptz` in, as when planned: the
    /// stream checks it against the database's ([`Plan::zone_computations`]).
    pub time_zone: Arc<TimeZone>,
}

#[derive(Debug)]
pub struct TablePlan {
    pub name: String,
    /// Stored columns: the primary key first (in key order), then the others.
    pub columns: Vec<String>,
    pub column_types: Vec<u32>,
    /// Each stored column's type modifier (`atttypmod`), beside its type.
    pub column_type_modifiers: Vec<i32>,
    /// Each stored column's array element type, for an array column.
    pub column_array_elements: Vec<Option<u32>>,
    /// `columns[..primary_key_len]` is the primary key.
    pub primary_key_len: usize,
    pub indexes: Vec<IndexPlan>,
    /// Where the table occurs: (view, node) pairs.
    pub occurrences: Vec<(usize, usize)>,
}

/// A join index: finds rows of a table by the values of some of its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPlan {
    pub name: String,
    pub columns: Vec<usize>,
}

#[derive(Debug)]
pub struct ViewPlan {
    pub name: String,
    /// The view file, for errors found once the view runs (its sink's
    /// target table belongs to someone else).
    pub file: std::path::PathBuf,
    /// Hash of the view file: when it differs from the one the outputs were
    /// built with, every root of the view is recomputed.
    pub definition_hash: String,
    /// The sink whose outbox receives this view's outputs.
    pub sink: String,
    /// `nodes[0]` is the root; every other node is a joined table.
    pub nodes: Vec<NodePlan>,
    pub filter: Option<ExprPlan>,
    pub output: OutputPlan,
}

impl ViewPlan {
    /// Whether two roots may render one key, so that each key is claimed
    /// by one root: the key template may give two rows one key
    /// ([`ViewPlan::keys_may_collide`]), or the key is another unique key
    /// than the primary key, which two rows may hold in turn within one
    /// transaction (they swap codes).
    pub fn claims_keys(&self) -> bool {
        match &self.output {
            OutputPlan::Cache {
                keys_may_collide,
                by_primary_key,
                ..
            } => *keys_may_collide || !by_primary_key,
            OutputPlan::Search { by_primary_key, .. } => !by_primary_key,
            OutputPlan::Aggregate(_) => false,
        }
    }

    /// Whether the key template may give two rows one key
    /// ([`crate::view::key_collisions`]): `check` and the start say so.
    pub fn keys_may_collide(&self) -> bool {
        matches!(
            self.output,
            OutputPlan::Cache {
                keys_may_collide: true,
                ..
            }
        )
    }

    /// The joins of a search or aggregate view that nothing in it reads:
    /// no field, `where`, group key or measure, and no join below them. (A
    /// cache view's relations are its document's fields.)
    pub fn unread_joins(&self) -> Vec<&NodePlan> {
        if matches!(self.output, OutputPlan::Cache { .. }) {
            return Vec::new();
        }
        let mut read = vec![false; self.nodes.len()];
        let mut reads: Vec<usize> = view_exprs(&self.nodes, &self.output, self.filter.as_ref())
            .into_iter()
            .flat_map(|expr| expr.columns.values().map(|&(node, _)| node))
            .collect();
        if let OutputPlan::Search { fields, .. } = &self.output {
            reads.extend(fields.iter().filter_map(|field| match field.value {
                SearchValuePlan::Column { node, .. } => Some(node),
                SearchValuePlan::Expr(_) => None,
            }));
        }
        for node in reads {
            // The joins above a node read lead to it.
            let mut at = Some(node);
            while let Some(node) = at.filter(|&node| !read[node]) {
                read[node] = true;
                at = self.nodes[node].parent;
            }
        }
        self.nodes
            .iter()
            .zip(read)
            .skip(1)
            .filter(|(_, read)| !read)
            .map(|(node, _)| node)
            .collect()
    }

    /// `cache`, `search` or `aggregate`.
    pub fn kind(&self) -> &'static str {
        match self.output {
            OutputPlan::Cache { .. } => "cache",
            OutputPlan::Search { .. } => "search",
            OutputPlan::Aggregate(_) => "aggregate",
        }
    }
}

/// What one root's output is made of.
#[derive(Debug)]
pub enum OutputPlan {
    /// A JSON document under a key rendered from the root row.
    Cache {
        key: Vec<KeyPartPlan>,
        document: DocPlan,
        /// The key template may give two rows one key
        /// ([`keys_may_collide`]): each key is claimed by
        /// one root in the state store before it is written.
        keys_may_collide: bool,
        /// The key template names every primary-key column of the root,
        /// rather than only those of another unique key.
        by_primary_key: bool,
    },
    /// A flat document of named values, identified by a root column.
    Search {
        id: usize,
        /// `id` is the primary key, rather than another unique key.
        by_primary_key: bool,
        /// `id` is a `char(n)`, whose padding the document's id drops.
        id_padded: bool,
        fields: Vec<SearchFieldPlan>,
    },
    /// The root's contribution to one group of an aggregate table.
    Aggregate(AggregatePlan),
}

/// How an aggregate view's rows are computed and where they go.
#[derive(Debug)]
pub struct AggregatePlan {
    /// Target table, schema-qualified.
    pub table: String,
    /// The group-key columns, in `group_by` order.
    pub group: Vec<GroupColumnPlan>,
    pub measures: Vec<MeasurePlan>,
}

#[derive(Debug)]
pub struct GroupColumnPlan {
    pub name: String,
    pub expr: ExprPlan,
    /// Whether the key can be NULL. Only a bare `NOT NULL` column of the root
    /// is sure not to be: a joined row may be missing (LEFT JOIN), and a
    /// function of a column may return NULL.
    pub nullable: bool,
}

#[derive(Debug)]
pub struct MeasurePlan {
    pub name: String,
    /// `None` for `count()`.
    pub input: Option<ExprPlan>,
    pub spec: MeasureSpec,
}

impl AggregatePlan {
    pub fn specs(&self) -> Vec<MeasureSpec> {
        self.measures
            .iter()
            .map(|measure| measure.spec.clone())
            .collect()
    }

    /// The target table's columns, group keys first, with their types.
    pub fn columns(&self) -> Vec<(String, ValueType)> {
        let group = self
            .group
            .iter()
            .map(|key| (key.name.clone(), key.expr.value_type));
        let measures = self
            .measures
            .iter()
            .map(|measure| (measure.name.clone(), measure.spec.output_type()));
        group.chain(measures).collect()
    }
}

#[derive(Debug)]
pub struct SearchFieldPlan {
    pub name: String,
    /// What the index accepts: a value that does not fit is a dead letter.
    pub field_type: SearchFieldType,
    pub value: SearchValuePlan,
}

/// Where a search field's value comes from.
#[derive(Debug)]
pub enum SearchValuePlan {
    /// A column of the root or of a join; of a `many` join, a value per
    /// joined row.
    Column {
        node: usize,
        column: usize,
        /// A `char(n)` column, or an array of them: indexed and stored
        /// without its padding, which PostgreSQL's comparisons ignore
        /// (`code = 'ZZ9'` matches `'ZZ9  '`).
        padded: bool,
        /// An array column's element type: the document holds the
        /// elements, which the index takes one by one.
        array_element: Option<u32>,
    },
    /// An expression over the root and its `one` joins.
    Expr(ExprPlan),
}

impl SearchFieldPlan {
    fn column_array_element(&self) -> Option<u32> {
        match self.value {
            SearchValuePlan::Column { array_element, .. } => array_element,
            SearchValuePlan::Expr(_) => None,
        }
    }
}

#[derive(Debug)]
pub struct NodePlan {
    pub table: String,
    /// Where the view file declares it (`fields.customer`, `joins.products`).
    pub path: String,
    pub parent: Option<usize>,
    /// How this node joins its parent; `None` for the root.
    pub link: Option<LinkPlan>,
    /// A cache relation's `where`: only joined rows for which it is true
    /// count.
    pub filter: Option<ExprPlan>,
}

/// `child.child_columns = parent.parent_columns`, pairwise.
#[derive(Debug)]
pub struct LinkPlan {
    pub cardinality: Cardinality,
    pub child_columns: Vec<usize>,
    pub parent_columns: Vec<usize>,
    /// How to find the children of a parent row.
    pub children: Lookup,
    /// How to find the parents of a child row.
    pub parents: Lookup,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The columns are the table's primary key, in key order.
    PrimaryKey,
    /// Through the named join index.
    Index(String),
}

#[derive(Debug)]
pub enum KeyPartPlan {
    Literal(String),
    /// A root column; `padded` for a `char(n)`, whose padding the key
    /// leaves out, as SQL's `'k:' || code` does.
    Column {
        column: usize,
        padded: bool,
    },
}

/// An expression over the root row and its `one` joins (a `where`, a group
/// key, a measure's input), with every column path resolved once.
#[derive(Debug)]
pub struct ExprPlan {
    pub expr: Expr,
    /// Each column path of the expression → (node, stored column).
    pub columns: HashMap<ColumnPath, (usize, usize)>,
    /// The column paths of type `char(n)` that the expression computes
    /// with: their values are compared and computed without the trailing
    /// spaces that pad them, as PostgreSQL does (`code = 'EU'` is true of a
    /// `char(4)` holding `EU  `). An expression that is the bare column
    /// keeps the padding, as PostgreSQL's value does.
    pub padded: BTreeSet<ColumnPath>,
    /// The static type of the result.
    pub value_type: ValueType,
    /// Whether it computes otherwise than as parsed: values of its `CASE`s
    /// or `coalesce`s converted to the type of the whole, `integer`
    /// arithmetic checked against its range ([`Expr::with_sql_types`]).
    pub rewritten: bool,
    /// The enum whose labels its values are, if they are: a bare enum
    /// column, or one through `coalesce`, `nullif` or `CASE`. `min` and
    /// `max` of it order by the labels' order.
    pub value_enum: Option<Arc<EnumOrder>>,
}

#[derive(Debug)]
pub struct DocPlan {
    pub node: usize,
    pub fields: Vec<FieldPlan>,
}

/// Every expression of a view: its `where`, a cache view's relations'
/// `where`s, computed fields and measures, an aggregate view's group keys and
/// measures' inputs.
fn view_exprs<'p>(
    nodes: &'p [NodePlan],
    output: &'p OutputPlan,
    filter: Option<&'p ExprPlan>,
) -> Vec<&'p ExprPlan> {
    let mut exprs: Vec<&ExprPlan> = filter.into_iter().collect();
    exprs.extend(nodes.iter().filter_map(|node| node.filter.as_ref()));
    match output {
        OutputPlan::Cache { document, .. } => {
            exprs.extend(document.field_exprs("fields").into_iter().map(|(_, e)| e));
        }
        OutputPlan::Search { fields, .. } => {
            exprs.extend(fields.iter().filter_map(|field| match &field.value {
                SearchValuePlan::Expr(expr) => Some(expr),
                SearchValuePlan::Column { .. } => None,
            }));
        }
        OutputPlan::Aggregate(aggregate) => {
            exprs.extend(aggregate.group.iter().map(|key| &key.expr));
            exprs.extend(aggregate.measures.iter().filter_map(|m| m.input.as_ref()));
        }
    }
    exprs
}

/// The enum orders a view compares by (in its expressions) and orders by
/// (its `min` and `max` measures, its relations' `order_by`), once each.
fn view_enum_orders(
    nodes: &[NodePlan],
    output: &OutputPlan,
    filter: Option<&ExprPlan>,
) -> Vec<Arc<EnumOrder>> {
    let compared = view_exprs(nodes, output, filter)
        .into_iter()
        .flat_map(|expr| expr.expr.enum_orders());
    let measures = match output {
        OutputPlan::Cache { document, .. } => document.measures(),
        OutputPlan::Aggregate(aggregate) => aggregate.measures.iter().collect(),
        OutputPlan::Search { .. } => Vec::new(),
    };
    let mut ordered: Vec<Arc<EnumOrder>> = measures
        .into_iter()
        .filter_map(|measure| measure.spec.enum_order.clone())
        .collect();
    if let OutputPlan::Cache { document, .. } = output {
        ordered.extend(document.order_enums());
    }
    let mut orders: Vec<Arc<EnumOrder>> = Vec::new();
    for order in compared.chain(ordered) {
        if !orders.contains(&order) {
            orders.push(order);
        }
    }
    orders
}

/// Whether a view's key, search fields or expressions read a `char(n)` column.
fn reads_padded_char(nodes: &[NodePlan], output: &OutputPlan, filter: Option<&ExprPlan>) -> bool {
    let padded_key = match output {
        OutputPlan::Cache { key, .. } => key
            .iter()
            .any(|part| matches!(part, KeyPartPlan::Column { padded: true, .. })),
        OutputPlan::Search {
            fields, id_padded, ..
        } => {
            *id_padded
                || fields.iter().any(|field| {
                    matches!(field.value, SearchValuePlan::Column { padded: true, .. })
                })
        }
        _ => false,
    };
    padded_key
        || view_exprs(nodes, output, filter)
            .iter()
            .any(|expr| !expr.padded.is_empty())
}

impl DocPlan {
    /// Whether a field here or in a nested document is an array column.
    pub fn has_array_field(&self) -> bool {
        self.fields.iter().any(|field| match field {
            FieldPlan::Column { array_element, .. } | FieldPlan::Computed { array_element, .. } => {
                array_element.is_some()
            }
            FieldPlan::Relation { document, .. } => document.has_array_field(),
        })
    }

    /// The expressions of fields here and in nested documents (computed
    /// fields, relations' measures), with their paths in the file
    /// (`fields.items.fields.line_total`, `fields.item_count.measure`).
    /// The enums its relations' `order_by` orders by, at every level.
    pub fn order_enums(&self) -> Vec<Arc<EnumOrder>> {
        let mut found = Vec::new();
        for field in &self.fields {
            if let FieldPlan::Relation {
                document, order_by, ..
            } = field
            {
                found.extend(order_by.iter().filter_map(|key| key.enum_order.clone()));
                found.extend(document.order_enums());
            }
        }
        found
    }

    /// The measures of its relations, at every level.
    pub fn measures(&self) -> Vec<&MeasurePlan> {
        let mut found = Vec::new();
        for field in &self.fields {
            if let FieldPlan::Relation {
                document, measure, ..
            } = field
            {
                found.extend(measure.as_ref().map(|m| &m.measure));
                found.extend(document.measures());
            }
        }
        found
    }

    pub fn field_exprs(&self, path: &str) -> Vec<(String, &ExprPlan)> {
        let mut found = Vec::new();
        for field in &self.fields {
            match field {
                FieldPlan::Column { .. } => {}
                FieldPlan::Computed { name, expr, .. } => {
                    found.push((format!("{path}.{name}"), expr));
                }
                FieldPlan::Relation {
                    name,
                    document,
                    measure,
                    ..
                } => {
                    if let Some(input) = measure.as_ref().and_then(|m| m.measure.input.as_ref()) {
                        found.push((format!("{path}.{name}.measure"), input));
                    }
                    found.extend(document.field_exprs(&format!("{path}.{name}.fields")));
                }
            }
        }
        found
    }
}

#[derive(Debug)]
pub enum FieldPlan {
    Column {
        name: String,
        column: usize,
        /// An array column's element type: the field is a JSON array of
        /// its elements, as PostgreSQL's `to_json` writes it.
        array_element: Option<u32>,
    },
    /// An expression over the row of its document's node and the `one`
    /// relations below it.
    Computed {
        name: String,
        expr: ExprPlan,
        /// A bare path's array column's element type, as for a column.
        array_element: Option<u32>,
    },
    Relation {
        name: String,
        node: usize,
        cardinality: Cardinality,
        order_by: Vec<OrderKeyPlan>,
        /// At most this many rows, the first in `order_by`.
        limit: Option<usize>,
        /// Empty for a relation with a `measure`.
        document: DocPlan,
        /// Only for `many`: one value over the rows instead of a document
        /// per row.
        measure: Option<RelationMeasurePlan>,
        /// Read through its path by `where` and computed fields, but not
        /// written.
        hidden: bool,
    },
}

/// One key of a relation's `order_by`.
#[derive(Debug)]
pub struct OrderKeyPlan {
    /// The stored column of the relation's rows.
    pub column: usize,
    pub descending: bool,
    /// The column's enum, whose labels it orders by their places.
    pub enum_order: Option<Arc<EnumOrder>>,
}

/// A `many` relation's measure: one value over its rows.
#[derive(Debug)]
pub struct RelationMeasurePlan {
    pub measure: MeasurePlan,
    /// A `sum` of `smallint`s or `integer`s, which PostgreSQL gives as a
    /// `bigint` (a JSON number), where a sum of `bigint`s is a `numeric`
    /// (a string, as numerics are written).
    pub sum_is_bigint: bool,
}

/// Where a view computes with a `timestamptz` (not a bare column): there
/// `date()`, `extract`, `date_trunc` and a literal without an offset
/// depend on the time zone ([`crate::expr::TimeZone`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneComputation {
    pub view: String,
    pub file: std::path::PathBuf,
    /// The field path (`where`, `group_by.day`, `measures.first`).
    pub field: String,
    /// What the `timestamptz` is: `timestamptz column created_at`, or a
    /// `timestamptz` the expression makes.
    pub what: String,
}

impl Plan {
    /// Every view's first computation with a `timestamptz` column
    /// ([`ZoneComputation`]), in view order.
    pub fn zone_computations(&self) -> Vec<ZoneComputation> {
        self.views
            .iter()
            .filter_map(|view| {
                let mut computed: Vec<(String, &ExprPlan)> = Vec::new();
                computed.extend(view.filter.iter().map(|f| ("where".to_owned(), f)));
                if let OutputPlan::Cache { document, .. } = &view.output {
                    computed.extend(document.field_exprs("fields"));
                }
                for node in &view.nodes {
                    if let Some(filter) = &node.filter {
                        computed.push((format!("{}.where", node.path), filter));
                    }
                }
                if let OutputPlan::Aggregate(aggregate) = &view.output {
                    for key in &aggregate.group {
                        computed.push((format!("group_by.{}", key.name), &key.expr));
                    }
                    for measure in &aggregate.measures {
                        if let Some(input) = &measure.input {
                            computed.push((format!("measures.{}", measure.name), input));
                        }
                    }
                }
                computed
                    .into_iter()
                    .filter(|(_, expr)| !expr.expr.is_column())
                    .find_map(|(field, expr)| {
                        let read = expr.expr.columns_beyond_nullness();
                        let values = expr.columns.iter().filter(|(path, _)| read.contains(path));
                        let column = values.into_iter().find_map(|(path, &(node, column))| {
                            let table = self.tables.get(&view.nodes[node].table)?;
                            (table.column_types.get(column)
                                == Some(&crate::source::pg_text::type_oid::TIMESTAMPTZ))
                            .then(|| format!("timestamptz column {}", path.join(".")))
                        });
                        let what = column.or_else(|| {
                            expr.expr
                                .makes_timestamptz()
                                .then(|| format!("a timestamptz made in `{}`", expr.expr))
                        })?;
                        Some(ZoneComputation {
                            view: view.name.clone(),
                            file: view.file.clone(),
                            field,
                            what,
                        })
                    })
            })
            .collect()
    }

    pub fn build(views: &[ViewDef], catalog: &Catalog) -> Result<Plan, PlanError> {
        let trees = views
            .iter()
            .map(|view| {
                JoinTree::of(view).map_err(|error| PlanError::Tree {
                    view: view.name.clone(),
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut tables = table_plans(views, &trees, catalog)?;
        let views = views
            .iter()
            .zip(&trees)
            .map(|(def, tree)| {
                Resolver {
                    def,
                    tree,
                    tables: &tables,
                    catalog,
                }
                .view()
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (index, view) in views.iter().enumerate() {
            for (node, plan) in view.nodes.iter().enumerate() {
                if let Some(table) = tables.get_mut(&plan.table) {
                    table.occurrences.push((index, node));
                }
            }
        }
        let mut plan = Plan {
            tables,
            views,
            time_zone: TimeZone::current(),
        };
        plan.name_time_zone();
        plan.name_aggregate_tables();
        Ok(plan)
    }

    /// An aggregate view's table is made for its columns' types and its
    /// key's kind, which come from the source's columns: a column whose
    /// type changed (`int` to `numeric(6,2)`, while running or stopped)
    /// must give the table new columns, or PostgreSQL rounds `7.75` into a
    /// `bigint` 8 (the fourteenth trial). The layout is part of the
    /// definition, so such a change rebuilds the view and rewrites its
    /// table, as an edited file does.
    fn name_aggregate_tables(&mut self) {
        for view in &mut self.views {
            let OutputPlan::Aggregate(aggregate) = &view.output else {
                continue;
            };
            let columns: Vec<String> = aggregate
                .columns()
                .iter()
                .map(|(name, value_type)| format!("{name}:{value_type}"))
                .collect();
            let key = if aggregate.group.iter().any(|key| key.nullable) {
                "unique"
            } else {
                "primary"
            };
            view.definition_hash
                .push_str(&format!("+table={};key={key}", columns.join(",")));
        }
    }

    /// Outputs computed in one time zone are built again in another: the
    /// zone (when not UTC, so that stores built before zones counted keep
    /// their outputs) is part of the definition of each view computing with
    /// a `timestamptz`.
    fn name_time_zone(&mut self) {
        let zone = Arc::clone(&self.time_zone);
        if zone.is_utc() {
            return;
        }
        for computed in self.zone_computations() {
            if let Some(view) = self
                .views
                .iter_mut()
                .find(|view| view.name == computed.view)
            {
                view.definition_hash
                    .push_str(&format!("+time_zone={}", zone.name()));
            }
        }
    }

    /// The enum orders the views compare by (each enum's labels, in their
    /// order, as planned): the stream checks them against the database's,
    /// and plans the views again when a label was added.
    pub fn enum_orders(&self) -> Vec<Arc<EnumOrder>> {
        let mut orders = Vec::new();
        for view in &self.views {
            for order in view_enum_orders(&view.nodes, &view.output, view.filter.as_ref()) {
                if !orders.contains(&order) {
                    orders.push(order);
                }
            }
        }
        orders
    }

    /// The views that order an enum ([`Plan::enum_orders`]).
    pub fn views_ordering_enums(&self) -> Vec<String> {
        self.views
            .iter()
            .filter(|view| {
                !view_enum_orders(&view.nodes, &view.output, view.filter.as_ref()).is_empty()
            })
            .map(|view| view.name.clone())
            .collect()
    }

    /// A description of what the state store keeps; when it changes, the
    /// stored rows no longer fit and a new snapshot is needed. Each column
    /// is named with its type ([`TablePlan::stored_columns`]), so a column
    /// whose type changed while viewkeeper was stopped takes a new snapshot
    /// too: the stored values are of the old type.
    pub fn layout(&self) -> String {
        let mut layout = String::new();
        for table in self.tables.values() {
            let indexes: Vec<&str> = table.indexes.iter().map(|i| i.name.as_str()).collect();
            layout.push_str(&format!(
                "{}({})[{}];",
                table.name,
                table.stored_columns().join(","),
                indexes.join(";")
            ));
        }
        layout
    }

    /// The type of every stored column, by table and column, for the stream
    /// to tell when one changes while running.
    pub fn stored_column_types(&self) -> StoredColumnTypes {
        self.tables
            .values()
            .map(|table| {
                let types = table
                    .columns
                    .iter()
                    .cloned()
                    .zip(
                        table
                            .column_types
                            .iter()
                            .copied()
                            .zip(table.column_type_modifiers.iter().copied()),
                    )
                    .collect();
                (table.name.clone(), types)
            })
            .collect()
    }

    /// The stored columns of each table of a layout written by
    /// [`Plan::layout`], as [`TablePlan::stored_columns`] names them; `None`
    /// if it does not parse.
    pub fn layout_columns(layout: &str) -> Option<BTreeMap<String, Vec<String>>> {
        let mut tables = BTreeMap::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let open = rest.find('(')?;
            let close = open + rest[open..].find(")[")?;
            let end = close + rest[close..].find("];")?;
            let columns = rest[open + 1..close]
                .split(',')
                .map(str::to_owned)
                .collect();
            tables.insert(rest[..open].to_owned(), columns);
            rest = &rest[end + 2..];
        }
        Some(tables)
    }

    pub fn table(&self, name: &str) -> Option<&TablePlan> {
        self.tables.get(name)
    }
}

impl TablePlan {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Each stored column as the layout names it: `name:type OID:modifier`.
    pub fn stored_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .zip(&self.column_types)
            .zip(&self.column_type_modifiers)
            .map(|((name, oid), modifier)| format!("{name}:{oid}:{modifier}"))
            .collect()
    }
}

fn table_info<'c>(
    catalog: &'c Catalog,
    view: &str,
    table: &str,
) -> Result<&'c TableInfo, PlanError> {
    let info = catalog
        .tables
        .get(table)
        .ok_or_else(|| PlanError::UnknownTable {
            view: view.to_string(),
            table: table.to_string(),
        })?;
    if info.primary_key.is_empty() {
        return Err(PlanError::NoPrimaryKey {
            view: view.to_string(),
            table: table.to_string(),
        });
    }
    Ok(info)
}

/// The stored columns of every table (primary key first, then every column
/// some view reads or joins on) and the join indexes to keep.
fn table_plans(
    views: &[ViewDef],
    trees: &[JoinTree],
    catalog: &Catalog,
) -> Result<BTreeMap<String, TablePlan>, PlanError> {
    let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut links: Vec<(String, Vec<String>)> = Vec::new();
    for (view, tree) in views.iter().zip(trees) {
        for node in &tree.nodes {
            table_info(catalog, &view.name, &node.table)?;
            needed.entry(node.table.clone()).or_default();
        }
        for (node, column) in &tree.reads {
            needed
                .entry(tree.nodes[*node].table.clone())
                .or_default()
                .insert(column.clone());
        }
        for node in &tree.nodes {
            let Some(parent) = node.parent else { continue };
            let parent_table = &tree.nodes[parent].table;
            let joined: Vec<String> = node.on.iter().map(|(j, _)| j.clone()).collect();
            let parents: Vec<String> = node.on.iter().map(|(_, p)| p.clone()).collect();
            needed
                .entry(node.table.clone())
                .or_default()
                .extend(joined.clone());
            needed
                .entry(parent_table.clone())
                .or_default()
                .extend(parents.clone());
            links.push((node.table.clone(), joined));
            links.push((parent_table.clone(), parents));
        }
    }
    let mut tables = BTreeMap::new();
    for (name, needed) in needed {
        let info = &catalog.tables[&name];
        tables.insert(name.clone(), table_plan(&name, info, &needed)?);
    }
    for (table, columns) in links {
        add_index(tables.get_mut(&table), &columns);
    }
    Ok(tables)
}

fn table_plan(
    name: &str,
    info: &TableInfo,
    needed: &BTreeSet<String>,
) -> Result<TablePlan, PlanError> {
    let mut columns = info.primary_key.clone();
    columns.extend(
        needed
            .iter()
            .filter(|c| !info.primary_key.contains(c))
            .cloned(),
    );
    let infos = columns
        .iter()
        .map(|column| {
            info.columns
                .iter()
                .find(|c| &c.name == column)
                .ok_or_else(|| PlanError::UnknownColumn {
                    view: String::new(),
                    table: name.to_string(),
                    column: column.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TablePlan {
        name: name.to_string(),
        primary_key_len: info.primary_key.len(),
        column_types: infos.iter().map(|c| c.type_oid).collect(),
        column_type_modifiers: infos.iter().map(|c| c.type_modifier).collect(),
        column_array_elements: infos.iter().map(|c| c.array_element).collect(),
        columns,
        indexes: Vec::new(),
        occurrences: Vec::new(),
    })
}

/// Registers a join index on `columns` unless they are the primary key.
fn add_index(table: Option<&mut TablePlan>, columns: &[String]) {
    let Some(table) = table else { return };
    if lookup_for(table, columns) == Lookup::PrimaryKey {
        return;
    }
    let name = columns.join(",");
    if table.indexes.iter().any(|i| i.name == name) {
        return;
    }
    let positions = columns.iter().filter_map(|c| table.column(c)).collect();
    table.indexes.push(IndexPlan {
        name,
        columns: positions,
    });
}

fn lookup_for(table: &TablePlan, columns: &[String]) -> Lookup {
    let key = &table.columns[..table.primary_key_len];
    if columns == key {
        Lookup::PrimaryKey
    } else {
        Lookup::Index(columns.join(","))
    }
}

/// Turns one view's names into positions in the stored tables.
struct Resolver<'a> {
    def: &'a ViewDef,
    tree: &'a JoinTree,
    tables: &'a BTreeMap<String, TablePlan>,
    catalog: &'a Catalog,
}

impl Resolver<'_> {
    fn view(&self) -> Result<ViewPlan, PlanError> {
        let nodes = self.nodes()?;
        let (filter, output, sink) = match &self.def.kind {
            ViewKind::Cache(cache) => (
                cache.filter.as_ref(),
                {
                    let key = self.key(&cache.key.parts)?;
                    OutputPlan::Cache {
                        keys_may_collide: keys_may_collide(&self.key_tokens(&key)),
                        by_primary_key: self.holds_primary_key(&key),
                        key,
                        document: self.document(&cache.fields, 0, &mut 1)?,
                    }
                },
                crate::sink::redis::SINK.to_string(),
            ),
            ViewKind::Search(search) => (
                search.filter.as_ref(),
                self.search_output(search)?,
                format!("search:{}", self.def.name),
            ),
            ViewKind::Aggregate(aggregate) => (
                aggregate.filter.as_ref(),
                OutputPlan::Aggregate(self.aggregate(aggregate)?),
                crate::sink::aggregate::sink_name(&self.def.name),
            ),
        };
        let filter = filter.map(|expr| self.expr(expr)).transpose()?;
        // Outputs built without claiming their keys (by an earlier version,
        // or while the template was proven safe) are built again when
        // their keys start being claimed, and the other way round; so are
        // those whose keys the first root to claim them kept (before keys
        // went to the first root in key order).
        let mut definition_hash = self.def.definition_hash.clone();
        if let OutputPlan::Cache {
            keys_may_collide,
            document,
            ..
        } = &output
        {
            if *keys_may_collide {
                definition_hash.push_str("+claimed-keys-by-key-order");
            }
            // Documents written before arrays were JSON arrays (as their
            // text) are written again.
            if document.has_array_field() {
                definition_hash.push_str("+json-arrays");
            }
        }
        if let OutputPlan::Search { fields, .. } = &output {
            // Documents written while an array column was its text, and
            // those set aside while a date beyond the index's years was
            // refused, are computed again.
            if fields
                .iter()
                .any(|field| field.column_array_element().is_some())
            {
                definition_hash.push_str("+json-arrays");
            }
            if fields
                .iter()
                .any(|field| field.field_type == SearchFieldType::Date)
            {
                definition_hash.push_str("+dates-clamped");
            }
        }
        // Outputs computed while a bare `char(n)` column (a key's
        // placeholder, a group key, a `max`) kept its padding are computed
        // again.
        if reads_padded_char(&nodes, &output, filter.as_ref()) {
            definition_hash.push_str("+char-trimmed");
        }
        // Outputs computed while a `CASE` or `coalesce` kept the type of
        // the branch taken, or `integer` arithmetic went past its range,
        // are computed again.
        if view_exprs(&nodes, &output, filter.as_ref())
            .iter()
            .any(|expr| expr.rewritten)
        {
            definition_hash.push_str("+sql-types");
        }
        // Outputs computed with an enum's labels in one order are computed
        // again when a label is added among them.
        for order in view_enum_orders(&nodes, &output, filter.as_ref()) {
            definition_hash.push_str(&format!(
                "+enum_order={}:{}",
                order.type_name(),
                order.labels().join(",")
            ));
        }
        Ok(ViewPlan {
            name: self.def.name.clone(),
            file: self.def.file.clone(),
            definition_hash,
            sink,
            nodes,
            filter,
            output,
        })
    }

    fn column(&self, node: usize, column: &str) -> Result<usize, PlanError> {
        let table = &self.tree.nodes[node].table;
        self.tables
            .get(table)
            .and_then(|t| t.column(column))
            .ok_or_else(|| PlanError::UnknownColumn {
                view: self.def.name.clone(),
                table: table.clone(),
                column: column.to_string(),
            })
    }

    fn path(&self, path: &[String]) -> Result<(usize, usize), PlanError> {
        let (node, column) = self.tree.resolve(path).map_err(|error| PlanError::Tree {
            view: self.def.name.clone(),
            error,
        })?;
        Ok((node, self.column(node, &column)?))
    }

    fn nodes(&self) -> Result<Vec<NodePlan>, PlanError> {
        let mut nodes = Vec::with_capacity(self.tree.nodes.len());
        for (index, node) in self.tree.nodes.iter().enumerate() {
            let link = match node.parent {
                Some(parent) => Some(self.link(index, parent)?),
                None => None,
            };
            let filter = node.filter.as_ref().map(|f| self.expr_at(f, index));
            nodes.push(NodePlan {
                table: node.table.clone(),
                path: node.path.clone(),
                parent: node.parent,
                link,
                filter: filter.transpose()?,
            });
        }
        Ok(nodes)
    }

    fn link(&self, node: usize, parent: usize) -> Result<LinkPlan, PlanError> {
        let tree_node = &self.tree.nodes[node];
        let joined: Vec<String> = tree_node.on.iter().map(|(j, _)| j.clone()).collect();
        let parents: Vec<String> = tree_node.on.iter().map(|(_, p)| p.clone()).collect();
        Ok(LinkPlan {
            cardinality: tree_node.cardinality,
            child_columns: joined
                .iter()
                .map(|c| self.column(node, c))
                .collect::<Result<_, _>>()?,
            parent_columns: parents
                .iter()
                .map(|c| self.column(parent, c))
                .collect::<Result<_, _>>()?,
            children: lookup_for(&self.tables[&tree_node.table], &joined),
            parents: lookup_for(&self.tables[&self.tree.nodes[parent].table], &parents),
        })
    }

    /// A planned key template with each placeholder as its column's type.
    fn key_tokens<'k>(&self, key: &'k [KeyPartPlan]) -> Vec<KeyToken<'k>> {
        let root = &self.tables[&self.tree.nodes[0].table];
        key.iter()
            .map(|part| match part {
                KeyPartPlan::Literal(text) => KeyToken::Literal(text),
                KeyPartPlan::Column { column, .. } => {
                    KeyToken::Value(root.column_types.get(*column).copied().unwrap_or(0))
                }
            })
            .collect()
    }

    fn key(&self, parts: &[KeyPart]) -> Result<Vec<KeyPartPlan>, PlanError> {
        parts
            .iter()
            .map(|part| match part {
                KeyPart::Literal(text) => Ok(KeyPartPlan::Literal(text.clone())),
                KeyPart::Column(column) => {
                    let column = self.column(0, column)?;
                    let root = &self.tables[&self.tree.nodes[0].table];
                    let padded =
                        root.column_types[column] == crate::source::pg_text::type_oid::BPCHAR;
                    Ok(KeyPartPlan::Column { column, padded })
                }
            })
            .collect()
    }

    fn search_value(&self, from: &SearchSource) -> Result<SearchValuePlan, PlanError> {
        let path = match from {
            SearchSource::Column(path) => path,
            SearchSource::Expr(expr) => return Ok(SearchValuePlan::Expr(self.expr(expr)?)),
        };
        let (node, column) = self.path(path)?;
        let table = &self.tables[&self.tree.nodes[node].table];
        let array_element = table.column_array_elements[column];
        Ok(SearchValuePlan::Column {
            node,
            column,
            padded: array_element.unwrap_or(table.column_types[column]) == type_oid::BPCHAR,
            array_element,
        })
    }

    /// A search view's output: its id column (the primary key, or another
    /// unique key whose ids are then claimed; a `char(n)` trimmed) and its
    /// fields.
    fn search_output(&self, search: &SearchView) -> Result<OutputPlan, PlanError> {
        let id = self.column(0, &search.id)?;
        let root = &self.tables[&self.tree.nodes[0].table];
        Ok(OutputPlan::Search {
            id,
            by_primary_key: root.primary_key_len == 1 && id == 0,
            id_padded: root.column_types[id] == type_oid::BPCHAR,
            fields: search
                .fields
                .iter()
                .map(|field| {
                    Ok(SearchFieldPlan {
                        name: field.name.clone(),
                        field_type: field.field_type,
                        value: self.search_value(&field.from)?,
                    })
                })
                .collect::<Result<_, PlanError>>()?,
        })
    }

    /// Whether a key template names every primary-key column of the root.
    fn holds_primary_key(&self, key: &[KeyPartPlan]) -> bool {
        let key_len = self.tables[&self.tree.nodes[0].table].primary_key_len;
        (0..key_len).all(|pk_column| {
            key.iter().any(
                |part| matches!(part, KeyPartPlan::Column { column, .. } if *column == pk_column),
            )
        })
    }

    fn expr(&self, expr: &Expr) -> Result<ExprPlan, PlanError> {
        let mut columns = HashMap::new();
        for path in expr.columns() {
            let resolved = self.path(&path)?;
            columns.insert(path, resolved);
        }
        self.typed_expr(expr, columns)
    }

    /// An expression whose paths start at `node`: a computed field's, or a
    /// relation's `where`.
    fn expr_at(&self, expr: &Expr, node: usize) -> Result<ExprPlan, PlanError> {
        let mut columns = HashMap::new();
        for path in expr.columns() {
            let (node, column) =
                self.tree
                    .resolve_at(node, &path)
                    .map_err(|error| PlanError::Tree {
                        view: self.def.name.clone(),
                        error,
                    })?;
            columns.insert(path, (node, self.column(node, &column)?));
        }
        self.typed_expr(expr, columns)
    }

    /// The order of the stored column `column` of `table`, if it is an
    /// enum's.
    fn enum_order(&self, table: &str, column: usize) -> Option<Arc<EnumOrder>> {
        let plan = self.tables.get(table)?;
        let oid = *plan.column_types.get(column)?;
        let labels = self.catalog.enum_labels.get(&oid)?;
        let name = plan.columns.get(column)?;
        let columns = &self.catalog.tables.get(table)?.columns;
        let info = columns.iter().find(|info| info.name == *name)?;
        Some(Arc::new(EnumOrder::new(
            oid,
            &info.type_name,
            labels.clone(),
        )))
    }

    fn typed_expr(
        &self,
        expr: &Expr,
        columns: HashMap<ColumnPath, (usize, usize)>,
    ) -> Result<ExprPlan, PlanError> {
        let column_oid = |path: &[String]| {
            let &(node, column) = columns.get(path)?;
            let table = self.tables.get(&self.tree.nodes[node].table)?;
            table.column_types.get(column).copied()
        };
        let column_type = |path: &[String]| column_oid(path).map(value_type);
        let padded = columns
            .keys()
            .filter(|path| column_oid(path) == Some(crate::source::pg_text::type_oid::BPCHAR))
            .cloned()
            .collect();
        let value_type = expr
            .infer_type(&column_type)
            .map_err(|error| PlanError::Type {
                view: self.def.name.clone(),
                expr: expr.source().to_owned(),
                error: error.to_string(),
            })?;
        let integer_bytes = |path: &[String]| integer_bytes(column_oid(path)?);
        let enum_order = |path: &[String]| {
            let &(node, column) = columns.get(path)?;
            self.enum_order(&self.tree.nodes[node].table, column)
        };
        let rewritten = expr
            .with_sql_types(&column_type, &integer_bytes)
            .with_enum_orders(&enum_order);
        let value_enum = expr
            .value_columns()
            .iter()
            .find_map(|path| enum_order(path));
        Ok(ExprPlan {
            rewritten: !rewritten.same_tree(expr),
            expr: rewritten,
            columns,
            padded,
            value_type,
            value_enum,
        })
    }

    fn is_not_null_root_column(&self, expr: &Expr) -> bool {
        let columns = expr.columns();
        let [path] = columns.as_slice() else {
            return false;
        };
        let [column] = path.as_slice() else {
            return false;
        };
        // A bare column, quoted (`"checkIn"`) or not: its source is not
        // always its name.
        expr.is_column()
            && self
                .catalog
                .tables
                .get(&self.tree.nodes[0].table)
                .is_some_and(|table| {
                    table
                        .columns
                        .iter()
                        .any(|info| &info.name == column && info.not_null)
                })
    }

    fn aggregate(&self, aggregate: &AggregateView) -> Result<AggregatePlan, PlanError> {
        let group = aggregate
            .group_by
            .iter()
            .map(|key| {
                Ok(GroupColumnPlan {
                    name: key.name.clone(),
                    expr: self.expr(&key.expr)?,
                    nullable: !self.is_not_null_root_column(&key.expr),
                })
            })
            .collect::<Result<_, PlanError>>()?;
        let measures = aggregate
            .measures
            .iter()
            .map(|measure| measure_plan(measure, |arg| self.expr(arg)))
            .collect::<Result<_, PlanError>>()?;
        Ok(AggregatePlan {
            table: aggregate.table.clone(),
            group,
            measures,
        })
    }

    /// A `many` relation's measure, over the rows of `node`.
    fn relation_measure(
        &self,
        measure: &Measure,
        node: usize,
    ) -> Result<RelationMeasurePlan, PlanError> {
        let measure = measure_plan(measure, |arg| self.expr_at(arg, node))?;
        let sum_is_bigint = match &measure.input {
            Some(input)
                if measure.spec.function == MeasureFunction::Sum
                    && input.value_type == ValueType::Int =>
            {
                input.expr.is_narrow_integer(&|path| {
                    let &(node, column) = input.columns.get(path)?;
                    let table = self.tables.get(&self.tree.nodes[node].table)?;
                    integer_bytes(*table.column_types.get(column)?)
                })
            }
            _ => false,
        };
        Ok(RelationMeasurePlan {
            measure,
            sum_is_bigint,
        })
    }

    /// Mirrors [`JoinTree`], which numbered relation nodes depth first.
    fn document(
        &self,
        fields: &[Field],
        node: usize,
        next_node: &mut usize,
    ) -> Result<DocPlan, PlanError> {
        let mut plans = Vec::with_capacity(fields.len());
        for field in fields {
            let plan = match &field.source {
                FieldSource::Column(column) => {
                    let column = self.column(node, column)?;
                    FieldPlan::Column {
                        name: field.name.clone(),
                        column,
                        array_element: self.tables[&self.tree.nodes[node].table]
                            .column_array_elements[column],
                    }
                }
                FieldSource::Computed(expr) => {
                    let expr = self.expr_at(expr, node)?;
                    // A bare path (`customer.tags`) is written as its
                    // column is.
                    let array_element = match expr.columns.values().next() {
                        Some(&(node, column)) if expr.expr.is_column() => {
                            self.tables[&self.tree.nodes[node].table].column_array_elements[column]
                        }
                        _ => None,
                    };
                    FieldPlan::Computed {
                        name: field.name.clone(),
                        expr,
                        array_element,
                    }
                }
                FieldSource::Relation(relation) => {
                    let child = *next_node;
                    *next_node += 1;
                    let order_by = relation
                        .order_by
                        .iter()
                        .map(|key| {
                            let column = self.column(child, &key.column)?;
                            Ok(OrderKeyPlan {
                                column,
                                descending: key.descending,
                                enum_order: self.enum_order(&self.tree.nodes[child].table, column),
                            })
                        })
                        .collect::<Result<_, PlanError>>()?;
                    let measure = relation
                        .measure
                        .as_ref()
                        .map(|measure| self.relation_measure(measure, child))
                        .transpose()?;
                    FieldPlan::Relation {
                        name: field.name.clone(),
                        node: child,
                        cardinality: relation.cardinality,
                        order_by,
                        limit: relation.limit,
                        document: self.document(&relation.fields, child, next_node)?,
                        measure,
                        hidden: relation.hidden,
                    }
                }
            };
            plans.push(plan);
        }
        Ok(DocPlan {
            node,
            fields: plans,
        })
    }
}

/// The bytes of an integer type (`smallint` 2, `integer` 4, `bigint` 8).
fn integer_bytes(type_oid: u32) -> Option<u8> {
    match type_oid {
        type_oid::INT2 => Some(2),
        type_oid::INT4 => Some(4),
        type_oid::INT8 => Some(8),
        _ => None,
    }
}

/// A measure with its input resolved by `resolve`: over an aggregate
/// view's root, or over a cache relation's rows.
fn measure_plan(
    measure: &Measure,
    resolve: impl Fn(&Expr) -> Result<ExprPlan, PlanError>,
) -> Result<MeasurePlan, PlanError> {
    let input = measure.arg.as_ref().map(resolve).transpose()?;
    let ordered = matches!(
        measure.function,
        MeasureFunction::Min | MeasureFunction::Max | MeasureFunction::PercentileDisc(_)
    );
    let spec = MeasureSpec {
        function: measure.function,
        has_input: input.is_some(),
        input_type: input.as_ref().map_or(ValueType::Null, |i| i.value_type),
        enum_order: input
            .as_ref()
            .and_then(|i| i.value_enum.clone())
            .filter(|_| ordered),
    };
    Ok(MeasurePlan {
        name: measure.name.clone(),
        input,
        spec,
    })
}
