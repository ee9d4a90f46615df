//! Merge plans for reads that span shards (issue "cross-shard queries"):
//! what each shard runs and how the proxy combines the streams so that the
//! client gets what one database holding every row would return.
//!
//! Covered so far: `ORDER BY` (positions, output names, expressions,
//! ASC/DESC, NULLS FIRST/LAST; sort keys that are not in the select list are
//! appended as hidden columns, dropped before the client sees the rows),
//! `LIMIT`/`OFFSET`/`FETCH FIRST` (each shard gets `LIMIT limit + offset`
//! and no offset; the merge skips and stops), `DISTINCT` / `DISTINCT ON`
//! (shards sort by every output column, so duplicates from different shards
//! meet and are dropped), aggregate-only select lists without GROUP BY
//! ([`Combine`]), GROUP BY that includes every sharded table's key (each
//! group lives on one shard: the shards answer it whole,
//! [`MergePlan::groups_per_shard`]), and other GROUP BYs ([`Grouped`]:
//! shards sort their groups by key, groups that meet combine; `avg` as
//! `sum` and `count`; HAVING as a [`Predicate`] the proxy evaluates; ORDER
//! BY aggregates by an in-memory sort). Anything else is reported by
//! [`MergeError`].

use std::fmt;

use std::ops::ControlFlow;

use shard_config::{ShardMap, TableRule};
use sqlparser::ast::{
    visit_expressions, Distinct, DuplicateTreatment, Expr, Fetch, Function, FunctionArguments,
    GroupByExpr, Ident, LimitClause, ObjectName, Offset, OrderBy, OrderByExpr, OrderByKind,
    OrderByOptions, OrderBySort, Query, Select, SelectItem, SetExpr, TableFactor, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::keys::{folded, object_names, strip};
use crate::route::rewrite::{params_used, renumber_params};

/// Where a sort key's value is in a shard's result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortColumn {
    /// A column the client sees, 0-based.
    Visible(usize),
    /// The `n`th (0-based) hidden column appended for the merge: column
    /// `columns - hidden + n` of a row.
    Hidden(usize),
    /// The output column of this name (an alias after a `*`, whose position
    /// is known only from the RowDescription).
    Named(String),
}

/// One key of the merge order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Its column.
    pub column: SortColumn,
    /// `DESC`.
    pub descending: bool,
    /// NULLs sort first (PostgreSQL's default: first for DESC, last for ASC).
    pub nulls_first: bool,
}

/// A row count from `LIMIT`, `OFFSET` or `FETCH`: a literal or a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A literal.
    Literal(u64),
    /// `$n`, 1-based, resolved at Bind.
    Param(usize),
}

/// How to merge the rows of several shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// The SQL each shard runs, when it differs from the client's.
    pub shard_sql: Option<String>,
    /// The client's parameters (0-based) `shard_sql` takes as `$1…`, when
    /// it does not use all of them (an OFFSET or LIMIT the proxy applies).
    pub shard_params: Option<Vec<usize>>,
    /// The merge order (empty: concatenate in any order).
    pub order: Vec<SortKey>,
    /// Hidden columns at the end of each row.
    pub hidden: usize,
    /// Rows to skip after merging.
    pub offset: Option<Count>,
    /// Rows to return after the offset (`None`: all).
    pub limit: Option<Count>,
    /// An aggregate-only query (no GROUP BY): each shard returns one row of
    /// partial aggregates, combined column by column.
    pub aggregates: Vec<Combine>,
    /// `DISTINCT` / `DISTINCT ON`: rows equal on these columns, adjacent in
    /// the merged order, are kept once (the first).
    pub distinct: Option<Dedupe>,
    /// `GROUP BY` (or aggregates with avg, HAVING, ORDER BY or LIMIT):
    /// each shard's groups, sorted by the group columns, are combined where
    /// keys meet.
    pub grouped: Option<Grouped>,
    /// The GROUP BY includes the sharding key of every sharded table: each
    /// group (its aggregates, HAVING) is complete on one shard, and the
    /// rows merge like any others.
    pub groups_per_shard: bool,
    /// Most rows the merge may hold at once (`proxy.merge_row_limit`, set
    /// by the route; unbounded in a plan of its own).
    pub row_limit: usize,
}

impl MergePlan {
    /// Rows concatenated as they come.
    fn concatenate() -> MergePlan {
        MergePlan {
            shard_sql: None,
            shard_params: None,
            order: Vec::new(),
            hidden: 0,
            offset: None,
            limit: None,
            aggregates: Vec::new(),
            distinct: None,
            grouped: None,
            groups_per_shard: false,
            row_limit: usize::MAX,
        }
    }
}

/// A grouped query's merge: which columns are group keys, how the others
/// (aggregates) combine, which groups are kept and in what order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouped {
    /// The group key columns of a shard row (0-based; hidden columns follow
    /// the visible ones).
    pub keys: Vec<usize>,
    /// For each column of a shard row: how it combines, `None` for a key.
    pub combine: Vec<Option<Combine>>,
    /// HAVING, evaluated on combined groups.
    pub having: Option<Predicate>,
    /// The client's order when it is not the shards' (aggregates, keys out
    /// of order): combined groups are sorted in memory. Empty: as merged.
    pub order: Vec<SortKey>,
}

