//! What the database says about its tables (columns, types, primary keys),
//! and the publication and slot viewkeeper reads through.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool, Row};

use super::SourceError;
use super::connection::quote_qualified;
use crate::change::Lsn;
use crate::expr::{CaseMapping, TimeZone};
use crate::view::{Catalog, ColumnInfo, TableInfo};

/// The base type of every domain type (`CREATE DOMAIN money6 AS
/// numeric(20,6)`), through domains over domains: its values are the base
/// type's, in order, JSON and arithmetic. The catalog's columns and the
/// stream's relation descriptions name the domain; both are read as its base.
pub async fn load_domain_bases(pool: &PgPool) -> Result<HashMap<u32, u32>, SourceError> {
    load_type_map(
        pool,
        "WITH RECURSIVE bases(domain_oid, base_oid) AS (
             SELECT oid, typbasetype FROM pg_type WHERE typtype = 'd'
           UNION ALL
             SELECT b.domain_oid, t.typbasetype
             FROM bases b JOIN pg_type t ON t.oid = b.base_oid AND t.typtype = 'd'
         )
         SELECT b.domain_oid::int8, b.base_oid::int8 FROM bases b
         JOIN pg_type t ON t.oid = b.base_oid AND t.typtype <> 'd'",
    )
    .await
}

/// A map from one type OID to another, as `query`'s two `int8` columns
/// give it.
async fn load_type_map(
    pool: &PgPool,
    query: &'static str,
) -> Result<HashMap<u32, u32>, SourceError> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(query).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(from, to)| (from as u32, to as u32))
        .collect())
}

/// The generated columns (`GENERATED ALWAYS AS (…) STORED`) of every table,
/// by table: PostgreSQL 15's logical replication does not send them, so no
/// relation description of the stream has them.
pub async fn load_generated_columns(
    pool: &PgPool,
) -> Result<HashMap<String, HashSet<String>>, SourceError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname, a.attname::text
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE a.attgenerated <> '' AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .fetch_all(pool)
    .await?;
    let mut generated: HashMap<String, HashSet<String>> = HashMap::new();
    for (table, column) in rows {
        generated.entry(table).or_default().insert(column);
    }
    Ok(generated)
}

