//! Bounds-checked readers for the few messages routing looks into, and
//! writers for the messages the proxy itself sends.
//!
//! Readers borrow from the frame; every field access is checked, so a length
//! that lies yields [`Malformed`], never a panic or an out-of-bounds read.

use super::{SqlState, TxStatus};
use bytes::{BufMut, Bytes, BytesMut};

use super::frame::Frame;

/// A message whose contents do not match its declared layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} message")]
pub struct Malformed {
    /// Which message or field was malformed.
    pub what: &'static str,
}

/// A cursor over a message body.
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, naming `what` in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    /// The error for a message that does not parse.
    pub fn err(&self) -> Malformed {
        Malformed { what: self.what }
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(self.err());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes one byte.
    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    /// Takes a big-endian `i16`.
    pub fn i16(&mut self) -> Result<i16, Malformed> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// Takes a big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, Malformed> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Takes a NUL-terminated string, without the NUL.
    pub fn cstr(&mut self) -> Result<&'a [u8], Malformed> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(Malformed { what: self.what })?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// Takes a NUL-terminated UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        let what = self.what;
        std::str::from_utf8(self.cstr()?).map_err(|_| Malformed { what })
    }

    /// What is left unread.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

/// The text of a simple `Query` message.
pub fn query_text(f: &Frame) -> Result<&str, Malformed> {
    Reader::new(f.body(), "Query").str()
}

/// A `Parse` message: statement name, query text, parameter type OIDs.
#[derive(Debug, Clone)]
pub struct Parse<'a> {
    /// The prepared statement's name ("" is the unnamed statement).
    pub name: &'a [u8],
    /// The SQL text.
    pub query: &'a str,
}

impl<'a> Parse<'a> {
    /// Reads a `Parse` frame.
    pub fn read(f: &'a Frame) -> Result<Self, Malformed> {
        let mut r = Reader::new(f.body(), "Parse");
        let name = r.cstr()?;
        let query = r.str()?;
        let n = r.i16()?;
        if n < 0 {
            return Err(r.err());
        }
        r.take(n as usize * 4)?;
        Ok(Self { name, query })
    }
}

/// The names in a `Bind` message (the parameters are passed on untouched).
#[derive(Debug, Clone)]
pub struct Bind<'a> {
    /// The portal to create.
    pub portal: &'a [u8],
    /// The prepared statement it binds.
    pub statement: &'a [u8],
}

impl<'a> Bind<'a> {
    /// Reads a `Bind` frame, checking the whole layout.
    pub fn read(f: &'a Frame) -> Result<Self, Malformed> {
        let mut r = Reader::new(f.body(), "Bind");
        let portal = r.cstr()?;
        let statement = r.cstr()?;
        let nfmt = r.i16()?;
        if nfmt < 0 {
            return Err(r.err());
        }
        r.take(nfmt as usize * 2)?;
        let nparams = r.i16()?;
        if nparams < 0 {
            return Err(r.err());
        }
        for _ in 0..nparams {
            let len = r.i32()?;
            if len > 0 {
                r.take(len as usize)?;
            } else if len < -1 {
                return Err(r.err());
            }
        }
        let nres = r.i16()?;
        if nres < 0 {
            return Err(r.err());
        }
        r.take(nres as usize * 2)?;
        Ok(Self { portal, statement })
    }
}

/// Every field of a `Bind` frame, for routing by parameter and rewriting.
struct BindParts<'a> {
    portal: &'a [u8],
    formats: Vec<i16>,
    values: Vec<Option<&'a [u8]>>,
    nres: i16,
    results: &'a [u8],
}

impl<'a> BindParts<'a> {
    fn read(f: &'a Frame) -> Result<Self, Malformed> {
        let mut r = Reader::new(f.body(), "Bind");
        let portal = r.cstr()?;
        r.cstr()?;
        let nfmt = r.i16()?;
        if nfmt < 0 {
            return Err(r.err());
        }
        let formats = (0..nfmt).map(|_| r.i16()).collect::<Result<_, _>>()?;
        let nparams = r.i16()?;
        if nparams < 0 {
            return Err(r.err());
        }
        let mut values = Vec::with_capacity(nparams as usize);
        for _ in 0..nparams {
            values.push(match r.i32()? {
                -1 => None,
                n if n >= 0 => Some(r.take(n as usize)?),
                _ => return Err(r.err()),
            });
        }
        let nres = r.i16()?;
        if nres < 0 {
            return Err(r.err());
        }
        let results = r.take(nres as usize * 2)?;
        Ok(Self {
            portal,
            formats,
            values,
            nres,
            results,
        })
    }

