//! Session-state changes (`SET`, `RESET`, `DISCARD`) that the router must
//! replay on every backend connection a client uses.

use sqlparser::ast::{
    ContextModifier, DiscardObject, ObjectName, Reset, ResetStatement, Set, Statement,
    TransactionAccessMode, TransactionMode,
};

/// A change to session state made by one statement, if it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEffect {
    /// A setting was given a value for the session.
    Set {
        /// The setting's name, lowercased (`application_name`, `timezone`,
        /// `client_encoding`, `role`, `session_authorization`,
        /// `default_transaction_isolation`, `myext.option`, …).
        name: String,
        /// A complete SQL statement that re-applies the setting on another
        /// connection.
        statement: String,
    },
    /// `RESET name`: the setting went back to its default.
    Reset {
        /// The setting's name, lowercased.
        name: String,
    },
    /// `RESET ALL`.
    ResetAll,
    /// `DISCARD ALL`: settings reset and prepared statements, cursors,
    /// temporary tables and listeners dropped.
    DiscardAll,
}

/// How a session statement is routed, once its effects are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionRoute {
    /// Any connection will do (the router replays the effect where needed).
    Any,
    /// The statement acts on state only the primary holds, or is not a form
    /// PostgreSQL accepts: send it to the primary as it is.
    Primary,
}

/// Records the effects of a `SET` statement into `out`.
pub(crate) fn set_effects(
    set: &Set,
    statement: &Statement,
    out: &mut Vec<SessionEffect>,
) -> SessionRoute {
    let session_set = |name: String, out: &mut Vec<SessionEffect>| {
        out.push(SessionEffect::Set {
            name,
            statement: statement.to_string(),
        });
        SessionRoute::Any
    };
    match set {
        Set::SingleAssignment {
            scope,
            hivevar,
            variable,
            ..
        } => {
            if *hivevar || matches!(scope, Some(ContextModifier::Global)) {
                return SessionRoute::Primary;
            }
            let Some(name) = setting_name(variable) else {
                return SessionRoute::Primary;
            };
            if matches!(scope, Some(ContextModifier::Local)) || is_transaction_scoped(&name) {
                return SessionRoute::Any;
            }
            session_set(name, out)
        }
        Set::SetRole {
            context_modifier, ..
        } => match context_modifier {
            Some(ContextModifier::Local) => SessionRoute::Any,
            Some(ContextModifier::Global) => SessionRoute::Primary,
            Some(ContextModifier::Session) | None => session_set("role".to_string(), out),
        },
        Set::SetSessionAuthorization(param) => match param.scope {
            ContextModifier::Local => SessionRoute::Any,
            ContextModifier::Global => SessionRoute::Primary,
            ContextModifier::Session => session_set("session_authorization".to_string(), out),
        },
        Set::SetTimeZone { local: true, .. } => SessionRoute::Any,
        Set::SetTimeZone { local: false, .. } => session_set("timezone".to_string(), out),
        Set::SetNames {
            collation_name: Some(_),
            ..
        } => SessionRoute::Primary,
        Set::SetNames {
            collation_name: None,
            ..
        }
        | Set::SetNamesDefault {} => session_set("client_encoding".to_string(), out),
        Set::SetTransaction { session: false, .. } => SessionRoute::Any,
        Set::SetTransaction {
            modes,
            snapshot,
            session: true,
        } => {
            if snapshot.is_some() || modes.is_empty() {
                return SessionRoute::Primary;
            }
            for mode in modes {
                out.push(characteristic_effect(mode));
            }
            SessionRoute::Any
        }
        Set::ParenthesizedAssignments { .. }
        | Set::MultipleAssignments { .. }
        | Set::SetSessionParam(_) => SessionRoute::Primary,
    }
}

/// One mode of `SET SESSION CHARACTERISTICS AS TRANSACTION …` as the setting
/// it changes, so that it pairs with `SET`/`RESET` of the same setting.
fn characteristic_effect(mode: &TransactionMode) -> SessionEffect {
    let name = match mode {
        TransactionMode::IsolationLevel(_) => "default_transaction_isolation",
        TransactionMode::AccessMode(
            TransactionAccessMode::ReadOnly | TransactionAccessMode::ReadWrite,
        ) => "default_transaction_read_only",
    };
    SessionEffect::Set {
        name: name.to_string(),
        statement: format!("SET SESSION CHARACTERISTICS AS TRANSACTION {mode}"),
    }
}

/// Records the effect of a `RESET` statement into `out`.
pub(crate) fn reset_effects(reset: &ResetStatement, out: &mut Vec<SessionEffect>) -> SessionRoute {
    let name = match &reset.reset {
        Reset::ALL => {
            out.push(SessionEffect::ResetAll);
            return SessionRoute::Any;
        }
        Reset::SessionAuthorization => "session_authorization".to_string(),
        Reset::ConfigurationParameter(variable) => match setting_name(variable) {
            Some(name) => name,
            None => return SessionRoute::Primary,
        },
    };
    if !is_transaction_scoped(&name) {
        out.push(SessionEffect::Reset { name });
    }
    SessionRoute::Any
}

