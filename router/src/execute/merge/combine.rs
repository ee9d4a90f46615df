//! Combining two shards' partial values of one aggregate column (text
//! format) into the value one server would compute: counts and integer
//! sums added exactly (bigint stays bigint, numeric sums keep the larger
//! scale), min and max by the column type's order, bool_and/bool_or.
//! Types whose combination could differ from one server (floating-point
//! sums and averages, whose rounding depends on the order of addition)
//! are refused. Used by the one-row aggregate and by grouped merges.

use std::cmp::Ordering;

use sql_rewrite::merge::Combine;

use super::decimal::add_decimal;
use super::values::compare_typed;

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
