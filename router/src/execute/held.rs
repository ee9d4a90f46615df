//! The rows of a cross-shard result that a client reads with a row limit
//! (a fetch size, a cursor's prefetch): the shards run the statement whole,
//! the proxy holds the merged rows and hands them out Execute by Execute,
//! each batch ending in PortalSuspended until the last ends in the
//! statement's CommandComplete, as one server's suspended portal would.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

use crate::protocol::frame;
use crate::protocol::messages;

/// A merged result held for a suspended portal.
#[derive(Debug, Default)]
pub struct Held {
    /// DataRows (and any notices between them) not sent yet.
    rows: VecDeque<Bytes>,
    /// The statement's end (CommandComplete or EmptyQueryResponse).
    complete: Option<Bytes>,
    /// The portal's RowDescription, for a later Describe of it.
    pub description: Option<Bytes>,
}

impl Held {
    /// Holds the frames in `buf`: rows, then the statement's end.
    pub fn from_frames(buf: Bytes, description: Option<Bytes>) -> Self {
        let mut held = Held {
            description,
            ..Held::default()
        };
        let mut rest = BytesMut::from(&buf[..]);
        while let Ok(Some(f)) = frame::split(&mut rest, usize::MAX) {
            match f.tag {
                b'C' | b'I' => held.complete = Some(f.bytes),
                _ => held.rows.push_back(f.bytes),
            }
        }
        held
    }

    /// Sends up to `n` rows (0: all), then PortalSuspended when `n` rows
    /// went out (as a server does, even when none are left), else the
    /// statement's end with this batch's row count; `true` at the end.
    pub fn serve(&mut self, n: i32, out: &mut BytesMut) -> bool {
        let mut sent = 0i64;
        while let Some(r) = self.rows.front() {
            let row = r.first() == Some(&b'D');
            if row && n > 0 && sent >= i64::from(n) {
                break;
            }
            sent += i64::from(row);
            out.extend_from_slice(r);
            self.rows.pop_front();
        }
        if n > 0 && sent >= i64::from(n) {
            messages::raw(out, b's', b"");
            return false;
        }
        match self.complete.take() {
            Some(c) if c.get(5..12) == Some(b"SELECT ") => {
                messages::command_complete(out, &format!("SELECT {sent}"));
            }
            Some(c) => out.extend_from_slice(&c),
            None => {}
        }
        true
    }
}

impl Held {
    /// Sends up to `n` rows (`None`: all that are left) and no end;
    /// returns how many went out (a cursor's FETCH, or MOVE with `out`
    /// `None`).
    pub fn take(&mut self, n: Option<u64>, mut out: Option<&mut BytesMut>) -> u64 {
        let mut sent = 0;
        while n.is_none_or(|n| sent < n) {
            let Some(r) = self.rows.pop_front() else {
                break;
            };
            let row = r.first() == Some(&b'D');
            sent += u64::from(row);
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&r);
            }
        }
        sent
    }
}

/// Cursors the proxy runs itself, by name.
#[derive(Debug, Default)]
pub struct MergedCursors {
    /// Each cursor's rows and whether it is WITH HOLD.
    pub held: HashMap<String, (Held, bool)>,
}

impl MergedCursors {
    /// The transaction ended: cursors without HOLD close with it.
    pub fn transaction_ended(&mut self) {
        self.held.retain(|_, (_, hold)| *hold);
    }
}

/// The number of DataRows in a buffer of whole frames.
pub fn count_rows(buf: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Ok(Some(len)) = frame::check(&buf[at..], usize::MAX) {
        if buf[at] == b'D' {
            n += 1;
        }
        at += len;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Bytes {
        let mut b = BytesMut::new();
        for i in 0..n {
            messages::data_row(&mut b, &[Some(&i.to_string())]);
        }
        messages::command_complete(&mut b, &format!("SELECT {n}"));
        b.freeze()
    }

    fn tags(b: &[u8]) -> String {
        let mut rest = BytesMut::from(b);
        let mut t = String::new();
        while let Ok(Some(f)) = frame::split(&mut rest, usize::MAX) {
            t.push(f.tag as char);
        }
        t
    }

    #[test]
    fn rows_go_out_in_batches_then_the_end() {
        let mut h = Held::from_frames(rows(5), None);
        let mut out = BytesMut::new();
        assert!(!h.serve(2, &mut out));
        assert_eq!(tags(&out), "DDs");
        out.clear();
        assert!(!h.serve(2, &mut out));
        assert_eq!(tags(&out), "DDs");
        out.clear();
        assert!(h.serve(2, &mut out));
        assert_eq!(tags(&out), "DC");
        assert!(out.ends_with(b"SELECT 1\0"), "the count of this batch");
        let mut h = Held::from_frames(rows(2), None);
        out.clear();
        assert!(
            !h.serve(2, &mut out),
            "exactly n rows: suspended, as a server does"
        );
        assert_eq!(tags(&out), "DDs");
        out.clear();
        assert!(h.serve(2, &mut out));
        assert!(out.ends_with(b"SELECT 0\0"));
        let mut h = Held::from_frames(rows(3), None);
        out.clear();
        assert!(h.serve(0, &mut out));
        assert_eq!(tags(&out), "DDDC");
        assert_eq!(count_rows(&rows(3)), 3);
    }
}
