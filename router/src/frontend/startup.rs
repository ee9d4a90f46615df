//! The client's startup: SSL/GSSENC negotiation, the startup packet, cancel
//! requests, and SCRAM-SHA-256 login.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::scram::{Exchange, ScramError, Verifier};
use super::stream::Stream;
use crate::protocol::frame;
use crate::protocol::messages::{self, Reader, Severity};
use crate::protocol::SqlState;

/// Postgres's limit for a startup packet.
const MAX_STARTUP: usize = 10_000;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
const PROTOCOL_3: i32 = 3;

/// Why startup failed; the message goes to the client as a FATAL error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The client broke the protocol.
    #[error("{0}")]
    Protocol(String),
    /// A failed login.
    #[error("password authentication failed for user \"{0}\"")]
    Auth(String),
    /// Something the proxy does not offer.
    #[error("{0}")]
    Unsupported(String),
    /// The connection broke; nothing can be sent.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
}

impl StartupError {
    /// The SQLSTATE sent to the client.
    pub fn code(&self) -> SqlState {
        match self {
            StartupError::Protocol(_) => SqlState::PROTOCOL_VIOLATION,
            StartupError::Auth(_) => SqlState::INVALID_PASSWORD,
            StartupError::Unsupported(_) => SqlState::FEATURE_NOT_SUPPORTED,
            StartupError::Io(_) => SqlState::CONNECTION_FAILURE,
        }
    }
}

/// What a new connection asked for.
pub enum Hello {
    /// A login with these startup parameters.
    Login {
        /// The (possibly TLS) stream.
        stream: Stream,
        /// Startup parameters in order (user, database, options, …).
        params: Vec<(String, String)>,
    },
    /// A cancel request.
    Cancel {
        /// Proxy-issued pid.
        pid: i32,
        /// Proxy-issued secret.
        secret: i32,
    },
}

