//! INSERT: rows to the shards owning their keys (a multi-row VALUES split per
//! shard), generated key columns filled with snowflake ids, INSERT … SELECT
//! only when it stays on one shard, broadcast tables written everywhere.

use std::collections::{BTreeMap, BTreeSet};

use shard_config::{KeyType, TableRule};
use sqlparser::ast::{
    Expr, Ident, Insert, ObjectName, ObjectNamePart, SelectItem, SetExpr, Statement,
    TableAliasWithoutColumns, TableObject, Value,
};

use super::refusal::{Refusal, RefusalKind};
use super::rewrite::two_intervals;
use super::scope::column;
use super::target::{Route, ShardStatement};
use super::topology::Topology;
use super::values::{convert, display_key, place, Converted, Key};
use crate::keys::{folded, object_names, value_of, KeyValueExpr};
use crate::params::{renumber_params, Param};

/// What an INSERT needs at Bind.
#[derive(Debug, Clone)]
pub struct InsertPlan {
    table: String,
    target: Target,
    /// A generated column the INSERT omits: it is added with fresh ids.
    generate: Option<String>,
    /// Each VALUES row's key (sharded targets), or `None` for INSERT … SELECT.
    row_keys: Option<Vec<KeyValueExpr>>,
    /// INSERT … SELECT into a sharded table: the selected key (a value, or
    /// the key column of a co-located source table).
    select_key: Option<SelectKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Sharded,
    Broadcast,
    /// Unsharded or an interval table: one home shard.
    Home(usize),
}

#[derive(Debug, Clone)]
enum SelectKey {
    Value(KeyValueExpr),
    CoLocated,
}

/// Analyses an INSERT whose target or source names a mapped table.
pub fn analyse(ins: &Insert, topo: &Topology<'_>) -> Result<Option<InsertPlan>, Refusal> {
    let TableObject::TableName(name) = &ins.table else {
        return Ok(None);
    };
    let Some(table) = object_names(name).first().cloned() else {
        return Ok(None);
    };
    let target = match topo.map.table(&table) {
        Some(TableRule::Broadcast) => Target::Broadcast,
        Some(_) => Target::Sharded,
        None => match topo.map.physical_table(&table) {
            Some((_, shard)) => Target::Home(shard),
            None => Target::Home(topo.default_shard),
        },
    };
    let mut columns: Vec<String> = ins
        .columns
        .iter()
        .filter_map(|c| object_names(c).first().cloned())
        .collect();
    if columns.is_empty() && target == Target::Sharded {
        columns = known_columns(ins, &table, topo)?;
    }
    let generated = topo.map.generated_column(&table).map(str::to_string);
    // Without a column list the INSERT gives every column, the generated one too.
    let generate = generated.filter(|g| !columns.is_empty() && !columns.contains(g));
    let values = match ins.source.as_deref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(v)) => Some(v),
        _ => None,
    };
    if generate.is_some() && (values.is_none() || columns.is_empty()) {
        return Err(Refusal::new(RefusalKind::InsertGeneratedColumn, format!(
            "INSERT into table {table} without its column {}, which shardgate generates, needs a column list and VALUES",
            generate.unwrap_or_default()
        )));
    }
    if target != Target::Sharded {
        return Ok(Some(InsertPlan {
            table,
            target,
            generate,
            row_keys: None,
            select_key: None,
        }));
    }
    let key = topo
        .map
        .table(&table)
        .and_then(TableRule::key)
        .unwrap_or_default();
    let position = columns.iter().position(|c| c == key);
    if position.is_none() && generate.as_deref() != Some(key) {
        return Err(Refusal::new(
            RefusalKind::InsertWithoutKey,
            format!("INSERT into sharded table {table} must give its sharding key {key}"),
        ));
    }
    if let Some(v) = values {
        let mut row_keys = Vec::with_capacity(v.rows.len());
        for (n, row) in v.rows.iter().enumerate() {
            let k = match position {
                Some(p) => row.get(p).and_then(value_of).ok_or_else(|| {
                    Refusal::new(RefusalKind::InsertKeyNotLiteral, format!(
                        "the sharding key {key} of row {} of this INSERT into {table} is not a literal or a parameter: shardgate cannot tell its shard",
                        n + 1
                    ))
                })?,
                // generated later, at Bind
                None => KeyValueExpr::Null,
            };
            row_keys.push(k);
        }
        return Ok(Some(InsertPlan {
            table,
            target,
            generate,
            row_keys: Some(row_keys),
            select_key: None,
        }));
    }
    // INSERT … SELECT: the key column of the selected rows.
    let select = match ins.source.as_deref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Select(s)) => Some(s),
        _ => None,
    };
    let item = select
        .zip(position)
        .and_then(|(s, p)| s.projection.get(p))
        .and_then(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        });
    let select_key = match item {
        Some(e) => match value_of(e) {
            Some(v) => Some(SelectKey::Value(v)),
            None => select_key_column(e, select.map(|s| &s.from[..]).unwrap_or(&[]), &table, topo),
        },
        None => None,
    };
    Ok(Some(InsertPlan {
        table,
        target,
        generate,
        row_keys: None,
        select_key,
    }))
}

