//! The servers' answers: relayed to the client as bytes, or swallowed when
//! they answer what the proxy itself sent (replayed settings, lazily
//! prepared statements, a joining shard's BEGIN, the Sync that ends a
//! unit); the books kept on the way (statements, settings, transaction
//! status, COPY).

use bytes::BytesMut;
use sql_rewrite::SessionEffect;

use super::{is_fatal, Session};
use crate::execute::slot::{Kind, Pending};
use crate::execute::tracker::ErrorOutcome;
use crate::protocol::frame::{self, Frame};
use crate::protocol::messages::{self, Malformed, Severity};
use crate::protocol::{SqlState, TxStatus};

impl Session {
    /// Handles every complete frame a server sent.
    pub(super) fn process_server(&mut self, id: usize) {
        loop {
            let Some(slot) = self.slots.get_mut(id) else {
                return;
            };
            if slot.paused {
                return;
            }
            let f = match frame::split(
                &mut slot.conn.rbuf,
                crate::backend::conn::SERVER_MAX_MESSAGE,
            ) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    self.server_lost(id, &e.to_string());
                    return;
                }
            };
            if let Err(e) = self.server_frame(id, f) {
                self.server_lost(id, &e.to_string());
                return;
            }
        }
    }

    /// Relays or swallows one server frame and keeps the books.
    fn server_frame(&mut self, id: usize, f: Frame) -> Result<(), Malformed> {
        if self.gather.is_some() && self.slots[id].pending.front().is_some_and(|p| p.gather) {
            return self.gather_frame(id, f);
        }
        if self.in_copy_split(id) {
            return self.copy_split_frame(id, f);
        }
        let errored = self.run.as_ref().is_some_and(|r| r.errored);
        let slot = &mut self.slots[id];
        let front = slot.pending.front();
        let swallow = front.is_some_and(|p| p.swallow);
        let quiet = front.is_some_and(|p| p.quiet);
        let kind = front.map(|p| p.kind);
        let mut forward = !swallow;
        match f.tag {
            b'Z' => return self.ready(id, &f),
            b'E' => {
                if is_fatal(&f) {
                    slot.fatal_seen = true;
                }
                self.copy_failed(id);
                let slot = &mut self.slots[id];
                match slot.pending.error() {
                    ErrorOutcome::Idle => {
                        // an error on an idle connection (shutdown, timeout): not the client's
                        let (code, msg) = messages::error_fields(&f)?;
                        tracing::warn!(server = %slot.server.addr, "{code}: {msg}");
                        slot.fatal_seen = false;
                        forward = false;
                    }
                    ErrorOutcome::Marked => {}
                    ErrorOutcome::Skipped(dropped) => {
                        for p in dropped {
                            self.undo(id, p);
                        }
                    }
                }
                if quiet {
                    forward = !errored;
                }
                if forward {
                    self.cout.extend_from_slice(&f.bytes);
                    self.request_failed();
                }
                return Ok(());
            }
            b'1' | b'2' | b'3' => {
                slot.pending.answered();
            }
            b'T' | b'n' if kind == Some(Kind::Describe) => {
                slot.pending.answered();
            }
            b'G' => {
                let extended = kind == Some(Kind::Execute);
                self.copy_in = Some(super::CopyIn::Data { slot: id, extended });
            }
            b'C' => {
                let tag = messages::command_tag(&f)?;
                if tag.starts_with(b"COMMIT") {
                    slot.committed = true;
                } else if tag.starts_with(b"ROLLBACK") {
                    slot.committed = false;
                    // `BEGIN; SET …; ROLLBACK` in one Query: nothing to keep
                    if let Some(p) = slot.pending.front_mut().filter(|p| p.kind == Kind::Query) {
                        p.errored = true;
                    }
                }
                if matches!(self.copy_in, Some(super::CopyIn::Data { slot, extended: false }) if slot == id)
                {
                    self.copy_in = None;
                }
                if kind == Some(Kind::Execute) {
                    if let Some(p) = self.slots[id].pending.answered() {
                        if !p.effects.is_empty() {
                            self.completed(id, p.effects);
                        }
                    }
                }
            }
            b'I' | b's' if kind == Some(Kind::Execute) => {
                slot.pending.answered();
            }
            _ => {}
        }
        if forward {
            self.cout.extend_from_slice(&f.bytes);
        }
        Ok(())
    }

    /// A server's ReadyForQuery: the messages before it are answered; the
    /// unit it ends is done. Never relayed: the session answers the
    /// client's Sync itself.
    fn ready(&mut self, id: usize, f: &Frame) -> Result<(), Malformed> {
        let status = messages::ready_status(f)?;
        let slot = &mut self.slots[id];
        let (ready, skipped) = slot.pending.ready();
        slot.status = status;
        if status == TxStatus::Idle {
            slot.portals.clear();
        }
        let shard = slot.shard;
        for p in skipped {
            self.undo(id, p);
        }
        let Some(p) = ready else {
            return Ok(());
        };
        if !p.errored && !p.effects.is_empty() {
            self.completed(id, p.effects);
        }
        let slot = &mut self.slots[id];
        if status == TxStatus::Idle && !slot.txn_effects.is_empty() {
            let effects = std::mem::take(&mut slot.txn_effects);
            if slot.committed {
                self.completed(id, effects);
            }
        }
        self.slots[id].committed = false;
        if p.unit_end {
            self.unit_answered(id, shard, status);
        }
        Ok(())
    }

    /// One server finished its part of the unit in flight.
    pub(super) fn unit_answered(&mut self, id: usize, shard: usize, status: TxStatus) {
        self.txn.observe(shard, id, status);
        if status == TxStatus::Idle {
            self.portals.retain(|_, &mut slot| slot != id);
        }
        if let Some(run) = self.run.as_mut() {
            run.owed = run.owed.saturating_sub(1);
        }
    }

    /// The server failed a COPY FROM STDIN: in the extended protocol it now
    /// waits for a Sync, which the client sends after its CopyDone/Fail.
    fn copy_failed(&mut self, id: usize) {
        match self.copy_in {
            Some(super::CopyIn::Data { slot, extended }) if slot == id => {
                self.copy_in = extended.then_some(super::CopyIn::Closing { slot: id });
            }
            _ => {}
        }
    }

    /// Rolls back the optimistic registration of a Parse that did not happen.
    fn undo(&mut self, id: usize, p: Pending) {
        let Some(u) = p.undo else { return };
        if let Some(before) = u.registry_before {
            match before {
                Some(s) => self.statements.insert(u.name.clone(), s),
                None => self.statements.remove(&u.name),
            };
        }
        let Some(slot) = self.slots.get_mut(id) else {
            return;
        };
        match u.slot_before {
            Some(s) => slot.prepared.insert(u.name, s),
            None => slot.prepared.remove(&u.name),
        };
    }

    /// Records session effects of a statement that completed on a slot.
    fn completed(&mut self, id: usize, effects: Vec<SessionEffect>) {
        if self.slots[id].status != TxStatus::Idle {
            self.slots[id].txn_effects.extend(effects);
            return;
        }
        let before = self.settings.version;
        let mut discarded = false;
        for e in &effects {
            self.settings.apply(e);
            discarded |= matches!(e, SessionEffect::DiscardAll);
        }
        let slot = &mut self.slots[id];
        if discarded {
            self.statements.clear();
            slot.prepared.clear();
            slot.version = u64::MAX;
        } else if slot.version == before {
            slot.version = self.settings.version;
        }
    }

    /// Drops a slot whose server went away and tells the client if it was
    /// waiting for that server.
    pub(super) fn server_lost(&mut self, id: usize, why: &str) {
        let Some(mut slot) = self.slots.remove(id) else {
            return;
        };
        slot.conn.broken = true;
        tracing::warn!(server = %slot.server.addr, "server connection lost: {why}");
        if self.copy_in.is_some_and(|c| c.slot() == Some(id)) {
            self.copy_in = None;
        }
        let copying = slot.pending.front().is_some_and(|p| p.copy);
        self.portals.retain(|_, &mut s| s != id);
        let owed = slot.pending.unit_ends();
        let waiting = slot.pending.client_waits();
        let gathered = slot.pending.iter().any(|p| p.gather);
        let participant = self.txn.lost(id);
        if let Some(run) = self.run.as_mut() {
            run.owed = run.owed.saturating_sub(owed);
        }
        let message = format!("server connection lost: {why}");
        if copying {
            self.copy_split_lost(id, &message);
        } else if gathered {
            if let Some(mut g) = self.gather.take() {
                g.remaining = g.remaining.saturating_sub(1);
                if g.error.is_none() {
                    let mut e = BytesMut::new();
                    messages::error_response(
                        &mut e,
                        Severity::Error,
                        SqlState::CONNECTION_FAILURE,
                        &message,
                    );
                    g.error = Some(e.freeze());
                }
                if g.remaining == 0 {
                    self.gather_done(g);
                } else {
                    self.gather = Some(g);
                }
            }
        } else if waiting && owed > 0 {
            if !slot.fatal_seen {
                self.fail_request(SqlState::CONNECTION_FAILURE, &message);
            } else {
                self.request_failed();
            }
        } else if participant || slot.status != TxStatus::Idle {
            self.txn_lost = true;
        }
    }
}
