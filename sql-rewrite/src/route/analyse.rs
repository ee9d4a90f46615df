//! Analysis of one statement, once per text: its tables and where each
//! lives ([`Placement`]), the keys and key ranges each sharded occurrence is
//! restricted to, what merging its rows would need, why it could not run
//! shard by shard, an UPDATE of the sharding key, an INSERT's plan. The
//! result ([`Analysed`]) is bound to each execution's parameters by
//! `bind`.

use shard_config::TableRule;
use sqlparser::ast::{AssignmentTarget, SetExpr, Statement};

use super::insert::{self, InsertPlan};
use super::linked::follows_outer;
use super::per_shard::not_per_shard;
use super::refusal::{Refusal, RefusalKind};
use super::rewrite::{occurrence_range, KeyRange};
use super::scope::{self, occurrence_keys, Placement, Walk};
use super::topology::Topology;
use crate::keys::{object_names, value_of, KeySet, KeyValueExpr};
use crate::merge::{MergeError, MergePlan};
use crate::query_shape::{needs_grouping, MergeNeed};

/// One analysed statement.
#[derive(Debug, Clone)]
pub(super) struct Analysed {
    /// The text was `EXPLAIN …` of the statement.
    pub(super) explain: bool,
    /// The statement (inside EXPLAIN).
    pub(super) statement: Statement,
    /// What kind of statement.
    pub(super) what: What,
    /// Its scopes, table occurrences and relations.
    pub(super) walk: Walk,
    /// Placement of each occurrence.
    pub(super) placements: Vec<Placement>,
    /// Key set of each sharded occurrence (others: `All`).
    pub(super) keys: Vec<KeySet>,
    /// Key range bounds of each sharded occurrence (range and time tables).
    pub(super) ranges: Vec<KeyRange>,
    /// A construct that would need merging rows of several shards beyond
    /// what the merge plan does.
    pub(super) needs_merge: Option<MergeNeed>,
    /// A read's merge across shards, or why it cannot be merged.
    pub(super) merge: Option<Result<MergePlan, MergeError>>,
    /// Why a key-less read cannot be evaluated shard by shard.
    pub(super) not_per_shard: Option<Refusal>,
    /// Occurrences of linked subqueries that run wherever the outer tables do.
    pub(super) follows: Vec<bool>,
    /// An UPDATE assigning the sharding key: the assigned value.
    pub(super) key_change: Option<Option<KeyValueExpr>>,
    /// An INSERT's plan.
    pub(super) insert: Option<InsertPlan>,
}

/// What kind of statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum What {
    /// A query (or COPY … TO of unsharded tables).
    Read,
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// DDL and utility statements naming sharded or broadcast tables.
    Ddl,
}

/// The statement inside EXPLAIN, else the statement.
fn explained(statement: Statement) -> Statement {
    match statement {
        Statement::Explain { statement, .. } => explained(*statement),
        s => s,
    }
}

/// Where a table named `name` (in `schema`, if qualified) lives.
fn placement(topo: &Topology<'_>, name: &str, schema: Option<&str>) -> Placement {
    if matches!(schema, Some("pg_catalog" | "information_schema"))
        || (schema.is_none() && name.starts_with("pg_"))
    {
        return Placement::Catalog;
    }
    match topo.map.table(name) {
        Some(TableRule::Broadcast) => Placement::Broadcast,
        Some(_) => Placement::Sharded,
        None => match topo.map.physical_table(name) {
            Some((logical, shard)) => Placement::Interval {
                logical: logical.to_string(),
                shard,
            },
            None => Placement::Unsharded,
        },
    }
}