/// How the database maps case (`lower`, `upper`): by its `LC_CTYPE` and
/// locale provider. `to_jsonb` reads `datlocprovider` without failing
/// before PostgreSQL 15, which has none (libc).
async fn load_case_mapping(pool: &PgPool) -> Result<CaseMapping, SourceError> {
    let (ctype, provider): (String, Option<String>) = sqlx::query_as(
        "SELECT datctype::text, to_jsonb(d) ->> 'datlocprovider'
         FROM pg_database d WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    Ok(CaseMapping::of_database(&ctype, provider.as_deref()))
}

/// The zone a `timestamptz` is computed in: the database's `TimeZone`
/// ([`database_time_zone`]); UTC where none is set, or where it names no
/// zone viewkeeper knows (`check` and the start notes say so).
pub async fn load_time_zone(pool: &PgPool) -> Result<TimeZone, SourceError> {
    Ok(database_time_zone(pool)
        .await?
        .and_then(|name| TimeZone::named(&name))
        .unwrap_or_else(TimeZone::utc))
}

/// Columns, primary and unique keys of every ordinary or partitioned table outside
/// the system schemas; a column of a domain type has the domain's base type.
pub async fn load_catalog(pool: &PgPool) -> Result<Catalog, SourceError> {
    load_case_mapping(pool).await?.set_current();
    load_time_zone(pool).await?.set_current();
    let domain_bases = load_domain_bases(pool).await?;
    let enum_labels = load_enum_labels(pool).await?;
    let array_elements = load_array_elements(pool).await?;
    let rows = sqlx::query(
        "SELECT n.nspname || '.' || c.relname AS table_name, a.attname::text AS column_name,
                a.atttypid::int8 AS type_oid, a.atttypmod AS type_modifier,
                a.attnotnull AS not_null, format_type(a.atttypid, a.atttypmod) AS type_name,
                array_position(i.indkey::int2[], a.attnum) AS key_position
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
         WHERE c.relkind IN ('r', 'p')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%'
         ORDER BY 1, a.attnum",
    )
    .fetch_all(pool)
    .await?;
    let mut tables: HashMap<String, TableInfo> = HashMap::new();
    let mut keys: HashMap<String, Vec<(i32, String)>> = HashMap::new();
    for row in rows {
        let table: String = row.try_get("table_name")?;
        let column: String = row.try_get("column_name")?;
        let type_oid: i64 = row.try_get("type_oid")?;
        let type_modifier: i32 = row.try_get("type_modifier")?;
        let not_null: bool = row.try_get("not_null")?;
        let type_name: String = row.try_get("type_name")?;
        if let Some(position) = row.try_get::<Option<i32>, _>("key_position")? {
            keys.entry(table.clone())
                .or_default()
                .push((position, column.clone()));
        }
        let type_oid = type_oid as u32;
        let type_oid = domain_bases.get(&type_oid).copied().unwrap_or(type_oid);
        tables.entry(table).or_default().columns.push(ColumnInfo {
            name: column,
            type_oid,
            type_modifier,
            not_null,
            is_enum: enum_labels.contains_key(&type_oid),
            array_element: array_elements
                .get(&type_oid)
                .map(|element| domain_bases.get(element).copied().unwrap_or(*element)),
            type_name,
        });
    }
    for (table, mut key) in keys {
        key.sort();
        if let Some(info) = tables.get_mut(&table) {
            info.primary_key = key.into_iter().map(|(_, c)| c).collect();
        }
    }
    for (table, unique_keys) in load_unique_keys(pool).await? {
        if let Some(info) = tables.get_mut(&table) {
            info.unique_keys = unique_keys;
        }
    }
    Ok(Catalog {
        tables,
        generated_columns: load_generated_columns(pool).await?,
        enum_labels,
    })
}

/// The element type of every array type, by the array's type OID.
async fn load_array_elements(pool: &PgPool) -> Result<HashMap<u32, u32>, SourceError> {
    load_type_map(
        pool,
        "SELECT oid::int8, typelem::int8 FROM pg_type WHERE typcategory = 'A' AND typelem <> 0",
    )
    .await
}

/// The labels of every enum type, by type OID, in their order.
pub async fn load_enum_labels(pool: &PgPool) -> Result<HashMap<u32, Vec<String>>, SourceError> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT enumtypid::int8, enumlabel::text FROM pg_enum ORDER BY enumtypid, enumsortorder",
    )
    .fetch_all(pool)
    .await?;
    let mut labels: HashMap<u32, Vec<String>> = HashMap::new();
    for (type_oid, label) in rows {
        labels.entry(type_oid as u32).or_default().push(label);
    }
    Ok(labels)
}

/// The `TimeZone` the database gives its own sessions, where it sets
/// one: for this database and role, this role, this database
/// (`ALTER … SET TimeZone`), or the server's configuration file (read
/// by superusers only). `None` when none is found. (A session's own
/// setting says nothing: SQLx starts every session in UTC.)
pub async fn database_time_zone(pool: &PgPool) -> Result<Option<String>, SourceError> {
    let set: Option<String> = sqlx::query_scalar(
        "SELECT split_part(c, '=', 2)
         FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS c
         WHERE lower(split_part(c, '=', 1)) = 'timezone'
           AND s.setdatabase IN (0, (SELECT oid FROM pg_database
                                     WHERE datname = current_database()))
           AND s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = current_user))
         ORDER BY s.setrole <> 0 DESC, s.setdatabase <> 0 DESC
         LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    if set.is_some() {
        return Ok(set);
    }
    let configured = sqlx::query_scalar(
        "SELECT setting FROM pg_file_settings
         WHERE lower(name) = 'timezone' AND applied ORDER BY seqno DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await;
    Ok(configured.ok().flatten())
}

