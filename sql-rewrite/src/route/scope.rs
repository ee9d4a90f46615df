//! Walking a parsed statement for the tables it names: each occurrence of a
//! table with the SELECT it belongs to, its alias, how deep it is nested, and
//! which sharding-key values its scope's WHERE allows.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Join, JoinConstraint, JoinOperator, ObjectName, Query, Select, SetExpr,
    Statement, TableFactor, TableWithJoins, Visit, Visitor,
};

use crate::keys::{folded, key_set, object_names, KeySet};

/// How a table name is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Sharded by key (hash, range, list, time).
    Sharded,
    /// A copy on every shard.
    Broadcast,
    /// A catalog relation (`pg_*`, `pg_catalog.*`, `information_schema.*`): on every shard.
    Catalog,
    /// Not in the shard map: on the default shard only.
    Unsharded,
    /// One interval table of a time table (`orders_2026_11`): on one shard.
    Interval {
        /// The logical time table.
        logical: String,
        /// Its shard.
        shard: usize,
    },
}

/// One table named in a FROM / JOIN / UPDATE / DELETE.
#[derive(Debug, Clone)]
pub struct Occurrence {
    /// The table's name (last part, folded).
    pub table: String,
    /// The names it is known by in its scope: name, dotted name, alias.
    pub names: Vec<String>,
    /// Index into [`Walk::selects`] of its SELECT, or `None` for the target
    /// of an UPDATE/DELETE.
    pub select: Option<usize>,
    /// Inside a subquery, CTE or derived table (not the statement's own level).
    pub nested: bool,
}

/// One SELECT (or UPDATE/DELETE) scope.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Its WHERE.
    pub selection: Option<Expr>,
    /// Occurrence indexes in its FROM.
    pub occurrences: Vec<usize>,
    /// Column pairs the scope's WHERE and JOIN … ON / USING equate:
    /// `((qualifier, column), (qualifier, column))`; qualifier `None` when unqualified.
    pub equalities: Vec<(ColumnRef, ColumnRef)>,
    /// A FROM item other than a table or a join with ON/USING (a derived
    /// table, a function, a cross join, NATURAL): key-less reads refuse it.
    pub nested_level: bool,
    /// The scope is a subquery, CTE or derived table.
    pub nested: bool,
    /// Outer joins: the occurrences whose every row the join keeps, and
    /// those of the other side (NULL-padded where they do not match).
    pub outer: Vec<(Vec<usize>, Vec<usize>)>,
    /// How the scope, a subquery in the statement's WHERE, is tied to the
    /// statement's rows (`IN (SELECT …)`, `EXISTS (…)`).
    pub link: Option<Link>,
    /// CTE references in its FROM, and (statement level only) derived tables.
    pub sources: Vec<Source>,
    /// For each entry of `outer`: the sources on each side.
    pub outer_sources: Vec<(Vec<usize>, Vec<usize>)>,
}

/// A CTE reference or a derived table in a FROM.
#[derive(Debug, Clone)]
pub struct Source {
    /// The names its columns are qualified by (alias, CTE name).
    pub names: Vec<String>,
    /// Column names given by the alias (`AS t(a, b)`).
    pub columns: Vec<String>,
    /// What it reads.
    pub kind: SourceKind,
}

/// What a [`Source`] is.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A statement-level derived table: its body's scope (`None` when the
    /// body is not a plain SELECT) and query.
    Derived(Option<usize>, Box<Query>),
    /// A reference to the CTE of this name.
    Cte(String),
}

/// A CTE of the statement's own WITH.
#[derive(Debug, Clone)]
pub struct CteDef {
    /// Its name, folded.
    pub name: String,
    /// Its column names (`x(a, b) AS …`).
    pub columns: Vec<String>,
    /// Its body's scope, when the body is a plain SELECT without WITH.
    pub body: Option<usize>,
    /// The query.
    pub query: Box<Query>,
    /// `WITH RECURSIVE`.
    pub recursive: bool,
}

/// A subquery that is a top-level AND conjunct of a statement-level WHERE.
#[derive(Debug, Clone)]
pub struct Link {
    /// Index into [`Walk::selects`] of the statement-level scope.
    pub outer: usize,
    /// What ties it to the outer rows.
    pub kind: LinkKind,
    /// The subquery.
    pub query: Box<Query>,
}

