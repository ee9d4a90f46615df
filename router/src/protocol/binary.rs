//! Text-format values re-encoded in PostgreSQL's binary format, for merged
//! cross-shard results a client asked for in binary: the shards answer in
//! text (the merge compares and combines text), the proxy encodes on output.

use bytes::{BufMut, BytesMut};
use shard_config::time::{parse_time_text, PG_EPOCH_MICROS};
use shard_config::KeyType;

use super::messages::{Malformed, Reader};

const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const CHAR: u32 = 18;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const OID: u32 = 26;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const UNKNOWN: u32 = 705;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const NUMERIC: u32 = 1700;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Whether values of type `oid` can be re-encoded in binary here.
pub fn supported(oid: u32) -> bool {
    matches!(
        oid,
        BOOL | BYTEA
            | CHAR
            | NAME
            | INT8
            | INT2
            | INT4
            | TEXT
            | OID
            | JSON
            | FLOAT4
            | FLOAT8
            | UNKNOWN
            | BPCHAR
            | VARCHAR
            | DATE
            | TIMESTAMP
            | TIMESTAMPTZ
            | NUMERIC
            | UUID
            | JSONB
    )
}

/// The binary form of one non-NULL text value of type `oid`; `None` when
/// the type is not [`supported`] or the text is not a value of it.
pub fn encode(oid: u32, text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let s = || std::str::from_utf8(text).ok();
    match oid {
        TEXT | VARCHAR | BPCHAR | NAME | CHAR | JSON | UNKNOWN => out.extend_from_slice(text),
        JSONB => {
            out.push(1);
            out.extend_from_slice(text);
        }
        BOOL => out.push(match text {
            b"t" => 1,
            b"f" => 0,
            _ => return None,
        }),
        INT2 => out.extend_from_slice(&s()?.parse::<i16>().ok()?.to_be_bytes()),
        INT4 => out.extend_from_slice(&s()?.parse::<i32>().ok()?.to_be_bytes()),
        INT8 => out.extend_from_slice(&s()?.parse::<i64>().ok()?.to_be_bytes()),
        OID => out.extend_from_slice(&s()?.parse::<u32>().ok()?.to_be_bytes()),
        FLOAT4 => out.extend_from_slice(&s()?.parse::<f32>().ok()?.to_bits().to_be_bytes()),
        FLOAT8 => out.extend_from_slice(&s()?.parse::<f64>().ok()?.to_bits().to_be_bytes()),
        BYTEA => bytea(text, out)?,
        UUID => uuid(text, out)?,
        NUMERIC => numeric(s()?, out)?,
        DATE => {
            let days = match s()? {
                "infinity" => i32::MAX,
                "-infinity" => i32::MIN,
                v => {
                    let micros = parse_time_text(v, KeyType::Date)? - PG_EPOCH_MICROS;
                    i32::try_from(micros.div_euclid(MICROS_PER_DAY)).ok()?
                }
            };
            out.extend_from_slice(&days.to_be_bytes());
        }
        TIMESTAMP | TIMESTAMPTZ => {
            let ty = if oid == TIMESTAMP {
                KeyType::Timestamp
            } else {
                KeyType::Timestamptz
            };
            let micros = match s()? {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                v => parse_time_text(v, ty)?.checked_sub(PG_EPOCH_MICROS)?,
            };
            out.extend_from_slice(&micros.to_be_bytes());
        }
        _ => return None,
    }
    Some(())
}

