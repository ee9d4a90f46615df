//! `COPY table [(columns)] FROM STDIN [options]`, recognised from its text
//! so that the proxy can split the rows of a sharded table by key: the
//! table, the column list and the data format (text, CSV, binary, with
//! their delimiter, quote, escape, NULL string and HEADER); and
//! `COPY … TO STDOUT` of a table or a query, as the query it reads.

use crate::split::{close_paren, split_statements};

/// The data format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format (tab-separated, backslash escapes).
    Text,
    /// CSV.
    Csv,
    /// PostgreSQL's binary format.
    Binary,
}

/// A `COPY … FROM STDIN` of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyIn {
    /// The table (lower case unless quoted, without its schema).
    pub table: String,
    /// The column list, if one was given.
    pub columns: Option<Vec<String>>,
    /// The data format.
    pub format: CopyFormat,
    /// The field delimiter.
    pub delimiter: u8,
    /// CSV quote character.
    pub quote: u8,
    /// CSV escape character.
    pub escape: u8,
    /// The first line is a header (CSV, and text from PG 15).
    pub header: bool,
}

/// A `COPY … TO STDOUT` of a table or a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOut {
    /// The rows as a query: `SELECT cols FROM table`, or the COPY's query.
    pub query: String,
    /// The format, delimiter, quote, escape and header, as for COPY FROM.
    pub options: CopyIn,
}

/// Recognises `COPY table [(cols)] TO STDOUT` and `COPY (query) TO STDOUT`.
pub fn copy_out(sql: &str) -> Option<CopyOut> {
    let parts = split_statements(sql);
    if parts.len() != 1 {
        return None;
    }
    let mut t = Tokens::new(parts[0]);
    if !t.word()?.eq_ignore_ascii_case("copy") {
        return None;
    }
    let (query, table, columns) = if t.peek()? == '(' {
        let rest = t.rest();
        let end = close_paren(rest)?;
        let q = rest[1..end - 1].trim().to_string();
        t.skip(end);
        (q, String::new(), None)
    } else {
        let start = t.at;
        let mut table = t.name()?;
        if t.peek() == Some('.') {
            t.skip(1);
            table = t.name()?;
        }
        let name_text = t.s[start..t.at].trim().to_string();
        let mut cols_text = "*".to_string();
        let mut columns = None;
        if t.peek() == Some('(') {
            let rest = t.rest();
            let end = close_paren(rest)?;
            cols_text = rest[1..end - 1].to_string();
            columns = Some(cols_text.split(',').map(|c| c.trim().to_string()).collect());
            t.skip(end);
        }
        (
            format!("SELECT {cols_text} FROM {name_text}"),
            table,
            columns,
        )
    };
    if !t.word()?.eq_ignore_ascii_case("to") || !t.word()?.eq_ignore_ascii_case("stdout") {
        return None;
    }
    let mut c = CopyIn {
        table,
        columns,
        format: CopyFormat::Text,
        delimiter: b'\t',
        quote: b'"',
        escape: b'"',
        header: false,
    };
    options(&mut t, &mut c)?;
    Some(CopyOut { query, options: c })
}

/// Recognises `COPY table [(cols)] FROM STDIN [[WITH] options]`.
pub fn copy_in(sql: &str) -> Option<CopyIn> {
    let parts = split_statements(sql);
    if parts.len() != 1 {
        return None;
    }
    let mut t = Tokens::new(parts[0]);
    if !t.word()?.eq_ignore_ascii_case("copy") {
        return None;
    }
    let mut table = t.name()?;
    if t.peek() == Some('.') {
        t.skip(1);
        table = t.name()?;
    }
    let columns = if t.peek() == Some('(') {
        t.skip(1);
        let mut cols = Vec::new();
        loop {
            cols.push(t.name()?);
            match t.peek()? {
                ',' => t.skip(1),
                ')' => {
                    t.skip(1);
                    break;
                }
                _ => return None,
            }
        }
        Some(cols)
    } else {
        None
    };
    if !t.word()?.eq_ignore_ascii_case("from") || !t.word()?.eq_ignore_ascii_case("stdin") {
        return None;
    }
    let mut c = CopyIn {
        table,
        columns,
        format: CopyFormat::Text,
        delimiter: b'\t',
        quote: b'"',
        escape: b'"',
        header: false,
    };
    options(&mut t, &mut c)?;
    Some(c)
}

/// Reads the options after `FROM STDIN`, new style `(FORMAT csv, …)` or
/// old style `WITH CSV HEADER DELIMITER ','`.
fn options(t: &mut Tokens<'_>, c: &mut CopyIn) -> Option<()> {
    let mut delimiter = None;
    let mut escape = None;
    if t.peek().is_some()
        && t.rest()
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("with")
    {
        t.word()?;
    }
    let parenthesized = t.peek() == Some('(');
    if parenthesized {
        t.skip(1);
    }
    while let Some(ch) = t.peek() {
        if ch == ')' {
            break;
        }
        if ch == ',' {
            t.skip(1);
            continue;
        }
        let opt = t.word()?.to_ascii_lowercase();
        let value = |t: &mut Tokens<'_>| t.value();
        match opt.as_str() {
            "format" => {
                c.format = match value(t)?.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    _ => return None,
                }
            }
            "csv" => c.format = CopyFormat::Csv,
            "binary" => c.format = CopyFormat::Binary,
            "header" => {
                c.header = match t.peek() {
                    Some(',' | ')') | None => true,
                    _ if !parenthesized => true,
                    _ => !matches!(
                        value(t)?.to_ascii_lowercase().as_str(),
                        "false" | "off" | "0"
                    ),
                }
            }
            "delimiter" => delimiter = Some(single(&value(t)?)?),
            "quote" => c.quote = single(&value(t)?)?,
            "escape" => escape = Some(single(&value(t)?)?),
            // values the split does not depend on
            "null" | "encoding" | "force_not_null" | "force_null" | "force_quote" | "freeze" => {
                value(t)?;
            }
            _ => return None,
        }
    }
    c.delimiter = delimiter.unwrap_or(if c.format == CopyFormat::Csv {
        b','
    } else {
        b'\t'
    });
    c.escape = escape.unwrap_or(c.quote);
    Some(())
}

