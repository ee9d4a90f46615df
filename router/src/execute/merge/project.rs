//! What the client sees of merged rows: the hidden columns the merge asked
//! the shards for (sort keys, avg counts) dropped from the RowDescription
//! and every DataRow, and an avg's column described as numeric, as one
//! server describes it.

use bytes::{BufMut, Bytes, BytesMut};
use sql_rewrite::merge::Combine;

use super::values::NUMERIC;
use super::wire::{data_row, Field};
use crate::protocol::messages::{self, Malformed};

/// The client's RowDescription: the first `visible` of the shards' `fields`,
/// the columns `combine` says are averages typed numeric.
pub fn row_description(
    fields: &[Field],
    visible: usize,
    combine: &[Option<(Combine, u32)>],
) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(b'T');
    let at = out.len();
    out.put_i32(0);
    out.put_i16(i16::try_from(visible).unwrap_or(i16::MAX));
    for (i, (_, _, raw)) in fields[..visible].iter().enumerate() {
        let at = out.len();
        out.put_slice(raw);
        // an avg: numeric, as one server describes it (the shards said sum's type)
        if let (Some(Some((Combine::Avg { .. }, _))), Some(end)) =
            (combine.get(i), out.len().checked_sub(2))
        {
            if end >= at + 10 {
                out[end - 10..end - 6].copy_from_slice(&NUMERIC.to_be_bytes());
                out[end - 6..end - 4].copy_from_slice(&(-1i16).to_be_bytes());
                out[end - 4..end].copy_from_slice(&(-1i32).to_be_bytes());
            }
        }
    }
    let len = i32::try_from(out.len() - at).unwrap_or(i32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    out.freeze()
}

/// Appends `row` (a DataRow frame) with only its first `visible` columns.
pub fn without_hidden(row: &[u8], visible: usize, out: &mut BytesMut) -> Result<(), Malformed> {
    let cols = data_row(row)?;
    out.put_u8(b'D');
    let at = out.len();
    out.put_i32(0);
    out.put_i16(i16::try_from(visible).unwrap_or(i16::MAX));
    for c in cols.iter().take(visible) {
        match c {
            Some(v) => {
                out.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                out.put_slice(v);
            }
            None => out.put_i32(-1),
        }
    }
    let len = i32::try_from(out.len() - at).unwrap_or(i32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends a combined group as a DataRow of its columns but the last
/// `hidden`.
pub fn group_row(group: &[Option<Vec<u8>>], hidden: usize, out: &mut BytesMut) {
    let visible = group.len().saturating_sub(hidden);
    let values: Vec<Option<&[u8]>> = group[..visible].iter().map(Option::as_deref).collect();
    messages::data_row_bytes(out, &values);
}
