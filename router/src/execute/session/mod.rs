//! One client's session after login, along a message's way:
//!
//! - this file: the loop that reads the client and the servers, and the
//!   client's requests (messages up to Sync, Flush, a Query or a call),
//!   run one group at a time ([`crate::execute::request`]);
//! - `place`: where a group runs (a shard's primary or replica, several
//!   shards, the proxy itself) and the transaction's participants;
//! - `forward`: sending a group's messages to one server, with the
//!   client's prepared statements made to exist there;
//! - `replies`: the servers' answers, relayed or swallowed;
//! - `scatter`: a statement on several shards, its answers merged;
//! - `sql_prepared`: SQL-level PREPARE / EXECUTE / DEALLOCATE.

mod control;
mod copy;
mod cursor;
mod forward;
mod place;
mod replies;
mod scatter;
mod servers;
mod sql_prepared;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::gather::Gather;
use super::request::{self, Ending, Group, MAX_REQUEST_MESSAGES};
use super::settings::Settings;
use super::slot::{Kind, Pending, Slot, Slots, Statement};
use super::transaction::{Mode, Transaction};
use crate::cancel::{self, Running};
use crate::context::Context;
use crate::frontend::stream::{ClientRead, ClientWrite};
use crate::protocol::frame::{self, Frame};
use crate::protocol::messages::{self, Malformed, Severity};
use crate::protocol::{SqlState, TxStatus};

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

/// A request being run: its groups still to start and how it ends.
struct Run {
    groups: VecDeque<Group>,
    ending: Ending,
    /// An error reached the client: the rest of the request is skipped.
    errored: bool,
    /// Unit ends (ReadyForQuery of the proxy's Syncs) still owed by servers.
    owed: usize,
    /// Written to the client when the unit in flight is answered, unless
    /// it failed (a proxy-run COMMIT's CommandComplete).
    after: Option<BytesMut>,
    /// The implicit transaction's COMMIT or ROLLBACK went out.
    closing: bool,
}

impl Run {
    fn new(groups: Vec<Group>, ending: Ending) -> Self {
        Run {
            groups: groups.into(),
            ending,
            errored: false,
            owed: 0,
            after: None,
            closing: false,
        }
    }
}

/// A COPY FROM STDIN running on a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyIn {
    /// Data flows to the slot; `extended`: started by an Execute, whose
    /// Sync the server ignored during the copy.
    Data { slot: usize, extended: bool },
    /// An extended-protocol COPY ended: the server waits for a Sync (the
    /// client's, which follows its CopyDone, or the proxy's).
    Closing { slot: usize },
    /// The rows go to every shard, each to its key's ([`crate::execute::copy_split::CopySplit`]).
    Split,
    /// A split COPY started by an Execute ended: the client's Sync that
    /// follows its CopyDone is dropped (the request's ReadyForQuery answers it).
    SplitClosing,
}

impl CopyIn {
    fn slot(self) -> Option<usize> {
        match self {
            CopyIn::Data { slot, .. } | CopyIn::Closing { slot } => Some(slot),
            CopyIn::Split | CopyIn::SplitClosing => None,
        }
    }
}

