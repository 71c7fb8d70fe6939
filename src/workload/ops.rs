//! The random transactions: what each [`Op`] does to the shop.

use rand::Rng;
use rand::seq::IndexedRandom;
use sqlx::PgConnection;

use super::runner::{
    OpError, OpResult, Runner, Table, inserted, tolerate_no_target, update_one, updated,
};
use super::{Op, RowCounts, values};

impl Runner<'_> {
    /// Runs `op` inside the open transaction `conn`; `index` is its place in the run.
    pub(super) async fn apply(&mut self, conn: &mut PgConnection, op: Op, index: u64) -> OpResult {
        match op {
            Op::NewOrder => self.new_order(conn).await.map(|(_, rows)| rows),
            Op::AddItem => self.add_item(conn).await,
            Op::NewCustomer => self.new_customer(conn).await,
            Op::NewProduct => self.new_product(conn).await,
            Op::RenameCustomer => self.rename_customer(conn).await,
            Op::ChangeCustomerEmail => self.change_customer_email(conn).await,
            Op::RenameProduct => self.rename_product(conn).await,
            Op::ChangeProductPrice => self.change_product_price(conn).await,
            Op::ChangeProductCategory => self.change_product_category(conn).await,
            Op::RenameCategory => self.rename_category(conn).await,
            Op::ChangeItemQuantity => self.change_item_quantity(conn).await,
            Op::MoveItem => self.move_item(conn).await,
            Op::DeleteItem => self.delete_item(conn).await,
            Op::ChangeItemProduct => self.change_item_product(conn).await,
            Op::ChangeOrderStatus => self.change_order_status(conn).await,
            Op::ChangeOrderTotal => self.change_order_total(conn).await,
            Op::ReassignOrderCustomer => self.reassign_order_customer(conn).await,
            Op::DeleteOrder => self.delete_row(conn, DELETE_ORDER, Table::Orders).await,
            Op::DeleteCustomer => {
                self.delete_row(conn, DELETE_CUSTOMER, Table::Customers)
                    .await
            }
            Op::DeleteProduct => self.delete_row(conn, DELETE_PRODUCT, Table::Products).await,
            Op::MultiTable => self.multi_table(conn).await,
            Op::LargeDescription => self.large_description(conn, index).await,
            Op::TouchLargeProduct => self.touch_large_product(conn).await,
            Op::TruncateItems => truncate_items(conn).await,
        }
    }

    // --- inserts -------------------------------------------------------------

    /// Inserts an order with 1..=5 items and its total; returns its id.
    async fn new_order(&mut self, conn: &mut PgConnection) -> OpResult<(i64, RowCounts)> {
        let customer = self.pick_optional(conn, Table::Customers).await?;
        let status = if self.rng.random_bool(0.2) {
            "draft"
        } else {
            values::live_status(&mut self.rng)
        };
        let order: i64 = sqlx::query_scalar(INSERT_ORDER)
            .bind(customer)
            .bind(status)
            .fetch_one(&mut *conn)
            .await?;
        self.saw(Table::Orders, order);
        let mut rows = inserted(1);
        for _ in 0..self.rng.random_range(1..=5) {
            rows.add(self.insert_item(conn, order).await?);
        }
        rows.add(update_total(conn, order).await?);
        Ok((order, rows))
    }

    async fn add_item(&mut self, conn: &mut PgConnection) -> OpResult {
        let order = self.pick(conn, Table::Orders).await?;
        let mut rows = self.insert_item(conn, order).await?;
        rows.add(update_total(conn, order).await?);
        Ok(rows)
    }

    /// An item of a random product at its current price, or of no product (a
    /// custom line) when the products are all gone.
    async fn insert_item(&mut self, conn: &mut PgConnection, order: i64) -> OpResult {
        let product = self.pick_optional(conn, Table::Products).await?;
        let sku = product.map_or_else(|| "SKU-CUSTOM".to_owned(), |id| format!("SKU-{id}"));
        let item: i64 = sqlx::query_scalar(INSERT_ITEM)
            .bind(order)
            .bind(product)
            .bind(sku)
            .bind(self.rng.random_range(1..=9_i32))
            .bind(values::price(&mut self.rng))
            .fetch_one(conn)
            .await?;
        self.saw(Table::OrderItems, item);
        Ok(inserted(1))
    }

    async fn new_customer(&mut self, conn: &mut PgConnection) -> OpResult {
        let name = values::person_name(&mut self.rng);
        let email = values::email_for(&mut self.rng, &name);
        let id: i64 = sqlx::query_scalar(INSERT_CUSTOMER)
            .bind(name)
            .bind(email)
            .fetch_one(conn)
            .await?;
        self.saw(Table::Customers, id);
        Ok(inserted(1))
    }

    async fn new_product(&mut self, conn: &mut PgConnection) -> OpResult {
        let category = self.pick_optional(conn, Table::Categories).await?;
        let name = values::product_name(&mut self.rng);
        let description = format!("A short description of {name}");
        let id: i64 = sqlx::query_scalar(INSERT_PRODUCT)
            .bind(category)
            .bind(name)
            .bind(description)
            .bind(values::price(&mut self.rng))
            .fetch_one(conn)
            .await?;
        self.saw(Table::Products, id);
        Ok(inserted(1))
    }

    // --- updates of single columns ---------------------------------------------

    async fn rename_customer(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Customers).await?;
        let name = values::person_name(&mut self.rng);
        update_one(conn, SET_CUSTOMER_NAME, id, name).await
    }

    async fn change_customer_email(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Customers).await?;
        let name = values::person_name(&mut self.rng);
        let email = values::email_for(&mut self.rng, &name);
        update_one(conn, SET_CUSTOMER_EMAIL, id, email).await
    }

    async fn rename_product(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Products).await?;
        let name = values::product_name(&mut self.rng);
        update_one(conn, SET_PRODUCT_NAME, id, name).await
    }

    async fn change_product_price(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Products).await?;
        let price = values::price(&mut self.rng);
        update_one(conn, SET_PRODUCT_PRICE_CENTS, id, price).await
    }

    /// Sometimes to no category, so search views see a NULL joined row.
    async fn change_product_category(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Products).await?;
        let category = match self.rng.random_bool(0.1) {
            true => None,
            false => self.pick_optional(conn, Table::Categories).await?,
        };
        update_one(conn, SET_PRODUCT_CATEGORY_ID, id, category).await
    }

    async fn rename_category(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Categories).await?;
        let name = format!("Category {}", values::word(&mut self.rng).to_uppercase());
        update_one(conn, SET_CATEGORY_NAME, id, name).await
    }

    async fn change_item_quantity(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::OrderItems).await?;
        let quantity = self.rng.random_range(1..=9_i32);
        update_one(conn, SET_ITEM_QUANTITY, id, quantity).await
    }

    async fn move_item(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::OrderItems).await?;
        let order = self.pick(conn, Table::Orders).await?;
        update_one(conn, SET_ITEM_ORDER_ID, id, order).await
    }

    async fn delete_item(&mut self, conn: &mut PgConnection) -> OpResult {
        self.delete_row(conn, DELETE_ITEM, Table::OrderItems).await
    }

    async fn change_item_product(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::OrderItems).await?;
        let product = self.pick(conn, Table::Products).await?;
        let rows = sqlx::query(CHANGE_ITEM_PRODUCT)
            .bind(id)
            .bind(product)
            .execute(conn)
            .await?;
        updated(rows.rows_affected())
    }

    /// Moves the order one step in its life cycle, in and out of the cache view's
    /// `status <> 'draft'` filter and the aggregate view's `status = 'paid'`.
    async fn change_order_status(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Orders).await?;
        self.change_status_of(conn, id).await
    }

    async fn change_status_of(&mut self, conn: &mut PgConnection, id: i64) -> OpResult {
        let current: Option<String> = sqlx::query_scalar(LOCK_ORDER_STATUS)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        let current = current.ok_or(OpError::NoTarget)?;
        let next = values::next_status(&current, &mut self.rng);
        update_one(conn, SET_ORDER_STATUS, id, next).await
    }

    async fn change_order_total(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Orders).await?;
        let total = values::price(&mut self.rng) * self.rng.random_range(1..=20);
        update_one(conn, SET_ORDER_TOTAL_CENTS, id, total).await
    }

    async fn reassign_order_customer(&mut self, conn: &mut PgConnection) -> OpResult {
        let id = self.pick(conn, Table::Orders).await?;
        let customer = self.pick_optional(conn, Table::Customers).await?;
        update_one(conn, SET_ORDER_CUSTOMER_ID, id, customer).await
    }

    async fn delete_row(
        &mut self,
        conn: &mut PgConnection,
        sql: &'static str,
        table: Table,
    ) -> OpResult {
        let id = self.pick(conn, table).await?;
        let rows = sqlx::query(sql).bind(id).execute(conn).await?;
        match rows.rows_affected() {
            0 => Err(OpError::NoTarget),
            n => Ok(RowCounts {
                deleted: n,
                ..RowCounts::default()
            }),
        }
    }

    // --- several tables, TOAST -------------------------------------------------

    /// Touches customers, orders, items and products in one transaction, and
    /// sometimes changes or deletes the order it just inserted, so a batch can
    /// hold a row's insert and its later fate together.
    async fn multi_table(&mut self, conn: &mut PgConnection) -> OpResult {
        let renamed = tolerate_no_target(self.rename_customer(conn).await)?;
        let (order, mut rows) = self.new_order(conn).await?;
        rows.add(renamed);
        rows.add(self.change_status_of(conn, order).await?);
        rows.add(tolerate_no_target(self.change_product_price(conn).await)?);
        rows.add(tolerate_no_target(self.change_item_quantity(conn).await)?);
        if self.rng.random_bool(0.3) {
            let deleted = sqlx::query(DELETE_ORDER).bind(order).execute(conn).await?;
            rows.deleted += deleted.rows_affected();
        }
        Ok(rows)
    }

    async fn large_description(&mut self, conn: &mut PgConnection, index: u64) -> OpResult {
        let id = self.pick(conn, Table::Products).await?;
        let token = format!("vktoken{:x}t{index}", self.seed);
        let description = values::large_text(&mut self.rng, &token);
        let rows = update_one(conn, SET_PRODUCT_DESCRIPTION, id, description).await?;
        self.large_products.push(id);
        Ok(rows)
    }

    /// Leaves the description alone on purpose: that is the point of this op.
    async fn touch_large_product(&mut self, conn: &mut PgConnection) -> OpResult {
        let Some(&id) = self.large_products.choose(&mut self.rng) else {
            return Err(OpError::NoTarget);
        };
        let (name, price) = (
            values::product_name(&mut self.rng),
            values::price(&mut self.rng),
        );
        let rows = sqlx::query(TOUCH_PRODUCT)
            .bind(id)
            .bind(name)
            .bind(price)
            .bind(self.rng.random_range(0..3_i32))
            .execute(conn)
            .await?;
        if rows.rows_affected() == 0 {
            self.large_products.retain(|product| *product != id);
        }
        updated(rows.rows_affected())
    }
}

