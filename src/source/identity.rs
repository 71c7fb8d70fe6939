//! Which tables and columns the stored rows were copied from, beyond their
//! names and types: each table's OID, each stored column's number, and
//! each partition of a partitioned table with its data file.
//!
//! A table dropped and created again, or a column dropped and added again,
//! while viewkeeper is stopped comes back with the same name and type, and
//! nothing of it is in the log: the stored rows keep the old values for
//! good. Its OID or number does not come back, so a start that finds
//! another one takes a new snapshot. Partitions likewise: pgoutput says
//! nothing of a partition detached, attached or dropped, nor of one
//! truncated alone when the publication publishes through the root, as
//! viewkeeper's does; but its name leaves the table's partitions, arrives
//! among them (then [`super::unlogged_rows`] finds out whether its rows
//! came through the log), or its data file (`relfilenode`) changes. An enum's label
//! renamed (`ALTER TYPE … RENAME VALUE`) changes the text of every row that
//! holds it, without a row in the log: the labels of the stored columns'
//! enum types are recorded too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::SourceError;
use crate::plan::Plan;

/// Per table (as the plan names it): its OID, its stored columns' numbers,
/// and its partitions' data files.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity(BTreeMap<String, TableIdentity>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TableIdentity {
    oid: u32,
    columns: BTreeMap<String, i16>,
    /// Of a partitioned table: each leaf partition's name (as `regclass`
    /// writes it) and data file.
    partitions: BTreeMap<String, u32>,
    /// The labels of each stored column of an enum type (or a domain over
    /// one, or an array of one). Absent from stores written before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, BTreeSet<String>>,
    /// Of a partitioned table: the transaction that attached each member
    /// of its partition tree (the `xmin` of its `pg_inherits` row). A
    /// partition detached, changed and attached again keeps its name and
    /// data file, but not this. Absent from stores written before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    attachments: BTreeMap<String, String>,
    /// Of a table that is not partitioned: its data file. A rewrite
    /// (`VACUUM FULL`, `CLUSTER`, `ALTER COLUMN … TYPE … USING`) gives it
    /// another, and only the last changes rows, without a row in the log.
    /// Absent from stores written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<u32>,
}

