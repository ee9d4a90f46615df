//! One raw protocol connection to a Postgres server: connect, log in
//! (SCRAM-SHA-256, MD5, cleartext or trust), then bytes in and out.

use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::authentication::{md5_hash, sasl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::protocol::frame::{self, Frame};
use crate::protocol::messages::{self, Reader};
use shard_config::Address;

/// Largest message accepted from a server (Postgres's own limit is 1 GiB).
pub const SERVER_MAX_MESSAGE: usize = 1 << 30;

/// Why talking to a server failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// TCP or I/O failure.
    #[error("server {addr}: {source}")]
    Io {
        /// The server.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The connection attempt did not finish in time.
    #[error("server {0}: connection timed out")]
    Timeout(String),
    /// The server refused the login or sent an error at startup.
    #[error("server {addr}: {code} {message}")]
    Refused {
        /// The server.
        addr: String,
        /// SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server broke the protocol or asked for unsupported auth.
    #[error("server {addr}: {what}")]
    Protocol {
        /// The server.
        addr: String,
        /// What went wrong.
        what: String,
    },
}

/// Login details for servers.
#[derive(Debug, Clone)]
pub struct Login {
    /// Role name.
    pub user: String,
    /// Password, if the server asks for one.
    pub password: Option<String>,
    /// Database name.
    pub database: String,
}

/// A logged-in server connection, split for concurrent reads and writes.
pub struct ServerConn {
    /// Read half.
    pub rd: OwnedReadHalf,
    /// Write half.
    pub wr: OwnedWriteHalf,
    /// Bytes read and not yet framed.
    pub rbuf: BytesMut,
    /// The server's process id (for cancelling).
    pub pid: i32,
    /// The server's cancel secret.
    pub secret: i32,
    /// ParameterStatus values as the server sent them at startup.
    pub params: Vec<(String, String)>,
    /// Set when the connection must not go back to the pool.
    pub broken: bool,
}

impl ServerConn {
    /// Connects and logs in within `timeout`.
    pub async fn connect(
        addr: &Address,
        login: &Login,
        timeout: Duration,
    ) -> Result<Self, BackendError> {
        let name = addr.to_string();
        tokio::time::timeout(timeout, Self::connect_inner(addr, login))
            .await
            .map_err(|_| BackendError::Timeout(name))?
    }

    async fn connect_inner(addr: &Address, login: &Login) -> Result<Self, BackendError> {
        let name = addr.to_string();
        let io = |source| BackendError::Io {
            addr: name.clone(),
            source,
        };
        let stream = TcpStream::connect((addr.host.as_str(), addr.port))
            .await
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let (rd, wr) = stream.into_split();
        let mut conn = ServerConn {
            rd,
            wr,
            rbuf: BytesMut::with_capacity(16 * 1024),
            pid: 0,
            secret: 0,
            params: Vec::new(),
            broken: false,
        };
        let startup = messages::startup_message(&[
            ("user", &login.user),
            ("database", &login.database),
            ("application_name", "shardgate"),
        ]);
        conn.wr.write_all(&startup).await.map_err(io)?;
        conn.login(&name, login).await?;
        Ok(conn)
    }

    fn protocol(addr: &str, what: impl Into<String>) -> BackendError {
        BackendError::Protocol {
            addr: addr.to_string(),
            what: what.into(),
        }
    }

    async fn login(&mut self, addr: &str, login: &Login) -> Result<(), BackendError> {
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let f = self.read_frame(addr).await?;
            match f.tag {
                b'R' => {
                    let mut r = Reader::new(f.body(), "Authentication");
                    let code = r.i32().map_err(|e| Self::protocol(addr, e.to_string()))?;
                    let password = || {
                        login.password.as_deref().ok_or_else(|| {
                            Self::protocol(addr, "server asks for a password; set backend.password")
                        })
                    };
                    let mut out = BytesMut::new();
                    match code {
                        0 => continue,
                        3 => {
                            let mut body = password()?.as_bytes().to_vec();
                            body.push(0);
                            messages::raw(&mut out, b'p', &body);
                        }
                        5 => {
                            let salt: [u8; 4] = r
                                .take(4)
                                .ok()
                                .and_then(|s| s.try_into().ok())
                                .ok_or_else(|| Self::protocol(addr, "bad MD5 salt"))?;
                            let hash =
                                md5_hash(login.user.as_bytes(), password()?.as_bytes(), salt);
                            let mut body = hash.into_bytes();
                            body.push(0);
                            messages::raw(&mut out, b'p', &body);
                        }
                        10 => {
                            let mechs = r.rest();
                            if !mechs.windows(14).any(|w| w == b"SCRAM-SHA-256\0") {
                                return Err(Self::protocol(addr, "no supported SASL mechanism"));
                            }
                            let s = sasl::ScramSha256::new(
                                password()?.as_bytes(),
                                sasl::ChannelBinding::unsupported(),
                            );
                            let mut body = b"SCRAM-SHA-256\0".to_vec();
                            body.extend_from_slice(&(s.message().len() as i32).to_be_bytes());
                            body.extend_from_slice(s.message());
                            messages::raw(&mut out, b'p', &body);
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| Self::protocol(addr, "unexpected SASLContinue"))?;
                            s.update(r.rest())
                                .map_err(|e| Self::protocol(addr, e.to_string()))?;
                            messages::raw(&mut out, b'p', s.message());
                        }
                        12 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| Self::protocol(addr, "unexpected SASLFinal"))?;
                            s.finish(r.rest())
                                .map_err(|e| Self::protocol(addr, e.to_string()))?;
                            continue;
                        }
                        other => {
                            return Err(Self::protocol(
                                addr,
                                format!("unsupported authentication method {other}"),
                            ))
                        }
                    }
                    self.write(addr, &out).await?;
                }
                b'S' => {
                    let (k, v) = messages::parameter_status(&f)
                        .map_err(|e| Self::protocol(addr, e.to_string()))?;
                    self.params.push((k.to_string(), v.to_string()));
                }
                b'K' => {
                    let mut r = Reader::new(f.body(), "BackendKeyData");
                    self.pid = r.i32().map_err(|e| Self::protocol(addr, e.to_string()))?;
                    self.secret = r.i32().map_err(|e| Self::protocol(addr, e.to_string()))?;
                }
                b'Z' => return Ok(()),
                b'E' => {
                    let (code, message) = messages::error_fields(&f)
                        .map_err(|e| Self::protocol(addr, e.to_string()))?;
                    return Err(BackendError::Refused {
                        addr: addr.to_string(),
                        code,
                        message,
                    });
                }
                b'N' | b'v' => {}
                other => {
                    return Err(Self::protocol(
                        addr,
                        format!("unexpected message '{}' during startup", other as char),
                    ))
                }
            }
        }
    }

    /// Writes all of `bytes` (used outside the data path: login, reset).
    pub async fn write(&mut self, addr: &str, bytes: &[u8]) -> Result<(), BackendError> {
        self.wr
            .write_all(bytes)
            .await
            .map_err(|source| BackendError::Io {
                addr: addr.to_string(),
                source,
            })
    }

    /// Reads one whole frame (used outside the data path: login, reset).
    pub async fn read_frame(&mut self, addr: &str) -> Result<Frame, BackendError> {
        loop {
            match frame::split(&mut self.rbuf, SERVER_MAX_MESSAGE) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(Self::protocol(addr, e.to_string())),
            }
            let n = self
                .rd
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|source| BackendError::Io {
                    addr: addr.to_string(),
                    source,
                })?;
            if n == 0 {
                return Err(BackendError::Io {
                    addr: addr.to_string(),
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
        }
    }

    /// Runs simple queries and waits for their ReadyForQuery, ignoring
    /// results; fails on any ErrorResponse. Used to reset a connection.
    pub async fn run_simple(
        &mut self,
        addr: &str,
        sql: &str,
    ) -> Result<crate::protocol::TxStatus, BackendError> {
        let mut out = BytesMut::new();
        messages::query(&mut out, sql);
        self.write(addr, &out).await?;
        let mut failed = None;
        loop {
            let f = self.read_frame(addr).await?;
            match f.tag {
                b'E' => {
                    failed = Some(
                        messages::error_fields(&f)
                            .unwrap_or_else(|_| (String::new(), String::new())),
                    )
                }
                b'Z' => {
                    let status = messages::ready_status(&f)
                        .map_err(|e| Self::protocol(addr, e.to_string()))?;
                    return match failed {
                        Some((code, message)) => Err(BackendError::Refused {
                            addr: addr.to_string(),
                            code,
                            message,
                        }),
                        None => Ok(status),
                    };
                }
                _ => {}
            }
        }
    }
}
