-- The example shop: the source schema that the example views in views/ read,
-- that the workload generator (src/workload.rs) loads and mutates, and that the
-- integration tests use. Not idempotent on purpose: the loader drops the five
-- tables first. Every table keeps the default replica identity (primary key),
-- so updates and deletes carry only the key of the old row.

CREATE TABLE categories (
    id   bigserial PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE products (
    id          bigserial PRIMARY KEY,
    category_id bigint REFERENCES categories ON DELETE SET NULL,
    name        text NOT NULL,
    description text,
    price_cents bigint NOT NULL
);
-- Out of line and uncompressed: a 10-20 KB description is TOASTed as is, so an
-- update of another column sends it as an "unchanged TOAST" column in pgoutput.
ALTER TABLE products ALTER COLUMN description SET STORAGE EXTERNAL;
CREATE INDEX products_category_id_idx ON products (category_id);

CREATE TABLE customers (
    id    bigserial PRIMARY KEY,
    name  text NOT NULL,
    email text NOT NULL
);

CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint REFERENCES customers ON DELETE SET NULL,
    status      text NOT NULL CHECK (status IN ('draft', 'pending', 'paid', 'cancelled')),
    total_cents bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);

CREATE TABLE order_items (
    id               bigserial PRIMARY KEY,
    order_id         bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
    product_id       bigint REFERENCES products ON DELETE SET NULL,
    sku              text NOT NULL,
    quantity         int NOT NULL,
    unit_price_cents bigint NOT NULL
);
CREATE INDEX order_items_order_id_idx ON order_items (order_id);
CREATE INDEX order_items_product_id_idx ON order_items (product_id);