impl SourceIdentity {
    /// The identity of the tables and stored columns of `plan`, as the
    /// database (or the transaction's snapshot) sees them now.
    pub async fn load(
        conn: &mut sqlx::PgConnection,
        plan: &Plan,
    ) -> Result<SourceIdentity, SourceError> {
        let tables: Vec<String> = plan.tables.keys().cloned().collect();
        let rows: Vec<(String, i64, i64, String, i16)> = sqlx::query_as(
            "SELECT n.nspname || '.' || c.relname, c.oid::int8, c.relfilenode::int8,
                    a.attname::text, a.attnum
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname || '.' || c.relname = ANY($1)",
        )
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await?;
        let mut identity = SourceIdentity::default();
        for (table, oid, file, column, number) in rows {
            let Some(planned) = plan.table(&table) else {
                continue;
            };
            let entry = identity.0.entry(table).or_insert_with(|| TableIdentity {
                oid: oid as u32,
                columns: BTreeMap::new(),
                partitions: BTreeMap::new(),
                labels: BTreeMap::new(),
                attachments: BTreeMap::new(),
                // A partitioned table has no data file of its own (0).
                file: (file != 0).then_some(file as u32),
            });
            if planned.columns.contains(&column) {
                entry.columns.insert(column, number);
            }
        }
        let roots: Vec<i64> = identity.0.values().map(|t| i64::from(t.oid)).collect();
        let partitions: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT r.oid, p.relid::regclass::text, c.relfilenode::int8
             FROM unnest($1::int8[]) AS r(oid)
             CROSS JOIN LATERAL pg_partition_tree(r.oid::oid::regclass) AS p
             JOIN pg_class c ON c.oid = p.relid
             WHERE p.isleaf AND p.level > 0",
        )
        .bind(&roots)
        .fetch_all(&mut *conn)
        .await?;
        for (root, partition, file) in partitions {
            if let Some(table) = identity.0.values_mut().find(|t| i64::from(t.oid) == root) {
                table.partitions.insert(partition, file as u32);
            }
        }
        let attachments: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT r.oid, p.relid::regclass::text, i.xmin::text
             FROM unnest($1::int8[]) AS r(oid)
             CROSS JOIN LATERAL pg_partition_tree(r.oid::oid::regclass) AS p
             JOIN pg_inherits i ON i.inhrelid = p.relid AND i.inhparent = p.parentrelid
             WHERE p.level > 0",
        )
        .bind(&roots)
        .fetch_all(&mut *conn)
        .await?;
        for (root, member, attached_by) in attachments {
            if let Some(table) = identity.0.values_mut().find(|t| i64::from(t.oid) == root) {
                table.attachments.insert(member, attached_by);
            }
        }
        let labels: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT n.nspname || '.' || c.relname, a.attname::text, e.enumlabel::text
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             JOIN pg_type t ON t.oid = a.atttypid
             JOIN pg_enum e ON e.enumtypid = CASE t.typtype WHEN 'e' THEN t.oid
                                                            WHEN 'd' THEN t.typbasetype
                                                            ELSE t.typelem END
             WHERE n.nspname || '.' || c.relname = ANY($1)",
        )
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await?;
        for (table, column, label) in labels {
            if let Some(entry) = identity.0.get_mut(&table)
                && entry.columns.contains_key(&column)
            {
                entry.labels.entry(column).or_default().insert(label);
            }
        }
        Ok(identity)
    }

    /// Partitions of the tables of both that only `now` has, with their
    /// table: whether their rows are in the log is for
    /// [`super::unlogged_rows`] to find out.
    pub fn partitions_added<'n>(&self, now: &'n SourceIdentity) -> Vec<(&'n str, &'n str)> {
        let mut added = Vec::new();
        for (table, current) in &now.0 {
            if let Some(stored) = self.0.get(table)
                && stored.oid == current.oid
            {
                for partition in current.partitions.keys() {
                    if !stored.partitions.contains_key(partition) {
                        added.push((table.as_str(), partition.as_str()));
                    }
                }
            }
        }
        added
    }

    /// The data files `table` had: its own, or its partitions' (by the
    /// name `regclass` writes), with the relation each belongs to.
    pub fn files_of(&self, table: &str) -> Vec<(String, u32)> {
        let Some(identity) = self.0.get(table) else {
            return Vec::new();
        };
        match identity.file {
            Some(file) => vec![(table.to_owned(), file)],
            None => identity
                .partitions
                .iter()
                .map(|(partition, file)| (partition.clone(), *file))
                .collect(),
        }
    }

    /// The OID `table` had.
    pub fn oid_of(&self, table: &str) -> Option<u32> {
        self.0.get(table).map(|identity| identity.oid)
    }

    /// Tables, not partitioned, of the same OID in both whose data file
    /// changed, other than by a `TRUNCATE` (the log holds those of
    /// `truncated`): rewritten, and whether their rows changed only
    /// comparing them with the stored ones tells.
    pub fn tables_rewritten<'n>(
        &self,
        now: &'n SourceIdentity,
        truncated: &BTreeSet<String>,
    ) -> Vec<&'n str> {
        now.0
            .iter()
            .filter(|(table, current)| {
                self.0.get(*table).is_some_and(|stored| {
                    stored.oid == current.oid
                        && stored.file.is_some()
                        && stored.file != current.file
                        && !truncated.contains(*table)
                })
            })
            .map(|(table, _)| table.as_str())
            .collect()
    }

    /// What changed between `self` (the stored rows') and `now` without a
    /// word in the log, one sentence each: tables and columns created
    /// again, enum labels renamed, partitions detached or truncated. The
    /// partitions of a table in `truncated` may have new data files: the
    /// log holds that `TRUNCATE`. Partitions added are
    /// [`SourceIdentity::partitions_added`]; tables and columns in only one
    /// of the two are the layout's business, not this.
    pub fn changed_since(&self, now: &SourceIdentity, truncated: &BTreeSet<String>) -> Vec<String> {
        let mut changed = Vec::new();
        for (table, stored) in &self.0 {
            let Some(current) = now.0.get(table) else {
                continue;
            };
            if stored.oid != current.oid {
                changed.push(format!(
                    "table {table} was dropped and created again (OID {} then {})",
                    stored.oid, current.oid
                ));
                continue;
            }
            for (column, number) in &stored.columns {
                if let Some(current_number) = current.columns.get(column)
                    && current_number != number
                {
                    changed.push(format!(
                        "column {column} of table {table} was dropped and added again \
                         (column number {number} then {current_number})"
                    ));
                }
            }
            for (column, labels) in &stored.labels {
                let Some(current_labels) = current.labels.get(column) else {
                    continue; // no longer an enum: the layout's business
                };
                let gone: Vec<&str> = labels
                    .difference(current_labels)
                    .map(String::as_str)
                    .collect();
                if !gone.is_empty() {
                    changed.push(format!(
                        "the enum of column {column} of table {table} no longer has the \
                         label(s) {} (renamed, and the rows that held them with them)",
                        gone.join(", ")
                    ));
                }
            }
            for (member, attached_by) in &stored.attachments {
                if let Some(now_attached_by) = current.attachments.get(member)
                    && now_attached_by != attached_by
                {
                    changed.push(format!(
                        "partition {member} of table {table} was detached and attached again \
                         (its rows may have changed meanwhile)"
                    ));
                }
            }
            for (partition, file) in &stored.partitions {
                match current.partitions.get(partition) {
                    None => changed.push(format!(
                        "partition {partition} of table {table} was detached or dropped"
                    )),
                    Some(current_file) if current_file != file && !truncated.contains(table) => {
                        changed.push(format!(
                            "partition {partition} of table {table} was truncated or rewritten \
                             (data file {file} then {current_file})"
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        changed
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

    /// A table's name, OID, its columns' names and numbers, and its
    /// partitions' names and data files.
    type Table<'t> = (&'t str, u32, &'t [(&'t str, i16)], &'t [(&'t str, u32)]);

    fn identity(tables: &[Table]) -> SourceIdentity {
        SourceIdentity(
            tables
                .iter()
                .map(|(name, oid, columns, partitions)| {
                    let table = TableIdentity {
                        oid: *oid,
                        columns: columns.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
                        partitions: partitions
                            .iter()
                            .map(|(p, f)| (p.to_string(), *f))
                            .collect(),
                        labels: BTreeMap::new(),
                        attachments: BTreeMap::new(),
                        file: None,
                    };
                    (name.to_string(), table)
                })
                .collect(),
        )
    }

    #[test]
    fn what_came_back_or_went_without_a_word_is_named_and_nothing_else() {
        let stored = identity(&[
            ("public.orders", 10, &[("id", 1), ("note", 3)], &[]),
            ("public.items", 11, &[("id", 1)], &[]),
            ("public.gone", 12, &[("id", 1)], &[]),
            (
                "public.events",
                13,
                &[("id", 1)],
                &[
                    ("events_2025", 100),
                    ("events_2026", 101),
                    ("events_old", 102),
                ],
            ),
        ]);
        let now = identity(&[
            (
                "public.orders",
                10,
                &[("id", 1), ("note", 5), ("added", 6)],
                &[],
            ),
            ("public.items", 20, &[("id", 1)], &[]),
            ("public.new", 21, &[("id", 1)], &[]),
            (
                "public.events",
                13,
                &[("id", 1)],
                &[
                    ("events_2025", 100),
                    ("events_2026", 201),
                    ("events_2027", 103),
                ],
            ),
        ]);
        let none = BTreeSet::new();
        assert_eq!(
            stored.changed_since(&now, &none),
            [
                "partition events_2026 of table public.events was truncated or rewritten \
                 (data file 101 then 201)",
                "partition events_old of table public.events was detached or dropped",
                "table public.items was dropped and created again (OID 11 then 20)",
                "column note of table public.orders was dropped and added again \
                 (column number 3 then 5)",
            ]
        );
        assert_eq!(
            stored.partitions_added(&now),
            [("public.events", "events_2027")]
        );
        assert!(stored.changed_since(&stored, &none).is_empty());
        // Its TRUNCATE in the log explains a partition's new data file.
        let truncated = BTreeSet::from(["public.events".to_string()]);
        assert_eq!(stored.changed_since(&now, &truncated).len(), 3);
        assert!(stored.partitions_added(&stored).is_empty());
        assert_eq!(SourceIdentity::from_text(&now.to_text()), Some(now));
        assert_eq!(SourceIdentity::from_text("orders(id)"), None);
    }

    /// A partition detached and attached again (changed meanwhile, out of
    /// the log) keeps its name and data file, but its attachment is
    /// another transaction's (trial 11: never noticed). A store's record
    /// from before attachments were recorded reads as none.
    #[test]
    fn a_partition_attached_again_is_named() {
        let attached_by = |xmin: &str| {
            let mut identity = identity(&[("public.events", 13, &[("id", 1)], &[("e1", 100)])]);
            let table = identity.0.get_mut("public.events").expect("events");
            table.attachments.insert("e1".to_owned(), xmin.to_owned());
            identity
        };
        let none = BTreeSet::new();
        assert!(
            attached_by("700")
                .changed_since(&attached_by("700"), &none)
                .is_empty()
        );
        assert_eq!(
            attached_by("700").changed_since(&attached_by("912"), &none),
            [
                "partition e1 of table public.events was detached and attached again (its rows \
              may have changed meanwhile)"
            ]
        );
        let before = identity(&[("public.events", 13, &[("id", 1)], &[("e1", 100)])]);
        assert!(before.changed_since(&attached_by("912"), &none).is_empty());
    }

    /// A table's new data file is a rewrite unless the log holds its
    /// `TRUNCATE`; a store's record from before files were recorded
    /// reads as none, and a table dropped and created again is not one.
    #[test]
    fn a_table_with_another_data_file_was_rewritten() {
        let with_file = |oid: u32, file: Option<u32>| {
            let mut identity = identity(&[("public.skills", oid, &[("id", 1)], &[])]);
            identity.0.get_mut("public.skills").expect("skills").file = file;
            identity
        };
        let none = BTreeSet::new();
        let stored = with_file(10, Some(500));
        assert!(stored.tables_rewritten(&stored, &none).is_empty());
        assert_eq!(
            stored.tables_rewritten(&with_file(10, Some(501)), &none),
            ["public.skills"]
        );
        let truncated = BTreeSet::from(["public.skills".to_string()]);
        assert!(
            stored
                .tables_rewritten(&with_file(10, Some(501)), &truncated)
                .is_empty()
        );
        assert!(
            with_file(10, None)
                .tables_rewritten(&with_file(10, Some(501)), &none)
                .is_empty()
        );
        assert!(
            stored
                .tables_rewritten(&with_file(11, Some(501)), &none)
                .is_empty()
        );
        let recorded = with_file(10, Some(501)).to_text();
        assert_eq!(
            SourceIdentity::from_text(&recorded),
            Some(with_file(10, Some(501)))
        );
    }

    /// A label renamed is named; a label added is not (no row held it).
    /// A store's record from before labels were recorded reads as none.
    #[test]
    fn an_enum_label_renamed_is_named_and_one_added_is_not() {
        let with_labels = |labels: &[&str]| {
            let mut identity = identity(&[("public.orders", 10, &[("id", 1), ("status", 2)], &[])]);
            let table = identity.0.get_mut("public.orders").expect("orders");
            let labels = labels.iter().map(|l| l.to_string()).collect();
            table.labels.insert("status".to_owned(), labels);
            identity
        };
        let stored = with_labels(&["paid", "exception"]);
        let none = BTreeSet::new();
        assert!(
            stored
                .changed_since(&with_labels(&["paid", "exception", "new"]), &none)
                .is_empty()
        );
        assert_eq!(
            stored.changed_since(&with_labels(&["paid", "failed"]), &none),
            [
                "the enum of column status of table public.orders no longer has the label(s) \
                 exception (renamed, and the rows that held them with them)"
            ]
        );
        let before = identity(&[("public.orders", 10, &[("id", 1), ("status", 2)], &[])]);
        assert!(!before.to_text().contains("labels"));
        assert!(before.changed_since(&stored, &none).is_empty());
    }
}
