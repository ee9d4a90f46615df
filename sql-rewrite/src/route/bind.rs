//! Binding an analysed statement to one execution's parameters: the
//! shards each sharded occurrence can touch (keys, key ranges), the scopes'
//! intersections, the refusals that depend on the values (scatter writes,
//! key changes, keys no shard owns), and the [`Route`] with the interval
//! tables' physical names and the merge plan.

use std::collections::{BTreeMap, BTreeSet};

use shard_config::{KeyType, TableRule};
use sqlparser::ast::Statement;

use super::analyse::{Analysed, What};
use super::insert::{self, SourceHome};
use super::refusal::{Refusal, RefusalKind};
use super::rewrite::{needs_interval, rename_intervals, two_intervals};
use super::scope::Placement;
use super::target::{Route, ShardStatement};
use super::topology::Topology;
use super::values::{array_elements, convert, display_key, place, Converted};
use crate::keys::KeySet;
use crate::merge::{MergeError, MergePlan};
use crate::params::Param;
use crate::query_shape::MergeNeed;

/// The shards (and interval-table suffixes) a sharded occurrence can touch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shards {
    /// Every shard.
    All,
    /// These shards; for `table_per_interval` time tables, the interval
    /// table suffix on each.
    Some(BTreeMap<usize, Option<String>>),
}

