//! Golden route cases: tests/golden/route.cases planned against
//! tests/golden/route.toml. Each case's expectation is the exact route (or
//! refusal); `BLESS=1` rewrites the file with what the planner says now.
//! Comment lines `#! columns TABLE = a, b, c` in the cases file declare a
//! table's column order (what the proxy learns from the default shard's
//! catalog), for INSERTs without a column list.

use std::collections::BTreeMap;
use std::sync::Arc;

use sql_rewrite::route::{preview, NoColumns, Topology};

const CASES: &str = "tests/golden/route.cases";
const CONFIG: &str = include_str!("golden/route.toml");
const CASES_TEXT: &str = include_str!("golden/route.cases");

/// The `#! columns TABLE = a, b, c` declarations of the cases file.
fn declared_columns() -> BTreeMap<String, Arc<[String]>> {
    CASES_TEXT
        .lines()
        .filter_map(|l| l.strip_prefix("#! columns "))
        .filter_map(|l| l.split_once('='))
        .map(|(table, cols)| {
            let cols: Vec<String> = cols.split(',').map(|c| c.trim().to_string()).collect();
            (table.trim().to_string(), cols.into())
        })
        .collect()
}

mod common;
use common::Case;

fn actual(case: &Case, topo: &Topology<'_>) -> Vec<String> {
    let mut next = 9000i64;
    let mut next_id = || {
        next += 1;
        next - 1
    };
    let params = case.param_values();
    match preview(&case.sql, topo, &[], &params, false, &mut next_id) {
        Err(r) => vec![format!("refused ({}): {}", r.kind, r.message)],
        Ok(rows) => rows
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let mut s = format!("{} {}", r.role, r.shard);
                if r.sql != case.sql {
                    s.push_str(&format!(": {}", r.sql));
                }
                if let Some(p) = &r.params {
                    s.push_str(&format!(" [params {p}]"));
                }
                let merge = r.merge.as_ref().filter(|_| i + 1 == rows.len());
                let steps = merge.into_iter().flat_map(|m| {
                    std::iter::once("merge:".to_string()).chain(m.lines().map(|l| format!("  {l}")))
                });
                std::iter::once(s).chain(steps)
            })
            .collect(),
    }
}

#[test]
fn golden_routes() {
    let config = shard_config::parse(CONFIG, "route.toml").expect("golden config is valid");
    let map = config.shard_map();
    let names: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
    let default_shard = names
        .iter()
        .position(|n| *n == config.routing.default_shard)
        .expect("default shard");
    let columns = declared_columns();
    assert!(!columns.is_empty(), "no `#! columns` lines in {CASES}");
    let topo = Topology {
        map: &map,
        shards: &names,
        default_shard,
        allow_scatter_writes: false,
        merge_row_limit: 100_000,
        columns: &columns,
    };
    let count = common::run(CASES, |case| actual(case, &topo));
    assert!(count >= 150, "only {count} golden route cases");
}

/// Scatter writes are refused by default and allowed by the config switch.
#[test]
fn allow_scatter_writes_switch() {
    let config = shard_config::parse(CONFIG, "route.toml").expect("golden config is valid");
    let map = config.shard_map();
    let names: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
    let mut topo = Topology {
        map: &map,
        shards: &names,
        default_shard: 0,
        allow_scatter_writes: false,
        merge_row_limit: 100_000,
        columns: &NoColumns,
    };
    let mut id = || 1;
    let sql = "UPDATE users SET name = 'x' WHERE name = 'y'";
    let refused = preview(sql, &topo, &[], &[], false, &mut id).unwrap_err();
    assert!(
        refused.message.contains("allow_scatter_writes"),
        "{refused}"
    );
    topo.allow_scatter_writes = true;
    let rows = preview(sql, &topo, &[], &[], false, &mut id).expect("allowed");
    let shards: Vec<&str> = rows.iter().map(|r| r.shard.as_str()).collect();
    assert_eq!(shards, ["s0", "s1", "s2"]);
    assert!(rows.iter().all(|r| r.role == "primary" && r.sql == sql));
}
