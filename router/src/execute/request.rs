//! The client's request: the messages up to a Sync, a Flush, a simple Query
//! or a FunctionCall, cut into groups that each run in one place.
//!
//! A group is what one statement execution needs: a `Bind` with the
//! `Describe` and `Execute`s of its portal, preceded by the `Parse`s and
//! statement `Describe`s the client sent before it. `Close`s stay with the
//! group before them. Messages that belong to no execution (a driver's
//! `Parse`, `Describe`, `Flush` before it binds) form a group without a
//! Bind, which any server can answer: the schema is the same everywhere.
//! A request's groups run one after another, so the client gets its
//! answers in exactly the order it sent the messages.

use bytes::BytesMut;

use crate::protocol::messages::{self, Malformed};
use crate::protocol::Frame;

/// Messages a request holds before it is run anyway (a client that
/// pipelines without Sync): the bound on what the proxy buffers.
pub const MAX_REQUEST_MESSAGES: usize = 4096;

/// How a request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `Sync`: the client wants a ReadyForQuery; the batch's implicit
    /// transaction ends.
    Sync,
    /// `Flush`: the client wants the answers so far; the batch goes on.
    Flush,
    /// A simple `Query` (the last group): ReadyForQuery after it.
    Query,
    /// A `FunctionCall` (the last group): ReadyForQuery after it.
    FunctionCall,
    /// Too many messages without Sync or Flush: run them, the batch goes on.
    Full,
}

impl Ending {
    /// The request ends the client's batch (its answer ends with ReadyForQuery).
    pub fn ends_batch(self) -> bool {
        matches!(self, Ending::Sync | Ending::Query | Ending::FunctionCall)
    }

    /// The ending a client message gives a request, if it ends one.
    pub fn of(tag: u8) -> Option<Ending> {
        match tag {
            b'S' => Some(Ending::Sync),
            b'H' => Some(Ending::Flush),
            b'Q' => Some(Ending::Query),
            b'F' => Some(Ending::FunctionCall),
            _ => None,
        }
    }
}

/// What decides where a group runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The `Bind` at this index of the group's frames.
    Bind(usize),
    /// Executes or describes a portal bound by an earlier request.
    Portal(Vec<u8>),
    /// A simple Query (the group's only frame).
    Query,
    /// A FunctionCall (the group's only frame).
    FunctionCall,
    /// Nothing executes: Parse, Describe of a statement, Close.
    Nothing,
}

/// Messages that run in one place.
#[derive(Debug, Clone)]
pub struct Group {
    /// The client's frames, in order (no Sync or Flush).
    pub frames: Vec<Frame>,
    /// What decides the group's place.
    pub anchor: Anchor,
    /// The portal its Bind creates (for the Describe/Execute that follow).
    portal: Option<Vec<u8>>,
}

impl Group {
    fn new(frames: Vec<Frame>, anchor: Anchor) -> Self {
        Group {
            frames,
            anchor,
            portal: None,
        }
    }

    /// A group of one simple Query.
    pub fn query(f: Frame) -> Self {
        Group::new(vec![f], Anchor::Query)
    }

    /// The group executes something (a Bind, an Execute, a Query, a call).
    pub fn executes(&self) -> bool {
        !matches!(self.anchor, Anchor::Nothing)
    }

    /// The `Bind` frame that anchors the group.
    pub fn bind(&self) -> Option<&Frame> {
        match self.anchor {
            Anchor::Bind(i) => self.frames.get(i),
            _ => None,
        }
    }
}

/// A Query frame of `sql`.
pub fn query_frame(sql: &str) -> Frame {
    let mut b = BytesMut::new();
    messages::query(&mut b, sql);
    Frame {
        tag: b'Q',
        bytes: b.freeze(),
    }
}

/// Cuts a request's frames (without its Sync or Flush) into groups.
pub fn groups(frames: &[Frame]) -> Result<Vec<Group>, Malformed> {
    let mut out: Vec<Group> = Vec::new();
    let mut floating: Vec<Frame> = Vec::new();
    for f in frames {
        match f.tag {
            b'B' => {
                let b = messages::Bind::read(f)?;
                let mut frames = std::mem::take(&mut floating);
                frames.push(f.clone());
                let mut g = Group::new(frames, Anchor::Bind(0));
                g.anchor = Anchor::Bind(g.frames.len() - 1);
                g.portal = Some(b.portal.to_vec());
                out.push(g);
            }
            b'E' | b'D' if is_portal_message(f)? => {
                let name = portal_name(f)?;
                match out.last_mut() {
                    Some(g) if g.portal.as_deref() == Some(name) => {
                        // a statement Describe between Bind and Execute stays with them
                        g.frames.append(&mut floating);
                        g.frames.push(f.clone());
                    }
                    _ => {
                        let mut frames = std::mem::take(&mut floating);
                        frames.push(f.clone());
                        let mut g = Group::new(frames, Anchor::Portal(name.to_vec()));
                        g.portal = Some(name.to_vec());
                        out.push(g);
                    }
                }
            }
            b'C' => match out.last_mut() {
                Some(g) if floating.is_empty() => g.frames.push(f.clone()),
                _ => floating.push(f.clone()),
            },
            b'Q' | b'F' => {
                if !floating.is_empty() {
                    out.push(Group::new(std::mem::take(&mut floating), Anchor::Nothing));
                }
                let anchor = if f.tag == b'Q' {
                    Anchor::Query
                } else {
                    Anchor::FunctionCall
                };
                out.push(Group::new(vec![f.clone()], anchor));
            }
            _ => floating.push(f.clone()),
        }
    }
    if !floating.is_empty() {
        match out.last_mut() {
            Some(g) if !matches!(g.anchor, Anchor::Query | Anchor::FunctionCall) => {
                g.frames.append(&mut floating)
            }
            _ => out.push(Group::new(floating, Anchor::Nothing)),
        }
    }
    Ok(out)
}

