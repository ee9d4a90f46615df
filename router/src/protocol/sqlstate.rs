//! The SQLSTATE codes the proxy itself answers with, by name (PostgreSQL's
//! Appendix A), so that no error code is a loose string; and the
//! transaction status of ReadyForQuery.

use std::fmt;

/// A five-character SQLSTATE error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlState(&'static str);

impl SqlState {
    /// `0A000` feature_not_supported: what shardgate cannot do correctly.
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    /// `08P01` protocol_violation.
    pub const PROTOCOL_VIOLATION: SqlState = SqlState("08P01");
    /// `08006` connection_failure: a server is gone or unreachable.
    pub const CONNECTION_FAILURE: SqlState = SqlState("08006");
    /// `28000` invalid_authorization_specification.
    pub const INVALID_AUTHORIZATION: SqlState = SqlState("28000");
    /// `28P01` invalid_password.
    pub const INVALID_PASSWORD: SqlState = SqlState("28P01");
    /// `3D000` invalid_catalog_name: an unknown database.
    pub const INVALID_CATALOG_NAME: SqlState = SqlState("3D000");
    /// `22003` numeric_value_out_of_range.
    pub const NUMERIC_VALUE_OUT_OF_RANGE: SqlState = SqlState("22003");
    /// `22P04` bad_copy_file_format.
    pub const BAD_COPY_FILE_FORMAT: SqlState = SqlState("22P04");
    /// `25001` active_sql_transaction.
    pub const ACTIVE_SQL_TRANSACTION: SqlState = SqlState("25001");
    /// `25P01` no_active_sql_transaction.
    pub const NO_ACTIVE_SQL_TRANSACTION: SqlState = SqlState("25P01");
    /// `25P02` in_failed_sql_transaction.
    pub const IN_FAILED_SQL_TRANSACTION: SqlState = SqlState("25P02");
    /// `26000` invalid_sql_statement_name: an unknown prepared statement.
    pub const INVALID_SQL_STATEMENT_NAME: SqlState = SqlState("26000");
    /// `42P05` duplicate_prepared_statement.
    pub const DUPLICATE_PREPARED_STATEMENT: SqlState = SqlState("42P05");
    /// `54000` program_limit_exceeded: a merge past its bound.
    pub const PROGRAM_LIMIT_EXCEEDED: SqlState = SqlState("54000");
    /// `XX000` internal_error.
    pub const INTERNAL_ERROR: SqlState = SqlState("XX000");

    /// The five characters.
    pub const fn code(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A ReadyForQuery's transaction status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// `I`: not in a transaction.
    Idle,
    /// `T`: in a transaction.
    InTransaction,
    /// `E`: in a failed transaction.
    Failed,
}

impl TxStatus {
    /// The status of byte `b` (`None`: not a status).
    pub fn from_byte(b: u8) -> Option<TxStatus> {
        match b {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InTransaction),
            b'E' => Some(TxStatus::Failed),
            _ => None,
        }
    }

    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            TxStatus::Idle => b'I',
            TxStatus::InTransaction => b'T',
            TxStatus::Failed => b'E',
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_five_characters() {
        for s in [
            SqlState::FEATURE_NOT_SUPPORTED,
            SqlState::PROTOCOL_VIOLATION,
            SqlState::CONNECTION_FAILURE,
            SqlState::INVALID_AUTHORIZATION,
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_CATALOG_NAME,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            SqlState::BAD_COPY_FILE_FORMAT,
            SqlState::ACTIVE_SQL_TRANSACTION,
            SqlState::NO_ACTIVE_SQL_TRANSACTION,
            SqlState::IN_FAILED_SQL_TRANSACTION,
            SqlState::INVALID_SQL_STATEMENT_NAME,
            SqlState::DUPLICATE_PREPARED_STATEMENT,
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            SqlState::INTERNAL_ERROR,
        ] {
            assert_eq!(s.code().len(), 5);
            assert!(s
                .code()
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        }
    }
}
