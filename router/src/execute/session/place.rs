//! Where a group of the client's request runs: the proxy itself
//! (transaction control, SHOW ROUTE, refusals), one shard's primary or
//! replica, or several shards; and the transaction's participants, each
//! joining on first use.

use std::sync::Arc;

use bytes::BytesMut;
use sql_rewrite::route::Route;
use sql_rewrite::{classify, split_statements, Classification, Target, TxnEffect};

use super::{End, Session};
use crate::backend::{Role, Server};
use crate::execute::request::{Anchor, Ending, Group};
use crate::execute::slot::{Kind, Pending, Slot, Statement};
use crate::execute::transaction::{Mode, Savepoint};
use crate::protocol::messages::{self, Bind, Parse, Severity};
use crate::protocol::Frame;

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
    Refused(String),
}

/// Transaction control the proxy runs itself.
#[derive(Debug, Clone)]
pub(super) enum Control {
    Begin { read_only: bool },
    End { commit: bool },
    Savepoint(Savepoint),
}

/// Why a statement of an aborted transaction is not run.
const ABORTED: &str =
    "current transaction is aborted, commands ignored until end of transaction block";

/// `true` for a text of exactly one statement.
fn single_statement(sql: &str) -> bool {
    split_statements(sql).len() <= 1
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

/// The transaction control a one-statement text is, if any.
fn control(sql: &str, class: &Classification) -> Option<Control> {
    if let Some(sp) = Savepoint::parse(sql) {
        return Some(Control::Savepoint(sp));
    }
    match class.txn? {
        _ if !single_statement(sql) => None,
        TxnEffect::Begin { read_only } => Some(Control::Begin { read_only }),
        TxnEffect::Commit => Some(Control::End { commit: true }),
        TxnEffect::Rollback => Some(Control::End { commit: false }),
    }
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

/// Whether a server in `role` may run work for `target`.
fn satisfies(role: Role, target: Target) -> bool {
    role == Role::Primary || target == Target::Replica
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
        if executing == 0 {
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
        if may_write && (executing > 1 || open_ended) {
            self.txn.begin_implicit();
        }
        Ok(())
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
                "08006",
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
                    self.fail_request("0A000", "only Execute, Describe and Close may follow a cross-shard portal read with a row limit in the same request");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// A statement other than ROLLBACK in an aborted transaction gets 25P02.
    pub(super) fn refuse_if_aborted(&mut self) -> bool {
        if self.txn.failed() {
            self.fail_request("25P02", ABORTED);
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
        if sharded {
            if let Some(sp) = sql_rewrite::sql_prepare(&sql) {
                return self.run_sql_prepare(g, &sql, sp).await;
            }
            if let Some(c) = sql_rewrite::cursor_command(&sql) {
                return self.run_cursor(g, &sql, c).await;
            }
            if let Some(c) = sql_rewrite::copy_in(&sql) {
                if self.refuse_if_aborted() || self.start_copy_split(&g, &sql, c).await? {
                    return Ok(());
                }
            }
            if let Some(c) = sql_rewrite::copy_out(&sql) {
                if self.refuse_if_aborted() || self.start_copy_out(&g, c).await? {
                    return Ok(());
                }
            }
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
        if self.refuse_if_aborted() {
            return Ok(());
        }
        let target = self.effective(class.target);
        let dest = match plan {
            Some(plan) if !plan.is_default() => {
                let ctx = self.ctx.clone();
                let route = ctx
                    .routing
                    .with_topology(|t| plan.bind(t, &[], &mut || ctx.routing.next_id()));
                match route {
                    Err(r) => Dest::Refused(r.message),
                    Ok(route) if route.shards.len() > 1 || route.mirror => {
                        Dest::Many(Box::new(route))
                    }
                    Ok(mut route) => match route.shards.pop() {
                        Some(s) => Dest::Shard {
                            shard: s.shard,
                            sql: s.sql,
                            rebind: None,
                        },
                        None => Dest::Refused("no shard to run this statement".into()),
                    },
                }
            }
            _ => Dest::Default,
        };
        let mut g = g;
        match dest {
            Dest::Refused(m) => {
                self.fail_request("0A000", &m);
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
            let ctx = self.ctx.clone();
            let route = ctx
                .routing
                .with_topology(|t| plan.bind(t, &[], &mut || ctx.routing.next_id()));
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
        if self.ctx.routing.sharded {
            if let Some(sp) = sql_rewrite::sql_prepare(&sql) {
                return self.run_sql_prepare(g, &sql, sp).await;
            }
            if let Some(c) = sql_rewrite::cursor_command(&sql) {
                return self.run_cursor(g, &sql, c).await;
            }
            if let Some(c) = sql_rewrite::copy_in(&sql) {
                if self.refuse_if_aborted() || self.start_copy_split(&g, &sql, c).await? {
                    return Ok(());
                }
            }
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
            Dest::Refused(m) => {
                self.answer_parses(&g, at);
                self.fail_request("0A000", &m);
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

    /// The server connection for work on `shard`: the transaction's
    /// participant there (joining it now if needed), else a fresh choice.
    /// `None`: the client got the error.
    pub(super) async fn place(&mut self, shard: usize, target: Target, w: bool) -> Option<usize> {
        if !self.txn.open() {
            return self.acquire(target, shard).await;
        }
        if w {
            let ctx = self.ctx.clone();
            if let Err(e) = self
                .txn
                .write_on(shard, |s| ctx.routing.shard_name(s).to_string())
            {
                self.fail_request("0A000", &e.to_string());
                return None;
            }
        }
        if let Some(p) = self.txn.participant(shard) {
            return Some(p.slot);
        }
        let target = if self.txn.read_only() {
            target
        } else {
            Target::Primary
        };
        let id = self.acquire(target, shard).await?;
        let sql = self.txn.join(shard, id);
        if w {
            let ctx = self.ctx.clone();
            let _ = self
                .txn
                .write_on(shard, |s| ctx.routing.shard_name(s).to_string());
        }
        let slot = &mut self.slots[id];
        messages::query(&mut slot.out, &sql);
        slot.pending.push_back(Pending::quiet(Kind::Query));
        Some(id)
    }

    /// A server for messages any server can answer (Parse, Describe of a
    /// statement): the transaction's, one already held, else the default
    /// shard's.
    pub(super) async fn anywhere(&mut self) -> Option<usize> {
        if let Some(p) = self.txn.participants().first() {
            return Some(p.slot);
        }
        let home = self.ctx.routing.default_shard();
        let held = self
            .slots
            .iter()
            .find(|(_, s)| s.shard == home)
            .or_else(|| self.slots.iter().next())
            .map(|(i, _)| i);
        match held {
            Some(i) => Some(i),
            None => self.acquire(self.effective(Target::Replica), home).await,
        }
    }

    /// Runs transaction control in the proxy: on every participant, with
    /// one answer for the client (`g`: the extended-protocol group).
    async fn run_control(&mut self, c: Control, sql: &str, g: Option<&Group>) -> Result<(), End> {
        let mut tag = String::new();
        let mut send: Option<String> = None;
        match &c {
            Control::Begin { read_only } => {
                if self.txn.mode() == Mode::Explicit {
                    notice(
                        &mut self.cout,
                        "25001",
                        "there is already a transaction in progress",
                    );
                } else {
                    self.txn.begin_explicit(sql, *read_only);
                }
                tag.push_str("BEGIN");
            }
            Control::End { commit } => {
                if self.txn.mode() == Mode::Idle {
                    notice(
                        &mut self.cout,
                        "25P01",
                        "there is no transaction in progress",
                    );
                }
                if self.txn.mode() == Mode::Implicit {
                    notice(
                        &mut self.cout,
                        "25P01",
                        "there is no transaction in progress",
                    );
                }
                let commit = *commit && !self.txn.failed();
                tag.push_str(if commit { "COMMIT" } else { "ROLLBACK" });
                send = Some(tag.clone());
            }
            Control::Savepoint(sp) => {
                if !self.txn.open() {
                    // Postgres answers "can only be used in transaction blocks"
                    let target = Target::Primary;
                    let g = match g {
                        Some(g) => g.clone(),
                        None => Group::query(query_frame(sql)),
                    };
                    return self.run_default(g, target, false, None).await;
                }
                if matches!(sp, Savepoint::Define(_) | Savepoint::Release(_)) && self.txn.failed() {
                    self.fail_request("25P02", ABORTED);
                    return Ok(());
                }
                self.txn.savepoint(sp);
                tag.push_str(match sp {
                    Savepoint::Define(_) => "SAVEPOINT",
                    Savepoint::Release(_) => "RELEASE",
                    Savepoint::RollbackTo(_) => "ROLLBACK",
                });
                send = Some(sql.to_string());
            }
        }
        let mut after = BytesMut::new();
        match g {
            Some(g) => self.local_answers(g, &tag, &mut after)?,
            None => messages::command_complete(&mut after, &tag),
        }
        let parts = match (&c, &send) {
            (Control::End { .. }, Some(_)) => self.txn.end(),
            (_, Some(_)) => self.txn.participants().to_vec(),
            _ => Vec::new(),
        };
        let mut owed = 0;
        if let Some(stmt) = send {
            for p in &parts {
                if let Some(slot) = self.slots.get_mut(p.slot) {
                    messages::query(&mut slot.out, &stmt);
                    let mut pend = Pending::quiet(Kind::Query);
                    pend.unit_end = true;
                    slot.pending.push_back(pend);
                    owed += 1;
                }
            }
        }
        let ids: Vec<usize> = parts.iter().map(|p| p.slot).collect();
        self.set_cancel(&ids);
        if let Some(run) = self.run.as_mut() {
            run.owed += owed;
            run.after = Some(after);
        }
        Ok(())
    }

    /// Ends the proxy's implicit transaction at the batch's end.
    pub(super) fn close_implicit(&mut self, commit: bool) {
        let parts = self.txn.end();
        let stmt = if commit { "COMMIT" } else { "ROLLBACK" };
        let mut owed = 0;
        for p in &parts {
            if let Some(slot) = self.slots.get_mut(p.slot) {
                messages::query(&mut slot.out, stmt);
                let mut pend = Pending::quiet(Kind::Query);
                pend.unit_end = true;
                slot.pending.push_back(pend);
                owed += 1;
            }
        }
        if let Some(run) = self.run.as_mut() {
            run.owed += owed;
            run.closing = true;
        }
    }

    /// The shard a Bind routes to, or the refusal; `None` when its statement
    /// names no sharded table.
    fn bind_dest(&self, f: &Frame, stmt: &Statement) -> Result<Option<Dest>, End> {
        let Some(plan) = stmt.plan.as_ref().filter(|p| !p.is_default()) else {
            return Ok(None);
        };
        let params = messages::bind_params(f)?;
        let ctx = &self.ctx;
        let route = ctx
            .routing
            .with_topology(|t| plan.bind(t, &params, &mut || ctx.routing.next_id()));
        Ok(Some(match route {
            Err(r) => Dest::Refused(r.message),
            Ok(route) if route.shards.len() > 1 || route.mirror => Dest::Many(Box::new(route)),
            Ok(mut route) => match route.shards.pop() {
                None => Dest::Refused("no shard to run this statement".to_string()),
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

    /// Applies `read_from = "primary"`; inside a read-write transaction
    /// everything goes to primaries.
    pub(super) fn effective(&self, t: Target) -> Target {
        if self.txn.open() && !self.txn.read_only() {
            return Target::Primary;
        }
        match self.ctx.config.routing.read_from {
            shard_config::ReadFrom::Primary => Target::Primary,
            shard_config::ReadFrom::Replicas => t,
        }
    }

    /// A slot on each of `shards` (joining the transaction where one is
    /// open); `None` when one cannot be had (the client got the error).
    pub(super) async fn place_all(
        &mut self,
        shards: &[usize],
        target: Target,
        w: bool,
    ) -> Option<Vec<usize>> {
        let mut ids = Vec::with_capacity(shards.len());
        for &s in shards {
            ids.push(self.place(s, target, w).await?);
        }
        Some(ids)
    }

    /// Chooses a server for `target` and checks out a connection if the
    /// client holds none there; sends an error to the client on failure.
    pub(super) async fn acquire(&mut self, target: Target, index: usize) -> Option<usize> {
        let ctx = self.ctx.clone();
        let shard = ctx
            .servers
            .shards
            .get(index)
            .unwrap_or(ctx.servers.default_shard());
        if target == Target::Replica {
            let n = shard.replicas.len();
            self.rr = self.rr.wrapping_add(1);
            for k in 0..n {
                let r = &shard.replicas[(self.rr + k) % n];
                if r.is_up() {
                    if let Ok(i) = self.use_server(r, index).await {
                        return Some(i);
                    }
                }
            }
        }
        debug_assert!(satisfies(shard.primary.role, target));
        match self.use_server(&shard.primary, index).await {
            Ok(i) => Some(i),
            Err(e) => {
                self.fail_request("08006", &format!("could not connect to a server: {e}"));
                None
            }
        }
    }

    /// The client's slot on `server`, checked out now if it has none.
    async fn use_server(&mut self, server: &Arc<Server>, shard: usize) -> Result<usize, String> {
        let i = match self.slots.find(server) {
            Some(i) => i,
            None => {
                let conn = server
                    .checkout()
                    .await
                    .inspect_err(|e| tracing::warn!("{e}"))?;
                self.slots.insert(Slot::new(server.clone(), shard, conn))
            }
        };
        self.sync_slot(i);
        Ok(i)
    }

    /// Replays the client's settings on a slot that is behind.
    pub(super) fn sync_slot(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.version == self.settings.version {
            return;
        }
        messages::query(&mut slot.out, &self.settings.replay_sql());
        slot.pending.push_back(Pending::new(Kind::Query, true));
        slot.prepared.remove(&b""[..]);
        slot.version = self.settings.version;
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
                self.fail_request("0A000", &format!("SHOW ROUTE: refused: {}", r.message));
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

/// A Query frame of `sql`.
pub(super) fn query_frame(sql: &str) -> Frame {
    let mut b = BytesMut::new();
    messages::query(&mut b, sql);
    Frame {
        tag: b'Q',
        bytes: b.freeze(),
    }
}

/// Appends a NoticeResponse (WARNING).
fn notice(out: &mut BytesMut, code: &str, message: &str) {
    let mut e = BytesMut::new();
    messages::error_response(&mut e, Severity::Error, code, message);
    // same fields, NoticeResponse tag and WARNING severity
    let body = String::from_utf8_lossy(&e[5..]).replace("ERROR", "WARNING");
    messages::raw(out, b'N', body.as_bytes());
}

impl Session {
    /// The answers the proxy gives for an extended-protocol group it runs
    /// itself: ParseComplete, BindComplete, NoData, CommandComplete `tag`,
    /// CloseComplete, in the client's order.
    pub(super) fn local_answers(
        &mut self,
        g: &Group,
        tag: &str,
        out: &mut BytesMut,
    ) -> Result<(), End> {
        for f in &g.frames {
            match f.tag {
                b'P' => {
                    let stmt = self.statement(f)?;
                    let name = bytes::Bytes::copy_from_slice(Parse::read(f)?.name);
                    self.statements.insert(name, stmt);
                    messages::raw(out, b'1', b"");
                }
                b'B' => messages::raw(out, b'2', b""),
                b'D' => {
                    if messages::Target::read(f)?.kind == b'S' {
                        messages::raw(out, b't', &[0, 0]);
                    }
                    messages::raw(out, b'n', b"");
                }
                b'E' => messages::command_complete(out, tag),
                b'C' => {
                    let t = messages::Target::read(f)?;
                    if t.kind == b'S' {
                        self.statements.remove(t.name);
                    }
                    messages::raw(out, b'3', b"");
                }
                _ => {}
            }
        }
        Ok(())
    }
}
