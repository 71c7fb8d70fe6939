//! Whether a partition that joined a table since its rows were stored, or
//! a table rewritten since, holds only rows the log brought.
//!
//! pgoutput says nothing of a partition attached (`ATTACH PARTITION` of a
//! filled table): its rows were never in the log, so the views would miss
//! them. A partition created as one (`CREATE TABLE … PARTITION OF`, as
//! pg_partman and most schedulers do) is published from its first row, so
//! whatever it holds is in the log: taking a new snapshot for it would be
//! minutes of work for nothing. The catalog does not tell the two apart
//! soundly (transaction ids are not commit order, so a row's `xmin` beside
//! the attach's says nothing), but the rows do: read in one snapshot, at a
//! WAL position the stream then passes, every row the log brought is
//! stored as the partition holds it, and an attached row is not (keys are
//! unique across the partitions, so no other row stands in its place). A
//! row changed after that position differs too, and is taken as attached:
//! a needless snapshot, never a missed row.
//!
//! A table rewritten (a new data file, with no `TRUNCATE` in the log) is
//! most often `VACUUM FULL` or `CLUSTER`, which change no row; but `ALTER
//! COLUMN … TYPE … USING expr` to the same type changes every row, and the
//! log holds none of it. The same comparison tells them apart: a rewrite
//! removes no row, so rows stored as the table holds them are all of it.
//! A row changed while it is compared differs too, so the caller takes a
//! table as changed only when two comparisons in a row find a difference.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, PgPool, Postgres};

use super::SourceError;
use super::connection::quote_qualified;
use super::copy_text::CopyLineSplitter;
use super::snapshot::{copy_rows_statement, typed_row};
use crate::change::{Lsn, Value};
use crate::engine::EngineError;
use crate::plan::TablePlan;
use crate::state::keycode::encode_values;
use crate::state::{ReadRows, StateReader, Store, StoreError};

/// What the rows of a new partition or a rewritten table say.
#[derive(Debug, PartialEq, Eq)]
pub enum RowsCheck {
    /// Every row it holds came through the log (`rows` of them).
    Logged { rows: u64 },
    /// It holds rows the log does not: why, as one sentence.
    Unlogged(String),
    /// The stream did not reach the read in time: ask again later.
    Undecided,
}

/// What comparing a relation's rows with the stored ones found.
enum Compared {
    /// Each row is stored as it is (`rows` of them).
    AllStored { rows: u64 },
    /// One at least is not.
    Differ,
    /// The store did not reach the read's position in time.
    Undecided,
}

/// Rows compared per step on the blocking pool.
const ROWS_PER_STEP: usize = 10_000;

/// How often the store's position is looked at while waiting for the stream.
const POSITION_POLL: Duration = Duration::from_millis(50);

/// Reads `partition` (as `regclass` writes it) of `table` in one snapshot
/// and, once the store has applied the log past that snapshot (waiting at
/// most `wait`), compares its rows with the stored ones.
pub async fn check_new_partition(
    pool: &PgPool,
    store: &Arc<Store>,
    table: &TablePlan,
    partition: &str,
    wait: Duration,
) -> Result<RowsCheck, SourceError> {
    let relation = format!("ONLY {partition}");
    let Some(mut read) = ReadAt::begin(pool, store, table, wait).await? else {
        return Ok(RowsCheck::Undecided);
    };
    // `partition` is written by `regclass`, quoted where needed.
    let holds_rows = sqlx::query_scalar::<_, bool>(AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM {relation})"
    )))
    .fetch_one(&mut *read.conn)
    .await;
    match holds_rows {
        Ok(false) => return Ok(RowsCheck::Logged { rows: 0 }),
        Ok(true) => {}
        // A role granted the partitioned table alone may not read a
        // partition: taken as attached, as the snapshot reads it through
        // the partitioned table.
        Err(error) => {
            return Ok(RowsCheck::Unlogged(format!(
                "partition {partition} of table {} is new, and whether it holds rows cannot be \
                 read ({})",
                table.name,
                super::sql_error_text(&error)
            )));
        }
    }
    let compared = read.compare(store, table, &relation, wait).await?;
    Ok(compared.decided(|| {
        format!(
            "partition {partition} of table {} was attached holding rows",
            table.name
        )
    }))
}

/// Reads `table`, rewritten since its rows were stored, in one snapshot
/// and, once the store has applied the log past it (waiting at most
/// `wait`), compares its rows with the stored ones.
pub async fn check_rewritten_table(
    pool: &PgPool,
    store: &Arc<Store>,
    table: &TablePlan,
    wait: Duration,
) -> Result<RowsCheck, SourceError> {
    let Some(read) = ReadAt::begin(pool, store, table, wait).await? else {
        return Ok(RowsCheck::Undecided);
    };
    let relation = format!("ONLY {}", quote_qualified(&table.name));
    let compared = read.compare(store, table, &relation, wait).await?;
    Ok(compared.decided(|| {
        format!(
            "table {} was rewritten and its rows changed (ALTER COLUMN … TYPE … USING, say)",
            table.name
        )
    }))
}

impl Compared {
    /// What the comparison says; `why_unlogged` names a difference.
    fn decided(self, why_unlogged: impl FnOnce() -> String) -> RowsCheck {
        match self {
            Compared::AllStored { rows } => RowsCheck::Logged { rows },
            Compared::Differ => RowsCheck::Unlogged(why_unlogged()),
            Compared::Undecided => RowsCheck::Undecided,
        }
    }
}

