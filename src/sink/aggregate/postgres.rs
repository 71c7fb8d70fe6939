//! Aggregate tables in PostgreSQL.
//!
//! Values travel as text and are cast to the column types in SQL, so numerics
//! and timestamps arrive exactly as the engine computed them. A batch is one
//! transaction of statements over arrays (`unnest`): upsert the changed
//! groups, delete the emptied ones (a statement for each shape of key, see
//! [`delete_groups`]), move the checkpoint.
//!
//! A rewrite (new table, new definition, foreign checkpoint) fills a shadow
//! table and renames it into place in the same transaction as the
//! checkpoint: readers see the old table until the commit, then the new one.
//! The shadow table is created with the marker as its comment, which the
//! rename keeps.
//!
//! The group columns are the table's PRIMARY KEY when none of them can be
//! NULL, and otherwise a `UNIQUE NULLS NOT DISTINCT` constraint: SQL's
//! GROUP BY has a NULL group (an item whose product is gone), which a primary
//! key cannot hold. Upserts name the same columns either way.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Postgres, Transaction};

use super::{
    AggregateSinkError, CHECKPOINT_TABLE, Checkpoint, GroupBatch, RowChunk, RowChunks, SqlTarget,
    TABLE_MARKER, TableOwner, TargetTable,
};
use crate::change::Value;
use crate::expr::ValueType;
use crate::source::connection::{quote_ident, quote_qualified, redact_url};

pub struct PgTarget {
    pool: PgPool,
    options: PgConnectOptions,
    /// The session whose advisory locks claim this process's tables.
    claims: tokio::sync::Mutex<Claims>,
}

/// The tables claimed ([`SqlTarget::claim`]), and the session that holds
/// their locks: a session of its own, as a pooled one may be closed.
#[derive(Default)]
struct Claims {
    session: Option<PgConnection>,
    tables: BTreeSet<String>,
}

/// The advisory lock of one aggregate table, by its qualified name, in the
/// target database: the 64-bit key `pg_try_advisory_lock` takes.
const LOCK_KEY: &str = "hashtextextended('viewkeeper aggregate table ' || $1, 0)";

/// What a claimed table's holder is, to name it in the error: its session's
/// `application_name` tells a viewkeeper's state store.
fn holder_query() -> String {
    format!(
        "SELECT a.pid, coalesce(a.application_name, ''), \
                coalesce(host(a.client_addr), 'a local socket') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.classid = (({LOCK_KEY} >> 32) & 4294967295)::oid \
           AND l.objid = ({LOCK_KEY} & 4294967295)::oid \
         LIMIT 1"
    )
}

/// The `application_name` of the sessions that claim tables for the
/// state store `store_id`: the replication session's own.
fn claimant_name(store_id: &str) -> String {
    format!("viewkeeper/{store_id}")
}

impl PgTarget {
    pub async fn connect(url: &str) -> Result<PgTarget, AggregateSinkError> {
        let target_error = |message: String| AggregateSinkError::Target {
            url: redact_url(url),
            message,
        };
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| target_error(e.to_string()))?;
        // Timestamps without zone are written as UTC text; the session must
        // not shift `timestamptz` values either.
        // Warnings only: `CREATE … IF NOT EXISTS` on every start would log
        // its "already exists, skipping" notices at info level.
        let options = options.options([("TimeZone", "UTC"), ("client_min_messages", "warning")]);
        // Lazy: a target that is down at start is retried by the sink, as
        // Redis is, instead of stopping the service.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options.clone());
        Ok(PgTarget {
            pool,
            options,
            claims: tokio::sync::Mutex::default(),
        })
    }
}

/// The PostgreSQL type of a column of `value_type`.
pub fn sql_type(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Bool => "boolean",
        ValueType::Int => "bigint",
        ValueType::Float => "double precision",
        ValueType::Numeric => "numeric",
        // An array as its text, as before arrays were a type of their own.
        ValueType::Text | ValueType::Array(_) | ValueType::Null => "text",
        ValueType::Date => "date",
        ValueType::Timestamp => "timestamp",
        ValueType::TimestampTz => "timestamptz",
        ValueType::Json => "jsonb",
    }
}

fn text(value: &Value) -> Option<String> {
    (!value.is_null()).then(|| value.to_text())
}

