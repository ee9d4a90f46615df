//! Turning a key as written in SQL (a literal) or sent at Bind (a text or
//! binary parameter) into the value placement works on, by the key column's
//! type; and the shard a key value is placed on.

use shard_config::hash::KeyValue;
use shard_config::{KeyType, TableRule};

use crate::keys::KeyValueExpr;
use crate::params::Param;

/// A key value ready for placement: an integer, the bytes of a text key, the
/// 16 bytes of a uuid, or a time as microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// int2/int4/int8.
    Int(i64),
    /// text/varchar bytes.
    Text(Vec<u8>),
    /// uuid bytes.
    Uuid([u8; 16]),
    /// date/timestamp/timestamptz as Unix microseconds (UTC).
    Time(i64),
}

/// What a written or bound value turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    /// A key.
    Key(Key),
    /// SQL NULL: equal to no key.
    Null,
    /// Not a valid value of the key type: the server will reject the
    /// statement itself, wherever it runs.
    Invalid,
}

/// A literal or `$n` as a key of type `ty`; `None` when `$n` is not bound.
pub fn convert(expr: &KeyValueExpr, ty: KeyType, params: &[Param<'_>]) -> Option<Converted> {
    Some(match expr {
        KeyValueExpr::Null => Converted::Null,
        KeyValueExpr::Int(n) => match ty {
            KeyType::Int => Converted::Key(Key::Int(*n)),
            _ => Converted::Invalid,
        },
        KeyValueExpr::Text(s) => from_text(s.as_bytes(), ty),
        KeyValueExpr::Param(n) => {
            let p = params.get(n.checked_sub(1)?)?;
            match p.value {
                None => Converted::Null,
                Some(v) if p.binary => from_binary(v, ty),
                Some(v) => from_text(v, ty),
            }
        }
    })
}

/// A key from its text form (a quoted literal or a text-format parameter).
pub fn from_text(text: &[u8], ty: KeyType) -> Converted {
    let key = match ty {
        KeyType::Int => std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map(Key::Int),
        KeyType::Text => Some(Key::Text(text.to_vec())),
        KeyType::Uuid => std::str::from_utf8(text)
            .ok()
            .and_then(parse_uuid)
            .map(Key::Uuid),
        KeyType::Date | KeyType::Timestamp | KeyType::Timestamptz => std::str::from_utf8(text)
            .ok()
            .and_then(|s| shard_config::time::parse_time_text(s, ty))
            .map(Key::Time),
    };
    key.map_or(Converted::Invalid, Converted::Key)
}

/// A key from PostgreSQL's binary format of the key type.
pub fn from_binary(bytes: &[u8], ty: KeyType) -> Converted {
    let key = match ty {
        KeyType::Int => match bytes.len() {
            2 => Some(i64::from(i16::from_be_bytes([bytes[0], bytes[1]]))),
            4 => bytes
                .try_into()
                .ok()
                .map(|b| i64::from(i32::from_be_bytes(b))),
            8 => bytes.try_into().ok().map(i64::from_be_bytes),
            _ => None,
        }
        .map(Key::Int),
        KeyType::Text => Some(Key::Text(bytes.to_vec())),
        KeyType::Uuid => bytes.try_into().ok().map(Key::Uuid),
        KeyType::Date | KeyType::Timestamp | KeyType::Timestamptz => {
            shard_config::time::time_from_binary(bytes, ty).map(Key::Time)
        }
    };
    match key {
        Some(k) => Converted::Key(k),
        // A parameter cast to the key type (`$1::text::date`) arrives in its
        // own type's binary form, which for text is its text: uuid and time
        // keys cannot be mistaken (their binary forms are 16, 4 or 8 bytes).
        None if (ty == KeyType::Uuid && bytes.len() != 16) || (ty.is_time() && bytes.len() > 8) => {
            from_text(bytes, ty)
        }
        None => Converted::Invalid,
    }
}

/// A uuid as PostgreSQL's `uuid_in` reads it: 32 hex digits, optionally in
/// braces, with a hyphen allowed after any group of four digits.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let mut out = [0u8; 16];
    let mut digits = 0usize;
    let mut last_hyphen = true;
    for c in s.chars() {
        if c == '-' {
            if last_hyphen || !digits.is_multiple_of(4) || digits == 32 {
                return None;
            }
            last_hyphen = true;
            continue;
        }
        let d = c.to_digit(16)?;
        if digits >= 32 {
            return None;
        }
        let d = u8::try_from(d).ok()?;
        out[digits / 2] |= if digits.is_multiple_of(2) { d << 4 } else { d };
        digits += 1;
        last_hyphen = false;
    }
    (digits == 32 && !last_hyphen).then_some(out)
}

/// The elements of an array parameter (`key = ANY($n)`), in text
/// (`{1,2,"a b"}`) or binary array format; `None` when it cannot be read.
pub fn array_elements(p: &Param<'_>, ty: KeyType) -> Option<Vec<Converted>> {
    let v = p.value?;
    if p.binary {
        binary_array(v, ty)
    } else {
        text_array(std::str::from_utf8(v).ok()?, ty)
    }
}