    /// The format of parameter `i`: one code for all, one each, or text.
    fn binary(&self, i: usize) -> bool {
        match self.formats.as_slice() {
            [] => false,
            [one] => *one == 1,
            all => all.get(i) == Some(&1),
        }
    }
}

/// The parameter values of a `Bind` frame with their formats (text unless
/// the format codes say binary), for routing by key.
pub fn bind_params(f: &Frame) -> Result<Vec<sql_rewrite::route::Param<'_>>, Malformed> {
    let b = BindParts::read(f)?;
    Ok(b.values
        .iter()
        .enumerate()
        .map(|(i, v)| sql_rewrite::route::Param {
            value: *v,
            binary: b.binary(i),
        })
        .collect())
}

/// The parameter type OIDs a `Parse` frame declares.
pub fn parse_param_types(f: &Frame) -> Result<Vec<u32>, Malformed> {
    let mut r = Reader::new(f.body(), "Parse");
    r.cstr()?;
    r.cstr()?;
    let n = r.i16()?;
    if n < 0 {
        return Err(r.err());
    }
    (0..n).map(|_| r.i32().map(|t| t as u32)).collect()
}

/// Replaces a client's `Bind` by a `Parse` of `sql` on the unnamed
/// statement and a `Bind` of the same portal to it, with the client's
/// parameters picked and ordered by `mapping` (0-based; `None`: all, as they
/// are) and their formats and declared types following them. With
/// `text_results` every result column comes back in text (for a merge).
pub fn rebind(
    bind: &Frame,
    sql: &str,
    types: &[u32],
    mapping: Option<&[usize]>,
    text_results: bool,
) -> Result<BytesMut, Malformed> {
    let BindParts {
        portal,
        formats,
        values,
        nres,
        results,
    } = BindParts::read(bind)?;
    let order: Vec<usize> = match mapping {
        Some(m) => m.to_vec(),
        None => (0..values.len()).collect(),
    };
    let mut out = BytesMut::with_capacity(bind.bytes.len() + sql.len() + 32);
    let at = begin(&mut out, b'P');
    put_cstr(&mut out, b"");
    put_cstr(&mut out, sql.as_bytes());
    let typed: Vec<u32> = if types.len() >= values.len() {
        order
            .iter()
            .map(|&i| types.get(i).copied().unwrap_or(0))
            .collect()
    } else {
        Vec::new()
    };
    out.put_i16(typed.len() as i16);
    for t in typed {
        out.put_u32(t);
    }
    finish(&mut out, at);
    let at = begin(&mut out, b'B');
    put_cstr(&mut out, portal);
    put_cstr(&mut out, b"");
    if formats.len() > 1 {
        out.put_i16(order.len() as i16);
        for &i in &order {
            out.put_i16(formats.get(i).copied().unwrap_or(0));
        }
    } else {
        out.put_i16(formats.len() as i16);
        for f in &formats {
            out.put_i16(*f);
        }
    }
    out.put_i16(order.len() as i16);
    for &i in &order {
        match values.get(i).copied().flatten() {
            Some(v) => {
                out.put_i32(v.len() as i32);
                out.put_slice(v);
            }
            None => out.put_i32(-1),
        }
    }
    if text_results {
        out.put_i16(0);
    } else {
        out.put_i16(nres);
        out.put_slice(results);
    }
    finish(&mut out, at);
    Ok(out)
}

/// The result format codes of a `Bind` frame.
pub fn result_formats(bind: &Frame) -> Result<Vec<i16>, Malformed> {
    let b = BindParts::read(bind)?;
    let mut r = Reader::new(b.results, "Bind");
    (0..b.nres).map(|_| r.i16()).collect()
}

/// The portal and row limit of an `Execute` frame.
pub fn execute_parts(f: &Frame) -> Result<(&[u8], i32), Malformed> {
    let mut r = Reader::new(f.body(), "Execute");
    Ok((r.cstr()?, r.i32()?))
}

