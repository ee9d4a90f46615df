//! Key ranges (`BETWEEN`, `<`, `>=` … on range and time keys), and the SQL
//! rewrites a shard may need: interval tables under their physical names,
//! and `$n` parameters renumbered when a shard gets only some of them.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use shard_config::hash::KeyValue;
use shard_config::{KeyType, TableRule};
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, ObjectNamePart, Statement, TableAlias, TableFactor, VisitMut,
    VisitorMut,
};

use super::refusal::{Refusal, RefusalKind};
use super::scope::{column, Walk};
use super::topology::Topology;
use super::values::{convert, Converted, Key};
use crate::keys::{value_of, KeyValueExpr};
use crate::params::Param;

/// Most interval tables one statement may span.
const MAX_INTERVALS: usize = 1000;

/// Bounds on a sharding key from a scope's WHERE (AND-conjuncts only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// Lower bound and whether it is inclusive.
    pub lower: Option<(KeyValueExpr, bool)>,
    /// Upper bound and whether it is inclusive.
    pub upper: Option<(KeyValueExpr, bool)>,
}

/// The key range of occurrence `i` from its scope's WHERE.
pub fn occurrence_range(walk: &Walk, i: usize, key: &str) -> KeyRange {
    let o = &walk.occurrences[i];
    let Some(scope) = o.select.map(|s| &walk.selects[s]) else {
        return KeyRange::default();
    };
    let alone = scope.occurrences.len() == 1;
    let is_key = |e: &Expr| match column(e) {
        Some((None, c)) => alone && c == key,
        Some((Some(q), c)) => c == key && o.names.contains(&q),
        None => false,
    };
    let mut range = KeyRange::default();
    if let Some(sel) = &scope.selection {
        collect_bounds(sel, &is_key, &mut range);
    }
    range
}

fn collect_bounds(e: &Expr, is_key: &dyn Fn(&Expr) -> bool, r: &mut KeyRange) {
    match e {
        Expr::Nested(inner) => collect_bounds(inner, is_key, r),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            collect_bounds(left, is_key, r);
            collect_bounds(right, is_key, r);
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } if is_key(expr) => {
            if let (Some(lo), Some(hi)) = (value_of(low), value_of(high)) {
                r.lower.get_or_insert((lo, true));
                r.upper.get_or_insert((hi, true));
            }
        }
        Expr::BinaryOp { left, op, right } => {
            // key OP value, or value OP key (flipped)
            let (op, value) = if is_key(left) {
                (op.clone(), right)
            } else if is_key(right) {
                let flipped = match op {
                    BinaryOperator::Lt => BinaryOperator::Gt,
                    BinaryOperator::LtEq => BinaryOperator::GtEq,
                    BinaryOperator::Gt => BinaryOperator::Lt,
                    BinaryOperator::GtEq => BinaryOperator::LtEq,
                    _ => return,
                };
                (flipped, left)
            } else {
                return;
            };
            let Some(v) = value_of(value) else { return };
            match op {
                BinaryOperator::Gt => {
                    r.lower.get_or_insert((v, false));
                }
                BinaryOperator::GtEq => {
                    r.lower.get_or_insert((v, true));
                }
                BinaryOperator::Lt => {
                    r.upper.get_or_insert((v, false));
                }
                BinaryOperator::LtEq => {
                    r.upper.get_or_insert((v, true));
                }
                _ => {}
            }
        }
        _ => {}
    }
}