/// A HAVING condition the proxy evaluates (SQL's three-valued logic: a
/// group is kept when it is true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// Both.
    And(Box<Predicate>, Box<Predicate>),
    /// Either.
    Or(Box<Predicate>, Box<Predicate>),
    /// Negation (NOT NULL is NULL).
    Not(Box<Predicate>),
    /// A comparison; NULL when either side is.
    Compare(Operand, CompareOp, Operand),
    /// `IS NULL`, or `IS NOT NULL` when the flag is set.
    IsNull(Operand, bool),
    /// A boolean column or constant.
    Truth(Operand),
}

/// A value in a HAVING condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A column of the shard row (a key or a combined aggregate).
    Column(usize),
    /// A constant as written (`t`/`f` for booleans), typed by the column it
    /// is compared with.
    Literal(String),
    /// `NULL`.
    Null,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`.
    Eq,
    /// `<>`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
}

/// Which columns make rows duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedupe {
    /// Every visible column (`SELECT DISTINCT`).
    All,
    /// The `DISTINCT ON` columns.
    On(Vec<SortColumn>),
}

/// How one column of shards' partial aggregates combines into the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// `count` and `sum`: add (NULLs ignored; all NULL: NULL).
    Sum,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `bool_and` / `every`.
    And,
    /// `bool_or`.
    Or,
    /// `avg`: this column holds the shards' `sum`s, added; column `count`
    /// their `count`s; the proxy divides as PostgreSQL's numeric division.
    Avg {
        /// The (hidden) column of the counts.
        count: usize,
    },
}

/// Why a query cannot be merged (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A construct this merge does not handle.
    #[error("{0} across shards is not supported yet")]
    Unsupported(String),
    /// `count(DISTINCT …)` and the like when groups span shards.
    #[error("{0}(DISTINCT …) across shards is not supported unless the GROUP BY includes the sharding key: a value on several shards would be counted once per shard")]
    Distinct(String),
    /// A HAVING condition the proxy cannot evaluate.
    #[error("HAVING {0} across shards is not supported unless the GROUP BY includes the sharding key: the proxy evaluates only comparisons (=, <>, <, <=, >, >=) of aggregates, group keys and constants, AND, OR, NOT and IS [NOT] NULL")]
    Having(String),
}

/// The merge plan of a top-level query whose rows come from several shards;
/// `map` says which FROM tables are sharded and by which key.
pub fn plan(query: &Query, map: &ShardMap) -> Result<MergePlan, MergeError> {
    let mut plan = plan_shards(query, map)?;
    // A parameter only the proxy uses (OFFSET $n) must not reach the
    // shards: their statement would declare fewer parameters than it is
    // given. Only texts with parameters (prepared, their plans cached) are
    // parsed again.
    let Some(sql) = &plan.shard_sql else {
        return Ok(plan);
    };
    let total = params_used(query).last().copied().unwrap_or(0);
    if total > 0 {
        let parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .ok()
            .and_then(|mut v| v.pop());
        if let Some(mut statement) = parsed {
            plan.shard_params = renumber_params(&mut statement, total);
            if plan.shard_params.is_some() {
                plan.shard_sql = Some(statement.to_string());
            }
        }
    }
    Ok(plan)
}

/// [`plan`] before the shards' parameters are renumbered.
fn plan_shards(query: &Query, map: &ShardMap) -> Result<MergePlan, MergeError> {
    if query
        .fetch
        .as_ref()
        .is_some_and(|f| f.with_ties || f.percent)
    {
        return unsupported("FETCH … WITH TIES or PERCENT");
    }
    let (limit, offset) = counts(query)?;
    let SetExpr::Select(s) = query.body.as_ref() else {
        return ordered(query, limit, offset);
    };
    let group = match &s.group_by {
        GroupByExpr::Expressions(e, m) if m.is_empty() => e.as_slice(),
        GroupByExpr::Expressions(..) => {
            return unsupported("GROUP BY ROLLUP, CUBE or GROUPING SETS")
        }
        GroupByExpr::All(_) => return unsupported("GROUP BY ALL"),
    };
    if let Some(e) = group
        .iter()
        .find(|e| matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)))
    {
        return Err(MergeError::Unsupported(format!("GROUP BY {e}")));
    }
    if !group.is_empty() {
        if groups_on_key(s, group, map) {
            // Every group lives on one shard: the shards answer it whole.
            if let Some(what) = window_function(query) {
                return Err(MergeError::Unsupported(format!(
                    "window function {what} over groups"
                )));
            }
            let mut p = ordered(query, limit, offset)?;
            p.groups_per_shard = true;
            return Ok(p);
        }
        return combined(query, s, group, limit, offset);
    }
    // Aggregates without GROUP BY: one group.
    let Some(parts) = aggregate_only(s)? else {
        return ordered(query, limit, offset);
    };
    let plain: Option<Vec<Combine>> = parts
        .iter()
        .map(|p| match p {
            Partial::Combine(c) => Some(*c),
            Partial::Avg(_) => None,
        })
        .collect();
    match plain {
        Some(aggregates)
            if s.having.is_none()
                && query.order_by.is_none()
                && limit.is_none()
                && offset.is_none() =>
        {
            Ok(MergePlan {
                aggregates,
                ..MergePlan::concatenate()
            })
        }
        _ => combined(query, s, &[], limit, offset),
    }
}

fn unsupported<T>(what: &str) -> Result<T, MergeError> {
    Err(MergeError::Unsupported(what.to_string()))
}

/// The merge of rows the shards return complete: ORDER BY, LIMIT/OFFSET,
/// DISTINCT.
fn ordered(
    query: &Query,
    limit: Option<Count>,
    offset: Option<Count>,
) -> Result<MergePlan, MergeError> {
    let mut query = query.clone();
    // Names in ORDER BY resolve against the output columns: those of the
    // (leftmost) SELECT. Only a plain SELECT can take hidden columns.
    let (items, can_hide) = match query.body.as_ref() {
        SetExpr::Select(s) => (s.projection.clone(), true),
        body @ SetExpr::SetOperation { .. } => match leftmost(body) {
            Some(items) => (items.to_vec(), false),
            None => return unsupported("this query form"),
        },
        _ => return unsupported("this query form"),
    };
    let mut order = Vec::new();
    let mut hidden = 0;
    let mut appended: Vec<SelectItem> = Vec::new();
    for (e, descending, nulls_first) in order_keys(&query)? {
        let column = match output_column(&items, e) {
            Some(c) => c,
            None => match (position(e), can_hide) {
                (Some(p), _) => SortColumn::Visible(p),
                (None, true) => {
                    let n = hidden;
                    hidden += 1;
                    appended.push(SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::new(format!("__shardgate_sort_{n}")),
                    });
                    SortColumn::Hidden(n)
                }
                (None, false) => {
                    return unsupported(
                        "ORDER BY an expression that is not an output column of a UNION",
                    )
                }
            },
        };
        order.push(SortKey {
            column,
            descending,
            nulls_first,
        });
    }
    // DISTINCT: duplicates from different shards must meet in the merged
    // order, so it is total on the output columns: the ORDER BY keys first,
    // then the others.
    let mut extra: Vec<usize> = Vec::new();
    let distinct = match query.body.as_ref() {
        SetExpr::Select(s) => s.distinct.clone(),
        _ => None,
    };
    let dedupe = match distinct {
        None | Some(Distinct::All) => None,
        Some(Distinct::Distinct) => {
            if items.iter().any(|i| {
                matches!(
                    i,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            }) {
                return unsupported("SELECT DISTINCT *");
            }
            if hidden > 0 {
                return unsupported("DISTINCT with ORDER BY keys outside the select list");
            }
            for i in 0..items.len() {
                order_also_by(i, &mut order, &mut extra);
            }
            Some(Dedupe::All)
        }
        Some(Distinct::On(exprs)) => {
            let mut on = Vec::new();
            for e in &exprs {
                match output_column(&items, e).or_else(|| position(e).map(SortColumn::Visible)) {
                    Some(c @ SortColumn::Visible(_)) => on.push(c),
                    _ => return unsupported("DISTINCT ON an expression outside the select list"),
                }
            }
            if order.is_empty() {
                for c in &on {
                    if let SortColumn::Visible(i) = c {
                        order_also_by(*i, &mut order, &mut extra);
                    }
                }
            }
            Some(Dedupe::On(on))
        }
    };
    if !extra.is_empty() {
        let mut exprs = match query.order_by.take().map(|o| o.kind) {
            Some(OrderByKind::Expressions(e)) => e,
            _ => Vec::new(),
        };
        exprs.extend(extra.into_iter().map(by_position));
        query.order_by = Some(OrderBy {
            kind: OrderByKind::Expressions(exprs),
            interpolate: None,
        });
    }
    let rewrite = !appended.is_empty()
        || offset.is_some()
        || query.fetch.is_some()
        || (dedupe.is_some() && query.order_by.is_some());
    if let SetExpr::Select(s) = query.body.as_mut() {
        s.projection.extend(appended);
    }
    // Each shard returns its first limit + offset rows, unskipped.
    if rewrite || limit.is_some() {
        query.fetch = None;
        query.limit_clause = limit.map(|l| LimitClause::LimitOffset {
            limit: Some(shard_limit(l, offset)),
            offset: None,
            limit_by: Vec::new(),
        });
    }
    Ok(MergePlan {
        shard_sql: rewrite.then(|| query.to_string()),
        order,
        hidden,
        offset,
        limit,
        distinct: dedupe,
        ..MergePlan::concatenate()
    })
}

/// The ORDER BY keys of a query: expression, DESC, NULLS FIRST.
fn order_keys(query: &Query) -> Result<Vec<(&Expr, bool, bool)>, MergeError> {
    let Some(by) = &query.order_by else {
        return Ok(Vec::new());
    };
    let OrderByKind::Expressions(exprs) = &by.kind else {
        return unsupported("ORDER BY ALL");
    };
    exprs
        .iter()
        .map(|e| {
            let descending = match &e.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(_)) => return unsupported("ORDER BY … USING"),
            };
            let nulls_first = e.options.nulls_first.unwrap_or(descending);
            Ok((&e.expr, descending, nulls_first))
        })
        .collect()
}

/// `ORDER BY n` (ascending) for output position `n`.
fn by_position(n: usize) -> OrderByExpr {
    OrderByExpr {
        expr: Expr::value(Value::Number(n.to_string(), false)),
        options: OrderByOptions {
            sort: None,
            nulls_first: None,
        },
        with_fill: None,
    }
}

/// Adds output column `i` (ascending) to the merge order and, as position
/// `i + 1`, to what the shards' ORDER BY gets, unless it is a key already.
fn order_also_by(i: usize, order: &mut Vec<SortKey>, extra: &mut Vec<usize>) {
    if !order.iter().any(|k| k.column == SortColumn::Visible(i)) {
        order.push(SortKey {
            column: SortColumn::Visible(i),
            descending: false,
            nulls_first: false,
        });
        extra.push(i + 1);
    }
}

/// Whether the GROUP BY includes the sharding key of every sharded table in
/// the FROM clause: then each group's rows live on one shard.
fn groups_on_key(s: &Select, group: &[Expr], map: &ShardMap) -> bool {
    let mut tables: Vec<(Vec<String>, &str)> = Vec::new();
    let mut add = |f: &TableFactor| {
        if let TableFactor::Table { name, alias, .. } = f {
            let mut names = object_names(name);
            let key = names
                .first()
                .and_then(|t| map.table(t))
                .and_then(TableRule::key);
            if let Some(key) = key {
                names.extend(alias.iter().map(|a| folded(&a.name)));
                tables.push((names, key));
            }
        }
    };
    for t in &s.from {
        add(&t.relation);
        for j in &t.joins {
            add(&j.relation);
        }
    }
    if tables.is_empty() {
        return false;
    }
    // A GROUP BY position or output name stands for its item.
    let resolved: Vec<&Expr> = group
        .iter()
        .map(|e| {
            match position(e)
                .and_then(|p| s.projection.get(p))
                .or_else(|| aliased(&s.projection, e))
            {
                Some(SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. }) => x,
                _ => e,
            }
        })
        .collect();
    tables.iter().all(|(names, key)| {
        resolved.iter().any(|e| match strip_nested(e) {
            Expr::Identifier(c) => folded(c) == *key,
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [.., q, c] => folded(c) == *key && names.contains(&folded(q)),
                _ => false,
            },
            _ => false,
        })
    })
}

/// The item a GROUP BY name refers to by its alias. PostgreSQL prefers an
/// input column of that name; an item that is not an aggregate could not
/// stand beside such a grouping anyway, so only those resolve.
fn aliased<'a>(items: &'a [SelectItem], e: &Expr) -> Option<&'a SelectItem> {
    let Expr::Identifier(name) = e else {
        return None;
    };
    items.iter().find(|i| match i {
        SelectItem::ExprWithAlias { expr, alias } => {
            folded(alias) == folded(name) && matches!(partial(expr), Ok(None))
        }
        _ => false,
    })
}

/// `e` without enclosing parentheses.
fn strip_nested(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// The first window function call in the select list or ORDER BY.
pub(crate) fn window_function(query: &Query) -> Option<String> {
    let mut found = None;
    let mut look = |e: &Expr| {
        let _ = visit_expressions(e, |x| {
            if let Expr::Function(f) = x {
                if f.over.is_some() {
                    found.get_or_insert_with(|| x.to_string());
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
    };
    if let SetExpr::Select(s) = query.body.as_ref() {
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                look(e);
            }
        }
    }
    if let Some(OrderByKind::Expressions(exprs)) = query.order_by.as_ref().map(|o| &o.kind) {
        for e in exprs {
            look(&e.expr);
        }
    }
    found
}

/// An aggregate's per-shard partial result and how it combines.
#[derive(Debug, Clone)]
enum Partial {
    /// The shards compute the aggregate itself; results combine thus.
    Combine(Combine),
    /// `avg`: the shards compute `sum` and `count` of this call.
    Avg(Box<Function>),
}

/// The partial aggregates of a select list without GROUP BY, when it has
/// aggregates (or a HAVING); `None` for a query without.
fn aggregate_only(s: &Select) -> Result<Option<Vec<Partial>>, MergeError> {
    let mut out = Vec::new();
    let mut other: Option<&Expr> = None;
    for item in &s.projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return Ok(None),
        };
        match partial(expr)? {
            Some(p) => out.push(p),
            None => {
                other.get_or_insert(expr);
            }
        }
    }
    if out.is_empty() && s.having.is_none() {
        return Ok(None);
    }
    if let Some(e) = other {
        return Err(MergeError::Unsupported(format!("{e} next to aggregates")));
    }
    Ok(Some(out))
}

/// How an aggregate call's per-shard results combine; `None` for an
/// expression that is not an aggregate call.
fn partial(expr: &Expr) -> Result<Option<Partial>, MergeError> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    if f.over.is_some() {
        return Ok(None);
    }
    let name = crate::route::refusal::function_name(f);
    let c = match name.as_str() {
        "count" | "sum" => Combine::Sum,
        "min" => Combine::Min,
        "max" => Combine::Max,
        "bool_and" | "every" => Combine::And,
        "bool_or" => Combine::Or,
        "avg" => Combine::Avg { count: 0 },
        other if crate::route::refusal::AGGREGATES.contains(&other) => {
            return Err(MergeError::Unsupported(format!(
                "aggregate function {other}"
            )))
        }
        _ => return Ok(None),
    };
    let distinct = match &f.args {
        FunctionArguments::List(l) => l
            .duplicate_treatment
            .is_some_and(|d| d == DuplicateTreatment::Distinct),
        _ => false,
    };
    if distinct {
        return Err(MergeError::Distinct(name));
    }
    if !f.within_group.is_empty() {
        return Err(MergeError::Unsupported(format!("{name} … WITHIN GROUP")));
    }
    Ok(Some(match c {
        Combine::Avg { .. } => Partial::Avg(Box::new(f.clone())),
        c => Partial::Combine(c),
    }))
}

/// `f` (an `avg` call) renamed: `sum(…)` or `count(…)` of the same
/// arguments and FILTER.
fn renamed(f: &Function, name: &str) -> Expr {
    let mut g = f.clone();
    g.name = ObjectName::from(vec![Ident::new(name)]);
    Expr::Function(g)
}

/// The columns of a grouped query's shard rows as they are built: the
/// select list (with `avg` replaced by `sum`) and the hidden columns
/// appended for the merge.
struct Columns<'a> {
    items: &'a [SelectItem],
    shard_items: Vec<SelectItem>,
    /// How each column (visible, then hidden) combines; `None`: a group key.
    combine: Vec<Option<Combine>>,
    /// The client's expression of each hidden column.
    hidden: Vec<Expr>,
    group: &'a [Expr],
    /// The column of each GROUP BY expression.
    keys: Vec<usize>,
}

impl Columns<'_> {
    /// Appends a hidden column computing `shard` for the client's `expr`.
    fn hide(&mut self, expr: &Expr, shard: Expr, combine: Option<Combine>) -> usize {
        let n = self.hidden.len();
        self.hidden.push(expr.clone());
        self.shard_items.push(SelectItem::ExprWithAlias {
            expr: shard,
            alias: Ident::new(format!("__shardgate_{n}")),
        });
        self.combine.push(combine);
        self.shard_items.len() - 1
    }

    /// The column of an aggregate the client's select list, HAVING or
    /// ORDER BY names (hidden when it is not an output column); `None` for
    /// an expression that is not an aggregate.
    fn aggregate(&mut self, e: &Expr) -> Result<Option<usize>, MergeError> {
        let Some(p) = partial(e)? else {
            return Ok(None);
        };
        let visible = self.items.iter().position(|i| match i {
            SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. } => x == e,
            _ => false,
        });
        if let Some(i) = visible.or_else(|| {
            self.hidden
                .iter()
                .position(|h| h == e)
                .map(|n| self.items.len() + n)
        }) {
            return Ok(Some(i));
        }
        Ok(Some(match p {
            Partial::Combine(c) => self.hide(e, e.clone(), Some(c)),
            Partial::Avg(f) => {
                let sum = self.hide(e, renamed(&f, "sum"), None);
                let count = self.hide(
                    &renamed(&f, "count"),
                    renamed(&f, "count"),
                    Some(Combine::Sum),
                );
                self.combine[sum] = Some(Combine::Avg { count });
                sum
            }
        }))
    }

    /// The column of a GROUP BY expression equal to `e`.
    fn key(&self, e: &Expr) -> Option<usize> {
        self.group.iter().position(|g| g == e).map(|k| self.keys[k])
    }

    /// The HAVING condition over combined groups.
    fn predicate(&mut self, e: &Expr) -> Result<Predicate, MergeError> {
        use sqlparser::ast::{BinaryOperator as B, UnaryOperator};
        let refuse = |e: &Expr| Err(MergeError::Having(e.to_string()));
        Ok(match e {
            Expr::Nested(inner) => self.predicate(inner)?,
            Expr::BinaryOp { left, op, right } => {
                let cmp = match op {
                    B::And => {
                        return Ok(Predicate::And(
                            Box::new(self.predicate(left)?),
                            Box::new(self.predicate(right)?),
                        ))
                    }
                    B::Or => {
                        return Ok(Predicate::Or(
                            Box::new(self.predicate(left)?),
                            Box::new(self.predicate(right)?),
                        ))
                    }
                    B::Eq => CompareOp::Eq,
                    B::NotEq => CompareOp::NotEq,
                    B::Lt => CompareOp::Lt,
                    B::LtEq => CompareOp::LtEq,
                    B::Gt => CompareOp::Gt,
                    B::GtEq => CompareOp::GtEq,
                    _ => return refuse(e),
                };
                let (l, r) = (self.operand(left)?, self.operand(right)?);
                if !matches!(l, Operand::Column(_)) && !matches!(r, Operand::Column(_)) {
                    return refuse(e);
                }
                Predicate::Compare(l, cmp, r)
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Predicate::Not(Box::new(self.predicate(expr)?)),
            Expr::IsNull(x) => Predicate::IsNull(self.operand(x)?, false),
            Expr::IsNotNull(x) => Predicate::IsNull(self.operand(x)?, true),
            other => match self.operand(other)? {
                o @ Operand::Column(_) => Predicate::Truth(o),
                Operand::Literal(v) if v == "t" || v == "f" => {
                    Predicate::Truth(Operand::Literal(v))
                }
                _ => return refuse(e),
            },
        })
    }

    /// A HAVING operand: a constant, a group key or an aggregate.
    fn operand(&mut self, e: &Expr) -> Result<Operand, MergeError> {
        if let Some(v) = literal(e) {
            return Ok(v);
        }
        if let Some(c) = self.key(e) {
            return Ok(Operand::Column(c));
        }
        match self.aggregate(e)? {
            Some(c) => Ok(Operand::Column(c)),
            None => Err(MergeError::Having(e.to_string())),
        }
    }
}

/// A constant: a number (optionally negated), a string, a boolean or NULL.
fn literal(e: &Expr) -> Option<Operand> {
    match strip_nested(e) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(Operand::Literal(n.clone())),
            Value::SingleQuotedString(s) => Some(Operand::Literal(s.clone())),
            Value::Boolean(b) => Some(Operand::Literal(if *b { "t" } else { "f" }.into())),
            Value::Null => Some(Operand::Null),
            _ => None,
        },
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Operand::Literal(n) if n.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
                Some(Operand::Literal(format!("-{n}")))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The merge of a grouped query (or of aggregates without GROUP BY, with
/// `group` empty) whose groups may span shards: shards sort their groups by
/// the keys, groups that meet combine, then HAVING and, when the ORDER BY
/// is not on the keys, an in-memory sort.
fn combined(
    query: &Query,
    s: &Select,
    group: &[Expr],
    limit: Option<Count>,
    offset: Option<Count>,
) -> Result<MergePlan, MergeError> {
    if s.distinct.is_some() {
        return unsupported("DISTINCT with GROUP BY");
    }
    if let Some(what) = window_function(query) {
        return Err(MergeError::Unsupported(format!(
            "window function {what} over groups"
        )));
    }
    let items = s.projection.as_slice();
    let mut cols = Columns {
        items,
        shard_items: items.to_vec(),
        combine: vec![None; items.len()],
        hidden: Vec::new(),
        group,
        keys: Vec::new(),
    };
    for e in group {
        let item = |i: usize| match items.get(i) {
            Some(SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. }) => Some(x),
            _ => None,
        };
        let col = match position(e) {
            Some(p) if item(p).is_some() => p,
            Some(_) => return Err(MergeError::Unsupported(format!("GROUP BY {e}"))),
            None => {
                let by_alias =
                    aliased(items, e).and_then(|a| items.iter().position(|i| std::ptr::eq(i, a)));
                match (0..items.len()).find(|&i| item(i) == Some(e)).or(by_alias) {
                    Some(i) => i,
                    None => cols.hide(e, e.clone(), None),
                }
            }
        };
        cols.keys.push(col);
    }
    for (i, item) in items.iter().enumerate() {
        if cols.keys.contains(&i) {
            continue;
        }
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
            _ => return unsupported("* in a grouped select list"),
        };
        match partial(expr)? {
            Some(Partial::Combine(c)) => cols.combine[i] = Some(c),
            Some(Partial::Avg(f)) => {
                let count = cols.hide(
                    &renamed(&f, "count"),
                    renamed(&f, "count"),
                    Some(Combine::Sum),
                );
                cols.shard_items[i] = SelectItem::ExprWithAlias {
                    expr: renamed(&f, "sum"),
                    alias: alias.cloned().unwrap_or_else(|| Ident::new("avg")),
                };
                cols.combine[i] = Some(Combine::Avg { count });
            }
            None if group.is_empty() => {
                return Err(MergeError::Unsupported(format!(
                    "{expr} next to aggregates"
                )))
            }
            None => {
                return Err(MergeError::Unsupported(format!(
                    "{expr} in a grouped select list"
                )))
            }
        }
    }
    let having = match &s.having {
        Some(h) => Some(cols.predicate(h)?),
        None => None,
    };
    // The client's ORDER BY: on keys only, the shards' order serves (the
    // keys not named follow); otherwise groups are sorted after combining.
    let mut wanted = Vec::new();
    let mut on_keys = true;
    for (e, descending, nulls_first) in order_keys(query)? {
        let col = match output_column(items, e).or_else(|| position(e).map(SortColumn::Visible)) {
            Some(SortColumn::Visible(i)) if i < items.len() => i,
            _ => match cols.key(e) {
                Some(c) => c,
                None => match cols.aggregate(e)? {
                    Some(c) => c,
                    None => {
                        return Err(MergeError::Unsupported(format!(
                            "ORDER BY {e}, which is neither a group key nor an aggregate,"
                        )))
                    }
                },
            },
        };
        on_keys &= cols.combine.get(col).is_some_and(Option::is_none);
        wanted.push(SortKey {
            column: column_at(col, items.len()),
            descending,
            nulls_first,
        });
    }
    let resort = !on_keys;
    let mut order = if resort { Vec::new() } else { wanted.clone() };
    let mut extra = Vec::new();
    for &k in &cols.keys {
        let column = column_at(k, items.len());
        if !order.iter().any(|o| o.column == column) {
            order.push(SortKey {
                column,
                descending: false,
                nulls_first: false,
            });
            extra.push(k + 1);
        }
    }
    let hidden = cols.hidden.len();
    let mut shard = query.clone();
    if let SetExpr::Select(sel) = shard.body.as_mut() {
        sel.projection = std::mem::take(&mut cols.shard_items);
        sel.having = None;
    }
    let mut by: Vec<OrderByExpr> = match shard.order_by.take().map(|o| o.kind) {
        Some(OrderByKind::Expressions(e)) if !resort => e,
        _ => Vec::new(),
    };
    by.extend(extra.into_iter().map(by_position));
    shard.order_by = (!by.is_empty()).then_some(OrderBy {
        kind: OrderByKind::Expressions(by),
        interpolate: None,
    });
    // Shards may stop after limit + offset groups only when those are the
    // client's: in key order and not filtered by HAVING.
    let push_limit = !resort && having.is_none() && !group.is_empty();
    shard.fetch = None;
    shard.limit_clause = limit
        .filter(|_| push_limit)
        .map(|l| LimitClause::LimitOffset {
            limit: Some(shard_limit(l, offset)),
            offset: None,
            limit_by: Vec::new(),
        });
    Ok(MergePlan {
        shard_sql: Some(shard.to_string()),
        order,
        hidden,
        offset,
        limit,
        grouped: Some(Grouped {
            keys: cols.keys,
            combine: cols.combine,
            having,
            order: if resort { wanted } else { Vec::new() },
        }),
        ..MergePlan::concatenate()
    })
}

/// The sort column of shard-row column `col`.
fn column_at(col: usize, visible: usize) -> SortColumn {
    if col < visible {
        SortColumn::Visible(col)
    } else {
        SortColumn::Hidden(col - visible)
    }
}

/// `LIMIT`/`FETCH` and `OFFSET` of a query.
fn counts(query: &Query) -> Result<(Option<Count>, Option<Count>), MergeError> {
    let count = |e: &Expr, what: &str| -> Result<Option<Count>, MergeError> {
        match strip(e) {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n
                    .parse::<u64>()
                    .map(|n| Some(Count::Literal(n)))
                    .map_err(|_| MergeError::Unsupported(format!("{what} {n}"))),
                Value::Null => Ok(None),
                Value::Placeholder(p) => p
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .map(|n| Some(Count::Param(n)))
                    .ok_or_else(|| MergeError::Unsupported(format!("{what} {p}"))),
                _ => Err(MergeError::Unsupported(format!("{what} {e}"))),
            },
            _ => Err(MergeError::Unsupported(format!("{what} {e}"))),
        }
    };
    let (mut limit, mut offset) = (None, None);
    match &query.limit_clause {
        None => {}
        Some(LimitClause::LimitOffset {
            limit: l,
            offset: o,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(MergeError::Unsupported("LIMIT BY".into()));
            }
            if let Some(l) = l {
                limit = count(l, "LIMIT")?;
            }
            if let Some(Offset { value, .. }) = o {
                offset = count(value, "OFFSET")?;
            }
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => {
            return Err(MergeError::Unsupported("LIMIT offset, count".into()))
        }
    }
    if let Some(Fetch {
        quantity: Some(q), ..
    }) = &query.fetch
    {
        limit = count(q, "FETCH FIRST")?;
    } else if query.fetch.is_some() {
        limit = Some(Count::Literal(1));
    }
    Ok((limit, offset))
}

/// What each shard's LIMIT must be: enough rows for the offset and the limit.
fn shard_limit(limit: Count, offset: Option<Count>) -> Expr {
    let expr = |c: Count| match c {
        Count::Literal(n) => Expr::value(Value::Number(n.to_string(), false)),
        Count::Param(n) => Expr::value(Value::Placeholder(format!("${n}"))),
    };
    match (limit, offset) {
        (l, None) => expr(l),
        (Count::Literal(l), Some(Count::Literal(o))) => expr(Count::Literal(l.saturating_add(o))),
        (l, Some(o)) => {
            // typed, or a server cannot resolve `unknown + unknown`
            let bigint = |c: Count| match c {
                Count::Param(_) => Expr::Cast {
                    kind: sqlparser::ast::CastKind::DoubleColon,
                    expr: Box::new(expr(c)),
                    data_type: sqlparser::ast::DataType::BigInt(None),
                    format: None,
                },
                _ => expr(c),
            };
            Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(bigint(l)),
                op: sqlparser::ast::BinaryOperator::Plus,
                right: Box::new(bigint(o)),
            }))
        }
    }
}

/// `ORDER BY 2`: the 0-based output position.
pub(crate) fn position(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok()?.checked_sub(1),
            _ => None,
        },
        _ => None,
    }
}

/// The projection of the leftmost SELECT of a set operation.
fn leftmost(body: &SetExpr) -> Option<&[SelectItem]> {
    match body {
        SetExpr::Select(s) => Some(&s.projection),
        SetExpr::SetOperation { left, .. } => leftmost(left),
        _ => None,
    }
}

/// The output column an ORDER BY expression names: a bare name equal to an
/// item's alias or column name, or an expression equal to an item's. After
/// a wildcard positions are unknown: a name is then resolved at run time,
/// an expression not at all.
fn output_column(items: &[SelectItem], e: &Expr) -> Option<SortColumn> {
    let name = match e {
        Expr::Identifier(i) => Some(folded(i)),
        _ => None,
    };
    let mut after_wildcard = false;
    for (i, item) in items.iter().enumerate() {
        let matches = match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                after_wildcard = true;
                false
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                name.as_deref() == Some(folded(alias).as_str()) || expr == e
            }
            SelectItem::UnnamedExpr(expr) => {
                expr == e
                    || match (expr, &name) {
                        (Expr::Identifier(c), Some(n)) => folded(c) == *n,
                        (Expr::CompoundIdentifier(parts), Some(n)) => {
                            parts.last().is_some_and(|c| folded(c) == *n)
                        }
                        _ => false,
                    }
            }
            _ => false,
        };
        if matches {
            return match (after_wildcard, name) {
                (false, _) => Some(SortColumn::Visible(i)),
                (true, Some(n)) => Some(SortColumn::Named(n)),
                (true, None) => None,
            };
        }
    }
    None
}

/// `cN` for a visible column, `hidden N` for an appended one.
fn column_name(c: &SortColumn) -> String {
    match c {
        SortColumn::Visible(i) => format!("c{}", i + 1),
        SortColumn::Hidden(i) => format!("hidden {i}"),
        SortColumn::Named(n) => format!("column {n:?}"),
    }
}

/// `c1 DESC NULLS FIRST, hidden 0 ASC NULLS LAST`.
fn sort_keys(keys: &[SortKey]) -> String {
    keys.iter()
        .map(|k| {
            format!(
                "{} {} NULLS {}",
                column_name(&k.column),
                if k.descending { "DESC" } else { "ASC" },
                if k.nulls_first { "FIRST" } else { "LAST" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Combine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Combine::Sum => f.write_str("sum"),
            Combine::Min => f.write_str("min"),
            Combine::Max => f.write_str("max"),
            Combine::And => f.write_str("and"),
            Combine::Or => f.write_str("or"),
            Combine::Avg { count } => write!(f, "avg (counts in column {})", count + 1),
        }
    }
}

impl Predicate {
    /// Writes the condition with column names relative to `visible`.
    fn show(&self, visible: usize) -> String {
        let op = |o: &Operand| match o {
            Operand::Column(c) => column_name(&column_at(*c, visible)),
            Operand::Literal(v) => format!("'{}'", v.replace('\'', "''")),
            Operand::Null => "NULL".to_string(),
        };
        match self {
            Predicate::And(a, b) => format!("({} AND {})", a.show(visible), b.show(visible)),
            Predicate::Or(a, b) => format!("({} OR {})", a.show(visible), b.show(visible)),
            Predicate::Not(a) => format!("NOT {}", a.show(visible)),
            Predicate::Compare(l, c, r) => {
                let c = match c {
                    CompareOp::Eq => "=",
                    CompareOp::NotEq => "<>",
                    CompareOp::Lt => "<",
                    CompareOp::LtEq => "<=",
                    CompareOp::Gt => ">",
                    CompareOp::GtEq => ">=",
                };
                format!("{} {c} {}", op(l), op(r))
            }
            Predicate::IsNull(o, false) => format!("{} IS NULL", op(o)),
            Predicate::IsNull(o, true) => format!("{} IS NOT NULL", op(o)),
            Predicate::Truth(o) => op(o),
        }
    }
}

/// `order c1 DESC NULLS LAST, hidden 0 ASC …; offset 5; limit $1`.
impl fmt::Display for MergePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.order.is_empty() {
            parts.push(format!("order {}", sort_keys(&self.order)));
        }
        let count = |c: &Count| match c {
            Count::Literal(n) => n.to_string(),
            Count::Param(n) => format!("${n}"),
        };
        if let Some(o) = &self.offset {
            parts.push(format!("offset {}", count(o)));
        }
        if let Some(l) = &self.limit {
            parts.push(format!("limit {}", count(l)));
        }
        if !self.aggregates.is_empty() {
            let names: Vec<String> = self.aggregates.iter().map(Combine::to_string).collect();
            parts.push(format!("combine {}", names.join(", ")));
        }
        if self.groups_per_shard {
            parts.push("groups complete on each shard".into());
        }
        if let Some(g) = &self.grouped {
            let visible = g.combine.len().saturating_sub(self.hidden);
            let name = |i: usize| column_name(&column_at(i, visible));
            if g.keys.is_empty() {
                parts.push("one group".into());
            } else {
                let keys: Vec<String> = g.keys.iter().map(|&i| name(i)).collect();
                parts.push(format!("group by {}", keys.join(", ")));
            }
            for (i, c) in g.combine.iter().enumerate() {
                if let Some(Combine::Avg { count }) = c {
                    parts.push(format!(
                        "{} = avg of sums / counts in {}",
                        name(i),
                        name(*count)
                    ));
                }
            }
            if let Some(h) = &g.having {
                parts.push(format!("having {}", h.show(visible)));
            }
            if !g.order.is_empty() {
                parts.push(format!("then sort {}", sort_keys(&g.order)));
            }
        }
        match &self.distinct {
            Some(Dedupe::All) => parts.push("distinct".into()),
            Some(Dedupe::On(cols)) => {
                let cols: Vec<String> = cols.iter().map(column_name).collect();
                parts.push(format!("distinct on {}", cols.join(", ")));
            }
            None => {}
        }
        if parts.is_empty() {
            parts.push("concatenate".into());
        }
        f.write_str(&parts.join("; "))?;
        if let Some(sql) = &self.shard_sql {
            write!(f, "; shards run: {sql}")?;
        }
        if let Some(p) = &self.shard_params {
            let given: Vec<String> = p.iter().map(|i| format!("${}", i + 1)).collect();
            if given.is_empty() {
                f.write_str(" with no parameters")?;
            } else {
                write!(f, " with {}", given.join(", "))?;
            }
        }
        Ok(())
    }
}

impl Count {
    /// The value, with `$n` taken from `params` (text, or a binary
    /// int2/int4/int8); `None`: NULL or unreadable, that is no limit.
    pub fn resolve(self, params: &[crate::route::Param<'_>]) -> Option<u64> {
        match self {
            Count::Literal(n) => Some(n),
            Count::Param(n) => {
                let p = params.get(n.checked_sub(1)?)?;
                let v = p.value?;
                if p.binary {
                    let n = match v.len() {
                        2 => i64::from(i16::from_be_bytes(v.try_into().ok()?)),
                        4 => i64::from(i32::from_be_bytes(v.try_into().ok()?)),
                        8 => i64::from_be_bytes(v.try_into().ok()?),
                        _ => return None,
                    };
                    return u64::try_from(n).ok();
                }
                std::str::from_utf8(v).ok()?.trim().parse().ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_resolve_from_literals_and_text_parameters() {
        let text = |value| crate::route::Param {
            value,
            binary: false,
        };
        let params = [
            text(Some(b"10")),
            text(None),
            text(Some(b"x")),
            crate::route::Param {
                value: Some(&5i64.to_be_bytes()),
                binary: true,
            },
        ];
        assert_eq!(Count::Literal(7).resolve(&params), Some(7));
        assert_eq!(Count::Param(1).resolve(&params), Some(10));
        assert_eq!(Count::Param(2).resolve(&params), None, "NULL: no limit");
        assert_eq!(Count::Param(3).resolve(&params), None);
        assert_eq!(Count::Param(4).resolve(&params), Some(5), "binary int8");
        assert_eq!(Count::Param(5).resolve(&params), None);
        assert_eq!(Count::Param(0).resolve(&params), None);
    }
}
