//! Typed comparison of text-format values, the leaf every merge step
//! orders or matches values with: PostgreSQL's order for the common
//! types — integers, floats and numeric by value (NaN above everything),
//! booleans, dates and timestamps by time, and text, varchar, char, name
//! and uuid bytewise, that is in the `C` collation: shards whose text
//! columns use another collation order differently from this merge (see
//! README).

use std::cmp::Ordering;

use shard_config::KeyType;

/// The numeric type oid.
pub const NUMERIC: u32 = 1700;

/// How values of a column compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// int2, int4, int8 and oid: by integer value.
    Int,
    /// float4 and float8: by value, NaN above everything.
    Float,
    /// numeric: by decimal value ([`compare_numeric`]).
    Numeric,
    /// bool: `f` before `t`.
    Bool,
    /// text, varchar, char, name and uuid: bytewise.
    Bytes,
    /// date, timestamp and timestamptz: by instant.
    Time(KeyType),
}

impl Compare {
    /// The comparison of type `oid`; `None` for a type the merge cannot order.
    pub fn of(oid: u32) -> Option<Compare> {
        Some(match oid {
            20 | 21 | 23 | 26 => Compare::Int,
            700 | 701 => Compare::Float,
            NUMERIC => Compare::Numeric,
            16 => Compare::Bool,
            25 | 1043 | 1042 | 19 | 18 | 2950 => Compare::Bytes,
            1082 => Compare::Time(KeyType::Date),
            1114 => Compare::Time(KeyType::Timestamp),
            1184 => Compare::Time(KeyType::Timestamptz),
            _ => return None,
        })
    }
}

/// Two non-NULL text-format values of type `oid` in PostgreSQL's order;
/// `None` for a type the merge cannot order.
pub fn compare_typed(oid: u32, x: &[u8], y: &[u8]) -> Option<Ordering> {
    Compare::of(oid).map(|c| compare_values(c, x, y))
}

/// Whether two values (`None`: NULL) are equal, NULL equal to NULL, as
/// DISTINCT and GROUP BY match them.
pub fn same_value(cmp: Compare, x: Option<&[u8]>, y: Option<&[u8]>) -> bool {
    match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => compare_values(cmp, x, y) == Ordering::Equal,
        _ => false,
    }
}

/// Two non-NULL text-format values of one type.
pub fn compare_values(cmp: Compare, x: &[u8], y: &[u8]) -> Ordering {
    let s = |b: &[u8]| std::str::from_utf8(b).unwrap_or("").trim().to_string();
    match cmp {
        Compare::Bytes | Compare::Bool => x.cmp(y),
        Compare::Int => match (s(x).parse::<i64>(), s(y).parse::<i64>()) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => x.cmp(y),
        },
        Compare::Float => {
            let f = |b: &[u8]| s(b).parse::<f64>().unwrap_or(f64::NAN);
            let (a, b) = (f(x), f(y));
            // PostgreSQL: NaN equals NaN and sorts above every other value.
            match (a.is_nan(), b.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            }
        }
        Compare::Numeric => compare_numeric(&s(x), &s(y)),
        Compare::Time(ty) => {
            let t = |v: &str| match v {
                "infinity" => Some(i64::MAX),
                "-infinity" => Some(i64::MIN),
                _ => shard_config::time::parse_time_text(v, ty),
            };
            match (t(&s(x)), t(&s(y))) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => x.cmp(y),
            }
        }
    }
}

/// PostgreSQL numeric order of two text values: NaN above Infinity above
/// every number, -Infinity below.
pub fn compare_numeric(a: &str, b: &str) -> Ordering {
    fn rank(v: &str) -> u8 {
        match v {
            "-Infinity" => 0,
            "Infinity" => 2,
            "NaN" => 3,
            _ => 1,
        }
    }
    let (ra, rb) = (rank(a), rank(b));
    if ra != 1 || rb != 1 {
        return ra.cmp(&rb);
    }
    let split = |v: &str| -> (bool, String, String) {
        let (neg, v) = match v.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, v),
        };
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        let int = int.trim_start_matches('0').to_string();
        let frac = frac.trim_end_matches('0').to_string();
        let zero = int.is_empty() && frac.is_empty();
        (neg && !zero, int, frac)
    };
    let (na, ia, fa) = split(a);
    let (nb, ib, fb) = split(b);
    let magnitude = ia
        .len()
        .cmp(&ib.len())
        .then_with(|| ia.cmp(&ib))
        .then_with(|| fa.cmp(&fb));
    match (na, nb) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_order() {
        let mut v = vec![
            "NaN",
            "1.50",
            "-2",
            "0",
            "-0.001",
            "10",
            "Infinity",
            "-Infinity",
            "1.5",
            "0.00",
            "9.999",
        ];
        v.sort_by(|a, b| compare_numeric(a, b));
        assert_eq!(
            v,
            [
                "-Infinity",
                "-2",
                "-0.001",
                "0",
                "0.00",
                "1.50",
                "1.5",
                "9.999",
                "10",
                "Infinity",
                "NaN"
            ]
        );
    }

    #[test]
    fn floats_put_nan_last_and_times_compare_by_instant() {
        assert_eq!(
            compare_values(Compare::Float, b"NaN", b"Infinity"),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(Compare::Float, b"-1.5", b"1e-3"),
            Ordering::Less
        );
        assert_eq!(
            compare_values(
                Compare::Time(KeyType::Timestamptz),
                b"2026-01-01 10:00:00+02",
                b"2026-01-01 09:00:00+00"
            ),
            Ordering::Less
        );
        assert_eq!(
            compare_values(Compare::Time(KeyType::Date), b"infinity", b"2026-01-01"),
            Ordering::Greater
        );
        assert_eq!(compare_values(Compare::Int, b"-10", b"9"), Ordering::Less);
    }
}
