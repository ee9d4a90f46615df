//! `COPY … FROM STDIN` into a sharded or broadcast table: every shard's
//! primary runs the same COPY (in one implicit transaction, so a failure
//! anywhere leaves no rows); the client's rows are split by key
//! ([`crate::execute::copy_split`]) and the client sees one COPY: one
//! CopyInResponse, one CommandComplete with the total, or the first error.

use std::collections::HashMap;

use bytes::BytesMut;
use shard_config::{KeyType, TableRule};
use sql_rewrite::route::values::{self, Converted};
use sql_rewrite::{CopyFormat, CopyIn as CopyStatement, Target};

use super::{is_fatal, CopyIn, End, Session};
use crate::execute::copy_split::{CopySplit, Dest, Splitter};
use crate::execute::request::{Anchor, Group};
use crate::execute::slot::{Kind, Pending};
use crate::execute::transaction::Mode;
use crate::protocol::messages::{self, Malformed, Severity};
use crate::protocol::Frame;
use crate::protocol::SqlState;

impl Session {
    /// Starts a COPY FROM STDIN into mapped table `c.table` on every shard;
    /// `false` when the table is not mapped (it runs as any statement).
    pub(super) async fn start_copy_split(
        &mut self,
        g: &Group,
        sql: &str,
        c: CopyStatement,
    ) -> Result<bool, End> {
        let map = self.ctx.routing.map();
        let Some(rule) = map.table(&c.table).cloned() else {
            return Ok(false);
        };
        let broadcast = matches!(rule, TableRule::Broadcast);
        let key_type = map.key_type(&c.table).unwrap_or(KeyType::Int);
        let key = match (&rule.key(), &c.columns) {
            (None, _) => 0,
            (Some(k), Some(cols)) => {
                match cols.iter().position(|col| col.eq_ignore_ascii_case(k)) {
                    Some(i) => i,
                    None => {
                        self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, &format!("COPY into sharded table {} must list its sharding key {k}: each row goes to the shard of its key", c.table));
                        return Ok(true);
                    }
                }
            }
            (Some(_), None) => {
                self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, &format!("COPY into sharded table {} without a column list is not supported yet: name the columns, so that the proxy finds each row's key", c.table));
                return Ok(true);
            }
        };
        if self.txn.mode() == Mode::Idle {
            self.txn.begin_implicit();
        }
        let shards: Vec<usize> = (0..self.ctx.servers.shards.len()).collect();
        let Some(ids) = self.place_all(&shards, Target::Primary, true).await else {
            return Ok(true);
        };
        let extended = g.anchor != Anchor::Query;
        if extended {
            // the shards run it as a Query; the client's messages are answered here
            let mut answers = BytesMut::new();
            self.local_answers(g, "", &mut answers)?;
            let cut = answer_prefix(&answers);
            self.cout.extend_from_slice(&answers[..cut]);
        }
        let query = crate::execute::request::query_frame(sql);
        for &id in &ids {
            let slot = &mut self.slots[id];
            let mut p = Pending::new(Kind::Query, false);
            p.unit_end = true;
            p.copy = true;
            slot.send(&query, Some(p));
        }
        self.copy_split = Some(CopySplit {
            remaining: ids.len(),
            slots: ids.clone(),
            splitter: Splitter::new(&c, key),
            rule,
            key_type,
            binary: c.format == CopyFormat::Binary,
            broadcast,
            started: 0,
            count: 0,
            error: None,
            open: false,
            extended,
        });
        self.unit_sent(&ids);
        Ok(true)
    }

    /// Runs `COPY … TO STDOUT` of mapped tables: on the one shard its query
    /// reads as it is, or gathered from several shards (merged like the
    /// query) and written as COPY data; `false` when no mapped table is read.
    pub(super) async fn start_copy_out(
        &mut self,
        g: &Group,
        c: sql_rewrite::CopyOut,
    ) -> Result<bool, End> {
        let wf = self.ctx.config.proxy.write_functions.clone();
        let (plan, class) = self.ctx.routing.plan_uncached(&c.query, &wf);
        if plan.is_default() {
            return Ok(false);
        }
        let route = self.ctx.routing.bind(&plan, &[]);
        let route = match route {
            Ok(r) => r,
            Err(r) => {
                self.fail_request(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    &format!("COPY: {}", r.message),
                );
                return Ok(true);
            }
        };
        let target = self.effective(class.target);
        if route.shards.len() == 1 && route.merge.is_none() && route.shards[0].sql.is_none() {
            let shard = route.shards[0].shard;
            let Some(id) = self.place(shard, target, false).await else {
                return Ok(true);
            };
            self.forward_query(id, g.clone(), class)?;
            return Ok(true);
        }
        let Some(writer) = crate::execute::copy_out::CopyWriter::new(&c.options) else {
            self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, "COPY TO STDOUT in the binary format of rows from several shards is not supported yet: use the text or CSV format");
            return Ok(true);
        };
        let f = crate::execute::request::query_frame(&c.query);
        self.scatter_as(&f, route, target, &class, Some(writer))
            .await?;
        Ok(true)
    }

    /// Whether server frames of slot `id` belong to the split COPY.
    pub(super) fn in_copy_split(&self, id: usize) -> bool {
        self.copy_split.as_ref().is_some_and(|c| c.has(id))
            && self
                .slots
                .get(id)
                .is_some_and(|s| s.pending.front().is_some_and(|p| p.copy))
    }

    /// One server frame of a shard running its part of the COPY.
    pub(super) fn copy_split_frame(&mut self, id: usize, f: Frame) -> Result<(), Malformed> {
        let Some(cs) = self.copy_split.as_mut() else {
            return Ok(());
        };
        let lead = cs.slots.first() == Some(&id);
        match f.tag {
            b'G' => {
                cs.started += 1;
                if cs.started == cs.slots.len() && cs.error.is_none() {
                    cs.open = true;
                    self.cout.extend_from_slice(&f.bytes);
                    self.copy_in = Some(CopyIn::Split);
                }
            }
            b'C' => {
                let tag = messages::command_tag(&f)?;
                let n = std::str::from_utf8(tag)
                    .ok()
                    .and_then(|t| t.rsplit(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                if !cs.broadcast || lead {
                    cs.count += n;
                }
            }
            b'E' => {
                let first = cs.error.is_none();
                cs.error.get_or_insert_with(|| f.bytes.clone());
                if is_fatal(&f) {
                    self.slots[id].fatal_seen = true;
                }
                if first {
                    self.abort_copy_split(None);
                }
            }
            b'Z' => {
                let slot = &mut self.slots[id];
                slot.status = messages::ready_status(&f)?;
                slot.pending.answered();
                let (shard, status) = (slot.shard, slot.status);
                self.unit_answered(id, shard, status);
                self.copy_split_answered();
            }
            _ if lead => self.cout.extend_from_slice(&f.bytes),
            _ => {}
        }
        Ok(())
    }

    /// A shard finished (or was lost): after the last, the client gets the
    /// total or the first error.
    pub(super) fn copy_split_answered(&mut self) {
        let Some(cs) = self.copy_split.as_mut() else {
            return;
        };
        cs.remaining = cs.remaining.saturating_sub(1);
        if cs.remaining > 0 {
            return;
        }
        let Some(cs) = self.copy_split.take() else {
            return;
        };
        match cs.error {
            Some(e) => {
                self.cout.extend_from_slice(&e);
                self.request_failed();
            }
            None => messages::command_complete(&mut self.cout, &format!("COPY {}", cs.count)),
        }
    }

    /// A shard of the COPY was lost.
    pub(super) fn copy_split_lost(&mut self, id: usize, why: &str) {
        if !self.copy_split.as_ref().is_some_and(|c| c.has(id)) {
            return;
        }
        self.abort_copy_split(Some((SqlState::CONNECTION_FAILURE, why)));
        self.copy_split_answered();
    }

    /// Fails the COPY: every shard still copying gets CopyFail; the client's
    /// remaining data is dropped. `why`: the proxy's own error.
    fn abort_copy_split(&mut self, why: Option<(SqlState, &str)>) {
        let Some(cs) = self.copy_split.as_mut() else {
            return;
        };
        if let Some((code, message)) = why {
            if cs.error.is_none() {
                let mut e = BytesMut::new();
                messages::error_response(&mut e, Severity::Error, code, message);
                cs.error = Some(e.freeze());
            }
        }
        if cs.open {
            cs.open = false;
            for &id in &cs.slots {
                if let Some(slot) = self.slots.get_mut(id) {
                    messages::raw(&mut slot.out, b'f', b"the COPY failed on another shard\0");
                }
            }
        }
        if self.copy_in == Some(CopyIn::Split) {
            self.copy_in = cs.extended.then_some(CopyIn::SplitClosing);
        }
    }

    /// One client COPY message (CopyData, CopyDone, CopyFail) of the split COPY.
    pub(super) fn copy_split_client(&mut self, f: &Frame) {
        let Some(cs) = self.copy_split.as_mut() else {
            return;
        };
        let mut parts: HashMap<usize, BytesMut> = HashMap::new();
        let n = cs.slots.len();
        let (rule, ty, binary, broadcast) = (&cs.rule, cs.key_type, cs.binary, cs.broadcast);
        let mut route = |field: Option<&[u8]>| -> Result<usize, String> {
            if broadcast {
                return Ok(0);
            }
            let Some(v) = field else {
                return Err("a COPY row has NULL as its sharding key: no shard owns it".into());
            };
            let key = match if binary {
                values::from_binary(v, ty)
            } else {
                values::from_text(v, ty)
            } {
                Converted::Key(k) => k,
                _ => {
                    return Err(format!(
                        "a COPY row's sharding key {} is not a valid {ty:?} value",
                        String::from_utf8_lossy(v)
                    ))
                }
            };
            match values::place(rule, &key) {
                Some((s, None)) => Ok(s),
                Some((_, Some(_))) => Err("COPY into a table kept one table per interval is not supported yet: copy into the interval's own table".into()),
                None => Err(format!("no shard owns the key {}", values::display_key(&key))),
            }
        };
        let mut out = |d: Dest, bytes: &[u8]| match d {
            Dest::Shard(s) if !broadcast => parts.entry(s).or_default().extend_from_slice(bytes),
            _ => {
                for s in 0..n {
                    parts.entry(s).or_default().extend_from_slice(bytes);
                }
            }
        };
        let res = match f.tag {
            b'd' => cs.splitter.feed(f.body(), &mut route, &mut out),
            b'c' => cs.splitter.finish(&mut route, &mut out),
            _ => Ok(()),
        };
        let slots = cs.slots.clone();
        for (s, bytes) in parts {
            if let Some(slot) = slots.get(s).and_then(|&id| self.slots.get_mut(id)) {
                messages::raw(&mut slot.out, b'd', &bytes);
            }
        }
        if let Err(why) = res {
            self.abort_copy_split(Some((SqlState::BAD_COPY_FILE_FORMAT, &why)));
            return;
        }
        if matches!(f.tag, b'c' | b'f') {
            for &id in &slots {
                if let Some(slot) = self.slots.get_mut(id) {
                    slot.send(f, None);
                }
            }
            let extended = self.copy_split.as_mut().is_some_and(|cs| {
                cs.open = false;
                cs.extended
            });
            self.copy_in = extended.then_some(CopyIn::SplitClosing);
        }
    }
}

/// The proxy's answers to the messages before the Execute (ParseComplete,
/// BindComplete, …): everything up to the CommandComplete the Execute
/// would have had, which the shards' COPY answers instead.
pub(super) fn answer_prefix(answers: &[u8]) -> usize {
    let mut at = 0;
    while at + 5 <= answers.len() {
        if answers[at] == b'C' {
            return at;
        }
        let len = u32::from_be_bytes([
            answers[at + 1],
            answers[at + 2],
            answers[at + 3],
            answers[at + 4],
        ]);
        at += 1 + len as usize;
    }
    answers.len()
}
