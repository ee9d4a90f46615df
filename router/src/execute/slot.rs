//! A server connection checked out by one client, with what it has been
//! sent and not yet answered.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sql_rewrite::route::Plan;
use sql_rewrite::{Classification, SessionEffect};

use crate::backend::{Pooled, Server};
use crate::protocol::Frame;

/// A statement the client prepared: its original Parse bytes (re-sent as
/// they are to other servers) and how it routes.
#[derive(Debug)]
pub struct Statement {
    /// The client's Parse message.
    pub parse: Frame,
    /// Its classification.
    pub class: Classification,
    /// Its route plan (`None` when no table is sharded).
    pub plan: Option<Arc<Plan>>,
}

/// What a message sent to a server will be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Parse → ParseComplete.
    Parse,
    /// Bind → BindComplete.
    Bind,
    /// Describe → [ParameterDescription] RowDescription | NoData.
    Describe,
    /// Execute → rows, then CommandComplete | EmptyQuery | PortalSuspended.
    Execute,
    /// Close → CloseComplete.
    Close,
    /// Sync → ReadyForQuery.
    Sync,
    /// Query → anything, then ReadyForQuery.
    Query,
    /// FunctionCall → FunctionCallResponse, then ReadyForQuery.
    FunctionCall,
}

impl Kind {
    /// Ends with ReadyForQuery (and so survives an error).
    pub fn ends_with_ready(self) -> bool {
        matches!(self, Kind::Sync | Kind::Query | Kind::FunctionCall)
    }
}

/// Undo information for an optimistic Parse.
#[derive(Debug, Clone)]
pub struct ParseUndo {
    /// Statement name.
    pub name: Bytes,
    /// What the client registry held before (`None` for proxy-injected parses).
    pub registry_before: Option<Option<Arc<Statement>>>,
    /// What the server connection held before.
    pub slot_before: Option<Arc<Statement>>,
}

/// One message awaiting its answer.
#[derive(Debug)]
pub struct Pending {
    /// The kind of answer expected.
    pub kind: Kind,
    /// The proxy sent it: its answers are not for the client.
    pub swallow: bool,
    /// An error (or a ROLLBACK) arrived for it: its effects do not count.
    pub errored: bool,
    /// Session effects to record when it completes.
    pub effects: Vec<SessionEffect>,
    /// For Parse: how to undo the optimistic registration.
    pub undo: Option<ParseUndo>,
    /// One of several shards' answers to one statement, merged by the session.
    pub gather: bool,
    /// In a mirrored statement, the shard whose answer the client sees.
    pub lead: bool,
    /// In a batch gathered from several shards: the client-visible step it
    /// answers (`None`: the proxy's own message).
    pub step: Option<usize>,
}

impl Pending {
    /// A plain entry.
    pub fn new(kind: Kind, swallow: bool) -> Self {
        Self {
            kind,
            swallow,
            errored: false,
            effects: Vec::new(),
            undo: None,
            gather: false,
            lead: false,
            step: None,
        }
    }
}

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
    pub pending: VecDeque<Pending>,
    /// Transaction status from the last ReadyForQuery.
    pub status: u8,
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
}

impl Slot {
    /// Wraps a fresh checkout.
    pub fn new(server: Arc<Server>, shard: usize, conn: Pooled) -> Self {
        Self {
            server,
            shard,
            conn,
            out: BytesMut::with_capacity(8 * 1024),
            pending: VecDeque::new(),
            status: b'I',
            version: 0,
            prepared: HashMap::new(),
            portals: HashMap::new(),
            txn_effects: Vec::new(),
            committed: false,
            fatal_seen: false,
            paused: false,
        }
    }

    /// Queues a message and its expected answer.
    pub fn send(&mut self, f: &Frame, pending: Option<Pending>) {
        self.out.extend_from_slice(&f.bytes);
        if let Some(p) = pending {
            self.pending.push_back(p);
        }
    }

    /// Idle: nothing pending and no transaction open.
    pub fn idle(&self) -> bool {
        self.pending.is_empty() && self.status == b'I'
    }
}