fn binary_array(v: &[u8], ty: KeyType) -> Option<Vec<Converted>> {
    let word = |at: usize| -> Option<i32> {
        Some(i32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?))
    };
    let ndim = usize::try_from(word(0)?).ok()?;
    if ndim == 0 {
        return Some(Vec::new());
    }
    if ndim != 1 {
        return None;
    }
    let len = usize::try_from(word(12)?).ok()?;
    let mut at = 20;
    let mut out = Vec::with_capacity(len.min(4096));
    for _ in 0..len {
        let n = word(at)?;
        at += 4;
        if n < 0 {
            out.push(Converted::Null);
            continue;
        }
        let n = usize::try_from(n).ok()?;
        out.push(from_binary(v.get(at..at + n)?, ty));
        at += n;
    }
    Some(out)
}

fn text_array(s: &str, ty: KeyType) -> Option<Vec<Converted>> {
    let inner = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '"' {
                    return None; // nested arrays are not keys
                }
                item.push(c);
                chars.next();
            }
            item = item.trim().to_string();
        }
        if !quoted && item.eq_ignore_ascii_case("NULL") {
            out.push(Converted::Null);
        } else {
            out.push(from_text(item.as_bytes(), ty));
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// The shard (and interval-table suffix) owning `key` under `rule`.
pub fn place(rule: &TableRule, key: &Key) -> Option<(usize, Option<String>)> {
    match key {
        Key::Int(i) => rule.shard_for_key(&KeyValue::Int(*i)).map(|s| (s, None)),
        Key::Text(b) => rule.shard_for_key(&KeyValue::Text(b)).map(|s| (s, None)),
        Key::Uuid(u) => rule.shard_for_key(&KeyValue::Uuid(*u)).map(|s| (s, None)),
        Key::Time(t) => rule.time_target(*t),
    }
}

/// A key for messages.
pub fn display_key(k: &Key) -> String {
    match k {
        Key::Int(i) => i.to_string(),
        Key::Text(b) => format!("'{}'", String::from_utf8_lossy(b).replace('\'', "''")),
        Key::Uuid(u) => format!("'{}'", shard_config::uuid_text(u)),
        Key::Time(t) => format!("{t} µs after 1970-01-01 UTC"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &str) -> Param<'_> {
        Param {
            value: Some(v.as_bytes()),
            binary: false,
        }
    }

    #[test]
    fn uuids() {
        let u = parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap();
        assert_eq!(u[0], 0xa0);
        assert_eq!(parse_uuid("{a0eebc999c0b4ef8bb6d6bb9bd380a11}"), Some(u));
        assert_eq!(
            parse_uuid("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"),
            Some(u)
        );
        assert_eq!(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"), None);
        assert_eq!(parse_uuid("-a0eebc999c0b4ef8bb6d6bb9bd380a11"), None);
        assert_eq!(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11-"), None);
    }

    #[test]
    fn text_and_binary_ints() {
        assert_eq!(
            from_text(b" 42 ", KeyType::Int),
            Converted::Key(Key::Int(42))
        );
        assert_eq!(from_text(b"4x", KeyType::Int), Converted::Invalid);
        assert_eq!(
            from_binary(&[0, 7], KeyType::Int),
            Converted::Key(Key::Int(7))
        );
        assert_eq!(
            from_binary(&(-5i32).to_be_bytes(), KeyType::Int),
            Converted::Key(Key::Int(-5))
        );
        assert_eq!(
            from_binary(&(1i64 << 40).to_be_bytes(), KeyType::Int),
            Converted::Key(Key::Int(1 << 40))
        );
        assert_eq!(from_binary(&[1, 2, 3], KeyType::Int), Converted::Invalid);
    }

    #[test]
    fn text_sent_in_binary_for_uuid_and_time_keys() {
        let u = b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert!(matches!(
            from_binary(u, KeyType::Uuid),
            Converted::Key(Key::Uuid(_))
        ));
        assert!(matches!(
            from_binary(b"2026-11-05 10:00", KeyType::Timestamptz),
            Converted::Key(Key::Time(_))
        ));
        assert_eq!(
            from_binary(&[0, 0, 0, 1, 2], KeyType::Date),
            Converted::Invalid
        );
        // int keys never guess: "42" as text is two bytes, which is also an int2
        assert_eq!(
            from_binary(b"42", KeyType::Int),
            Converted::Key(Key::Int(0x3432))
        );
    }

    #[test]
    fn arrays() {
        let got = array_elements(&text("{1, 2,NULL,\"3\"}"), KeyType::Int).unwrap();
        assert_eq!(
            got,
            vec![
                Converted::Key(Key::Int(1)),
                Converted::Key(Key::Int(2)),
                Converted::Null,
                Converted::Key(Key::Int(3))
            ]
        );
        let got = array_elements(&text("{\"a,b\",c}"), KeyType::Text).unwrap();
        assert_eq!(got[0], Converted::Key(Key::Text(b"a,b".to_vec())));
        assert_eq!(array_elements(&text("{}"), KeyType::Int), Some(vec![]));
        assert_eq!(array_elements(&text("{{1}}"), KeyType::Int), None);
        // binary int8[] {5, NULL}
        let mut b = Vec::new();
        for w in [1i32, 1, 20, 2, 1] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&5i64.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        let p = Param {
            value: Some(&b),
            binary: true,
        };
        assert_eq!(
            array_elements(&p, KeyType::Int).unwrap(),
            vec![Converted::Key(Key::Int(5)), Converted::Null]
        );
    }
}