impl KeyRange {
    /// The shards (with interval suffixes) a range or time table's rows in
    /// this range live on; `None` when unknown (no bounds, other rules, open
    /// time ranges, too many intervals).
    pub fn shards(
        &self,
        rule: &TableRule,
        ty: KeyType,
        params: &[Param<'_>],
        _shards: usize,
    ) -> Result<Option<BTreeMap<usize, Option<String>>>, Refusal> {
        if self.lower.is_none() && self.upper.is_none() {
            return Ok(None);
        }
        let bound = |b: &Option<(KeyValueExpr, bool)>| -> Option<Option<(Key, bool)>> {
            match b {
                None => Some(None),
                Some((v, inclusive)) => match convert(v, ty, params)? {
                    Converted::Key(k) => Some(Some((k, *inclusive))),
                    _ => None,
                },
            }
        };
        let (Some(lo), Some(hi)) = (bound(&self.lower), bound(&self.upper)) else {
            return Ok(None);
        };
        match rule {
            TableRule::Range { .. } => {
                let lo_kv = lo
                    .as_ref()
                    .and_then(|(k, inc)| key_value(k).map(|kv| (kv, *inc)));
                let hi_kv = hi
                    .as_ref()
                    .and_then(|(k, inc)| key_value(k).map(|kv| (kv, *inc)));
                if (lo.is_some() && lo_kv.is_none()) || (hi.is_some() && hi_kv.is_none()) {
                    return Ok(None);
                }
                let shards = rule.range_shards(
                    lo_kv.as_ref().map(|(k, i)| (k, *i)),
                    hi_kv.as_ref().map(|(k, i)| (k, *i)),
                );
                Ok(Some(shards.into_iter().map(|s| (s, None)).collect()))
            }
            TableRule::Time { .. } => {
                let t = |b: &Option<(Key, bool)>| match b {
                    Some((Key::Time(t), inc)) => Some((*t, *inc)),
                    _ => None,
                };
                let Some(targets) = rule.time_targets(t(&lo), t(&hi), MAX_INTERVALS) else {
                    return Ok(None);
                };
                let mut out = BTreeMap::new();
                for (shard, suffix) in targets {
                    if let Some(prev) = out.insert(shard, suffix.clone()) {
                        if prev != suffix {
                            return Err(Refusal::new(RefusalKind::SeveralIntervals, format!(
                                "the key range spans several interval tables on one shard ({} and {}): a query may read one interval table per shard",
                                prev.unwrap_or_default(),
                                suffix.unwrap_or_default()
                            )));
                        }
                    }
                }
                Ok(Some(out))
            }
            _ => Ok(None),
        }
    }
}

fn key_value(k: &Key) -> Option<KeyValue<'_>> {
    match k {
        Key::Int(i) => Some(KeyValue::Int(*i)),
        Key::Text(b) => Some(KeyValue::Text(b)),
        Key::Uuid(u) => Some(KeyValue::Uuid(*u)),
        Key::Time(_) => None,
    }
}

/// The refusal for a key-less statement on a time table with one table per
/// interval (the SQL must name one interval table per shard).
pub fn needs_interval(rule: &TableRule, table: &str) -> Option<Refusal> {
    match rule {
        TableRule::Time {
            table_per_interval: true,
            key,
            ..
        } => Some(Refusal::new(RefusalKind::TimeTableUnbounded, format!(
            "table {table} keeps one table per time interval: a statement must restrict {key} to a value, a list, or a bounded range (BETWEEN, >= … AND < …) so shardgate knows which interval tables to use"
        ))),
        _ => None,
    }
}

/// The refusal for keys of one table in two interval tables of one shard.
pub fn two_intervals(table: &str, shard: usize, topo: &Topology<'_>) -> Refusal {
    let name = topo.shards.get(shard).copied().unwrap_or("?");
    Refusal::new(RefusalKind::SeveralIntervals, format!(
        "the keys of table {table} fall in several interval tables on shard {name}: a statement may use one interval table per shard; split it"
    ))
}

/// The statement with each occurrence that has a suffix renamed to its
/// interval table (`orders` → `orders_2026_11 AS orders` unless aliased).
pub fn rename_intervals(statement: &Statement, walk: &Walk, suffixes: &[Option<String>]) -> String {
    let mut renames: BTreeMap<String, String> = BTreeMap::new();
    for (o, s) in walk.occurrences.iter().zip(suffixes) {
        if let Some(s) = s {
            renames
                .entry(o.table.clone())
                .or_insert_with(|| format!("{}_{s}", o.table));
        }
    }
    let mut statement = statement.clone();
    let _ = statement.visit(&mut Renamer { renames: &renames });
    statement.to_string()
}

struct Renamer<'a> {
    renames: &'a BTreeMap<String, String>,
}

impl VisitorMut for Renamer<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = f {
            let Some(ObjectNamePart::Identifier(last)) = name.0.last_mut() else {
                return ControlFlow::Continue(());
            };
            let logical = crate::keys::folded(last);
            if let Some(physical) = self.renames.get(&logical) {
                *last = Ident::new(physical.clone());
                if alias.is_none() {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::new(logical),
                        columns: Vec::new(),
                        at: None,
                    });
                }
            }
        }
        ControlFlow::Continue(())
    }
}
