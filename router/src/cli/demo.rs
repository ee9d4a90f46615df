//! `shardgate demo`: the shop on two local shards (each a primary with one
//! streaming replica), loaded through the proxy, until Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use pg_cluster::{Auth, Cluster, ClusterOptions};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How many shards the demo starts.
const SHARDS: usize = 2;

/// Removes the demo's directory when dropped (after the clusters in it).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts everything, loads the shop, serves until Ctrl-C, then removes
/// everything.
pub fn run(listen: &str) -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("shardgate-demo-{}", std::process::id()));
    let _remove = RemoveOnDrop(root.clone());
    eprintln!(
        "starting {SHARDS} shards (each a primary and a streaming replica) under {} …",
        root.display()
    );
    let clusters = start_shards(&root)?;
    let config_text = config_text(listen, &clusters);
    let config =
        shard_config::parse(&config_text, "demo.toml").map_err(|e| anyhow!("demo config: {e}"))?;
    let rt = super::serve::runtime()?;
    let result = rt.block_on(async {
        let mut server = tokio::spawn(super::serve::serve(config, super::serve::shutdown_signal()));
        tokio::select! {
            loaded = load(listen, &clusters) => {
                let text = loaded?;
                println!("{text}");
            }
            ended = &mut server => {
                return ended.map_err(|e| anyhow!("proxy task: {e}"))?;
            }
        }
        server.await.map_err(|e| anyhow!("proxy task: {e}"))?
    });
    drop(rt);
    drop(clusters);
    eprintln!("demo stopped; everything removed");
    result
}

/// Starts the shards' clusters in parallel, under `root/s0`, `root/s1`, ….
fn start_shards(root: &Path) -> anyhow::Result<Vec<Cluster>> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let opts = ClusterOptions {
        replicas: 1,
        auth: Auth::Scram,
    };
    Cluster::start_many_in(root, SHARDS, opts)
}

/// The demo's config: the shards, then the shop's `[tables.*]`.
fn config_text(listen: &str, clusters: &[Cluster]) -> String {
    let mut text = format!(
        "[proxy]\nlisten = \"{listen}\"\npool_size = 20\n\n[[users]]\nname = \"shop\"\npassword = \"shop\"\n\n\
         [backend]\nuser = \"shop\"\npassword = \"shop\"\ndatabase = \"shop\"\n"
    );
    for (i, c) in clusters.iter().enumerate() {
        let replicas: Vec<String> = c
            .replicas
            .iter()
            .map(|r| format!("\"127.0.0.1:{}\"", r.port))
            .collect();
        text.push_str(&format!(
            "\n[[shards]]\nname = \"s{i}\"\nprimary = \"127.0.0.1:{}\"\nreplicas = [{}]\n",
            c.primary.port,
            replicas.join(", ")
        ));
    }
    text.push_str("\n[routing]\ndefault_shard = \"s0\"\n\n");
    text.push_str(shop_schema::TABLES);
    text
}

/// The host and port clients use to reach `listen` (a wildcard address
/// becomes 127.0.0.1).
fn client_address(listen: &str) -> (String, String) {
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "6432"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "" | "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    };
    (host.to_string(), port.to_string())
}

