//! The shop on two shards: shop-schema's schema and sample data loaded
//! through shardgate, then checked directly on the shards' primaries: users
//! on exactly one shard, orders and items on their user's shard, products on
//! both, archive months in their month table on the month's shard.

use std::collections::{BTreeMap, BTreeSet};

use integration::{config_for_shards, Cluster, ClusterOptions, Proxy};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Every row of a simple query, as text columns.
async fn rows(c: &Client, sql: &str) -> Vec<Vec<String>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_loads_through_shardgate_and_every_row_is_on_its_shard() {
    let clusters = Cluster::start_many(2, ClusterOptions::default()).expect("clusters");
    let refs: Vec<&Cluster> = clusters.iter().collect();
    let config = format!("{}\n{}", config_for_shards(&refs), shop_schema::TABLES);
    let proxy = Proxy::start(&config).expect("proxy");
    let c = proxy.connect("shop", "shop").await.expect("connect");
    let loaded = shop_schema::load(&c)
        .await
        .unwrap_or_else(|e| panic!("loading the shop: {e}\nproxy log:\n{}", proxy.log()));
    assert_eq!(loaded.user_ids.len(), shop_schema::USERS);

    let mut shards = Vec::new();
    for cluster in &clusters {
        shards.push(cluster.primary.connect("shop").await.expect("primary"));
    }

    // Users: each on exactly one shard, all of them somewhere, both shards used.
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (k, s) in shards.iter().enumerate() {
        let ids = rows(s, "SELECT id FROM users").await;
        assert!(!ids.is_empty(), "shard s{k} holds users");
        for r in ids {
            if let Some(other) = owner.insert(r[0].clone(), k) {
                panic!("user {} on s{other} and s{k}", r[0]);
            }
        }
    }
    let expected: BTreeSet<String> = loaded.user_ids.iter().map(i64::to_string).collect();
    assert_eq!(owner.keys().cloned().collect::<BTreeSet<_>>(), expected);

    // Orders and items: on the shard of their user (the foreign keys hold
    // shard by shard, and every user id is owned by this shard).
    let mut orders = 0;
    let mut items = 0;
    for (k, s) in shards.iter().enumerate() {
        for r in rows(s, "SELECT user_id FROM orders").await {
            assert_eq!(owner.get(&r[0]), Some(&k), "order of user {} on s{k}", r[0]);
            orders += 1;
        }
        for r in rows(s, "SELECT user_id FROM order_items").await {
            assert_eq!(owner.get(&r[0]), Some(&k), "item of user {} on s{k}", r[0]);
            items += 1;
        }
    }
    assert_eq!(orders, shop_schema::ORDERS);
    assert!(items >= shop_schema::ORDERS, "{items} items");

    // Products: the same 20 rows on both shards.
    let p0 = rows(
        &shards[0],
        "SELECT id, name, price FROM products ORDER BY id",
    )
    .await;
    let p1 = rows(
        &shards[1],
        "SELECT id, name, price FROM products ORDER BY id",
    )
    .await;
    assert_eq!(p0.len(), shop_schema::PRODUCTS);
    assert_eq!(p0, p1, "broadcast copies agree");

    // Inventory: one row per product, each on one shard.
    let inv: usize = {
        let mut n = 0;
        for s in &shards {
            n += rows(s, "SELECT product_id FROM inventory").await.len();
        }
        n
    };
    assert_eq!(inv, shop_schema::PRODUCTS);

    // Archive: month m (2026) on shard (m - 1) % 2, in orders_archive_2026_MM,
    // rows of that month only; the other shard has no such table; the
    // logical table stays empty.
    for month in shop_schema::ARCHIVE_MONTHS {
        let table = format!("orders_archive_2026_{month:02}");
        let home = usize::try_from((month - 1) % 2).expect("shard index");
        let dates = rows(
            &shards[home],
            &format!("SELECT to_char(created_at, 'YYYY-MM') FROM {table}"),
        )
        .await;
        assert_eq!(dates.len(), shop_schema::ARCHIVE_ROWS_PER_MONTH, "{table}");
        assert!(dates.iter().all(|d| d[0] == format!("2026-{month:02}")));
        let elsewhere = rows(
            &shards[1 - home],
            &format!("SELECT to_regclass('{table}') IS NULL"),
        )
        .await;
        assert_eq!(elsewhere, [["t"]], "{table} exists only on s{home}");
    }
    for s in &shards {
        assert_eq!(
            rows(s, "SELECT count(*) FROM orders_archive").await,
            [["0"]]
        );
    }

    // Through the proxy: a user's orders by key, an archive month rewritten.
    let user = loaded.user_ids[0];
    let direct: usize = {
        let k = owner[&user.to_string()];
        rows(
            &shards[k],
            &format!("SELECT id FROM orders WHERE user_id = {user}"),
        )
        .await
        .len()
    };
    let via = rows(
        &c,
        &format!("/* shardgate: primary */ SELECT id FROM orders WHERE user_id = {user}"),
    )
    .await;
    assert_eq!(via.len(), direct);
    let march = rows(
        &c,
        "/* shardgate: primary */ SELECT id FROM orders_archive WHERE created_at BETWEEN '2026-03-01' AND '2026-03-31'",
    )
    .await;
    assert_eq!(march.len(), shop_schema::ARCHIVE_ROWS_PER_MONTH);
}
