//! Why a statement cannot be routed: the refusal type, and the checks that
//! decide whether a statement spanning shards can be answered by running it
//! on each shard and concatenating the rows.

use std::collections::BTreeMap;
use std::fmt;

use shard_config::{ShardMap, TableRule};
use sqlparser::ast::{Query, SelectItem, SetExpr};

use super::scope::{column, ColumnRef, LinkKind, Placement, Scope, Source, SourceKind, Walk};
use super::Topology;
use crate::query_shape::{body_needs_merge, needs_grouping, MergeNeed};

/// A statement shardgate will not run: answered with SQLSTATE `0A000`
/// (feature_not_supported) and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// What is unsupported and why.
    pub message: String,
}

impl Refusal {
    /// The SQLSTATE of every refusal.
    pub const SQLSTATE: &'static str = "0A000";

    pub(crate) fn new(message: String) -> Refusal {
        Refusal { message }
    }
}

/// The identifier-like words of a (lower-cased) text.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// A mapped table whose name appears as a word in `sql` (for texts the
/// parser cannot read).
pub fn named_sharded_table(sql: &str, map: &ShardMap) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let words = words(&lower);
    map.tables()
        .map(|(name, _)| name)
        .find(|name| words.contains(&name.to_ascii_lowercase().as_str()))
        .map(str::to_string)
        .or_else(|| {
            words
                .iter()
                .find(|w| map.physical_table(w).is_some())
                .map(|w| w.to_string())
        })
}

/// For a text the parser cannot read: the one shard it belongs to when it
/// names interval tables of one shard and no other mapped table than their
/// logical tables (`CREATE TABLE orders_2026_11 (LIKE orders INCLUDING ALL)`).
pub fn unparsed_home(sql: &str, map: &ShardMap) -> Option<usize> {
    let lower = sql.to_ascii_lowercase();
    let words = words(&lower);
    let mut home = None;
    let mut logical = Vec::new();
    for w in &words {
        if let Some((l, shard)) = map.physical_table(w) {
            if home.is_some_and(|h| h != shard) {
                return None;
            }
            home = Some(shard);
            logical.push(l.to_ascii_lowercase());
        }
    }
    let others = map
        .tables()
        .map(|(name, _)| name.to_ascii_lowercase())
        .any(|name| words.contains(&name.as_str()) && !logical.contains(&name));
    if others {
        return None;
    }
    home
}

/// Why the statement cannot be run shard by shard with its results
/// concatenated, if it cannot: sharded tables in subqueries, a join of
/// sharded tables not on their shared key, unsharded tables beside sharded
/// ones, FROM items that cannot be checked.
/// `follows` marks the occurrences of linked subqueries that run per shard
/// (see [`follows_outer`]).
pub fn not_per_shard(
    walk: &Walk,
    placements: &[Placement],
    follows: &[bool],
    topo: &Topology<'_>,
) -> Option<String> {
    let sharded = |i: usize| placements[i] == Placement::Sharded;
    let first_sharded = (0..placements.len()).find(|&i| sharded(i))?;
    let sharded_name = &walk.occurrences[first_sharded].table;
    // The states of statement-level sources, by their body's scope.
    let mut bodies = BTreeMap::new();
    for scope in walk.selects.iter().filter(|s| !s.nested) {
        for src in &scope.sources {
            if let Some(body) = source_body(walk, src) {
                bodies.insert(body, source_state(walk, src, placements, topo));
            }
        }
    }
    for (i, o) in walk.occurrences.iter().enumerate() {
        match o.select.and_then(|s| bodies.get(&s)) {
            Some(SourceState::Keyed { .. }) if sharded(i) => continue,
            Some(SourceState::Refused(why)) if sharded(i) => return Some(why.clone()),
            _ => {}
        }
        if sharded(i) && o.nested && !follows[i] {
            let linked = o.select.filter(|&s| walk.selects[s].link.is_some());
            if let Some(why) = linked.and_then(|s| linked_subquery_ok(walk, s, placements, topo)) {
                return Some(why);
            }
            return Some(format!(
                "a subquery, CTE or derived table reading sharded table {} across shards is not supported yet",
                o.table
            ));
        }
        match &placements[i] {
            Placement::Unsharded => {
                return Some(format!(
                    "table {} is unsharded (it lives on the default shard only) but sharded table {sharded_name} is read on several shards: the join cannot run shard by shard",
                    o.table
                ))
            }
            Placement::Interval { .. } => {
                return Some(format!(
                    "interval table {} lives on one shard but sharded table {sharded_name} is read on several shards",
                    o.table
                ))
            }
            _ => {}
        }
    }
    for scope in &walk.selects {
        if let Some(why) = scope_not_per_shard(walk, scope, placements, topo) {
            return Some(why);
        }
    }
    None
}