/// Refuses a database whose settings allow no logical replication at all,
/// each with the fix: otherwise the stream would retry until someone read
/// the server's error in the log. (The `REPLICATION` attribute is not
/// asked: managed services grant replication through a role instead.)
pub async fn check_replication_settings(pool: &PgPool) -> Result<(), SourceError> {
    let (wal_level, slots, senders): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('wal_level'), current_setting('max_replication_slots'),
                current_setting('max_wal_senders')",
    )
    .fetch_one(pool)
    .await?;
    let mut wrong = Vec::new();
    if wal_level != "logical" {
        wrong.push(format!(
            "wal_level is {wal_level}, and logical decoding needs logical \
             (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)"
        ));
    }
    for (setting, value) in [
        ("max_replication_slots", slots),
        ("max_wal_senders", senders),
    ] {
        if value == "0" {
            wrong.push(format!(
                "{setting} is 0, and viewkeeper needs one (ALTER SYSTEM SET {setting} = 10, \
                 then restart PostgreSQL)"
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(SourceError::CannotReplicate(wrong.join("; ")))
    }
}

/// A table, or a member of its partition tree, whose changes cannot all be
/// applied ([`unusable_tables`]).
pub struct UnusableTable {
    /// As the plan names it.
    pub table: String,
    /// A partition of it, not the table itself.
    pub partition: bool,
    pub message: String,
}

/// Tables whose changes cannot all be applied: a replica identity that
/// cannot identify a row by its primary key (`NOTHING`, or `USING INDEX`),
/// whose deletes and key changes could not be applied, or an unlogged
/// table, whose changes are not in the log at all; the same of any member
/// of a partitioned table's tree, whose changes arrive as the table's
/// (trial 11: a partition's deletes were dropped, an unlogged partition's
/// rows never came). Such views are refused at start (and by `check`);
/// while streaming, a partition found so stops the stream
/// ([`SourceError::UnusablePartition`]). Each with the table as the plan
/// names it, whether it is a partition's, and what is wrong with the fix.
pub async fn unusable_tables(
    pool: &PgPool,
    tables: &BTreeSet<String>,
) -> Result<Vec<UnusableTable>, SourceError> {
    let names: Vec<String> = tables.iter().cloned().collect();
    let rows: Vec<(String, String, bool, String, String)> = sqlx::query_as(
        "WITH named AS (
             SELECT c.oid, n.nspname || '.' || c.relname AS name
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname || '.' || c.relname = ANY($1)),
         members AS (
             SELECT name, oid AS relid, false AS partition FROM named
             UNION ALL
             SELECT named.name, p.relid, true
             FROM named CROSS JOIN LATERAL pg_partition_tree(named.oid::regclass) AS p
             WHERE p.level > 0)
         SELECT m.name, m.relid::regclass::text, m.partition, c.relreplident::text,
                c.relpersistence::text
         FROM members m JOIN pg_class c ON c.oid = m.relid
         WHERE c.relreplident IN ('n', 'i') OR c.relpersistence = 'u'
         ORDER BY 1, 2",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(table, member, partition, identity, persistence)| {
            let (what, member) = if partition {
                (format!("partition {member} of table {table}"), member)
            } else {
                (format!("table {table}"), table.clone())
            };
            let message = if persistence == "u" {
                format!(
                    "{what} is UNLOGGED: its changes are not in the change log, so the views \
                     would never see them; ALTER TABLE {member} SET LOGGED"
                )
            } else {
                let identity = if identity == "n" {
                    "NOTHING"
                } else {
                    "USING INDEX"
                };
                format!(
                    "{what} has REPLICA IDENTITY {identity}; viewkeeper needs DEFAULT (the \
                     primary key) or FULL: ALTER TABLE {member} REPLICA IDENTITY DEFAULT"
                )
            };
            UnusableTable {
                table,
                partition,
                message,
            }
        })
        .collect())
}

/// The unique keys of every table: the columns of every unique index
/// without an expression or a predicate, the primary key's included.
async fn load_unique_keys(
    pool: &PgPool,
) -> Result<HashMap<String, Vec<BTreeSet<String>>>, SourceError> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname,
                array_agg(a.attname::text ORDER BY a.attnum)
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey::int2[])
         WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%'
         GROUP BY 1, i.indexrelid",
    )
    .fetch_all(pool)
    .await?;
    let mut keys: HashMap<String, Vec<BTreeSet<String>>> = HashMap::new();
    for (table, columns) in rows {
        keys.entry(table)
            .or_default()
            .push(columns.into_iter().collect());
    }
    Ok(keys)
}

