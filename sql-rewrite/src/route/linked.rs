//! Linked subqueries (`key IN (SELECT key …)`, `[NOT] EXISTS (… WHERE
//! inner.key = outer.key)`) of co-located tables: their rows for an outer
//! row live on that row's shard, so they run wherever the outer tables do.

use shard_config::TableRule;
use sqlparser::ast::{Query, SelectItem, SetExpr};

use super::refusal::{refuse, Refusal, RefusalKind};
use super::scope::{column, equalities, ColumnRef, LinkKind, Placement, Scope, Walk};
use super::scope_check::scope_not_per_shard;
use super::topology::Topology;
use crate::query_shape::{needs_grouping, MergeNeed};

/// Per occurrence: it is in a linked subquery (`key IN (SELECT key …)`,
/// `EXISTS (… WHERE inner.key = outer.key)`) whose rows for an outer row
/// live on that row's shard, so it runs wherever the outer tables do.
pub(super) fn follows_outer(
    walk: &Walk,
    placements: &[Placement],
    topo: &Topology<'_>,
) -> Vec<bool> {
    let ok: Vec<bool> = (0..walk.selects.len())
        .map(|s| {
            walk.selects[s].link.is_some()
                && linked_subquery_ok(walk, s, placements, topo).is_none()
        })
        .collect();
    walk.occurrences
        .iter()
        .map(|o| o.select.is_some_and(|s| ok[s]))
        .collect()
}

/// Why linked subquery scope `s` cannot run per shard, if it cannot: its
/// tie to the outer rows must be the sharding keys of co-located tables,
/// and it must hold no LIMIT, grouping or aggregate.
pub(super) fn linked_subquery_ok(
    walk: &Walk,
    s: usize,
    placements: &[Placement],
    topo: &Topology<'_>,
) -> Option<Refusal> {
    let scope = &walk.selects[s];
    let sharded = |i: &usize| placements[*i] == Placement::Sharded;
    let inner: Vec<usize> = scope.occurrences.iter().copied().filter(sharded).collect();
    let &first = inner.first()?;
    let table = &walk.occurrences[first].table;
    let general = format!(
        "a subquery reading sharded table {table} runs per shard only when it is `key IN (SELECT key …)` or `[NOT] EXISTS (… WHERE inner.key = outer.key)` of co-located tables"
    );
    let Some(link) = &scope.link else {
        return refuse(RefusalKind::SubqueryNotTiedByKey, general);
    };
    if let Some(what) = unfit(&link.query) {
        return refuse(
            RefusalKind::SubqueryNotTiedByKey,
            format!("{general}, without {what}"),
        );
    }
    if let Some(why) = scope_not_per_shard(walk, scope, placements, topo) {
        return Some(why);
    }
    let tie = Tie {
        walk,
        placements,
        topo,
        outer: &walk.selects[link.outer].occurrences,
        inner: &inner,
        general: &general,
    };
    let pair = match &link.kind {
        LinkKind::NotIn => {
            return refuse(
                RefusalKind::NotInSubquery,
                format!(
            "{general}: NOT IN is not supported (a NULL on any shard changes every shard's answer)"
        ),
            )
        }
        LinkKind::In(left) => tie.in_pair(left.as_ref(), &link.query),
        LinkKind::Exists => tie.exists_pair(scope, first),
    };
    let (o, i) = match pair {
        Ok(pair) => pair,
        Err(why) => return Some(why),
    };
    if !tie.colocated(o, i) {
        return refuse(
            RefusalKind::SubqueryNotTiedByKey,
            format!(
                "{general}: {} and {} are not co-located",
                walk.occurrences[o].table, walk.occurrences[i].table
            ),
        );
    }
    None
}

/// What finding the key pair that ties a linked subquery to its outer
/// query needs.
struct Tie<'a, 't> {
    walk: &'a Walk,
    placements: &'a [Placement],
    topo: &'a Topology<'t>,
    /// The outer query's occurrences.
    outer: &'a [usize],
    /// The subquery's sharded occurrences.
    inner: &'a [usize],
    /// The general refusal message.
    general: &'a str,
}

impl Tie<'_, '_> {
    /// The rule of occurrence `i`'s table.
    fn rule_of(&self, i: usize) -> Option<&TableRule> {
        self.topo.map.table(&self.walk.occurrences[i].table)
    }

