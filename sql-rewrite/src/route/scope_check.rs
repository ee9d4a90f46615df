//! Whether the sharded tables of one scope can be read shard by shard
//! ([`scope_not_per_shard`]): FROM items that can be checked, no
//! NULL-padding outer join across shards, members co-located and joined on
//! their sharding keys; and whether a statement-level CTE or derived table
//! carries sharded rows by their key ([`source_state`]). The two call each
//! other (a CTE's body is a scope), so they live together.

use std::collections::BTreeMap;

use shard_config::TableRule;
use sqlparser::ast::{
    Expr, GroupByExpr, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
};

use super::refusal::{refuse, Refusal, RefusalKind};
use super::scope::{column, ColumnRef, Placement, Scope, Source, SourceKind, Walk};
use super::topology::Topology;
use crate::keys::{folded, object_names};
use crate::query_shape::{body_needs_merge, position, window_function};

/// Why the sharded tables of one scope cannot be read shard by shard: a FROM
/// item that cannot be checked, a NULL-padding outer join, a join not on
/// the sharding keys.
pub(super) fn scope_not_per_shard(
    walk: &Walk,
    scope: &Scope,
    placements: &[Placement],
    topo: &Topology<'_>,
) -> Option<Refusal> {
    let sharded = |i: usize| placements[i] == Placement::Sharded;
    let in_scope: Vec<usize> = scope
        .occurrences
        .iter()
        .copied()
        .filter(|&i| sharded(i))
        .collect();
    // Statement-level CTEs and derived tables carrying sharded rows by key.
    let states: Vec<SourceState> = if scope.nested {
        Vec::new()
    } else {
        scope
            .sources
            .iter()
            .map(|src| source_state(walk, src, placements, topo))
            .collect()
    };
    let keyed = |k: usize| matches!(states.get(k), Some(SourceState::Keyed { .. }));
    let mut members: Vec<Member> = in_scope
        .iter()
        .map(|&i| Member {
            names: walk.occurrences[i].names.clone(),
            keys: vec![key_of(walk, i, topo)],
            table: walk.occurrences[i].table.clone(),
            qualifier: walk.occurrences[i].table.clone(),
            occurrence: i,
        })
        .collect();
    for (k, src) in scope.sources.iter().enumerate() {
        if let Some(SourceState::Keyed { keys, first }) = states.get(k) {
            members.push(Member {
                names: src.names.clone(),
                keys: keys.clone(),
                table: format!(
                    "{} (reading {})",
                    src.names.last().map_or("", String::as_str),
                    walk.occurrences[*first].table
                ),
                qualifier: src.names.last().cloned().unwrap_or_default(),
                occurrence: *first,
            });
        }
    }
    let first = members.first()?;
    let unchecked = scope.sources.iter().zip(&states).any(|(src, st)| {
        matches!(src.kind, SourceKind::Derived(..)) && !matches!(st, SourceState::Keyed { .. })
    });
    if scope.nested_level || unchecked {
        return refuse(RefusalKind::UncheckedFromItem, format!(
            "a FROM item next to sharded table {} (a derived table, a function, or a CROSS or NATURAL join) cannot be checked to run shard by shard",
            first.table
        ));
    }
    let outer_sources = scope
        .outer_sources
        .iter()
        .map(Some)
        .chain(std::iter::repeat(None));
    for ((kept, other), srcs) in scope.outer.iter().zip(outer_sources) {
        let (kept_src, other_src) = srcs.map_or((&[][..], &[][..]), |(a, b)| (&a[..], &b[..]));
        let padded = other
            .iter()
            .find(|&&i| sharded(i))
            .map(|&i| walk.occurrences[i].table.clone())
            .or_else(|| {
                other_src
                    .iter()
                    .find(|&&k| keyed(k))
                    .and_then(|&k| scope.sources[k].names.last().cloned())
            });
        let kept_sharded = kept.iter().any(|&i| sharded(i)) || kept_src.iter().any(|&k| keyed(k));
        let (Some(padded), false) = (padded, kept_sharded) else {
            continue;
        };
        let kept_name = kept
            .first()
            .map(|&i| walk.occurrences[i].table.clone())
            .or_else(|| {
                kept_src
                    .first()
                    .and_then(|&k| scope.sources[k].names.last().cloned())
            })
            .unwrap_or_default();
        return refuse(RefusalKind::BroadcastOuterJoin, format!(
            "an outer join keeping every row of {kept_name} (on every shard) while matching sharded table {padded} across shards is not supported: each shard would add the rows that match elsewhere, NULL-padded"
        ));
    }
    if members.len() < 2 {
        return None;
    }
    joined_on_key(walk, &members, scope, topo)
}

