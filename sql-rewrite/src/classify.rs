//! The read/write classifier: which server (a replica or the primary) may
//! run a client's statement text, and what the text does to session and
//! transaction state. Runs on every statement: one tokenization, a depth
//! check on the tokens, one parse, one AST walk.

use sqlparser::ast::{
    CopySource, CopyTarget, DescribeAlias, Expr, Statement, UtilityOption, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Tokenizer;

use crate::depth_limit::within_limits;
use crate::hint::has_primary_hint;
use crate::query_writes::primary_reason;
use crate::session::{discard_effects, reset_effects, set_effects, SessionEffect, SessionRoute};
use crate::transaction::{txn_control, TxnControl, TxnEffect};

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A replica (or the primary): the statement only reads.
    Replica,
    /// Only the primary.
    Primary,
}

/// The classifier's verdict on one client statement text (which may hold
/// several statements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Where the text may run: `Primary` if any statement in it needs the
    /// primary.
    pub target: Target,
    /// `false` if sqlparser could not parse the text, or it was too deeply
    /// nested to parse safely (it is then `Primary`).
    pub parsed: bool,
    /// Session-state changes, in statement order.
    pub session: Vec<SessionEffect>,
    /// The effect of the last transaction-control statement that has one.
    pub txn: Option<TxnEffect>,
    /// A short fixed reason for `target`: "read", "write", "ddl",
    /// "utility", "locking read", "writing function", "select into",
    /// "data-modifying CTE", "explain analyze", "transaction",
    /// "read-only transaction", "session", "primary hint", "unparseable",
    /// "too deeply nested" (also `parsed: false`), "empty".
    pub reason: &'static str,
}

/// One statement's routing verdict.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    target: Target,
    reason: &'static str,
}

impl Verdict {
    const fn replica(reason: &'static str) -> Self {
        Verdict {
            target: Target::Replica,
            reason,
        }
    }

    const fn primary(reason: &'static str) -> Self {
        Verdict {
            target: Target::Primary,
            reason,
        }
    }
}

/// Classifies a client's statement text (a simple-protocol Query or a
/// Parse): `Primary` for a primary hint, unparseable text, or any statement
/// that writes, locks, calls a writing function (built-in or listed in
/// `write_functions`, compared case-insensitively by last name part), opens
/// a read-write transaction or is not known to be a read; `Replica`
/// otherwise. Session and transaction effects are collected even when the
/// target is forced to the primary by a hint.
pub fn classify(sql: &str, write_functions: &[String]) -> Classification {
    if crate::fast_read::plain_select(sql, write_functions).is_some() {
        return Classification {
            target: Target::Replica,
            parsed: true,
            session: Vec::new(),
            txn: None,
            reason: "read",
        };
    }
    classify_parsed(sql, parse(sql).as_deref(), write_functions)
}

/// [`classify`] of a text already parsed (`Err`: the reason it could not
/// be), so that a caller that needs the statements too parses once.
pub fn classify_parsed(
    sql: &str,
    statements: Result<&[Statement], &&'static str>,
    write_functions: &[String],
) -> Classification {
    let hinted = has_primary_hint(sql);
    let statements = match statements {
        Ok(statements) => statements,
        Err(reason) => {
            return Classification {
                target: Target::Primary,
                parsed: false,
                session: Vec::new(),
                txn: None,
                reason: if hinted { "primary hint" } else { reason },
            }
        }
    };

    let mut session = Vec::new();
    let mut txn = None;
    let mut first: Option<Verdict> = None;
    let mut first_primary: Option<Verdict> = None;
    for statement in statements {
        let verdict = classify_statement(statement, write_functions, &mut session, &mut txn);
        first.get_or_insert(verdict);
        if verdict.target == Target::Primary {
            first_primary.get_or_insert(verdict);
        }
    }

    let verdict = if hinted {
        Verdict::primary("primary hint")
    } else {
        first_primary.or(first).unwrap_or(Verdict::replica("empty"))
    };
    Classification {
        target: verdict.target,
        parsed: true,
        session,
        txn,
        reason: verdict.reason,
    }
}

/// Parses `sql` with the PostgreSQL dialect, refusing texts too deeply
/// nested to handle safely (see `depth_limit`); the error is the reason to
/// report.
pub(crate) fn parse(sql: &str) -> Result<Vec<Statement>, &'static str> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|_| "unparseable")?;
    if !within_limits(&tokens) {
        return Err("too deeply nested");
    }
    Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|_| "unparseable")
}

