//! The client's transaction as the proxy sees it: explicit (the client's
//! `BEGIN`, held back until a statement needs a shard) or implicit (a
//! pipeline of statements up to Sync that reaches several servers), with
//! its participants: one server connection per shard it touched, each
//! joining on first use with the transaction's `BEGIN` and savepoints.
//!
//! Pure bookkeeping: the session sends what this module says to send.

use sql_rewrite::{Classification, TxnEffect};

use crate::protocol::TxStatus;

/// Whether and how a transaction is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No transaction: every statement commits by itself.
    Idle,
    /// The proxy opened one for a batch that reaches several servers; it
    /// ends at the batch's Sync.
    Implicit,
    /// The client opened one with `BEGIN`; it ends with COMMIT/ROLLBACK.
    Explicit,
}

/// A shard's server connection taking part in the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The shard.
    pub shard: usize,
    /// The session's server connection (slot id).
    pub slot: usize,
    /// A statement that may write ran there.
    pub wrote: bool,
}

/// Why a statement cannot run in the open transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRefusal {
    /// A second shard would write.
    #[error("a transaction that writes on more than one shard is not supported yet (two-phase commit comes with the distributed-transaction work): shard {wrote} already wrote in this transaction; keep a transaction's writes on one shard")]
    SecondWriter {
        /// The name of the shard that wrote first.
        wrote: String,
    },
}

/// The client's transaction.
#[derive(Debug)]
pub struct Transaction {
    mode: Mode,
    begin: String,
    read_only: bool,
    failed: bool,
    participants: Vec<Participant>,
    savepoints: Vec<String>,
}

impl Default for Transaction {
    fn default() -> Self {
        Transaction {
            mode: Mode::Idle,
            begin: String::from("BEGIN"),
            read_only: false,
            failed: false,
            participants: Vec::new(),
            savepoints: Vec::new(),
        }
    }
}

impl Transaction {
    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A transaction is open (explicit or implicit).
    pub fn open(&self) -> bool {
        self.mode != Mode::Idle
    }

    /// Opened `READ ONLY` by the client: replicas may serve it.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// A statement failed: only ROLLBACK (or ROLLBACK TO) is accepted.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The status byte of ReadyForQuery the client gets.
    pub fn status(&self) -> TxStatus {
        match (self.mode, self.failed) {
            (Mode::Explicit, true) => TxStatus::Failed,
            (Mode::Explicit, false) => TxStatus::InTransaction,
            _ => TxStatus::Idle,
        }
    }

    /// The client's `BEGIN` (its text is replayed on every shard that joins).
    pub fn begin_explicit(&mut self, sql: &str, read_only: bool) {
        if self.mode == Mode::Implicit {
            // a BEGIN inside a pipeline takes over what ran before it
            self.mode = Mode::Explicit;
            return;
        }
        *self = Transaction {
            mode: Mode::Explicit,
            begin: sql.trim().trim_end_matches(';').to_string(),
            read_only,
            ..Transaction::default()
        };
    }

    /// The proxy opens a transaction for a batch that reaches several servers.
    pub fn begin_implicit(&mut self) {
        if self.mode == Mode::Idle {
            *self = Transaction {
                mode: Mode::Implicit,
                ..Transaction::default()
            };
        }
    }

    /// Marks the transaction failed (an error reached the client).
    pub fn fail(&mut self) {
        if self.mode == Mode::Explicit {
            self.failed = true;
        }
    }

    /// The participant on `shard`, if it joined.
    pub fn participant(&self, shard: usize) -> Option<&Participant> {
        self.participants.iter().find(|p| p.shard == shard)
    }

    /// Every participant, in joining order.
    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    /// The shard that joined first (where key-less statements go).
    pub fn first_shard(&self) -> Option<usize> {
        self.participants.first().map(|p| p.shard)
    }

