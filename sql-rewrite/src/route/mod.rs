//! Route planning: which shards run a statement, and the SQL each receives.
//!
//! [`plan`] parses a statement text once into a [`Plan`] (a template);
//! [`Plan::bind`] applies it to the `$n` values of one execution and gives a
//! [`Route`]. The rules (PRODUCT.md, "Routing rules"):
//!
//! - Texts that name no sharded or broadcast table go to the default shard
//!   unchanged, as in an unsharded proxy.
//! - Each occurrence of a sharded table is restricted by its scope's WHERE
//!   (`=`, `IN`, `= ANY($n)`, AND/OR; ranges for `range` and `time` keys). When
//!   every occurrence lands on one and the same shard, the statement runs
//!   there (whatever its joins and subqueries: all rows it can see live there).
//! - Otherwise the statement runs on several shards only when that is
//!   provably the same as one database: a read whose sharded tables are all at
//!   the top level, co-located and joined on their key, with no construct whose
//!   rows would need merging (results are concatenated); a broadcast write; a
//!   key-less UPDATE/DELETE when `allow_scatter_writes` is set; a multi-row
//!   INSERT split per shard. Everything else is refused (`0A000`) with a
//!   message naming what and why.

mod insert;
mod preview;
pub(crate) mod refusal;
pub(crate) mod rewrite;
mod scope;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use shard_config::hash::KeyValue;
use shard_config::{KeyType, ShardMap, TableRule};
use sqlparser::ast::{AssignmentTarget, Statement};

use crate::keys::{KeySet, KeyValueExpr};
use crate::merge::MergePlan;
use crate::query_shape::{needs_grouping, MergeNeed};
use crate::Classification;
pub use preview::{preview, PreviewRow};
pub use refusal::Refusal;
use scope::{occurrence_keys, Placement, Walk};
use values::{convert, Converted, Key};

/// What the planner knows of the deployment.
#[derive(Debug, Clone, Copy)]
pub struct Topology<'a> {
    /// The shard map.
    pub map: &'a ShardMap,
    /// Shard names, by index.
    pub shards: &'a [&'a str],
    /// Index of the default shard.
    pub default_shard: usize,
    /// `routing.allow_scatter_writes`.
    pub allow_scatter_writes: bool,
    /// `proxy.merge_row_limit`: most rows a cross-shard merge may hold.
    pub merge_row_limit: usize,
}

pub use crate::params::Param;

/// A statement text's route template: parse once, [`Plan::bind`] per execution.
#[derive(Debug, Clone)]
pub struct Plan {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Names no sharded or broadcast table: the default shard, unchanged.
    Default,
    /// Refused whatever the parameters.
    Refused(Refusal),
    /// An unparseable text that names only interval tables of this shard.
    Home(usize),
    /// Every statement of the text, analysed.
    Statements(Vec<Analysed>),
}

/// One analysed statement.
#[derive(Debug, Clone)]
struct Analysed {
    /// The text was `EXPLAIN …` of the statement.
    explain: bool,
    statement: Statement,
    what: What,
    walk: Walk,
    /// Placement of each occurrence.
    placements: Vec<Placement>,
    /// Key set of each sharded occurrence (others: `All`).
    keys: Vec<KeySet>,
    /// Key range bounds of each sharded occurrence (range and time tables).
    ranges: Vec<rewrite::KeyRange>,
    /// A construct that would need merging rows of several shards beyond
    /// ordering and counting.
    needs_merge: Option<MergeNeed>,
    /// A read's ordered merge across shards, or why it cannot be merged.
    merge: Option<Result<MergePlan, String>>,
    /// A reason a key-less read cannot be evaluated shard by shard.
    not_per_shard: Option<String>,
    /// Occurrences of linked subqueries that run wherever the outer tables do.
    follows: Vec<bool>,
    /// An UPDATE assigning the sharding key: the assigned value.
    key_change: Option<Option<KeyValueExpr>>,
    insert: Option<insert::InsertPlan>,
}

/// What kind of statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Read,
    Insert,
    Update,
    Delete,
    /// DDL and utility statements naming sharded or broadcast tables.
    Ddl,
}

