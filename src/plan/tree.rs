//! A view's join tree, before names are resolved to column positions: which
//! tables it reads, how they join, and which column each part needs.
//!
//! Every view kind reduces to the same tree: node 0 is the root table, every
//! other node a joined table with the columns that link it to its parent.
//! Cache views get their nodes from relation fields (`one` and `many`, nested
//! to any depth); search and aggregate views from their named `one` joins.

use std::collections::HashMap;

use crate::view::model::{
    AggregateView, CacheView, Cardinality, Field, FieldSource, NamedJoin, SearchView, ViewDef,
    ViewKind,
};

/// One table of the tree.
#[derive(Debug)]
pub(super) struct TreeNode {
    pub table: String,
    /// Where the view file declares it, as error paths name it: `root`,
    /// `fields.customer`, `fields.items.fields.product`, `joins.products`.
    pub path: String,
    pub parent: Option<usize>,
    pub cardinality: Cardinality,
    /// (column of this node's table, column of the parent's table)
    pub on: Vec<(String, String)>,
    /// A cache relation's `where`, over this node's row and its `one`
    /// relations.
    pub filter: Option<crate::expr::Expr>,
    /// A cache relation's field names from the root (`["items",
    /// "product"]`), which its `where` and computed fields resolve from.
    pub names: Vec<String>,
}

/// The join tree of one view, and the columns each node must provide.
#[derive(Debug)]
pub(super) struct JoinTree {
    pub nodes: Vec<TreeNode>,
    /// Names that lead to a `one` node: relation field names from the root
    /// for cache views (`["customer"]`), join names for search views.
    pub named: HashMap<Vec<String>, usize>,
    /// (node, column) pairs the outputs read, besides the join columns.
    pub reads: Vec<(usize, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("`{path}` is not a column of the root or of a `one` relation or join")]
    UnresolvedPath { path: String },
    #[error("join {join}: its `on` columns must all come from one table")]
    MixedJoinParents { join: String },
}

impl JoinTree {
    pub fn of(def: &ViewDef) -> Result<JoinTree, TreeError> {
        let mut tree = JoinTree {
            nodes: Vec::new(),
            named: HashMap::new(),
            reads: Vec::new(),
        };
        match &def.kind {
            ViewKind::Cache(cache) => tree.add_cache_view(cache)?,
            ViewKind::Search(search) => tree.add_search_view(search)?,
            ViewKind::Aggregate(aggregate) => tree.add_aggregate_view(aggregate)?,
        }
        Ok(tree)
    }

    fn add_root(&mut self, table: &str) {
        self.nodes.push(TreeNode {
            table: table.to_string(),
            path: "root".to_owned(),
            parent: None,
            cardinality: Cardinality::One,
            on: Vec::new(),
            filter: None,
            names: Vec::new(),
        });
    }

    /// Resolves a column path: `column` on the root, or `name….column`
    /// through named `one` nodes.
    pub fn resolve(&self, path: &[String]) -> Result<(usize, String), TreeError> {
        let unresolved = || TreeError::UnresolvedPath {
            path: path.join("."),
        };
        let (column, names) = path.split_last().ok_or_else(unresolved)?;
        if names.is_empty() {
            return Ok((0, column.clone()));
        }
        let node = self.named.get(names).ok_or_else(unresolved)?;
        Ok((*node, column.clone()))
    }

    fn read(&mut self, path: &[String]) -> Result<(usize, String), TreeError> {
        let resolved = self.resolve(path)?;
        self.reads.push(resolved.clone());
        Ok(resolved)
    }

    fn add_cache_view(&mut self, cache: &CacheView) -> Result<(), TreeError> {
        self.add_root(&cache.root);
        for part in &cache.key.parts {
            if let crate::view::model::KeyPart::Column(column) = part {
                self.reads.push((0, column.clone()));
            }
        }
        self.add_fields(&cache.fields, 0, &[], "fields")?;
        if let Some(filter) = &cache.filter {
            for path in filter.columns() {
                self.read(&path)?;
            }
        }
        Ok(())
    }