async fn update_total(conn: &mut PgConnection, order: i64) -> OpResult {
    let rows = sqlx::query(UPDATE_TOTAL).bind(order).execute(conn).await?;
    updated(rows.rows_affected())
}

async fn truncate_items(conn: &mut PgConnection) -> OpResult {
    sqlx::query("TRUNCATE order_items").execute(conn).await?;
    Ok(RowCounts::default())
}

const INSERT_ORDER: &str = "INSERT INTO orders (customer_id, status) VALUES ($1, $2) RETURNING id";
const INSERT_ITEM: &str = "
    INSERT INTO order_items (order_id, product_id, sku, quantity, unit_price_cents)
    VALUES ($1, $2, $3, $4, coalesce((SELECT price_cents FROM products WHERE id = $2), $5))
    RETURNING id";
const INSERT_CUSTOMER: &str = "INSERT INTO customers (name, email) VALUES ($1, $2) RETURNING id";
const INSERT_PRODUCT: &str = "
    INSERT INTO products (category_id, name, description, price_cents)
    VALUES ($1, $2, $3, $4) RETURNING id";
const UPDATE_TOTAL: &str = "
    UPDATE orders SET total_cents =
        (SELECT coalesce(sum(quantity * unit_price_cents), 0) FROM order_items WHERE order_id = $1)
    WHERE id = $1";