/// Why the sharded tables of one scope cannot be read shard by shard: a FROM
/// item that cannot be checked, a NULL-padding outer join, a join not on
/// the sharding keys.
fn scope_not_per_shard(
    walk: &Walk,
    scope: &Scope,
    placements: &[Placement],
    topo: &Topology<'_>,
) -> Option<String> {
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
        return Some(format!(
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
        return Some(format!(
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

/// The body scope of a source.
fn source_body(walk: &Walk, src: &Source) -> Option<usize> {
    match &src.kind {
        SourceKind::Derived(body, _) => *body,
        SourceKind::Cte(name) => walk
            .cte_defs
            .iter()
            .find(|d| &d.name == name)
            .and_then(|d| d.body),
    }
}

/// Per occurrence: it is in a linked subquery (`key IN (SELECT key …)`,
/// `EXISTS (… WHERE inner.key = outer.key)`) whose rows for an outer row
/// live on that row's shard, so it runs wherever the outer tables do.
pub fn follows_outer(walk: &Walk, placements: &[Placement], topo: &Topology<'_>) -> Vec<bool> {
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
fn linked_subquery_ok(
    walk: &Walk,
    s: usize,
    placements: &[Placement],
    topo: &Topology<'_>,
) -> Option<String> {
    let scope = &walk.selects[s];
    let sharded = |i: &usize| placements[*i] == Placement::Sharded;
    let inner: Vec<usize> = scope.occurrences.iter().copied().filter(sharded).collect();
    let &first = inner.first()?;
    let table = &walk.occurrences[first].table;
    let rule_of = |i: usize| topo.map.table(&walk.occurrences[i].table);
    let key_of = |i: usize| rule_of(i).and_then(TableRule::key).unwrap_or_default();
    let general = format!(
        "a subquery reading sharded table {table} runs per shard only when it is `key IN (SELECT key …)` or `[NOT] EXISTS (… WHERE inner.key = outer.key)` of co-located tables"
    );
    let Some(link) = &scope.link else {
        return Some(general);
    };
    if let Some(what) = unfit(&link.query) {
        return Some(format!("{general}, without {what}"));
    }
    if let Some(why) = scope_not_per_shard(walk, scope, placements, topo) {
        return Some(why);
    }
    let outer = &walk.selects[link.outer];
    // An occurrence of `occurrences` a column names: by qualifier, or the only one.
    let resolve = |c: &ColumnRef, occurrences: &[usize]| -> Option<usize> {
        match &c.0 {
            Some(q) => occurrences
                .iter()
                .copied()
                .find(|&i| walk.occurrences[i].names.iter().any(|n| n == q)),
            None if occurrences.len() == 1 => occurrences.first().copied(),
            None => None,
        }
    };
    let key_column = |c: &ColumnRef, occurrences: &[usize]| -> Option<usize> {
        resolve(c, occurrences).filter(|&i| {
            placements[i] == Placement::Sharded
                && !matches!(rule_of(i), Some(TableRule::Time { .. }))
                && key_of(i) == c.1
        })
    };
    let colocated = |a: usize, b: usize| {
        let group = |i: usize| rule_of(i).and_then(TableRule::group);
        group(a).is_some() && group(a) == group(b)
    };
    let pair = match &link.kind {
        LinkKind::NotIn => {
            return Some(format!(
            "{general}: NOT IN is not supported (a NULL on any shard changes every shard's answer)"
        ))
        }
        LinkKind::In(left) => {
            let Some(left) = left
                .as_ref()
                .and_then(|l| key_column(l, &outer.occurrences))
            else {
                return Some(format!(
                    "{general}: the left side of IN is not the sharding key of a sharded table of the outer query"
                ));
            };
            let item = match link.query.body.as_ref() {
                SetExpr::Select(sel) if sel.projection.len() == 1 => match &sel.projection[0] {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        column(e)
                    }
                    _ => None,
                },
                _ => None,
            };
            let Some(right) = item.and_then(|c| key_column(&c, &inner)) else {
                return Some(format!(
                    "{general}: the subquery does not select the sharding key of its sharded table"
                ));
            };
            (left, right)
        }
        LinkKind::Exists => {
            let mut eqs = Vec::new();
            if let Some(w) = &scope.selection {
                super::scope::equalities(w, &mut eqs);
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
                    .and_then(|_| key_column(c, &outer.occurrences))
            };
            let found = eqs.iter().find_map(|(a, b)| {
                let inner_key =
                    |c: &ColumnRef| key_column(c, &scope.occurrences).filter(|i| inner.contains(i));
                match (outer_key(a), inner_key(b), outer_key(b), inner_key(a)) {
                    (Some(o), Some(i), _, _) | (_, _, Some(o), Some(i)) if colocated(o, i) => {
                        Some((o, i))
                    }
                    _ => None,
                }
            });
            let Some(pair) = found else {
                return Some(format!(
                    "{general}: its WHERE does not equate {table}.{} with the sharding key of a co-located table of the outer query",
                    key_of(first)
                ));
            };
            pair
        }
    };
    let (o, i) = pair;
    if !colocated(o, i) {
        return Some(format!(
            "{general}: {} and {} are not co-located",
            walk.occurrences[o].table, walk.occurrences[i].table
        ));
    }
    None
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

/// Checks that the sharded members of one scope (tables, keyed CTEs and
/// derived tables) are co-located and equated on their keys.
fn joined_on_key(
    walk: &Walk,
    members: &[Member],
    scope: &Scope,
    topo: &Topology<'_>,
) -> Option<String> {
    let rule = |m: &Member| topo.map.table(&walk.occurrences[m.occurrence].table);
    let group = |m: &Member| rule(m).and_then(TableRule::group).map(str::to_string);
    let a = members.first()?;
    for b in &members[1..] {
        if group(a).is_none() || group(a) != group(b) {
            return Some(format!(
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
            return Some(format!(
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

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Sharded => f.write_str("sharded"),
            Placement::Broadcast => f.write_str("broadcast"),
            Placement::Catalog => f.write_str("catalog"),
            Placement::Unsharded => f.write_str("unsharded"),
            Placement::Interval { logical, shard } => write!(f, "interval of {logical} on {shard}"),
        }
    }
}

/// What a statement-level CTE reference or derived table holds.
#[derive(Debug, Clone)]
pub(crate) enum SourceState {
    /// No sharded table of its own (or a body that is not a plain SELECT,
    /// whose tables are checked as nested occurrences).
    Plain,
    /// Runs per shard: each row comes from the shard of its key, which
    /// these output columns hold; `first` is a sharded occurrence of its body.
    Keyed { keys: Vec<String>, first: usize },
    /// Reads sharded tables in a way that cannot run per shard.
    Refused(String),
}

/// Checks a CTE reference or derived table of a statement-level scope:
/// a plain SELECT whose sharded tables run per shard, without LIMIT or
/// window functions, grouped (if at all) by the sharding key, exposing it.
pub(crate) fn source_state(
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
    let inner: Vec<usize> = scope
        .occurrences
        .iter()
        .copied()
        .filter(|&i| placements[i] == Placement::Sharded)
        .collect();
    let Some(&first) = inner.first() else {
        return SourceState::Plain;
    };
    let table = &walk.occurrences[first].table;
    let general = format!(
        "a CTE or derived table reading sharded table {table} runs per shard only when it keeps the sharding key as a column (no LIMIT, grouping only by the key) and is joined on it to co-located tables"
    );
    let refuse = |why: &str| SourceState::Refused(format!("{general}: {why}"));
    if let Some(def) = cte {
        if def.recursive {
            return refuse("WITH RECURSIVE is not supported");
        }
        let refs = walk
            .selects
            .iter()
            .flat_map(|s| &s.sources)
            .filter(|s| matches!(&s.kind, SourceKind::Cte(n) if *n == def.name))
            .count();
        if refs > 1 {
            return refuse(&format!("CTE {} is referenced more than once", def.name));
        }
        if topo.map.table(&def.name).is_some() {
            return refuse(&format!("CTE {} shadows a mapped table", def.name));
        }
    }
    if let Some(why) = scope_not_per_shard(walk, scope, placements, topo) {
        return SourceState::Refused(why);
    }
    if !scope.sources.is_empty() {
        return refuse("it reads another CTE");
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return refuse("it has LIMIT/OFFSET or FETCH");
    }
    if crate::query_shape::window_function(query).is_some() {
        return refuse("it has a window function");
    }
    let SetExpr::Select(sel) = query.body.as_ref() else {
        return SourceState::Plain;
    };
    let rule_of = |i: usize| topo.map.table(&walk.occurrences[i].table);
    let key_of = |i: usize| rule_of(i).and_then(TableRule::key).unwrap_or_default();
    // The sharded occurrence whose key column `c` is.
    let key_column = |c: &ColumnRef| -> Option<usize> {
        inner.iter().copied().find(|&i| {
            !matches!(rule_of(i), Some(TableRule::Time { .. }))
                && key_of(i) == c.1
                && c.0
                    .as_ref()
                    .is_none_or(|q| walk.occurrences[i].names.contains(q))
        })
    };
    let item_expr = |item: &SelectItem| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
        _ => None,
    };
    if let Some(what) = body_needs_merge(query.body.as_ref()) {
        let group = match &sel.group_by {
            sqlparser::ast::GroupByExpr::Expressions(e, m) if m.is_empty() => e.as_slice(),
            _ => &[],
        };
        let keyed: Vec<usize> = group
            .iter()
            .filter_map(|e| {
                let e = crate::query_shape::position(e)
                    .and_then(|p| sel.projection.get(p))
                    .and_then(item_expr)
                    .unwrap_or_else(|| e.clone());
                column(&e).and_then(|c| key_column(&c))
            })
            .collect();
        let grouped_on_key = if scope.outer.is_empty() {
            !keyed.is_empty()
        } else {
            inner.iter().all(|i| keyed.contains(i))
        };
        if !grouped_on_key {
            return refuse(&format!("its {what} is not grouped by the sharding key"));
        }
    }
    // The output columns holding the key.
    let mut keys = Vec::new();
    for (p, item) in sel.projection.iter().enumerate() {
        let renamed = src.columns.get(p).or_else(|| def_columns.get(p)).cloned();
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let Some(c) = column(e) else { continue };
                if key_column(&c).is_none() {
                    continue;
                }
                let name = match item {
                    SelectItem::ExprWithAlias { alias, .. } => crate::keys::folded(alias),
                    _ => c.1.clone(),
                };
                keys.push(renamed.unwrap_or(name));
            }
            // positions after a wildcard are unknown: only without renaming
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                if src.columns.is_empty() && def_columns.is_empty() =>
            {
                let qualifier = match item {
                    SelectItem::QualifiedWildcard(
                        sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                        _,
                    ) => crate::keys::object_names(n).into_iter().next(),
                    _ => None,
                };
                for &i in &inner {
                    let named = qualifier
                        .as_ref()
                        .is_none_or(|q| walk.occurrences[i].names.contains(q));
                    if named && !matches!(rule_of(i), Some(TableRule::Time { .. })) {
                        keys.push(key_of(i).to_string());
                    }
                }
            }
            _ => {}
        }
    }
    if keys.is_empty() {
        return refuse("it does not select the sharding key");
    }
    SourceState::Keyed { keys, first }
}
