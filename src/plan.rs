//! The plan: what each source table feeds, derived from the views and the catalog.
//!
//! For every table it fixes the columns the state store keeps (primary key
//! first), the join indexes to maintain, and where the table occurs in each
//! view's join tree. For every view it resolves names to column positions once,
//! so the engine never looks a name up per row.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::expr::{ColumnPath, Expr};
use crate::view::model::{Cardinality, Field, FieldSource, KeyPart, Relation, ViewDef, ViewKind};
use crate::view::{Catalog, TableInfo};

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
    #[error(
        "view {view}: `where` refers to {path}, which is not a column of the root or of a `one` relation"
    )]
    UnresolvedFilterColumn { view: String, path: String },
}

#[derive(Debug)]
pub struct Plan {
    /// By schema-qualified name.
    pub tables: BTreeMap<String, TablePlan>,
    pub views: Vec<ViewPlan>,
}

#[derive(Debug)]
pub struct TablePlan {
    pub name: String,
    /// Stored columns: the primary key first (in key order), then the others.
    pub columns: Vec<String>,
    pub column_types: Vec<u32>,
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
    /// Hash of the view file: when it differs from the one the outputs were
    /// built with, every root of the view is recomputed.
    pub definition_hash: String,
    /// The sink whose outbox receives this view's outputs.
    pub sink: &'static str,
    /// `nodes[0]` is the root; every other node is a joined table.
    pub nodes: Vec<NodePlan>,
    pub key: Vec<KeyPartPlan>,
    pub filter: Option<FilterPlan>,
    pub document: DocPlan,
}

#[derive(Debug)]
pub struct NodePlan {
    pub table: String,
    pub parent: Option<usize>,
    /// How this node joins its parent; `None` for the root.
    pub link: Option<LinkPlan>,
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
    Column(usize),
}

#[derive(Debug)]
pub struct FilterPlan {
    pub expr: Expr,
    /// Each column path of the expression → (node, stored column).
    pub columns: HashMap<ColumnPath, (usize, usize)>,
}

#[derive(Debug)]
pub struct DocPlan {
    pub node: usize,
    pub fields: Vec<FieldPlan>,
}

#[derive(Debug)]
pub enum FieldPlan {
    Column {
        name: String,
        column: usize,
    },
    Relation {
        name: String,
        node: usize,
        cardinality: Cardinality,
        /// (stored column, descending)
        order_by: Vec<(usize, bool)>,
        document: DocPlan,
    },
}

impl Plan {
    pub fn build(views: &[ViewDef], catalog: &Catalog) -> Result<Plan, PlanError> {
        let mut builder = Builder {
            catalog,
            needed: BTreeMap::new(),
            links: Vec::new(),
        };
        let skeletons = views
            .iter()
            .map(|view| builder.collect_view(view))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tables = builder.table_plans()?;
        let views = skeletons
            .into_iter()
            .enumerate()
            .map(|(index, skeleton)| skeleton.resolve(index, &mut tables))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan { tables, views })
    }

    /// A description of what the state store keeps; when it changes, the
    /// stored rows no longer fit and a new snapshot is needed.
    pub fn layout(&self) -> String {
        let mut layout = String::new();
        for table in self.tables.values() {
            let indexes: Vec<&str> = table.indexes.iter().map(|i| i.name.as_str()).collect();
            layout.push_str(&format!(
                "{}({})[{}];",
                table.name,
                table.columns.join(","),
                indexes.join(";")
            ));
        }
        layout
    }

    pub fn table(&self, name: &str) -> Option<&TablePlan> {
        self.tables.get(name)
    }
}

impl TablePlan {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// First pass: which columns of which tables are needed, and which joins exist.
struct Builder<'a> {
    catalog: &'a Catalog,
    needed: BTreeMap<String, BTreeSet<String>>,
    /// (child table, child columns, parent table, parent columns)
    links: Vec<(String, Vec<String>, String, Vec<String>)>,
}

/// A view with names not yet resolved to positions.
struct ViewSkeleton<'v> {
    def: &'v ViewDef,
    nodes: Vec<(String, Option<usize>, Option<&'v Relation>)>,
}

impl<'a> Builder<'a> {
    fn table_info(&self, view: &str, table: &str) -> Result<&'a TableInfo, PlanError> {
        let info = self
            .catalog
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

    fn need(&mut self, table: &str, column: &str) {
        self.needed
            .entry(table.to_string())
            .or_default()
            .insert(column.to_string());
    }

