//! The client-visible answers of an extended-protocol batch that runs on
//! several shards: each message the client sent (Parse, Bind, Describe,
//! Execute, Close) gets one answer, in order, however many shards run it.

use bytes::Bytes;

/// When a step's answer may go to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// As soon as one shard answered (ParseComplete, BindComplete, a
    /// RowDescription): every shard answers alike.
    First,
    /// When every shard finished (Execute: the merged rows' end and count).
    All,
}

/// Answers of one batch's steps, emitted in the client's order.
#[derive(Debug, Default)]
pub struct Steps {
    need: Vec<Need>,
    done: Vec<usize>,
    answers: Vec<Option<Bytes>>,
    emitted: usize,
}

/// The next answer due to the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// These bytes (the first shard's answer).
    Answer(Bytes),
    /// The end of the merged command (rows left, CommandComplete).
    Complete,
}

impl Steps {
    /// Adds a step; returns its index.
    pub fn push(&mut self, need: Need) -> usize {
        self.need.push(need);
        self.done.push(0);
        self.answers.push(None);
        self.need.len() - 1
    }

    /// A shard finished step `k`, answering `answer` (kept from the first).
    pub fn done(&mut self, k: usize, answer: Option<Bytes>) {
        if let Some(d) = self.done.get_mut(k) {
            *d += 1;
            if self.answers[k].is_none() {
                self.answers[k] = answer;
            }
        }
    }

    /// The next answer that may go out now, given `shards` shards in all.
    pub fn next(&mut self, shards: usize) -> Option<Due> {
        let k = self.emitted;
        let due = match self.need.get(k)? {
            Need::First if self.done[k] >= 1 => Due::Answer(self.answers[k].take()?),
            Need::All if self.done[k] >= shards => Due::Complete,
            _ => return None,
        };
        self.emitted += 1;
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_go_out_in_order_once() {
        let mut s = Steps::default();
        let bind = s.push(Need::First);
        let exec = s.push(Need::All);
        let close = s.push(Need::First);
        assert_eq!(s.next(2), None);
        s.done(bind, Some(Bytes::from_static(b"2")));
        s.done(bind, Some(Bytes::from_static(b"x")));
        assert_eq!(s.next(2), Some(Due::Answer(Bytes::from_static(b"2"))));
        s.done(exec, None);
        s.done(close, Some(Bytes::from_static(b"3")));
        assert_eq!(
            s.next(2),
            None,
            "the close waits for the execute of every shard"
        );
        s.done(exec, None);
        assert_eq!(s.next(2), Some(Due::Complete));
        assert_eq!(s.next(2), Some(Due::Answer(Bytes::from_static(b"3"))));
        assert_eq!(s.next(2), None);
    }
}