    /// The sharding key column of occurrence `i`.
    fn key_of(&self, i: usize) -> &str {
        self.rule_of(i).and_then(TableRule::key).unwrap_or_default()
    }

    /// The occurrence of `occurrences` column `c` names (by qualifier, or
    /// the only one) when `c` is its sharding key (not of a time table).
    fn key_column(&self, c: &ColumnRef, occurrences: &[usize]) -> Option<usize> {
        let found = match &c.0 {
            Some(q) => occurrences
                .iter()
                .copied()
                .find(|&i| self.walk.occurrences[i].names.iter().any(|n| n == q)),
            None if occurrences.len() == 1 => occurrences.first().copied(),
            None => None,
        };
        found.filter(|&i| {
            self.placements[i] == Placement::Sharded
                && !matches!(self.rule_of(i), Some(TableRule::Time { .. }))
                && self.key_of(i) == c.1
        })
    }

    /// Both tables are in one co-location group.
    fn colocated(&self, a: usize, b: usize) -> bool {
        let group = |i: usize| self.rule_of(i).and_then(TableRule::group);
        group(a).is_some() && group(a) == group(b)
    }

    /// A refusal: the general message with `why`.
    fn not_tied(&self, why: &str) -> Refusal {
        Refusal::new(
            RefusalKind::SubqueryNotTiedByKey,
            format!("{}: {why}", self.general),
        )
    }

    /// `key IN (SELECT key …)`: the outer and inner occurrences whose keys
    /// it equates.
    fn in_pair(&self, left: Option<&ColumnRef>, query: &Query) -> Result<(usize, usize), Refusal> {
        let Some(left) = left.and_then(|l| self.key_column(l, self.outer)) else {
            return Err(self.not_tied(
                "the left side of IN is not the sharding key of a sharded table of the outer query",
            ));
        };
        let item = match query.body.as_ref() {
            SetExpr::Select(sel) if sel.projection.len() == 1 => match &sel.projection[0] {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => column(e),
                _ => None,
            },
            _ => None,
        };
        let Some(right) = item.and_then(|c| self.key_column(&c, self.inner)) else {
            return Err(
                self.not_tied("the subquery does not select the sharding key of its sharded table")
            );
        };
        Ok((left, right))
    }

    /// `EXISTS (… WHERE inner.key = outer.key)`: the outer and inner
    /// occurrences (co-located) whose keys its WHERE equates.
    fn exists_pair(&self, scope: &Scope, first: usize) -> Result<(usize, usize), Refusal> {
        let walk = self.walk;
        let mut eqs = Vec::new();
        if let Some(w) = &scope.selection {
            equalities(w, &mut eqs);
        }
        // The outer side must be qualified by a name no inner table shadows.
        let outer_key = |c: &ColumnRef| {
            c.0.as_ref()
                .filter(|q| {
                    !scope
                        .occurrences
                        .iter()
                        .any(|&i| walk.occurrences[i].names.contains(q))
                })
                .and_then(|_| self.key_column(c, self.outer))
        };
        let inner_key = |c: &ColumnRef| {
            self.key_column(c, &scope.occurrences)
                .filter(|i| self.inner.contains(i))
        };
        let found = eqs.iter().find_map(|(a, b)| {
            match (outer_key(a), inner_key(b), outer_key(b), inner_key(a)) {
                (Some(o), Some(i), _, _) | (_, _, Some(o), Some(i)) if self.colocated(o, i) => {
                    Some((o, i))
                }
                _ => None,
            }
        });
        found.ok_or_else(|| {
            let table = &walk.occurrences[first].table;
            self.not_tied(&format!(
                "its WHERE does not equate {table}.{} with the sharding key of a co-located table of the outer query",
                self.key_of(first)
            ))
        })
    }
}

/// What a linked subquery holds that makes its per-shard answer differ.
fn unfit(q: &Query) -> Option<MergeNeed> {
    if q.limit_clause.is_some() {
        return Some(MergeNeed::LimitOffset);
    }
    if q.fetch.is_some() {
        return Some(MergeNeed::FetchFirst);
    }
    let mut plain = q.clone();
    if let SetExpr::Select(s) = plain.body.as_mut() {
        s.distinct = None;
    }
    needs_grouping(&plain)
}
