//! The merge of rows the shards return complete: ORDER BY (output
//! columns, or hidden sort columns appended to the select list),
//! LIMIT/OFFSET/FETCH (each shard returns limit + offset rows, the merge
//! skips and stops) and DISTINCT / DISTINCT ON (shards sort by every output
//! column so duplicates meet).

use sqlparser::ast::{
    Distinct, Expr, Fetch, Ident, LimitClause, Offset, OrderBy, OrderByExpr, OrderByKind,
    OrderByOptions, OrderBySort, Query, SelectItem, SetExpr, Value,
};

use super::types::{unsupported, Count, Dedupe, MergeError, MergePlan, SortColumn, SortKey};
use crate::keys::{folded, strip};
use crate::query_shape::position;

/// The merge of rows the shards return complete: ORDER BY, LIMIT/OFFSET,
/// DISTINCT.
pub(super) fn ordered(
    query: &Query,
    limit: Option<Count>,
    offset: Option<Count>,
) -> Result<MergePlan, MergeError> {
    let mut query = query.clone();
    // Names in ORDER BY resolve against the output columns: those of the
    // (leftmost) SELECT. Only a plain SELECT can take hidden columns.
    let (items, can_hide) = match query.body.as_ref() {
        SetExpr::Select(s) => (s.projection.clone(), true),
        body @ SetExpr::SetOperation { .. } => match leftmost(body) {
            Some(items) => (items.to_vec(), false),
            None => return unsupported("this query form"),
        },
        _ => return unsupported("this query form"),
    };
    let mut order = Vec::new();
    let mut hidden = 0;
    let mut appended: Vec<SelectItem> = Vec::new();
    for (e, descending, nulls_first) in order_keys(&query)? {
        let column = match output_column(&items, e) {
            Some(c) => c,
            None => match (position(e), can_hide) {
                (Some(p), _) => SortColumn::Visible(p),
                (None, true) => {
                    let n = hidden;
                    hidden += 1;
                    appended.push(SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::new(format!("__shardgate_sort_{n}")),
                    });
                    SortColumn::Hidden(n)
                }
                (None, false) => {
                    return unsupported(
                        "ORDER BY an expression that is not an output column of a UNION",
                    )
                }
            },
        };
        order.push(SortKey {
            column,
            descending,
            nulls_first,
        });
    }
    // DISTINCT: duplicates from different shards must meet in the merged
    // order, so it is total on the output columns: the ORDER BY keys first,
    // then the others.
    let mut extra: Vec<usize> = Vec::new();
    let dedupe = dedupe(&query, &items, hidden, &mut order, &mut extra)?;
    if !extra.is_empty() {
        let mut exprs = match query.order_by.take().map(|o| o.kind) {
            Some(OrderByKind::Expressions(e)) => e,
            _ => Vec::new(),
        };
        exprs.extend(extra.into_iter().map(by_position));
        query.order_by = Some(OrderBy {
            kind: OrderByKind::Expressions(exprs),
            interpolate: None,
        });
    }
    let rewrite = !appended.is_empty()
        || offset.is_some()
        || query.fetch.is_some()
        || (dedupe.is_some() && query.order_by.is_some());
    if let SetExpr::Select(s) = query.body.as_mut() {
        s.projection.extend(appended);
    }
    // Each shard returns its first limit + offset rows, unskipped.
    if rewrite || limit.is_some() {
        query.fetch = None;
        query.limit_clause = limit.map(|l| LimitClause::LimitOffset {
            limit: Some(shard_limit(l, offset)),
            offset: None,
            limit_by: Vec::new(),
        });
    }
    Ok(MergePlan {
        shard_sql: rewrite.then(|| query.to_string()),
        order,
        hidden,
        offset,
        limit,
        distinct: dedupe,
        ..MergePlan::concatenate()
    })
}

/// The DISTINCT of a query: its dedupe, with the output columns it needs
/// in the merge order added to `order` (and, as positions, to `extra` for
/// the shards' ORDER BY).
fn dedupe(
    query: &Query,
    items: &[SelectItem],
    hidden: usize,
    order: &mut Vec<SortKey>,
    extra: &mut Vec<usize>,
) -> Result<Option<Dedupe>, MergeError> {
    let distinct = match query.body.as_ref() {
        SetExpr::Select(s) => s.distinct.clone(),
        _ => None,
    };
    Ok(match distinct {
        None | Some(Distinct::All) => None,
        Some(Distinct::Distinct) => {
            if items.iter().any(|i| {
                matches!(
                    i,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            }) {
                return unsupported("SELECT DISTINCT *");
            }
            if hidden > 0 {
                return unsupported("DISTINCT with ORDER BY keys outside the select list");
            }
            for i in 0..items.len() {
                order_also_by(i, order, extra);
            }
            Some(Dedupe::All)
        }
        Some(Distinct::On(exprs)) => {
            let mut on = Vec::new();
            for e in &exprs {
                match output_column(items, e).or_else(|| position(e).map(SortColumn::Visible)) {
                    Some(c @ SortColumn::Visible(_)) => on.push(c),
                    _ => return unsupported("DISTINCT ON an expression outside the select list"),
                }
            }
            if order.is_empty() {
                for c in &on {
                    if let SortColumn::Visible(i) = c {
                        order_also_by(*i, order, extra);
                    }
                }
            }
            Some(Dedupe::On(on))
        }
    })
}

/// The ORDER BY keys of a query: expression, DESC, NULLS FIRST.
pub(super) fn order_keys(query: &Query) -> Result<Vec<(&Expr, bool, bool)>, MergeError> {
    let Some(by) = &query.order_by else {
        return Ok(Vec::new());
    };
    let OrderByKind::Expressions(exprs) = &by.kind else {
        return unsupported("ORDER BY ALL");
    };
    exprs
        .iter()
        .map(|e| {
            let descending = match &e.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(_)) => return unsupported("ORDER BY … USING"),
            };
            let nulls_first = e.options.nulls_first.unwrap_or(descending);
            Ok((&e.expr, descending, nulls_first))
        })
        .collect()
}

