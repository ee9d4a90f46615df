//! DISTINCT and DISTINCT ON across shards: in the merged order, equal rows
//! (on every visible column, or on the DISTINCT ON columns) are adjacent,
//! and only the first of each run is kept.

use bytes::Bytes;
use sql_rewrite::merge::{Dedupe, SortColumn};

use super::values::{same_value, Compare};
use super::wire::{data_row, Field};
use crate::protocol::messages::Malformed;

/// The DISTINCT step of a merge (inactive without DISTINCT).
#[derive(Debug, Default)]
pub struct Distinct {
    /// The columns compared.
    columns: Vec<(usize, Compare)>,
    /// The last row kept.
    last: Option<Bytes>,
}

impl Distinct {
    /// Resolves the plan's `distinct` against the shards' RowDescription
    /// `fields` (the first `visible` seen by the client); the reason when a
    /// column cannot be compared.
    pub fn describe(
        &mut self,
        distinct: Option<&Dedupe>,
        fields: &[Field],
        visible: usize,
    ) -> Result<(), String> {
        let columns: Vec<usize> = match distinct {
            None => Vec::new(),
            Some(Dedupe::All) => (0..visible).collect(),
            Some(Dedupe::On(cols)) => cols
                .iter()
                .filter_map(|c| match c {
                    SortColumn::Visible(i) => Some(*i),
                    _ => None,
                })
                .collect(),
        };
        for column in columns {
            let Some((_, oid, _)) = fields.get(column) else {
                return Err("DISTINCT names a column the shards did not return".into());
            };
            let Some(cmp) = Compare::of(*oid) else {
                return Err(format!(
                    "DISTINCT on a column of type oid {oid} across shards is not supported yet"
                ));
            };
            self.columns.push((column, cmp));
        }
        Ok(())
    }

    /// Whether `row` (a DataRow frame) repeats the last row kept, which it
    /// becomes when it does not. Always `false` without DISTINCT.
    pub fn repeats(&mut self, row: &Bytes) -> Result<bool, Malformed> {
        if self.columns.is_empty() {
            return Ok(false);
        }
        if let Some(last) = &self.last {
            if self.same(last, row)? {
                return Ok(true);
            }
        }
        self.last = Some(row.clone());
        Ok(false)
    }

    /// DISTINCT equality: equal on every compared column, NULL equal to NULL.
    fn same(&self, a: &Bytes, b: &Bytes) -> Result<bool, Malformed> {
        let (ra, rb) = (data_row(a)?, data_row(b)?);
        Ok(self.columns.iter().all(|&(col, cmp)| {
            same_value(
                cmp,
                ra.get(col).copied().flatten(),
                rb.get(col).copied().flatten(),
            )
        }))
    }
}
