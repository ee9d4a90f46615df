//! The per-shard part of one aggregate call: which aggregates combine
//! (count, sum, min, max, bool_and/or, avg as sum and count) and how
//! ([`Partial`]); what is refused (other aggregates, DISTINCT, WITHIN GROUP).

use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArguments, Ident, ObjectName, Select, SelectItem,
};

use super::types::{Combine, MergeError};
use crate::query_shape::{function_name, AGGREGATES};

/// An aggregate's per-shard partial result and how it combines.
#[derive(Debug, Clone)]
pub(super) enum Partial {
    /// The shards compute the aggregate itself; results combine thus.
    Combine(Combine),
    /// `avg`: the shards compute `sum` and `count` of this call.
    Avg(Box<Function>),
}

/// The partial aggregates of a select list without GROUP BY, when it has
/// aggregates (or a HAVING); `None` for a query without.
pub(super) fn aggregate_only(s: &Select) -> Result<Option<Vec<Partial>>, MergeError> {
    let mut out = Vec::new();
    let mut other: Option<&Expr> = None;
    for item in &s.projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return Ok(None),
        };
        match partial(expr)? {
            Some(p) => out.push(p),
            None => {
                other.get_or_insert(expr);
            }
        }
    }
    if out.is_empty() && s.having.is_none() {
        return Ok(None);
    }
    if let Some(e) = other {
        return Err(MergeError::Unsupported(format!("{e} next to aggregates")));
    }
    Ok(Some(out))
}

/// How an aggregate call's per-shard results combine; `None` for an
/// expression that is not an aggregate call.
pub(super) fn partial(expr: &Expr) -> Result<Option<Partial>, MergeError> {
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    if f.over.is_some() {
        return Ok(None);
    }
    let name = function_name(f);
    let c = match name.as_str() {
        "count" | "sum" => Combine::Sum,
        "min" => Combine::Min,
        "max" => Combine::Max,
        "bool_and" | "every" => Combine::And,
        "bool_or" => Combine::Or,
        "avg" => Combine::Avg { count: 0 },
        other if AGGREGATES.contains(&other) => {
            return Err(MergeError::Unsupported(format!(
                "aggregate function {other}"
            )))
        }
        _ => return Ok(None),
    };
    let distinct = match &f.args {
        FunctionArguments::List(l) => l
            .duplicate_treatment
            .is_some_and(|d| d == DuplicateTreatment::Distinct),
        _ => false,
    };
    if distinct {
        return Err(MergeError::Distinct(name));
    }
    if !f.within_group.is_empty() {
        return Err(MergeError::Unsupported(format!("{name} … WITHIN GROUP")));
    }
    Ok(Some(match c {
        Combine::Avg { .. } => Partial::Avg(Box::new(f.clone())),
        c => Partial::Combine(c),
    }))
}

/// `f` (an `avg` call) renamed: `sum(…)` or `count(…)` of the same
/// arguments and FILTER.
pub(super) fn renamed(f: &Function, name: &str) -> Expr {
    let mut g = f.clone();
    g.name = ObjectName::from(vec![Ident::new(name)]);
    Expr::Function(g)
}