/// One client session.
pub struct Session {
    ctx: Arc<Context>,
    rd: ClientRead,
    wr: ClientWrite,
    cbuf: BytesMut,
    cout: BytesMut,
    slots: Slots,
    /// The client's frames of the request being assembled.
    incoming: Vec<Frame>,
    /// The request being run.
    run: Option<Run>,
    /// After an error in a request that did not end the batch, the
    /// client's messages are skipped up to its Sync.
    skip_to_sync: bool,
    /// The client's transaction.
    txn: Transaction,
    /// The client's prepared statements, by name.
    statements: HashMap<Bytes, Arc<Statement>>,
    /// The client's SQL-level prepared statements (`PREPARE`), by name.
    sql_statements: HashMap<String, Arc<super::slot::SqlStatement>>,
    /// Merged cross-shard results read with a row limit, by portal.
    suspended: HashMap<Bytes, super::held::Held>,
    /// The shard each open SQL cursor (`DECLARE`) reads.
    cursors: HashMap<String, usize>,
    /// Where each portal bound in the open transaction lives (slot id).
    portals: HashMap<Bytes, usize>,
    settings: Settings,
    rr: usize,
    cancel: Arc<cancel::Slot>,
    /// A statement running on several shards.
    gather: Option<Gather>,
    /// A COPY FROM STDIN in progress: the client's copy messages go there.
    copy_in: Option<CopyIn>,
    /// A server of the open transaction went away while the client idled.
    txn_lost: bool,
    /// A COPY FROM STDIN split over every shard.
    copy_split: Option<super::copy_split::CopySplit>,
    /// Cursors over several shards, run by the proxy.
    merged_cursors: super::held::MergedCursors,
    /// DDL ran since the routing last heard of it (column orders may have
    /// changed): told when its transaction is over.
    ddl_seen: bool,
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
            slots: Slots::default(),
            incoming: Vec::new(),
            run: None,
            skip_to_sync: false,
            txn: Transaction::default(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            sql_statements: HashMap::new(),
            cursors: HashMap::new(),
            suspended: HashMap::new(),
            settings: Settings::from_startup(startup),
            rr: rand::random::<usize>() % 1024,
            cancel,
            gather: None,
            copy_in: None,
            txn_lost: false,
            copy_split: None,
            merged_cursors: super::held::MergedCursors::default(),
            ddl_seen: false,
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
            match self.advance().await {
                Err(End::Protocol(m)) => return Err(self.violation(m)),
                r => r?,
            }
            self.flush().await?;
            let reading_client = self.run.is_none() || self.copy_in.is_some();
            let Self {
                rd, cbuf, slots, ..
            } = self;
            if cbuf.capacity() - cbuf.len() < 4096 {
                cbuf.reserve(16 * 1024);
            }
            for (_, s) in slots.iter_mut() {
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
                (id, r) = read_any(slots) => {
                    match r {
                        Ok(n) if n > 0 => {
                            self.process_server(id);
                            self.resume_paused();
                        }
                        Ok(_) => self.server_lost(id, "server closed the connection unexpectedly"),
                        Err(e) => self.server_lost(id, &e.to_string()),
                    }
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        for id in self.slots.ids() {
            let Some(slot) = self.slots.get_mut(id) else {
                continue;
            };
            if slot.out.is_empty() {
                continue;
            }
            let res = slot.conn.wr.write_all(&slot.out).await;
            slot.out.clear();
            if let Err(e) = res {
                self.server_lost(id, &e.to_string());
            }
        }
        if !self.cout.is_empty() {
            self.wr.write_all(&self.cout).await?;
            self.cout.clear();
        }
        Ok(())
    }

    /// Reports a protocol violation to the client with a FATAL error.
    fn violation(&mut self, message: String) -> End {
        messages::error_response(
            &mut self.cout,
            Severity::Fatal,
            SqlState::PROTOCOL_VIOLATION,
            &message,
        );
        End::Protocol(message)
    }

    /// Does everything that can be done now: takes the client's next
    /// request, starts its groups as the previous ones are answered, ends
    /// the request.
    async fn advance(&mut self) -> Result<(), End> {
        loop {
            if self.copy_in.is_some() {
                self.copy_messages()?;
            }
            let Some(run) = self.run.as_mut() else {
                match self.next_request()? {
                    Some(run) => {
                        self.run = Some(run);
                        continue;
                    }
                    None => return Ok(()),
                }
            };
            if run.owed > 0 || self.gather.is_some() || self.copy_in.is_some() {
                return Ok(());
            }
            if let Some(after) = run.after.take() {
                if !run.errored {
                    self.cout.extend_from_slice(&after);
                }
            }
            let Some(run) = self.run.as_mut() else {
                continue;
            };
            if !run.errored {
                if let Some(g) = run.groups.pop_front() {
                    self.start_group(g).await?;
                    continue;
                }
            }
            let (ending, errored, closing) = (run.ending, run.errored, run.closing);
            if ending.ends_batch() && self.txn.mode() == Mode::Implicit && !closing {
                self.close_implicit(!errored);
                continue;
            }
            if ending.ends_batch() {
                messages::ready_for_query(&mut self.cout, self.txn.status());
                if !self.txn.open() {
                    // portals and cursors end with their transaction
                    self.portals.clear();
                    self.suspended.clear();
                    self.merged_cursors.transaction_ended();
                    if std::mem::take(&mut self.ddl_seen) {
                        self.ctx.routing.ddl_done();
                    }
                }
            } else if errored {
                self.skip_to_sync = true;
            }
            self.run = None;
        }
    }

    /// The client's next complete request, cut into groups.
    fn next_request(&mut self) -> Result<Option<Run>, End> {
        loop {
            let max = self.ctx.config.proxy.max_message_bytes;
            let f = match frame::split(&mut self.cbuf, max) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(None),
                Err(e) => return Err(End::Protocol(e.to_string())),
            };
            match f.tag {
                b'X' => return Err(End::ClientLeft),
                // outside COPY, Postgres ignores these too
                b'd' | b'c' | b'f' => continue,
                b'Q' | b'F' | b'P' | b'B' | b'D' | b'E' | b'C' | b'S' | b'H' => {}
                t => return Err(End::Protocol(format!("invalid frontend message type {t}"))),
            }
            if self.skip_to_sync {
                if f.tag == b'S' {
                    self.skip_to_sync = false;
                    let mut run = Run::new(Vec::new(), Ending::Sync);
                    run.errored = true;
                    return Ok(Some(run));
                }
                continue;
            }
            let ending = Ending::of(f.tag);
            if !matches!(f.tag, b'S' | b'H') {
                self.incoming.push(f);
            }
            let ending = match ending {
                Some(e) => e,
                None if self.incoming.len() >= MAX_REQUEST_MESSAGES => Ending::Full,
                None => continue,
            };
            let frames = std::mem::take(&mut self.incoming);
            let groups = request::groups(&frames)?;
            self.plan_implicit(&groups, ending)?;
            return Ok(Some(Run::new(groups, ending)));
        }
    }

    /// Forwards the client's COPY messages to the server in COPY FROM STDIN.
    fn copy_messages(&mut self) -> Result<(), End> {
        let max = self.ctx.config.proxy.max_message_bytes;
        while let Some(copy) = self.copy_in {
            match frame::check(&self.cbuf, max) {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(e) => return Err(End::Protocol(e.to_string())),
            }
            let tag = self.cbuf.first().copied().unwrap_or(0);
            if copy == CopyIn::SplitClosing {
                if matches!(tag, b'd' | b'c' | b'f' | b'S') {
                    let _ = frame::split(&mut self.cbuf, max);
                    if tag != b'S' {
                        continue;
                    }
                }
                self.copy_in = None;
                continue;
            }
            if copy == CopyIn::Split {
                if !matches!(tag, b'd' | b'c' | b'f') {
                    return Ok(());
                }
                if let Ok(Some(f)) = frame::split(&mut self.cbuf, max) {
                    self.copy_split_client(&f);
                }
                continue;
            }
            let Some(id) = copy.slot() else {
                return Ok(());
            };
            match copy {
                CopyIn::Data { extended, .. } if matches!(tag, b'd' | b'c' | b'f') => {
                    let Ok(Some(f)) = frame::split(&mut self.cbuf, max) else {
                        return Ok(());
                    };
                    if let Some(slot) = self.slots.get_mut(id) {
                        slot.send(&f, None);
                    }
                    if f.tag != b'd' {
                        self.copy_in = extended.then_some(CopyIn::Closing { slot: id });
                    }
                }
                CopyIn::Data { .. } => return Ok(()),
                CopyIn::Split | CopyIn::SplitClosing => return Ok(()),
                CopyIn::Closing { .. } => {
                    if matches!(tag, b'd' | b'c' | b'f' | b'S') {
                        // the client's Sync after its CopyDone is the server's
                        let _ = frame::split(&mut self.cbuf, max);
                        if tag != b'S' {
                            continue;
                        }
                    }
                    if let Some(slot) = self.slots.get_mut(id) {
                        messages::raw(&mut slot.out, b'S', b"");
                    }
                    self.copy_in = None;
                }
            }
        }
        Ok(())
    }

    /// Writes a proxy-made error for the running request.
    fn fail_request(&mut self, code: SqlState, message: &str) {
        messages::error_response(&mut self.cout, Severity::Error, code, message);
        self.request_failed();
    }

    /// Refuses a statement the planner cannot run correctly: 0A000 with its
    /// reason, and the refusal's kind in the DETAIL (`shardgate refusal:
    /// join_not_colocated`) for tools that count refusals.
    fn refuse(&mut self, r: &sql_rewrite::route::Refusal) {
        let detail = format!("shardgate refusal: {}", r.kind.as_str());
        messages::error_response_detail(
            &mut self.cout,
            Severity::Error,
            SqlState::FEATURE_NOT_SUPPORTED,
            &r.message,
            Some(&detail),
        );
        self.request_failed();
    }

    /// An error reached the client: the request stops, an explicit
    /// transaction fails.
    fn request_failed(&mut self) {
        if let Some(run) = self.run.as_mut() {
            run.errored = true;
        }
        self.txn.fail();
    }

    /// Points the client's cancel key at the servers running its work.
    fn set_cancel(&mut self, ids: &[usize]) {
        let all = ids
            .iter()
            .filter_map(|&i| self.slots.get(i))
            .map(running)
            .collect();
        self.cancel.set(all);
    }

    /// Returns every server connection: clean ones to the pool, others closed.
    async fn release(&mut self) {
        for mut slot in self.slots.drain() {
            if !slot.pending.is_empty() {
                cancel::send(&running(&slot)).await;
                slot.conn.broken = true;
                continue;
            }
            let addr = slot.server.addr.to_string();
            let conn = &mut *slot.conn;
            let reset = async {
                if slot.status != TxStatus::Idle {
                    conn.run_simple(&addr, "ROLLBACK").await?;
                }
                conn.run_simple(&addr, "DISCARD ALL").await
            };
            match tokio::time::timeout(Duration::from_secs(5), reset).await {
                Ok(Ok(TxStatus::Idle)) => {}
                _ => slot.conn.broken = true,
            }
        }
    }
}

/// A slot's server connection, for cancelling what it runs.
fn running(s: &Slot) -> Running {
    Running {
        addr: s.server.addr.clone(),
        pid: s.conn.pid,
        secret: s.conn.secret,
    }
}

/// True for an ErrorResponse with severity FATAL or PANIC.
fn is_fatal(f: &Frame) -> bool {
    let b = f.body();
    b.starts_with(b"SFATAL\0") || b.starts_with(b"SPANIC\0")
}

/// Waits until any slot's server sends bytes (or closes).
fn read_any(
    slots: &mut Slots,
) -> impl std::future::Future<Output = (usize, std::io::Result<usize>)> + '_ {
    std::future::poll_fn(move |cx| {
        for (i, s) in slots.iter_mut() {
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

/// Sends a unit's closing Sync on a slot; its ReadyForQuery ends the unit.
fn end_unit(slot: &mut Slot) {
    messages::raw(&mut slot.out, b'S', b"");
    slot.pending.push(Pending::unit_end(Kind::Sync));
}