/// The form of a [`Link`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// `left IN (SELECT …)` or `left = ANY (SELECT …)`; `left` is `None`
    /// when it is not a column.
    In(Option<ColumnRef>),
    /// `left NOT IN (SELECT …)`.
    NotIn,
    /// `[NOT] EXISTS (SELECT …)`.
    Exists,
}

/// A column reference: optional qualifier and the column, both folded.
pub type ColumnRef = (Option<String>, String);

/// Everything the walk found.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// Table occurrences in FROM items and DML targets.
    pub occurrences: Vec<Occurrence>,
    /// SELECT scopes (index 0 is the DML target scope for UPDATE/DELETE).
    pub selects: Vec<Scope>,
    /// Every relation name mentioned anywhere (also DDL and INSERT targets), folded.
    pub relations: Vec<(String, Option<String>)>,
    /// CTE names, which shadow tables.
    pub ctes: BTreeSet<String>,
    /// The CTEs of a SELECT statement's own WITH.
    pub cte_defs: Vec<CteDef>,
}

/// Whose body a pending query is.
#[derive(Debug, Clone, Copy)]
enum BodyOf {
    /// Source `.1` of scope `.0`.
    Derived(usize, usize),
    /// [`Walk::cte_defs`] entry.
    Cte(usize),
}

struct Walker {
    walk: Walk,
    stack: Vec<usize>,
    query_depth: usize,
    /// Query depth of the statement's own level: 1 for a SELECT, 0 for DML
    /// (whose queries are all subqueries).
    base_depth: usize,
    /// Links of the statement's WHERE, by the address of their subquery.
    pending: Vec<(*const Query, Link)>,
    /// The link of the query being entered, for its body's scope.
    next_link: Option<Link>,
    /// Statement-level derived tables and CTEs, by the address of their query.
    bodies: Vec<(*const Query, BodyOf)>,
    /// The source the query being entered is the body of.
    next_body: Option<BodyOf>,
}

/// Walks `statement` for its table occurrences and scopes.
pub fn walk(statement: &Statement) -> Walk {
    let mut w = Walker {
        walk: Walk::default(),
        stack: Vec::new(),
        query_depth: 0,
        base_depth: usize::from(matches!(statement, Statement::Query(_))),
        pending: Vec::new(),
        next_link: None,
        bodies: Vec::new(),
        next_body: None,
    };
    match statement {
        Statement::Update(u) => {
            let scope = w.new_scope(u.selection.clone());
            w.stack.push(scope);
            w.links(u.selection.as_ref(), scope);
            w.factor_tree(&u.table, false);
            if let Some(
                sqlparser::ast::UpdateTableFromKind::BeforeSet(from)
                | sqlparser::ast::UpdateTableFromKind::AfterSet(from),
            ) = &u.from
            {
                for t in from {
                    w.factor_tree(t, false);
                }
            }
        }
        Statement::Delete(d) => {
            let scope = w.new_scope(d.selection.clone());
            w.stack.push(scope);
            w.links(d.selection.as_ref(), scope);
            let from = match &d.from {
                sqlparser::ast::FromTable::WithFromKeyword(f)
                | sqlparser::ast::FromTable::WithoutKeyword(f) => f,
            };
            for t in from {
                w.factor_tree(t, false);
            }
            for t in d.using.iter().flatten() {
                w.factor_tree(t, false);
            }
        }
        _ => {}
    }
    let _ = statement.visit(&mut w);
    let mut walk = w.walk;
    // CTE references are not tables.
    let ctes = walk.ctes.clone();
    let mut kept = 0;
    let moved: Vec<Option<usize>> = walk
        .occurrences
        .iter()
        .map(|o| {
            (!ctes.contains(&o.table)).then(|| {
                kept += 1;
                kept - 1
            })
        })
        .collect();
    walk.occurrences.retain(|o| !ctes.contains(&o.table));
    let remap = |v: &mut Vec<usize>| {
        *v = v
            .iter()
            .filter_map(|&i| moved.get(i).copied().flatten())
            .collect();
    };
    for s in &mut walk.selects {
        s.occurrences.clear();
        for (a, b) in &mut s.outer {
            remap(a);
            remap(b);
        }
    }
    for (i, o) in walk.occurrences.iter().enumerate() {
        if let Some(s) = o.select {
            walk.selects[s].occurrences.push(i);
        }
    }
    walk.relations
        .retain(|(n, schema)| schema.is_some() || !ctes.contains(n));
    walk
}

