//! Creating the shop schema and bulk-loading it.

use sqlx::{PgConnection, PgPool};

use super::{WorkloadError, db_error};

const SHOP_SQL: &str = include_str!("../../schemas/shop.sql");
const DROP_SQL: &str =
    "DROP TABLE IF EXISTS order_items, orders, products, customers, categories CASCADE";

/// Drops the five shop tables if present and creates them from `schemas/shop.sql`.
pub async fn create_schema(pool: &PgPool) -> Result<(), WorkloadError> {
    sqlx::raw_sql(DROP_SQL)
        .execute(pool)
        .await
        .map_err(db_error("dropping the shop tables"))?;
    sqlx::raw_sql(SHOP_SQL)
        .execute(pool)
        .await
        .map_err(db_error("running schemas/shop.sql"))?;
    Ok(())
}

/// How many rows `load` creates. Each order gets 1..=`max_items_per_order` items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub categories: u64,
    pub products: u64,
    pub customers: u64,
    pub orders: u64,
    pub max_items_per_order: u32,
}

impl Scale {
    /// A few hundred rows: enough variety for tests, loads in milliseconds.
    pub fn small() -> Scale {
        Scale {
            categories: 5,
            products: 50,
            customers: 40,
            orders: 200,
            max_items_per_order: 5,
        }
    }

    /// Derives the other tables from the order count; `from_orders(333_334)` gives
    /// about 1,000,000 items.
    pub fn from_orders(orders: u64) -> Scale {
        Scale {
            categories: (orders / 2_000).clamp(5, 500),
            products: (orders / 20).max(50),
            customers: (orders / 5).max(40),
            orders,
            max_items_per_order: 5,
        }
    }

    /// The expected (mean) number of order items.
    pub fn expected_items(&self) -> u64 {
        self.orders * (1 + u64::from(self.max_items_per_order)) / 2
    }
}

/// Loads `scale` rows in one transaction with set-based `INSERT ... SELECT
/// generate_series` statements. Parents are drawn from each table's id range,
/// so the tables must have no gaps: load right after `create_schema`. As the
/// PostgreSQL manual advises for bulk loads, foreign keys and secondary indexes
/// are dropped first and recreated after (three times faster at a million
/// items). The server's `random()` is seeded, so a load is reproducible.
pub async fn load(pool: &PgPool, scale: &Scale) -> Result<(), WorkloadError> {
    let mut tx = pool.begin().await.map_err(db_error("starting the load"))?;
    let recreate = drop_foreign_keys_and_indexes(&mut tx).await?;
    for (sql, param, context) in load_steps(scale) {
        let mut query = sqlx::query(sql);
        if let Some(param) = param {
            query = query.bind(param);
        }
        query.execute(&mut *tx).await.map_err(db_error(context))?;
    }
    for statement in recreate {
        (sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await)
            .map_err(db_error("recreating foreign keys and indexes"))?;
    }
    tx.commit().await.map_err(db_error("committing the load"))?;
    sqlx::raw_sql("ANALYZE categories, products, customers, orders, order_items")
        .execute(pool)
        .await
        .map_err(db_error("analyzing the loaded tables"))?;
    Ok(())
}

