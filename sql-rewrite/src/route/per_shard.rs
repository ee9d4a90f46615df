//! Whether a statement whose sharded tables span shards can run on each
//! shard with the rows concatenated ([`not_per_shard`]): every occurrence
//! of a sharded table at the top level or in a keyed CTE, derived table or
//! linked subquery, no unsharded or interval table beside them, and every
//! scope joined on the keys (`scope_check`).

use std::collections::BTreeMap;

use super::linked::linked_subquery_ok;
use super::refusal::{refuse, Refusal, RefusalKind};
use super::scope::{Placement, Source, SourceKind, Walk};
use super::scope_check::{scope_not_per_shard, source_state, SourceState};
use super::topology::Topology;

/// Why the statement cannot be run shard by shard with its results
/// concatenated, if it cannot: sharded tables in subqueries, a join of
/// sharded tables not on their shared key, unsharded tables beside sharded
/// ones, FROM items that cannot be checked.
/// `follows` marks the occurrences of linked subqueries that run per shard
/// (see [`follows_outer`]).
pub(super) fn not_per_shard(
    walk: &Walk,
    placements: &[Placement],
    follows: &[bool],
    topo: &Topology<'_>,
) -> Option<Refusal> {
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
            return refuse(RefusalKind::SubqueryAcrossShards, format!(
                "a subquery, CTE or derived table reading sharded table {} across shards is not supported yet",
                o.table
            ));
        }
        match &placements[i] {
            Placement::Unsharded => {
                return refuse(RefusalKind::UnshardedBesideSharded, format!(
                    "table {} is unsharded (it lives on the default shard only) but sharded table {sharded_name} is read on several shards: the join cannot run shard by shard",
                    o.table
                ))
            }
            Placement::Interval { .. } => {
                return refuse(RefusalKind::IntervalBesideSharded, format!(
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
