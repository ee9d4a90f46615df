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
//! ([`Combine`]), GROUP BY that includes every sharded table's key (each
//! group lives on one shard: the shards answer it whole,
//! [`MergePlan::groups_per_shard`]), and other GROUP BYs ([`Grouped`]:
//! shards sort their groups by key, groups that meet combine; `avg` as
//! `sum` and `count`; HAVING as a [`Predicate`] the proxy evaluates; ORDER
//! BY aggregates by an in-memory sort). Anything else is reported by
//! [`MergeError`].
//!
//! Layout (dependencies go down the list): [`plan`] here decides which
//! merge a query needs; `grouped` plans GROUP BY and aggregate merges,
//! `columns` the shard-row columns of a grouped merge and its HAVING,
//! `partial` the per-shard part of one aggregate call, `order` ORDER BY,
//! LIMIT/OFFSET and DISTINCT; `display` prints a plan one step per line;
//! `types` holds the plan's types.

mod columns;
mod display;
mod grouped;
mod order;
mod partial;
mod types;

use shard_config::ShardMap;
use sqlparser::ast::{Expr, GroupByExpr, Query, SetExpr};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

pub use types::{
    Combine, CompareOp, Count, Dedupe, Grouped, MergeError, MergePlan, Operand, Predicate,
    SortColumn, SortKey,
};

use crate::params::{params_used, renumber_params};
use crate::query_shape::window_function;
use grouped::{combined, groups_on_key};
use order::{counts, ordered};
use partial::{aggregate_only, Partial};
use types::unsupported;

/// The merge plan of a top-level query whose rows come from several shards;
/// `map` says which FROM tables are sharded and by which key.
pub fn plan(query: &Query, map: &ShardMap) -> Result<MergePlan, MergeError> {
    let mut plan = plan_shards(query, map)?;
    // A parameter only the proxy uses (OFFSET $n) must not reach the
    // shards: their statement would declare fewer parameters than it is
    // given. Only texts with parameters (prepared, their plans cached) are
    // parsed again.
    let Some(sql) = &plan.shard_sql else {
        return Ok(plan);
    };
    let total = params_used(query).last().copied().unwrap_or(0);
    if total > 0 {
        let parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .ok()
            .and_then(|mut v| v.pop());
        if let Some(mut statement) = parsed {
            plan.shard_params = renumber_params(&mut statement, total);
            if plan.shard_params.is_some() {
                plan.shard_sql = Some(statement.to_string());
            }
        }
    }
    Ok(plan)
}

/// [`plan`] before the shards' parameters are renumbered.
fn plan_shards(query: &Query, map: &ShardMap) -> Result<MergePlan, MergeError> {
    if query
        .fetch
        .as_ref()
        .is_some_and(|f| f.with_ties || f.percent)
    {
        return unsupported("FETCH … WITH TIES or PERCENT");
    }
    let (limit, offset) = counts(query)?;
    let SetExpr::Select(s) = query.body.as_ref() else {
        return ordered(query, limit, offset);
    };
    let group = match &s.group_by {
        GroupByExpr::Expressions(e, m) if m.is_empty() => e.as_slice(),
        GroupByExpr::Expressions(..) => {
            return unsupported("GROUP BY ROLLUP, CUBE or GROUPING SETS")
        }
        GroupByExpr::All(_) => return unsupported("GROUP BY ALL"),
    };
    if let Some(e) = group
        .iter()
        .find(|e| matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)))
    {
        return Err(MergeError::Unsupported(format!("GROUP BY {e}")));
    }
    if !group.is_empty() {
        if groups_on_key(s, group, map) {
            // Every group lives on one shard: the shards answer it whole.
            if let Some(what) = window_function(query) {
                return Err(MergeError::Unsupported(format!(
                    "window function {what} over groups"
                )));
            }
            let mut p = ordered(query, limit, offset)?;
            p.groups_per_shard = true;
            return Ok(p);
        }
        return combined(query, s, group, limit, offset);
    }
    // Aggregates without GROUP BY: one group.
    let Some(parts) = aggregate_only(s)? else {
        return ordered(query, limit, offset);
    };
    let plain: Option<Vec<Combine>> = parts
        .iter()
        .map(|p| match p {
            Partial::Combine(c) => Some(*c),
            Partial::Avg(_) => None,
        })
        .collect();
    match plain {
        Some(aggregates)
            if s.having.is_none()
                && query.order_by.is_none()
                && limit.is_none()
                && offset.is_none() =>
        {
            Ok(MergePlan {
                aggregates,
                ..MergePlan::concatenate()
            })
        }
        _ => combined(query, s, &[], limit, offset),
    }
}
