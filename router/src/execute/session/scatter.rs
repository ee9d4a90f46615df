//! A statement on several shards: sent to each (rewritten for it), the
//! answers gathered into one for the client: rows concatenated or merged,
//! counts summed, the first error, one answer per message the client sent.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sql_rewrite::route::Route;
use sql_rewrite::{Classification, Target};

use super::place::writes;
use super::{end_unit, is_fatal, End, Session};
use crate::execute::gather::Gather;
use crate::execute::held::Held;
use crate::protocol::SqlState;

/// Bytes of merged rows the proxy holds for a row-limited Execute.
const HELD_BYTES_LIMIT: usize = 256 << 20;
use crate::execute::request::Group;
use crate::execute::slot::{Kind, Pending, Slot, Statement};
use crate::execute::steps::{Due, Need, Steps};
use crate::execute::transaction::Mode;
use crate::protocol::binary::formats::ResultFormats;
use crate::protocol::messages::{self, Bind, Malformed, Parse};
use crate::protocol::Frame;

/// A pending answer of one shard's part in a gathered statement.
fn gathered(kind: Kind, swallow: bool, lead: bool, step: Option<usize>) -> Pending {
    let mut p = Pending::new(kind, swallow);
    p.gather = true;
    p.lead = lead;
    p.step = step;
    p
}

impl Session {
    /// The shards of a route, each with a slot (joining the transaction, or
    /// opening the proxy's own for a write); `None`: the client got the error.
    async fn route_slots(
        &mut self,
        route: &Route,
        target: Target,
        class: &Classification,
    ) -> Option<Vec<usize>> {
        let w = writes(class);
        if w && self.txn.mode() == Mode::Idle {
            // one statement writing several shards: all of it or nothing
            self.txn.begin_implicit();
        }
        let shards: Vec<usize> = route.shards.iter().map(|s| s.shard).collect();
        let target = self.effective(target);
        self.place_all(&shards, target, w).await
    }

    /// Runs a simple-protocol statement on several shards and merges the answers.
    pub(super) async fn scatter(
        &mut self,
        f: &Frame,
        route: Route,
        target: Target,
        class: &Classification,
    ) -> Result<(), End> {
        self.scatter_as(f, route, target, class, None).await
    }

    /// [`Session::scatter`], the rows written as COPY data when `copy` says how.
    pub(super) async fn scatter_as(
        &mut self,
        f: &Frame,
        route: Route,
        target: Target,
        class: &Classification,
        copy: Option<crate::execute::copy_out::CopyWriter>,
    ) -> Result<(), End> {
        let Some(ids) = self.route_slots(&route, target, class).await else {
            return Ok(());
        };
        for (k, (&i, s)) in ids.iter().zip(&route.shards).enumerate() {
            let slot = &mut self.slots[i];
            slot.prepared.remove(&b""[..]);
            let mut p = gathered(Kind::Query, false, k == 0, None);
            p.unit_end = true;
            match &s.sql {
                Some(sql) => {
                    messages::query(&mut slot.out, sql);
                    slot.pending.push(p);
                }
                None => slot.send(f, Some(p)),
            }
        }
        let mut g = Gather::for_route(&ids, route.mirror, route.merge, &[]);
        g.copy_out = copy;
        self.gather = Some(g);
        self.unit_sent(&ids);
        Ok(())
    }

