//! Golden merge plans: tests/golden/merge.cases, each a top-level query
//! whose rows come from several shards, with the merge the proxy applies
//! (`sql_rewrite::merge::plan`) or why it cannot.

use sql_rewrite::merge::plan;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

mod common;

#[test]
fn golden_merge_plans() {
    let count = common::run("tests/golden/merge.cases", |case| {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, &case.sql)
            .unwrap_or_else(|e| panic!("{}: {e}", case.sql));
        match statements.as_slice() {
            [Statement::Query(q)] => vec![match plan(q) {
                Ok(p) => p.to_string(),
                Err(e) => format!("refused: {e}"),
            }],
            _ => panic!("{}: not one query", case.sql),
        }
    });
    assert!(count >= 30, "only {count} merge cases");
}
