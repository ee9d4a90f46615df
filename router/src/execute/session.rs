//! One client's session after login: frames from the client are routed to
//! a primary or a replica and forwarded as bytes; answers are relayed back,
//! minus the answers to what the proxy itself injected (replayed settings,
//! lazily prepared statements).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sql_rewrite::route::{preview, Route};
use sql_rewrite::{classify, Classification, SessionEffect, Target, TxnEffect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::gather::Gather;
use super::settings::Settings;
use super::slot::{Kind, ParseUndo, Pending, Slot, Statement};
use super::steps::{Due, Need, Steps};
use crate::backend::{Role, Server};
use crate::cancel::{self, Running};
use crate::context::Context;
use crate::frontend::stream::{ClientRead, ClientWrite};
use crate::protocol::binary::ResultFormats;
use crate::protocol::frame::{self, Frame};
use crate::protocol::messages::{self, Bind, Malformed, Parse, Severity};

/// Why a session ends.
#[derive(Debug, thiserror::Error)]
pub enum End {
    /// The client said goodbye or hung up.
    #[error("client left")]
    ClientLeft,
    /// The client broke the protocol (already told with a FATAL error).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Writing to the client failed.
    #[error("client I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<Malformed> for End {
    fn from(m: Malformed) -> Self {
        End::Protocol(m.to_string())
    }
}

/// What to do after handling a client frame.
enum Flow {
    /// Go on with the next frame.
    Next,
    /// Stop reading the client until the pinned server drains.
    Wait,
}

/// One client session.
pub struct Session {
    ctx: Arc<Context>,
    rd: ClientRead,
    wr: ClientWrite,
    cbuf: BytesMut,
    cout: BytesMut,
    slots: Vec<Slot>,
    /// The slot that must get the client's next message.
    pinned: Option<usize>,
    /// An extended-protocol batch is open on `pinned` (no Sync yet).
    open_batch: bool,
    /// Extended-protocol messages waiting for a routing decision (Parse
    /// messages with their classified statement).
    /// A Bind may come with the bytes that replace it (rewritten statements).
    batch: Vec<Batched>,
    batch_target: Target,
    /// The batch needs another server than the pinned one: wait for it.
    batch_waiting: bool,
    /// The server of an open transaction went away while the client idled.
    txn_lost: bool,
    /// A client frame held back until the pinned server drains.
    deferred: Option<Frame>,
    /// After a proxy-made error, skip the client's messages up to Sync.
    skip_to_sync: bool,
    statements: HashMap<Bytes, Arc<Statement>>,
    settings: Settings,
    rr: usize,
    cancel: Arc<cancel::Slot>,
    /// The server pid the cancel slot points at.
    cancel_pid: i32,
    /// A `BEGIN` answered by the proxy and not yet sent: it goes to the
    /// shard of the transaction's first statement.
    deferred_begin: Option<DeferredBegin>,
    /// A statement running on several shards.
    gather: Option<Gather>,
    /// The shard the waiting batch's Binds route to (`None`: any).
    batch_shard: Option<usize>,
    /// The waiting batch cannot run: refuse it with this message.
    batch_refusal: Option<String>,
    /// The waiting batch's Bind runs on several shards: its route and
    /// statement (the batch goes out at Sync).
    batch_scatter: Option<(Box<Route>, Arc<Statement>)>,
}

/// A client message of a batch waiting for its route: a Parse with its
/// statement, or a Bind with the bytes that replace it (rewritten statements).
type Batched = (Frame, Option<Arc<Statement>>, Option<Bytes>);

/// Where a Bind runs, and the messages that replace it when its statement
/// is rewritten for this execution.
struct BindTarget {
    shard: usize,
    rebind: Option<Bytes>,
}

/// Where a Bind's execution goes.
enum BindRoute {
    /// One shard.
    One(BindTarget),
    /// Several shards, merged.
    Many(Box<Route>),
}

/// Why a batch cannot run on several shards.
const SCATTER_BATCH: &str = "an extended-protocol batch (messages up to Sync) whose statements go to different shards is not supported: send a Sync after each statement";

/// A transaction the client opened and the proxy has not placed yet.
struct DeferredBegin {
    /// The client's BEGIN.
    frame: Frame,
    /// Replica for `BEGIN READ ONLY`, else primary.
    target: Target,
    /// A statement of it was refused: only COMMIT/ROLLBACK are accepted.
    failed: bool,
}

/// Why cross-shard transactions are refused.
const CROSS_SHARD_TXN: &str = "a transaction whose statements go to different shards is not supported yet (cross-shard transactions come with the distributed-transaction work): keep each transaction on one shard";

/// `true` for a text of exactly one statement (no `;` but a trailing one).
fn single_statement(sql: &str) -> bool {
    !sql.trim().trim_end_matches(';').contains(';')
}

/// The SQL after `SHOW ROUTE`, if that is the statement.
fn show_route(sql: &str) -> Option<&str> {
    let t = sql.trim_start();
    let head = t.get(..10)?;
    if !head.eq_ignore_ascii_case("show route") {
        return None;
    }
    let rest = t.get(10..)?;
    rest.starts_with(char::is_whitespace)
        .then(|| rest.trim().trim_end_matches(';').trim())
}

/// Whether a server in `role` may run work for `target`.
fn satisfies(role: Role, target: Target) -> bool {
    role == Role::Primary || target == Target::Replica
}

impl Session {
    /// A session for a logged-in client.
    pub fn new(
        ctx: Arc<Context>,
        rd: ClientRead,
        wr: ClientWrite,
        startup: &[(String, String)],
        cancel: Arc<cancel::Slot>,
    ) -> Self {
        Self {
            ctx,
            rd,
            wr,
            cbuf: BytesMut::with_capacity(8 * 1024),
            cout: BytesMut::with_capacity(8 * 1024),
            slots: Vec::new(),
            pinned: None,
            open_batch: false,
            batch: Vec::new(),
            batch_target: Target::Replica,
            batch_waiting: false,
            txn_lost: false,
            deferred: None,
            skip_to_sync: false,
            statements: HashMap::new(),
            settings: Settings::from_startup(startup),
            rr: rand::random::<usize>() % 1024,
            cancel,
            cancel_pid: 0,
            deferred_begin: None,
            gather: None,
            batch_shard: None,
            batch_refusal: None,
            batch_scatter: None,
        }
    }

    /// Runs the session to its end, then returns the server connections.
    pub async fn run(mut self) {
        let end = self.serve().await;
        if !self.cout.is_empty() {
            // a last error for the client (protocol violation)
            let _ = self.wr.write_all(&self.cout).await;
            let _ = self.wr.shutdown().await;
        }
        match &end {
            Err(End::ClientLeft) | Ok(()) => {}
            Err(e) => tracing::debug!("session ended: {e}"),
        }
        self.release().await;
    }

    async fn serve(&mut self) -> Result<(), End> {
        loop {
            self.process_client().await?;
            self.flush().await?;
            let reading_client = self.deferred.is_none() && !self.batch_waiting;
            let Self {
                rd, cbuf, slots, ..
            } = self;
            if cbuf.capacity() - cbuf.len() < 4096 {
                cbuf.reserve(16 * 1024);
            }
            for s in slots.iter_mut() {
                let b = &mut s.conn.rbuf;
                if b.capacity() - b.len() < 4096 {
                    b.reserve(32 * 1024);
                }
            }
            tokio::select! {
                r = rd.read_buf(cbuf), if reading_client => {
                    if r? == 0 {
                        return Err(End::ClientLeft);
                    }
                }
                (idx, r) = read_any(slots) => {
                    match r {
                        Ok(n) if n > 0 => {
                            self.process_server(idx)?;
                            self.resume_paused()?;
                        }
                        Ok(_) => self.server_lost(idx, "server closed the connection unexpectedly"),
                        Err(e) => self.server_lost(idx, &e.to_string()),
                    }
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        for i in 0..self.slots.len() {
            if self.slots[i].out.is_empty() {
                continue;
            }
            let slot = &mut self.slots[i];
            let res = slot.conn.wr.write_all(&slot.out).await;
            slot.out.clear();
            if let Err(e) = res {
                self.server_lost(i, &e.to_string());
                // indexes shifted: start over
                return Box::pin(self.flush()).await;
            }
        }
        if !self.cout.is_empty() {
            self.wr.write_all(&self.cout).await?;
            self.cout.clear();
        }
        Ok(())
    }

    /// Handles every complete client frame that can be handled now.
    async fn process_client(&mut self) -> Result<(), End> {
        loop {
            if self.batch_waiting {
                self.route_batch().await?;
                if self.batch_waiting {
                    return Ok(());
                }
            }
            let f = match self.deferred.take() {
                Some(f) => f,
                None => match frame::split(&mut self.cbuf, self.ctx.config.proxy.max_message_bytes)
                {
                    Ok(Some(f)) => f,
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(self.violation(e.to_string())),
                },
            };
            match self.client_frame(&f).await {
                Ok(Flow::Next) => {}
                Ok(Flow::Wait) => {
                    self.deferred = Some(f);
                    return Ok(());
                }
                Err(End::Protocol(m)) => return Err(self.violation(m)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reports a protocol violation to the client with a FATAL error.
    fn violation(&mut self, message: String) -> End {
        messages::error_response(&mut self.cout, Severity::Fatal, "08P01", &message);
        End::Protocol(message)
    }

    async fn client_frame(&mut self, f: &Frame) -> Result<Flow, End> {
        if self.gather.is_some() && f.tag != b'X' {
            return Ok(Flow::Wait);
        }
        if self.skip_to_sync {
            if f.tag == b'S' {
                self.skip_to_sync = false;
                messages::ready_for_query(&mut self.cout, b'I');
            }
            return Ok(Flow::Next);
        }
        match f.tag {
            b'Q' => {
                if !self.batch.is_empty() {
                    // a Query ends an unsynced batch: route that first
                    self.route_batch().await?;
                    if self.batch_waiting {
                        return Ok(Flow::Wait);
                    }
                }
                let sql = messages::query_text(f)?;
                if let Some(inner) = show_route(sql) {
                    // answered by the proxy, after what the pinned server still owes
                    if self.answers_owed() {
                        return Ok(Flow::Wait);
                    }
                    let status = match self.pinned.map(|p| &self.slots[p]) {
                        Some(s) => s.status,
                        None if self.deferred_begin.is_some() => b'T',
                        None => b'I',
                    };
                    self.show_route(inner, status);
                    return Ok(Flow::Next);
                }
                let (plan, class) = if self.ctx.routing.sharded {
                    // one parse for both; literal-bearing texts are not cached
                    let (p, c) = self
                        .ctx
                        .routing
                        .plan_uncached(sql, &self.ctx.config.proxy.write_functions);
                    (Some(p), c)
                } else {
                    (None, classify(sql, &self.ctx.config.proxy.write_functions))
                };
                let mut target = self.effective(class.target);
                let mut shard = self.ctx.routing.default_shard();
                let mut rewritten = None;
                if let Some(plan) = plan {
                    if let Some(flow) = self.lazy_transaction(f, sql, &class) {
                        return Ok(flow);
                    }
                    if let Some(b) = &self.deferred_begin {
                        if b.target == Target::Primary {
                            target = Target::Primary;
                        }
                    }
                    if plan.is_default() {
                        // no sharded table: inside a transaction it stays with it
                        if let Some(p) = self.pinned.filter(|&p| self.slots[p].status != b'I') {
                            shard = self.slots[p].shard;
                        }
                    } else {
                        let ctx = self.ctx.clone();
                        let route = ctx
                            .routing
                            .with_topology(|t| plan.bind(t, &[], &mut || ctx.routing.next_id()));
                        match route {
                            Err(r) => return Ok(self.refuse(&r.message)),
                            Ok(route) if route.shards.len() > 1 || route.mirror => {
                                return self.scatter(f, route, target).await
                            }
                            Ok(mut route) => {
                                if let Some(s) = route.shards.pop() {
                                    shard = s.shard;
                                    rewritten = s.sql;
                                }
                            }
                        }
                    }
                }
                if let Some(flow) = self.cross_shard(shard) {
                    return Ok(flow);
                }
                let Some(idx) = self.target_slot(target, shard).await? else {
                    return Ok(self.pinned.map_or(Flow::Next, |_| Flow::Wait));
                };
                self.send_deferred_begin(idx);
                let slot = &mut self.slots[idx];
                slot.prepared.remove(&b""[..]);
                let mut p = Pending::new(Kind::Query, false);
                p.effects = class.session;
                match rewritten {
                    Some(sql) => {
                        messages::query(&mut slot.out, &sql);
                        slot.pending.push_back(p);
                    }
                    None => slot.send(f, Some(p)),
                }
                self.pin(idx, false);
            }
            b'F' => {
                let shard = self
                    .pinned
                    .map_or(self.ctx.routing.default_shard(), |p| self.slots[p].shard);
                let Some(idx) = self.target_slot(Target::Primary, shard).await? else {
                    return Ok(self.pinned.map_or(Flow::Next, |_| Flow::Wait));
                };
                self.send_deferred_begin(idx);
                self.slots[idx].send(f, Some(Pending::new(Kind::FunctionCall, false)));
                self.pin(idx, false);
            }
            b'P' | b'B' | b'D' | b'E' | b'C' | b'S' | b'H' => {
                let stmt = match f.tag {
                    b'P' => Some(self.statement(f)?),
                    _ => None,
                };
                // the statement a Bind names, looked up once for its role and its shard
                let bound_stmt = match f.tag {
                    b'B' => self.bound_statement(Bind::read(f)?.statement).cloned(),
                    _ => None,
                };
                let bound = match &bound_stmt {
                    Some(s) if self.ctx.routing.sharded => self.bind_shard(f, s)?,
                    _ => None,
                };
                if self.open_batch {
                    if let Some(p) = self.pinned {
                        match bound {
                            Some(Err(msg)) => self.refuse_in_batch(p, &msg),
                            Some(Ok(BindRoute::Many(_))) if self.slots[p].status != b'I' => {
                                self.refuse_in_batch(p, CROSS_SHARD_TXN)
                            }
                            Some(Ok(BindRoute::Many(_))) => self.refuse_in_batch(p, SCATTER_BATCH),
                            Some(Ok(BindRoute::One(t))) if t.shard != self.slots[p].shard => {
                                self.refuse_in_batch(p, SCATTER_BATCH)
                            }
                            Some(Ok(BindRoute::One(t))) => self.extended(p, f, stmt, t.rebind)?,
                            None => self.extended(p, f, stmt, None)?,
                        }
                        return Ok(Flow::Next);
                    }
                }
                if self.batch_target == Target::Replica {
                    self.batch_target = stmt
                        .as_ref()
                        .or(bound_stmt.as_ref())
                        .map_or(Target::Replica, |s| self.effective(s.class.target));
                }
                let mut rebind = None;
                match bound {
                    Some(Err(msg)) => {
                        self.batch_refusal.get_or_insert(msg);
                    }
                    Some(Ok(BindRoute::Many(route))) => {
                        if self.batch_shard.is_some() || self.batch_scatter.is_some() {
                            self.batch_refusal
                                .get_or_insert_with(|| SCATTER_BATCH.to_string());
                        } else if let Some(s) = bound_stmt {
                            self.batch_scatter = Some((route, s));
                        }
                    }
                    Some(Ok(BindRoute::One(t))) => match self.batch_shard {
                        _ if self.batch_scatter.is_some() => {
                            self.batch_refusal
                                .get_or_insert_with(|| SCATTER_BATCH.to_string());
                        }
                        Some(b) if b != t.shard => {
                            self.batch_refusal
                                .get_or_insert_with(|| SCATTER_BATCH.to_string());
                        }
                        _ => {
                            self.batch_shard = Some(t.shard);
                            rebind = t.rebind;
                        }
                    },
                    None => {}
                }
                self.batch.push((f.clone(), stmt, rebind));
                let due = if self.batch_scatter.is_some() {
                    // a statement for several shards goes out whole, at Sync
                    matches!(f.tag, b'S' | b'H')
                } else {
                    matches!(f.tag, b'B' | b'D' | b'E' | b'S' | b'H')
                };
                if due {
                    self.route_batch().await?;
                }
            }
            b'd' | b'c' | b'f' => {
                if let Some(p) = self.pinned {
                    self.slots[p].send(f, None);
                }
            }
            b'X' => return Err(End::ClientLeft),
            t => return Err(End::Protocol(format!("invalid frontend message type {t}"))),
        }
        Ok(Flow::Next)
    }

    /// A client's Parse as a registry entry, classified once.
    fn statement(&self, f: &Frame) -> Result<Arc<Statement>, End> {
        let p = Parse::read(f)?;
        let routing = &self.ctx.routing;
        Ok(Arc::new(Statement {
            parse: f.clone(),
            class: classify(p.query, &self.ctx.config.proxy.write_functions),
            plan: routing.sharded.then(|| routing.plan(p.query)),
        }))
    }

    /// The pinned server still owes the client answers: what the proxy
    /// answers itself must wait for them.
    fn answers_owed(&self) -> bool {
        self.pinned
            .is_some_and(|p| !self.slots[p].pending.is_empty())
    }

    /// Applies `read_from = "primary"`.
    fn effective(&self, t: Target) -> Target {
        match self.ctx.config.routing.read_from {
            shard_config::ReadFrom::Primary => Target::Primary,
            shard_config::ReadFrom::Replicas => t,
        }
    }

    /// The statement a Bind names: the newest Parse of that name in the
    /// waiting batch, else the client's registry.
    fn bound_statement(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        let in_batch = self.batch.iter().rev().find_map(|(bf, s, _)| {
            let s = s.as_ref()?;
            (Parse::read(bf).ok()?.name == name).then_some(s)
        });
        in_batch.or_else(|| self.statements.get(name))
    }

    /// Pins the client to a slot until it goes idle.
    fn pin(&mut self, idx: usize, open_batch: bool) {
        self.pinned = Some(idx);
        self.open_batch = open_batch;
        let s = &self.slots[idx];
        if self.cancel_pid == s.conn.pid {
            return;
        }
        self.cancel_pid = s.conn.pid;
        self.cancel.set(vec![running(s)]);
    }

    /// Points the client's cancel key at every slot of a gathered statement.
    fn pin_gathered(&mut self, idxs: &[usize]) {
        if let Some(&first) = idxs.first() {
            self.pin(first, false);
        }
        self.cancel_pid = 0;
        let all = idxs.iter().map(|&i| running(&self.slots[i])).collect();
        self.cancel.set(all);
    }

    /// The slot for a new unit of work: the pinned one if it can take it,
    /// else a fresh choice. `Ok(None)`: wait for the pinned slot to drain
    /// (when something is pinned), or an error was sent to the client.
    async fn target_slot(&mut self, target: Target, shard: usize) -> Result<Option<usize>, End> {
        if self.txn_lost {
            self.txn_lost = false;
            messages::error_response(
                &mut self.cout,
                Severity::Error,
                "08006",
                "server connection lost: the open transaction was rolled back",
            );
            if self.batch.iter().any(|(f, _, _)| f.tag == b'S') || self.batch.is_empty() {
                messages::ready_for_query(&mut self.cout, b'I');
            } else {
                self.skip_to_sync = true;
            }
            self.batch.clear();
            return Ok(None);
        }
        if let Some(p) = self.pinned {
            let s = &self.slots[p];
            if self.open_batch
                || s.status != b'I'
                || (satisfies(s.server.role, target) && s.shard == shard)
            {
                return Ok(Some(p));
            }
            return Ok(None);
        }
        match self.acquire(target, shard).await {
            Some(i) => Ok(Some(i)),
            None => {
                if self.batch.is_empty() || self.batch.iter().any(|(f, _, _)| f.tag == b'S') {
                    messages::ready_for_query(&mut self.cout, b'I');
                } else {
                    self.skip_to_sync = true;
                }
                self.batch.clear();
                Ok(None)
            }
        }
    }

    /// Sends the waiting batch to one server, or marks it waiting.
    async fn route_batch(&mut self) -> Result<(), End> {
        let target = match &self.deferred_begin {
            // a read-write transaction the proxy has not placed yet: its primary
            Some(b) if b.target == Target::Primary => Target::Primary,
            _ => self.batch_target,
        };
        let had_pin = self.pinned.is_some();
        if let Some(msg) = self.batch_refusal.take() {
            self.batch_scatter = None;
            return self.refuse_batch(msg);
        }
        if self.batch_scatter.is_some() {
            return self.scatter_batch(target).await;
        }
        let shard = match (self.batch_shard, self.pinned) {
            (Some(s), _) => s,
            (None, Some(p)) => self.slots[p].shard,
            (None, None) => self.ctx.routing.default_shard(),
        };
        if self.batch_shard.is_some() {
            if let Some(flow) = self.cross_shard(shard) {
                if matches!(flow, Flow::Next) {
                    // refused in-band on the pinned server: the batch is dropped
                    self.batch.clear();
                    self.batch_shard = None;
                    self.batch_target = Target::Replica;
                    self.open_batch = true;
                    return Ok(());
                }
            }
        }
        let Some(idx) = self.target_slot(target, shard).await? else {
            self.batch_waiting = had_pin && !self.batch.is_empty();
            if !self.batch_waiting {
                self.batch_target = Target::Replica;
                self.batch_shard = None;
            }
            return Ok(());
        };
        self.batch_waiting = false;
        self.batch_shard = None;
        // Preparing and describing are not part of a transaction: only a
        // batch that executes something places a held-back BEGIN.
        if self
            .batch
            .iter()
            .any(|(f, _, _)| matches!(f.tag, b'B' | b'E'))
        {
            self.send_deferred_begin(idx);
        }
        self.pin(idx, true);
        let mut batch = std::mem::take(&mut self.batch);
        self.batch_target = Target::Replica;
        for (f, stmt, rebind) in batch.drain(..) {
            self.extended(idx, &f, stmt, rebind)?;
        }
        // keep the allocation for the next batch
        self.batch = batch;
        Ok(())
    }

    /// A slot on each of the route's shards; `None` when one cannot be had
    /// (the client got the error and ReadyForQuery).
    async fn acquire_all(&mut self, target: Target, route: &Route) -> Option<Vec<usize>> {
        let mut idxs = Vec::with_capacity(route.shards.len());
        for s in &route.shards {
            match self.acquire(target, s.shard).await {
                Some(i) => idxs.push(i),
                None => {
                    messages::ready_for_query(&mut self.cout, b'I');
                    return None;
                }
            }
        }
        Some(idxs)
    }

    /// Chooses a server for `target` and checks out a connection if the
    /// client holds none there; sends an error to the client on failure.
    async fn acquire(&mut self, target: Target, index: usize) -> Option<usize> {
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
        match self.use_server(&shard.primary, index).await {
            Ok(i) => Some(i),
            Err(e) => {
                messages::error_response(
                    &mut self.cout,
                    Severity::Error,
                    "08006",
                    &format!("could not connect to a server: {e}"),
                );
                None
            }
        }
    }

    /// The client's slot on `server`, checked out now if it has none.
    async fn use_server(&mut self, server: &Arc<Server>, shard: usize) -> Result<usize, String> {
        let i = match self
            .slots
            .iter()
            .position(|s| Arc::ptr_eq(&s.server, server))
        {
            Some(i) => i,
            None => {
                let conn = server
                    .checkout()
                    .await
                    .inspect_err(|e| tracing::warn!("{e}"))?;
                self.slots.push(Slot::new(server.clone(), shard, conn));
                self.slots.len() - 1
            }
        };
        self.sync_slot(i);
        Ok(i)
    }

    /// Replays the client's settings on a slot that is behind.
    fn sync_slot(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.version == self.settings.version {
            return;
        }
        messages::query(&mut slot.out, &self.settings.replay_sql());
        slot.pending.push_back(Pending::new(Kind::Query, true));
        slot.prepared.remove(&b""[..]);
        slot.version = self.settings.version;
    }

    /// Makes sure the slot's server holds `stmt` under `name`.
    fn ensure(&mut self, idx: usize, name: &[u8], stmt: &Arc<Statement>) {
        let slot = &mut self.slots[idx];
        let before = slot.prepared.get(name).cloned();
        match &before {
            Some(s) if Arc::ptr_eq(s, stmt) => return,
            Some(_) if !name.is_empty() => {
                messages::close_statement(&mut slot.out, name);
                slot.pending.push_back(Pending::new(Kind::Close, true));
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

    /// Forwards one extended-protocol message to the pinned slot.
    fn extended(
        &mut self,
        idx: usize,
        f: &Frame,
        stmt: Option<Arc<Statement>>,
        rebind: Option<Bytes>,
    ) -> Result<(), End> {
        match f.tag {
            b'P' => {
                let stmt = match stmt {
                    Some(s) => s,
                    None => self.statement(f)?,
                };
                let name = Bytes::copy_from_slice(Parse::read(f)?.name);
                let registry_before = self.statements.get(&name).cloned();
                let slot = &mut self.slots[idx];
                if !name.is_empty()
                    && registry_before.is_none()
                    && slot.prepared.contains_key(&name)
                {
                    // left over from before the client closed it
                    messages::close_statement(&mut slot.out, &name);
                    slot.pending.push_back(Pending::new(Kind::Close, true));
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
            }
            b'B' => {
                let b = Bind::read(f)?;
                let stmt = self.statements.get(b.statement).cloned();
                if let Some(bytes) = rebind {
                    // the statement rewritten for this execution, on the unnamed statement
                    let slot = &mut self.slots[idx];
                    slot.out.extend_from_slice(&bytes);
                    slot.pending.push_back(Pending::new(Kind::Parse, true));
                    slot.pending.push_back(Pending::new(Kind::Bind, false));
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
            b'S' => {
                self.slots[idx].send(f, Some(Pending::new(Kind::Sync, false)));
                self.open_batch = false;
            }
            _ => self.slots[idx].send(f, None),
        }
        Ok(())
    }

    /// Handles every complete frame a server sent.
    fn process_server(&mut self, idx: usize) -> Result<(), End> {
        loop {
            if self.slots.get(idx).is_none_or(|s| s.paused) {
                break;
            }
            let split = frame::split(
                &mut self.slots[idx].conn.rbuf,
                crate::backend::conn::SERVER_MAX_MESSAGE,
            );
            let f = match split {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    self.server_lost(idx, &e.to_string());
                    return Ok(());
                }
            };
            if let Err(e) = self.server_frame(idx, f) {
                self.server_lost(idx, &e.to_string());
                return Ok(());
            }
        }
        if self.pinned == Some(idx)
            && !self.open_batch
            && self.gather.is_none()
            && self.slots.get(idx).is_some_and(Slot::idle)
        {
            self.pinned = None;
        }
        Ok(())
    }

    /// Relays or swallows one server frame and keeps the books.
    fn server_frame(&mut self, idx: usize, f: Frame) -> Result<(), Malformed> {
        if self.gather.is_some() && self.slots[idx].pending.front().is_some_and(|p| p.gather) {
            return self.gather_frame(idx, f);
        }
        let slot = &mut self.slots[idx];
        let swallow = slot.pending.front().is_some_and(|p| p.swallow);
        let front = slot.pending.front().map(|p| p.kind);
        let mut forward = !swallow;
        match f.tag {
            b'Z' => {
                let status = messages::ready_status(&f)?;
                let mut ready = None;
                let mut skipped = Vec::new();
                while let Some(p) = slot.pending.pop_front() {
                    if p.kind.ends_with_ready() {
                        ready = Some(p);
                        break;
                    }
                    skipped.push(p);
                }
                slot.status = status;
                if status == b'I' {
                    slot.portals.clear();
                }
                forward = ready.as_ref().is_some_and(|p| !p.swallow);
                for p in skipped {
                    self.undo(idx, p);
                }
                if let Some(p) = ready {
                    if !p.errored && !p.effects.is_empty() {
                        self.completed(idx, p.effects);
                    }
                }
                let slot = &mut self.slots[idx];
                if status == b'I' && !slot.txn_effects.is_empty() {
                    let effects = std::mem::take(&mut slot.txn_effects);
                    if slot.committed {
                        self.completed(idx, effects);
                    }
                }
                self.slots[idx].committed = false;
            }
            b'E' => {
                if is_fatal(&f) {
                    slot.fatal_seen = true;
                }
                match slot.pending.front_mut() {
                    None => {
                        // an error on an idle connection (shutdown, timeout): not the client's
                        let (code, msg) = messages::error_fields(&f)?;
                        tracing::warn!(server = %slot.server.addr, "{code}: {msg}");
                        slot.fatal_seen = false;
                        forward = false;
                    }
                    Some(p) if p.kind.ends_with_ready() => {
                        p.errored = true;
                    }
                    Some(_) => {
                        // the failed message and everything up to Sync is skipped
                        forward = true;
                        let mut dropped = Vec::new();
                        while let Some(p) = slot.pending.front() {
                            if p.kind.ends_with_ready() {
                                break;
                            }
                            if let Some(p) = slot.pending.pop_front() {
                                dropped.push(p);
                            }
                        }
                        for p in dropped {
                            self.undo(idx, p);
                        }
                    }
                }
            }
            b'1' | b'2' | b'3' => {
                slot.pending.pop_front();
            }
            b'T' | b'n' if front == Some(Kind::Describe) => {
                slot.pending.pop_front();
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
                if front == Some(Kind::Execute) {
                    if let Some(p) = slot.pending.pop_front() {
                        if !p.effects.is_empty() {
                            self.completed(idx, p.effects);
                        }
                    }
                }
            }
            b'I' | b's' if front == Some(Kind::Execute) => {
                slot.pending.pop_front();
            }
            _ => {}
        }
        if forward {
            match (&self.deferred_begin, f.tag) {
                // the client is in a transaction the proxy holds back
                (Some(b), b'Z') => {
                    messages::ready_for_query(&mut self.cout, if b.failed { b'E' } else { b'T' })
                }
                _ => self.cout.extend_from_slice(&f.bytes),
            }
        }
        Ok(())
    }

    /// Rolls back the optimistic registration of a Parse that did not happen.
    fn undo(&mut self, idx: usize, p: Pending) {
        let Some(u) = p.undo else { return };
        if let Some(before) = u.registry_before {
            match before {
                Some(s) => self.statements.insert(u.name.clone(), s),
                None => self.statements.remove(&u.name),
            };
        }
        let slot = &mut self.slots[idx];
        match u.slot_before {
            Some(s) => slot.prepared.insert(u.name, s),
            None => slot.prepared.remove(&u.name),
        };
    }

    /// Records session effects of a statement that completed on a slot.
    fn completed(&mut self, idx: usize, effects: Vec<SessionEffect>) {
        if self.slots[idx].status != b'I' {
            self.slots[idx].txn_effects.extend(effects);
            return;
        }
        let before = self.settings.version;
        let mut discarded = false;
        for e in &effects {
            self.settings.apply(e);
            discarded |= matches!(e, SessionEffect::DiscardAll);
        }
        let slot = &mut self.slots[idx];
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
    fn server_lost(&mut self, idx: usize, why: &str) {
        let mut slot = self.slots.remove(idx);
        slot.conn.broken = true;
        tracing::warn!(server = %slot.server.addr, "server connection lost: {why}");
        match self.pinned {
            Some(p) if p == idx => {
                self.pinned = None;
                if self.open_batch {
                    self.skip_to_sync = true;
                }
                self.open_batch = false;
            }
            Some(p) if p > idx => self.pinned = Some(p - 1),
            _ => {}
        }
        // only the client's own messages deserve an answer
        let waiting = slot.pending.iter().any(|p| !p.swallow);
        let gathered = slot.pending.iter().any(|p| p.gather);
        if gathered {
            if let Some(mut g) = self.gather.take() {
                g.remaining = g.remaining.saturating_sub(1);
                if g.error.is_none() {
                    let mut e = BytesMut::new();
                    messages::error_response(
                        &mut e,
                        Severity::Error,
                        "08006",
                        &format!("server connection lost: {why}"),
                    );
                    g.error = Some(e.freeze());
                }
                if g.remaining == 0 {
                    g.finish(&mut self.cout);
                    self.pinned = None;
                } else {
                    self.gather = Some(g);
                }
            }
        } else if waiting {
            if !slot.fatal_seen {
                messages::error_response(
                    &mut self.cout,
                    Severity::Error,
                    "08006",
                    &format!("server connection lost: {why}"),
                );
            }
            let mut readies = 0;
            for p in &slot.pending {
                if p.kind.ends_with_ready() && !p.swallow {
                    readies += 1;
                }
            }
            for _ in 0..readies {
                messages::ready_for_query(&mut self.cout, b'I');
            }
        } else if slot.status != b'I' {
            self.txn_lost = true;
        }
    }

    /// Holds back a lone `BEGIN` (answered by the proxy) until the
    /// transaction's first statement says which shard it belongs to, and
    /// answers COMMIT/ROLLBACK of a transaction that never reached a server.
    fn lazy_transaction(&mut self, f: &Frame, sql: &str, class: &Classification) -> Option<Flow> {
        let txn = class.txn?;
        if !single_statement(sql) {
            return None;
        }
        match txn {
            TxnEffect::Begin { read_only } if self.pinned.is_none() => {
                if self.deferred_begin.is_some() {
                    return None; // the server would warn; let it not matter
                }
                self.deferred_begin = Some(DeferredBegin {
                    frame: f.clone(),
                    target: if read_only {
                        Target::Replica
                    } else {
                        Target::Primary
                    },
                    failed: false,
                });
                messages::command_complete(&mut self.cout, "BEGIN");
                messages::ready_for_query(&mut self.cout, b'T');
                Some(Flow::Next)
            }
            TxnEffect::Commit | TxnEffect::Rollback => {
                self.deferred_begin.as_ref()?;
                if self.answers_owed() {
                    // answers the client is owed come first (a pipelined Close)
                    return Some(Flow::Wait);
                }
                let b = self.deferred_begin.take()?;
                let tag = if b.failed || txn == TxnEffect::Rollback {
                    "ROLLBACK"
                } else {
                    "COMMIT"
                };
                messages::command_complete(&mut self.cout, tag);
                messages::ready_for_query(&mut self.cout, b'I');
                Some(Flow::Next)
            }
            _ => None,
        }
    }

    /// Sends a held-back BEGIN to the slot that got the transaction.
    fn send_deferred_begin(&mut self, idx: usize) {
        if let Some(b) = self.deferred_begin.take() {
            self.slots[idx].send(&b.frame, Some(Pending::new(Kind::Query, true)));
        }
    }

    /// The refusal when the open transaction lives on another shard than
    /// `shard` (`Some(Flow::Next)`: refused), or `Some(Flow::Wait)` while
    /// the pinned server is still busy with another shard's statement.
    fn cross_shard(&mut self, shard: usize) -> Option<Flow> {
        let p = self.pinned?;
        let s = &self.slots[p];
        if s.shard == shard {
            return None;
        }
        if s.status != b'I' || self.open_batch {
            return Some(self.refuse(CROSS_SHARD_TXN));
        }
        None
    }

    /// Refuses a simple-protocol statement with 0A000: in-band on the pinned
    /// server when there is one (so that an open transaction fails there, as
    /// it would on one server), else answered by the proxy.
    fn refuse(&mut self, message: &str) -> Flow {
        if let Some(p) = self.pinned {
            let slot = &mut self.slots[p];
            messages::query(&mut slot.out, &raise_sql(message));
            slot.pending.push_back(Pending::new(Kind::Query, false));
            return Flow::Next;
        }
        messages::error_response(&mut self.cout, Severity::Error, "0A000", message);
        let status = match &mut self.deferred_begin {
            Some(b) => {
                b.failed = true;
                b'E'
            }
            None => b'I',
        };
        messages::ready_for_query(&mut self.cout, status);
        Flow::Next
    }

    /// Refuses an extended-protocol statement inside a batch already running
    /// on slot `p`: the server raises the error in order, then skips to Sync.
    fn refuse_in_batch(&mut self, p: usize, message: &str) {
        let slot = &mut self.slots[p];
        messages::parse_bind_execute(&mut slot.out, &raise_sql(message));
        slot.pending.push_back(Pending::new(Kind::Parse, true));
        slot.pending.push_back(Pending::new(Kind::Bind, true));
        slot.pending.push_back(Pending::new(Kind::Execute, false));
        slot.prepared.remove(&b""[..]);
    }

    /// Refuses a waiting batch that has not reached any server.
    fn refuse_batch(&mut self, message: String) -> Result<(), End> {
        self.batch_shard = None;
        self.batch_target = Target::Replica;
        self.batch_waiting = false;
        if let Some(p) = self.pinned {
            // a transaction (or a busy server): fail it there, in order
            self.batch.retain(|(f, _, _)| f.tag == b'S');
            self.refuse_in_batch(p, &message);
            let synced = !self.batch.is_empty();
            for (f, _, _) in std::mem::take(&mut self.batch) {
                self.slots[p].send(&f, Some(Pending::new(Kind::Sync, false)));
            }
            self.open_batch = !synced;
            return Ok(());
        }
        messages::error_response(&mut self.cout, Severity::Error, "0A000", &message);
        if self.batch.iter().any(|(f, _, _)| f.tag == b'S') {
            messages::ready_for_query(&mut self.cout, b'I');
        } else {
            self.skip_to_sync = true;
        }
        self.batch.clear();
        Ok(())
    }

    /// The shard a Bind routes to, or the refusal; `None` when its statement
    /// names no sharded table (it goes wherever the batch goes).
    fn bind_shard(
        &self,
        f: &Frame,
        stmt: &Statement,
    ) -> Result<Option<Result<BindRoute, String>>, End> {
        let Some(plan) = stmt.plan.as_ref().filter(|p| !p.is_default()) else {
            return Ok(None);
        };
        let params = messages::bind_params(f)?;
        let ctx = &self.ctx;
        let route = ctx
            .routing
            .with_topology(|t| plan.bind(t, &params, &mut || ctx.routing.next_id()));
        Ok(Some(match route {
            Err(r) => Err(r.message),
            Ok(route) if route.shards.len() > 1 || route.mirror => {
                Ok(BindRoute::Many(Box::new(route)))
            }
            Ok(mut route) => match route.shards.pop() {
                None => Err("no shard to run this statement".to_string()),
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
                    Ok(BindRoute::One(BindTarget {
                        shard: t.shard,
                        rebind,
                    }))
                }
            },
        }))
    }

    /// Runs a simple-protocol statement on several shards and merges the answers.
    async fn scatter(&mut self, f: &Frame, route: Route, target: Target) -> Result<Flow, End> {
        if let Some(p) = self.pinned {
            if self.open_batch || self.slots[p].status != b'I' {
                return Ok(self.refuse(CROSS_SHARD_TXN));
            }
            return Ok(Flow::Wait);
        }
        if self.deferred_begin.is_some() {
            return Ok(self.refuse(CROSS_SHARD_TXN));
        }
        let Some(idxs) = self.acquire_all(target, &route).await else {
            return Ok(Flow::Next);
        };
        for (k, (&i, s)) in idxs.iter().zip(&route.shards).enumerate() {
            let slot = &mut self.slots[i];
            slot.prepared.remove(&b""[..]);
            let mut p = Pending::new(Kind::Query, false);
            p.gather = true;
            p.lead = k == 0;
            match &s.sql {
                Some(sql) => {
                    messages::query(&mut slot.out, sql);
                    slot.pending.push_back(p);
                }
                None => slot.send(f, Some(p)),
            }
        }
        self.gather = Some(Gather::for_route(&idxs, route.mirror, route.merge, &[]));
        self.pin_gathered(&idxs);
        Ok(Flow::Next)
    }

    /// Runs the waiting batch, whose Bind goes to several shards: each
    /// shard gets the batch with the statement rewritten for it; the client
    /// gets one answer per message it sent, rows merged.
    async fn scatter_batch(&mut self, target: Target) -> Result<(), End> {
        if let Err(msg) = scatter_shape(&self.batch) {
            self.batch_scatter = None;
            return self.refuse_batch(msg);
        }
        if let Some(p) = self.pinned {
            if self.open_batch || self.slots[p].status != b'I' {
                self.batch_scatter = None;
                return self.refuse_batch(CROSS_SHARD_TXN.to_string());
            }
            // the previous batch is still being answered
            self.batch_waiting = true;
            return Ok(());
        }
        if self.deferred_begin.is_some() {
            self.batch_scatter = None;
            return self.refuse_batch(CROSS_SHARD_TXN.to_string());
        }
        let Some((route, bound)) = self.batch_scatter.take() else {
            return Ok(());
        };
        self.batch_waiting = false;
        self.batch_shard = None;
        self.batch_target = Target::Replica;
        let Some(idxs) = self.acquire_all(target, &route).await else {
            self.batch.clear();
            return Ok(());
        };
        let batch = std::mem::take(&mut self.batch);
        let merging = route.merge.is_some();
        let bind = batch
            .iter()
            .find(|(f, _, _)| f.tag == b'B')
            .map(|(f, _, _)| f.clone());
        let Some(bind) = bind else {
            return Ok(());
        };
        let types = messages::parse_param_types(&bound.parse)?;
        let original = Parse::read(&bound.parse)?.query;
        // the client's messages, each one answer
        let mut steps = Steps::default();
        let mut step_of = Vec::with_capacity(batch.len());
        for (f, _, _) in &batch {
            step_of.push(match f.tag {
                b'E' => Some(steps.push(Need::All)),
                b'S' => None,
                _ => Some(steps.push(Need::First)),
            });
        }
        for (k, (&i, s)) in idxs.iter().zip(&route.shards).enumerate() {
            let sql = s.sql.as_deref().unwrap_or(original);
            let rebound = messages::rebind(&bind, sql, &types, s.params.as_deref(), merging)?;
            let slot = &mut self.slots[i];
            let mut described = false;
            let pending = |kind, swallow, step| {
                let mut p = Pending::new(kind, swallow);
                p.gather = true;
                p.lead = k == 0;
                p.step = step;
                p
            };
            for ((f, stmt, _), &step) in batch.iter().zip(&step_of) {
                match f.tag {
                    b'P' => {
                        slot.send(f, Some(pending(Kind::Parse, false, step)));
                        if let Some(st) = stmt {
                            let name = Bytes::copy_from_slice(Parse::read(f)?.name);
                            slot.prepared.insert(name, st.clone());
                        }
                    }
                    b'B' => {
                        slot.out.extend_from_slice(&rebound);
                        slot.pending.push_back(pending(Kind::Parse, true, None));
                        slot.pending.push_back(pending(Kind::Bind, false, step));
                        slot.prepared.remove(&b""[..]);
                    }
                    b'D' => {
                        described = true;
                        slot.send(f, Some(pending(Kind::Describe, false, step)));
                    }
                    b'E' => {
                        if !described {
                            // the merge needs the columns' types
                            let (portal, _) = messages::execute_parts(f)?;
                            messages::describe_portal(&mut slot.out, portal);
                            slot.pending.push_back(pending(Kind::Describe, true, None));
                        }
                        slot.send(f, Some(pending(Kind::Execute, false, step)));
                    }
                    b'C' => {
                        let t = messages::Target::read(f)?;
                        if t.kind == b'S' {
                            slot.prepared.remove(t.name);
                        }
                        slot.send(f, Some(pending(Kind::Close, false, step)));
                    }
                    _ => slot.send(f, Some(pending(Kind::Sync, false, None))),
                }
            }
        }
        // the client's registry, once
        for (f, stmt, _) in &batch {
            match (f.tag, stmt) {
                (b'P', Some(st)) => {
                    let name = Bytes::copy_from_slice(Parse::read(f)?.name);
                    self.statements.insert(name, st.clone());
                }
                (b'C', _) => {
                    let t = messages::Target::read(f)?;
                    if t.kind == b'S' {
                        self.statements.remove(t.name);
                    }
                }
                _ => {}
            }
        }
        let params = messages::bind_params(&bind)?;
        let mut gather = Gather::for_route(&idxs, route.mirror, route.merge, &params);
        gather.steps = Some(steps);
        if merging {
            let formats = ResultFormats::new(messages::result_formats(&bind)?);
            if formats.any_binary() {
                gather.binary = Some((formats, Vec::new()));
            }
        }
        self.gather = Some(gather);
        self.pin_gathered(&idxs);
        Ok(())
    }

    /// One frame of a shard's answer to a batch gathered from several shards.
    fn gather_ext_frame(&mut self, idx: usize, f: Frame) -> Result<(), Malformed> {
        let Some(g) = self.gather.as_mut() else {
            return Ok(());
        };
        let slot = &mut self.slots[idx];
        let Some((kind, step, lead)) = slot.pending.front().map(|p| (p.kind, p.step, p.lead))
        else {
            return Ok(());
        };
        let mut done = None;
        match f.tag {
            b'1' | b'2' | b'3' => {
                slot.pending.pop_front();
                done = step.map(|k| (k, Some(f.bytes.clone())));
            }
            b'T' if kind == Kind::Describe => {
                slot.pending.pop_front();
                if g.row_description.is_none() {
                    let described = describe_gathered(g, &f)?;
                    g.row_description = Some(described);
                }
                done = step.map(|k| (k, g.row_description.clone()));
            }
            b'n' if kind == Kind::Describe => {
                slot.pending.pop_front();
                done = step.map(|k| (k, Some(f.bytes.clone())));
            }
            b'D' => gather_row(g, slot, idx, &f, lead, &mut self.cout)?,
            b'C' | b'I' | b's' if kind == Kind::Execute => {
                slot.pending.pop_front();
                g.empty |= f.tag == b'I';
                gather_source_end(g, idx, &f, lead, &mut self.cout)?;
                done = step.map(|k| (k, None));
            }
            b'E' => {
                if is_fatal(&f) {
                    slot.fatal_seen = true;
                }
                g.error.get_or_insert_with(|| f.bytes.clone());
                // the server skips to Sync
                while slot
                    .pending
                    .front()
                    .is_some_and(|p| !p.kind.ends_with_ready())
                {
                    slot.pending.pop_front();
                }
                gather_source_end(g, idx, &f, lead, &mut self.cout)?;
            }
            b'Z' => return self.gathered_ready(idx, &f),
            _ => self.cout.extend_from_slice(&f.bytes),
        }
        if let Some((k, answer)) = done {
            if let Some(st) = g.steps.as_mut() {
                st.done(k, answer);
            }
        }
        // answers due, in the client's order, until an error stops them
        while g.error.is_none() {
            match g.steps.as_mut().and_then(|st| st.next(g.shards)) {
                Some(Due::Answer(b)) => self.cout.extend_from_slice(&b),
                Some(Due::Complete) => g.end_command(&mut self.cout),
                None => break,
            }
        }
        Ok(())
    }

    /// One frame of a shard's answer to a scattered statement.
    fn gather_frame(&mut self, idx: usize, f: Frame) -> Result<(), Malformed> {
        let Some(g) = self.gather.as_mut() else {
            return Ok(());
        };
        if g.steps.is_some() {
            return self.gather_ext_frame(idx, f);
        }
        let slot = &mut self.slots[idx];
        let lead = slot.pending.front().is_some_and(|p| p.lead);
        if g.mirror && f.tag != b'Z' {
            if lead {
                g.lead_failed |= f.tag == b'E';
                self.cout.extend_from_slice(&f.bytes);
            } else if f.tag == b'E' && g.error.is_none() {
                g.error = Some(f.bytes.clone());
            }
            return Ok(());
        }
        match f.tag {
            b'T' => {
                if !g.described {
                    let t = describe_gathered(g, &f)?;
                    if g.error.is_none() {
                        self.cout.extend_from_slice(&t);
                    }
                }
            }
            b'D' => gather_row(g, slot, idx, &f, lead, &mut self.cout)?,
            b'C' => gather_source_end(g, idx, &f, lead, &mut self.cout)?,
            b'E' => {
                if is_fatal(&f) {
                    slot.fatal_seen = true;
                }
                g.error.get_or_insert_with(|| f.bytes.clone());
                gather_source_end(g, idx, &f, lead, &mut self.cout)?;
            }
            b'I' => {}
            b'Z' => self.gathered_ready(idx, &f)?,
            _ => self.cout.extend_from_slice(&f.bytes),
        }
        Ok(())
    }

    /// A shard's ReadyForQuery after its part of a gathered statement; the
    /// last one ends the client's answer.
    fn gathered_ready(&mut self, idx: usize, f: &Frame) -> Result<(), Malformed> {
        let slot = &mut self.slots[idx];
        slot.status = messages::ready_status(f)?;
        slot.pending.pop_front();
        slot.portals.clear();
        let Some(g) = self.gather.as_mut() else {
            return Ok(());
        };
        g.remaining = g.remaining.saturating_sub(1);
        if g.remaining == 0 {
            if let Some(g) = self.gather.take() {
                g.finish(&mut self.cout);
            }
            self.pinned = None;
        }
        Ok(())
    }

    /// Reads on from slots whose merge queue has room again.
    fn resume_paused(&mut self) -> Result<(), End> {
        loop {
            let merge = self.gather.as_ref().and_then(|g| g.merge.as_ref());
            let ready = (0..self.slots.len())
                .find(|&i| self.slots[i].paused && merge.is_none_or(|m| m.has_room(i)));
            let Some(i) = ready else {
                return Ok(());
            };
            self.slots[i].paused = false;
            self.process_server(i)?;
        }
    }

    /// Answers `SHOW ROUTE <sql>`: one row per target shard.
    fn show_route(&mut self, sql: &str, status: u8) {
        let ctx = self.ctx.clone();
        let read_from_primary = ctx.config.routing.read_from == shard_config::ReadFrom::Primary;
        let rows = ctx.routing.with_topology(|t| {
            preview(
                sql,
                t,
                &ctx.config.proxy.write_functions,
                &[],
                read_from_primary,
                &mut || ctx.routing.next_id(),
            )
        });
        match rows {
            Err(r) => messages::error_response(
                &mut self.cout,
                Severity::Error,
                "0A000",
                &format!("SHOW ROUTE: refused: {}", r.message),
            ),
            Ok(rows) => {
                messages::row_description(&mut self.cout, &["shard", "role", "sql"]);
                for r in &rows {
                    messages::data_row(
                        &mut self.cout,
                        &[Some(&r.shard), Some(r.role), Some(&r.sql)],
                    );
                }
                messages::command_complete(&mut self.cout, &format!("SHOW {}", rows.len()));
            }
        }
        messages::ready_for_query(&mut self.cout, status);
    }

    /// Returns every server connection: clean ones to the pool, others closed.
    async fn release(&mut self) {
        for mut slot in self.slots.drain(..) {
            if !slot.pending.is_empty() {
                cancel::send(&running(&slot)).await;
                slot.conn.broken = true;
                continue;
            }
            let addr = slot.server.addr.to_string();
            let conn = &mut *slot.conn;
            let reset = async {
                if slot.status != b'I' {
                    conn.run_simple(&addr, "ROLLBACK").await?;
                }
                conn.run_simple(&addr, "DISCARD ALL").await
            };
            match tokio::time::timeout(Duration::from_secs(5), reset).await {
                Ok(Ok(b'I')) => {}
                _ => slot.conn.broken = true,
            }
        }
    }
}

/// The RowDescription the client sees for a gathered statement (hidden
/// columns removed, formats as the client asked); prepares the merge.
fn describe_gathered(g: &mut Gather, f: &Frame) -> Result<Bytes, Malformed> {
    g.described = true;
    let mut t = f.bytes.clone();
    if let Some(m) = g.merge.as_mut() {
        match m.describe(f)? {
            Ok(visible) => t = visible,
            Err(why) => g.fail("0A000", &why),
        }
    } else if let Some(a) = g.agg.as_mut() {
        if let Err(why) = a.describe(f)? {
            g.fail("0A000", &why);
        }
    }
    if let Some((formats, types)) = g.binary.as_mut() {
        let frame = Frame {
            tag: b'T',
            bytes: t.clone(),
        };
        *types = super::merge::row_description_types(&frame)?;
        let unsupported = formats.unsupported(types);
        t = formats.describe(&t)?.freeze();
        if let Some(oid) = unsupported {
            g.fail(
                "0A000",
                &format!("a merged cross-shard result cannot send type oid {oid} in binary yet: ask for text results"),
            );
        }
    }
    Ok(t)
}

/// One DataRow of a gathered statement: into the merge or the combined
/// aggregate, or on to the client (a mirrored statement: the lead's only).
fn gather_row(
    g: &mut Gather,
    slot: &mut Slot,
    idx: usize,
    f: &Frame,
    lead: bool,
    out: &mut BytesMut,
) -> Result<(), Malformed> {
    if g.error.is_some() || (g.mirror && !lead) {
        return Ok(());
    }
    if let Some(m) = g.merge.as_mut() {
        if m.push(idx, f.bytes.clone()) {
            slot.paused = true;
        }
        return drain_merge(g, out);
    }
    if let Some(a) = g.agg.as_mut() {
        if let Err(why) = a.feed(&f.bytes)? {
            g.fail("0A000", &why);
        }
        return Ok(());
    }
    out.extend_from_slice(&f.bytes);
    Ok(())
}

/// A shard's end of rows (CommandComplete, an error, …): its count is
/// added, or the merge stops waiting for it.
fn gather_source_end(
    g: &mut Gather,
    idx: usize,
    f: &Frame,
    lead: bool,
    out: &mut BytesMut,
) -> Result<(), Malformed> {
    if let Some(m) = g.merge.as_mut() {
        m.finish_source(idx);
        return drain_merge(g, out);
    }
    if f.tag == b'C' && (!g.mirror || lead) {
        g.add_tag(messages::command_tag(f)?);
    }
    Ok(())
}

/// Sends the rows the merge can release now (none after an error).
fn drain_merge(g: &mut Gather, out: &mut BytesMut) -> Result<(), Malformed> {
    if g.error.is_some() {
        return Ok(());
    }
    let Some(m) = g.merge.as_mut() else {
        return Ok(());
    };
    let failed = if g.binary.is_none() {
        m.drain(out)?;
        m.failed.take()
    } else {
        let mut rows = BytesMut::new();
        m.drain(&mut rows)?;
        let failed = m.failed.take();
        g.emit_rows(&rows, out);
        failed
    };
    if let Some(why) = failed {
        g.fail("22003", &why);
    }
    Ok(())
}

/// Whether a batch can run on several shards: one Bind, its Execute
/// (all rows), optionally a Describe of its portal and Closes, ending in Sync.
fn scatter_shape(batch: &[Batched]) -> Result<(), String> {
    let refuse = |what: &str| {
        Err(format!(
            "a prepared statement that runs on several shards must come as Bind, Describe, Execute, Sync: {what}"
        ))
    };
    let mut portal: Option<&[u8]> = None;
    let mut executed = false;
    for (i, (f, _, _)) in batch.iter().enumerate() {
        match f.tag {
            b'P' | b'C' => {}
            b'B' if portal.is_some() => return refuse("a second Bind in the same batch"),
            b'B' => portal = Some(Bind::read(f).map_err(|e| e.to_string())?.portal),
            b'D' => {
                let t = messages::Target::read(f).map_err(|e| e.to_string())?;
                if t.kind != b'P' || portal != Some(t.name) {
                    return refuse("a Describe of something else than its portal");
                }
            }
            b'E' => {
                let (name, max_rows) = messages::execute_parts(f).map_err(|e| e.to_string())?;
                if executed || portal != Some(name) {
                    return refuse("an Execute of another portal");
                }
                if max_rows != 0 {
                    return refuse(
                        "an Execute with a row limit (fetch size); read all rows at once",
                    );
                }
                executed = true;
            }
            b'S' if i + 1 == batch.len() && executed => {}
            b'S' => return refuse("a Sync before its Execute"),
            _ => return refuse("a Flush before Sync"),
        }
    }
    if !executed {
        return refuse("no Execute");
    }
    Ok(())
}

/// A slot's server connection, for cancelling what it runs.
fn running(s: &Slot) -> Running {
    Running {
        addr: s.server.addr.clone(),
        pid: s.conn.pid,
        secret: s.conn.secret,
    }
}

/// A statement that makes the server raise `message` with SQLSTATE 0A000.
fn raise_sql(message: &str) -> String {
    let text = message.replace('$', "").replace('\'', "''");
    format!(
        "DO $shardgate$ BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = '{text}'; END $shardgate$"
    )
}

/// True for an ErrorResponse with severity FATAL or PANIC.
fn is_fatal(f: &Frame) -> bool {
    let b = f.body();
    b.starts_with(b"SFATAL\0") || b.starts_with(b"SPANIC\0")
}

/// Waits until any slot's server sends bytes (or closes).
fn read_any(
    slots: &mut [Slot],
) -> impl std::future::Future<Output = (usize, std::io::Result<usize>)> + '_ {
    std::future::poll_fn(move |cx| {
        for (i, s) in slots.iter_mut().enumerate() {
            if s.paused {
                continue;
            }
            let conn = &mut *s.conn;
            if let std::task::Poll::Ready(r) =
                tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut conn.rd), cx, &mut conn.rbuf)
            {
                return std::task::Poll::Ready((i, r));
            }
        }
        std::task::Poll::Pending
    })
}
