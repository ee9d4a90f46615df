//! How long planning and binding take per statement, without servers: the
//! pure routing cost the proxy pays on top of forwarding bytes. Run by
//! `bench/route_cost.sh` (a benchmark, not a test: it asserts nothing).

use std::time::Instant;

use sql_rewrite::route::{plan, plan_classified, NoColumns, Param, Topology};

const CONFIG: &str = include_str!("../tests/golden/route.toml");

fn main() {
    let config = shard_config::parse(CONFIG, "route.toml").expect("config");
    let map = config.shard_map();
    let names: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
    let topo = Topology {
        map: &map,
        shards: &names,
        default_shard: 0,
        allow_scatter_writes: false,
        merge_row_limit: 100_000,
        columns: &NoColumns,
    };
    let n: u32 = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut id = 0i64;
    let mut next_id = || {
        id += 1;
        id
    };
    println!("statement                                                   µs/statement");
    // Simple protocol: every text is parsed, classified and planned once.
    for sql in [
        "SELECT abalance FROM accounts WHERE id = 4242",
        "SELECT * FROM users WHERE id = 4242",
        "UPDATE users SET name = 'x' WHERE id = 4242",
        "INSERT INTO users (id, name) VALUES (1, 'a'), (42, 'b'), (100, 'c')",
        "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 42",
        "SELECT 1",
    ] {
        let t = Instant::now();
        for _ in 0..n {
            let (p, c) = plan_classified(sql, &topo, &[]);
            let r = p.bind(&topo, &[], &mut next_id);
            let _ = std::hint::black_box((r, c));
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("simple   {sql:<58.58} {us:8.2}");
    }
    // Extended protocol: planned once at Parse, bound at each Bind.
    for (sql, value) in [
        ("SELECT * FROM users WHERE id = $1", "4242"),
        ("UPDATE users SET name = 'x' WHERE id = $1", "4242"),
    ] {
        let p = plan(sql, &topo);
        let params = [Param {
            value: Some(value.as_bytes()),
            binary: false,
        }];
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(p.bind(&topo, &params, &mut next_id)).ok();
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("bind     {sql:<58.58} {us:8.2}");
    }
}