    /// `slot` joins for `shard`; returns the SQL that opens the transaction
    /// there (BEGIN with the client's options, then the open savepoints).
    pub fn join(&mut self, shard: usize, slot: usize) -> String {
        self.participants.push(Participant {
            shard,
            slot,
            wrote: false,
        });
        let mut sql = self.begin.clone();
        for s in &self.savepoints {
            sql.push_str("; ");
            sql.push_str(s);
        }
        sql
    }

    /// A statement that may write runs on `shard`: refused when another
    /// shard already wrote in an explicit transaction.
    pub fn write_on(
        &mut self,
        shard: usize,
        name: impl Fn(usize) -> String,
    ) -> Result<(), TxnRefusal> {
        if self.mode == Mode::Explicit {
            if let Some(other) = self
                .participants
                .iter()
                .find(|p| p.wrote && p.shard != shard)
            {
                return Err(TxnRefusal::SecondWriter {
                    wrote: name(other.shard),
                });
            }
        }
        if let Some(p) = self.participants.iter_mut().find(|p| p.shard == shard) {
            p.wrote = true;
        }
        Ok(())
    }

    /// Records a savepoint statement that every participant ran
    /// (`SAVEPOINT`, `RELEASE`, `ROLLBACK TO`), so that later joiners
    /// get the same savepoints.
    pub fn savepoint(&mut self, op: &Savepoint) {
        let pos = |name: &str, list: &[String]| {
            list.iter()
                .rposition(|s| savepoint_name(s).eq_ignore_ascii_case(name))
        };
        match op {
            Savepoint::Define(name) => self.savepoints.push(format!("SAVEPOINT {name}")),
            Savepoint::Release(name) => {
                if let Some(i) = pos(name, &self.savepoints) {
                    self.savepoints.truncate(i);
                }
            }
            Savepoint::RollbackTo(name) => {
                if let Some(i) = pos(name, &self.savepoints) {
                    self.savepoints.truncate(i + 1);
                    self.failed = false;
                }
            }
        }
    }

    /// Ends the transaction; returns its participants (to commit or roll back).
    pub fn end(&mut self) -> Vec<Participant> {
        let p = std::mem::take(&mut self.participants);
        *self = Transaction::default();
        p
    }

    /// What a server's ReadyForQuery status says after the client's own
    /// statements ran on it (a `BEGIN` or `COMMIT` inside a longer text).
    pub fn observe(&mut self, shard: usize, slot: usize, status: TxStatus) {
        let known = self.participants.iter().position(|p| p.slot == slot);
        match (status, known) {
            (TxStatus::Idle, Some(i)) => {
                self.participants.remove(i);
                if self.participants.is_empty() && self.mode == Mode::Explicit {
                    *self = Transaction::default();
                }
            }
            (TxStatus::InTransaction | TxStatus::Failed, None) => {
                if self.mode == Mode::Idle {
                    self.mode = Mode::Explicit;
                }
                self.participants.push(Participant {
                    shard,
                    slot,
                    wrote: true,
                });
                if status == TxStatus::Failed {
                    self.fail();
                }
            }
            (TxStatus::Failed, Some(_)) => self.fail(),
            _ => {}
        }
    }

    /// Forgets a participant whose server connection is gone; the
    /// transaction has failed.
    pub fn lost(&mut self, slot: usize) -> bool {
        let before = self.participants.len();
        self.participants.retain(|p| p.slot != slot);
        let lost = self.participants.len() != before;
        if lost {
            self.fail();
        }
        lost
    }
}

/// A savepoint statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Savepoint {
    /// `SAVEPOINT name`.
    Define(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
}

