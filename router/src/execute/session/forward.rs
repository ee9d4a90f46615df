//! Sending a group's messages to one server as bytes: the client's
//! prepared statements are made to exist there first (under the client's
//! names), and each message is booked with the answer it will get.

use std::sync::Arc;

use bytes::Bytes;
use sql_rewrite::{classify, Classification};

use super::{end_unit, End, Session};
use crate::execute::request::{Anchor, Group};
use crate::execute::slot::{Kind, ParseUndo, Pending, Statement};
use crate::protocol::messages::{self, Bind, Parse};
use crate::protocol::Frame;

/// A Bind's replacement: its index in the group and the Parse+Bind bytes.
type Rebind = Option<(usize, Bytes)>;

impl Session {
    /// A client's Parse as a registry entry, classified once.
    pub(super) fn statement(&self, f: &Frame) -> Result<Arc<Statement>, End> {
        let p = Parse::read(f)?;
        let routing = &self.ctx.routing;
        Ok(Arc::new(Statement {
            parse: f.clone(),
            class: classify(p.query, &self.ctx.config.proxy.write_functions),
            plan: routing.sharded.then(|| routing.plan(p.query)),
        }))
    }

    /// Sends a group's messages to slot `id` (the Bind at `rebind.0`
    /// replaced by `rebind.1`), then the Sync whose answer ends the unit.
    pub(super) fn forward_group(
        &mut self,
        id: usize,
        g: Group,
        rebind: Option<(usize, Bytes)>,
    ) -> Result<(), End> {
        let function_call = g.anchor == Anchor::FunctionCall;
        let pipelined = g.bind().is_some();
        self.send_group(id, g, rebind)?;
        // the statements after it that run on the same server go along:
        // one round trip, as the client pipelined them
        if pipelined {
            while let Some((next, rb)) = self.next_on_slot(id)? {
                self.send_group(id, next, rb)?;
            }
        }
        let slot = &mut self.slots[id];
        if function_call {
            if let Some(p) = slot.pending.back_mut() {
                p.unit_end = true;
            }
        } else {
            end_unit(slot);
        }
        self.unit_sent(&[id]);
        Ok(())
    }

    /// Sends a group's messages to slot `id`, without ending the unit.
    fn send_group(
        &mut self,
        id: usize,
        g: Group,
        rebind: Option<(usize, Bytes)>,
    ) -> Result<(), End> {
        for (k, f) in g.frames.iter().enumerate() {
            let rb = match &rebind {
                Some((at, b)) if *at == k => Some(b.clone()),
                _ => None,
            };
            self.extended(id, f, rb)?;
        }
        if let Some(b) = g.bind() {
            let portal = Bytes::copy_from_slice(Bind::read(b)?.portal);
            self.portals.insert(portal, id);
        }
        Ok(())
    }

    /// The running request's next group, taken off it, when it is a plain
    /// statement that runs on slot `id` too (with the Bind replacing it).
    fn next_on_slot(&mut self, id: usize) -> Result<Option<(Group, Rebind)>, End> {
        let Some(next) = self.run.as_ref().and_then(|r| r.groups.front()) else {
            return Ok(None);
        };
        let Some(plain) = self.plain_shard(next)? else {
            return Ok(None);
        };
        let slot = &self.slots[id];
        let same = plain.shard == slot.shard
            && (slot.server.role == crate::backend::Role::Primary
                || plain.target == sql_rewrite::Target::Replica)
            && match self.txn.participant(plain.shard) {
                Some(p) => p.slot == id,
                None => !self.txn.open(),
            };
        if !same || (self.txn.failed()) {
            return Ok(None);
        }
        if plain.writes {
            let ctx = self.ctx.clone();
            if self
                .txn
                .write_on(plain.shard, |s| ctx.routing.shard_name(s).to_string())
                .is_err()
            {
                return Ok(None); // refused when its turn comes
            }
        }
        let Some(g) = self.run.as_mut().and_then(|r| r.groups.pop_front()) else {
            return Ok(None);
        };
        Ok(Some((g, plain.rebind)))
    }

    /// Sends a simple Query (its first frame) to slot `id`.
    pub(super) fn forward_query(
        &mut self,
        id: usize,
        g: Group,
        class: Classification,
    ) -> Result<(), End> {
        let slot = &mut self.slots[id];
        slot.prepared.remove(&b""[..]);
        let mut p = Pending::new(Kind::Query, false);
        p.effects = class.session;
        p.unit_end = true;
        slot.send(&g.frames[0], Some(p));
        self.unit_sent(&[id]);
        Ok(())
    }

