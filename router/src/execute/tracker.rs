//! What one server connection was sent and still owes: the queue of
//! expected answers, in order, and what each answer does to it. Pure: the
//! session feeds it the tags the server sends and acts on what it returns.
//!
//! Postgres answers every message of the extended protocol in order; an
//! error skips everything up to the next Sync, which is still answered
//! (ReadyForQuery). A simple Query, a FunctionCall and a Sync end with
//! ReadyForQuery whatever happened before.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use sql_rewrite::SessionEffect;

use super::statement::Statement;

/// What a message sent to a server will be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Parse → ParseComplete.
    Parse,
    /// Bind → BindComplete.
    Bind,
    /// Describe → [ParameterDescription] RowDescription | NoData.
    Describe,
    /// Execute → rows, then CommandComplete | EmptyQuery | PortalSuspended.
    Execute,
    /// Close → CloseComplete.
    Close,
    /// Sync → ReadyForQuery.
    Sync,
    /// Query → anything, then ReadyForQuery.
    Query,
    /// FunctionCall → FunctionCallResponse, then ReadyForQuery.
    FunctionCall,
}

impl Kind {
    /// Ends with ReadyForQuery (and so survives an error).
    pub fn ends_with_ready(self) -> bool {
        matches!(self, Kind::Sync | Kind::Query | Kind::FunctionCall)
    }
}

/// Undo information for an optimistic Parse.
#[derive(Debug, Clone)]
pub struct ParseUndo {
    /// Statement name.
    pub name: Bytes,
    /// What the client registry held before (`None` for proxy-injected parses).
    pub registry_before: Option<Option<Arc<Statement>>>,
    /// What the server connection held before.
    pub slot_before: Option<Arc<Statement>>,
}

/// One message awaiting its answer.
#[derive(Debug)]
pub struct Pending {
    /// The kind of answer expected.
    pub kind: Kind,
    /// The proxy sent it: its answers are not for the client.
    pub swallow: bool,
    /// An error (or a ROLLBACK) arrived for it: its effects do not count.
    pub errored: bool,
    /// Session effects to record when it completes.
    pub effects: Vec<SessionEffect>,
    /// For Parse: how to undo the optimistic registration.
    pub undo: Option<ParseUndo>,
    /// One of several shards' answers to one statement, merged by the session.
    pub gather: bool,
    /// In a mirrored statement, the shard whose answer the client sees.
    pub lead: bool,
    /// In a batch gathered from several shards: the client-visible step it
    /// answers (`None`: the proxy's own message).
    pub step: Option<usize>,
    /// Its ReadyForQuery ends the unit of work the session waits for.
    pub unit_end: bool,
    /// Its answers belong to a COPY FROM STDIN split over every shard.
    pub copy: bool,
    /// A Describe of a statement (answered ParameterDescription, then
    /// RowDescription or NoData), not of a portal.
    pub statement_describe: bool,
    /// The proxy sent it and swallows its answers, but an error it gets is
    /// the client's (a transaction's BEGIN on a joining shard, a COMMIT).
    pub quiet: bool,
}

impl Pending {
    /// A plain entry.
    pub fn new(kind: Kind, swallow: bool) -> Self {
        Self {
            kind,
            swallow,
            errored: false,
            effects: Vec::new(),
            undo: None,
            gather: false,
            lead: false,
            step: None,
            unit_end: false,
            statement_describe: false,
            copy: false,
            quiet: false,
        }
    }

    /// The proxy's own Sync (or Query) whose ReadyForQuery ends a unit.
    pub fn unit_end(kind: Kind) -> Self {
        let mut p = Pending::new(kind, true);
        p.unit_end = true;
        p
    }

    /// A proxy statement whose errors reach the client.
    pub fn quiet(kind: Kind) -> Self {
        let mut p = Pending::new(kind, true);
        p.quiet = true;
        p
    }
}

/// The answers a server connection owes.
#[derive(Debug, Default)]
pub struct Tracker(VecDeque<Pending>);

/// What an ErrorResponse did to the queue.
#[derive(Debug)]
pub enum ErrorOutcome {
    /// Nothing was owed: an error on an idle connection (a shutdown, a
    /// timeout), not the client's.
    Idle,
    /// The error belongs to a Query, FunctionCall or Sync still owed.
    Marked,
    /// The failed message and everything up to its Sync were dropped: they
    /// will not be answered.
    Skipped(Vec<Pending>),
}

impl Tracker {
    /// Books a message's expected answer.
    pub fn push(&mut self, p: Pending) {
        self.0.push_back(p);
    }

    /// The answer expected next.
    pub fn front(&self) -> Option<&Pending> {
        self.0.front()
    }

