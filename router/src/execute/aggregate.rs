//! Combining shards' partial aggregates (one row per shard, text format)
//! into the row one server would return: counts and integer sums added
//! exactly (bigint stays bigint, numeric sums keep the larger scale), min
//! and max by the column type's order, bool_and/bool_or, and avg as the
//! combined sum divided by the combined count with PostgreSQL's numeric
//! division ([`numeric_avg`]). Types whose combination could differ from
//! one server (floating-point sums and averages, whose rounding depends on
//! the order of addition) are refused.

use std::cmp::Ordering;

use bytes::BytesMut;
use sql_rewrite::merge::Combine;

use super::merge::{compare_typed, row_description_types};
use crate::protocol::frame::Frame;
use crate::protocol::messages::{self, Malformed, Reader};

/// Partial aggregates being combined.
#[derive(Debug)]
pub struct AggMerge {
    combine: Vec<Combine>,
    types: Vec<u32>,
    acc: Vec<Option<Vec<u8>>>,
    /// A shard sent a row.
    seen: bool,
}

impl AggMerge {
    /// Combines columns by `combine`.
    pub fn new(combine: Vec<Combine>) -> Self {
        Self {
            acc: vec![None; combine.len()],
            combine,
            types: Vec::new(),
            seen: false,
        }
    }

    /// Reads the RowDescription's types; the reason when a column cannot be
    /// combined exactly.
    pub fn describe(&mut self, f: &Frame) -> Result<Result<(), String>, Malformed> {
        self.types = row_description_types(f)?;
        if self.types.len() != self.combine.len() {
            return Ok(Err("the shards returned other columns than expected".into()));
        }
        for (c, oid) in self.combine.iter().zip(&self.types) {
            if !combinable(*c, *oid) {
                return Ok(Err(not_combinable(*c, *oid)));
            }
        }
        Ok(Ok(()))
    }

    /// Adds one shard's row (a DataRow frame's bytes).
    pub fn feed(&mut self, row: &[u8]) -> Result<Result<(), String>, Malformed> {
        let body = row.get(5..).unwrap_or_default();
        let mut r = Reader::new(body, "DataRow");
        let n = r.i16()?;
        for i in 0..usize::try_from(n).unwrap_or(0) {
            let len = r.i32()?;
            let value = if len < 0 {
                None
            } else {
                Some(r.take(len as usize)?)
            };
            let (Some(c), Some(&oid)) = (self.combine.get(i), self.types.get(i)) else {
                return Ok(Err("the shards returned other columns than expected".into()));
            };
            let Some(v) = value else { continue };
            let v = v.to_vec();
            let next = match self.acc[i].take() {
                None => v,
                Some(a) => match combine_values(*c, oid, a, v) {
                    Ok(x) => x,
                    Err(why) => return Ok(Err(why)),
                },
            };
            self.acc[i] = Some(next);
        }
        self.seen = true;
        Ok(Ok(()))
    }

    /// The combined DataRow (none when no shard sent a row).
    pub fn finish(&self, out: &mut BytesMut) -> bool {
        if !self.seen {
            return false;
        }
        let values: Vec<Option<&[u8]>> = self.acc.iter().map(Option::as_deref).collect();
        messages::data_row_bytes(out, &values);
        true
    }
}

/// Combines two shards' non-NULL partial values (text format) of type `oid`.
pub fn combine_values(c: Combine, oid: u32, a: Vec<u8>, v: Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(match c {
        Combine::Sum | Combine::Avg { .. } => {
            let (x, y) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&v));
            let sum = add_decimal(&x, &y).ok_or_else(|| format!("cannot add {x} and {y}"))?;
            if oid == 20 && sum.parse::<i64>().is_err() {
                return Err("bigint out of range".into());
            }
            sum.into_bytes()
        }
        Combine::Min | Combine::Max => {
            let ord = compare_typed(oid, &a, &v).unwrap_or(Ordering::Equal);
            let keep_a = if c == Combine::Min {
                ord != Ordering::Greater
            } else {
                ord != Ordering::Less
            };
            if keep_a {
                a
            } else {
                v
            }
        }
        Combine::And => (if a == b"t" && v == b"t" { b"t" } else { b"f" }).to_vec(),
        Combine::Or => (if a == b"t" || v == b"t" { b"t" } else { b"f" }).to_vec(),
    })
}

/// Whether values of type `oid` can be combined by `c` exactly.
pub fn combinable(c: Combine, oid: u32) -> bool {
    match c {
        Combine::Sum => matches!(oid, 20 | 21 | 23 | 1700),
        // the shards' sum: bigint for int2/int4, numeric for int8/numeric
        Combine::Avg { .. } => matches!(oid, 20 | 1700),
        Combine::Min | Combine::Max => compare_typed(oid, b"", b"").is_some(),
        Combine::And | Combine::Or => oid == 16,
    }
}

