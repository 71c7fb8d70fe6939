//! The initial snapshot, consistent with the replication slot's start.
//!
//! The slot is created on a replication session with `SNAPSHOT 'export'`; a
//! SQL session imports that snapshot (`SET TRANSACTION SNAPSHOT`) and copies
//! every table. The copy sees exactly the transactions committed before the
//! slot's consistent point, and the stream delivers exactly those after it, so
//! no change is lost or applied twice at the boundary, however busy the
//! database is meanwhile.

use std::sync::Arc;

use futures_util::StreamExt;
use pgwire_replication::ReplicationClient;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;

use super::connection::{PgEndpoint, quote_ident, quote_qualified};
use super::copy_text::{CopyLineSplitter, parse_copy_line};
use super::identity::SourceIdentity;
use super::pg_text::parse_text;
use super::{SourceError, catalog};
use crate::change::{Lsn, Value};
use crate::engine::{Engine, EngineError};
use crate::plan::TablePlan;
use crate::status::StatusBoard;

/// Rows handed to the state store per transaction while copying.
const ROWS_PER_CHUNK: usize = 10_000;

/// Creates the slot and loads every table the views read; returns the slot's
/// consistent point, from which streaming continues.
pub async fn take_snapshot(
    endpoint: &PgEndpoint,
    pool: &PgPool,
    slot: &str,
    publication: &str,
    engine: Arc<Engine>,
    status: &StatusBoard,
) -> Result<Lsn, SourceError> {
    catalog::drop_slot(pool, slot, endpoint.replication_application()).await?;
    let mut session =
        ReplicationClient::connect_gated(endpoint.replication_config(slot, publication)).await?;
    let (consistent_point, snapshot_name) = {
        // PostgreSQL creates the slot once every transaction that was
        // writing when it began has ended: a transaction left open (or
        // prepared and never committed) holds it, and the snapshot, for as
        // long as it lasts. Name them meanwhile.
        let creating = create_slot(&mut session, slot);
        tokio::pin!(creating);
        let first = tokio::time::Instant::now() + SLOT_WAIT_REPORTED_AFTER;
        let mut reports = tokio::time::interval_at(first, SLOT_WAIT_REPORT_EVERY);
        let created = loop {
            tokio::select! {
                created = &mut creating => break created,
                _ = reports.tick() => {
                    status.snapshot_waits_for(report_slot_wait(pool, slot).await);
                }
            }
        };
        status.snapshot_waits_for(None);
        created?
    };
    tracing::info!(%slot, %consistent_point, "replication slot created; copying tables");

    let mut conn = PgConnection::connect_with(&endpoint.sql_options()?).await?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await?;
    // `create_slot` checked the name's characters.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET TRANSACTION SNAPSHOT '{snapshot_name}'"
    )))
    .execute(&mut conn)
    .await?;
    // The snapshot is imported: the exporting session is no longer needed.
    drop(session);

    let identity = SourceIdentity::load(&mut conn, engine.plan()).await?;
    let identity_text = identity.to_text();
    engine
        .run(move |engine| engine.begin_snapshot(&identity_text))
        .await??;
    for table in engine.plan().tables.values() {
        refuse_rewritten_since(&mut conn, pool, table, &identity).await?;
        let rows = copy_table(&mut conn, table, &engine).await?;
        tracing::info!(table = %table.name, rows, "table copied");
    }
    sqlx::raw_sql("COMMIT").execute(&mut conn).await?;

    let outcome = engine
        .run(move |engine| engine.finish_snapshot(consistent_point))
        .await??;
    tracing::info!(
        roots = outcome.roots_refreshed,
        outbox_entries = outcome.outbox_entries,
        "snapshot complete"
    );
    Ok(consistent_point)
}