/// Where one execution of a statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The shards, in shard order, each with what it receives.
    pub shards: Vec<ShardStatement>,
    /// Several shards answer and their results are concatenated.
    pub scatter: bool,
    /// Every target holds the same copy and runs the same statement (DDL,
    /// broadcast writes): the client gets one shard's answer, and an error
    /// from any.
    pub mirror: bool,
    /// How a scattered read's rows are merged (ordered, counted); `None`:
    /// concatenated as they come.
    pub merge: Option<MergePlan>,
}

/// What one shard receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatement {
    /// Shard index.
    pub shard: usize,
    /// The SQL it runs; `None`: the client's text unchanged.
    pub sql: Option<String>,
    /// The client's parameter indexes (0-based) it gets, in `$1…` order;
    /// `None`: all of them unchanged.
    pub params: Option<Vec<usize>>,
}

impl Route {
    fn one(shard: usize) -> Route {
        Route {
            shards: vec![ShardStatement {
                shard,
                sql: None,
                params: None,
            }],
            scatter: false,
            mirror: false,
            merge: None,
        }
    }

    /// The same statement on every shard in `shards`, one answer for the client.
    fn mirror(shards: impl IntoIterator<Item = usize>) -> Route {
        let mut route = Route::every(shards);
        route.mirror = route.scatter;
        route.scatter = false;
        route
    }

    fn every(shards: impl IntoIterator<Item = usize>) -> Route {
        let shards: Vec<ShardStatement> = shards
            .into_iter()
            .map(|shard| ShardStatement {
                shard,
                sql: None,
                params: None,
            })
            .collect();
        Route {
            scatter: shards.len() > 1,
            mirror: false,
            merge: None,
            shards,
        }
    }

    /// The single shard with the text unchanged, if that is the route.
    pub fn single_unchanged(&self) -> Option<usize> {
        match self.shards.as_slice() {
            [s] if s.sql.is_none() && s.params.is_none() => Some(s.shard),
            _ => None,
        }
    }
}

/// Quick test: can `sql` name a table of the map? (A case-insensitive
/// substring search for every mapped table name; false positives only cost
/// a parse.)
fn may_name_mapped(sql: &str, map: &ShardMap) -> bool {
    let text = sql.as_bytes();
    map.tables().any(|(name, _)| {
        let name = name.as_bytes();
        !name.is_empty()
            && text
                .windows(name.len())
                .any(|w| w.eq_ignore_ascii_case(name))
    })
}

/// Plans a statement text (one or more statements).
pub fn plan(sql: &str, topo: &Topology<'_>) -> Plan {
    if topo.map.tables().next().is_none() || !may_name_mapped(sql, topo.map) {
        return Plan {
            kind: Kind::Default,
        };
    }
    plan_parsed(sql, crate::classify::parse(sql), topo)
}

/// [`plan`] and [`crate::classify`] of a text with one parse.
pub fn plan_classified(
    sql: &str,
    topo: &Topology<'_>,
    write_functions: &[String],
) -> (Plan, Classification) {
    if topo.map.tables().next().is_none() || !may_name_mapped(sql, topo.map) {
        return (
            Plan {
                kind: Kind::Default,
            },
            crate::classify(sql, write_functions),
        );
    }
    let parsed = crate::classify::parse(sql);
    let class = crate::classify::classify_parsed(sql, parsed.as_deref(), write_functions);
    (plan_parsed(sql, parsed, topo), class)
}

