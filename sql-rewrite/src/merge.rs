//! Merge plans for reads that span shards (issue "cross-shard queries"):
//! what each shard runs and how the proxy combines the streams so that the
//! client gets what one database holding every row would return.
//!
//! Covered so far: `ORDER BY` (positions, output names, expressions,
//! ASC/DESC, NULLS FIRST/LAST; sort keys that are not in the select list are
//! appended as hidden columns, dropped before the client sees the rows),
//! `LIMIT`/`OFFSET`/`FETCH FIRST` (each shard gets `LIMIT limit + offset`
//! and no offset; the merge skips and stops), `DISTINCT` / `DISTINCT ON`
//! (shards sort by every output column, so duplicates from different shards
//! meet and are dropped), aggregate-only select lists without GROUP BY
//! ([`Combine`]), and GROUP BY on output columns ([`Grouped`]: shards sort
//! their groups by key, groups that meet combine). Anything else is
//! reported by [`MergeError`].

use std::fmt;

use sqlparser::ast::{
    Distinct, DuplicateTreatment, Expr, Fetch, FunctionArguments, Ident, LimitClause, Offset,
    OrderBy, OrderByExpr, OrderByKind, OrderByOptions, OrderBySort, Query, SelectItem, SetExpr,
    Value,
};

use crate::keys::{folded, strip};

/// Where a sort key's value is in a shard's result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortColumn {
    /// A column the client sees, 0-based.
    Visible(usize),
    /// The `n`th (0-based) hidden column appended for the merge: column
    /// `columns - hidden + n` of a row.
    Hidden(usize),
    /// The output column of this name (an alias after a `*`, whose position
    /// is known only from the RowDescription).
    Named(String),
}

/// One key of the merge order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Its column.
    pub column: SortColumn,
    /// `DESC`.
    pub descending: bool,
    /// NULLs sort first (PostgreSQL's default: first for DESC, last for ASC).
    pub nulls_first: bool,
}

/// A row count from `LIMIT`, `OFFSET` or `FETCH`: a literal or a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A literal.
    Literal(u64),
    /// `$n`, 1-based, resolved at Bind.
    Param(usize),
}

/// How to merge the rows of several shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// The SQL each shard runs, when it differs from the client's.
    pub shard_sql: Option<String>,
    /// The merge order (empty: concatenate in any order).
    pub order: Vec<SortKey>,
    /// Hidden columns at the end of each row.
    pub hidden: usize,
    /// Rows to skip after merging.
    pub offset: Option<Count>,
    /// Rows to return after the offset (`None`: all).
    pub limit: Option<Count>,
    /// An aggregate-only query (no GROUP BY): each shard returns one row of
    /// partial aggregates, combined column by column.
    pub aggregates: Vec<Combine>,
    /// `DISTINCT` / `DISTINCT ON`: rows equal on these columns, adjacent in
    /// the merged order, are kept once (the first).
    pub distinct: Option<Dedupe>,
    /// `GROUP BY`: each shard's groups, sorted by the group columns, are
    /// combined where keys meet.
    pub grouped: Option<Grouped>,
}

/// A grouped query's merge: which columns are group keys, and how the
/// others (aggregates) combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouped {
    /// The group key columns (visible, 0-based).
    pub keys: Vec<usize>,
    /// For each output column: how it combines, `None` for a key column.
    pub combine: Vec<Option<Combine>>,
}

/// Which columns make rows duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedupe {
    /// Every visible column (`SELECT DISTINCT`).
    All,
    /// The `DISTINCT ON` columns.
    On(Vec<SortColumn>),
}

/// How one column of shards' partial aggregates combines into the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// `count` and `sum`: add (NULLs ignored; all NULL: NULL).
    Sum,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `bool_and` / `every`.
    And,
    /// `bool_or`.
    Or,
}

/// Why a query cannot be merged (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A construct this merge does not handle.
    #[error("{0} across shards is not supported yet")]
    Unsupported(String),
}

