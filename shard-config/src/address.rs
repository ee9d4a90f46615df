//! Network addresses written as `host:port` or `[ipv6]:port`.

use std::fmt;
use std::str::FromStr;

/// A host and TCP port, e.g. `127.0.0.1:5432`, `db.internal:5432` or `[::1]:5432`.
///
/// `host` is stored without brackets; [`fmt::Display`] adds them back for IPv6 literals,
/// so an address always displays in a form [`FromStr`] accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Why a string is not a valid [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// There is no `:port` part.
    #[error("expected host:port")]
    MissingPort,
    /// The host part is empty.
    #[error("empty host: expected host:port")]
    EmptyHost,
    /// The port is not a number from 0 to 65535.
    #[error("invalid port {0:?}: expected a number from 0 to 65535")]
    InvalidPort(String),
    /// The host contains characters no host name or IP literal has.
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// An IPv6 literal without brackets, which is ambiguous with the port.
    #[error("an IPv6 address must be in brackets, e.g. [::1]:5432")]
    UnbracketedIpv6,
}

impl Address {
    /// An address from its parts (`host` without brackets).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Address {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| AddressError::InvalidHost(s.to_string()))?;
            if host.is_empty() {
                return Err(AddressError::EmptyHost);
            }
            if !host.contains(':') || !valid_host_chars(host) {
                return Err(AddressError::InvalidHost(host.to_string()));
            }
            let port = match after.strip_prefix(':') {
                Some(port) => port,
                None if after.is_empty() => return Err(AddressError::MissingPort),
                None => return Err(AddressError::InvalidHost(s.to_string())),
            };
            (host, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or(AddressError::MissingPort)?;
            if host.contains(':') {
                return Err(AddressError::UnbracketedIpv6);
            }
            if host.is_empty() {
                return Err(AddressError::EmptyHost);
            }
            if !valid_host_chars(host) {
                return Err(AddressError::InvalidHost(host.to_string()));
            }
            (host, port)
        };
        if port.is_empty() {
            return Err(AddressError::MissingPort);
        }
        // `u16::from_str` accepts a leading '+'; a port is digits only.
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::InvalidPort(port.to_string()));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| AddressError::InvalidPort(port.to_string()))?;
        Ok(Address::new(host, port))
    }
}

/// No whitespace, control characters, brackets or slashes.
fn valid_host_chars(host: &str) -> bool {
    !host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']' | '/' | '\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Address {
        match s.parse() {
            Ok(a) => a,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> AddressError {
        match s.parse::<Address>() {
            Ok(a) => panic!("{s:?} should not parse, got {a:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_ipv4_and_names() {
        assert_eq!(ok("127.0.0.1:5432"), Address::new("127.0.0.1", 5432));
        assert_eq!(
            ok("db-1.internal:6432"),
            Address::new("db-1.internal", 6432)
        );
        assert_eq!(ok("localhost:0"), Address::new("localhost", 0));
        assert_eq!(ok("h:65535").port, 65535);
        assert_eq!(ok("h:05432").port, 5432);
    }

    #[test]
    fn parses_bracketed_ipv6() {
        assert_eq!(ok("[::1]:5432"), Address::new("::1", 5432));
        assert_eq!(ok("[fe80::1%eth0]:5432").host, "fe80::1%eth0");
        assert_eq!(ok("[2001:db8::2]:1").host, "2001:db8::2");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "127.0.0.1:5432",
            "[::1]:5432",
            "db:1",
            "[2001:db8::2]:65535",
        ] {
            let a = ok(s);
            assert_eq!(a.to_string(), s);
            assert_eq!(ok(&a.to_string()), a);
        }
    }

    #[test]
    fn rejects_missing_port() {
        assert_eq!(err("127.0.0.1"), AddressError::MissingPort);
        assert_eq!(err("localhost:"), AddressError::MissingPort);
        assert_eq!(err("[::1]"), AddressError::MissingPort);
        assert_eq!(err("[::1]:"), AddressError::MissingPort);
        assert_eq!(err(""), AddressError::MissingPort);
    }

    #[test]
    fn rejects_invalid_ports() {
        assert_eq!(err("h:65536"), AddressError::InvalidPort("65536".into()));
        assert_eq!(err("h:-1"), AddressError::InvalidPort("-1".into()));
        assert_eq!(err("h:+5432"), AddressError::InvalidPort("+5432".into()));
        assert_eq!(err("h:54x"), AddressError::InvalidPort("54x".into()));
        assert_eq!(err("h: 5432"), AddressError::InvalidPort(" 5432".into()));
        assert_eq!(
            err("h:99999999999999999999"),
            AddressError::InvalidPort("99999999999999999999".into())
        );
    }

    #[test]
    fn rejects_empty_or_invalid_hosts() {
        assert_eq!(err(":5432"), AddressError::EmptyHost);
        assert_eq!(err("[]:5432"), AddressError::EmptyHost);
        assert_eq!(
            err("my host:5432"),
            AddressError::InvalidHost("my host".into())
        );
        assert_eq!(err(" h:5432"), AddressError::InvalidHost(" h".into()));
        assert_eq!(err("/tmp:5432"), AddressError::InvalidHost("/tmp".into()));
        assert_eq!(
            err("[localhost]:5432"),
            AddressError::InvalidHost("localhost".into())
        );
        assert_eq!(
            err("[::1:5432"),
            AddressError::InvalidHost("[::1:5432".into())
        );
        assert_eq!(
            err("[::1]x5432"),
            AddressError::InvalidHost("[::1]x5432".into())
        );
    }

    #[test]
    fn rejects_unbracketed_ipv6() {
        assert_eq!(err("::1:5432"), AddressError::UnbracketedIpv6);
        assert_eq!(err("2001:db8::1:5432"), AddressError::UnbracketedIpv6);
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(AddressError::MissingPort.to_string(), "expected host:port");
        assert!(AddressError::InvalidPort("x".into())
            .to_string()
            .contains("invalid port \"x\""));
    }
}