    /// Numbers relation nodes depth first, in field order: the document plan
    /// walks the fields in the same order.
    /// `fields_path` is where `fields` is in the file (`fields`,
    /// `fields.items.fields`).
    fn add_fields(
        &mut self,
        fields: &[Field],
        node: usize,
        names: &[String],
        fields_path: &str,
    ) -> Result<(), TreeError> {
        for field in fields {
            match &field.source {
                FieldSource::Column(column) => self.reads.push((node, column.clone())),
                // Read below, once every relation of this level is named.
                FieldSource::Computed(_) => {}
                FieldSource::Relation(relation) => {
                    let child = self.nodes.len();
                    let field_path = format!("{fields_path}.{}", field.name);
                    let mut path = names.to_vec();
                    path.push(field.name.clone());
                    self.nodes.push(TreeNode {
                        table: relation.table.clone(),
                        path: field_path.clone(),
                        parent: Some(node),
                        cardinality: relation.cardinality,
                        on: relation
                            .on
                            .iter()
                            .map(|p| (p.joined.clone(), p.parent.clone()))
                            .collect(),
                        filter: relation.filter.clone(),
                        names: path.clone(),
                    });
                    if relation.cardinality == Cardinality::One {
                        self.named.insert(path.clone(), child);
                    }
                    for key in &relation.order_by {
                        self.reads.push((child, key.column.clone()));
                    }
                    self.add_fields(
                        &relation.fields,
                        child,
                        &path,
                        &format!("{field_path}.fields"),
                    )?;
                    // After its fields, which name its `one` relations.
                    let filter = relation.filter.iter();
                    let measure = relation.measure.iter().filter_map(|m| m.arg.as_ref());
                    for column in filter.chain(measure).flat_map(|expr| expr.columns()) {
                        let resolved = self.resolve_at(child, &column)?;
                        self.reads.push(resolved);
                    }
                }
            }
        }
        for field in fields {
            if let FieldSource::Computed(expr) = &field.source {
                for path in expr.columns() {
                    let resolved = self.resolve_at(node, &path)?;
                    self.reads.push(resolved);
                }
            }
        }
        Ok(())
    }

    /// Resolves a column path of an expression at `node` (a computed
    /// field's, a relation's `where`): `column` is the node's own, and
    /// `name….column` goes through `one` relations below it.
    pub fn resolve_at(&self, node: usize, path: &[String]) -> Result<(usize, String), TreeError> {
        if path.len() == 1 {
            return Ok((node, path[0].clone()));
        }
        let names = &self.nodes[node].names;
        let full: Vec<String> = names.iter().chain(path).cloned().collect();
        self.resolve(&full)
    }

    fn add_search_view(&mut self, search: &SearchView) -> Result<(), TreeError> {
        self.add_root(&search.root);
        for join in &search.joins {
            self.add_join(join)?;
        }
        self.reads.push((0, search.id.clone()));
        for path in search.fields.iter().flat_map(|field| field.from.columns()) {
            self.read(&path)?;
        }
        if let Some(filter) = &search.filter {
            for path in filter.columns() {
                self.read(&path)?;
            }
        }
        Ok(())
    }

    fn add_aggregate_view(&mut self, aggregate: &AggregateView) -> Result<(), TreeError> {
        self.add_root(&aggregate.root);
        for join in &aggregate.joins {
            self.add_join(join)?;
        }
        let group_exprs = aggregate.group_by.iter().map(|key| &key.expr);
        let measure_exprs = aggregate.measures.iter().filter_map(|m| m.arg.as_ref());
        for expr in group_exprs.chain(measure_exprs).chain(&aggregate.filter) {
            for path in expr.columns() {
                self.read(&path)?;
            }
        }
        Ok(())
    }

    fn add_join(&mut self, join: &NamedJoin) -> Result<(), TreeError> {
        let mut parent = None;
        let mut on = Vec::new();
        for pair in &join.on {
            let (node, column) = self.resolve(&pair.parent)?;
            if parent.is_some_and(|p| p != node) {
                return Err(TreeError::MixedJoinParents {
                    join: join.name.clone(),
                });
            }
            parent = Some(node);
            on.push((pair.joined.clone(), column));
        }
        let child = self.nodes.len();
        self.nodes.push(TreeNode {
            table: join.table.clone(),
            path: format!("joins.{}", join.name),
            parent: Some(parent.unwrap_or(0)),
            cardinality: join.cardinality,
            on,
            filter: None,
            names: vec![join.name.clone()],
        });
        self.named.insert(vec![join.name.clone()], child);
        Ok(())
    }
}