/// The merge plan of a top-level query whose rows come from several shards.
pub fn plan(query: &Query) -> Result<MergePlan, MergeError> {
    let unsupported = |what: &str| Err(MergeError::Unsupported(what.to_string()));
    if query
        .fetch
        .as_ref()
        .is_some_and(|f| f.with_ties || f.percent)
    {
        return unsupported("FETCH … WITH TIES or PERCENT");
    }
    let (limit, offset) = counts(query)?;
    let aggregates = aggregates(query)?;
    if !aggregates.is_empty() {
        if query.order_by.is_some() || limit.is_some() || offset.is_some() {
            return unsupported("ORDER BY or LIMIT on an aggregate");
        }
        return Ok(MergePlan {
            shard_sql: None,
            order: Vec::new(),
            hidden: 0,
            offset: None,
            limit: None,
            aggregates,
            distinct: None,
            grouped: None,
        });
    }
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
    if let Some(by) = &query.order_by {
        let OrderByKind::Expressions(exprs) = &by.kind else {
            return unsupported("ORDER BY ALL");
        };
        for e in exprs {
            let descending = match &e.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(_)) => return unsupported("ORDER BY … USING"),
            };
            let nulls_first = e.options.nulls_first.unwrap_or(descending);
            let column = match output_column(&items, &e.expr) {
                Some(c) => c,
                None => match (position(&e.expr), can_hide) {
                    (Some(p), _) => SortColumn::Visible(p),
                    (None, true) => {
                        let n = hidden;
                        hidden += 1;
                        appended.push(SelectItem::ExprWithAlias {
                            expr: e.expr.clone(),
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
    }
    // DISTINCT and GROUP BY: rows from different shards that belong
    // together must meet in the merged order, so it is total on their
    // columns: the ORDER BY keys first, then the others.
    let mut extra: Vec<usize> = Vec::new();
    let grouped = grouping(&query, &items)?;
    if let Some(g) = &grouped {
        if hidden > 0
            || order.iter().any(|k| match &k.column {
                SortColumn::Visible(i) => !g.keys.contains(i),
                _ => true,
            })
        {
            return unsupported("ORDER BY other than the group keys of a GROUP BY");
        }
        for &i in &g.keys {
            order_also_by(i, &mut order, &mut extra);
        }
    }
    let distinct = match query.body.as_ref() {
        SetExpr::Select(s) => s.distinct.clone(),
        _ => None,
    };
    let dedupe = match distinct {
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
                order_also_by(i, &mut order, &mut extra);
            }
            Some(Dedupe::All)
        }
        Some(Distinct::On(exprs)) => {
            let mut on = Vec::new();
            for e in &exprs {
                match output_column(&items, e).or_else(|| position(e).map(SortColumn::Visible)) {
                    Some(c @ SortColumn::Visible(_)) => on.push(c),
                    _ => return unsupported("DISTINCT ON an expression outside the select list"),
                }
            }
            if order.is_empty() {
                for c in &on {
                    if let SortColumn::Visible(i) = c {
                        order_also_by(*i, &mut order, &mut extra);
                    }
                }
            }
            Some(Dedupe::On(on))
        }
    };
    if !extra.is_empty() {
        let mut exprs = match query.order_by.take().map(|o| o.kind) {
            Some(OrderByKind::Expressions(e)) => e,
            _ => Vec::new(),
        };
        for p in extra {
            exprs.push(OrderByExpr {
                expr: Expr::value(Value::Number(p.to_string(), false)),
                options: OrderByOptions {
                    sort: None,
                    nulls_first: None,
                },
                with_fill: None,
            });
        }
        query.order_by = Some(OrderBy {
            kind: OrderByKind::Expressions(exprs),
            interpolate: None,
        });
    }
    let rewrite = !appended.is_empty()
        || offset.is_some()
        || query.fetch.is_some()
        || ((dedupe.is_some() || grouped.is_some()) && query.order_by.is_some());
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
        aggregates: Vec::new(),
        distinct: dedupe,
        grouped,
    })
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

/// The merge of a `GROUP BY` query: every group expression must be an output
/// column and every other output column an aggregate that combines.
fn grouping(query: &Query, items: &[SelectItem]) -> Result<Option<Grouped>, MergeError> {
    let unsupported = |what: String| Err(MergeError::Unsupported(what));
    let SetExpr::Select(s) = query.body.as_ref() else {
        return Ok(None);
    };
    let exprs = match &s.group_by {
        sqlparser::ast::GroupByExpr::Expressions(e, m) if m.is_empty() => e,
        sqlparser::ast::GroupByExpr::Expressions(..) => {
            return unsupported("GROUP BY ROLLUP, CUBE or GROUPING SETS".into())
        }
        sqlparser::ast::GroupByExpr::All(_) => return unsupported("GROUP BY ALL".into()),
    };
    if exprs.is_empty() {
        return Ok(None);
    }
    if s.having.is_some() {
        return unsupported("HAVING".into());
    }
    if s.distinct.is_some() {
        return unsupported("DISTINCT with GROUP BY".into());
    }
    let mut keys = Vec::new();
    for e in exprs {
        match output_column(items, e).or_else(|| position(e).map(SortColumn::Visible)) {
            Some(SortColumn::Visible(i)) if i < items.len() => keys.push(i),
            _ => return unsupported(format!("GROUP BY {e}, which is not in the select list")),
        }
    }
    let mut combine = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if keys.contains(&i) {
            combine.push(None);
            continue;
        }
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return unsupported("* in a grouped select list".into()),
        };
        match self::combine(expr)? {
            Some(c) => combine.push(Some(c)),
            None => return unsupported(format!("{expr} in a grouped select list")),
        }
    }
    Ok(Some(Grouped { keys, combine }))
}

