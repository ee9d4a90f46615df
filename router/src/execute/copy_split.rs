//! The rows of a `COPY … FROM STDIN` into a sharded table, cut out of the
//! client's CopyData stream (rows may span messages) and sent each to the
//! shard its key belongs to: PostgreSQL's text format, CSV and binary.
//! A header (CSV's first line, the binary signature and trailer) goes to
//! every shard. Pure: the caller says where a key goes.

use bytes::Bytes;
use shard_config::{KeyType, TableRule};
use sql_rewrite::CopyFormat;

/// Where a piece of COPY data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The shard at this index.
    Shard(usize),
    /// Every shard (a header, the binary trailer).
    All,
}

/// The binary format's signature.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Splits a COPY data stream by the key column.
#[derive(Debug)]
pub struct Splitter {
    format: CopyFormat,
    delimiter: u8,
    quote: u8,
    escape: u8,
    header: bool,
    key: usize,
    buf: Vec<u8>,
    /// Where the scan for the end of the current row stands, and whether
    /// it is inside CSV quotes there.
    scan: usize,
    quoted: bool,
    /// The end marker (`\.` or the binary trailer) was seen.
    ended: bool,
    /// Rows sent, headers excluded.
    pub rows: u64,
    /// The binary signature went by.
    signed: bool,
}

/// Where a key goes: the shard, or the error the COPY fails with.
pub type Route<'a> = dyn FnMut(Option<&[u8]>) -> Result<usize, String> + 'a;

impl Splitter {
    /// A splitter for `format`, routing by the field at `key` (0-based).
    pub fn new(c: &sql_rewrite::CopyIn, key: usize) -> Self {
        Splitter {
            format: c.format,
            delimiter: c.delimiter,
            quote: c.quote,
            escape: c.escape,
            header: c.header && c.format != CopyFormat::Binary,
            key,
            buf: Vec::new(),
            scan: 0,
            quoted: false,
            ended: false,
            rows: 0,
            signed: false,
        }
    }

