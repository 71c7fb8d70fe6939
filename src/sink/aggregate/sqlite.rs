//! Aggregate tables in SQLite (`--aggregates-url sqlite:path/to/file.db`).
//!
//! SQLite has no schemas, so `analytics.category_daily_sales` becomes the
//! table `category_daily_sales`. Numerics go into NUMERIC columns, which
//! SQLite stores as integers, or as reals of 15 significant digits (it has
//! no decimal type: `164.00` becomes `164`, an `avg` loses its last digits;
//! README, aggregate views), dates and timestamps as their ISO 8601 text. SQLite's unique indexes hold
//! several NULL groups, so a group is written by deleting it (`IS` matches
//! NULL) and inserting its new row, inside the batch's one transaction.
//!
//! SQLite has no comments on tables, but keeps each table's `CREATE TABLE`
//! text as written, comments included: the marker is a comment in it.
//!
//! SQLite has no advisory locks: a table is claimed ([`SqlTarget::claim`])
//! by an exclusive lock on a file beside the database,
//! `<database>.<table>.viewkeeper-lock`, held open while the process runs
//! and holding the claimant's state store and process id.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::{
    AggregateSinkError, CHECKPOINT_TABLE, Checkpoint, GroupBatch, RowChunk, RowChunks, SqlTarget,
    TABLE_MARKER, TableOwner, TargetTable,
};
use crate::change::Value;
use crate::expr::ValueType;
use crate::source::connection::{quote_ident, redact_url};

pub struct SqliteTarget {
    pool: SqlitePool,
    /// The database file; `None` in memory, where no other process can
    /// write.
    file: Option<PathBuf>,
    /// The lock file of each table claimed, held open (and locked).
    claims: Mutex<HashMap<String, File>>,
}

impl SqliteTarget {
    pub async fn connect(url: &str) -> Result<SqliteTarget, AggregateSinkError> {
        let options = options(url)?.create_if_missing(true);
        Ok(SqliteTarget::with_options(options))
    }

    /// The target at `url` if its file exists, without creating it: what
    /// `check` reads, which must leave no file behind.
    pub fn open_existing(url: &str) -> Result<Option<SqliteTarget>, AggregateSinkError> {
        let options = options(url)?.create_if_missing(false);
        let in_memory = options.get_filename() == Path::new(":memory:");
        if !in_memory && !options.get_filename().exists() {
            return Ok(None);
        }
        Ok(Some(SqliteTarget::with_options(options)))
    }

    fn with_options(options: SqliteConnectOptions) -> SqliteTarget {
        let file = options.get_filename().to_owned();
        let in_memory = file == Path::new(":memory:");
        let database = (!in_memory).then(|| file.clone());
        // One writer: SQLite serializes writes anyway. Lazy, like PostgreSQL:
        // a file that cannot be opened yet is retried by the sink.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            // A connection to a file deleted since writes to nothing that
            // stays ("attempt to write a readonly database", for good): it
            // is closed, and the next one makes the file anew, which the
            // sink finds without its table and fills.
            .before_acquire(move |_, _| {
                let open = in_memory || file.exists();
                Box::pin(async move { Ok(open) })
            })
            .connect_lazy_with(options);
        SqliteTarget {
            pool,
            file: database,
            claims: Mutex::default(),
        }
    }

    /// Where the claim of `table` (as this database names it) is locked.
    fn lock_path(database: &Path, table: &str) -> PathBuf {
        let safe: String = table
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = database.as_os_str().to_owned();
        name.push(format!(".{safe}.viewkeeper-lock"));
        PathBuf::from(name)
    }
}

/// Whether `held` is still the file at `path`: one deleted (or replaced)
/// under the claim locks nothing another process opens there.
fn still_there(held: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (held.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(there)) => held.ino() == there.ino() && held.dev() == there.dev(),
        _ => false,
    }
}

/// The options `url` names, refused when its file's directory is missing:
/// SQLite then says only "unable to open database file", at every retry,
/// and `check`, which opens no file that does not exist, said nothing.
fn options(url: &str) -> Result<SqliteConnectOptions, AggregateSinkError> {
    let refused = |message: String| AggregateSinkError::Target {
        url: redact_url(url),
        message,
    };
    let options = SqliteConnectOptions::from_str(url).map_err(|e| refused(e.to_string()))?;
    let file = options.get_filename();
    let directory = file.parent().filter(|dir| !dir.as_os_str().is_empty());
    if file != Path::new(":memory:")
        && let Some(directory) = directory
        && !directory.is_dir()
    {
        return Err(refused(format!(
            "the directory {} of {} does not exist",
            directory.display(),
            file.display()
        )));
    }
    Ok(options)
}

fn sql_type(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Bool => "BOOLEAN",
        ValueType::Int => "INTEGER",
        ValueType::Float => "REAL",
        ValueType::Numeric => "NUMERIC",
        _ => "TEXT",
    }
}

/// A table's name without its schema, as SQLite knows it.
fn unqualified(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(_, t)| t)
}

