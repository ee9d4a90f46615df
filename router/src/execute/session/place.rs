//! Where a group of the client's request runs: the proxy itself
//! (transaction control, SHOW ROUTE, refusals), one shard's primary or
//! replica, or several shards; and the transaction's participants, each
//! joining on first use.

use std::sync::Arc;

use bytes::BytesMut;
use sql_rewrite::route::Route;
use sql_rewrite::{classify, split_statements, Classification, Target};

use super::{End, Session};
use crate::execute::request::{Anchor, Ending, Group};
use crate::execute::slot::Statement;
use crate::execute::transaction::{control, Mode, ABORTED};
use crate::protocol::messages::{self, Bind, Parse};
use crate::protocol::Frame;
use crate::protocol::SqlState;

/// Where one statement goes.
pub(super) enum Dest {
    /// One shard (`sql`: rewritten for it, simple protocol; `rebind`: the
    /// Parse+Bind that replace the client's Bind, extended protocol).
    Shard {
        shard: usize,
        sql: Option<String>,
        rebind: Option<bytes::Bytes>,
    },
    /// No sharded table: where the transaction is, else the default shard.
    Default,
    /// Several shards.
    Many(Box<Route>),
    /// Refused by the planner.
    Refused(sql_rewrite::route::Refusal),
}

/// A plain statement's place: one shard.
pub(super) struct Plain {
    pub(super) shard: usize,
    pub(super) rebind: Option<(usize, bytes::Bytes)>,
    pub(super) target: Target,
    pub(super) writes: bool,
}

/// `true` for a text of exactly one statement.
fn single_statement(sql: &str) -> bool {
    // the common case without a `;` inside needs no lexing
    !sql.trim_end().trim_end_matches(';').contains(';') || split_statements(sql).len() <= 1
}

/// Whether `sql` starts (after spaces and comments) with a keyword of the
/// statements the session runs itself: PREPARE, EXECUTE, DEALLOCATE,
/// DECLARE, FETCH, MOVE, CLOSE, COPY. Cheap, so that the parsers run only
/// for these.
fn maybe_special(sql: &str) -> bool {
    let mut t = sql.trim_start();
    while let Some(rest) = t.strip_prefix("/*").or_else(|| t.strip_prefix("--")) {
        let end = if t.starts_with("/*") {
            rest.find("*/").map(|i| i + 2)
        } else {
            rest.find('\n')
        };
        t = match end {
            Some(i) => rest[i..].trim_start(),
            None => return false,
        };
    }
    let word: String = t
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .take(10)
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(
        word.as_str(),
        "PREPARE" | "EXECUTE" | "DEALLOCATE" | "DECLARE" | "FETCH" | "MOVE" | "CLOSE" | "COPY"
    )
}

/// The SQL after `SHOW ROUTE`, if that is the statement.
pub(super) fn show_route(sql: &str) -> Option<&str> {
    let t = sql.trim_start();
    let head = t.get(..10)?;
    if !head.eq_ignore_ascii_case("show route") {
        return None;
    }
    let rest = t.get(10..)?;
    rest.starts_with(char::is_whitespace)
        .then(|| rest.trim().trim_end_matches(';').trim())
}

/// Whether a statement may change data (a second such shard in one
/// transaction is refused). DDL is mirrored and does not count.
pub(super) fn writes(class: &Classification) -> bool {
    class.target == Target::Primary
        && matches!(
            class.reason,
            "write"
                | "writing function"
                | "select into"
                | "data-modifying CTE"
                | "explain analyze"
                | "unparseable"
                | "too deeply nested"
        )
}

impl Session {
    /// Decides, before a request runs, whether it is an implicit
    /// transaction of the proxy's: several statements (or a Flush) that
    /// may write outside a transaction.
    pub(super) fn plan_implicit(&mut self, groups: &[Group], ending: Ending) -> Result<(), End> {
        if self.txn.mode() != Mode::Idle || !self.ctx.routing.sharded {
            return Ok(());
        }
        let executing = groups.iter().filter(|g| g.executes()).count();
        if executing == 0 || (executing == 1 && ending.ends_batch()) {
            // one statement: its server's own transaction (or the scatter's) covers it
            return Ok(());
        }
        let mut may_write = false;
        for g in groups {
            match self.group_class(g)? {
                Some((sql, class)) => {
                    if control(&sql, &class).is_some() {
                        return Ok(()); // the client's own transaction takes over
                    }
                    may_write |= writes(&class) || class.reason == "ddl";
                }
                None => may_write |= g.executes(),
            }
        }
        let open_ended = !ending.ends_batch();
        if !open_ended && self.one_shard(groups)? {
            return Ok(()); // the server's own implicit transaction does it
        }
        if may_write && (executing > 1 || open_ended) {
            self.txn.begin_implicit();
        }
        Ok(())
    }