const CHANGE_ITEM_PRODUCT: &str = "
    UPDATE order_items SET product_id = p.id, sku = 'SKU-' || p.id, unit_price_cents = p.price_cents
    FROM products p WHERE order_items.id = $1 AND p.id = $2";
const SET_CUSTOMER_NAME: &str = "UPDATE customers SET name = $2 WHERE id = $1";
const SET_CUSTOMER_EMAIL: &str = "UPDATE customers SET email = $2 WHERE id = $1";
const SET_PRODUCT_NAME: &str = "UPDATE products SET name = $2 WHERE id = $1";
const SET_PRODUCT_PRICE_CENTS: &str = "UPDATE products SET price_cents = $2 WHERE id = $1";
const SET_PRODUCT_CATEGORY_ID: &str = "UPDATE products SET category_id = $2 WHERE id = $1";
const SET_CATEGORY_NAME: &str = "UPDATE categories SET name = $2 WHERE id = $1";
const SET_ITEM_QUANTITY: &str = "UPDATE order_items SET quantity = $2 WHERE id = $1";
const SET_ITEM_ORDER_ID: &str = "UPDATE order_items SET order_id = $2 WHERE id = $1";
const SET_ORDER_STATUS: &str = "UPDATE orders SET status = $2 WHERE id = $1";
const SET_ORDER_TOTAL_CENTS: &str = "UPDATE orders SET total_cents = $2 WHERE id = $1";
const SET_ORDER_CUSTOMER_ID: &str = "UPDATE orders SET customer_id = $2 WHERE id = $1";
const SET_PRODUCT_DESCRIPTION: &str = "UPDATE products SET description = $2 WHERE id = $1";
const LOCK_ORDER_STATUS: &str = "SELECT status FROM orders WHERE id = $1 FOR UPDATE";
// $4 chooses what changes: 0 the name, 1 the price, 2 both.
const TOUCH_PRODUCT: &str = "
    UPDATE products SET name = CASE WHEN $4 <> 1 THEN $2 ELSE name END,
                        price_cents = CASE WHEN $4 <> 0 THEN $3 ELSE price_cents END
    WHERE id = $1";
const DELETE_ORDER: &str = "DELETE FROM orders WHERE id = $1";
const DELETE_CUSTOMER: &str = "DELETE FROM customers WHERE id = $1";
const DELETE_PRODUCT: &str = "DELETE FROM products WHERE id = $1";
const DELETE_ITEM: &str = "DELETE FROM order_items WHERE id = $1";