/// Classifies one parsed statement, recording its session and transaction
/// effects.
fn classify_statement(
    statement: &Statement,
    write_functions: &[String],
    session: &mut Vec<SessionEffect>,
    txn: &mut Option<TxnEffect>,
) -> Verdict {
    if let TxnControl::Control(effect) = txn_control(statement) {
        return match effect {
            Some(effect) => {
                *txn = Some(effect);
                match effect {
                    TxnEffect::Begin { read_only: true } => {
                        Verdict::replica("read-only transaction")
                    }
                    TxnEffect::Begin { read_only: false } => Verdict::primary("transaction"),
                    TxnEffect::Commit | TxnEffect::Rollback => Verdict::replica("transaction"),
                }
            }
            None => Verdict::replica("transaction"),
        };
    }

    match statement {
        Statement::Query(query) => query_verdict(primary_reason(query, write_functions)),
        Statement::ShowVariable { .. } => Verdict::replica("read"),
        Statement::Explain {
            describe_alias: DescribeAlias::Explain,
            analyze,
            query_plan: false,
            estimate: false,
            statement: inner,
            options,
            ..
        } => match inner.as_ref() {
            Statement::Query(query) => match primary_reason(query, write_functions) {
                Some(reason) => Verdict::primary(reason),
                None if *analyze || has_enabled_analyze(options.as_deref()) => {
                    Verdict::primary("explain analyze")
                }
                None => Verdict::replica("read"),
            },
            _ => Verdict::primary("write"),
        },
        Statement::Copy {
            source,
            to: true,
            target: CopyTarget::Stdout,
            ..
        } => match source {
            CopySource::Table { .. } => Verdict::replica("read"),
            CopySource::Query(query) => query_verdict(primary_reason(query, write_functions)),
        },
        Statement::Copy { to: false, .. } => Verdict::primary("write"),
        Statement::Set(set) => session_verdict(set_effects(set, statement, session)),
        Statement::Reset(reset) => session_verdict(reset_effects(reset, session)),
        Statement::Discard { object_type } => {
            session_verdict(discard_effects(object_type, session))
        }
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => Verdict::primary("write"),
        _ if is_ddl(statement) => Verdict::primary("ddl"),
        _ => Verdict::primary("utility"),
    }
}

fn query_verdict(reason: Option<&'static str>) -> Verdict {
    match reason {
        Some(reason) => Verdict::primary(reason),
        None => Verdict::replica("read"),
    }
}

fn session_verdict(route: SessionRoute) -> Verdict {
    match route {
        SessionRoute::Any => Verdict::replica("session"),
        SessionRoute::Primary => Verdict::primary("session"),
    }
}

/// Whether parenthesized EXPLAIN options turn ANALYZE on (`ANALYZE`,
/// `ANALYZE true`, `ANALYZE on`, …; not `ANALYZE false` / `off` / `0`).
fn has_enabled_analyze(options: Option<&[UtilityOption]>) -> bool {
    options.unwrap_or_default().iter().any(|option| {
        option.name.value.eq_ignore_ascii_case("analyze")
            && match &option.arg {
                None => true,
                Some(arg) => !is_false_option(arg),
            }
    })
}

/// Whether an option argument spells "false" the ways PostgreSQL accepts.
fn is_false_option(arg: &Expr) -> bool {
    let word = match arg {
        Expr::Value(value) => match &value.value {
            Value::Boolean(b) => return !*b,
            Value::Number(n, _) => n.as_str(),
            Value::SingleQuotedString(s) => s.as_str(),
            _ => return false,
        },
        Expr::Identifier(ident) => ident.value.as_str(),
        _ => return false,
    };
    ["false", "off", "0", "no", "f", "n"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(word))
}

