//! Answers of several shards to one statement, merged into one answer for
//! the client: the first RowDescription, every DataRow, one CommandComplete
//! with the summed count (or the first error), one ReadyForQuery.

use bytes::{Bytes, BytesMut};

use super::aggregate::AggMerge;
use super::merge::RowMerge;
use crate::protocol::messages;

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

    /// Writes the merged end of the answer to the client.
    pub fn finish(self, out: &mut BytesMut) {
        if self.mirror {
            if let (Some(e), false) = (self.error, self.lead_failed) {
                out.extend_from_slice(&e);
            }
            messages::ready_for_query(out, b'I');
            return;
        }
        match self.error {
            Some(e) => out.extend_from_slice(&e),
            None if self.agg.is_some() => {
                let n = match &self.agg {
                    Some(a) => u64::from(a.finish(out)),
                    None => 0,
                };
                messages::command_complete(out, &format!("SELECT {n}"));
            }
            None if self.merge.is_some() => {
                // A merge that outgrew proxy.merge_row_limit fails as a whole.
                match self.merge.as_ref().and_then(RowMerge::overflow) {
                    Some(why) => {
                        messages::error_response(out, messages::Severity::Error, "54000", why)
                    }
                    None => {
                        let n = self.merge.as_ref().map_or(0, |m| m.emitted);
                        messages::command_complete(out, &format!("SELECT {n}"));
                    }
                }
            }
            None => {
                if let Some(prefix) = self.prefix {
                    let tag = if prefix.starts_with("SELECT")
                        || prefix.starts_with("INSERT")
                        || prefix.starts_with("UPDATE")
                        || prefix.starts_with("DELETE")
                        || prefix.starts_with("MERGE")
                        || prefix.starts_with("COPY")
                        || prefix.starts_with("FETCH")
                        || prefix.starts_with("MOVE")
                    {
                        format!("{prefix} {}", self.count)
                    } else {
                        prefix
                    };
                    messages::command_complete(out, &tag);
                }
            }
        }
        messages::ready_for_query(out, b'I');
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
        g.finish(&mut out);
        assert_eq!(&out[..], b"C\0\0\0\x0fINSERT 0 5\0Z\0\0\0\x05I");
        let mut g = Gather::new(2, false);
        g.add_tag(b"CREATE TABLE");
        g.add_tag(b"CREATE TABLE");
        let mut out = BytesMut::new();
        g.finish(&mut out);
        assert!(out.starts_with(b"C\0\0\0\x11CREATE TABLE\0"));
    }
}
