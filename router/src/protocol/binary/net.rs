//! Network address types: `inet` and `cidr` (IPv4 and IPv6, with or without
//! `/prefix`), `macaddr` and `macaddr8`.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::scalar::hex_digit;

/// `AF_INET` as `inet_send` writes it.
const FAMILY_INET: u8 = 2;
/// `PGSQL_AF_INET6` (`AF_INET + 1`, not the platform's `AF_INET6`).
const FAMILY_INET6: u8 = 3;

/// `inet` (`is_cidr` false) or `cidr` as `network_send` writes it: family,
/// prefix bits, the is-cidr flag (from the type, not the value), the
/// address length, then the address bytes.
pub(super) fn inet(text: &[u8], is_cidr: bool, out: &mut Vec<u8>) -> Option<()> {
    let text = std::str::from_utf8(text).ok()?;
    let (addr, bits) = match text.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits)),
        None => (text, None),
    };
    let (family, bytes): (u8, Vec<u8>) = if addr.contains(':') {
        (
            FAMILY_INET6,
            addr.parse::<Ipv6Addr>().ok()?.octets().to_vec(),
        )
    } else {
        (
            FAMILY_INET,
            addr.parse::<Ipv4Addr>().ok()?.octets().to_vec(),
        )
    };
    let max = bytes.len() * 8;
    let bits = match bits {
        Some(b) if !b.is_empty() && b.bytes().all(|d| d.is_ascii_digit()) => b.parse().ok()?,
        Some(_) => return None,
        None => max,
    };
    if bits > max {
        return None;
    }
    out.extend_from_slice(&[family, u8::try_from(bits).ok()?, u8::from(is_cidr)]);
    out.push(u8::try_from(bytes.len()).ok()?);
    out.extend_from_slice(&bytes);
    Some(())
}

/// `macaddr` (6 bytes) or `macaddr8` (8): `xx:xx:…` hex pairs.
pub(super) fn macaddr(text: &[u8], len: usize, out: &mut Vec<u8>) -> Option<()> {
    let parts: Vec<&[u8]> = text.split(|&b| b == b':').collect();
    if parts.len() != len {
        return None;
    }
    for part in parts {
        let [hi, lo] = part else { return None };
        out.push(hex_digit(*hi)? << 4 | hex_digit(*lo)?);
    }
    Some(())
}
