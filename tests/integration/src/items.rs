//! The `items` fixture of the differential merge tests: one table of 300
//! rows with NULLs, duplicates, negative and special values, mixed-case and
//! non-ASCII text, loaded both into a plain reference server and, through
//! shardgate, onto several shards.

use crate::{config_for_shards, Cluster, ClusterOptions, Proxy};

/// 300 rows with NULLs, duplicates, negative and special values.
pub fn data() -> String {
    let names = [
        "a", "B", "b", "Zed", "zed", "Zoë", "ábc", "Émile", "émile", "", "a b", "ä", "Ω", "z",
    ];
    let mut values = Vec::new();
    for i in 0..300i64 {
        let grp = if i % 11 == 0 {
            "NULL".to_string()
        } else {
            (i % 7 - 3).to_string()
        };
        let price = match i % 13 {
            0 => "NULL".to_string(),
            1 => "'NaN'".to_string(),
            _ => format!("{}.{:02}", (i * 37) % 200 - 100, (i * 7) % 100),
        };
        let score = match i % 17 {
            0 => "NULL".to_string(),
            1 => "'NaN'".to_string(),
            2 => "'-Infinity'".to_string(),
            3 => "'Infinity'".to_string(),
            _ => format!("{}", ((i * 7919) % 1000) as f64 / 8.0 - 60.0),
        };
        let name = if i % 19 == 0 {
            "NULL".to_string()
        } else {
            format!("'{}'", names[(i as usize * 5) % names.len()])
        };
        let flag = match i % 3 {
            0 => "true",
            1 => "false",
            _ => "NULL",
        };
        let at = if i % 23 == 0 {
            "NULL".to_string()
        } else {
            format!(
                "'2026-{:02}-{:02} {:02}:{:02}:00+0{}'",
                i % 12 + 1,
                i % 28 + 1,
                i % 24,
                i % 60,
                i % 3
            )
        };
        let day = if i % 29 == 0 {
            "NULL".to_string()
        } else {
            format!("'2025-{:02}-{:02}'", i % 12 + 1, (i * 3) % 28 + 1)
        };
        values.push(format!(
            "({}, {grp}, {price}, {score}, {name}, {flag}, {at}, {day})",
            i * 7 - 400
        ));
    }
    format!(
        "INSERT INTO items (id, grp, price, score, name, flag, at, day) VALUES {}",
        values.join(", ")
    )
}

/// The table.
pub const SCHEMA: &str = "CREATE TABLE items (id bigint PRIMARY KEY, grp int, price numeric(10,2), score float8, name text, flag bool, at timestamptz, day date)";

/// Shards behind a proxy and a reference server, both holding the rows.
pub struct Items {
    /// The shards (primary + one replica each).
    pub shards: Vec<Cluster>,
    /// One plain server holding every row.
    pub reference: Cluster,
    /// shardgate over the shards, `items` sharded by hash of `id`.
    pub proxy: Proxy,
    /// A client of the proxy.
    pub client: tokio_postgres::Client,
    /// A client of the reference.
    pub reference_client: tokio_postgres::Client,
    /// The proxy's configuration.
    pub config: String,
}

/// Starts `n` shards, a reference and a proxy (with `extra` appended to its
/// config), and loads the rows into both; checks every shard got some.
pub async fn start(n: usize, extra: &str) -> Items {
    let shards = Cluster::start_many(
        n,
        ClusterOptions {
            replicas: 1,
            ..Default::default()
        },
    )
    .expect("shards");
    let reference = Cluster::start(ClusterOptions {
        replicas: 0,
        ..Default::default()
    })
    .expect("reference");
    let refs: Vec<&Cluster> = shards.iter().collect();
    let config = format!(
        "{}\n[tables.items]\nsharding_key = \"id\"\n{extra}",
        config_for_shards(&refs)
    );
    let proxy = Proxy::start(&config).expect("proxy");
    let client = proxy.connect("shop", "shop").await.expect("connect");
    let reference_client = reference.primary.connect("shop").await.expect("reference");
    for sql in [SCHEMA.to_string(), data()] {
        client.batch_execute(&sql).await.expect("through shardgate");
        reference_client
            .batch_execute(&sql)
            .await
            .expect("reference");
    }
    for s in &shards {
        s.wait_replicated().await.expect("replicated");
        let d = s.primary.connect("shop").await.expect("direct");
        let rows: i64 = d
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .expect("count")
            .get(0);
        assert!(rows > 50, "every shard holds rows ({rows})");
    }
    Items {
        shards,
        reference,
        proxy,
        client,
        reference_client,
        config,
    }
}
