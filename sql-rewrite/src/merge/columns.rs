//! The columns of a grouped merge's shard rows (the select list with `avg`
//! as `sum` and a hidden `count`, hidden group keys and aggregates that
//! HAVING or ORDER BY need), and HAVING turned into a [`Predicate`] the
//! proxy evaluates on combined groups.

use sqlparser::ast::{Expr, Ident, SelectItem, Value};

use super::partial::{partial, renamed, Partial};
use super::types::{Combine, CompareOp, MergeError, Operand, Predicate};
use crate::query_shape::strip_nested;

/// The columns of a grouped query's shard rows as they are built: the
/// select list (with `avg` replaced by `sum`) and the hidden columns
/// appended for the merge.
pub(super) struct Columns<'a> {
    /// The client's select list.
    pub(super) items: &'a [SelectItem],
    /// The shards' select list: the client's (avg as sum), then the hidden columns.
    pub(super) shard_items: Vec<SelectItem>,
    /// How each column (visible, then hidden) combines; `None`: a group key.
    pub(super) combine: Vec<Option<Combine>>,
    /// The client's expression of each hidden column.
    pub(super) hidden: Vec<Expr>,
    /// The GROUP BY expressions.
    pub(super) group: &'a [Expr],
    /// The column of each GROUP BY expression.
    pub(super) keys: Vec<usize>,
}

impl Columns<'_> {
    /// Appends a hidden column computing `shard` for the client's `expr`.
    pub(super) fn hide(&mut self, expr: &Expr, shard: Expr, combine: Option<Combine>) -> usize {
        let n = self.hidden.len();
        self.hidden.push(expr.clone());
        self.shard_items.push(SelectItem::ExprWithAlias {
            expr: shard,
            alias: Ident::new(format!("__shardgate_{n}")),
        });
        self.combine.push(combine);
        self.shard_items.len() - 1
    }

    /// The column of an aggregate the client's select list, HAVING or
    /// ORDER BY names (hidden when it is not an output column); `None` for
    /// an expression that is not an aggregate.
    pub(super) fn aggregate(&mut self, e: &Expr) -> Result<Option<usize>, MergeError> {
        let Some(p) = partial(e)? else {
            return Ok(None);
        };
        let visible = self.items.iter().position(|i| match i {
            SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. } => x == e,
            _ => false,
        });
        if let Some(i) = visible.or_else(|| {
            self.hidden
                .iter()
                .position(|h| h == e)
                .map(|n| self.items.len() + n)
        }) {
            return Ok(Some(i));
        }
        Ok(Some(match p {
            Partial::Combine(c) => self.hide(e, e.clone(), Some(c)),
            Partial::Avg(f) => {
                let sum = self.hide(e, renamed(&f, "sum"), None);
                let count = self.hide(
                    &renamed(&f, "count"),
                    renamed(&f, "count"),
                    Some(Combine::Sum),
                );
                self.combine[sum] = Some(Combine::Avg { count });
                sum
            }
        }))
    }

    /// The column of a GROUP BY expression equal to `e`.
    pub(super) fn key(&self, e: &Expr) -> Option<usize> {
        self.group.iter().position(|g| g == e).map(|k| self.keys[k])
    }

    /// The HAVING condition over combined groups.
    pub(super) fn predicate(&mut self, e: &Expr) -> Result<Predicate, MergeError> {
        use sqlparser::ast::{BinaryOperator as B, UnaryOperator};
        let refuse = |e: &Expr| Err(MergeError::Having(e.to_string()));
        Ok(match e {
            Expr::Nested(inner) => self.predicate(inner)?,
            Expr::BinaryOp { left, op, right } => {
                let cmp = match op {
                    B::And => {
                        return Ok(Predicate::And(
                            Box::new(self.predicate(left)?),
                            Box::new(self.predicate(right)?),
                        ))
                    }
                    B::Or => {
                        return Ok(Predicate::Or(
                            Box::new(self.predicate(left)?),
                            Box::new(self.predicate(right)?),
                        ))
                    }
                    B::Eq => CompareOp::Eq,
                    B::NotEq => CompareOp::NotEq,
                    B::Lt => CompareOp::Lt,
                    B::LtEq => CompareOp::LtEq,
                    B::Gt => CompareOp::Gt,
                    B::GtEq => CompareOp::GtEq,
                    _ => return refuse(e),
                };
                let (l, r) = (self.operand(left)?, self.operand(right)?);
                if !matches!(l, Operand::Column(_)) && !matches!(r, Operand::Column(_)) {
                    return refuse(e);
                }
                Predicate::Compare(l, cmp, r)
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Predicate::Not(Box::new(self.predicate(expr)?)),
            Expr::IsNull(x) => Predicate::IsNull(self.operand(x)?, false),
            Expr::IsNotNull(x) => Predicate::IsNull(self.operand(x)?, true),
            other => match self.operand(other)? {
                o @ Operand::Column(_) => Predicate::Truth(o),
                Operand::Literal(v) if v == "t" || v == "f" => {
                    Predicate::Truth(Operand::Literal(v))
                }
                _ => return refuse(e),
            },
        })
    }

    /// A HAVING operand: a constant, a group key or an aggregate.
    fn operand(&mut self, e: &Expr) -> Result<Operand, MergeError> {
        if let Some(v) = literal(e) {
            return Ok(v);
        }
        if let Some(c) = self.key(e) {
            return Ok(Operand::Column(c));
        }
        match self.aggregate(e)? {
            Some(c) => Ok(Operand::Column(c)),
            None => Err(MergeError::Having(e.to_string())),
        }
    }
}

/// A constant: a number (optionally negated), a string, a boolean or NULL.
fn literal(e: &Expr) -> Option<Operand> {
    match strip_nested(e) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(Operand::Literal(n.clone())),
            Value::SingleQuotedString(s) => Some(Operand::Literal(s.clone())),
            Value::Boolean(b) => Some(Operand::Literal(if *b { "t" } else { "f" }.into())),
            Value::Null => Some(Operand::Null),
            _ => None,
        },
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Operand::Literal(n) if n.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
                Some(Operand::Literal(format!("-{n}")))
            }
            _ => None,
        },
        _ => None,
    }
}