/// Locks `table` against rewrites until the snapshot ends, and refuses to
/// copy it if `ALTER TABLE` rewrote it after the snapshot's point: that
/// writes its rows anew under its own transaction, which the snapshot
/// cannot see, so the copy would read a table that held rows as empty
/// (the twenty-first trial: 11,262 documents deleted, served as live,
/// until the rewrite check took a new snapshot). The other new data files
/// are copied: `VACUUM FULL` and `CLUSTER` keep their rows visible to the
/// snapshot, and a `TRUNCATE`, which the copy reads as empty, is in the
/// log, which empties the table anyway. Only `ALTER TABLE` changes the
/// table's columns (`pg_attribute`) too.
async fn refuse_rewritten_since(
    conn: &mut PgConnection,
    pool: &PgPool,
    table: &TablePlan,
    identity: &SourceIdentity,
) -> Result<(), SourceError> {
    // The lock makes the catalog reads below current, where the
    // transaction's snapshot shows pg_class as it was.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "LOCK TABLE {} IN ACCESS SHARE MODE",
        quote_qualified(&table.name)
    )))
    .execute(&mut *conn)
    .await?;
    for (relation, file) in identity.files_of(&table.name) {
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT pg_relation_filenode(c)::int8 FROM to_regclass($1) AS c WHERE c IS NOT NULL",
        )
        .bind(&relation)
        .fetch_optional(&mut *conn)
        .await?;
        if current.is_none_or(|current| current == i64::from(file)) {
            continue;
        }
        // The snapshot's columns, and the database's now.
        let columns_then = column_versions(&mut *conn, &relation).await?;
        let columns_now = column_versions(&mut *pool.acquire().await?, &relation).await?;
        if columns_then != columns_now {
            return Err(SourceError::UnloggedChange {
                changed: format!(
                    "table {relation} was rewritten by ALTER TABLE after the snapshot began: \
                     its rows are not visible to the snapshot, which would copy it as empty"
                ),
            });
        }
    }
    Ok(())
}

/// Each column of `relation` with the transaction that last wrote its
/// catalog row, as `conn`'s snapshot sees them.
async fn column_versions(
    conn: &mut PgConnection,
    relation: &str,
) -> Result<Vec<(i16, String)>, SourceError> {
    Ok(sqlx::query_as(
        "SELECT attnum, xmin::text FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attnum > 0 ORDER BY attnum",
    )
    .bind(relation)
    .fetch_all(conn)
    .await?)
}

/// How long creating the slot may take before what it waits for is logged,
/// and how often again.
const SLOT_WAIT_REPORTED_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
const SLOT_WAIT_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The transactions that were writing when the slot's creation began, as
/// far as this role may see them (prepared ones, and open ones with a
/// transaction id, in any database). Each says when it began, not for how
/// long: `/status` shows the text between two reports, and a duration
/// read as frozen there (trial 27).
const WRITING_TRANSACTIONS: &str = "\
    SELECT format('prepared transaction %L in database %s, prepared at %s (COMMIT PREPARED \
                   or ROLLBACK PREPARED ends it)', gid, database, \
                  to_char(prepared AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')) \
    FROM pg_prepared_xacts \
    UNION ALL \
    SELECT format('backend pid %s (application %L, user %s, database %s, transaction open \
                   since %s, %s)', pid, application_name, usename, datname, \
                  to_char(xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'), \
                  state) \
    FROM pg_stat_activity \
    WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
    ORDER BY 1";

/// Logs what creating `slot` waits for, and returns it for `/status`.
async fn report_slot_wait(pool: &PgPool, slot: &str) -> Option<String> {
    let taking_long = || Some("the snapshot's slot is taking long to create".to_owned());
    match sqlx::query_scalar::<_, String>(WRITING_TRANSACTIONS)
        .fetch_all(pool)
        .await
    {
        Ok(waiting_for) if !waiting_for.is_empty() => {
            let waiting_for = waiting_for.join("; ");
            tracing::warn!(
                %slot,
                %waiting_for,
                "creating the replication slot waits for transactions that were writing when it \
                 began to end; the snapshot starts once they do"
            );
            Some(format!(
                "the snapshot's slot waits for transactions that were writing when it began to \
                 end: {waiting_for}"
            ))
        }
        Ok(_) => {
            tracing::warn!(
                %slot,
                "creating the replication slot is taking long (no transaction it could wait for \
                 is visible to this role)"
            );
            taking_long()
        }
        Err(error) => {
            tracing::warn!(
                %slot,
                %error,
                "creating the replication slot is taking long; its wait could not be read"
            );
            taking_long()
        }
    }
}

