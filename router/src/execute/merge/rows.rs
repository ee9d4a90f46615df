//! The ordered merge of several shards' rows (simple protocol, text
//! format), the pipeline of the other steps: the k-way merge of the shard
//! streams ([`Streams`]), then for a grouped query the combine of groups
//! that meet ([`Groups`]), HAVING ([`eval`]) and the bounded sort
//! ([`BoundedSort`]), else DISTINCT ([`Distinct`]); then OFFSET and LIMIT
//! ([`Limit`]), with the hidden columns dropped before the client sees a
//! row ([`project`]).

use bytes::{Bytes, BytesMut};
use sql_rewrite::merge::MergePlan;

use super::bounded::BoundedSort;
use super::distinct::Distinct;
use super::group::Groups;
use super::having::{check_having, eval};
use super::limit::Limit;
use super::project;
use super::sort::{Next, Streams};
use super::wire::{data_row, row_description, Field, Values};
use crate::protocol::frame::Frame;
use crate::protocol::messages::Malformed;

/// A merge in progress.
#[derive(Debug)]
pub struct RowMerge {
    plan: MergePlan,
    /// The shards' queues, merged by the plan's order.
    streams: Streams,
    /// Columns of a shard row (hidden ones included).
    columns: usize,
    /// DISTINCT.
    distinct: Distinct,
    /// GROUP BY.
    groups: Groups,
    /// Each column's type as the client sees it (an avg: numeric).
    types: Vec<u32>,
    /// The in-memory sort of combined groups.
    bounded: BoundedSort,
    /// OFFSET and LIMIT.
    limit: Limit,
    /// Combining failed (a bigint sum out of range): the statement's error.
    pub failed: Option<String>,
}

impl RowMerge {
    /// A merge of the rows of `slots` by `plan`, with OFFSET/LIMIT resolved.
    pub fn new(plan: MergePlan, slots: &[usize], offset: u64, limit: Option<u64>) -> Self {
        Self {
            streams: Streams::new(slots),
            columns: 0,
            distinct: Distinct::default(),
            groups: Groups::default(),
            types: Vec::new(),
            bounded: BoundedSort::new(plan.row_limit),
            limit: Limit::new(offset, limit),
            failed: None,
            plan,
        }
    }

    /// Rows sent to the client.
    pub fn emitted(&self) -> u64 {
        self.limit.emitted
    }

    /// Why the merge failed for holding too many rows (SQLSTATE 54000).
    pub fn overflow(&self) -> Option<&str> {
        self.bounded.overflow()
    }

    /// Reads the first RowDescription: resolves the sort columns and returns
    /// it without the hidden columns, or the reason the merge cannot order
    /// these columns.
    pub fn describe(&mut self, f: &Frame) -> Result<Result<Bytes, String>, Malformed> {
        let fields = row_description(f)?;
        if let Err(why) = self.resolve(&fields) {
            return Ok(Err(why));
        }
        let visible = self.columns.saturating_sub(self.plan.hidden);
        Ok(Ok(project::row_description(
            &fields,
            visible,
            self.groups.combine(),
        )))
    }

    /// Prepares every step for the shards' columns `fields`.
    fn resolve(&mut self, fields: &[Field]) -> Result<(), String> {
        self.columns = fields.len();
        let visible = self.columns.saturating_sub(self.plan.hidden);
        self.streams.describe(&self.plan.order, fields, visible)?;
        self.distinct
            .describe(self.plan.distinct.as_ref(), fields, visible)?;
        self.types = fields.iter().map(|(_, oid, _)| *oid).collect();
        if let Some(g) = &self.plan.grouped {
            self.groups.describe(g, &mut self.types)?;
            self.bounded.describe(&g.order, &self.types, visible)?;
            if let Some(h) = &g.having {
                check_having(h, &self.types)?;
            }
        }
        Ok(())
    }

    /// Queues a DataRow of gathered slot `slot`; `true` when that shard's
    /// queue is full and its reading should pause.
    pub fn push(&mut self, slot: usize, row: Bytes) -> bool {
        self.streams.push(slot, row)
    }

    /// Marks slot `slot`'s rows complete.
    pub fn finish_source(&mut self, slot: usize) {
        self.streams.finish(slot);
    }

    /// Whether slot `slot` may be read again (its queue has room).
    pub fn has_room(&self, slot: usize) -> bool {
        self.streams.has_room(slot)
    }

    /// Emits every row whose place in the merged order is known.
    pub fn drain(&mut self, out: &mut BytesMut) -> Result<(), Malformed> {
        loop {
            if self.limit.reached() {
                self.streams.clear();
                return Ok(());
            }
            let row = match self.streams.next()? {
                Next::Wait => return Ok(()),
                Next::Done => {
                    self.finish(out);
                    return Ok(());
                }
                Next::Row(row) => row,
            };
            if self.groups.active() {
                let vals: Values = data_row(&row)?
                    .into_iter()
                    .map(|v| v.map(<[u8]>::to_vec))
                    .collect();
                if let Some(done) = self.groups.add(vals, &mut self.failed) {
                    self.emit_group(done, out);
                }
                continue;
            }
            if self.distinct.repeats(&row)? || !self.limit.admit() {
                continue;
            }
            if self.plan.hidden == 0 {
                out.extend_from_slice(&row);
            } else {
                project::without_hidden(&row, self.columns - self.plan.hidden, out)?;
            }
        }
    }

    /// Every shard is done: the last group is complete, and the held
    /// groups are sent in the client's order.
    fn finish(&mut self, out: &mut BytesMut) {
        if let Some(group) = self.groups.take() {
            self.emit_group(group, out);
        }
        if self.bounded.active() {
            for group in self.bounded.finish() {
                self.send(&group, out);
            }
        }
    }

    /// A finished group: its averages divided, then dropped by HAVING,
    /// held for the final sort, or sent (after OFFSET, within LIMIT).
    fn emit_group(&mut self, mut group: Values, out: &mut BytesMut) {
        self.groups.finish_avgs(&mut group, &mut self.failed);
        if let Some(h) = self.plan.grouped.as_ref().and_then(|g| g.having.as_ref()) {
            if eval(h, &group, &self.types) != Some(true) {
                return;
            }
        }
        if !self.bounded.active() {
            self.send(&group, out);
            return;
        }
        self.bounded.hold(group, self.limit.horizon());
    }

    /// Sends a group's visible columns (after OFFSET, within LIMIT).
    fn send(&mut self, group: &[Option<Vec<u8>>], out: &mut BytesMut) {
        if self.limit.admit() {
            project::group_row(group, self.plan.hidden, out);
        }
    }
}
