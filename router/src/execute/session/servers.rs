//! Which server connection runs a unit of work: the transaction's
//! participant on the shard (joining it on first use), else a replica or the
//! primary chosen for the statement; the client's settings replayed on it.

use std::sync::Arc;

use sql_rewrite::Target;

use super::Session;
use crate::backend::pool::CheckoutError;
use crate::backend::{Role, Server};
use crate::execute::slot::{Kind, Pending, Slot};
use crate::protocol::messages;
use crate::protocol::SqlState;

/// Whether a server in `role` may run work for `target`.
fn satisfies(role: Role, target: Target) -> bool {
    role == Role::Primary || target == Target::Replica
}

impl Session {
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
                self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, &e.to_string());
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
        slot.pending.push(Pending::quiet(Kind::Query));
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
                self.fail_request(
                    SqlState::CONNECTION_FAILURE,
                    &format!("could not connect to a server: {e}"),
                );
                None
            }
        }
    }

    /// The client's slot on `server`, checked out now if it has none.
    async fn use_server(
        &mut self,
        server: &Arc<Server>,
        shard: usize,
    ) -> Result<usize, CheckoutError> {
        let i = match self.slots.find(server) {
            Some(i) => i,
            None => {
                let conn = server
                    .acquire()
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
        slot.pending.push(Pending::new(Kind::Query, true));
        slot.prepared.remove(&b""[..]);
        slot.version = self.settings.version;
    }
}
