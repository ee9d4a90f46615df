//! `COPY … TO STDOUT` of rows gathered from several shards: the merged
//! answer of the COPY's query (DataRows in text) written as the COPY the
//! client asked for: CopyOutResponse, one CopyData per row in PostgreSQL's
//! text format or CSV, CopyDone and `COPY n`.

use bytes::BytesMut;
use sql_rewrite::{CopyFormat, CopyIn};

use crate::protocol::frame;
use crate::protocol::messages::{self, Malformed, Reader};

/// Writes gathered rows as COPY data.
#[derive(Debug, Clone)]
pub struct CopyWriter {
    csv: bool,
    delimiter: u8,
    quote: u8,
    escape: u8,
    header: bool,
    /// Rows written.
    pub rows: u64,
}

impl CopyWriter {
    /// A writer for the COPY's options; `None` for the binary format.
    pub fn new(o: &CopyIn) -> Option<Self> {
        (o.format != CopyFormat::Binary).then(|| CopyWriter {
            csv: o.format == CopyFormat::Csv,
            delimiter: o.delimiter,
            quote: o.quote,
            escape: o.escape,
            header: o.header,
            rows: 0,
        })
    }

    /// The CopyOutResponse (and header line) for a RowDescription.
    pub fn start(&self, row_description: &[u8], out: &mut BytesMut) -> Result<(), Malformed> {
        let names = column_names(row_description)?;
        let mut body = vec![0u8];
        body.extend_from_slice(&(names.len() as i16).to_be_bytes());
        for _ in &names {
            body.extend_from_slice(&0i16.to_be_bytes());
        }
        messages::raw(out, b'H', &body);
        if self.header {
            let fields: Vec<Option<&[u8]>> = names.iter().map(|n| Some(&n[..])).collect();
            let line = self.line(&fields);
            messages::raw(out, b'd', &line);
        }
        Ok(())
    }

    /// Turns the gathered frames in `frames` (DataRows, the command's end)
    /// into COPY data on `out`.
    pub fn convert(&mut self, frames: &[u8], out: &mut BytesMut) -> Result<(), Malformed> {
        let mut rest = BytesMut::from(frames);
        while let Ok(Some(f)) = frame::split(&mut rest, usize::MAX) {
            match f.tag {
                b'D' => {
                    let fields = row_fields(f.body())?;
                    let line = self.line(&fields);
                    messages::raw(out, b'd', &line);
                    self.rows += 1;
                }
                b'C' => {
                    messages::raw(out, b'c', b"");
                    messages::command_complete(out, &format!("COPY {}", self.rows));
                }
                _ => out.extend_from_slice(&f.bytes),
            }
        }
        Ok(())
    }

    /// One row as a line of the COPY's format.
    fn line(&self, fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut line = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            match (f, self.csv) {
                (None, true) => {}
                (None, false) => line.extend_from_slice(b"\\N"),
                (Some(v), true) => self.csv_value(v, &mut line),
                (Some(v), false) => self.text_value(v, &mut line),
            }
        }
        line.push(b'\n');
        line
    }

    fn text_value(&self, v: &[u8], line: &mut Vec<u8>) {
        for &b in v {
            match b {
                b'\\' => line.extend_from_slice(b"\\\\"),
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b'\t' if self.delimiter == b'\t' => line.extend_from_slice(b"\\t"),
                d if d == self.delimiter => {
                    line.push(b'\\');
                    line.push(d);
                }
                _ => line.push(b),
            }
        }
    }

    fn csv_value(&self, v: &[u8], line: &mut Vec<u8>) {
        let needs = v.is_empty()
            || v == b"\\."
            || v.iter()
                .any(|&b| b == self.delimiter || b == self.quote || b == b'\n' || b == b'\r');
        if !needs {
            line.extend_from_slice(v);
            return;
        }
        line.push(self.quote);
        for &b in v {
            if b == self.quote || b == self.escape {
                line.push(self.escape);
            }
            line.push(b);
        }
        line.push(self.quote);
    }
}

/// The column names of a RowDescription body.
fn column_names(body: &[u8]) -> Result<Vec<Vec<u8>>, Malformed> {
    let mut r = Reader::new(body, "RowDescription");
    let n = r.i16()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        out.push(r.cstr()?.to_vec());
        r.take(18)?;
    }
    Ok(out)
}

/// The values of a DataRow body (`None`: NULL).
fn row_fields(body: &[u8]) -> Result<Vec<Option<&[u8]>>, Malformed> {
    let mut r = Reader::new(body, "DataRow");
    let n = r.i16()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let len = r.i32()?;
        out.push(if len < 0 {
            None
        } else {
            Some(r.take(len as usize)?)
        });
    }
    Ok(out)
}

/// A RowDescription body of text columns named `names` (tests).
#[cfg(test)]
fn describe(names: &[&str]) -> Vec<u8> {
    use bytes::BufMut;
    let mut b = BytesMut::new();
    b.put_i16(names.len() as i16);
    for n in names {
        b.put_slice(n.as_bytes());
        b.put_u8(0);
        b.put_slice(&[0; 18]);
    }
    b.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut rest = BytesMut::from(b);
        let mut out = Vec::new();
        while let Ok(Some(f)) = frame::split(&mut rest, usize::MAX) {
            out.push((f.tag, f.body().to_vec()));
        }
        out
    }

    #[test]
    fn text_and_csv_lines() {
        let o = sql_rewrite::copy_in("COPY t FROM STDIN").unwrap();
        let mut w = CopyWriter::new(&o).unwrap();
        let mut rows = BytesMut::new();
        messages::data_row_bytes(&mut rows, &[Some(b"a\tb\\c\n"), None]);
        messages::command_complete(&mut rows, "SELECT 1");
        let mut out = BytesMut::new();
        w.convert(&rows, &mut out).unwrap();
        let f = frames(&out);
        assert_eq!(f[0], (b'd', b"a\\tb\\\\c\\n\t\\N\n".to_vec()));
        assert_eq!(f[1].0, b'c');
        assert_eq!(f[2], (b'C', b"COPY 1\0".to_vec()));

        let o = sql_rewrite::copy_in("COPY t FROM STDIN (FORMAT csv, HEADER)").unwrap();
        let w = CopyWriter::new(&o).unwrap();
        let mut out = BytesMut::new();
        w.start(&describe(&["id", "name"]), &mut out).unwrap();
        let f = frames(&out);
        assert_eq!(f[0].0, b'H');
        assert_eq!(f[1], (b'd', b"id,name\n".to_vec()));
        assert_eq!(
            w.line(&[Some(b"x,\"y"), Some(b""), None]),
            b"\"x,\"\"y\",\"\",\n"
        );
        assert!(CopyWriter::new(
            &sql_rewrite::copy_in("COPY t FROM STDIN (FORMAT binary)").unwrap()
        )
        .is_none());
    }
}
