//! Cutting a simple-protocol text into its statements at the semicolons
//! that end them, the way PostgreSQL's lexer does: not inside quoted
//! strings (`'…'`, `E'…'` with backslash escapes), quoted identifiers,
//! dollar-quoted bodies (`$tag$…$tag$`), comments (`--`, nested `/* */`) or
//! parentheses (a `CREATE RULE … (a; b)`).

/// The statements of `sql`, each without its `;`, empty ones dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                let escapes = i > 0 && matches!(b[i - 1], b'e' | b'E') && !ident_byte(b, i - 1);
                i = skip_quoted(b, i, b'\'', escapes);
            }
            b'"' => i = skip_quoted(b, i, b'"', false),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_comment(b, i),
            b'$' => i = skip_dollar(b, i),
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b';' if depth == 0 => {
                push(&mut out, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut out, &sql[start..]);
    out
}

fn push<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    if !only_space_and_comments(s) {
        out.push(s.trim());
    }
}

/// Whether the byte before a quote makes it part of an identifier
/// (`name'…'` is not an escape string).
fn ident_byte(b: &[u8], e_at: usize) -> bool {
    e_at > 0 && (b[e_at - 1].is_ascii_alphanumeric() || b[e_at - 1] == b'_')
}

/// The index after the quoted run starting at `i`.
fn skip_quoted(b: &[u8], mut i: usize, q: u8, escapes: bool) -> usize {
    i += 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// The index after the (nested) block comment starting at `i`.
fn skip_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
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

/// The index after a dollar-quoted body starting at `i`, or after the `$`
/// when it opens none (a parameter `$1`).
fn skip_dollar(b: &[u8], i: usize) -> usize {
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
        return i + 1; // inside an identifier such as a$b
    }
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        if j == i + 1 && b[j].is_ascii_digit() {
            return i + 1; // a parameter
        }
        j += 1;
    }
    if b.get(j) != Some(&b'$') {
        return i + 1;
    }
    let tag = &b[i..=j];
    let mut k = j + 1;
    while k + tag.len() <= b.len() {
        if &b[k..k + tag.len()] == tag {
            return k + tag.len();
        }
        k += 1;
    }
    b.len()
}

/// Whether `s` holds nothing but whitespace and comments.
fn only_space_and_comments(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_comment(b, i),
            _ => return false,
        }
    }
    true
}

/// The index after the parenthesis closing the one `s` starts with
/// (quotes respected).
pub(crate) fn close_paren(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c @ (b'\'' | b'"')) => quote = Some(c),
            (None, b'(') => depth += 1,
            (None, b')') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons() {
        assert_eq!(
            split_statements("SELECT 1; SELECT 2;"),
            ["SELECT 1", "SELECT 2"]
        );
        assert_eq!(split_statements("SELECT 1"), ["SELECT 1"]);
        assert!(split_statements(" ; ;-- nothing\n").is_empty());
    }

    #[test]
    fn quotes_comments_and_dollars_hide_semicolons() {
        let sql = "INSERT INTO t VALUES ('a;b', E'c\\';d', \"x;y\"); SELECT 2";
        assert_eq!(split_statements(sql).len(), 2);
        let sql = "DO $f$ BEGIN PERFORM 1; END $f$; SELECT $1; SELECT 'it''s;'";
        assert_eq!(
            split_statements(sql),
            [
                "DO $f$ BEGIN PERFORM 1; END $f$",
                "SELECT $1",
                "SELECT 'it''s;'"
            ]
        );
        let sql = "SELECT 1 /* a; /* b; */ c; */; -- d;\nSELECT 2";
        assert_eq!(split_statements(sql).len(), 2);
        assert_eq!(
            split_statements("CREATE RULE r AS ON INSERT TO t DO (SELECT 1; SELECT 2)").len(),
            1
        );
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in [
            "'", "$a", "$a$ x", "/*", "E'\\", "\"", "a$b$c; d", "((;", "))",
        ] {
            let _ = split_statements(s);
        }
        assert_eq!(split_statements("a$b; c").len(), 2);
    }
}