impl Savepoint {
    /// Recognises a single savepoint statement.
    pub fn parse(sql: &str) -> Option<Savepoint> {
        let sql = sql.trim().trim_end_matches(';').trim();
        let words: Vec<&str> = sql.split_whitespace().collect();
        let up = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase());
        let name = |i: usize| (words.len() == i + 1).then(|| words[i].to_string());
        match up(0)?.as_str() {
            "SAVEPOINT" => name(1).map(Savepoint::Define),
            "RELEASE" => {
                let i = if up(1).as_deref() == Some("SAVEPOINT") {
                    2
                } else {
                    1
                };
                name(i).map(Savepoint::Release)
            }
            "ROLLBACK" | "ABORT" => {
                let mut i = 1;
                if matches!(up(i).as_deref(), Some("WORK" | "TRANSACTION")) {
                    i += 1;
                }
                if up(i).as_deref() != Some("TO") {
                    return None;
                }
                i += 1;
                if up(i).as_deref() == Some("SAVEPOINT") {
                    i += 1;
                }
                name(i).map(Savepoint::RollbackTo)
            }
            _ => None,
        }
    }
}

/// Transaction control the proxy runs itself.
#[derive(Debug, Clone)]
pub enum Control {
    /// BEGIN / START TRANSACTION.
    Begin {
        /// The transaction was opened `READ ONLY`.
        read_only: bool,
    },
    /// COMMIT (`commit`) or ROLLBACK.
    End {
        /// COMMIT rather than ROLLBACK.
        commit: bool,
    },
    /// A savepoint statement.
    Savepoint(Savepoint),
}

/// The transaction control a one-statement text is, if any.
pub fn control(sql: &str, class: &Classification) -> Option<Control> {
    // SAVEPOINT, RELEASE, ROLLBACK/ABORT TO: only then the parser
    let first = sql
        .trim_start()
        .bytes()
        .next()
        .map(|b| b.to_ascii_uppercase());
    if matches!(first, Some(b'S' | b'R' | b'A')) {
        if let Some(sp) = Savepoint::parse(sql) {
            return Some(Control::Savepoint(sp));
        }
    }
    match class.txn? {
        _ if sql_rewrite::split_statements(sql).len() > 1 => None,
        TxnEffect::Begin { read_only } => Some(Control::Begin { read_only }),
        TxnEffect::Commit => Some(Control::End { commit: true }),
        TxnEffect::Rollback => Some(Control::End { commit: false }),
    }
}

/// Why a statement of an aborted transaction is not run.
pub const ABORTED: &str =
    "current transaction is aborted, commands ignored until end of transaction block";