    /// Where a group goes when it is a plain prepared statement on one
    /// shard (not transaction control, PREPARE, a cursor or a COPY).
    pub(super) fn plain_shard(&self, g: &Group) -> Result<Option<Plain>, End> {
        let Anchor::Bind(at) = g.anchor else {
            return Ok(None);
        };
        let bind = &g.frames[at];
        let Some(stmt) = self.group_statement(g, Bind::read(bind)?.statement)? else {
            return Ok(None);
        };
        let sql = Parse::read(&stmt.parse)?.query;
        if control(sql, &stmt.class).is_some() || maybe_special(sql) {
            return Ok(None);
        }
        let (shard, rebind) = match self.bind_dest(bind, &stmt)? {
            None => (
                self.txn
                    .first_shard()
                    .unwrap_or(self.ctx.routing.default_shard()),
                None,
            ),
            Some(Dest::Shard { shard, rebind, .. }) => (shard, rebind.map(|r| (at, r))),
            Some(_) => return Ok(None),
        };
        Ok(Some(Plain {
            shard,
            rebind,
            target: self.effective(stmt.class.target),
            writes: writes(&stmt.class),
        }))
    }

    /// Every executing group is a plain statement on the same shard.
    fn one_shard(&self, groups: &[Group]) -> Result<bool, End> {
        let mut shard = None;
        for g in groups.iter().filter(|g| g.executes()) {
            match self.plain_shard(g)? {
                Some(p) if shard.is_none_or(|s| s == p.shard) => shard = Some(p.shard),
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The text and classification of a group's statement, if known.
    fn group_class(&self, g: &Group) -> Result<Option<(String, Classification)>, End> {
        let wf = &self.ctx.config.proxy.write_functions;
        match &g.anchor {
            Anchor::Query => {
                // several statements: the most demanding decides
                let sql = messages::query_text(&g.frames[0])?;
                Ok(Some((sql.to_string(), classify(sql, wf))))
            }
            Anchor::Bind(i) => {
                let b = Bind::read(&g.frames[*i])?;
                Ok(self.group_statement(g, b.statement)?.map(|s| {
                    let sql = Parse::read(&s.parse)
                        .map(|p| p.query.to_string())
                        .unwrap_or_default();
                    (sql, s.class.clone())
                }))
            }
            _ => Ok(None),
        }
    }

    /// The statement `name` as the group will see it: its own newest Parse
    /// of that name, else the client's registry.
    pub(super) fn group_statement(
        &self,
        g: &Group,
        name: &[u8],
    ) -> Result<Option<Arc<Statement>>, End> {
        let upto = match g.anchor {
            Anchor::Bind(i) => i,
            _ => g.frames.len(),
        };
        for f in g.frames[..upto].iter().rev() {
            if f.tag == b'P' && Parse::read(f)?.name == name {
                return Ok(Some(self.statement(f)?));
            }
        }
        Ok(self.statements.get(name).cloned())
    }

    /// Starts one group of the running request.
    pub(super) async fn start_group(&mut self, g: Group) -> Result<(), End> {
        if self.txn_lost {
            self.txn_lost = false;
            self.fail_request(
                SqlState::CONNECTION_FAILURE,
                "server connection lost: the open transaction was rolled back",
            );
            return Ok(());
        }
        match g.anchor.clone() {
            Anchor::Query => self.start_query(g).await,
            Anchor::Bind(i) => self.start_bind(g, i).await,
            Anchor::FunctionCall => {
                if self.refuse_if_aborted() {
                    return Ok(());
                }
                self.run_default(g, Target::Primary, true, None).await
            }
            Anchor::Portal(name) if self.suspended.contains_key(&name[..]) => {
                self.serve_held(&g, &name)
            }
            Anchor::Portal(name) if self.merged_cursor(&name).is_some() => {
                self.describe_merged_cursor(&g, &name)
            }
            Anchor::Portal(name) => {
                let id = match self.portals.get(&name[..]) {
                    Some(&id) if self.slots.get(id).is_some() => id,
                    _ => match self.anywhere().await {
                        Some(id) => id,
                        None => return Ok(()),
                    },
                };
                self.forward_group(id, g, None)
            }
            Anchor::Nothing => match self.anywhere().await {
                Some(id) => self.forward_group(id, g, None),
                None => Ok(()),
            },
        }
    }

    /// Executes, describes or closes a portal whose merged rows the proxy
    /// holds (a cross-shard result read with a row limit).
    fn serve_held(&mut self, g: &Group, portal: &[u8]) -> Result<(), End> {
        if self.refuse_if_aborted() {
            return Ok(());
        }
        for f in &g.frames {
            let Some(held) = self.suspended.get_mut(portal) else {
                break;
            };
            match f.tag {
                b'E' => {
                    let (_, n) = messages::execute_parts(f)?;
                    if held.serve(n, &mut self.cout) {
                        self.suspended.remove(portal);
                    }
                }
                b'D' => match &held.description {
                    Some(t) => self.cout.extend_from_slice(t),
                    None => messages::raw(&mut self.cout, b'n', b""),
                },
                b'C' => {
                    self.suspended.remove(portal);
                    messages::raw(&mut self.cout, b'3', b"");
                }
                _ => {
                    self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, "only Execute, Describe and Close may follow a cross-shard portal read with a row limit in the same request");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// A statement other than ROLLBACK in an aborted transaction gets 25P02.
    pub(super) fn refuse_if_aborted(&mut self) -> bool {
        if self.txn.failed() {
            self.fail_request(SqlState::IN_FAILED_SQL_TRANSACTION, ABORTED);
            return true;
        }
        false
    }

    /// A simple Query: SHOW ROUTE, transaction control, several statements,
    /// or one statement routed by its plan.
    async fn start_query(&mut self, g: Group) -> Result<(), End> {
        let f = g.frames[0].clone();
        let sql = messages::query_text(&f)?.to_string();
        if let Some(inner) = show_route(&sql) {
            self.show_route(inner);
            return Ok(());
        }
        let sharded = self.ctx.routing.sharded;
        if sharded && self.special(&g, &sql).await? {
            return Ok(());
        }
        if sharded && !single_statement(&sql) && self.split_query(&sql)? {
            return Ok(());
        }
        let wf = self.ctx.config.proxy.write_functions.clone();
        let (plan, class) = if sharded {
            let (p, c) = self.ctx.routing.plan_uncached(&sql, &wf);
            (Some(p), c)
        } else {
            (None, classify(&sql, &wf))
        };
        if let Some(c) = control(&sql, &class) {
            return self.run_control(c, &sql, None).await;
        }
        self.ddl_seen |= class.reason == "ddl";
        if self.refuse_if_aborted() {
            return Ok(());
        }
        let target = self.effective(class.target);
        let dest = match plan {
            Some(plan) if !plan.is_default() => {
                let route = self.ctx.routing.bind(&plan, &[]);
                match route {
                    Err(r) => Dest::Refused(r),
                    Ok(route) if route.shards.len() > 1 || route.mirror => {
                        Dest::Many(Box::new(route))
                    }
                    Ok(mut route) => match route.shards.pop() {
                        Some(s) => Dest::Shard {
                            shard: s.shard,
                            sql: s.sql,
                            rebind: None,
                        },
                        None => Dest::Refused(no_shard()),
                    },
                }
            }
            _ => Dest::Default,
        };
        let mut g = g;
        match dest {
            Dest::Refused(r) => {
                self.refuse(&r);
                Ok(())
            }
            Dest::Many(route) => self.scatter(&f, *route, target, &class).await,
            Dest::Default => {
                self.run_default(g, target, writes(&class), Some(class))
                    .await
            }
            Dest::Shard { shard, sql, .. } => {
                if let Some(sql) = sql {
                    let mut b = BytesMut::new();
                    messages::query(&mut b, &sql);
                    g.frames[0] = Frame {
                        tag: b'Q',
                        bytes: b.freeze(),
                    };
                }
                let Some(id) = self.place(shard, target, writes(&class)).await else {
                    return Ok(());
                };
                self.forward_query(id, g, class)
            }
        }
    }

    /// A Query of several statements that do not all run in one place:
    /// replaced by one group per statement. `false`: it runs whole.
    fn split_query(&mut self, sql: &str) -> Result<bool, End> {
        let parts = split_statements(sql);
        let wf = self.ctx.config.proxy.write_functions.clone();
        let mut shard = None;
        let mut whole = true;
        let mut may_write = false;
        for p in &parts {
            let (plan, class) = self.ctx.routing.plan_uncached(p, &wf);
            may_write |= writes(&class) || class.reason == "ddl";
            if control(p, &class).is_some() || show_route(p).is_some() {
                whole = false;
                continue;
            }
            if plan.is_default() {
                continue;
            }
            let route = self.ctx.routing.bind(&plan, &[]);
            match route {
                Ok(r) if r.shards.len() == 1 && !r.mirror && r.shards[0].sql.is_none() => {
                    let s = r.shards[0].shard;
                    if shard.is_some_and(|x| x != s) {
                        whole = false;
                    }
                    shard = Some(s);
                }
                _ => whole = false,
            }
        }
        if whole && shard.is_none_or(|s| self.txn.first_shard().is_none_or(|t| t == s)) {
            return Ok(false);
        }
        let groups: Vec<Group> = parts
            .iter()
            .map(|p| {
                let mut b = BytesMut::new();
                messages::query(&mut b, p);
                let f = Frame {
                    tag: b'Q',
                    bytes: b.freeze(),
                };
                Group::query(f)
            })
            .collect();
        if may_write && self.txn.mode() == Mode::Idle {
            self.txn.begin_implicit();
        }
        if let Some(run) = self.run.as_mut() {
            for g in groups.into_iter().rev() {
                run.groups.push_front(g);
            }
        }
        Ok(true)
    }

    /// Runs the statements the session handles itself (SQL PREPARE and
    /// EXECUTE, cursors, COPY of mapped tables), in either protocol;
    /// `false`: `sql` is none of them.
    async fn special(&mut self, g: &Group, sql: &str) -> Result<bool, End> {
        if !maybe_special(sql) {
            return Ok(false);
        }
        if let Some(sp) = sql_rewrite::sql_prepare(sql) {
            self.run_sql_prepare(g.clone(), sql, sp).await?;
            return Ok(true);
        }
        if let Some(c) = sql_rewrite::cursor_command(sql) {
            self.run_cursor(g.clone(), sql, c).await?;
            return Ok(true);
        }
        if let Some(c) = sql_rewrite::copy_in(sql) {
            return Ok(self.refuse_if_aborted() || self.start_copy_split(g, sql, c).await?);
        }
        if let Some(c) = sql_rewrite::copy_out(sql) {
            return Ok(self.refuse_if_aborted() || self.start_copy_out(g, c).await?);
        }
        Ok(false)
    }

    /// An extended-protocol group anchored by a Bind.
    async fn start_bind(&mut self, g: Group, at: usize) -> Result<(), End> {
        let bind = g.frames[at].clone();
        let name = Bind::read(&bind)?.statement.to_vec();
        let Some(stmt) = self.group_statement(&g, &name)? else {
            // the server answers "prepared statement does not exist"
            return match self.anywhere().await {
                Some(id) => self.forward_group(id, g, None),
                None => Ok(()),
            };
        };
        let sql = Parse::read(&stmt.parse)?.query.to_string();
        if let Some(c) = control(&sql, &stmt.class) {
            return self.run_control(c, &sql, Some(&g)).await;
        }
        self.ddl_seen |= stmt.class.reason == "ddl";
        if self.ctx.routing.sharded && self.special(&g, &sql).await? {
            return Ok(());
        }
        if self.refuse_if_aborted() {
            return Ok(());
        }
        let target = self.effective(stmt.class.target);
        let w = writes(&stmt.class);
        let dest = match self.bind_dest(&bind, &stmt)? {
            Some(d) => d,
            None => Dest::Default,
        };
        match dest {
            Dest::Refused(r) => {
                self.answer_parses(&g, at);
                self.refuse(&r);
                Ok(())
            }
            Dest::Many(route) => self.scatter_batch(g, *route, stmt, target).await,
            Dest::Default => self.run_default(g, target, w, None).await,
            Dest::Shard { shard, rebind, .. } => {
                let Some(id) = self.place(shard, target, w).await else {
                    return Ok(());
                };
                self.forward_group(id, g, rebind.map(|r| (at, r)))
            }
        }
    }

    /// Answers the Parses before a refused Bind as the server would have.
    fn answer_parses(&mut self, g: &Group, upto: usize) {
        for f in &g.frames[..upto] {
            if f.tag == b'P' {
                if let (Ok(stmt), Ok(p)) = (self.statement(f), Parse::read(f)) {
                    self.statements
                        .insert(bytes::Bytes::copy_from_slice(p.name), stmt);
                }
                messages::raw(&mut self.cout, b'1', b"");
            }
        }
    }

    /// A statement without a sharded table: where the transaction is, else
    /// the default shard.
    pub(super) async fn run_default(
        &mut self,
        g: Group,
        target: Target,
        w: bool,
        class: Option<Classification>,
    ) -> Result<(), End> {
        let shard = self
            .txn
            .first_shard()
            .unwrap_or(self.ctx.routing.default_shard());
        let Some(id) = self.place(shard, target, w).await else {
            return Ok(());
        };
        match class {
            Some(c) => self.forward_query(id, g, c),
            None => self.forward_group(id, g, None),
        }
    }

    /// The shard a Bind routes to, or the refusal; `None` when its statement
    /// names no sharded table.
    fn bind_dest(&self, f: &Frame, stmt: &Statement) -> Result<Option<Dest>, End> {
        let Some(plan) = stmt.plan.as_ref().filter(|p| !p.is_default()) else {
            return Ok(None);
        };
        let params = messages::bind_params(f)?;
        let route = self.ctx.routing.bind(plan, &params);
        Ok(Some(match route {
            Err(r) => Dest::Refused(r),
            Ok(route) if route.shards.len() > 1 || route.mirror => Dest::Many(Box::new(route)),
            Ok(mut route) => match route.shards.pop() {
                None => Dest::Refused(no_shard()),
                Some(t) => {
                    let rebind = match &t.sql {
                        None => None,
                        Some(sql) => {
                            let types = messages::parse_param_types(&stmt.parse)?;
                            Some(
                                messages::rebind(f, sql, &types, t.params.as_deref(), false)?
                                    .freeze(),
                            )
                        }
                    };
                    Dest::Shard {
                        shard: t.shard,
                        sql: None,
                        rebind,
                    }
                }
            },
        }))
    }

    /// Answers `SHOW ROUTE <sql>`: one row per target shard.
    fn show_route(&mut self, sql: &str) {
        let ctx = self.ctx.clone();
        let read_from_primary = ctx.config.routing.read_from == shard_config::ReadFrom::Primary;
        let rows = ctx.routing.with_topology(|t| {
            sql_rewrite::route::preview(
                sql,
                t,
                &ctx.config.proxy.write_functions,
                &[],
                read_from_primary,
                &mut || ctx.routing.next_id(),
            )
        });
        match rows {
            Err(r) => {
                self.fail_request(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    &format!("SHOW ROUTE: refused: {}", r.message),
                );
            }
            Ok(rows) => {
                let mut out = BytesMut::new();
                messages::row_description(&mut out, &["shard", "role", "sql"]);
                for r in &rows {
                    messages::data_row(&mut out, &[Some(&r.shard), Some(r.role), Some(&r.sql)]);
                }
                messages::command_complete(&mut out, &format!("SHOW {}", rows.len()));
                if let Some(run) = self.run.as_mut() {
                    run.after = Some(out);
                }
            }
        }
    }
}

/// The refusal of a route that names no shard (a bug of the planner's).
fn no_shard() -> sql_rewrite::route::Refusal {
    sql_rewrite::route::Refusal::new(
        sql_rewrite::route::RefusalKind::Internal,
        "no shard to run this statement".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_statements_are_spotted_cheaply() {
        for sql in [
            "COPY t FROM STDIN",
            " /* x */ execute q(1)",
            "-- c\nDECLARE c CURSOR FOR SELECT 1",
            "fetch 10 from c",
        ] {
            assert!(maybe_special(sql), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "INSERT INTO copy VALUES (1)",
            "/* unclosed",
            "COPYRIGHT",
        ] {
            assert!(!maybe_special(sql), "{sql}");
        }
        assert!(single_statement("SELECT 1;"));
        assert!(single_statement("SELECT ';'"));
        assert!(!single_statement("SELECT 1; SELECT 2"));
    }
}
