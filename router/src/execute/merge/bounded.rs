//! The in-memory sort of combined groups, when the client's order is not
//! the group keys' (an ORDER BY on an aggregate, keys out of order): the
//! groups are held until every shard is done, at most the plan's
//! `row_limit` (`proxy.merge_row_limit`) of them — with a LIMIT only the
//! first OFFSET + LIMIT are kept — else the statement fails with SQLSTATE
//! 54000.

use sql_rewrite::merge::{SortColumn, SortKey};

use super::sort::{compare_rows, SortSpec};
use super::values::Compare;
use super::wire::Values;

/// The bounded sort step of a merge (inactive without an order of its own).
#[derive(Debug)]
pub struct BoundedSort {
    /// The client's order of combined groups.
    keys: Vec<SortSpec>,
    /// Most groups held at once.
    row_limit: usize,
    /// Combined groups waiting for the sort.
    held: Vec<Values>,
    /// The held groups were sorted and released.
    flushed: bool,
    /// The sort needed more groups than `row_limit`.
    overflow: Option<String>,
}

impl BoundedSort {
    /// A sort holding at most `row_limit` groups.
    pub fn new(row_limit: usize) -> Self {
        Self {
            keys: Vec::new(),
            row_limit,
            held: Vec::new(),
            flushed: false,
            overflow: None,
        }
    }

    /// Resolves the grouped plan's `order` against the combined groups'
    /// column `types` (the first `visible` seen by the client); the reason
    /// when a key cannot be ordered.
    pub fn describe(
        &mut self,
        order: &[SortKey],
        types: &[u32],
        visible: usize,
    ) -> Result<(), String> {
        for k in order {
            let column = match &k.column {
                SortColumn::Visible(i) => *i,
                SortColumn::Hidden(i) => visible + i,
                SortColumn::Named(_) => usize::MAX,
            };
            let Some(cmp) = types.get(column).and_then(|&oid| Compare::of(oid)) else {
                return Err(
                    "ORDER BY a column of this type across shards is not supported yet".into(),
                );
            };
            self.keys.push((column, cmp, k.descending, k.nulls_first));
        }
        Ok(())
    }

    /// Whether combined groups are sorted here.
    pub fn active(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Why the sort failed for holding too many groups (SQLSTATE 54000).
    pub fn overflow(&self) -> Option<&str> {
        self.overflow.as_deref()
    }

    /// Holds a finished group; `horizon`: how many groups in the sorted
    /// order matter (OFFSET + LIMIT), `None` for all.
    pub fn hold(&mut self, group: Values, horizon: Option<u64>) {
        if self.overflow.is_some() {
            return;
        }
        self.held.push(group);
        if self.held.len() > self.row_limit {
            // With a LIMIT only the first offset + limit groups matter.
            match horizon.and_then(|k| usize::try_from(k).ok()) {
                Some(k) if k < self.row_limit => {
                    self.sort();
                    self.held.truncate(k);
                }
                _ => {
                    self.held = Vec::new();
                    self.overflow = Some(format!(
                        "this cross-shard query must sort more than {n} combined groups in the proxy, more than proxy.merge_row_limit = {n} allows: add a LIMIT, narrow the query, or raise merge_row_limit",
                        n = self.row_limit
                    ));
                }
            }
        }
    }

    /// The held groups in the client's order, once (none after an overflow).
    pub fn finish(&mut self) -> Vec<Values> {
        if self.flushed {
            return Vec::new();
        }
        self.flushed = true;
        if self.overflow.is_some() {
            return Vec::new();
        }
        self.sort();
        std::mem::take(&mut self.held)
    }

    /// Sorts the held groups by the client's order.
    fn sort(&mut self) {
        let keys = &self.keys;
        self.held.sort_by(|a, b| {
            let ra: Vec<Option<&[u8]>> = a.iter().map(Option::as_deref).collect();
            let rb: Vec<Option<&[u8]>> = b.iter().map(Option::as_deref).collect();
            compare_rows(keys, &ra, &rb)
        });
    }
}