/// Why SQLite would refuse to create the table `name`, if it would: names
/// beginning with `sqlite_` are its own. (A table's name is lowercase.)
pub fn reserved_name_reason(name: &str) -> Option<String> {
    let table = unqualified(name);
    table.starts_with("sqlite_").then(|| {
        format!(
            "SQLite keeps table names beginning with `sqlite_` for itself, and {table} is \
                 one; choose another `table:`"
        )
    })
}

/// The table's name without its schema, quoted.
fn table_name(table: &TargetTable) -> String {
    quote_ident(unqualified(&table.name))
}

/// Who made the table `name` of `view`. Read on `conn`, which is the
/// rewrite's own transaction when it is about to replace the table.
async fn owner_of(
    conn: &mut SqliteConnection,
    view: &str,
    name: &str,
    definition_hash: Option<&str>,
) -> Result<TableOwner, sqlx::Error> {
    let created_by: Option<Option<String>> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
    )
    .bind(unqualified(name))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(created_by) = created_by else {
        return Ok(TableOwner::Nobody);
    };
    let marked = created_by.is_some_and(|sql| sql.contains(&format!("/* {TABLE_MARKER}")));
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

/// The definition hash of the view's checkpoint row; `None` also when no
/// sink ever wrote to this database (no checkpoint table).
async fn checkpoint_hash(
    conn: &mut SqliteConnection,
    view: &str,
) -> Result<Option<String>, sqlx::Error> {
    let table_exists: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(CHECKPOINT_TABLE)
            .fetch_optional(&mut *conn)
            .await?;
    if table_exists.is_none() {
        return Ok(None);
    }
    let sql = format!("SELECT definition_hash FROM {CHECKPOINT_TABLE} WHERE view = ?1");
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(view)
        .fetch_optional(&mut *conn)
        .await
}

fn bind<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    value: &Value,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    match value {
        Value::Null => query.bind(None::<String>),
        Value::Bool(b) => query.bind(*b),
        Value::Int(i) => query.bind(*i),
        // SQLite stores a NaN REAL as NULL, which reads as "no input";
        // PostgreSQL's spelling stays text in a REAL column, as a numeric
        // NaN does.
        Value::Float(f) if f.is_nan() => query.bind("NaN"),
        Value::Float(f) => query.bind(*f),
        other => query.bind(other.to_text()),
    }
}

async fn delete_group(
    txn: &mut Transaction<'_, Sqlite>,
    table: &TargetTable,
    key: &[Value],
) -> Result<(), sqlx::Error> {
    let conditions: Vec<String> = table.columns[..table.key_len]
        .iter()
        .enumerate()
        .map(|(index, (name, _))| format!("{} IS ?{}", quote_ident(name), index + 1))
        .collect();
    let sql = format!(
        "DELETE FROM {} WHERE {}",
        table_name(table),
        conditions.join(" AND ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for value in key {
        query = bind(query, value);
    }
    query.execute(&mut **txn).await?;
    Ok(())
}

async fn insert_row(
    txn: &mut Transaction<'_, Sqlite>,
    table: &TargetTable,
    row: &[Value],
) -> Result<(), sqlx::Error> {
    let names: Vec<String> = table.columns.iter().map(|(n, _)| quote_ident(n)).collect();
    let params: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table_name(table),
        names.join(", "),
        params.join(", ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for value in row {
        query = bind(query, value);
    }
    query.execute(&mut **txn).await?;
    Ok(())
}

async fn record_checkpoint(
    txn: &mut Transaction<'_, Sqlite>,
    view: &str,
    checkpoint: &Checkpoint,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {CHECKPOINT_TABLE} (view, store_id, definition_hash, sequence) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (view) DO UPDATE SET \
         store_id = excluded.store_id, definition_hash = excluded.definition_hash, \
         sequence = excluded.sequence"
    );
    write_checkpoint(txn, sql, view, checkpoint).await?;
    Ok(())
}

/// Moves the view's checkpoint row to `checkpoint`'s sequence if it still
/// names `checkpoint`'s store and definition; false when it does not (or is
/// gone): another viewkeeper wrote the table since.
async fn advance_checkpoint(
    txn: &mut Transaction<'_, Sqlite>,
    view: &str,
    checkpoint: &Checkpoint,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE {CHECKPOINT_TABLE} SET sequence = ?4 \
         WHERE view = ?1 AND store_id = ?2 AND definition_hash = ?3"
    );
    Ok(write_checkpoint(txn, sql, view, checkpoint).await? == 1)
}

