//! Answers of several shards to one statement, merged into one answer for
//! the client: the first RowDescription, every DataRow, one CommandComplete
//! with the summed count (or the first error), one ReadyForQuery.

use bytes::{Bytes, BytesMut};

use super::merge::{AggMerge, RowMerge};
use super::steps::Steps;
use crate::protocol::binary::formats::ResultFormats;
use crate::protocol::messages::{self, Severity};
use crate::protocol::SqlState;
use sql_rewrite::merge::MergePlan;
use sql_rewrite::route::Param;

/// A statement running on several shards.
#[derive(Debug)]
pub struct Gather {
    /// Shards that have not sent ReadyForQuery yet.
    pub remaining: usize,
    /// A RowDescription went to the client.
    pub described: bool,
    /// Command tag without its count (`SELECT`, `INSERT 0`, `UPDATE`).
    prefix: Option<String>,
    /// Summed row count.
    count: u64,
    /// The first error, sent instead of CommandComplete.
    pub error: Option<Bytes>,
    /// Mirror mode: one shard (the lead) answers for all; the others only
    /// report errors.
    pub mirror: bool,
    /// The lead's answer included an error.
    pub lead_failed: bool,
    /// An ordered merge (ORDER BY, LIMIT/OFFSET) instead of concatenation.
    pub merge: Option<RowMerge>,
    /// Partial aggregates combined into one row.
    pub agg: Option<AggMerge>,
    /// Shards the statement runs on.
    pub shards: usize,
    /// Extended protocol: the client's messages' answers, in order.
    pub steps: Option<Steps>,
    /// The client wants some merged columns in binary: its formats and the
    /// visible columns' types (the shards answer in text).
    pub binary: Option<(ResultFormats, Vec<u32>)>,
    /// The RowDescription the client sees.
    pub row_description: Option<Bytes>,
    /// Every shard answered an empty query.
    pub empty: bool,
    /// The client's Execute asked for at most this many rows of this
    /// portal: the merged rows are held, not streamed.
    pub row_limit: Option<(Bytes, i32)>,
    /// Merged rows held for a row-limited Execute (or on their way into
    /// COPY data).
    pub held: BytesMut,
    /// A DECLARE of a cursor over several shards (its name, WITH HOLD):
    /// the rows are held for its FETCHes.
    pub declare: Option<(String, bool)>,
    /// A `COPY … TO STDOUT`: the rows go out as COPY data.
    pub copy_out: Option<super::copy_out::CopyWriter>,
    /// A statement Describe's ParameterDescription, waiting for the
    /// RowDescription or NoData that completes the answer.
    pub parameters: Option<Bytes>,
}

impl Gather {
    /// Waits for `shards` answers; `mirror`: see [`Gather::mirror`].
    pub fn new(shards: usize, mirror: bool) -> Self {
        Self {
            remaining: shards,
            described: false,
            prefix: None,
            count: 0,
            error: None,
            mirror,
            lead_failed: false,
            merge: None,
            agg: None,
            shards,
            steps: None,
            binary: None,
            row_description: None,
            empty: false,
            parameters: None,
            row_limit: None,
            held: BytesMut::new(),
            copy_out: None,
            declare: None,
        }
    }