/// For an INSERT into sharded table `table` without a column list: the
/// table's columns in order, from the topology, when every row of its VALUES
/// (or its SELECT list, without `*`) gives exactly that many values. Refused
/// when the order is unknown or does not fit (then the topology is told, to
/// reload it: the table may have changed).
fn known_columns(ins: &Insert, table: &str, topo: &Topology<'_>) -> Result<Vec<String>, Refusal> {
    let key = topo
        .map
        .table(table)
        .and_then(TableRule::key)
        .unwrap_or_default();
    let Some(known) = topo.columns.columns(table) else {
        topo.columns.missed(table);
        return Err(Refusal::new(RefusalKind::InsertWithoutColumns, format!(
            "INSERT into sharded table {table} without a column list: shardgate has not read the column order of {table} from the default shard yet, so it cannot find the sharding key {key}: retry, or name the columns"
        )));
    };
    let widths: Vec<Option<usize>> = match ins.source.as_deref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(v)) => v.rows.iter().map(|r| Some(r.len())).collect(),
        Some(SetExpr::Select(s)) => {
            let star = s.projection.iter().any(|i| {
                matches!(
                    i,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            });
            vec![(!star).then_some(s.projection.len())]
        }
        _ => vec![None],
    };
    if let Some(bad) = widths.iter().find(|w| **w != Some(known.len())) {
        topo.columns.missed(table);
        let given = match bad {
            Some(n) => format!("gives {n} values"),
            None => "gives values shardgate cannot count".to_string(),
        };
        return Err(Refusal::new(RefusalKind::InsertWithoutColumns, format!(
            "INSERT into sharded table {table} without a column list {given}, but {table} has {} columns ({}) as shardgate knows it: name the columns so shardgate can find the sharding key {key} (if the table just changed, shardgate rereads its columns: retry)",
            known.len(),
            known.join(", ")
        )));
    }
    Ok(known.to_vec())
}

/// `SelectKey::CoLocated` when `e` is the key column of a sharded source
/// table co-located with `table`.
fn select_key_column(
    e: &Expr,
    from: &[sqlparser::ast::TableWithJoins],
    table: &str,
    topo: &Topology<'_>,
) -> Option<SelectKey> {
    let (qual, col) = column(e)?;
    let group = topo.map.table(table).and_then(TableRule::group)?;
    let mut factors = Vec::new();
    for t in from {
        factors.push(&t.relation);
        factors.extend(t.joins.iter().map(|j| &j.relation));
    }
    let tables: Vec<(String, Vec<String>)> = factors
        .iter()
        .filter_map(|f| match f {
            sqlparser::ast::TableFactor::Table { name, alias, .. } => {
                let mut names = object_names(name);
                let t = names.first()?.clone();
                if let Some(a) = alias {
                    names.push(folded(&a.name));
                }
                Some((t, names))
            }
            _ => None,
        })
        .collect();
    let source = match qual {
        Some(q) => tables.iter().find(|(_, names)| names.contains(&q))?,
        None if tables.len() == 1 => &tables[0],
        None => return None,
    };
    let rule = topo.map.table(&source.0)?;
    (rule.group() == Some(group) && rule.key() == Some(col.as_str()))
        .then_some(SelectKey::CoLocated)
}

/// Where the tables an INSERT reads (its source) live, at Bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceHome {
    /// It reads no sharded or unsharded table.
    Nowhere,
    /// It reads some on every shard.
    Everywhere,
    /// Only on these shards.
    Shards(BTreeSet<usize>),
}

