//! The Redis ceiling: the documents the cache views wrote, read back as they
//! are, and written again into an empty database by a raw loop of pipelined
//! `SET`s (1,000 per round trip, like `redis-benchmark -P 1000`, no
//! `MULTI`), with viewkeeper stopped.

use std::time::Instant;

use redis::aio::MultiplexedConnection;

use crate::harness::{RedisServer, scan_keys};

const PIPELINE: usize = 1_000;
/// Where the all-views instance wrote, and an unused database to write to.
const SOURCE_DB: u8 = 0;
const TARGET_DB: u8 = 2;
const PATTERNS: [&str; 2] = ["order:*", "product:*"];

/// Documents written and the seconds it took.
pub async fn pipelined_sets(redis: &RedisServer) -> (u64, f64) {
    let mut source = connect(redis, SOURCE_DB).await;
    let mut documents = Vec::new();
    for pattern in PATTERNS {
        documents.extend(read_documents(&mut source, pattern).await);
    }
    let mut target = connect(redis, TARGET_DB).await;
    let started = Instant::now();
    for chunk in documents.chunks(PIPELINE) {
        let mut pipe = redis::pipe();
        for (key, document) in chunk {
            pipe.set(key, document).ignore();
        }
        let () = pipe.query_async(&mut target).await.expect("pipelined SET");
    }
    let seconds = started.elapsed().as_secs_f64();
    let () = redis::cmd("FLUSHDB")
        .query_async(&mut target)
        .await
        .expect("FLUSHDB");
    (documents.len() as u64, seconds)
}

async fn connect(redis: &RedisServer, db: u8) -> MultiplexedConnection {
    let client = redis::Client::open(format!("{}/{db}", redis.url())).expect("the Redis URL");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis")
}

/// Every key matching `pattern` with its raw value.
async fn read_documents(conn: &mut MultiplexedConnection, pattern: &str) -> Vec<(String, String)> {
    let keys = scan_keys(conn, pattern).await.expect("SCAN");
    let mut documents = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(PIPELINE) {
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(chunk)
            .query_async(conn)
            .await
            .expect("MGET");
        let found = chunk.iter().cloned().zip(values);
        documents.extend(found.filter_map(|(key, value)| Some((key, value?))));
    }
    documents
}
