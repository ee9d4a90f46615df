//! The merge of a grouped query (GROUP BY, or aggregates that need more
//! than one combined row: avg, HAVING, ORDER BY, LIMIT): shards sort their
//! groups by the keys, groups that meet combine, then HAVING and, when the
//! ORDER BY is not on the keys, an in-memory sort. Also whether a GROUP BY
//! includes every sharding key, so that the shards answer each group whole.

use shard_config::{ShardMap, TableRule};
use sqlparser::ast::{
    Expr, Ident, LimitClause, OrderBy, OrderByExpr, OrderByKind, Query, Select, SelectItem,
    SetExpr, TableFactor,
};

use super::columns::Columns;
use super::order::{by_position, order_keys, output_column, shard_limit};
use super::partial::{partial, renamed, Partial};
use super::types::{
    unsupported, Combine, Count, Grouped, MergeError, MergePlan, SortColumn, SortKey,
};
use crate::keys::{folded, object_names};
use crate::query_shape::{position, strip_nested, window_function};

/// The merge of a grouped query (or of aggregates without GROUP BY, with
/// `group` empty) whose groups may span shards: shards sort their groups by
/// the keys, groups that meet combine, then HAVING and, when the ORDER BY
/// is not on the keys, an in-memory sort.
pub(super) fn combined(
    query: &Query,
    s: &Select,
    group: &[Expr],
    limit: Option<Count>,
    offset: Option<Count>,
) -> Result<MergePlan, MergeError> {
    if s.distinct.is_some() {
        return unsupported("DISTINCT with GROUP BY");
    }
    if let Some(what) = window_function(query) {
        return Err(MergeError::Unsupported(format!(
            "window function {what} over groups"
        )));
    }
    let items = s.projection.as_slice();
    let mut cols = Columns {
        items,
        shard_items: items.to_vec(),
        combine: vec![None; items.len()],
        hidden: Vec::new(),
        group,
        keys: Vec::new(),
    };
    group_keys(&mut cols, group)?;
    aggregate_items(&mut cols, group)?;
    let having = match &s.having {
        Some(h) => Some(cols.predicate(h)?),
        None => None,
    };
    let (wanted, on_keys) = client_order(query, &mut cols)?;
    let resort = !on_keys;
    let mut order = if resort { Vec::new() } else { wanted.clone() };
    let mut extra = Vec::new();
    for &k in &cols.keys {
        let column = SortColumn::at(k, items.len());
        if !order.iter().any(|o| o.column == column) {
            order.push(SortKey {
                column,
                descending: false,
                nulls_first: false,
            });
            extra.push(k + 1);
        }
    }
    let hidden = cols.hidden.len();
    let mut shard = query.clone();
    if let SetExpr::Select(sel) = shard.body.as_mut() {
        sel.projection = std::mem::take(&mut cols.shard_items);
        sel.having = None;
    }
    let mut by: Vec<OrderByExpr> = match shard.order_by.take().map(|o| o.kind) {
        Some(OrderByKind::Expressions(e)) if !resort => e,
        _ => Vec::new(),
    };
    by.extend(extra.into_iter().map(by_position));
    shard.order_by = (!by.is_empty()).then_some(OrderBy {
        kind: OrderByKind::Expressions(by),
        interpolate: None,
    });
    // Shards may stop after limit + offset groups only when those are the
    // client's: in key order and not filtered by HAVING.
    let push_limit = !resort && having.is_none() && !group.is_empty();
    shard.fetch = None;
    shard.limit_clause = limit
        .filter(|_| push_limit)
        .map(|l| LimitClause::LimitOffset {
            limit: Some(shard_limit(l, offset)),
            offset: None,
            limit_by: Vec::new(),
        });
    Ok(MergePlan {
        shard_sql: Some(shard.to_string()),
        order,
        hidden,
        offset,
        limit,
        grouped: Some(Grouped {
            keys: cols.keys,
            combine: cols.combine,
            having,
            order: if resort { wanted } else { Vec::new() },
        }),
        ..MergePlan::concatenate()
    })
}

/// The column of each GROUP BY expression (an output column by position,
/// expression or alias, else a hidden column), into `cols.keys`.
fn group_keys(cols: &mut Columns<'_>, group: &[Expr]) -> Result<(), MergeError> {
    let items = cols.items;
    for e in group {
        let item = |i: usize| match items.get(i) {
            Some(SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. }) => Some(x),
            _ => None,
        };
        let col = match position(e) {
            Some(p) if item(p).is_some() => p,
            Some(_) => return Err(MergeError::Unsupported(format!("GROUP BY {e}"))),
            None => {
                let by_alias =
                    aliased(items, e).and_then(|a| items.iter().position(|i| std::ptr::eq(i, a)));
                match (0..items.len()).find(|&i| item(i) == Some(e)).or(by_alias) {
                    Some(i) => i,
                    None => cols.hide(e, e.clone(), None),
                }
            }
        };
        cols.keys.push(col);
    }
    Ok(())
}

