//! Planning a statement text once ([`plan`], a [`Plan`] template) and
//! binding it to each execution's parameters ([`Plan::bind`], a
//! [`Route`]): texts naming no mapped table go to the default shard
//! unchanged; LOCK of mapped tables to every shard holding them;
//! unparseable ones to the interval tables' shard or refused;
//! several statements in one text only when they all go the same way.

use shard_config::ShardMap;
use sqlparser::ast::Statement;

use super::analyse::{analyse, Analysed};
use super::lock::lock_route;
use super::refusal::{Refusal, RefusalKind};
use super::target::Route;
use super::topology::Topology;
use super::unparsed::{named_sharded_table, unparsed_home};
use crate::classify::Classification;
use crate::params::Param;

/// A statement text's route template: parse once, [`Plan::bind`] per execution.
#[derive(Debug, Clone)]
pub struct Plan {
    kind: Kind,
}

/// What a plan holds.
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
    /// The same route whatever the parameters (a LOCK of mapped tables).
    Fixed(Box<Route>),
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
    if let Some(route) = lock_route(sql, topo.map, topo.shards.len(), topo.default_shard) {
        return Plan {
            kind: Kind::Fixed(Box::new(route)),
        };
    }
    let statements = match parsed {
        Ok(s) => s,
        Err(why) => {
            if let Some(shard) = unparsed_home(sql, topo.map) {
                return Plan {
                    kind: Kind::Home(shard),
                };
            }
            return Plan {
                kind: match named_sharded_table(sql, topo.map) {
                    Some(table) => Kind::Refused(Refusal::new(RefusalKind::Unparseable, format!(
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
            Kind::Fixed(route) => return Ok(route.as_ref().clone()),
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
                return Err(Refusal::new(RefusalKind::MultiStatement,
                    "a query string of several statements that go to different shards (or need rewriting) is not supported: send them one at a time".to_string(),
                ));
            }
            first.get_or_insert(route);
        }
        Ok(first.unwrap_or_else(|| Route::one(topo.default_shard)))
    }
}
