//! The differential oracle for the example cache view `order_cache`
//! (views/order_cache.yaml): what Redis must hold, computed by one plain SQL
//! query over the source tables; what Redis does hold; and a readable diff.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sqlx::PgPool;

/// At most this many differences are listed; a summary line gives the count.
const MAX_DIFF_LINES: usize = 20;

/// The documents `order_cache` must hold, by key (`order:{id}`). Encoding as
/// the view writes it: integers as numbers, text as strings, `timestamptz` as
/// RFC 3339 in UTC with exactly 6 fraction digits, NULL as null; a missing
/// customer or product is `null`, an order without items has `"items": []`.
pub async fn expected_order_cache(pool: &PgPool) -> BTreeMap<String, Value> {
    documents_from_sql(pool, ORDER_CACHE_SQL, "order_cache").await
}

/// Runs an oracle query returning (key, JSON document) rows.
async fn documents_from_sql(
    pool: &PgPool,
    sql: &'static str,
    view: &str,
) -> BTreeMap<String, Value> {
    let rows: Vec<(String, String)> = sqlx::query_as(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("computing the expected {view}: {e}"));
    rows.into_iter()
        .map(|(key, doc)| {
            let doc = serde_json::from_str(&doc).expect("PostgreSQL returned bad JSON");
            (key, doc)
        })
        .collect()
}

const ORDER_CACHE_SQL: &str = r#"
    SELECT 'order:' || o.id,
           json_build_object(
               'id', o.id,
               'status', o.status,
               'total_cents', o.total_cents,
               'created_at', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'customer', CASE WHEN c.id IS NULL THEN NULL
                                ELSE json_build_object('id', c.id, 'name', c.name, 'email', c.email) END,
               'items', coalesce(
                   (SELECT json_agg(json_build_object(
                               'sku', oi.sku,
                               'quantity', oi.quantity,
                               'product', CASE WHEN p.id IS NULL THEN NULL
                                               ELSE json_build_object('name', p.name) END)
                           ORDER BY oi.id)
                    FROM order_items oi LEFT JOIN products p ON p.id = oi.product_id
                    WHERE oi.order_id = o.id),
                   '[]'::json)
           )::text
    FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
    WHERE o.status <> 'draft'"#;

/// The documents `product_cache` (views/product_cache.yaml) must hold, by key
/// (`product:{id}`): it carries the TOASTed description, so an unchanged-TOAST
/// column written as null would show here.
pub async fn expected_product_cache(pool: &PgPool) -> BTreeMap<String, Value> {
    documents_from_sql(pool, PRODUCT_CACHE_SQL, "product_cache").await
}

const PRODUCT_CACHE_SQL: &str = r#"
    SELECT 'product:' || p.id,
           json_build_object(
               'id', p.id,
               'name', p.name,
               'description', p.description,
               'price_cents', p.price_cents,
               'category', CASE WHEN c.id IS NULL THEN NULL
                                ELSE json_build_object('id', c.id, 'name', c.name) END
           )::text
    FROM products p LEFT JOIN categories c ON c.id = p.category_id"#;

/// The stored fields `product_search` (views/product_search.yaml) must hold
/// per document id: every product, with its name, category name and price
/// (the description is indexed, not stored).
pub async fn expected_product_search(pool: &PgPool) -> BTreeMap<String, Value> {
    let documents = documents_from_sql(pool, PRODUCT_SEARCH_SQL, "product_search").await;
    documents
        .into_iter()
        .map(|(id, mut doc)| {
            // A NULL field is absent from a Tantivy document.
            if let Some(fields) = doc.as_object_mut() {
                fields.retain(|_, value| !value.is_null());
            }
            (id, doc)
        })
        .collect()
}

const PRODUCT_SEARCH_SQL: &str = r#"
    SELECT p.id::text,
           json_build_object('name', p.name, 'category', c.name, 'price_cents', p.price_cents)::text
    FROM products p LEFT JOIN categories c ON c.id = p.category_id"#;

/// The rows `category_daily_sales` (views/category_daily_sales.yaml) must
/// hold, by group key: the GROUP BY over the source tables, dates in UTC.
/// Values are compared as PostgreSQL's text of each column, so `numeric`
/// sums and averages must match to the last digit.
pub async fn expected_category_daily_sales(pool: &PgPool) -> BTreeMap<String, Value> {
    let sql = format!("{CATEGORY_DAILY_SALES_COLUMNS} FROM ({CATEGORY_DAILY_SALES_SQL}) t");
    try_documents(pool, &sql)
        .await
        .unwrap_or_else(|e| panic!("computing the expected category_daily_sales: {e}"))
}

/// What the aggregate table holds, in the same form; an error while the
/// table does not exist yet.
pub async fn category_daily_sales_rows(pool: &PgPool) -> Result<BTreeMap<String, Value>, String> {
    let sql = format!("{CATEGORY_DAILY_SALES_COLUMNS} FROM analytics.category_daily_sales t");
    try_documents(pool, &sql).await
}

const CATEGORY_DAILY_SALES_SQL: &str = r#"
    SELECT date(o.created_at AT TIME ZONE 'UTC') AS day,
           p.category_id,
           count(*) AS items,
           sum(oi.quantity) AS units,
           sum(oi.quantity * oi.unit_price_cents) AS revenue_cents,
           max(oi.unit_price_cents) AS max_unit_price_cents,
           avg(oi.unit_price_cents) AS avg_unit_price_cents
    FROM order_items oi
    LEFT JOIN orders o ON o.id = oi.order_id
    LEFT JOIN products p ON p.id = oi.product_id
    WHERE o.status = 'paid'
    GROUP BY 1, 2"#;