/// The combination of each output column of a query whose select list is
/// only aggregates (no GROUP BY, HAVING, DISTINCT): empty when it has none;
/// an error for an aggregate shardgate cannot combine.
fn aggregates(query: &Query) -> Result<Vec<Combine>, MergeError> {
    let SetExpr::Select(s) = query.body.as_ref() else {
        return Ok(Vec::new());
    };
    let grouped = match &s.group_by {
        sqlparser::ast::GroupByExpr::Expressions(e, _) => !e.is_empty(),
        sqlparser::ast::GroupByExpr::All(_) => true,
    };
    if grouped || s.having.is_some() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in &s.projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return Ok(Vec::new()),
        };
        match combine(expr)? {
            Some(c) => out.push(c),
            None => {
                if !out.is_empty() {
                    return Err(MergeError::Unsupported(format!(
                        "{expr} next to aggregates"
                    )));
                }
                return Ok(Vec::new());
            }
        }
    }
    Ok(out)
}

/// How an aggregate call's per-shard results combine; `None` for an
/// expression that is not an aggregate call.
fn combine(expr: &Expr) -> Result<Option<Combine>, MergeError> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    let name = crate::route::refusal::function_name(f);
    let c = match name.as_str() {
        "count" | "sum" => Combine::Sum,
        "min" => Combine::Min,
        "max" => Combine::Max,
        "bool_and" | "every" => Combine::And,
        "bool_or" => Combine::Or,
        other if crate::route::refusal::AGGREGATES.contains(&other) && f.over.is_none() => {
            return Err(MergeError::Unsupported(format!(
                "aggregate function {other}"
            )))
        }
        _ => return Ok(None),
    };
    if f.over.is_some() {
        return Ok(None);
    }
    let distinct = match &f.args {
        FunctionArguments::List(l) => l
            .duplicate_treatment
            .is_some_and(|d| d == DuplicateTreatment::Distinct),
        _ => false,
    };
    if distinct {
        return Err(MergeError::Unsupported(format!("{name}(DISTINCT …)")));
    }
    if !f.within_group.is_empty() {
        return Err(MergeError::Unsupported(format!("{name} … WITHIN GROUP")));
    }
    Ok(Some(c))
}

