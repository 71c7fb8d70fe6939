//! What keeps the stored rows from fitting a plan, told in words: the start
//! after such a change takes a new snapshot, and the log says why (a column
//! whose type changed while viewkeeper was stopped, a table or column the
//! views read that the store never held).

use super::Plan;
use crate::source::pg_text::type_name;

const NUMERIC: u32 = 1700;
const VARCHAR: u32 = 1043;
const BPCHAR: u32 = 1042;

impl Plan {
    /// Each difference between the layout the store's rows were written in
    /// (`stored_layout`, from [`Plan::layout`]) and this plan's that keeps
    /// the rows from being narrowed to it; empty when they fit.
    pub fn layout_changes(&self, stored_layout: &str) -> Vec<String> {
        let Some(stored) = Plan::layout_columns(stored_layout) else {
            return vec!["the stored layout does not read (written by another version)".into()];
        };
        let mut changes = Vec::new();
        for table in self.tables.values() {
            let Some(stored_columns) = stored.get(&table.name) else {
                // Said as what the store lacks: "now" read as a changed view
                // after a view that had not run was mended (trial 27).
                changes.push(format!(
                    "the views read table {}, of which the state store holds no rows",
                    table.name
                ));
                continue;
            };
            let stored: Vec<StoredColumn> = stored_columns
                .iter()
                .filter_map(|column| StoredColumn::parse(column))
                .collect();
            let mut key_moved = false;
            for (position, name) in table.columns.iter().enumerate() {
                let (oid, modifier) = (
                    table.column_types[position],
                    table.column_type_modifiers[position],
                );
                match stored.iter().position(|c| c.name == name) {
                    None => changes.push(format!(
                        "the views read column {}.{name}, which the state store does not hold",
                        table.name
                    )),
                    Some(at) if (stored[at].oid, stored[at].modifier) != (oid, modifier) => changes
                        .push(format!(
                            "column {}.{name} changed type ({} to {})",
                            table.name,
                            render_type(stored[at].oid, stored[at].modifier),
                            render_type(oid, modifier)
                        )),
                    Some(at) => key_moved |= position < table.primary_key_len && at != position,
                }
            }
            if key_moved {
                changes.push(format!("the primary key of {} changed", table.name));
            }
        }
        changes
    }
}

/// A column as [`super::TablePlan::stored_columns`] names it:
/// `name:type OID:modifier` (the name may hold colons).
struct StoredColumn<'a> {
    name: &'a str,
    oid: u32,
    modifier: i32,
}

impl<'a> StoredColumn<'a> {
    fn parse(column: &'a str) -> Option<StoredColumn<'a>> {
        let (rest, modifier) = column.rsplit_once(':')?;
        let (name, oid) = rest.rsplit_once(':')?;
        Some(StoredColumn {
            name,
            oid: oid.parse().ok()?,
            modifier: modifier.parse().ok()?,
        })
    }
}

/// A type as SQL writes it, with its modifier where one tells types apart.
fn render_type(oid: u32, modifier: i32) -> String {
    let name = match type_name(oid) {
        "other" => format!("type {oid}"),
        name => name.to_owned(),
    };
    // PostgreSQL stores these modifiers offset by the 4 bytes of a varlena
    // header.
    match (oid, modifier - 4) {
        (NUMERIC, packed) if packed >= 0 => {
            format!("{name}({},{})", packed >> 16, packed & 0xffff)
        }
        (VARCHAR | BPCHAR, length) if length >= 0 => format!("{name}({length})"),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::render_type;
    use crate::plan::Plan;
    use crate::view::{Catalog, ColumnInfo, TableInfo, parse_view};

    const PAYMENT_CACHE: &str = "view: payment_cache
kind: cache
root: payments
key: \"payment:{id}\"
fields: { id: id, amount: amount, note: note }
";

    fn plan(amount_modifier: i32, with_note: bool) -> Plan {
        let column = |name: &str, type_oid, type_modifier| ColumnInfo {
            name: name.to_owned(),
            type_oid,
            type_modifier,
            not_null: true,
            is_enum: false,
            array_element: None,
            type_name: String::new(),
        };
        let mut columns = vec![
            column("id", 20, -1),
            column("amount", 1700, amount_modifier),
        ];
        if with_note {
            columns.push(column("note", 1043, 4 + 40));
        }
        let mut catalog = Catalog::default();
        catalog.tables.insert(
            "public.payments".to_owned(),
            TableInfo {
                columns,
                primary_key: vec!["id".to_owned()],
                unique_keys: Vec::new(),
            },
        );
        let file = if with_note {
            PAYMENT_CACHE.to_owned()
        } else {
            PAYMENT_CACHE.replace(", note: note", "")
        };
        let view = parse_view(Path::new("views/payment_cache.yaml"), &file).unwrap();
        Plan::build(&[view], &catalog).unwrap()
    }

    /// numeric(10,2), as PostgreSQL packs it.
    const NUMERIC_10_2: i32 = 4 + (10 << 16) + 2;
    const NUMERIC_12_3: i32 = 4 + (12 << 16) + 3;

    #[test]
    fn a_type_changed_and_a_column_read_anew_are_named() {
        let stored = plan(NUMERIC_10_2, false).layout();
        assert!(plan(NUMERIC_10_2, false).layout_changes(&stored).is_empty());
        assert_eq!(
            plan(NUMERIC_12_3, true).layout_changes(&stored),
            [
                "column public.payments.amount changed type (numeric(10,2) to numeric(12,3))",
                "the views read column public.payments.note, which the state store does not hold",
            ]
        );
        assert_eq!(
            plan(-1, false).layout_changes(&stored),
            ["column public.payments.amount changed type (numeric(10,2) to numeric)"]
        );
        let other_table = stored.replace("public.payments", "public.refunds");
        assert_eq!(
            plan(NUMERIC_10_2, false).layout_changes(&other_table),
            ["the views read table public.payments, of which the state store holds no rows"]
        );
    }

    /// Arrays are named, not numbered (the twenty-second trial read
    /// "type 1231 to type 1007").
    #[test]
    fn array_types_are_named() {
        assert_eq!(render_type(1231, -1), "numeric[]");
        assert_eq!(render_type(1007, -1), "int4[]");
        assert_eq!(render_type(16_500, -1), "type 16500");
    }
}