fn plan_parsed(
    sql: &str,
    parsed: Result<Vec<Statement>, &'static str>,
    topo: &Topology<'_>,
) -> Plan {
    let statements = match parsed {
        Ok(s) => s,
        Err(why) => {
            if let Some(shard) = refusal::unparsed_home(sql, topo.map) {
                return Plan {
                    kind: Kind::Home(shard),
                };
            }
            return Plan {
                kind: match refusal::named_sharded_table(sql, topo.map) {
                    Some(table) => Kind::Refused(Refusal::new(format!(
                        "cannot route this statement: it names sharded table {table} but shardgate cannot parse it ({why})"
                    ))),
                    None => Kind::Default,
                },
            };
        }
    };
    let mut analysed = Vec::with_capacity(statements.len());
    for statement in statements {
        match analyse(statement, topo) {
            Ok(Some(a)) => analysed.push(a),
            Ok(None) => {}
            Err(r) => {
                return Plan {
                    kind: Kind::Refused(r),
                }
            }
        }
    }
    if analysed.is_empty() {
        return Plan {
            kind: Kind::Default,
        };
    }
    Plan {
        kind: Kind::Statements(analysed),
    }
}

/// The statement inside EXPLAIN, else the statement.
fn explained(statement: Statement) -> Statement {
    match statement {
        Statement::Explain { statement, .. } => explained(*statement),
        s => s,
    }
}

