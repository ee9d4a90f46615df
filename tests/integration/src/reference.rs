//! Differential fixtures: shards behind shardgate next to one plain
//! reference server, both loaded with the same rows, so that every answer
//! through the proxy can be compared with one database's.

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::{config_for_shards, Cluster, ClusterOptions, Proxy};

/// Shards behind a proxy and a reference server, both holding the rows.
pub struct Differential {
    /// The shards.
    pub shards: Vec<Cluster>,
    /// One plain server holding every row.
    pub reference: Cluster,
    /// shardgate over the shards.
    pub proxy: Proxy,
    /// A client of the proxy.
    pub client: Client,
    /// A client of the reference.
    pub reference_client: Client,
    /// The proxy's configuration.
    pub config: String,
}

/// Starts `n` shards with `replicas` replicas each, a reference and a proxy
/// whose config ends with `tables`; runs `load` through the proxy and on
/// the reference; checks that every shard holds more than `min_rows` rows
/// of `table`.
pub async fn start(
    n: usize,
    replicas: usize,
    tables: &str,
    load: &[String],
    (table, min_rows): (&str, i64),
) -> Differential {
    let shards = Cluster::start_many(
        n,
        ClusterOptions {
            replicas,
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
    let config = format!("{}\n{tables}", config_for_shards(&refs));
    let proxy = Proxy::start(&config).expect("proxy");
    let client = proxy.connect("shop", "shop").await.expect("connect");
    let reference_client = reference.primary.connect("shop").await.expect("reference");
    for sql in load {
        client.batch_execute(sql).await.expect("through shardgate");
        reference_client
            .batch_execute(sql)
            .await
            .expect("reference");
    }
    for s in &shards {
        s.wait_replicated().await.expect("replicated");
        let d = s.primary.connect("shop").await.expect("direct");
        let rows: i64 = d
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert!(rows > min_rows, "every shard holds {table} rows ({rows})");
    }
    Differential {
        shards,
        reference,
        proxy,
        client,
        reference_client,
        config,
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