/// Why `c` cannot combine values of type `oid`.
pub fn not_combinable(c: Combine, oid: u32) -> String {
    match c {
        Combine::Sum if matches!(oid, 700 | 701) => {
            "sum of a floating-point column across shards is not supported: its rounding would depend on the order of the shards".to_string()
        }
        Combine::Avg { .. } if matches!(oid, 700 | 701) => {
            "avg of a floating-point column across shards is not supported: its float8 result would depend on the order of the shards".to_string()
        }
        Combine::Avg { .. } => format!("avg of a column whose sum has type oid {oid} across shards is not supported yet (only integer and numeric averages)"),
        _ => format!("combining an aggregate of type oid {oid} across shards is not supported yet"),
    }
}

/// Exact sum of two decimal texts (integers or numerics, any precision);
/// the result keeps the larger number of fraction digits, as PostgreSQL's
/// numeric addition does. NaN and ±Infinity follow PostgreSQL.
pub fn add_decimal(a: &str, b: &str) -> Option<String> {
    let special = |v: &str| matches!(v, "NaN" | "Infinity" | "-Infinity");
    if special(a) || special(b) {
        return Some(
            match (a, b) {
                ("NaN", _) | (_, "NaN") => "NaN",
                ("Infinity", "-Infinity") | ("-Infinity", "Infinity") => "NaN",
                ("Infinity", _) | (_, "Infinity") => "Infinity",
                _ => "-Infinity",
            }
            .to_string(),
        );
    }
    let parse = |v: &str| -> Option<(bool, Vec<u8>, usize)> {
        let (neg, v) = match v.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, v),
        };
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let digits: Vec<u8> = int
            .bytes()
            .chain(frac.bytes())
            .map(|c| c.is_ascii_digit().then(|| c - b'0'))
            .collect::<Option<_>>()?;
        Some((neg, digits, frac.len()))
    };
    let (na, mut da, sa) = parse(a)?;
    let (nb, mut db, sb) = parse(b)?;
    let scale = sa.max(sb);
    da.extend(std::iter::repeat_n(0, scale - sa));
    db.extend(std::iter::repeat_n(0, scale - sb));
    let width = da.len().max(db.len()) + 1;
    let pad = |d: Vec<u8>| -> Vec<u8> {
        let mut v = vec![0; width - d.len()];
        v.extend(d);
        v
    };
    let (da, db) = (pad(da), pad(db));
    let (neg, digits) = if na == nb {
        (na, add_magnitudes(&da, &db))
    } else if da >= db {
        (na, sub_magnitudes(&da, &db))
    } else {
        (nb, sub_magnitudes(&db, &da))
    };
    let split = digits.len() - scale;
    let int: String = digits[..split]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect::<String>()
        .trim_start_matches('0')
        .to_string();
    let int = if int.is_empty() { "0".to_string() } else { int };
    let frac: String = digits[split..]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect();
    let zero = int == "0" && frac.bytes().all(|c| c == b'0');
    let sign = if neg && !zero { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// PostgreSQL's `avg` from the combined `sum` (decimal text: an integer or
/// numeric, or NaN/±Infinity) and `count` (a positive integer): the numeric
/// quotient at the scale `select_div_scale` (numeric.c) picks, at least 16
/// significant digits and no fewer fraction digits than the sum's, at most
/// 1000; rounded half away from zero. `None` for unreadable input.
pub fn numeric_avg(sum: &str, count: &str) -> Option<String> {
    if matches!(sum, "NaN" | "Infinity" | "-Infinity") {
        return Some(sum.to_string());
    }
    let n: u64 = count.parse().ok().filter(|n| *n > 0)?;
    let (neg, v) = match sum.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, sum),
    };
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let dscale = i64::try_from(frac.len()).ok()?;
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|c| c - b'0').collect();
    // Weight (in base-10000 digits) and first base-10000 digit of each side.
    let (weight1, first1) = match digits.iter().position(|&d| d != 0) {
        None => (0, 0),
        Some(at) => {
            // decimal exponent of the leading digit
            let p = i64::try_from(digits.len() - at).ok()? - 1 - dscale;
            let w = p.div_euclid(4);
            // the group spans exponents 4w+3 ..= 4w; its digits start at `at`
            let width = usize::try_from(p - 4 * w + 1).ok()?;
            let first = digits[at..(at + width).min(digits.len())]
                .iter()
                .fold(0u64, |acc, &d| acc * 10 + u64::from(d));
            let missing = (at + width).saturating_sub(digits.len());
            (w, first * 10u64.pow(u32::try_from(missing).ok()?))
        }
    };
    let count_digits = i64::try_from(n.to_string().len()).ok()?;
    let weight2 = (count_digits - 1).div_euclid(4);
    let first2 = n / 10_000u64.pow(u32::try_from(weight2).ok()?);
    let mut qweight = weight1 - weight2;
    if first1 <= first2 {
        qweight -= 1;
    }
    let rscale = (16 - qweight * 4).max(dscale).clamp(0, 1000);
    // |sum| * 10^(rscale - dscale) / n, rounded half away from zero
    let mut dividend = digits;
    dividend.extend(std::iter::repeat_n(
        0,
        usize::try_from(rscale - dscale).ok()?,
    ));
    let mut quotient = Vec::with_capacity(dividend.len());
    let mut rem: u128 = 0;
    for d in dividend {
        let cur = rem * 10 + u128::from(d);
        quotient.push(u8::try_from(cur / u128::from(n)).ok()?);
        rem = cur % u128::from(n);
    }
    if rem * 2 >= u128::from(n) {
        let mut i = quotient.len();
        loop {
            if i == 0 {
                quotient.insert(0, 1);
                break;
            }
            i -= 1;
            if quotient[i] == 9 {
                quotient[i] = 0;
            } else {
                quotient[i] += 1;
                break;
            }
        }
    }
    let scale = usize::try_from(rscale).ok()?;
    while quotient.len() < scale + 1 {
        quotient.insert(0, 0);
    }
    let split = quotient.len() - scale;
    let text = |d: &[u8]| d.iter().map(|d| char::from(b'0' + d)).collect::<String>();
    let int = text(&quotient[..split]);
    let int = match int.trim_start_matches('0') {
        "" => "0".to_string(),
        s => s.to_string(),
    };
    let zero = quotient.iter().all(|&d| d == 0);
    let sign = if neg && !zero { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{}", text(&quotient[split..]))
    })
}