/// Column `index` of every row, as text for a `text[]` parameter.
fn column_texts(rows: &[Vec<Value>], index: usize) -> Vec<Option<String>> {
    rows.iter().map(|row| text(&row[index])).collect()
}

fn column_list(table: &TargetTable, columns: std::ops::Range<usize>) -> String {
    table.columns[columns]
        .iter()
        .map(|(name, _)| quote_ident(name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1::text[], $2::text[], …` and `u.c1::type1, …` for `unnest` over
/// `columns`.
fn unnest_parts(table: &TargetTable, columns: std::ops::Range<usize>) -> (String, String) {
    let mut params = Vec::new();
    let mut casts = Vec::new();
    for (position, (name, value_type)) in table.columns[columns].iter().enumerate() {
        params.push(format!("${}::text[]", position + 1));
        casts.push(format!(
            "u.{}::{}",
            quote_ident(name),
            sql_type(*value_type)
        ));
    }
    (params.join(", "), casts.join(", "))
}

/// The table a rewrite fills before it is renamed into place: in the same
/// schema, named after the view (view names are short identifiers).
fn shadow_of(table: &TargetTable) -> TargetTable {
    let schema = table.name.split_once('.').map_or("public", |(s, _)| s);
    TargetTable {
        name: format!("{schema}.viewkeeper_rewrite_{}", table.view),
        ..table.clone()
    }
}

/// The key constraint (and index) of a shadow table. Not a name PostgreSQL
/// would choose (`-`): a table made before constraints were named has
/// the shadow's default name, `viewkeeper_rewrite_{view}_pkey`, and index
/// names are unique in a schema.
fn shadow_key_name(shadow: &TargetTable) -> String {
    format!(
        "{}-key",
        shadow
            .name
            .rsplit_once('.')
            .map_or(shadow.name.as_str(), |(_, t)| t)
    )
}

/// The name of `table`'s key constraint (and its index), as PostgreSQL
/// would name a primary key (`_pkey`) or a unique constraint (`_key`).
fn key_constraint_name(table: &TargetTable) -> String {
    let unqualified = table
        .name
        .rsplit_once('.')
        .map_or(table.name.as_str(), |(_, t)| t);
    let suffix = if table.key_nullable { "key" } else { "pkey" };
    format!("{unqualified}_{suffix}")
}

fn create_table_sql(table: &TargetTable, key_name: &str) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|(name, value_type)| format!("{} {}", quote_ident(name), sql_type(*value_type)))
        .collect();
    let key = column_list(table, 0..table.key_len);
    let constraint = if table.key_nullable {
        "UNIQUE NULLS NOT DISTINCT"
    } else {
        "PRIMARY KEY"
    };
    format!(
        "CREATE TABLE {} ({}, CONSTRAINT {} {constraint} ({key}))",
        quote_qualified(&table.name),
        columns.join(", "),
        quote_ident(key_name)
    )
}

async fn insert_rows(
    txn: &mut Transaction<'_, Postgres>,
    table: &TargetTable,
    rows: &[Vec<Value>],
    upsert: bool,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let all = 0..table.columns.len();
    let (params, casts) = unnest_parts(table, all.clone());
    let mut sql = format!(
        "INSERT INTO {} ({}) SELECT {casts} FROM unnest({params}) AS u({})",
        quote_qualified(&table.name),
        column_list(table, all.clone()),
        column_list(table, all),
    );
    if upsert {
        let updates: Vec<String> = table.columns[table.key_len..]
            .iter()
            .map(|(name, _)| format!("{0} = EXCLUDED.{0}", quote_ident(name)))
            .collect();
        sql.push_str(&format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            column_list(table, 0..table.key_len),
            updates.join(", ")
        ));
    }
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for index in 0..table.columns.len() {
        query = query.bind(column_texts(rows, index));
    }
    query.execute(&mut **txn).await?;
    Ok(())
}

/// Deletes groups by key, in one statement for each shape of key present
/// (which of its columns are NULL): `t.c = u.c` for the others and
/// `t.c IS NULL` for those, so that the key's index finds every row. (A
/// single statement matching with `IS NOT DISTINCT FROM`, which no index
/// serves, scanned the whole table for each key: seconds for 2,000 keys
/// of a table of 100,000 groups.)
async fn delete_groups(
    txn: &mut Transaction<'_, Postgres>,
    table: &TargetTable,
    keys: &[Vec<Value>],
) -> Result<(), sqlx::Error> {
    let mut by_shape: BTreeMap<Vec<bool>, Vec<&[Value]>> = BTreeMap::new();
    for key in keys {
        let key = &key[..table.key_len];
        by_shape
            .entry(key.iter().map(Value::is_null).collect())
            .or_default()
            .push(key);
    }
    for (nulls, keys) in by_shape {
        delete_groups_of_shape(txn, table, &nulls, &keys).await?;
    }
    Ok(())
}

/// Deletes `keys`, each NULL in the key columns `nulls` marks and only there.
async fn delete_groups_of_shape(
    txn: &mut Transaction<'_, Postgres>,
    table: &TargetTable,
    nulls: &[bool],
    keys: &[&[Value]],
) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query(AssertSqlSafe(delete_sql(table, nulls)));
    for index in (0..table.key_len).filter(|&i| !nulls[i]) {
        let texts: Vec<Option<String>> = keys.iter().map(|key| text(&key[index])).collect();
        query = query.bind(texts);
    }
    query.execute(&mut **txn).await?;
    Ok(())
}

/// The statement deleting keys NULL in the key columns `nulls` marks: one
/// `text[]` parameter for each other key column, in order.
fn delete_sql(table: &TargetTable, nulls: &[bool]) -> String {
    let mut conditions = Vec::new();
    let mut unnested = Vec::new();
    let mut params = Vec::new();
    for (index, (name, value_type)) in table.columns[..table.key_len].iter().enumerate() {
        let name = quote_ident(name);
        if nulls[index] {
            conditions.push(format!("t.{name} IS NULL"));
        } else {
            params.push(format!("${}::text[]", params.len() + 1));
            conditions.push(format!("t.{name} = u.{name}::{}", sql_type(*value_type)));
            unnested.push(name);
        }
    }
    let using = if unnested.is_empty() {
        String::new()
    } else {
        format!(
            " USING unnest({}) AS u({})",
            params.join(", "),
            unnested.join(", ")
        )
    };
    format!(
        "DELETE FROM {} AS t{using} WHERE {}",
        quote_qualified(&table.name),
        conditions.join(" AND ")
    )
}

/// Gives the renamed shadow's key constraint the table's own name, unless a
/// relation of that name is in the schema already (an index shares the
/// tables' names): the shadow's name is left then, which works as well.
async fn rename_key_constraint(
    txn: &mut Transaction<'_, Postgres>,
    table: &TargetTable,
    shadow: &TargetTable,
) -> Result<(), sqlx::Error> {
    let schema = table.name.split_once('.').map_or("public", |(s, _)| s);
    let name = key_constraint_name(table);
    let taken: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{}.{}", quote_ident(schema), quote_ident(&name)))
        .fetch_one(&mut **txn)
        .await?;
    if taken {
        return Ok(());
    }
    let sql = format!(
        "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
        quote_qualified(&table.name),
        quote_ident(&shadow_key_name(shadow)),
        quote_ident(&name)
    );
    sqlx::query(AssertSqlSafe(sql)).execute(&mut **txn).await?;
    Ok(())
}

async fn ensure_checkpoint_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (\
         view text PRIMARY KEY, store_id text NOT NULL, \
         definition_hash text NOT NULL, sequence bigint NOT NULL)"
    );
    match sqlx::query(AssertSqlSafe(sql)).execute(pool).await {
        Ok(_) => Ok(()),
        // Two sinks creating it at once: the other one won. `IF NOT EXISTS`
        // looks before it waits, so the second fails on the catalog's unique
        // key, or as "type already exists" (the table's row type) or
        // "relation already exists", by when it looked.
        Err(sqlx::Error::Database(e))
            if matches!(
                e.code().as_deref(),
                Some("23505") | Some("42710") | Some("42P07")
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Who made the table `name` of `view`. Read on `conn`, which is the
/// rewrite's own transaction when it is about to replace the table.
async fn owner_of(
    conn: &mut PgConnection,
    view: &str,
    name: &str,
    definition_hash: Option<&str>,
) -> Result<TableOwner, sqlx::Error> {
    let comment: Option<Option<String>> = sqlx::query_scalar(
        "SELECT obj_description(c::oid, 'pg_class') FROM to_regclass($1) AS c WHERE c IS NOT NULL",
    )
    .bind(quote_qualified(name))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(comment) = comment else {
        return Ok(TableOwner::Nobody);
    };
    let marked = comment.is_some_and(|text| text.starts_with(TABLE_MARKER));
    let checkpoint_hash = if marked {
        None
    } else {
        checkpoint_hash(conn, view).await?
    };
    Ok(TableOwner::of_existing(
        marked,
        checkpoint_hash.as_deref(),
        definition_hash,
    ))
}

/// Creates `schema` unless it exists, in a transaction of its own, so that
/// the rewrite's transaction starts after it and sees it. Inside one
/// transaction the catalog caches kept the schema missing: the rewrite
/// looks its table up (`to_regclass`) before it could create the schema,
/// and its `CREATE TABLE` then failed with "schema does not exist" after
/// another sink had made it, even behind a lock on the schema's name. Two
/// sinks creating it at once: the second fails on the catalog's unique key
/// once the first commits, and the schema is there.
async fn ensure_schema(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
    match sqlx::query(AssertSqlSafe(sql)).execute(pool).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e))
            if matches!(e.code().as_deref(), Some("23505") | Some("42P06")) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The definition hash of the view's checkpoint row; `None` also when no
/// sink ever wrote to this database (no checkpoint table).
async fn checkpoint_hash(
    conn: &mut PgConnection,
    view: &str,
) -> Result<Option<String>, sqlx::Error> {
    let table_exists: bool = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT to_regclass('{CHECKPOINT_TABLE}') IS NOT NULL"
    )))
    .fetch_one(&mut *conn)
    .await?;
    if !table_exists {
        return Ok(None);
    }
    let sql = format!("SELECT definition_hash FROM {CHECKPOINT_TABLE} WHERE view = $1");
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(view)
        .fetch_optional(&mut *conn)
        .await
}

/// A text as an SQL string literal, for `COMMENT ON`, which takes no
/// parameters.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn record_checkpoint(
    txn: &mut Transaction<'_, Postgres>,
    view: &str,
    checkpoint: &Checkpoint,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {CHECKPOINT_TABLE} (view, store_id, definition_hash, sequence) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (view) DO UPDATE SET \
         store_id = EXCLUDED.store_id, definition_hash = EXCLUDED.definition_hash, \
         sequence = EXCLUDED.sequence"
    );
    write_checkpoint(txn, sql, view, checkpoint).await?;
    Ok(())
}

/// Moves the view's checkpoint row to `checkpoint`'s sequence if it still
/// names `checkpoint`'s store and definition; false when it does not (or is
/// gone): another viewkeeper wrote the table since.
async fn advance_checkpoint(
    txn: &mut Transaction<'_, Postgres>,
    view: &str,
    checkpoint: &Checkpoint,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE {CHECKPOINT_TABLE} SET sequence = $4 \
         WHERE view = $1 AND store_id = $2 AND definition_hash = $3"
    );
    Ok(write_checkpoint(txn, sql, view, checkpoint).await? == 1)
}

/// Runs `sql` with the view, store id, definition hash and sequence as
/// its parameters 1 to 4; returns the rows it changed.
async fn write_checkpoint(
    txn: &mut Transaction<'_, Postgres>,
    sql: String,
    view: &str,
    checkpoint: &Checkpoint,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(view)
        .bind(&checkpoint.store_id)
        .bind(&checkpoint.definition_hash)
        .bind(checkpoint.sql_sequence())
        .execute(&mut **txn)
        .await?;
    Ok(done.rows_affected())
}

#[async_trait]
impl SqlTarget for PgTarget {
    async fn claim(&self, table: &TargetTable, store_id: &str) -> Result<(), AggregateSinkError> {
        let sql_error = table.sql_error();
        let claimant = claimant_name(store_id);
        let mut claims = self.claims.lock().await;
        // A session that is gone (the server restarted) holds no lock.
        if let Some(session) = claims.session.as_mut()
            && session.ping().await.is_err()
        {
            claims.session = None;
            claims.tables.clear();
        }
        if claims.tables.contains(&table.name) {
            return Ok(());
        }
        let session = match &mut claims.session {
            Some(session) => session,
            empty => {
                let options = self.options.clone().application_name(&claimant);
                let session = PgConnection::connect_with(&options)
                    .await
                    .map_err(&sql_error)?;
                empty.insert(session)
            }
        };
        let locked: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT pg_try_advisory_lock({LOCK_KEY})"
        )))
        .bind(&table.name)
        .fetch_one(&mut *session)
        .await
        .map_err(&sql_error)?;
        if locked {
            claims.tables.insert(table.name.clone());
            return Ok(());
        }
        let holder: Option<(i32, String, String)> = sqlx::query_as(AssertSqlSafe(holder_query()))
            .bind(&table.name)
            .fetch_optional(&mut *session)
            .await
            .map_err(&sql_error)?;
        let holder = match holder {
            // This process's own session of before a reload, closing: the
            // next claim takes the lock.
            Some((_, name, _)) if name == claimant => return Ok(()),
            Some((pid, name, address)) => {
                format!("server process {pid}, application_name '{name}', client {address}")
            }
            None => "a session that has just let go of it".to_owned(),
        };
        Err(AggregateSinkError::Contested {
            view: table.view.clone(),
            table: table.name.clone(),
            holder,
        })
    }

    async fn drop_table(
        &self,
        view: &str,
        name: &str,
        definition_hash: Option<&str>,
    ) -> Result<bool, AggregateSinkError> {
        let sql_error = |source| AggregateSinkError::Sql {
            table: name.to_owned(),
            source,
        };
        ensure_checkpoint_table(&self.pool)
            .await
            .map_err(sql_error)?;
        let mut txn = self.pool.begin().await.map_err(sql_error)?;
        let owner = owner_of(&mut txn, view, name, definition_hash)
            .await
            .map_err(sql_error)?;
        let dropped = owner.is_viewkeeper();
        if dropped {
            let drop = format!("DROP TABLE IF EXISTS {}", quote_qualified(name));
            sqlx::query(AssertSqlSafe(drop))
                .execute(&mut *txn)
                .await
                .map_err(sql_error)?;
        }
        let forget = format!("DELETE FROM {CHECKPOINT_TABLE} WHERE view = $1");
        sqlx::query(AssertSqlSafe(forget))
            .bind(view)
            .execute(&mut *txn)
            .await
            .map_err(sql_error)?;
        txn.commit().await.map_err(sql_error)?;
        Ok(dropped && owner != TableOwner::Nobody)
    }

    async fn owner(&self, table: &TargetTable) -> Result<TableOwner, AggregateSinkError> {
        let sql_error = table.sql_error();
        let mut conn = self.pool.acquire().await.map_err(&sql_error)?;
        owner_of(
            &mut conn,
            &table.view,
            &table.name,
            Some(&table.definition_hash),
        )
        .await
        .map_err(&sql_error)
    }

    async fn checkpoint(
        &self,
        table: &TargetTable,
    ) -> Result<Option<Checkpoint>, AggregateSinkError> {
        let sql_error = table.sql_error();
        ensure_checkpoint_table(&self.pool)
            .await
            .map_err(&sql_error)?;
        match self.owner(table).await? {
            TableOwner::Viewkeeper => {}
            TableOwner::Nobody | TableOwner::EarlierViewkeeper => return Ok(None),
            TableOwner::Someone => return Err(table.foreign()),
        }
        let sql = format!(
            "SELECT store_id, definition_hash, sequence FROM {CHECKPOINT_TABLE} WHERE view = $1"
        );
        let row: Option<(String, String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(&table.view)
            .fetch_optional(&self.pool)
            .await
            .map_err(&sql_error)?;
        Ok(row.map(Checkpoint::from_row))
    }

    async fn rewrite(
        &self,
        table: &TargetTable,
        rows: &mut RowChunks,
        checkpoint: &Checkpoint,
    ) -> Result<u64, AggregateSinkError> {
        let sql_error = table.sql_error();
        if let Some((schema, _)) = table.name.split_once('.') {
            ensure_schema(&self.pool, schema)
                .await
                .map_err(&sql_error)?;
        }
        let mut txn = self.pool.begin().await.map_err(&sql_error)?;
        // Checked again in this transaction: the table may have been made
        // since the sink last looked, and a foreign one must stay untouched.
        let owner = owner_of(
            &mut txn,
            &table.view,
            &table.name,
            Some(&table.definition_hash),
        )
        .await
        .map_err(&sql_error)?;
        if !owner.is_viewkeeper() {
            return Err(table.foreign());
        }
        // The new rows go into a shadow table first, so readers keep the old
        // table (without waiting on a lock) until the swap at the end. It is
        // not dropped first: it only ever exists inside this transaction, so
        // a table of that name is someone else's, and creating it fails.
        let shadow = shadow_of(table);
        let statements = [
            create_table_sql(&shadow, &shadow_key_name(&shadow)),
            format!(
                "COMMENT ON TABLE {} IS {}",
                quote_qualified(&shadow.name),
                quote_literal(&table.marker())
            ),
        ];
        for sql in statements {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *txn)
                .await
                .map_err(&sql_error)?;
        }
        let mut written = 0;
        loop {
            match rows.recv().await {
                Some(RowChunk::Rows(chunk)) => {
                    insert_rows(&mut txn, &shadow, &chunk, false)
                        .await
                        .map_err(&sql_error)?;
                    written += chunk.len() as u64;
                }
                Some(RowChunk::End) => break,
                // The state store read failed; dropping `txn` rolls back.
                None => return Ok(written),
            }
        }
        let unqualified = table
            .name
            .rsplit_once('.')
            .map_or(table.name.as_str(), |(_, t)| t);
        let swap = [
            format!("DROP TABLE IF EXISTS {}", quote_qualified(&table.name)),
            format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_qualified(&shadow.name),
                quote_ident(unqualified)
            ),
        ];
        for sql in swap {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *txn)
                .await
                .map_err(&sql_error)?;
        }
        rename_key_constraint(&mut txn, table, &shadow)
            .await
            .map_err(&sql_error)?;
        record_checkpoint(&mut txn, &table.view, checkpoint)
            .await
            .map_err(&sql_error)?;
        txn.commit().await.map_err(&sql_error)?;
        Ok(written)
    }

    async fn apply(
        &self,
        table: &TargetTable,
        batch: &GroupBatch,
        checkpoint: &Checkpoint,
    ) -> Result<(), AggregateSinkError> {
        let sql_error = table.sql_error();
        let mut txn = self.pool.begin().await.map_err(&sql_error)?;
        insert_rows(&mut txn, table, &batch.upserts, true)
            .await
            .map_err(&sql_error)?;
        delete_groups(&mut txn, table, &batch.deletes)
            .await
            .map_err(&sql_error)?;
        // Dropping `txn` rolls the batch back.
        if !advance_checkpoint(&mut txn, &table.view, checkpoint)
            .await
            .map_err(&sql_error)?
        {
            return Err(table.checkpoint_taken());
        }
        txn.commit().await.map_err(&sql_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TargetTable {
        TargetTable {
            view: "sales".to_owned(),
            file: "views/sales.yaml".into(),
            name: "analytics.sales".to_owned(),
            columns: vec![
                ("day".to_owned(), ValueType::Date),
                ("category_id".to_owned(), ValueType::Int),
                ("n".to_owned(), ValueType::Int),
            ],
            key_len: 2,
            key_nullable: true,
            definition_hash: String::new(),
        }
    }

    /// Each key column is matched with `=` or `IS NULL`, which the key's
    /// index serves; never with `IS NOT DISTINCT FROM`, which it does not.
    #[test]
    fn deletes_match_keys_as_an_index_can() {
        assert_eq!(
            delete_sql(&table(), &[false, false]),
            r#"DELETE FROM "analytics"."sales" AS t USING unnest($1::text[], $2::text[]) AS u("day", "category_id") WHERE t."day" = u."day"::date AND t."category_id" = u."category_id"::bigint"#
        );
        assert_eq!(
            delete_sql(&table(), &[false, true]),
            r#"DELETE FROM "analytics"."sales" AS t USING unnest($1::text[]) AS u("day") WHERE t."day" = u."day"::date AND t."category_id" IS NULL"#
        );
        assert_eq!(
            delete_sql(&table(), &[true, true]),
            r#"DELETE FROM "analytics"."sales" AS t WHERE t."day" IS NULL AND t."category_id" IS NULL"#
        );
    }
}
