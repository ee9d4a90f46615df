//! Transaction control the proxy runs itself: BEGIN held back, COMMIT and
//! ROLLBACK sent to every participant with one answer for the client,
//! savepoints on every participant, the implicit transaction's end.

use bytes::BytesMut;
use sql_rewrite::Target;

use super::{End, Session};
use crate::execute::request::Group;
use crate::execute::slot::{Kind, Pending};
use crate::execute::transaction::{Control, Mode, Savepoint, ABORTED};
use crate::protocol::messages::{self, Parse, Severity};
use crate::protocol::SqlState;

/// Appends a NoticeResponse (WARNING).
fn notice(out: &mut BytesMut, code: SqlState, message: &str) {
    let mut e = BytesMut::new();
    messages::error_response(&mut e, Severity::Error, code, message);
    // same fields, NoticeResponse tag and WARNING severity
    let body = String::from_utf8_lossy(&e[5..]).replace("ERROR", "WARNING");
    messages::raw(out, b'N', body.as_bytes());
}

impl Session {
    /// Runs transaction control in the proxy: on every participant, with
    /// one answer for the client (`g`: the extended-protocol group).
    pub(super) async fn run_control(
        &mut self,
        c: Control,
        sql: &str,
        g: Option<&Group>,
    ) -> Result<(), End> {
        let mut tag = String::new();
        let mut send: Option<String> = None;
        match &c {
            Control::Begin { read_only } => {
                if self.txn.mode() == Mode::Explicit {
                    notice(
                        &mut self.cout,
                        SqlState::ACTIVE_SQL_TRANSACTION,
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
                        SqlState::NO_ACTIVE_SQL_TRANSACTION,
                        "there is no transaction in progress",
                    );
                }
                if self.txn.mode() == Mode::Implicit {
                    notice(
                        &mut self.cout,
                        SqlState::NO_ACTIVE_SQL_TRANSACTION,
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
                        None => Group::query(crate::execute::request::query_frame(sql)),
                    };
                    return self.run_default(g, target, false, None).await;
                }
                if matches!(sp, Savepoint::Define(_) | Savepoint::Release(_)) && self.txn.failed() {
                    self.fail_request(SqlState::IN_FAILED_SQL_TRANSACTION, ABORTED);
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
                    slot.pending.push(pend);
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
                slot.pending.push(pend);
                owed += 1;
            }
        }
        if let Some(run) = self.run.as_mut() {
            run.owed += owed;
            run.closing = true;
        }
    }

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
