//! Texts the parser cannot read: whether they name a mapped table (then
//! they are refused) or only interval tables of one shard (then they run
//! there), found by a word scan. Comments and single-quoted string
//! literals name no table and are left out of the scan (`'public.users'::regclass`,
//! `relname ~ '^(users)$'` in catalog queries), except in `DO` blocks,
//! whose body may be such a literal; double- and dollar-quoted text is
//! scanned (function bodies, quoted names).

use shard_config::ShardMap;

/// The identifier-like words of a (lower-cased) text.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether byte `b` can be part of an identifier.
fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// `sql` lower-cased, with its comments and single-quoted string literals
/// blanked out (not in a `DO` block); dollar-quoted strings and quoted
/// identifiers are kept as they are.
fn scanned(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    if words(&lower).first() == Some(&"do") {
        return lower;
    }
    let b = lower.as_bytes();
    let mut keep = vec![true; b.len()];
    let mut i = 0;
    while i < b.len() {
        let after_ident = i > 0 && ident_byte(b[i - 1]);
        let end = match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p);
                keep[i..end].iter_mut().for_each(|k| *k = false);
                end
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = block_comment_end(b, i);
                keep[i..end].iter_mut().for_each(|k| *k = false);
                end
            }
            b'\'' => {
                let escapes = i > 0 && b[i - 1] == b'e' && !(i > 1 && ident_byte(b[i - 2]));
                let end = literal_end(b, i, escapes);
                keep[i..end].iter_mut().for_each(|k| *k = false);
                end
            }
            b'"' => b[i + 1..]
                .iter()
                .position(|&c| c == b'"')
                .map_or(b.len(), |p| i + p + 2),
            b'$' if !after_ident => dollar_end(&lower, i).unwrap_or(i + 1),
            _ => i + 1,
        };
        i = end.max(i + 1);
    }
    lower
        .char_indices()
        .map(|(k, c)| if keep[k] { c } else { ' ' })
        .collect()
}

/// The end of the (nested) block comment starting at `start` (the text's end if open).
fn block_comment_end(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < b.len() {
        if b[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if b[i..].starts_with(b"*/") {
            depth = depth.saturating_sub(1);
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The end of the string literal opening at `start` (`''` doubles a quote;
/// with `escapes`, `\` escapes the next character).
fn literal_end(b: &[u8], start: usize, escapes: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if escapes => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// The end of the dollar-quoted string opening at `start`, if one opens there.
fn dollar_end(text: &str, start: usize) -> Option<usize> {
    let rest = text.get(start + 1..)?;
    let tag_len = rest.find('$')?;
    let tag = &rest[..tag_len];
    let valid = tag.bytes().enumerate().all(|(k, c)| {
        c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 || (k > 0 && c.is_ascii_digit())
    });
    if !valid {
        return None;
    }
    let delimiter = &text[start..start + tag_len + 2];
    let body = start + delimiter.len();
    let close = text.get(body..)?.find(delimiter)?;
    Some(body + close + delimiter.len())
}

/// A mapped table whose name appears as a word in `sql` (for texts the
/// parser cannot read).
pub fn named_sharded_table(sql: &str, map: &ShardMap) -> Option<String> {
    let lower = scanned(sql);
    let words = words(&lower);
    map.tables()
        .map(|(name, _)| name)
        .find(|name| words.contains(&name.to_ascii_lowercase().as_str()))
        .map(str::to_string)
        .or_else(|| {
            words
                .iter()
                .find(|w| map.physical_table(w).is_some())
                .map(|w| w.to_string())
        })
}

/// For a text the parser cannot read: the one shard it belongs to when it
/// names interval tables of one shard and no other mapped table than their
/// logical tables (`CREATE TABLE orders_2026_11 (LIKE orders INCLUDING ALL)`).
pub fn unparsed_home(sql: &str, map: &ShardMap) -> Option<usize> {
    let lower = scanned(sql);
    let words = words(&lower);
    let mut home = None;
    let mut logical = Vec::new();
    for w in &words {
        if let Some((l, shard)) = map.physical_table(w) {
            if home.is_some_and(|h| h != shard) {
                return None;
            }
            home = Some(shard);
            logical.push(l.to_ascii_lowercase());
        }
    }
    let others = map
        .tables()
        .map(|(name, _)| name.to_ascii_lowercase())
        .any(|name| words.contains(&name.as_str()) && !logical.contains(&name));
    if others {
        return None;
    }
    home
}

#[cfg(test)]
mod tests {
    use super::scanned;

    #[test]
    fn literals_and_comments_are_blanked() {
        let cases = [
            (
                "SELECT 'users' -- users\n, x",
                "select                 \n, x",
            ),
            ("a E'it\\'s users' b", "a e              b"),
            ("a 'it''s users' b", "a               b"),
            ("/* users /* x */ */ t", "                    t"),
            ("f($$ it's users $$) 'x'", "f($$ it's users $$)    "),
            ("\"us'ers\" 'x'", "\"us'ers\"    "),
            (
                "DO 'BEGIN DELETE FROM users; END'",
                "do 'begin delete from users; end'",
            ),
            ("SELECT $1, 'users'", "select $1,        "),
        ];
        for (sql, want) in cases {
            assert_eq!(scanned(sql), want, "{sql}");
        }
    }
}