impl Walker {
    fn new_scope(&mut self, selection: Option<Expr>) -> usize {
        let mut scope = Scope {
            selection,
            ..Scope::default()
        };
        if let Some(e) = &scope.selection {
            equalities(e, &mut scope.equalities);
        }
        self.walk.selects.push(scope);
        self.walk.selects.len() - 1
    }

    /// Notes the subqueries among the top-level AND conjuncts of the WHERE
    /// of statement-level scope `outer`.
    fn links(&mut self, selection: Option<&Expr>, outer: usize) {
        let mut conjuncts = Vec::new();
        if let Some(e) = selection {
            and_conjuncts(e, &mut conjuncts);
        }
        for c in conjuncts {
            let (query, kind) = match c {
                Expr::InSubquery {
                    expr,
                    subquery,
                    negated,
                } => (
                    subquery,
                    if *negated {
                        LinkKind::NotIn
                    } else {
                        LinkKind::In(column(expr))
                    },
                ),
                Expr::AnyOp {
                    left,
                    compare_op: BinaryOperator::Eq,
                    right,
                    ..
                } => match crate::keys::strip(right) {
                    Expr::Subquery(q) => (q, LinkKind::In(column(left))),
                    _ => continue,
                },
                Expr::Exists { subquery, .. } => (subquery, LinkKind::Exists),
                _ => continue,
            };
            // Only a plain SELECT: its body is the next scope created.
            if query.with.is_some() || !matches!(query.body.as_ref(), SetExpr::Select(_)) {
                continue;
            }
            let ptr: *const Query = query.as_ref();
            self.pending.push((
                ptr,
                Link {
                    outer,
                    kind,
                    query: query.clone(),
                },
            ));
        }
    }

    /// Records the tables of one FROM item and its joins in the current scope.
    fn factor_tree(&mut self, t: &TableWithJoins, nested: bool) {
        let start = (self.walk.occurrences.len(), self.sources_len());
        self.factor(&t.relation, nested);
        for j in &t.joins {
            self.join(j, start, nested);
        }
    }

    /// The number of sources of the current scope.
    fn sources_len(&self) -> usize {
        self.stack
            .last()
            .map_or(0, |&s| self.walk.selects[s].sources.len())
    }