    /// Takes a CopyData payload; hands out every complete row.
    pub fn feed(
        &mut self,
        data: &[u8],
        route: &mut Route<'_>,
        out: &mut dyn FnMut(Dest, &[u8]),
    ) -> Result<(), String> {
        if self.ended {
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = self.row_end(start)? {
            let row = std::mem::take(&mut self.buf);
            let dest = self.classify(&row[start..end], route);
            let d = match dest {
                Ok(d) => d,
                Err(e) => {
                    self.buf = row;
                    return Err(e);
                }
            };
            match d {
                Some(d) => {
                    if d != Dest::All {
                        self.rows += 1;
                    }
                    out(d, &row[start..end])
                }
                None => self.ended = true,
            }
            self.buf = row;
            start = end;
            self.scan = end;
            self.quoted = false;
            if self.ended {
                break;
            }
        }
        self.buf.drain(..start);
        self.scan -= start;
        Ok(())
    }

    /// At CopyDone: what is left must be one last row without its newline.
    pub fn finish(
        &mut self,
        route: &mut Route<'_>,
        out: &mut dyn FnMut(Dest, &[u8]),
    ) -> Result<(), String> {
        if self.ended || self.buf.is_empty() {
            return Ok(());
        }
        if self.format == CopyFormat::Binary {
            return Err("COPY binary data ended in the middle of a row".into());
        }
        let row = std::mem::take(&mut self.buf);
        if let Some(d) = self.classify(&row, route)? {
            if d != Dest::All {
                self.rows += 1;
            }
            out(d, &row);
        }
        Ok(())
    }

    /// The end (exclusive) of the row starting at `start`, if buffered.
    fn row_end(&mut self, start: usize) -> Result<Option<usize>, String> {
        match self.format {
            CopyFormat::Binary => {
                let end = binary_row_end(&self.buf, start, !self.signed)?;
                self.signed |= end.is_some();
                Ok(end)
            }
            CopyFormat::Text => Ok(self.buf[self.scan.max(start)..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| self.scan.max(start) + i + 1)),
            CopyFormat::Csv => {
                let mut i = self.scan.max(start);
                while i < self.buf.len() {
                    let b = self.buf[i];
                    if self.quoted && b == self.escape && self.escape != self.quote {
                        i += 2;
                        continue;
                    }
                    if b == self.quote {
                        self.quoted = !self.quoted;
                    } else if b == b'\n' && !self.quoted {
                        return Ok(Some(i + 1));
                    }
                    i += 1;
                }
                self.scan = i.min(self.buf.len());
                Ok(None)
            }
        }
    }

    /// Where one whole row goes (`None`: the end marker).
    fn classify(&mut self, row: &[u8], route: &mut Route<'_>) -> Result<Option<Dest>, String> {
        if self.format == CopyFormat::Binary {
            if row.starts_with(SIGNATURE) {
                return Ok(Some(Dest::All));
            }
            if row == [0xff, 0xff] {
                self.ended = true;
                return Ok(Some(Dest::All));
            }
            let field = binary_field(row, self.key)?;
            return route(field).map(|s| Some(Dest::Shard(s)));
        }
        if self.header {
            self.header = false;
            return Ok(Some(Dest::All));
        }
        let line = row.strip_suffix(b"\n").unwrap_or(row);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"\\." {
            return Ok(None);
        }
        let field = match self.format {
            CopyFormat::Text => text_field(line, self.delimiter, self.key)?,
            _ => csv_field(line, self.delimiter, self.quote, self.escape, self.key)?,
        };
        route(field.as_deref()).map(|s| Some(Dest::Shard(s)))
    }
}

/// The end of the binary header or tuple at `start`, if buffered.
fn binary_row_end(buf: &[u8], start: usize, header: bool) -> Result<Option<usize>, String> {
    let b = &buf[start..];
    if header {
        if b.len() < SIGNATURE.len() + 8 {
            return Ok(None);
        }
        if !b.starts_with(SIGNATURE) {
            return Err("COPY binary data does not start with the PGCOPY signature".into());
        }
        let ext = be32(&b[SIGNATURE.len() + 4..]) as usize;
        let len = SIGNATURE.len() + 8 + ext;
        return Ok((b.len() >= len).then_some(start + len));
    }
    if b.len() < 2 {
        return Ok(None);
    }
    let n = i16::from_be_bytes([b[0], b[1]]);
    if n == -1 {
        return Ok(Some(start + 2));
    }
    let mut at = 2;
    for _ in 0..n.max(0) {
        if b.len() < at + 4 {
            return Ok(None);
        }
        let len = be32(&b[at..]) as i32;
        at += 4 + usize::try_from(len.max(0)).unwrap_or(0);
        if b.len() < at {
            return Ok(None);
        }
    }
    Ok(Some(start + at))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Field `k` of a binary tuple (`None`: NULL).
fn binary_field(row: &[u8], k: usize) -> Result<Option<&[u8]>, String> {
    let n = i16::from_be_bytes([row[0], row[1]]);
    if k >= usize::try_from(n).unwrap_or(0) {
        return Err(format!(
            "a COPY row has {n} fields, the key is field {}",
            k + 1
        ));
    }
    let mut at = 2;
    for i in 0..=k {
        let len = be32(&row[at..]) as i32;
        at += 4;
        if i == k {
            return Ok((len >= 0).then(|| &row[at..at + len as usize]));
        }
        at += usize::try_from(len.max(0)).unwrap_or(0);
    }
    Ok(None)
}

/// Field `k` of a text-format line, unescaped (`None`: `\N`).
fn text_field(line: &[u8], delim: u8, k: usize) -> Result<Option<Vec<u8>>, String> {
    let mut field = 0;
    let mut i = 0;
    let mut start = 0;
    while i <= line.len() {
        if i == line.len() || line[i] == delim {
            if field == k {
                return Ok(unescape_text(&line[start..i]));
            }
            field += 1;
            start = i + 1;
        } else if line[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    Err(format!(
        "a COPY row has {field} fields, the key is field {}",
        k + 1
    ))
}

/// A text-format field's value (`None` for `\N`).
fn unescape_text(f: &[u8]) -> Option<Vec<u8>> {
    if f == b"\\N" {
        return None;
    }
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0;
    while i < f.len() {
        if f[i] != b'\\' || i + 1 == f.len() {
            out.push(f[i]);
            i += 1;
            continue;
        }
        let c = f[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match f.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// Field `k` of a CSV line (`None`: an unquoted empty field, CSV's NULL).
fn csv_field(
    line: &[u8],
    delim: u8,
    quote: u8,
    escape: u8,
    k: usize,
) -> Result<Option<Vec<u8>>, String> {
    let mut field = 0;
    let mut i = 0;
    loop {
        let mut value = Vec::new();
        let mut was_quoted = false;
        let mut quoted = false;
        while i < line.len() {
            let b = line[i];
            if quoted {
                if b == escape && escape != quote && line.get(i + 1).is_some() {
                    value.push(line[i + 1]);
                    i += 2;
                    continue;
                }
                if b == quote {
                    if line.get(i + 1) == Some(&quote) {
                        value.push(quote);
                        i += 2;
                        continue;
                    }
                    quoted = false;
                } else {
                    value.push(b);
                }
            } else if b == quote {
                quoted = true;
                was_quoted = true;
            } else if b == delim {
                break;
            } else {
                value.push(b);
            }
            i += 1;
        }
        if field == k {
            return Ok((was_quoted || !value.is_empty()).then_some(value));
        }
        if i >= line.len() {
            return Err(format!(
                "a COPY row has {} fields, the key is field {}",
                field + 1,
                k + 1
            ));
        }
        field += 1;
        i += 1;
    }
}

/// A COPY FROM STDIN running on every shard.
pub struct CopySplit {
    /// Slot id of each shard, by shard index.
    pub slots: Vec<usize>,
    pub splitter: Splitter,
    pub rule: TableRule,
    pub key_type: KeyType,
    pub binary: bool,
    pub broadcast: bool,
    /// Shards that answered CopyInResponse.
    pub started: usize,
    /// Shards still to send ReadyForQuery.
    pub remaining: usize,
    /// Rows the shards reported copied.
    pub count: u64,
    /// The first error, sent instead of CommandComplete.
    pub error: Option<Bytes>,
    /// The client is still sending data.
    pub open: bool,
    /// Started by an Execute: the client's Sync after its CopyDone is
    /// answered with the request's ReadyForQuery.
    pub extended: bool,
}

impl CopySplit {
    /// Whether slot `id` runs a part of it.
    pub fn has(&self, id: usize) -> bool {
        self.slots.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(c: &str, key: usize, chunks: &[&[u8]]) -> Result<Vec<(Dest, Vec<u8>)>, String> {
        let c = sql_rewrite::copy_in(c).expect("copy");
        let mut s = Splitter::new(&c, key);
        let mut out = Vec::new();
        let mut route = |k: Option<&[u8]>| -> Result<usize, String> {
            let k = k.ok_or("NULL key")?;
            Ok(usize::from(k.first().copied().unwrap_or(0) % 2))
        };
        for ch in chunks {
            s.feed(ch, &mut route, &mut |d, r| out.push((d, r.to_vec())))?;
        }
        s.finish(&mut route, &mut |d, r| out.push((d, r.to_vec())))?;
        Ok(out)
    }

    #[test]
    fn text_rows_split_across_messages() {
        let got = split(
            "COPY t (id, v) FROM STDIN",
            0,
            &[b"1\ta\n2\tb", b"\n3\\\tx\tc\n4\td"],
        )
        .unwrap();
        let dests: Vec<Dest> = got.iter().map(|(d, _)| *d).collect();
        // '1' = 49 odd, '2' = 50 even, '3' odd, '4' even
        assert_eq!(
            dests,
            [
                Dest::Shard(1),
                Dest::Shard(0),
                Dest::Shard(1),
                Dest::Shard(0)
            ]
        );
        assert_eq!(got[1].1, b"2\tb\n");
        assert_eq!(got[3].1, b"4\td", "the last row without a newline");
        assert!(
            split("COPY t FROM STDIN", 0, &[b"\\N\tx\n"]).is_err(),
            "a NULL key fails the COPY"
        );
        let got = split("COPY t FROM STDIN", 1, &[b"x\t2\n\\.\nignored\n"]).unwrap();
        assert_eq!(got.len(), 1, "the end marker ends the data");
    }

    #[test]
    fn text_escapes() {
        assert_eq!(
            unescape_text(b"a\\tb\\\\c\\101"),
            Some(b"a\tb\\cA".to_vec())
        );
        assert_eq!(
            text_field(b"x\\\ty\tz", b'\t', 1).unwrap(),
            Some(b"z".to_vec())
        );
    }

    #[test]
    fn csv_quotes_newlines_and_headers() {
        let got = split(
            "COPY t FROM STDIN (FORMAT csv, HEADER)",
            1,
            &[b"a,id\n\"x\ny\",\"2\"\n", b"\"q\"\"\",3\n"],
        )
        .unwrap();
        let dests: Vec<Dest> = got.iter().map(|(d, _)| *d).collect();
        assert_eq!(dests, [Dest::All, Dest::Shard(0), Dest::Shard(1)]);
        assert_eq!(got[1].1, b"\"x\ny\",\"2\"\n");
        assert_eq!(csv_field(b"a,,c", b',', b'"', b'"', 1).unwrap(), None);
        assert_eq!(
            csv_field(b"a,\"\",c", b',', b'"', b'"', 1).unwrap(),
            Some(vec![])
        );
    }

    #[test]
    fn binary_tuples() {
        let mut data = SIGNATURE.to_vec();
        data.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        for k in [1u8, 2] {
            data.extend_from_slice(&[0, 2, 0, 0, 0, 1, k, 0, 0, 0, 1, b'v']);
        }
        data.extend_from_slice(&[0xff, 0xff]);
        // one byte at a time: rows span messages
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        let got = split("COPY t FROM STDIN (FORMAT binary)", 0, &chunks).unwrap();
        let dests: Vec<Dest> = got.iter().map(|(d, _)| *d).collect();
        assert_eq!(
            dests,
            [Dest::All, Dest::Shard(1), Dest::Shard(0), Dest::All]
        );
        assert_eq!(got.concat_bytes(), data);
    }

    trait Concat {
        fn concat_bytes(&self) -> Vec<u8>;
    }
    impl Concat for Vec<(Dest, Vec<u8>)> {
        fn concat_bytes(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, b)| b.clone()).collect()
        }
    }
}
