//! HAVING across shards: the condition is checked once against the
//! columns' types (every comparison must be exact: numbers by value,
//! constants that read as the column's type), then evaluated on each
//! combined group with SQL's three-valued logic; a group is kept when it
//! is true.

use std::cmp::Ordering;

use shard_config::KeyType;
use sql_rewrite::merge::{CompareOp, Operand, Predicate};

use super::values::{compare_values, Compare};

/// A HAVING operand's type (`None`: a constant) and value (`None`: NULL).
fn operand<'a>(
    o: &'a Operand,
    row: &'a [Option<Vec<u8>>],
    types: &[u32],
) -> (Option<u32>, Option<&'a [u8]>) {
    match o {
        Operand::Column(c) => (
            types.get(*c).copied(),
            row.get(*c).and_then(|v| v.as_deref()),
        ),
        Operand::Literal(v) => (None, Some(v.as_bytes())),
        Operand::Null => (None, None),
    }
}

/// A HAVING condition on a combined group: `None` is SQL's unknown.
pub fn eval(p: &Predicate, row: &[Option<Vec<u8>>], types: &[u32]) -> Option<bool> {
    match p {
        Predicate::And(a, b) => match (eval(a, row, types), eval(b, row, types)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Predicate::Or(a, b) => match (eval(a, row, types), eval(b, row, types)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Predicate::Not(a) => eval(a, row, types).map(|v| !v),
        Predicate::IsNull(o, negated) => Some(operand(o, row, types).1.is_none() != *negated),
        Predicate::Truth(o) => operand(o, row, types).1.map(|v| v == b"t"),
        Predicate::Compare(l, op, r) => {
            let (tl, vl) = operand(l, row, types);
            let (tr, vr) = operand(r, row, types);
            let ord = compare_having(tl, vl?, tr, vr?)?;
            Some(match op {
                CompareOp::Eq => ord == Ordering::Equal,
                CompareOp::NotEq => ord != Ordering::Equal,
                CompareOp::Lt => ord == Ordering::Less,
                CompareOp::LtEq => ord != Ordering::Greater,
                CompareOp::Gt => ord == Ordering::Greater,
                CompareOp::GtEq => ord != Ordering::Less,
            })
        }
    }
}

/// How two HAVING operands of these types (`None`: a constant) compare:
/// numbers of any integer or numeric type by value, float with numbers as
/// float8, other types with their own kind only.
fn having_kind(a: Option<u32>, b: Option<u32>) -> Option<Compare> {
    let numeric = |c: Compare| matches!(c, Compare::Int | Compare::Numeric);
    match (a.map(Compare::of), b.map(Compare::of)) {
        (Some(Some(x)), None) | (None, Some(Some(x))) => Some(if x == Compare::Int {
            Compare::Numeric
        } else {
            x
        }),
        (Some(Some(x)), Some(Some(y))) if x == y => Some(if x == Compare::Int {
            Compare::Numeric
        } else {
            x
        }),
        (Some(Some(x)), Some(Some(y))) if numeric(x) && numeric(y) => Some(Compare::Numeric),
        (Some(Some(x)), Some(Some(y)))
            if (x == Compare::Float && numeric(y)) || (y == Compare::Float && numeric(x)) =>
        {
            Some(Compare::Float)
        }
        _ => None,
    }
}

/// Two non-NULL HAVING values in PostgreSQL's order.
fn compare_having(ta: Option<u32>, a: &[u8], tb: Option<u32>, b: &[u8]) -> Option<Ordering> {
    let kind = having_kind(ta, tb)?;
    if kind == Compare::Bool {
        return Some(bool_text(a)?.cmp(bool_text(b)?));
    }
    Some(compare_values(kind, a, b))
}

/// A boolean's text as PostgreSQL reads it: `t` or `f`.
fn bool_text(v: &[u8]) -> Option<&'static [u8]> {
    let v = std::str::from_utf8(v).ok()?.trim().to_ascii_lowercase();
    match v.as_str() {
        "t" | "true" | "yes" | "on" | "1" | "y" => Some(b"t"),
        "f" | "false" | "no" | "off" | "0" | "n" => Some(b"f"),
        _ => None,
    }
}

/// Checks that every HAVING comparison can be made exactly with these
/// column types: the reason when one cannot.
pub fn check_having(p: &Predicate, types: &[u32]) -> Result<(), String> {
    let ty = |o: &Operand| match o {
        Operand::Column(c) => types.get(*c).copied(),
        _ => None,
    };
    match p {
        Predicate::And(a, b) | Predicate::Or(a, b) => {
            check_having(a, types)?;
            check_having(b, types)
        }
        Predicate::Not(a) => check_having(a, types),
        Predicate::IsNull(..) => Ok(()),
        Predicate::Truth(o) => match (o, ty(o)) {
            (Operand::Column(_), Some(16)) | (Operand::Literal(_), _) => Ok(()),
            (_, t) => Err(format!(
                "HAVING uses a column of type oid {} as a condition",
                t.unwrap_or(0)
            )),
        },
        Predicate::Compare(l, _, r) => {
            let Some(kind) = having_kind(ty(l), ty(r)) else {
                return Err(format!(
                    "HAVING compares values of type oids {} and {} across shards, which is not supported yet",
                    ty(l).unwrap_or(0),
                    ty(r).unwrap_or(0)
                ));
            };
            for o in [l, r] {
                if let Operand::Literal(v) = o {
                    if !literal_fits(kind, v) {
                        return Err(format!(
                            "HAVING compares with the constant '{v}', which the proxy cannot compare exactly with that column across shards"
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// Whether constant `v` reads as a value of `kind` the way the server
/// would read it.
fn literal_fits(kind: Compare, v: &str) -> bool {
    let decimal = |v: &str| {
        let v = v.strip_prefix('-').unwrap_or(v);
        let (i, f) = v.split_once('.').unwrap_or((v, ""));
        !(i.is_empty() && f.is_empty()) && i.bytes().chain(f.bytes()).all(|c| c.is_ascii_digit())
    };
    match kind {
        Compare::Int | Compare::Numeric => {
            decimal(v) || matches!(v, "NaN" | "Infinity" | "-Infinity")
        }
        Compare::Float => decimal(v) || matches!(v, "NaN" | "Infinity" | "-Infinity"),
        Compare::Bool => bool_text(v.as_bytes()).is_some(),
        Compare::Bytes => true,
        Compare::Time(ty) => {
            // a timestamptz without an offset would be read in the session's time zone
            let zoned = ty != KeyType::Timestamptz
                || v.get(10..)
                    .is_some_and(|t| t.contains(['+', '-', 'Z', 'z']) || t.ends_with("UTC"));
            zoned && shard_config::time::parse_time_text(v, ty).is_some()
        }
    }
}