/// A one-byte option value.
fn single(v: &str) -> Option<u8> {
    (v.len() == 1).then(|| v.as_bytes()[0])
}

/// A minimal tokenizer over a COPY statement.
struct Tokens<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        Tokens { s, at: 0 }
    }
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
    fn ws(&mut self) {
        let r = self.rest();
        self.at += r.len() - r.trim_start().len();
    }
    fn peek(&mut self) -> Option<char> {
        self.ws();
        self.rest().chars().next()
    }
    fn skip(&mut self, n: usize) {
        self.at = (self.at + n).min(self.s.len());
    }
    /// A bare word.
    fn word(&mut self) -> Option<String> {
        self.ws();
        let r = self.rest();
        let end = r
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(r.len());
        (end > 0).then(|| {
            self.at += end;
            r[..end].to_string()
        })
    }
    /// An identifier: folded unless double-quoted.
    fn name(&mut self) -> Option<String> {
        if self.peek()? == '"' {
            let r = &self.rest()[1..];
            let end = r.find('"')?;
            self.at += end + 2;
            return Some(r[..end].to_string());
        }
        self.word().map(|w| w.to_lowercase())
    }
    /// An option value: a word or a quoted string (`E'\t'` too).
    fn value(&mut self) -> Option<String> {
        let c = self.peek()?;
        let r = self.rest();
        let (escapes, body) = match c {
            'E' | 'e' if r[1..].starts_with('\'') => (true, &r[2..]),
            '\'' => (false, &r[1..]),
            _ => return self.word(),
        };
        let end = body.find('\'')?;
        let raw = &body[..end];
        self.at += (r.len() - body.len()) + end + 1;
        Some(if escapes {
            raw.replace("\\t", "\t").replace("\\\\", "\\")
        } else {
            raw.to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_statements() {
        let c = copy_in("COPY users (id, name) FROM STDIN").unwrap();
        assert_eq!(c.table, "users");
        assert_eq!(c.columns, Some(vec!["id".into(), "name".into()]));
        assert_eq!(
            (c.format, c.delimiter, c.header),
            (CopyFormat::Text, b'\t', false)
        );
        let c = copy_in("copy \"public\".\"T\"(\"Id\", val) FROM STDIN (FORMAT binary)").unwrap();
        assert_eq!(c.table, "T");
        assert_eq!(c.columns, Some(vec!["Id".into(), "val".into()]));
        assert_eq!(c.format, CopyFormat::Binary);
        let c = copy_in("COPY t FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';')").unwrap();
        assert_eq!(
            (c.format, c.delimiter, c.header, c.columns),
            (CopyFormat::Csv, b';', true, None)
        );
        let c = copy_in("COPY t FROM STDIN WITH CSV HEADER QUOTE '\"' ").unwrap();
        assert_eq!(
            (c.format, c.header, c.delimiter),
            (CopyFormat::Csv, true, b',')
        );
        let c = copy_in("COPY t FROM STDIN DELIMITER E'\\t' NULL ''").unwrap();
        assert_eq!(c.delimiter, b'\t');
    }

    #[test]
    fn copy_out_statements() {
        let c = copy_out("COPY (SELECT id, name FROM users ORDER BY id) TO STDOUT").unwrap();
        assert_eq!(c.query, "SELECT id, name FROM users ORDER BY id");
        assert_eq!(c.options.format, CopyFormat::Text);
        let c =
            copy_out("COPY public.orders (id, total) TO STDOUT WITH (FORMAT csv, HEADER)").unwrap();
        assert_eq!(c.query, "SELECT id, total FROM public.orders");
        assert!(c.options.header);
        let c = copy_out("COPY orders TO STDOUT").unwrap();
        assert_eq!(c.query, "SELECT * FROM orders");
        assert_eq!(copy_out("COPY orders FROM STDIN"), None);
        assert_eq!(
            copy_out("COPY (SELECT ')') TO STDOUT").unwrap().query,
            "SELECT ')'"
        );
    }

    #[test]
    fn not_a_copy_in() {
        for s in [
            "COPY t TO STDOUT",
            "COPY t FROM '/tmp/x'",
            "COPY (SELECT 1) TO STDOUT",
            "SELECT 1",
            "COPY t FROM STDIN (FORMAT xml)",
            "COPY t FROM STDIN; SELECT 1",
        ] {
            assert_eq!(copy_in(s), None, "{s}");
        }
    }
}