/// Runs `sql` with the view, store id, definition hash and sequence as
/// its parameters 1 to 4; returns the rows it changed.
async fn write_checkpoint(
    txn: &mut Transaction<'_, Sqlite>,
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
impl SqlTarget for SqliteTarget {
    fn table_name(&self, qualified: &str) -> String {
        unqualified(qualified).to_owned()
    }

    async fn claim(&self, table: &TargetTable, store_id: &str) -> Result<(), AggregateSinkError> {
        let Some(database) = &self.file else {
            return Ok(());
        };
        let path = SqliteTarget::lock_path(database, &table.name);
        let failed = |error: std::io::Error| AggregateSinkError::Target {
            url: format!("sqlite:{}", database.display()),
            message: format!("the lock file {}: {error}", path.display()),
        };
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        if claims
            .get(&table.name)
            .is_some_and(|held| still_there(held, &path))
        {
            return Ok(());
        }
        claims.remove(&table.name);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {
                let holder = format!("viewkeeper {store_id}, process {}", std::process::id());
                file.set_len(0).map_err(failed)?;
                file.rewind().map_err(failed)?;
                file.write_all(holder.as_bytes()).map_err(failed)?;
                claims.insert(table.name.clone(), file);
                Ok(())
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder wrote who it is; an unreadable file names none.
                let _ = file.read_to_string(&mut holder);
                // This process's own lock of before a reload, whose file is
                // being closed: the next claim takes it.
                if holder.starts_with(&format!("viewkeeper {store_id},")) {
                    return Ok(());
                }
                Err(AggregateSinkError::Contested {
                    view: table.view.clone(),
                    table: table.name.clone(),
                    holder: format!("{}, lock file {}", holder.trim(), path.display()),
                })
            }
            Err(TryLockError::Error(error)) => Err(failed(error)),
        }
    }

    async fn drop_table(
        &self,
        view: &str,
        name: &str,
        definition_hash: Option<&str>,
    ) -> Result<bool, AggregateSinkError> {
        let sql_error = |source| AggregateSinkError::Sql {
            table: unqualified(name).to_owned(),
            source,
        };
        let mut txn = self.pool.begin().await.map_err(sql_error)?;
        let owner = owner_of(&mut txn, view, name, definition_hash)
            .await
            .map_err(sql_error)?;
        let dropped = owner.is_viewkeeper();
        if dropped {
            let drop = format!("DROP TABLE IF EXISTS {}", quote_ident(unqualified(name)));
            sqlx::query(AssertSqlSafe(drop))
                .execute(&mut *txn)
                .await
                .map_err(sql_error)?;
        }
        let forget = format!("DELETE FROM {CHECKPOINT_TABLE} WHERE view = ?1");
        // Fails only when no aggregate sink ever ran here: nothing to forget.
        if let Err(error) = sqlx::query(AssertSqlSafe(forget))
            .bind(view)
            .execute(&mut *txn)
            .await
        {
            tracing::debug!(%error, "no aggregate checkpoint to forget");
        }
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
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (view TEXT PRIMARY KEY, \
             store_id TEXT NOT NULL, definition_hash TEXT NOT NULL, sequence INTEGER NOT NULL)"
        );
        sqlx::query(AssertSqlSafe(create))
            .execute(&self.pool)
            .await
            .map_err(&sql_error)?;
        match self.owner(table).await? {
            TableOwner::Viewkeeper => {}
            TableOwner::Nobody | TableOwner::EarlierViewkeeper => return Ok(None),
            TableOwner::Someone => return Err(table.foreign()),
        }
        let sql = format!(
            "SELECT store_id, definition_hash, sequence FROM {CHECKPOINT_TABLE} WHERE view = ?1"
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
        let drop = format!("DROP TABLE IF EXISTS {}", table_name(table));
        sqlx::query(AssertSqlSafe(drop))
            .execute(&mut *txn)
            .await
            .map_err(&sql_error)?;
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|(name, value_type)| format!("{} {}", quote_ident(name), sql_type(*value_type)))
            .collect();
        let keys: Vec<String> = table.columns[..table.key_len]
            .iter()
            .map(|(name, _)| quote_ident(name))
            .collect();
        let constraint = if table.key_nullable {
            "UNIQUE"
        } else {
            "PRIMARY KEY"
        };
        // The marker goes inside the parentheses, which SQLite keeps as
        // written; `*/` in it would end the comment early.
        let create = format!(
            "CREATE TABLE {} (/* {} */ {}, {constraint} ({}))",
            table_name(table),
            table.marker().replace("*/", ""),
            columns.join(", "),
            keys.join(", ")
        );
        sqlx::query(AssertSqlSafe(create))
            .execute(&mut *txn)
            .await
            .map_err(&sql_error)?;
        let mut written = 0;
        loop {
            match rows.recv().await {
                Some(RowChunk::Rows(chunk)) => {
                    for row in &chunk {
                        insert_row(&mut txn, table, row).await.map_err(&sql_error)?;
                    }
                    written += chunk.len() as u64;
                }
                Some(RowChunk::End) => break,
                // The state store read failed; dropping `txn` rolls back.
                None => return Ok(written),
            }
        }
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
        for row in &batch.upserts {
            delete_group(&mut txn, table, &row[..table.key_len])
                .await
                .map_err(&sql_error)?;
            insert_row(&mut txn, table, row).await.map_err(&sql_error)?;
        }
        for key in &batch.deletes {
            delete_group(&mut txn, table, key)
                .await
                .map_err(&sql_error)?;
        }
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
