//! `shardgate route`: the route of one statement, offline.

use std::process::ExitCode;

use crate::execute::routing::Routing;

/// Prints `role shard: sql` per target shard, then `merge:` and the merge
/// plan's steps (one per line, indented) when rows are merged; or the
/// refusal (exit 1).
pub fn run(path: &str, sql: &str, params: &[String]) -> ExitCode {
    let config = match super::load_config(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardgate: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let routing = match Routing::new(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shardgate: proxy.node_id: {e}");
            return ExitCode::FAILURE;
        }
    };
    let params: Vec<Option<String>> = params
        .iter()
        .map(|p| (!p.eq_ignore_ascii_case("null")).then(|| p.clone()))
        .collect();
    let read_from_primary = config.routing.read_from == shard_config::ReadFrom::Primary;
    let rows = routing.with_topology(|t| {
        sql_rewrite::route::preview(
            sql,
            t,
            &config.proxy.write_functions,
            &params,
            read_from_primary,
            &mut || routing.next_id(),
        )
    });
    match rows {
        Ok(rows) => {
            let merge = rows.first().and_then(|r| r.merge.clone());
            for r in rows {
                println!("{r}");
            }
            if let Some(m) = merge {
                println!("merge:");
                for step in m.lines() {
                    println!("  {step}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(r) => {
            eprintln!("refused (SQLSTATE 0A000): {}", r.message);
            ExitCode::FAILURE
        }
    }
}
