//! Scalar types whose text is decoded byte by byte: `bytea` (both
//! `bytea_output` styles), `uuid`, `numeric`, `"char"`, `money`, `bit` and
//! `varbit`.

/// `bytea` text to its bytes: the `\x` hex form (the default
/// `bytea_output`) or the escape form (`\\`, `\ooo`, printable bytes as is).
pub(super) fn bytea(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    match text.strip_prefix(b"\\x") {
        Some(hex) => hex_bytes(hex, out),
        None => bytea_escape(text, out),
    }
}

/// Pairs of hex digits to bytes.
fn hex_bytes(hex: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    for pair in hex.chunks_exact(2) {
        out.push(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?);
    }
    Some(())
}

/// The value of one ASCII hex digit.
pub(super) fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The value of three ASCII octal digits (at most `\377`).
fn octal(digits: &[u8]) -> Option<u8> {
    let [a, b, c] = digits else { return None };
    let v = [a, b, c].iter().try_fold(0u32, |n, &&d| {
        (b'0'..=b'7')
            .contains(&d)
            .then(|| n * 8 + u32::from(d - b'0'))
    })?;
    u8::try_from(v).ok()
}

/// The escape form of `bytea_output`, as `byteaout` writes it.
fn bytea_escape(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut rest = text;
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
        } else if tail.first() == Some(&b'\\') {
            out.push(b'\\');
            rest = &tail[1..];
        } else {
            out.push(octal(tail.get(..3)?)?);
            rest = &tail[3..];
        }
    }
    Some(())
}

/// `xxxxxxxx-xxxx-…` to its 16 bytes.
pub(super) fn uuid(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let digits: Vec<u8> = text.iter().copied().filter(|&b| b != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    hex_bytes(&digits, out)
}

/// A `"char"`: `charout` writes a byte with the high bit set as `\ooo`,
/// the zero byte as the empty string, any other byte as itself.
pub(super) fn char(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.push(match text {
        [] => 0,
        [b] if b.is_ascii() => *b,
        [b'\\', digits @ ..] if digits.len() == 3 => octal(digits).filter(|b| !b.is_ascii())?,
        _ => return None,
    });
    Some(())
}

/// `money` as an `int64` of the currency's smallest unit. `cash_out`
/// writes every digit of that integer (with the locale's decimal point
/// placed `frac_digits` from the end), so the digits alone give it, and
/// `-` or parentheses the sign. Only the characters of the `C` and
/// `en_US`-like outputs (`-$1,234.56`, `($1,234.56)`) are accepted: a
/// currency symbol or separator outside them could hide digits or signs.
pub(super) fn money(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let allowed = |b: &u8| b.is_ascii_digit() || b",.$-() '".contains(b);
    if !text.iter().all(allowed) || !text.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let parens = text.first() == Some(&b'(') && text.last() == Some(&b')');
    let negative = parens || text.contains(&b'-');
    let magnitude = text
        .iter()
        .filter(|b| b.is_ascii_digit())
        .try_fold(0i128, |n, d| {
            n.checked_mul(10)?.checked_add(i128::from(d - b'0'))
        })?;
    let value = i64::try_from(if negative { -magnitude } else { magnitude }).ok()?;
    out.extend_from_slice(&value.to_be_bytes());
    Some(())
}

/// `bit`/`varbit` text (`0101`) as `bit_send` writes it: the bit count,
/// then the bits packed high bit first, the last byte zero-padded.
pub(super) fn bits(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.extend_from_slice(&i32::try_from(text.len()).ok()?.to_be_bytes());
    for chunk in text.chunks(8) {
        let mut byte = 0u8;
        for (i, b) in chunk.iter().enumerate() {
            match b {
                b'0' => {}
                b'1' => byte |= 0x80 >> i,
                _ => return None,
            }
        }
        out.push(byte);
    }
    Some(())
}

/// A numeric's text in PostgreSQL's binary layout: digit count, weight,
/// sign, display scale, then base-10000 digits without leading or trailing
/// zero groups.
pub(super) fn numeric(s: &str, out: &mut Vec<u8>) -> Option<()> {
    // numeric_send reads the display scale of a special value out of its
    // short header (NUMERIC_DSCALE), where the infinities' flag bit lands
    // as 32; PostgreSQL 15 sends exactly that.
    let special = match s {
        "NaN" => Some((0xC000u16, 0u16)),
        "Infinity" => Some((0xD000, 32)),
        "-Infinity" => Some((0xF000, 32)),
        _ => None,
    };
    if let Some((sign, dscale)) = special {
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
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

/// A `float8`'s text (`1.5`, `-1e+100`, `Infinity`, `NaN`) as its value.
pub(super) fn float8(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}