/// Analyses one statement; `None` when it names no mapped table.
pub(super) fn analyse(
    statement: Statement,
    topo: &Topology<'_>,
) -> Result<Option<Analysed>, Refusal> {
    let explain = matches!(statement, Statement::Explain { .. });
    let statement = explained(statement);
    let mut walk = scope::walk(&statement);
    // A CTE named like a mapped table hides it everywhere in the statement,
    // also inside the CTE's own body: the tables it reads would go unseen.
    let hiding = walk
        .ctes
        .iter()
        .find(|n| topo.map.table(n).is_some() || topo.map.physical_table(n).is_some());
    if let Some(name) = hiding {
        return Err(Refusal::new(RefusalKind::CteHidesTable, format!(
            "a CTE named {name} hides the mapped table of that name, so shardgate cannot tell which one each reference means: give the CTE another name"
        )));
    }
    scope::unvisited_relations(&statement, &mut walk.relations);
    let mapped = walk.relations.iter().any(|(n, s)| {
        !matches!(
            placement(topo, n, s.as_deref()),
            Placement::Unsharded | Placement::Catalog
        )
    });
    if !mapped {
        return Ok(None);
    }
    check_modifying_ctes(&statement)?;
    let what = what_of(&statement, &walk, topo)?;
    let placements: Vec<Placement> = walk
        .occurrences
        .iter()
        .map(|o| {
            let schema = o
                .names
                .get(1)
                .filter(|n| n.contains('.'))
                .and_then(|n| n.rsplit_once('.').map(|(s, _)| s.to_string()));
            placement(topo, &o.table, schema.as_deref())
        })
        .collect();
    let (keys, ranges) = keys_and_ranges(&walk, &placements, topo);
    let (needs_merge, merge) = merge_need(&statement, explain, topo);
    let follows = follows_outer(&walk, &placements, topo);
    let not_per_shard = not_per_shard(&walk, &placements, &follows, topo);
    let key_change = match &statement {
        Statement::Update(u) => {
            let key = walk
                .occurrences
                .first()
                .filter(|_| placements.first() == Some(&Placement::Sharded))
                .and_then(|o| topo.map.table(&o.table))
                .and_then(TableRule::key);
            key.and_then(|key| key_assignment(&u.assignments, key))
        }
        _ => None,
    };
    let insert = match &statement {
        Statement::Insert(ins) => insert::analyse(ins, topo)?,
        _ => None,
    };
    Ok(Some(Analysed {
        explain,
        statement,
        what,
        walk,
        placements,
        keys,
        ranges,
        needs_merge,
        merge,
        not_per_shard,
        follows,
        key_change,
        insert,
    }))
}

/// Refuses a query with a data-modifying CTE (it names mapped tables).
fn check_modifying_ctes(statement: &Statement) -> Result<(), Refusal> {
    let Statement::Query(q) = statement else {
        return Ok(());
    };
    let modifying = q.with.iter().flat_map(|w| &w.cte_tables).any(|c| {
        !matches!(
            c.query.body.as_ref(),
            SetExpr::Select(_)
                | SetExpr::Query(_)
                | SetExpr::SetOperation { .. }
                | SetExpr::Values(_)
        )
    });
    if modifying {
        return Err(Refusal::new(RefusalKind::ModifyingCte,
            "a data-modifying CTE (WITH … AS (INSERT/UPDATE/DELETE …)) naming sharded or broadcast tables is not supported".to_string(),
        ));
    }
    Ok(())
}

/// What kind of statement it is; COPY of sharded tables (and into
/// broadcast tables) is refused.
fn what_of(statement: &Statement, walk: &Walk, topo: &Topology<'_>) -> Result<What, Refusal> {
    Ok(match statement {
        Statement::Query(_) => What::Read,
        Statement::Insert(_) => What::Insert,
        Statement::Update(_) => What::Update,
        Statement::Delete(_) => What::Delete,
        Statement::Copy { to, .. } => {
            let find = |p: Placement| {
                walk.relations
                    .iter()
                    .find(|(n, s)| placement(topo, n, s.as_deref()) == p)
                    .map(|(n, _)| n.clone())
            };
            if let Some(table) = find(Placement::Sharded) {
                return Err(Refusal::new(RefusalKind::CopySharded, format!(
                    "COPY of sharded table {table} is not supported yet: its rows would have to be split or gathered across shards"
                )));
            }
            if let (false, Some(table)) = (*to, find(Placement::Broadcast)) {
                return Err(Refusal::new(RefusalKind::CopyIntoBroadcast, format!(
                    "COPY into broadcast table {table} is not supported yet: its rows would have to go to every shard"
                )));
            }
            What::Read
        }
        _ => What::Ddl,
    })
}