/// A sharded table, CTE or derived table of a scope, for [`joined_on_key`].
struct Member {
    /// The names its columns are qualified by.
    names: Vec<String>,
    /// Its columns holding the sharding key.
    keys: Vec<String>,
    /// How messages name it.
    table: String,
    /// How messages qualify its key.
    qualifier: String,
    /// A sharded occurrence it reads (itself for a table).
    occurrence: usize,
}

/// The sharding key column of occurrence `i`.
fn key_of(walk: &Walk, i: usize, topo: &Topology<'_>) -> String {
    topo.map
        .table(&walk.occurrences[i].table)
        .and_then(TableRule::key)
        .unwrap_or_default()
        .to_string()
}

/// Checks that the sharded members of one scope (tables, keyed CTEs and
/// derived tables) are co-located and equated on their keys.
fn joined_on_key(
    walk: &Walk,
    members: &[Member],
    scope: &Scope,
    topo: &Topology<'_>,
) -> Option<Refusal> {
    let rule = |m: &Member| topo.map.table(&walk.occurrences[m.occurrence].table);
    let group = |m: &Member| rule(m).and_then(TableRule::group).map(str::to_string);
    let a = members.first()?;
    for b in &members[1..] {
        if group(a).is_none() || group(a) != group(b) {
            return refuse(RefusalKind::JoinNotColocated, format!(
                "a join of sharded tables {} and {} across shards is not supported: they are not co-located (colocate_with), so matching rows may live on different shards",
                a.table, b.table
            ));
        }
    }
    // Union-find over (member, column) through the scope's equalities.
    let mut parent: BTreeMap<(usize, String), (usize, String)> = BTreeMap::new();
    fn find(
        p: &mut BTreeMap<(usize, String), (usize, String)>,
        x: (usize, String),
    ) -> (usize, String) {
        let mut cur = x;
        while let Some(next) = p.get(&cur).cloned() {
            if next == cur {
                break;
            }
            cur = next;
        }
        cur
    }
    fn union(
        p: &mut BTreeMap<(usize, String), (usize, String)>,
        x: (usize, String),
        y: (usize, String),
    ) {
        let root_a = find(p, x);
        let root_b = find(p, y);
        if root_a != root_b {
            p.insert(root_a, root_b);
        }
    }
    // A member's key columns hold one value.
    for (m, member) in members.iter().enumerate() {
        for k in &member.keys[1..] {
            union(&mut parent, (m, member.keys[0].clone()), (m, k.clone()));
        }
    }
    let resolve = |c: &ColumnRef| -> Option<(usize, String)> {
        let q = c.0.as_ref()?;
        members
            .iter()
            .position(|m| m.names.contains(q))
            .map(|m| (m, c.1.clone()))
    };
    for (l, r) in &scope.equalities {
        let (Some(l), Some(r)) = (resolve(l), resolve(r)) else {
            // USING (col): the unqualified side is the other members' column.
            if l.0.is_none() && r.0.is_some() {
                if let Some(r) = resolve(r) {
                    for m in 0..members.len() {
                        if m != r.0 {
                            union(&mut parent, (m, l.1.clone()), r.clone());
                        }
                    }
                }
            }
            continue;
        };
        union(&mut parent, l, r);
    }
    let root0 = find(&mut parent, (0, a.keys[0].clone()));
    for (m, b) in members.iter().enumerate().skip(1) {
        if find(&mut parent, (m, b.keys[0].clone())) != root0 {
            return refuse(RefusalKind::JoinNotOnKey, format!(
                "a join of sharded tables {} and {} across shards is not supported unless they are joined on their sharding keys ({}.{} = {}.{})",
                a.table,
                b.table,
                a.qualifier,
                a.keys[0],
                b.qualifier,
                b.keys[0]
            ));
        }
    }
    None
}