/// Binds INSERT `ins` planned as `plan`, reading tables at `source`: the
/// shards of its rows and what each receives.
pub fn bind(
    plan: &InsertPlan,
    ins: &Insert,
    source: &SourceHome,
    topo: &Topology<'_>,
    params: &[Param<'_>],
    next_id: &mut dyn FnMut() -> i64,
) -> Result<Route, Refusal> {
    let table = &plan.table;
    match &plan.target {
        Target::Broadcast => {
            if *source != SourceHome::Nowhere {
                return Err(Refusal::new(RefusalKind::BroadcastWriteReadsOthers, format!(
                    "INSERT into broadcast table {table} that reads sharded or unsharded tables is not supported: the copies on each shard would differ"
                )));
            }
            let sql = plan
                .generate
                .as_ref()
                .map(|g| with_generated(ins, g, None, next_id).to_string());
            let mut route = Route::mirror(0..topo.shards.len());
            for s in &mut route.shards {
                s.sql.clone_from(&sql);
            }
            return Ok(route);
        }
        Target::Home(shard) => {
            let elsewhere = match source {
                SourceHome::Shards(set) => set.iter().any(|s| s != shard),
                SourceHome::Everywhere => true,
                SourceHome::Nowhere => false,
            };
            if elsewhere {
                return Err(Refusal::new(
                    RefusalKind::InsertReadsOtherShards,
                    format!(
                        "INSERT into {table} (on shard {}) reads sharded tables on other shards",
                        topo.shards.get(*shard).copied().unwrap_or("?")
                    ),
                ));
            }
            let mut route = Route::one(*shard);
            if let Some(g) = &plan.generate {
                route.shards[0].sql = Some(with_generated(ins, g, None, next_id).to_string());
            }
            return Ok(route);
        }
        Target::Sharded => {}
    }
    let rule = topo.map.table(table).ok_or_else(|| {
        Refusal::new(
            RefusalKind::Internal,
            format!("table {table} is not in the shard map"),
        )
    })?;
    match &plan.row_keys {
        None => bind_select(plan, rule, source, topo, params),
        Some(row_keys) => {
            let by_shard = rows_by_shard(plan, rule, row_keys, topo, params, next_id)?;
            bind_values(plan, ins, by_shard, source, topo, params.len(), next_id)
        }
    }
}

/// INSERT … SELECT into a sharded table: one shard, when the selected key
/// is a value, or the key of a co-located table read on one shard.
fn bind_select(
    plan: &InsertPlan,
    rule: &TableRule,
    source: &SourceHome,
    topo: &Topology<'_>,
    params: &[Param<'_>],
) -> Result<Route, Refusal> {
    let table = &plan.table;
    let ty = topo.map.key_type(table).unwrap_or(KeyType::Int);
    let refuse = || {
        Refusal::new(RefusalKind::InsertSelect, format!(
            "INSERT … SELECT into sharded table {table} is supported only when the selected rows and their keys stay on one shard (select {} as a value, or as the key of a co-located table restricted to one shard)",
            rule.key().unwrap_or("the key")
        ))
    };
    let shard = match (&plan.select_key, source) {
        (Some(SelectKey::Value(v)), home) => {
            let Some(Converted::Key(k)) = convert(v, ty, params) else {
                return Err(refuse());
            };
            let (shard, suffix) = place(rule, &k).ok_or_else(refuse)?;
            if suffix.is_some() {
                return Err(refuse());
            }
            match home {
                SourceHome::Nowhere => shard,
                SourceHome::Shards(set) if set.len() == 1 && set.contains(&shard) => shard,
                _ => return Err(refuse()),
            }
        }
        (Some(SelectKey::CoLocated), SourceHome::Shards(set)) if set.len() == 1 => {
            *set.iter().next().ok_or_else(refuse)?
        }
        _ => return Err(refuse()),
    };
    Ok(Route::one(shard))
}

/// The VALUES rows (indexes) of each shard, with its interval-table suffix.
type RowsByShard = BTreeMap<usize, (Vec<usize>, Option<String>)>;

/// Places each VALUES row on the shard owning its key, drawing generated
/// keys; returns the rows of each shard and the generated id of each row.
fn rows_by_shard(
    plan: &InsertPlan,
    rule: &TableRule,
    row_keys: &[KeyValueExpr],
    topo: &Topology<'_>,
    params: &[Param<'_>],
    next_id: &mut dyn FnMut() -> i64,
) -> Result<(RowsByShard, Vec<Option<i64>>), Refusal> {
    let table = &plan.table;
    let ty = topo.map.key_type(table).unwrap_or(KeyType::Int);
    let key = rule.key().unwrap_or_default();
    let mut generated: Vec<Option<i64>> = vec![None; row_keys.len()];
    let mut by_shard: RowsByShard = BTreeMap::new();
    for (n, k) in row_keys.iter().enumerate() {
        let converted = if plan.generate.as_deref() == Some(key) {
            let id = next_id();
            generated[n] = Some(id);
            Some(Converted::Key(Key::Int(id)))
        } else {
            convert(k, ty, params)
        };
        let (shard, suffix) = match converted {
            Some(Converted::Key(k)) => place(rule, &k).ok_or_else(|| {
                Refusal::new(RefusalKind::KeyNotMapped, format!(
                    "no shard owns key {} of table {table}: the shard map leaves it out",
                    display_key(&k)
                ))
            })?,
            Some(Converted::Null) => {
                return Err(Refusal::new(RefusalKind::InsertNullKey, format!(
                    "the sharding key {key} of row {} of this INSERT into {table} is NULL: a row without a key has no shard",
                    n + 1
                )))
            }
            // the server will reject the value: any shard reports it
            Some(Converted::Invalid) | None => (topo.default_shard, None),
        };
        let entry = by_shard
            .entry(shard)
            .or_insert_with(|| (Vec::new(), suffix.clone()));
        if entry.1 != suffix {
            return Err(two_intervals(table, shard, topo));
        }
        entry.0.push(n);
    }
    Ok((by_shard, generated))
}

/// INSERT … VALUES into a sharded table: each shard gets its rows (with
/// generated ids, under the interval table's name, parameters renumbered).
fn bind_values(
    plan: &InsertPlan,
    ins: &Insert,
    (by_shard, generated): (RowsByShard, Vec<Option<i64>>),
    source: &SourceHome,
    topo: &Topology<'_>,
    given_params: usize,
    next_id: &mut dyn FnMut() -> i64,
) -> Result<Route, Refusal> {
    let table = &plan.table;
    if let SourceHome::Shards(set) = source {
        if !(set.len() == 1
            && by_shard.len() == 1
            && by_shard.contains_key(set.iter().next().unwrap_or(&usize::MAX)))
        {
            return Err(Refusal::new(RefusalKind::InsertReadsOtherShards, format!(
                "this INSERT into sharded table {table} reads tables that live on other shards than its rows"
            )));
        }
    }
    let plain = by_shard.len() == 1
        && plan.generate.is_none()
        && by_shard.values().all(|(_, suffix)| suffix.is_none());
    if plain {
        let shard = *by_shard.keys().next().unwrap_or(&topo.default_shard);
        return Ok(Route::one(shard));
    }
    let mut shards = Vec::with_capacity(by_shard.len());
    for (shard, (rows, suffix)) in by_shard {
        let mut stmt = with_rows(ins, &rows);
        if let Some(g) = &plan.generate {
            let ids: Vec<Option<i64>> = rows.iter().map(|&r| generated[r]).collect();
            if let Statement::Insert(i) = &stmt {
                stmt = with_generated(i, g, Some(&ids), next_id);
            }
        }
        if let (Some(suffix), Statement::Insert(i)) = (&suffix, &mut stmt) {
            rename_target(i, table, suffix);
        }
        let params = renumber_params(&mut stmt, given_params);
        shards.push(ShardStatement {
            shard,
            sql: Some(stmt.to_string()),
            params,
        });
    }
    Ok(Route {
        scatter: shards.len() > 1,
        mirror: false,
        merge: None,
        shards,
    })
}

/// The INSERT with only the VALUES rows `rows`.
fn with_rows(ins: &Insert, rows: &[usize]) -> Statement {
    let mut ins = ins.clone();
    if let Some(q) = ins.source.as_deref_mut() {
        if let SetExpr::Values(v) = q.body.as_mut() {
            let all = std::mem::take(&mut v.rows);
            v.rows = all
                .into_iter()
                .enumerate()
                .filter(|(i, _)| rows.contains(i))
                .map(|(_, r)| r)
                .collect();
        }
    }
    Statement::Insert(ins)
}

/// The INSERT with column `column` added, each row getting an id: the
/// given ones, else fresh ones.
fn with_generated(
    ins: &Insert,
    column: &str,
    ids: Option<&[Option<i64>]>,
    next_id: &mut dyn FnMut() -> i64,
) -> Statement {
    let mut ins = ins.clone();
    ins.columns
        .push(ObjectName(vec![ObjectNamePart::Identifier(Ident::new(
            column,
        ))]));
    if let Some(q) = ins.source.as_deref_mut() {
        if let SetExpr::Values(v) = q.body.as_mut() {
            for (i, row) in v.rows.iter_mut().enumerate() {
                let id = ids
                    .and_then(|ids| ids.get(i).copied().flatten())
                    .unwrap_or_else(&mut *next_id);
                row.push(Expr::value(Value::Number(id.to_string(), false)));
            }
        }
    }
    Statement::Insert(ins)
}

/// Points the INSERT at interval table `{table}_{suffix}`, aliased as `table`.
fn rename_target(ins: &mut Insert, table: &str, suffix: &str) {
    if let TableObject::TableName(name) = &mut ins.table {
        if let Some(ObjectNamePart::Identifier(last)) = name.0.last_mut() {
            *last = Ident::new(format!("{table}_{suffix}"));
        }
    }
    if ins.table_alias.is_none() {
        ins.table_alias = Some(TableAliasWithoutColumns {
            explicit: true,
            alias: Ident::new(table),
        });
    }
}