/// The name in a recorded `SAVEPOINT name`.
fn savepoint_name(stmt: &str) -> &str {
    stmt.rsplit(' ').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: usize) -> String {
        format!("s{i}")
    }

    #[test]
    fn an_explicit_transaction_joins_shards_with_its_begin() {
        let mut t = Transaction::default();
        assert_eq!(t.status(), TxStatus::Idle);
        t.begin_explicit("BEGIN ISOLATION LEVEL REPEATABLE READ;", false);
        assert_eq!(t.status(), TxStatus::InTransaction);
        assert_eq!(t.join(1, 7), "BEGIN ISOLATION LEVEL REPEATABLE READ");
        t.savepoint(&Savepoint::Define("a".into()));
        assert_eq!(
            t.join(0, 3),
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SAVEPOINT a"
        );
        assert_eq!(t.first_shard(), Some(1));
        assert_eq!(t.participant(0).map(|p| p.slot), Some(3));
        let ended = t.end();
        assert_eq!(ended.len(), 2);
        assert_eq!(t.mode(), Mode::Idle);
    }

    #[test]
    fn a_second_writing_shard_is_refused_in_an_explicit_transaction() {
        let mut t = Transaction::default();
        t.begin_explicit("BEGIN", false);
        t.join(0, 0);
        t.join(1, 1);
        assert!(t.write_on(0, name).is_ok());
        assert!(t.write_on(0, name).is_ok());
        assert_eq!(
            t.write_on(1, name),
            Err(TxnRefusal::SecondWriter { wrote: "s0".into() })
        );
        let mut t = Transaction::default();
        t.begin_implicit();
        t.join(0, 0);
        t.join(1, 1);
        assert!(t.write_on(0, name).is_ok());
        assert!(t.write_on(1, name).is_ok(), "a pipeline may write anywhere");
        assert_eq!(t.status(), TxStatus::Idle);
    }

    #[test]
    fn savepoints_are_replayed_as_they_stand() {
        let mut t = Transaction::default();
        t.begin_explicit("BEGIN", false);
        for n in ["a", "b", "c"] {
            t.savepoint(&Savepoint::Define(n.into()));
        }
        t.savepoint(&Savepoint::RollbackTo("B".into()));
        assert_eq!(t.join(0, 0), "BEGIN; SAVEPOINT a; SAVEPOINT b");
        t.savepoint(&Savepoint::Release("a".into()));
        assert_eq!(t.join(1, 1), "BEGIN");
    }

    #[test]
    fn failure_and_rollback_to_savepoint() {
        let mut t = Transaction::default();
        t.begin_explicit("BEGIN", false);
        t.savepoint(&Savepoint::Define("a".into()));
        t.fail();
        assert_eq!(t.status(), TxStatus::Failed);
        t.savepoint(&Savepoint::RollbackTo("a".into()));
        assert_eq!(t.status(), TxStatus::InTransaction);
        let mut idle = Transaction::default();
        idle.fail();
        assert_eq!(
            idle.status(),
            TxStatus::Idle,
            "outside a transaction nothing stays failed"
        );
    }

    #[test]
    fn servers_tell_of_transactions_opened_in_passing() {
        let mut t = Transaction::default();
        t.observe(0, 4, TxStatus::InTransaction);
        assert_eq!(t.mode(), Mode::Explicit);
        assert_eq!(t.first_shard(), Some(0));
        t.observe(0, 4, TxStatus::Failed);
        assert_eq!(t.status(), TxStatus::Failed);
        t.observe(0, 4, TxStatus::Idle);
        assert_eq!(t.mode(), Mode::Idle);
        t.observe(1, 2, TxStatus::Idle);
        assert_eq!(t.mode(), Mode::Idle);
    }

    #[test]
    fn a_lost_participant_fails_the_transaction() {
        let mut t = Transaction::default();
        t.begin_explicit("BEGIN", false);
        t.join(0, 5);
        assert!(!t.lost(6));
        assert!(t.lost(5));
        assert_eq!(t.status(), TxStatus::Failed);
    }

    #[test]
    fn transaction_control_statements() {
        let c = |sql: &str| control(sql, &sql_rewrite::classify(sql, &[]));
        assert!(matches!(
            c("BEGIN"),
            Some(Control::Begin { read_only: false })
        ));
        assert!(matches!(
            c("START TRANSACTION READ ONLY"),
            Some(Control::Begin { read_only: true })
        ));
        assert!(matches!(c("COMMIT"), Some(Control::End { commit: true })));
        assert!(matches!(c("ABORT"), Some(Control::End { commit: false })));
        assert!(matches!(
            c("SAVEPOINT a"),
            Some(Control::Savepoint(Savepoint::Define(_)))
        ));
        assert!(
            c("BEGIN; SELECT 1").is_none(),
            "several statements run as they are"
        );
        assert!(c("SELECT 1").is_none());
    }

    #[test]
    fn savepoint_statements() {
        assert_eq!(
            Savepoint::parse("SAVEPOINT a1;"),
            Some(Savepoint::Define("a1".into()))
        );
        assert_eq!(
            Savepoint::parse("release savepoint x"),
            Some(Savepoint::Release("x".into()))
        );
        assert_eq!(
            Savepoint::parse("RELEASE x"),
            Some(Savepoint::Release("x".into()))
        );
        assert_eq!(
            Savepoint::parse("ROLLBACK WORK TO SAVEPOINT y"),
            Some(Savepoint::RollbackTo("y".into()))
        );
        assert_eq!(
            Savepoint::parse("ROLLBACK TO y"),
            Some(Savepoint::RollbackTo("y".into()))
        );
        assert_eq!(Savepoint::parse("ROLLBACK"), None);
        assert_eq!(Savepoint::parse("SAVEPOINT"), None);
        assert_eq!(Savepoint::parse("SELECT 1"), None);
    }
}