/// What a statement-level CTE reference or derived table holds.
#[derive(Debug, Clone)]
pub(super) enum SourceState {
    /// No sharded table of its own (or a body that is not a plain SELECT,
    /// whose tables are checked as nested occurrences).
    Plain,
    /// Runs per shard: each row comes from the shard of its key, which
    /// these output columns hold; `first` is a sharded occurrence of its body.
    Keyed { keys: Vec<String>, first: usize },
    /// Reads sharded tables in a way that cannot run per shard.
    Refused(Refusal),
}

/// Checks a CTE reference or derived table of a statement-level scope:
/// a plain SELECT whose sharded tables run per shard, without LIMIT or
/// window functions, grouped (if at all) by the sharding key, exposing it.
pub(super) fn source_state(
    walk: &Walk,
    src: &Source,
    placements: &[Placement],
    topo: &Topology<'_>,
) -> SourceState {
    let (body, query, def_columns, cte) = match &src.kind {
        SourceKind::Derived(body, q) => (*body, q.as_ref(), &[][..], None),
        SourceKind::Cte(name) => {
            let Some(def) = walk.cte_defs.iter().find(|d| &d.name == name) else {
                return SourceState::Plain;
            };
            (def.body, def.query.as_ref(), &def.columns[..], Some(def))
        }
    };
    let Some(body) = body else {
        return SourceState::Plain;
    };
    let scope = &walk.selects[body];
    let inner = Inner {
        walk,
        topo,
        occurrences: scope
            .occurrences
            .iter()
            .copied()
            .filter(|&i| placements[i] == Placement::Sharded)
            .collect(),
    };
    let Some(&first) = inner.occurrences.first() else {
        return SourceState::Plain;
    };
    let table = &walk.occurrences[first].table;
    let general = format!(
        "a CTE or derived table reading sharded table {table} runs per shard only when it keeps the sharding key as a column (no LIMIT, grouping only by the key) and is joined on it to co-located tables"
    );
    let not_keyed = |why: &str| {
        SourceState::Refused(Refusal::new(
            RefusalKind::DerivedTableNotKeyed,
            format!("{general}: {why}"),
        ))
    };
    if let Some(def) = cte {
        if def.recursive {
            return not_keyed("WITH RECURSIVE is not supported");
        }
        let refs = walk
            .selects
            .iter()
            .flat_map(|s| &s.sources)
            .filter(|s| matches!(&s.kind, SourceKind::Cte(n) if *n == def.name))
            .count();
        if refs > 1 {
            return not_keyed(&format!("CTE {} is referenced more than once", def.name));
        }
        if topo.map.table(&def.name).is_some() {
            return not_keyed(&format!("CTE {} shadows a mapped table", def.name));
        }
    }
    if let Some(why) = scope_not_per_shard(walk, scope, placements, topo) {
        return SourceState::Refused(why);
    }
    if !scope.sources.is_empty() {
        return not_keyed("it reads another CTE");
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return not_keyed("it has LIMIT/OFFSET or FETCH");
    }
    if window_function(query).is_some() {
        return not_keyed("it has a window function");
    }
    let SetExpr::Select(sel) = query.body.as_ref() else {
        return SourceState::Plain;
    };
    if let Some(what) = body_needs_merge(query.body.as_ref()) {
        if !inner.grouped_on_key(sel, scope.outer.is_empty()) {
            return not_keyed(&format!("its {what} is not grouped by the sharding key"));
        }
    }
    let renamed = |p: usize| src.columns.get(p).or_else(|| def_columns.get(p)).cloned();
    let renaming = !src.columns.is_empty() || !def_columns.is_empty();
    let keys = inner.output_keys(sel, &renamed, renaming);
    if keys.is_empty() {
        return not_keyed("it does not select the sharding key");
    }
    SourceState::Keyed { keys, first }
}

