//! `$n` parameters: one execution's value of each ([`Param`], as Bind
//! carries it), and the placeholders a statement uses — which ones, and
//! renumbered to `$1…$k` when a shard gets only some of them.
//!
//! A leaf: the route planner and the merge planner both use it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{visit_expressions, visit_expressions_mut, Expr, Statement, Value};

/// One `$n` value of an execution, as Bind carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The bytes, `None` for NULL.
    pub value: Option<&'a [u8]>,
    /// Binary format (else text).
    pub binary: bool,
}

/// Renumbers the `$n` the statement uses to `$1…$k` in order of `n`; gives
/// the original 0-based indexes in their new order, or `None` when the
/// statement uses exactly `$1…$k` of `total` already.
pub fn renumber_params(statement: &mut Statement, total: usize) -> Option<Vec<usize>> {
    let order: Vec<usize> = params_used(statement).into_iter().collect();
    if order.len() == total && order.iter().enumerate().all(|(i, n)| *n == i + 1) {
        return None;
    }
    let new_number: BTreeMap<usize, usize> =
        order.iter().enumerate().map(|(i, n)| (*n, i + 1)).collect();
    let _ = visit_expressions_mut(statement, |e| {
        if let Some(n) = placeholder(e) {
            if let Some(m) = new_number.get(&n) {
                *e = Expr::value(Value::Placeholder(format!("${m}")));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Some(order.into_iter().map(|n| n - 1).collect())
}

/// The `$n` numbers a statement (or any part of one) uses.
pub fn params_used<V: sqlparser::ast::Visit>(v: &V) -> BTreeSet<usize> {
    let mut used = BTreeSet::new();
    let _ = visit_expressions(v, |e| {
        if let Some(n) = placeholder(e) {
            used.insert(n);
        }
        ControlFlow::<()>::Continue(())
    });
    used
}

/// The `n` of a `$n` placeholder expression.
fn placeholder(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}