impl Analysed {
    /// Routes one execution with its parameters.
    pub(super) fn bind(
        &self,
        topo: &Topology<'_>,
        params: &[Param<'_>],
        next_id: &mut dyn FnMut() -> i64,
    ) -> Result<Route, Refusal> {
        let n = topo.shards.len();
        let all: BTreeSet<usize> = (0..n).collect();
        if let Some(plan) = &self.insert {
            let Statement::Insert(ins) = &self.statement else {
                return Err(Refusal::new(
                    RefusalKind::Internal,
                    "not an INSERT".to_string(),
                ));
            };
            // The source's own tables must live where the rows go.
            let source = self.source_home(topo, params)?;
            return insert::bind(plan, ins, &source, topo, params, next_id);
        }
        // Per occurrence: the shards it can touch.
        let mut sets: Vec<Option<Shards>> = Vec::with_capacity(self.placements.len());
        for (i, p) in self.placements.iter().enumerate() {
            sets.push(match p {
                // rows tied to the outer rows' keys: the outer occurrences decide
                Placement::Sharded if self.follows[i] => None,
                Placement::Sharded => Some(self.occurrence_shards(i, topo, params)?),
                Placement::Unsharded => {
                    Some(Shards::Some(BTreeMap::from([(topo.default_shard, None)])))
                }
                Placement::Interval { shard, .. } => {
                    Some(Shards::Some(BTreeMap::from([(*shard, None)])))
                }
                Placement::Broadcast | Placement::Catalog => None,
            });
        }
        let union: Option<BTreeSet<usize>> =
            sets.iter()
                .flatten()
                .try_fold(BTreeSet::new(), |mut acc, s| match s {
                    Shards::All => None,
                    Shards::Some(m) => {
                        acc.extend(m.keys());
                        Some(acc)
                    }
                });
        let has_sharded = self.placements.contains(&Placement::Sharded);
        let broadcast_only = sets.iter().all(Option::is_none);
        match self.what {
            What::Ddl => {
                // Interval tables and unsharded tables have one home; the rest are everywhere.
                let homes: BTreeSet<usize> = self
                    .walk
                    .relations
                    .iter()
                    .filter_map(|(name, _)| topo.map.physical_table(name).map(|(_, s)| s))
                    .collect();
                if homes.len() == 1 {
                    return Ok(Route::mirror(homes));
                }
                return Ok(Route::mirror(all));
            }
            What::Read if broadcast_only => {
                return Ok(Route::one(self.broadcast_read_shard(topo)));
            }
            What::Update | What::Delete
                if matches!(self.placements.first(), Some(Placement::Broadcast)) =>
            {
                if has_sharded || sets.iter().flatten().next().is_some() {
                    return Err(Refusal::new(RefusalKind::BroadcastWriteReadsOthers, format!(
                        "a write to broadcast table {} that reads other sharded or unsharded tables is not supported: the copies on each shard would differ",
                        self.walk.occurrences[0].table
                    )));
                }
                return Ok(Route::mirror(all));
            }
            _ => {}
        }
        let targets = match &union {
            Some(u) if u.len() <= 1 => {
                let shard = u.iter().next().copied().unwrap_or(topo.default_shard);
                let suffixes = self.suffixes_on(&sets, shard)?;
                self.check_key_change(topo, params, &[shard])?;
                return Ok(self.routed(vec![(shard, suffixes)], false));
            }
            _ => self.spread(&sets, &all, topo)?,
        };
        self.check_key_change(
            topo,
            params,
            &targets.iter().map(|t| t.0).collect::<Vec<_>>(),
        )?;
        let scatter = targets.len() > 1;
        let route = self.routed(targets, scatter);
        if scatter {
            return self.with_merge(route, topo);
        }
        Ok(route)
    }

    /// A scattered read's route with its merge plan: the shards' SQL and
    /// parameters when the plan rewrites them.
    fn with_merge(&self, mut route: Route, topo: &Topology<'_>) -> Result<Route, Refusal> {
        if let Some(Ok(plan)) = &self.merge {
            if plan.order.is_empty()
                && plan.limit.is_none()
                && plan.offset.is_none()
                && plan.aggregates.is_empty()
                && plan.distinct.is_none()
                && plan.grouped.is_none()
            {
                return Ok(route);
            }
            if let Some(sql) = &plan.shard_sql {
                if route.shards.iter().any(|s| s.sql.is_some()) {
                    return Err(Refusal::new(RefusalKind::MergeOverIntervals,
                        "ORDER BY or LIMIT over interval tables on several shards is not supported yet".to_string(),
                    ));
                }
                for s in &mut route.shards {
                    s.sql = Some(sql.clone());
                    s.params.clone_from(&plan.shard_params);
                }
            }
            route.merge = Some(MergePlan {
                row_limit: topo.merge_row_limit,
                ..plan.clone()
            });
        }
        Ok(route)
    }

    /// Where a read of broadcast tables only goes: the default shard.
    fn broadcast_read_shard(&self, topo: &Topology<'_>) -> usize {
        topo.default_shard
    }

    /// The shards an occurrence of a sharded table can touch.
    fn occurrence_shards(
        &self,
        i: usize,
        topo: &Topology<'_>,
        params: &[Param<'_>],
    ) -> Result<Shards, Refusal> {
        let table = &self.walk.occurrences[i].table;
        let Some(rule) = topo.map.table(table) else {
            return Ok(Shards::All);
        };
        let ty = topo.map.key_type(table).unwrap_or(KeyType::Int);
        let keys = resolve_keys(&self.keys[i], ty, params);
        let mut out = BTreeMap::new();
        match keys {
            Resolved::All => match self.ranges[i].shards(rule, ty, params, topo.shards.len())? {
                Some(m) => out = m,
                None => {
                    if let Some(why) = needs_interval(rule, table) {
                        return Err(why);
                    }
                    return Ok(Shards::All);
                }
            },
            Resolved::Keys(list) => {
                for k in list {
                    match k {
                        Converted::Key(k) => {
                            let (shard, suffix) = place(rule, &k).ok_or_else(|| {
                                Refusal::new(RefusalKind::KeyNotMapped, format!(
                                    "no shard owns key {} of table {table}: the shard map leaves it out",
                                    display_key(&k)
                                ))
                            })?;
                            if let Some(prev) = out.insert(shard, suffix.clone()) {
                                if prev != suffix {
                                    return Err(two_intervals(table, shard, topo));
                                }
                            }
                        }
                        // The server rejects the value itself: let it, on the default shard.
                        Converted::Invalid => {
                            out.entry(topo.default_shard).or_insert(None);
                        }
                        Converted::Null => {}
                    }
                }
            }
        }
        Ok(Shards::Some(out))
    }

    /// The interval-table suffixes of every occurrence on `shard`.
    fn suffixes_on(
        &self,
        sets: &[Option<Shards>],
        shard: usize,
    ) -> Result<Vec<Option<String>>, Refusal> {
        Ok(sets
            .iter()
            .map(|s| match s {
                Some(Shards::Some(m)) => m.get(&shard).cloned().flatten(),
                _ => None,
            })
            .collect())
    }

    /// The targets of a statement that spans shards, or the refusal.
    fn spread(
        &self,
        sets: &[Option<Shards>],
        all: &BTreeSet<usize>,
        topo: &Topology<'_>,
    ) -> Result<Targets, Refusal> {
        match self.what {
            What::Read => {
                if let Some(why) = &self.not_per_shard {
                    return Err(why.clone());
                }
                if let Some(what) = self.needs_merge {
                    let table = self.first_sharded().unwrap_or_default();
                    return Err(Refusal::new(need_kind(what), format!(
                        "{what} across shards is not supported yet: this query reads {table} on several shards and its rows would need merging"
                    )));
                }
                if let Some(Err(why)) = &self.merge {
                    let table = self.first_sharded().unwrap_or_default();
                    return Err(Refusal::new(
                        merge_error_kind(why),
                        format!("{why}: this query reads {table} on several shards"),
                    ));
                }
            }
            What::Update | What::Delete => {
                if let Some(why) = &self.not_per_shard {
                    return Err(why.clone());
                }
                let table = self.first_sharded().unwrap_or_default();
                let keyless = matches!(sets.first(), Some(Some(Shards::All)));
                if keyless && !topo.allow_scatter_writes {
                    let verb = if self.what == What::Update {
                        "UPDATE"
                    } else {
                        "DELETE"
                    };
                    let key = topo
                        .map
                        .table(&table)
                        .and_then(TableRule::key)
                        .unwrap_or("?");
                    return Err(Refusal::new(RefusalKind::ScatterWrite, format!(
                        "{verb} of sharded table {table} without its sharding key ({key}) would touch every shard: add {key} = … to the WHERE clause, or set routing.allow_scatter_writes"
                    )));
                }
            }
            _ => {}
        }
        // Intersect the sets of the sharded occurrences of each scope; unite the scopes.
        let mut targets: BTreeSet<usize> = BTreeSet::new();
        let mut any = false;
        for scope in &self.walk.selects {
            let mut acc: Option<BTreeSet<usize>> = None;
            for &i in &scope.occurrences {
                if let Some(s) = &sets[i] {
                    let here: BTreeSet<usize> = match s {
                        Shards::All => all.clone(),
                        Shards::Some(m) => m.keys().copied().collect(),
                    };
                    acc = Some(match acc {
                        None => here,
                        Some(a) => a.intersection(&here).copied().collect(),
                    });
                }
            }
            if let Some(a) = acc {
                any = true;
                targets.extend(a);
            }
        }
        if !any {
            targets.clone_from(all);
        }
        if targets.is_empty() {
            // the scopes' key sets contradict each other: no row anywhere
            targets.insert(topo.default_shard);
        }
        if self.explain && targets.len() > 1 {
            return Err(Refusal::new(RefusalKind::ExplainAcrossShards,
                "EXPLAIN of a statement that runs on several shards is not supported: restrict it to one shard's keys".to_string(),
            ));
        }
        targets
            .into_iter()
            .map(|shard| Ok((shard, self.suffixes_on(sets, shard)?)))
            .collect()
    }

    fn first_sharded(&self) -> Option<String> {
        self.placements
            .iter()
            .position(|p| *p == Placement::Sharded)
            .map(|i| self.walk.occurrences[i].table.clone())
    }

    /// Refuses an UPDATE that moves a row to another shard.
    fn check_key_change(
        &self,
        topo: &Topology<'_>,
        params: &[Param<'_>],
        targets: &[usize],
    ) -> Result<(), Refusal> {
        let Some(change) = &self.key_change else {
            return Ok(());
        };
        let table = &self.walk.occurrences[0].table;
        let key = topo
            .map
            .table(table)
            .and_then(TableRule::key)
            .unwrap_or("?");
        let refuse = || {
            Refusal::new(RefusalKind::KeyChange, format!(
                "UPDATE changes the sharding key {key} of table {table}: the row could have to move to another shard (delete it and insert it again instead)"
            ))
        };
        let (Some(value), [shard]) = (change, targets) else {
            return Err(refuse());
        };
        let rule = topo.map.table(table).ok_or_else(refuse)?;
        let ty = topo.map.key_type(table).unwrap_or(KeyType::Int);
        match convert(value, ty, params) {
            // the same shard, and not another interval table
            Some(Converted::Key(k)) if matches!(place(rule, &k), Some((s, None)) if s == *shard) => {
                Ok(())
            }
            Some(Converted::Invalid) => Ok(()),
            _ => Err(refuse()),
        }
    }

    /// The route for `targets` with the SQL rewritten where interval tables
    /// need their physical names.
    fn routed(&self, targets: Targets, scatter: bool) -> Route {
        let shards = targets
            .into_iter()
            .map(|(shard, suffixes)| ShardStatement {
                shard,
                sql: suffixes
                    .iter()
                    .any(Option::is_some)
                    .then(|| rename_intervals(&self.statement, &self.walk, &suffixes)),
                params: None,
            })
            .collect();
        Route {
            shards,
            scatter,
            mirror: false,
            merge: None,
        }
    }

    /// Where the tables an INSERT reads live (its source, for INSERT …
    /// SELECT and subqueries in VALUES).
    fn source_home(
        &self,
        topo: &Topology<'_>,
        params: &[Param<'_>],
    ) -> Result<SourceHome, Refusal> {
        let mut out: Option<BTreeSet<usize>> = None;
        for (i, p) in self.placements.iter().enumerate() {
            let set: BTreeSet<usize> = match p {
                Placement::Sharded => match self.occurrence_shards(i, topo, params)? {
                    Shards::All => return Ok(SourceHome::Everywhere),
                    Shards::Some(m) => m.keys().copied().collect(),
                },
                Placement::Unsharded => [topo.default_shard].into(),
                Placement::Interval { shard, .. } => [*shard].into(),
                Placement::Broadcast | Placement::Catalog => continue,
            };
            out = Some(match out {
                None => set,
                Some(o) => o.union(&set).copied().collect(),
            });
        }
        Ok(out.map_or(SourceHome::Nowhere, SourceHome::Shards))
    }
}

/// Target shards, each with the interval-table suffix of every occurrence.
type Targets = Vec<(usize, Vec<Option<String>>)>;

/// Keys after parameters are bound.
enum Resolved {
    All,
    Keys(Vec<Converted>),
}

/// Resolves a key set with the parameters: the listed keys, or `All`.
fn resolve_keys(set: &KeySet, ty: KeyType, params: &[Param<'_>]) -> Resolved {
    match set {
        KeySet::All => Resolved::All,
        KeySet::Values(list) => {
            let mut out = Vec::with_capacity(list.len());
            for v in list {
                match convert(v, ty, params) {
                    Some(c) => out.push(c),
                    None => return Resolved::All,
                }
            }
            Resolved::Keys(out)
        }
        KeySet::ArrayParam(n) => match n
            .checked_sub(1)
            .and_then(|i| params.get(i))
            .map(|p| array_elements(p, ty))
        {
            Some(Some(list)) => Resolved::Keys(list),
            Some(None) => Resolved::Keys(vec![Converted::Invalid]),
            None => Resolved::All,
        },
        KeySet::Union(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match resolve_keys(p, ty, params) {
                    Resolved::All => return Resolved::All,
                    Resolved::Keys(k) => out.extend(k),
                }
            }
            Resolved::Keys(out)
        }
        KeySet::Intersect(parts) => {
            let mut acc: Option<Vec<Converted>> = None;
            for p in parts {
                if let Resolved::Keys(k) = resolve_keys(p, ty, params) {
                    acc = Some(match acc {
                        None => k,
                        Some(a) => a.into_iter().filter(|x| k.contains(x)).collect(),
                    });
                }
            }
            acc.map_or(Resolved::All, Resolved::Keys)
        }
    }
}

/// The refusal kind of a construct that would need merging across shards.
fn need_kind(what: MergeNeed) -> RefusalKind {
    match what {
        MergeNeed::Window => RefusalKind::WindowFunction,
        MergeNeed::Union | MergeNeed::Intersect | MergeNeed::Except => RefusalKind::SetOperation,
        _ => RefusalKind::MergeUnsupported,
    }
}

/// The refusal kind of a query the merge planner cannot merge.
fn merge_error_kind(e: &MergeError) -> RefusalKind {
    match e {
        MergeError::Unsupported(_) => RefusalKind::MergeUnsupported,
        MergeError::Distinct(_) => RefusalKind::AggregateDistinct,
        MergeError::Having(_) => RefusalKind::HavingNotEvaluable,
    }
}
