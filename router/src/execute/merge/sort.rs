//! The k-way merge of the shards' row streams by the plan's sort keys
//! (each shard sends its rows already in that order): a few rows queued
//! per shard, and the next row released only when every shard still
//! sending has one to compare. Also the row order by sort keys the
//! bounded sort of combined groups uses.

use std::cmp::Ordering;
use std::collections::VecDeque;

use bytes::Bytes;
use sql_rewrite::merge::{SortColumn, SortKey};

use super::values::{compare_values, Compare};
use super::wire::{data_row, Field};
use crate::protocol::messages::Malformed;

/// Rows queued per shard before the proxy stops reading that shard.
pub const QUEUE_LIMIT: usize = 32;

/// A sort key: column, comparison, descending, NULLs first.
pub type SortSpec = (usize, Compare, bool, bool);

/// One shard's queued rows.
#[derive(Debug, Default)]
struct Source {
    rows: VecDeque<Bytes>,
    done: bool,
}

/// What the merge of the shard streams has next.
#[derive(Debug)]
pub enum Next {
    /// A shard still sending has no row queued: its next one may come first.
    Wait,
    /// Every shard is done and every row was taken.
    Done,
    /// The next row in the merged order (a DataRow frame).
    Row(Bytes),
}

/// The shards' queues and the order they merge in.
#[derive(Debug)]
pub struct Streams {
    /// Gathered slot index and its queue, in route order.
    sources: Vec<(usize, Source)>,
    /// The merge order, set by the first RowDescription.
    keys: Vec<SortSpec>,
}

impl Streams {
    /// Empty queues for the gathered slots `slots`.
    pub fn new(slots: &[usize]) -> Self {
        Self {
            sources: slots.iter().map(|&s| (s, Source::default())).collect(),
            keys: Vec::new(),
        }
    }

    /// Resolves the plan's `order` against the shards' RowDescription
    /// `fields` (the first `visible` seen by the client); the reason when a
    /// key cannot be ordered.
    pub fn describe(
        &mut self,
        order: &[SortKey],
        fields: &[Field],
        visible: usize,
    ) -> Result<(), String> {
        for k in order {
            let column = match &k.column {
                SortColumn::Visible(i) => Some(*i),
                SortColumn::Hidden(i) => Some(visible + i),
                SortColumn::Named(n) => fields[..visible]
                    .iter()
                    .position(|(name, _, _)| name.as_slice() == n.as_bytes()),
            };
            let Some(column) = column.filter(|c| *c < fields.len()) else {
                return Err("ORDER BY names a column the shards did not return".into());
            };
            let (_, oid, _) = &fields[column];
            let Some(cmp) = Compare::of(*oid) else {
                return Err(format!(
                    "ORDER BY a column of type oid {oid} across shards is not supported yet"
                ));
            };
            self.keys.push((column, cmp, k.descending, k.nulls_first));
        }
        Ok(())
    }

    /// Queues a DataRow of gathered slot `slot`; `true` when that shard's
    /// queue is full and its reading should pause.
    pub fn push(&mut self, slot: usize, row: Bytes) -> bool {
        match self.sources.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, src)) => {
                src.rows.push_back(row);
                src.rows.len() >= QUEUE_LIMIT
            }
            None => false,
        }
    }

    /// Marks slot `slot`'s rows complete.
    pub fn finish(&mut self, slot: usize) {
        if let Some((_, src)) = self.sources.iter_mut().find(|(s, _)| *s == slot) {
            src.done = true;
        }
    }

    /// Whether slot `slot` may be read again (its queue has room).
    pub fn has_room(&self, slot: usize) -> bool {
        self.sources
            .iter()
            .find(|(s, _)| *s == slot)
            .is_none_or(|(_, src)| src.rows.len() < QUEUE_LIMIT)
    }

    /// Drops every queued row (the LIMIT is reached).
    pub fn clear(&mut self) {
        for (_, src) in &mut self.sources {
            src.rows.clear();
        }
    }

    /// Takes the next row in the merged order, if its place is known.
    pub fn next(&mut self) -> Result<Next, Malformed> {
        // Every shard still sending must have a row queued to compare.
        if self
            .sources
            .iter()
            .any(|(_, src)| src.rows.is_empty() && !src.done)
        {
            return Ok(Next::Wait);
        }
        let mut best: Option<usize> = None;
        for i in 0..self.sources.len() {
            if self.sources[i].1.rows.is_empty() {
                continue;
            }
            best = Some(match best {
                None => i,
                Some(b) => {
                    let (x, y) = (&self.sources[i].1.rows[0], &self.sources[b].1.rows[0]);
                    let ord = compare_rows(&self.keys, &data_row(x)?, &data_row(y)?);
                    if ord == Ordering::Less {
                        i
                    } else {
                        b
                    }
                }
            });
        }
        let Some(b) = best else {
            return Ok(Next::Done);
        };
        Ok(match self.sources[b].1.rows.pop_front() {
            Some(row) => Next::Row(row),
            None => Next::Wait,
        })
    }
}

/// Two rows' order by `keys`.
pub fn compare_rows(keys: &[SortSpec], ra: &[Option<&[u8]>], rb: &[Option<&[u8]>]) -> Ordering {
    for &(col, cmp, desc, nulls_first) in keys {
        let (x, y) = (
            ra.get(col).copied().flatten(),
            rb.get(col).copied().flatten(),
        );
        let ord = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => {
                if nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Some(_), None) => {
                if nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Some(x), Some(y)) => {
                let o = compare_values(cmp, x, y);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}