/// `LIMIT`/`FETCH` and `OFFSET` of a query.
fn counts(query: &Query) -> Result<(Option<Count>, Option<Count>), MergeError> {
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
fn shard_limit(limit: Count, offset: Option<Count>) -> Expr {
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

/// `ORDER BY 2`: the 0-based output position.
fn position(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok()?.checked_sub(1),
            _ => None,
        },
        _ => None,
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
fn output_column(items: &[SelectItem], e: &Expr) -> Option<SortColumn> {
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

/// `ORDER BY c1 DESC NULLS LAST, hidden 0 ASC …; offset 5; limit $1`.
impl fmt::Display for MergePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.order.is_empty() {
            let keys: Vec<String> = self
                .order
                .iter()
                .map(|k| {
                    let col = match &k.column {
                        SortColumn::Visible(i) => format!("c{}", i + 1),
                        SortColumn::Hidden(i) => format!("hidden {i}"),
                        SortColumn::Named(n) => format!("column {n:?}"),
                    };
                    format!(
                        "{col} {} NULLS {}",
                        if k.descending { "DESC" } else { "ASC" },
                        if k.nulls_first { "FIRST" } else { "LAST" }
                    )
                })
                .collect();
            parts.push(format!("order {}", keys.join(", ")));
        }
        let count = |c: &Count| match c {
            Count::Literal(n) => n.to_string(),
            Count::Param(n) => format!("${n}"),
        };
        if let Some(o) = &self.offset {
            parts.push(format!("offset {}", count(o)));
        }
        if let Some(l) = &self.limit {
            parts.push(format!("limit {}", count(l)));
        }
        if !self.aggregates.is_empty() {
            let names: Vec<&str> = self
                .aggregates
                .iter()
                .map(|c| match c {
                    Combine::Sum => "sum",
                    Combine::Min => "min",
                    Combine::Max => "max",
                    Combine::And => "and",
                    Combine::Or => "or",
                })
                .collect();
            parts.push(format!("combine {}", names.join(", ")));
        }
        if let Some(g) = &self.grouped {
            let keys: Vec<String> = g.keys.iter().map(|i| format!("c{}", i + 1)).collect();
            parts.push(format!("group by {}", keys.join(", ")));
        }
        match &self.distinct {
            Some(Dedupe::All) => parts.push("distinct".into()),
            Some(Dedupe::On(cols)) => {
                let cols: Vec<String> = cols
                    .iter()
                    .map(|c| match c {
                        SortColumn::Visible(i) => format!("c{}", i + 1),
                        other => format!("{other:?}"),
                    })
                    .collect();
                parts.push(format!("distinct on {}", cols.join(", ")));
            }
            None => {}
        }
        if parts.is_empty() {
            parts.push("concatenate".into());
        }
        f.write_str(&parts.join("; "))?;
        if let Some(sql) = &self.shard_sql {
            write!(f, "; shards run: {sql}")?;
        }
        Ok(())
    }
}

impl Count {
    /// The value, with `$n` taken from `params` (text, or a binary
    /// int2/int4/int8); `None`: NULL or unreadable, that is no limit.
    pub fn resolve(self, params: &[crate::route::Param<'_>]) -> Option<u64> {
        match self {
            Count::Literal(n) => Some(n),
            Count::Param(n) => {
                let p = params.get(n.checked_sub(1)?)?;
                let v = p.value?;
                if p.binary {
                    let n = match v.len() {
                        2 => i64::from(i16::from_be_bytes(v.try_into().ok()?)),
                        4 => i64::from(i32::from_be_bytes(v.try_into().ok()?)),
                        8 => i64::from_be_bytes(v.try_into().ok()?),
                        _ => return None,
                    };
                    return u64::try_from(n).ok();
                }
                std::str::from_utf8(v).ok()?.trim().parse().ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_resolve_from_literals_and_text_parameters() {
        let text = |value| crate::route::Param {
            value,
            binary: false,
        };
        let params = [
            text(Some(b"10")),
            text(None),
            text(Some(b"x")),
            crate::route::Param {
                value: Some(&5i64.to_be_bytes()),
                binary: true,
            },
        ];
        assert_eq!(Count::Literal(7).resolve(&params), Some(7));
        assert_eq!(Count::Param(1).resolve(&params), Some(10));
        assert_eq!(Count::Param(2).resolve(&params), None, "NULL: no limit");
        assert_eq!(Count::Param(3).resolve(&params), None);
        assert_eq!(Count::Param(4).resolve(&params), Some(5), "binary int8");
        assert_eq!(Count::Param(5).resolve(&params), None);
        assert_eq!(Count::Param(0).resolve(&params), None);
    }
}
