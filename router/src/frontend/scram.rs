//! The server side of SCRAM-SHA-256 (RFC 5802/7677) as Postgres speaks it,
//! for logging clients in to the proxy.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The client's message does not follow the SCRAM grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The proof does not match the stored key: wrong password.
    #[error("password authentication failed")]
    BadProof,
}

/// A stored SCRAM-SHA-256 verifier: what a server keeps instead of a password.
#[derive(Debug, Clone)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().into()
}

impl Verifier {
    /// Derives a verifier from a plain password (4096 iterations, random salt).
    pub fn from_password(password: &str) -> Self {
        let mut salt = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::derive(password.as_bytes(), salt, 4096)
    }

    fn derive(password: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        // PBKDF2-HMAC-SHA256 with one output block (Hi() of RFC 5802).
        let mut block = salt.clone();
        block.extend_from_slice(&1u32.to_be_bytes());
        let mut u = hmac(password, &block);
        let mut salted = u;
        for _ in 1..iterations {
            u = hmac(password, &u);
            for (s, x) in salted.iter_mut().zip(u.iter()) {
                *s ^= x;
            }
        }
        let client_key = hmac(&salted, b"Client Key");
        Self {
            iterations,
            salt,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Parses `SCRAM-SHA-256$<iter>:<salt>$<storedkey>:<serverkey>`.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iter, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(Self {
            iterations: iter.parse().ok()?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?.try_into().ok()?,
            server_key: B64.decode(server).ok()?.try_into().ok()?,
        })
    }
}

/// One SCRAM exchange, from the client-first message to the server-final one.
pub struct Exchange {
    verifier: Verifier,
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

fn attr<'a>(part: Option<&'a str>, key: char, what: &'static str) -> Result<&'a str, ScramError> {
    let p = part.ok_or(ScramError::Malformed(what))?;
    let mut chars = p.chars();
    if chars.next() != Some(key) || chars.next() != Some('=') {
        return Err(ScramError::Malformed(what));
    }
    Ok(&p[2..])
}

impl Exchange {
    /// Reads the client-first message and returns the exchange and the
    /// server-first message to send.
    pub fn start(verifier: Verifier, client_first: &[u8]) -> Result<(Self, String), ScramError> {
        let msg = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("utf8"))?;
        // gs2 header: "n,," or "y,," (we offer no channel binding)
        let bare = if let Some(b) = msg.strip_prefix("n,,") {
            b
        } else if let Some(b) = msg.strip_prefix("y,,") {
            b
        } else {
            return Err(ScramError::Malformed("gs2 header"));
        };
        let mut parts = bare.split(',');
        attr(parts.next(), 'n', "user name")?;
        let client_nonce = attr(parts.next(), 'r', "nonce")?;
        if client_nonce.is_empty() {
            return Err(ScramError::Malformed("nonce"));
        }
        let mut raw = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut raw);
        let nonce = format!("{client_nonce}{}", B64.encode(raw));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        Ok((
            Self {
                verifier,
                nonce,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
            },
            server_first,
        ))
    }

    /// Checks the client-final message; returns the server-final message.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let msg = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("utf8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("proof"))?;
        let mut parts = without_proof.split(',');
        let binding = attr(parts.next(), 'c', "channel binding")?;
        if binding != "biws" && binding != "eSws" {
            return Err(ScramError::Malformed("channel binding"));
        }
        if attr(parts.next(), 'r', "nonce")? != self.nonce {
            return Err(ScramError::Malformed("nonce mismatch"));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("proof"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ client_signature[i];
        }
        let computed: [u8; 32] = Sha256::digest(client_key).into();
        // constant-time comparison
        let diff = computed
            .iter()
            .zip(self.verifier.stored_key.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(ScramError::BadProof);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    fn run(verifier: Verifier, password: &str) -> Result<(), ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let (ex, server_first) = Exchange::start(verifier, client.message())?;
        client
            .update(server_first.as_bytes())
            .map_err(|_| ScramError::Malformed("client"))?;
        let server_final = ex.finish(client.message())?;
        client
            .finish(server_final.as_bytes())
            .map_err(|_| ScramError::Malformed("server signature"))
    }

    #[test]
    fn right_password_logs_in_and_server_proves_itself() {
        run(Verifier::from_password("shop"), "shop").unwrap();
    }

    #[test]
    fn wrong_password_is_rejected() {
        assert_eq!(
            run(Verifier::from_password("shop"), "nope"),
            Err(ScramError::BadProof)
        );
    }

    #[test]
    fn stored_verifier_from_postgres_protocol_works() {
        let v = postgres_protocol::password::scram_sha_256(b"secret");
        run(Verifier::parse(&v).unwrap(), "secret").unwrap();
        assert!(run(Verifier::parse(&v).unwrap(), "Secret").is_err());
    }

    #[test]
    fn garbage_is_malformed() {
        let v = Verifier::from_password("x");
        assert!(Exchange::start(v.clone(), b"\xff\xfe").is_err());
        assert!(Exchange::start(v.clone(), b"p=tls,,n=,r=abc").is_err());
        let (ex, _) = Exchange::start(v, b"n,,n=,r=abc").unwrap();
        assert!(ex.finish(b"c=biws,r=wrong,p=AAAA").is_err());
    }
}
