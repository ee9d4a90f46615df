//! Exact decimal arithmetic on text values for combining aggregates: the
//! sum of two shards' partial sums ([`add_decimal`]) and an average as
//! PostgreSQL's numeric division computes it ([`numeric_avg`]).

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

/// `a + b` digit by digit (same width; the leading digit has room for the carry).
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