    /// The answer expected next, mutably.
    pub fn front_mut(&mut self) -> Option<&mut Pending> {
        self.0.front_mut()
    }

    /// The answer booked last, mutably.
    pub fn back_mut(&mut self) -> Option<&mut Pending> {
        self.0.back_mut()
    }

    /// The next expected answer arrived in full (ParseComplete,
    /// BindComplete, CloseComplete, a Describe's or an Execute's end).
    pub fn answered(&mut self) -> Option<Pending> {
        self.0.pop_front()
    }

    /// A ReadyForQuery: the message it answers, and the ones before it
    /// that will never be answered (skipped after an error).
    pub fn ready(&mut self) -> (Option<Pending>, Vec<Pending>) {
        let mut skipped = Vec::new();
        while let Some(p) = self.0.pop_front() {
            if p.kind.ends_with_ready() {
                return (Some(p), skipped);
            }
            skipped.push(p);
        }
        (None, skipped)
    }

    /// An ErrorResponse.
    pub fn error(&mut self) -> ErrorOutcome {
        match self.0.front_mut() {
            None => ErrorOutcome::Idle,
            Some(p) if p.kind.ends_with_ready() => {
                p.errored = true;
                ErrorOutcome::Marked
            }
            Some(_) => {
                let mut dropped = Vec::new();
                while self.0.front().is_some_and(|p| !p.kind.ends_with_ready()) {
                    if let Some(p) = self.0.pop_front() {
                        dropped.push(p);
                    }
                }
                ErrorOutcome::Skipped(dropped)
            }
        }
    }

    /// Nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every answer still owed, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.0.iter()
    }

    /// Unit ends (the proxy's Syncs and Queries the session waits for) owed.
    pub fn unit_ends(&self) -> usize {
        self.0.iter().filter(|p| p.unit_end).count()
    }

    /// The client waits for some of what is owed.
    pub fn client_waits(&self) -> bool {
        self.0.iter().any(|p| !p.swallow || p.quiet)
    }

    /// Whether the next answer is of kind `k`.
    pub fn next_is(&self, k: Kind) -> bool {
        self.0.front().is_some_and(|p| p.kind == k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(kinds: &[Kind]) -> Tracker {
        let mut t = Tracker::default();
        for &k in kinds {
            t.push(Pending::new(k, false));
        }
        t
    }

    #[test]
    fn answers_pop_in_order_and_ready_ends_the_batch() {
        let mut t = tracker(&[Kind::Parse, Kind::Bind, Kind::Execute, Kind::Sync]);
        assert!(t.next_is(Kind::Parse));
        assert_eq!(t.answered().map(|p| p.kind), Some(Kind::Parse));
        assert_eq!(t.answered().map(|p| p.kind), Some(Kind::Bind));
        assert_eq!(t.answered().map(|p| p.kind), Some(Kind::Execute));
        let (ready, skipped) = t.ready();
        assert_eq!(ready.map(|p| p.kind), Some(Kind::Sync));
        assert!(skipped.is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn an_error_skips_to_sync() {
        let mut t = tracker(&[
            Kind::Parse,
            Kind::Bind,
            Kind::Execute,
            Kind::Sync,
            Kind::Query,
        ]);
        t.answered();
        match t.error() {
            ErrorOutcome::Skipped(d) => {
                assert_eq!(
                    d.iter().map(|p| p.kind).collect::<Vec<_>>(),
                    [Kind::Bind, Kind::Execute]
                )
            }
            other => panic!("{other:?}"),
        }
        let (ready, _) = t.ready();
        assert_eq!(ready.map(|p| p.kind), Some(Kind::Sync));
        assert!(
            matches!(t.error(), ErrorOutcome::Marked),
            "a Query's error marks it"
        );
        let (ready, _) = t.ready();
        assert!(ready.is_some_and(|p| p.errored));
        assert!(matches!(t.error(), ErrorOutcome::Idle));
    }

    #[test]
    fn ready_reports_what_was_never_answered() {
        let mut t = tracker(&[Kind::Describe, Kind::Sync]);
        let (ready, skipped) = t.ready();
        assert!(ready.is_some());
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn unit_ends_and_waiting_clients() {
        let mut t = Tracker::default();
        t.push(Pending::new(Kind::Query, true));
        assert!(!t.client_waits(), "the proxy's own replay");
        t.push(Pending::quiet(Kind::Query));
        assert!(
            t.client_waits(),
            "a quiet statement's error is the client's"
        );
        t.push(Pending::unit_end(Kind::Sync));
        assert_eq!(t.unit_ends(), 1);
    }
}
