//! `INSERT INTO t VALUES (…)` without a column list into a sharded table, on
//! real servers: the proxy learns the table's column order from the default
//! shard's catalog (in the background: the first such INSERT after the table
//! appears or changes may be refused with 0A000 "retry"), finds the key by
//! its position, and each row lands on the shard that owns its key; after
//! `ALTER TABLE … ADD COLUMN` through the proxy, rows of the new width work
//! and rows of the old width are refused (never placed by a stale order).

use std::time::Duration;

use integration::{config_for_shards, Cluster, ClusterOptions, Proxy};
use shard_config::hash::KeyValue;
use tokio_postgres::{Client, SimpleQueryMessage};

const TABLES: &str = "\n[tables.users]\nsharding_key = \"id\"\n";

/// Runs `sql` until it succeeds (at most ~10 s); every failure before must
/// be a 0A000 refusal (the column order is still loading).
async fn until_ok(c: &Client, sql: &str) {
    for _ in 0..100 {
        match c.simple_query(sql).await {
            Ok(_) => return,
            Err(e) => {
                let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
                assert_eq!(db.code().code(), "0A000", "{sql}: {}", db.message());
                assert!(db.message().contains("column"), "{sql}: {}", db.message());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql}: still refused after 10 s");
}

/// The ids (and their `tail` column) on one shard's primary.
async fn rows_on(cluster: &Cluster, tail: &str) -> Vec<String> {
    let c = cluster
        .primary
        .connect("shop")
        .await
        .expect("shard primary");
    let sql = format!("SELECT id::text || ':' || coalesce({tail}, '-') FROM users ORDER BY id");
    c.simple_query(&sql)
        .await
        .expect("read shard")
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_without_column_list_finds_the_key_by_column_order() {
    let opts = ClusterOptions {
        replicas: 0,
        ..Default::default()
    };
    let clusters = Cluster::start_many(2, opts).expect("clusters");
    let refs: Vec<&Cluster> = clusters.iter().collect();
    let config = format!("{}{TABLES}", config_for_shards(&refs));
    let map = shard_config::parse(&config.replace("{listen}", "127.0.0.1:1"), "t.toml")
        .expect("config")
        .shard_map();
    let owner = |k: i64| {
        map.shard_for_key("users", &KeyValue::Int(k))
            .expect("owner")
    };
    // two keys per shard
    let mut keys: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    for k in 1.. {
        let s = owner(k);
        if keys[s].len() < 2 {
            keys[s].push(k);
        }
        if keys.iter().all(|l| l.len() == 2) {
            break;
        }
    }
    // the table does not exist when the proxy starts: nothing is known yet
    let proxy = Proxy::start(&config).expect("proxy");
    let c = proxy.connect("shop", "shop").await.expect("connect");
    c.simple_query("CREATE TABLE users (id bigint PRIMARY KEY, name text, email text)")
        .await
        .expect("create through the proxy");

    let (a, b) = (keys[0][0], keys[1][0]);
    until_ok(
        &c,
        &format!("INSERT INTO users VALUES ({a}, 'a', 'a@x'), ({b}, 'b', NULL)"),
    )
    .await;
    assert_eq!(rows_on(&clusters[0], "email").await, [format!("{a}:a@x")]);
    assert_eq!(rows_on(&clusters[1], "email").await, [format!("{b}:-")]);

    c.simple_query("ALTER TABLE users ADD COLUMN note text")
        .await
        .expect("alter through the proxy");
    let (a2, b2) = (keys[0][1], keys[1][1]);
    until_ok(
        &c,
        &format!("INSERT INTO users VALUES ({a2}, 'c', NULL, 'n0'), ({b2}, 'd', NULL, 'n1')"),
    )
    .await;
    for (shard, (old, new, note)) in [(a, a2, "n0"), (b, b2, "n1")].into_iter().enumerate() {
        let mut want = vec![format!("{old}:-"), format!("{new}:{note}")];
        want.sort_by_key(|r| r.split(':').next().and_then(|k| k.parse::<i64>().ok()));
        assert_eq!(
            rows_on(&clusters[shard], "note").await,
            want,
            "shard s{shard}"
        );
    }

    // the old width no longer fits: refused, not placed by a stale order
    let e = c
        .simple_query(&format!(
            "INSERT INTO users VALUES ({}, 'e', NULL)",
            keys[0][0] + 100_000
        ))
        .await
        .expect_err("3 values into 4 columns");
    let db = e.as_db_error().expect("db error");
    assert_eq!(db.code().code(), "0A000", "{}", db.message());
    assert!(db.message().contains("4 columns"), "{}", db.message());
}