async fn create_slot(
    session: &mut ReplicationClient,
    slot: &str,
) -> Result<(Lsn, String), SourceError> {
    let command = format!(
        "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
        quote_ident(slot)
    );
    let rows = session.simple_query(&command).await?;
    let slot_error = |reason: &str| SourceError::Slot {
        slot: slot.to_string(),
        reason: reason.to_string(),
    };
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| slot_error("CREATE_REPLICATION_SLOT returned no row"))?;
    let text = |index: usize| {
        row.get(index)
            .and_then(|v| v.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let consistent_point = text(1)
        .as_deref()
        .and_then(Lsn::parse)
        .ok_or_else(|| slot_error("CREATE_REPLICATION_SLOT returned no consistent point"))?;
    let snapshot_name =
        text(2).ok_or_else(|| slot_error("CREATE_REPLICATION_SLOT exported no snapshot"))?;
    if !snapshot_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(slot_error("unexpected snapshot name"));
    }
    Ok((consistent_point, snapshot_name))
}

/// Copies the stored columns of one table into the state store, in chunks.
async fn copy_table(
    conn: &mut PgConnection,
    table: &TablePlan,
    engine: &Arc<Engine>,
) -> Result<u64, SourceError> {
    let statement = copy_rows_statement(table, &quote_qualified(&table.name));
    let mut stream = conn.copy_out_raw(&statement).await?;
    let mut splitter = CopyLineSplitter::new();
    let mut chunk = Vec::with_capacity(ROWS_PER_CHUNK);
    // The chunk being stored while the next one is received and parsed.
    let mut storing: Option<JoinHandle<Result<u64, EngineError>>> = None;
    let mut total = 0u64;
    while let Some(bytes) = stream.next().await {
        splitter.push(&bytes?);
        while let Some(line) = splitter.next_line() {
            chunk.push(typed_row(table, &line)?);
            if chunk.len() == ROWS_PER_CHUNK {
                if let Some(stored) = storing.take() {
                    total += stored.await??;
                }
                storing = Some(store_chunk(engine, table, std::mem::take(&mut chunk)));
            }
        }
    }
    splitter.finish().map_err(|e| snapshot_error(table, e))?;
    if let Some(stored) = storing.take() {
        total += stored.await??;
    }
    total += store_chunk(engine, table, chunk).await??;
    Ok(total)
}

/// `COPY` of the stored columns of `table` from `relation` (quoted): the
/// table itself, or `ONLY` one of its partitions.
pub(super) fn copy_rows_statement(table: &TablePlan, relation: &str) -> String {
    let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
    format!(
        "COPY (SELECT {} FROM {relation}) TO STDOUT",
        columns.join(", ")
    )
}

/// One line of such a `COPY`, as the stored values of the table's columns.
pub(super) fn typed_row(table: &TablePlan, line: &[u8]) -> Result<Vec<Value>, SourceError> {
    let fields = parse_copy_line(line).map_err(|e| snapshot_error(table, e))?;
    if fields.len() != table.columns.len() {
        return Err(snapshot_error(
            table,
            format!(
                "expected {} columns, got {}",
                table.columns.len(),
                fields.len()
            ),
        ));
    }
    Ok(fields
        .into_iter()
        .zip(&table.column_types)
        .map(|(field, &type_oid)| match field {
            Some(text) => parse_text(type_oid, &text),
            None => Value::Null,
        })
        .collect())
}

/// Stores `rows` on the engine's thread; the task returns how many there were.
fn store_chunk(
    engine: &Arc<Engine>,
    table: &TablePlan,
    rows: Vec<Vec<Value>>,
) -> JoinHandle<Result<u64, EngineError>> {
    let name = table.name.clone();
    engine.run(move |engine| {
        engine.load_snapshot_rows(&name, &rows)?;
        Ok(rows.len() as u64)
    })
}

fn snapshot_error(table: &TablePlan, reason: impl std::fmt::Display) -> SourceError {
    SourceError::Snapshot {
        table: table.name.clone(),
        reason: reason.to_string(),
    }
}