/// A read-only transaction whose snapshot the stream is about to pass.
struct ReadAt {
    /// Closed when dropped, never returned to the pool: a comparison stops
    /// at the first row that differs, and a `COPY` left unread put the
    /// next query on the connection out of step with its replies (the
    /// twentieth trial: `expected ParseComplete, got ReadyForQuery`, and
    /// catalog checks answered with other queries' rows).
    conn: PoolConnection<Postgres>,
    /// The WAL position every commit the snapshot sees ended before.
    position: Lsn,
}

impl ReadAt {
    /// Catches the store up first, without a snapshot: the read's snapshot
    /// is then held only for as long as the stream takes to pass it, not
    /// through a backlog (it holds back vacuum meanwhile). `None` when the
    /// store did not catch up within `wait`.
    async fn begin(
        pool: &PgPool,
        store: &Arc<Store>,
        table: &TablePlan,
        wait: Duration,
    ) -> Result<Option<ReadAt>, SourceError> {
        let now: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(pool)
            .await?;
        if reader_past(store, parse_lsn(table, &now)?, wait)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let mut conn = pool.acquire().await?;
        conn.close_on_drop();
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        // The first statement takes the snapshot: every commit it sees ended
        // before the insert position read with it.
        let position: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&mut *conn)
            .await?;
        let position = parse_lsn(table, &position)?;
        Ok(Some(ReadAt { conn, position }))
    }

    /// Compares the rows of `relation` (`table`, or one of its partitions)
    /// in this snapshot with the stored ones, once the store is past it.
    async fn compare(
        mut self,
        store: &Arc<Store>,
        table: &TablePlan,
        relation: &str,
        wait: Duration,
    ) -> Result<Compared, SourceError> {
        let Some(reader) = reader_past(store, self.position, wait).await? else {
            return Ok(Compared::Undecided);
        };
        let mut copy = self
            .conn
            .copy_out_raw(&copy_rows_statement(table, relation))
            .await?;
        let mut splitter = CopyLineSplitter::new();
        let mut compare = RowComparison::new(reader, table);
        while let Some(bytes) = copy.next().await {
            splitter.push(&bytes?);
            while let Some(line) = splitter.next_line() {
                compare.rows.push(typed_row(table, &line)?);
                if compare.rows.len() == ROWS_PER_STEP && !compare.step().await? {
                    return Ok(Compared::Differ);
                }
            }
        }
        splitter.finish().map_err(|reason| SourceError::Snapshot {
            table: table.name.clone(),
            reason: reason.to_string(),
        })?;
        if !compare.step().await? {
            return Ok(Compared::Differ);
        }
        Ok(Compared::AllStored { rows: compare.done })
    }
}

fn parse_lsn(table: &TablePlan, text: &str) -> Result<Lsn, SourceError> {
    Lsn::parse(text).ok_or_else(|| SourceError::Snapshot {
        table: table.name.clone(),
        reason: format!("unexpected WAL position {text:?}"),
    })
}

/// A reader of the store once it has applied the log through `position`,
/// or `None` if it has not within `wait`.
async fn reader_past(
    store: &Arc<Store>,
    position: Lsn,
    wait: Duration,
) -> Result<Option<StateReader>, SourceError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let reader = store.reader().map_err(EngineError::from)?;
        let applied = reader.position().map_err(EngineError::from)?;
        if applied.is_some_and(|applied| applied >= position) {
            return Ok(Some(reader));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POSITION_POLL).await;
    }
}

/// Partition rows compared with the stored ones a step at a time, on the
/// blocking pool (a large partition is millions of lookups).
struct RowComparison {
    reader: Option<StateReader>,
    table: String,
    primary_key_len: usize,
    rows: Vec<Vec<Value>>,
    /// Rows found stored as they are.
    done: u64,
}

impl RowComparison {
    fn new(reader: StateReader, table: &TablePlan) -> RowComparison {
        RowComparison {
            reader: Some(reader),
            table: table.name.clone(),
            primary_key_len: table.primary_key_len,
            rows: Vec::with_capacity(ROWS_PER_STEP),
            done: 0,
        }
    }

    /// Compares the rows read since the last step; false at the first one
    /// stored otherwise, or not at all.
    async fn step(&mut self) -> Result<bool, SourceError> {
        let reader = self
            .reader
            .take()
            .expect("the reader is back after each step");
        let (table, primary_key_len) = (self.table.clone(), self.primary_key_len);
        let rows = std::mem::take(&mut self.rows);
        let count = rows.len() as u64;
        let (reader, all_stored) = tokio::task::spawn_blocking(move || {
            let all_stored = all_stored(&reader, &table, primary_key_len, &rows);
            (reader, all_stored)
        })
        .await?;
        self.reader = Some(reader);
        let all_stored = all_stored.map_err(EngineError::from)?;
        if all_stored {
            self.done += count;
        }
        Ok(all_stored)
    }
}

/// Whether each of `rows` of `table` is stored as it is.
fn all_stored(
    reader: &StateReader,
    table: &str,
    primary_key_len: usize,
    rows: &[Vec<Value>],
) -> Result<bool, StoreError> {
    for row in rows {
        let key = encode_values(&row[..primary_key_len]);
        match reader.get_row(table, &key)? {
            Some(stored) if stored.len() == row.len() && stored.iter().zip(row).all(same) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Whether a stored value is the one read: as `==`, but a float `NaN` is
/// itself (a row holding one is stored as it is).
fn same((stored, read): (&Value, &Value)) -> bool {
    match (stored, read) {
        (Value::Float(a), Value::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
        _ => stored == read,
    }
}
