//! SQL-level prepared statements: `PREPARE` is kept per client and made to
//! exist lazily on whichever server runs an `EXECUTE`, which is routed by
//! its arguments like a Bind; `DEALLOCATE` is answered by the proxy.

use std::sync::Arc;

use bytes::BytesMut;
use sql_rewrite::route::Param;
use sql_rewrite::{classify, Classification, SqlPrepare};

use super::place::writes;
use super::{End, Session};
use crate::execute::request::{Anchor, Group};
use crate::execute::slot::{Kind, Pending, SqlStatement};
use crate::protocol::messages;
use crate::protocol::SqlState;

impl Session {
    /// Runs PREPARE, EXECUTE or DEALLOCATE of the client.
    pub(super) async fn run_sql_prepare(
        &mut self,
        g: Group,
        sql: &str,
        sp: SqlPrepare,
    ) -> Result<(), End> {
        if self.refuse_if_aborted() {
            return Ok(());
        }
        match sp {
            SqlPrepare::Prepare { name, body } => self.sql_prepare(g, sql, name, &body).await,
            SqlPrepare::Execute { name, args } => self.sql_execute(g, name, args).await,
            SqlPrepare::Deallocate { name } => {
                let all = name.is_none();
                if self.sql_deallocate(name) && g.anchor != Anchor::Query {
                    // the extended protocol's answers, message by message
                    let mut out = BytesMut::new();
                    let tag = if all { "DEALLOCATE ALL" } else { "DEALLOCATE" };
                    self.local_answers(&g, tag, &mut out)?;
                    if let Some(run) = self.run.as_mut() {
                        run.after = Some(out);
                    }
                }
                Ok(())
            }
        }
    }

    async fn sql_prepare(
        &mut self,
        g: Group,
        sql: &str,
        name: String,
        body: &str,
    ) -> Result<(), End> {
        if self.sql_statements.contains_key(&name) {
            self.fail_request(
                SqlState::DUPLICATE_PREPARED_STATEMENT,
                &format!("prepared statement \"{name}\" already exists"),
            );
            return Ok(());
        }
        let wf = &self.ctx.config.proxy.write_functions;
        let stmt = SqlStatement {
            prepare: sql.to_string(),
            plan: self.ctx.routing.plan(body),
            class: classify(body, wf),
        };
        let shard = self
            .txn
            .first_shard()
            .unwrap_or(self.ctx.routing.default_shard());
        let target = self.effective(sql_rewrite::Target::Replica);
        let Some(id) = self.place(shard, target, false).await else {
            return Ok(());
        };
        self.slots[id].sql_prepared.insert(name.clone());
        self.sql_statements.insert(name, Arc::new(stmt));
        self.forward_any(id, g, classify("SELECT 1", &[]))
    }

    async fn sql_execute(
        &mut self,
        g: Group,
        name: String,
        args: Option<Vec<Option<String>>>,
    ) -> Result<(), End> {
        let Some(stmt) = self.sql_statements.get(&name).cloned() else {
            self.fail_request(
                SqlState::INVALID_SQL_STATEMENT_NAME,
                &format!("prepared statement \"{name}\" does not exist"),
            );
            return Ok(());
        };
        let shard = if stmt.plan.is_default() {
            self.txn
                .first_shard()
                .unwrap_or(self.ctx.routing.default_shard())
        } else {
            let Some(args) = args else {
                self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, "EXECUTE of a statement on sharded tables needs literal arguments to be routed by its key");
                return Ok(());
            };
            let params: Vec<Param<'_>> = args
                .iter()
                .map(|a| Param {
                    value: a.as_deref().map(str::as_bytes),
                    binary: false,
                })
                .collect();
            let route = self.ctx.routing.bind(&stmt.plan, &params);
            match route {
                Err(r) => {
                    self.refuse(&r);
                    return Ok(());
                }
                Ok(r) if r.shards.len() != 1 || r.mirror || r.shards[0].sql.is_some() => {
                    self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, &format!("EXECUTE {name}: these arguments make the statement run on several shards (or rewritten), which SQL EXECUTE cannot do: prepare it with the extended protocol instead"));
                    return Ok(());
                }
                Ok(r) => r.shards[0].shard,
            }
        };
        let target = self.effective(stmt.class.target);
        let Some(id) = self.place(shard, target, writes(&stmt.class)).await else {
            return Ok(());
        };
        let slot = &mut self.slots[id];
        if slot.sql_prepared.insert(name) {
            messages::query(&mut slot.out, &stmt.prepare);
            slot.pending.push(Pending::quiet(Kind::Query));
        }
        self.forward_any(id, g, stmt.class.clone())
    }

    /// Sends a simple Query or an extended-protocol group to slot `id`.
    pub(super) fn forward_any(
        &mut self,
        id: usize,
        g: Group,
        class: Classification,
    ) -> Result<(), End> {
        match g.anchor {
            Anchor::Query => self.forward_query(id, g, class),
            _ => self.forward_group(id, g, None),
        }
    }

    /// `false`: refused (the client got the error).
    fn sql_deallocate(&mut self, name: Option<String>) -> bool {
        let (sql, tag) = match &name {
            Some(n) => {
                if self.sql_statements.remove(n).is_none() {
                    self.fail_request(
                        SqlState::INVALID_SQL_STATEMENT_NAME,
                        &format!("prepared statement \"{n}\" does not exist"),
                    );
                    return false;
                }
                (
                    format!("DEALLOCATE \"{}\"", n.replace('"', "\"\"")),
                    "DEALLOCATE",
                )
            }
            None => {
                self.sql_statements.clear();
                ("DEALLOCATE ALL".to_string(), "DEALLOCATE ALL")
            }
        };
        for (_, slot) in self.slots.iter_mut() {
            let holds = match &name {
                Some(n) => slot.sql_prepared.remove(n),
                None => !std::mem::take(&mut slot.sql_prepared).is_empty(),
            };
            if holds {
                messages::query(&mut slot.out, &sql);
                slot.pending.push(Pending::new(Kind::Query, true));
            }
        }
        let mut out = BytesMut::new();
        messages::command_complete(&mut out, tag);
        if let Some(run) = self.run.as_mut() {
            run.after = Some(out);
        }
        true
    }
}
