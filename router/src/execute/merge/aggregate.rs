//! Combining shards' partial aggregates of an aggregate-only query (no
//! GROUP BY: one row per shard, text format) into the row one server would
//! return, column by column ([`combine_values`]).

use bytes::BytesMut;
use sql_rewrite::merge::Combine;

use super::combine::{combinable, combine_values, not_combinable};
use super::wire::row_description_types;
use crate::protocol::frame::Frame;
use crate::protocol::messages::{self, Malformed, Reader};

/// Partial aggregates being combined.
#[derive(Debug)]
pub struct AggMerge {
    combine: Vec<Combine>,
    types: Vec<u32>,
    acc: Vec<Option<Vec<u8>>>,
    /// A shard sent a row.
    seen: bool,
}

impl AggMerge {
    /// Combines columns by `combine`.
    pub fn new(combine: Vec<Combine>) -> Self {
        Self {
            acc: vec![None; combine.len()],
            combine,
            types: Vec::new(),
            seen: false,
        }
    }

    /// Reads the RowDescription's types; the reason when a column cannot be
    /// combined exactly.
    pub fn describe(&mut self, f: &Frame) -> Result<Result<(), String>, Malformed> {
        self.types = row_description_types(f)?;
        if self.types.len() != self.combine.len() {
            return Ok(Err("the shards returned other columns than expected".into()));
        }
        for (c, oid) in self.combine.iter().zip(&self.types) {
            if !combinable(*c, *oid) {
                return Ok(Err(not_combinable(*c, *oid)));
            }
        }
        Ok(Ok(()))
    }

    /// Adds one shard's row (a DataRow frame's bytes).
    pub fn feed(&mut self, row: &[u8]) -> Result<Result<(), String>, Malformed> {
        let body = row.get(5..).unwrap_or_default();
        let mut r = Reader::new(body, "DataRow");
        let n = r.i16()?;
        for i in 0..usize::try_from(n).unwrap_or(0) {
            let len = r.i32()?;
            let value = if len < 0 {
                None
            } else {
                Some(r.take(len as usize)?)
            };
            let (Some(c), Some(&oid)) = (self.combine.get(i), self.types.get(i)) else {
                return Ok(Err("the shards returned other columns than expected".into()));
            };
            let Some(v) = value else { continue };
            let v = v.to_vec();
            let next = match self.acc[i].take() {
                None => v,
                Some(a) => match combine_values(*c, oid, a, v) {
                    Ok(x) => x,
                    Err(why) => return Ok(Err(why)),
                },
            };
            self.acc[i] = Some(next);
        }
        self.seen = true;
        Ok(Ok(()))
    }

    /// The combined DataRow (none when no shard sent a row).
    pub fn finish(&self, out: &mut BytesMut) -> bool {
        if !self.seen {
            return false;
        }
        let values: Vec<Option<&[u8]>> = self.acc.iter().map(Option::as_deref).collect();
        messages::data_row_bytes(out, &values);
        true
    }
}
