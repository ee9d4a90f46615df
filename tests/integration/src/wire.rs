//! A raw protocol client for tests that must choose the bytes themselves:
//! malformed messages, or extended-protocol batches with text or binary
//! result formats (drivers pick those for you).

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one backend message: (tag, body). `None` on EOF.
pub async fn read_msg(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
        .await
        .expect("the server answered in time")
        .ok()?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    s.read_exact(&mut body).await.ok()?;
    Some((head[0], body))
}

/// A field of an ErrorResponse body (`b'C'`: SQLSTATE, `b'M'`: message).
pub fn error_field(body: &[u8], field: u8) -> String {
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let f = body[i];
        let end = body[i + 1..]
            .iter()
            .position(|&b| b == 0)
            .map_or(body.len(), |p| p + i + 1);
        if f == field {
            return String::from_utf8_lossy(&body[i + 1..end]).into_owned();
        }
        i = end + 1;
    }
    String::new()
}

/// The SQLSTATE of an ErrorResponse body.
pub fn sqlstate(body: &[u8]) -> String {
    error_field(body, b'C')
}

/// One frontend message.
pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut b = vec![tag];
    b.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    b.extend_from_slice(body);
    b
}

/// A raw connection logged in as `shop`/`shop` to database `shop` (SCRAM
/// or trust, by hand).
pub async fn raw_login(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
    let mut p = BytesMut::new();
    p.put_i32(0);
    p.put_i32(196_608);
    for kv in ["user", "shop", "database", "shop"] {
        p.put_slice(kv.as_bytes());
        p.put_u8(0);
    }
    p.put_u8(0);
    let len = p.len() as i32;
    p[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&p).await.expect("startup");
    let mut scram = ScramSha256::new(b"shop", ChannelBinding::unsupported());
    loop {
        let (tag, body) = read_msg(&mut s).await.expect("login message");
        let code = if tag == b'R' {
            i32::from_be_bytes([body[0], body[1], body[2], body[3]])
        } else {
            -1
        };
        match (tag, code) {
            (b'R', 10) => {
                let mut b = b"SCRAM-SHA-256\0".to_vec();
                b.extend_from_slice(&(scram.message().len() as i32).to_be_bytes());
                b.extend_from_slice(scram.message());
                s.write_all(&msg(b'p', &b)).await.expect("scram");
            }
            (b'R', 11) => {
                scram.update(&body[4..]).expect("scram continue");
                s.write_all(&msg(b'p', scram.message()))
                    .await
                    .expect("scram");
            }
            (b'R', 12) => scram.finish(&body[4..]).expect("scram final"),
            (b'Z', _) => return s,
            (b'E', _) => panic!("login failed: {}", sqlstate(&body)),
            _ => {}
        }
    }
}

/// A Parse of `sql` on statement `name`, parameter types left to the server.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for s in [name, sql] {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }
    b.extend_from_slice(&0i16.to_be_bytes());
    msg(b'P', &b)
}

/// A Bind of statement `stmt` to the unnamed portal with text parameters
/// and one result format code for every column (0 text, 1 binary).
pub fn bind(stmt: &str, params: &[Option<&str>], result_format: i16) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(stmt.as_bytes());
    b.push(0);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        match p {
            Some(v) => {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v.as_bytes());
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&result_format.to_be_bytes());
    msg(b'B', &b)
}

/// A Describe of the unnamed portal.
pub fn describe_portal() -> Vec<u8> {
    msg(b'D', b"P\0")
}

/// An Execute of the unnamed portal for all rows.
pub fn execute() -> Vec<u8> {
    msg(b'E', b"\0\0\0\0\0")
}

/// A Sync.
pub fn sync() -> Vec<u8> {
    msg(b'S', b"")
}

/// Sends `messages` at once and reads every answer up to ReadyForQuery:
/// the message tags in order (DataRows collapsed into one `D`), the rows'
/// raw values, and the error's SQLSTATE if one came.
pub async fn round_trip(s: &mut TcpStream, messages: &[Vec<u8>]) -> Exchange {
    s.write_all(&messages.concat()).await.expect("send");
    let mut ex = Exchange::default();
    loop {
        let (tag, body) = read_msg(s).await.expect("answer");
        match tag {
            b'D' => {
                if ex.tags.last() != Some(&'D') {
                    ex.tags.push('D');
                }
                ex.rows.push(data_row(&body));
            }
            b'E' => {
                ex.tags.push('E');
                ex.error = Some((sqlstate(&body), error_field(&body, b'M')));
            }
            b'T' => {
                ex.tags.push('T');
                ex.columns = row_description(&body);
                ex.formats = ex.columns.iter().map(|c| c.2).collect();
            }
            b'C' => {
                ex.tags.push('C');
                ex.tag = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into();
            }
            b'Z' => {
                ex.tags.push('Z');
                return ex;
            }
            b'N' | b'S' => {}
            t => ex.tags.push(t as char),
        }
    }
}

/// What came back for one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Message tags in order, consecutive DataRows as one `D`.
    pub tags: Vec<char>,
    /// Every DataRow's values as sent.
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
    /// The RowDescription's format codes.
    pub formats: Vec<i16>,
    /// The RowDescription's columns: name, type oid, format code.
    pub columns: Vec<(String, u32, i16)>,
    /// The CommandComplete tag.
    pub tag: String,
    /// SQLSTATE and message of an error.
    pub error: Option<(String, String)>,
}

fn data_row(body: &[u8]) -> Vec<Option<Vec<u8>>> {
    let n = i16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let len = i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        at += 4;
        if len < 0 {
            values.push(None);
        } else {
            values.push(Some(body[at..at + len as usize].to_vec()));
            at += len as usize;
        }
    }
    values
}

fn row_description(body: &[u8]) -> Vec<(String, u32, i16)> {
    let n = i16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        let end = at + body[at..].iter().position(|&b| b == 0).unwrap_or(0);
        let name = String::from_utf8_lossy(&body[at..end]).into_owned();
        let field = |i: usize| &body[end + 1 + i..];
        let oid = u32::from_be_bytes(field(6)[..4].try_into().expect("type oid"));
        let format = i16::from_be_bytes(field(16)[..2].try_into().expect("format"));
        columns.push((name, oid, format));
        at = end + 1 + 18;
    }
    columns
}

/// A simple Query message.
pub fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', format!("{sql}\0").as_bytes())
}

/// A parameter sent in the text format, whatever its type (tokio-postgres
/// would otherwise pick the binary format of the type it was told).
#[derive(Debug)]
pub struct TextParam<S>(pub S);

impl<S: AsRef<str> + std::fmt::Debug + Sync> tokio_postgres::types::ToSql for TextParam<S> {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_ref().as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    fn encode_format(&self, _: &tokio_postgres::types::Type) -> tokio_postgres::types::Format {
        tokio_postgres::types::Format::Text
    }

    tokio_postgres::types::to_sql_checked!();
}
