//! Text-format values re-encoded in PostgreSQL's binary format, for merged
//! cross-shard results a client asked for in binary: the shards answer in
//! text (the merge compares and combines text), the proxy encodes on output.
//!
//! Every [`supported`] type's binary form is rebuilt from the text the
//! server writes under the settings the proxy assumes (`DateStyle=ISO`,
//! `IntervalStyle=postgres`, `extra_float_digits` ≥ 1, UTF-8): scalars
//! here and in [`scalar`], dates and times in [`time`], network addresses
//! in [`net`], geometric types in [`geo`], and one- or multi-dimensional
//! arrays of any of them (except `box[]`, whose delimiter is `;`) in
//! [`array`]. Text that does not parse is refused (`None`), never guessed.

mod array;
pub mod formats;
mod geo;
mod net;
mod scalar;
mod time;

use geo::Shape;

const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const CHAR: u32 = 18;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const OID: u32 = 26;
const XID: u32 = 28;
const CID: u32 = 29;
const JSON: u32 = 114;
const POINT: u32 = 600;
const LSEG: u32 = 601;
const PATH: u32 = 602;
const BOX: u32 = 603;
const POLYGON: u32 = 604;
const LINE: u32 = 628;
const CIDR: u32 = 650;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const UNKNOWN: u32 = 705;
const CIRCLE: u32 = 718;
const MACADDR8: u32 = 774;
const MONEY: u32 = 790;
const MACADDR: u32 = 829;
const INET: u32 = 869;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const TIMETZ: u32 = 1266;
const BIT: u32 = 1560;
const VARBIT: u32 = 1562;
const NUMERIC: u32 = 1700;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;
const XID8: u32 = 5069;

/// Each array type with its element type (`pg_type.typelem`).
const ARRAYS: &[(u32, u32)] = &[
    (1000, BOOL),
    (1001, BYTEA),
    (1002, CHAR),
    (1003, NAME),
    (1016, INT8),
    (1005, INT2),
    (1007, INT4),
    (1009, TEXT),
    (1028, OID),
    (1011, XID),
    (1012, CID),
    (199, JSON),
    (1017, POINT),
    (1018, LSEG),
    (1019, PATH),
    (1027, POLYGON),
    (629, LINE),
    (651, CIDR),
    (1021, FLOAT4),
    (1022, FLOAT8),
    (719, CIRCLE),
    (775, MACADDR8),
    (791, MONEY),
    (1040, MACADDR),
    (1041, INET),
    (1014, BPCHAR),
    (1015, VARCHAR),
    (1182, DATE),
    (1183, TIME),
    (1115, TIMESTAMP),
    (1185, TIMESTAMPTZ),
    (1187, INTERVAL),
    (1270, TIMETZ),
    (1561, BIT),
    (1563, VARBIT),
    (1231, NUMERIC),
    (2951, UUID),
    (3807, JSONB),
    (271, XID8),
];

/// The element type of array type `oid`, if it is one [`supported`] here.
fn element_of(oid: u32) -> Option<u32> {
    ARRAYS.iter().find(|&&(a, _)| a == oid).map(|&(_, e)| e)
}

/// Whether a non-array type is encoded here.
fn scalar_supported(oid: u32) -> bool {
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
            | XID
            | CID
            | JSON
            | POINT
            | LSEG
            | PATH
            | BOX
            | POLYGON
            | LINE
            | CIDR
            | FLOAT4
            | FLOAT8
            | UNKNOWN
            | CIRCLE
            | MACADDR8
            | MONEY
            | MACADDR
            | INET
            | BPCHAR
            | VARCHAR
            | DATE
            | TIME
            | TIMESTAMP
            | TIMESTAMPTZ
            | INTERVAL
            | TIMETZ
            | BIT
            | VARBIT
            | NUMERIC
            | UUID
            | JSONB
            | XID8
    )
}

/// Whether values of type `oid` can be re-encoded in binary here.
pub fn supported(oid: u32) -> bool {
    scalar_supported(oid) || element_of(oid).is_some()
}

/// A decimal number of type `T`.
fn number<T: std::str::FromStr>(text: &[u8]) -> Option<T> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// The binary form of one non-NULL text value of type `oid`; `None` when
/// the type is not [`supported`] or the text is not a value of it.
pub fn encode(oid: u32, text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    let done = encode_any(oid, text, out);
    if done.is_none() {
        // nothing half-written is left behind
        out.truncate(start);
    }
    done
}

/// [`encode`] without the clean-up on failure.
fn encode_any(oid: u32, text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if let Some(elem) = element_of(oid) {
        return array::array(text, elem, out, encode);
    }
    match oid {
        TEXT | VARCHAR | BPCHAR | NAME | JSON | UNKNOWN => out.extend_from_slice(text),
        JSONB => {
            out.push(1);
            out.extend_from_slice(text);
        }
        BOOL => out.push(match text {
            b"t" => 1,
            b"f" => 0,
            _ => return None,
        }),
        CHAR => scalar::char(text, out)?,
        INT2 => out.extend_from_slice(&number::<i16>(text)?.to_be_bytes()),
        INT4 => out.extend_from_slice(&number::<i32>(text)?.to_be_bytes()),
        INT8 => out.extend_from_slice(&number::<i64>(text)?.to_be_bytes()),
        OID | XID | CID => out.extend_from_slice(&number::<u32>(text)?.to_be_bytes()),
        XID8 => out.extend_from_slice(&number::<u64>(text)?.to_be_bytes()),
        FLOAT4 => out.extend_from_slice(&number::<f32>(text)?.to_bits().to_be_bytes()),
        FLOAT8 => out.extend_from_slice(&scalar::float8(text)?.to_bits().to_be_bytes()),
        BYTEA => scalar::bytea(text, out)?,
        UUID => scalar::uuid(text, out)?,
        NUMERIC => scalar::numeric(std::str::from_utf8(text).ok()?, out)?,
        MONEY => scalar::money(text, out)?,
        BIT | VARBIT => scalar::bits(text, out)?,
        DATE => time::date(text, out)?,
        TIMESTAMP => time::timestamp(text, false, out)?,
        TIMESTAMPTZ => time::timestamp(text, true, out)?,
        TIME => time::time(text, out)?,
        TIMETZ => time::timetz(text, out)?,
        INTERVAL => time::interval(text, out)?,
        INET => net::inet(text, false, out)?,
        CIDR => net::inet(text, true, out)?,
        MACADDR => net::macaddr(text, 6, out)?,
        MACADDR8 => net::macaddr(text, 8, out)?,
        POINT => geo::geometric(text, Shape::Point, out)?,
        LSEG => geo::geometric(text, Shape::Lseg, out)?,
        BOX => geo::geometric(text, Shape::Box, out)?,
        LINE => geo::geometric(text, Shape::Line, out)?,
        CIRCLE => geo::geometric(text, Shape::Circle, out)?,
        PATH => geo::geometric(text, Shape::Path, out)?,
        POLYGON => geo::geometric(text, Shape::Polygon, out)?,
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests;
