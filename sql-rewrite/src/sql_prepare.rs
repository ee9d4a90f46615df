//! SQL-level prepared statements: `PREPARE name [(types)] AS statement`,
//! `EXECUTE name [(arguments)]` and `DEALLOCATE [PREPARE] name | ALL`,
//! recognised from their text so that the proxy can keep them per client
//! and route an `EXECUTE` by its arguments like a Bind.

use crate::split::{close_paren, split_statements};

/// A prepared-statement command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlPrepare {
    /// `PREPARE`: the name (folded to lower case unless quoted) and the
    /// statement's text.
    Prepare {
        /// The statement's name.
        name: String,
        /// The prepared statement's SQL (with `$n` parameters).
        body: String,
    },
    /// `EXECUTE`: the name and each argument as text (`None`: NULL), or
    /// `None` when an argument is not a plain literal.
    Execute {
        /// The statement's name.
        name: String,
        /// The arguments' text values.
        args: Option<Vec<Option<String>>>,
    },
    /// `DEALLOCATE`: a name, or `None` for ALL.
    Deallocate {
        /// The statement's name; `None`: all of them.
        name: Option<String>,
    },
}

/// Recognises a single prepared-statement command.
pub fn sql_prepare(sql: &str) -> Option<SqlPrepare> {
    let parts = split_statements(sql);
    if parts.len() != 1 {
        return None;
    }
    let s = parts[0];
    let (word, rest) = first_word(s)?;
    match word.to_ascii_uppercase().as_str() {
        "PREPARE" => {
            let (name, rest) = ident(rest)?;
            let rest = rest.trim_start();
            let rest = if rest.starts_with('(') {
                &rest[close_paren(rest)?..]
            } else {
                rest
            };
            let (as_kw, body) = first_word(rest)?;
            if !as_kw.eq_ignore_ascii_case("AS") || body.trim().is_empty() {
                return None;
            }
            let name = name.to_string();
            if name.eq_ignore_ascii_case("transaction") {
                return None; // PREPARE TRANSACTION
            }
            Some(SqlPrepare::Prepare {
                name,
                body: body.trim().to_string(),
            })
        }
        "EXECUTE" => {
            let (name, rest) = ident(rest)?;
            let rest = rest.trim();
            let args = if rest.is_empty() {
                Some(Vec::new())
            } else if rest.starts_with('(') && close_paren(rest) == Some(rest.len()) {
                arguments(&rest[1..rest.len() - 1])
            } else {
                return None;
            };
            Some(SqlPrepare::Execute { name, args })
        }
        "DEALLOCATE" => {
            let rest = rest.trim();
            let rest = match first_word(rest) {
                Some((w, r)) if w.eq_ignore_ascii_case("PREPARE") => r.trim(),
                _ => rest,
            };
            if rest.eq_ignore_ascii_case("ALL") {
                return Some(SqlPrepare::Deallocate { name: None });
            }
            let (name, tail) = ident(rest)?;
            tail.trim()
                .is_empty()
                .then_some(SqlPrepare::Deallocate { name: Some(name) })
        }
        _ => None,
    }
}

/// The first word and what follows it.
fn first_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

/// An identifier (folded to lower case unless double-quoted) and the rest.
fn ident(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        return Some((q[..end].to_string(), &q[end + 1..]));
    }
    let (w, rest) = first_word(s)?;
    Some((w.to_lowercase(), rest))
}

/// The arguments of an EXECUTE as text values, if each is a literal
/// (a number, a string, NULL, optionally with a `::type` cast).
fn arguments(s: &str) -> Option<Vec<Option<String>>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if b.get(i) == Some(&b'\'') {
            let mut v = String::new();
            i += 1;
            loop {
                match b.get(i)? {
                    b'\'' if b.get(i + 1) == Some(&b'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => {
                        let c = s[i..].chars().next()?;
                        v.push(c);
                        i += c.len_utf8();
                    }
                }
            }
            Some(v)
        } else {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'-' | b'+' | b'_'))
            {
                i += 1;
            }
            let word = &s[start..i];
            if word.is_empty() {
                return None;
            }
            if word.eq_ignore_ascii_case("null") {
                None
            } else if word.parse::<f64>().is_ok() {
                Some(word.to_string())
            } else {
                return None;
            }
        };
        // an optional cast
        let rest = s[i..].trim_start();
        i = b.len() - rest.len();
        if rest.starts_with("::") {
            i += 2;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b' ' | b'[' | b']'))
            {
                if b[i] == b' ' && s[i..].trim_start().starts_with(',') {
                    break;
                }
                i += 1;
            }
        }
        out.push(value);
        let rest = s[i..].trim_start();
        i = b.len() - rest.len();
        match b.get(i) {
            None => return Some(out),
            Some(b',') => i += 1,
            Some(_) => return None,
        }
    }
}