    /// Waits for the shards of `slots`, merging rows as `merge` says (with
    /// OFFSET/LIMIT parameters taken from `params`).
    pub fn for_route(
        slots: &[usize],
        mirror: bool,
        merge: Option<MergePlan>,
        params: &[Param<'_>],
    ) -> Self {
        let mut g = Gather::new(slots.len(), mirror);
        match merge {
            Some(plan) if !plan.aggregates.is_empty() => {
                g.agg = Some(AggMerge::new(plan.aggregates));
            }
            Some(plan) => {
                let offset = plan.offset.and_then(|c| c.resolve(params)).unwrap_or(0);
                let limit = plan.limit.and_then(|c| c.resolve(params));
                g.merge = Some(RowMerge::new(plan, slots, offset, limit));
            }
            None => {}
        }
        g
    }

    /// Appends merged DataRows to `out`, re-encoded where the client wants
    /// binary; an encoding failure becomes the statement's error.
    pub fn emit_rows(&mut self, rows: &[u8], out: &mut BytesMut) {
        let Some((formats, types)) = &self.binary else {
            out.extend_from_slice(rows);
            return;
        };
        if let Err(why) = formats.encode_rows(types, rows, out) {
            self.fail(SqlState::FEATURE_NOT_SUPPORTED, &why);
        }
    }

    /// Records an error of the proxy's own (the first error wins).
    pub fn fail(&mut self, code: SqlState, message: &str) {
        if self.error.is_none() {
            let mut e = BytesMut::new();
            messages::error_response(&mut e, Severity::Error, code, message);
            self.error = Some(e.freeze());
        }
    }

    /// Writes the end of a successful command: the combined aggregate row,
    /// then CommandComplete with the merged count.
    pub fn end_command(&mut self, out: &mut BytesMut) {
        if self.empty {
            messages::raw(out, b'I', b"");
            return;
        }
        if let Some(a) = self.agg.take() {
            let mut row = BytesMut::new();
            let n = u64::from(a.finish(&mut row));
            self.emit_rows(&row, out);
            if self.error.is_none() {
                messages::command_complete(out, &format!("SELECT {n}"));
            }
            return;
        }
        if let Some(m) = &self.merge {
            // a merge that outgrew proxy.merge_row_limit fails as a whole
            match m.overflow().map(str::to_string) {
                Some(why) => self.fail(SqlState::PROGRAM_LIMIT_EXCEEDED, &why),
                None => messages::command_complete(out, &format!("SELECT {}", m.emitted())),
            }
            return;
        }
        if let Some(prefix) = &self.prefix {
            let tag = if [
                "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE",
            ]
            .iter()
            .any(|p| prefix.starts_with(p))
            {
                format!("{prefix} {}", self.count)
            } else {
                prefix.clone()
            };
            messages::command_complete(out, &tag);
        }
    }

    /// Adds one shard's CommandComplete tag.
    pub fn add_tag(&mut self, tag: &[u8]) {
        let tag = String::from_utf8_lossy(tag);
        match tag.rsplit_once(' ') {
            Some((prefix, n)) if n.parse::<u64>().is_ok() => {
                self.count += n.parse::<u64>().unwrap_or(0);
                self.prefix.get_or_insert_with(|| prefix.to_string());
            }
            _ => {
                self.prefix.get_or_insert_with(|| tag.to_string());
            }
        }
    }

    /// Writes the merged end of the answer to the client (the session
    /// writes the ReadyForQuery); `true` when it was an error.
    pub fn finish(mut self, out: &mut BytesMut) -> bool {
        if self.mirror && self.steps.is_none() {
            if let (Some(e), false) = (&self.error, self.lead_failed) {
                out.extend_from_slice(e);
            }
            return self.lead_failed || self.error.is_some();
        }
        if self.steps.is_none() && self.error.is_none() {
            // simple protocol: the command's end was not written yet
            self.end_command(out);
        }
        if let Some(e) = &self.error {
            out.extend_from_slice(e);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_summed() {
        let mut g = Gather::new(2, false);
        g.add_tag(b"INSERT 0 2");
        g.add_tag(b"INSERT 0 3");
        let mut out = BytesMut::new();
        assert!(!g.finish(&mut out));
        assert_eq!(&out[..], b"C\0\0\0\x0fINSERT 0 5\0");
        let mut g = Gather::new(2, false);
        g.add_tag(b"CREATE TABLE");
        g.add_tag(b"CREATE TABLE");
        let mut out = BytesMut::new();
        assert!(!g.finish(&mut out));
        assert!(out.starts_with(b"C\0\0\0\x11CREATE TABLE\0"));
    }
}