/// `\x` hex text to bytes (the default `bytea_output`).
fn bytea(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let hex = text.strip_prefix(b"\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    for pair in hex.chunks(2) {
        out.push(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?);
    }
    Some(())
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `xxxxxxxx-xxxx-…` to its 16 bytes.
fn uuid(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let digits: Vec<u8> = text.iter().copied().filter(|&b| b != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    bytea(&[b"\\x".as_slice(), &digits].concat(), out)
}

/// A numeric's text in PostgreSQL's binary layout: digit count, weight,
/// sign, display scale, then base-10000 digits without leading or trailing
/// zero groups.
fn numeric(s: &str, out: &mut Vec<u8>) -> Option<()> {
    let special = match s {
        "NaN" => Some(0xC000u16),
        "Infinity" => Some(0xD000),
        "-Infinity" => Some(0xF000),
        _ => None,
    };
    if let Some(sign) = special {
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        return Some(());
    }
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let dscale = u16::try_from(frac.len()).ok()?;
    // digits padded to whole groups of four on both sides of the point
    let lead = (4 - int.len() % 4) % 4;
    let trail = (4 - frac.len() % 4) % 4;
    let padded: Vec<u8> = std::iter::repeat_n(b'0', lead)
        .chain(int.bytes())
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', trail))
        .collect();
    let mut groups: Vec<i16> = padded
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = i16::try_from((lead + int.len()) / 4).ok()? - 1;
    let first = groups.iter().position(|&g| g != 0);
    let Some(first) = first else {
        // zero: no digits, weight 0, positive
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&dscale.to_be_bytes());
        return Some(());
    };
    groups.drain(..first);
    weight -= i16::try_from(first).ok()?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    out.extend_from_slice(&i16::try_from(groups.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(oid: u32, text: &str) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        encode(oid, text.as_bytes(), &mut v).map(|()| v)
    }

    #[test]
    fn numerics_match_postgres_numeric_send() {
        // as numeric_send gives them on PostgreSQL 15
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(enc(NUMERIC, "0").unwrap()), "0000000000000000");
        assert_eq!(hex(enc(NUMERIC, "0.00").unwrap()), "0000000000000002");
        assert_eq!(hex(enc(NUMERIC, "1").unwrap()), "00010000000000000001");
        assert_eq!(
            hex(enc(NUMERIC, "-12345.678").unwrap()),
            "0003000140000003000109291a7c"
        );
        assert_eq!(hex(enc(NUMERIC, "10000").unwrap()), "00010001000000000001");
        assert_eq!(hex(enc(NUMERIC, "0.0001").unwrap()), "0001ffff000000040001");
        assert_eq!(hex(enc(NUMERIC, "NaN").unwrap()), "00000000c0000000");
        assert_eq!(hex(enc(NUMERIC, "Infinity").unwrap()), "00000000d0000000");
        assert_eq!(hex(enc(NUMERIC, "-Infinity").unwrap()), "00000000f0000000");
        assert!(enc(NUMERIC, "1e5").is_none());
        assert!(enc(NUMERIC, "").is_none());
    }

    #[test]
    fn scalars() {
        assert_eq!(enc(INT4, "-2").unwrap(), (-2i32).to_be_bytes());
        assert_eq!(
            enc(INT8, "9007199254740993").unwrap(),
            9007199254740993i64.to_be_bytes()
        );
        assert_eq!(enc(BOOL, "t").unwrap(), [1]);
        assert_eq!(
            enc(FLOAT8, "-Infinity").unwrap(),
            f64::NEG_INFINITY.to_bits().to_be_bytes()
        );
        assert_eq!(enc(FLOAT4, "0.1").unwrap(), 0.1f32.to_bits().to_be_bytes());
        assert_eq!(enc(BYTEA, "\\x00ff").unwrap(), [0, 255]);
        assert_eq!(enc(DATE, "2000-01-02").unwrap(), 1i32.to_be_bytes());
        assert_eq!(enc(DATE, "1999-12-31").unwrap(), (-1i32).to_be_bytes());
        assert_eq!(
            enc(TIMESTAMPTZ, "2000-01-01 01:00:00.5+01").unwrap(),
            500_000i64.to_be_bytes()
        );
        assert_eq!(enc(TIMESTAMP, "infinity").unwrap(), i64::MAX.to_be_bytes());
        assert_eq!(
            enc(UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap()[..2],
            [0xa0, 0xee]
        );
        assert!(enc(INT4, "x").is_none());
        assert!(enc(600, "(1,2)").is_none());
    }

    #[test]
    fn rows_reencode_only_binary_columns() {
        let mut text = BytesMut::new();
        super::super::messages::data_row(&mut text, &[Some("7"), None, Some("a")]);
        let mut out = BytesMut::new();
        ResultFormats::new(vec![1, 0, 0])
            .encode_rows(&[INT4, INT4, TEXT], &text, &mut out)
            .unwrap();
        let mut want = BytesMut::new();
        super::super::messages::data_row_bytes(
            &mut want,
            &[Some(&7i32.to_be_bytes()), None, Some(b"a")],
        );
        assert_eq!(out, want);
    }
}
