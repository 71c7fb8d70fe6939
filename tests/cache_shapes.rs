//! A cache view of another shape than the shop's, on another schema: composite
//! primary keys and joins, a `where` on a joined column, a key template whose
//! column changes, primary-key updates, a descending array order, three
//! levels of nesting, a `one` join over a column that is not unique (in
//! the document and in `where`), a partitioned table, TRUNCATE, every value type the
//! README documents, a stored column's type changed (running and stopped),
//! a column and a table created again (stopped, and a table running), and
//! partitions truncated, detached and attached (running and stopped), a
//! table rewritten with and without changing its rows, and output styles
//! the database sets (`bytea_output`), array columns as JSON arrays,
//! computed fields at every level (one that overflows `integer` sets its
//! root aside), relations with a `where` (a `many` one through its own
//! `one` relation, with a `limit`, a `one` one that `where` reads, and a
//! hidden one that only a computed field reads), and
//! measures over a `many` relation's rows (`count()`, a filtered `sum`,
//! `max` of a text, `avg` of the first rows, `count_distinct`).
//! Random changes, then the SQL oracle.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{PgServer, RedisServer, ServiceSetup, http_get, redis_matches, wait_until};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::PgPool;

const SCHEMA: &str = "
    CREATE SCHEMA lab;
    CREATE TYPE lab.account_kind AS ENUM ('basic', 'pro', 'team', 'k0', 'k1', 'k2');
    CREATE TABLE lab.regions (code text, zone int, label text, PRIMARY KEY (code, zone));
    CREATE TABLE lab.accounts (
        id bigint PRIMARY KEY, kind lab.account_kind NOT NULL, active boolean, region_code text, region_zone int,
        score numeric(14,4), ratio float8, born date, seen timestamp, at timestamptz, tags jsonb, uid uuid,
        labels text[], grid int[], kinds lab.account_kind[]);
    CREATE TABLE lab.events (
        id bigint PRIMARY KEY, account_id bigint, seq int, note text, region_code text, region_zone int,
        photo bytea)
        PARTITION BY RANGE (id);
    CREATE TABLE lab.events_low PARTITION OF lab.events FOR VALUES FROM (MINVALUE) TO (150);
    CREATE TABLE lab.events_high PARTITION OF lab.events FOR VALUES FROM (150) TO (1000);";

