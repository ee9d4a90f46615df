//! `shardgate demo`: a local primary with one streaming replica, the shop
//! role and database, and the proxy in front, until Ctrl-C.

use super::cluster::LocalCluster;

/// Starts everything, serves until Ctrl-C, then removes everything.
pub fn run(listen: &str) -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("shardgate-demo-{}", std::process::id()));
    eprintln!(
        "starting a primary and a streaming replica under {} …",
        root.display()
    );
    let cluster = LocalCluster::start(&root, 1)?;
    let config_text = format!(
        r#"[proxy]
listen = "{listen}"
pool_size = 20

[[users]]
name = "shop"
password = "shop"

[backend]
user = "shop"
password = "shop"
database = "shop"

[[shards]]
name = "s0"
primary = "127.0.0.1:{}"
replicas = [{}]

[routing]
default_shard = "s0"
"#,
        cluster.primary.port,
        cluster
            .replicas
            .iter()
            .map(|r| format!("\"127.0.0.1:{}\"", r.port))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let config = shard_config::parse(&config_text, "demo.toml")
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let rt = super::serve::runtime()?;
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "6432"));
    println!(
        "\nshardgate demo is up.\n  primary  127.0.0.1:{}\n  replica  127.0.0.1:{}\n  proxy    {listen}\n\nConnect with:\n  PGPASSWORD=shop psql -h {host} -p {port} -U shop shop\n\nTry:  SELECT pg_is_in_recovery();          -- true: a replica answered\n      BEGIN; SELECT pg_is_in_recovery();   -- false: transactions run on the primary\n      /* shardgate: primary */ SELECT pg_is_in_recovery();  -- false\n\nCtrl-C stops and removes everything.",
        cluster.primary.port,
        cluster.replicas.first().map_or(0, |r| r.port),
    );
    let result = rt.block_on(super::serve::serve(config, super::serve::shutdown_signal()));
    drop(rt);
    drop(cluster);
    eprintln!("demo stopped; everything removed");
    result
}