/// Schema changes and privileges (only for the `reason`; all go to the
/// primary either way).
fn is_ddl(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::CreateTable(_)
            | Statement::CreateView(_)
            | Statement::CreateIndex(_)
            | Statement::CreateRole(_)
            | Statement::CreatePolicy(_)
            | Statement::CreateExtension(_)
            | Statement::CreateFunction(_)
            | Statement::CreateTrigger(_)
            | Statement::CreateDomain(_)
            | Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateType { .. }
            | Statement::AlterTable(_)
            | Statement::AlterSchema(_)
            | Statement::AlterIndex { .. }
            | Statement::AlterView { .. }
            | Statement::AlterFunction(_)
            | Statement::AlterType(_)
            | Statement::AlterRole { .. }
            | Statement::AlterPolicy(_)
            | Statement::Drop { .. }
            | Statement::DropFunction(_)
            | Statement::DropDomain(_)
            | Statement::DropPolicy(_)
            | Statement::DropExtension(_)
            | Statement::DropTrigger(_)
            | Statement::Truncate(_)
            | Statement::Grant(_)
            | Statement::Revoke(_)
            | Statement::Comment { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(sql: &str) -> (Target, &'static str) {
        let c = classify(sql, &[]);
        (c.target, c.reason)
    }

    #[test]
    fn reads_and_writes() {
        assert_eq!(target("SELECT 1"), (Target::Replica, "read"));
        assert_eq!(
            target("INSERT INTO t VALUES (1)"),
            (Target::Primary, "write")
        );
        assert_eq!(target("CREATE TABLE t (a int)"), (Target::Primary, "ddl"));
        assert_eq!(target("LISTEN ch"), (Target::Primary, "utility"));
    }

    #[test]
    fn empty_text() {
        for sql in ["", "  ", ";", ";;", "-- only a comment", "/* c */ ;"] {
            let c = classify(sql, &[]);
            assert_eq!(
                c,
                Classification {
                    target: Target::Replica,
                    parsed: true,
                    session: vec![],
                    txn: None,
                    reason: "empty"
                },
                "{sql:?}"
            );
        }
    }

    #[test]
    fn unparseable_and_hint() {
        let c = classify("SELEKT 1", &[]);
        assert_eq!(
            (c.target, c.parsed, c.reason),
            (Target::Primary, false, "unparseable")
        );
        let c = classify("/* shardgate: primary */ BEGIN READ ONLY", &[]);
        assert_eq!((c.target, c.reason), (Target::Primary, "primary hint"));
        assert_eq!(c.txn, Some(TxnEffect::Begin { read_only: true }));
    }

    #[test]
    fn multi_statement_collects_effects() {
        let c = classify("SET a = 1; BEGIN; SELECT 1; RESET b; COMMIT", &[]);
        assert_eq!((c.target, c.reason), (Target::Primary, "transaction"));
        assert_eq!(c.txn, Some(TxnEffect::Commit));
        assert_eq!(
            c.session,
            vec![
                SessionEffect::Set {
                    name: "a".to_string(),
                    statement: "SET a = 1".to_string()
                },
                SessionEffect::Reset {
                    name: "b".to_string()
                },
            ]
        );
    }

    #[test]
    fn explain_analyze_options() {
        assert_eq!(target("EXPLAIN (ANALYZE) SELECT 1").0, Target::Primary);
        assert_eq!(target("EXPLAIN (ANALYZE on) SELECT 1").0, Target::Primary);
        assert_eq!(
            target("EXPLAIN (ANALYZE false) SELECT 1").0,
            Target::Replica
        );
        assert_eq!(
            target("EXPLAIN (ANALYZE off, COSTS) SELECT 1").0,
            Target::Replica
        );
        assert_eq!(target("EXPLAIN (FORMAT JSON) SELECT 1").0, Target::Replica);
    }

    /// Hostile texts whose trees would be deep enough to overflow a small
    /// stack when dropped are refused before they are parsed. (Each starts
    /// with a comment so it skips the lexical fast path, which never parses.)
    #[test]
    fn deep_texts_are_refused_without_overflow() {
        let run = || {
            let n = 100_000;
            let texts = [
                format!("/**/ SELECT {}", vec!["1"; n].join(" + ")),
                format!("/**/ SELECT 1 WHERE {}", vec!["a = 1"; n].join(" OR ")),
                format!("/**/ SELECT 1{}", "::int".repeat(n)),
                format!("/**/ {}", vec!["SELECT 1"; n].join(" UNION ALL ")),
                format!("/**/ SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
                format!("/**/ SELECT {}1", "NOT ".repeat(n)),
            ];
            texts
                .iter()
                .map(|sql| {
                    let c = classify(sql, &[]);
                    (c.target, c.parsed)
                })
                .collect::<Vec<_>>()
        };
        let results = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(run)
            .map(|handle| handle.join());
        match results {
            Ok(Ok(results)) => {
                for result in results {
                    assert_eq!(result, (Target::Primary, false));
                }
            }
            _ => panic!("classifier thread failed"),
        }
        let c = classify(&format!("/**/ SELECT {}", vec!["1"; 5000].join(" + ")), &[]);
        assert_eq!(c.reason, "too deeply nested");
    }

    /// Every prefix of some tricky texts (cut inside strings, comments,
    /// dollar quotes, multibyte characters) classifies without panicking.
    #[test]
    fn every_prefix_classifies() {
        let texts = [
            "SELECT 'ä''b', E'\\x41', $tag$ x $tag$, \"Qu\"\"oted\" /* c /* nested */ */ FROM t -- ✓",
            "/* shardgate: primary */ SET search_path = \"$user\", public; BEGIN READ ONLY; COMMIT",
            "WITH x AS (INSERT INTO t VALUES (nextval('s')) RETURNING *) SELECT * FROM x FOR UPDATE",
            "COPY (SELECT 1) TO STDOUT; EXPLAIN (ANALYZE off) SELECT 1; RESET ALL; DISCARD ALL",
        ];
        for text in texts {
            for (cut, _) in text.char_indices() {
                let c = classify(&text[..cut], &[]);
                assert!(c.parsed || c.target == Target::Primary);
            }
        }
    }

    /// Not a benchmark: classifying the same text many times gives the same
    /// answer (no hidden state between calls).
    #[test]
    fn repeated_classification_is_stable() {
        let sql = "SELECT a, b FROM t WHERE id = $1 AND x IN (SELECT y FROM u)";
        let first = classify(sql, &[]);
        for _ in 0..200 {
            assert_eq!(classify(sql, &[]), first);
        }
    }
}