/// Appends a `Describe` of a portal.
pub fn describe_portal(buf: &mut BytesMut, portal: &[u8]) {
    let at = begin(buf, b'D');
    buf.put_u8(b'P');
    put_cstr(buf, portal);
    finish(buf, at);
}

/// The target of a `Describe` or `Close`: a statement (`S`) or portal (`P`).
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// `b'S'` or `b'P'`.
    pub kind: u8,
    /// The statement or portal name.
    pub name: &'a [u8],
}

impl<'a> Target<'a> {
    /// Reads a `Describe` or `Close` frame.
    pub fn read(f: &'a Frame) -> Result<Self, Malformed> {
        let mut r = Reader::new(f.body(), "Describe/Close");
        let kind = r.u8()?;
        if kind != b'S' && kind != b'P' {
            return Err(r.err());
        }
        let name = r.cstr()?;
        Ok(Self { kind, name })
    }
}

/// Reads the transaction status byte of a `ReadyForQuery` frame.
pub fn ready_status(f: &Frame) -> Result<TxStatus, Malformed> {
    let mut r = Reader::new(f.body(), "ReadyForQuery");
    let b = r.u8()?;
    TxStatus::from_byte(b).ok_or_else(|| r.err())
}

/// Reads the tag of a `CommandComplete` frame.
pub fn command_tag(f: &Frame) -> Result<&[u8], Malformed> {
    Reader::new(f.body(), "CommandComplete").cstr()
}

/// Reads a `ParameterStatus` frame.
pub fn parameter_status(f: &Frame) -> Result<(&str, &str), Malformed> {
    let mut r = Reader::new(f.body(), "ParameterStatus");
    Ok((r.str()?, r.str()?))
}

/// Reads the SQLSTATE and message of an `ErrorResponse` or `NoticeResponse`.
pub fn error_fields(f: &Frame) -> Result<(String, String), Malformed> {
    let mut r = Reader::new(f.body(), "ErrorResponse");
    let (mut code, mut msg) = (String::new(), String::new());
    loop {
        let field = r.u8()?;
        if field == 0 {
            break;
        }
        let v = String::from_utf8_lossy(r.cstr()?).into_owned();
        match field {
            b'C' => code = v,
            b'M' => msg = v,
            _ => {}
        }
    }
    Ok((code, msg))
}

/// Starts a message: writes the tag and a length placeholder, returns the
/// offset to patch with [`finish`].
fn begin(buf: &mut BytesMut, tag: u8) -> usize {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_i32(0);
    at
}

/// Patches the length of a message begun at `at`.
fn finish(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(buf: &mut BytesMut, s: &[u8]) {
    buf.put_slice(s);
    buf.put_u8(0);
}

/// Severity of a proxy-made error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends.
    Fatal,
}

/// Appends an `ErrorResponse`.
pub fn error_response(buf: &mut BytesMut, severity: Severity, code: SqlState, message: &str) {
    error_response_detail(buf, severity, code, message, None);
}

