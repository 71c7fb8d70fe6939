//! One run's state: its transactions, their outcomes, and how it picks
//! existing rows without scanning tables.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{PgConnection, PgPool};

use super::{Op, RowCounts, WorkloadError, db_error};

/// How one transaction ended.
pub(super) enum Outcome {
    Committed(RowCounts),
    Skipped,
    Failed(sqlx::Error),
}

/// Why one op did not complete.
pub(super) enum OpError {
    /// Nothing to act on: the transaction is rolled back and counted as skipped.
    NoTarget,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for OpError {
    fn from(error: sqlx::Error) -> OpError {
        OpError::Db(error)
    }
}

pub(super) type OpResult<T = RowCounts> = Result<T, OpError>;

/// The shop tables, for picking ids.
#[derive(Debug, Clone, Copy)]
pub(super) enum Table {
    Categories,
    Products,
    Customers,
    Orders,
    OrderItems,
}

macro_rules! pick_sql {
    ($table:literal) => {
        concat!(
            "(SELECT id FROM ",
            $table,
            " WHERE id >= $1 ORDER BY id LIMIT 1)",
            " UNION ALL (SELECT id FROM ",
            $table,
            " WHERE id >= 1 ORDER BY id LIMIT 1) LIMIT 1"
        )
    };
}

macro_rules! max_sql {
    ($table:literal) => {
        concat!("SELECT coalesce(max(id), 0) FROM ", $table)
    };
}

impl Table {
    const ALL: [Table; 5] = [
        Table::Categories,
        Table::Products,
        Table::Customers,
        Table::Orders,
        Table::OrderItems,
    ];

    /// An existing id at or after `$1`, wrapping around to the lowest: one index
    /// probe instead of `ORDER BY random()` over the whole table. Ids below 1
    /// are never picked: rows written beside the workload live there (the
    /// end-to-end benchmark's latency markers), untouched by it.
    fn pick_sql(self) -> &'static str {
        match self {
            Table::Categories => pick_sql!("categories"),
            Table::Products => pick_sql!("products"),
            Table::Customers => pick_sql!("customers"),
            Table::Orders => pick_sql!("orders"),
            Table::OrderItems => pick_sql!("order_items"),
        }
    }

    fn max_sql(self) -> &'static str {
        match self {
            Table::Categories => max_sql!("categories"),
            Table::Products => max_sql!("products"),
            Table::Customers => max_sql!("customers"),
            Table::Orders => max_sql!("orders"),
            Table::OrderItems => max_sql!("order_items"),
        }
    }
}

/// The state of one run: its random generator and what it knows of the data.
pub(super) struct Runner<'a> {
    pool: &'a PgPool,
    pub(super) rng: StdRng,
    /// Makes the large descriptions' tokens unique across runs.
    pub(super) seed: u64,
    /// The highest id seen per table (index = `Table as usize`): picks draw below it.
    max_ids: [i64; 5],
    /// Products this run gave a large description, for `TouchLargeProduct`.
    pub(super) large_products: Vec<i64>,
}

impl<'a> Runner<'a> {
    pub(super) async fn new(pool: &'a PgPool, seed: u64) -> Result<Runner<'a>, WorkloadError> {
        let mut max_ids = [0; 5];
        for table in Table::ALL {
            max_ids[table as usize] = sqlx::query_scalar::<_, i64>(table.max_sql())
                .fetch_one(pool)
                .await
                .map_err(db_error("reading the id ranges"))?;
        }
        Ok(Runner {
            pool,
            rng: StdRng::seed_from_u64(seed),
            seed,
            max_ids,
            large_products: Vec::new(),
        })
    }

    pub(super) async fn transaction(&mut self, op: Op, index: u64) -> Outcome {
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            Err(error) => return Outcome::Failed(error),
        };
        match self.apply(&mut tx, op, index).await {
            Ok(rows) => match tx.commit().await {
                Ok(()) => Outcome::Committed(rows),
                Err(error) => Outcome::Failed(error),
            },
            // A rollback that fails leaves a broken connection, which the pool drops.
            Err(OpError::NoTarget) => {
                let _ = tx.rollback().await;
                Outcome::Skipped
            }
            Err(OpError::Db(error)) => {
                let _ = tx.rollback().await;
                Outcome::Failed(error)
            }
        }
    }

    // --- picking rows ------------------------------------------------------

    pub(super) async fn pick(&mut self, conn: &mut PgConnection, table: Table) -> OpResult<i64> {
        self.pick_optional(conn, table)
            .await?
            .ok_or(OpError::NoTarget)
    }

    pub(super) async fn pick_optional(
        &mut self,
        conn: &mut PgConnection,
        table: Table,
    ) -> OpResult<Option<i64>> {
        let max = self.max_ids[table as usize];
        if max < 1 {
            return Ok(None);
        }
        let start = self.rng.random_range(1..=max);
        let id = sqlx::query_scalar::<_, i64>(table.pick_sql())
            .bind(start)
            .fetch_optional(conn)
            .await?;
        Ok(id)
    }

    pub(super) fn saw(&mut self, table: Table, id: i64) {
        let max = &mut self.max_ids[table as usize];
        *max = (*max).max(id);
    }
}

/// For the optional steps of a multi-table transaction: nothing to act on is fine.
pub(super) fn tolerate_no_target(result: OpResult) -> OpResult {
    match result {
        Err(OpError::NoTarget) => Ok(RowCounts::default()),
        other => other,
    }
}

pub(super) fn inserted(n: u64) -> RowCounts {
    RowCounts {
        inserted: n,
        ..RowCounts::default()
    }
}

/// An update that found no row (deleted by a concurrent run) did nothing: skip.
pub(super) fn updated(n: u64) -> OpResult {
    match n {
        0 => Err(OpError::NoTarget),
        n => Ok(RowCounts {
            updated: n,
            ..RowCounts::default()
        }),
    }
}

pub(super) async fn update_one<T>(
    conn: &mut PgConnection,
    sql: &'static str,
    id: i64,
    value: T,
) -> OpResult
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let rows = sqlx::query(sql).bind(id).bind(value).execute(conn).await?;
    updated(rows.rows_affected())
}