/// The sharded occurrences of a CTE's or derived table's body.
struct Inner<'a, 't> {
    walk: &'a Walk,
    topo: &'a Topology<'t>,
    occurrences: Vec<usize>,
}

impl Inner<'_, '_> {
    /// The rule of occurrence `i`'s table.
    fn rule_of(&self, i: usize) -> Option<&TableRule> {
        self.topo.map.table(&self.walk.occurrences[i].table)
    }

    /// The sharding key column of occurrence `i`.
    fn key_of(&self, i: usize) -> &str {
        self.rule_of(i).and_then(TableRule::key).unwrap_or_default()
    }

    /// The sharded occurrence (not of a time table) whose key column `c` is.
    fn key_column(&self, c: &ColumnRef) -> Option<usize> {
        self.occurrences.iter().copied().find(|&i| {
            !matches!(self.rule_of(i), Some(TableRule::Time { .. }))
                && self.key_of(i) == c.1
                && c.0
                    .as_ref()
                    .is_none_or(|q| self.walk.occurrences[i].names.contains(q))
        })
    }

    /// Whether the body's GROUP BY holds the sharding key: of one sharded
    /// table when the body has no outer join (`plain_join`), else of all.
    fn grouped_on_key(&self, sel: &Select, plain_join: bool) -> bool {
        let group = match &sel.group_by {
            GroupByExpr::Expressions(e, m) if m.is_empty() => e.as_slice(),
            _ => &[],
        };
        let keyed: Vec<usize> = group
            .iter()
            .filter_map(|e| {
                let e = position(e)
                    .and_then(|p| sel.projection.get(p))
                    .and_then(item_expr)
                    .unwrap_or_else(|| e.clone());
                column(&e).and_then(|c| self.key_column(&c))
            })
            .collect();
        if plain_join {
            !keyed.is_empty()
        } else {
            self.occurrences.iter().all(|i| keyed.contains(i))
        }
    }

    /// The output columns of the body's select list holding the sharding
    /// key, under the names the outer query sees (`renamed` by a column
    /// list; after a wildcard only when nothing is renamed).
    fn output_keys(
        &self,
        sel: &Select,
        renamed: &dyn Fn(usize) -> Option<String>,
        renaming: bool,
    ) -> Vec<String> {
        let mut keys = Vec::new();
        for (p, item) in sel.projection.iter().enumerate() {
            match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    let Some(c) = column(e) else { continue };
                    if self.key_column(&c).is_none() {
                        continue;
                    }
                    let name = match item {
                        SelectItem::ExprWithAlias { alias, .. } => folded(alias),
                        _ => c.1.clone(),
                    };
                    keys.push(renamed(p).unwrap_or(name));
                }
                // positions after a wildcard are unknown: only without renaming
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) if !renaming => {
                    let qualifier = match item {
                        SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(n),
                            _,
                        ) => object_names(n).into_iter().next(),
                        _ => None,
                    };
                    for &i in &self.occurrences {
                        let named = qualifier
                            .as_ref()
                            .is_none_or(|q| self.walk.occurrences[i].names.contains(q));
                        if named && !matches!(self.rule_of(i), Some(TableRule::Time { .. })) {
                            keys.push(self.key_of(i).to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        keys
    }
}

/// The expression of a select-list item (not a wildcard).
fn item_expr(item: &SelectItem) -> Option<Expr> {
    match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
        _ => None,
    }
}