    /// The unit went out on `ids`: the request waits for their answers.
    pub(super) fn unit_sent(&mut self, ids: &[usize]) {
        if let Some(run) = self.run.as_mut() {
            run.owed += ids.len();
        }
        self.set_cancel(ids);
    }

    /// Makes sure the slot's server holds `stmt` under `name`.
    pub(super) fn ensure(&mut self, idx: usize, name: &[u8], stmt: &Arc<Statement>) {
        let slot = &mut self.slots[idx];
        let before = slot.prepared.get(name).cloned();
        match &before {
            Some(s) if Arc::ptr_eq(s, stmt) => return,
            Some(_) if !name.is_empty() => {
                messages::close_statement(&mut slot.out, name);
                slot.pending.push(Pending::new(Kind::Close, true));
            }
            _ => {}
        }
        let name = Bytes::copy_from_slice(name);
        let mut p = Pending::new(Kind::Parse, true);
        p.undo = Some(ParseUndo {
            name: name.clone(),
            registry_before: None,
            slot_before: None,
        });
        slot.send(&stmt.parse, Some(p));
        slot.prepared.insert(name, stmt.clone());
    }

    /// Forwards one client message to slot `idx`, booking its answer.
    fn extended(&mut self, idx: usize, f: &Frame, rebind: Option<Bytes>) -> Result<(), End> {
        match f.tag {
            b'P' => self.forward_parse(idx, f)?,
            b'B' => {
                let b = Bind::read(f)?;
                let stmt = self.statements.get(b.statement).cloned();
                if let Some(bytes) = rebind {
                    // the statement rewritten for this execution, on the unnamed statement
                    let slot = &mut self.slots[idx];
                    slot.out.extend_from_slice(&bytes);
                    slot.pending.push(Pending::new(Kind::Parse, true));
                    slot.pending.push(Pending::new(Kind::Bind, false));
                    slot.prepared.remove(&b""[..]);
                    match stmt {
                        Some(s) => slot.portals.insert(Bytes::copy_from_slice(b.portal), s),
                        None => slot.portals.remove(b.portal),
                    };
                    return Ok(());
                }
                if let Some(s) = &stmt {
                    self.ensure(idx, b.statement, s);
                }
                let slot = &mut self.slots[idx];
                match stmt {
                    Some(s) => {
                        slot.portals.insert(Bytes::copy_from_slice(b.portal), s);
                    }
                    None => {
                        slot.portals.remove(b.portal);
                    }
                }
                slot.send(f, Some(Pending::new(Kind::Bind, false)));
            }
            b'D' => {
                let t = messages::Target::read(f)?;
                if t.kind == b'S' {
                    if let Some(s) = self.statements.get(t.name).cloned() {
                        self.ensure(idx, t.name, &s);
                    }
                }
                self.slots[idx].send(f, Some(Pending::new(Kind::Describe, false)));
            }
            b'E' => {
                let portal = messages::Reader::new(f.body(), "Execute").cstr()?;
                let slot = &mut self.slots[idx];
                let mut p = Pending::new(Kind::Execute, false);
                if let Some(s) = slot.portals.get(portal) {
                    p.effects.clone_from(&s.class.session);
                }
                slot.send(f, Some(p));
            }
            b'C' => {
                let t = messages::Target::read(f)?;
                let slot = &mut self.slots[idx];
                if t.kind == b'S' {
                    self.statements.remove(t.name);
                    slot.prepared.remove(t.name);
                } else {
                    slot.portals.remove(t.name);
                }
                slot.send(f, Some(Pending::new(Kind::Close, false)));
            }
            b'F' => {
                self.slots[idx].send(f, Some(Pending::new(Kind::FunctionCall, false)));
            }
            _ => self.slots[idx].send(f, None),
        }
        Ok(())
    }

    /// Forwards a Parse, registering the statement (undone if it fails).
    fn forward_parse(&mut self, idx: usize, f: &Frame) -> Result<(), End> {
        let stmt = self.statement(f)?;
        let name = Bytes::copy_from_slice(Parse::read(f)?.name);
        let registry_before = self.statements.get(&name).cloned();
        let slot = &mut self.slots[idx];
        if !name.is_empty() && registry_before.is_none() && slot.prepared.contains_key(&name) {
            // left over from before the client closed it
            messages::close_statement(&mut slot.out, &name);
            slot.pending.push(Pending::new(Kind::Close, true));
            slot.prepared.remove(&name);
        }
        let mut p = Pending::new(Kind::Parse, false);
        p.undo = Some(ParseUndo {
            name: name.clone(),
            registry_before: Some(registry_before),
            slot_before: slot.prepared.get(&name).cloned(),
        });
        slot.send(f, Some(p));
        slot.prepared.insert(name.clone(), stmt.clone());
        self.statements.insert(name, stmt);
        Ok(())
    }
}
