//! Golden merge plans: tests/golden/merge.cases, each a top-level query
//! whose rows come from several shards, with the merge the proxy applies
//! (`sql_rewrite::merge::plan`, tables sharded as in golden/route.toml) or
//! why it cannot.

use sql_rewrite::merge::plan;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

mod common;

#[test]
fn golden_merge_plans() {
    let config = shard_config::parse(include_str!("golden/route.toml"), "route.toml")
        .expect("golden config is valid");
    let map = config.shard_map();
    let count = common::run("tests/golden/merge.cases", |case| {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, &case.sql)
            .unwrap_or_else(|e| panic!("{}: {e}", case.sql));
        match statements.as_slice() {
            [Statement::Query(q)] => match plan(q, &map) {
                Ok(p) => p.steps(),
                Err(e) => vec![format!("refused: {e}")],
            },
            _ => panic!("{}: not one query", case.sql),
        }
    });
    assert!(count >= 30, "only {count} merge cases");
}