/// Appends an `ErrorResponse` with a DETAIL field.
pub fn error_response_detail(
    buf: &mut BytesMut,
    severity: Severity,
    code: SqlState,
    message: &str,
    detail: Option<&str>,
) {
    let at = begin(buf, b'E');
    let sev: &[u8] = match severity {
        Severity::Error => b"ERROR",
        Severity::Fatal => b"FATAL",
    };
    buf.put_u8(b'S');
    put_cstr(buf, sev);
    buf.put_u8(b'V');
    put_cstr(buf, sev);
    buf.put_u8(b'C');
    put_cstr(buf, code.code().as_bytes());
    buf.put_u8(b'M');
    put_cstr(buf, message.as_bytes());
    if let Some(d) = detail {
        buf.put_u8(b'D');
        put_cstr(buf, d.as_bytes());
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// Appends a `ReadyForQuery` with transaction status `status`.
pub fn ready_for_query(buf: &mut BytesMut, status: TxStatus) {
    buf.put_slice(&[b'Z', 0, 0, 0, 5, status.byte()]);
}

/// Appends an `Authentication*` message with its code and payload.
pub fn authentication(buf: &mut BytesMut, code: i32, payload: &[u8]) {
    let at = begin(buf, b'R');
    buf.put_i32(code);
    buf.put_slice(payload);
    finish(buf, at);
}

/// Appends a `ParameterStatus`.
pub fn parameter_status_msg(buf: &mut BytesMut, name: &str, value: &str) {
    let at = begin(buf, b'S');
    put_cstr(buf, name.as_bytes());
    put_cstr(buf, value.as_bytes());
    finish(buf, at);
}

/// Appends a `BackendKeyData`.
pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    let at = begin(buf, b'K');
    buf.put_i32(pid);
    buf.put_i32(secret);
    finish(buf, at);
}

/// Appends a simple `Query`.
pub fn query(buf: &mut BytesMut, sql: &str) {
    let at = begin(buf, b'Q');
    put_cstr(buf, sql.as_bytes());
    finish(buf, at);
}

/// Appends a `RowDescription` of text columns named `names`.
pub fn row_description(buf: &mut BytesMut, names: &[&str]) {
    let at = begin(buf, b'T');
    buf.put_i16(i16::try_from(names.len()).unwrap_or(i16::MAX));
    for n in names {
        put_cstr(buf, n.as_bytes());
        buf.put_i32(0); // table oid
        buf.put_i16(0); // column number
        buf.put_i32(25); // text
        buf.put_i16(-1);
        buf.put_i32(-1);
        buf.put_i16(0); // text format
    }
    finish(buf, at);
}

/// Appends a `DataRow` of text values.
pub fn data_row(buf: &mut BytesMut, values: &[Option<&str>]) {
    let bytes: Vec<Option<&[u8]>> = values.iter().map(|v| v.map(str::as_bytes)).collect();
    data_row_bytes(buf, &bytes);
}

/// Appends a `DataRow` of raw column values (`None`: NULL).
pub fn data_row_bytes(buf: &mut BytesMut, values: &[Option<&[u8]>]) {
    let at = begin(buf, b'D');
    buf.put_i16(i16::try_from(values.len()).unwrap_or(i16::MAX));
    for v in values {
        match v {
            Some(v) => {
                buf.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                buf.put_slice(v);
            }
            None => buf.put_i32(-1),
        }
    }
    finish(buf, at);
}

/// Appends a `CommandComplete` with `tag`.
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    let at = begin(buf, b'C');
    put_cstr(buf, tag.as_bytes());
    finish(buf, at);
}

/// Appends an extended-protocol `Parse` (no parameter types), `Bind` (no
/// parameters) and `Execute` of `sql` on the unnamed statement and portal.
pub fn parse_bind_execute(buf: &mut BytesMut, sql: &str) {
    let at = begin(buf, b'P');
    put_cstr(buf, b"");
    put_cstr(buf, sql.as_bytes());
    buf.put_i16(0);
    finish(buf, at);
    let at = begin(buf, b'B');
    put_cstr(buf, b"");
    put_cstr(buf, b"");
    buf.put_i16(0);
    buf.put_i16(0);
    buf.put_i16(0);
    finish(buf, at);
    let at = begin(buf, b'E');
    put_cstr(buf, b"");
    buf.put_i32(0);
    finish(buf, at);
}

/// Appends a `Close` of a prepared statement.
pub fn close_statement(buf: &mut BytesMut, name: &[u8]) {
    let at = begin(buf, b'C');
    buf.put_u8(b'S');
    put_cstr(buf, name);
    finish(buf, at);
}

/// Appends a `NegotiateProtocolVersion` naming the newest minor version we
/// speak and the protocol options we do not know.
pub fn negotiate_protocol_version(buf: &mut BytesMut, minor: i32, unknown: &[String]) {
    let at = begin(buf, b'v');
    buf.put_i32(minor);
    buf.put_i32(unknown.len() as i32);
    for o in unknown {
        put_cstr(buf, o.as_bytes());
    }
    finish(buf, at);
}

/// Builds a startup message with protocol 3.0 and the given parameters.
pub fn startup_message(params: &[(&str, &str)]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    buf.put_i32(196_608);
    for (k, v) in params {
        put_cstr(&mut buf, k.as_bytes());
        put_cstr(&mut buf, v.as_bytes());
    }
    buf.put_u8(0);
    let len = buf.len() as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// Builds a `CancelRequest` packet.
pub fn cancel_request(pid: i32, secret: i32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&16i32.to_be_bytes());
    b[4..8].copy_from_slice(&80_877_102i32.to_be_bytes());
    b[8..12].copy_from_slice(&pid.to_be_bytes());
    b[12..].copy_from_slice(&secret.to_be_bytes());
    b
}

