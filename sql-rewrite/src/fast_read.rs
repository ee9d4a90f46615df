//! A lexical fast path for the most common statement: a plain `SELECT`
//! with no locking clause, no `INTO`, no writing function and nothing the
//! scan cannot vouch for. It answers "replica, read" in well under a
//! microsecond; anything else (comments, quoted identifiers, dollar quotes,
//! several statements, suspicious words) falls back to the full parse.

use crate::write_functions::is_write_function;

/// Words that may make a SELECT text need the primary (or need a real parse).
const SUSPICIOUS: &[&str] = &[
    "for", "into", "insert", "update", "delete", "merge", "with", "lock", "call", "do",
];

/// `Some(())` when `sql` is certainly a single plain read.
pub(crate) fn plain_select(sql: &str, write_functions: &[String]) -> Option<()> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut first = true;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'\'' => {
                // a standard string: '' escapes a quote; E'' strings fall back
                if i > 0 && (b[i - 1] == b'e' || b[i - 1] == b'E') {
                    return None;
                }
                i += 1;
                loop {
                    match b.get(i)? {
                        b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
                        b'\'' => break,
                        // the hint is read from raw text, strings included
                        b'/' if b.get(i + 1) == Some(&b'*') => return None,
                        b'-' if b.get(i + 1) == Some(&b'-') => return None,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'"' | b'\\' | b'`' => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'$' => {
                // $1 parameters are fine; $tag$ dollar quotes are not
                if !b.get(i + 1)?.is_ascii_digit() {
                    return None;
                }
                i += 1;
            }
            b';' => {
                // only a trailing semicolon
                if b[i + 1..].iter().all(|c| c.is_ascii_whitespace()) {
                    return if first { None } else { Some(()) };
                }
                return None;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &sql[start..i];
                if first {
                    if !word.eq_ignore_ascii_case("select") {
                        return None;
                    }
                    first = false;
                    continue;
                }
                if SUSPICIOUS.iter().any(|s| word.eq_ignore_ascii_case(s)) {
                    return None;
                }
                // a function call: name followed by "("
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if b.get(j) == Some(&b'(') && is_write_function(word, write_functions) {
                    return None;
                }
            }
            c if c >= 0x80 => return None,
            _ => i += 1,
        }
    }
    (!first).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_selects_take_the_fast_path() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
            "select 1",
            "SELECT a, b FROM t WHERE s = 'it''s for you' AND x = $1",
            "SELECT count(*) FROM t GROUP BY x ORDER BY 1 LIMIT 10",
        ] {
            assert!(plain_select(sql, &[]).is_some(), "{sql}");
        }
    }

    #[test]
    fn anything_doubtful_falls_back() {
        let extra = vec!["audit".to_string()];
        for sql in [
            "SELECT * FROM t FOR UPDATE",
            "SELECT 1 INTO x",
            "SELECT nextval('s')",
            "SELECT NEXTVAL ('s')",
            "SELECT pg_catalog.setval('s', 1)",
            "SELECT audit(1)",
            "SELECT 1; SELECT 2",
            "SELECT /* shardgate: primary */ 1",
            "SELECT 1 -- shardgate: primary",
            "SELECT '/* shardgate: primary */'",
            "SELECT \"nextval\"('s')",
            "SELECT $$x$$",
            "SELECT E'\\''",
            "SELECT 'unterminated",
            "INSERT INTO t VALUES (1)",
            "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
            "",
            ";",
        ] {
            assert!(plain_select(sql, &extra).is_none(), "{sql}");
        }
    }
}
