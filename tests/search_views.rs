//! Search views: after a random workload (product and category renames,
//! deletes, large descriptions) the index holds exactly one document per
//! product with current stored values, and it answers queries over HTTP and
//! on the command line; malformed queries get a 400 with the parser's message.

mod harness;

use std::process::Command;
use std::time::Duration;

use harness::{PgServer, RedisServer, ServiceSetup, converged, http_get, small_shop, wait_until};
use serde_json::Value;
use viewkeeper::workload::{self, WorkloadOptions};

const CONVERGE: Duration = Duration::from_secs(120);

/// The `vktoken…` word the workload writes into large descriptions.
fn unique_token(description: &str) -> Option<String> {
    let start = description.find("vktoken")?;
    Some(
        description[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect(),
    )
}

fn hit_ids(body: &str) -> Vec<String> {
    let response: Value = serde_json::from_str(body).expect("a JSON response");
    response["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| hit["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_matches_the_oracle_and_answers_queries() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    let stats = workload::run(&pool, &WorkloadOptions::new(2_500, 17))
        .await
        .expect("workload");
    assert!(stats.committed > 2_000, "{stats:?}");
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    // A token written into exactly one product's description finds it alone.
    let (id, description): (i64, String) = sqlx::query_as(
        "SELECT id, description FROM products WHERE description LIKE '%vktoken%' ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("the workload writes large descriptions with tokens");
    let token = unique_token(&description).expect("a token");
    let (status, body) = http_get(
        setup.admin_port,
        &format!("/views/product_search/search?q=description:{token}&limit=5"),
    )
    .await
    .expect("a search over HTTP");
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_ids(&body), [id.to_string()], "{body}");

    // The command line reads the same index while the service runs.
    assert_eq!(cli_search(&setup, &token), [id.to_string()]);

    // Queries the parser refuses are the client's mistake, never a 500.
    for bad in ["price_cents:[1%20TO", "nosuchfield:x", "%22unclosed"] {
        let (status, body) = http_get(
            setup.admin_port,
            &format!("/views/product_search/search?q={bad}"),
        )
        .await
        .expect("a search over HTTP");
        assert_eq!(status, 400, "{bad}: {body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    let (status, _) = http_get(setup.admin_port, "/views/nope/search?q=x")
        .await
        .unwrap();
    assert_eq!(status, 404);
    service.assert_running();

    // ... and after it stopped.
    service.kill().await;
    assert_eq!(cli_search(&setup, &token), [id.to_string()]);
}

/// `viewkeeper search product_search QUERY`: the ids of the hits it prints.
fn cli_search(setup: &ServiceSetup, query: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_viewkeeper"))
        .args(["search", "product_search", query])
        .arg("--views")
        .arg(&setup.views)
        .arg("--data-dir")
        .arg(setup.data_dir())
        .output()
        .expect("viewkeeper search");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    hit_ids(&stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_category_is_searchable_within_a_second() {
    let pg = PgServer::start().await;
    let redis = RedisServer::start().await;
    let (url, pool) = small_shop(&pg).await;
    let setup = ServiceSetup::new(&url, &redis.url());
    let mut service = setup.start();
    converged(&mut service, &pool, &redis.url(), CONVERGE).await;

    let category: i64 = sqlx::query_scalar(
        "SELECT category_id FROM products WHERE category_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products WHERE category_id = $1")
        .bind(category)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE categories SET name = 'Zeppelins' WHERE id = $1")
        .bind(category)
        .execute(&pool)
        .await
        .unwrap();
    let found = wait_until(
        Duration::from_secs(1),
        "the renamed category is searchable",
        || async {
            let (_, body) = http_get(
                setup.admin_port,
                "/views/product_search/search?q=category:Zeppelins&limit=1000",
            )
            .await?;
            let ids = hit_ids(&body);
            if ids.len() as i64 == products {
                Ok(ids)
            } else {
                Err(format!("{} of {products}", ids.len()))
            }
        },
    )
    .await;
    assert_eq!(found.len() as i64, products);
}