/// A cursor command: `DECLARE name … CURSOR … FOR query` (the name and
/// the query), or `FETCH`/`MOVE`/`CLOSE` of a named cursor (its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorCommand {
    /// `DECLARE`.
    Declare {
        /// The cursor's name.
        name: String,
        /// The query it reads.
        query: String,
    },
    /// `FETCH`, `MOVE` or `CLOSE` of this cursor (`CLOSE ALL`: `None`).
    Use {
        /// The cursor's name.
        name: Option<String>,
    },
}

/// Recognises a single cursor command.
pub fn cursor_command(sql: &str) -> Option<CursorCommand> {
    let parts = split_statements(sql);
    if parts.len() != 1 {
        return None;
    }
    let (word, rest) = first_word(parts[0])?;
    match word.to_ascii_uppercase().as_str() {
        "DECLARE" => {
            let (name, mut rest) = ident(rest)?;
            loop {
                let (w, r) = first_word(rest)?;
                rest = r;
                if w.eq_ignore_ascii_case("FOR") {
                    break;
                }
            }
            Some(CursorCommand::Declare {
                name,
                query: rest.trim().to_string(),
            })
        }
        "FETCH" | "MOVE" | "CLOSE" => {
            // the cursor's name is the last word (FETCH FORWARD 10 FROM c)
            let last = rest.trim().rsplit(char::is_whitespace).next()?;
            if last.eq_ignore_ascii_case("ALL") && word.eq_ignore_ascii_case("CLOSE") {
                return Some(CursorCommand::Use { name: None });
            }
            let (name, tail) = ident(last)?;
            tail.is_empty()
                .then_some(CursorCommand::Use { name: Some(name) })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_execute_deallocate() {
        assert_eq!(
            sql_prepare("PREPARE ById(bigint) AS SELECT * FROM users WHERE id = $1;"),
            Some(SqlPrepare::Prepare {
                name: "byid".into(),
                body: "SELECT * FROM users WHERE id = $1".into()
            })
        );
        assert_eq!(
            sql_prepare("prepare q as select 1"),
            Some(SqlPrepare::Prepare {
                name: "q".into(),
                body: "select 1".into()
            })
        );
        assert_eq!(
            sql_prepare("EXECUTE byid(42)"),
            Some(SqlPrepare::Execute {
                name: "byid".into(),
                args: Some(vec![Some("42".into())])
            })
        );
        assert_eq!(
            sql_prepare("EXECUTE \"ById\" ('it''s', NULL, -1.5::numeric, '7'::bigint)"),
            Some(SqlPrepare::Execute {
                name: "ById".into(),
                args: Some(vec![
                    Some("it's".into()),
                    None,
                    Some("-1.5".into()),
                    Some("7".into())
                ])
            })
        );
        assert_eq!(
            sql_prepare("EXECUTE q(now())"),
            Some(SqlPrepare::Execute {
                name: "q".into(),
                args: None
            })
        );
        assert_eq!(
            sql_prepare("EXECUTE q"),
            Some(SqlPrepare::Execute {
                name: "q".into(),
                args: Some(vec![])
            })
        );
        assert_eq!(
            sql_prepare("DEALLOCATE PREPARE byid"),
            Some(SqlPrepare::Deallocate {
                name: Some("byid".into())
            })
        );
        assert_eq!(
            sql_prepare("deallocate all"),
            Some(SqlPrepare::Deallocate { name: None })
        );
    }

    #[test]
    fn cursors() {
        assert_eq!(
            cursor_command("DECLARE \"c1\" NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM t"),
            Some(CursorCommand::Declare {
                name: "c1".into(),
                query: "SELECT * FROM t".into()
            })
        );
        assert_eq!(
            cursor_command("FETCH FORWARD 10 FROM \"c1\""),
            Some(CursorCommand::Use {
                name: Some("c1".into())
            })
        );
        assert_eq!(
            cursor_command("close C2"),
            Some(CursorCommand::Use {
                name: Some("c2".into())
            })
        );
        assert_eq!(
            cursor_command("CLOSE ALL"),
            Some(CursorCommand::Use { name: None })
        );
        assert_eq!(cursor_command("SELECT 1"), None);
    }

    #[test]
    fn other_statements_are_not_these() {
        for s in [
            "SELECT 1",
            "PREPARE TRANSACTION 'x'",
            "EXECUTE",
            "PREPARE x AS",
            "EXECUTE a(1); EXECUTE b(2)",
            "DEALLOCATE a b",
        ] {
            assert_eq!(sql_prepare(s), None, "{s}");
        }
    }
}