    /// Runs an extended-protocol group whose Bind goes to several shards:
    /// each shard gets the group with the statement rewritten for it; the
    /// client gets one answer per message it sent, rows merged.
    pub(super) async fn scatter_batch(
        &mut self,
        g: Group,
        route: Route,
        bound: Arc<Statement>,
        target: Target,
    ) -> Result<(), End> {
        if let Err(msg) = scatter_shape(&g.frames, writes(&bound.class)) {
            self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, &msg);
            return Ok(());
        }
        let Some(ids) = self.route_slots(&route, target, &bound.class).await else {
            return Ok(());
        };
        let merging = route.merge.is_some();
        let Some(bind) = g.bind().cloned() else {
            return Ok(());
        };
        let types = messages::parse_param_types(&bound.parse)?;
        let original = Parse::read(&bound.parse)?.query;
        // the client's messages, each one answer
        let mut steps = Steps::default();
        let step_of: Vec<Option<usize>> = g
            .frames
            .iter()
            .map(|f| match f.tag {
                b'E' => Some(steps.push(Need::All)),
                _ => Some(steps.push(Need::First)),
            })
            .collect();
        let described = self.described_statements(&g)?;
        for (k, (&i, s)) in ids.iter().zip(&route.shards).enumerate() {
            for (name, st) in &described {
                self.ensure(i, name, st);
            }
            let sql = s.sql.as_deref().unwrap_or(original);
            let rebound = messages::rebind(&bind, sql, &types, s.params.as_deref(), merging)?;
            let slot = &mut self.slots[i];
            send_shard_part(slot, &g.frames, &step_of, &rebound, k == 0)?;
        }
        // the client's registry, once
        for f in &g.frames {
            match f.tag {
                b'P' => {
                    let name = Bytes::copy_from_slice(Parse::read(f)?.name);
                    let st = self.statement(f)?;
                    self.statements.insert(name, st);
                }
                b'C' => {
                    let t = messages::Target::read(f)?;
                    if t.kind == b'S' {
                        self.statements.remove(t.name);
                    }
                }
                _ => {}
            }
        }
        let params = messages::bind_params(&bind)?;
        let mut gather = Gather::for_route(&ids, route.mirror, route.merge, &params);
        gather.steps = Some(steps);
        if merging {
            let formats = ResultFormats::new(messages::result_formats(&bind)?);
            if formats.any_binary() {
                gather.binary = Some((formats, Vec::new()));
            }
        }
        for f in &g.frames {
            if f.tag == b'E' {
                let (portal, max_rows) = messages::execute_parts(f)?;
                if max_rows > 0 {
                    gather.row_limit = Some((Bytes::copy_from_slice(portal), max_rows));
                }
            }
        }
        self.suspended.remove(Bind::read(&bind)?.portal);
        self.gather = Some(gather);
        self.unit_sent(&ids);
        Ok(())
    }

    /// The statements a group describes without parsing them itself: every
    /// shard must hold them.
    fn described_statements(&self, g: &Group) -> Result<Vec<(Bytes, Arc<Statement>)>, Malformed> {
        let mut out = Vec::new();
        let mut parsed: Vec<&[u8]> = Vec::new();
        for f in &g.frames {
            match f.tag {
                b'P' => parsed.push(Parse::read(f)?.name),
                b'D' => {
                    let t = messages::Target::read(f)?;
                    if t.kind == b'S' && !parsed.contains(&t.name) {
                        if let Some(st) = self.statements.get(t.name) {
                            out.push((Bytes::copy_from_slice(t.name), st.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// One frame of a shard's answer to a scattered statement.
    pub(super) fn gather_frame(&mut self, id: usize, f: Frame) -> Result<(), Malformed> {
        let Some(g) = self.gather.as_mut() else {
            return Ok(());
        };
        if g.steps.is_some() {
            return self.gather_ext_frame(id, f);
        }
        let slot = &mut self.slots[id];
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
        // a COPY TO STDOUT: rows are turned into COPY data on their way out
        let mut held = std::mem::take(&mut g.held);
        let copying = g.copy_out.is_some() || g.declare.is_some();
        let out = if copying { &mut held } else { &mut self.cout };
        match f.tag {
            b'T' => {
                if !g.described {
                    let t = describe_gathered(g, &f)?;
                    match &g.copy_out {
                        _ if g.error.is_some() => {}
                        _ if g.declare.is_some() => g.row_description = Some(t),
                        Some(w) => w.start(&t[5..], &mut self.cout)?,
                        None => self.cout.extend_from_slice(&t),
                    }
                }
            }
            b'D' => gather_row(g, slot, id, &f, lead, out)?,
            b'C' => gather_source_end(g, id, &f, lead, out)?,
            b'E' => {
                if is_fatal(&f) {
                    slot.fatal_seen = true;
                }
                g.error.get_or_insert_with(|| f.bytes.clone());
                gather_source_end(g, id, &f, lead, out)?;
            }
            b'I' => {}
            b'Z' => {
                g.held = held;
                return self.gathered_ready(id, &f);
            }
            _ => out.extend_from_slice(&f.bytes),
        }
        if let Some(w) = g.copy_out.as_mut() {
            w.convert(&held, &mut self.cout)?;
            held.clear();
        }
        if held.len() > HELD_BYTES_LIMIT {
            g.fail(SqlState::PROGRAM_LIMIT_EXCEEDED, &format!("a cursor over several shards is held by the proxy, up to {HELD_BYTES_LIMIT} bytes: this one is larger; narrow its query"));
            held.clear();
        }
        g.held = held;
        Ok(())
    }

    /// One frame of a shard's answer to a batch gathered from several shards.
    fn gather_ext_frame(&mut self, id: usize, f: Frame) -> Result<(), Malformed> {
        let Some(g) = self.gather.as_mut() else {
            return Ok(());
        };
        let slot = &mut self.slots[id];
        let Some((kind, step, lead, statement_describe)) = slot
            .pending
            .front()
            .map(|p| (p.kind, p.step, p.lead, p.statement_describe))
        else {
            return Ok(());
        };
        let mut done = None;
        let mut held = std::mem::take(&mut g.held);
        let limited = g.row_limit.is_some();
        let rows_out = if limited { &mut held } else { &mut self.cout };
        match f.tag {
            b'1' | b'2' | b'3' => {
                slot.pending.answered();
                done = step.map(|k| (k, Some(f.bytes.clone())));
            }
            b't' if kind == Kind::Describe => {
                if g.parameters.is_none() {
                    g.parameters = Some(f.bytes.clone());
                }
            }
            b'T' | b'n' if kind == Kind::Describe && statement_describe => {
                // the client's statement as it is on every shard
                slot.pending.answered();
                let mut answer = BytesMut::new();
                if let Some(t) = g.parameters.take() {
                    answer.extend_from_slice(&t);
                }
                answer.extend_from_slice(&f.bytes);
                done = step.map(|k| (k, Some(answer.freeze())));
            }
            b'T' if kind == Kind::Describe => {
                slot.pending.answered();
                if g.row_description.is_none() {
                    let described = describe_gathered(g, &f)?;
                    g.row_description = Some(described);
                }
                done = step.map(|k| (k, g.row_description.clone()));
            }
            b'n' if kind == Kind::Describe => {
                slot.pending.answered();
                done = step.map(|k| (k, Some(f.bytes.clone())));
            }
            b'D' => gather_row(g, slot, id, &f, lead, rows_out)?,
            b'C' | b'I' | b's' if kind == Kind::Execute => {
                slot.pending.answered();
                g.empty |= f.tag == b'I';
                gather_source_end(g, id, &f, lead, rows_out)?;
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
                    slot.pending.answered();
                }
                gather_source_end(g, id, &f, lead, rows_out)?;
            }
            b'Z' => {
                g.held = held;
                return self.gathered_ready(id, &f);
            }
            _ => rows_out.extend_from_slice(&f.bytes),
        }
        if limited && held.len() > HELD_BYTES_LIMIT {
            g.fail(SqlState::PROGRAM_LIMIT_EXCEEDED, &format!("a cross-shard result read with a row limit (a fetch size) is held by the proxy, up to {HELD_BYTES_LIMIT} bytes: this one is larger; read it without a row limit, or narrow the query"));
            held.clear();
        }
        g.held = held;
        if let Some((k, answer)) = done {
            if let Some(st) = g.steps.as_mut() {
                st.done(k, answer);
            }
        }
        // answers due, in the client's order, until an error stops them
        while g.error.is_none() {
            match g.steps.as_mut().and_then(|st| st.next(g.shards)) {
                Some(Due::Answer(b)) => self.cout.extend_from_slice(&b),
                Some(Due::Complete) => match g.row_limit.clone() {
                    None => g.end_command(&mut self.cout),
                    Some((portal, n)) => {
                        let mut rows = std::mem::take(&mut g.held);
                        g.end_command(&mut rows);
                        if g.error.is_none() {
                            let mut h = Held::from_frames(rows.freeze(), g.row_description.clone());
                            if !h.serve(n, &mut self.cout) {
                                self.suspended.insert(portal, h);
                            }
                        }
                    }
                },
                None => break,
            }
        }
        Ok(())
    }

    /// A shard's ReadyForQuery after its part of a gathered statement; the
    /// last one ends the client's answer.
    fn gathered_ready(&mut self, id: usize, f: &Frame) -> Result<(), Malformed> {
        let slot = &mut self.slots[id];
        let status = messages::ready_status(f)?;
        slot.status = status;
        let unit_end = slot.pending.answered().is_some_and(|p| p.unit_end);
        slot.portals.clear();
        let shard = slot.shard;
        if unit_end {
            self.unit_answered(id, shard, status);
        }
        let Some(g) = self.gather.as_mut() else {
            return Ok(());
        };
        g.remaining = g.remaining.saturating_sub(1);
        if g.remaining == 0 {
            if let Some(g) = self.gather.take() {
                self.gather_done(g);
            }
        }
        Ok(())
    }

    /// Every shard answered: the merged end goes to the client.
    pub(super) fn gather_done(&mut self, mut g: Gather) {
        let copy = g.copy_out.take();
        let declare = g.declare.take();
        let description = g.row_description.clone();
        let error = g.error.clone();
        let mut end = std::mem::take(&mut g.held);
        let failed = g.finish(&mut end);
        if let Some((name, hold)) = declare {
            if failed {
                if let Some(e) = error {
                    self.cout.extend_from_slice(&e);
                }
                self.request_failed();
            } else {
                self.cursor_declared(name, hold, end.freeze(), description);
            }
            return;
        }
        match copy {
            Some(mut w) if !failed => {
                if w.convert(&end, &mut self.cout).is_err() {
                    self.fail_request(SqlState::INTERNAL_ERROR, "a gathered row could not be read");
                }
            }
            _ => self.cout.extend_from_slice(&end),
        }
        if failed {
            self.request_failed();
        }
    }

    /// Reads on from slots whose merge queue has room again.
    pub(super) fn resume_paused(&mut self) {
        loop {
            let merge = self.gather.as_ref().and_then(|g| g.merge.as_ref());
            let ready = self
                .slots
                .iter()
                .find(|(i, s)| s.paused && merge.is_none_or(|m| m.has_room(*i)))
                .map(|(i, _)| i);
            let Some(i) = ready else {
                return;
            };
            self.slots[i].paused = false;
            self.process_server(i);
        }
    }
}

/// Sends one shard its part of a gathered extended-protocol group.
fn send_shard_part(
    slot: &mut Slot,
    frames: &[Frame],
    step_of: &[Option<usize>],
    rebound: &[u8],
    lead: bool,
) -> Result<(), Malformed> {
    let mut described = false;
    for (f, &step) in frames.iter().zip(step_of) {
        match f.tag {
            b'P' => {
                slot.send(f, Some(gathered(Kind::Parse, false, lead, step)));
                slot.prepared.remove(Parse::read(f)?.name);
            }
            b'B' => {
                slot.out.extend_from_slice(rebound);
                slot.pending.push(gathered(Kind::Parse, true, lead, None));
                slot.pending.push(gathered(Kind::Bind, false, lead, step));
                slot.prepared.remove(&b""[..]);
            }
            b'D' => {
                let mut p = gathered(Kind::Describe, false, lead, step);
                if messages::Target::read(f)?.kind == b'S' {
                    p.statement_describe = true;
                } else {
                    described = true;
                }
                slot.send(f, Some(p));
            }
            b'E' => {
                if !described {
                    // the merge needs the columns' types
                    let (portal, _) = messages::execute_parts(f)?;
                    messages::describe_portal(&mut slot.out, portal);
                    slot.pending
                        .push(gathered(Kind::Describe, true, lead, None));
                }
                // shards run it whole; the proxy does not suspend merged portals
                let (portal, _) = messages::execute_parts(f)?;
                let mut e = BytesMut::new();
                let mut body = portal.to_vec();
                body.push(0);
                body.extend_from_slice(&0i32.to_be_bytes());
                messages::raw(&mut e, b'E', &body);
                slot.out.extend_from_slice(&e);
                slot.pending
                    .push(gathered(Kind::Execute, false, lead, step));
            }
            b'C' => {
                let t = messages::Target::read(f)?;
                if t.kind == b'S' {
                    slot.prepared.remove(t.name);
                }
                slot.send(f, Some(gathered(Kind::Close, false, lead, step)));
            }
            _ => slot.send(f, None),
        }
    }
    end_unit(slot);
    if let Some(p) = slot.pending.back_mut() {
        p.gather = true;
        p.lead = lead;
    }
    Ok(())
}

/// The RowDescription the client sees for a gathered statement (hidden
/// columns removed, formats as the client asked); prepares the merge.
fn describe_gathered(g: &mut Gather, f: &Frame) -> Result<Bytes, Malformed> {
    g.described = true;
    let mut t = f.bytes.clone();
    if let Some(m) = g.merge.as_mut() {
        match m.describe(f)? {
            Ok(visible) => t = visible,
            Err(why) => g.fail(SqlState::FEATURE_NOT_SUPPORTED, &why),
        }
    } else if let Some(a) = g.agg.as_mut() {
        if let Err(why) = a.describe(f)? {
            g.fail(SqlState::FEATURE_NOT_SUPPORTED, &why);
        }
    }
    if let Some((formats, types)) = g.binary.as_mut() {
        let frame = Frame {
            tag: b'T',
            bytes: t.clone(),
        };
        *types = crate::execute::merge::row_description_types(&frame)?;
        let unsupported = formats.unsupported(types);
        t = formats.describe(&t)?.freeze();
        if let Some(oid) = unsupported {
            g.fail(
                SqlState::FEATURE_NOT_SUPPORTED,
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
    id: usize,
    f: &Frame,
    lead: bool,
    out: &mut BytesMut,
) -> Result<(), Malformed> {
    if g.error.is_some() || (g.mirror && !lead) {
        return Ok(());
    }
    if let Some(m) = g.merge.as_mut() {
        if m.push(id, f.bytes.clone()) {
            slot.paused = true;
        }
        return drain_merge(g, out);
    }
    if let Some(a) = g.agg.as_mut() {
        if let Err(why) = a.feed(&f.bytes)? {
            g.fail(SqlState::FEATURE_NOT_SUPPORTED, &why);
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
    id: usize,
    f: &Frame,
    lead: bool,
    out: &mut BytesMut,
) -> Result<(), Malformed> {
    if let Some(m) = g.merge.as_mut() {
        m.finish_source(id);
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
        g.fail(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, &why);
    }
    Ok(())
}

/// Whether a group can run on several shards: one Bind, its Execute (all
/// rows), optionally a Describe of its portal, Parses and Closes.
/// A row limit is accepted for writes (JDBC's executeUpdate asks for one
/// row): they return no rows to suspend.
fn scatter_shape(frames: &[Frame], write: bool) -> Result<(), String> {
    let refuse = |what: &str| {
        Err(format!(
            "a prepared statement that runs on several shards must come as Bind, Describe, Execute: {what}"
        ))
    };
    let mut portal: Option<&[u8]> = None;
    let mut executed = false;
    for f in frames {
        match f.tag {
            b'P' | b'C' => {}
            b'B' if portal.is_some() => return refuse("a second Bind in the same group"),
            b'B' => portal = Some(Bind::read(f).map_err(|e| e.to_string())?.portal),
            b'D' => {
                let t = messages::Target::read(f).map_err(|e| e.to_string())?;
                if t.kind == b'P' && portal != Some(t.name) {
                    return refuse("a Describe of another portal");
                }
            }
            b'E' => {
                let (name, max_rows) = messages::execute_parts(f).map_err(|e| e.to_string())?;
                if executed || portal != Some(name) {
                    return refuse("an Execute of another portal");
                }
                let _ = (max_rows, write);
                executed = true;
            }
            _ => return refuse("an unexpected message"),
        }
    }
    if !executed {
        return refuse("no Execute");
    }
    Ok(())
}