/// Creates the publication for exactly `tables`, or changes it to them.
/// Changes to a partition are published as changes to its partitioned
/// table, which is what views name. A publication that is already so is
/// left as it is, so that one created by another role serves.
pub async fn ensure_publication(
    pool: &PgPool,
    publication: &str,
    tables: &BTreeSet<String>,
) -> Result<(), SourceError> {
    let list = tables
        .iter()
        .map(|t| quote_qualified(t))
        .collect::<Vec<_>>()
        .join(", ");
    let name = quote_qualified(publication);
    let via_root: Option<bool> =
        sqlx::query_scalar("SELECT pubviaroot FROM pg_publication WHERE pubname = $1")
            .bind(publication)
            .fetch_optional(pool)
            .await?;
    let Some(via_root) = via_root else {
        let statement = format!(
            "CREATE PUBLICATION {name} FOR TABLE {list} WITH (publish_via_partition_root = true)"
        );
        return run_publication_statement(pool, "creating", publication, statement).await;
    };
    if published_tables(pool, publication).await? != *tables {
        let statement = format!("ALTER PUBLICATION {name} SET TABLE {list}");
        run_publication_statement(pool, "changing", publication, statement).await?;
    }
    if !via_root {
        // A publication created by an older version or by hand.
        let statement = format!("ALTER PUBLICATION {name} SET (publish_via_partition_root = true)");
        run_publication_statement(pool, "changing", publication, statement).await?;
    }
    Ok(())
}

async fn run_publication_statement(
    pool: &PgPool,
    action: &'static str,
    publication: &str,
    statement: String,
) -> Result<(), SourceError> {
    // Identifiers are quoted by `quote_qualified`.
    match sqlx::query(AssertSqlSafe(statement.clone()))
        .execute(pool)
        .await
    {
        Ok(_) => Ok(()),
        Err(source) => Err(SourceError::Publication {
            action,
            publication: publication.to_owned(),
            statement,
            source,
        }),
    }
}

/// Refuses a role that could not create or change `publication` to
/// publish `tables` (through their roots) where it would have to: `run`
/// would fail there. Nothing is asked of a superuser, nor where the
/// publication already publishes exactly them.
pub async fn check_publication_rights(
    pool: &PgPool,
    publication: &str,
    tables: &BTreeSet<String>,
) -> Result<(), SourceError> {
    let (role, superuser, may_create, database): (String, bool, bool, String) = sqlx::query_as(
        "SELECT current_user::text, rolsuper,
                has_database_privilege(current_database(), 'CREATE'), current_database()::text
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    if superuser || tables.is_empty() {
        return Ok(());
    }
    let existing: Option<(bool, bool)> = sqlx::query_as(
        "SELECT pubviaroot, pg_has_role(pubowner, 'USAGE') FROM pg_publication WHERE pubname = $1",
    )
    .bind(publication)
    .fetch_optional(pool)
    .await?;
    let mut wrong = Vec::new();
    match existing {
        Some((true, _)) if published_tables(pool, publication).await? == *tables => {
            return Ok(());
        }
        Some((_, false)) => wrong.push(format!(
            "publication {publication} belongs to another role, and must change to publish the \
             views' tables"
        )),
        Some((_, true)) => {}
        None if !may_create => wrong.push(format!(
            "role {role} may not create publication {publication} (GRANT CREATE ON DATABASE \
             {database} TO {role})"
        )),
        None => {}
    }
    let listed: Vec<String> = tables.iter().cloned().collect();
    let not_owned: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname || '.' || c.relname = ANY($1) AND NOT pg_has_role(c.relowner, 'USAGE')
         ORDER BY 1",
    )
    .bind(&listed)
    .fetch_all(pool)
    .await?;
    if !not_owned.is_empty() {
        wrong.push(format!(
            "a publication names only tables its role owns, and role {role} does not own {}",
            not_owned.join(", ")
        ));
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(SourceError::PublicationRights(format!(
        "{}; or a role that may creates it, as `run` would: CREATE PUBLICATION {} FOR TABLE {} \
         WITH (publish_via_partition_root = true)",
        wrong.join("; "),
        quote_qualified(publication),
        listed
            .iter()
            .map(|t| quote_qualified(t))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Drops the publications of `tail`s that ended without dropping theirs
/// (killed): `<publication>_tail_<pid>` whose temporary slot
/// `<slot>_tail_<pid>`, which lives only as long as its session, is gone.
pub async fn drop_publications_of_ended_tails(
    pool: &PgPool,
    publication: &str,
    slot: &str,
) -> Result<(), SourceError> {
    let ended: Vec<String> = sqlx::query_scalar(
        "SELECT p.pubname::text FROM pg_publication p
         WHERE starts_with(p.pubname, $1 || '_tail_')
           AND substr(p.pubname, length($1) + 7) ~ '^[0-9]+$'
           AND NOT EXISTS (SELECT 1 FROM pg_replication_slots s
                           WHERE s.slot_name = $2 || '_tail_' || substr(p.pubname, length($1) + 7))",
    )
    .bind(publication)
    .bind(slot)
    .fetch_all(pool)
    .await?;
    for publication in ended {
        drop_publication(pool, &publication).await?;
    }
    Ok(())
}

/// Drops `publication` if it exists.
pub async fn drop_publication(pool: &PgPool, publication: &str) -> Result<(), SourceError> {
    // The name is quoted by `quote_qualified`.
    sqlx::query(AssertSqlSafe(format!(
        "DROP PUBLICATION IF EXISTS {}",
        quote_qualified(publication)
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// The tables `publication` publishes, as the plan names them.
pub async fn published_tables(
    pool: &PgPool,
    publication: &str,
) -> Result<BTreeSet<String>, SourceError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
    )
    .bind(publication)
    .fetch_all(pool)
    .await?;
    Ok(tables.into_iter().collect())
}

/// The slot's `confirmed_flush_lsn`, or `None` when the slot does not exist.
pub async fn slot_confirmed_lsn(pool: &PgPool, slot: &str) -> Result<Option<Lsn>, SourceError> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(lsn,)| lsn.as_deref().and_then(Lsn::parse).unwrap_or_default()))
}

/// A replication slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// The session streaming from it: PID, `application_name`, client.
    pub holder: Option<(i32, String, String)>,
    /// WAL the primary keeps for it (from its `restart_lsn` to now).
    pub retained_wal_bytes: Option<i64>,
}

/// The slot's state, or `None` when it does not exist.
pub async fn slot_state(pool: &PgPool, slot: &str) -> Result<Option<SlotState>, SourceError> {
    let row: Option<(Option<i32>, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT s.active_pid, coalesce(a.application_name, ''),
                coalesce(host(a.client_addr), 'a local socket'),
                pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint
         FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
         WHERE s.slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(pid, application, client, retained)| SlotState {
        holder: pid.map(|pid| (pid, application, client)),
        retained_wal_bytes: retained,
    }))
}

/// Whether `publication` exists.
pub async fn publication_exists(pool: &PgPool, publication: &str) -> Result<bool, SourceError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
            .bind(publication)
            .fetch_one(pool)
            .await?,
    )
}