/// Connects to `conn`, retrying for up to 15 s (the listener may not be up
/// yet); the connection runs on a spawned task.
async fn connect(conn: &str) -> anyhow::Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match tokio_postgres::connect(conn, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return Ok(client);
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow!("connecting to {conn}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until every replica has replayed what its primary has written.
async fn wait_replicated(clusters: &[Cluster]) -> anyhow::Result<()> {
    for c in clusters {
        c.wait_replicated().await?;
    }
    Ok(())
}

/// `SHOW ROUTE <sql>` through the proxy, as indented lines (or the refusal).
async fn show_route(client: &Client, sql: &str) -> String {
    match client.simple_query(&format!("SHOW ROUTE {sql}")).await {
        Ok(messages) => messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(format!(
                    "        -> {} {}: {}",
                    r.get(1).unwrap_or(""),
                    r.get(0).unwrap_or(""),
                    r.get(2).unwrap_or("")
                )),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!(
            "        -> ERROR: {}",
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string())
        ),
    }
}

/// Creates and loads the shop through the proxy at `listen`, waits for the
/// replicas, and returns the text telling the user how to use it.
async fn load(listen: &str, clusters: &[Cluster]) -> anyhow::Result<String> {
    let (host, port) = client_address(listen);
    let client = connect(&format!(
        "host={host} port={port} user=shop password=shop dbname=shop"
    ))
    .await?;
    eprintln!("creating the shop's schema and loading its sample data through shardgate …");
    let loaded = shop_schema::load(&client)
        .await
        .context("loading the shop")?;
    wait_replicated(clusters).await?;

    let first = loaded.user_ids.first().copied().unwrap_or(1);
    let last = loaded.user_ids.last().copied().unwrap_or(1);
    let examples = [
        (
            "a user's orders: one shard (orders live with their user)",
            format!("SELECT * FROM orders WHERE user_id = {first}"),
        ),
        (
            "an IN list: each shard that owns one of the keys",
            format!("SELECT id, name FROM users WHERE id IN ({first}, {last})"),
        ),
        (
            "a key-less read: every shard, rows concatenated",
            "SELECT id, name FROM users WHERE name LIKE 'Alice%'".to_string(),
        ),
        (
            "avg across shards: each shard's sum and count, divided by the proxy",
            "SELECT avg(total) FROM orders".to_string(),
        ),
        (
            "count(DISTINCT) across shards: refused (a value on two shards would count twice)",
            "SELECT count(DISTINCT status) FROM orders".to_string(),
        ),
        (
            "an insert without id: shardgate fills in a snowflake id",
            "INSERT INTO users (name, email) VALUES ('Zoe', 'zoe@shop.example')".to_string(),
        ),
        (
            "an archive read: rewritten to the month's table on its shard",
            "SELECT * FROM orders_archive WHERE created_at BETWEEN '2026-03-01' AND '2026-03-31'"
                .to_string(),
        ),
    ];
    let mut out = format!(
        "\nshardgate demo is up: the shop is loaded ({} users, {} products, {} orders with their items, \
         inventory, {} archived orders in month tables 2026_01..2026_{:02}).\n\n",
        loaded.user_ids.len(),
        shop_schema::PRODUCTS,
        shop_schema::ORDERS,
        shop_schema::ARCHIVE_MONTHS.count() * shop_schema::ARCHIVE_ROWS_PER_MONTH,
        shop_schema::ARCHIVE_MONTHS.end(),
    );
    for (i, c) in clusters.iter().enumerate() {
        let replicas: Vec<String> = c
            .replicas
            .iter()
            .map(|r| format!("127.0.0.1:{}", r.port))
            .collect();
        out.push_str(&format!(
            "  s{i}  primary 127.0.0.1:{}  replica {}\n",
            c.primary.port,
            replicas.join(", ")
        ));
    }
    out.push_str(&format!(
        "  proxy   {listen}\n\nConnect with:\n  PGPASSWORD=shop psql -h {host} -p {port} -U shop shop\n\n\
         Try (SHOW ROUTE <sql> shows where a statement would go without running it):\n"
    ));
    for (what, sql) in &examples {
        out.push_str(&format!(
            "  -- {what}\n  SHOW ROUTE {sql};\n{}\n",
            show_route(&client, sql).await
        ));
    }
    out.push_str(&format!(
        "  -- a user with their orders (co-located join, one shard)\n  \
         SELECT u.name, o.id, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = {first};\n  \
         -- reads go to replicas, transactions and the hint to primaries\n  \
         SELECT pg_is_in_recovery();  /* shardgate: primary */ SELECT pg_is_in_recovery();\n\n\
         Ctrl-C stops and removes everything."
    ));
    Ok(out)
}