/// Records the effect of a `DISCARD` statement into `out`.
///
/// `DISCARD TEMP`, `SEQUENCES` and `PLANS` act on state that lives where the
/// client's writes ran (temporary tables and sequence state exist only on
/// the primary), so they go there and record nothing.
pub(crate) fn discard_effects(
    object: &DiscardObject,
    out: &mut Vec<SessionEffect>,
) -> SessionRoute {
    match object {
        DiscardObject::ALL => {
            out.push(SessionEffect::DiscardAll);
            SessionRoute::Any
        }
        DiscardObject::PLANS | DiscardObject::SEQUENCES | DiscardObject::TEMP => {
            SessionRoute::Primary
        }
    }
}

/// A setting's normalized name: its parts lowercased and joined by `.`
/// (GUC names are case-insensitive). `None` for a non-identifier part.
fn setting_name(variable: &ObjectName) -> Option<String> {
    let mut name = String::new();
    for (i, part) in variable.0.iter().enumerate() {
        let ident = part.as_ident()?;
        if i > 0 {
            name.push('.');
        }
        name.push_str(&ident.value.to_lowercase());
    }
    if name.is_empty() {
        None
    } else {
        Some(name)
    }
}

/// Settings that only last for the current transaction, like `SET LOCAL`.
fn is_transaction_scoped(name: &str) -> bool {
    matches!(
        name,
        "transaction_isolation" | "transaction_read_only" | "transaction_deferrable"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn effects(sql: &str) -> (SessionRoute, Vec<SessionEffect>) {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("test SQL parses");
        let mut out = Vec::new();
        let route = match statements.first() {
            Some(statement @ Statement::Set(set)) => set_effects(set, statement, &mut out),
            Some(Statement::Reset(reset)) => reset_effects(reset, &mut out),
            Some(Statement::Discard { object_type }) => discard_effects(object_type, &mut out),
            other => panic!("not a session statement: {other:?}"),
        };
        (route, out)
    }

    fn set(name: &str, statement: &str) -> SessionEffect {
        SessionEffect::Set {
            name: name.to_string(),
            statement: statement.to_string(),
        }
    }

    #[test]
    fn set_forms() {
        assert_eq!(
            effects("SET Application_Name TO 'x'"),
            (
                SessionRoute::Any,
                vec![set("application_name", "SET Application_Name = 'x'")]
            )
        );
        assert_eq!(
            effects("SET TIME ZONE 'UTC'").1,
            vec![set("timezone", "SET TIME ZONE 'UTC'")]
        );
        assert_eq!(
            effects("SET NAMES 'UTF8'").1,
            vec![set("client_encoding", "SET NAMES 'UTF8'")]
        );
        assert_eq!(
            effects("SET ROLE NONE").1,
            vec![set("role", "SET ROLE NONE")]
        );
        assert_eq!(
            effects("SET \"MyExt\".Opt = 1").1,
            vec![set("myext.opt", "SET \"MyExt\".Opt = 1")]
        );
    }

    #[test]
    fn transaction_scoped_sets_have_no_effect() {
        for sql in [
            "SET LOCAL work_mem = '1MB'",
            "SET LOCAL TIME ZONE 'UTC'",
            "SET LOCAL ROLE admin",
            "SET TRANSACTION READ ONLY",
            "SET transaction_isolation = 'serializable'",
        ] {
            assert_eq!(effects(sql), (SessionRoute::Any, vec![]), "{sql}");
        }
    }

    #[test]
    fn session_characteristics_split_by_setting() {
        assert_eq!(
            effects("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY").1,
            vec![
                set(
                    "default_transaction_isolation",
                    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"
                ),
                set(
                    "default_transaction_read_only",
                    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
                ),
            ]
        );
    }

    #[test]
    fn reset_and_discard() {
        assert_eq!(
            effects("RESET Search_Path").1,
            vec![SessionEffect::Reset {
                name: "search_path".to_string()
            }]
        );
        assert_eq!(effects("RESET ALL").1, vec![SessionEffect::ResetAll]);
        assert_eq!(
            effects("RESET SESSION AUTHORIZATION").1,
            vec![SessionEffect::Reset {
                name: "session_authorization".to_string()
            }]
        );
        assert_eq!(
            effects("DISCARD ALL"),
            (SessionRoute::Any, vec![SessionEffect::DiscardAll])
        );
        assert_eq!(effects("DISCARD TEMP"), (SessionRoute::Primary, vec![]));
    }
}
