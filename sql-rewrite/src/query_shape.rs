//! Facts about a query's shape that the route planner's checks and the
//! merge planner share: which constructs of a query level make rows from
//! several shards need merging ([`MergeNeed`], [`needs_merge`]), aggregate
//! and window function calls, and output positions (`ORDER BY 2`).
//!
//! A leaf: it depends on nothing else in the crate.

use std::fmt;
use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, Expr, OrderByKind, Query, SelectItem, SetExpr, SetOperator, SetQuantifier,
    Value,
};

/// A construct of a query level whose rows from several shards would need
/// merging (beyond concatenating them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MergeNeed {
    /// `ORDER BY`.
    OrderBy,
    /// `LIMIT` / `OFFSET`.
    LimitOffset,
    /// `FETCH FIRST`.
    FetchFirst,
    /// `UNION` without `ALL`.
    Union,
    /// `INTERSECT`.
    Intersect,
    /// `EXCEPT` (or `MINUS`).
    Except,
    /// `DISTINCT` / `DISTINCT ON`.
    Distinct,
    /// `GROUP BY`.
    GroupBy,
    /// `HAVING`.
    Having,
    /// An aggregate function call in the select list.
    Aggregate,
    /// A window function call in the select list.
    Window,
}

impl MergeNeed {
    /// How messages name the construct (`ORDER BY`, `aggregate function`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MergeNeed::OrderBy => "ORDER BY",
            MergeNeed::LimitOffset => "LIMIT/OFFSET",
            MergeNeed::FetchFirst => "FETCH FIRST",
            MergeNeed::Union => "UNION (without ALL)",
            MergeNeed::Intersect => "INTERSECT",
            MergeNeed::Except => "EXCEPT",
            MergeNeed::Distinct => "DISTINCT",
            MergeNeed::GroupBy => "GROUP BY",
            MergeNeed::Having => "HAVING",
            MergeNeed::Aggregate => "aggregate function",
            MergeNeed::Window => "window function",
        }
    }
}

impl fmt::Display for MergeNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Aggregate functions PostgreSQL ships (lower case).
pub const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "bool_and",
    "bool_or",
    "every",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "xmlagg",
    "range_agg",
    "range_intersect_agg",
    "regr_count",
    "regr_avgx",
    "regr_avgy",
    "regr_slope",
    "regr_intercept",
    "regr_r2",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
];

/// The first construct of a query's own level whose rows from several shards
/// would need merging: ORDER BY, LIMIT/OFFSET, FETCH, DISTINCT, GROUP BY,
/// HAVING, an aggregate, a window function, UNION/INTERSECT/EXCEPT (other
/// than UNION ALL).
pub fn needs_merge(q: &Query) -> Option<MergeNeed> {
    needs_ordering(q).or_else(|| needs_grouping(q))
}

/// ORDER BY, LIMIT/OFFSET or FETCH of the query's own level.
fn needs_ordering(q: &Query) -> Option<MergeNeed> {
    if q.order_by.is_some() {
        return Some(MergeNeed::OrderBy);
    }
    if q.limit_clause.is_some() {
        return Some(MergeNeed::LimitOffset);
    }
    if q.fetch.is_some() {
        return Some(MergeNeed::FetchFirst);
    }
    None
}

/// The first construct of the query's body whose rows need more than an
/// ordered merge (DISTINCT, GROUP BY, aggregates, …).
pub fn needs_grouping(q: &Query) -> Option<MergeNeed> {
    body_needs_merge(&q.body)
}

/// [`needs_grouping`] of a query body.
pub fn body_needs_merge(body: &SetExpr) -> Option<MergeNeed> {
    match body {
        SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => {
            let all = matches!(set_quantifier, SetQuantifier::All);
            match op {
                SetOperator::Union if all => {
                    body_needs_merge(left).or_else(|| body_needs_merge(right))
                }
                SetOperator::Union => Some(MergeNeed::Union),
                SetOperator::Intersect => Some(MergeNeed::Intersect),
                SetOperator::Except | SetOperator::Minus => Some(MergeNeed::Except),
            }
        }
        SetExpr::Query(q) => needs_merge(q),
        SetExpr::Select(s) => {
            if s.distinct.is_some() {
                return Some(MergeNeed::Distinct);
            }
            let grouped = match &s.group_by {
                sqlparser::ast::GroupByExpr::All(_) => true,
                sqlparser::ast::GroupByExpr::Expressions(e, _) => !e.is_empty(),
            };
            if grouped {
                return Some(MergeNeed::GroupBy);
            }
            if s.having.is_some() {
                return Some(MergeNeed::Having);
            }
            for item in &s.projection {
                let expr = match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                    _ => continue,
                };
                if let Some(what) = aggregate_or_window(expr) {
                    return Some(what);
                }
            }
            None
        }
        _ => None,
    }
}

/// A function call's (last) name, lower case.
pub fn function_name(f: &sqlparser::ast::Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

/// An aggregate or window function call in `expr`, outside a subquery.
fn aggregate_or_window(expr: &Expr) -> Option<MergeNeed> {
    let found = visit_expressions(expr, |e| {
        if let Expr::Function(f) = e {
            if f.over.is_some() {
                return ControlFlow::Break(MergeNeed::Window);
            }
            let name = function_name(f);
            if AGGREGATES.contains(&name.as_str()) {
                return ControlFlow::Break(MergeNeed::Aggregate);
            }
        }
        if matches!(
            e,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        ) {
            // a subquery's aggregates are its own; its tables are checked elsewhere
            return ControlFlow::Continue(());
        }
        ControlFlow::Continue(())
    });
    match found {
        ControlFlow::Break(what) => Some(what),
        ControlFlow::Continue(()) => None,
    }
}

/// The first window function call in the select list or ORDER BY.
pub fn window_function(query: &Query) -> Option<String> {
    let mut found = None;
    let mut look = |e: &Expr| {
        let _ = visit_expressions(e, |x| {
            if let Expr::Function(f) = x {
                if f.over.is_some() {
                    found.get_or_insert_with(|| x.to_string());
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
    };
    if let SetExpr::Select(s) = query.body.as_ref() {
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                look(e);
            }
        }
    }
    if let Some(OrderByKind::Expressions(exprs)) = query.order_by.as_ref().map(|o| &o.kind) {
        for e in exprs {
            look(&e.expr);
        }
    }
    found
}

/// `ORDER BY 2`: the 0-based output position.
pub fn position(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok()?.checked_sub(1),
            _ => None,
        },
        _ => None,
    }
}

/// `e` without enclosing parentheses.
pub fn strip_nested(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}