fn add_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0; a.len()];
    let mut carry = 0;
    for i in (0..a.len()).rev() {
        let s = a[i] + b[i] + carry;
        out[i] = s % 10;
        carry = s / 10;
    }
    out
}

/// `a - b` for `a >= b` (same width).
fn sub_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0; a.len()];
    let mut borrow = 0i8;
    for i in (0..a.len()).rev() {
        let mut d = a[i] as i8 - b[i] as i8 - borrow;
        borrow = 0;
        if d < 0 {
            d += 10;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_sums() {
        assert_eq!(add_decimal("1", "2").as_deref(), Some("3"));
        assert_eq!(add_decimal("-5", "3").as_deref(), Some("-2"));
        assert_eq!(add_decimal("1.50", "-2.5").as_deref(), Some("-1.00"));
        assert_eq!(add_decimal("0.001", "999.999").as_deref(), Some("1000.000"));
        assert_eq!(add_decimal("-1.5", "1.5").as_deref(), Some("0.0"));
        assert_eq!(
            add_decimal("9223372036854775807", "9223372036854775807").as_deref(),
            Some("18446744073709551614")
        );
        assert_eq!(add_decimal("NaN", "1").as_deref(), Some("NaN"));
        assert_eq!(add_decimal("Infinity", "-Infinity").as_deref(), Some("NaN"));
        assert_eq!(add_decimal("-Infinity", "7").as_deref(), Some("-Infinity"));
        assert_eq!(add_decimal("1x", "2"), None);
    }

    #[test]
    fn averages_divide_as_postgres() {
        let avg = |s: &str, n: &str| numeric_avg(s, n).unwrap_or_default();
        // each checked against PostgreSQL 15 (avg, or numeric / bigint)
        assert_eq!(avg("3", "2"), "1.5000000000000000"); // avg(1, 2)
        assert_eq!(avg("6", "3"), "2.0000000000000000");
        assert_eq!(avg("-7", "3"), "-2.3333333333333333");
        assert_eq!(avg("2", "3"), "0.66666666666666666667");
        assert_eq!(avg("10000", "3"), "3333.3333333333333333");
        assert_eq!(avg("12345", "1"), "12345.0000000000000000");
        assert_eq!(avg("99999", "1"), "99999.000000000000");
        assert_eq!(avg("9999.5", "3"), "3333.1666666666666667");
        assert_eq!(
            avg("123456789012345678901234567890.123", "7"),
            "17636684144620811271604938270.018"
        );
        assert_eq!(avg("0.0000001", "3"), "0.000000033333333333333333");
        assert_eq!(avg("0", "5"), "0.00000000000000000000");
        assert_eq!(avg("-0.01", "3"), "-0.00333333333333333333");
        assert_eq!(avg("1.25", "2"), "0.62500000000000000000");
        assert_eq!(avg("-1", "3000000000"), "-0.0000000003333333333333333333");
        assert_eq!(avg("NaN", "2"), "NaN");
        assert_eq!(avg("-Infinity", "2"), "-Infinity");
        assert_eq!(numeric_avg("1", "0"), None);
        assert_eq!(numeric_avg("1.x", "2"), None);
    }
}