/// How each select-list item that is not a group key combines (`avg` as
/// `sum` and a hidden `count`), into `cols`.
fn aggregate_items(cols: &mut Columns<'_>, group: &[Expr]) -> Result<(), MergeError> {
    let items = cols.items;
    for (i, item) in items.iter().enumerate() {
        if cols.keys.contains(&i) {
            continue;
        }
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
            _ => return unsupported("* in a grouped select list"),
        };
        match partial(expr)? {
            Some(Partial::Combine(c)) => cols.combine[i] = Some(c),
            Some(Partial::Avg(f)) => {
                let count = cols.hide(
                    &renamed(&f, "count"),
                    renamed(&f, "count"),
                    Some(Combine::Sum),
                );
                cols.shard_items[i] = SelectItem::ExprWithAlias {
                    expr: renamed(&f, "sum"),
                    alias: alias.cloned().unwrap_or_else(|| Ident::new("avg")),
                };
                cols.combine[i] = Some(Combine::Avg { count });
            }
            None if group.is_empty() => {
                return Err(MergeError::Unsupported(format!(
                    "{expr} next to aggregates"
                )))
            }
            None => {
                return Err(MergeError::Unsupported(format!(
                    "{expr} in a grouped select list"
                )))
            }
        }
    }
    Ok(())
}

/// The client's ORDER BY over combined groups, and whether it is on group
/// keys only (then the shards' order serves).
fn client_order(query: &Query, cols: &mut Columns<'_>) -> Result<(Vec<SortKey>, bool), MergeError> {
    let items = cols.items;
    // The client's ORDER BY: on keys only, the shards' order serves (the
    // keys not named follow); otherwise groups are sorted after combining.
    let mut wanted = Vec::new();
    let mut on_keys = true;
    for (e, descending, nulls_first) in order_keys(query)? {
        let col = match output_column(items, e).or_else(|| position(e).map(SortColumn::Visible)) {
            Some(SortColumn::Visible(i)) if i < items.len() => i,
            _ => match cols.key(e) {
                Some(c) => c,
                None => match cols.aggregate(e)? {
                    Some(c) => c,
                    None => {
                        return Err(MergeError::Unsupported(format!(
                            "ORDER BY {e}, which is neither a group key nor an aggregate,"
                        )))
                    }
                },
            },
        };
        on_keys &= cols.combine.get(col).is_some_and(Option::is_none);
        wanted.push(SortKey {
            column: SortColumn::at(col, items.len()),
            descending,
            nulls_first,
        });
    }
    Ok((wanted, on_keys))
}

/// Whether the GROUP BY includes the sharding key of every sharded table in
/// the FROM clause: then each group's rows live on one shard.
pub(super) fn groups_on_key(s: &Select, group: &[Expr], map: &ShardMap) -> bool {
    let mut tables: Vec<(Vec<String>, &str)> = Vec::new();
    let mut add = |f: &TableFactor| {
        if let TableFactor::Table { name, alias, .. } = f {
            let mut names = object_names(name);
            let key = names
                .first()
                .and_then(|t| map.table(t))
                .and_then(TableRule::key);
            if let Some(key) = key {
                names.extend(alias.iter().map(|a| folded(&a.name)));
                tables.push((names, key));
            }
        }
    };
    for t in &s.from {
        add(&t.relation);
        for j in &t.joins {
            add(&j.relation);
        }
    }
    if tables.is_empty() {
        return false;
    }
    // A GROUP BY position or output name stands for its item.
    let resolved: Vec<&Expr> = group
        .iter()
        .map(|e| {
            match position(e)
                .and_then(|p| s.projection.get(p))
                .or_else(|| aliased(&s.projection, e))
            {
                Some(SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. }) => x,
                _ => e,
            }
        })
        .collect();
    tables.iter().all(|(names, key)| {
        resolved.iter().any(|e| match strip_nested(e) {
            Expr::Identifier(c) => folded(c) == *key,
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [.., q, c] => folded(c) == *key && names.contains(&folded(q)),
                _ => false,
            },
            _ => false,
        })
    })
}

/// The item a GROUP BY name refers to by its alias. PostgreSQL prefers an
/// input column of that name; an item that is not an aggregate could not
/// stand beside such a grouping anyway, so only those resolve.
fn aliased<'a>(items: &'a [SelectItem], e: &Expr) -> Option<&'a SelectItem> {
    let Expr::Identifier(name) = e else {
        return None;
    };
    items.iter().find(|i| match i {
        SelectItem::ExprWithAlias { expr, alias } => {
            folded(alias) == folded(name) && matches!(partial(expr), Ok(None))
        }
        _ => false,
    })
}