/// The documents of `account_doc`, with `{key}` and `{where}` filled in as
/// the view file says, and `{uid}` the uid field (or nothing).
const ORACLE: &str = r#"
    SELECT {key}, json_build_object(
        'id', a.id, 'kind', a.kind, 'active', a.active, 'score', a.score::text, 'ratio', a.ratio,
        'born', a.born::text,
        'seen', to_char(a.seen, 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        'at', to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'tags', a.tags {uid}, 'labels', a.labels, 'grid', a.grid, 'kinds', a.kinds,
        'score_x2', (a.score * 2)::text, 'score_third', (coalesce(a.score, 0) / 3)::text,
        'region_tag', upper(r.label) || '/' || r.code,
        'is_pro', a.kind = 'pro', 'born_next', (a.born + 1)::text,
        'born_week', extract(week from a.born),
        -- `infinity` has no ISO year here (PostgreSQL: `Infinity`; documented).
        'born_isoyear', CASE WHEN isfinite(a.born) THEN date_part('isoyear', a.born) END,
        'seen_second', extract(second from a.seen)::text,
        'at_second', date_part('second', a.at),
        'home_label', (SELECT lower(h.label) || ':' || h.zone FROM lab.regions h
                       WHERE h.code = a.region_code AND h.zone = a.region_zone AND h.zone < 5),
        'trail_label', (SELECT p.label || '@' || t.seq
                        FROM (SELECT * FROM lab.events e WHERE e.account_id = a.id
                              ORDER BY e.id LIMIT 1) t
                        LEFT JOIN lab.regions p ON p.code = t.region_code AND p.zone = t.region_zone),
        'region', CASE WHEN r.code IS NULL THEN NULL
                       ELSE json_build_object('code', r.code, 'zone', r.zone, 'label', r.label) END,
        'events', coalesce((
            SELECT json_agg(json_build_object(
                       'seq', x.seq, 'note', x.note, 'photo', '\x' || encode(x.photo, 'hex'),
                       'next_seq', x.seq + 1, 'place', coalesce(x.region_label, x.note),
                       'region', CASE WHEN x.region_code IS NULL THEN NULL
                                      ELSE json_build_object('label', x.region_label) END)
                   ORDER BY x.seq DESC NULLS FIRST, x.id)
            FROM ({events}) x), '[]'::json),
        'first_event', (
            SELECT json_build_object('seq', e.seq, 'note', e.note, 'short', left(e.note, 6))
            FROM lab.events e WHERE e.account_id = a.id AND e.seq > 1 ORDER BY e.id LIMIT 1),
        'event_count', (SELECT count(*) FROM lab.events e WHERE e.account_id = a.id),
        'noted_seq_sum', (SELECT sum(e.seq) FILTER (WHERE e.seq > 0) FROM lab.events e
                          WHERE e.account_id = a.id AND e.note IS NOT NULL),
        'last_note', (SELECT max(e.note) FROM lab.events e WHERE e.account_id = a.id),
        'top_seq_avg', (SELECT avg(t.seq) FROM (SELECT e.seq FROM lab.events e
                        WHERE e.account_id = a.id ORDER BY e.seq DESC NULLS FIRST, e.id LIMIT 2) t
                       )::text,
        'event_regions', (SELECT count(DISTINCT e.region_code) FROM lab.events e
                          WHERE e.account_id = a.id)
    )::text
    FROM lab.accounts a LEFT JOIN lab.regions r ON r.code = a.region_code AND r.zone = a.region_zone
    WHERE ({where})
        -- A shown event's `seq + 1` past `integer` raises: that account is a dead letter.
        AND NOT EXISTS (SELECT 1 FROM ({events}) x WHERE x.seq = 2147483647)"#;

/// The events an account's document shows: the relation's `where`, its
/// order and its `limit`, before any field is computed (as viewkeeper
/// computes the fields of the rows it keeps only).
const EVENTS: &str = "
    SELECT e.id, e.seq, e.note, e.photo, er.code AS region_code, er.label AS region_label
    FROM lab.events e
    LEFT JOIN lab.regions er ON er.code = e.region_code AND er.zone = e.region_zone
    WHERE e.account_id = a.id AND e.seq IS DISTINCT FROM 2 AND coalesce(er.zone, 0) < 12
    ORDER BY e.seq DESC NULLS FIRST, e.id LIMIT 3";

/// One version of the view file and the oracle that goes with it.
struct Version {
    key: &'static str,
    key_sql: &'static str,
    filter: &'static str,
    filter_sql: &'static str,
    with_uid: bool,
}

const FIRST: Version = Version {
    key: "acct:{kind}:{id}",
    key_sql: "'acct:' || a.kind || ':' || a.id",
    filter: "active AND region.label IS NOT NULL",
    filter_sql: "a.active AND r.label IS NOT NULL",
    with_uid: true,
};

/// Another key and filter, the same columns: rebuilt from the state store.
const SECOND: Version = Version {
    key: "acct:{id}",
    key_sql: "'acct:' || a.id",
    filter: "coalesce(active, false) OR kind = 'pro' OR first_event.seq > 2",
    filter_sql: "coalesce(a.active, false) OR a.kind = 'pro' OR (SELECT e.seq FROM lab.events e
                 WHERE e.account_id = a.id AND e.seq > 1 ORDER BY e.id LIMIT 1) > 2",
    with_uid: true,
};

/// One column fewer: the state store no longer fits, a new snapshot is taken.
const THIRD: Version = Version {
    with_uid: false,
    ..SECOND
};

impl Version {
    fn oracle(&self) -> String {
        ORACLE
            .replace("{events}", EVENTS)
            .replace("{key}", self.key_sql)
            .replace("{where}", self.filter_sql)
            .replace(
                "{uid}",
                if self.with_uid {
                    ", 'uid', a.uid::text"
                } else {
                    ""
                },
            )
    }

    /// Writes the view file for this version into `dir`.
    fn write_view(&self, dir: &std::path::Path) {
        let original = include_str!("views_lab/account_doc.yaml");
        let mut text = original
            .replace(
                "key: \"acct:{kind}:{id}\"",
                &format!("key: \"{}\"", self.key),
            )
            .replace(
                "where: \"active AND region.label IS NOT NULL\"",
                &format!("where: \"{}\"", self.filter),
            );
        if !self.with_uid {
            text = text.replace("  uid: uid\n", "");
        }
        assert_ne!(text.len(), 0);
        std::fs::write(dir.join("account_doc.yaml"), text).expect("writing the view file");
    }
}

const CODES: [&str; 3] = ["eu", "us", "ap"];