/// The statements of a load, in order, each with its one parameter.
fn load_steps(scale: &Scale) -> [(&'static str, Option<i64>, &'static str); 7] {
    let max_items = i64::from(scale.max_items_per_order.max(1));
    [
        ("SELECT setseed(0.42)", None, "seeding random()"),
        (
            LOAD_CATEGORIES,
            Some(count(scale.categories)),
            "loading categories",
        ),
        (
            LOAD_PRODUCTS,
            Some(count(scale.products)),
            "loading products",
        ),
        (
            LOAD_CUSTOMERS,
            Some(count(scale.customers)),
            "loading customers",
        ),
        (LOAD_ORDERS, Some(count(scale.orders)), "loading orders"),
        (LOAD_ITEMS, Some(max_items), "loading order items"),
        (LOAD_TOTALS, None, "computing order totals"),
    ]
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Drops the shop's foreign keys and non-unique indexes, and returns the
/// statements that recreate them as they were (indexes first). The definitions
/// come from the catalog, so `schemas/shop.sql` stays their one source.
async fn drop_foreign_keys_and_indexes(
    conn: &mut PgConnection,
) -> Result<Vec<String>, WorkloadError> {
    let statements: Vec<(String, String)> = sqlx::query_as(DEFERRABLE_DEFINITIONS)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error("reading foreign keys and indexes"))?;
    for (drop, _) in &statements {
        (sqlx::raw_sql(sqlx::AssertSqlSafe(drop.clone()))
            .execute(&mut *conn)
            .await)
            .map_err(db_error("dropping foreign keys and indexes"))?;
    }
    Ok(statements
        .into_iter()
        .rev()
        .map(|(_, create)| create)
        .collect())
}

const DEFERRABLE_DEFINITIONS: &str = "
    SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),
           format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,
                  pg_get_constraintdef(oid))
    FROM pg_constraint
    WHERE contype = 'f'
      AND conrelid IN ('products'::regclass, 'orders'::regclass, 'order_items'::regclass)
    UNION ALL
    SELECT format('DROP INDEX %s', indexrelid::regclass), pg_get_indexdef(indexrelid)
    FROM pg_index
    WHERE NOT indisunique
      AND indrelid IN ('categories'::regclass, 'products'::regclass, 'customers'::regclass,
                       'orders'::regclass, 'order_items'::regclass)";

const LOAD_CATEGORIES: &str =
    "INSERT INTO categories (name) SELECT 'Category ' || g FROM generate_series(1, $1) g";

const LOAD_PRODUCTS: &str = "
    INSERT INTO products (category_id, name, description, price_cents)
    SELECT c.lo + floor(random() * (c.hi - c.lo + 1))::bigint,
           'Product ' || g,
           CASE WHEN random() < 0.1 THEN NULL
                ELSE 'Description of product ' || g || ': ' || md5(random()::text) END,
           100 + floor(random() * 99900)::bigint
    FROM generate_series(1, $1) g,
         (SELECT min(id) AS lo, max(id) AS hi FROM categories) c";

const LOAD_CUSTOMERS: &str = "
    INSERT INTO customers (name, email)
    SELECT 'Customer ' || g, 'customer' || g || '@example.com' FROM generate_series(1, $1) g";

const LOAD_ORDERS: &str = "
    INSERT INTO orders (customer_id, status, created_at)
    SELECT c.lo + floor(random() * (c.hi - c.lo + 1))::bigint,
           (ARRAY['draft', 'pending', 'pending', 'paid', 'paid', 'paid', 'paid', 'cancelled'])
               [1 + floor(random() * 8)::int],
           now() - random() * interval '60 days'
    FROM generate_series(1, $1) g,
         (SELECT min(id) AS lo, max(id) AS hi FROM customers) c";

// The series starts at o.id so that it is re-evaluated for every order: a
// function scan without outer references would be computed once and replayed.
const LOAD_ITEMS: &str = "
    INSERT INTO order_items (order_id, product_id, sku, quantity, unit_price_cents)
    SELECT x.order_id, p.id, 'SKU-' || p.id, x.quantity, p.price_cents
    FROM (SELECT o.id AS order_id,
                 b.lo + floor(random() * (b.hi - b.lo + 1))::bigint AS product_id,
                 1 + floor(random() * 5)::int AS quantity
          FROM orders o,
               generate_series(o.id, o.id + floor(random() * $1)::bigint) s,
               (SELECT min(id) AS lo, max(id) AS hi FROM products) b) x
    JOIN products p ON p.id = x.product_id
    ORDER BY x.order_id";

const LOAD_TOTALS: &str = "
    UPDATE orders o SET total_cents = s.total
    FROM (SELECT order_id, sum(quantity * unit_price_cents) AS total
          FROM order_items GROUP BY order_id) s
    WHERE o.id = s.order_id";
