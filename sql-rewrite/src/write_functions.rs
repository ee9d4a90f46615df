//! Functions whose call makes an otherwise read-only statement need the
//! primary: they write (sequences, large objects, WAL), take locks, signal
//! other sessions, or read state that only the primary session holds.
//!
//! Names are compared case-insensitively by their last identifier, so
//! `pg_catalog.nextval` and `NEXTVAL` both match `nextval`.

use sqlparser::ast::ObjectName;

/// Built-in PostgreSQL functions that must run on the primary.
///
/// `currval` and `lastval` only read, but they read state of the session that
/// called `nextval`, and that session is on the primary.
pub const BUILTIN_WRITE_FUNCTIONS: &[&str] = &[
    // sequences
    "nextval",
    "setval",
    "currval",
    "lastval",
    // advisory locks
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    // transaction ids (assign one, which a replica cannot)
    "txid_current",
    "pg_current_xact_id",
    // notifications and settings
    "pg_notify",
    "set_config",
    // large objects
    "lo_create",
    "lo_creat",
    "lo_import",
    "lo_unlink",
    "lo_from_bytea",
    "lo_put",
    "lo_open",
    "lo_write",
    // server administration
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_reload_conf",
    "pg_logical_emit_message",
];

/// The last identifier of a possibly schema-qualified name (`b` of `a.b`).
pub(crate) fn last_ident(name: &ObjectName) -> Option<&str> {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.as_str())
}

/// The part of a configured name after its last `.` (`log` of `audit.log`).
fn unqualified(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name).trim()
}

/// Whether a function called `name` (unqualified) must run on the primary:
/// a built-in writing function or one listed in `configured`. Configured
/// names may be schema-qualified; only their last part is compared.
pub fn is_write_function(name: &str, configured: &[String]) -> bool {
    BUILTIN_WRITE_FUNCTIONS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
        || configured
            .iter()
            .any(|f| unqualified(f).eq_ignore_ascii_case(name))
}

/// Whether the function named by `name` must run on the primary; a name
/// whose last part is not a plain identifier counts as writing.
pub(crate) fn is_write_function_name(name: &ObjectName, configured: &[String]) -> bool {
    match last_ident(name) {
        Some(last) => is_write_function(last, configured),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_match_case_insensitively() {
        assert!(is_write_function("nextval", &[]));
        assert!(is_write_function("NextVal", &[]));
        assert!(is_write_function("PG_ADVISORY_XACT_LOCK", &[]));
        assert!(!is_write_function("now", &[]));
        assert!(!is_write_function("nextval2", &[]));
    }

    #[test]
    fn configured_names_match_by_last_part() {
        let configured = vec!["audit.Log_Access".to_string(), "bump".to_string()];
        assert!(is_write_function("log_access", &configured));
        assert!(is_write_function("BUMP", &configured));
        assert!(!is_write_function("audit", &configured));
    }

    #[test]
    fn builtin_list_is_lowercase_and_unique() {
        for (i, f) in BUILTIN_WRITE_FUNCTIONS.iter().enumerate() {
            assert_eq!(*f, f.to_ascii_lowercase());
            assert!(!BUILTIN_WRITE_FUNCTIONS[..i].contains(f), "duplicate {f}");
        }
    }
}
