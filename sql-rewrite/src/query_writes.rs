//! Finds what makes a query (SELECT, VALUES, a COPY source, …) need the
//! primary: a row-locking clause, `SELECT … INTO`, a data-modifying CTE, or a
//! call of a writing function anywhere in it, in one walk of the AST.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Select, SetExpr, TableFactor, Visit, Visitor};

use crate::write_functions::is_write_function_name;

/// Why `query` must run on the primary, or `None` if it is a plain read.
/// `write_functions` are the configured writing functions, on top of the
/// built-in ones.
pub(crate) fn primary_reason(query: &Query, write_functions: &[String]) -> Option<&'static str> {
    if is_data_modifying(&query.body) {
        return Some("write");
    }
    let mut walker = Walker { write_functions };
    match query.visit(&mut walker) {
        ControlFlow::Break(reason) => Some(reason),
        ControlFlow::Continue(()) => None,
    }
}

/// Whether a query body is (or, through set operations, contains) an
/// INSERT, UPDATE, DELETE or MERGE.
fn is_data_modifying(body: &SetExpr) -> bool {
    match body {
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => true,
        SetExpr::SetOperation { left, right, .. } => {
            is_data_modifying(left) || is_data_modifying(right)
        }
        SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) | SetExpr::Table(_) => false,
    }
}

/// Stops at the first node that needs the primary, with the reason.
struct Walker<'a> {
    write_functions: &'a [String],
}

impl Walker<'_> {
    fn check_function(&self, name: &sqlparser::ast::ObjectName) -> ControlFlow<&'static str> {
        if is_write_function_name(name, self.write_functions) {
            ControlFlow::Break("writing function")
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl Visitor for Walker<'_> {
    type Break = &'static str;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        if !query.locks.is_empty() {
            return ControlFlow::Break("locking read");
        }
        if is_data_modifying(&query.body) {
            // Nested queries are CTEs or subqueries; PostgreSQL only allows
            // data-modifying statements in WITH.
            return ControlFlow::Break("data-modifying CTE");
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Self::Break> {
        if select.into.is_some() {
            return ControlFlow::Break("select into");
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Self::Break> {
        match factor {
            // `FROM f(args)`; a plain table has no `args`.
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => self.check_function(name),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        match expr {
            Expr::Function(function) => self.check_function(&function.name),
            _ => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::Statement;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn reason(sql: &str, configured: &[String]) -> Option<&'static str> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("test SQL parses");
        match statements.first() {
            Some(Statement::Query(query)) => primary_reason(query, configured),
            other => panic!("not a query: {other:?}"),
        }
    }

    #[test]
    fn plain_reads() {
        assert_eq!(reason("SELECT a FROM t WHERE b = 1", &[]), None);
        assert_eq!(reason("SELECT * FROM generate_series(1, 3)", &[]), None);
        assert_eq!(reason("WITH x AS (SELECT 1) SELECT * FROM x", &[]), None);
    }

    #[test]
    fn writing_functions_anywhere() {
        for sql in [
            "SELECT nextval('s')",
            "SELECT * FROM nextval('s')",
            "SELECT * FROM t, LATERAL pg_catalog.nextval('s') n",
            "SELECT * FROM t WHERE a IN (SELECT setval('s', 1))",
            "SELECT a FROM t ORDER BY NEXTVAL('s')",
            "SELECT count(*) FILTER (WHERE lastval() > 0) FROM t",
            "WITH x AS (SELECT pg_advisory_lock(1)) SELECT * FROM x",
        ] {
            assert_eq!(reason(sql, &[]), Some("writing function"), "{sql}");
        }
    }

    #[test]
    fn configured_function() {
        let configured = vec!["app.bump".to_string()];
        assert_eq!(
            reason("SELECT bump()", &configured),
            Some("writing function")
        );
        assert_eq!(reason("SELECT bump()", &[]), None);
    }

    #[test]
    fn locks_into_and_modifying_ctes() {
        assert_eq!(
            reason("SELECT * FROM t FOR UPDATE", &[]),
            Some("locking read")
        );
        assert_eq!(
            reason("SELECT * FROM (SELECT * FROM t FOR SHARE) s", &[]),
            Some("locking read")
        );
        assert_eq!(reason("SELECT * INTO n FROM t", &[]), Some("select into"));
        assert_eq!(
            reason("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", &[]),
            Some("data-modifying CTE")
        );
        assert_eq!(
            reason("WITH s AS (SELECT 1) INSERT INTO t SELECT * FROM s", &[]),
            Some("write")
        );
    }
}