/// Analyses one statement; `None` when it names no mapped table.
fn analyse(statement: Statement, topo: &Topology<'_>) -> Result<Option<Analysed>, Refusal> {
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
        return Err(Refusal::new(format!(
            "a CTE named {name} hides the mapped table of that name, so shardgate cannot tell which one each reference means: give the CTE another name"
        )));
    }
    scope::unvisited_relations(&statement, &mut walk.relations);
    let placement = |name: &str, schema: Option<&str>| -> Placement {
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
    };
    let mapped = walk.relations.iter().any(|(n, s)| {
        !matches!(
            placement(n, s.as_deref()),
            Placement::Unsharded | Placement::Catalog
        )
    });
    if !mapped {
        return Ok(None);
    }
    if let Statement::Query(q) = &statement {
        let modifying = q.with.iter().flat_map(|w| &w.cte_tables).any(|c| {
            !matches!(
                c.query.body.as_ref(),
                sqlparser::ast::SetExpr::Select(_)
                    | sqlparser::ast::SetExpr::Query(_)
                    | sqlparser::ast::SetExpr::SetOperation { .. }
                    | sqlparser::ast::SetExpr::Values(_)
            )
        });
        if modifying {
            return Err(Refusal::new(
                "a data-modifying CTE (WITH … AS (INSERT/UPDATE/DELETE …)) naming sharded or broadcast tables is not supported".to_string(),
            ));
        }
    }
    let what = match &statement {
        Statement::Query(_) => What::Read,
        Statement::Insert(_) => What::Insert,
        Statement::Update(_) => What::Update,
        Statement::Delete(_) => What::Delete,
        Statement::Copy { to, .. } => {
            let find = |p: Placement| {
                walk.relations
                    .iter()
                    .find(|(n, s)| placement(n, s.as_deref()) == p)
                    .map(|(n, _)| n.clone())
            };
            if let Some(table) = find(Placement::Sharded) {
                return Err(Refusal::new(format!(
                    "COPY of sharded table {table} is not supported yet: its rows would have to be split or gathered across shards"
                )));
            }
            if let (false, Some(table)) = (*to, find(Placement::Broadcast)) {
                return Err(Refusal::new(format!(
                    "COPY into broadcast table {table} is not supported yet: its rows would have to go to every shard"
                )));
            }
            What::Read
        }
        _ => What::Ddl,
    };
    let placements: Vec<Placement> = walk
        .occurrences
        .iter()
        .map(|o| {
            let schema = o
                .names
                .get(1)
                .filter(|n| n.contains('.'))
                .and_then(|n| n.rsplit_once('.').map(|(s, _)| s.to_string()));
            placement(&o.table, schema.as_deref())
        })
        .collect();
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
                keys.push(occurrence_keys(&walk, i, key));
                ranges.push(rewrite::occurrence_range(&walk, i, key));
            }
            None => {
                keys.push(KeySet::All);
                ranges.push(rewrite::KeyRange::default());
            }
        }
    }
    let needs_merge = match &statement {
        Statement::Query(q) => needs_grouping(q),
        _ => None,
    };
    let merge = match &statement {
        Statement::Query(q) if !explain => {
            Some(crate::merge::plan(q, topo.map).map_err(|e| e.to_string()))
        }
        _ => None,
    };
    // What the merge plan handles needs no other merging; what it refuses
    // is refused with its reason.
    let needs_merge = match (&merge, needs_merge, &statement) {
        (
            Some(Err(_)),
            Some(
                MergeNeed::Aggregate | MergeNeed::Distinct | MergeNeed::GroupBy | MergeNeed::Having,
            ),
            _,
        ) => None,
        (Some(Ok(p)), Some(what), Statement::Query(q)) if merged(p, what) => {
            // DISTINCT is merged; anything else in the query still counts
            let mut plain = q.clone();
            if let sqlparser::ast::SetExpr::Select(s) = plain.body.as_mut() {
                s.distinct = None;
            }
            needs_grouping(&plain).filter(|w| !merged(p, *w))
        }
        (_, n, _) => n,
    };
    let follows = refusal::follows_outer(&walk, &placements, topo);
    let not_per_shard = refusal::not_per_shard(&walk, &placements, &follows, topo);
    let key_change = match &statement {
        Statement::Update(u) => {
            let target = walk.occurrences.first();
            let key = target
                .filter(|_| placements.first() == Some(&Placement::Sharded))
                .and_then(|o| topo.map.table(&o.table))
                .and_then(TableRule::key);
            key.and_then(|key| {
                u.assignments.iter().find_map(|a| {
                    let names: Vec<String> = match &a.target {
                        AssignmentTarget::ColumnName(n) => vec![crate::keys::object_names(n)
                            .first()
                            .cloned()
                            .unwrap_or_default()],
                        AssignmentTarget::Tuple(ns) => ns
                            .iter()
                            .map(|n| {
                                crate::keys::object_names(n)
                                    .first()
                                    .cloned()
                                    .unwrap_or_default()
                            })
                            .collect(),
                    };
                    names.iter().any(|n| n == key).then(|| {
                        match &a.target {
                            AssignmentTarget::ColumnName(_) => crate::keys::value_of(&a.value),
                            AssignmentTarget::Tuple(_) => None,
                        }
                        .filter(|v| *v != KeyValueExpr::Null)
                    })
                })
            })
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

/// Whether merge plan `p` answers construct `what` (from
/// [`refusal::needs_grouping`]).
fn merged(p: &MergePlan, what: MergeNeed) -> bool {
    match what {
        MergeNeed::Aggregate | MergeNeed::Having => !p.aggregates.is_empty() || p.grouped.is_some(),
        MergeNeed::GroupBy => p.grouped.is_some() || p.groups_per_shard,
        MergeNeed::Distinct => p.distinct.is_some(),
        _ => false,
    }
}

/// The shards (and interval-table suffixes) a sharded occurrence can touch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shards {
    /// Every shard.
    All,
    /// These shards; for `table_per_interval` time tables, the interval
    /// table suffix on each.
    Some(BTreeMap<usize, Option<String>>),
}

impl Plan {
    /// `true` when the text names no sharded or broadcast table: it runs on
    /// the default shard unchanged, whatever the parameters.
    pub fn is_default(&self) -> bool {
        matches!(self.kind, Kind::Default)
    }

    /// Applies the plan to one execution's parameters. `next_id` gives a
    /// fresh snowflake id for a generated key column an INSERT omits.
    pub fn bind(
        &self,
        topo: &Topology<'_>,
        params: &[Param<'_>],
        next_id: &mut dyn FnMut() -> i64,
    ) -> Result<Route, Refusal> {
        let statements = match &self.kind {
            Kind::Default => return Ok(Route::one(topo.default_shard)),
            Kind::Refused(r) => return Err(r.clone()),
            Kind::Home(shard) => return Ok(Route::one(*shard)),
            Kind::Statements(s) => s,
        };
        if let [only] = statements.as_slice() {
            return only.bind(topo, params, next_id);
        }
        // Several statements in one text: only when they all run unchanged on
        // one shard, or all on the same shards as mirrored DDL or broadcast writes.
        let mut first: Option<Route> = None;
        for s in statements {
            let route = s.bind(topo, params, next_id)?;
            let unchanged = route
                .shards
                .iter()
                .all(|t| t.sql.is_none() && t.params.is_none());
            let same = first
                .as_ref()
                .is_none_or(|f| f.shards == route.shards && f.mirror == route.mirror);
            if !unchanged || !same || route.scatter {
                return Err(Refusal::new(
                    "a query string of several statements that go to different shards (or need rewriting) is not supported: send them one at a time".to_string(),
                ));
            }
            first.get_or_insert(route);
        }
        Ok(first.unwrap_or_else(|| Route::one(topo.default_shard)))
    }
}

impl Analysed {
    fn bind(
        &self,
        topo: &Topology<'_>,
        params: &[Param<'_>],
        next_id: &mut dyn FnMut() -> i64,
    ) -> Result<Route, Refusal> {
        let n = topo.shards.len();
        let all: BTreeSet<usize> = (0..n).collect();
        if let Some(ins) = &self.insert {
            return insert::bind(ins, self, topo, params, next_id);
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
                    return Err(Refusal::new(format!(
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
        let mut route = self.routed(targets, scatter);
        if scatter {
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
                        return Err(Refusal::new(
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
                    if let Some(why) = rewrite::needs_interval(rule, table) {
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
                                Refusal::new(format!(
                                    "no shard owns key {} of table {table}: the shard map leaves it out",
                                    display_key(&k)
                                ))
                            })?;
                            if let Some(prev) = out.insert(shard, suffix.clone()) {
                                if prev != suffix {
                                    return Err(rewrite::two_intervals(table, shard, topo));
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
                    return Err(Refusal::new(why.clone()));
                }
                if let Some(what) = self.needs_merge {
                    let table = self.first_sharded().unwrap_or_default();
                    return Err(Refusal::new(format!(
                        "{what} across shards is not supported yet: this query reads {table} on several shards and its rows would need merging"
                    )));
                }
                if let Some(Err(why)) = &self.merge {
                    let table = self.first_sharded().unwrap_or_default();
                    return Err(Refusal::new(format!(
                        "{why}: this query reads {table} on several shards"
                    )));
                }
            }
            What::Update | What::Delete => {
                if let Some(why) = &self.not_per_shard {
                    return Err(Refusal::new(why.clone()));
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
                    return Err(Refusal::new(format!(
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
            return Err(Refusal::new(
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
            Refusal::new(format!(
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
                    .then(|| rewrite::rename_intervals(&self.statement, &self.walk, &suffixes)),
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
            .map(|p| values::array_elements(p, ty))
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

/// The shard (and interval-table suffix) owning `key` under `rule`.
pub(crate) fn place(rule: &TableRule, key: &Key) -> Option<(usize, Option<String>)> {
    match key {
        Key::Int(i) => rule.shard_for_key(&KeyValue::Int(*i)).map(|s| (s, None)),
        Key::Text(b) => rule.shard_for_key(&KeyValue::Text(b)).map(|s| (s, None)),
        Key::Uuid(u) => rule.shard_for_key(&KeyValue::Uuid(*u)).map(|s| (s, None)),
        Key::Time(t) => rule.time_target(*t),
    }
}

/// A key for messages.
pub(crate) fn display_key(k: &Key) -> String {
    match k {
        Key::Int(i) => i.to_string(),
        Key::Text(b) => format!("'{}'", String::from_utf8_lossy(b).replace('\'', "''")),
        Key::Uuid(u) => format!("'{}'", shard_config::uuid_text(u)),
        Key::Time(t) => format!("{t} µs after 1970-01-01 UTC"),
    }
}

/// One line per target: `shard` and the SQL it receives (`(unchanged)` when
/// the client's text goes as it is), with the parameter mapping when the
/// parameters are rearranged.
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.shards.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", s.shard)?;
            if let Some(sql) = &s.sql {
                write!(f, ": {sql}")?;
            }
            if let Some(p) = &s.params {
                let list: Vec<String> = p.iter().map(|i| format!("${}", i + 1)).collect();
                write!(f, " [params {}]", list.join(", "))?;
            }
        }
        Ok(())
    }
}
