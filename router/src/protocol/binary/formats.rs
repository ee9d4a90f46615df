//! [`ResultFormats`]: which result columns a client asked for in binary,
//! and the RowDescription and DataRow rewriting that honours it.

use bytes::{BufMut, BytesMut};

use super::super::messages::{Malformed, Reader};
use super::{encode, supported};

/// Which result columns a client wants in binary, from a Bind's result
/// format codes (none: all text; one: all alike; else one per column).
#[derive(Debug, Clone, Default)]
pub struct ResultFormats(Vec<i16>);

impl ResultFormats {
    /// Wraps a Bind's result format codes.
    pub fn new(codes: Vec<i16>) -> Self {
        Self(codes)
    }

    /// Column `i` is wanted in binary.
    pub fn binary(&self, i: usize) -> bool {
        match self.0.as_slice() {
            [] => false,
            [one] => *one == 1,
            all => all.get(i) == Some(&1),
        }
    }

    /// Any column is wanted in binary.
    pub fn any_binary(&self) -> bool {
        self.0.contains(&1)
    }

    /// The first column wanted in binary whose type cannot be re-encoded.
    pub fn unsupported(&self, types: &[u32]) -> Option<u32> {
        types
            .iter()
            .enumerate()
            .find(|&(i, &t)| self.binary(i) && !supported(t))
            .map(|(_, &t)| t)
    }

    /// A RowDescription with each column's format code set as the client asked.
    pub fn describe(&self, f: &[u8]) -> Result<BytesMut, Malformed> {
        let mut out = BytesMut::from(f);
        let mut r = Reader::new(f.get(5..).unwrap_or_default(), "RowDescription");
        let n = r.i16()?;
        let mut at = 7;
        for i in 0..n.max(0) as usize {
            let name = r.cstr()?;
            r.take(16)?;
            at += name.len() + 1 + 16;
            let code: i16 = if self.binary(i) { 1 } else { 0 };
            if let Some(slot) = out.get_mut(at..at + 2) {
                slot.copy_from_slice(&code.to_be_bytes());
            }
            r.i16()?;
            at += 2;
        }
        Ok(out)
    }

    /// Appends each text-format DataRow of `rows` (whole messages) to `out`
    /// with the binary columns re-encoded; `Err` names a value that could
    /// not be encoded.
    pub fn encode_rows(
        &self,
        types: &[u32],
        rows: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), String> {
        let mut rest = rows;
        let mut value = Vec::new();
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let (msg, tail) = rest.split_at((len + 1).min(rest.len()));
            rest = tail;
            if msg[0] != b'D' {
                out.extend_from_slice(msg);
                continue;
            }
            let start = out.len();
            out.put_u8(b'D');
            out.put_u32(0);
            let mut r = Reader::new(&msg[5..], "DataRow");
            let n = r.i16().map_err(|e| e.to_string())?;
            out.put_i16(n);
            for i in 0..n.max(0) as usize {
                let len = r.i32().map_err(|e| e.to_string())?;
                if len < 0 {
                    out.put_i32(-1);
                    continue;
                }
                let text = r.take(len as usize).map_err(|e| e.to_string())?;
                if !self.binary(i) {
                    out.put_i32(len);
                    out.put_slice(text);
                    continue;
                }
                let oid = types.get(i).copied().unwrap_or(0);
                value.clear();
                encode(oid, text, &mut value).ok_or_else(|| {
                    format!(
                        "cannot send the merged value {:?} of type {oid} in binary",
                        String::from_utf8_lossy(text)
                    )
                })?;
                out.put_i32(value.len() as i32);
                out.put_slice(&value);
            }
            let len = (out.len() - start - 1) as u32;
            out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }
}
