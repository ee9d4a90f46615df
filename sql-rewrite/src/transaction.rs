//! Transaction control: BEGIN / START TRANSACTION, COMMIT / END, ROLLBACK /
//! ABORT, savepoints.

use sqlparser::ast::{Statement, TransactionAccessMode, TransactionMode};

/// What a transaction-control statement does to the client's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnEffect {
    /// A transaction starts; `read_only` if its modes say `READ ONLY`.
    Begin {
        /// The transaction was opened `READ ONLY`.
        read_only: bool,
    },
    /// The transaction ends by COMMIT / END.
    Commit,
    /// The transaction ends by ROLLBACK / ABORT.
    Rollback,
}

/// How a transaction-control statement is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnControl {
    /// Transaction control with this effect (`None`: the transaction goes on,
    /// as after a savepoint or `COMMIT AND CHAIN`).
    Control(Option<TxnEffect>),
    /// Not transaction control, or a form PostgreSQL does not accept.
    Other,
}

/// Classifies `statement` as transaction control.
///
/// `COMMIT AND CHAIN` / `ROLLBACK AND CHAIN` end a transaction and at once
/// start another with the same characteristics, so they report no effect:
/// for the router the transaction simply continues.
pub(crate) fn txn_control(statement: &Statement) -> TxnControl {
    match statement {
        Statement::StartTransaction {
            modes,
            modifier: None,
            statements,
            exception: None,
            has_end_keyword: false,
            ..
        } if statements.is_empty() => TxnControl::Control(Some(TxnEffect::Begin {
            read_only: is_read_only(modes),
        })),
        Statement::Commit {
            chain,
            modifier: None,
            ..
        } => TxnControl::Control((!chain).then_some(TxnEffect::Commit)),
        Statement::Rollback {
            chain,
            savepoint: None,
        } => TxnControl::Control((!chain).then_some(TxnEffect::Rollback)),
        Statement::Rollback {
            savepoint: Some(_), ..
        }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => TxnControl::Control(None),
        _ => TxnControl::Other,
    }
}

/// Whether the last access mode among `modes` is `READ ONLY` (PostgreSQL
/// applies the modes in order).
fn is_read_only(modes: &[TransactionMode]) -> bool {
    modes
        .iter()
        .rev()
        .find_map(|mode| match mode {
            TransactionMode::AccessMode(access) => Some(*access == TransactionAccessMode::ReadOnly),
            TransactionMode::IsolationLevel(_) => None,
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn control(sql: &str) -> TxnControl {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("test SQL parses");
        match statements.first() {
            Some(statement) => txn_control(statement),
            None => panic!("no statement in {sql}"),
        }
    }

    fn begin(read_only: bool) -> TxnControl {
        TxnControl::Control(Some(TxnEffect::Begin { read_only }))
    }

    #[test]
    fn begin_modes() {
        assert_eq!(control("BEGIN"), begin(false));
        assert_eq!(control("BEGIN READ ONLY"), begin(true));
        assert_eq!(
            control("START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY"),
            begin(true)
        );
        assert_eq!(
            control("START TRANSACTION READ ONLY, READ WRITE"),
            begin(false)
        );
        assert_eq!(
            control("START TRANSACTION READ WRITE, READ ONLY"),
            begin(true)
        );
    }

    #[test]
    fn ends_and_savepoints() {
        assert_eq!(
            control("COMMIT"),
            TxnControl::Control(Some(TxnEffect::Commit))
        );
        assert_eq!(control("END"), TxnControl::Control(Some(TxnEffect::Commit)));
        assert_eq!(
            control("ABORT"),
            TxnControl::Control(Some(TxnEffect::Rollback))
        );
        assert_eq!(control("COMMIT AND CHAIN"), TxnControl::Control(None));
        assert_eq!(
            control("ROLLBACK TO SAVEPOINT a"),
            TxnControl::Control(None)
        );
        assert_eq!(control("SAVEPOINT a"), TxnControl::Control(None));
        assert_eq!(control("RELEASE a"), TxnControl::Control(None));
        assert_eq!(control("SELECT 1"), TxnControl::Other);
    }
}
