//! The `users`/`orders` fixture of the differential subquery and CTE tests:
//! 300 users and 1000 orders (`orders` co-located with `users` on
//! `user_id`), loaded both into a plain reference server and, through
//! shardgate, onto three shards.

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::{config_for_shards, Cluster, ClusterOptions, Proxy};

/// The tables.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE users (id bigint PRIMARY KEY, name text, tier int)",
    "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, status text, total int)",
];

/// 300 users; 1000 orders, none for every fifth user, some for user ids
/// without a user (300..320).
pub fn data() -> Vec<String> {
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

/// Three shards behind a proxy and a reference server, both holding the rows.
pub struct UsersOrders {
    /// The shards (primary + one replica each).
    pub shards: Vec<Cluster>,
    /// One plain server holding every row.
    pub reference: Cluster,
    /// shardgate over the shards: `users` by `id`, `orders` by `user_id`.
    pub proxy: Proxy,
    /// A client of the proxy.
    pub client: Client,
    /// A client of the reference.
    pub reference_client: Client,
}

/// Starts the shards, the reference and the proxy, and loads the rows into
/// both; checks every shard got orders.
pub async fn start() -> UsersOrders {
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
    UsersOrders {
        shards,
        reference,
        proxy,
        client,
        reference_client,
    }
}

/// Every row of a simple query, as text; an error as `SQLSTATE: message`.
pub async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
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

/// Runs each query through shardgate and on the reference: `allowed` must
/// return the reference's rows (which must not be empty), `refused` must
/// fail with SQLSTATE 0A000 (and run on the reference).
pub async fn compare(f: &UsersOrders, allowed: &[&str], refused: &[&str]) {
    for sql in allowed {
        let want = rows(&f.reference_client, sql).await.expect("reference");
        let got = rows(&f.client, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(!want.is_empty(), "{sql}: the reference returns rows");
        assert_eq!(got, want, "{sql}");
    }
    for sql in refused {
        rows(&f.reference_client, sql).await.expect("reference");
        let err = rows(&f.client, sql).await.expect_err(sql);
        assert!(err.starts_with("0A000"), "{sql}: {err}");
    }
}
