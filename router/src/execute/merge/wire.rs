//! Reading the shards' row frames, a leaf of the merge: a RowDescription's
//! fields (name, type oid, raw bytes) and a DataRow's text-format columns.

use crate::protocol::frame::Frame;
use crate::protocol::messages::{Malformed, Reader};

/// One RowDescription field: name, type oid, and its raw bytes.
pub type Field = (Vec<u8>, u32, Vec<u8>);

/// A row's columns held by the merge (`None`: NULL): a group being
/// combined or waiting for its sort.
pub type Values = Vec<Option<Vec<u8>>>;

/// The fields of a RowDescription.
pub fn row_description(f: &Frame) -> Result<Vec<Field>, Malformed> {
    let body = f.body();
    let mut r = Reader::new(body, "RowDescription");
    let n = r.i16()?;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for _ in 0..n {
        let start = body.len() - r.rest().len();
        let name = r.cstr()?.to_vec();
        r.i32()?; // table oid
        r.i16()?; // column number
        let oid = r.i32()? as u32;
        r.i16()?; // size
        r.i32()?; // modifier
        r.i16()?; // format
        let end = body.len() - r.rest().len();
        out.push((name, oid, body[start..end].to_vec()));
    }
    Ok(out)
}

/// The type oids of a RowDescription's columns.
pub fn row_description_types(f: &Frame) -> Result<Vec<u32>, Malformed> {
    Ok(row_description(f)?
        .into_iter()
        .map(|(_, oid, _)| oid)
        .collect())
}

/// The columns of a DataRow frame (whole frame bytes).
pub fn data_row(frame: &[u8]) -> Result<Vec<Option<&[u8]>>, Malformed> {
    let body = frame
        .get(5..)
        .ok_or_else(|| Reader::new(frame, "DataRow").err())?;
    let mut r = Reader::new(body, "DataRow");
    let n = r.i16()?;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for _ in 0..n {
        let len = r.i32()?;
        out.push(if len < 0 {
            None
        } else {
            Some(r.take(len as usize)?)
        });
    }
    Ok(out)
}