async fn read_packet(stream: &mut Stream) -> Result<Vec<u8>, StartupError> {
    let len = stream.read_i32().await?;
    if !(8..=MAX_STARTUP as i32).contains(&len) {
        return Err(StartupError::Protocol(format!(
            "invalid length of startup packet: {len}"
        )));
    }
    let mut body = vec![0u8; len as usize - 4];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads startup packets until a login or cancel request arrives.
pub async fn hello(
    tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
) -> Result<Hello, (Option<Stream>, StartupError)> {
    let mut stream = Stream::Plain(tcp);
    let mut negotiated = false;
    loop {
        let body = match read_packet(&mut stream).await {
            Ok(b) => b,
            Err(e) => return Err((Some(stream), e)),
        };
        let mut r = Reader::new(&body, "startup packet");
        let code = r.i32().unwrap_or(0);
        match code {
            SSL_REQUEST if negotiated => {
                return Err((
                    Some(stream),
                    StartupError::Protocol("SSL negotiation repeated".into()),
                ))
            }
            SSL_REQUEST => {
                negotiated = true;
                let tcp = match stream {
                    Stream::Plain(t) => t,
                    other => {
                        return Err((Some(other), StartupError::Protocol("SSL inside SSL".into())))
                    }
                };
                stream = match tls {
                    Some(acceptor) => {
                        let mut t = tcp;
                        if let Err(e) = t.write_all(b"S").await {
                            return Err((None, e.into()));
                        }
                        match acceptor.accept(t).await {
                            Ok(s) => Stream::Tls(Box::new(s)),
                            Err(e) => return Err((None, e.into())),
                        }
                    }
                    None => {
                        let mut t = tcp;
                        if let Err(e) = t.write_all(b"N").await {
                            return Err((None, e.into()));
                        }
                        Stream::Plain(t)
                    }
                };
            }
            GSSENC_REQUEST => {
                if let Err(e) = stream.write_all(b"N").await {
                    return Err((None, e.into()));
                }
            }
            CANCEL_REQUEST => {
                let (pid, secret) = (r.i32().unwrap_or(0), r.i32().unwrap_or(0));
                return Ok(Hello::Cancel { pid, secret });
            }
            c if c >> 16 == PROTOCOL_3 => {
                let mut params = Vec::new();
                let mut unknown_opts = Vec::new();
                loop {
                    let key = match r.str() {
                        Ok(k) => k,
                        Err(_) => {
                            return Err((
                                Some(stream),
                                StartupError::Protocol("invalid startup packet layout".into()),
                            ))
                        }
                    };
                    if key.is_empty() {
                        break;
                    }
                    let value = match r.str() {
                        Ok(v) => v,
                        Err(_) => {
                            return Err((
                                Some(stream),
                                StartupError::Protocol("invalid startup packet layout".into()),
                            ))
                        }
                    };
                    if key.starts_with("_pq_.") {
                        unknown_opts.push(key.to_string());
                    } else {
                        params.push((key.to_string(), value.to_string()));
                    }
                }
                if c & 0xffff > 0 || !unknown_opts.is_empty() {
                    let mut out = BytesMut::new();
                    messages::negotiate_protocol_version(&mut out, 0, &unknown_opts);
                    if let Err(e) = stream.write_all(&out).await {
                        return Err((None, e.into()));
                    }
                }
                return Ok(Hello::Login { stream, params });
            }
            c => {
                return Err((
                    Some(stream),
                    StartupError::Unsupported(format!(
                        "unsupported frontend protocol {}.{}: server supports 3.0",
                        c >> 16,
                        c & 0xffff
                    )),
                ))
            }
        }
    }
}

/// Reads one password-type ('p') message during login.
async fn read_password_msg(stream: &mut Stream) -> Result<Vec<u8>, StartupError> {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await?;
    match frame::check(&head, MAX_STARTUP) {
        Ok(_) if head[0] == b'p' => {}
        Ok(_) => {
            return Err(StartupError::Protocol(format!(
                "expected password response, got message type '{}'",
                head[0] as char
            )))
        }
        Err(e) => return Err(StartupError::Protocol(e.to_string())),
    }
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// Runs a SCRAM-SHA-256 login; `verifier` is `None` for unknown users, who
/// go through the same exchange and fail at the end.
pub async fn authenticate(
    stream: &mut Stream,
    user: &str,
    verifier: Option<Verifier>,
    dummy: &Verifier,
) -> Result<(), StartupError> {
    let mut out = BytesMut::new();
    messages::authentication(&mut out, 10, b"SCRAM-SHA-256\0\0");
    stream.write_all(&out).await?;

    let body = read_password_msg(stream).await?;
    let mut r = Reader::new(&body, "SASLInitialResponse");
    let bad = |_| StartupError::Protocol("malformed SASLInitialResponse".into());
    let mech = r.str().map_err(bad)?;
    if mech != "SCRAM-SHA-256" {
        return Err(StartupError::Protocol(format!(
            "SASL authentication mechanism {mech:?} not supported"
        )));
    }
    let len = r.i32().map_err(bad)?;
    let first = if len < 0 {
        &[][..]
    } else {
        r.take(len as usize).map_err(bad)?
    };
    let known = verifier.is_some();
    let scram_err = |e: ScramError| match e {
        ScramError::BadProof => StartupError::Auth(user.to_string()),
        ScramError::Malformed(m) => {
            StartupError::Protocol(format!("malformed SCRAM message ({m})"))
        }
    };
    let (ex, server_first) =
        Exchange::start(verifier.unwrap_or_else(|| dummy.clone()), first).map_err(scram_err)?;
    out.clear();
    messages::authentication(&mut out, 11, server_first.as_bytes());
    stream.write_all(&out).await?;

    let last = read_password_msg(stream).await?;
    let server_final = ex.finish(&last).map_err(scram_err)?;
    if !known {
        return Err(StartupError::Auth(user.to_string()));
    }
    out.clear();
    messages::authentication(&mut out, 12, server_final.as_bytes());
    messages::authentication(&mut out, 0, b"");
    stream.write_all(&out).await?;
    Ok(())
}

/// Sends a FATAL error and closes; used for every startup failure.
pub async fn refuse(stream: &mut Stream, code: SqlState, message: &str) {
    let mut out = BytesMut::new();
    messages::error_response(&mut out, Severity::Fatal, code, message);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}