    fn collect_view<'v>(&mut self, def: &'v ViewDef) -> Result<ViewSkeleton<'v>, PlanError> {
        let ViewKind::Cache(cache) = &def.kind;
        self.table_info(&def.name, &cache.root)?;
        let mut skeleton = ViewSkeleton {
            def,
            nodes: vec![(cache.root.clone(), None, None)],
        };
        for part in &cache.key.parts {
            if let KeyPart::Column(column) = part {
                self.need(&cache.root, column);
            }
        }
        self.collect_fields(&def.name, &cache.fields, 0, &mut skeleton)?;
        if let Some(filter) = &cache.filter {
            for path in filter.columns() {
                let (node, column) = skeleton.resolve_path(&path).ok_or_else(|| {
                    PlanError::UnresolvedFilterColumn {
                        view: def.name.clone(),
                        path: path.join("."),
                    }
                })?;
                let table = skeleton.nodes[node].0.clone();
                self.need(&table, &column);
            }
        }
        Ok(skeleton)
    }

    fn collect_fields<'v>(
        &mut self,
        view: &str,
        fields: &'v [Field],
        node: usize,
        skeleton: &mut ViewSkeleton<'v>,
    ) -> Result<(), PlanError> {
        let table = skeleton.nodes[node].0.clone();
        for field in fields {
            match &field.source {
                FieldSource::Column(column) => self.need(&table, column),
                FieldSource::Relation(relation) => {
                    self.table_info(view, &relation.table)?;
                    let child = skeleton.nodes.len();
                    skeleton
                        .nodes
                        .push((relation.table.clone(), Some(node), Some(relation)));
                    for pair in &relation.on {
                        self.need(&relation.table, &pair.joined);
                        self.need(&table, &pair.parent);
                    }
                    for key in &relation.order_by {
                        self.need(&relation.table, &key.column);
                    }
                    self.links.push((
                        relation.table.clone(),
                        relation.on.iter().map(|p| p.joined.clone()).collect(),
                        table.clone(),
                        relation.on.iter().map(|p| p.parent.clone()).collect(),
                    ));
                    self.collect_fields(view, &relation.fields, child, skeleton)?;
                }
            }
        }
        Ok(())
    }

    fn table_plans(&self) -> Result<BTreeMap<String, TablePlan>, PlanError> {
        let mut tables = BTreeMap::new();
        for (name, needed) in &self.needed {
            let info = &self.catalog.tables[name];
            let mut columns = info.primary_key.clone();
            let others: Vec<String> = needed
                .iter()
                .filter(|c| !info.primary_key.contains(c))
                .cloned()
                .collect();
            columns.extend(others);
            let column_types = columns
                .iter()
                .map(|column| {
                    info.columns
                        .iter()
                        .find(|c| &c.name == column)
                        .map(|c| c.type_oid)
                        .ok_or_else(|| PlanError::UnknownColumn {
                            view: String::new(),
                            table: name.clone(),
                            column: column.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            tables.insert(
                name.clone(),
                TablePlan {
                    name: name.clone(),
                    primary_key_len: info.primary_key.len(),
                    columns,
                    column_types,
                    indexes: Vec::new(),
                    occurrences: Vec::new(),
                },
            );
        }
        for (child, child_columns, parent, parent_columns) in &self.links {
            add_index(tables.get_mut(child), child_columns);
            add_index(tables.get_mut(parent), parent_columns);
        }
        Ok(tables)
    }
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

impl<'v> ViewSkeleton<'v> {
    /// Resolves a `where` column path: `column` on the root, or
    /// `relation.….column` through `one` relations.
    fn resolve_path(&self, path: &[String]) -> Option<(usize, String)> {
        let (column, relations) = path.split_last()?;
        let mut node = 0;
        let ViewKind::Cache(cache) = &self.def.kind;
        let mut fields = &cache.fields;
        for name in relations {
            let relation = fields.iter().find_map(|f| match &f.source {
                FieldSource::Relation(r)
                    if &f.name == name && r.cardinality == Cardinality::One =>
                {
                    Some(r)
                }
                _ => None,
            })?;
            node = self
                .nodes
                .iter()
                .position(|(_, _, r)| r.is_some_and(|r| std::ptr::eq(r, relation)))?;
            fields = &relation.fields;
        }
        Some((node, column.clone()))
    }

    fn column_of(
        &self,
        tables: &BTreeMap<String, TablePlan>,
        table: &str,
        column: &str,
    ) -> Result<usize, PlanError> {
        tables
            .get(table)
            .and_then(|t| t.column(column))
            .ok_or_else(|| PlanError::UnknownColumn {
                view: self.def.name.clone(),
                table: table.to_string(),
                column: column.to_string(),
            })
    }

    fn resolve(
        self,
        index: usize,
        tables: &mut BTreeMap<String, TablePlan>,
    ) -> Result<ViewPlan, PlanError> {
        let ViewKind::Cache(cache) = &self.def.kind;
        for (node, (table, _, _)) in self.nodes.iter().enumerate() {
            if let Some(table) = tables.get_mut(table) {
                table.occurrences.push((index, node));
            }
        }
        let nodes = self.resolve_nodes(tables)?;
        let key = cache
            .key
            .parts
            .iter()
            .map(|part| match part {
                KeyPart::Literal(text) => Ok(KeyPartPlan::Literal(text.clone())),
                KeyPart::Column(column) => self
                    .column_of(tables, &cache.root, column)
                    .map(KeyPartPlan::Column),
            })
            .collect::<Result<_, _>>()?;
        let filter = match &cache.filter {
            Some(expr) => Some(self.resolve_filter(tables, expr)?),
            None => None,
        };
        let mut next_node = 1;
        let document = self.doc_plan(tables, &cache.fields, 0, &mut next_node)?;
        Ok(ViewPlan {
            name: self.def.name.clone(),
            definition_hash: self.def.definition_hash.clone(),
            sink: "redis",
            nodes,
            key,
            filter,
            document,
        })
    }

    fn resolve_nodes(
        &self,
        tables: &BTreeMap<String, TablePlan>,
    ) -> Result<Vec<NodePlan>, PlanError> {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (table, parent, relation) in &self.nodes {
            let link = match (parent, relation) {
                (Some(parent), Some(relation)) => {
                    Some(self.resolve_link(tables, table, &self.nodes[*parent].0, relation)?)
                }
                _ => None,
            };
            nodes.push(NodePlan {
                table: table.clone(),
                parent: *parent,
                link,
            });
        }
        Ok(nodes)
    }

    fn resolve_link(
        &self,
        tables: &BTreeMap<String, TablePlan>,
        table: &str,
        parent_table: &str,
        relation: &Relation,
    ) -> Result<LinkPlan, PlanError> {
        let joined: Vec<String> = relation.on.iter().map(|p| p.joined.clone()).collect();
        let parents: Vec<String> = relation.on.iter().map(|p| p.parent.clone()).collect();
        Ok(LinkPlan {
            cardinality: relation.cardinality,
            child_columns: joined
                .iter()
                .map(|c| self.column_of(tables, table, c))
                .collect::<Result<_, _>>()?,
            parent_columns: parents
                .iter()
                .map(|c| self.column_of(tables, parent_table, c))
                .collect::<Result<_, _>>()?,
            children: lookup_for(&tables[table], &joined),
            parents: lookup_for(&tables[parent_table], &parents),
        })
    }

    fn resolve_filter(
        &self,
        tables: &BTreeMap<String, TablePlan>,
        expr: &Expr,
    ) -> Result<FilterPlan, PlanError> {
        let mut columns = HashMap::new();
        for path in expr.columns() {
            let (node, column) =
                self.resolve_path(&path)
                    .ok_or_else(|| PlanError::UnresolvedFilterColumn {
                        view: self.def.name.clone(),
                        path: path.join("."),
                    })?;
            let position = self.column_of(tables, &self.nodes[node].0, &column)?;
            columns.insert(path, (node, position));
        }
        Ok(FilterPlan {
            expr: expr.clone(),
            columns,
        })
    }

    /// Mirrors `collect_fields`, which numbered the nodes depth first.
    fn doc_plan(
        &self,
        tables: &BTreeMap<String, TablePlan>,
        fields: &[Field],
        node: usize,
        next_node: &mut usize,
    ) -> Result<DocPlan, PlanError> {
        let table = &self.nodes[node].0;
        let mut plans = Vec::new();
        for field in fields {
            let plan = match &field.source {
                FieldSource::Column(column) => FieldPlan::Column {
                    name: field.name.clone(),
                    column: self.column_of(tables, table, column)?,
                },
                FieldSource::Relation(relation) => {
                    let child = *next_node;
                    *next_node += 1;
                    let order_by = relation
                        .order_by
                        .iter()
                        .map(|k| {
                            Ok((
                                self.column_of(tables, &relation.table, &k.column)?,
                                k.descending,
                            ))
                        })
                        .collect::<Result<_, PlanError>>()?;
                    let document = self.doc_plan(tables, &relation.fields, child, next_node)?;
                    FieldPlan::Relation {
                        name: field.name.clone(),
                        node: child,
                        cardinality: relation.cardinality,
                        order_by,
                        document,
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