    /// A join of the FROM item's tables (and sources) from `start` on with `j`'s.
    fn join(&mut self, j: &Join, start: (usize, usize), nested: bool) {
        let mid = (self.walk.occurrences.len(), self.sources_len());
        self.factor(&j.relation, nested);
        let end = (self.walk.occurrences.len(), self.sources_len());
        let sides = |a: usize, b: usize, c: usize| -> (Vec<usize>, Vec<usize>) {
            ((a..b).collect(), (b..c).collect())
        };
        let pairs = |(left, right): (Vec<usize>, Vec<usize>)| match &j.join_operator {
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => vec![(left, right)],
            JoinOperator::Right(_) | JoinOperator::RightOuter(_) => vec![(right, left)],
            JoinOperator::FullOuter(_) => vec![(left.clone(), right.clone()), (right, left)],
            _ => Vec::new(),
        };
        let outer = pairs(sides(start.0, mid.0, end.0));
        let outer_sources = pairs(sides(start.1, mid.1, end.1));
        if let Some(&scope) = self.stack.last() {
            self.walk.selects[scope].outer.extend(outer);
            self.walk.selects[scope].outer_sources.extend(outer_sources);
        }
        let constraint = match &j.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::CrossJoin(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c)
            | JoinOperator::Semi(c)
            | JoinOperator::LeftSemi(c)
            | JoinOperator::RightSemi(c)
            | JoinOperator::Anti(c)
            | JoinOperator::LeftAnti(c)
            | JoinOperator::RightAnti(c) => Some(c),
            _ => None,
        };
        let Some(&scope) = self.stack.last() else {
            return;
        };
        let last_name = match &j.relation {
            TableFactor::Table { name, alias, .. } => Some(
                alias
                    .as_ref()
                    .map(|a| folded(&a.name))
                    .unwrap_or_else(|| object_names(name).first().cloned().unwrap_or_default()),
            ),
            _ => None,
        };
        match constraint {
            Some(JoinConstraint::On(e)) => {
                equalities(e, &mut self.walk.selects[scope].equalities);
            }
            Some(JoinConstraint::Using(cols)) => {
                for c in cols {
                    if let Some(col) = object_names(c).first() {
                        // USING (c): c of the new table equals c of the tables before it.
                        self.walk.selects[scope]
                            .equalities
                            .push(((None, col.clone()), (last_name.clone(), col.clone())));
                    }
                }
            }
            _ => {}
        }
        // Outer joins are correct per shard when joined on the key, which the
        // caller checks as for inner joins; the rest cannot be checked.
        if !matches!(
            constraint,
            Some(JoinConstraint::On(_) | JoinConstraint::Using(_))
        ) {
            self.walk.selects[scope].nested_level = true;
        }
    }

    fn factor(&mut self, f: &TableFactor, nested: bool) {
        let Some(&scope) = self.stack.last() else {
            return;
        };
        match f {
            TableFactor::Table { args: Some(_), .. } => {
                // a set-returning function, not a table
                self.walk.selects[scope].nested_level = true;
            }
            TableFactor::Table { name, alias, .. } => {
                let mut names = object_names(name);
                let Some(table) = names.first().cloned() else {
                    return;
                };
                if let Some(a) = alias {
                    names.push(folded(&a.name));
                }
                if name.0.len() == 1 && self.walk.ctes.contains(&table) {
                    let columns = alias
                        .iter()
                        .flat_map(|a| a.columns.iter().map(|c| folded(&c.name)))
                        .collect();
                    self.walk.selects[scope].sources.push(Source {
                        names: names.clone(),
                        columns,
                        kind: SourceKind::Cte(table.clone()),
                    });
                }
                self.walk.occurrences.push(Occurrence {
                    table,
                    names,
                    select: Some(scope),
                    nested,
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.factor_tree(table_with_joins, nested),
            TableFactor::Derived {
                lateral: false,
                subquery,
                alias: Some(alias),
                ..
            } if !nested && self.base_depth == 1 => {
                // Checked by the route as a source of sharded rows.
                let plain =
                    subquery.with.is_none() && matches!(subquery.body.as_ref(), SetExpr::Select(_));
                let sources = &mut self.walk.selects[scope].sources;
                if plain {
                    let ptr: *const Query = subquery.as_ref();
                    self.bodies
                        .push((ptr, BodyOf::Derived(scope, sources.len())));
                }
                sources.push(Source {
                    names: vec![folded(&alias.name)],
                    columns: alias.columns.iter().map(|c| folded(&c.name)).collect(),
                    kind: SourceKind::Derived(None, subquery.clone()),
                });
            }
            _ => self.walk.selects[scope].nested_level = true,
        }
    }
}

impl Visitor for Walker {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        self.query_depth += 1;
        let ptr: *const Query = q;
        if let Some(pos) = self.pending.iter().position(|(p, _)| std::ptr::eq(*p, ptr)) {
            self.next_link = Some(self.pending.swap_remove(pos).1);
        }
        if let Some(pos) = self.bodies.iter().position(|(p, _)| std::ptr::eq(*p, ptr)) {
            self.next_body = Some(self.bodies.swap_remove(pos).1);
        }
        if let Some(with) = &q.with {
            let statement_level = self.query_depth == 1 && self.base_depth == 1;
            for cte in &with.cte_tables {
                let name = folded(&cte.alias.name);
                self.walk.ctes.insert(name.clone());
                if statement_level {
                    let plain = cte.query.with.is_none()
                        && matches!(cte.query.body.as_ref(), SetExpr::Select(_));
                    if plain {
                        let ptr: *const Query = cte.query.as_ref();
                        self.bodies
                            .push((ptr, BodyOf::Cte(self.walk.cte_defs.len())));
                    }
                    self.walk.cte_defs.push(CteDef {
                        name,
                        columns: cte.alias.columns.iter().map(|c| folded(&c.name)).collect(),
                        body: None,
                        query: cte.query.clone(),
                        recursive: with.recursive,
                    });
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.query_depth = self.query_depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        let scope = self.new_scope(s.selection.clone());
        self.stack.push(scope);
        // A SELECT is at the statement's own level when it is in the outermost query.
        let nested = self.query_depth > self.base_depth;
        self.walk.selects[scope].nested = nested;
        self.walk.selects[scope].link = self.next_link.take();
        match self.next_body.take() {
            Some(BodyOf::Derived(outer, i)) => {
                if let Some(Source {
                    kind: SourceKind::Derived(body, _),
                    ..
                }) = self.walk.selects[outer].sources.get_mut(i)
                {
                    *body = Some(scope);
                }
            }
            Some(BodyOf::Cte(i)) => {
                if let Some(def) = self.walk.cte_defs.get_mut(i) {
                    def.body = Some(scope);
                }
            }
            None => {}
        }
        if !nested {
            self.links(s.selection.as_ref(), scope);
        }
        for t in &s.from {
            self.factor_tree(t, nested);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _s: &Select) -> ControlFlow<()> {
        self.stack.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        let names = object_names(r);
        if let Some(last) = names.first() {
            let schema = names.get(1).and_then(|full| {
                full.rsplit_once('.')
                    .map(|(s, _)| s.rsplit('.').next().unwrap_or(s).to_string())
            });
            self.walk.relations.push((last.clone(), schema));
        }
        ControlFlow::Continue(())
    }
}

/// The top-level AND conjuncts of `e`, parentheses removed.
fn and_conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Nested(inner) => and_conjuncts(inner, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            and_conjuncts(left, out);
            and_conjuncts(right, out);
        }
        _ => out.push(e),
    }
}

/// Collects `a.x = b.y` column equalities from the AND-conjuncts of `e`.
pub(crate) fn equalities(e: &Expr, out: &mut Vec<(ColumnRef, ColumnRef)>) {
    match e {
        Expr::Nested(inner) => equalities(inner, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            equalities(left, out);
            equalities(right, out);
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            if let (Some(a), Some(b)) = (column(left), column(right)) {
                out.push((a, b));
            }
        }
        _ => {}
    }
}

/// A column reference, casts and parentheses stripped.
pub fn column(e: &Expr) -> Option<ColumnRef> {
    match crate::keys::strip(e) {
        Expr::Identifier(i) => Some((None, folded(i))),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let (col, qual) = parts.split_last()?;
            Some((Some(folded(qual.last()?)), folded(col)))
        }
        _ => None,
    }
}

/// The key set of `occurrence` from its scope's WHERE.
pub fn occurrence_keys(walk: &Walk, i: usize, key: &str) -> KeySet {
    let o = &walk.occurrences[i];
    let scope_index = match o.select {
        Some(s) => s,
        None => return KeySet::All,
    };
    let scope = &walk.selects[scope_index];
    let Some(selection) = &scope.selection else {
        return KeySet::All;
    };
    let names: Vec<&str> = o.names.iter().map(String::as_str).collect();
    key_set(selection, key, &names, scope.occurrences.len() == 1)
}

/// Relations sqlparser's visitor does not report: DROP's names and COPY's table.
pub fn unvisited_relations(statement: &Statement, out: &mut Vec<(String, Option<String>)>) {
    let names: Vec<&ObjectName> = match statement {
        Statement::Drop { names, .. } => names.iter().collect(),
        Statement::Copy {
            source: sqlparser::ast::CopySource::Table { table_name, .. },
            ..
        } => vec![table_name],
        _ => Vec::new(),
    };
    for n in names {
        let all = object_names(n);
        if let Some(last) = all.first() {
            let schema = all
                .get(1)
                .and_then(|full| full.rsplit_once('.').map(|(s, _)| s.to_string()));
            if !out.iter().any(|(l, _)| l == last) {
                out.push((last.clone(), schema));
            }
        }
    }
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
