//! Differential test of subqueries tied to the outer rows by co-located
//! sharding keys (`key IN (SELECT key …)`, `[NOT] EXISTS (… WHERE
//! inner.key = outer.key)`): the same users and orders in one plain Postgres
//! and over three shards behind shardgate must give the same rows; other
//! subqueries over sharded tables are refused with SQLSTATE 0A000.

use integration::{config_for_shards, Cluster, ClusterOptions, Proxy};
use tokio_postgres::{Client, SimpleQueryMessage};

const SCHEMA: &[&str] = &[
    "CREATE TABLE users (id bigint PRIMARY KEY, name text, tier int)",
    "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, status text, total int)",
];

/// 300 users; 1000 orders, none for every fifth user, some for user ids
/// without a user (300..320).
fn data() -> Vec<String> {
    let users: Vec<String> = (0..300i64)
        .map(|i| format!("({i}, 'user {i}', {})", i % 3))
        .collect();
    let statuses = ["paid", "shipped", "cancelled", "new"];
    let orders: Vec<String> = (0..1000i64)
        .map(|i| {
            let mut user = (i * 7919) % 320;
            if user < 300 && user % 5 == 0 {
                user += 1;
            }
            format!(
                "({}, {user}, '{}', {})",
                i + 10_000,
                statuses[(i % 4) as usize],
                (i * 37) % 1000
            )
        })
        .collect();
    vec![
        format!(
            "INSERT INTO users (id, name, tier) VALUES {}",
            users.join(", ")
        ),
        format!(
            "INSERT INTO orders (id, user_id, status, total) VALUES {}",
            orders.join(", ")
        ),
    ]
}

/// Every row of a simple query, as text; an error as `SQLSTATE: message`.
async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let msgs = c.simple_query(sql).await.map_err(|e| {
        e.as_db_error()
            .map(|d| format!("{}: {}", d.code().code(), d.message()))
            .unwrap_or_else(|| e.to_string())
    })?;
    Ok(msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

const ALLOWED: &[&str] = &[
    "SELECT id, name FROM users WHERE id IN (SELECT user_id FROM orders WHERE status = 'paid') ORDER BY id",
    "SELECT id FROM users u WHERE u.id = ANY (SELECT o.user_id FROM orders o WHERE o.total > 500) ORDER BY id",
    "SELECT o.id, o.total FROM orders o WHERE o.user_id IN (SELECT u.id FROM users u WHERE u.tier = 2) ORDER BY o.id",
    "SELECT o.id, o.user_id FROM orders o WHERE o.user_id IN (SELECT u.id FROM users u WHERE u.tier = 2) ORDER BY o.id LIMIT 25 OFFSET 5",
    "SELECT o.id FROM orders o WHERE o.user_id = 8 AND o.user_id IN (SELECT id FROM users WHERE tier = 2) ORDER BY o.id",
    "SELECT o.id FROM orders o WHERE o.user_id IN (7, 8, 11, 203) AND o.user_id IN (SELECT id FROM users WHERE tier = 2) ORDER BY o.id",
    "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.status = 'shipped') ORDER BY id",
    "SELECT id, name FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id) ORDER BY id",
    "SELECT o.id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id) ORDER BY o.id",
    "SELECT id FROM users u WHERE u.id IN (3, 4, 5, 6, 150) AND EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id) ORDER BY id",
    "SELECT u.id, o.id FROM users u JOIN orders o ON o.user_id = u.id WHERE EXISTS (SELECT 1 FROM orders x WHERE x.user_id = u.id AND x.total > 900) ORDER BY o.id LIMIT 40",
    "SELECT count(*) FROM users WHERE id IN (SELECT user_id FROM orders WHERE total < 100)",
    "SELECT id FROM users WHERE id IN (SELECT DISTINCT user_id FROM orders) ORDER BY id DESC LIMIT 30",
    "SELECT id FROM users u WHERE u.tier = 1 AND u.id IN (SELECT user_id FROM orders WHERE status = 'paid') AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.status = 'cancelled') ORDER BY id",
    "SELECT user_id, count(*) FROM orders o WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id AND u.tier = 0) GROUP BY user_id ORDER BY user_id",
    "SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.total > 100) ORDER BY id LIMIT 20",
];

const REFUSED: &[&str] = &[
    "SELECT id FROM users WHERE id NOT IN (SELECT user_id FROM orders) ORDER BY id",
    "SELECT id FROM users WHERE tier IN (SELECT total FROM orders) ORDER BY id",
    "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u ORDER BY u.id",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_subqueries_equal_one_database() {
    let shards = Cluster::start_many(3, ClusterOptions::default()).expect("shards");
    let reference = Cluster::start(ClusterOptions {
        replicas: 0,
        ..Default::default()
    })
    .expect("reference");
    let refs: Vec<&Cluster> = shards.iter().collect();
    let config = format!(
        "{}\n[tables.users]\nsharding_key = \"id\"\n\n[tables.orders]\nsharding_key = \"user_id\"\ncolocate_with = \"users\"\n",
        config_for_shards(&refs)
    );
    let proxy = Proxy::start(&config).expect("proxy");
    let client = proxy.connect("shop", "shop").await.expect("connect");
    let reference_client = reference.primary.connect("shop").await.expect("reference");
    let mut load: Vec<String> = SCHEMA.iter().map(|s| s.to_string()).collect();
    load.extend(data());
    for sql in &load {
        client.batch_execute(sql).await.expect("through shardgate");
        reference_client
            .batch_execute(sql)
            .await
            .expect("reference");
    }
    for s in &shards {
        s.wait_replicated().await.expect("replicated");
        let d = s.primary.connect("shop").await.expect("direct");
        let n: i64 = d
            .query_one("SELECT count(*) FROM orders", &[])
            .await
            .expect("count")
            .get(0);
        assert!(n > 100, "every shard holds orders ({n})");
    }

    for sql in ALLOWED {
        let want = rows(&reference_client, sql).await.expect("reference");
        let got = rows(&client, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(!want.is_empty(), "{sql}: the reference returns rows");
        assert_eq!(got, want, "{sql}");
    }

    // Extended protocol, the outer key a parameter: one shard.
    let sql = "SELECT o.id FROM orders o WHERE o.user_id = $1 AND o.user_id IN (SELECT id FROM users WHERE tier = $2) ORDER BY o.id";
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i64>>();
    let want = ids(reference_client
        .query(sql, &[&11i64, &2i32])
        .await
        .expect("reference"));
    let got = ids(client
        .query(sql, &[&11i64, &2i32])
        .await
        .expect("through shardgate"));
    assert!(!want.is_empty());
    assert_eq!(got, want, "{sql}");

    for sql in REFUSED {
        rows(&reference_client, sql).await.expect("reference");
        let err = rows(&client, sql).await.expect_err(sql);
        assert!(err.starts_with("0A000"), "{sql}: {err}");
    }
}
