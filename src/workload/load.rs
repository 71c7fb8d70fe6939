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

/// Loads `scale` rows into the empty tables that `create_schema` leaves, in one
/// transaction, with set-based `INSERT ... SELECT generate_series` statements
/// (parents are drawn from the contiguous id ranges a fresh schema has). The
/// server's `random()` is seeded, so a load is reproducible.
pub async fn load(pool: &PgPool, scale: &Scale) -> Result<(), WorkloadError> {
    let mut tx = pool.begin().await.map_err(db_error("starting the load"))?;
    let conn = &mut *tx;
    load_statement(conn, "SELECT setseed(0.42)", &[], "seeding random()").await?;
    load_statement(
        conn,
        LOAD_CATEGORIES,
        &[count(scale.categories)],
        "loading categories",
    )
    .await?;
    load_statement(
        conn,
        LOAD_PRODUCTS,
        &[count(scale.products)],
        "loading products",
    )
    .await?;
    load_statement(
        conn,
        LOAD_CUSTOMERS,
        &[count(scale.customers)],
        "loading customers",
    )
    .await?;
    load_statement(conn, LOAD_ORDERS, &[count(scale.orders)], "loading orders").await?;
    let max_items = i64::from(scale.max_items_per_order.max(1));
    load_statement(conn, LOAD_ITEMS, &[max_items], "loading order items").await?;
    load_statement(conn, LOAD_TOTALS, &[], "computing order totals").await?;
    tx.commit().await.map_err(db_error("committing the load"))?;
    sqlx::raw_sql("ANALYZE categories, products, customers, orders, order_items")
        .execute(pool)
        .await
        .map_err(db_error("analyzing the loaded tables"))?;
    Ok(())
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn load_statement(
    conn: &mut PgConnection,
    sql: &'static str,
    params: &[i64],
    context: &'static str,
) -> Result<(), WorkloadError> {
    let mut query = sqlx::query(sql);
    for param in params {
        query = query.bind(*param);
    }
    query.execute(conn).await.map_err(db_error(context))?;
    Ok(())
}

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
