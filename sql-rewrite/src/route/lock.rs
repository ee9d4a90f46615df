//! `LOCK [TABLE] [ONLY] name [*] [, …] [IN … MODE] [NOWAIT]`, which the
//! parser cannot read, recognised from the text by a small lexer: its table
//! names (schema-qualified, quoted) and where each lives. A LOCK naming a
//! sharded, broadcast or time table runs on every shard (each holds a part
//! or a copy of it), mirrored: the client gets one answer. Unsharded and
//! catalog tables are locked on the default shard only, interval tables on
//! their shard: a shard that does not hold every table named gets a LOCK of
//! just those it holds.

use std::collections::BTreeMap;
use std::ops::Range;

use shard_config::ShardMap;

use super::target::{Route, ShardStatement};

/// One table a LOCK names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    /// Its text, `ONLY` and `*` included.
    span: Range<usize>,
    /// The schema, when qualified (folded like an identifier).
    schema: Option<String>,
    /// The table name (folded like an identifier).
    name: String,
}

/// A LOCK statement's tables and where they sit in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lock {
    items: Vec<Item>,
}

/// A token of the lexer: a word (folded unless quoted; `true` when it was
/// quoted) or one punctuation character, with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String, bool),
    Punct(char),
}

/// The tokens of `sql` with their byte ranges; `None` on anything a LOCK
/// statement cannot hold (literals, operators, unterminated quotes).
fn tokens(sql: &str) -> Option<Vec<(Token, Range<usize>)>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if bytes[i..].starts_with(b"--") {
            i += bytes[i..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(bytes.len() - i);
        } else if bytes[i..].starts_with(b"/*") {
            i = block_comment_end(bytes, i)?;
        } else if c == b'"' {
            let start = i;
            let mut value = String::new();
            i += 1;
            loop {
                let rest = sql.get(i..)?;
                let end = rest.find('"')?;
                value.push_str(&rest[..end]);
                i += end + 1;
                if bytes.get(i) == Some(&b'"') {
                    value.push('"');
                    i += 1;
                } else {
                    break;
                }
            }
            if value.is_empty() {
                return None;
            }
            out.push((Token::Word(value, true), start..i));
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b'$'
                    || bytes[i] >= 0x80)
            {
                i += 1;
            }
            let word = sql.get(start..i)?;
            // U&"…" identifiers and E'…' strings: not for this lexer
            if matches!(bytes.get(i), Some(b'"' | b'\'' | b'&')) {
                return None;
            }
            out.push((Token::Word(word.to_lowercase(), false), start..i));
        } else if matches!(c, b'.' | b',' | b'*' | b';' | b'(' | b')') {
            out.push((Token::Punct(char::from(c)), i..i + 1));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// The end of the (nested) block comment starting at `start`.
fn block_comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        if bytes[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Whether `t` is the unquoted keyword `kw` (lower case).
fn is_kw(t: Option<&(Token, Range<usize>)>, kw: &str) -> bool {
    matches!(t, Some((Token::Word(w, false), _)) if w == kw)
}

/// Whether `t` is punctuation `p`.
fn is_punct(t: Option<&(Token, Range<usize>)>, p: char) -> bool {
    matches!(t, Some((Token::Punct(c), _)) if *c == p)
}

/// Reads one `[ONLY] name [*]` or `[ONLY] (name)` at `*i`.
fn item(toks: &[(Token, Range<usize>)], i: &mut usize) -> Option<Item> {
    let start = toks.get(*i)?.1.start;
    if is_kw(toks.get(*i), "only") {
        *i += 1;
    }
    let parenthesised = is_punct(toks.get(*i), '(');
    if parenthesised {
        *i += 1;
    }
    let mut parts = Vec::new();
    loop {
        match toks.get(*i) {
            Some((Token::Word(w, quoted), _)) if *quoted || !reserved(w) => parts.push(w.clone()),
            _ => return None,
        }
        *i += 1;
        if !is_punct(toks.get(*i), '.') {
            break;
        }
        *i += 1;
    }
    if parenthesised {
        if !is_punct(toks.get(*i), ')') {
            return None;
        }
        *i += 1;
    } else if is_punct(toks.get(*i), '*') {
        *i += 1;
    }
    if parts.len() > 3 {
        return None;
    }
    let end = toks.get(*i - 1)?.1.end;
    let name = parts.pop()?;
    Some(Item {
        span: start..end,
        schema: parts.pop(),
        name,
    })
}

/// Words that end a table list or cannot be a table name unquoted.
fn reserved(w: &str) -> bool {
    matches!(w, "in" | "nowait" | "only" | "table" | "lock" | "mode")
}

/// Parses `sql` as one LOCK statement (an optional `;` at the end).
fn parse(sql: &str) -> Option<Lock> {
    let toks = tokens(sql)?;
    let mut i = 0;
    if !is_kw(toks.first(), "lock") {
        return None;
    }
    i += 1;
    if is_kw(toks.get(i), "table") {
        i += 1;
    }
    let mut items = vec![item(&toks, &mut i)?];
    while is_punct(toks.get(i), ',') {
        i += 1;
        items.push(item(&toks, &mut i)?);
    }
    if is_kw(toks.get(i), "in") {
        i += 1;
        let mode_words = ["access", "share", "row", "exclusive", "update"];
        let mut n = 0;
        while matches!(toks.get(i), Some((Token::Word(w, false), _)) if mode_words.contains(&w.as_str()))
        {
            i += 1;
            n += 1;
        }
        if n == 0 || !is_kw(toks.get(i), "mode") {
            return None;
        }
        i += 1;
    }
    if is_kw(toks.get(i), "nowait") {
        i += 1;
    }
    if is_punct(toks.get(i), ';') {
        i += 1;
    }
    (i == toks.len()).then_some(Lock { items })
}

/// Where one locked table lives.
enum Home {
    /// On every shard (sharded, broadcast and time tables).
    Everywhere,
    /// On one shard (unsharded and catalog tables: the default shard;
    /// interval tables: theirs).
    One(usize),
}

/// Where the table `item` names lives (matched like the parser's table
/// names: by name whatever the schema, catalog schemas aside).
fn home(item: &Item, map: &ShardMap, default_shard: usize) -> (Home, bool) {
    let catalog = matches!(
        item.schema.as_deref(),
        Some("pg_catalog" | "information_schema")
    ) || (item.schema.is_none() && item.name.starts_with("pg_"));
    if catalog {
        return (Home::One(default_shard), false);
    }
    if map.table(&item.name).is_some() {
        return (Home::Everywhere, true);
    }
    match map.physical_table(&item.name) {
        Some((_, shard)) => (Home::One(shard), true),
        None => (Home::One(default_shard), false),
    }
}

/// The route of `sql` when it is a LOCK statement naming a mapped table;
/// `None` when it is not a LOCK statement this lexer reads, or names no
/// mapped table (then it runs on the default shard like any other text).
pub(super) fn lock_route(
    sql: &str,
    map: &ShardMap,
    shards: usize,
    default_shard: usize,
) -> Option<Route> {
    let lock = parse(sql)?;
    let mut on: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut mapped = false;
    for (k, item) in lock.items.iter().enumerate() {
        let (home, is_mapped) = home(item, map, default_shard);
        mapped |= is_mapped;
        match home {
            Home::Everywhere => (0..shards).for_each(|s| on.entry(s).or_default().push(k)),
            Home::One(s) => on.entry(s).or_default().push(k),
        }
    }
    if !mapped {
        return None;
    }
    let (first, last) = (lock.items.first()?, lock.items.last()?);
    let statements: Vec<ShardStatement> = on
        .into_iter()
        .map(|(shard, items)| {
            let sql = (items.len() != lock.items.len()).then(|| {
                let names: Vec<&str> = items
                    .iter()
                    .filter_map(|&k| sql.get(lock.items[k].span.clone()))
                    .collect();
                format!(
                    "{}{}{}",
                    &sql[..first.span.start],
                    names.join(", "),
                    &sql[last.span.end..]
                )
            });
            ShardStatement {
                shard,
                sql,
                params: None,
            }
        })
        .collect();
    Some(Route {
        mirror: statements.len() > 1,
        scatter: false,
        merge: None,
        shards: statements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Option<Vec<(Option<String>, String)>> {
        parse(sql).map(|l| l.items.into_iter().map(|i| (i.schema, i.name)).collect())
    }

    #[test]
    fn reads_lock_forms() {
        let users = Some(vec![(None, "users".to_string())]);
        assert_eq!(names("LOCK users"), users);
        assert_eq!(
            names("lock table ONLY users * in access share mode nowait;"),
            users
        );
        assert_eq!(
            names("LOCK TABLE ONLY (users) IN SHARE ROW EXCLUSIVE MODE"),
            users
        );
        assert_eq!(
            names("LOCK TABLE public.\"Users\", s.\"a\"\"b\" -- c\n"),
            Some(vec![
                (Some("public".to_string()), "Users".to_string()),
                (Some("s".to_string()), "a\"b".to_string())
            ])
        );
        assert_eq!(
            names("/* x /* y */ */ LOCK TABLE db.public.users"),
            Some(vec![(Some("public".to_string()), "users".to_string())])
        );
    }

    #[test]
    fn refuses_other_texts() {
        for sql in [
            "LOCK TABLE",
            "LOCK TABLE users IN MODE",
            "LOCK TABLE users IN ACCESS SHARE",
            "LOCK TABLE users; SELECT 1",
            "LOCK TABLE users,",
            "LOCK TABLE 'users'",
            "LOCK TABLE \"users",
            "LOCK TABLE U&\"users\"",
            "SELECT * FROM users",
            "LOCK TABLE a.b.c.d",
        ] {
            assert_eq!(names(sql), None, "{sql}");
        }
    }
}
