//! A server connection checked out by one client, with what it has been
//! sent and not yet answered.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sql_rewrite::SessionEffect;

pub use super::statement::{SqlStatement, Statement};
use super::tracker::Tracker;
pub use super::tracker::{Kind, ParseUndo, Pending};
use crate::backend::{Pooled, Server};
use crate::protocol::Frame;
use crate::protocol::TxStatus;

/// A checked-out server connection and its bookkeeping.
pub struct Slot {
    /// The server.
    pub server: Arc<Server>,
    /// Index of the server's shard.
    pub shard: usize,
    /// The connection.
    pub conn: Pooled,
    /// Bytes to send.
    pub out: BytesMut,
    /// Messages sent and not fully answered, in order.
    pub pending: Tracker,
    /// Transaction status from the last ReadyForQuery.
    pub status: TxStatus,
    /// The settings version this connection has applied.
    pub version: u64,
    /// Prepared statements this connection holds, by name.
    pub prepared: HashMap<Bytes, Arc<Statement>>,
    /// Portals bound on it in the current batch, by name.
    pub portals: HashMap<Bytes, Arc<Statement>>,
    /// Session effects of the open transaction, recorded at COMMIT.
    pub txn_effects: Vec<SessionEffect>,
    /// The open transaction ended with COMMIT (not ROLLBACK).
    pub committed: bool,
    /// A FATAL error from this server was passed to the client.
    pub fatal_seen: bool,
    /// Not read for now: its rows wait in a merge queue that is full.
    pub paused: bool,
    /// SQL-level prepared statements (`PREPARE name`) it holds.
    pub sql_prepared: std::collections::HashSet<String>,
}

impl Slot {
    /// Wraps a fresh checkout.
    pub fn new(server: Arc<Server>, shard: usize, conn: Pooled) -> Self {
        Self {
            server,
            shard,
            conn,
            out: BytesMut::with_capacity(8 * 1024),
            pending: Tracker::default(),
            status: TxStatus::Idle,
            version: 0,
            prepared: HashMap::new(),
            portals: HashMap::new(),
            txn_effects: Vec::new(),
            committed: false,
            fatal_seen: false,
            paused: false,
            sql_prepared: std::collections::HashSet::new(),
        }
    }

    /// Queues a message and its expected answer.
    pub fn send(&mut self, f: &Frame, pending: Option<Pending>) {
        self.out.extend_from_slice(&f.bytes);
        if let Some(p) = pending {
            self.pending.push(p);
        }
    }

    /// Idle: nothing pending and no transaction open.
    pub fn idle(&self) -> bool {
        self.pending.is_empty() && self.status == TxStatus::Idle
    }
}

/// The server connections a session holds, by stable id.
#[derive(Default)]
pub struct Slots(Vec<Option<Slot>>);

impl Slots {
    /// Adds a slot; returns its id.
    pub fn insert(&mut self, slot: Slot) -> usize {
        match self.0.iter().position(Option::is_none) {
            Some(i) => {
                self.0[i] = Some(slot);
                i
            }
            None => {
                self.0.push(Some(slot));
                self.0.len() - 1
            }
        }
    }

    /// Removes a slot.
    pub fn remove(&mut self, id: usize) -> Option<Slot> {
        self.0.get_mut(id).and_then(Option::take)
    }

    /// The slot `id`.
    pub fn get(&self, id: usize) -> Option<&Slot> {
        self.0.get(id).and_then(Option::as_ref)
    }

    /// The slot `id`, mutably.
    pub fn get_mut(&mut self, id: usize) -> Option<&mut Slot> {
        self.0.get_mut(id).and_then(Option::as_mut)
    }

    /// The id of the slot on `server`.
    pub fn find(&self, server: &Arc<Server>) -> Option<usize> {
        self.iter()
            .find(|(_, s)| Arc::ptr_eq(&s.server, server))
            .map(|(i, _)| i)
    }

    /// Every slot with its id.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }

    /// Every slot with its id, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Slot)> {
        self.0
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|s| (i, s)))
    }

    /// Ids of every slot.
    pub fn ids(&self) -> Vec<usize> {
        self.iter().map(|(i, _)| i).collect()
    }

    /// Takes every slot out.
    pub fn drain(&mut self) -> Vec<Slot> {
        self.0.drain(..).flatten().collect()
    }
}

impl std::ops::Index<usize> for Slots {
    type Output = Slot;
    /// Ids come from the session's own books: a missing one is a bug.
    fn index(&self, id: usize) -> &Slot {
        match self.get(id) {
            Some(s) => s,
            None => panic!("no server connection {id}"),
        }
    }
}

impl std::ops::IndexMut<usize> for Slots {
    fn index_mut(&mut self, id: usize) -> &mut Slot {
        match self.get_mut(id) {
            Some(s) => s,
            None => panic!("no server connection {id}"),
        }
    }
}