const CATEGORY_DAILY_SALES_COLUMNS: &str = r#"
    SELECT json_build_array(t.day::text, t.category_id::text)::text,
           json_build_object('items', t.items::text, 'units', t.units::text,
                             'revenue_cents', t.revenue_cents::text,
                             'max_unit_price_cents', t.max_unit_price_cents::text,
                             'avg_unit_price_cents', t.avg_unit_price_cents::text)::text"#;

async fn try_documents(pool: &PgPool, sql: &str) -> Result<BTreeMap<String, Value>, String> {
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?;
    rows.into_iter()
        .map(|(key, doc)| Ok((key, serde_json::from_str(&doc).map_err(|e| e.to_string())?)))
        .collect()
}

/// Every key matching `pattern` (e.g. `order:*`) with its value parsed as
/// JSON; a value that is not JSON is kept as a string that says so, so a diff
/// shows it. Panics if Redis cannot be read.
pub async fn redis_documents(redis_url: &str, pattern: &str) -> BTreeMap<String, Value> {
    (try_redis_documents(redis_url, pattern).await)
        .unwrap_or_else(|e| panic!("reading {pattern} from {redis_url}: {e}"))
}

/// [`redis_documents`] that returns Redis errors, for polling while Redis restarts.
pub async fn try_redis_documents(
    redis_url: &str,
    pattern: &str,
) -> redis::RedisResult<BTreeMap<String, Value>> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys = scan_keys(&mut conn, pattern).await?;
    let mut documents = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(chunk).query_async(&mut conn).await?;
        for (key, value) in chunk.iter().zip(values) {
            // A key deleted between SCAN and MGET is simply not there.
            if let Some(raw) = value {
                documents.insert(key.clone(), parse_document(&raw));
            }
        }
    }
    Ok(documents)
}

/// `Ok` when the keys matching `pattern` hold exactly `expected`, else the
/// differences ([`diff_documents`]) or the Redis error: a condition to poll.
pub async fn redis_matches(
    redis_url: &str,
    pattern: &str,
    expected: &BTreeMap<String, Value>,
) -> Result<(), String> {
    let actual = try_redis_documents(redis_url, pattern)
        .await
        .map_err(|e| format!("reading {pattern}: {e}"))?;
    let differences = diff_documents(expected, &actual);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("\n"))
    }
}

/// Every key matching `pattern`, once each, in order.
pub async fn scan_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut keys = BTreeSet::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        // SCAN may return a key twice: the set keeps one.
        keys.extend(batch);
        if next == 0 {
            return Ok(keys.into_iter().collect());
        }
        cursor = next;
    }
}

fn parse_document(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(format!("<not JSON> {raw}")))
}

/// The differences between the expected and actual documents, one line each:
/// missing keys, leftover keys, and field-level differences (`order:7
/// .customer.name: expected "Ada", got "Bo"`). Empty when they are equal. Long
/// lists are cut to the first 20 after a summary line.
pub fn diff_documents(
    expected: &BTreeMap<String, Value>,
    actual: &BTreeMap<String, Value>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => lines.push(format!("missing key {key}")),
            Some(got) => diff_values(key, "", want, got, &mut lines),
        }
    }
    let leftover = actual.keys().filter(|key| !expected.contains_key(*key));
    lines.extend(leftover.map(|key| format!("leftover key {key}")));
    summarize(lines, expected.len(), actual.len())
}

fn diff_values(key: &str, path: &str, want: &Value, got: &Value, lines: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(want), Value::Object(got)) => {
            for (field, want_value) in want {
                let field_path = format!("{path}.{field}");
                match got.get(field) {
                    None => lines.push(format!(
                        "{key} {field_path}: missing, expected {want_value}"
                    )),
                    Some(got_value) => diff_values(key, &field_path, want_value, got_value, lines),
                }
            }
            let extra = got.iter().filter(|(field, _)| !want.contains_key(*field));
            lines.extend(
                extra.map(|(field, value)| format!("{key} {path}.{field}: unexpected {value}")),
            );
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                lines.push(format!(
                    "{key} {path}: {} elements, expected {}",
                    got.len(),
                    want.len()
                ));
            }
            for (index, (want_item, got_item)) in want.iter().zip(got).enumerate() {
                diff_values(key, &format!("{path}[{index}]"), want_item, got_item, lines);
            }
        }
        _ if want != got => lines.push(format!(
            "{key} {path}: expected {}, got {}",
            clip(want),
            clip(got)
        )),
        _ => {}
    }
}

/// A value for a diff line, cut short: descriptions can be 20 KB.
fn clip(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((end, _)) => format!("{}… ({} chars)", &text[..end], text.chars().count()),
        None => text,
    }
}

fn summarize(lines: Vec<String>, expected: usize, actual: usize) -> Vec<String> {
    if lines.is_empty() {
        return lines;
    }
    let count = lines.len();
    let mut shown = vec![format!(
        "{count} differences ({expected} documents expected, {actual} found):"
    )];
    shown.extend(lines.into_iter().take(MAX_DIFF_LINES));
    if count > MAX_DIFF_LINES {
        shown.push(format!("... and {} more", count - MAX_DIFF_LINES));
    }
    shown
}