/// One random transaction against the lab schema.
fn random_statement(rng: &mut StdRng) -> String {
    let account = rng.random_range(1..60);
    let code = CODES[rng.random_range(0..CODES.len())];
    let zone = rng.random_range(1..3);
    match rng.random_range(0..14) {
        0 | 1 => format!(
            "INSERT INTO lab.regions VALUES ('{code}', {zone}, {}) ON CONFLICT (code, zone) DO UPDATE SET label = EXCLUDED.label",
            {
                let label = format!("'{code}-{zone}-{}'", rng.random_range(0..100));
                any(rng, &[&label])
            }
        ),
        2 => format!("DELETE FROM lab.regions WHERE code = '{code}' AND zone = {zone}"),
        // A primary-key update: the old key arrives only as the replica identity.
        3 => format!(
            "UPDATE lab.regions SET zone = zone + 10 WHERE code = '{code}' AND zone = {zone}
             AND NOT EXISTS (SELECT 1 FROM lab.regions WHERE code = '{code}' AND zone = {zone} + 10)"
        ),
        4..=6 => format!(
            "INSERT INTO lab.accounts VALUES ({account}, '{kind}', {active}, '{code}', {zone}, {score}, {ratio},
                 {born}, {seen}, {at}, {tags}, {uid}, {labels}, {grid}, {kinds})
             ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, active = EXCLUDED.active,
                 region_code = EXCLUDED.region_code, region_zone = EXCLUDED.region_zone, score = EXCLUDED.score,
                 ratio = EXCLUDED.ratio, born = EXCLUDED.born, seen = EXCLUDED.seen, at = EXCLUDED.at,
                 tags = EXCLUDED.tags, uid = EXCLUDED.uid, labels = EXCLUDED.labels, grid = EXCLUDED.grid,
                 kinds = EXCLUDED.kinds",
            kind = ["basic", "pro", "team"][rng.random_range(0..3)],
            active = any(rng, &["true", "true", "false"]),
            score = {
                let score = format!("{}.{:04}", rng.random_range(-99999..99999), rng.random_range(0..10000));
                any(rng, &[&score])
            },
            ratio = any(rng, &["0.1", "1e300", "-2.5", "'NaN'", "'Infinity'", "3", "'-0'"]),
            // The ISO week of 2021-01-03 is the 53rd of 2020.
            born = any(rng, &["'2024-02-29'", "'1999-12-31'", "'infinity'", "'2021-01-03'"]),
            seen = any(rng, &["'2026-01-02 03:04:05.5'", "'2026-11-24 23:59:59.999999'", "'2000-01-01 00:00:00'"]),
            at = any(rng, &["'2026-03-01 00:30:00+05:30'", "'2025-12-31 23:00:00-02'", "'2026-06-15 12:00:00.123+00'"]),
            tags = any(rng, &[r#"'{"b": [1, 2.50, "x"], "a": null, "n": 12345678901234567890}'"#]),
            uid = any(rng, &["'6f1c2c3e-59b4-4d5e-9f3a-0c2b1d4e5f60'"]),
            labels = any(rng, &[r#"'{rock,"hip hop",NULL,"NULL"}'"#, "'{}'", r#"ARRAY['a,b', '}{', 'x\y', '"q"']"#]),
            grid = any(rng, &["'{{1,2},{3,NULL}}'", "'[0:1]={7,-8}'", "'{}'"]),
            kinds = any(rng, &["'{pro,basic}'", "'{team}'"]),
        ),
        7 => format!("UPDATE lab.accounts SET kind = 'k{}' WHERE id = {account}", rng.random_range(0..3)),
        8 => format!("UPDATE lab.accounts SET active = NOT coalesce(active, false) WHERE id = {account}"),
        // Only an array column changes.
        9 if rng.random_bool(0.5) => format!(
            "UPDATE lab.accounts SET labels = array_append(labels, 'l{}') WHERE id = {account}",
            rng.random_range(0..5)
        ),
        9 => format!("DELETE FROM lab.accounts WHERE id = {account}"),
        10 | 11 => format!(
            "INSERT INTO lab.events VALUES ({id}, {account}, {seq}, 'note {id}', '{code}', {zone}, {photo})
             ON CONFLICT (id) DO UPDATE SET account_id = EXCLUDED.account_id, seq = EXCLUDED.seq,
                 photo = EXCLUDED.photo",
            id = rng.random_range(1..300),
            // The largest `integer`: its `next_seq` overflows.
            seq = any(rng, &["0", "1", "2", "3", "4", "2147483647"]),
            photo = any(rng, &["'\\x00ff41'::bytea", "'\\x'::bytea"]),
        ),
        12 => format!("DELETE FROM lab.events WHERE id = {}", rng.random_range(1..300)),
        _ => format!("UPDATE lab.events SET note = note || '!' WHERE account_id = {account}"),
    }
}

/// One of `options` as SQL, or NULL now and then.
fn any(rng: &mut StdRng, options: &[&str]) -> String {
    if rng.random_bool(0.15) {
        "NULL".into()
    } else {
        options[rng.random_range(0..options.len())].to_string()
    }
}

async fn expected(pool: &PgPool, version: &Version) -> BTreeMap<String, Value> {
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(version.oracle()))
        .fetch_all(pool)
        .await
        .expect("oracle");
    rows.into_iter()
        .map(|(key, doc)| (key, serde_json::from_str(&doc).expect("oracle JSON")))
        .collect()
}

async fn converged(pool: &PgPool, redis_url: &str, version: &Version) {
    wait_until(
        Duration::from_secs(120),
        "redis matches the lab oracle",
        || async { redis_matches(redis_url, "acct:*", &expected(pool, version).await).await },
    )
    .await
}

/// How many snapshots the service's log shows, over all its starts.
fn snapshots_taken(service: &harness::Service) -> usize {
    service
        .log_tail(1_000_000)
        .matches("snapshot complete")
        .count()
}

/// A partition of `lab.events` for ids from `from` on, created and filled
/// in one transaction.
fn new_partition(name: &str, from: i64) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "BEGIN;
         CREATE TABLE lab.events_{name} PARTITION OF lab.events
             FOR VALUES FROM ({from}) TO ({});
         INSERT INTO lab.events
             SELECT {from} + n, 1 + n % 7, n, 'bulk ' || n, 'eu', 1, NULL
             FROM generate_series(0, 49) n;
         COMMIT;",
        from + 1000
    ))
}