/// An `Execute`, or a `Describe` of a portal.
fn is_portal_message(f: &Frame) -> Result<bool, Malformed> {
    Ok(match f.tag {
        b'E' => true,
        b'D' => messages::Target::read(f)?.kind == b'P',
        _ => false,
    })
}

/// The portal an `Execute` or portal `Describe` names.
fn portal_name(f: &Frame) -> Result<&[u8], Malformed> {
    if f.tag == b'E' {
        return Ok(messages::execute_parts(f)?.0);
    }
    Ok(messages::Target::read(f)?.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn frame(tag: u8, body: &[u8]) -> Frame {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(body.len() as i32 + 4);
        b.put_slice(body);
        Frame {
            tag,
            bytes: b.freeze(),
        }
    }
    fn parse(name: &str) -> Frame {
        frame(b'P', format!("{name}\0SELECT 1\0\0\0").as_bytes())
    }
    fn bind(portal: &str, stmt: &str) -> Frame {
        frame(b'B', format!("{portal}\0{stmt}\0\0\0\0\0\0\0").as_bytes())
    }
    fn exec(portal: &str) -> Frame {
        frame(b'E', format!("{portal}\0\0\0\0\0").as_bytes())
    }
    fn describe(kind: u8, name: &str) -> Frame {
        let mut body = vec![kind];
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        frame(b'D', &body)
    }
    fn close(kind: u8, name: &str) -> Frame {
        let mut body = vec![kind];
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        frame(b'C', &body)
    }
    fn tags(g: &Group) -> String {
        g.frames.iter().map(|f| f.tag as char).collect()
    }

    #[test]
    fn one_statement_is_one_group() {
        let gs = groups(&[parse(""), bind("", ""), describe(b'P', ""), exec("")]).unwrap();
        assert_eq!(gs.len(), 1);
        assert_eq!(tags(&gs[0]), "PBDE");
        assert_eq!(gs[0].anchor, Anchor::Bind(1));
    }

    #[test]
    fn a_pipeline_is_one_group_per_bind() {
        let gs = groups(&[
            parse("s1"),
            bind("", "s1"),
            exec(""),
            bind("", "s1"),
            exec(""),
            close(b'S', "s1"),
            parse(""),
            bind("", ""),
            exec(""),
        ])
        .unwrap();
        let t: Vec<String> = gs.iter().map(tags).collect();
        assert_eq!(t, ["PBE", "BEC", "PBE"]);
        assert!(gs.iter().all(Group::executes));
    }

    #[test]
    fn a_prepare_before_bind_is_a_group_of_its_own() {
        let gs = groups(&[parse("s1"), describe(b'S', "s1")]).unwrap();
        assert_eq!(gs.len(), 1);
        assert_eq!(gs[0].anchor, Anchor::Nothing);
        assert!(!gs[0].executes());
    }

    #[test]
    fn an_execute_of_an_earlier_portal_continues_it() {
        let gs = groups(&[exec("c1"), exec("c1")]).unwrap();
        assert_eq!(gs.len(), 1);
        assert_eq!(gs[0].anchor, Anchor::Portal(b"c1".to_vec()));
        let gs = groups(&[bind("a", ""), exec("b")]).unwrap();
        assert_eq!(gs.len(), 2, "another portal's Execute is another group");
    }

    #[test]
    fn a_query_ends_the_pending_messages() {
        let q = frame(b'Q', b"SELECT 1\0");
        let gs = groups(&[bind("", ""), exec(""), q.clone()]).unwrap();
        assert_eq!(gs.len(), 2);
        assert_eq!(gs[1].anchor, Anchor::Query);
        let gs = groups(&[parse("x"), q]).unwrap();
        assert_eq!(gs.len(), 2);
        assert_eq!(gs[0].anchor, Anchor::Nothing);
    }

    #[test]
    fn a_statement_describe_between_bind_and_execute_stays() {
        // tokio-postgres' query_typed
        let gs = groups(&[parse(""), bind("", ""), describe(b'S', ""), exec("")]).unwrap();
        assert_eq!(gs.len(), 1);
        assert_eq!(tags(&gs[0]), "PBDE");
    }

    #[test]
    fn trailing_messages_join_the_last_group() {
        let gs = groups(&[bind("", ""), exec(""), parse("z")]).unwrap();
        assert_eq!(gs.len(), 1);
        assert_eq!(tags(&gs[0]), "BEP");
    }

    #[test]
    fn endings() {
        assert_eq!(Ending::of(b'S'), Some(Ending::Sync));
        assert_eq!(Ending::of(b'B'), None);
        assert!(Ending::Query.ends_batch());
        assert!(!Ending::Flush.ends_batch());
    }
}
