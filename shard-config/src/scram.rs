//! Shape check of SCRAM-SHA-256 verifiers as PostgreSQL stores them in `pg_authid`.
//!
//! `SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>`

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Every verifier starts with this; a password starting with it is never plain text.
pub(crate) const PREFIX: &str = "SCRAM-SHA-256$";

/// Length of StoredKey and ServerKey: one SHA-256 output.
const KEY_LEN: usize = 32;

/// What is wrong with a string that should be a SCRAM-SHA-256 verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VerifierError {
    /// It does not start with `SCRAM-SHA-256$`.
    #[error("does not start with \"SCRAM-SHA-256$\"")]
    Prefix,
    /// The parts are not `<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    #[error("expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")]
    Shape,
    /// The iteration count is not a positive integer.
    #[error("iteration count {0:?} is not a positive integer")]
    Iterations(String),
    /// The salt is empty or not base64.
    #[error("salt is not non-empty base64")]
    Salt,
    /// A key is not base64 of 32 bytes.
    #[error("{0} is not base64 of 32 bytes")]
    Key(&'static str),
}

/// Checks that `s` has the shape of a SCRAM-SHA-256 verifier.
pub(crate) fn check_verifier(s: &str) -> Result<(), VerifierError> {
    let rest = s.strip_prefix(PREFIX).ok_or(VerifierError::Prefix)?;
    let (params, keys) = rest.split_once('$').ok_or(VerifierError::Shape)?;
    let (iterations, salt) = params.split_once(':').ok_or(VerifierError::Shape)?;
    let (stored_key, server_key) = keys.split_once(':').ok_or(VerifierError::Shape)?;
    if !iterations.bytes().all(|b| b.is_ascii_digit())
        || !matches!(iterations.parse::<u32>(), Ok(n) if n > 0)
    {
        return Err(VerifierError::Iterations(iterations.to_string()));
    }
    match STANDARD.decode(salt) {
        Ok(bytes) if !bytes.is_empty() => {}
        _ => return Err(VerifierError::Salt),
    }
    for (name, key) in [("StoredKey", stored_key), ("ServerKey", server_key)] {
        match STANDARD.decode(key) {
            Ok(bytes) if bytes.len() == KEY_LEN => {}
            _ => return Err(VerifierError::Key(name)),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The verifier of password "shop" with salt "shardgate-salt16" and 4096 iterations.
    pub(crate) const GOOD: &str = "SCRAM-SHA-256$4096:c2hhcmRnYXRlLXNhbHQxNg==$\
        I00v7oMlyZCgFvAVJB83YyWugohCv+e3jtdd6UVtJ4g=:ql/XLpDcuADt1u8vRm52Li/VY3XBb9oceQtq5ony4I8=";

    #[test]
    fn accepts_a_well_formed_verifier() {
        assert_eq!(check_verifier(GOOD), Ok(()));
    }

    #[test]
    fn rejects_each_malformed_part() {
        assert_eq!(check_verifier("shop"), Err(VerifierError::Prefix));
        assert_eq!(check_verifier("SCRAM-SHA-256$"), Err(VerifierError::Shape));
        assert_eq!(
            check_verifier("SCRAM-SHA-256$4096:c2FsdA=="),
            Err(VerifierError::Shape)
        );
        assert_eq!(
            check_verifier("SCRAM-SHA-256$4096c2FsdA==$a:b"),
            Err(VerifierError::Shape)
        );
        let good_keys = GOOD.split_once("==$").map(|(_, k)| k).unwrap_or_default();
        let key = good_keys
            .split_once(':')
            .map(|(k, _)| k)
            .unwrap_or_default();
        assert_eq!(
            check_verifier(&format!("SCRAM-SHA-256$4096:c2FsdA==${key}")),
            Err(VerifierError::Shape)
        );
        for iterations in ["0", "", "-1", "+5", "abc", "99999999999"] {
            assert_eq!(
                check_verifier(&format!("SCRAM-SHA-256${iterations}:c2FsdA==${good_keys}")),
                Err(VerifierError::Iterations(iterations.into()))
            );
        }
        for salt in ["", "not base64!", "c2FsdA"] {
            assert_eq!(
                check_verifier(&format!("SCRAM-SHA-256$4096:{salt}${good_keys}")),
                Err(VerifierError::Salt)
            );
        }
        assert_eq!(
            check_verifier(&format!("SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:{key}")),
            Err(VerifierError::Key("StoredKey"))
        );
        assert_eq!(
            check_verifier(&format!("SCRAM-SHA-256$4096:c2FsdA==${key}:???")),
            Err(VerifierError::Key("ServerKey"))
        );
    }
}