/// Waits until the service has found that `partition`'s rows came through
/// the log, and checks that it did not take it as attached holding rows.
async fn rows_came_through_the_log(service: &harness::Service, partition: &str) {
    wait_until(
        Duration::from_secs(60),
        "the new partition's rows found in the log",
        || async {
            let log = service.log_tail(100_000);
            let found = log.lines().any(|line| {
                line.contains("its rows came through the log") && line.contains(partition)
            });
            if found {
                Ok(())
            } else {
                Err(format!("not yet, for {partition}"))
            }
        },
    )
    .await;
    let log = service.log_tail(100_000);
    assert!(
        !log.contains(&format!("partition {partition} of table lab.events was")),
        "{log}"
    );
}

async fn run_random(pool: &PgPool, rng: &mut StdRng, transactions: usize) {
    for _ in 0..transactions {
        let statements: Vec<String> = (0..rng.random_range(1..4))
            .map(|_| random_statement(rng))
            .collect();
        let script = format!("BEGIN; {}; COMMIT;", statements.join("; "));
        sqlx::raw_sql(sqlx::AssertSqlSafe(script))
            .execute(pool)
            .await
            .expect("a lab transaction");
    }
}

/// A `jsonb` value reaches its document with every digit of its numbers:
/// the raw document holds PostgreSQL's own text of the value. Numbers read
/// through an `f64` were rounded, lost their scale, or (past a float's
/// range) turned the whole value into a string; the oracle above compares
/// parsed documents, which round the same way on both sides.
async fn exact_json_numbers_reach_the_document(pool: &PgPool, redis_url: &str) {
    let (id, key, before): (i64, String, Option<String>) = sqlx::query_as(
        "SELECT a.id, 'acct:' || a.kind || ':' || a.id, a.tags::text FROM lab.accounts a
         JOIN lab.regions r ON r.code = a.region_code AND r.zone = a.region_zone
         WHERE a.active AND r.label IS NOT NULL ORDER BY a.id LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .expect("an account with a document");
    let tags: String = sqlx::query_scalar(
        "UPDATE lab.accounts
         SET tags = '{\"n\": 12345678901234567890.123456789, \"p\": 12.50, \"m\": 1e309}'
         WHERE id = $1 RETURNING tags::text",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("new tags");
    let client = redis::Client::open(redis_url).expect("redis url");
    wait_until(
        Duration::from_secs(60),
        "the document holds the tags as PostgreSQL writes them",
        || async {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let raw: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            match raw {
                Some(raw) if raw.contains(&format!("\"tags\":{tags}")) => Ok(()),
                other => Err(format!("{key}: {other:?}")),
            }
        },
    )
    .await;
    // The oracle's parser cannot read 1e309: the tags as they were.
    sqlx::query("UPDATE lab.accounts SET tags = $1::jsonb WHERE id = $2")
        .bind(before)
        .bind(id)
        .execute(pool)
        .await
        .expect("the tags back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keys_joined_filters_key_changes_and_value_types_match_the_oracle() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let url = pg.create_database("lab").await;
    let pool = pg.pool("lab").await;
    sqlx::raw_sql(SCHEMA)
        .execute(&pool)
        .await
        .expect("creating the lab schema");
    // Output styles the database sets for every session: viewkeeper's own
    // sessions set theirs (the oracle writes bytes with `encode`).
    sqlx::raw_sql(
        "ALTER DATABASE lab SET bytea_output = 'escape';
         ALTER DATABASE lab SET IntervalStyle = 'iso_8601';",
    )
    .execute(&pool)
    .await
    .expect("setting the database's output styles");
    let mut rng = StdRng::seed_from_u64(5);
    run_random(&pool, &mut rng, 300).await;

    let views = tempfile::tempdir().expect("a views directory");
    FIRST.write_view(views.path());
    let setup = ServiceSetup::with_views(&url, &redis.url(), views.path().to_path_buf());
    let mut service = setup.start();
    converged(&pool, &redis.url(), &FIRST).await;

    run_random(&pool, &mut rng, 1_500).await;
    sqlx::raw_sql("TRUNCATE lab.events")
        .execute(&pool)
        .await
        .expect("truncate");
    run_random(&pool, &mut rng, 300).await;
    converged(&pool, &redis.url(), &FIRST).await;
    assert!(
        expected(&pool, &FIRST).await.len() > 5,
        "the filter must leave some documents"
    );
    exact_json_numbers_reach_the_document(&pool, &redis.url()).await;
    converged(&pool, &redis.url(), &FIRST).await;

    // A new key template and filter over the same columns: rebuilt from the
    // state store on restart, old keys deleted.
    service.kill().await;
    SECOND.write_view(views.path());
    run_random(&pool, &mut rng, 100).await;
    let mut service = setup.start();
    converged(&pool, &redis.url(), &SECOND).await;
    assert!(
        service
            .log_tail(100_000)
            .contains("view definitions changed")
    );

    // A field dropped: the stored columns change, so a new snapshot is taken.
    service.kill().await;
    THIRD.write_view(views.path());
    let mut service = setup.start();
    run_random(&pool, &mut rng, 100).await;
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(service.log_tail(100_000).contains("new snapshot"));

    // A stored column's type changes while running: PostgreSQL rewrites
    // every row (rounded to two places) and logs no row change, so only a
    // new snapshot corrects the rows stored before. The next change to the
    // table brings its new description.
    sqlx::raw_sql(
        "ALTER TABLE lab.accounts ALTER COLUMN score TYPE numeric(14,2);
         UPDATE lab.accounts SET kind = kind WHERE id = (SELECT min(id) FROM lab.accounts);",
    )
    .execute(&pool)
    .await
    .expect("altering the column's type");
    run_random(&pool, &mut rng, 50).await;
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(
        service
            .log_tail(100_000)
            .contains("column score of table lab.accounts changed its type")
    );

    // And while viewkeeper is stopped: the stored layout names the old type,
    // and the start says so.
    service.kill().await;
    sqlx::raw_sql("ALTER TABLE lab.accounts ALTER COLUMN score TYPE numeric(14,1)")
        .execute(&pool)
        .await
        .expect("altering the column's type");
    let mut service = setup.start();
    converged(&pool, &redis.url(), &THIRD).await;
    let log = service.log_tail(100_000);
    assert!(
        log.contains("column lab.accounts.score changed type (numeric(14,2) to numeric(14,1))"),
        "the start names the change:\n{log}"
    );
    run_random(&pool, &mut rng, 50).await;
    converged(&pool, &redis.url(), &THIRD).await;

    // Columns dropped and added again while viewkeeper is stopped: the same
    // names, types and order, every value gone, and none of it in the log.
    service.kill().await;
    sqlx::raw_sql(
        "ALTER TABLE lab.accounts DROP COLUMN ratio, DROP COLUMN born, DROP COLUMN seen,
             DROP COLUMN at, DROP COLUMN tags, DROP COLUMN uid, DROP COLUMN labels, DROP COLUMN grid,
             DROP COLUMN kinds;
         ALTER TABLE lab.accounts ADD COLUMN ratio float8, ADD COLUMN born date,
             ADD COLUMN seen timestamp, ADD COLUMN at timestamptz, ADD COLUMN tags jsonb,
             ADD COLUMN uid uuid, ADD COLUMN labels text[], ADD COLUMN grid int[],
             ADD COLUMN kinds lab.account_kind[]",
    )
    .execute(&pool)
    .await
    .expect("dropping and adding the column");
    let mut service = setup.start();
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(
        service
            .log_tail(100_000)
            .contains("column ratio of table lab.accounts was dropped and added again")
    );

    // A table dropped and created again with other rows, likewise.
    service.kill().await;
    sqlx::raw_sql(
        "CREATE TABLE lab.regions_new (LIKE lab.regions INCLUDING ALL);
         INSERT INTO lab.regions_new SELECT code, zone, label || ' (new)' FROM lab.regions;
         DROP TABLE lab.regions;
         ALTER TABLE lab.regions_new RENAME TO regions;",
    )
    .execute(&pool)
    .await
    .expect("creating the table again");
    let mut service = setup.start();
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(
        service
            .log_tail(100_000)
            .contains("table lab.regions was dropped and created again")
    );
    run_random(&pool, &mut rng, 50).await;
    converged(&pool, &redis.url(), &THIRD).await;

    // The views read a column again after a kill under load, which left
    // puts in the state log that the sink had not released: the stored rows
    // lack the column, so no document is computed from them before the
    // start's new snapshot (the start read past the rows' end and panicked:
    // trial 16). Then back to the third version.
    run_random(&pool, &mut rng, 50).await;
    service.kill().await;
    SECOND.write_view(views.path());
    let mut service = setup.start();
    converged(&pool, &redis.url(), &SECOND).await;
    run_random(&pool, &mut rng, 50).await;
    converged(&pool, &redis.url(), &SECOND).await;
    service.assert_running();
    service.kill().await;
    THIRD.write_view(views.path());
    let mut service = setup.start();
    converged(&pool, &redis.url(), &THIRD).await;

    // And while running: the new table is in no publication, so its rows
    // and changes would never reach the stream.
    sqlx::raw_sql(
        "BEGIN;
         CREATE TABLE lab.regions_new (LIKE lab.regions INCLUDING ALL);
         INSERT INTO lab.regions_new SELECT code, zone, label || ' (newer)' FROM lab.regions;
         DROP TABLE lab.regions;
         ALTER TABLE lab.regions_new RENAME TO regions;
         COMMIT;",
    )
    .execute(&pool)
    .await
    .expect("creating the table again");
    run_random(&pool, &mut rng, 50).await;
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(
        service
            .log_tail(100_000)
            .contains("table lab.regions is no longer in publication")
    );

    // Partition DDL, of which pgoutput says nothing when the publication
    // publishes through the root: one partition truncated, detached, and
    // attached again holding rows, while running, then one truncated while
    // stopped. A partition created empty takes no new snapshot.
    for (sql, logged) in [
        (
            "TRUNCATE lab.events_low",
            "partition lab.events_low of table lab.events was truncated",
        ),
        (
            "ALTER TABLE lab.events DETACH PARTITION lab.events_high",
            "partition lab.events_high of table lab.events was detached or dropped",
        ),
        (
            "ALTER TABLE lab.events ATTACH PARTITION lab.events_high \
             FOR VALUES FROM (150) TO (1000)",
            "partition lab.events_high of table lab.events was attached holding rows",
        ),
        // Detached, changed and attached again between two checks: same
        // name, same data file (trial 11: never noticed).
        (
            "BEGIN;
             ALTER TABLE lab.events DETACH PARTITION lab.events_high;
             UPDATE lab.events_high SET note = note || ' (detached)';
             ALTER TABLE lab.events ATTACH PARTITION lab.events_high FOR VALUES FROM (150) TO (1000);
             COMMIT;",
            "partition lab.events_high of table lab.events was detached and attached again",
        ),
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.expect(sql);
        converged(&pool, &redis.url(), &THIRD).await;
        assert!(service.log_tail(100_000).contains(logged), "{logged}");
    }
    run_random(&pool, &mut rng, 100).await;
    converged(&pool, &redis.url(), &THIRD).await;

    // A partition created as one and filled at once, as pg_partman and
    // schedulers do: its rows are in the log, so it takes no new snapshot
    // (it did when the 5 s check found it holding rows), while running and
    // while stopped. Its rows are changed after they were read too.
    let snapshots_before = snapshots_taken(&service);
    sqlx::raw_sql(new_partition("k1", 1000))
        .execute(&pool)
        .await
        .expect("partition k1");
    rows_came_through_the_log(&service, "lab.events_k1").await;
    converged(&pool, &redis.url(), &THIRD).await;
    service.kill().await;
    sqlx::raw_sql(new_partition("k2", 2000))
        .execute(&pool)
        .await
        .expect("partition k2");
    let mut service = setup.start();
    rows_came_through_the_log(&service, "lab.events_k2").await;
    sqlx::raw_sql("UPDATE lab.events SET note = note || '?' WHERE id >= 2000")
        .execute(&pool)
        .await
        .expect("changing the new partition's rows");
    converged(&pool, &redis.url(), &THIRD).await;
    assert_eq!(snapshots_taken(&service), snapshots_before);

    // A partition whose changes the stream cannot apply, made while
    // running: unlogged (its rows are in no log), or with a replica
    // identity without the key (its deletes came without it, and were
    // dropped). The stream stops on it, and once it is fixed starts again
    // from a new snapshot (trial 11: both were silent, for good).
    for (make, unusable, fix) in [
        (
            "CREATE UNLOGGED TABLE lab.events_u PARTITION OF lab.events
                 FOR VALUES FROM (5000) TO (6000);
             INSERT INTO lab.events VALUES (5001, 1, 1, 'unlogged', 'eu', 1, NULL)",
            "partition lab.events_u of table lab.events is UNLOGGED",
            "ALTER TABLE lab.events_u SET LOGGED",
        ),
        (
            "CREATE UNIQUE INDEX events_k1_id ON lab.events_k1 (id);
             ALTER TABLE lab.events_k1 REPLICA IDENTITY USING INDEX events_k1_id;
             DELETE FROM lab.events WHERE id BETWEEN 1000 AND 1010",
            "partition lab.events_k1 of table lab.events has REPLICA IDENTITY USING INDEX",
            "ALTER TABLE lab.events_k1 REPLICA IDENTITY DEFAULT",
        ),
    ] {
        sqlx::raw_sql(make).execute(&pool).await.expect(make);
        wait_until(
            Duration::from_secs(60),
            "the stream stopped on it",
            || async {
                let log = service.log_tail(100_000);
                if log.contains(unusable) {
                    Ok(())
                } else {
                    Err(format!("not yet: {unusable}"))
                }
            },
        )
        .await;
        sqlx::raw_sql("INSERT INTO lab.events VALUES (5002, 2, 2, 'meanwhile', 'eu', 1, NULL)")
            .execute(&pool)
            .await
            .expect("a change meanwhile");
        sqlx::raw_sql(fix).execute(&pool).await.expect(fix);
        converged(&pool, &redis.url(), &THIRD).await;
        sqlx::raw_sql("DELETE FROM lab.events WHERE id = 5002")
            .execute(&pool)
            .await
            .expect("a change after");
        converged(&pool, &redis.url(), &THIRD).await;
    }

    // A partition attached holding rows while stopped is told only by the
    // first check while streaming: until then the views are not ready
    // (they read live without its rows; trial 11).
    service.kill().await;
    sqlx::raw_sql(
        "CREATE TABLE lab.events_att (LIKE lab.events INCLUDING ALL);
         INSERT INTO lab.events_att VALUES (7001, 2, 1, 'attached', 'eu', 1, NULL);
         ALTER TABLE lab.events ATTACH PARTITION lab.events_att FOR VALUES FROM (7000) TO (8000)",
    )
    .execute(&pool)
    .await
    .expect("attaching a filled partition");
    let mut service = setup.start();
    let snapshots_before = snapshots_taken(&service);
    let attached = "partition lab.events_att of table lab.events was attached holding rows";
    wait_until(
        Duration::from_secs(60),
        "the attached rows found",
        || async {
            // Read before the log, so a ready status is one from before the
            // check decided.
            let status = http_get(setup.admin_port, "/status").await.ok();
            let ready = status.is_some_and(|(_, body)| body.contains("\"ready\":true"));
            let told = service.log_tail(100_000).contains(attached);
            assert!(
                told || !ready,
                "ready before the attached partition was checked"
            );
            if told { Ok(()) } else { Err("not yet told") }
        },
    )
    .await;
    // The snapshot it takes ends before the stop: a stop during it would
    // take another at the next start, which tells nothing of partitions.
    wait_until(
        Duration::from_secs(60),
        "the snapshot after the attached partition",
        || async {
            if snapshots_taken(&service) > snapshots_before {
                Ok(())
            } else {
                Err("still snapshotting")
            }
        },
    )
    .await;
    converged(&pool, &redis.url(), &THIRD).await;
    service.kill().await;
    sqlx::raw_sql("TRUNCATE lab.events_high")
        .execute(&pool)
        .await
        .expect("truncating a partition");
    let mut service = setup.start();
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(
        service
            .log_tail(100_000)
            .contains("partition lab.events_high of table lab.events was truncated")
    );
    run_random(&pool, &mut rng, 100).await;
    converged(&pool, &redis.url(), &THIRD).await;

    // An enum label renamed changes every row that holds it (and here its
    // document's key), with no row in the log: running, then back while
    // stopped.
    let renamed = "the enum of column kind of table lab.accounts no longer has the label(s)";
    sqlx::raw_sql("ALTER TYPE lab.account_kind RENAME VALUE 'team' TO 'squad'")
        .execute(&pool)
        .await
        .expect("renaming a label");
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(
        service
            .log_tail(100_000)
            .contains(&format!("{renamed} team"))
    );
    service.kill().await;
    sqlx::raw_sql("ALTER TYPE lab.account_kind RENAME VALUE 'squad' TO 'team'")
        .execute(&pool)
        .await
        .expect("renaming the label back");
    let mut service = setup.start();
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(
        service
            .log_tail(100_000)
            .contains(&format!("{renamed} squad"))
    );
    run_random(&pool, &mut rng, 100).await;
    converged(&pool, &redis.url(), &THIRD).await;

    // A column rewritten to its own type (`USING`) changes every row with
    // no row in the log; `VACUUM FULL` gives a new data file too and
    // changes none, so it takes no new snapshot (the nineteenth trial: the
    // views kept the old values for good, running and stopped).
    let snapshots_before = snapshots_taken(&service);
    sqlx::raw_sql("VACUUM FULL lab.accounts")
        .execute(&pool)
        .await
        .expect("vacuum full");
    wait_until(
        Duration::from_secs(60),
        "the vacuumed table's rows found stored as they are",
        || async {
            let log = service.log_tail(100_000);
            let found = log.lines().any(|line| {
                line.contains("table rewritten (VACUUM FULL") && line.contains("lab.accounts")
            });
            if found { Ok(()) } else { Err("not yet") }
        },
    )
    .await;
    // Decided, the views are ready again (the twentieth trial: they read
    // `building` for good, and the table was compared every 5 s).
    wait_until(Duration::from_secs(60), "the views ready again", || async {
        let (_, body) = http_get(setup.admin_port, "/status").await?;
        if body.contains("\"ready\":true") {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await;
    assert_eq!(snapshots_taken(&service), snapshots_before);
    let compared = service
        .log_tail(100_000)
        .matches("table rewritten (VACUUM FULL")
        .count();
    assert_eq!(compared, 1, "{}", service.log_tail(50));
    let rewritten = "table lab.regions was rewritten and its rows changed";
    sqlx::raw_sql(
        "INSERT INTO lab.regions VALUES ('eu', 1, 'lower case') ON CONFLICT (code, zone)
             DO UPDATE SET label = 'lower case';
         UPDATE lab.accounts SET region_code = 'eu', region_zone = 1, active = true WHERE id = 1;",
    )
    .execute(&pool)
    .await
    .expect("a region to rewrite");
    converged(&pool, &redis.url(), &THIRD).await;
    sqlx::raw_sql("ALTER TABLE lab.regions ALTER COLUMN label TYPE text USING upper(label)")
        .execute(&pool)
        .await
        .expect("rewriting a column");
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(service.log_tail(100_000).contains(rewritten));
    service.kill().await;
    sqlx::raw_sql("ALTER TABLE lab.regions ALTER COLUMN label TYPE text USING lower(label) || '!'")
        .execute(&pool)
        .await
        .expect("rewriting a column while stopped");
    let mut service = setup.start();
    converged(&pool, &redis.url(), &THIRD).await;
    assert!(service.log_tail(100_000).contains(rewritten));
    service.assert_running();
}