/// Appends a message with tag `tag` and body `body` (password and SASL
/// responses sent to backends).
pub fn raw(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    let at = begin(buf, tag);
    buf.put_slice(body);
    finish(buf, at);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::split;

    fn frame(bytes: &[u8]) -> Frame {
        split(&mut BytesMut::from(bytes), 1 << 20).unwrap().unwrap()
    }

    #[test]
    fn reads_parse_and_bind() {
        let mut b = BytesMut::new();
        let at = begin(&mut b, b'P');
        put_cstr(&mut b, b"s1");
        put_cstr(&mut b, b"SELECT $1");
        b.put_i16(1);
        b.put_i32(23);
        finish(&mut b, at);
        let f = frame(&b);
        let p = Parse::read(&f).unwrap();
        assert_eq!(p.name, b"s1");
        assert_eq!(p.query, "SELECT $1");

        let mut b = BytesMut::new();
        let at = begin(&mut b, b'B');
        put_cstr(&mut b, b"");
        put_cstr(&mut b, b"s1");
        b.put_i16(0);
        b.put_i16(1);
        b.put_i32(2);
        b.put_slice(b"42");
        b.put_i16(0);
        finish(&mut b, at);
        let f = frame(&b);
        let bind = Bind::read(&f).unwrap();
        assert_eq!(bind.statement, b"s1");
    }

    #[test]
    fn bind_params_and_rebind() {
        // Bind "p" to "s1": formats text, binary, text; values "a", 0x0102, NULL; results binary
        let mut b = BytesMut::new();
        let at = begin(&mut b, b'B');
        put_cstr(&mut b, b"p");
        put_cstr(&mut b, b"s1");
        b.put_i16(3);
        for f in [0, 1, 0] {
            b.put_i16(f);
        }
        b.put_i16(3);
        b.put_i32(1);
        b.put_slice(b"a");
        b.put_i32(2);
        b.put_slice(&[1, 2]);
        b.put_i32(-1);
        b.put_i16(1);
        b.put_i16(1);
        finish(&mut b, at);
        let f = frame(&b);
        let params = bind_params(&f).unwrap();
        assert_eq!(params.len(), 3);
        assert_eq!(
            (params[0].value, params[0].binary),
            (Some(&b"a"[..]), false)
        );
        assert_eq!(
            (params[1].value, params[1].binary),
            (Some(&[1u8, 2][..]), true)
        );
        assert_eq!(params[2].value, None);

        let out = rebind(&f, "SELECT $1, $2", &[25, 21, 25], Some(&[1, 0]), false).unwrap();
        let mut buf = out.clone();
        let p = split(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(Parse::read(&p).unwrap().query, "SELECT $1, $2");
        assert_eq!(Parse::read(&p).unwrap().name, b"");
        assert_eq!(parse_param_types(&p).unwrap(), [21, 25]);
        let bf = split(&mut buf, 1 << 20).unwrap().unwrap();
        let bind = Bind::read(&bf).unwrap();
        assert_eq!((bind.portal, bind.statement), (&b"p"[..], &b""[..]));
        let params = bind_params(&bf).unwrap();
        assert_eq!(
            (params[0].value, params[0].binary),
            (Some(&[1u8, 2][..]), true)
        );
        assert_eq!(
            (params[1].value, params[1].binary),
            (Some(&b"a"[..]), false)
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn lying_bind_is_malformed_not_a_panic() {
        // claims one parameter of 1000 bytes, has 2
        let f = frame(b"B\0\0\0\x12\0s1\0\0\0\0\x01\0\0\x03\xe842");
        assert!(Bind::read(&f).is_err());
        let f = frame(b"P\0\0\0\x08ab\0x");
        assert!(Parse::read(&f).is_err());
    }

    #[test]
    fn writes_error_response() {
        let mut b = BytesMut::new();
        error_response(
            &mut b,
            Severity::Error,
            SqlState::FEATURE_NOT_SUPPORTED,
            "no",
        );
        let f = frame(&b);
        assert_eq!(
            error_fields(&f).unwrap(),
            ("0A000".to_string(), "no".to_string())
        );
    }
}