/// Refuses a slot held by a session of another application than
/// `own_application`: another viewkeeper instance streams from it, and
/// neither the slot nor the publication it reads may be changed under it.
pub async fn refuse_slot_of_another(
    pool: &PgPool,
    slot: &str,
    own_application: &str,
) -> Result<(), SourceError> {
    let holder: Option<(i32, String, String)> = sqlx::query_as(
        "SELECT a.pid, coalesce(a.application_name, ''),
                coalesce(host(a.client_addr), 'a local socket')
         FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
         WHERE s.slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    if let Some((pid, application, client)) = holder
        && application != own_application
    {
        return Err(SourceError::Slot {
            slot: slot.to_string(),
            reason: format!(
                "in use by another session (application {application:?}, PID {pid}, from \
                 {client}), most likely another viewkeeper with another data directory: two \
                 instances cannot share a slot; give this one its own (--slot) or stop the \
                 other. Retrying meanwhile"
            ),
        });
    }
    Ok(())
}

/// Drops the slot if it exists, ending a session of `own_application`
/// that still holds it (a killed predecessor's walsender can linger until
/// its socket times out). A slot held by any other session is refused:
/// another viewkeeper instance streams from it.
pub async fn drop_slot(
    pool: &PgPool,
    slot: &str,
    own_application: &str,
) -> Result<(), SourceError> {
    refuse_slot_of_another(pool, slot, own_application).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        sqlx::query(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
             WHERE slot_name = $1 AND active_pid IS NOT NULL",
        )
        .bind(slot)
        .execute(pool)
        .await?;
        let dropped = sqlx::query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
             WHERE slot_name = $1 AND NOT active",
        )
        .bind(slot)
        .execute(pool)
        .await;
        let remaining = slot_confirmed_lsn(pool, slot).await?;
        match (dropped, remaining) {
            (_, None) => return Ok(()),
            (Err(e), Some(_)) if tokio::time::Instant::now() > deadline => {
                return Err(SourceError::Slot {
                    slot: slot.to_string(),
                    reason: format!("cannot drop: {e}"),
                });
            }
            _ if tokio::time::Instant::now() > deadline => {
                return Err(SourceError::Slot {
                    slot: slot.to_string(),
                    reason: "still in use by another session".into(),
                });
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