/// `ORDER BY n` (ascending) for output position `n`.
pub(super) fn by_position(n: usize) -> OrderByExpr {
    OrderByExpr {
        expr: Expr::value(Value::Number(n.to_string(), false)),
        options: OrderByOptions {
            sort: None,
            nulls_first: None,
        },
        with_fill: None,
    }
}

/// Adds output column `i` (ascending) to the merge order and, as position
/// `i + 1`, to what the shards' ORDER BY gets, unless it is a key already.
fn order_also_by(i: usize, order: &mut Vec<SortKey>, extra: &mut Vec<usize>) {
    if !order.iter().any(|k| k.column == SortColumn::Visible(i)) {
        order.push(SortKey {
            column: SortColumn::Visible(i),
            descending: false,
            nulls_first: false,
        });
        extra.push(i + 1);
    }
}

/// `LIMIT`/`FETCH` and `OFFSET` of a query.
pub(super) fn counts(query: &Query) -> Result<(Option<Count>, Option<Count>), MergeError> {
    let count = |e: &Expr, what: &str| -> Result<Option<Count>, MergeError> {
        match strip(e) {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n
                    .parse::<u64>()
                    .map(|n| Some(Count::Literal(n)))
                    .map_err(|_| MergeError::Unsupported(format!("{what} {n}"))),
                Value::Null => Ok(None),
                Value::Placeholder(p) => p
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .map(|n| Some(Count::Param(n)))
                    .ok_or_else(|| MergeError::Unsupported(format!("{what} {p}"))),
                _ => Err(MergeError::Unsupported(format!("{what} {e}"))),
            },
            _ => Err(MergeError::Unsupported(format!("{what} {e}"))),
        }
    };
    let (mut limit, mut offset) = (None, None);
    match &query.limit_clause {
        None => {}
        Some(LimitClause::LimitOffset {
            limit: l,
            offset: o,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(MergeError::Unsupported("LIMIT BY".into()));
            }
            if let Some(l) = l {
                limit = count(l, "LIMIT")?;
            }
            if let Some(Offset { value, .. }) = o {
                offset = count(value, "OFFSET")?;
            }
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => {
            return Err(MergeError::Unsupported("LIMIT offset, count".into()))
        }
    }
    if let Some(Fetch {
        quantity: Some(q), ..
    }) = &query.fetch
    {
        limit = count(q, "FETCH FIRST")?;
    } else if query.fetch.is_some() {
        limit = Some(Count::Literal(1));
    }
    Ok((limit, offset))
}

/// What each shard's LIMIT must be: enough rows for the offset and the limit.
pub(super) fn shard_limit(limit: Count, offset: Option<Count>) -> Expr {
    let expr = |c: Count| match c {
        Count::Literal(n) => Expr::value(Value::Number(n.to_string(), false)),
        Count::Param(n) => Expr::value(Value::Placeholder(format!("${n}"))),
    };
    match (limit, offset) {
        (l, None) => expr(l),
        (Count::Literal(l), Some(Count::Literal(o))) => expr(Count::Literal(l.saturating_add(o))),
        (l, Some(o)) => {
            // typed, or a server cannot resolve `unknown + unknown`
            let bigint = |c: Count| match c {
                Count::Param(_) => Expr::Cast {
                    kind: sqlparser::ast::CastKind::DoubleColon,
                    expr: Box::new(expr(c)),
                    data_type: sqlparser::ast::DataType::BigInt(None),
                    format: None,
                },
                _ => expr(c),
            };
            Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(bigint(l)),
                op: sqlparser::ast::BinaryOperator::Plus,
                right: Box::new(bigint(o)),
            }))
        }
    }
}

/// The projection of the leftmost SELECT of a set operation.
fn leftmost(body: &SetExpr) -> Option<&[SelectItem]> {
    match body {
        SetExpr::Select(s) => Some(&s.projection),
        SetExpr::SetOperation { left, .. } => leftmost(left),
        _ => None,
    }
}

/// The output column an ORDER BY expression names: a bare name equal to an
/// item's alias or column name, or an expression equal to an item's. After
/// a wildcard positions are unknown: a name is then resolved at run time,
/// an expression not at all.
pub(super) fn output_column(items: &[SelectItem], e: &Expr) -> Option<SortColumn> {
    let name = match e {
        Expr::Identifier(i) => Some(folded(i)),
        _ => None,
    };
    let mut after_wildcard = false;
    for (i, item) in items.iter().enumerate() {
        let matches = match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                after_wildcard = true;
                false
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                name.as_deref() == Some(folded(alias).as_str()) || expr == e
            }
            SelectItem::UnnamedExpr(expr) => {
                expr == e
                    || match (expr, &name) {
                        (Expr::Identifier(c), Some(n)) => folded(c) == *n,
                        (Expr::CompoundIdentifier(parts), Some(n)) => {
                            parts.last().is_some_and(|c| folded(c) == *n)
                        }
                        _ => false,
                    }
            }
            _ => false,
        };
        if matches {
            return match (after_wildcard, name) {
                (false, _) => Some(SortColumn::Visible(i)),
                (true, Some(n)) => Some(SortColumn::Named(n)),
                (true, None) => None,
            };
        }
    }
    None
}