/// The key set and key range of each occurrence (`All` and unbounded for
/// occurrences that are not of sharded tables).
fn keys_and_ranges(
    walk: &Walk,
    placements: &[Placement],
    topo: &Topology<'_>,
) -> (Vec<KeySet>, Vec<KeyRange>) {
    let mut keys = Vec::with_capacity(placements.len());
    let mut ranges = Vec::with_capacity(placements.len());
    for (i, p) in placements.iter().enumerate() {
        let rule_key = (*p == Placement::Sharded)
            .then(|| {
                topo.map
                    .table(&walk.occurrences[i].table)
                    .and_then(TableRule::key)
            })
            .flatten();
        match rule_key {
            Some(key) => {
                keys.push(occurrence_keys(walk, i, key));
                ranges.push(occurrence_range(walk, i, key));
            }
            None => {
                keys.push(KeySet::All);
                ranges.push(KeyRange::default());
            }
        }
    }
    (keys, ranges)
}

/// A query's merge plan (not for EXPLAIN), and the construct that would
/// still need merging beyond it.
fn merge_need(
    statement: &Statement,
    explain: bool,
    topo: &Topology<'_>,
) -> (Option<MergeNeed>, Option<Result<MergePlan, MergeError>>) {
    let Statement::Query(q) = statement else {
        return (None, None);
    };
    let needs = needs_grouping(q);
    let merge = (!explain).then(|| crate::merge::plan(q, topo.map));
    // What the merge plan handles needs no other merging; what it refuses
    // is refused with its reason.
    let needs = match (&merge, needs) {
        (
            Some(Err(_)),
            Some(
                MergeNeed::Aggregate | MergeNeed::Distinct | MergeNeed::GroupBy | MergeNeed::Having,
            ),
        ) => None,
        (Some(Ok(p)), Some(what)) if merged(p, what) => {
            // DISTINCT is merged; anything else in the query still counts
            let mut plain = q.clone();
            if let SetExpr::Select(s) = plain.body.as_mut() {
                s.distinct = None;
            }
            needs_grouping(&plain).filter(|w| !merged(p, *w))
        }
        (_, n) => n,
    };
    (needs, merge)
}

/// Whether merge plan `p` answers construct `what`.
fn merged(p: &MergePlan, what: MergeNeed) -> bool {
    match what {
        MergeNeed::Aggregate | MergeNeed::Having => !p.aggregates.is_empty() || p.grouped.is_some(),
        MergeNeed::GroupBy => p.grouped.is_some() || p.groups_per_shard,
        MergeNeed::Distinct => p.distinct.is_some(),
        _ => false,
    }
}

/// The value an UPDATE's SET assigns to sharding key column `key`
/// (`None` when the key is not assigned); the inner `None` when it is not a
/// literal or parameter, NULL, or part of a tuple assignment.
fn key_assignment(
    assignments: &[sqlparser::ast::Assignment],
    key: &str,
) -> Option<Option<KeyValueExpr>> {
    let first_name =
        |n: &sqlparser::ast::ObjectName| object_names(n).first().cloned().unwrap_or_default();
    assignments.iter().find_map(|a| {
        let names: Vec<String> = match &a.target {
            AssignmentTarget::ColumnName(n) => vec![first_name(n)],
            AssignmentTarget::Tuple(ns) => ns.iter().map(first_name).collect(),
        };
        names.iter().any(|n| n == key).then(|| {
            match &a.target {
                AssignmentTarget::ColumnName(_) => value_of(&a.value),
                AssignmentTarget::Tuple(_) => None,
            }
            .filter(|v| *v != KeyValueExpr::Null)
        })
    })
}
