//! Which tables and columns the stored rows were copied from, beyond their
//! names and types: each table's OID and each stored column's number.
//!
//! A table dropped and created again, or a column dropped and added again,
//! while viewkeeper is stopped comes back with the same name and type, and
//! nothing of it is in the log: the stored rows keep the old values for
//! good. Its OID or number does not come back, so a start that finds
//! another one takes a new snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SourceError;
use crate::plan::Plan;

/// Per table (as the plan names it): its OID and its stored columns' numbers.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity(BTreeMap<String, TableIdentity>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TableIdentity {
    oid: u32,
    columns: BTreeMap<String, i16>,
}

impl SourceIdentity {
    /// The identity of the tables and stored columns of `plan`, as the
    /// database (or the transaction's snapshot) sees them now.
    pub async fn load<'e>(
        executor: impl sqlx::PgExecutor<'e>,
        plan: &Plan,
    ) -> Result<SourceIdentity, SourceError> {
        let tables: Vec<String> = plan.tables.keys().cloned().collect();
        let rows: Vec<(String, i64, String, i16)> = sqlx::query_as(
            "SELECT n.nspname || '.' || c.relname, c.oid::int8, a.attname::text, a.attnum
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname || '.' || c.relname = ANY($1)",
        )
        .bind(&tables)
        .fetch_all(executor)
        .await?;
        let mut identity = SourceIdentity::default();
        for (table, oid, column, number) in rows {
            let Some(planned) = plan.table(&table) else {
                continue;
            };
            let entry = identity.0.entry(table).or_insert_with(|| TableIdentity {
                oid: oid as u32,
                columns: BTreeMap::new(),
            });
            if planned.columns.contains(&column) {
                entry.columns.insert(column, number);
            }
        }
        Ok(identity)
    }

    /// What was dropped and created again between `self` (the stored rows')
    /// and `now`, one sentence each; tables and columns in only one of them
    /// are the layout's business, not this.
    pub fn recreated_since(&self, now: &SourceIdentity) -> Vec<String> {
        let mut recreated = Vec::new();
        for (table, stored) in &self.0 {
            let Some(current) = now.0.get(table) else {
                continue;
            };
            if stored.oid != current.oid {
                recreated.push(format!(
                    "table {table} was dropped and created again (OID {} then {})",
                    stored.oid, current.oid
                ));
                continue;
            }
            for (column, number) in &stored.columns {
                if let Some(current_number) = current.columns.get(column)
                    && current_number != number
                {
                    recreated.push(format!(
                        "column {column} of table {table} was dropped and added again \
                         (column number {number} then {current_number})"
                    ));
                }
            }
        }
        recreated
    }

    /// As the state store keeps it.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a map of names and numbers serializes")
    }

    /// What [`SourceIdentity::to_text`] wrote, or `None` for text it did not.
    pub fn from_text(text: &str) -> Option<SourceIdentity> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table's name, OID, and its columns' names and numbers.
    type Table<'t> = (&'t str, u32, &'t [(&'t str, i16)]);

    fn identity(tables: &[Table]) -> SourceIdentity {
        SourceIdentity(
            tables
                .iter()
                .map(|(table, oid, columns)| {
                    let columns = columns
                        .iter()
                        .map(|(column, number)| (column.to_string(), *number))
                        .collect();
                    (table.to_string(), TableIdentity { oid: *oid, columns })
                })
                .collect(),
        )
    }

    #[test]
    fn a_table_or_column_that_came_back_is_named_and_nothing_else() {
        let stored = identity(&[
            ("public.orders", 10, &[("id", 1), ("note", 3)]),
            ("public.items", 11, &[("id", 1)]),
            ("public.gone", 12, &[("id", 1)]),
        ]);
        let now = identity(&[
            ("public.orders", 10, &[("id", 1), ("note", 5), ("added", 6)]),
            ("public.items", 20, &[("id", 1)]),
            ("public.new", 21, &[("id", 1)]),
        ]);
        assert_eq!(
            stored.recreated_since(&now),
            [
                "table public.items was dropped and created again (OID 11 then 20)",
                "column note of table public.orders was dropped and added again \
                 (column number 3 then 5)",
            ]
        );
        assert!(stored.recreated_since(&stored).is_empty());
        assert_eq!(SourceIdentity::from_text(&now.to_text()), Some(now));
        assert_eq!(SourceIdentity::from_text("orders(id)"), None);
    }
}
